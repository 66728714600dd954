"""BrownianTree and BrownianIncrements: Brownian statistics, exact path consistency, errors.

Statistical checks use fixed seeds (so they are deterministic) and bounds of 4-5 standard errors,
which a correct implementation passes for all but a negligible fraction of seeds.
"""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

import sdeflow.noise.brownian as brownian_module
from sdeflow.noise import BrownianIncrements, BrownianTree

F64 = torch.float64


def tree(shape=(4, 3), t0=0.0, t1=1.0, **kw):
    kw.setdefault("seeds", 0)
    kw.setdefault("dtype", F64)
    return BrownianTree(t0, t1, shape, **kw)


def corr(x: torch.Tensor, y: torch.Tensor) -> float:
    return float(torch.corrcoef(torch.stack((x.reshape(-1), y.reshape(-1))))[0, 1])


# ---- basic values --------------------------------------------------------------------------------
def test_shapes_dtypes_and_w_at_t0_is_zero():
    # Expected: every query has shape (batch, *event_shape) and the requested dtype; W(t0) = 0
    # exactly (it is the construction's anchor), also for an interval not starting at 0.
    bm = BrownianTree(-1.0, 2.5, (3, 2, 5), seeds=1)
    assert bm.depth == 24
    for out in (bm(-1.0), bm(0.3), bm(0.3, 1.7), bm(torch.tensor([0.1, 2.0, -0.5]))):
        assert out.shape == (3, 2, 5) and out.dtype == torch.float32
    assert torch.equal(bm(-1.0), torch.zeros(3, 2, 5))
    assert torch.equal(bm(torch.tensor(-1.0), torch.tensor(-1.0)), torch.zeros(3, 2, 5))
    # A batch-only shape (no event dimensions) works too.
    assert BrownianTree(0.0, 1.0, (7,), seeds=0)(0.5).shape == (7,)


def test_depth_from_tol():
    # Expected: depth = ceil(log2((t1 - t0) / tol)): 24 by default, 10 for tol = span/1000
    # (2**9 < 1000 <= 2**10), 0 when tol exceeds the span (then one bridge across [t0, t1]).
    assert tree(t0=0.0, t1=3.0).depth == 24
    assert tree(tol=1 / 1000).depth == 10
    assert tree(tol=1 / 1024).depth == 10
    # Far from 0 the default depth shrinks so leaves stay >= 2**-48 * |t| wide (16 ulps): on
    # [2**20, 2**20 + 1] that is 2**-28, depth 28 would be allowed, so 24 stays; on
    # [2**30, 2**30 + 1] leaves must be >= 2**-48 * (2**30 + 1), just over 2**-18, so depth 17;
    # every cell is then non-empty and the path still telescopes.
    assert tree(t0=2.0**20, t1=2.0**20 + 1).depth == 24
    far = tree((3, 1), t0=2.0**30, t1=2.0**30 + 1)
    assert far.depth == 17
    t = 2.0**30 + 0.123456
    torch.testing.assert_close(far(2.0**30, t) + far(t, 2.0**30 + 1), far(2.0**30, 2.0**30 + 1), rtol=0, atol=1e-12)
    shallow = tree((2000, 1), tol=5.0)
    assert shallow.depth == 0
    # Still exact Brownian marginals: Var W(0.3) = 0.3 within 5 standard errors (5*sqrt(2/n) relative).
    v = float(shallow(0.3).var())
    assert abs(v / 0.3 - 1) < 5 * math.sqrt(2 / 2000)


def test_results_are_not_views_of_the_cache():
    # Expected: writing into a returned tensor does not change later answers (float64 results
    # would otherwise alias the cached descent).
    bm = tree()
    w = bm(0.4)
    want = w.clone()
    w.add_(100.0)
    assert torch.equal(bm(0.4), want)
    z = bm(0.0)
    z.add_(1.0)
    assert torch.equal(bm(0.0), torch.zeros(4, 3, dtype=F64))


