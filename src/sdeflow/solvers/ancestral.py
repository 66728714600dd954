"""Ancestral samplers with eta: Euler ancestral and DPM-Solver++(2S) ancestral (k-diffusion's)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ._exponential import EtaStochastic, ExponentialSingleStep, Program, Stage, ddim_program, denoise_program, grid_table, t_at_lambda
from .ddim import DDIM
from .base import register

__all__ = ["EulerAncestral", "DPMSolverPP2SAncestral", "ancestral_levels"]


def ancestral_levels(rho0: float, rho1: float, eta: float) -> tuple[float, float]:
    """``(rho_down, rho_up)``: ``rho_up = min(rho1, eta sqrt(rho1^2 (rho0^2 - rho1^2)/rho0^2))``, ``rho_down = sqrt(rho1^2 - rho_up^2)``."""
    up = min(rho1, eta * math.sqrt(max(rho1 * rho1 * (rho0 * rho0 - rho1 * rho1) / (rho0 * rho0), 0.0)))
    return math.sqrt(max(rho1 * rho1 - up * up, 0.0)), up


@register
@dataclass(frozen=True)
class EulerAncestral(DDIM):
    r"""Euler ancestral (k-diffusion's ``sample_euler_ancestral``) for any Gaussian path.

    In the noise level ``rho = sigma/alpha``: step deterministically to ``rho_down`` and add noise
    ``rho_up`` (:func:`ancestral_levels`). Since ``rho_up = eta rho_1 sqrt(1 - e^{-2h})`` and
    ``rho_down^2 = rho_1^2 - rho_up^2`` this is exactly DDIM with the same ``eta`` (Song et al. 2021,
    eq. 16), which is how it is computed. ``eta = 1`` (default): ancestral sampling; 0: DDIM.
    """

    name = "euler_ancestral"
    description = "Euler ancestral (= DDIM with eta, eta=1 default)"

    eta: float = 1.0


@register
@dataclass(frozen=True)
class DPMSolverPP2SAncestral(EtaStochastic, ExponentialSingleStep):
    r"""DPM-Solver++(2S) ancestral (k-diffusion's ``sample_dpmpp_2s_ancestral``) for any Gaussian path.

    In ``y = x/alpha``: from ``rho_0`` a DPM-Solver++(2S) step (midpoint at half the log-SNR step)
    to ``rho_down``, then ``y += rho_up z`` (:func:`ancestral_levels`, ``z`` from the Brownian
    increment of the step). The last step to 0 is the denoising step. Two calls per step.
    """

    name = "dpm_solver_pp_2s_ancestral"
    calls_per_step = 2
    description = "DPM-Solver++(2S) ancestral with eta (k-diffusion's)"

    eta_ode_order = 2
    eta: float = 1.0

    def program(self, problem, tab, i):
        if tab.sigma[i + 1] <= 0.0:
            return denoise_program(tab, i)
        if not math.isfinite(tab.lam[i]):
            return ddim_program(tab, i, self.eta)
        rho0, rho1 = tab.rho[i], tab.rho[i + 1]
        down, up = ancestral_levels(rho0, rho1, self.eta)
        a0, a1 = tab.alpha[i], tab.alpha[i + 1]
        dt = abs(tab.times[i + 1] - tab.times[i])
        m0 = tab.x0_map[i]
        if down <= 0.0:  # all noise: y1 = x0_hat + rho_up z
            return Program((Stage(tab.times[i], 1.0, (), m0),), 0.0, (a1,), a1 * up / math.sqrt(dt), m0)
        h = math.log(rho0) - math.log(down)  # lambda_down - lambda_0
        lam_mid = tab.lam[i] + 0.5 * h
        st = grid_table(problem.process, problem.denoiser.prediction, [t_at_lambda(problem.process, lam_mid)])
        rho_mid = math.exp(-lam_mid)
        # x_mid = alpha_mid [(rho_mid/rho0) x/alpha0 + (1 - rho_mid/rho0) x0_0]
        mid = Stage(st.times[0], st.alpha[0] * rho_mid / (rho0 * a0), (-st.alpha[0] * math.expm1(-0.5 * h),), st.x0_map[0])
        # y1 = (rho_down/rho0) y + (1 - rho_down/rho0) x0_mid + rho_up z
        return Program((Stage(tab.times[i], 1.0, (), m0), mid), a1 * down / (rho0 * a0),
                       (0.0, -a1 * math.expm1(-h)), a1 * up / math.sqrt(dt), m0)
