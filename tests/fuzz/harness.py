"""The fuzz suite's classifier: run one call and say how it ended.

A :class:`Case` is one call of a public entry point with an input a strategy drew, marked valid or
invalid; an invalid case names the argument at fault (``names``: any one of them must appear in the
error message). :func:`classify` runs it under a per-call timer and returns one of

=========  ======================================================================================
ok         valid input: a value came back, with no NaN or inf in it (and the case's own check held)
clear      invalid input: a ``ValueError``/``TypeError`` whose message names the argument (or the
           ``FloatingPointError`` the solvers document for a user function returning NaN; the CLI:
           exit code 2 and a line ``sdeflow COMMAND: error: ...`` naming the flag, no traceback)
unclear    any other exception; a ``ValueError``/``TypeError`` that does not name the argument;
           valid input refused
silent     invalid input that returned a value (the CLI: exit code 0); valid input that returned
           NaN or inf
hang       slower than the bound: ``INVALID_BOUND_S`` on invalid input (a refusal must be quick),
           ``VALID_BOUND_S`` on valid input (the strategies draw small problems)
=========  ======================================================================================

The goal of the suite (issue 10): unclear, silent and hang are all 0.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

__all__ = [
    "INVALID_BOUND_S",
    "VALID_BOUND_S",
    "KINDS",
    "Case",
    "CliRun",
    "Outcome",
    "classify",
    "run_case",
    "run_cli",
    "run_cli_subprocess",
    "non_finite",
    "Tally",
]

INVALID_BOUND_S = 2.0
"""A refusal of invalid input must come within this many seconds (issue 10: "nothing that runs longer
than a stated bound on invalid input")."""

VALID_BOUND_S = 20.0
"""The strategies draw small valid problems (a few samples, steps, paths); none may take longer."""

KINDS = ("ok", "clear", "unclear", "silent", "hang")


class _Timeout(BaseException):
    """Raised by the timer's signal inside a call that ran far past its bound (not an Exception, so
    that no ``except Exception`` in the library swallows it)."""


@dataclasses.dataclass(frozen=True)
class CliRun:
    """How a CLI invocation ended: its exit code and captured output."""

    code: int
    stdout: str
    stderr: str


@dataclasses.dataclass(frozen=True)
class Case:
    """One call of an entry point.

    Attributes:
        entry: the row of the reliability table (``"sdeint"``, ``"cli sample"``, ...).
        label: what was drawn, short (``"y0 holds NaN"``); with ``repro`` it identifies the input.
        call: runs the entry point (no arguments); a CLI case returns a :class:`CliRun`.
        valid: whether the input is valid.
        names: for invalid input, the argument names (or CLI flags) of which the error must name one.
        repro: a Python expression or command line reproducing the call.
        check: for valid input, an extra check of the returned value: ``None`` if it holds, else why not.
        bound: the time bound in seconds (default: by validity).
    """

    entry: str
    label: str
    call: Callable[[], Any]
    valid: bool
    names: tuple[str, ...] = ()
    repro: str = ""
    check: Callable[[Any], str | None] | None = None
    bound: float | None = None

    @property
    def time_bound(self) -> float:
        if self.bound is not None:
            return self.bound
        return VALID_BOUND_S if self.valid else INVALID_BOUND_S


@dataclasses.dataclass(frozen=True)
class Outcome:
    """The classification of a case and why."""

    kind: str
    seconds: float
    detail: str
    case: Case

    def __str__(self) -> str:
        return f"[{self.kind}] {self.case.entry}: {self.case.label} ({self.seconds:.2f} s): {self.detail}\n    repro: {self.case.repro}"


# ------------------------------------------------------------------------------------ checks
def non_finite(value: Any, path: str = "result", _depth: int = 0) -> str | None:
    """Where ``value`` (a tensor, array, number, or a container/dataclass/named tuple of them) holds NaN
    or inf; ``None`` when it is all finite."""
    if _depth > 6:
        return None
    if isinstance(value, torch.Tensor):
        if value.is_floating_point() or value.is_complex():
            bad = ~torch.isfinite(value.detach())
            if bool(bad.any()):
                return f"{path} has {int(bad.sum())} non-finite of {value.numel()}"
        return None
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "fc":
            bad = ~np.isfinite(value)
            if bad.any():
                return f"{path} has {int(bad.sum())} non-finite of {value.size}"
        return None
    if isinstance(value, (bool, int, str, bytes, type(None))):
        return None
    if isinstance(value, (float, np.floating)):
        return None if math.isfinite(float(value)) else f"{path} = {value}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        items: Iterable[tuple[str, Any]] = ((f.name, getattr(value, f.name)) for f in dataclasses.fields(value))
    elif isinstance(value, tuple) and hasattr(value, "_fields"):
        items = zip(value._fields, value)
    elif isinstance(value, dict):
        items = ((str(k), v) for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return None
    for name, item in items:
        found = non_finite(item, f"{path}.{name}", _depth + 1)
        if found:
            return found
    return None


def _names_one(message: str, names: Sequence[str]) -> bool:
    """Whether ``message`` names one of ``names`` as a word (``y0`` but not ``y01``; ``--n`` but not ``--n-data``)."""
    for name in names:
        if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", message):
            return True
    return False


# ------------------------------------------------------------------------------------ the CLI
def run_cli(argv: Sequence[str]) -> CliRun:
    """``sdeflow argv`` in this process (``sdeflow.cli.main``, as the console script calls it), output captured.

    argparse's own errors end in ``SystemExit(2)``; that is the exit code, as the console script gives it.
    Any other exception escapes (it would be a traceback on the command line).
    """
    from sdeflow.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return CliRun(int(code), out.getvalue(), err.getvalue())


def run_cli_subprocess(argv: Sequence[str], timeout: float, cwd: str | Path | None = None) -> CliRun:
    """``python -m sdeflow argv`` in a fresh process with a timeout (a hang is killed, never waited for)."""
    try:
        proc = subprocess.run([sys.executable, "-m", "sdeflow", *argv], capture_output=True, text=True,
                              timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired as exc:
        raise _Timeout(f"killed after {timeout} s") from exc
    return CliRun(proc.returncode, proc.stdout, proc.stderr)


def _classify_cli(case: Case, run: CliRun) -> tuple[str, str]:
    command = case.entry.split(" ", 1)[1] if case.entry.startswith("cli ") else ""
    if "Traceback" in run.stderr:
        return "unclear", "traceback: " + run.stderr.strip().splitlines()[-1][:300]
    if case.valid:
        if run.code != 0:
            return "unclear", f"valid input refused (exit {run.code}): {run.stderr.strip()[-300:]}"
        why = case.check(run) if case.check is not None else None
        return ("silent", why) if why else ("ok", "exit 0")
    if run.code == 0:
        return "silent", "invalid input accepted (exit 0)"
    lines = [ln for ln in run.stderr.splitlines() if ln.startswith(f"sdeflow {command}: error: ")]
    if run.code != 2 or not lines:
        return "unclear", f"exit {run.code} without an error line: {run.stderr.strip()[-300:]!r}"
    line = lines[-1]
    if not _names_one(line, case.names):
        return "unclear", f"the error does not name {list(case.names)}: {line[:300]}"
    return "clear", line[:300]


# ------------------------------------------------------------------------------------ classify
def run_case(case: Case) -> Outcome:
    """Run ``case`` under its timer and classify how it ended (see the module docstring)."""
    bound = case.time_bound
    # The hard stop: a call still running well past its bound is interrupted (signal on the main thread);
    # it is a hang either way, this only keeps the suite from waiting for it.
    hard = max(2.0 * bound, bound + 3.0)
    use_timer = hasattr(signal, "setitimer") and _main_thread()

    def _alarm(signum, frame):  # pragma: no cover - only on a hang
        raise _Timeout(f"interrupted after {hard:.0f} s")

    previous = signal.signal(signal.SIGALRM, _alarm) if use_timer else None
    start = time.perf_counter()
    result: Any = None
    error: BaseException | None = None
    try:
        if use_timer:
            signal.setitimer(signal.ITIMER_REAL, hard)
        try:
            result = case.call()
        finally:
            if use_timer:
                signal.setitimer(signal.ITIMER_REAL, 0.0)
    except _Timeout as exc:
        return Outcome("hang", time.perf_counter() - start, str(exc), case)
    except BaseException as exc:  # noqa: BLE001 - classifying every way a call can end is the point
        if isinstance(exc, (KeyboardInterrupt,)):
            raise
        error = exc
    finally:
        if use_timer:
            signal.signal(signal.SIGALRM, previous)
    seconds = time.perf_counter() - start
    kind, detail = _classify(case, result, error)
    if seconds > bound:
        return Outcome("hang", seconds, f"took {seconds:.2f} s > bound {bound} s (ended as {kind}: {detail})", case)
    return Outcome(kind, seconds, detail, case)


def _classify(case: Case, result: Any, error: BaseException | None) -> tuple[str, str]:
    if error is None and isinstance(result, CliRun):
        return _classify_cli(case, result)
    if error is not None:
        text = f"{type(error).__name__}: {error}".strip()
        short = text.splitlines()[0][:300] if text else type(error).__name__
        if case.valid:
            return "unclear", f"valid input refused: {short}"
        # FloatingPointError is the library's documented error for a solve whose solution became NaN or
        # infinite (the user's drift/model returned it); it counts as clear when it names the function.
        if isinstance(error, (ValueError, TypeError, FloatingPointError)):
            return ("clear", short) if _names_one(str(error), case.names) else ("unclear", f"does not name {list(case.names)}: {short}")
        return "unclear", short
    if not case.valid:
        return "silent", f"invalid input returned {type(result).__name__}"
    why = non_finite(result)
    if why is None and case.check is not None:
        why = case.check(result)
    return ("silent", why) if why else ("ok", type(result).__name__)


def classify(case: Case) -> str:
    """``"ok"`` (valid, finite), ``"clear"``, ``"unclear"``, ``"silent"`` or ``"hang"`` (module docstring)."""
    return run_case(case).kind


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


# ------------------------------------------------------------------------------------ tallies
class Tally:
    """Counts of outcomes per entry point, and the outcomes that are not ok/clear (to print)."""

    def __init__(self) -> None:
        self.counts: dict[str, Counter] = {}
        self.bad: list[Outcome] = []

    def add(self, outcome: Outcome) -> None:
        self.counts.setdefault(outcome.case.entry, Counter())[outcome.kind] += 1
        if outcome.kind not in ("ok", "clear"):
            self.bad.append(outcome)

    def total(self) -> Counter:
        out: Counter = Counter()
        for c in self.counts.values():
            out.update(c)
        return out

    def report(self, limit: int = 20) -> str:
        return "\n".join(str(o) for o in self.bad[:limit]) + (f"\n... and {len(self.bad) - limit} more" if len(self.bad) > limit else "")
