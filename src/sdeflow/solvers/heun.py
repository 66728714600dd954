"""Heun's method (explicit trapezoidal rule), EDM's deterministic sampler."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import Solver, StepResult, register
from .euler import drift_and_x0


@register
@dataclass(frozen=True)
class Heun(Solver):
    """Heun's 2nd-order method (Karras et al. 2022, Algorithm 1).

    ``d0 = drift(t0, x0)``, ``x~ = x0 + h d0``, ``d1 = drift(t1, x~)``, ``x1 = x0 + h (d0 + d1)/2``
    with ``h = t1 - t0``. When the model cannot be evaluated at ``t1`` (the final step to ``t = 0``
    of a diffusion) the step is Euler, as in EDM. ODE order 2; two calls per step, one on the last
    step to 0: a grid of ``n`` steps ending at 0 costs ``2n - 1`` calls.
    """

    name = "heun"
    ode_order = 2
    calls_per_step = 2
    description = "Heun (EDM deterministic, 2nd order) on the probability-flow ODE"

    def nfe(self, ts: torch.Tensor) -> int:
        n = len(ts) - 1
        return 2 * n - 1 if float(ts[-1]) == 0.0 else 2 * n

    def step(self, problem, t0, t1, x, state, noise):
        h = t1 - t0
        d0, x0 = drift_and_x0(problem, t0, x)
        x_euler = x + h * d0
        can_eval = getattr(problem, "can_evaluate", None)
        if can_eval is not None and not can_eval(t1):
            return StepResult(x_euler, None, x0)
        d1, _ = drift_and_x0(problem, t1, x_euler)
        return StepResult(x + (0.5 * h) * (d0 + d1), None, x0)
