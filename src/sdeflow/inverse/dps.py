"""DPS: diffusion posterior sampling (Chung et al., ICLR 2023, Algorithm 1).

Each step is the ancestral (DDPM) step of the prior followed by a gradient step on the measurement
residual of the Tweedie estimate ``x0_hat(x_t)``:

    x'     = a_1 x0_hat + sqrt(s_1^2 - c^2) eps_hat + c z,        c = eta * c_ddpm
    x_t1   = x' - scale * grad_{x_t} || y - A(x0_hat(x_t)) ||_2

This is the official code's rule (gradient of the *norm*). The paper writes
``x' - zeta_i grad ||y - A(x0_hat)||_2^2`` with ``zeta_i = zeta' / ||y - A(x0_hat)||``, which is the same
step with ``scale = 2 zeta'``. The gradient is a vector-Jacobian product through the model (one model
call per step; the graph lives for that step only). DPS accepts any differentiable operator
(:class:`~sdeflow.inverse.operators.Nonlinear` included). No guarantee: the step is a heuristic
approximation of ``grad log p(y | x_t)`` and the samples are not those of the posterior in general.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from .base import InverseProblem, PosteriorMethod, ancestral_std, check_range, register

__all__ = ["DPS"]


@register
@dataclass(frozen=True)
class DPS(PosteriorMethod):
    """DPS (module docstring). Args: ``scale`` (step size on the residual norm, default 1.0) and ``eta``
    (stochasticity of the prior step, 1.0 = ancestral DDPM as in the paper)."""

    name: ClassVar[str] = "dps"
    needs_svd: ClassVar[bool] = False
    scale: float = 1.0
    eta: float = 1.0

    def __post_init__(self) -> None:
        check_range(self.scale, "scale", 0.0)
        check_range(self.eta, "eta", 0.0, 1.0)

    def step(self, problem: InverseProblem, t0: float, t1: float, x: torch.Tensor, state):
        a0, s0 = problem.coefs(t0)
        a1, s1 = problem.coefs(t1)

        def norm(x0: torch.Tensor) -> torch.Tensor:
            r = problem.residual(x0)
            return r.reshape(r.shape[0], -1).norm(dim=1)

        x0, eps, grad, _ = problem.denoise_vjp(x, t0, norm)
        c = self.eta * ancestral_std(a0, s0, a1, s1)
        x_new = a1 * x0 + math.sqrt(max(s1 * s1 - c * c, 0.0)) * eps
        if c > 0:
            x_new = x_new + c * problem.randn_like(x)
        return x_new - self.scale * grad, state
