"""The 8x8 handwritten digits that scikit-learn ships (1797 images, no download), and a fixed feature space.

Images are ``(n, 1, 8, 8)`` float32 in ``[-1, 1]`` (scikit-learn's pixel values ``0 .. 16`` mapped
by ``v / 8 - 1``) with int64 labels ``0 .. 9``. The split is fixed: within each class the images are
permuted by ``numpy.random.default_rng(0)`` and the last 20% are held out (359 test images,
1438 training images).

The feature space for Frechet distances and for the "is it a recognizable digit" test is the
penultimate layer (64 features) of :class:`DigitsClassifier`, a small MLP trained once on the
training split with a fixed seed by :func:`train_digits_classifier` and shipped as
``digits_classifier.safetensors`` (about 70 KB) beside this module. ``scripts/train_digits_classifier.py``
regenerates the file.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from .._utils import check_int
from ..nn.embeddings import seeded_init

__all__ = [
    "Digits",
    "load_digits",
    "DigitsClassifier",
    "train_digits_classifier",
    "digits_classifier",
    "CLASSIFIER_FILE",
    "HELDOUT_FRACTION",
]

HELDOUT_FRACTION = 0.2
"""The fraction of each class held out for evaluation."""

CLASSIFIER_FILE = "digits_classifier.safetensors"
"""The shipped classifier's file name, beside this module."""

_SPLITS = ("train", "test", "all")


class Digits(NamedTuple):
    """Images ``(n, 1, 8, 8)`` float32 in ``[-1, 1]`` and labels ``(n,)`` int64."""

    images: torch.Tensor
    labels: torch.Tensor


def load_digits(split: str = "train") -> Digits:
    """The scikit-learn digits: ``split`` is ``"train"`` (1438), ``"test"`` (359) or ``"all"`` (1797)."""
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {list(_SPLITS)}; got {split!r}")
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError as err:  # pragma: no cover - scikit-learn is a dependency
        raise ImportError("the digits data set needs scikit-learn: pip install scikit-learn") from err
    bunch = _sk_load_digits()
    images = bunch.images.astype(np.float32) / 8.0 - 1.0
    labels = bunch.target.astype(np.int64)
    if split != "all":
        rng = np.random.default_rng(0)
        test = np.zeros(len(labels), dtype=bool)
        for k in range(10):
            idx = rng.permutation(np.flatnonzero(labels == k))
            n_test = int(round(HELDOUT_FRACTION * len(idx)))
            test[idx[len(idx) - n_test :]] = True
        keep = test if split == "test" else ~test
        images, labels = images[keep], labels[keep]
    return Digits(torch.from_numpy(images[:, None].copy()), torch.from_numpy(labels.copy()))


class DigitsClassifier(nn.Module):
    """An MLP ``64 -> 128 -> 64 -> 10`` (SiLU) on flattened digits in ``[-1, 1]``.

    :meth:`features` is the 64-wide penultimate layer (the Frechet-distance feature space);
    :meth:`forward` gives logits ``(n, 10)``. Inputs ``(n, 1, 8, 8)`` or ``(n, 64)``.
    """

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        with seeded_init(seed):
            self.body = nn.Sequential(nn.Linear(64, 128), nn.SiLU(), nn.Linear(128, 64), nn.SiLU())
            self.head = nn.Linear(64, 10)

    @staticmethod
    def _flat(x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim < 2 or x[0].numel() != 64:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"digits must have shape (n, 1, 8, 8) or (n, 64) with values in [-1, 1]; got {shape}")
        return x.reshape(x.shape[0], 64).float()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate-layer features ``(n, 64)``."""
        return self.body(self._flat(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def train_digits_classifier(seed: int = 0, epochs: int = 60, batch_size: int = 64, lr: float = 2e-3) -> DigitsClassifier:
    """Train :class:`DigitsClassifier` on the training split, deterministically from ``seed``.

    AdamW (weight decay 1e-4), cross-entropy, inputs jittered by ``N(0, 0.1^2)`` noise so that
    the features are smooth around the data; the shuffling and the noise come from
    ``torch.Generator().manual_seed(seed)``. Returns the model in eval mode.
    """
    check_int(seed, "seed", minimum=0)
    data = load_digits("train")
    x = data.images.reshape(-1, 64)
    y = data.labels
    model = DigitsClassifier(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(check_int(epochs, "epochs")):
        perm = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), batch_size):
            idx = perm[start : start + batch_size]
            xb = x[idx] + 0.1 * torch.randn(x[idx].shape, generator=gen)
            loss = nn.functional.cross_entropy(model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()


def shipped_weights(package: str, file: str, path: str | Path | None, script: str) -> dict[str, torch.Tensor]:
    """The tensors of weights file ``file`` shipped in ``package`` (or of ``path`` if given).

    A missing shipped file is a ``FileNotFoundError`` that names ``script``, which regenerates it.
    """
    from safetensors.torch import load_file

    if path is not None:
        return load_file(str(path))
    ref = resources.files(package).joinpath(file)
    with resources.as_file(ref) as found:
        if not Path(found).is_file():
            raise FileNotFoundError(f"the shipped weights {file} are missing from {package}; regenerate them with `python {script}`")
        return load_file(str(found))


def digits_classifier(path: str | Path | None = None) -> DigitsClassifier:
    """The shipped classifier (or the one saved at ``path``), in eval mode, on the CPU."""
    state = shipped_weights(__package__, CLASSIFIER_FILE, path, "scripts/train_digits_classifier.py")
    model = DigitsClassifier()
    model.load_state_dict(state)
    return model.eval()
