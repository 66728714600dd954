"""DDRM: denoising diffusion restoration models (Kawar, Elad, Ermon & Song, NeurIPS 2022, eq. 7-8).

DDRM works in the SVD basis with the variance-exploding state ``z_t = x_t / a_t`` of noise level
``n_t = s_t / a_t``. With ``xbar0 = V^T x0_hat``, ``epsbar = V^T eps_hat`` (``= (zbar_t0 - xbar0) / n_0``) and
the measurement as a noisy view of the coefficients, ``ybar_i = (U^T y)_i / s_i`` of noise level
``noise_std / s_i``, the step from ``n_0`` to ``n_1 < n_0`` draws each coefficient as

    s_i = 0:                        zbar_1 = xbar0 + n_1 (sqrt(1 - eta^2) epsbar + eta z)
    n_1 < noise_std / s_i:          zbar_1 = xbar0 + n_1 (sqrt(1 - eta^2) (ybar - xbar0) s_i / noise_std + eta z)
    n_1 >= noise_std / s_i:         zbar_1 = (1 - eta_b) xbar0 + eta_b ybar
                                             + sqrt(n_1^2 - eta_b^2 noise_std^2 / s_i^2) z

with ``z ~ N(0, 1)``, then ``x_t1 = a_1 V zbar_1``. Defaults ``eta = 0.85``, ``eta_b = 1`` (the paper's).
One model call per step. Exact for the posterior only in special cases (Kawar et al. show that with
an optimal denoiser it is a valid sampler when eta = eta_b = 1 in the noiseless limit); in general it
is not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from .base import InverseProblem, PosteriorMethod, check_range, register

__all__ = ["DDRM"]


@register
@dataclass(frozen=True)
class DDRM(PosteriorMethod):
    """DDRM (module docstring). Args: ``eta`` and ``eta_b`` in ``[0, 1]``."""

    name: ClassVar[str] = "ddrm"
    eta: float = 0.85
    eta_b: float = 1.0

    def __post_init__(self) -> None:
        check_range(self.eta, "eta", 0.0, 1.0)
        check_range(self.eta_b, "eta_b", 0.0, 1.0)

    def step(self, problem: InverseProblem, t0: float, t1: float, x: torch.Tensor, state):
        op = problem.operator
        a1, s1 = problem.coefs(t1)
        n1 = s1 / a1
        x0, eps = problem.denoise(x, t0)
        xb, eb = op.Vt(x0), op.Vt(eps)
        s, obs, _ = problem.spectral(xb)
        yb = problem.ybar(xb)
        z = problem.spectral_noise(x)
        sy = problem.noise_std
        keep = math.sqrt(1.0 - self.eta**2)
        level = torch.where(obs, sy / torch.where(obs, s, 1.0), torch.full_like(s, math.inf))  # noise level of ybar
        # s_i = 0: DDIM in the VE variable
        free = xb + n1 * (keep * eb + self.eta * z)
        # n_1 < level: pulled toward ybar, still noisier than ybar
        below = xb + n1 * (keep * (yb - xb) / torch.where(obs & (level > 0), level, 1.0) + self.eta * z)
        # n_1 >= level: ybar plus the missing noise
        above = (1 - self.eta_b) * xb + self.eta_b * yb + torch.sqrt(torch.clamp(n1 * n1 - (self.eta_b * level) ** 2, min=0.0)) * z
        zb = torch.where(~obs, free, torch.where(n1 < level, below, above))
        return a1 * op.V(zb), state
