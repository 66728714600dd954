"""DDNM: denoising diffusion null-space models (Wang, Yu & Zhang, ICLR 2023), with DDNM+ for noise.

The range-null-space decomposition replaces the range part of the Tweedie estimate by the measurement:
``x0' = x0_hat - Sigma A^+ (A x0_hat - y)``. In the SVD basis (``ybar_i = (U^T y)_i / s_i``), coefficient
by coefficient on the observed ones,

    xbar0'_i = xbar0_i - lambda_i (xbar0_i - ybar_i),

and the ancestral step ``x_t1 = k0 x0' + k1 x_t + noise`` (DDPM posterior mean with ``c = eta c_ddpm``:
``k1 = sqrt(s_1^2 - c^2) / s_0``, ``k0 = a_1 - k1 a_0``). Noiseless (``noise_std = 0``): ``lambda = 1``
(the exact projection, DDNM's eq. 10). Noisy (DDNM+, section 3.3): ``ybar_i`` brings noise of std
``noise_std / s_i`` into ``x_t1`` through ``k0 lambda_i``; DDNM+ picks the largest ``lambda_i <= 1``
whose noise fits in the step's noise budget, ``lambda_i = min(1, c s_i / (k0 noise_std))``, and adds
only the rest, of std ``sqrt(c^2 - (k0 lambda_i noise_std / s_i)^2)`` (the paper writes ``a_1`` for
``k0``, the same to first order). Defaults ``eta = 0.85`` (the paper's DDIM setting). One model call
per step. No guarantee of posterior sampling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from .base import InverseProblem, PosteriorMethod, ancestral_std, check_range, register

__all__ = ["DDNM"]


@register
@dataclass(frozen=True)
class DDNM(PosteriorMethod):
    """DDNM / DDNM+ (module docstring). Args: ``eta`` in ``[0, 1]``."""

    name: ClassVar[str] = "ddnm"
    eta: float = 0.85

    def __post_init__(self) -> None:
        check_range(self.eta, "eta", 0.0, 1.0)

    def step(self, problem: InverseProblem, t0: float, t1: float, x: torch.Tensor, state):
        op = problem.operator
        a0, s0 = problem.coefs(t0)
        a1, s1 = problem.coefs(t1)
        x0, _ = problem.denoise(x, t0)
        c = self.eta * ancestral_std(a0, s0, a1, s1)
        k1 = math.sqrt(max(s1 * s1 - c * c, 0.0)) / s0
        k0 = a1 - k1 * a0
        xb = op.Vt(x0)
        s, obs, _ = problem.spectral(xb)
        yb = problem.ybar(xb)
        sy = problem.noise_std
        if sy > 0 and k0 > 0:
            lam = torch.clamp(c * s / (k0 * sy), max=1.0)
            extra = k0 * lam * sy / torch.where(obs, s, 1.0)
            std = torch.where(obs, torch.sqrt(torch.clamp(c * c - extra * extra, min=0.0)), torch.full_like(s, c))
        else:
            lam = torch.ones_like(s)
            std = torch.full_like(s, c)
        xb0 = torch.where(obs, xb - lam * (xb - yb), xb)
        mean = k0 * xb0 + k1 * op.Vt(x)
        return op.V(mean + std * problem.spectral_noise(x)), state
