"""Space-time Levy area of the Brownian objects: law, additivity, determinism (float64)."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from sdeflow.noise import BrownianTree
from sdeflow.noise.levy import LevyBrownianTree
from sdeflow.noise.path import BrownianPath

F64 = torch.float64


def levy_objects(n, t0=0.0, t1=2.0, seed=3):
    """A Levy tree and a fine BrownianPath on [t0, t1]; both give (dW, U) over grid intervals."""
    tree = LevyBrownianTree(t0, t1, (n, 2), seeds=seed, dtype=F64)
    path = BrownianPath(torch.linspace(t0, t1, 65, dtype=F64), (n, 2), seed=seed, dtype=F64)
    return tree, path


@pytest.mark.parametrize("kind", ["tree", "path"])
def test_space_time_area_law(kind):
    # Expected, for U = int_a^b (W_s - W_a) ds and h = b - a: Var U = h^3/3, Cov(U, dW) = h^2/2,
    # Var dW = h (within 5 standard errors over n = 20000 samples x 2 components), and the
    # space-time area H = U/h - dW/2 is N(0, h/12) independent of dW (KS p > 1e-3, |r| < 4/sqrt(n)).
    n = 20_000
    tree, path = levy_objects(n)
    bm = tree if kind == "tree" else path
    a, b = (0.3137, 1.4142) if kind == "tree" else (0.3125, 1.40625)  # path: grid times
    h = b - a
    dw, u = bm(a, b, return_U=True)
    dw, u = dw.flatten(), u.flatten()
    m = dw.numel()
    assert abs(float(dw.var()) / h - 1) < 5 * math.sqrt(2 / m)
    assert abs(float(u.var()) / (h**3 / 3) - 1) < 5 * math.sqrt(2 / m)
    cov = float(((u - u.mean()) * (dw - dw.mean())).mean())
    assert abs(cov / (h**2 / 2) - 1) < 5 * math.sqrt(2 / m) * 2
    area = u / h - dw / 2
    assert stats.kstest((area / math.sqrt(h / 12)).numpy(), "norm").pvalue > 1e-3
    assert abs(float(torch.corrcoef(torch.stack((area, dw)))[0, 1])) < 4 / math.sqrt(m)


@pytest.mark.parametrize("kind", ["tree", "path"])
def test_space_time_area_is_additive(kind):
    # Expected: U_{a,c} = U_{a,b} + U_{b,c} + (c - b) W_{a,b} and W_{a,c} = W_{a,b} + W_{b,c} to
    # round-off (1e-12), for dyadic and non-dyadic times (tree) and grid times (path); reversed
    # intervals: U_{c,a} = -U_{a,c} + (c - a) W_{a,c}.
    tree, path = levy_objects(6)
    bm = tree if kind == "tree" else path
    pts = (0.1, 0.7337, 1.5) if kind == "tree" else (0.125, 0.75, 1.5)
    a, b, c = pts
    wab, uab = bm(a, b, return_U=True)
    wbc, ubc = bm(b, c, return_U=True)
    wac, uac = bm(a, c, return_U=True)
    torch.testing.assert_close(wab + wbc, wac, rtol=0, atol=1e-12)
    torch.testing.assert_close(uab + ubc + (c - b) * wab, uac, rtol=0, atol=1e-12)
    wca, uca = bm(c, a, return_U=True)
    torch.testing.assert_close(wca, -wac, rtol=0, atol=1e-12)
    torch.testing.assert_close(uca, -uac + (c - a) * wac, rtol=0, atol=1e-12)


def test_levy_tree_is_deterministic_across_query_order():
    # Expected: (W, U) over an interval is a pure function of (seed, interval): a scrambled query
    # order, and a fresh tree per query, give the same values bit for bit.
    intervals = [(0.5, 0.75), (0.1, 0.2), (1.9, 2.0), (0.123, 1.77), (0.5, 0.75), (0.0, 2.0), (0.6, 0.61)]
    bm = LevyBrownianTree(0.0, 2.0, (3, 2), seeds=5, dtype=F64)
    first = [bm(a, b, return_U=True) for a, b in intervals]
    for (a, b), (w, u) in zip(intervals, first):
        fresh = LevyBrownianTree(0.0, 2.0, (3, 2), seeds=5, dtype=F64)
        w2, u2 = fresh(a, b, return_U=True)
        assert torch.equal(w, w2) and torch.equal(u, u2)


def test_levy_errors():
    # Expected: asking for U from a tree built without it, or per-sample times, is a ValueError
    # that says how to fix it.
    plain = BrownianTree(0.0, 1.0, (2, 1), seeds=0)
    with pytest.raises(TypeError, match="return_U"):
        plain(0.1, 0.2, return_U=True)
    levy = LevyBrownianTree(0.0, 1.0, (2, 1), seeds=0)
    with pytest.raises(ValueError, match="one time for the whole batch"):
        levy(torch.tensor([0.1, 0.3]), 0.5, return_U=True)
    path = BrownianPath([0.0, 0.5, 1.0], (2, 1), seed=0)
    with pytest.raises(ValueError, match="not a time of the grid"):
        path(0.25, 0.5)
    with pytest.raises(ValueError, match="exactly one source"):
        BrownianPath([0.0, 1.0], (2,))


def test_path_is_reproducible_and_chunk_independent():
    # Expected: the same seed gives the same increments whatever the query order; increments do
    # not depend on how the steps are grouped into chunks... only on (seed, chunk size): we check
    # query-order independence and that a coarse query equals the sum of its fine steps.
    ts = torch.linspace(0.0, 1.0, 101, dtype=F64)
    a = BrownianPath(ts, (4, 3), seed=9, dtype=F64, chunk_elements=120)  # 10 steps per chunk
    b = BrownianPath(ts, (4, 3), seed=9, dtype=F64, chunk_elements=120)
    order = [57, 3, 99, 3, 42, 10, 11]
    want = {i: a.step(i).clone() for i in sorted(set(order))}
    for i in order:
        assert torch.equal(b.step(i), want[i])
    total = sum(a.step(i) for i in range(20, 40))
    torch.testing.assert_close(a(float(ts[20]), float(ts[40])), total, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cls", [BrownianTree, LevyBrownianTree])
def test_tree_cost_does_not_depend_on_the_time_scale(cls, monkeypatch):
    # Expected: a sampling loop of 200 steps across [t0, t1] draws exactly as many normal batches on
    # [0, 1] as on [1000, 3000] (the tree works in relative position; torchsde issue #109 reports a
    # 33x slowdown from a change of time scale there).
    import sdeflow.noise.brownian as brownian_module
    import sdeflow.noise.levy as levy_module

    counts = []
    real = brownian_module.normal_from_keys
    for t0, t1 in ((0.0, 1.0), (1000.0, 3000.0)):
        calls = []

        def counting(keys, n, dtype=torch.float32):
            calls.append(1)
            return real(keys, n, dtype)

        monkeypatch.setattr(brownian_module, "normal_from_keys", counting)
        bm = cls(t0, t1, (4, 1), seeds=0, dtype=F64)
        ts = torch.linspace(t0, t1, 201, dtype=F64).tolist()
        for a, b in zip(ts[:-1], ts[1:]):
            bm(a, b, return_U=True) if cls is LevyBrownianTree else bm(a, b)
        counts.append(len(calls))
    assert counts[0] == counts[1], counts
    assert levy_module  # the Levy tree draws through the same function


def test_path_increments_are_normal():
    # Expected: BrownianPath's increments / sqrt(dt) pass a KS test against N(0, 1) (p > 1e-3) on a
    # non-uniform grid, and two steps are uncorrelated (|r| < 4/sqrt(n)).
    n = 20_000
    ts = [0.0, 0.01, 0.3, 0.31, 1.0]
    bm = BrownianPath(ts, (n,), seed=11, dtype=F64)
    z = [bm(a, b) / math.sqrt(b - a) for a, b in zip(ts[:-1], ts[1:])]
    for zi in z:
        assert stats.kstest(zi.numpy(), "norm").pvalue > 1e-3
    assert abs(float(torch.corrcoef(torch.stack((z[0], z[2])))[0, 1])) < 4 / math.sqrt(n)
