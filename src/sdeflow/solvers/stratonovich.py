"""Stratonovich Runge-Kutta methods driven by dW alone: Euler-Heun, stochastic Heun, midpoint.

One kernel runs a coefficient table (``c``, ``A``, ``B``, ``alpha``, ``beta``):

    H_i = x + h sum_j A_ij f(t0 + c_j h, H_j) + sum_j B_ij G(t0 + c_j h, H_j) dW
    x1  = x + h sum_i alpha_i f(t0 + c_i h, H_i) + sum_i beta_i G(t0 + c_i h, H_i) dW

They converge to the Stratonovich solution: strong order 1 for commutative noise (diagonal, scalar,
additive, declared-commutative general), where they reproduce the Stratonovich Milstein terms
``1/2 sum_{j,k} L^j G_k dW_j dW_k`` (Burrage, Burrage & Tian 2004, "Numerical methods for strong
solutions of SDEs: an overview", Proc. R. Soc. A 460), and strong order 0.5 for general noise.
Weak order 1. The embedded error estimate is the difference to the first stage's Euler step
``x + h f(t0, x) + G(t0, x) dW``, i.e. the size of the order-1 terms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ._sde import SDEMethod, apply_diffusion, layout, stage_time
from .base import register

_ORDERS = {"additive": 1.0, "diagonal": 1.0, "scalar": 1.0, "commutative": 1.0, "general": 0.5}


@dataclass(frozen=True)
class StratonovichTable:
    """Coefficients of a derivative-free Stratonovich Runge-Kutta method (rows of A, B strictly lower)."""

    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    b: tuple[tuple[float, ...], ...]
    alpha: tuple[float, ...]
    beta: tuple[float, ...]

    def needs(self) -> tuple[list[bool], list[bool]]:
        """Which stages' drift and diffusion are ever used (the others are not evaluated)."""
        s = len(self.c)
        nf = [self.alpha[j] != 0 or any(self.a[i][j] != 0 for i in range(j + 1, s)) for j in range(s)]
        ng = [self.beta[j] != 0 or any(self.b[i][j] != 0 for i in range(j + 1, s)) for j in range(s)]
        return nf, ng


@dataclass(frozen=True)
class StratonovichRK(SDEMethod):
    """The kernel: runs :attr:`table` (see the module docstring)."""

    table: ClassVar[StratonovichTable]
    calculi = ("stratonovich",)
    strong_orders = _ORDERS
    strong_order = 0.5
    weak_order = 1.0
    calculus = "stratonovich"
    noise_types = ("diagonal", "additive", "scalar", "general")
    error_estimate = True

    def advance(self, problem, t0, t1, x, noise, want_error):
        tab, h = self.table, t1 - t0
        kind = layout(problem)
        need_f, need_g = tab.needs()
        dw = noise(t0, t1)
        fs, gws = [], []
        for i, c in enumerate(tab.c):
            xi = x
            for j in range(i):
                if tab.a[i][j]:
                    xi = torch.add(xi, fs[j], alpha=tab.a[i][j] * h)
                if tab.b[i][j]:
                    xi = torch.add(xi, gws[j], alpha=tab.b[i][j])
            ti = stage_time(t0, t1, c)
            fs.append(problem.drift(ti, xi) if need_f[i] else None)
            gws.append(apply_diffusion(kind, problem.diffusion(ti, xi), dw) if need_g[i] else None)
        x1 = x
        for i in range(len(tab.c)):
            if tab.alpha[i]:
                x1 = torch.add(x1, fs[i], alpha=tab.alpha[i] * h)
            if tab.beta[i]:
                x1 = torch.add(x1, gws[i], alpha=tab.beta[i])
        if not want_error:
            return x1, None
        f0 = fs[0] if fs[0] is not None else problem.drift(t0, x)
        return x1, x1 - (x + h * f0 + gws[0])


@register
@dataclass(frozen=True)
class EulerHeun(StratonovichRK):
    """Euler-Heun: ``x' = x + G(t0, x) dW``, ``x1 = x + f(t0, x) h + (G(t0, x) + G(t1, x')) dW / 2``.

    One drift and two diffusion calls per step (torchsde's ``euler_heun``).
    """

    name = "euler_heun"
    table = StratonovichTable(c=(0.0, 1.0), a=((), (0.0,)), b=((), (1.0,)), alpha=(1.0, 0.0), beta=(0.5, 0.5))
    calls_per_step = 1
    description = "Euler-Heun (Stratonovich), strong order 1 on commutative noise, 0.5 on general noise"


@register
@dataclass(frozen=True)
class HeunSDE(StratonovichRK):
    """Stochastic Heun: ``x' = x + f h + G dW``, ``x1 = x + (f + f') h / 2 + (G + G') dW / 2``.

    Two drift and two diffusion calls per step (torchsde's ``heun``).
    """

    name = "heun_sde"
    table = StratonovichTable(c=(0.0, 1.0), a=((), (1.0,)), b=((), (1.0,)), alpha=(0.5, 0.5), beta=(0.5, 0.5))
    calls_per_step = 2
    description = "stochastic Heun (Stratonovich), strong order 1 on commutative noise, 0.5 on general noise"


@register
@dataclass(frozen=True)
class MidpointSDE(StratonovichRK):
    """Stochastic midpoint: ``x' = x + f h/2 + G dW/2``, ``x1 = x + f(t0 + h/2, x') h + G(t0 + h/2, x') dW``.

    Two drift and two diffusion calls per step (torchsde's ``midpoint``).
    """

    name = "midpoint_sde"
    table = StratonovichTable(c=(0.0, 0.5), a=((), (0.5,)), b=((), (0.5,)), alpha=(0.0, 1.0), beta=(0.0, 1.0))
    calls_per_step = 2
    description = "stochastic midpoint (Stratonovich), strong order 1 on commutative noise, 0.5 on general noise"
