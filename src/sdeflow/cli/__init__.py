"""The ``sdeflow`` command line. Thin: it parses, validates and calls the library.

Each command group is a module of this package defining ``register(subparsers)``; modules are
discovered automatically, so adding a command is adding one file.
"""

from __future__ import annotations

import argparse
import importlib
import pickle
import pkgutil
import re
import sys
from typing import Sequence

from ._common import unpickling_message

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every discovered subcommand."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="sdeflow",
        description="Noise to data with stochastic and ordinary differential equations.",
    )
    parser.add_argument("--version", action="version", version=f"sdeflow {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sdeflow`` console script; returns the exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and getattr(args, "pass_through", False):
        # A command that hands its arguments to another parser (``bench NAME ...``) takes them verbatim.
        args.args = list(getattr(args, "args", [])) + extra
        extra = []
    if extra:
        # Report a stray argument as the command's own error line (``sdeflow COMMAND: error: ...``, exit 2)
        # with the command's usage, not the top-level parser's.
        command = _subparsers(parser).get(getattr(args, "command", None) or "", parser)
        command.error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except USER_ERRORS as err:
        print(f"sdeflow {args.command}: error: {_describe(err)}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as err:
        if not _out_of_memory(err):
            raise  # a bug: keep its traceback
        print(f"sdeflow {args.command}: error: {_describe_memory(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        detail = f": {err}" if str(err) else ""
        print(f"sdeflow {args.command}: interrupted{detail}", file=sys.stderr)
        return 130
    return int(result or 0)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The command parsers of ``parser`` by name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


# Errors that mean "the input or the environment is wrong", never "sdeflow is wrong": the library
# raises ValueError/TypeError for bad arguments (DESIGN.md), OSError covers files and folders that
# cannot be read or written, UnpicklingError a .pt file holding more than tensors, FloatingPointError
# a training run that diverged. They end as one line and exit code 2; anything else is a bug and keeps
# its traceback.
USER_ERRORS = (ValueError, TypeError, OSError, pickle.UnpicklingError, FloatingPointError)


def _describe(err: BaseException) -> str:
    """The one-line message of a user error."""
    if isinstance(err, pickle.UnpicklingError):
        return f"a .pt input {unpickling_message(err)}"
    if isinstance(err, OSError) and err.strerror and err.filename is not None and str(err).startswith("[Errno"):
        target = f"{err.filename!s}" + (f" -> {err.filename2!s}" if err.filename2 else "")
        return f"{target}: {err.strerror}"
    return str(err) or type(err).__name__


def _out_of_memory(err: BaseException) -> bool:
    """An allocation the machine cannot serve (CPU or GPU): the request was too large, not a bug."""
    import torch

    if isinstance(err, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(err)
    return "can't allocate memory" in text or "out of memory" in text.lower()


def _describe_memory(err: BaseException) -> str:
    match = re.search(r"tried to allocate (\d+) bytes|tried to allocate ([0-9.]+ [KMGT]iB)", str(err), re.IGNORECASE)
    size = None
    if match:
        size = f"{int(match.group(1)) / 2**30:.3g} GiB" if match.group(1) else match.group(2)
    asked = f" ({size} in one piece)" if size else ""
    return (
        f"not enough memory{asked}; ask for less: fewer samples, paths, points or grid cells (--n, --paths, "
        "--chunk, --cells, --batch-size) or a smaller network"
    )
