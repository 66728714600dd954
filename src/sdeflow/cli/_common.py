"""Helpers shared by CLI commands: output folders that never lose a file, atomic writes, option parsing."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["prepare_out_dir", "atomic_write_bytes", "write_json", "save_array", "parse_options", "fresh_dir"]


def fresh_dir(prefix: str) -> Path:
    """A new folder ``./{prefix}-N`` under the working directory that does not exist yet."""
    i = 1
    while True:
        path = Path.cwd() / f"{prefix}-{i}"
        if not path.exists():
            path.mkdir(parents=True)
            return path
        i += 1


def prepare_out_dir(out: str | None, prefix: str, names: list[str], overwrite: bool) -> Path:
    """The output folder: ``out`` (created if needed) or a fresh one.

    Refuses to overwrite existing result files unless ``overwrite`` is set, so no file is lost silently.
    """
    if out is None:
        return fresh_dir(prefix)
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"--out {out} exists and is not a folder")
    path.mkdir(parents=True, exist_ok=True)
    clashes = [n for n in names if (path / n).exists()]
    if clashes and not overwrite:
        raise FileExistsError(f"--out {out} already holds {clashes}; pass --overwrite or choose another folder")
    return path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (never a half-written file)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def save_array(path: Path, x: torch.Tensor, **extra: Any) -> None:
    """Save samples as ``.npz`` (key ``samples``) or ``.pt`` by the file's suffix, atomically."""
    path = Path(path)
    arr = x.detach().cpu()
    if path.suffix == ".npz":
        import io

        buf = io.BytesIO()
        np.savez(buf, samples=arr.numpy(), **{k: np.asarray(v) for k, v in extra.items()})
        atomic_write_bytes(path, buf.getvalue())
    elif path.suffix == ".pt":
        import io

        buf = io.BytesIO()
        torch.save({"samples": arr, **extra}, buf)
        atomic_write_bytes(path, buf.getvalue())
    else:
        raise ValueError(f"unknown sample format {path.suffix!r}; expected .npz or .pt")


def parse_options(items: list[str] | None) -> dict[str, Any]:
    """``["eta=0.5", "order=2", "flag=true"]`` -> ``{"eta": 0.5, "order": 2, "flag": True}``."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"solver option {item!r} must look like NAME=VALUE (e.g. eta=0.5)")
        key, raw = item.split("=", 1)
        value: Any
        low = raw.lower()
        if low in ("true", "false"):
            value = low == "true"
        elif low in ("none", "null"):
            value = None
        else:
            try:
                value = int(raw)
            except ValueError:
                try:
                    value = float(raw)
                except ValueError:
                    value = raw
        out[key.strip()] = value
    return out
