"""GaussianBridge: the closed-form Schrodinger bridge between Gaussians (Bunne et al. 2023)."""

import math

import numpy as np
import pytest
import torch

from sdeflow.targets import GaussianBridge


def _random_spd(d: int, seed: int, floor: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return a @ a.T / d + floor * torch.eye(d, dtype=torch.float64)


def test_scalar_case_is_the_golden_ratio_conjugate():
    # N(0,1) -> N(0,1), sigma = 1: C = (sqrt(5) - 1)/2 (DSBM's Gaussian benchmark figure), to float64 precision.
    c = GaussianBridge([0.0], [[1.0]], [0.0], [[1.0]], sigma=1.0).cross_covariance()
    assert abs(float(c) - (math.sqrt(5.0) - 1.0) / 2.0) < 1e-14
    # Scalar variances v0, v1 and any sigma: C = (sqrt(4 v0 v1 + sigma^4) - sigma^2) / 2.
    for v0, v1, s in [(2.0, 0.5, 0.7), (0.3, 4.0, 2.0)]:
        c = GaussianBridge([1.0], [[v0]], [-2.0], [[v1]], sigma=s).cross_covariance()
        assert abs(float(c) - (math.sqrt(4 * v0 * v1 + s**4) - s**2) / 2) < 1e-12


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0])
def test_coupling_is_the_schrodinger_system_solution(sigma):
    # The static SB is pi(x0, x1) ~ exp(f(x0) + g(x1) - |x0 - x1|^2 / (2 sigma^2)): the joint precision's
    # off-diagonal block is exactly -I / sigma^2, and the two marginals are the given ones (to ~1e-12).
    d = 4
    c0, c1 = _random_spd(d, 1, 0.3), _random_spd(d, 2, 0.5)
    br = GaussianBridge(torch.arange(d) * 0.1, c0, -torch.ones(d), c1, sigma=sigma)
    prec = torch.linalg.inv(br.joint_covariance())
    assert torch.allclose(prec[:d, d:] * sigma**2, -torch.eye(d, dtype=torch.float64), atol=1e-9)
    for t, cov in ((0.0, c0), (1.0, c1)):
        assert torch.allclose(br.marginal(t)[1], cov, atol=1e-12)


def test_cross_covariance_against_entropic_ot_of_samples():
    # Monte Carlo of the reference conditioned on its endpoint laws: the static bridge is the entropic OT
    # plan of the samples for the cost |x - y|^2 / 2 at regularization sigma^2 (POT's Sinkhorn). With 800
    # points per side the plan's cross-covariance carries a sampling error of ~0.04 per entry: 0.12.
    import ot

    d, sigma, n = 2, 0.8, 800
    c0 = torch.tensor([[1.0, 0.4], [0.4, 0.7]], dtype=torch.float64)
    c1 = torch.tensor([[0.6, -0.2], [-0.2, 1.3]], dtype=torch.float64)
    br = GaussianBridge([0.5, -0.5], c0, [-1.0, 1.0], c1, sigma=sigma)
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(c0).T + br.mean0).numpy()
    y = (torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(c1).T + br.mean1).numpy()
    cost = 0.5 * ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    w = np.full(n, 1.0 / n)
    plan = ot.sinkhorn(w, w, cost, sigma**2, method="sinkhorn_log", numItermax=5000, stopThr=1e-10)
    mx, my = x.mean(0), y.mean(0)
    cross = (x - mx).T @ plan @ (y - my)
    err = np.abs(cross - br.cross_covariance().numpy()).max()
    assert err < 0.12, err


def test_paths_and_drift_reproduce_the_marginals():
    # Bridge paths: the empirical covariance at t = 0.3, 0.7 matches marginal(t) within 5 standard errors
    # (20,000 paths: ~0.05 on entries of size ~1). The forward drift simulated by Euler-Maruyama (200 steps,
    # weak error O(1/200)) from X0 ~ N(mean0, cov0) reaches N(mean1, cov1): mean and covariance within 0.06.
    d, n = 3, 20_000
    c0, c1 = _random_spd(d, 4, 0.4), _random_spd(d, 5, 0.4)
    br = GaussianBridge(torch.zeros(d), c0, torch.ones(d), c1, sigma=1.0)
    paths = br.sample(n, seeds=0, ts=[0.3, 0.7], dtype=torch.float64)
    for k, t in enumerate([0.3, 0.7]):
        mean, cov = br.marginal(t)
        assert (paths[:, k].mean(0) - mean).abs().max() < 0.05
        assert (torch.cov(paths[:, k].T) - cov).abs().max() < 0.08
    g = torch.Generator().manual_seed(7)
    x = br.mean0 + torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(c0).T
    steps = 200
    for i in range(steps):
        t = i / steps
        x = x + br.drift(t, x) / steps + br.sigma * torch.randn(n, d, generator=g, dtype=torch.float64) / steps**0.5
    assert (x.mean(0) - br.mean1).abs().max() < 0.06
    assert (torch.cov(x.T) - c1).abs().max() < 0.08


def test_score_is_the_gradient_of_the_log_density():
    # The closed-form score equals autograd of log_prob to float64 round-off.
    br = GaussianBridge([0.0, 1.0], [1.0, 2.0], [1.0, 0.0], [[1.0, 0.3], [0.3, 0.5]], sigma=0.6)
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64).requires_grad_(True)
    (grad,) = torch.autograd.grad(br.log_prob(0.4, x).sum(), x)
    assert torch.allclose(br.score(0.4, x.detach()), grad, atol=1e-12)


def test_per_sample_seeds_and_shapes():
    br = GaussianBridge([0.0] * 3, 1.0, [1.0] * 3, 2.0)
    x0, x1 = br.sample(6, seeds=100)
    y0, y1 = br.sample(1, seeds=[104])
    assert x0.shape == (6, 3) and x1.dtype == torch.float32
    assert torch.equal(x0[4:5], y0) and torch.equal(x1[4:5], y1)  # sample i depends on seeds[i] alone
    assert br.sample(4, seeds=0, ts=[0.0, 0.5, 1.0]).shape == (4, 3, 3)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="same dimension"):
        GaussianBridge([0.0, 0.0], 1.0, [0.0], 1.0)
    with pytest.raises(ValueError, match="sigma must be a finite number > 0"):
        GaussianBridge([0.0], 1.0, [0.0], 1.0, sigma=-1.0)
    with pytest.raises(ValueError, match="cov1 must be positive definite"):
        GaussianBridge([0.0], 1.0, [0.0], [[-1.0]])
    with pytest.raises(ValueError, match="cov0 must be"):
        GaussianBridge([0.0, 0.0], [[1.0, 0.0, 0.0]], [0.0, 0.0], 1.0)
    br = GaussianBridge([0.0], 1.0, [0.0], 1.0)
    with pytest.raises(ValueError, match="t must lie in"):
        br.marginal(1.5)
    with pytest.raises(ValueError, match="exactly one source"):
        br.sample(3)
    with pytest.raises(ValueError, match="strictly increasing"):
        br.sample(3, seeds=0, ts=[0.5, 0.2])
