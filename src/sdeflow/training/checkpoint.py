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
new one is in place, each first renamed to a hidden name and then deleted; only checkpoints older
than the new one are pruned, so a save never deletes the checkpoint it has just written. Reading a run folder
takes the newest ``step_*`` folder; temporary folders of an interrupted write are ignored and
cleaned up by the next save. No pickle is involved anywhere (weights are safetensors, the
rest JSON), so loading a checkpoint runs no code, and :func:`load_checkpoint_model` checks the
network that ``config.json`` describes against the tensor shapes stored in the weights file (read
from the safetensors header, without loading) before it allocates the network: a crafted config
cannot make it allocate more memory than the weights file holds.

A run folder belongs to one run: :func:`check_run_dir` refuses to start a new run in a folder that
already holds one (its ``checkpoints``, ``samples`` or ``metrics.jsonl``) unless told to resume it
or to replace it (:func:`clear_run`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

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
    "check_run_dir",
    "check_config_against_weights",
    "clear_run",
    "CHECKPOINT_FILES",
    "RUN_ENTRIES",
]

CHECKPOINT_FILES = ("model.safetensors", "ema.safetensors", "optimizer.safetensors", "config.json", "metrics.json", "state.json")
RUN_ENTRIES = ("checkpoints", "samples", "metrics.jsonl")
"""What a training run writes into its folder (and what :func:`clear_run` removes)."""
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
        # Prune only checkpoints older than this one: the newest keep - 1 of them stay, and the one just
        # written is never a candidate (a folder shared with another run must not cost this run its save).
        older = [path for key, path in _checkpoint_dirs(root) if path != final and key < _dir_key(final)]
        for old in older[: max(0, len(older) - (keep - 1))]:
            trash = root / f".tmp-trash-{old.name}-{os.getpid()}"
            os.rename(old, trash)
            shutil.rmtree(trash, ignore_errors=True)
    return final


def _dir_key(path: Path) -> tuple[int, int]:
    m = _STEP_DIR.match(path.name)
    return (int(m.group(1)), int(m.group(2) or 0))


# ------------------------------------------------------------------------------------ run folders
def _run_entries(path: Path) -> list[str]:
    return [name for name in RUN_ENTRIES if os.path.lexists(path / name)]


def check_run_dir(path: str | Path, *, resume: bool = False, overwrite: bool = False, name: str = "out_dir") -> Path:
    """Check that a training run may write into folder ``path``, before any work; returns it as a Path.

    A new run (``resume=False``) needs a folder that does not exist, is empty, or holds none of a
    run's files (:data:`RUN_ENTRIES`); an existing run is refused unless ``overwrite`` is set (the
    trainer then removes the old run's files with :func:`clear_run` when it starts). ``name`` is how
    errors name the folder (``"--out"`` for the command line). Nothing is created or deleted here.

    Raises:
        ValueError: ``path`` or one of its parents is a file.
        FileExistsError: ``path`` holds a run and neither ``resume`` nor ``overwrite`` is set.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{name} {path} is a file; expected a run folder (a new one, or one written by a training run)")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise ValueError(f"{name} {path}: {parent} is a file, not a folder; choose a run folder inside a folder")
    if resume or not path.is_dir():
        return path
    found = _run_entries(path)
    if found and not overwrite:
        dirs = _checkpoint_dirs(path / "checkpoints")
        held = f"checkpoints up to step {dirs[-1][0][0]}" if dirs else "files of a run"
        flag = "--resume" if name.startswith("--") else "resume=True"
        again = "--overwrite" if name.startswith("--") else "overwrite=True"
        raise FileExistsError(
            f"{name} {path} already holds a run ({held}: {', '.join(found)}); continue it with {flag}, "
            f"replace it with {again} (its files are deleted), or choose a new folder"
        )
    return path


def clear_run(path: str | Path) -> list[str]:
    """Delete the files of the run in folder ``path`` (:data:`RUN_ENTRIES`); returns the names removed.

    Other files in the folder are left alone. Each entry is first renamed to a hidden name, so a kill
    midway leaves no half-deleted checkpoint that a reader could take for a complete one.
    """
    path = Path(path)
    removed = []
    for entry in _run_entries(path):
        target = path / entry
        trash = path / f".tmp-trash-{entry}-{os.getpid()}"
        os.rename(target, trash)
        if trash.is_dir() and not trash.is_symlink():
            shutil.rmtree(trash)
        else:
            trash.unlink()
        removed.append(entry)
    _fsync_dir(path)
    return removed


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
    _check_layout(folder, out["config"], out["metrics"], out["state"])
    return Checkpoint(folder, out["config"], out["metrics"], out["state"])


def _is_numbers(value: Any) -> bool:
    """A number or a (nested) list of numbers, as a stored normalization shift or scale is."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    return isinstance(value, list) and len(value) > 0 and all(_is_numbers(v) for v in value)