# ---- exact path consistency ----------------------------------------------------------------------
def test_additivity_and_reversal():
    # Expected: W(a,b) + W(b,c) == W(a,c) to 1e-12 in float64 (only the round-off of two
    # subtractions separates them), for dyadic and non-dyadic times and any order of a, b, c.
    bm = tree((8, 5))
    times = [0.0, 0.123, 0.25, 0.4567, 0.5, 0.9, 1.0]
    for a, b, c in ((0.123, 0.4567, 0.9), (0.9, 0.25, 0.123), (0.0, 0.5, 1.0), (1.0, 0.0, 0.4567)):
        torch.testing.assert_close(bm(a, b) + bm(b, c), bm(a, c), rtol=0, atol=1e-12)
    # Reversed increments are exact negatives, in float64 and in float32 (computed in float64, then
    # cast: rounding is symmetric), so time may run backwards.
    bm32 = tree((8, 5), dtype=torch.float32)
    for a in times:
        for b in times:
            assert torch.equal(bm(a, b), -bm(b, a))
            assert torch.equal(bm32(a, b), -bm32(b, a))
            assert torch.equal(bm(a, b), bm(b) - bm(a))


def test_determinism_across_query_order_and_cache():
    # Expected: W(t) is a pure function of (seed, t): a tree queried in a scrambled order (with the
    # descent cache restarting from shared cells) gives exactly the values of a fresh tree per
    # query (no cache), for dyadic points, t0, t1, repeated and nearby times.
    times = [0.7, 0.3, 0.5, 0.30000001, 1.0, 0.0, 0.3, 0.875, 0.1234567, 0.7, 0.69999, 0.25, 0.2500001]
    bm = tree((5, 2), t0=0.0, t1=1.0, seeds=11)
    cached = [bm(t) for t in times]
    for t, w in zip(times, cached):
        assert torch.equal(w, tree((5, 2), seeds=11)(t)), t
    # Reverse order on a new tree: same values again.
    bm2 = tree((5, 2), seeds=11)
    for t, w in reversed(list(zip(times, cached))):
        assert torch.equal(bm2(t), w), t


def test_batch_invariance():
    # Expected: sample i of a tree built with seeds=s equals (bit for bit) the single-sample tree
    # with seeds=s+i; explicit per-sample seeds follow their sample.
    bm = tree((5, 2, 3), seeds=100)
    for t in (0.37, 0.5, 0.91):
        w = bm(t)
        for i in range(5):
            assert torch.equal(w[i], tree((1, 2, 3), seeds=100 + i)(t)[0])
    perm = tree((3, 2, 3), seeds=[104, 100, 102])
    assert torch.equal(perm(0.37), bm(0.37)[[4, 0, 2]])


def test_same_path_at_any_step_count():
    # Expected: for grids sharing endpoints, the sum of the 7 fine increments over a non-uniform
    # grid equals the one coarse increment across the same span, to 1e-12 in float64 (telescoping
    # of a single path) and to float32 round-off (~1e-6) in float32; the fine walk also runs
    # backwards, as a diffusion sampler does.
    for dtype, atol in ((F64, 1e-12), (torch.float32, 2e-6)):
        bm = tree((16, 4), t0=0.0, t1=2.0, dtype=dtype, seeds=3)
        coarse = [2.0, 1.3, 0.41, 0.0]
        for ta, tb in zip(coarse[:-1], coarse[1:]):
            fine = torch.linspace(0, 1, 8, dtype=F64) ** 1.7  # 7 non-uniform steps
            fine = (ta + (tb - ta) * fine).tolist()
            fine[0], fine[-1] = ta, tb
            total = sum(bm(s, u) for s, u in zip(fine[:-1], fine[1:]))
            torch.testing.assert_close(total, bm(ta, tb), rtol=0, atol=atol)
    # And a fresh tree queried only on the coarse grid agrees with the one queried on both.
    bm = tree((16, 4), t0=0.0, t1=2.0, seeds=3)
    fresh = tree((16, 4), t0=0.0, t1=2.0, seeds=3)
    _ = [bm(t) for t in torch.linspace(2.0, 0.0, 50).tolist()]
    assert torch.equal(bm(1.3, 0.41), fresh(1.3, 0.41))


