"""Euler's method for ODEs (the probability-flow ODE, or any drift)."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Solver, StepResult, register


def drift_and_x0(problem, t, x):
    """The drift at ``(t, x)`` and, on a diffusion problem, the step's x0 estimate (one call)."""
    if hasattr(problem, "drift_and_denoised"):
        drift, d = problem.drift_and_denoised(t, x)
        return drift, d.x0
    return problem.drift(t, x), None


@register
@dataclass(frozen=True)
class Euler(Solver):
    """Explicit Euler: ``x1 = x0 + (t1 - t0) drift(t0, x0)``. ODE order 1, one call per step.

    On a diffusion problem it integrates the probability-flow ODE ``dx/dt = d_alpha x0_hat + d_sigma eps_hat``
    (Song et al. 2021; Karras et al. 2022, Algorithm 1 without the correction).
    """

    name = "euler"
    ode_order = 1
    calls_per_step = 1
    description = "Euler on the probability-flow ODE"

    def step(self, problem, t0, t1, x, state, noise):
        drift, x0 = drift_and_x0(problem, t0, x)
        return StepResult(x + (t1 - t0) * drift, None, x0)
