"""Closed forms: Black-Scholes price and Greeks, the CIR zero-coupon bond, Ornstein-Uhlenbeck moments,
and the Heston price by integration of the characteristic function.

All in float64 torch (no scipy): arguments may be floats or tensors (broadcast together).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

__all__ = ["BSGreeks", "black_scholes", "black_scholes_greeks", "cir_bond", "heston_price", "ou_moments"]

F64 = torch.float64


def _t(x) -> torch.Tensor:
    return torch.as_tensor(x, dtype=F64)


def _check_kind(kind: str) -> float:
    if kind not in ("call", "put"):
        raise ValueError(f"kind must be 'call' or 'put'; got {kind!r}")
    return 1.0 if kind == "call" else -1.0


def black_scholes(s0, strike, maturity, r, sigma, q=0.0, kind: str = "call") -> torch.Tensor:
    r"""Black-Scholes (1973) price of a European option on ``dS = (r - q) S dt + sigma S dW``.

    ``C = S e^{-qT} N(d1) - K e^{-rT} N(d2)``, ``d1,2 = (ln(S/K) + (r - q +- sigma^2/2) T) / (sigma sqrt T)``;
    the put by parity (``kind="put"``). Float64 tensor of the broadcast shape.
    """
    w = _check_kind(kind)
    s, k, t, r, v, q = map(_t, (s0, strike, maturity, r, sigma, q))
    sd = v * t.sqrt()
    d1 = (torch.log(s / k) + (r - q + 0.5 * v * v) * t) / sd
    d2 = d1 - sd
    return w * (s * torch.exp(-q * t) * torch.special.ndtr(w * d1) - k * torch.exp(-r * t) * torch.special.ndtr(w * d2))


class BSGreeks(NamedTuple):
    """Black-Scholes sensitivities: dV/dS, d2V/dS2, dV/dsigma, dV/dt (calendar time), dV/dr."""

    delta: torch.Tensor
    gamma: torch.Tensor
    vega: torch.Tensor
    theta: torch.Tensor
    rho: torch.Tensor


def black_scholes_greeks(s0, strike, maturity, r, sigma, q=0.0, kind: str = "call") -> BSGreeks:
    """Closed-form Black-Scholes Greeks (Hull, "Options, Futures and Other Derivatives", ch. 19)."""
    w = _check_kind(kind)
    s, k, t, r, v, q = map(_t, (s0, strike, maturity, r, sigma, q))
    sd = v * t.sqrt()
    d1 = (torch.log(s / k) + (r - q + 0.5 * v * v) * t) / sd
    d2 = d1 - sd
    pdf = torch.exp(-0.5 * d1 * d1) / math.sqrt(2 * math.pi)
    disc_q, disc_r = torch.exp(-q * t), torch.exp(-r * t)
    delta = w * disc_q * torch.special.ndtr(w * d1)
    gamma = disc_q * pdf / (s * sd)
    vega = s * disc_q * pdf * t.sqrt()
    theta = (-s * disc_q * pdf * v / (2 * t.sqrt()) + w * q * s * disc_q * torch.special.ndtr(w * d1)
             - w * r * k * disc_r * torch.special.ndtr(w * d2))
    rho = w * k * t * disc_r * torch.special.ndtr(w * d2)
    return BSGreeks(delta, gamma, vega, theta, rho)


def cir_bond(r0, kappa, theta, sigma, maturity) -> torch.Tensor:
    r"""Zero-coupon bond ``E[exp(-int_0^T r dt)]`` under CIR ``dr = kappa (theta - r) dt + sigma sqrt(r) dW``.

    Cox, Ingersoll & Ross (1985), eq. 23: ``P = A e^{-B r0}``, ``h = sqrt(kappa^2 + 2 sigma^2)``,
    ``B = 2 (e^{hT} - 1) / (2h + (kappa + h)(e^{hT} - 1))``,
    ``A = (2h e^{(kappa + h) T/2} / (2h + (kappa + h)(e^{hT} - 1)))^{2 kappa theta / sigma^2}``.
    """
    r0, k, th, s, t = map(_t, (r0, kappa, theta, sigma, maturity))
    h = torch.sqrt(k * k + 2 * s * s)
    em1 = torch.expm1(h * t)
    den = 2 * h + (k + h) * em1
    b = 2 * em1 / den
    log_a = (2 * k * th / (s * s)) * (torch.log(2 * h / den) + 0.5 * (k + h) * t)
    return torch.exp(log_a - b * r0)


def ou_moments(x0, theta, mu, sigma, t) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Mean and variance of ``dX = theta (mu - X) dt + sigma dW`` at time ``t``.

    ``E X_t = mu + (x0 - mu) e^{-theta t}``, ``Var X_t = sigma^2 (1 - e^{-2 theta t}) / (2 theta)``.
    """
    x0, th, mu, s, t = map(_t, (x0, theta, mu, sigma, t))
    return mu + (x0 - mu) * torch.exp(-th * t), -s * s * torch.expm1(-2 * th * t) / (2 * th)


