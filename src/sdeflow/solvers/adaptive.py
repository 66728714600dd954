"""Adaptive samplers with per-sample error control: an embedded Runge-Kutta pair for the
probability-flow ODE and the "Gotta Go Fast" reverse-SDE sampler (Jolicoeur-Martineau et al. 2021).

They do not follow a fixed grid: the driver (:func:`sdeflow.sample`) calls :meth:`step` (one
attempt of every unfinished sample towards the next grid time ``t1``) until :meth:`reached`, and
stops at the ``nfe`` cap. Each sample has its own time and step size (``(batch,)`` float64
tensors in the state), so a sample's path does not depend on the others in its batch. Checking
whether every sample reached ``t1`` is one host-device synchronization per attempt (inherent to
adaptive stepping); the grid's interior times are landed on exactly (output times).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch

from .._utils import check_positive, expand_to
from .base import Solver, StepResult, register
from .rk import Dopri5

__all__ = ["AdaptiveODE", "AdaptiveSDE", "AdaptiveState"]

# Dormand & Prince (1980) RK5(4)7M, FSAL: the table of :class:`~sdeflow.solvers.rk.Dopri5` (stage matrix,
# nodes and the error weights b - bhat of the embedded 4th-order solution).
_TABLE = Dopri5.table
_C, _A, _E = _TABLE.c, _TABLE.a, _TABLE.b_err


class AdaptiveState(NamedTuple):
    """Per-sample log noise level ``u = log(sigma/alpha)`` (or time, ``space = "t"``), proposed step ``h`` (< 0),
    FSAL slope, counts."""

    u: torch.Tensor | None
    h: torch.Tensor | None
    k1: torch.Tensor | None
    accepted: int
    rejected: int
    space: str = "u"  # "t": ``u`` holds per-sample times (an interval that starts where alpha = 0)


def _error_norm(err: torch.Tensor, y0: torch.Tensor, y1: torch.Tensor, rtol: float, atol: float) -> torch.Tensor:
    """Per-sample RMS of ``err / (atol + rtol max(|y0|, |y1|))`` over the event dims, float64 ``(batch,)``."""
    scale = atol + rtol * torch.maximum(y0.abs(), y1.abs())
    return (err / scale).double().pow(2).flatten(1).mean(1).sqrt()


def _next_h(h: torch.Tensor, norm: torch.Tensor, order: float, safety: float = 0.9) -> torch.Tensor:
    # norm^(-1/order) through exp and log: torch's fractional pow rounds differently in its vector
    # body and scalar tail, which would make a sample's step sizes depend on its batch (_utils).
    factor = safety * torch.exp(torch.log(norm.clamp(min=1e-10)) * (-1.0 / order))
    return h * factor.clamp(0.2, 5.0)


def _rows(mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A per-sample boolean ``(batch,)`` shaped to broadcast against ``x``."""
    return mask.reshape((x.shape[0],) + (1,) * (x.ndim - 1))


def _times(process, u: torch.Tensor) -> torch.Tensor:
    """Per-sample times of log noise levels ``u`` (float64)."""
    return process.t_from_noise_level(torch.exp(u))


@dataclass(frozen=True)
class _Adaptive(Solver):
    """Shared driver-facing logic: interval bookkeeping, the final denoising step, limits."""

    needs = "denoiser"
    adaptive = True

    def reached(self, state: AdaptiveState) -> bool:
        """Whether every sample has reached the end of the current interval (one synchronization)."""
        return state.u is None

    def _begin(self, problem, t0: float, x: torch.Tensor, state: AdaptiveState, h0: float):
        if state.u is not None:
            return state
        u0 = math.log(float(problem.process.noise_level(t0)))
        u = torch.full((x.shape[0],), u0, dtype=torch.float64, device=x.device)
        h = torch.full_like(u, -abs(h0)) if state.h is None else state.h
        return AdaptiveState(u, h, None, state.accepted, state.rejected)

    @staticmethod
    def _denoise(problem, t0, t1, x, state):
        """The last step to ``t = 0``: ``x = alpha(0) x0_hat`` at ``t0`` (one call)."""
        d = problem.denoiser(x, t0)
        a1 = float(problem.process.alpha(t1))
        return StepResult(a1 * d.x0, AdaptiveState(None, state.h, None, state.accepted + x.shape[0], state.rejected), d.x0)

    def init(self, problem, ts, x):
        return AdaptiveState(None, None, None, 0, 0)


