"""The exponential-integrator kernel: phi-functions, exact weights, grid tables, folded plans."""

import math

import numpy as np
import pytest
import torch

from sdeflow.models.parameterization import PREDICTIONS, to_x0_eps
from sdeflow.processes import EDM, VP, Linear
from sdeflow.solvers._exponential import exp_weights, grid_table, lagrange_integral_weights, phi


@pytest.mark.parametrize("z", [-50.0, -3.0, -1.0, -0.3, -1e-6, 0.0, 1e-6, 0.4, 2.0])
def test_phi_matches_its_integral_definition(z):
    # phi_k(z) = int_0^1 e^{(1-v) z} v^{k-1}/(k-1)! dv; a 2000-point Gauss-Legendre rule is exact to
    # ~1e-15 for these smooth integrands, on both sides of the series/recurrence switch at |z| = 1.
    gx, gw = np.polynomial.legendre.leggauss(200)
    v = 0.5 * (gx + 1.0)
    for k in range(1, 5):
        ref = 0.5 * float(np.sum(gw * np.exp((1 - v) * z) * v ** (k - 1))) / math.factorial(k - 1)
        assert phi(k, z) == pytest.approx(ref, rel=1e-12, abs=1e-300)
    assert phi(1, -math.inf) == 0.0


@pytest.mark.parametrize("z_over_h", [-1.0, -2.0, 1.0])
def test_exp_weights_integrate_polynomials_exactly(z_over_h):
    # int_0^h e^{z(1-u/h)} p(u) du for a cubic p through 4 nodes (one ahead of the step, three behind)
    # must equal sum_j w_j p(u_j) to round-off: the weights are exact for degree < number of nodes.
    h = 0.7
    z = z_over_h * h
    r = [0.0, -0.6, -1.5, -2.2]
    coef = [0.3, -1.2, 0.8, 0.5]
    p = lambda u: sum(c * u**m for m, c in enumerate(coef))
    gx, gw = np.polynomial.legendre.leggauss(50)
    u = 0.5 * h * (gx + 1.0)
    exact = 0.5 * h * float(np.sum(gw * np.exp(z * (1 - u / h)) * p(u)))
    w = exp_weights(r, h, z)
    assert sum(wj * p(rj * h) for wj, rj in zip(w, r)) == pytest.approx(exact, rel=1e-12)


def test_lagrange_integral_weights_are_exact_for_polynomials():
    # The Lagrange basis through 3 nodes integrates any quadratic exactly: int_0^2 (1 + s^2) ds = 2 + 8/3.
    w = lagrange_integral_weights([1.5, 1.0, 0.5], 0.0, 2.0)
    f = lambda s: 1.0 + s * s
    assert sum(wj * f(n) for wj, n in zip(w, [1.5, 1.0, 0.5])) == pytest.approx(2.0 + 8.0 / 3.0, rel=1e-13)


@pytest.mark.parametrize("process", [VP(), EDM(), Linear()])
@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_grid_table_maps_reproduce_the_parameterization_hub(process, prediction):
    # x0_hat = a x + b out exactly as to_x0_eps computes it (the maps are read off the hub, linear in (x, out)).
    ts = [0.9 * process.T, 0.3 * process.T, 0.05 * process.T, 0.0]
    tab = grid_table(process, prediction, ts)
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = torch.randn(5, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for i, t in enumerate(ts[:-1]):
        x0, eps = to_x0_eps(prediction, out, x, torch.tensor(t, dtype=torch.float64), process)
        (p, q), (r, s) = tab.x0_map[i], tab.eps_map[i]
        torch.testing.assert_close(p * x + q * out, x0, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(r * x + s * out, eps, rtol=1e-12, atol=1e-12)
    assert tab.x0_map[-1] is None and tab.lam[-1] == math.inf and tab.rho[-1] == 0.0