def test_per_sample_times_equal_scalar_queries():
    # Expected: a (batch,) tensor of times gives, for each sample, exactly the scalar query's value
    # (the vectorized descent does the same float64 arithmetic); includes t0, t1, dyadic points
    # and two samples at the same time.
    t = torch.tensor([0.0, 1.0, 0.5, 0.375, 0.123456789, 0.9999999, 0.123456789, 0.61], dtype=F64)
    bm = tree((8, 3), seeds=5)
    w = bm(t)
    for i in range(8):
        assert torch.equal(w[i], bm(float(t[i]))[i]), float(t[i])
    # Increments with per-sample times on one side, a scalar on the other.
    inc = bm(t, 0.7)
    for i in range(8):
        assert torch.equal(inc[i], bm(float(t[i]), 0.7)[i])
    # A (batch,) tensor of equal times takes the scalar path: same values.
    assert torch.equal(bm(torch.full((8,), 0.123456789, dtype=F64)), bm(0.123456789))
    # float32 times are read as the float64 value of the float32 number.
    t32 = t.to(torch.float32)
    assert torch.equal(bm(t32), bm(t32.to(F64)))


def test_cache_cost_of_sequential_queries(monkeypatch):
    # Expected: a sampling loop with steps of dt = T/1000 at depth 24 draws about
    # 24 - log2(1000) ~ 14 normal batches per step (restart from the deepest shared cell), plus
    # one leaf draw, plus the levels lost where a step crosses a dyadic point of level k
    # (probability ~ 2**k dt / T, summing to ~2 levels over k <= 10): ~17 (measured 16.9); we
    # allow 14 + 4. A cold query draws depth + 1 = 25 (24 levels and the leaf).
    calls = []
    real = brownian_module.normal_from_keys

    def counting(keys, n, dtype=torch.float32):
        calls.append(1)
        return real(keys, n, dtype)

    bm = tree((2, 1))
    monkeypatch.setattr(brownian_module, "normal_from_keys", counting)
    bm(0.123456)
    assert len(calls) == 25
    ts = torch.linspace(1.0, 0.0, 1001, dtype=F64).tolist()
    calls.clear()
    for ta, tb in zip(ts[:-1], ts[1:]):
        bm(ta, tb)
    per_step = len(calls) / 1000
    assert per_step < 24 - math.log2(1000) + 4, per_step


# ---- Brownian statistics -------------------------------------------------------------------------
def test_increments_are_independent_normals():
    # Expected: over n = 20000 samples, (W(b) - W(a)) / sqrt(b - a) for non-dyadic a < b passes a
    # KS test against N(0, 1) (p > 1e-3); two disjoint increments have |correlation| < 4/sqrt(n)
    # (4 standard errors of a zero correlation).
    n = 20_000
    bm = tree((n,), t0=0.5, t1=3.0, seeds=2024)
    a, b, c = 0.731, 1.9137, 2.4
    x = bm(a, b) / math.sqrt(b - a)
    y = bm(b, c) / math.sqrt(c - b)
    for z in (x, y):
        assert stats.kstest(z.numpy(), "norm").pvalue > 1e-3
    assert abs(corr(x, y)) < 4 / math.sqrt(n)
    # Backwards in time: same law (variance |tb - ta|).
    assert stats.kstest((bm(c, a) / math.sqrt(c - a)).numpy(), "norm").pvalue > 1e-3


def test_marginal_variance_and_covariance():
    # Expected: Var W(t) = t - t0 at non-dyadic t, within 5 standard errors (relative 5*sqrt(2/n));
    # Corr(W(s), W(t)) = sqrt((s - t0) / (t - t0)) for s < t, within 5 standard errors
    # ((1 - r**2) / sqrt(n)); samples are independent (Corr across samples ~ 0).
    n = 20_000
    bm = tree((n,), t0=0.0, t1=1.0, seeds=77)
    s, t = 0.2718281, 0.6180339
    ws, wt = bm(s), bm(t)
    for u, w in ((s, ws), (t, wt)):
        assert abs(float(w.var()) / u - 1) < 5 * math.sqrt(2 / n)
        assert abs(float(w.mean())) < 5 * math.sqrt(u / n)
    r = math.sqrt(s / t)
    assert abs(corr(ws, wt) - r) < 5 * (1 - r * r) / math.sqrt(n)
    assert abs(corr(wt[:-1], wt[1:])) < 4 / math.sqrt(n)


def test_close_points_keep_brownian_variance():
    # Expected: t and s 1e-6 (t1 - t0) apart share their dyadic cells down to level ~19 yet sit in
    # different leaves (width 2**-24 ~ 6e-8), so W(t) - W(s) is exact: Var = |t - s| within
    # 5 standard errors (relative 5*sqrt(2/n)), also on a non-unit interval, and in float64.
    n = 20_000
    for t0, t1 in ((0.0, 1.0), (2.0, 10.0)):
        span = t1 - t0
        bm = tree((n,), t0=t0, t1=t1, seeds=9)
        s = t0 + 0.3 * span
        t = s + 1e-6 * span
        d = bm(s, t)
        assert abs(float(d.var()) / (t - s) - 1) < 5 * math.sqrt(2 / n)


