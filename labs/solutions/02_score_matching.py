"""Solutions of lab 2."""

from __future__ import annotations


def tweedie_x0(x, score, alpha, sigma):
    """E[x0 | x_t = x] = (x + sigma^2 score) / alpha."""
    return (x + sigma**2 * score) / alpha


def dsm_loss(eps_model, x0, t, eps, process):
    """mean_batch || eps_model(alpha(t) x0 + sigma(t) eps, t) - eps ||^2."""
    alpha = process.alpha(t).to(x0.dtype).reshape(-1, *([1] * (x0.ndim - 1)))
    sigma = process.sigma(t).to(x0.dtype).reshape(-1, *([1] * (x0.ndim - 1)))
    x_t = alpha * x0 + sigma * eps
    err = eps_model(x_t, t) - eps
    return err.pow(2).reshape(x0.shape[0], -1).sum(-1).mean()
