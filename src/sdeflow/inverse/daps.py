"""DAPS: decoupled annealing posterior sampling (Zhang, Zheng, Wu, Yue & Bouman, 2024, Algorithm 1).

DAPS anneals over the grid's noise levels and decouples consecutive states through ``x0``: at time
``t0`` of noise level ``n_0 = s_0 / a_0``,

1. ``x0_hat`` = the probability-flow ODE from ``x_t0`` to ``t = 0``, solved with ``ode_steps`` DDIM
   (first-order exponential) steps (``ode_steps = 1``: Tweedie's estimate);
2. ``langevin_steps`` Langevin steps on ``p(x0 | x_t0, y) ~ N(x0; x0_hat, r^2 I) p(y | x0)`` with
   ``r = n_0`` (the paper's choice ``r_t = sigma_t``), from ``x0 = x0_hat``:

       x0 <- x0 + h (grad log p(y | x0) + (x0_hat - x0) / r^2) + sqrt(2 h) z,
       grad log p(y | x0) = J_A(x0)^T (y - A(x0)) / noise_std^2,

   with ``h = lr / L``, ``L = 1 / r^2 + s_max^2 / noise_std^2`` the gradient's Lipschitz constant for a
   linear operator (``s_max`` its largest singular value); for a nonlinear one ``s_max^2`` is, per
   sample, twice the largest eigenvalue of ``J^T J`` at ``x0_hat`` (``J`` the operator's Jacobian;
   5 power iterations of a JVP and a VJP, the factor 2 a margin for the curvature along the chain).
   A step of ``lr < 2`` is stable for a linear operator;
3. ``x_t1 = a_1 x0 + s_1 z`` (fresh noise: the decoupling).

``ode_steps`` model calls per step; the Langevin steps call only the operator. Needs
``noise_std > 0``. No guarantee of exact posterior sampling (the Gaussian ``p(x0 | x_t)`` is an
approximation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from .base import InverseProblem, PosteriorMethod, check_range, register

__all__ = ["DAPS"]


def _jacobian_norm2(problem: InverseProblem, x0: torch.Tensor) -> torch.Tensor:
    """Per sample, the largest eigenvalue of ``J^T J`` at ``x0`` (``(B,)``; 5 power iterations)."""
    fn = problem.operator.forward
    x0 = x0.detach()
    v = problem.randn_like(x0)
    lam = torch.zeros(x0.shape[0], dtype=x0.dtype, device=x0.device)
    for _ in range(5):
        v = v / v.reshape(v.shape[0], -1).norm(dim=1).clamp_min(1e-30).reshape((-1,) + (1,) * (v.ndim - 1))
        _, jv = torch.func.jvp(fn, (x0,), (v,))
        _, pull = torch.func.vjp(fn, x0)
        (v,) = pull(jv)
        lam = v.reshape(v.shape[0], -1).norm(dim=1)
    return lam


@register
@dataclass(frozen=True)
class DAPS(PosteriorMethod):
    """DAPS (module docstring). Args: ``ode_steps`` (model calls per step, default 1),
    ``langevin_steps`` (default 50), ``lr`` (step as a fraction of 1 / L, default 0.5)."""

    name: ClassVar[str] = "daps"
    needs_svd: ClassVar[bool] = False
    ode_steps: int = 1
    langevin_steps: int = 50
    lr: float = 0.5

    def __post_init__(self) -> None:
        check_range(self.ode_steps, "ode_steps", 1, integer=True)
        check_range(self.langevin_steps, "langevin_steps", 0, integer=True)
        check_range(self.lr, "lr", 0.0, 2.0, lo_open=True)

    @property
    def calls_per_step(self) -> int:  # type: ignore[override]
        return self.ode_steps

    def check(self, problem: InverseProblem) -> None:
        super().check(problem)
        if not problem.noise_std > 0:
            raise ValueError("method 'daps' needs operator.noise_std > 0 (its Langevin target has the likelihood's variance)")

    def step(self, problem: InverseProblem, t0: float, t1: float, x: torch.Tensor, state):
        op = problem.operator
        a0, s0 = problem.coefs(t0)
        a1, s1 = problem.coefs(t1)
        # 1. x0_hat by the probability-flow ODE (DDIM steps on a uniform sub-grid of [0, t0])
        ts = torch.linspace(t0, 0.0, self.ode_steps + 1, dtype=torch.float64).tolist()
        z = x
        for u0, u1 in zip(ts[:-1], ts[1:]):
            x0_hat, eps = problem.denoise(z, u0)
            b1, q1 = problem.coefs(u1)
            z = b1 * x0_hat + q1 * eps
        x0_hat = z
        # 2. Langevin on N(x0_hat, r^2 I) p(y | x0)
        r2 = (s0 / a0) ** 2 if a0 > 0 else float("inf")
        sy2 = problem.noise_std**2
        if op.has_svd:
            ly = float(op.singulars.max()) ** 2 / sy2
        else:
            ly = 2.0 * _jacobian_norm2(problem, x0_hat) / sy2
            ly = ly.reshape((-1,) + (1,) * (x.ndim - 1))
        h = self.lr / ((1.0 / r2) + ly)
        x0 = x0_hat.clone()
        for _ in range(self.langevin_steps):
            if op.linear:
                grad_lik = op.adjoint(problem.residual(x0)) / sy2
            else:
                with torch.enable_grad():
                    xg = x0.detach().requires_grad_(True)
                    (grad_lik,) = torch.autograd.grad(-0.5 * problem.residual(xg).pow(2).sum() / sy2, xg)
            x0 = x0 + h * (grad_lik + (x0_hat - x0) / r2) + torch.sqrt(2.0 * torch.as_tensor(h, dtype=x0.dtype)) * problem.randn_like(x0)
        # 3. decoupled re-noising
        if s1 > 0:
            return a1 * x0 + s1 * problem.randn_like(x0), state
        return x0, state
