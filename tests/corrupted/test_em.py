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
    xt = x_t / process.alpha(t[0])
    A, y, sy = corruption.A, corruption.y, corruption.sigma_y
    prec = torch.linalg.inv(COV) + torch.eye(3, dtype=torch.float64) / s**2 + A.mT @ A / sy**2
    rhs = (torch.linalg.inv(COV) @ MU) + xt / s**2 + (A.mT @ y[..., None])[..., 0] / sy**2
    want = torch.linalg.solve(prec, rhs[..., None])[..., 0]
    # The covariance guards (always on) never act on the exact covariance, with or without the high-noise diagonal
    # (prior_var, in use only above max_level = 10): no correction shortened, the same closed form.
    for guard in ({}, {"prior_var": COV.diagonal(), "max_level": 10.0}):
        den = PosteriorDenoiser(model, process, corruption.y, corruption.A, corruption.sigma_y, cg_iters=3, **guard)
        got = den(x_t, t)
        assert den.fallbacks == 0
        assert torch.allclose(got, want, atol=1e-8, rtol=0), float((got - want).abs().max())


class _RotatingDenoiser:
    """``x0_hat = B xt`` with ``B = 0.2 I + 3 R``, ``R`` a 90-degree rotation in the (0, 1) plane: J = B is no covariance
    (its symmetric part is 0.2 I, its antisymmetric part 15 times larger)."""

    prediction = "x0"

    def __init__(self, process):
        self.process = process
        self.B = 0.2 * torch.eye(3, dtype=torch.float64)
        self.B[0, 1], self.B[1, 0] = 3.0, -3.0

    def __call__(self, x_t, t):
        return (x_t / self.process.alpha(t)[:, None]) @ self.B.T


def test_posterior_denoiser_shortens_a_correction_no_covariance_gives():
    # J = B above: the moment-matching step with C = s^2 B^T moves the observed coordinates by |A C A^T u| > 10 |y - A h|
    # (steps ~ 1 / sigma_y^2 along the rotation), which no covariance can with an exact solve (m = 2 <= cg_iters here):
    # for C >= 0 the correction's observed part A C A^T (sigma_y^2 + A C A^T)^-1 r is shorter than r. The guarded step
    # keeps the raw correction's direction and shortens it so that its observed part has exactly the residual's length.
    process = VP()
    model = _RotatingDenoiser(process)
    n = 8
    gen = torch.Generator().manual_seed(5)
    seen = torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)
    A = torch.diag_embed(seen.expand(n, 3))  # coordinates 0 and 1 seen
    y = torch.randn(n, 3, generator=gen, dtype=torch.float64) * seen
    t = torch.full((n,), 0.3, dtype=torch.float64)
    x_t = process.alpha(t[0]) * torch.randn(n, 3, generator=gen, dtype=torch.float64)
    h = (x_t / process.alpha(t[0])) @ model.B.T
    r = (y - h * seen).norm(dim=1)
    den = PosteriorDenoiser(model, process, y, A, 1e-2, cg_iters=3)
    got = den(x_t, t)
    assert den.fallbacks == n
    # the unguarded correction, from the same conjugate-gradient solve
    raw = den._correction(lambda w: float(process.noise_level(t[0])) ** 2 * (w @ model.B), A, y - h * seen)
    assert bool(((raw * seen).norm(dim=1) > 10 * r).all()), ((raw * seen).norm(dim=1) / r).min()
    step = got - h
    assert torch.allclose((step * seen).norm(dim=1), r, rtol=1e-10, atol=0)
    cos = (step * raw).sum(1) / (step.norm(dim=1) * raw.norm(dim=1))
    assert torch.allclose(cos, torch.ones_like(cos), atol=1e-12)


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
    assert den.fallbacks == 0
    xt = x_t / process.alpha(t[0])
    A, y, sy = corruption.A, corruption.y, corruption.sigma_y
    prec = torch.eye(3, dtype=torch.float64) * (1 / v + 1 / s**2) + A.mT @ A / sy**2
    rhs = MU / v + xt / s**2 + (A.mT @ y[..., None])[..., 0] / sy**2
    want = torch.linalg.solve(prec, rhs[..., None])[..., 0]
    assert torch.allclose(got, want, atol=1e-8, rtol=0), float((got - want).abs().max())


class _ShrinkingDenoiser:
    """``x0_hat = -eps xt``: J = -eps I, a negative curvature no covariance has."""

    prediction = "x0"

    def __init__(self, process, eps):
        self.process, self.eps = process, eps

    def __call__(self, x_t, t):
        return -self.eps * x_t / self.process.alpha(t)[:, None]


def test_a_direction_of_negative_covariance_curvature_ends_the_solve():
    # With C = s^2 J = -0.99 sigma_y^2 I the system sigma_y^2 + A C A^T = 0.01 sigma_y^2 I is positive, so a test of the
    # system's curvature alone takes the step u = 100 r / sigma_y^2 and moves the observed coordinates by -99 r, away from y.
    # C's own curvature along A^T r is negative, so the solve ends before its first step: the output is h itself.
    process = VP()
    n = 4
    t = torch.full((n,), 0.3, dtype=torch.float64)
    s2 = float(process.noise_level(t[0])) ** 2
    sy = 1e-2
    model = _ShrinkingDenoiser(process, 0.99 * sy**2 / s2)
    gen = torch.Generator().manual_seed(6)
    A = torch.diag_embed(torch.ones(n, 3, dtype=torch.float64))
    y = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    x_t = process.alpha(t[0]) * torch.randn(n, 3, generator=gen, dtype=torch.float64)
    got = PosteriorDenoiser(model, process, y, A, sy, cg_iters=3)(x_t, t)
    h = model(x_t, t)
    assert torch.equal(got, h)