def test_generator_source_is_reproducible():
    # Expected: the same generator seed gives the same path; another seed a different one; the
    # generator is only read at construction (later draws from it change nothing).
    g = torch.Generator().manual_seed(123)
    a = BrownianTree(0.0, 1.0, (4, 2), generator=g, dtype=F64)
    wa = a(0.3)
    torch.randn(10, generator=g)
    assert torch.equal(a(0.3), wa)
    b = BrownianTree(0.0, 1.0, (4, 2), generator=torch.Generator().manual_seed(123), dtype=F64)
    c = BrownianTree(0.0, 1.0, (4, 2), generator=torch.Generator().manual_seed(124), dtype=F64)
    assert torch.equal(b(0.3), wa)
    assert not torch.equal(c(0.3), wa)


def test_streams_are_independent():
    # Expected: stream=1 and stream=2 of the same seeds give uncorrelated paths (|r| < 4/sqrt(n)).
    n = 20_000
    x = tree((n,), seeds=0, stream=1)(0.6)
    y = tree((n,), seeds=0, stream=2)(0.6)
    assert abs(corr(x, y)) < 4 / math.sqrt(n)


# ---- BrownianIncrements --------------------------------------------------------------------------
def test_increments_consecutive_and_sign_rule():
    # Expected: inc(ts[i], ts[i+1]) is the step's increment and inc(ts[i+1], ts[i]) its exact
    # negative; per-sample (batch,) times pick each sample's own step; a float32 copy of a grid time
    # is still recognised; sample i of seeds=s equals the single sample of seeds=s+i.
    ts = [1.0, 0.6, 0.25, 0.0]
    inc = BrownianIncrements(ts, (4, 3), seeds=8, dtype=F64)
    assert len(inc) == 3
    steps = [inc(a, b) for a, b in zip(ts[:-1], ts[1:])]
    for (a, b), dw in zip(zip(ts[:-1], ts[1:]), steps):
        assert torch.equal(inc(b, a), -dw)
        assert torch.equal(inc(torch.tensor(a, dtype=torch.float32), torch.tensor(b)), dw)
    ta = torch.tensor([1.0, 0.6, 0.0, 0.25], dtype=F64)
    tb = torch.tensor([0.6, 0.25, 0.25, 0.6], dtype=F64)
    mixed = inc(ta, tb)
    want = torch.stack((steps[0][0], steps[1][1], -steps[2][2], -steps[1][3]))
    assert torch.equal(mixed, want)
    single = BrownianIncrements(ts, (1, 3), seeds=10, dtype=F64)
    assert torch.equal(single(0.6, 0.25)[0], steps[1][2])
    # An increasing grid works the same way.
    up = BrownianIncrements([0.0, 0.25, 0.6, 1.0], (4, 3), seeds=8, dtype=F64)
    assert up(0.25, 0.6).shape == (4, 3)


def test_increments_statistics():
    # Expected: each step's increment / sqrt(|dt|) is N(0, 1) over n = 20000 samples (KS p > 1e-3),
    # different steps are uncorrelated (|r| < 4/sqrt(n)).
    n = 20_000
    ts = [0.0, 0.013, 0.5, 1.7]
    inc = BrownianIncrements(ts, (n,), seeds=1, dtype=F64)
    z = [inc(a, b) / math.sqrt(b - a) for a, b in zip(ts[:-1], ts[1:])]
    for zi in z:
        assert stats.kstest(zi.numpy(), "norm").pvalue > 1e-3
    assert abs(corr(z[0], z[1])) < 4 / math.sqrt(n)
    assert abs(corr(z[1], z[2])) < 4 / math.sqrt(n)


