"""The finance module refuses inputs outside its models' domains (naming the argument) and gives the
limits a finance user expects at the domain's edges (issue 10, item 5)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from sdeflow.finance import (
    CIR, GBM, Barrier, European, Heston, MultiGBM, OrnsteinUhlenbeck, black_scholes, black_scholes_greeks, cir_bond,
    heston_price, ou_moments, price,
)


# ---- Black-Scholes at the edges of its domain -----------------------------------------------------
def test_black_scholes_at_maturity_is_the_payoff():
    # Expected: at T = 0 the price is the intrinsic value max(w (S - K), 0): 10 for a call struck at 90
    # and for a put struck at 110 on S = 100, 0 at the money (before: NaN at the money, and the
    # 0/0 of d1 elsewhere); a maturity of 1e-12 years agrees with it to 1e-6.
    assert float(black_scholes(100, 90, 0.0, 0.05, 0.2)) == 10.0
    assert float(black_scholes(100, 110, 0.0, 0.05, 0.2, kind="put")) == 10.0
    assert float(black_scholes(100, 100, 0.0, 0.05, 0.2)) == 0.0
    assert abs(float(black_scholes(100, 90, 1e-12, 0.05, 0.2)) - 10.0) < 1e-6
    # Per element: a tensor of maturities mixes the limit and the formula.
    both = black_scholes(100, 90, torch.tensor([0.0, 1.0]), 0.05, 0.2)
    assert float(both[0]) == 10.0 and abs(float(both[1]) - float(black_scholes(100, 90, 1.0, 0.05, 0.2))) < 1e-12


def test_black_scholes_without_volatility_and_at_zero_strike():
    # Expected: sigma = 0 gives the discounted forward's intrinsic value, 100 - 90 e^{-0.05} = 14.389...
    # (a deterministic asset), and sigma = 1e-9 agrees; a zero strike call is the prepaid forward
    # S e^{-qT} = 100 e^{-0.02} (the asset itself), its put 0.
    want = 100 - 90 * math.exp(-0.05)
    assert abs(float(black_scholes(100, 90, 1.0, 0.05, 0.0)) - want) < 1e-12
    assert abs(float(black_scholes(100, 90, 1.0, 0.05, 1e-9)) - want) < 1e-9
    assert abs(float(black_scholes(100, 0.0, 1.0, 0.05, 0.2, q=0.02)) - 100 * math.exp(-0.02)) < 1e-12
    assert float(black_scholes(100, 0.0, 1.0, 0.05, 0.2, kind="put")) == 0.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sigma": -0.2}, r"sigma must be finite and >= 0; got -0\.2"),
        ({"strike": -1.0}, r"strike must be finite and >= 0; got -1"),
        ({"maturity": -1.0}, r"maturity must be finite and >= 0"),
        ({"s0": 0.0}, r"s0 must be finite and > 0"),
        ({"r": float("nan")}, r"r must be finite"),
        ({"s0": torch.tensor([100.0, -5.0])}, r"s0 must be finite and > 0; got -5\.0 \(among 2 values\)"),
    ],
)
def test_black_scholes_refuses_values_outside_its_domain(kwargs, message):
    # Expected: a ValueError naming the argument and its domain (before: a negative volatility priced
    # the call at -5.57, a negative strike gave NaN).
    args = {"s0": 100.0, "strike": 100.0, "maturity": 1.0, "r": 0.05, "sigma": 0.2} | kwargs
    with pytest.raises(ValueError, match=message):
        black_scholes(**args)


def test_greeks_need_time_and_volatility_and_types_are_checked():
    # Expected: Greeks at T = 0 or sigma = 0 are refused (delta jumps at the strike), naming the
    # argument and pointing to black_scholes for the price; a string is a TypeError.
    with pytest.raises(ValueError, match=r"maturity must be finite and > 0.*use black_scholes"):
        black_scholes_greeks(100, 100, 0.0, 0.05, 0.2)
    with pytest.raises(ValueError, match=r"sigma must be finite and > 0"):
        black_scholes_greeks(100, 100, 1.0, 0.05, 0.0)
    with pytest.raises(TypeError, match=r"s0 must be a real number"):
        black_scholes("100", 100, 1.0, 0.05, 0.2)


def test_heston_cir_ou_closed_forms_refuse_bad_parameters():
    # Expected: rho = 2, v0 < 0, xi = 0 for Heston; r0 < 0 for CIR; theta = 0 for OU: each a ValueError
    # naming the parameter (before: heston_price(rho=2) returned 4.88). At maturity Heston gives the
    # payoff max(S - K, 0) = 10.
    base = dict(s0=100, strike=100, maturity=1.0, r=0.0, kappa=1.5, theta=0.04, xi=0.5, rho=-0.5, v0=0.04)
    for bad, message in (({"rho": 2.0}, r"rho must be in \[-1, 1\]; got 2\.0"), ({"v0": -0.01}, r"v0 must be finite and >= 0"),
                         ({"xi": 0.0}, r"xi must be finite and > 0"), ({"panels": 0}, r"panels must be an integer >= 1")):
        with pytest.raises(ValueError, match=message):
            heston_price(**(base | bad))
    assert heston_price(**(base | {"strike": 90, "maturity": 0.0})) == 10.0
    with pytest.raises(ValueError, match=r"r0 must be finite and >= 0"):
        cir_bond(-0.1, 0.5, 0.04, 0.1, 1.0)
    with pytest.raises(ValueError, match=r"theta must be finite and > 0"):
        ou_moments(1.0, 0.0, 0.0, 0.3, 1.0)


# ---- models and payoffs -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Heston(v0=-1.0), r"v0 must be >= 0; got -1"),
        (lambda: Heston(rho=torch.tensor([[0.5], [1.5]])), r"rho must lie in \[-1, 1\]"),
        (lambda: CIR(r0=-0.1), r"r0 must be >= 0; got -0\.1"),
        (lambda: GBM(sigma=torch.tensor([[0.2], [-0.1]])), r"sigma must be finite and > 0 in every element"),
        (lambda: MultiGBM(s0=(100.0, -1.0)), r"s0\[1\] must be > 0"),
        (lambda: OrnsteinUhlenbeck(sigma=float("inf")), r"sigma must be a finite number"),
        (lambda: European(strike=-1.0), r"strike must be >= 0; got -1"),
        (lambda: Barrier(barrier=-1.0), r"barrier must be a finite price > 0; got -1"),
        (lambda: European(weights=(1.0, float("nan"))), r"weights must be finite numbers"),
    ],
)
def test_models_and_payoffs_refuse_parameters_outside_their_domain(make, message):
    # Expected: a ValueError at construction naming the parameter (before: all accepted, and Heston
    # with v0 = -1 or CIR with r0 = -0.1 priced silently); v0 = 0 and r0 = 0 stay valid.
    with pytest.raises(ValueError, match=message):
        make()
    Heston(v0=0.0), CIR(r0=0.0)


def test_basket_weights_are_explicit_and_one_per_asset():
    # Expected: weights are explicit (basket sum_i w_i S_i, not normalized): a zero-strike call on
    # (1, 1) of two assets at 100 is worth E[S1 + S2] e^{-rT} = 200, on (0.5, 0.5) it is 100 (within
    # 4 standard errors of the exact-step Monte Carlo); weights of the wrong length are refused,
    # including (1, 1) on the single asset of a GBM (before: silently ignored).
    model = MultiGBM(s0=(100.0, 100.0), r=0.05)
    total = price(model, European(0.0, weights=(1.0, 1.0)), 1.0, paths=20_000, steps=1, seed=1)
    mean = price(model, European(0.0, weights=(0.5, 0.5)), 1.0, paths=20_000, steps=1, seed=1)
    assert abs(total.price - 200.0) < 4 * total.stderr and abs(mean.price - 100.0) < 4 * mean.stderr
    with pytest.raises(ValueError, match=r"weights has 2 entries but the model has 1 asset"):
        price(GBM(), European(100.0, weights=(1.0, 1.0)), 1.0, paths=10, steps=1)
    with pytest.raises(ValueError, match=r"weights has 3 entries but the model has 2 asset"):
        price(model, European(100.0, weights=(1.0, 1.0, 1.0)), 1.0, paths=10, steps=1)


def test_pricer_refuses_bad_types_and_a_non_finite_price():
    # Expected: a model without initial/asset, a non-bool antithetic and an integer dtype are
    # TypeErrors naming the argument; Euler on an OU with theta = 1e6 at dt = 0.1 overflows float32
    # (|x| grows 1e5-fold a step): the step warning names dt, then a FloatingPointError names the
    # method and dt instead of returning a NaN price.
    with pytest.raises(TypeError, match=r"model must be a sdeflow.finance model.*has no initial"):
        price(object(), European(100.0), 1.0, paths=10)
    with pytest.raises(TypeError, match=r"antithetic must be True or False"):
        price(GBM(), European(100.0), 1.0, paths=10, antithetic=1)
    with pytest.raises(TypeError, match=r"dtype must be torch.float32 or torch.float64"):
        price(GBM(), European(100.0), 1.0, paths=10, dtype=torch.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(FloatingPointError, match=r"not finite.*'euler'.*dt = 0\.1"):
            price(OrnsteinUhlenbeck(theta=1e6), European(0.0), 1.0, paths=100, steps=10, method="euler",
                  dtype=torch.float32)
