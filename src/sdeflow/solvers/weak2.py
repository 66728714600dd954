"""Platen's explicit weak order 2.0 scheme for Monte Carlo (Kloeden & Platen 1992, eqs. 15.1.1 and 15.1.3)."""

from __future__ import annotations

from dataclasses import dataclass

from ._sde import SDEMethod, apply_diffusion, layout, sqrt_abs, structure
from .base import register


@register
@dataclass(frozen=True)
class PlatenWeak2(SDEMethod):
    r"""Platen's derivative-free weak order 2 scheme, for expectations ``E[phi(x_T)]``.

    With ``h = t1 - t0``, ``dW`` the Brownian increment (Gaussian; the scheme is weak order 2 with
    it as with three-point variables), ``f = f(t0, x)``, ``G = G(t0, x)``:

        Y   = x + f h + G dW,            R+- = x + f h +- G sqrt(h)
        x1  = x + (f(t1, Y) + f) h / 2
                + (G(t1, R+) + G(t1, R-) + 2 G) dW / 4
                + (G(t1, R+) - G(t1, R-)) (dW^2 - h) / (4 sqrt(h)).

    Kloeden & Platen eq. 15.1.1 (scalar), and 15.1.3 for several Brownian motions, which reduces
    to the componentwise formula for diagonal noise (``G_i`` depending on ``x_i`` only: the cross
    terms vanish) and to ``x1 = x + (f(t1, Y) + f) h/2 + G dW`` for additive noise. Time-dependent
    coefficients follow by adding ``t`` to the state (hence ``t1`` in the supporting values).

    Weak order 2 (Ito; diagonal, scalar, additive noise); strong order 1 on commutative noise with
    Gaussian increments (its last term is Milstein's). Two drift and three diffusion calls per step.
    """

    name = "platen_weak2"
    strong_order = 1.0
    weak_order = 2.0
    strong_orders = {"additive": 1.0, "diagonal": 1.0, "scalar": 1.0}
    calculus = "ito"
    noise_types = ("diagonal", "additive", "scalar")
    calls_per_step = 2
    error_estimate = True
    description = "Platen's explicit weak order 2 scheme (Ito; diagonal, scalar, additive noise)"

    def advance(self, problem, t0, t1, x, noise, want_error):
        h = t1 - t0
        kind = layout(problem)
        dw = noise(t0, t1)
        f = problem.drift(t0, x)
        g = problem.diffusion(t0, x)
        gdw = apply_diffusion(kind, g, dw)
        euler = x + h * f
        x1 = x + (0.5 * h) * (problem.drift(t1, euler + gdw) + f) + gdw
        if structure(problem) == "additive":
            return x1, (x1 - euler - gdw) if want_error else None
        sh = sqrt_abs(h)
        shift = sh * g
        gp, gm = problem.diffusion(t1, euler + shift), problem.diffusion(t1, euler - shift)
        corr = apply_diffusion(kind, 0.25 * (gp + gm) - 0.5 * g, dw)
        corr = corr + apply_diffusion(kind, gp - gm, (dw * dw - abs(h)) / (4.0 * sh))
        x1 = x1 + corr
        return x1, (x1 - euler - gdw) if want_error else None
