"""The two-sample floor and compare(): closed-form floors and the bookkeeping of compare."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sdeflow import metrics as M
from sdeflow.targets import gaussian, ring2d


def test_energy_floor_matches_its_expectation_from_a_sampler_and_from_a_pool():
    # For two independent draws of N(0, 1) of sizes n and m, E[D^2_V] = E|X - X'| (1/n + 1/m)
    # = (2 / sqrt(pi)) (1/n + 1/m) exactly (the V-statistic's diagonal-free within sums).
    # 200 pairs: the mean is within 4 standard errors.
    n, m = 200, 300
    expected = 2 / math.sqrt(math.pi) * (1 / n + 1 / m)
    target = gaussian([0.0], 1.0)
    fl = M.two_sample_floor(M.energy_distance, target, n, m=m, n_boot=200, seed=1)
    assert abs(fl.value - expected) < 4 * fl.stderr
    assert fl.low <= fl.value <= fl.high and len(fl.values) == 200 and (fl.n, fl.m) == (n, m)
    pool = np.random.default_rng(2).standard_normal(5000)
    fp = M.two_sample_floor("energy_distance", pool, n, m=m, n_boot=200, seed=3)
    # With a pool the replicates share points; the mean is still unbiased (4 standard errors).
    assert abs(fp.value - expected) < 4 * fp.stderr


def test_floor_draws_are_reproducible_and_callable_samplers_work():
    t = ring2d()
    a = M.two_sample_floor(M.sliced_wasserstein2, t, 100, n_boot=3, seed=7)
    b = M.two_sample_floor(M.sliced_wasserstein2, lambda n, g: t.sample(n, generator=g), 100, n_boot=3, seed=7)
    assert a.values == b.values
    assert a.values != M.two_sample_floor(M.sliced_wasserstein2, t, 100, n_boot=3, seed=8).values


def test_floor_errors():
    with pytest.raises(ValueError, match="needs 200"):
        M.two_sample_floor(M.energy_distance, np.zeros((150, 2)), 100)
    with pytest.raises(ValueError, match="unknown metric"):
        M.two_sample_floor("w3", np.zeros((150, 2)), 10)
    with pytest.raises(TypeError, match="reference"):
        M.two_sample_floor(M.energy_distance, "data.pt", 10)


def test_compare_reports_every_distance_and_its_floor():
    t = ring2d()
    x = t.sample(400, seeds=range(400))
    y = t.sample(500, seeds=range(1000, 1500))
    res = M.compare(x, y, reference=t, n_boot=4, max_points=300)
    assert list(res) == list(M.METRIC_NAMES)
    # Options that do not depend on the data give exactly the stand-alone values.
    assert float(res["frechet_distance"]) == pytest.approx(M.frechet_distance(x, y), rel=1e-12)
    assert float(res["sliced_wasserstein2"]) == pytest.approx(M.sliced_wasserstein2(x, y), rel=1e-12)
    assert (res["wasserstein2"].n, res["wasserstein2"].m) == (300, 300)  # subset to max_points
    for r in res.values():
        assert r.floor is not None and r.floor.n_boot == 4 and isinstance(r.within_floor, bool)
    # A far-off sample is far above every floor.
    far = M.compare(x + 3.0, y, reference=t, n_boot=3, metrics=["energy_distance", "jensen_shannon"])
    assert list(far) == ["energy_distance", "jensen_shannon"]
    assert all(not r.within_floor for r in far.values())


def test_compare_in_high_dimension_skips_histograms():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(50, 3, 2, generator=g), torch.randn(60, 6, generator=g)
    res = M.compare(x, y)
    assert "jensen_shannon" not in res and "kl_divergence" not in res
    assert all(r.floor is None and r.within_floor is None for r in res.values())
    with pytest.raises(ValueError, match="1-D or 2-D"):
        M.compare(x, y, metrics=["jensen_shannon"])
