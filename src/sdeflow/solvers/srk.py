"""Strong order 1.5 stochastic Runge-Kutta methods (Roessler 2010): SRI for diagonal, SRA for additive noise.

One kernel runs every table, in the form of A. Roessler, "Runge-Kutta methods for the strong
approximation of solutions of stochastic differential equations", SIAM J. Numer. Anal. 48 (2010),
eqs. (3.1) and (4.1), for an Ito SDE with diagonal or scalar noise (the increments act per
component), with ``h = t1 - t0``, ``dW`` the increment, ``U = I_(1,0) = int (W_s - W_t0) ds``,
``I_(1,1) = (dW^2 - h)/2`` and ``I_(1,1,1) = (dW^3 - 3 h dW)/6``:

    H0_i = x + h sum_j A0_ij f(t0 + c0_j h, H0_j) + sum_j B0_ij G(t0 + c1_j h, H1_j) U / h
    H1_i = x + h sum_j A1_ij f(t0 + c0_j h, H0_j) + sqrt(h) sum_j B1_ij G(t0 + c1_j h, H1_j)
    x1   = x + h sum_i alpha_i f_i
             + sum_i (beta1_i dW + beta2_i I_(1,1)/sqrt(h) + beta3_i U/h + beta4_i I_(1,1,1)/h) G_i.

An SRA method (additive noise, Roessler 2010 section 5) is the same form with ``A1 = B1 = 0``,
``beta2 = beta4 = 0`` and its ``beta2`` in ``beta3``; on additive noise ``G`` does not depend on
the state, so the ``H1`` stages are skipped and any diffusion layout works (general ``(b, d, m)``
included). Ito and Stratonovich agree on additive noise.

Strong order 1.5 (SRI on diagonal/scalar/additive Ito noise, SRA on additive noise). The
embedded error estimate (Rackauckas & Nie 2017, "Adaptive methods for stochastic differential
equations via natural embeddings and rejection sampling with memory", DCDS-B 22) is the part of
the step beyond the order-1 terms: ``h (sum_i alpha_i f_i - f_1) + sum_i (beta3_i U/h + beta4_i
I_(1,1,1)/h) G_i``.

The space-time integral ``U`` comes from the Brownian object (``bm(t0, t1, return_U=True)``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from ._sde import SDEMethod, apply_diffusion, iterated, layout, space_time, stage_time, structure
from .base import register


@dataclass(frozen=True)
class SRKTable:
    """Coefficients of an SRI/SRA method (rows of the matrices strictly lower triangular)."""

    c0: tuple[float, ...]
    c1: tuple[float, ...]
    a0: tuple[tuple[float, ...], ...]
    a1: tuple[tuple[float, ...], ...]
    b0: tuple[tuple[float, ...], ...]
    b1: tuple[tuple[float, ...], ...]
    alpha: tuple[float, ...]
    beta1: tuple[float, ...]
    beta2: tuple[float, ...]
    beta3: tuple[float, ...]
    beta4: tuple[float, ...]

    @classmethod
    def sra(cls, c0, c1, a0, b0, alpha, beta1, beta2) -> "SRKTable":
        """An SRA table (Roessler 2010, eq. 5.1) in the SRI form."""
        s = len(c0)
        zero_rows = tuple((0.0,) * i for i in range(s))
        return cls(c0, c1, a0, zero_rows, b0, zero_rows, alpha, beta1, (0.0,) * s, beta2, (0.0,) * s)


@functools.lru_cache(maxsize=None)
def _plan(tab: SRKTable, additive: bool):
    """Per-table plan, computed once: the nonzero terms of every stage and which f_j, G_j are used.

    Returns ``(rows, need_f, need_g, weights)``: ``rows[i] = (a0, b0, a1, b1)`` lists of ``(j, coef)``;
    ``weights[i] = (beta1, beta2, beta3, beta4)`` of stage ``i``. On additive noise the ``H1``
    stages are skipped (``G`` does not depend on the state).
    """
    s = len(tab.c0)

    def nz(row):
        return [(j, float(c)) for j, c in enumerate(row) if c]

    rows = [(nz(tab.a0[i]), nz(tab.b0[i]), [] if additive else nz(tab.a1[i]), [] if additive else nz(tab.b1[i]))
            for i in range(s)]
    used_f = {j for r in rows for j, _ in r[0] + r[2]}
    used_g = {j for r in rows for j, _ in r[1] + r[3]}
    weights = [(tab.beta1[i], tab.beta2[i], tab.beta3[i], tab.beta4[i]) for i in range(s)]
    need_f = [tab.alpha[j] != 0 or j in used_f for j in range(s)]
    need_g = [any(weights[j]) or j in used_g for j in range(s)]
    return rows, need_f, need_g, weights


@functools.lru_cache(maxsize=64)
def _beta_cached(tab: SRKTable, idx: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    rows = (tab.beta1, tab.beta2, tab.beta3, tab.beta4)
    return torch.tensor([[row[i] for i in idx] for row in rows], dtype=dtype, device=device)


def _beta(tab: SRKTable, idx: list[int], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The ``(4, len(idx))`` matrix of ``beta1..beta4`` of the stages ``idx`` (cached)."""
    return _beta_cached(tab, tuple(idx), dtype, device)


