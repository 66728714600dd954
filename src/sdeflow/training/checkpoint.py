"""Checkpoints: safetensors weights, a JSON config and a metrics card, written atomically.

A run folder holds ``checkpoints/step_<8-digit step>/`` folders (e.g. ``step_00001500/``), each complete on its own:

==========================  ================================================================
``model.safetensors``       the network's weights (as trained)
``ema.safetensors``         the exponential moving average of the weights (used to sample)
``optimizer.safetensors``   the optimizer's tensors (AdamW moments), for exact resume
``config.json``             process, model (network kind and arguments), prediction, objective,
                            data (event shape, normalization, classes), training options
``metrics.json``            the card: step, loss, throughput, latest evaluation metrics
``state.json``              step, EMA counters, optimizer hyperparameters, loss history
==========================  ================================================================

Atomicity: a checkpoint is written into a hidden temporary folder (every file flushed and
fsynced), then renamed to its final name in one ``os.rename`` and the parent folder fsynced.
A ``step_*`` folder therefore always holds a complete checkpoint: a kill at any moment leaves
either the previous checkpoints only, or the new one too. Old checkpoints are pruned after the
new one is in place, each first renamed to a hidden name and then deleted. Reading a run folder
takes the newest ``step_*`` folder; temporary folders of an interrupted write are ignored and
cleaned up by the next save. No pickle is involved anywhere (weights are safetensors, the
rest JSON), so loading a checkpoint runs no code.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "Checkpoint",
    "save_checkpoint",
    "read_checkpoint",
    "resolve_checkpoint",
    "load_checkpoint_model",
    "sample_checkpoint",
    "process_from_config",
    "CHECKPOINT_FILES",
]

CHECKPOINT_FILES = ("model.safetensors", "ema.safetensors", "optimizer.safetensors", "config.json", "metrics.json", "state.json")
_STEP_DIR = re.compile(r"^step_(\d{8,})(?:-(\d+))?$")


# ------------------------------------------------------------------------------------ low level
def _write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` and force it to disk (flush + fsync)."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n").encode()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, torch.dtype):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint's JSON")


def _tensors_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    from safetensors.torch import save

    return save({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()})


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable safetensors file ({err}); the checkpoint is damaged") from err


def _optimizer_payload(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into tensors (safetensors) and the rest (JSON)."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entry in sd["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{name}"] = value
            else:
                scalars.setdefault(str(idx), {})[name] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _optimizer_state_dict(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    for idx, entry in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(entry)
    return {"state": state, "param_groups": meta["param_groups"]}


# ------------------------------------------------------------------------------------ saving
def _checkpoint_dirs(root: Path) -> list[tuple[tuple[int, int], Path]]:
    found = []
    if root.is_dir():
        for child in root.iterdir():
            m = _STEP_DIR.match(child.name)
            if m and child.is_dir():
                found.append(((int(m.group(1)), int(m.group(2) or 0)), child))
    return sorted(found)


def save_checkpoint(
    run_dir: str | Path,
    *,
    step: int,
    model: nn.Module,
    ema_model: nn.Module | None,
    optimizer: torch.optim.Optimizer | None,
    config: dict[str, Any],
    metrics: dict[str, Any],
    state: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Write a complete checkpoint of ``step`` under ``run_dir/checkpoints`` atomically; returns its folder.

    ``model`` and ``ema_model`` are the networks whose ``state_dict`` is saved (for a
    :class:`~sdeflow.training.DiffusionModel`, pass its ``.net``). ``keep`` newest checkpoints stay.
    """
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-*"):  # leftovers of an interrupted save
        shutil.rmtree(stale, ignore_errors=True)
    name = f"step_{step:08d}"
    existing = [key for key, _ in _checkpoint_dirs(root) if key[0] == step]
    if existing:
        name += f"-{max(k[1] for k in existing) + 1}"
    tmp = root / f".tmp-{name}-{os.getpid()}"
    tmp.mkdir()
    _write_bytes(tmp / "model.safetensors", _tensors_bytes(model.state_dict()))
    ema_source = ema_model if ema_model is not None else model
    _write_bytes(tmp / "ema.safetensors", _tensors_bytes(ema_source.state_dict()))
    opt_meta: dict[str, Any] = {}
    if optimizer is not None:
        opt_tensors, opt_meta = _optimizer_payload(optimizer)
    else:
        opt_tensors = {}
    _write_bytes(tmp / "optimizer.safetensors", _tensors_bytes(opt_tensors))
    _write_bytes(tmp / "config.json", _json_bytes(config))
    _write_bytes(tmp / "metrics.json", _json_bytes(metrics))
    _write_bytes(tmp / "state.json", _json_bytes({**state, "step": step, "optimizer": opt_meta}))
    _fsync_dir(tmp)
    final = root / name
    os.rename(tmp, final)
    _fsync_dir(root)
    if keep > 0:
        for _, old in _checkpoint_dirs(root)[:-keep]:
            trash = root / f".tmp-trash-{old.name}-{os.getpid()}"
            os.rename(old, trash)
            shutil.rmtree(trash, ignore_errors=True)
    return final


