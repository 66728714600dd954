"""Solutions of lab 5."""

from __future__ import annotations

import torch


def ddim_step(x, x0_hat, alpha0, sigma0, alpha1, sigma1):
    """x1 = alpha1 x0_hat + sigma1 (x - alpha0 x0_hat) / sigma0."""
    eps_hat = (x - alpha0 * x0_hat) / sigma0
    return alpha1 * x0_hat + sigma1 * eps_hat


def heun_step(u, t0, t1, x):
    """Heun: Euler predictor, trapezoidal corrector."""
    h = t1 - t0
    k0 = u(t0, x)
    k1 = u(t1, x + h * k0)
    return x + h / 2 * (k0 + k1)


def karras_levels(s_max, s_min, steps, rho=7.0):
    """Karras et al.'s noise levels, s_max down to s_min, steps + 1 of them."""
    i = torch.arange(steps + 1, dtype=torch.float64)
    hi, lo = s_max ** (1 / rho), s_min ** (1 / rho)
    return (hi + i / steps * (lo - hi)) ** rho
