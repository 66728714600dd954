"""Coefficients of stochastic interpolants between two distributions (Albergo, Boffi and Vanden-Eijnden 2023).

A stochastic interpolant joins ``x0`` (sdeflow's data side, ``t = 0``) and ``x1`` (the source side,
``t = 1``; Gaussian noise for noise-to-data) through

    x_t = a(t) x0 + b(t) x1 + gamma(t) z,        z ~ N(0, I) independent of (x0, x1),

("Stochastic interpolants: a unifying framework for flows and diffusions", arXiv:2303.08797, eq. (2.1)
with ``I(t, x0, x1) = a(t) x0 + b(t) x1``, their spatially linear interpolants of section 4). The
deterministic part ``I`` is one of

* ``linear``: ``a = 1 - t``, ``b = t``;
* ``trigonometric``: ``a = cos(pi t / 2)``, ``b = sin(pi t / 2)`` (``a^2 + b^2 = 1``);
* ``encoder_decoder``: ``a = cos^2(pi t) 1[t < 1/2]``, ``b = cos^2(pi t) 1[t > 1/2]``: the path
  forgets ``x0`` completely at ``t = 1/2``, where ``x_t = gamma(1/2) z`` is pure noise, and then
  builds ``x1`` from it (their encoder-decoder interpolant, used with ``gamma = sin^2(pi t)``);
  ``a, b`` are continuously differentiable (their derivatives ``-pi sin(2 pi t)`` vanish at ``1/2``).

and the latent scale ``gamma(t) = c * shape(t)`` with ``c = gamma_scale`` and ``shape`` one of

* ``sqrt``: ``sqrt(t (1 - t))``: the choice ``gamma = sqrt(a t (1 - t))`` of Albergo et al. with
  ``a = c^2`` (the Brownian bridge's standard deviation for ``c = sigma``); ``gamma'`` is singular at
  the ends but ``gamma gamma' = c^2 (1 - 2 t) / 2`` is smooth, and that product is what the
  probability-flow velocity of Gaussian data needs;
* ``quadratic``: ``t (1 - t)``, smooth up to the ends (``gamma' = c (1 - 2 t)``);
* ``sin2``: ``sin^2(pi t)``, the encoder-decoder's (``gamma' = c pi sin(2 pi t)``);
* ``none``: ``gamma = 0``, a deterministic interpolant (a flow-matching path).

Every coefficient is computed in float64 (DESIGN.md, "Precision"). This object is data only: the
objective that learns an interpolant's fields is :class:`sdeflow.transport.StochasticInterpolant`,
and its exact fields between Gaussian mixtures are :class:`sdeflow.targets.MixtureInterpolant`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

__all__ = ["INTERPOLANTS", "GAMMAS", "InterpolantCoefficients", "InterpolantSchedule"]

INTERPOLANTS = ("linear", "trigonometric", "encoder_decoder")
GAMMAS = ("sqrt", "quadratic", "sin2", "none")

# Below this, sqrt(t (1 - t)) is treated as the end point for gamma' (whose true value there is infinite).
_ROOT_FLOOR = 1e-12


class InterpolantCoefficients(NamedTuple):
    """``a, b, gamma`` and their time derivatives at the given times (float64, the shape of ``t``).

    ``gamma_d_gamma`` is ``gamma * gamma'``, finite at the ends even where ``gamma'`` is not (``sqrt``).
    """

    a: torch.Tensor
    b: torch.Tensor
    gamma: torch.Tensor
    d_a: torch.Tensor
    d_b: torch.Tensor
    d_gamma: torch.Tensor
    gamma_d_gamma: torch.Tensor


class InterpolantSchedule:
    """``x_t = a(t) x0 + b(t) x1 + gamma(t) z`` on ``[0, 1]`` (module docstring).

    Args:
        interpolant: ``"linear"``, ``"trigonometric"`` or ``"encoder_decoder"``.
        gamma: ``"sqrt"``, ``"quadratic"``, ``"sin2"`` or ``"none"`` (default: ``"sin2"`` for the
            encoder-decoder, ``"sqrt"`` otherwise).
        gamma_scale: ``c >= 0`` in ``gamma = c * shape(t)`` (``0`` is the same as ``gamma="none"``).

    The encoder-decoder needs ``gamma > 0`` at ``t = 1/2`` (there ``a = b = 0``), so it refuses
    ``gamma="none"`` and ``gamma_scale = 0``.
    """

    def __init__(self, interpolant: str = "linear", gamma: str | None = None, gamma_scale: float = 1.0) -> None:
        if interpolant not in INTERPOLANTS:
            raise ValueError(f"interpolant must be one of {list(INTERPOLANTS)}; got {interpolant!r}")
        if gamma is None:
            gamma = "sin2" if interpolant == "encoder_decoder" else "sqrt"
        if gamma not in GAMMAS:
            raise ValueError(f"gamma must be one of {list(GAMMAS)}; got {gamma!r}")
        if isinstance(gamma_scale, bool) or not isinstance(gamma_scale, (int, float)) or not math.isfinite(gamma_scale) \
                or gamma_scale < 0:
            raise ValueError(f"gamma_scale must be a finite number >= 0 (gamma = gamma_scale * shape(t)); got {gamma_scale!r}")
        if gamma_scale == 0:
            gamma = "none"
        if gamma == "none":
            gamma_scale = 0.0
        if interpolant == "encoder_decoder" and gamma == "none":
            raise ValueError(
                "the encoder_decoder interpolant has a(1/2) = b(1/2) = 0 and needs noise there: give gamma='sin2' "
                "(or 'sqrt', 'quadratic') with gamma_scale > 0"
            )
        self.interpolant, self.gamma, self.gamma_scale = interpolant, gamma, float(gamma_scale)

    def __repr__(self) -> str:
        return f"InterpolantSchedule(interpolant={self.interpolant!r}, gamma={self.gamma!r}, gamma_scale={self.gamma_scale})"

    def config(self) -> dict:
        """JSON-ready description (``InterpolantSchedule(**config)`` rebuilds it)."""
        return {"interpolant": self.interpolant, "gamma": self.gamma, "gamma_scale": self.gamma_scale}

    @property
    def stochastic(self) -> bool:
        """Whether ``gamma`` is not identically zero (then the marginals have a score for ``t`` in ``(0, 1)``)."""
        return self.gamma != "none"

    def coefficients(self, t: float | torch.Tensor) -> InterpolantCoefficients:
        """:class:`InterpolantCoefficients` at ``t`` (a number or a tensor of times in ``[0, 1]``), float64."""
        t = torch.as_tensor(t, dtype=torch.float64)
        if not bool(torch.isfinite(t).all()) or bool((t < 0).any()) or bool((t > 1).any()):
            raise ValueError(f"t must lie in [0, 1] for an interpolant; got values in [{float(t.min())}, {float(t.max())}]")
        pi = math.pi
        if self.interpolant == "linear":
            a, b = 1.0 - t, t.clone()
            d_a, d_b = torch.full_like(t, -1.0), torch.ones_like(t)
        elif self.interpolant == "trigonometric":
            h = 0.5 * pi
            a, b = torch.cos(h * t), torch.sin(h * t)
            d_a, d_b = -h * torch.sin(h * t), h * torch.cos(h * t)
        else:  # encoder-decoder: cos^2(pi t) on the half of each end, d/dt cos^2(pi t) = -pi sin(2 pi t)
            c2, dc2 = torch.cos(pi * t) ** 2, -pi * torch.sin(2 * pi * t)
            first, zero = t < 0.5, torch.zeros_like(t)
            a, d_a = torch.where(first, c2, zero), torch.where(first, dc2, zero)
            second = t > 0.5
            b, d_b = torch.where(second, c2, zero), torch.where(second, dc2, zero)
        c = self.gamma_scale
        if self.gamma == "sqrt":
            root = torch.sqrt(t * (1.0 - t))
            g = c * root
            dg = c * (1.0 - 2.0 * t) / (2.0 * root.clamp_min(_ROOT_FLOOR))
            g_dg = 0.5 * c * c * (1.0 - 2.0 * t)
        elif self.gamma == "quadratic":
            g, dg = c * t * (1.0 - t), c * (1.0 - 2.0 * t)
            g_dg = g * dg
        elif self.gamma == "sin2":
            g, dg = c * torch.sin(pi * t) ** 2, c * pi * torch.sin(2 * pi * t)
            g_dg = g * dg
        else:
            g = dg = g_dg = torch.zeros_like(t)
        return InterpolantCoefficients(a, b, g, d_a, d_b, dg, g_dg)