def _axpy(acc: torch.Tensor | None, coef: float, v: torch.Tensor) -> torch.Tensor:
    """``acc + coef * v`` in one fused op (``coef * v`` when ``acc`` is None)."""
    return coef * v if acc is None else torch.add(acc, v, alpha=coef)


@dataclass(frozen=True)
class StochasticRungeKutta(SDEMethod):
    """The SRI/SRA kernel; subclasses set :attr:`table`."""

    table: ClassVar[SRKTable]
    levy_area = "space-time"
    error_estimate = True
    calculus = "ito"
    strong_order = 1.5

    def advance(self, problem, t0, t1, x, noise, want_error):
        tab, h = self.table, t1 - t0
        kind = layout(problem)
        rows, need_f, need_g, weights = _plan(tab, structure(problem) == "additive")
        dw, u = space_time(noise, t0, t1)
        sh = math.sqrt(abs(h))
        u_h = u / h
        s = len(rows)
        fs, gs, gus = [None] * s, [None] * s, [None] * s  # f_j, G_j, G_j U / h
        for i, (a0, b0, a1, b1) in enumerate(rows):
            h0 = h1 = x
            for j, c in a0:
                h0 = torch.add(h0, fs[j], alpha=c * h)
            for j, c in b0:
                if gus[j] is None:
                    gus[j] = apply_diffusion(kind, gs[j], u_h)
                h0 = torch.add(h0, gus[j], alpha=c)
            for j, c in a1:
                h1 = torch.add(h1, fs[j], alpha=c * h)
            for j, c in b1:
                h1 = torch.add(h1, gs[j], alpha=c * sh)
            if need_f[i]:
                fs[i] = problem.drift(stage_time(t0, t1, tab.c0[i]), h0)
            if need_g[i]:
                gs[i] = problem.diffusion(stage_time(t0, t1, tab.c1[i]), h1)
        # The noise terms sum_i G_i (beta1_i dW + beta2_i I11/sqrt(h) + beta3_i U/h + beta4_i I111/h),
        # as sum_k basis_k * (sum_i beta_ki G_i): a stack and one contraction instead of ~17 small ops.
        q11, q111 = iterated(dw, abs(h))  # 2 I_(1,1), 6 I_(1,1,1)
        basis = (dw, q11 * (0.5 / sh), u_h, q111 * (1.0 / (6.0 * abs(h))))
        x1 = x
        for i in range(s):
            if tab.alpha[i]:
                x1 = torch.add(x1, fs[i], alpha=tab.alpha[i] * h)
        idx = [i for i in range(s) if gs[i] is not None]
        if kind == "matrix":  # additive noise with a (batch, d, m) diffusion: per stage
            terms = []
            for i in idx:
                w = None
                for coef, b in zip(weights[i], basis):
                    if coef:
                        w = _axpy(w, coef, b)
                terms.append(apply_diffusion(kind, gs[i], w))
            x1 = x1 + sum(terms)
            high = None
            if want_error:
                high = sum(apply_diffusion(kind, gs[i], _axpy(weights[i][2] * u_h, weights[i][3], basis[3]))
                           for i in idx)
        else:
            beta = _beta(tab, idx, x.dtype, x.device)  # (4, stages used)
            # G may be broadcastable to the state (diagonal noise): expand (a view) before stacking.
            combo = torch.tensordot(beta, torch.stack([gs[i].expand(x.shape) for i in idx]), dims=1)  # (4, *x.shape)
            stacked = torch.stack(basis)
            if kind == "column":
                stacked = stacked.reshape(stacked.shape[:2] + (1,) * (combo.ndim - 2))
            prods = combo * stacked
            x1 = x1 + prods.sum(0)
            high = prods[2:].sum(0) if want_error else None
        if not want_error:
            return x1, None
        f1 = fs[0] if fs[0] is not None else problem.drift(t0, x)
        drift_part = sum((tab.alpha[i] * h) * fs[i] for i in range(s) if tab.alpha[i]) - h * f1
        return x1, drift_part + high


@dataclass(frozen=True)
class SRI(StochasticRungeKutta):
    """An SRI method: Ito, diagonal or scalar noise (additive too), strong order 1.5."""

    strong_orders = {"additive": 1.5, "diagonal": 1.5, "scalar": 1.5}
    noise_types = ("diagonal", "additive", "scalar")


