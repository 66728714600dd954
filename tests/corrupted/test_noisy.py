"""Noisy-data objectives: the double-Tweedie identity and the minimizers of the expected losses."""

import math

import pytest
import torch

from sdeflow.processes import VP
from sdeflow.processes import get as get_process
from sdeflow.targets import GaussianMixture
from sdeflow.training import DenoisingScoreMatching
from sdeflow.training.corrupted import NoisyDataObjective, check_noise_level, double_tweedie

MEAN = torch.tensor([0.3, -0.2], dtype=torch.float64)
STD = torch.tensor([0.6, 0.9], dtype=torch.float64)
SIGMA_N = 0.5


def test_double_tweedie_matches_exact_mixture_denoisers():
    # E[x0 | xt] of the clean mixture from E[y | xt] of the noisy one (components' covariances
    # + sigma_n^2 I): the identity is exact, so float64 agrees to rounding (1e-10).
    process = get_process("edm")  # noise level = t exactly, so no round trip through t_from_noise_level
    clean = GaussianMixture([0.3, 0.7], [[-1.0, 0.5, 0.0], [0.8, -0.4, 0.3]], stds=[[0.3, 0.2, 0.5], [0.15, 0.4, 0.25]])
    noisy = GaussianMixture([0.3, 0.7], [[-1.0, 0.5, 0.0], [0.8, -0.4, 0.3]],
                            stds=torch.sqrt(torch.tensor([[0.3, 0.2, 0.5], [0.15, 0.4, 0.25]], dtype=torch.float64) ** 2 + SIGMA_N**2))
    gen = torch.Generator().manual_seed(0)
    for s in (0.6, 1.0, 3.0):
        xt = 2.0 * torch.randn(64, 3, generator=gen, dtype=torch.float64)
        t_clean = process.t_from_noise_level(torch.tensor(s, dtype=torch.float64))
        t_noisy = process.t_from_noise_level(torch.tensor(math.sqrt(s * s - SIGMA_N**2), dtype=torch.float64))
        x0_hat = clean.x0(process.alpha(t_clean) * xt, t_clean, process)
        y_hat = noisy.x0(process.alpha(t_noisy) * xt, t_noisy, process)
        got = double_tweedie(y_hat, xt, torch.tensor(s, dtype=torch.float64), SIGMA_N)
        assert torch.allclose(got, x0_hat, atol=1e-10, rtol=0), float((got - x0_hat).abs().max())


class _Perturbed(torch.nn.Module):
    """The exact Gaussian denoiser ``m + v/(v + s^2) (xt - m)`` plus ``u xt + b``: an x0 model with two parameters."""

    prediction = "x0"

    def __init__(self, process):
        super().__init__()
        self.process = process
        self.u = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))
        self.b = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, x, t):
        t = t.to(torch.float64)
        alpha, s = self.process.alpha(t)[:, None], self.process.noise_level(t)[:, None]
        xt = x / alpha
        var = STD**2
        return MEAN + var / (var + s**2) * (xt - MEAN) + self.u * xt + self.b


def _newton_step(objective, n=200_000, seed=1):
    # The loss is quadratic in (u, b) for fixed draws: one Newton step from (0, 0) lands on the
    # empirical minimizer (for the consistency term: the stationary point with the target held).
    process = objective.process
    gen = torch.Generator().manual_seed(seed)
    y = MEAN + STD * torch.randn(n, 2, generator=gen, dtype=torch.float64)
    y = y + SIGMA_N * torch.randn(n, 2, generator=gen, dtype=torch.float64)
    model = _Perturbed(process)
    params = [model.u, model.b]
    loss = objective.loss(model, y, generator=torch.Generator().manual_seed(seed + 1)).loss
    grad = torch.autograd.grad(loss, params, create_graph=True)
    hess = torch.stack([torch.stack(torch.autograd.grad(g, params, retain_graph=True)) for g in grad])
    return -torch.linalg.solve(hess, torch.stack(grad).detach())


