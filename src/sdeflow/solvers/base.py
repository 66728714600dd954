"""The solver interface and registry.

A solver is a small frozen dataclass of hyperparameters whose class attributes declare its
mathematics. It never loops and never mutates itself: the driver (:mod:`sdeflow.sample`) owns the
loop and calls

    state = solver.init(problem, ts, x)       # ts: the whole grid, a list of floats
    result = solver.step(problem, t0, t1, x, state, noise)     # -> StepResult(x, state, x0)

``problem`` is an :class:`~sdeflow.sdes.SDE`; diffusion solvers (``needs = "denoiser"``) are given a
:class:`~sdeflow.sdes.ReverseDiffusionSDE` and call its denoiser. ``noise`` is a Brownian object
``noise(ta, tb) -> W(tb) - W(ta)`` (or ``None`` for deterministic solvers); times are floats and the
steps of sampling are negative (``t1 < t0``). Multistep history lives in ``state`` (a NamedTuple).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from typing import Any, ClassVar, NamedTuple

import torch

__all__ = ["Solver", "StepResult", "register", "available", "get", "registry"]


class StepResult(NamedTuple):
    """What a step returns: the new state ``x``, the solver's ``state`` and the step's ``x0`` estimate."""

    x: torch.Tensor
    state: Any = None
    x0: torch.Tensor | None = None


@dataclass(frozen=True)
class Solver(ABC):
    """Base class of all solvers. Subclasses are frozen dataclasses registered with :func:`register`.

    Class attributes (the declared mathematics, checked by the convergence tests):
        name: registry name.
        ode_order: global order of accuracy on ODEs (probability-flow ODE), ``None`` if not an ODE method.
        strong_order, weak_order: orders on SDEs (``None`` for deterministic methods).
        calculus: ``"ito"``, ``"stratonovich"`` or ``"any"`` (additive noise only, where they agree).
        noise_types: the noise types of general SDEs it integrates.
        calls_per_step: model calls (drift evaluations) per step.
        stochastic: whether it draws Brownian increments.
        needs: ``"sde"`` (drift/diffusion only) or ``"denoiser"`` (diffusion-specific).
        description: one line for ``sdeflow solvers``.
    """

    name: ClassVar[str] = ""
    ode_order: ClassVar[float | None] = None
    strong_order: ClassVar[float | None] = None
    weak_order: ClassVar[float | None] = None
    calculus: ClassVar[str] = "any"
    noise_types: ClassVar[tuple[str, ...]] = ()
    calls_per_step: ClassVar[int] = 1
    stochastic: ClassVar[bool] = False
    needs: ClassVar[str] = "sde"
    description: ClassVar[str] = ""

    # ------------------------------------------------------------------ how the driver sets things up
    def stochasticity(self) -> float:
        """The ``eta`` of the reverse-time SDE this solver integrates (0: probability-flow ODE)."""
        return 1.0 if self.stochastic else 0.0

    def draws_noise(self, ts: torch.Tensor) -> bool:
        """Whether sampling on the grid ``ts`` draws random numbers (then :func:`sdeflow.sample` needs a seed).

        The default is :attr:`stochastic`; a solver that injects noise only between steps (``consistency``)
        draws none on a one-step grid.
        """
        return bool(self.stochastic)

    def nfe(self, ts: torch.Tensor) -> int:
        """Model calls for a whole grid ``ts``; the default is ``calls_per_step`` per step."""
        return self.calls_per_step * (len(ts) - 1)

    def steps_for_nfe(self, budget: int, ends_at_zero: bool) -> int:
        """The most steps whose :meth:`nfe` fits in ``budget`` (at least 1)."""
        def probe(n: int) -> torch.Tensor:
            return torch.linspace(1.0, 0.0 if ends_at_zero else 0.5, n + 1, dtype=torch.float64)

        steps = 1
        while self.nfe(probe(steps + 1)) <= budget:
            steps += 1
        return steps

    def options(self) -> dict[str, Any]:
        """The hyperparameters as a dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    # ------------------------------------------------------------------ the interface
    def init(self, problem, ts: list[float], x: torch.Tensor) -> Any:
        """Initial solver state (``None`` for single-step methods).

        ``ts`` is the whole grid, so that a solver can precompute its coefficients once (no per-step
        coefficient work) and a multistep method knows where its final lower-order steps fall.
        """
        return None

    @abstractmethod
    def step(self, problem, t0: float, t1: float, x: torch.Tensor, state: Any, noise) -> StepResult:
        """Advance ``x`` from ``t0`` to ``t1``."""


_REGISTRY: dict[str, type[Solver]] = {}


def register(cls: type[Solver]) -> type[Solver]:
    """Class decorator: add a solver to the registry under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a non-empty class attribute `name` to be registered")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"a solver named {cls.name!r} is already registered ({_REGISTRY[cls.name].__name__})")
    _REGISTRY[cls.name] = cls
    return cls


def available() -> list[str]:
    """Names of the registered solvers, sorted."""
    return sorted(_REGISTRY)


def registry() -> dict[str, type[Solver]]:
    """A copy of the name -> class registry."""
    return dict(_REGISTRY)


def get(solver: "str | Solver", **options: Any) -> Solver:
    """A configured solver from a name and options, or a solver object as it is."""
    if isinstance(solver, Solver):
        if options:
            raise ValueError("solver options can only be given with a solver name, not a solver object")
        return solver
    if not isinstance(solver, str) or solver not in _REGISTRY:
        raise ValueError(f"unknown solver {solver!r}; expected one of {available()} or a Solver object")
    try:
        return _REGISTRY[solver](**options)
    except TypeError as err:
        names = [f.name for f in fields(_REGISTRY[solver])]
        raise ValueError(f"bad options {options} for solver {solver!r}; it accepts {names}") from err