def _check_layout(folder: Path, config: Any, metrics: Any, state: Any) -> None:
    """The JSON files hold what training writes, so that readers fail here with a message, not with a KeyError."""

    def damaged(file: str, what: str) -> ValueError:
        return ValueError(f"{folder / file}: {what}; the checkpoint is damaged (or not written by sdeflow training)")

    if not isinstance(config, dict):
        raise damaged("config.json", f"expected a JSON object; got {type(config).__name__}")
    for key in ("process", "model", "data"):
        if not isinstance(config.get(key), dict):
            raise damaged("config.json", f"expected an object under {key!r}; got {type(config.get(key)).__name__}")
    net = config["model"].get("net")
    if not (isinstance(net, dict) and isinstance(net.get("kind"), str) and isinstance(net.get("config"), dict)):
        raise damaged("config.json", 'expected model.net = {"kind": ..., "config": {...}}')
    data = config["data"]
    shape = data.get("event_shape")
    if not (isinstance(shape, list) and shape and all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape)):
        raise damaged("config.json", f"data.event_shape must be a list of integers >= 1; got {shape!r}")
    transform = data.get("transform")
    if transform is not None and not (
        isinstance(transform, dict) and _is_numbers(transform.get("shift")) and _is_numbers(transform.get("scale"))
    ):
        raise damaged("config.json", f"data.transform must be null or {{'shift': numbers, 'scale': numbers}}; got {transform!r}")
    if not isinstance(metrics, dict):
        raise damaged("metrics.json", f"expected a JSON object; got {type(metrics).__name__}")
    step = state.get("step") if isinstance(state, dict) else None
    if not (isinstance(step, int) and not isinstance(step, bool) and step >= 0):
        raise damaged("state.json", f"expected an object with an integer 'step' >= 0; got {state if not isinstance(state, dict) else step!r}")


def process_from_config(config: dict[str, Any]):
    """Rebuild the process of a checkpoint's ``config["process"]`` ``{"name", "config"}``."""
    from ..processes import DiscreteVP, get as get_process

    try:
        spec = config["process"]
        name, options = spec["name"], dict(spec["config"])
        if name == "discrete_vp":
            return DiscreteVP(**options)
        return get_process(name, **options)
    except (KeyError, TypeError) as err:
        raise ValueError(
            f"the checkpoint's process configuration is malformed ({type(err).__name__}: {err}); expected "
            '"process": {"name": ..., "config": {...}} as written by training; the checkpoint is damaged'
        ) from err


