"""Measured orders and exact identities of the foundation's solvers (Euler, Heun, EM, DDIM, DDPM)."""

import math

import pytest
import torch

import sdeflow
from sdeflow.grids import Explicit, Karras, UniformT
from sdeflow.processes import EDM, VE, VP, Cosine, DiscreteVP, Linear, SubVP
from sdeflow.solvers import available, get

from ..gaussian_problem import MU, STD, eps_model, exact_flow


def fitted_slope(steps, errors):
    # Least-squares slope of log(error) against log(step size ~ 1/steps).
    lx = torch.log(1.0 / torch.tensor(steps, dtype=torch.float64))
    ly = torch.log(torch.tensor(errors, dtype=torch.float64))
    lx, ly = lx - lx.mean(), ly - ly.mean()
    return float((lx * ly).sum() / (lx * lx).sum())


@pytest.mark.parametrize("process", [VP(), EDM(), VE(), SubVP(), Cosine()], ids=repr)
@pytest.mark.parametrize("solver", ["euler", "heun", "ddim"])
def test_declared_ode_order_is_measured(process, solver):
    # On Gaussian data the probability-flow ODE has an exact flow; the error at t_min after n steps of a
    # Karras grid (without the final jump to 0) must fall like n^-order: fitted slope within 0.2 of the
    # declared order (Euler 1, Heun 2, DDIM 1).
    declared = get(solver).ode_order
    x = process.prior_sample((16, 1), seeds=0, dtype=torch.float64)
    steps_list, errors = [32, 64, 128, 256], []
    for n in steps_list:
        r = sdeflow.sample(eps_model(process), process, x, solver=solver, steps=n, grid=Karras(to_zero=False))
        exact = exact_flow(process, x, process.T, float(r.ts[-1]))
        errors.append(float((r.samples - exact).abs().max()))
    assert abs(fitted_slope(steps_list, errors) - declared) < 0.2, errors


def test_heun_costs_two_calls_but_one_on_the_last_step():
    p = EDM()
    x = p.prior_sample((4, 1), seeds=0, dtype=torch.float64)
    r = sdeflow.sample(eps_model(p), p, x, solver="heun", steps=10)
    assert r.nfe == 19 == get("heun").nfe(r.ts)
    r = sdeflow.sample(eps_model(p), p, x, solver="heun", steps=10, grid=Karras(to_zero=False))
    assert r.nfe == 20


def test_final_step_to_zero_is_the_exact_denoiser_for_edm():
    # On EDM (alpha = 1, sigma = t) an Euler step from t to 0 is x - t eps_hat = x0_hat (Tweedie's mean):
    # with the exact model it must equal the posterior mean of the Gaussian at t_min (to 1e-12).
    p = EDM()
    x = torch.tensor([[0.3], [1.2]], dtype=torch.float64)
    r = sdeflow.sample(eps_model(p), p, x, solver="euler", grid=[0.01, 0.0])
    post_mean = MU + STD**2 / (STD**2 + 0.01**2) * (x - MU)
    torch.testing.assert_close(r.samples, post_mean, rtol=1e-12, atol=1e-12)


def test_ddim_eta1_equals_ddpm_ancestral():
    # DDIM with eta = 1 is the DDPM posterior step: same noise, same result to 1e-12 (any process).
    for p in (VP(), EDM(), Cosine()):
        x = p.prior_sample((8, 2), seeds=3, dtype=torch.float64)
        a = sdeflow.sample(eps_model(p), p, x, solver="ddim", eta=1.0, steps=12, seed=5)
        b = sdeflow.sample(eps_model(p), p, x, solver="ddpm", steps=12, seed=5)
        torch.testing.assert_close(a.samples, b.samples, rtol=1e-12, atol=1e-12)


def test_ddpm_on_a_discrete_table_is_hos_sampler():
    # On the knots of a DDPM table, one ancestral step from n to n-1 is Ho et al.'s eq. 11 with the
    # posterior variance beta_tilde = (1 - abar_{n-1})/(1 - abar_n) beta_n.
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    p = VP.from_betas(betas)
    ac = torch.cumprod(1 - betas, 0)
    n = 500  # table index (0-based) 500 -> 499; times (n+1)/N
    t0, t1 = (n + 1) / 1000, n / 1000
    x = torch.tensor([[0.4], [-1.0]], dtype=torch.float64)
    eps_hat = eps_model(p)(x, torch.full((2,), t0, dtype=torch.float64))

    class FixedNoise:
        def __call__(self, ta, tb):
            return torch.full_like(x, 0.5) * math.sqrt(abs(tb - ta))

    r = sdeflow.sample(eps_model(p), p, x, solver="ddpm", grid=[t0, t1], brownian=FixedNoise())
    a_n, ab_n, ab_prev, b_n = 1 - betas[n], ac[n], ac[n - 1], betas[n]
    mean = (x - b_n / torch.sqrt(1 - ab_n) * eps_hat) / torch.sqrt(a_n)
    var = (1 - ab_prev) / (1 - ab_n) * b_n
    torch.testing.assert_close(r.samples, mean + torch.sqrt(var) * 0.5, rtol=1e-10, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("solver", ["euler_maruyama", "ddpm", "ddim_eta"])
def test_stochastic_samplers_converge_in_distribution(solver):
    # The reverse SDE with the exact score carries the prior to N(mu, s^2). These samplers have weak
    # order 1, so the bias of the sample std falls like 1/n: measured on VP with a uniform grid it is
    # about 0.075 (DDPM) / 0.02 (EM) at 25 steps and 8x smaller at 200. With 3000 samples (standard
    # error of the std 0.004) we require the error to shrink at least 3x and to be below 0.03 at 200
    # steps, and the mean within 4 standard errors + 0.01.
    p = VP()
    n_samples = 3000
    x = p.prior_sample((n_samples, 1), seeds=0, dtype=torch.float64)
    name, opts = ("ddim", {"eta": 1.0}) if solver == "ddim_eta" else (solver, {})
    errs = []
    for n in (25, 200):
        r = sdeflow.sample(eps_model(p), p, x, solver=name, steps=n, seed=100, grid=UniformT(), **opts)
        s = r.samples
        assert abs(float(s.mean()) - MU) < 4 * STD / math.sqrt(n_samples) + 0.01
        errs.append(abs(float(s.std()) - STD))
    assert errs[1] < 0.03 and (errs[1] < errs[0] / 3 or errs[0] < 0.02), errs


def test_solvers_declare_their_mathematics():
    names = available()
    for name in ["euler", "heun", "euler_maruyama", "ddim", "ddpm"]:
        assert name in names
    assert get("euler").ode_order == 1 and get("heun").ode_order == 2
    assert get("euler_maruyama").strong_order == 0.5 and get("euler_maruyama").weak_order == 1.0
    assert get("ddim").stochastic is False and get("ddim", eta=0.5).stochastic is True
    with pytest.raises(ValueError, match="eta"):
        get("ddim", eta=-1.0)
    with pytest.raises(ValueError, match="bad options"):
        get("heun", order=3)
