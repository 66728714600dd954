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


def ddpm_posterior(x_t, x0, t, s, process):
    """Mean and variance of q(x_s | x_t, x0) for s < t."""
    a_s, a_t = process.alpha(s), process.alpha(t)
    sig_s2, sig_t2 = process.sigma(s) ** 2, process.sigma(t) ** 2
    a_ts = a_t / a_s
    sig_ts2 = sig_t2 - a_ts**2 * sig_s2
    mean = (a_ts * sig_s2 / sig_t2).to(x_t.dtype) * x_t + (a_s * sig_ts2 / sig_t2).to(x_t.dtype) * x0
    return mean, sig_ts2 * sig_s2 / sig_t2
