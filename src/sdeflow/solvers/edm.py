"""EDM's stochastic sampler with churn (Karras et al. 2022, Algorithm 2)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch

from .._utils import check_nonnegative
from ._exponential import Program, ddim_program, grid_table, lincomb, run_program
from .base import Solver, StepResult, register

__all__ = ["EDMSampler"]


class _EDMStep(NamedTuple):
    t_hat: float  # the raised time (noise level rho_hat = (1 + gamma) rho_i)
    scale_in: float  # x_hat = scale_in * x + noise_scale * dW  (alpha_hat / alpha_i, then churn noise)
    noise_scale: float
    eps_hat: tuple[float, float]  # eps map at t_hat
    rho_hat: float
    alpha_hat: float
    t1: float
    alpha1: float
    rho1: float
    eps1: tuple[float, float] | None  # eps map at t1 (None: last step to 0, Euler only)
    x0_hat: tuple[float, float]


class EDMState(NamedTuple):
    i: int
    plans: tuple[_EDMStep, ...]


@register
@dataclass(frozen=True)
class EDMSampler(Solver):
    r"""Karras et al. (2022), Algorithm 2, in the scaled state ``y = x/alpha`` and noise level ``rho = sigma/alpha``.

    For each step ``i`` (``N`` steps): ``gamma = min(S_churn/N, sqrt 2 - 1)`` if ``S_tmin <= rho_i <= S_tmax``
    else 0; ``rho_hat = (1 + gamma) rho_i``; ``y_hat = y + sqrt(rho_hat^2 - rho_i^2) S_noise z``;
    ``d = eps(y_hat, rho_hat)``; ``y' = y_hat + (rho_{i+1} - rho_hat) d``; unless ``rho_{i+1} = 0``:
    ``y' = y_hat + (rho_{i+1} - rho_hat) (d + eps(y', rho_{i+1}))/2``. On the EDM process (``alpha = 1``)
    this is the paper's algorithm line by line; ``s_churn = 0`` is EDM's deterministic Heun (Algorithm 1).
    ``z`` is the step's Brownian increment over ``sqrt|dt|`` (one path per seed). ``S_tmin, S_tmax`` are
    noise levels. Two calls per step, one on the last step to 0 and on a step from ``alpha = 0``
    (rectified flow at ``t = 1``, where the noise level is infinite: the DDIM step). ODE order 2 when
    ``s_churn = 0``.
    """

    name = "edm"
    calls_per_step = 2
    needs = "denoiser"
    description = "EDM stochastic sampler with churn (Karras Algorithm 2); s_churn=0: Heun"

    s_churn: float = 0.0
    s_tmin: float = 0.0
    s_tmax: float = math.inf
    s_noise: float = 1.0

    def __post_init__(self) -> None:
        check_nonnegative(self.s_churn, "s_churn")
        check_nonnegative(self.s_tmin, "s_tmin")
        check_nonnegative(self.s_noise, "s_noise")
        if not self.s_tmax >= self.s_tmin:
            raise ValueError(f"s_tmax must be >= s_tmin; got s_tmin={self.s_tmin}, s_tmax={self.s_tmax}")

    @property
    def stochastic(self) -> bool:  # type: ignore[override]
        return self.s_churn > 0 and self.s_noise > 0

    @property
    def ode_order(self) -> int | None:  # type: ignore[override]
        return 2 if self.s_churn == 0 else None

    def stochasticity(self) -> float:
        return 0.0

    def nfe(self, ts) -> int:
        n = len(ts) - 1
        return 2 * n - 1 if float(ts[-1]) == 0.0 else 2 * n

    def init(self, problem, ts, x):
        process = problem.process
        n = len(ts) - 1
        tab = grid_table(process, problem.denoiser.prediction, ts)
        rho_T = float(process.noise_level(process.T))
        gamma_max = min(self.s_churn / n, math.sqrt(2.0) - 1.0)
        hats = []
        for i in range(n):
            rho = tab.rho[i]
            gamma = gamma_max if (self.s_tmin <= rho <= self.s_tmax and math.isfinite(rho)) else 0.0
            rho_hat = min((1.0 + gamma) * rho, rho_T)
            hats.append(ts[i] if rho_hat == rho else float(process.t_from_noise_level(torch.tensor(rho_hat, dtype=torch.float64))))
        hat_tab = grid_table(process, problem.denoiser.prediction, hats)
        plans = []
        for i in range(n):
            if not math.isfinite(tab.rho[i]):  # from alpha = 0 (rectified flow at t = 1): the DDIM step
                plans.append(ddim_program(tab, i))
                continue
            rho, rho_hat = tab.rho[i], hat_tab.rho[i]
            extra = math.sqrt(max(rho_hat * rho_hat - rho * rho, 0.0)) * self.s_noise
            dt = abs(ts[i + 1] - ts[i])
            a_hat = hat_tab.alpha[i]
            plans.append(_EDMStep(hats[i], a_hat / tab.alpha[i], a_hat * extra / math.sqrt(dt), hat_tab.eps_map[i],
                                  rho_hat, a_hat, ts[i + 1], tab.alpha[i + 1], tab.rho[i + 1],
                                  tab.eps_map[i + 1] if tab.sigma[i + 1] > 0 else None, hat_tab.x0_map[i]))
        return EDMState(0, tuple(plans))

    def step(self, problem, t0, t1, x, state, noise):
        p = state.plans[state.i]
        if isinstance(p, Program):
            x1, x0 = run_program(p, problem.denoiser, x, noise, t0, t1)
            return StepResult(x1, EDMState(state.i + 1, state.plans), x0)
        raw = problem.denoiser.raw
        # Churn: raise the noise level from rho_i to rho_hat (Algorithm 2, lines 4-6).
        terms = [(p.noise_scale, noise(t0, t1))] if p.noise_scale != 0.0 else []
        x_hat = lincomb(x, p.scale_in, terms)
        out = raw(x_hat, p.t_hat)
        eps0 = lincomb(out, p.eps_hat[1], [(p.eps_hat[0], x_hat)])
        x0 = lincomb(out, p.x0_hat[1], [(p.x0_hat[0], x_hat)])
        # Euler step in y = x/alpha from rho_hat to rho_{i+1} (line 8), then the 2nd-order correction (lines 9-11).
        drho = p.rho1 - p.rho_hat
        y_hat_scale = 1.0 / p.alpha_hat
        x1 = lincomb(x_hat, p.alpha1 * y_hat_scale, [(p.alpha1 * drho, eps0)])
        if p.eps1 is not None:
            out1 = raw(x1, p.t1)
            eps1 = lincomb(out1, p.eps1[1], [(p.eps1[0], x1)])
            x1 = lincomb(x_hat, p.alpha1 * y_hat_scale, [(0.5 * p.alpha1 * drho, eps0), (0.5 * p.alpha1 * drho, eps1)])
        return StepResult(x1, EDMState(state.i + 1, state.plans), x0)
