"""Helpers shared by CLI commands: output paths checked before any work, atomic writes, option parsing.

Every command that writes checks its outputs first, with :func:`check_output_file` (one file, e.g.
``--json``) or :func:`prepare_out_dir` (a folder of results, ``--out``): an existing file is never
replaced without ``--overwrite``, an input is never overwritten, and an unwritable place fails in
milliseconds rather than after the work.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from .._utils import atomic_write_bytes

__all__ = [
    "prepare_out_dir",
    "check_output_file",
    "check_writable",
    "atomic_write_bytes",
    "write_json",
    "save_array",
    "parse_options",
    "fresh_dir",
    "reading",
    "unpickling_message",
    "add_json_option",
    "emit",
    "deprecated_alias",
]


def check_writable(folder: str | Path, flag: str, shown: str | Path | None = None) -> None:
    """Fail now if files cannot be created in ``folder`` (existing, or to be created with its parents).

    The nearest existing folder on the way is probed by creating and removing a hidden temporary
    file, which catches what permission bits miss (read-only file systems, ``/proc``, running as root).
    ``flag`` and ``shown`` (the path as the user gave it) name the argument in the error.
    """
    folder = Path(folder)
    shown = folder if shown is None else shown
    probe = folder
    while not os.path.lexists(probe) and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        what = "it is a file" if probe == Path(shown) else f"{probe} is a file, not a folder"
        raise ValueError(f"{flag} {shown}: {what}; choose a path whose folders are folders")
    try:
        fd, tmp = tempfile.mkstemp(dir=probe, prefix=".sdeflow-write-check-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as err:
        raise ValueError(
            f"{flag} {shown}: cannot create files in {probe} ({err.strerror or err}); choose a writable location"
        ) from err


def check_output_file(
    path: str | Path | None, flag: str, *, overwrite: bool, inputs: Iterable[str | Path | None] = ()
) -> Path | None:
    """Check an output file before any work; returns it as a Path (``None`` stays ``None``).

    Refuses a folder, one of the command's ``inputs`` (even with ``overwrite``), an existing file
    without ``overwrite``, and a place where no file can be created.
    """
    if path is None:
        return None
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a folder; expected a file name, e.g. {path / 'report.json'}")
    if path.exists():
        for source in inputs:
            if source is not None and Path(source).exists() and os.path.samefile(source, path):
                raise ValueError(f"{flag} {path} is also an input of this command; writing it would destroy the input: choose another name")
        if not overwrite:
            raise FileExistsError(f"{flag} {path} already exists; pass --overwrite to replace it, or choose another name")
    check_writable(path.parent, flag, path)
    return path


def unpickling_message(err: BaseException) -> str:
    """Why torch refused a ``.pt`` file (``weights_only=True``), in one line without torch's advice to run its code."""
    from ..data.files import PickledFileError, unpickling_detail

    detail = err.detail if isinstance(err, PickledFileError) else unpickling_detail(err)
    return (
        f"holds pickled Python objects, not only tensors ({detail}); sdeflow loads .pt files without running code "
        "(torch.load with weights_only=True) and refuses it: save plain tensors, a dict of tensors, or use .npy/.npz"
    )


@contextlib.contextmanager
def reading(path: str | Path | None, flag: str) -> Iterator[None]:
    """Turn a refused pickle in input file ``path`` into a ValueError naming ``flag`` and the file."""
    from ..data.files import PickledFileError

    try:
        yield
    except (pickle.UnpicklingError, PickledFileError) as err:
        raise ValueError(f"{flag} {path} {unpickling_message(err)}") from err


def fresh_dir(prefix: str) -> Path:
    """A new folder ``./{prefix}-N`` under the working directory that does not exist yet."""
    check_writable(Path.cwd(), "--out", f"(default: ./{prefix}-N)")
    i = 1
    while True:
        path = Path.cwd() / f"{prefix}-{i}"
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            i += 1


def prepare_out_dir(
    out: str | Path | None,
    prefix: str,
    names: Iterable[str],
    overwrite: bool,
    *,
    flag: str = "--out",
    patterns: Iterable[str] = (),
) -> Path:
    """The output folder, checked before any work: ``out`` (created if needed) or a fresh ``./{prefix}-N``.

    ``names`` are the files and folders the command writes there, ``patterns`` globs of further
    ones (e.g. ``samplers_*.png``). Existing ones are refused unless ``overwrite`` is set, so no file
    is lost silently; a file in place of the folder, or a folder where nothing can be created, is
    refused too.
    """
    if out is None:
        return fresh_dir(prefix)
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {out} is a file; expected a folder (a new one, or one this command wrote before)")
    check_writable(path, flag, out)
    clashes = [n for n in names if os.path.lexists(path / n)]
    if path.is_dir():
        for pattern in patterns:
            clashes += sorted(p.name for p in path.glob(pattern) if p.name not in clashes)
    if clashes and not overwrite:
        raise FileExistsError(f"{flag} {out} already holds {clashes}; pass --overwrite to replace them, or choose another folder")
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_action_flags(args: Any, command: str, only: dict[str, Iterable[str]]) -> None:
    """Refuse flags of another action of an ``ACTION`` command (``sdeflow finance train|sample``): each
    action's flags default to ``None``, so a flag that belongs to another action is a mistake, not ignored.

    ``only`` maps each action to the ``dest`` names of its own flags; ``args.action`` is the chosen one.
    """
    for action, names in only.items():
        if action == args.action:
            continue
        given = [name for name in names if getattr(args, name, None) is not None]
        if given:
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            raise ValueError(f"{flags} belong(s) to 'sdeflow {command} {action}', not to '{args.action}'")

