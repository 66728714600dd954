"""Run an entry's strategy for a budget of examples and tally the outcomes (the tests and
``benchmarks/reliability.py`` share this)."""

from __future__ import annotations

import warnings

from hypothesis import HealthCheck, given, settings

from .entries import Entry, cases
from .harness import Tally, run_case

__all__ = ["explore", "fuzz_settings"]


def fuzz_settings(max_examples: int) -> settings:
    """Fixed seed (``derandomize``), no example database, the suite's own timer instead of hypothesis's deadline."""
    return settings(derandomize=True, max_examples=max_examples, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck), print_blob=False)


def explore(entry: Entry, max_examples: int, *, include_open: bool = True, tally: Tally | None = None) -> Tally:
    """Classify ``max_examples`` drawn cases of ``entry``; returns the tally (every case counted once)."""
    tally = Tally() if tally is None else tally
    if entry.warmup is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            entry.warmup()

    @fuzz_settings(max_examples)
    @given(case=cases(entry, include_open=include_open))
    def _one(case) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # warnings are advice, not outcomes
            tally.add(run_case(case))

    _one()
    return tally
