"""GaussianMixture.posterior against brute force: a 2-D grid and Monte Carlo importance weights."""

import math

import pytest
import torch

from sdeflow.inverse.operators import Denoising, Inpainting, Linear
from sdeflow.targets import GaussianMixture


def _prior():
    return GaussianMixture(
        [0.2, 0.5, 0.3],
        [[-1.0, 0.0], [1.0, 1.0], [0.0, -1.5]],
        covs=[[[0.3, 0.1], [0.1, 0.2]], [[0.2, -0.05], [-0.05, 0.4]], [[0.5, 0.0], [0.0, 0.1]]],
    )


def test_posterior_matches_grid_quadrature():
    prior = _prior()
    op = Linear(torch.tensor([[1.0, 0.5]], dtype=torch.float64), noise_std=0.4)
    y = torch.tensor([[0.7]], dtype=torch.float64)
    post = prior.posterior(op, y)
    # Unnormalized p(x) p(y | x) on a 1001 x 1001 grid of [-5, 5]^2, normalized by the Riemann sum. The
    # integrand is smooth and negligible at the border, so the Riemann sum is spectrally accurate: the
    # log-densities agree to ~1e-12 where they matter (we allow 1e-8), the moments to 1e-8.
    g = torch.linspace(-5, 5, 1001, dtype=torch.float64)
    X, Y = torch.meshgrid(g, g, indexing="ij")
    pts = torch.stack([X.reshape(-1), Y.reshape(-1)], -1)
    log_joint = prior.log_prob(pts) - 0.5 * (y[0, 0] - pts @ op.A[0]) ** 2 / op.noise_std**2
    cell = float((g[1] - g[0]) ** 2)
    log_post = log_joint - (torch.logsumexp(log_joint, 0) + math.log(cell))
    exact = post.log_prob(pts)
    where = exact > -20
    assert float((log_post - exact)[where].abs().max()) < 1e-8
    p = torch.exp(log_post) * cell
    m = p @ pts
    C = (pts - m).T @ ((pts - m) * p[:, None])
    assert float((m - post.mean).abs().max()) < 1e-8
    assert float((C - post.covariance).abs().max()) < 1e-8


def test_posterior_weights_match_importance_sampling():
    # Self-normalized importance sampling with the prior as proposal: the posterior weight of component k is
    # E_prior[1{component = k} p(y|x)] / E_prior[p(y|x)]. With 400,000 draws the standard error of each weight
    # is below 3e-3 here; we allow 0.015 (5 standard errors).
    prior = _prior()
    op = Denoising(0.8, event_shape=(2,))
    y = torch.tensor([[0.2, 0.3]], dtype=torch.float64)
    post = prior.posterior(op, y)
    x, comp = prior.sample(400_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64, return_components=True)
    logw = -0.5 * ((y - x) ** 2).sum(-1) / op.noise_std**2
    w = torch.exp(logw - logw.max())
    est = torch.stack([w[comp == k].sum() for k in range(3)]) / w.sum()
    assert float((est - post.weights).abs().max()) < 0.015


def test_posterior_refuses_bad_input():
    prior = _prior()
    with pytest.raises(ValueError, match="noise_std"):
        prior.posterior(Denoising(0.0, event_shape=(2,)), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="y must"):
        prior.posterior(Denoising(0.1, event_shape=(2,)), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="y must have shape"):
        prior.posterior(Denoising(0.1), torch.zeros(1, 3))
    with pytest.raises(TypeError, match="operator"):
        prior.posterior("identity", torch.zeros(1, 2))
    with pytest.raises(ValueError, match="event shape"):
        prior.posterior(Inpainting(torch.ones(3, dtype=torch.bool), noise_std=0.1), torch.zeros(1, 3))