@dataclass(frozen=True)
class SRA(StochasticRungeKutta):
    """An SRA method: additive noise (either calculus), strong order 1.5, weak order 2."""

    strong_orders = {"additive": 1.5}
    calculi = ("ito", "stratonovich")
    calculus = "any"
    noise_types = ("additive",)
    weak_order = 2.0


@register
@dataclass(frozen=True)
class SRIW1(SRI):
    """SRIW1 (Roessler 2010, table 5.2, "SRI1"): Ito, diagonal or scalar noise; strong 1.5, weak 2.

    Four stages: two drift and four diffusion calls per step.
    """

    name = "sriw1"
    weak_order = 2.0
    calls_per_step = 2
    description = "SRIW1 stochastic Runge-Kutta (Ito, diagonal/scalar noise), strong 1.5, weak 2"
    table = SRKTable(
        c0=(0.0, 0.75, 0.0, 0.0),
        c1=(0.0, 0.25, 1.0, 0.25),
        a0=((), (0.75,), (0.0, 0.0), (0.0, 0.0, 0.0)),
        a1=((), (0.25,), (1.0, 0.0), (0.0, 0.0, 0.25)),
        b0=((), (1.5,), (0.0, 0.0), (0.0, 0.0, 0.0)),
        b1=((), (0.5,), (-1.0, 0.0), (-5.0, 3.0, 0.5)),
        alpha=(1 / 3, 2 / 3, 0.0, 0.0),
        beta1=(-1.0, 4 / 3, 2 / 3, 0.0),
        beta2=(-1.0, 4 / 3, -1 / 3, 0.0),
        beta3=(2.0, -4 / 3, -2 / 3, 0.0),
        beta4=(-2.0, 5 / 3, -2 / 3, 1.0),
    )


@register
@dataclass(frozen=True)
class SRI2(SRI):
    """SRI2 (Roessler 2010, table 5.3): Ito, diagonal or scalar noise; strong 1.5, weak 3 for ODE-like drift.

    Four stages: three drift and four diffusion calls per step. Declared weak order 1 (the order
    asserted by the tests).
    """

    name = "sri2"
    weak_order = 1.0
    calls_per_step = 3
    description = "SRI2 stochastic Runge-Kutta (Ito, diagonal/scalar noise), strong 1.5"
    table = SRKTable(
        c0=(0.0, 1.0, 0.5, 0.0),
        c1=(0.0, 0.25, 1.0, 0.25),
        a0=((), (1.0,), (0.25, 0.25), (0.0, 0.0, 0.0)),
        a1=((), (0.25,), (1.0, 0.0), (0.0, 0.0, 0.25)),
        b0=((), (0.0,), (1.0, 0.5), (0.0, 0.0, 0.0)),
        b1=((), (-0.5,), (1.0, 0.0), (2.0, -1.0, 0.5)),
        alpha=(1 / 6, 1 / 6, 2 / 3, 0.0),
        beta1=(-1.0, 4 / 3, 2 / 3, 0.0),
        beta2=(1.0, -4 / 3, 1 / 3, 0.0),
        beta3=(2.0, -4 / 3, -2 / 3, 0.0),
        beta4=(-2.0, 5 / 3, -2 / 3, 1.0),
    )


@register
@dataclass(frozen=True)
class SRA1(SRA):
    """SRA1 (Roessler 2010, table 6.1): additive noise, strong order 1.5, weak order 2.

    Two stages: two drift and two diffusion calls per step.
    """

    name = "sra1"
    calls_per_step = 2
    description = "SRA1 stochastic Runge-Kutta (additive noise), strong 1.5, weak 2"
    table = SRKTable.sra(
        c0=(0.0, 0.75), c1=(1.0, 0.0), a0=((), (0.75,)), b0=((), (1.5,)),
        alpha=(1 / 3, 2 / 3), beta1=(1.0, 0.0), beta2=(-1.0, 1.0),
    )


@register
@dataclass(frozen=True)
class SRA3(SRA):
    """SRA3 (Roessler 2010, table 6.3): additive noise, strong order 1.5, weak order 3 (declared 2).

    Three stages: three drift and three diffusion calls per step.
    """

    name = "sra3"
    calls_per_step = 3
    description = "SRA3 stochastic Runge-Kutta (additive noise), strong 1.5"
    table = SRKTable.sra(
        c0=(0.0, 1.0, 0.5), c1=(1.0, 0.0, 0.0), a0=((), (1.0,), (0.25, 0.25)), b0=((), (0.0,), (1.0, 0.5)),
        alpha=(1 / 6, 1 / 6, 2 / 3), beta1=(1.0, 0.0, 0.0), beta2=(-1.0, 1.0, 0.0),
    )
