"""What the general-SDE methods share: noise structure, diffusion products, iterated integrals, checks.

A general SDE ``dx = f(t, x) dt + G(t, x) dW`` (:class:`sdeflow.sdes.SDE`) stores its diffusion in
one of three *layouts*, read from ``noise_type``:

* ``elementwise`` (diagonal, additive): ``G`` has the state's shape, ``G dW = G * dW``;
* ``column`` (scalar): ``G`` has the state's shape, ``W`` is ``(batch, 1)``;
* ``matrix`` (general): ``G`` is ``(batch, d, m)``, ``W`` is ``(batch, m)``.

The *structure* decides which methods converge, and at what order: ``additive`` (``G`` independent
of ``x``: declared by ``noise_type = "additive"`` or an attribute ``additive = True``), ``diagonal``
(``G_i`` depends on ``x_i`` only, torchsde's convention), ``scalar``, ``commutative`` (general noise
whose columns commute, ``L^i G_j = L^j G_i``, declared by an attribute ``commutative = True``) and
``general``. Additive noise is commutative, and Ito and Stratonovich calculus agree on it.

A method that needs the space-time integral ``U = int_{t0}^{t1} (W_s - W_{t0}) ds = I_(1,0)``
asks the Brownian object for it with torchsde's convention ``bm(t0, t1, return_U=True) -> (dW, U)``,
so torchsde's ``BrownianInterval(levy_area_approximation="space-time")`` works as well as sdeflow's.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from .base import Solver, StepResult, registry

__all__ = [
    "SDEMethod",
    "add_diffusion",
    "apply_diffusion",
    "check_method",
    "layout",
    "methods_for",
    "space_time",
    "structure",
]

STRUCTURES = ("additive", "diagonal", "scalar", "commutative", "general")
# What each structure also is: a method supporting one of these supports the structure.
_COVERS = {
    "additive": ("additive", "diagonal", "scalar", "commutative", "general"),
    "diagonal": ("diagonal", "commutative", "general"),
    "scalar": ("scalar", "commutative", "general"),
    "commutative": ("commutative", "general"),
    "general": ("general",),
}


def structure(sde) -> str:
    """The noise structure of ``sde``: additive, diagonal, scalar, commutative or general."""
    kind = getattr(sde, "noise_type", "diagonal")
    if kind == "additive" or getattr(sde, "additive", False):
        return "additive"
    if kind == "general":
        return "commutative" if getattr(sde, "commutative", False) else "general"
    return kind


def layout(sde) -> str:
    """How ``sde``'s diffusion acts on ``dW``: ``elementwise``, ``column`` or ``matrix``."""
    kind = getattr(sde, "noise_type", "diagonal")
    return {"diagonal": "elementwise", "additive": "elementwise", "scalar": "column"}.get(kind, "matrix")


