"""The end-to-end demo in its quick setting: every file it promises exists and every number is finite."""

from __future__ import annotations

import json
import math

import pytest

from sdeflow.training.demo import run_demo
from sdeflow.training import load_checkpoint_model


@pytest.mark.slow
def test_quick_demo_writes_figures_metrics_and_checkpoints(tmp_path):
    # Expected: the grid, trajectory and scatter PNGs, metrics.json with W2 (toy, both solvers), the Frechet
    # distance with its floor and the classifier confidence (digits, both solvers), and two checkpoints
    # that sample on their own. The quick budget is too small for good numbers; the full demo's are in
    # BENCHMARKS-training.md.
    result = run_demo(tmp_path, quick=True, progress=False)
    for key in ("digits_grid", "toy_trajectories", "toy_samples", "metrics_json"):
        assert result[key].is_file() and result[key].stat().st_size > 0, key
    metrics = json.loads(result["metrics_json"].read_text())
    for kind in ("fast", "stochastic"):
        assert math.isfinite(metrics["toy"][kind]["w2"])
        assert math.isfinite(metrics["digits"][kind]["frechet_distance"])
        assert 0.0 <= metrics["digits"][kind]["confident_fraction"] <= 1.0
    assert metrics["digits"]["fast"]["frechet_floor"] > 0 and metrics["toy"]["w2_floor"] > 0
    model, process, prediction, config = load_checkpoint_model(result["digits_checkpoint"])
    assert prediction == "eps" and config["data"]["event_shape"] == [1, 8, 8]
