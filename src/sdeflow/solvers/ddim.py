"""DDIM (Song, Meng & Ermon 2021) for any Gaussian path, with eta, on the exponential kernel."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ._exponential import EtaStochastic, ExponentialSingleStep, ddim_program
from .base import register

__all__ = ["DDIM", "standard_normal_from"]


def standard_normal_from(noise, t0: float, t1: float) -> torch.Tensor:
    """A standard normal for the step ``t0 -> t1``: the Brownian increment over it divided by ``sqrt|h|``.

    Drawing ancestral noise from the Brownian path keeps samples of one seed close across step counts.
    """
    return noise(t0, t1) / math.sqrt(abs(t1 - t0))


@register
@dataclass(frozen=True)
class DDIM(EtaStochastic, ExponentialSingleStep):
    """DDIM: ``x1 = alpha1 x0_hat + sqrt(sigma1^2 - c^2) eps_hat + c z``, ``c = eta sigma1 sqrt(1 - e^{-2h})``.

    ``h = (log_snr(t1) - log_snr(t0))/2`` is the half log-SNR step, ``z ~ N(0, I)`` (the step's
    Brownian increment over ``sqrt|dt|``); ``c`` is capped at ``sigma1``. For a VP process this is
    Song et al.'s eq. 12 with ``sigma_t(eta)`` of eq. 16; ``eta = 0`` is the deterministic
    DDIM = DPM-Solver-1 (ODE order 1), ``eta = 1`` the DDPM ancestral step. One call per step; at
    ``t1 = 0`` it returns ``x0_hat``. The coefficients are computed once per grid
    (:func:`~sdeflow.solvers._exponential.ddim_program`).
    """

    name = "ddim"
    calls_per_step = 1
    description = "DDIM = DPM-Solver-1 (eta=0 deterministic, first order; eta=1 ancestral)"

    eta: float = 0.0

    def stochasticity(self) -> float:
        return 0.0

    def nfe(self, ts) -> int:
        return len(ts) - 1

    def program(self, problem, tab, i):
        return ddim_program(tab, i, self.eta)
