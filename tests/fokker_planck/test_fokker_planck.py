"""The Fokker-Planck solver against closed forms, exact noised mixtures and simulated SDE samples."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sdeflow import VP, fokker_planck as fp
from sdeflow.metrics import jensen_shannon_density
from sdeflow.targets import ring2d

THETA, SIG, M0, S0 = 1.0, 0.8, 1.0, 0.3


def _ou_log_density(t: float, x: torch.Tensor) -> torch.Tensor:
    """Ornstein-Uhlenbeck dx = -theta x dt + sig dW from N(M0, S0^2): Gaussian with
    mean M0 e^{-theta t} and variance S0^2 e^{-2 theta t} + sig^2 (1 - e^{-2 theta t}) / (2 theta)."""
    m = M0 * math.exp(-THETA * t)
    v = S0**2 * math.exp(-2 * THETA * t) + SIG**2 / (2 * THETA) * (1 - math.exp(-2 * THETA * t))
    return -0.5 * (x[:, 0] - m) ** 2 / v - 0.5 * math.log(2 * math.pi * v)


OU = fp.FieldSDE(lambda t, x: -THETA * x, lambda t, x: SIG * torch.ones_like(x))


def test_ornstein_uhlenbeck_converges_at_second_order_and_conserves_mass():
    # MUSCL-minmod + central diffusion + SSP-RK2 is second order for smooth densities: L1 errors at
    # t = 1 against the closed-form marginal (measured 1.4e-2, 3.7e-3, 9.3e-4 on 50, 100, 200 cells)
    # must fall with a fitted order in [1.8, 2.2]; mass stays 1 to 1e-12 (the issue asks 1e-6) and the
    # density stays >= 0.
    errors, hs = [], []
    for n in (50, 100, 200):
        g = fp.Grid((-3.0, 4.0), n)
        sol = fp.solve(OU, lambda x: _ou_log_density(0.0, x), g, [0.0, 0.5, 1.0])
        exact = g.density(lambda x: _ou_log_density(1.0, x), normalize=False)
        errors.append(float((sol.densities[-1] - exact).abs().sum()) * g.cell_volume)
        hs.append(g.dx[0])
        assert float((sol.mass - 1).abs().max()) < 1e-12
        assert float(sol.densities.min()) >= 0
    order = np.polyfit(np.log(hs), np.log(errors), 1)[0]
    assert 1.8 <= order <= 2.2, (errors, order)
    assert errors[-1] < 1.5e-3


def test_positivity_from_a_discontinuous_density_at_the_largest_stable_step():
    # An indicator density (the hardest case for a limiter) under the OU SDE and under the flow alone
    # (no diffusion): with cfl = 1 the step meets dt * sum(3|b|/dx + g^2/dx^2) <= 1 and every density
    # stays >= 0 exactly (no clipping is applied); mass is conserved to round-off.
    g = fp.Grid((-3.0, 3.0), 60)
    p0 = ((g.centers[0] > -0.5) & (g.centers[0] < 0.5)).double()
    p0 = p0 / (p0.sum() * g.cell_volume)
    for sde in (OU, fp.FieldSDE(lambda t, x: -2.0 * torch.sin(3 * x))):
        sol = fp.solve(sde, p0, g, [0.0, 0.3, 1.0], cfl=1.0)
        assert float(sol.densities.min()) >= 0.0
        assert float((sol.mass - 1).abs().max()) < 1e-12


def test_vp_forward_density_of_a_2d_mixture_matches_the_exact_noised_mixture():
    # 4 Gaussians (std 0.25) on a unit circle under VP(beta_max=8): the exact p_t is a mixture with
    # covariances alpha^2 0.0625 I + sigma^2 I. On a 40^2 grid (dx = 0.15) the L1 error stays below
    # 0.03 (measured ~0.02; it falls ~4x per halving of dx) and the JSD below 5e-4 nats.
    target = ring2d(n_modes=4, radius=1.0, std=0.25)
    process = VP(beta_max=8.0)
    g = fp.Grid(((-3.0, 3.0), (-3.0, 3.0)), 40)
    times = [0.0, 0.1, 0.4, 1.0]
    sol = fp.solve(process.forward_sde(), target.log_prob, g, times)
    for i, t in enumerate(times[1:], start=1):
        exact = g.density(lambda x: target.marginal_log_prob(x, t, process), normalize=False)
        assert float((sol.densities[i] - exact).abs().sum()) * g.cell_volume < 0.03
        assert jensen_shannon_density(sol.densities[i], exact, g.cell_volume) < 5e-4
    assert float((sol.mass - sol.mass[0]).abs().max()) < 1e-12


@pytest.mark.slow
def test_reverse_sde_and_flow_with_the_exact_score_carry_the_prior_back_to_the_data():
    # Backward from the prior N(0, 1) at T = 1 under the reverse SDE (eta = 1) and under the
    # probability-flow ODE's continuity equation, both with the exact score: at t = 0.02 the density
    # must match the exact p_t (the data density blurred by sigma = 0.06) to L1 < 0.06 on a 60^2 grid
    # (measured 0.042 and 0.028; 0.084 and 0.065 on 40^2: the error is the grid's, it falls with dx;
    # starting from the prior instead of p_T (alpha(T) = 0.13) changes it by < 1e-5).
    target = ring2d(n_modes=4, radius=1.0, std=0.25)
    process = VP(beta_max=8.0)
    g = fp.Grid(((-3.0, 3.0), (-3.0, 3.0)), 60)
    model = target.model(process, "score")
    exact = g.density(lambda x: target.marginal_log_prob(x, 0.02, process), normalize=False)
    for sde in (process.reverse_sde(model, "score", 1.0), process.probability_flow_ode(model, "score")):
        sol = fp.solve(sde, process.prior_log_prob, g, [1.0, 0.02])
        assert float((sol.densities[-1] - exact).abs().sum()) * g.cell_volume < 0.06
        assert float((sol.mass - 1).abs().max()) < 1e-12


def test_simulated_sde_histograms_agree_with_the_fokker_planck_density():
    # Euler-Maruyama samples of the VP forward SDE, binned on the solver's grid: their JSD to the
    # Fokker-Planck density is sampling noise, so it must stay within 1.5x the floor (the JSD of exact
    # samples' histogram to the exact density, ~cells/(2n)) plus 2e-3, and shrink > 6x with 16x samples.
    target = ring2d(n_modes=4, radius=1.0, std=0.25)
    process = VP(beta_max=8.0)
    g = fp.Grid(((-3.0, 3.0), (-3.0, 3.0)), 24)
    times = [0.0, 0.2, 1.0]
    small = fp.study_target(target, process, g, times, n_samples=1000, sde_steps=200, seed=1)
    large = fp.study_target(target, process, g, times, n_samples=16000, sde_steps=200, seed=1)
    for st in (small, large):
        assert bool((st.jsd_fp_simulated <= 1.5 * st.jsd_floor + 2e-3).all())
    assert bool((large.jsd_fp_simulated * 6 < small.jsd_fp_simulated).all())


def test_grid_and_solver_errors():
    with pytest.raises(ValueError, match="bounds"):
        fp.Grid((1.0, 0.0), 10)
    with pytest.raises(ValueError, match="cells"):
        fp.Grid(((0, 1), (0, 1)), (10,))
    g = fp.Grid((0.0, 1.0), 10)
    with pytest.raises(ValueError, match="monotone|increasing"):
        fp.solve(OU, torch.ones(10), g, [0.0, 1.0, 0.5])
    with pytest.raises(ValueError, match="shape"):
        fp.solve(OU, torch.ones(11), g, [0.0, 1.0])
    with pytest.raises(ValueError, match="cfl"):
        fp.solve(OU, torch.ones(10), g, [0.0, 1.0], cfl=1.5)
    with pytest.raises(TypeError, match="drift"):
        fp.solve(object(), torch.ones(10), g, [0.0, 1.0])
    # Histogram of points: density integrates to the fraction inside the grid.
    h = g.histogram(torch.tensor([[0.05], [0.95], [2.0], [0.5]]))
    assert g.mass(h) == pytest.approx(0.75)
