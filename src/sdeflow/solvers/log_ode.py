"""The log-ODE midpoint method (torchsde's ``log_ode``): Lie-Trotter splitting of the log-ODE with the
explicit midpoint rule, for Stratonovich SDEs (Foster, Lyons & Oberhauser 2020, "An optimal
polynomial approximation of Brownian motion", SIAM J. Numer. Anal.; the log-ODE method of Castell &
Gaines 1995).

With ``h = t1 - t0``, ``dW = W(t1) - W(t0)`` and the Levy area ``A_kl = 1/2 int (W_k dW_l - W_l dW_k)``
of the step,

    y' = y + f(t0, y) h / 2 + G(t0, y) dW / 2,                         t' = t0 + h / 2,
    y1 = y + f(t', y') h + G(t', y') dW + sum_{j,k,l} d_j G_il(t', y') G_jk(t', y') A_kl.

The last term is the Levy-area term of general noise: it vanishes on commutative noise (diagonal,
scalar, additive, declared-commutative), where the method is the stochastic midpoint rule, strong
order 1. On general noise it needs ``A`` from the Brownian object (torchsde's
``bm(t0, t1, return_A=True)``, e.g. ``BrownianInterval(levy_area_approximation="davie")`` or
``"foster"``; sdeint's default noise is wrapped in :class:`FosterArea`), and the term is computed by
forward-mode differentiation of ``G`` (one pass per column); strong order 0.5 with those
approximations of ``A``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.autograd.forward_ad as fwad

from ._sde import structure
from .base import register
from .stratonovich import MidpointSDE, StratonovichTable

__all__ = ["LogODEMidpoint", "FosterArea", "levy_area"]


def levy_area(noise, t0: float, t1: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(dW, A)`` over ``[t0, t1]`` from ``noise(t0, t1, return_A=True)`` (torchsde's convention)."""
    try:
        out = noise(t0, t1, return_A=True)
    except TypeError as err:
        raise ValueError(
            f"method 'log_ode' on general noise needs the Levy area A of each step from the Brownian object, but "
            f"{type(noise).__name__} does not accept return_A=True; pass bm=torchsde.BrownianInterval(..., "
            "levy_area_approximation='davie' or 'foster'), or use 'midpoint' / 'heun' (strong order 0.5 on general "
            "noise), or declare the SDE commutative (commutative = True) if its diffusion columns commute"
        ) from err
    if not isinstance(out, tuple) or len(out) != 2 or out[1] is None:
        raise ValueError("the Brownian object returned no Levy area A for return_A=True; use "
                         "levy_area_approximation='davie' or 'foster'")
    return out


def _time_bits(t: float) -> int:
    """The float64 bits of a time as an int64 (a key for the area of the step that starts or ends there)."""
    return int(torch.tensor(float(t), dtype=torch.float64).view(torch.int64))


class FosterArea:
    r"""A Brownian object that also gives each step's Levy area, by Foster's approximation from the
    space-time area (J. Foster, "Numerical approximations for stochastic differential equations", PhD
    thesis, Oxford 2020, sec. 7; Davie 2014 without the correction).

    With ``H = U / h - dW / 2`` (the space-time Levy area of the step, ``U = int (W_s - W_{t0}) ds``),

        A_kl = H_k dW_l - dW_k H_l + sigma_kl (Z_kl - Z_lk),   sigma_kl^2 = (h / 10) (h / 10 + H_k^2 + H_l^2),

    with ``Z`` standard normals drawn from counter-based keys of ``(seed, t0, t1)`` (:mod:`sdeflow.noise.rng`):
    the same step gives the same area whenever it is queried (what the adjoint's recomputation needs).

    Args:
        noise: a Brownian object that accepts ``return_U=True`` (sdeflow's defaults do).
        seed: an int; the areas' stream (independent of ``noise``'s).
    """

    def __init__(self, noise, seed: int) -> None:
        from ..noise.rng import derive_keys, mix64

        self._noise = noise
        self._key = derive_keys(mix64(torch.tensor([int(seed)], dtype=torch.int64)), 7)
        self.shape = getattr(noise, "shape", None)

    def __call__(self, ta, tb, return_U: bool = False, return_A: bool = False):
        if not return_A:
            return self._noise(ta, tb, return_U=return_U) if return_U else self._noise(ta, tb)
        from ..noise.rng import derive_keys, normal_from_keys

        dw, u = self._noise(ta, tb, return_U=True)
        h = float(tb) - float(ta)
        hh = u / h - 0.5 * dw
        area = hh.unsqueeze(-1) * dw.unsqueeze(-2) - dw.unsqueeze(-1) * hh.unsqueeze(-2)
        b, m = dw.shape[0], dw.shape[-1]
        keys = derive_keys(derive_keys(self._key, _time_bits(ta)), _time_bits(tb))
        z = normal_from_keys(keys, b * m * m, torch.float64).reshape(b, m, m).to(dw.dtype)
        tenth = 0.1 * abs(h)
        sq = hh.square()
        std = (tenth * (tenth + sq.unsqueeze(-1) + sq.unsqueeze(-2))).sqrt()
        area = area + std * (z - z.transpose(-1, -2))
        return (dw, u, area) if return_U else (dw, area)


@register
@dataclass(frozen=True)
class LogODEMidpoint(MidpointSDE):
    """Log-ODE midpoint (module docstring): the stochastic midpoint plus the Levy-area term on general noise."""

    name = "log_ode"
    table = StratonovichTable(c=(0.0, 0.5), a=((), (0.5,)), b=((), (0.5,)), alpha=(0.0, 1.0), beta=(0.0, 1.0))
    levy_area_general = True
    error_estimate = False
    description = "log-ODE midpoint (Stratonovich): midpoint plus the Levy-area term on general noise (needs A)"

    def advance(self, problem, t0, t1, x, noise, want_error):
        if structure(problem) != "general":
            return super().advance(problem, t0, t1, x, noise, want_error)
        h = t1 - t0
        dw, area = levy_area(noise, t0, t1)
        tm = t0 + 0.5 * h
        g0 = problem.diffusion(t0, x)
        xm = x + 0.5 * h * problem.drift(t0, x) + 0.5 * torch.matmul(g0, dw.unsqueeze(-1)).squeeze(-1)
        gm = problem.diffusion(tm, xm)
        x1 = x + h * problem.drift(tm, xm) + torch.matmul(gm, dw.unsqueeze(-1)).squeeze(-1)
        ga = torch.matmul(gm, area.to(gm.dtype))  # (batch, d, m): sum_k G_jk A_kl
        correction = torch.zeros_like(x1)
        for col in range(gm.shape[-1]):  # sum_l d_j G_il [G A]_jl, one forward-mode pass per column
            with fwad.dual_level():
                dual = fwad.make_dual(xm, ga[..., col])
                tangent = fwad.unpack_dual(problem.diffusion(tm, dual)[..., col]).tangent
            if tangent is not None:
                correction = correction + tangent
        return x1 + correction, None
