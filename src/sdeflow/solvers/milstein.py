"""Milstein's method for Ito and Stratonovich SDEs with commutative noise, derivative-free."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._sde import SDEMethod, add_diffusion, apply_diffusion, layout, sqrt_abs, structure
from .base import StepResult, register


@register
@dataclass(frozen=True)
class Milstein(SDEMethod):
    r"""Milstein's scheme (Kloeden & Platen 1992, eq. 10.3.3; Stratonovich form eq. 10.3.4).

    ``x1 = x + f h + G dW + 1/2 sum_{j,k} L^j G_k (dW_j dW_k - c h delta_jk)``, ``L^j = sum_i G_ij d/dx_i``,
    with ``c = 1`` (Ito) or ``0`` (Stratonovich); ``h = t1 - t0``. Valid for commutative noise, where
    the double integrals reduce to products of increments (no Levy area). The derivative term is
    computed without autograd, by differences along the noise (Platen's derivative-free idea,
    Kloeden & Platen eq. 11.1.5):

    * diagonal and scalar noise: ``L G = (G(x + sqrt(h) G) - G(x)) / sqrt(h)`` (Ito: its ``O(sqrt h)``
      error multiplies ``dW^2 - h``, of mean zero) or the centred ``(G(x + sqrt(h) G) - G(x - sqrt(h) G))
      / (2 sqrt(h))`` (Stratonovich: the mean drift ``1/2 L G h`` needs an ``O(h)`` error), then
      ``x1 += 1/2 (L G) * (dW^2 - c h)`` (torchsde's convention: ``G_i`` depends on ``x_i`` only);
    * commutative general noise: ``sum_{j,k} L^j G_k dW_j dW_k ~ (G(x + v) - G(x - v)) dW / 2`` with
      ``v = G dW``, and the Ito correction ``-h/2 sum_j L^j G_j`` from one difference per column;
    * additive noise: no correction (Milstein is Euler-Maruyama there).

    Strong order 1, weak order 1. Calls per step: one drift, two diffusions (three for Stratonovich;
    ``1 + 2 (m + 1)``
    diffusions for Ito general noise with ``m`` Brownian motions). The embedded error estimate is
    the Milstein correction itself (the difference to Euler-Maruyama).
    """

    name = "milstein"
    strong_order = 1.0
    weak_order = 1.0
    strong_orders = {"additive": 1.0, "diagonal": 1.0, "scalar": 1.0, "commutative": 1.0}
    calculi = ("ito", "stratonovich")
    calculus = "ito/stratonovich"
    noise_types = ("diagonal", "additive", "scalar", "general")
    calls_per_step = 1
    error_estimate = True
    description = "Milstein (Ito or Stratonovich; diagonal, scalar, additive, commutative noise), strong order 1"

    def init(self, problem, ts, x):
        """What every step would otherwise look up: the layout and noise structure, the calculus,
        ``can_evaluate``, and (Ito) the constant ``-|h|`` per step size."""
        super().init(problem, ts, x)
        return _MilsteinState(layout(problem), structure(problem) == "additive",
                              getattr(problem, "calculus", "ito") == "ito", getattr(problem, "can_evaluate", None))

    def step(self, problem, t0, t1, x, state, noise) -> StepResult:
        if type(state) is not _MilsteinState:
            state = self.init(problem, None, x)
        if state.can_evaluate is not None and not state.can_evaluate(t1):
            return StepResult(super().step(problem, t0, t1, x, None, noise).x, state, None)
        return StepResult(self._step(problem, t0, t1, x, noise, state, False)[0], state, None)

    def advance(self, problem, t0, t1, x, noise, want_error):
        return self._step(problem, t0, t1, x, noise, self.init(problem, None, x), want_error)

    def _step(self, problem, t0, t1, x, noise, state: "_MilsteinState", want_error: bool):
        h = t1 - t0
        kind = state.kind
        dw = noise(t0, t1)
        g = problem.diffusion(t0, x)
        x1 = add_diffusion(kind, torch.add(x, problem.drift(t0, x), alpha=h), g, dw)
        if state.additive:
            return x1, torch.zeros_like(x1) if want_error else None
        if kind != "matrix":
            eps = sqrt_abs(h)
            if state.ito:  # one-sided: its O(sqrt h) error multiplies dW^2 - h, of mean zero (KP eq. 11.1.5)
                dg = problem.diffusion(t0, torch.add(x, g, alpha=eps)) - g
                q, c = torch.addcmul(state.neg_abs(h, x), dw, dw), 0.5 / eps  # dW^2 - |h| in one op
            else:  # centred: the O(h) error keeps the Stratonovich mean drift 1/2 L G h to O(h^2)
                dg = problem.diffusion(t0, torch.add(x, g, alpha=eps)) - problem.diffusion(t0, torch.add(x, g, alpha=-eps))
                q, c = dw * dw, 0.25 / eps
            if not want_error:
                return add_diffusion(kind, x1, dg, q, value=c), None
            corr = c * apply_diffusion(kind, dg, q)
        else:
            v = apply_diffusion(kind, g, dw)
            corr = 0.25 * apply_diffusion(kind, problem.diffusion(t0, x + v) - problem.diffusion(t0, x - v), dw)
            if state.ito:
                eps = sqrt_abs(h)
                for j in range(g.shape[-1]):
                    shift = eps * g[..., j]
                    diff = problem.diffusion(t0, x + shift)[..., j] - problem.diffusion(t0, x - shift)[..., j]
                    corr = corr - (0.25 * abs(h) / eps) * diff
        return x1 + corr, corr if want_error else None


class _MilsteinState:
    """Per-solve facts of :class:`Milstein`: layout, additive noise, Ito, ``can_evaluate``, ``-|h|`` per ``h``."""

    __slots__ = ("kind", "additive", "ito", "can_evaluate", "_neg_abs")

    def __init__(self, kind: str, additive: bool, ito: bool, can_evaluate) -> None:
        self.kind, self.additive, self.ito, self.can_evaluate = kind, additive, ito, can_evaluate
        self._neg_abs: dict = {}

    def neg_abs(self, h: float, like: torch.Tensor) -> torch.Tensor:
        """``-|h|`` as a 0-d tensor of ``like``'s dtype and device (cached: a fixed grid has few steps)."""
        key = (h, like.dtype, like.device)
        hit = self._neg_abs.get(key)
        if hit is None:
            if len(self._neg_abs) > 64:
                self._neg_abs.clear()
            hit = self._neg_abs[key] = torch.tensor(-abs(h), dtype=like.dtype, device=like.device)
        return hit
