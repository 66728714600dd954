"""Solutions of lab 3."""

from __future__ import annotations


def reverse_drift(x, t, score, process, eta):
    """f(t) x - (1 + eta^2)/2 g(t)^2 score."""
    f = process.f(t).to(x.dtype)
    g2 = process.g2(t).to(x.dtype)
    return f * x - (1 + eta**2) / 2 * g2 * score


def vp_to_ve(x, t, vp, ve):
    """(x / alpha_vp(t), the VE time of noise level sigma_vp(t) / alpha_vp(t))."""
    return x / vp.alpha(t).to(x.dtype), ve.t_from_noise_level(vp.noise_level(t))