@pytest.mark.parametrize("method", ["tweedie", "sure"])
def test_ambient_objectives_are_minimized_by_the_clean_denoiser(method):
    # Times above sigma_n only (noise level from 0.55 to ~6): the minimizer over (u, b) is 0 up to
    # Monte Carlo error ~1/sqrt(n) (measured |step| < 0.01 at n = 2e5; bound 0.03).
    process = VP()
    lo = float(process.t_from_noise_level(torch.tensor(0.55, dtype=torch.float64)))
    obj = NoisyDataObjective(process, "x0", sigma_n=SIGMA_N, method=method, time_sampler={"name": "uniform", "t_lo": lo, "t_hi": 0.5})
    step = _newton_step(obj)
    assert float(step.abs().max()) < 0.03, step


def test_sure_estimates_the_clean_error_with_per_coordinate_noise():
    # E[SURE(h)] = E|h(xt) - x0|^2 for any h (Stein's lemma about y's noise), here a denoiser that is not the
    # minimizer (u = 0.3, b = 0.1) and a noise level per coordinate (0.3, 0.6). With the x0 prediction and
    # uniform weighting the per-sample loss is the estimate itself. Both sides are Monte Carlo means over
    # n = 2e5 draws of the same (t, x0, noise) law; the bound is 4 combined standard errors (the measured
    # gap is 0.5 of them), while leaving out the divergence term moves the mean by ~85 of them.
    process = VP()
    sigma_n = torch.tensor([0.3, 0.6], dtype=torch.float64)
    lo = float(process.t_from_noise_level(torch.tensor(0.65, dtype=torch.float64)))
    obj = NoisyDataObjective(process, "x0", sigma_n=sigma_n, method="sure", time_sampler={"name": "uniform", "t_lo": lo, "t_hi": 0.5})
    model = _Perturbed(process)
    with torch.no_grad():
        model.u.fill_(0.3)
        model.b.fill_(0.1)
    n = 200_000
    gen = torch.Generator().manual_seed(3)
    x0 = MEAN + STD * torch.randn(n, 2, generator=gen, dtype=torch.float64)
    y = x0 + sigma_n * torch.randn(n, 2, generator=gen, dtype=torch.float64)
    sure = obj.loss(model, y, generator=torch.Generator().manual_seed(4)).per_sample.detach()
    # the clean error on independent draws of the same law
    t = lo + (0.5 - lo) * torch.rand(n, generator=gen, dtype=torch.float64)
    alpha, s = process.alpha(t)[:, None], process.noise_level(t)[:, None]
    with torch.no_grad():
        h = model(alpha * (x0 + s * torch.randn(n, 2, generator=gen, dtype=torch.float64)), t)
    clean = (h - x0).pow(2).mean(dim=1)
    se = math.sqrt(float(sure.var()) / n + float(clean.var()) / n)
    assert abs(float(sure.mean()) - float(clean.mean())) < 4 * se, (float(sure.mean()), float(clean.mean()), se)


@pytest.mark.parametrize("steps, weighting", [(1, "anchor"), (4, "anchor"), (1, "dsm")])
def test_consistency_term_is_stationary_at_the_clean_denoiser(steps, weighting):
    # Times below sigma_n only: every bridge step's mean given its start is exact and the denoiser is linear, so the
    # exact model is the stationary point for any chain length and weighting; bound 0.03 as above.
    process = VP()
    hi = float(process.t_from_noise_level(torch.tensor(0.45, dtype=torch.float64)))
    obj = NoisyDataObjective(process, "x0", sigma_n=SIGMA_N, time_sampler={"name": "uniform", "t_lo": 0.02, "t_hi": hi},
                             consistency_steps=steps, consistency_weighting=weighting)
    step = _newton_step(obj)
    assert float(step.abs().max()) < 0.03, step


