"""Linear corruptions (masks, projections): the Gaussian EM start, the posterior denoiser, a DiEM round."""

import pytest
import torch

from sdeflow.processes import VP
from sdeflow.targets import GaussianMixture
from sdeflow.training.corrupted import LinearCorruption, PosteriorDenoiser, gaussian_em, mask_corruption

MU = torch.tensor([0.5, -0.3, 0.1], dtype=torch.float64)
L = torch.tensor([[0.8, 0.0, 0.0], [0.3, 0.5, 0.0], [-0.2, 0.1, 0.4]], dtype=torch.float64)
COV = L @ L.T


def _masked(n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = MU + torch.randn(n, 3, generator=gen, dtype=torch.float64) @ L.T
    mask = (torch.rand(n, 3, generator=gen) < 0.5).to(torch.float64)
    return x, mask_corruption(x, mask, 1e-2, generator=gen)


def test_gaussian_em_recovers_mean_and_covariance_from_masked_data():
    # Each coordinate seen with probability 1/2, so every pair of coordinates is seen together in
    # a quarter of the samples: EM's fixed point is the maximum-likelihood Gaussian, within Monte
    # Carlo error of the truth (sd ~ 0.8 / sqrt(n/4) ~ 0.02 at n = 8000; bound 0.08).
    _, corruption = _masked(8000)
    mu, cov = gaussian_em(corruption, iterations=60)
    assert float((mu - MU).abs().max()) < 0.08, mu
    assert float((cov - COV).abs().max()) < 0.08, cov


def test_posterior_denoiser_is_exact_for_a_gaussian_prior():
    # For a Gaussian prior Tweedie's covariance s^2 J is exact and p(y | x_t) is Gaussian, so the
    # moment-matching denoiser equals E[x0 | x_t, y] in closed form (to float64 rounding and the
    # conjugate-gradient solve, exact in m = 3 iterations: bound 1e-8).
    process = VP()
    prior = GaussianMixture([1.0], MU[None], covs=COV[None])
    model = prior.model(process, "eps")
    _, corruption = _masked(16, seed=1)
    t = torch.full((16,), 0.3, dtype=torch.float64)
    s = float(process.noise_level(t[0]))
    x_t = process.alpha(t[0]) * (MU + 0.9 * torch.randn(16, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64))
    got = PosteriorDenoiser(model, process, corruption.y, corruption.A, corruption.sigma_y, cg_iters=3)(x_t, t)
    xt = x_t / process.alpha(t[0])
    A, y, sy = corruption.A, corruption.y, corruption.sigma_y
    prec = torch.linalg.inv(COV) + torch.eye(3, dtype=torch.float64) / s**2 + A.mT @ A / sy**2
    rhs = (torch.linalg.inv(COV) @ MU) + xt / s**2 + (A.mT @ y[..., None])[..., 0] / sy**2
    want = torch.linalg.solve(prec, rhs[..., None])[..., 0]
    assert torch.allclose(got, want, atol=1e-8, rtol=0), float((got - want).abs().max())


def test_bad_corruptions_are_refused():
    x = torch.zeros(4, 3)
    with pytest.raises(ValueError, match="mask must be"):
        mask_corruption(x, torch.ones(4, 2))
    with pytest.raises(ValueError, match="only 0"):
        mask_corruption(x, torch.full((4, 3), 0.5))
    with pytest.raises(ValueError, match="y must have shape"):
        LinearCorruption(torch.zeros(4, 2), torch.zeros(4, 3, 3), 0.01, (3,))
    with pytest.raises(ValueError, match="sigma_y"):
        LinearCorruption(torch.zeros(4, 3), torch.zeros(4, 3, 3), 0.0, (3,))


def test_high_noise_covariance_is_exact_for_an_isotropic_gaussian_prior():
    # Above max_level the step uses diag(s^2 v / (s^2 + v)), which is Cov[x0 | xt] exactly for a prior N(mu, v I):
    # the denoiser then equals the closed form too (bound 1e-8), at a level where Tweedie's s^2 J is not used.
    process = VP()
    v = 0.3
    prior = GaussianMixture([1.0], MU[None], stds=[v**0.5])
    _, corruption = _masked(8, seed=3)
    t = torch.full((8,), 0.8, dtype=torch.float64)
    s = float(process.noise_level(t[0]))
    assert s > 2.0
    x_t = process.alpha(t[0]) * (MU + s * torch.randn(8, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64))
    den = PosteriorDenoiser(prior.model(process, "eps"), process, corruption.y, corruption.A, corruption.sigma_y, cg_iters=3,
                            prior_var=torch.full((3,), v, dtype=torch.float64), max_level=1.0)
    got = den(x_t, t)
    xt = x_t / process.alpha(t[0])
    A, y, sy = corruption.A, corruption.y, corruption.sigma_y
    prec = torch.eye(3, dtype=torch.float64) * (1 / v + 1 / s**2) + A.mT @ A / sy**2
    rhs = MU / v + xt / s**2 + (A.mT @ y[..., None])[..., 0] / sy**2
    want = torch.linalg.solve(prec, rhs[..., None])[..., 0]
    assert torch.allclose(got, want, atol=1e-8, rtol=0), float((got - want).abs().max())
