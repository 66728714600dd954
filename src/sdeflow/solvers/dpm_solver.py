"""Single-step DPM-Solver-1/2/3 (Lu et al. 2022) and DPM-Solver++(2S) (Lu et al. 2022b)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ._exponential import (
    ExponentialSingleStep,
    ProgramState,
    cached,
    check_order,
    Program,
    Stage,
    ddim_program,
    denoise_program,
    grid_table,
    phi,
    t_at_lambda,
)
from .base import register

__all__ = ["DPMSolver", "DPMSolverPP2S", "stage_table"]


def stage_table(problem, tab, i: int, fractions: tuple[float, ...]):
    """Grid tables at the intermediate times ``lambda_i + r h`` of step ``i`` (one per fraction ``r``)."""
    h = tab.lam[i + 1] - tab.lam[i]
    times = [t_at_lambda(problem.process, tab.lam[i] + r * h) for r in fractions]
    return grid_table(problem.process, problem.denoiser.prediction, times), h


@register
@dataclass(frozen=True)
class DPMSolver(ExponentialSingleStep):
    r"""Single-step DPM-Solver-k in noise prediction (Lu et al. 2022, Algorithms 1 and 2), ``k`` = 1, 2, 3.

    With ``h = lambda_t - lambda_s`` (half log-SNR) and intermediate nodes ``s_j`` at
    ``lambda_s + r_j h``:

    * k = 1 (DDIM): ``x_t = (alpha_t/alpha_s) x - sigma_t (e^h - 1) eps_s``;
    * k = 2, ``r_1 = 1/2``: ``u = (alpha_{s1}/alpha_s) x - sigma_{s1} (e^{h/2} - 1) eps_s``,
      ``x_t = (alpha_t/alpha_s) x - sigma_t (e^h - 1) eps_s - sigma_t (e^h - 1) (eps(u, s1) - eps_s)``;
    * k = 3, ``r_1 = 1/3, r_2 = 2/3``: ``u_1`` as above at ``s1``; ``D_1 = eps(u_1) - eps_s``;
      ``u_2 = (alpha_{s2}/alpha_s) x - sigma_{s2} (e^{r_2 h} - 1) eps_s - sigma_{s2} (r_2/r_1) r_2 h phi_2(r_2 h) D_1``;
      ``x_t = (alpha_t/alpha_s) x - sigma_t (e^h - 1) eps_s - (sigma_t/r_2) h phi_2(h) (eps(u_2) - eps_s)``.

    ODE order ``k``; ``k`` model calls per step, one on the last step to ``t = 0`` (the denoising
    step ``x = x0_hat``). A step from ``alpha = 0`` is DDIM.

    **A budget of model calls** (``sample(..., nfe=N)``) is split as in DPM-Solver's "fast" order
    schedule (Lu et al. 2022, Section 3.4): the ``M = N - 1`` calls before the denoising step go to
    ``M // k`` steps of order ``k`` and, if calls remain, one last step of the remaining order, except
    that at order 3 a budget divisible by 3 ends with a second- and a first-order step,
    ``(3, ..., 3, 2, 1)``, as in the paper. No call is wasted and a small budget still takes several
    steps (at ``N = 5`` order 3 takes a third-order and a first-order step, not one third-order step
    across the whole range). The layout
    is the ``layout`` field (orders of the steps before the denoising step), set by :meth:`for_budget`;
    with ``layout=None`` (``steps=`` given, or a grid of another length) every step has order ``k``.
    """

    name = "dpm_solver"
    description = "DPM-Solver-1/2/3 single-step (noise prediction)"

    order: int = 3
    layout: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        check_order(self.order, self.name, 3)
        if self.layout is not None:
            if not isinstance(self.layout, tuple) or not self.layout:
                raise ValueError(f"layout must be a non-empty tuple of step orders; got {self.layout!r}")
            if not all(isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= self.order for k in self.layout):
                raise ValueError(f"layout must hold step orders from 1 to order={self.order}; got {self.layout!r}")

    @property
    def ode_order(self) -> int:  # type: ignore[override]
        return self.order

    @property
    def calls_per_step(self) -> int:  # type: ignore[override]
        return self.order

    def for_budget(self, nfe: int) -> "DPMSolver":
        """This solver with the order layout of a budget of ``nfe`` calls (see the class docstring)."""
        rest = nfe - 1
        if rest < 1:
            return self
        q, r = divmod(rest, self.order)
        if self.order == 3 and r == 0:
            layout = (3,) * (q - 1) + (2, 1)  # DPM-Solver-fast: M = 3q calls end with orders 2 and 1
        else:
            layout = (self.order,) * q + ((r,) if r else ())
        return replace(self, layout=layout)

    def _orders(self, steps: int) -> tuple[int, ...] | None:
        """Orders of the ``steps - 1`` steps before a final denoising step, where the layout fits the grid."""
        return self.layout if self.layout is not None and steps == len(self.layout) + 1 else None

    def nfe(self, ts) -> int:
        orders = self._orders(len(ts) - 1) if float(ts[-1]) == 0.0 else None
        return sum(orders) + 1 if orders is not None else super().nfe(ts)

    def steps_for_nfe(self, budget: int, ends_at_zero: bool) -> int:
        if self.layout is not None and ends_at_zero and sum(self.layout) + 1 <= budget:
            return len(self.layout) + 1
        return super().steps_for_nfe(budget, ends_at_zero)

    def init(self, problem, ts, x):
        orders = self._orders(len(ts) - 1) if float(ts[-1]) == 0.0 else None
        if orders is None:
            return super().init(problem, ts, x)

        def build():
            tab = grid_table(problem.process, problem.denoiser.prediction, ts)
            return tuple(self.program(problem, tab, i, orders[i] if i < len(orders) else self.order) for i in range(len(ts) - 1))

        return ProgramState(0, cached(self, problem, ts, build))

    def program(self, problem, tab, i, order: int | None = None):
        order = self.order if order is None else order
        if tab.sigma[i + 1] <= 0.0:
            return denoise_program(tab, i)
        if order == 1 or not math.isfinite(tab.lam[i]):
            return ddim_program(tab, i)
        a0, a1, s1 = tab.alpha[i], tab.alpha[i + 1], tab.sigma[i + 1]
        e0 = tab.eps_map[i]
        first = Stage(tab.times[i], 1.0, (), e0)
        if order == 2:
            st, h = stage_table(problem, tab, i, (0.5,))
            mid = Stage(st.times[0], st.alpha[0] / a0, (-st.sigma[0] * math.expm1(0.5 * h),), st.eps_map[0])
            e = math.expm1(h)
            return Program((first, mid), a1 / a0, (0.0, -s1 * e), 0.0, tab.x0_map[i])
        r1, r2 = 1.0 / 3.0, 2.0 / 3.0
        st, h = stage_table(problem, tab, i, (r1, r2))
        u1 = Stage(st.times[0], st.alpha[0] / a0, (-st.sigma[0] * math.expm1(r1 * h),), st.eps_map[0])
        c2 = st.sigma[1] * (r2 / r1) * r2 * h * phi(2, r2 * h)
        u2 = Stage(st.times[1], st.alpha[1] / a0, (-st.sigma[1] * math.expm1(r2 * h) + c2, -c2), st.eps_map[1])
        cf = (s1 / r2) * h * phi(2, h)
        return Program((first, u1, u2), a1 / a0, (-s1 * math.expm1(h) + cf, 0.0, -cf), 0.0, tab.x0_map[i])


@register
@dataclass(frozen=True)
class DPMSolverPP2S(ExponentialSingleStep):
    r"""DPM-Solver++(2S) in data prediction (Lu et al. 2022b, Algorithm 1, ``r = 1/2``).

    ``u = (sigma_{s1}/sigma_s) x - alpha_{s1} (e^{-h/2} - 1) x0_s`` at ``lambda_{s1} = lambda_s + h/2``,
    then ``x_t = (sigma_t/sigma_s) x - alpha_t (e^{-h} - 1) x0(u, s1)``. ODE order 2; two calls per
    step, one on the last step to ``t = 0`` (the denoising step).
    """

    name = "dpm_solver_pp_2s"
    ode_order = 2
    calls_per_step = 2
    description = "DPM-Solver++(2S) single-step (data prediction), second order"

    def program(self, problem, tab, i):
        if tab.sigma[i + 1] <= 0.0:
            return denoise_program(tab, i)
        if not math.isfinite(tab.lam[i]):
            return ddim_program(tab, i)
        st, h = stage_table(problem, tab, i, (0.5,))
        s0, a1, s1 = tab.sigma[i], tab.alpha[i + 1], tab.sigma[i + 1]
        m0 = tab.x0_map[i]
        mid = Stage(st.times[0], st.sigma[0] / s0, (-st.alpha[0] * math.expm1(-0.5 * h),), st.x0_map[0])
        return Program((Stage(tab.times[i], 1.0, (), m0), mid), s1 / s0, (0.0, -a1 * math.expm1(-h)), 0.0, m0)
