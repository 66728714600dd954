"""Solutions of lab 1."""

from __future__ import annotations

import math

import torch


def euler_maruyama(drift, diffusion, x0, ts, dws):
    """Euler-Maruyama from ts[0] to ts[-1]: x <- x + drift(t, x) h + diffusion(t, x) dW."""
    x = x0
    for k in range(len(ts) - 1):
        t = torch.as_tensor(ts[k], dtype=torch.float64)
        h = float(ts[k + 1]) - float(ts[k])
        x = x + drift(t, x) * h + diffusion(t, x) * dws[k]
    return x


def fitted_order(hs, errors):
    """The least-squares slope of log(errors) against log(hs)."""
    x = torch.log(torch.as_tensor(hs, dtype=torch.float64))
    y = torch.log(torch.as_tensor(errors, dtype=torch.float64))
    return float(((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum())


def refine(a, b, s, u, t, z):
    """W_u given W_s = a and W_t = b, from standard normals z."""
    mean = ((t - u) * a + (u - s) * b) / (t - s)
    return mean + math.sqrt((u - s) * (t - u) / (t - s)) * z
