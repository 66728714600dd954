"""The thread setting of the entry points (sdeflow._threads, docs/threads.md) and the progress-bar helper."""

from __future__ import annotations

import inspect
import io

import pytest
import torch

import sdeflow
from sdeflow import _threads
from sdeflow._utils import NON_TTY_INTERVAL, progress_bar, progress_off


def test_default_is_one_thread_and_the_environment_overrides_it(monkeypatch):
    # Expected: 1 without SDEFLOW_THREADS; the variable's number otherwise; "torch" means leave it (None).
    monkeypatch.delenv("SDEFLOW_THREADS", raising=False)
    assert _threads.resolve_threads(None) == 1
    monkeypatch.setenv("SDEFLOW_THREADS", "3")
    assert _threads.resolve_threads(None) == 3
    monkeypatch.setenv("SDEFLOW_THREADS", "torch")
    assert _threads.resolve_threads(None) is None
    assert _threads.resolve_threads(2) == 2
    assert 1 <= _threads.resolve_threads("auto") <= (__import__("os").cpu_count() or 1)


@pytest.mark.parametrize("bad", [0, -1, "two", 1.5, True])
def test_bad_settings_name_the_argument(bad):
    with pytest.raises((ValueError, TypeError), match="threads must be a positive integer, 'auto' or 'torch'"):
        _threads.parse_threads(bad)


def test_num_threads_restores_the_callers_setting():
    # Expected: inside the block torch runs on 2 threads, after it on what it ran on before (1, the
    # test suite's setting).
    before = torch.get_num_threads()
    with sdeflow.num_threads(2) as n:
        assert n == 2 and torch.get_num_threads() == 2
    assert torch.get_num_threads() == before


def test_entry_points_take_threads_and_inner_calls_inherit(monkeypatch):
    # Expected: sample() shows threads= in its signature and runs its model under the setting; an inner
    # call without its own setting keeps the outer one (3 here), not the default 1.
    monkeypatch.delenv("SDEFLOW_THREADS", raising=False)
    assert "threads" in inspect.signature(sdeflow.sample).parameters
    seen = []

    @_threads.with_threads
    def inner():
        seen.append(torch.get_num_threads())

    @_threads.with_threads
    def outer():
        seen.append(torch.get_num_threads())
        inner()

    outer(threads=3)
    inner()
    assert seen == [3, 3, 1]
    process = sdeflow.EDM()
    calls = []

    def model(x, t):
        calls.append(torch.get_num_threads())
        return torch.zeros_like(x)

    sdeflow.sample(model, process, process.prior_sample((4, 2), seeds=0), prediction="eps", solver="euler", steps=2, threads=2)
    assert set(calls) == {2}


def test_progress_bar_is_quiet_in_logs_and_off_under_quiet():
    # Expected: a bar writing to a non-terminal stream updates at most every NON_TTY_INTERVAL (10) seconds,
    # so 1,000 fast updates write the opening line and the closing one only; progress_off disables it.
    stream = io.StringIO()
    bar = progress_bar(total=1000, file=stream, desc="x")
    for _ in range(1000):
        bar.update(1)
    bar.close()
    assert bar.mininterval == NON_TTY_INTERVAL == 10.0
    assert stream.getvalue().count("\r") <= 3
    with progress_off():
        assert progress_bar(total=3, file=io.StringIO()).disable


def test_every_progress_bar_goes_through_the_helper():
    # Expected: no module but sdeflow._utils imports tqdm, so every bar is rate-limited off a terminal and
    # silenced by --quiet (a module using tqdm directly would flood logs again).
    from pathlib import Path

    root = Path(sdeflow.__file__).parent
    direct = [str(p.relative_to(root)) for p in root.rglob("*.py")
              if p.name != "_utils.py" and ("from tqdm" in p.read_text() or "import tqdm" in p.read_text())]
    assert direct == [], f"use sdeflow._utils.progress_bar instead of tqdm in {direct}"
