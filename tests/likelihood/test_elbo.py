"""The ELBO: below the exact log-likelihood, rising to it as the discretization is refined."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.integrate import quad

from sdeflow import VP, Linear
from sdeflow.likelihood import elbo
from sdeflow.targets import gaussian, ring2d


def test_discrete_elbo_is_below_the_exact_log_likelihood_and_rises_with_steps():
    # ring2d (std 0.05) with its exact x0 model under VP. The N-step bound of VDM (eq. 11-13) is a bound
    # for every N: each point's ELBO is below log p_0(x) (measured gaps: N = 16 -> 11 nats, 64 -> 2,
    # 256 -> 0.45, each > 3 standard errors). Refining the grid 4x cuts the mean gap by ~4x (first order
    # in the log-SNR step); we ask > 3x.
    target = ring2d()
    process = VP()
    x = target.sample(16, seeds=0, dtype=torch.float64)
    exact = target.log_prob(x)
    model = target.model(process, "x0")
    gaps = []
    for steps in (16, 64, 256):
        res = elbo(model, process, x, prediction="x0", steps=steps, n_samples=32, seed=1)
        gap = exact - res.elbo
        assert bool((gap > 0).all()), f"ELBO above the exact log-likelihood at {steps} steps"
        assert bool((gap > 2 * res.stderr).all())
        gaps.append(float(gap.mean()))
    assert gaps[0] > 3 * gaps[1] > 9 * gaps[2] > 0


def test_continuous_elbo_of_the_exact_model_reaches_the_exact_log_likelihood():
    # The continuous-time bound of the exact model is tight up to O(sigma(t_start)^2) = 1e-6 relative
    # terms, so its stratified estimate must match log p_0 within 4 standard errors of the mean (gap
    # measured -0.005 +- 0.006 nats at 1024 strata).
    target = ring2d()
    process = VP()
    x = target.sample(16, seeds=0, dtype=torch.float64)
    res = elbo(target.model(process, "eps"), process, x, prediction="eps", steps=512, n_samples=16,
               time="continuous", seed=2)
    gap = target.log_prob(x) - res.elbo
    se = float(res.stderr.pow(2).sum().sqrt()) / len(gap)
    assert abs(float(gap.mean())) < 4 * se
    assert se < 0.02


def test_continuous_elbo_matches_quadrature_for_gaussian_data():
    # 1-D Gaussian data N(0, v): eps - eps_hat = (alpha^2 v eps - sigma alpha x) / (alpha^2 v + sigma^2),
    # so E|eps - eps_hat|^2 = (alpha^4 v^2 + sigma^2 alpha^2 x^2) / (alpha^2 v + sigma^2)^2 in closed form;
    # ELBO_inf = prior + reconstruction - 1/2 int E|.|^2 d lambda by scipy quadrature. The estimator must
    # agree within 4 standard errors for each point.
    v = 0.04
    target = gaussian(torch.zeros(1), math.sqrt(v))
    process = VP()
    x = torch.tensor([[0.0], [0.15], [-0.4]], dtype=torch.float64)
    res = elbo(target.model(process, "v"), process, x, prediction="v", steps=256, n_samples=32,
               time="continuous", seed=4)
    t0, T = res.t_start, process.T
    lam0, lamT = float(process.log_snr(t0)), float(process.log_snr(T))
    aT, sT = float(process.alpha(T)), float(process.sigma(T))
    s0 = float(process.sigma(t0) / process.alpha(t0))
    for i, xi in enumerate(x[:, 0].tolist()):
        def integrand(lam: float) -> float:
            a2 = 1.0 / (1.0 + math.exp(-lam))  # VP: alpha^2 = sigmoid(lambda)
            s2 = 1.0 - a2
            return (a2 * a2 * v * v + s2 * a2 * xi * xi) / (a2 * v + s2) ** 2

        integral, _ = quad(integrand, lamT, lam0, limit=400, points=[math.log(1 / v)])
        expected = -(aT**2) * xi**2 / (2 * sT**2) - 0.5 * (math.log(2 * math.pi * s0**2) + 1) - 0.5 * integral
        assert abs(float(res.elbo[i]) - expected) < 4 * float(res.stderr[i]) + 1e-3


def test_elbo_is_the_same_for_every_parameterization_of_the_exact_model():
    # The exact model converted to eps, x0 or velocity gives the same x0_hat, and the noise comes from the
    # same seeds: the estimates agree to round-off (1e-8 nats).
    target = ring2d(std=0.2)
    process = Linear()
    x = target.sample(5, seeds=3, dtype=torch.float64)
    vals = [elbo(target.model(process, k), process, x, prediction=k, steps=32, n_samples=4, seed=5).elbo
            for k in ("velocity", "x0", "v")]
    assert torch.allclose(vals[0], vals[1], atol=1e-8) and torch.allclose(vals[0], vals[2], atol=1e-8)


def test_elbo_input_errors():
    target = ring2d()
    x = target.sample(4, seeds=0)
    with pytest.raises(ValueError, match="even"):
        elbo(target.model(VP(), "eps"), VP(), x, prediction="eps", n_samples=3)
    with pytest.raises(ValueError, match="time"):
        elbo(target.model(VP(), "eps"), VP(), x, prediction="eps", time="semi")
    with pytest.raises(ValueError, match="velocity"):
        elbo(target.model(Linear(), "eps"), Linear(), x, prediction="eps")