@register
@dataclass(frozen=True)
class AdaptiveODE(_Adaptive):
    r"""Dormand-Prince 5(4) with per-sample error control on the probability-flow ODE.

    In the scaled state ``y = x/alpha`` and the log noise level ``u = log(sigma/alpha)`` the
    probability-flow ODE of every Gaussian path is ``dy/du = y - x0_hat(alpha y, t(u))``
    (Karras et al. 2022, eq. 4 with ``sigma = e^u``): smooth and well scaled from ``T`` down to
    small noise. Each sample takes its own steps: accepted when
    ``RMS(err / (atol + rtol max|y|)) <= 1`` (Hairer, Norsett & Wanner, II.4), next step
    ``h * clamp(0.9 norm^{-1/5}, 0.2, 5)``. FSAL: six model calls per attempt after the first.
    The last step to ``t = 0`` is the denoising step ``x0_hat``. ODE order 5. An interval that starts
    where ``alpha = 0`` (rectified flow at ``t = T``: infinite noise level, no scaled state) runs the
    same pair and controller in ``t`` on ``dx/dt = drift(t, x)``, with ``h_init`` a fraction of the interval.
    """

    name = "adaptive_ode"
    ode_order = 5
    calls_per_step = 6
    description = "adaptive Dormand-Prince 5(4) on the probability-flow ODE, per-sample rtol/atol"

    rtol: float = 1e-4
    atol: float = 1e-4
    h_init: float = 0.5

    def __post_init__(self) -> None:
        check_positive(self.rtol, "rtol")
        check_positive(self.atol, "atol")
        check_positive(self.h_init, "h_init")

    def nfe(self, ts) -> int:  # a lower bound; the real count depends on the tolerances
        return 7 * (len(ts) - 1)

    def _slope(self, problem, y: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        t = _times(problem.process, u)
        alpha = problem.process.alpha(t)
        d = problem.denoiser(expand_to(alpha, y) * y, t)
        return y - d.x0

    def step(self, problem, t0, t1, x, state, noise):
        process = problem.process
        if float(process.sigma(t1)) <= 0.0:
            return self._denoise(problem, t0, t1, x, state)
        if state.u is None and not math.isfinite(float(process.noise_level(t0))):
            # alpha(t0) = 0 (rectified flow at t = T): no scaled state y = x/alpha there; this interval
            # runs in t on the ODE dx/dt = drift (the same pair and controller, per-sample times).
            state = AdaptiveState(torch.full((x.shape[0],), float(t0), dtype=torch.float64, device=x.device),
                                  None, None, state.accepted, state.rejected, "t")
        if state.space == "t":
            return self._step_t(problem, t1, x, state)
        state = self._begin(problem, t0, x, state, self.h_init)
        u_end = math.log(float(process.noise_level(t1)))
        y = x / expand_to(process.alpha(_times(process, state.u)), x)
        u1, y_new, k1, h, norm, ok = self._attempt(lambda v, u: self._slope(problem, v, u), y, state.u, u_end,
                                                   state.h, state.k1)
        h_next = _next_h(h, norm, 5.0)
        done = bool((u1 == u_end).all())
        x_new = expand_to(process.alpha(_times(process, u1)), y_new) * y_new
        n_ok = int(ok.sum())
        new_state = AdaptiveState(
            None if done else u1, h_next if not done else torch.minimum(h_next, state.h), None if done else k1,
            state.accepted + n_ok, state.rejected + x.shape[0] - n_ok,
        )
        return StepResult(x_new, new_state, y_new - k1)

    def _step_t(self, problem, t1: float, x: torch.Tensor, state: AdaptiveState) -> StepResult:
        """One attempt in ``t`` on ``dx/dt = drift(t, x)`` (per-sample times in ``state.u``)."""
        t = state.u
        h_prop = state.h if state.h is not None else torch.full_like(t, -self.h_init * abs(float(t[0]) - t1))
        last = []  # the denoised pair of the latest stage (the 5th-order solution's, after the attempt)

        def slope(v, s):
            f, d = problem.drift_and_denoised(s, v)
            last[:] = [d]
            return f

        t_new, x_new, k1, h, norm, ok = self._attempt(slope, x, t, t1, h_prop, state.k1)
        done = bool((t_new == t1).all())
        n_ok = int(ok.sum())
        # The next interval (if any) starts at a finite noise level, in log-noise-level space: no step carried over.
        new_state = AdaptiveState(None if done else t_new, None if done else _next_h(h, norm, 5.0), None if done else k1,
                                  state.accepted + n_ok, state.rejected + x.shape[0] - n_ok, "u" if done else "t")
        return StepResult(x_new, new_state, last[0].x0)

    def _attempt(self, slope, y: torch.Tensor, s: torch.Tensor, s_end: float, h_prop: torch.Tensor, k1):
        """One Dormand-Prince 5(4) attempt of every sample from ``s`` (per-sample, float64) towards ``s_end``
        with proposed steps ``h_prop`` (< 0) on ``dy/ds = slope(y, s)`` (FSAL slope ``k1`` if known).

        Returns ``(s1, y1, k1, h, norm, ok)``: the new positions and states (unchanged where rejected),
        the FSAL slope there, the steps tried, the error norms and the acceptance mask.
        """
        land = h_prop <= s_end - s  # the step would pass the end: land exactly on it (h < 0)
        h = torch.where(land, s_end - s, h_prop).clamp(max=0.0)
        k = [k1 if k1 is not None else slope(y, s)]
        for i in range(1, 7):
            ys = y + sum(expand_to(h * a, y) * k[j] for j, a in enumerate(_A[i]) if a != 0.0)
            k.append(slope(ys, s + _C[i] * h))
        y1 = ys  # stage 7 is the 5th-order solution (FSAL)
        err = sum(expand_to(h * e, y) * k[j] for j, e in enumerate(_E) if e != 0.0)
        norm = _error_norm(err, y, y1, self.rtol, self.atol)
        ok = norm <= 1.0
        s1 = torch.where(ok, torch.where(land, torch.full_like(h, s_end), s + h), s)
        rows = _rows(ok, y)
        return s1, torch.where(rows, y1, y), torch.where(rows, k[6], k[0]), h, norm, ok


@register
@dataclass(frozen=True)
class AdaptiveSDE(_Adaptive):
    r"""Adaptive reverse-SDE sampler of Jolicoeur-Martineau et al. (2021, "Gotta Go Fast", Algorithm 1).

    Per sample, from ``(t, x)`` with step ``h < 0`` and the Brownian increment ``dW`` of the step
    (from the seed's Brownian tree, so a sample's noise is one path whatever the steps taken):
    ``x' = x + h f(t, x) + g(t) dW`` (Euler-Maruyama) and ``x'' = x + h (f(t, x) + f(t+h, x'))/2 + g(t) dW``
    (improved Euler, same noise); accept when ``||x' - x''||_RMS / (atol + rtol max(|x'|, |x_prev|)) <= 1``
    and keep ``x''``; next step ``h * clamp(0.9 E^{-r}, 0.2, 5)`` with ``r = 0.9`` (their default).
    Two model calls per attempt; the last step to ``t = 0`` is the denoising step. Weak order 1.
    """

    name = "adaptive_sde"
    weak_order = 1.0
    calls_per_step = 2
    stochastic = True
    description = "adaptive reverse-SDE sampler (Gotta Go Fast), per-sample rtol/atol, Brownian tree"

    rtol: float = 1e-2
    atol: float = 1e-2
    eta: float = 1.0
    h_init: float = 0.01
    exponent: float = 0.9

    def __post_init__(self) -> None:
        for name in ("rtol", "atol", "eta", "h_init", "exponent"):
            check_positive(getattr(self, name), name)

    def stochasticity(self) -> float:
        return self.eta

    def nfe(self, ts) -> int:
        return 2 * (len(ts) - 1)

    def step(self, problem, t0, t1, x, state, noise):
        process = problem.process
        if float(process.sigma(t1)) <= 0.0:
            return self._denoise(problem, t0, t1, x, state)
        if state.u is None:  # steps in t here; 'u' holds the per-sample time
            tt = torch.full((x.shape[0],), float(t0), dtype=torch.float64, device=x.device)
            h0 = -abs(self.h_init) * abs(t0 - t1) if state.h is None else None
            state = AdaptiveState(tt, torch.full_like(tt, h0) if h0 is not None else state.h, None, state.accepted, state.rejected)
        t = state.u
        land = state.h <= t1 - t
        h = torch.where(land, t1 - t, state.h).clamp(max=0.0)
        dw = noise(t, t + h)
        f0, d = problem.drift_and_denoised(t, x)
        g0 = problem.diffusion(t, x)
        x_em = x + expand_to(h, x) * f0 + g0 * dw
        f1, _ = problem.drift_and_denoised(t + h, x_em)
        x_ie = x + expand_to(0.5 * h, x) * (f0 + f1) + g0 * dw
        scale = self.atol + self.rtol * torch.maximum(x_em.abs(), x.abs())
        norm = ((x_em - x_ie) / scale).double().pow(2).flatten(1).mean(1).sqrt()
        ok = norm <= 1.0
        t_new = torch.where(ok, torch.where(land, torch.full_like(h, float(t1)), t + h), t)
        x_new = torch.where(_rows(ok, x), x_ie, x)
        h_next = _next_h(h, norm, 1.0 / self.exponent)
        done = bool((t_new == t1).all())
        n_ok = int(ok.sum())
        new_state = AdaptiveState(None if done else t_new, torch.minimum(h_next, state.h) if done else h_next, None,
                                  state.accepted + n_ok, state.rejected + x.shape[0] - n_ok)
        return StepResult(x_new, new_state, d.x0)
