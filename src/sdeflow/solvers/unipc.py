"""UniPC (Zhao et al. 2023): the unified predictor-corrector in data prediction, B(h) variants."""

from __future__ import annotations

import math
from dataclasses import dataclass
import numpy as np
from ._exponential import GridTable, MultistepPC, lagrange_integral_weights, phi
from .base import register

__all__ = ["UniPC", "unipc_coefficients"]


def unipc_coefficients(tab: GridTable, i: int, p: int, variant: str, corrector: bool):
    r"""Predictor and corrector weights of UniPC step ``i`` with ``p`` nodes (data prediction).

    With ``h = lambda_{i+1} - lambda_i``, ``z = -h``, ``r_k = (lambda_{i-k} - lambda_i)/h``,
    ``D_k = (m_{i-k} - m_i)/r_k``, ``B(h) = z`` (bh1) or ``e^z - 1`` (bh2) and
    ``g_m = z phi_{m+1}(z) m! / B(h)`` (Zhao et al. 2023, Algorithms 2-3, eq. 8):

    * UniP-p: ``x~ = (sigma_{i+1}/sigma_i) x_i + alpha_{i+1} (1 - e^{-h}) m_i - alpha_{i+1} B(h) sum_k a_k D_k``,
      ``R_{p-1} a = g_{1..p-1}`` with ``R[m, k] = r_k^m``;
    * UniC-p: the same with ``D_p = m_{i+1} - m_i`` (``r_p = 1``) and ``R_p a^c = g_{1..p}``.

    Returns ``(a, pred, corr)``: ``x~ = a x_i + sum_j pred[j] m_{i-j}`` and, if ``corrector``,
    ``x_{i+1} = a x_i + corr[0] m_{i+1} + sum_j corr[1 + j] m_{i-j}`` (``None`` otherwise).
    """
    a1, s1 = tab.alpha[i + 1], tab.sigma[i + 1]
    if s1 <= 0.0:  # the denoising step to t = 0
        return 0.0, [a1], None
    if any(not math.isfinite(tab.lam[i - k]) for k in range(p)):
        return _inverse_noise_level_step(tab, i, p, corrector)
    h = tab.lam[i + 1] - tab.lam[i]
    z = -h
    b_h = z if variant == "bh1" else math.expm1(z)
    r = [(tab.lam[i - k] - tab.lam[i]) / h for k in range(1, p)] + [1.0]
    g = np.array([z * phi(m + 1, z) * math.factorial(m) / b_h for m in range(1, p + 1)])
    R = np.array([[rk ** (m - 1) for rk in r] for m in range(1, p + 1)])
    base = [-a1 * math.expm1(z)] + [0.0] * (p - 1)

    def combine(rho: np.ndarray, ks: int) -> list[float]:
        w = list(base)
        for k in range(ks):
            c = -a1 * b_h * float(rho[k]) / r[k]
            w[0] -= c
            if k < p - 1:
                w[k + 1] += c
            else:
                w.append(c)  # the new node m_{i+1}
        return w

    pred = combine(np.linalg.solve(R[: p - 1, : p - 1], g[: p - 1]), p - 1) if p > 1 else base
    corr = None
    if corrector:
        w = combine(np.linalg.solve(R, g), p)
        corr = [w[-1]] + w[:p]
    return s1 / tab.sigma[i], pred, corr


def _inverse_noise_level_step(tab: GridTable, i: int, p: int, corrector: bool):
    r"""Step ``i`` with a node at ``alpha = 0`` (a flow's ``t = T``, where ``lambda = -inf``).

    No polynomial in ``lambda`` passes through a node at ``lambda = -inf``, so these steps use the
    exact form of the probability-flow ODE in the inverse noise level ``u = alpha/sigma``
    (regular at ``u = 0``): ``x_{i+1}/sigma_{i+1} = x_i/sigma_i + int_{u_i}^{u_{i+1}} x0_hat du``
    (the variation-of-constants formula behind DPM-Solver++, with ``du = u dlambda``), with
    ``x0_hat`` replaced by its Lagrange polynomial in ``u`` through the ``p`` latest nodes
    (predictor, order ``p``; Adams-Bashforth in ``u``) and through those and the new node
    (corrector, order ``p + 1``; Adams-Moulton in ``u``). One node gives DDIM. Later steps, whose
    nodes all have ``alpha > 0``, use the ``lambda`` form.
    """
    s1 = tab.sigma[i + 1]
    u = {j: tab.alpha[j] / tab.sigma[j] for j in range(i - p + 1, i + 2)}  # sigma > 0 at every node here
    past = [u[i - k] for k in range(p)]
    pred = [s1 * w for w in lagrange_integral_weights(past, u[i], u[i + 1])]
    corr = [s1 * w for w in lagrange_integral_weights([u[i + 1]] + past, u[i], u[i + 1])] if corrector else None
    return s1 / tab.sigma[i], pred, corr


@register
@dataclass(frozen=True)
class UniPC(MultistepPC):
    r"""UniPC-p: UniP-p predictor and UniC corrector in data prediction (Zhao et al. 2023).

    At step ``i`` the model is called once, at the predicted ``x~_i``; its output ``m_i`` first
    corrects the previous step (UniC, no extra call: the corrected ``x_i`` is not re-evaluated) and
    then drives the predictor to ``x~_{i+1}``. See :func:`unipc_coefficients` for the weights;
    ``variant`` picks ``B(h) = h`` (``bh1``) or ``e^h - 1`` (``bh2``). ODE order ``p + 1`` with the
    corrector, ``p`` without; warm-up steps use fewer nodes; the last step to ``t = 0`` is the
    denoising step (no corrector: there is no call at ``t = 0``). One model call per step.
    """

    name = "unipc"
    mode = "x0"
    alpha_zero_node = True
    description = "UniPC predictor-corrector (data prediction, bh1/bh2), order 1-3 (+1 with corrector)"

    order: int = 2
    variant: str = "bh2"
    corrector: bool = True

    def __post_init__(self) -> None:
        self.check_options(3)
        if self.variant not in ("bh1", "bh2"):
            raise ValueError(f"variant must be 'bh1' or 'bh2' (the B(h) of UniPC); got {self.variant!r}")

    def coefficients(self, tab, i, p):
        return unipc_coefficients(tab, i, p, self.variant, self.corrector)