def apply_diffusion(kind: str, g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``G v`` for a diffusion value ``g`` of layout ``kind`` and a Brownian-shaped ``v``; shape of the state."""
    if kind == "elementwise":
        return g * v
    if kind == "column":
        return g * v.reshape(v.shape[:1] + (1,) * (g.ndim - 1))
    return torch.matmul(g, v.unsqueeze(-1)).squeeze(-1)


def add_diffusion(kind: str, acc: torch.Tensor, g: torch.Tensor, v: torch.Tensor, value: float = 1.0) -> torch.Tensor:
    """``acc + value * G v`` in one fused op where the layout allows (the per-step hot path)."""
    if kind == "elementwise":
        return torch.addcmul(acc, g, v, value=value)
    if kind == "column":
        return torch.addcmul(acc, g, v.reshape(v.shape[:1] + (1,) * (g.ndim - 1)), value=value)
    return torch.add(acc, torch.matmul(g, v.unsqueeze(-1)).squeeze(-1), alpha=value)


def space_time(noise, t0: float, t1: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(dW, U)`` over ``[t0, t1]`` with ``U = int (W_s - W_t0) ds``, from ``noise(t0, t1, return_U=True)``."""
    try:
        out = noise(t0, t1, return_U=True)
    except TypeError as err:
        raise TypeError(
            f"this method needs the space-time Levy area U = int (W_s - W_t0) ds from the Brownian object, but "
            f"{type(noise).__name__} does not accept return_U=True; use sdeflow.noise.path.BrownianPath, "
            "sdeflow.noise.levy.LevyBrownianTree or torchsde's BrownianInterval(levy_area_approximation='space-time')"
        ) from err
    if not isinstance(out, tuple) or out[1] is None:
        raise ValueError(
            "the Brownian object returned no space-time Levy area U: use sdeflow.noise.levy.LevyBrownianTree or "
            "sdeflow.noise.path.BrownianPath, or torchsde's levy_area_approximation='space-time'"
        )
    return out[0], out[1]


def _declared(solver) -> tuple[dict[str, float], tuple[str, ...]]:
    """(strong order per supported structure, supported calculi) of any registered solver."""
    orders = getattr(solver, "strong_orders", None)
    if orders is None:  # a foundation solver: read its noise_types and single strong_order
        order = solver.strong_order or 0.0
        kinds = set(getattr(solver, "noise_types", ()))
        orders = {}
        for s in STRUCTURES:
            if s in kinds or (s == "commutative" and "general" in kinds):
                orders[s] = order
        if "additive" in orders and order == 0.5:  # Euler-Maruyama is order 1 on additive noise
            orders["additive"] = 1.0
    calculi = getattr(solver, "calculi", None)
    if calculi is None:
        calculi = ("ito", "stratonovich") if solver.calculus == "any" else tuple(solver.calculus.split("/"))
    return dict(orders), tuple(calculi)


def methods_for(sde) -> list[tuple[str, float]]:
    """Registered SDE methods that integrate ``sde`` correctly, with their strong orders, best first."""
    kind, calc = structure(sde), getattr(sde, "calculus", "ito")
    out = []
    for name, cls in registry().items():
        if not cls.stochastic or cls.needs != "sde":
            continue
        orders, calculi = _declared(cls)
        if kind in orders and (calc in calculi or kind == "additive"):
            out.append((name, orders[kind]))
    return sorted(out, key=lambda p: (-p[1], p[0]))


def check_method(solver: Solver, sde) -> float:
    """Raise a ValueError naming methods that would serve if ``solver`` cannot integrate ``sde``.

    Returns the strong order ``solver`` achieves on ``sde``. Never a silently wrong answer: an Ito
    method on a Stratonovich SDE (with multiplicative noise), a Milstein on non-commutative noise,
    an additive-noise method on multiplicative noise are all refused here.
    """
    kind, calc = structure(sde), getattr(sde, "calculus", "ito")
    orders, calculi = _declared(solver)
    problems = []
    if kind not in orders:
        problems.append(f"{kind} noise (it supports {', '.join(orders) or 'none'})")
    if calc not in calculi and kind != "additive":
        problems.append(f"{calc} calculus (it integrates {' and '.join(calculi)} SDEs)")
    if problems:
        serve = ", ".join(f"{n} (strong order {o:g})" for n, o in methods_for(sde)) or "none registered"
        hint = ""
        if kind == "general":
            hint = (
                " General noise without Levy areas caps the strong order at 0.5; set `commutative = True` on the "
                "SDE if its diffusion columns commute (L^i G_j = L^j G_i) to allow order-1 methods."
            )
        raise ValueError(
            f"method {solver.name!r} cannot integrate this SDE: it does not handle {' or '.join(problems)}. "
            f"Methods that serve a {calc} SDE with {kind} noise: {serve}.{hint}"
        )
    return orders[kind]


@dataclass(frozen=True)
class SDEMethod(Solver):
    """Base of the general-SDE methods: declared orders per noise structure, an optional error estimate.

    Class attributes beyond :class:`Solver`'s:
        strong_orders: strong order for each supported noise structure (see :func:`structure`).
        calculi: the calculi it integrates (``("ito",)``, ``("stratonovich",)`` or both).
        levy_area: ``"space-time"`` if it needs ``U = I_(1,0)`` from the Brownian object, else ``"none"``.
        error_estimate: whether :meth:`step_with_error` returns an embedded local error estimate
            (adaptive stepping in :func:`sdeflow.sdeint` needs one).

    ``calls_per_step`` counts drift evaluations (the model calls on a diffusion); the docstrings
    give the diffusion evaluations too. Subclasses implement :meth:`advance`; :meth:`step` is the
    :class:`Solver` interface on top (on a diffusion's last step to ``t = 0``, where the model
    cannot be evaluated, it is the Euler-Maruyama step).
    """

    strong_orders: ClassVar[dict[str, float]] = {}
    stage_nodes: ClassVar[tuple[float, ...]] = (0.0, 1.0)
    calculi: ClassVar[tuple[str, ...]] = ("ito",)
    levy_area: ClassVar[str] = "none"
    error_estimate: ClassVar[bool] = False
    stochastic = True
    needs = "sde"

    def init(self, problem, ts: list[float], x: torch.Tensor) -> Any:
        """Hands the problem every time the steps on ``ts`` evaluate at (``t0 + c h`` for ``c`` in
        :attr:`stage_nodes`) when it can use them (:meth:`TorchsdeSDE.prepare_times`: the time tensors
        a torchsde-style ``f(t, y)`` receives, made at once); no solver state."""
        prepare_stage_times(problem, ts, self.stage_nodes)
        return None

    @abstractmethod
    def advance(self, problem, t0: float, t1: float, x: torch.Tensor, noise, want_error: bool) -> tuple[torch.Tensor, Any]:
        """One step from ``t0`` to ``t1``: ``(x1, error estimate or None)``; shapes of ``x``."""

    def step(self, problem, t0, t1, x, state, noise) -> StepResult:
        can_eval = getattr(problem, "can_evaluate", None)
        if can_eval is not None and not can_eval(t1):
            # A diffusion's last step to t = 0, where the model cannot be evaluated: the
            # Euler-Maruyama step there (the denoised x0, as the foundation's sampler does).
            from .euler_maruyama import EulerMaruyama

            return EulerMaruyama().step(problem, t0, t1, x, state, noise)
        return StepResult(self.advance(problem, t0, t1, x, noise, False)[0], None, None)

    def step_with_error(self, problem, t0, t1, x, state, noise) -> tuple[StepResult, torch.Tensor]:
        """Like :meth:`step`, with ``err``, the embedded local error estimate (shape of ``x``)."""
        x1, err = self.advance(problem, t0, t1, x, noise, True)
        return StepResult(x1, None, None), err


def prepare_stage_times(problem, ts: list[float] | None, nodes) -> None:
    """``problem.prepare_times`` (where it exists) with the stage times of every step of the grid ``ts``."""
    prepare = getattr(problem, "prepare_times", None)
    if prepare is None or ts is None or len(ts) < 2:
        return
    prepare([stage_time(t0, t1, c) for t0, t1 in zip(ts[:-1], ts[1:]) for c in nodes])


def stage_time(t0: float, t1: float, c: float) -> float:
    """``t0 + c (t1 - t0)``, exactly ``t0`` or ``t1`` at ``c = 0, 1`` (the next step starts at this ``t1``)."""
    return t0 if c == 0 else t1 if c == 1 else t0 + c * (t1 - t0)


def sqrt_abs(h: float) -> float:
    """``sqrt(|h|)``: steps may run backwards in time."""
    return math.sqrt(abs(h))
