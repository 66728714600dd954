"""The ``sdeflow`` command line. Thin: it parses, validates and calls the library.

Each command group is a module of this package defining ``register(subparsers)``; modules are
discovered automatically, so adding a command is adding one file.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from typing import Sequence

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
    except (ValueError, TypeError, FileNotFoundError, FileExistsError) as err:
        print(f"sdeflow {args.command}: error: {err}", file=sys.stderr)
        return 2
    return int(result or 0)
