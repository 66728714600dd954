"""The reversible Heun method (Kidger, Foster, Li & Lyons 2021, "Efficient and Accurate Gradients for
Neural SDEs", NeurIPS; torchsde's ``reversible_heun``).

Besides the state ``y`` it carries ``z`` (a second state-like sequence) and the drift and diffusion at
``z``: with ``h = t1 - t0`` and ``dW = W(t1) - W(t0)``,

    z1 = 2 y0 - z0 + f0 h + G0 dW,           (f1, G1) = (f(t1, z1), G(t1, z1)),
    y1 = y0 + (f0 + f1) h / 2 + (G0 + G1) dW / 2,

starting from ``z0 = y0``, ``(f0, G0) = (f(t0, y0), G(t0, y0))``. One drift and one diffusion call per
step. It converges to the Stratonovich solution, strong order 0.5 (1.0 on additive noise; Kidger et
al., Theorem 3.3), weak order 1. The step is *algebraically reversible*: from ``(y1, f1, G1, z1)``,

    z0 = 2 y1 - z1 - f1 h - G1 dW,   (f0, G0) = (f(t0, z0), G(t0, z0)),   y0 = y1 - (f0 + f1) h / 2 - (G0 + G1) dW / 2

recovers the step's input exactly up to rounding (:meth:`ReversibleHeun.reverse`), which is what lets
:func:`sdeflow.sdes.sdeint_adjoint` backpropagate through a solve in memory independent of the number
of steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._sde import SDEMethod, apply_diffusion, layout, prepare_stage_times
from .base import StepResult, register

__all__ = ["ReversibleHeun"]


@register
@dataclass(frozen=True)
class ReversibleHeun(SDEMethod):
    """Reversible Heun (module docstring): state ``(f, G, z)``, torchsde's ``extra_solver_state`` order."""

    name = "reversible_heun"
    strong_orders = {"additive": 1.0, "diagonal": 0.5, "scalar": 0.5, "commutative": 0.5, "general": 0.5}
    strong_order = 0.5
    weak_order = 1.0
    calculus = "stratonovich"
    calculi = ("stratonovich",)
    noise_types = ("diagonal", "additive", "scalar", "general")
    calls_per_step = 1
    reversible = True
    description = "reversible Heun (Stratonovich, Kidger et al. 2021): algebraically reversible, strong order 0.5"

    def init(self, problem, ts, x):
        prepare_stage_times(problem, ts, self.stage_nodes)
        t0 = ts[0]
        return (problem.drift(t0, x), problem.diffusion(t0, x), x)

    def step(self, problem, t0, t1, x, state, noise):
        can_eval = getattr(problem, "can_evaluate", None)
        if can_eval is not None and not can_eval(t1):
            # A diffusion's last step to t = 0 (the model cannot be called there): Euler-Maruyama.
            from .euler_maruyama import EulerMaruyama

            return EulerMaruyama().step(problem, t0, t1, x, None, noise)
        x1, state1 = self._advance(problem, t0, t1, x, state, noise)
        return StepResult(x1, state1, None)

    def _advance(self, problem, t0, t1, x, state, noise):
        f0, g0, z0 = state
        kind, h = layout(problem), t1 - t0
        dw = noise(t0, t1)
        z1 = torch.add(2 * x - z0, f0, alpha=h) + apply_diffusion(kind, g0, dw)
        f1, g1 = problem.drift(t1, z1), problem.diffusion(t1, z1)
        x1 = torch.add(x, f0 + f1, alpha=0.5 * h) + apply_diffusion(kind, g0 + g1, 0.5 * dw)
        return x1, (f1, g1, z1)

    def advance(self, problem, t0, t1, x, noise, want_error):
        """A step from ``x`` alone (``z0 = x``, no carried state): the first step of a solve."""
        state = self.init(problem, [t0], x)
        return self._advance(problem, t0, t1, x, state, noise)[0], None

    def reverse(self, problem, t0, t1, x1, state1, noise):
        """The step's input ``(x0, state0)`` from its output ``(x1, state1)`` (module docstring)."""
        f1, g1, z1 = state1
        kind, h = layout(problem), t1 - t0
        dw = noise(t0, t1)
        z0 = torch.add(2 * x1 - z1, f1, alpha=-h) - apply_diffusion(kind, g1, dw)
        f0, g0 = problem.drift(t0, z0), problem.diffusion(t0, z0)
        x0 = torch.add(x1, f0 + f1, alpha=-0.5 * h) - apply_diffusion(kind, g0 + g1, 0.5 * dw)
        return x0, (f0, g0, z0)
