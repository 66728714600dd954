"""iPNDM (Zhang & Chen 2023, appendix): Adams-Bashforth with fixed coefficients on the noise prediction."""

from __future__ import annotations

from dataclasses import dataclass

from ._exponential import ExponentialMultistep, check_order
from .base import register

__all__ = ["IPNDM", "AB_COEFFICIENTS"]

# Adams-Bashforth coefficients of orders 1-4 for equal steps, newest first.
AB_COEFFICIENTS = ((1.0,), (1.5, -0.5), (23 / 12, -16 / 12, 5 / 12), (55 / 24, -59 / 24, 37 / 24, -9 / 24))


@register
@dataclass(frozen=True)
class IPNDM(ExponentialMultistep):
    r"""Improved pseudo numerical method (iPNDM) of order ``k`` (1-4).

    The probability-flow ODE in the noise level ``rho = sigma/alpha`` is ``d(x/alpha)/drho = eps``;
    iPNDM steps it with the equal-step Adams-Bashforth combination of the last ``k`` noise
    predictions (Zhang & Chen 2023, "DEIS", appendix on iPNDM; Zhou et al. 2024, "AMED"):

        ``x_t = (alpha_t/alpha_s) x_s + alpha_t (rho_t - rho_s) sum_j b^{(k)}_j eps_j``,
        ``b^{(4)} = (55, -59, 37, -9)/24``,

    with lower orders while the history fills up (1: DDIM/Euler, 2: (3, -1)/2, 3: (23, -16, 5)/12).
    The coefficients ignore unequal step sizes and the warm-up steps are of lower order, so the
    global order is ``min(k, 2)`` (measured on the Karras grid; declared as ``ode_order``): ``k`` holds
    only for equal steps in ``rho`` with exact starting values. At the small step counts of sampling
    the higher orders still pay off (Zhou et al. 2024), which is why ``k`` up to 4 is offered.
    One model call per step; the last step to ``t = 0`` keeps the order (``rho`` is regular there).
    """

    name = "ipndm"
    mode = "eps"
    final_first_order = False
    description = "iPNDM: equal-step Adams-Bashforth in noise level on eps, order 1-4"

    order: int = 4

    def __post_init__(self) -> None:
        check_order(self.order, self.name, 4)

    @property
    def ode_order(self) -> int:  # type: ignore[override]
        return min(self.order, 2)

    def weights(self, tab, i, k):
        a0, a1 = tab.alpha[i], tab.alpha[i + 1]
        drho = tab.rho[i + 1] - tab.rho[i]
        return a1 / a0, [a1 * drho * b for b in AB_COEFFICIENTS[k - 1]], 0.0
