"""The ``sdeflow`` command line. Thin: it parses, validates and calls the library.

Each command group is a module of this package defining ``register(subparsers)``; modules are
discovered automatically, so adding a command is adding one file. What every command shares (lazy
loading, ``--threads``, ``--quiet``, ``--json``, help with defaults, clean exits on a closed pipe or
Ctrl-C) lives in :mod:`._app` and :mod:`._common`; docs/cli.md lists the commands and their flags.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import sys
from typing import Sequence

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every discovered subcommand (all command modules imported)."""
    from ._app import build_parser as build

    return build(full=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sdeflow`` console script; returns the exit code.

    A closed output pipe (``sdeflow solvers | head``) ends quietly with exit code 141 (as a process
    killed by SIGPIPE), Ctrl-C with one line and exit code 130, never a traceback.
    """
    as_program = argv is None  # the console script or ``python -m sdeflow``: this process is ours
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and not argv[0].startswith("-") else None
    if as_program:
        _watch_interrupts()
    try:
        return _main(argv, command)
    except BrokenPipeError:
        _silence_stdout()
        return 141
    except BaseException as err:
        # Ctrl-C, or what it became: a KeyboardInterrupt raised inside an import can surface as an
        # ImportError or a RecursionError of a half-imported module; the flag says which it was.
        if isinstance(err, SystemExit) or not (isinstance(err, KeyboardInterrupt) or _INTERRUPTED):
            raise
        detail = f": {err}" if isinstance(err, KeyboardInterrupt) and str(err) else ""
        print(f"sdeflow{' ' + command if command else ''}: interrupted{detail}", file=sys.stderr)
        if as_program:
            _exit_now(130)
        return 130
    finally:
        if as_program:
            _ignore_interrupts()


_INTERRUPTED = False


def _on_interrupt(signum, frame) -> None:
    global _INTERRUPTED
    _INTERRUPTED = True
    raise KeyboardInterrupt


def _watch_interrupts() -> None:
    """Ctrl-C raises KeyboardInterrupt as usual and also sets a flag (see :func:`main`)."""
    import signal

    try:
        signal.signal(signal.SIGINT, _on_interrupt)
    except ValueError:  # not the main thread: leave Python's handler
        pass


def _exit_now(code: int) -> None:
    """End the process now with ``code``, after flushing the output.

    After :func:`main` has handled the interrupt, a normal interpreter exit could still end in SIGINT
    (exit status -2 instead of 130: 2 of 16 runs of ``sdeflow bridge`` interrupted 0.2 to 2.5 s after
    its start). The likely cause is CPython's "unhandled KeyboardInterrupt" flag, which is set when the
    interrupt passes through code run by its ``PyRun_*`` functions (as some extension modules do while
    they initialize) and is not cleared when the exception is caught later; exiting here skips that check.
    Every command writes its files atomically and the trainer has saved its checkpoint before the
    interrupt reaches here, so nothing is left half-written by skipping the interpreter's shutdown.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    os._exit(code)


def _ignore_interrupts() -> None:
    """The command has ended (its files are written): a Ctrl-C while the interpreter shuts down changes nothing."""
    import signal

    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:
        pass


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that Python's flush at exit does not fail on the closed pipe again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a file (a test's capture)
        pass


def _main(argv: list[str], command: str | None) -> int:
    from ._app import build_parser as build, running
    from ._index import COMMANDS

    parser = build(command, full=command is not None and command not in {name for name, _, _ in COMMANDS})
    args, extra = parser.parse_known_args(argv)
    if getattr(args, "pass_through", False):
        # A command that hands its arguments to another parser (``bench NAME ...``) takes everything after
        # its name verbatim and in order (argparse would split ``--out X`` into an unknown flag and a value).
        name = args.benchmark
        args.args = list(argv[list(argv).index(name) + 1:]) if name in argv else list(getattr(args, "args", [])) + extra
        extra = []
    if extra:
        # Report a stray argument as the command's own error line (``sdeflow COMMAND: error: ...``, exit 2)
        # with the command's usage, not the top-level parser's.
        command_parser = _subparsers(parser).get(getattr(args, "command", None) or "", parser)
        command_parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        from ._common import check_output_file, json_file

        # Every existing file among the arguments is an input the report must not replace.
        inputs = [v for k, v in vars(args).items() if k != "json" and isinstance(v, (str, os.PathLike)) and os.path.isfile(v)]
        check_output_file(json_file(args), "--json", overwrite=bool(getattr(args, "overwrite", False)), inputs=inputs)
        with running(args):
            result = _run(args)
    except USER_ERRORS as err:
        if isinstance(err, BrokenPipeError):
            raise
        print(f"sdeflow {args.command}: error: {_describe(err)}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as err:
        if not _out_of_memory(err):
            raise  # a bug: keep its traceback
        print(f"sdeflow {args.command}: error: {_describe_memory(err)}", file=sys.stderr)
        return 2
    sys.stdout.flush()  # a closed pipe shows here, inside main's handler, not at exit
    return int(result or 0)


def _run(args: argparse.Namespace):
    """Run the command; under torchrun (``WORLD_SIZE`` > 1) inside the process group of the launch.

    Only commands that share their work over processes (``set_defaults(distributed=True)``) run
    under a launcher: any other would run once per process and write the same files N times.
    """
    from ..distributed import environment, session

    env = environment()
    if env.world_size == 1:
        return args.func(args)
    if not getattr(args, "distributed", False):
        raise ValueError(
            f"sdeflow {args.command} runs as one process; under torchrun (WORLD_SIZE={env.world_size}) only "
            "`sdeflow sample`, `sdeflow train` and `sdeflow evaluate` share their work: run this command with plain python"
        )
    with session(getattr(args, "device", "cpu")):
        return args.func(args)


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
    from ._common import unpickling_message

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