def _stored_shapes(file: Path) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the tensors in a safetensors file, read from its header (no tensor is loaded)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(file), framework="pt") as fh:
            return {key: tuple(fh.get_slice(key).get_shape()) for key in fh.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{file}: not a readable safetensors file ({err}); the checkpoint is damaged") from err


@contextlib.contextmanager
def _bounded_construction(max_tensors: int, max_modules: int, what: str) -> Iterator[None]:
    """Abort building a network once it registers more tensors or modules than the weights file could fill.

    A config's sizes (width, depth, ...) are checked on a ``meta``-device skeleton, which allocates
    no memory; this bound keeps even the skeleton's Python objects proportional to the file.
    """
    from torch.nn.modules import module as module_hooks

    counts = {"tensors": 0, "modules": 0}

    def count(kind: str, limit: int):
        def hook(*_):
            counts[kind] += 1
            if counts[kind] > limit:
                raise ValueError(
                    f"{what}: the network it describes has more than {limit} {kind}, far more than the weights file "
                    "stores; refusing to build it (the config does not belong to these weights, or was crafted): "
                    "use the config.json written with them"
                )

        return hook

    handles = [
        module_hooks.register_module_parameter_registration_hook(count("tensors", max_tensors)),
        module_hooks.register_module_buffer_registration_hook(count("tensors", max_tensors)),
        module_hooks.register_module_module_registration_hook(count("modules", max_modules)),
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _shape_list(items: list[str], limit: int = 4) -> str:
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def check_config_against_weights(ckpt: Checkpoint, *, ema: bool = True, process=None) -> None:
    """Refuse a checkpoint whose ``config.json`` describes another network than its weights file stores.

    The network of ``config["model"]`` is built as a skeleton on the ``meta`` device (no memory) and
    every tensor's shape is compared with the shapes in the safetensors header of the weights file
    (read without loading); the data's ``event_shape`` must be the network's. Only then may the caller
    allocate the network: its size is bounded by the file's.

    Raises:
        ValueError: the config is malformed, or a tensor is missing, unexpected or of another shape.
    """
    from .model import DiffusionModel

    file = ckpt.path / ("ema.safetensors" if ema else "model.safetensors")
    stored = _stored_shapes(file)
    if process is None:
        process = process_from_config(ckpt.config)
    where = f"{ckpt.path / 'config.json'}"
    n = len(stored)
    try:
        with _bounded_construction(2 * n + 64, 4 * n + 256, where), torch.device("meta"):
            skeleton = DiffusionModel.from_config(ckpt.config["model"], process)
    except (KeyError, TypeError) as err:
        raise ValueError(f"{where}: the model section is malformed ({type(err).__name__}: {err}); the checkpoint is damaged") from err
    expected = {key: tuple(t.shape) for key, t in skeleton.net.state_dict().items()}
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    wrong = sorted(k for k in set(expected) & set(stored) if expected[k] != stored[k])
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            parts.append("shapes differ: " + _shape_list([f"{k} {list(expected[k])} in config.json, {list(stored[k])} stored" for k in wrong]))
        if missing:
            parts.append("not stored: " + _shape_list(missing))
        if unexpected:
            parts.append("stored but not in the network: " + _shape_list(unexpected))
        raise ValueError(
            f"{where} describes another network than {file.name} holds ({'; '.join(parts)}); the config does not "
            "belong to these weights: use the config.json written with them"
        )
    net_cfg = ckpt.config["model"].get("net", {})
    kind, cfg = net_cfg.get("kind"), net_cfg.get("config", {})
    if kind in ("mlp", "masked"):  # a MaskedNet's event_shape is the state's (its inner network sees the mask too)
        net_shape = list(cfg.get("event_shape", []))
    elif kind == "unet":
        net_shape = [cfg.get("in_channels"), *list(cfg.get("image_size", []))]
    else:
        net_shape = None
    data_shape = ckpt.config.get("data", {}).get("event_shape")
    if net_shape is not None and (not isinstance(data_shape, list) or list(data_shape) != net_shape):
        raise ValueError(
            f"{where}: data event_shape {data_shape} differs from the network's {net_shape}; the checkpoint is damaged"
        )


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
    check_config_against_weights(ckpt, ema=ema, process=process)
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
    stats: dict[str, Any] | None = None,
    **solver_options: Any,
):
    """Draw ``n`` samples from a checkpoint with any registered solver, mapped back to data space.

    Sample ``i`` starts from ``process.prior_sample`` with seed ``seed + i`` (its Brownian path too,
    for stochastic solvers). ``solver=None``: :func:`sdeflow.sample`'s default configuration. With ``label`` (class-conditional models) the samples are of that class,
    with classifier-free guidance ``guidance``. Returns ``(n, *event_shape)`` samples, or
    ``(samples, trajectory, ts)`` with ``return_trajectory`` (the trajectory in model space). A ``stats``
    dict receives the model calls per sample (``nfe``) and the steps taken. A consistency checkpoint
    (``sdeflow distill --method cd``, ``train --objective ct|ect``) is sampled as its consistency
    function, with ``solver="consistency"`` unless another solver is named.
    """
    from ..data.sources import transform_to_data
    from .evaluation import draw_samples

    model, process, prediction, config = load_checkpoint_model(path, ema=ema, device=device)
    if label is not None and model.num_classes == 0:
        raise ValueError("label= needs a class-conditional model; this checkpoint's network is unconditional")
    objective = config.get("objective") or {}
    from ..distill.runs import CONSISTENCY_OBJECTIVES

    if objective.get("name") in CONSISTENCY_OBJECTIVES:
        # A consistency model (CD, CT, ECT): its backbone wrapped in the boundary parameterization it was
        # trained with, sampled by the consistency solver unless another is named.
        from ..distill.consistency import ConsistencyFunction

        if label is not None:
            raise ValueError("label= is not available for consistency models (their students are unconditional)")
        model = ConsistencyFunction(model, process, prediction=prediction, sigma_data=objective["sigma_data"],
                                    t_min=objective["t_min"]).eval()
        solver = solver or "consistency"
    out = draw_samples(
        model, process, config["data"]["event_shape"], n, solver=solver, steps=steps, nfe=nfe, seed=seed,
        label=label, guidance=guidance, return_trajectory=return_trajectory, device=device, stats=stats, **solver_options,
    )
    transform = config["data"].get("transform")
    if return_trajectory:
        return transform_to_data(out[0], transform), out[1], out[2]
    return transform_to_data(out, transform)
