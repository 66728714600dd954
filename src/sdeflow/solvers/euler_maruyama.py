"""Euler-Maruyama for SDEs, and on diffusions for the reverse-time SDE."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._utils import check_nonnegative
from .base import Solver, StepResult, register
from .euler import drift_and_x0


@register
@dataclass(frozen=True)
class EulerMaruyama(Solver):
    """Euler-Maruyama: ``x1 = x0 + drift(t0, x0) h + diffusion(t0, x0) dW``, ``h = t1 - t0``.

    Strong order 0.5 (1.0 for additive noise), weak order 1, ODE order 1; one call per step; Ito.
    On a diffusion it integrates the reverse SDE with stochasticity ``eta`` (1: Song et al. 2021's
    reverse SDE); the last step to ``t = 0`` returns the posterior mean ``x0_hat`` of the step's
    model call (the "denoising" final step, no noise added at the data).
    """

    name = "euler_maruyama"
    ode_order = 1
    strong_order = 0.5
    weak_order = 1.0
    calculus = "ito"
    noise_types = ("diagonal", "additive", "scalar", "general")
    calls_per_step = 1
    stochastic = True
    description = "Euler-Maruyama on the reverse SDE (eta=1) or any Ito SDE"

    eta: float = 1.0

    def __post_init__(self) -> None:
        check_nonnegative(self.eta, "eta")

    def stochasticity(self) -> float:
        return self.eta

    def step(self, problem, t0, t1, x, state, noise):
        drift, x0 = drift_and_x0(problem, t0, x)
        can_eval = getattr(problem, "can_evaluate", None)
        if x0 is not None and can_eval is not None and not can_eval(t1):
            return StepResult(x0, None, x0)
        x1 = torch.add(x, drift, alpha=t1 - t0)
        if not problem.is_ode:
            dw = noise(t0, t1)
            if problem.noise_type in ("diagonal", "additive"):
                x1 = torch.addcmul(x1, problem.diffusion(t0, x), dw)  # fused: no temporary for g dW
            else:
                x1 = x1 + problem.diffusion_times(t0, x, dw)
        return StepResult(x1, None, x0)
