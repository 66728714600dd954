"""Closed forms against the issue's reference prices and against each other."""

from __future__ import annotations

import math

import pytest
import torch

from sdeflow.finance import black_scholes, black_scholes_greeks, cir_bond, heston_price, ou_moments

F64 = torch.float64


def test_reference_prices():
    # Expected: Black-Scholes call S0 = K = 100, r = 0.05, vol = 0.2, T = 1: 10.450583572185565;
    # Heston with Fang & Oosterlee's (2008) parameters: 5.7851554 (given to 8 digits, so 1e-6);
    # CIR bond (kappa 0.5, theta 0.04, sigma 0.1, r0 0.03, T 5): 0.8352344188595. All to 1e-6 or better.
    assert abs(float(black_scholes(100, 100, 1, 0.05, 0.2)) - 10.450583572185565) < 1e-12
    assert abs(heston_price(100, 100, 1, 0.0, 1.5768, 0.0398, 0.5751, -0.5711, 0.0175) - 5.7851554) < 1e-6
    assert abs(float(cir_bond(0.03, 0.5, 0.04, 0.1, 5.0)) - 0.8352344188595) < 1e-12


def test_put_call_parity_and_heston_limit():
    # Expected: C - P = S e^{-qT} - K e^{-rT} to 1e-12 (Black-Scholes) and 1e-9 (Heston); Heston with
    # vanishing vol of vol and v0 = theta = sigma^2 is Black-Scholes (to 1e-6 at xi = 1e-4).
    c = black_scholes(100, 90, 0.7, 0.03, 0.25, q=0.01)
    p = black_scholes(100, 90, 0.7, 0.03, 0.25, q=0.01, kind="put")
    assert abs(float(c - p) - (100 * math.exp(-0.007) - 90 * math.exp(-0.021))) < 1e-12
    args = (100, 95, 1.0, 0.02, 1.5768, 0.0398, 0.5751, -0.5711, 0.0175)
    hc, hp = heston_price(*args), heston_price(*args, kind="put")
    assert abs(hc - hp - (100 - 95 * math.exp(-0.02))) < 1e-9
    bs = float(black_scholes(100, 90, 1.0, 0.05, 0.2))
    assert abs(heston_price(100, 90, 1.0, 0.05, 2.0, 0.04, 1e-4, 0.0, 0.04) - bs) < 1e-6


def test_black_scholes_greeks_match_autograd():
    # Expected: each closed-form Greek equals the autograd derivative of the closed-form price to 1e-10.
    s, v, r, t = (torch.tensor(x, dtype=F64, requires_grad=True) for x in (100.0, 0.2, 0.05, 1.0))
    for kind in ("call", "put"):
        price = black_scholes(s, 105.0, t, r, v, q=0.01, kind=kind)
        ds, dv, dr, dt = torch.autograd.grad(price, (s, v, r, t), create_graph=True)
        gamma = torch.autograd.grad(ds, s)[0]
        g = black_scholes_greeks(100.0, 105.0, 1.0, 0.05, 0.2, q=0.01, kind=kind)
        for got, want in ((g.delta, ds), (g.vega, dv), (g.rho, dr), (g.theta, -dt), (g.gamma, gamma)):
            assert abs(float(got) - float(want.detach())) < 1e-10


def test_ou_moments_and_cir_limits():
    # Expected: OU mean/variance at t -> infinity are mu and sigma^2/(2 theta); at t = 0 they are x0, 0.
    # The CIR bond tends to exp(-r0 T) as sigma -> 0 and kappa -> 0 (rate frozen at r0), to 1e-6.
    m, v = ou_moments(1.0, 2.0, 0.5, 0.3, 50.0)
    assert abs(float(m) - 0.5) < 1e-12 and abs(float(v) - 0.09 / 4) < 1e-12
    m, v = ou_moments(1.0, 2.0, 0.5, 0.3, 0.0)
    assert float(m) == 1.0 and float(v) == 0.0
    assert abs(float(cir_bond(0.03, 1e-9, 0.04, 1e-5, 2.0)) - math.exp(-0.06)) < 1e-6


def test_errors():
    with pytest.raises(ValueError, match="kind must be 'call' or 'put'"):
        black_scholes(100, 100, 1, 0.05, 0.2, kind="straddle")
