"""RePaint: inpainting with resampling jumps (Lugmayr et al., CVPR 2022, Algorithm 1), on any SVD operator.

Each step combines the measured part, forward-noised to the next time, with the model's ancestral
step for the rest. In the SVD basis with ``ybar_i = (U^T y)_i / s_i`` (for inpainting: the observed
pixels themselves):

    known_i   = a_1 ybar_i + s_1 z_i                           (observed coordinates, s_i > 0)
    unknown   = V^T (a_1 x0_hat + sqrt(s_1^2 - c^2) eps_hat + c z'),   c = c_ddpm  (DDPM, eta = 1)
    x_t1      = V (known on observed coordinates, unknown elsewhere)

The measurement noise is ignored (as in the paper); pasting ``ybar`` multiplies the noise by ``1 / s_i``,
so with ``noise_std > 0`` RePaint refuses an operator whose non-zero singular values differ (Blur, most
``Linear`` matrices): it is an inpainting method (Inpainting, Denoising, SuperResolution). **Resampling jumps** harmonize the two parts:
every ``jump_length`` steps down the grid (at grid indices ``jump_length, 2 jump_length, ...``) the
state is re-noised ``jump_length`` steps back up with the forward transition
``x_up = (a_up / a) x + sqrt(s_up^2 - (a_up / a)^2 s^2) z`` (no model call) and the stretch is sampled
again, ``jump_n_sample - 1`` times (``jump_n_sample = 1``: no jumps). The schedule makes
``steps + (jump_n_sample - 1) * jump_length * floor((steps - 1) / jump_length)`` model calls; a budget
``nfe`` picks the most steps that fit. The paper's setting is ``jump_length = 10, jump_n_sample = 10`` on
250 steps. No guarantee of posterior sampling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from .base import InverseProblem, PosteriorMethod, ancestral_std, check_range, register

__all__ = ["RePaint"]


@register
@dataclass(frozen=True)
class RePaint(PosteriorMethod):
    """RePaint (module docstring). Args: ``jump_length`` (default 10) and ``jump_n_sample`` (default 2)."""

    name: ClassVar[str] = "repaint"
    jump_length: int = 10
    jump_n_sample: int = 2

    def __post_init__(self) -> None:
        check_range(self.jump_length, "jump_length", 1, integer=True)
        check_range(self.jump_n_sample, "jump_n_sample", 1, integer=True)

    def check(self, problem: InverseProblem) -> None:
        super().check(problem)
        s = problem.operator.singulars
        s = s[s > 0]
        if problem.noise_std > 0 and s.numel() and float(s.max() - s.min()) > 1e-6 * float(s.max()):
            raise ValueError(
                f"method 'repaint' pastes the measured coordinates y_i / s_i, which multiplies the noise by 1 / s_i: with "
                f"noise_std > 0 it needs an operator whose non-zero singular values are equal (Inpainting, Denoising, "
                f"SuperResolution); {type(problem.operator).__name__}'s range from {float(s.min()):.3g} to {float(s.max()):.3g}"
            )

    def schedule(self, n: int) -> list[tuple[int, int]]:
        left = {k: self.jump_n_sample - 1 for k in range(self.jump_length, n, self.jump_length)}
        out, i = [], 0
        while i < n:
            out.append((i, i + 1))
            i += 1
            if left.get(i, 0) > 0:
                left[i] -= 1
                for _ in range(self.jump_length):
                    out.append((i, i - 1))
                    i -= 1
        return out

    def step(self, problem: InverseProblem, t0: float, t1: float, x: torch.Tensor, state):
        a0, s0 = problem.coefs(t0)
        a1, s1 = problem.coefs(t1)
        if t1 > t0:  # a resampling jump: forward transition q(x_t1 | x_t0), no model call
            ratio = a1 / a0
            return ratio * x + math.sqrt(max(s1 * s1 - ratio * ratio * s0 * s0, 0.0)) * problem.randn_like(x), state
        op = problem.operator
        x0, eps = problem.denoise(x, t0)
        c = ancestral_std(a0, s0, a1, s1)
        unknown = a1 * x0 + math.sqrt(max(s1 * s1 - c * c, 0.0)) * eps + c * problem.randn_like(x)
        ub = op.Vt(unknown)
        s, obs, _ = problem.spectral(ub)
        known = a1 * problem.ybar(ub) + s1 * problem.spectral_noise(x)
        return op.V(torch.where(obs, known, ub)), state
