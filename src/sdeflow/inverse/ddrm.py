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
One model call per step.

DDRM is not an exact posterior sampler, not even with an exact denoiser and many steps. On a Gaussian
prior every step is linear in the state, so the output's mean and variance given ``y`` follow a
closed-form recursion (:func:`gaussian_moments`, which the tests check the sampler against). For the
prior ``N(0, 1)``, denoising with ``noise_std = 0.5`` and ``y = 0.7`` (posterior ``N(0.56, 0.2)``), on
sdeflow's default grid (VP, uniform in log-SNR):

    steps          10              20              100             1000
    eta = 0.85     0.511, 0.080    0.571, 0.051    0.647, 0.018    0.688, 0.005   (mean, variance)
    eta = 1        0.420, 0.173    0.427, 0.191    0.181, 0.432    0.000, 0.498

The reason is in the rule itself: ``eta`` sets the fresh noise of *every* step (``eta^2 n_1^2``, not a
rate per unit of time) and the pull ``sqrt(1 - eta^2) n_1 (ybar - xbar0) / level`` acts at every step
too, so the chain has no continuous-time limit: as steps grow, ``eta < 1`` contracts the samples onto
``ybar`` (mean -> 0.7 = ``y``, variance -> 0) and ``eta = 1`` forgets ``y`` below its noise level
(it re-noises ``x0_hat`` from scratch at each step). Kawar et al.'s Theorem 1 is about the training
objective (a model trained for DDPM is optimal for DDRM's ELBO at suitable ``eta``, ``eta_b``), not a
claim that the chain samples the posterior; the denoiser it calls is the prior's ``E[x0 | x_t]``, not
``E[x0 | x_t, y]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from .base import InverseProblem, PosteriorMethod, check_range, register

__all__ = ["DDRM", "gaussian_moments"]


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


def gaussian_moments(ts, process, *, mean: float, var: float, singular: float, noise_std: float, uy: float,
                     eta: float = 0.85, eta_b: float = 1.0) -> tuple[float, float]:
    """The exact mean and variance of DDRM's output on one coordinate of a Gaussian prior, given ``y``.

    The prior coordinate (in the operator's SVD basis) is ``N(mean, var)``, observed as
    ``uy = singular * x + noise_std * n`` (``singular = 0``: unobserved); the denoiser is exact,
    ``x0_hat = mean + var / (var + n^2) (z - mean)`` in the variance-exploding state ``z = x_t / a_t`` of
    noise level ``n = s_t / a_t``. Every branch of the step rule (module docstring) is then
    ``z_1 = c z_0 + b + e xi``, and ``(mean, variance)`` of ``z`` given ``y`` propagate in closed form from
    the prior draw at ``ts[0]`` (``z ~ N(0, n_0^2)``, as :func:`~sdeflow.inverse.posterior_sample` starts).

    Args:
        ts: the grid of times (``T > ... > 0``) that the sampler visits, e.g. ``posterior_sample(...).ts``.
        process: the forward process.
        mean, var: the prior coordinate's mean and variance (``var > 0``).
        singular, noise_std, uy: the singular value, the measurement noise and ``(U^T y)`` on this coordinate.
        eta, eta_b: DDRM's options.

    Returns:
        ``(mean, variance)`` of the sample at ``ts[-1]`` (in ``x``: ``a_t z``).
    """
    tlist = [float(t) for t in ts]
    if len(tlist) < 2:
        raise ValueError(f"ts must hold at least two times; got {len(tlist)}")
    if not var > 0:
        raise ValueError(f"var must be > 0; got {var!r}")
    alpha = lambda t: float(process.alpha(t))  # noqa: E731
    sigma = lambda t: float(process.sigma(t))  # noqa: E731
    n0 = sigma(tlist[0]) / alpha(tlist[0])
    m, v = 0.0, n0 * n0
    keep = math.sqrt(1.0 - eta**2)
    level = noise_std / singular if singular > 0 else math.inf
    ybar = uy / singular if singular > 0 else 0.0
    for t0, t1 in zip(tlist[:-1], tlist[1:]):
        n0 = sigma(t0) / alpha(t0)
        n1 = sigma(t1) / alpha(t1)
        k = var / (var + n0 * n0)  # x0_hat = (1 - k) mean + k z
        if singular <= 0:  # x0_hat + n1 (keep (z - x0_hat) / n0 + eta xi)
            c, b, e2 = k + n1 * keep * (1 - k) / n0, (1 - k) * mean * (1 - n1 * keep / n0), (eta * n1) ** 2
        elif n1 < level:  # x0_hat + n1 (keep (ybar - x0_hat) / level + eta xi)
            pull = n1 * keep / level
            c, b, e2 = k * (1 - pull), (1 - k) * mean * (1 - pull) + pull * ybar, (eta * n1) ** 2
        else:  # (1 - eta_b) x0_hat + eta_b ybar + sqrt(n1^2 - eta_b^2 level^2) xi
            c, b, e2 = (1 - eta_b) * k, (1 - eta_b) * (1 - k) * mean + eta_b * ybar, max(n1 * n1 - (eta_b * level) ** 2, 0.0)
        m, v = c * m + b, c * c * v + e2
    a = alpha(tlist[-1])
    return a * m, a * a * v