def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def save_array(path: Path, x: torch.Tensor, **extra: Any) -> None:
    """Save samples as ``.npz`` (key ``samples``) or ``.pt`` by the file's suffix, atomically."""
    import numpy as np
    import torch

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


def parse_options(items: list[str] | None, flag: str = "-o/--option", example: str = "eta=0.5") -> dict[str, Any]:
    """``["eta=0.5", "order=2", "flag=true", "mean=0,1"]`` -> ``{"eta": 0.5, "order": 2, "flag": True, "mean": [0, 1]}``.

    A comma-separated list of numbers becomes a list. ``flag`` and ``example`` name the argument in errors.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item or not item.split("=", 1)[0].strip():
            raise ValueError(f"{flag} {item!r} must look like NAME=VALUE (e.g. {flag.split('/')[-1]} {example})")
        key, raw = item.split("=", 1)
        value: Any
        low = raw.lower()
        if low in ("true", "false"):
            value = low == "true"
        elif low in ("none", "null"):
            value = None
        elif "," in raw:
            parts = [_number(v) for v in raw.split(",")]
            value = parts if all(not isinstance(v, str) for v in parts) else raw
        else:
            value = _number(raw)
        out[key.strip()] = value
    return out


def _number(raw: str) -> int | float | str:
    """``"2"`` -> 2, ``"0.5"`` -> 0.5, anything else unchanged."""
    try:
        return int(raw)
    except ValueError:
        try:
            return float(raw)
        except ValueError:
            return raw


# ---- the shared output options ------------------------------------------------------------------
JSON_HELP = ("print the report as JSON on stdout instead of the text (for scripts); with FILE, write it to FILE "
             "as well as printing the text")


def add_json_option(parser: Any, help: str = JSON_HELP) -> None:
    """``--json [FILE]``: the one meaning of ``--json`` in every command (see :func:`emit`)."""
    parser.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE", help=help)


def json_file(args: Any) -> Path | None:
    """The file of ``--json FILE`` (``None`` for no ``--json`` or ``--json`` alone, which prints to stdout)."""
    value = getattr(args, "json", None)
    return None if value in (None, "-") else Path(value)


def _plain(obj: Any) -> Any:
    """JSON-ready: tensors and numpy values as numbers or lists, NaN and infinities as null, paths as strings."""
    import math

    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, Path):
        return str(obj)
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        return _plain(tolist())
    return str(obj)


def emit(args: Any, report: Any, text: str | None = None) -> None:
    """The one way a command gives its result.

    * ``--json`` alone: ``report`` as JSON on stdout and nothing else there (the command's other
      prints are discarded while it runs), so ``sdeflow CMD --json | jq`` works;
    * ``--json FILE``: ``report`` written to FILE, and ``text`` printed;
    * neither: ``text`` printed (nothing under ``--quiet``).
    """
    target = getattr(args, "json", None)
    if target == "-":
        out = getattr(args, "_stdout", None) or sys.stdout
        out.write(json.dumps(_plain(report), indent=2, sort_keys=True) + "\n")
        out.flush()
        return
    if target is not None:
        write_json(Path(target), _plain(report))
    if text:
        print(text)


class _DeprecatedAlias(argparse.Action):
    """An old spelling of an option: sets the new one's ``dest`` and warns on stderr to use ``new``."""

    def __init__(self, option_strings, dest, *, new: str, flag: bool = False, **kwargs):
        self.new = new
        self.flag = flag
        super().__init__(option_strings, dest, nargs=0 if flag else None, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: warning: {option_string} is deprecated and will be removed; use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, True if self.flag else values)


def deprecated_alias(parser: Any, old: str, new: str, dest: str, *, flag: bool = False, **kwargs: Any) -> None:
    """Accept ``old`` as a hidden, deprecated spelling of ``new`` (the same ``dest``); ``flag``: a store_true option."""
    parser.add_argument(old, dest=dest, action=_DeprecatedAlias, new=new, flag=flag, help=argparse.SUPPRESS,
                        default=argparse.SUPPRESS, **kwargs)
