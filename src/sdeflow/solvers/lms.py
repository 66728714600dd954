"""Linear multistep (LMS) in the noise level: k-diffusion's ``sample_lms`` and diffusers' ``LMSDiscreteScheduler``."""

from __future__ import annotations

from dataclasses import dataclass

from ._exponential import ExponentialMultistep, check_order, lagrange_integral_weights
from .base import register

__all__ = ["LMS"]


@register
@dataclass(frozen=True)
class LMS(ExponentialMultistep):
    r"""Variable-step Adams-Bashforth of order ``k`` (1-4) on ``d(x/alpha)/drho = eps`` (Karras et al. 2022's ODE).

    In the noise level ``rho = sigma/alpha`` the probability-flow ODE of any Gaussian path is
    ``dy/drho = eps(y)`` for the scaled state ``y = x/alpha`` (on the EDM process ``y = x``,
    ``rho = t`` and ``eps = (x - x0_hat)/sigma``, k-diffusion's ``to_d``). A step ``rho_i -> rho_{i+1}``
    integrates the Lagrange polynomial ``p`` in ``rho`` through the last ``k`` noise predictions:

        ``x_{i+1} = (alpha_{i+1}/alpha_i) x_i + alpha_{i+1} sum_j eps_{i-j} int_{rho_i}^{rho_{i+1}} l_j(rho) drho``,

    ``l_j`` being the Lagrange basis through ``rho_i, rho_{i-1}, ..., rho_{i-k+1}`` (Adams-Bashforth
    for unequal steps, e.g. Hairer, Norsett & Wanner, "Solving ODEs I", III.1). The weights are exact
    (Gauss-Legendre, 24 points, on a polynomial of degree ``k - 1``) and computed once per grid. The
    warm-up steps use fewer nodes (order ``i + 1`` at step ``i``, as k-diffusion); the last step to
    ``t = 0`` keeps its order (``rho`` is regular there and ``eps`` is never evaluated at 0).
    ``order = 1`` is Euler in ``rho`` = DDIM. With the same grid this equals k-diffusion's
    ``sample_lms(order=k)`` and diffusers' ``LMSDiscreteScheduler`` (which integrate the same
    polynomial with ``scipy.integrate.quad``). ODE order ``k``; one model call per step.
    """

    name = "lms"
    mode = "eps"
    final_first_order = False
    description = "Linear multistep (variable-step Adams-Bashforth in noise level, k-diffusion's lms), order 1-4"

    order: int = 4

    def __post_init__(self) -> None:
        check_order(self.order, self.name, 4)

    @property
    def ode_order(self) -> int:  # type: ignore[override]
        return self.order

    def weights(self, tab, i, k):
        a0, a1 = tab.alpha[i], tab.alpha[i + 1]
        if k == 1:
            return a1 / a0, [a1 * (tab.rho[i + 1] - tab.rho[i])], 0.0
        nodes = [tab.rho[j] for j in range(i, i - k, -1)]
        return a1 / a0, [a1 * w for w in lagrange_integral_weights(nodes, tab.rho[i], tab.rho[i + 1])], 0.0
