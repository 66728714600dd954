"""Solutions of lab 7."""

from __future__ import annotations

import torch


def gaussian_posterior(mu, Sigma, A, y, noise_std):
    """Mean and covariance of N(mu, Sigma) conditioned on y = A x + noise_std n."""
    precision = torch.linalg.inv(Sigma) + A.T @ A / noise_std**2
    cov = torch.linalg.inv(precision)
    cov = 0.5 * (cov + cov.T)
    mean = cov @ (torch.linalg.solve(Sigma, mu) + A.T @ y / noise_std**2)
    return mean, cov


def posterior_weights(weights, means, covs, A, y, noise_std):
    """w_k' proportional to w_k N(y; A mu_k, A Sigma_k A^T + s^2 I), normalized."""
    S = A @ covs @ A.T + noise_std**2 * torch.eye(A.shape[0], dtype=A.dtype)
    evidence = torch.distributions.MultivariateNormal(means @ A.T, S).log_prob(y)
    log_w = torch.log(weights) + evidence
    return torch.exp(log_w - torch.logsumexp(log_w, 0))
