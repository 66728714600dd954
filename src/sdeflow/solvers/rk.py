"""Explicit Runge-Kutta methods for ODEs from Butcher tables, one kernel; Dormand-Prince 5(4) embedded.

``k_i = f(t0 + c_i h, x + h sum_j a_ij k_j)``, ``x1 = x + h sum_i b_i k_i`` and, for an embedded
pair, the error estimate ``h sum_i (b_i - bhat_i) k_i``. A method whose last stage is evaluated at
``(t1, x1)`` (first same as last, FSAL) hands that derivative to the next step in its state.

On a diffusion problem (the probability-flow ODE) the first stage also gives the step's ``x0``
estimate, and a step whose stages cannot be evaluated (the last step to ``t = 0``) is an Euler step,
as in EDM's Heun sampler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch

from .base import Solver, StepResult, register
from .euler import drift_and_x0


@dataclass(frozen=True)
class ButcherTable:
    """An explicit Runge-Kutta table; ``b_err = b - bhat`` for an embedded pair (else ``None``)."""

    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    b_err: tuple[float, ...] | None = None
    error_order: int | None = None  # order of the embedded (lower-order) solution

    @property
    def fsal(self) -> bool:
        last = tuple(self.a[-1]) + (0.0,) * (len(self.b) - len(self.a[-1]))
        return self.c[-1] == 1.0 and last == tuple(self.b)


class FSALState(NamedTuple):
    """The derivative ``k = f(t, x)`` at the end of the last step, reused as the next first stage."""

    t: float
    x: torch.Tensor
    k: torch.Tensor


@dataclass(frozen=True)
class RungeKutta(Solver):
    """The kernel: runs :attr:`table`."""

    table: ClassVar[ButcherTable]

    def nfe(self, ts: torch.Tensor) -> int:
        s = len(self.table.c)
        n = len(ts) - 1
        return (s - 1) * n + 1 if self.table.fsal else s * n

    def _stages(self, problem, t0, t1, x, state) -> tuple[list[torch.Tensor], Any, bool]:
        tab, h = self.table, t1 - t0
        if isinstance(state, FSALState) and state.t == t0 and state.x is x:
            ks, x0 = [state.k], None
        else:
            k, x0 = drift_and_x0(problem, t0, x)
            ks = [k]
        can_eval = getattr(problem, "can_evaluate", None)
        if can_eval is not None and not can_eval(t1):
            return ks, x0, False
        for i in range(1, len(tab.c)):
            xi = x
            for j, a in enumerate(tab.a[i]):
                if a:
                    xi = torch.add(xi, ks[j], alpha=a * h)
            ks.append(problem.drift(t0 + tab.c[i] * h, xi))
        return ks, x0, True

    def _combine(self, x, h, ks, weights):
        out = x
        for w, k in zip(weights, ks):
            if w:
                out = torch.add(out, k, alpha=w * h)
        return out

    def step(self, problem, t0, t1, x, state, noise):
        return self.step_with_error(problem, t0, t1, x, state, noise, want_error=False)[0]

    def step_with_error(self, problem, t0, t1, x, state, noise, want_error: bool = True):
        """``(StepResult, err)``; ``err`` is the embedded estimate ``h sum (b - bhat) k`` (shape of ``x``)."""
        tab, h = self.table, t1 - t0
        ks, x0, full = self._stages(problem, t0, t1, x, state)
        if not full:  # Euler step where the stages cannot be evaluated
            return StepResult(x + h * ks[0], None, x0), None
        x1 = self._combine(x, h, ks, tab.b)
        new_state = FSALState(t1, x1, ks[-1]) if tab.fsal else None
        err = None
        if want_error and tab.b_err is not None:
            err = self._combine(torch.zeros_like(x), h, ks, tab.b_err)
        return StepResult(x1, new_state, x0), err


@register
@dataclass(frozen=True)
class Midpoint(RungeKutta):
    """Explicit midpoint rule: ``x1 = x + h f(t0 + h/2, x + h/2 f(t0, x))``. ODE order 2, two calls per step."""

    name = "midpoint"
    ode_order = 2
    calls_per_step = 2
    description = "explicit midpoint (ODE order 2)"
    table = ButcherTable(c=(0.0, 0.5), a=((), (0.5,)), b=(0.0, 1.0))


@register
@dataclass(frozen=True)
class RK4(RungeKutta):
    """The classical Runge-Kutta method of order 4 (Kutta 1901). Four calls per step."""

    name = "rk4"
    ode_order = 4
    calls_per_step = 4
    description = "classical Runge-Kutta (ODE order 4)"
    table = ButcherTable(
        c=(0.0, 0.5, 0.5, 1.0), a=((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)), b=(1 / 6, 1 / 3, 1 / 3, 1 / 6)
    )


_DP_B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_DP_BHAT = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)


@register
@dataclass(frozen=True)
class Dopri5(RungeKutta):
    """Dormand-Prince 5(4) (Dormand & Prince 1980, J. Comput. Appl. Math. 6, table 2), FSAL.

    ODE order 5 with an embedded order-4 error estimate; six calls per step after the first.
    """

    name = "dopri5"
    ode_order = 5
    calls_per_step = 7
    description = "Dormand-Prince 5(4) (ODE order 5, embedded error estimate for adaptive steps)"
    table = ButcherTable(
        c=(0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0),
        a=(
            (),
            (1 / 5,),
            (3 / 40, 9 / 40),
            (44 / 45, -56 / 15, 32 / 9),
            (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
            (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
            _DP_B[:6],
        ),
        b=_DP_B,
        b_err=tuple(b - bh for b, bh in zip(_DP_B, _DP_BHAT)),
        error_order=4,
    )
