"""Closed forms: Black-Scholes price, Greeks and implied volatility, the CIR zero-coupon bond,
Ornstein-Uhlenbeck moments, the Heston price by integration of the characteristic function, and
Hagan's SABR implied-volatility approximation.

All in float64 torch (no scipy): arguments may be floats or tensors (broadcast together).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

__all__ = [
    "BSGreeks", "black_scholes", "black_scholes_greeks", "cir_bond", "heston_price", "implied_vol", "ou_moments",
    "sabr_implied_vol",
]

F64 = torch.float64


def _t(x, name: str = "argument") -> torch.Tensor:
    if isinstance(x, (bool, str, bytes)) or (isinstance(x, torch.Tensor) and (x.is_complex() or x.dtype == torch.bool)):
        raise TypeError(f"{name} must be a real number or a real tensor; got {x!r}")
    try:
        return torch.as_tensor(x, dtype=F64)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{name} must be a real number or a real tensor; got {x!r}") from err


def _checked(value, name: str, low: float | None = None, strict: bool = False, high: float | None = None,
             fix: str = "") -> torch.Tensor:
    """``value`` as a float64 tensor, finite and within its bounds (every element), else a ValueError."""
    t = _t(value, name)
    bad = ~torch.isfinite(t)
    rule = "finite"
    if low is not None:
        bad |= (t <= low) if strict else (t < low)
        rule = f"finite and {'>' if strict else '>='} {low:g}"
    if high is not None:
        bad |= t > high
        rule = f"in [{low:g}, {high:g}]"
    if bool(bad.any()):
        got = value if t.numel() == 1 else f"{float(t[bad][0])!r} (among {t.numel()} values)"
        raise ValueError(f"{name} must be {rule}; got {got}{fix}")
    return t


def _check_kind(kind: str) -> float:
    if kind not in ("call", "put"):
        raise ValueError(f"kind must be 'call' or 'put'; got {kind!r}")
    return 1.0 if kind == "call" else -1.0


def _bs_args(s0, strike, maturity, r, sigma, q, strict: bool) -> tuple[torch.Tensor, ...]:
    """The Black-Scholes arguments checked (``strict``: the Greeks need ``T > 0``, ``sigma > 0``, ``K > 0``)."""
    s = _checked(s0, "s0", 0.0, strict=True, fix="; the spot price is positive")
    k = _checked(strike, "strike", 0.0, strict=strict, fix="; a strike below 0 has no meaning in Black-Scholes")
    fix = "" if not strict else "; at maturity or zero volatility the Greeks are not defined (delta jumps at the strike): use black_scholes for the price"
    t = _checked(maturity, "maturity", 0.0, strict=strict, fix=fix or "; the time to maturity in years")
    v = _checked(sigma, "sigma", 0.0, strict=strict, fix=fix or "; a volatility is >= 0 (pass its absolute value)")
    return s, k, t, _checked(r, "r"), v, _checked(q, "q")


def black_scholes(s0, strike, maturity, r, sigma, q=0.0, kind: str = "call") -> torch.Tensor:
    r"""Black-Scholes (1973) price of a European option on ``dS = (r - q) S dt + sigma S dW``.

    ``C = S e^{-qT} N(d1) - K e^{-rT} N(d2)``, ``d1,2 = (ln(S/K) + (r - q +- sigma^2/2) T) / (sigma sqrt T)``;
    the put by parity (``kind="put"``). Float64 tensor of the broadcast shape.

    Domain (every element; a ValueError naming the argument otherwise): ``s0 > 0``, ``strike >= 0``,
    ``maturity >= 0``, ``sigma >= 0``, ``r`` and ``q`` finite. Where ``sigma sqrt(T) = 0`` (at maturity,
    or without volatility) the price is its limit, the discounted intrinsic value of the forward,
    ``max(w (S e^{-qT} - K e^{-rT}), 0)`` with ``w = +-1`` for a call/put: at ``T = 0`` the payoff
    ``max(w (S - K), 0)``, as a trader expects.
    """
    w = _check_kind(kind)
    s, k, t, r, v, q = _bs_args(s0, strike, maturity, r, sigma, q, strict=False)
    sd = v * t.sqrt()
    flat = sd == 0
    sd_safe = torch.where(flat, torch.ones_like(sd), sd)
    d1 = (torch.log(s / k) + (r - q + 0.5 * v * v) * t) / sd_safe
    d2 = d1 - sd
    fwd_s, fwd_k = s * torch.exp(-q * t), k * torch.exp(-r * t)
    price = w * (fwd_s * torch.special.ndtr(w * d1) - fwd_k * torch.special.ndtr(w * d2))
    if bool(flat.any()):
        price = torch.where(flat, torch.relu(w * (fwd_s - fwd_k)), price)
    return price


class BSGreeks(NamedTuple):
    """Black-Scholes sensitivities: dV/dS, d2V/dS2, dV/dsigma, dV/dt (calendar time), dV/dr."""

    delta: torch.Tensor
    gamma: torch.Tensor
    vega: torch.Tensor
    theta: torch.Tensor
    rho: torch.Tensor


def black_scholes_greeks(s0, strike, maturity, r, sigma, q=0.0, kind: str = "call") -> BSGreeks:
    """Closed-form Black-Scholes Greeks (Hull, "Options, Futures and Other Derivatives", ch. 19).

    Needs ``s0 > 0``, ``strike > 0``, ``maturity > 0``, ``sigma > 0`` (at maturity the delta jumps at
    the strike and the gamma is a Dirac mass: no finite Greeks), ``r``, ``q`` finite; a ValueError
    names the argument otherwise.
    """
    w = _check_kind(kind)
    s, k, t, r, v, q = _bs_args(s0, strike, maturity, r, sigma, q, strict=True)
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
    Needs ``r0 >= 0``, ``kappa, theta, sigma > 0``, ``maturity >= 0`` (a ValueError names the argument).
    """
    r0 = _checked(r0, "r0", 0.0, fix="; the CIR short rate is >= 0")
    k, th, s = (_checked(v, n, 0.0, strict=True) for v, n in ((kappa, "kappa"), (theta, "theta"), (sigma, "sigma")))
    t = _checked(maturity, "maturity", 0.0)
    h = torch.sqrt(k * k + 2 * s * s)
    em1 = torch.expm1(h * t)
    den = 2 * h + (k + h) * em1
    b = 2 * em1 / den
    log_a = (2 * k * th / (s * s)) * (torch.log(2 * h / den) + 0.5 * (k + h) * t)
    return torch.exp(log_a - b * r0)


