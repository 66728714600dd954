"""DDIM (Song, Meng & Ermon 2021) for any Gaussian path, with eta."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .._utils import as_time, check_nonnegative
from .base import Solver, StepResult, register


def standard_normal_from(noise, t0: float, t1: float) -> torch.Tensor:
    """A standard normal for the step ``t0 -> t1``: the Brownian increment over it divided by ``sqrt|h|``.

    Drawing ancestral noise from the Brownian path keeps samples of one seed close across step counts.
    """
    return noise(t0, t1) / math.sqrt(abs(t1 - t0))


@register
@dataclass(frozen=True)
class DDIM(Solver):
    """DDIM: ``x1 = alpha1 x0_hat + sqrt(sigma1^2 - c^2) eps_hat + c z``, ``c = eta sigma1 sqrt(1 - e^{-2h})``.

    ``h = (log_snr(t1) - log_snr(t0))/2`` is the half log-SNR step, ``z ~ N(0, I)``. For a VP process
    this is Song et al.'s eq. 12 with ``sigma_t(eta)`` of eq. 16; ``eta = 0`` is the deterministic
    DDIM = DPM-Solver-1 (ODE order 1), ``eta = 1`` the DDPM ancestral step. One call per step; at
    ``t1 = 0`` it returns ``x0_hat``.
    """

    name = "ddim"
    ode_order = 1
    calls_per_step = 1
    needs = "denoiser"
    description = "DDIM (eta=0 deterministic, first order; eta=1 ancestral)"

    eta: float = 0.0

    def __post_init__(self) -> None:
        check_nonnegative(self.eta, "eta")

    @property
    def stochastic(self) -> bool:  # type: ignore[override]
        return self.eta > 0

    def stochasticity(self) -> float:
        return 0.0

    def step(self, problem, t0, t1, x, state, noise):
        process = problem.process
        d = problem.denoiser(x, t0)
        t1_64 = as_time(t1)
        alpha1, sigma1 = float(process.alpha(t1_64)), float(process.sigma(t1_64))
        if sigma1 == 0.0:
            return StepResult(alpha1 * d.x0, None, d.x0)
        if self.eta == 0.0:
            return StepResult(alpha1 * d.x0 + sigma1 * d.eps, None, d.x0)
        # 1 - e^{-2h} = -expm1(lambda0 - lambda1), computed without cancellation.
        frac = -math.expm1(float(process.log_snr(as_time(t0)) - process.log_snr(t1_64)))
        c = self.eta * sigma1 * math.sqrt(max(frac, 0.0))
        keep = math.sqrt(max(sigma1 * sigma1 - c * c, 0.0))
        z = standard_normal_from(noise, t0, t1)
        return StepResult(alpha1 * d.x0 + keep * d.eps + c * z, None, d.x0)
