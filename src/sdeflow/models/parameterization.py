"""One hub between every prediction kind and the pair ``(x0_hat, eps_hat)``.

With ``x = alpha x0 + sigma eps`` a model output ``out`` of each kind is, at time ``t``:

==========  ===========================  ==========================================================
kind        meaning                      to (x0, eps)
==========  ===========================  ==========================================================
eps         noise                        ``x0 = (x - sigma out) / alpha``, ``eps = out``
x0          data (denoiser)              ``x0 = out``, ``eps = (x - alpha out) / sigma``
v           ``alpha eps - sigma x0``     ``x0 = (alpha x - sigma out) / (alpha^2 + sigma^2)``,
            (Salimans & Ho 2022)         ``eps = (sigma x + alpha out) / (alpha^2 + sigma^2)``
score       ``grad log p_t = -eps/sigma``  ``eps = -sigma out``, then as eps
velocity    ``d_alpha x0 + d_sigma eps``  solve ``[[alpha, sigma], [d_alpha, d_sigma]] (x0, eps) = (x, out)``
            (probability-flow ODE)       with determinant ``alpha d_sigma - sigma d_alpha > 0``
==========  ===========================  ==========================================================

The conversions are linear in the output, so an exact model stays exact under every conversion.
Coefficients are float64 (DESIGN.md) and cast to the state's dtype at the end.
"""

from __future__ import annotations

import torch

from .._utils import Time, as_time, expand_to

__all__ = ["PREDICTIONS", "check_prediction", "to_x0_eps", "from_x0_eps"]

PREDICTIONS: tuple[str, ...] = ("eps", "x0", "v", "score", "velocity")


def check_prediction(kind: object, name: str = "prediction") -> str:
    """Validate a prediction kind; returns it."""
    if kind not in PREDICTIONS:
        raise ValueError(f"unknown {name} {kind!r}; expected one of {list(PREDICTIONS)}")
    return kind  # type: ignore[return-value]


def _coefs(process, t: Time, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    t = as_time(t, x.device)
    return expand_to(process.alpha(t), x), expand_to(process.sigma(t), x)


def to_x0_eps(kind: str, out: torch.Tensor, x: torch.Tensor, t: Time, process) -> tuple[torch.Tensor, torch.Tensor]:
    """Convert a model output of ``kind`` at ``(x, t)`` to ``(x0_hat, eps_hat)``, shapes of ``x``."""
    if kind == "eps":
        alpha, sigma = _coefs(process, t, x)
        return (x - sigma * out) / alpha, out
    if kind == "x0":
        alpha, sigma = _coefs(process, t, x)
        return out, (x - alpha * out) / sigma
    if kind == "v":
        alpha, sigma = _coefs(process, t, x)
        norm = alpha * alpha + sigma * sigma
        return (alpha * x - sigma * out) / norm, (sigma * x + alpha * out) / norm
    if kind == "score":
        alpha, sigma = _coefs(process, t, x)
        eps = -sigma * out
        return (x - sigma * eps) / alpha, eps
    if kind == "velocity":
        t64 = as_time(t, x.device)
        a, s = process.alpha(t64), process.sigma(t64)
        da, ds = process.d_alpha(t64), process.d_sigma(t64)
        det = a * ds - s * da
        x0 = expand_to(ds / det, x) * x - expand_to(s / det, x) * out
        eps = expand_to(a / det, x) * out - expand_to(da / det, x) * x
        return x0, eps
    check_prediction(kind, "kind")
    raise AssertionError("unreachable")


def from_x0_eps(kind: str, x0: torch.Tensor, eps: torch.Tensor, x: torch.Tensor, t: Time, process) -> torch.Tensor:
    """The output a model of ``kind`` gives for ``(x0, eps)`` at ``(x, t)`` (inverse of :func:`to_x0_eps`)."""
    if kind == "eps":
        return eps
    if kind == "x0":
        return x0
    if kind == "v":
        alpha, sigma = _coefs(process, t, x)
        return alpha * eps - sigma * x0
    if kind == "score":
        _, sigma = _coefs(process, t, x)
        return -eps / sigma
    if kind == "velocity":
        t64 = as_time(t, x.device)
        return expand_to(process.d_alpha(t64), x) * x0 + expand_to(process.d_sigma(t64), x) * eps
    check_prediction(kind, "kind")
    raise AssertionError("unreachable")