def test_naive_dsm_on_noisy_data_is_biased():
    # The check above can fail: plain DSM on y learns y's denoiser v_y/(v_y + s^2) with
    # v_y = v + sigma_n^2, so its minimizer sits far from the clean one: measured |step| = 0.045 on
    # the same draws where the corrected objectives give < 0.01 (bound 0.03, six Monte Carlo errors).
    process = VP()
    lo = float(process.t_from_noise_level(torch.tensor(0.55, dtype=torch.float64)))
    obj = DenoisingScoreMatching(process, "x0", time_sampler={"name": "uniform", "t_lo": lo, "t_hi": 0.5})
    step = _newton_step(obj)
    assert float(step.abs().max()) > 0.03, step


def test_bad_noise_levels_are_refused():
    data = torch.randn(100, 2, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="units"):
        check_noise_level(25.0, (2,), data=data)  # e.g. a level in 0..255 pixel units on normalized data
    assert float(check_noise_level(25.0, (2,), data=data, units="model")) == 25.0
    with pytest.raises(ValueError, match="event shape"):
        check_noise_level(torch.ones(3), (2,))
    with pytest.raises(ValueError, match="> 0"):
        check_noise_level(-0.1, (2,))
    with pytest.raises(ValueError, match="too large for the process"):
        NoisyDataObjective(VP(), sigma_n=500.0)
    with pytest.raises(ValueError, match="method"):
        NoisyDataObjective(VP(), sigma_n=0.5, method="magic")
    with pytest.raises(ValueError, match="consistency_weighting"):
        NoisyDataObjective(VP(), sigma_n=0.5, consistency_weighting="snr")
    with pytest.raises((ValueError, TypeError), match="consistency_steps"):
        NoisyDataObjective(VP(), sigma_n=0.5, consistency_steps=0)


def test_bridge_chain_law_against_a_two_point_prior():
    # Prior x0 = +-1 (equal weights), exact denoiser tanh(xt / s^2). Given x_u at s_u^2 = 0.5, the law of x' at s'^2 = 0.01 is
    # the mixture over x0 | x_u of N(x0 + r (x_u - x0), s'^2 (1 - r)), r = s'^2 / s_u^2: mean tanh(x_u / s_u^2)(1 - r) + r x_u,
    # variance s'^2 (1 - r) + (1 - r)^2 Var[x0 | x_u] = 0.693. One bridge from h(x_u) has the exact mean and misses the second
    # term (0.683 of it); the model's own chain approaches the law as its steps shorten (measured variance error 0.68 / 0.37 /
    # 0.10 for K = 1 / 4 / 16; bounds: K = 1 within 5 standard errors of the stated deficit, K = 16 under a fifth of it).
    process = VP()

    class TwoPoint:
        prediction = "x0"

        def __call__(self, x, t):
            t = t.to(torch.float64)
            a, s = process.alpha(t)[:, None], process.noise_level(t)[:, None]
            return torch.tanh((x / a) / s**2)

    n, su2, sp2, xu = 200_000, 0.5, 0.01, 0.3
    r = sp2 / su2
    mean = math.tanh(xu / su2) * (1 - r) + r * xu
    missing = (1 - r) ** 2 * (1 - math.tanh(xu / su2) ** 2)
    var = sp2 * (1 - r) + missing
    se_var, se_mean = var * math.sqrt(2 / n), math.sqrt(var / n)
    errors = {}
    for K in (1, 16):
        obj = NoisyDataObjective(process, "x0", sigma_n=SIGMA_N, consistency_steps=K)
        gen = torch.Generator().manual_seed(K)
        x = obj.bridge_chain(TwoPoint(), torch.full((n, 1), xu, dtype=torch.float64), torch.full((n, 1), math.tanh(xu / su2), dtype=torch.float64),
                             su2, torch.full((n,), sp2, dtype=torch.float64), lambda like: torch.randn(like.shape, generator=gen, dtype=like.dtype))
        errors[K] = (float(x.mean()) - mean, float(x.var()) - var)
    assert abs(errors[1][0]) < 5 * se_mean, errors
    assert abs(errors[1][1] + missing) < 5 * se_var, errors
    assert abs(errors[16][1]) < 0.2 * missing, errors
