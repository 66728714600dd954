"""The ``sdeflow`` command line. Thin: it parses, validates and calls the library.

Each command group is a module of this package defining ``register(subparsers)``; modules are
discovered automatically, so adding a command is adding one file.
"""

from __future__ import annotations

import argparse
import importlib
import pickle
import pkgutil
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
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except USER_ERRORS as err:
        print(f"sdeflow {args.command}: error: {_describe(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        detail = f": {err}" if str(err) else ""
        print(f"sdeflow {args.command}: interrupted{detail}", file=sys.stderr)
        return 130
    return int(result or 0)


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