# ------------------------------------------------------------------------------------ reading
def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint folder for ``path``: a ``step_*`` folder, a ``checkpoints`` folder or a run folder.

    For the latter two, the newest complete checkpoint.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint path {str(path)!r} does not exist")
    if (path / "config.json").is_file() and (path / "ema.safetensors").is_file():
        return path
    for root in (path / "checkpoints", path):
        dirs = _checkpoint_dirs(root)
        if dirs:
            return dirs[-1][1]
    raise FileNotFoundError(
        f"no checkpoint in {str(path)!r}: expected a folder with config.json and ema.safetensors, "
        "or a run folder with checkpoints/step_* inside (written by `sdeflow train`)"
    )


@dataclass
class Checkpoint:
    """A checkpoint read from disk: its folder, config, metrics card and training state."""

    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any]
    state: dict[str, Any]

    @property
    def step(self) -> int:
        """The training step it was taken at."""
        return int(self.state["step"])

    def weights(self, ema: bool = True) -> dict[str, torch.Tensor]:
        """The network's state dict (EMA weights by default)."""
        return _load_tensors(self.path / ("ema.safetensors" if ema else "model.safetensors"))

    def optimizer_state(self) -> dict[str, Any]:
        """The optimizer state dict, for ``optimizer.load_state_dict``."""
        return _optimizer_state_dict(_load_tensors(self.path / "optimizer.safetensors"), self.state["optimizer"])


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read the checkpoint at ``path`` (see :func:`resolve_checkpoint`)."""
    folder = resolve_checkpoint(path)
    out = {}
    for name in ("config", "metrics", "state"):
        file = folder / f"{name}.json"
        try:
            out[name] = json.loads(file.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"{file}: not readable JSON ({err}); the checkpoint is damaged") from err
    return Checkpoint(folder, out["config"], out["metrics"], out["state"])


def process_from_config(config: dict[str, Any]):
    """Rebuild the process of a checkpoint's ``config["process"]`` ``{"name", "config"}``."""
    from ..processes import DiscreteVP, get as get_process

    spec = config["process"]
    if spec["name"] == "discrete_vp":
        return DiscreteVP(**spec["config"])
    return get_process(spec["name"], **spec["config"])


def load_checkpoint_model(path: str | Path, *, ema: bool = True, device: str | torch.device = "cpu"):
    """Everything needed to sample from a checkpoint: ``(model, process, prediction, config)``.

    Args:
        path: a checkpoint folder, or a run folder (its newest checkpoint).
        ema: load the EMA weights (default) or the raw ones.
        device: where the model goes.

    Returns:
        ``model``: a :class:`~sdeflow.training.DiffusionModel` in eval mode, callable as
        ``model(x, t)`` (``model(x, t, y)`` with class labels; see ``model.guided``);
        ``process``: its :class:`~sdeflow.processes.DiffusionProcess`; ``prediction``: its kind;
        ``config``: the checkpoint's config (``config["data"]`` has ``event_shape``, the
        normalization ``transform`` and ``num_classes``).
    """
    from .model import DiffusionModel

    ckpt = read_checkpoint(path)
    process = process_from_config(ckpt.config)
    model = DiffusionModel.from_config(ckpt.config["model"], process)
    try:
        model.net.load_state_dict(ckpt.weights(ema=ema))
    except RuntimeError as err:
        raise ValueError(f"{ckpt.path}: the weights do not match the network in config.json ({err})") from err
    model = model.to(device).eval().requires_grad_(False)
    return model, process, model.prediction, ckpt.config


def sample_checkpoint(
    path: str | Path,
    n: int,
    *,
    solver: str | None = "heun",
    steps: int | None = None,
    nfe: int | None = None,
    seed: int = 0,
    label: int | None = None,
    guidance: float = 1.0,
    ema: bool = True,
    device: str | torch.device = "cpu",
    return_trajectory: bool = False,
    **solver_options: Any,
):
    """Draw ``n`` samples from a checkpoint with any registered solver, mapped back to data space.

    Sample ``i`` starts from ``process.prior_sample`` with seed ``seed + i`` (its Brownian path too,
    for stochastic solvers). ``solver=None``: :func:`sdeflow.sample`'s default configuration. With ``label`` (class-conditional models) the samples are of that class,
    with classifier-free guidance ``guidance``. Returns ``(n, *event_shape)`` samples, or
    ``(samples, trajectory, ts)`` with ``return_trajectory`` (the trajectory in model space).
    """
    from ..data.sources import transform_to_data
    from .evaluation import draw_samples

    model, process, _, config = load_checkpoint_model(path, ema=ema, device=device)
    if label is not None and model.num_classes == 0:
        raise ValueError("label= needs a class-conditional model; this checkpoint's network is unconditional")
    out = draw_samples(
        model, process, config["data"]["event_shape"], n, solver=solver, steps=steps, nfe=nfe, seed=seed,
        label=label, guidance=guidance, return_trajectory=return_trajectory, device=device, **solver_options,
    )
    transform = config["data"].get("transform")
    if return_trajectory:
        return transform_to_data(out[0], transform), out[1], out[2]
    return transform_to_data(out, transform)
