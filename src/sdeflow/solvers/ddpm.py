"""DDPM ancestral sampling (Ho et al. 2020) for any Gaussian path and any grid."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._utils import as_time
from .base import Solver, StepResult, register
from .ddim import standard_normal_from


@register
@dataclass(frozen=True)
class DDPM(Solver):
    """Ancestral sampling from the Gaussian posterior ``q(x_{t1} | x_{t0}, x0 = x0_hat)``, ``t1 < t0``.

    With ``a = alpha0/alpha1`` and ``s^2 = sigma0^2 - a^2 sigma1^2`` (the transition ``t1 -> t0``):
    mean ``= (a sigma1^2/sigma0^2) x + (alpha1 s^2/sigma0^2) x0_hat``, variance ``= s^2 sigma1^2/sigma0^2``
    (Ho et al. 2020, eqs. 6-7, posterior variance ``beta_tilde``). On a :class:`~sdeflow.processes.DiscreteVP`
    with the grid of its table this is exactly DDPM's sampler. It equals DDIM with ``eta = 1``.
    One call per step; at ``t1 = 0`` it returns ``x0_hat``. Weak order 1 towards the reverse SDE.
    """

    name = "ddpm"
    weak_order = 1.0
    calls_per_step = 1
    stochastic = True
    needs = "denoiser"
    description = "DDPM ancestral sampling (posterior of the forward process)"

    def stochasticity(self) -> float:
        return 1.0

    def step(self, problem, t0, t1, x, state, noise):
        process = problem.process
        d = problem.denoiser(x, t0)
        t0_64, t1_64 = as_time(t0), as_time(t1)
        alpha0, sigma0 = float(process.alpha(t0_64)), float(process.sigma(t0_64))
        alpha1, sigma1 = float(process.alpha(t1_64)), float(process.sigma(t1_64))
        if sigma1 == 0.0:
            return StepResult(alpha1 * d.x0, None, d.x0)
        a = alpha0 / alpha1
        # s^2 = sigma0^2 - a^2 sigma1^2 = sigma0^2 (1 - e^{lambda0 - lambda1}), without cancellation.
        s2 = sigma0 * sigma0 * -math.expm1(float(process.log_snr(t0_64) - process.log_snr(t1_64)))
        mean = (a * sigma1**2 / sigma0**2) * x + (alpha1 * s2 / sigma0**2) * d.x0
        std = math.sqrt(max(s2, 0.0)) * sigma1 / sigma0
        return StepResult(mean + std * standard_normal_from(noise, t0, t1), None, d.x0)
