"""The Monte Carlo pricer against closed forms: within 3 standard errors (fixed seeds)."""

from __future__ import annotations

import math

import pytest
import torch

from sdeflow.finance import (
    CIR, GBM, Asian, Barrier, European, Heston, MultiGBM, OrnsteinUhlenbeck, ZeroCouponBond,
    black_scholes, black_scholes_greeks, cir_bond, ou_moments, price,
)
from sdeflow.finance.payoffs import Payoff
from sdeflow.sdes.integrate import sdeint

BS = 10.450583572185565


@pytest.mark.parametrize("antithetic", [False, True])
def test_black_scholes_by_monte_carlo_with_greeks(antithetic):
    # Expected: the exact-step Monte Carlo price is within 3 standard errors of 10.450583572185565,
    # pathwise delta, vega and rho are within 3 standard errors of the closed forms; antithetic
    # variates reduce the standard error (here by ~1.4x for an at-the-money call).
    res = price(GBM(100, 0.05, 0.2), European(100), 1.0, paths=100_000, steps=1, seed=3, chunk=40_000,
                antithetic=antithetic, greeks=("delta", "vega", "rho"))
    assert abs(res.price - BS) < 3 * res.stderr, res
    g = black_scholes_greeks(100, 100, 1.0, 0.05, 0.2)
    for name, want in (("delta", g.delta), ("vega", g.vega), ("rho", g.rho)):
        got, se = res.greeks[name]
        assert abs(got - float(want)) < 3 * se, (name, got, float(want), se)
    assert res.ci[0] < res.price < res.ci[1] and res.paths == 100_000
    if antithetic:
        plain = price(GBM(100, 0.05, 0.2), European(100), 1.0, paths=100_000, steps=1, seed=3, chunk=40_000)
        assert res.stderr < plain.stderr / 1.2


def test_euler_on_gbm_converges_to_black_scholes():
    # Expected: Euler-Maruyama in price space at 64 steps has a weak bias ~ r^2 T h S/2 ~ 0.002, far
    # below 3 standard errors (~0.1) at 40000 paths in float32 (accumulated in float64).
    res = price(GBM(100, 0.05, 0.2), European(100, kind="put"), 1.0, paths=40_000, steps=64, method="euler",
                seed=1, dtype=torch.float32)
    put = float(black_scholes(100, 100, 1.0, 0.05, 0.2, kind="put"))
    assert abs(res.price - put) < 3 * res.stderr


def test_heston_full_truncation_matches_semi_analytic():
    # Expected: full-truncation Euler (Feller condition violated: 2 kappa theta = 0.126 < xi^2 = 0.331)
    # at 50 steps lands within 3 standard errors of the semi-analytic 5.7851554 (bias measured ~0.02
    # at 100 steps, standard error ~0.045 at 30000 paths).
    model = Heston()
    assert not model.feller
    res = price(model, European(100), 1.0, paths=30_000, steps=50, method="euler", seed=2)
    assert abs(res.price - 5.7851554) < 3 * res.stderr, res


def test_cir_bond_by_monte_carlo():
    # Expected: E exp(-int r) by Euler on (r, int r) at 250 steps is within 3 standard errors of the
    # closed form 0.8352344188595 (weak bias ~1e-4, standard error ~3e-4 at 20000 paths).
    res = price(CIR(), ZeroCouponBond(), 5.0, paths=20_000, steps=250, method="euler", seed=4)
    assert abs(res.price - 0.8352344188595) < 3 * res.stderr, res


def test_ou_exact_moments():
    # Expected: OU's exact step reproduces the mean and variance at t = 2 (5 standard errors).
    model = OrnsteinUhlenbeck(x0=1.0, theta=1.5, mu=0.2, sigma=0.4)
    y = sdeint(model, model.initial(50_000), [0.0, 2.0], method="sra1", dt=0.05, seed=0)[-1, :, 0]
    mean, var = ou_moments(1.0, 1.5, 0.2, 0.4, 2.0)
    n = y.numel()
    assert abs(float(y.mean()) - float(mean)) < 5 * math.sqrt(float(var) / n)
    assert abs(float(y.var()) / float(var) - 1) < 5 * math.sqrt(2 / n)


def test_asian_and_barrier_limits():
    # Expected: (1) an up-and-out call with a barrier far away (1000) is the European call; an
    # up-and-in call with barrier at S0 knocks in at once: also the European call (same paths, same
    # value bit for bit); (2) out + in = European per path (exact parity, same seed); (3) the Asian
    # call is cheaper than the European (averaging lowers variance): 5.7 vs 10.45, checked via
    # Jensen's ordering with 3 standard errors of slack.
    kw = dict(paths=20_000, steps=50, seed=5)
    euro = price(GBM(), European(100), 1.0, **kw)
    far = price(GBM(), Barrier(100, barrier=1000.0, style="up-and-out"), 1.0, **kw)
    assert far.price == euro.price
    out = price(GBM(), Barrier(100, barrier=120.0, style="up-and-out"), 1.0, **kw)
    inn = price(GBM(), Barrier(100, barrier=120.0, style="up-and-in"), 1.0, **kw)
    assert abs(out.price + inn.price - euro.price) < 1e-9
    asian = price(GBM(), Asian(100), 1.0, **kw)
    assert asian.price + 3 * asian.stderr < euro.price


def test_basket_of_correlated_assets():
    # Expected: a basket call with weights (1, 0) on MultiGBM is the Black-Scholes call of asset 1
    # (3 standard errors); the log-returns' correlation is the input 0.5 (within 0.02 at 20000 paths).
    model = MultiGBM(s0=(100.0, 80.0), r=0.05, sigmas=(0.2, 0.3), corr=((1.0, 0.5), (0.5, 1.0)))
    res = price(model, European(100, weights=(1.0, 0.0)), 1.0, paths=40_000, steps=1, seed=6)
    assert abs(res.price - BS) < 3 * res.stderr
    y = sdeint(model, model.initial(20_000), [0.0, 1.0], method="milstein", dt=0.1, seed=1)[-1]
    lr = torch.log(y / torch.tensor([100.0, 80.0], dtype=y.dtype))
    assert abs(float(torch.corrcoef(lr.T)[0, 1]) - 0.5) < 0.02


def test_pricer_errors():
    with pytest.raises(ValueError, match="has no exact step"):
        price(Heston(), European(100), 1.0, paths=10, steps=2)
    with pytest.raises(ValueError, match="does not have"):
        price(CIR(), ZeroCouponBond(), 1.0, paths=10, steps=2, method="euler", greeks=("delta",))
    with pytest.raises(ValueError, match="maturity must be"):
        price(GBM(), European(100), 0.0)
    with pytest.raises(ValueError, match="kind must be"):
        European(100, kind="digital")
    with pytest.raises(ValueError, match="multiple of monitoring"):
        price(GBM(), Asian(100), 1.0, paths=10, steps=10, monitoring=3)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        GBM(sigma=-0.1)
    with pytest.raises(TypeError, match="payoff must be"):
        price(GBM(), Payoff, 1.0)
    assert cir_bond  # imported for the docs' cross-reference
