"""Checks of lab 7 against the mathematics."""

from __future__ import annotations

import math

import torch

from sdeflow import targets
from sdeflow.inverse import Linear

F64 = torch.float64


def _problem(seed: int, K: int, D: int, M: int):
    gen = torch.Generator().manual_seed(seed)
    weights = torch.rand(K, generator=gen, dtype=F64) + 0.2
    weights = weights / weights.sum()
    means = 2 * torch.randn(K, D, generator=gen, dtype=F64)
    B = torch.randn(K, D, D, generator=gen, dtype=F64)
    covs = B @ B.mT / D + 0.3 * torch.eye(D, dtype=F64)
    A = torch.randn(M, D, generator=gen, dtype=F64)
    y = torch.randn(M, generator=gen, dtype=F64)
    return weights, means, covs, A, y


def check_gaussian_posterior(gaussian_posterior) -> str:
    _, means, covs, A, y = _problem(0, 1, 3, 2)
    mu, Sigma, s = means[0], covs[0], 0.3
    out = gaussian_posterior(mu, Sigma, A, y, s)
    assert isinstance(out, tuple) and len(out) == 2, "return (mean, cov)"
    mean, cov = out
    assert mean.shape == (3,) and cov.shape == (3, 3), "mean must be (D,), cov (D, D)"
    ref = targets.GaussianMixture([1.0], mu[None], covs=Sigma[None]).posterior(Linear(A, noise_std=s), y[None])
    gm = float((mean - ref.means[0]).abs().max())
    gc = float((cov - ref.covs[0]).abs().max())
    assert gm < 1e-10 and gc < 1e-10, f"differs from the exact posterior: mean by {gm:.3g}, covariance by {gc:.3g}"
    # Bayes' rule: log N(x; mean, cov) - log N(x; mu, Sigma) - log N(y; A x, s^2 I) is constant in x.
    post = torch.distributions.MultivariateNormal(mean, cov)
    prior = torch.distributions.MultivariateNormal(mu, Sigma)
    xs = torch.randn(50, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    lik = -0.5 * ((y - xs @ A.T) ** 2).sum(-1) / s**2
    diff = post.log_prob(xs) - prior.log_prob(xs) - lik
    spread = float(diff.max() - diff.min())
    assert spread < 1e-9, f"log p(x|y) - log p(x) - log p(y|x) varies by {spread:.3g} over x; Bayes' rule makes it constant"
    return f"equals GaussianMixture.posterior to {max(gm, gc):.1e}; Bayes' rule holds to {spread:.1e}"


def check_posterior_weights(posterior_weights) -> str:
    worst = 0.0
    for seed, (K, D, M) in enumerate(((5, 3, 2), (8, 4, 1))):
        weights, means, covs, A, y = _problem(10 + seed, K, D, M)
        got = posterior_weights(weights, means, covs, A, y, 0.2)
        assert isinstance(got, torch.Tensor) and got.shape == (K,), f"expected a ({K},) tensor"
        assert abs(float(got.sum()) - 1) < 1e-12, f"weights must sum to 1; got {float(got.sum())}"
        ref = targets.GaussianMixture(weights, means, covs=covs).posterior(Linear(A, noise_std=0.2), y[None]).weights
        gap = float((got - ref).abs().max())
        assert gap < 1e-10, f"differs from the exact posterior's weights by {gap:.3g}"
        worst = max(worst, gap)
    # Far-away components: evidences near exp(-2000) must not underflow to 0/0.
    w = torch.tensor([0.5, 0.5], dtype=F64)
    mu = torch.tensor([[0.0], [20.0]], dtype=F64)
    cv = torch.full((2, 1, 1), 0.01, dtype=F64)
    far = posterior_weights(w, mu, cv, torch.ones(1, 1, dtype=F64), torch.tensor([19.0], dtype=F64), 0.05)
    assert bool(torch.isfinite(far).all()) and float(far[1]) > 1 - 1e-12, "compute the weights in log space (underflow)"
    assert math.isfinite(worst)
    return f"equal to GaussianMixture.posterior's weights to {worst:.1e}; stable when evidences underflow"