def test_increments_errors():
    # Expected: non-consecutive or off-grid times, bad grids and bad sources are ValueErrors that
    # name the argument.
    inc = BrownianIncrements([1.0, 0.5, 0.2, 0.0], (2, 1), seeds=0)
    with pytest.raises(ValueError, match="consecutive"):
        inc(1.0, 0.2)
    with pytest.raises(ValueError, match="consecutive"):
        inc(0.5, 0.5)
    with pytest.raises(ValueError, match="ta = 0.3 is not a time of the grid"):
        inc(0.3, 0.2)
    with pytest.raises(ValueError, match="tb = .* is not a time of the grid"):
        inc(0.5, 0.21)
    with pytest.raises(ValueError, match="tb must be a float, a 0-d tensor or a \\(batch,\\)"):
        inc(0.5, torch.tensor([0.2, 0.2, 0.2]))
    with pytest.raises(ValueError, match="ts must be strictly monotone"):
        BrownianIncrements([0.0, 0.5, 0.3], (2,), seeds=0)
    with pytest.raises(ValueError, match="ts must be a 1-d grid of at least 2 times"):
        BrownianIncrements([0.0], (2,), seeds=0)
    with pytest.raises(ValueError, match="ts must be finite"):
        BrownianIncrements([0.0, float("nan")], (2,), seeds=0)
    with pytest.raises(ValueError, match="exactly one source"):
        BrownianIncrements([0.0, 1.0], (2,))
    with pytest.raises(ValueError, match="seeds must give one seed per sample"):
        BrownianIncrements([0.0, 1.0], (2,), seeds=[1, 2, 3])


# ---- BrownianTree errors -------------------------------------------------------------------------
def test_tree_errors():
    # Expected: each bad input is a ValueError/TypeError naming the argument, the value and, for
    # times, the interval.
    with pytest.raises(ValueError, match=r"t0 < t1.*t0=1.0, t1=1.0"):
        BrownianTree(1.0, 1.0, (2,), seeds=0)
    with pytest.raises(ValueError, match="t0 < t1"):
        BrownianTree(1.0, 0.0, (2,), seeds=0)
    with pytest.raises(ValueError, match="exactly one source"):
        BrownianTree(0.0, 1.0, (2,))
    with pytest.raises(ValueError, match="exactly one source"):
        BrownianTree(0.0, 1.0, (2,), seeds=0, generator=torch.Generator())
    with pytest.raises(ValueError, match="seeds must give one seed per sample: expected 2"):
        BrownianTree(0.0, 1.0, (2, 3), seeds=[1, 2, 3])
    with pytest.raises(TypeError, match="seeds must be an integer tensor"):
        BrownianTree(0.0, 1.0, (2,), seeds=torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="shape"):
        BrownianTree(0.0, 1.0, (), seeds=0)
    with pytest.raises(ValueError, match="shape"):
        BrownianTree(0.0, 1.0, (0, 3), seeds=0)
    with pytest.raises(TypeError, match="dtype"):
        BrownianTree(0.0, 1.0, (2,), seeds=0, dtype=torch.int64)
    with pytest.raises(ValueError, match="tol must be a finite number > 0"):
        BrownianTree(0.0, 1.0, (2,), seeds=0, tol=0.0)
    with pytest.raises(ValueError, match="tol=1e-20 would need depth 67 > 48"):
        BrownianTree(0.0, 1.0, (2,), seeds=0, tol=1e-20)
    with pytest.raises(ValueError, match="too narrow for float64 times"):
        BrownianTree(1e9, 1e9 + 1e-6, (2,), seeds=0)
    bm = BrownianTree(0.0, 1.0, (2, 3), seeds=0)
    interval = r"\[t0, t1\] = \[0.0, 1.0\]"
    with pytest.raises(ValueError, match=f"ta must lie in {interval}; got ta = 1.5"):
        bm(1.5)
    with pytest.raises(ValueError, match=f"tb must lie in {interval}; got tb = -0.1"):
        bm(0.5, -0.1)
    with pytest.raises(ValueError, match=f"ta must lie in {interval}; got ta = nan"):
        bm(float("nan"))
    with pytest.raises(ValueError, match=rf"tb must lie in {interval}; got tb\[1\] = 2.0"):
        bm(0.5, torch.tensor([0.2, 2.0]))
    with pytest.raises(ValueError, match=r"ta must be a float, a 0-d tensor or a \(batch,\) = \(2,\) tensor"):
        bm(torch.tensor([0.1, 0.2, 0.3]))
    with pytest.raises(TypeError, match="ta must be a float"):
        bm("half")
    # Round-off past the ends (relative slack 1e-12) is accepted and clamped.
    assert torch.equal(bm(1.0 + 1e-14), bm(1.0))
    assert torch.equal(bm(-1e-14), torch.zeros(2, 3))