def _heston_cf(u: torch.Tensor, t: float, v0: float, kappa: float, theta: float, xi: float, rho: float) -> torch.Tensor:
    """``E exp(i u ln(S_T / F))`` under Heston, in the "little trap" form (Albrecher et al. 2007)."""
    iu = 1j * u
    beta = kappa - rho * xi * iu
    d = torch.sqrt(beta * beta + xi * xi * (iu + u * u))
    g = (beta - d) / (beta + d)
    e = torch.exp(-d * t)
    c = (kappa * theta / xi**2) * ((beta - d) * t - 2.0 * torch.log((1 - g * e) / (1 - g)))
    dd = (beta - d) / xi**2 * (1 - e) / (1 - g * e)
    return torch.exp(c + dd * v0)


def heston_price(s0, strike, maturity, r, kappa, theta, xi, rho, v0, kind: str = "call",
                 u_max: float = 400.0, panels: int = 200) -> float:
    r"""Heston (1993) European option price by Lewis' (2001) single-integral formula.

    ``C = S0 - sqrt(S0 K) e^{-rT/2} / pi * int_0^inf Re[e^{i u k} phi(u - i/2)] / (u^2 + 1/4) du``
    with ``k = ln(F/K)``, ``F = S0 e^{rT}`` and ``phi`` the characteristic function of ``ln(S_T/F)``
    (:func:`_heston_cf`, Albrecher et al.'s continuous branch); the put by parity. The integral is
    composite Gauss-Legendre (16 nodes on each of ``panels`` panels of ``[0, u_max]``): the
    integrand decays like ``exp(-u v_T sqrt(T))``, so the default is accurate to ~1e-10 for usual
    parameters. Parameters are floats (variance process ``dv = kappa (theta - v) dt + xi sqrt(v) dW_2``,
    ``d<W_1, W_2> = rho dt``).
    """
    w = _check_kind(kind)
    s0, strike, t, r = float(s0), float(strike), float(maturity), float(r)
    nodes, weights = np.polynomial.legendre.leggauss(16)
    edges = np.linspace(0.0, u_max, panels + 1)
    mid, half = (edges[1:] + edges[:-1]) / 2, (edges[1:] - edges[:-1]) / 2
    u = torch.tensor((mid[:, None] + half[:, None] * nodes[None, :]).ravel(), dtype=F64)
    wq = torch.tensor((half[:, None] * weights[None, :]).ravel(), dtype=F64)
    k = math.log(s0 / strike) + r * t
    phi = _heston_cf(u.to(torch.complex128) - 0.5j, t, float(v0), float(kappa), float(theta), float(xi), float(rho))
    integrand = (torch.exp(1j * u * k) * phi).real / (u * u + 0.25)
    call = s0 - math.sqrt(s0 * strike) * math.exp(-0.5 * r * t) / math.pi * float((wq * integrand).sum())
    return call if w > 0 else call - s0 + strike * math.exp(-r * t)
