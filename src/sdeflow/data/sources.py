"""One entry point from a data name or path to training and held-out tensors.

:func:`get_data` understands

* a 2-D toy name (``moons``, ``8gaussians``, ... see :data:`sdeflow.data.TOYS`),
* ``digits`` (the scikit-learn digits, class labels included),
* an exact-score Gaussian-mixture preset (``ring2d``, ``mixture64d``; see :mod:`sdeflow.targets`),
* a path to user data (``.npy``, ``.npz``, ``.pt`` or a folder of images; see :mod:`sdeflow.data.files`),

and returns a :class:`DataSource` with the training tensor in *model space*, the affine map back to
data space (``x_data = shift + scale * x_model``; the identity except for standardized user vectors)
and a held-out set for metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .._utils import check_int
from .digits import load_digits
from .files import load_file_data
from .toys import TOYS, sample_toy

__all__ = ["DataSource", "get_data", "data_names", "transform_to_data", "NORMALIZATIONS"]

NORMALIZATIONS = ("auto", "none", "standardize")

# Held-out toy and mixture samples come from seeds far from any training seed.
_HELDOUT_SEED_OFFSET = 1_000_003


@dataclass
class DataSource:
    """Training data and what is needed to evaluate and to map samples back.

    Attributes:
        name: the data name or path as given.
        kind: ``"vector"`` or ``"image"``.
        x: training data in model space, ``(n, *event_shape)`` float32.
        labels: ``(n,)`` int64 class labels or ``None``.
        num_classes: number of classes (0 without labels).
        heldout: held-out data in data space (for metrics) or ``None``.
        shift, scale: ``x_data = shift + scale * x_model``; tensors of the event shape, or floats.
        target: the exact :class:`~sdeflow.targets.GaussianMixture` for a mixture preset.
    """

    name: str
    kind: str
    x: torch.Tensor
    labels: torch.Tensor | None = None
    num_classes: int = 0
    heldout: torch.Tensor | None = None
    shift: Any = 0.0
    scale: Any = 1.0
    target: Any = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def event_shape(self) -> tuple[int, ...]:
        """The shape of one item."""
        return tuple(self.x.shape[1:])

    def to_data_space(self, x: torch.Tensor) -> torch.Tensor:
        """``shift + scale * x`` (the inverse of the normalization)."""
        return transform_to_data(x, self.transform())

    def checkpoint_info(self, num_classes: int = 0) -> dict[str, Any]:
        """What a checkpoint records about the data (``Trainer(data_info=...)``): name, kind, transform, classes."""
        return {"name": self.name, "kind": self.kind, "transform": self.transform(), "num_classes": num_classes}

    def transform(self) -> dict[str, Any]:
        """The normalization as JSON-ready lists, stored in checkpoints."""
        def as_list(v: Any) -> Any:
            return v.tolist() if isinstance(v, torch.Tensor) else float(v)

        return {"shift": as_list(self.shift), "scale": as_list(self.scale)}


def transform_to_data(x: torch.Tensor, transform: dict[str, Any] | None) -> torch.Tensor:
    """Map model-space samples ``x`` to data space with a stored ``{"shift", "scale"}`` transform."""
    if not transform:
        return x
    shift = torch.as_tensor(transform["shift"], dtype=x.dtype, device=x.device)
    scale = torch.as_tensor(transform["scale"], dtype=x.dtype, device=x.device)
    return shift + scale * x


def data_names() -> list[str]:
    """Built-in data names (toys, digits, mixture presets)."""
    from ..targets import available

    return sorted(TOYS) + ["digits"] + [n for n in available() if n != "gaussian"]


def get_data(
    name: str | Path,
    *,
    n: int | None = None,
    n_heldout: int = 10_000,
    seed: int = 0,
    normalize: str = "auto",
    key: str | None = None,
) -> DataSource:
    """Training and held-out data for ``name`` (see the module docstring).

    Args:
        name: a built-in name or a path.
        n: training set size for sampled data (toys, mixtures; default 100,000); for files and the
            digits, keep at most ``n`` items.
        n_heldout: held-out size for sampled data.
        seed: seed of sampled training data (held-out data uses ``seed + 1000003``).
        normalize: ``"standardize"`` (per-coordinate mean 0, std 1; stored and undone at sampling),
            ``"none"``, or ``"auto"`` (standardize user vector files, nothing otherwise).
        key: the array name inside an ``.npz``/``.pt`` file.
    """
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {list(NORMALIZATIONS)}; got {normalize!r}")
    check_int(seed, "seed", minimum=0)
    n_heldout = check_int(n_heldout, "n_heldout")
    if n is not None:
        n = check_int(n, "n")
    text = str(name)
    if text in TOYS:
        size = n or 100_000
        source = DataSource(text, "vector", sample_toy(text, size, seed), heldout=sample_toy(text, n_heldout, seed + _HELDOUT_SEED_OFFSET))
    elif text == "digits":
        train, test = load_digits("train"), load_digits("test")
        x, y = (train.images, train.labels) if n is None else (train.images[:n], train.labels[:n])
        source = DataSource(text, "image", x, labels=y, num_classes=10, heldout=test.images, info={"heldout_labels": test.labels})
    else:
        from ..targets import available, get as get_target

        if text in available() and text != "gaussian":
            target = get_target(text)
            size = n or 100_000
            shape = target.event_shape
            x = target.sample(size, seeds=seed * 10_000_000)
            held = target.sample(n_heldout, seeds=(seed + _HELDOUT_SEED_OFFSET) * 10_000_000)
            source = DataSource(text, "vector", x.reshape((size,) + shape), heldout=held, target=target)
        else:
            path = Path(text)
            if not path.exists():
                raise ValueError(
                    f"unknown data {text!r}: not a built-in name ({', '.join(data_names())}) and no such file or folder"
                )
            loaded = load_file_data(path, key=key, max_items=n)
            labels = loaded.labels
            num_classes = int(labels.max()) + 1 if labels is not None else 0
            source = DataSource(text, loaded.kind, loaded.x, labels=labels, num_classes=num_classes, heldout=loaded.x)
    if normalize == "standardize" or (normalize == "auto" and source.kind == "vector" and Path(text).suffix):
        if source.kind == "image":
            raise ValueError("normalize='standardize' is for vector data; images are already mapped to [-1, 1]")
        mean = source.x.mean(0)
        std = source.x.std(0).clamp_min(1e-12)
        source.x = (source.x - mean) / std
        source.shift, source.scale = mean, std
    return source
