"""Solutions of lab 8."""

from __future__ import annotations

import math

import torch


def sb_cross_covariance_1d(v0, v1, sigma):
    """Cov(X0, X1) of the Schrodinger bridge between N(., v0) and N(., v1) with reference sigma dW."""
    return (math.sqrt(4 * v0 * v1 + sigma**4) - sigma**2) / 2


def sb_marginal_cov(cov0, cov1, C, sigma, t):
    """(1 - t)^2 cov0 + t^2 cov1 + t (1 - t) (C + C^T + sigma^2 I)."""
    eye = torch.eye(cov0.shape[0], dtype=cov0.dtype)
    return (1 - t) ** 2 * cov0 + t**2 * cov1 + t * (1 - t) * (C + C.T + sigma**2 * eye)


def consistency_skip_out(s, s_min, sigma_data):
    """c_skip = sd^2 / ((s - s_min)^2 + sd^2), c_out = sd (s - s_min) / sqrt(sd^2 + s^2)."""
    sd2 = sigma_data**2
    c_skip = sd2 / ((s - s_min) ** 2 + sd2)
    c_out = sigma_data * (s - s_min) / torch.sqrt(sd2 + s * s)
    return c_skip, c_out
