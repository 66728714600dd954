"""DEIS (Zhang & Chen 2023): exponential Adams-Bashforth in time on the noise prediction."""

from __future__ import annotations

from dataclasses import dataclass

from ._exponential import MultistepPC, lagrange_integral_weights
from .base import register

__all__ = ["DEIS"]


@register
@dataclass(frozen=True)
class DEIS(MultistepPC):
    r"""DEIS-tAB of order ``k`` (1-3): Lagrange interpolation of eps in time ``t``, integrated exactly.

    In the noise level ``rho = sigma/alpha`` the probability-flow ODE is ``d(x/alpha)/drho = eps``
    (Zhang & Chen 2023, eq. 10), so a step ``s -> t`` is

        ``x_t = (alpha_t/alpha_s) x_s - alpha_t sum_j eps_j int_{rho_t}^{rho_s} l_j(t(rho)) drho``

    with ``l_j`` the Lagrange basis in time through the last ``k`` grid times (the tAB variant, eq. 14).
    The weights are computed once per grid with a 24-point Gauss-Legendre rule in ``rho`` (exact
    where ``t`` is affine in ``rho``, as for the EDM process). ``order = 1`` is DDIM. Warm-up steps use
    fewer nodes; the last step to ``t = 0`` keeps the order (``t`` is regular there).

    ``corrector=True`` adds the implicit Adams (Adams-Moulton) corrector in the same variables, run
    as UniPC runs UniC: once the model output at the predicted point arrives, the step is redone with
    the polynomial through that new node too, and the output is reused for the next step (no extra
    model call; :class:`~sdeflow.solvers._exponential.MultistepPC`). ODE order ``k`` (``k + 1`` with the
    corrector); one call per step.
    """

    name = "deis"
    mode = "eps"
    final_first_order = False
    description = "DEIS time-AB (noise prediction, Lagrange in t), order 1-3; corrector=True: +1"

    order: int = 3
    corrector: bool = False

    def __post_init__(self) -> None:
        self.check_options(3)

    def coefficients(self, tab, i, p):
        a0, a1 = tab.alpha[i], tab.alpha[i + 1]

        def weights(nodes):
            if len(nodes) == 1:
                return [-a1 * (tab.rho[i] - tab.rho[i + 1])]
            return [-a1 * w for w in lagrange_integral_weights(nodes, tab.rho[i + 1], tab.rho[i], fn=tab.t_of_rho)]

        past = [tab.times[j] for j in range(i, i - p, -1)]
        corr = None
        if self.corrector and tab.sigma[i + 1] > 0.0:
            w = weights([tab.times[i + 1]] + past)
            corr = w
        return a1 / a0, weights(past), corr
