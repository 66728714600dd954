"""How many CPU threads torch uses inside sdeflow's entry points (CLI commands, Trainer, sample, likelihood).

torch's default is one intra-op thread per core. On a machine whose cores are shared with other jobs
that default is a trap for the small tensors of diffusion on CPU: threads wait for each other at every
operation, and on a loaded 2-core machine commands ran 15 to 46 times slower than with one thread
(docs/threads.md has the measurements). sdeflow's entry points therefore run with **one thread by
default**, and restore the caller's setting when they return:

* ``threads=None`` (the default): the environment variable ``SDEFLOW_THREADS`` if set, else 1;
* ``threads=N``: N threads;
* ``threads="auto"``: the cores not busy right now (``os.cpu_count()`` minus the 1-minute load
  average, at least 1): for large networks on an idle machine;
* ``threads="torch"``: leave torch's own setting alone (what ``torch.set_num_threads`` last set).

On a GPU the setting only concerns the CPU side (data loading, small host computations).
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator, Union

__all__ = ["ENV", "Threads", "resolve_threads", "num_threads", "parse_threads", "with_threads"]

ENV = "SDEFLOW_THREADS"
"""The environment variable holding the default thread setting (an integer, ``auto`` or ``torch``)."""

Threads = Union[int, str, None]


def parse_threads(value: object, name: str = "threads") -> int | str:
    """Check a thread setting: a positive integer, ``"auto"`` or ``"torch"`` (strings of integers accepted)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a positive integer, 'auto' or 'torch'; got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"{name} must be a positive integer, 'auto' or 'torch'; got {value}")
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("auto", "torch"):
            return text
        try:
            number = int(text)
        except ValueError:
            raise ValueError(f"{name} must be a positive integer, 'auto' or 'torch'; got {value!r}") from None
        return parse_threads(number, name)
    raise TypeError(f"{name} must be a positive integer, 'auto' or 'torch'; got {type(value).__name__}")


def resolve_threads(threads: Threads = None) -> int | None:
    """The number of threads to use for ``threads`` (see the module docstring); ``None`` for "leave torch alone"."""
    if threads is None:
        threads = os.environ.get(ENV, "").strip() or 1
        setting = parse_threads(threads, f"the environment variable {ENV}")
    else:
        setting = parse_threads(threads)
    if setting == "torch":
        return None
    if setting == "auto":
        cores = os.cpu_count() or 1
        try:
            busy = os.getloadavg()[0]
        except (OSError, AttributeError):  # not available on every platform
            busy = 0.0
        return max(1, min(cores, int(cores - busy + 0.5)))
    return int(setting)


@contextlib.contextmanager
def num_threads(threads: Threads = None) -> Iterator[int]:
    """Run a block with torch's intra-op thread count set by ``threads``; restores it afterwards.

    Example::

        with sdeflow.num_threads(1):
            ...  # torch work on one thread

    Yields the number of threads in force.
    """
    import torch

    wanted = resolve_threads(threads)
    before = torch.get_num_threads()
    if wanted is None or wanted == before:
        yield before
        return
    torch.set_num_threads(wanted)
    try:
        yield wanted
    finally:
        torch.set_num_threads(before)


_depth = 0  # how many thread-managing entry points are running (an inner one inherits the setting)


def with_threads(func):
    """Decorate an entry point: it takes ``threads=`` (see the module docstring) and runs under it.

    An entry point called inside another (``sample`` in a ``Trainer``'s evaluation) with no ``threads``
    of its own keeps the outer one's setting; an explicit ``threads`` always applies.
    """
    import functools
    import inspect

    @functools.wraps(func)
    def wrapper(*args, threads: Threads = None, **kwargs):
        global _depth
        with num_threads("torch" if threads is None and _depth > 0 else threads):
            _depth += 1
            try:
                return func(*args, **kwargs)
            finally:
                _depth -= 1

    sig = inspect.signature(func)
    if "threads" not in sig.parameters:
        extra = inspect.Parameter("threads", inspect.Parameter.KEYWORD_ONLY, default=None, annotation="int | str | None")
        params = list(sig.parameters.values())
        at = next((i for i, p in enumerate(params) if p.kind is inspect.Parameter.VAR_KEYWORD), len(params))
        wrapper.__signature__ = sig.replace(parameters=params[:at] + [extra] + params[at:])
    return wrapper