def ou_moments(x0, theta, mu, sigma, t) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Mean and variance of ``dX = theta (mu - X) dt + sigma dW`` at time ``t``.

    ``E X_t = mu + (x0 - mu) e^{-theta t}``, ``Var X_t = sigma^2 (1 - e^{-2 theta t}) / (2 theta)``.
    Needs ``theta > 0``, ``sigma >= 0``, ``t >= 0``, finite ``x0``, ``mu``.
    """
    x0, mu = _checked(x0, "x0"), _checked(mu, "mu")
    th = _checked(theta, "theta", 0.0, strict=True, fix="; the mean-reversion speed is > 0")
    s, t = _checked(sigma, "sigma", 0.0), _checked(t, "t", 0.0)
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


def _scalar(value, name: str) -> float:
    """A real scalar (float, int, 0-d or one-element tensor) as a float; TypeError otherwise."""
    t = _t(value, name)
    if t.numel() != 1:
        raise TypeError(f"{name} must be a scalar (heston_price prices one option); got shape {tuple(t.shape)}")
    return float(t)


def heston_price(s0, strike, maturity, r, kappa, theta, xi, rho, v0, kind: str = "call",
                 u_max: float = 400.0, panels: int = 200) -> float:
    r"""Heston (1993) European option price by Lewis' (2001) single-integral formula.

    ``C = S0 - sqrt(S0 K) e^{-rT/2} / pi * int_0^inf Re[e^{i u k} phi(u - i/2)] / (u^2 + 1/4) du``
    with ``k = ln(F/K)``, ``F = S0 e^{rT}`` and ``phi`` the characteristic function of ``ln(S_T/F)``
    (:func:`_heston_cf`, Albrecher et al.'s continuous branch); the put by parity. The integral is
    composite Gauss-Legendre (16 nodes on each of ``panels`` panels of ``[0, u_max]``): the
    integrand decays like ``exp(-u v_T sqrt(T))``, so the default is accurate to ~1e-10 for usual
    parameters. Parameters are floats (variance process ``dv = kappa (theta - v) dt + xi sqrt(v) dW_2``,
    ``d<W_1, W_2> = rho dt``): ``s0, strike, kappa, theta, xi > 0``, ``v0 >= 0``, ``rho`` in
    ``[-1, 1]``, ``maturity >= 0`` (at 0 the payoff), ``r`` finite; a ValueError names the argument.
    """
    w = _check_kind(kind)
    s0, strike, t, r = (_scalar(v, n) for v, n in ((s0, "s0"), (strike, "strike"), (maturity, "maturity"), (r, "r")))
    kappa, theta, xi, rho, v0 = (_scalar(v, n) for v, n in ((kappa, "kappa"), (theta, "theta"), (xi, "xi"),
                                                            (rho, "rho"), (v0, "v0")))
    for name, value in (("s0", s0), ("strike", strike), ("kappa", kappa), ("theta", theta), ("xi", xi)):
        _checked(value, name, 0.0, strict=True)
    _checked(maturity, "maturity", 0.0)
    _checked(v0, "v0", 0.0, fix="; the initial variance is >= 0")
    _checked(rho, "rho", -1.0, high=1.0, fix="; rho is the correlation of the two Brownian motions")
    u_max = float(_checked(_scalar(u_max, "u_max"), "u_max", 0.0, strict=True))
    if isinstance(panels, bool) or not isinstance(panels, int) or panels < 1:
        raise ValueError(f"panels must be an integer >= 1; got {panels!r}")
    if t == 0.0:  # at maturity: the payoff
        return max(w * (s0 - strike), 0.0)
    nodes, weights = np.polynomial.legendre.leggauss(16)
    edges = np.linspace(0.0, u_max, panels + 1)
    mid, half = (edges[1:] + edges[:-1]) / 2, (edges[1:] - edges[:-1]) / 2
    u = torch.tensor((mid[:, None] + half[:, None] * nodes[None, :]).ravel(), dtype=F64)
    wq = torch.tensor((half[:, None] * weights[None, :]).ravel(), dtype=F64)
    k = math.log(s0 / strike) + r * t
    phi = _heston_cf(u.to(torch.complex128) - 0.5j, t, v0, kappa, theta, xi, rho)
    integrand = (torch.exp(1j * u * k) * phi).real / (u * u + 0.25)
    call = s0 - math.sqrt(s0 * strike) * math.exp(-0.5 * r * t) / math.pi * float((wq * integrand).sum())
    return call if w > 0 else call - s0 + strike * math.exp(-r * t)


def implied_vol(price, s0, strike, maturity, r=0.0, q=0.0, kind: str = "call", tol: float = 1e-10) -> torch.Tensor:
    r"""The Black-Scholes implied volatility: the ``sigma`` with ``black_scholes(s0, strike, maturity, r, sigma, q) = price``.

    The price is increasing in ``sigma`` (vega > 0) from the discounted intrinsic value at
    ``sigma = 0`` to the prepaid forward ``S e^{-qT}`` (call) or ``K e^{-rT}`` (put) as
    ``sigma -> inf``, so bisection on ``[0, 10]`` (then on ``[0, 1000]`` for the rest) converges to
    ``tol`` for every price strictly between those bounds. Prices outside (``<=`` the intrinsic value, or
    ``>=`` the upper bound, as a noisy Monte Carlo price may be) give NaN, not an error, so that a smile
    from simulated prices keeps its other strikes. Arguments broadcast; float64 tensor of their shape.
    Needs ``s0, strike, maturity > 0``; a ValueError names the argument otherwise.
    """
    w = _check_kind(kind)
    p = _checked(price, "price")
    s, k, t, r, _, q = _bs_args(s0, strike, maturity, r, 0.0, q, strict=False)
    for name, value in (("strike", k), ("maturity", t)):
        if bool((value <= 0).any()):
            raise ValueError(f"{name} must be > 0 for an implied volatility; got {float(value.min())!r}")
    p, s, k, t, r, q = torch.broadcast_tensors(p, s, k, t, r, q)
    low_price = torch.relu(w * (s * torch.exp(-q * t) - k * torch.exp(-r * t)))
    high_price = s * torch.exp(-q * t) if w > 0 else k * torch.exp(-r * t)
    valid = (p > low_price) & (p < high_price)
    lo, hi = torch.zeros_like(p), torch.full_like(p, 10.0)
    too_high = black_scholes(s, k, t, r, hi, q, kind) < p
    hi = torch.where(too_high, torch.full_like(p, 1000.0), hi)
    # Bisection halves the bracket: 60 halvings of 1000 reach 1e-15, below any sensible ``tol``.
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        above = black_scholes(s, k, t, r, mid, q, kind) > p
        hi, lo = torch.where(above, mid, hi), torch.where(above, lo, mid)
        if bool(((hi - lo) < tol).all()):
            break
    return torch.where(valid, 0.5 * (lo + hi), torch.full_like(p, float("nan")))


def sabr_implied_vol(f0, strike, maturity, alpha, beta, nu, rho) -> torch.Tensor:
    r"""Hagan et al. (2002, "Managing smile risk", eq. 2.17a) Black implied volatility under SABR.

    With ``L = ln(F/K)``, ``m = (F K)^{(1 - beta)/2}``, ``z = (nu / alpha) m L`` and
    ``x(z) = ln((sqrt(1 - 2 rho z + z^2) + z - rho) / (1 - rho))``:

    ``sigma_B = alpha / (m (1 + (1-beta)^2 L^2 / 24 + (1-beta)^4 L^4 / 1920)) * z / x(z) *
    (1 + ((1-beta)^2 alpha^2 / (24 m^2) + rho beta nu alpha / (4 m) + (2 - 3 rho^2) nu^2 / 24) T)``

    (``z / x(z) -> 1`` at the money and as ``nu -> 0``: taken as its series ``1 - rho z / 2`` for
    ``|z| < 1e-6``). An asymptotic expansion in ``T``, exact for ``nu = 0, beta = 1`` (Black-Scholes),
    accurate to ``O((nu^2 T)^2)`` near the money; it degrades far from the money and at long
    maturities. The Black price is ``black_scholes(f0, strike, maturity, 0, sigma_B)`` in forward terms.
    Needs ``f0, strike, alpha > 0``, ``maturity, nu >= 0``, ``beta`` in ``[0, 1]``, ``rho`` in
    ``(-1, 1)``; a ValueError names the argument. Arguments broadcast; float64 tensor.
    """
    f = _checked(f0, "f0", 0.0, strict=True)
    k = _checked(strike, "strike", 0.0, strict=True)
    t = _checked(maturity, "maturity", 0.0)
    a = _checked(alpha, "alpha", 0.0, strict=True, fix="; the initial volatility of SABR")
    b = _checked(beta, "beta", 0.0, high=1.0, fix="; the CEV exponent of SABR")
    v = _checked(nu, "nu", 0.0, fix="; the volatility of volatility")
    p = _checked(rho, "rho", -1.0, high=1.0)
    if bool((p.abs() >= 1).any()):
        raise ValueError(f"rho must lie in (-1, 1) for Hagan's formula (x(z) divides by 1 - rho); got {rho!r}")
    one_b = 1.0 - b
    log_fk = torch.log(f / k)
    m = (f * k) ** (0.5 * one_b)
    z = v / a * m * log_fk
    small = z.abs() < 1e-6
    z_safe = torch.where(small, torch.ones_like(z), z)
    x = torch.log((torch.sqrt(1 - 2 * p * z_safe + z_safe * z_safe) + z_safe - p) / (1 - p))
    ratio = torch.where(small, 1 - 0.5 * p * z, z_safe / x)
    denom = m * (1 + one_b**2 * log_fk**2 / 24 + one_b**4 * log_fk**4 / 1920)
    corr = 1 + (one_b**2 * a * a / (24 * m * m) + p * b * v * a / (4 * m) + (2 - 3 * p * p) * v * v / 24) * t
    return a / denom * ratio * corr
