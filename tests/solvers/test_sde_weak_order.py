"""Weak orders of the Monte Carlo methods on exact moments (float64).

The weak error ``|E phi(X_h(T)) - E phi(X(T))|`` is estimated as the mean of
``phi(X_h(T)) - phi(X(T))`` with ``X(T)`` the closed-form solution on the same Brownian path: the
difference has the weak error as its mean and a spread of the order of the strong error, so a few
ten thousand paths resolve it (variance reduction by common random numbers). Steps h = 2^-2..2^-5.
Expected: the fitted slope equals the declared weak order within 0.3 (at these coarse steps the
next-order term still bends the curve: measured slopes 0.9-1.0 for order 1, 1.75-1.95 for order 2),
and every error is at least 4 standard errors away from 0 (so the slope is not noise).
"""

from __future__ import annotations

import math

import pytest
import torch

from sdeflow.noise.path import BrownianPath
from sdeflow.sdes.integrate import sdeint
from sdeflow.solvers import get

from ..sdes.problems import GBM, AdditiveDecay
from .test_sde_strong_order import fitted_slope

F64 = torch.float64
N = 20_000
LEVELS = (2, 3, 4, 5)


def weak_errors(problem, method, phi, x0=1.0, seed=0):
    fine = 2 ** max(LEVELS)
    y0 = torch.full((N, 1), x0, dtype=F64)
    bm = BrownianPath([k / fine for k in range(fine + 1)], (N, 1), seed=seed, dtype=F64)
    exact = phi(problem.exact(y0, 1.0, bm(0.0, 1.0)))
    out = []
    for level in LEVELS:
        d = phi(sdeint(problem, y0, [0.0, 1.0], bm, method=method, dt=2.0**-level)[-1]) - exact
        out.append((float(d.mean()), float(d.std()) / math.sqrt(N)))
    return out


def square(x):
    return x * x


CASES = [
    ("euler_maruyama", GBM(mu=1.0, sigma=0.5), square),
    ("platen_weak2", GBM(mu=1.0, sigma=0.5), square),
    ("sriw1", GBM(mu=1.0, sigma=0.5), square),
    ("sra1", AdditiveDecay(), square),
    ("sra3", AdditiveDecay(), square),
]


@pytest.mark.parametrize("method,problem,phi", CASES, ids=[c[0] for c in CASES])
def test_weak_order_on_moments(method, problem, phi):
    # GBM: E X_T^2 = x0^2 exp((2 mu + sigma^2) T); additive: E X_T^2 = (x0^2 + T) / (1 + T)^2.
    order = get(method).weak_order
    errs = weak_errors(problem, method, phi)
    assert all(abs(m) > 4 * se for m, se in errs), errs
    slope = fitted_slope([2.0**-k for k in LEVELS], [abs(m) for m, _ in errs])
    assert abs(slope - order) < 0.3, (slope, errs)
