"""``sdeflow bench NAME ARGS...`` hands ARGS to benchmarks/NAME.py verbatim and in order."""

import types

import sdeflow.cli as cli
import sdeflow.cli.bench as bench


def test_arguments_reach_the_benchmark_in_order(monkeypatch):
    # Expected: exactly the tokens after the benchmark's name, option values kept beside their flags
    # (``--out X`` once reached the benchmark as ``X --out``), and ``--help`` goes to the benchmark's parser.
    seen = []
    monkeypatch.setattr(bench, "_load", lambda name: types.SimpleNamespace(main=lambda argv: seen.append((name, argv)) or 0))
    assert cli.main(["bench", "family", "--out", "X", "--n", "3", "--no-peers"]) == 0
    assert cli.main(["bench", "networks", "--help"]) == 0
    assert seen == [("family", ["--out", "X", "--n", "3", "--no-peers"]), ("networks", ["--help"])]
