"""Restart sampling (Xu et al. 2023): deterministic Heun steps with restarts that re-inject noise."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch

from .._utils import check_int, check_positive
from ..grids.schedules import Karras
from .base import Solver, StepResult, register
from .euler import drift_and_x0

__all__ = ["Restart"]


class RestartState(NamedTuple):
    i: int
    land: int  # grid index where restarts happen
    sub: tuple[float, ...]  # the restart interval's backward grid (times), from t_max down to the landing time
    t_max: float


def _heun(problem, ta: float, tb: float, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    h = tb - ta
    d0, x0 = drift_and_x0(problem, ta, x)
    xe = x + h * d0
    if not problem.can_evaluate(tb):
        return xe, x0
    d1, _ = drift_and_x0(problem, tb, xe)
    return x + (0.5 * h) * (d0 + d1), x0


@register
@dataclass(frozen=True)
class Restart(Solver):
    r"""Restart sampling (Xu, Deng, Tian, Li, Jaakkola & Lin 2023, "Restart sampling for improving
    generative processes", Algorithm 1) with EDM's Heun steps on the probability-flow ODE.

    The main pass is Heun along the grid. On reaching the grid time ``t_land`` whose noise level is
    closest to ``restart_min`` (the grid is never rewritten), it restarts ``k`` times: jump forward
    to the noise level ``restart_max`` by adding noise, in ``y = x/alpha``:
    ``y <- y + sqrt(rho_max^2 - rho_land^2) z`` (the forward process's transition), then solve the
    ODE back to ``t_land`` with ``restart_steps`` Heun steps on a Karras grid. ``z`` comes from the
    seed's Brownian path (sub-increments of the landing step). Model calls: Heun's ``2n - 1`` plus
    ``2 k restart_steps``.
    """

    name = "restart"
    needs = "denoiser"
    calls_per_step = 2
    stochastic = True
    description = "Restart sampling (Xu et al. 2023): Heun ODE + noise-injecting restarts"

    restart_min: float = 0.06
    restart_max: float = 0.30
    k: int = 2
    restart_steps: int = 3

    def __post_init__(self) -> None:
        check_positive(self.restart_min, "restart_min")
        check_positive(self.restart_max, "restart_max")
        if self.restart_max <= self.restart_min:
            raise ValueError(f"restart_max must exceed restart_min; got {self.restart_min}, {self.restart_max}")
        check_int(self.k, "k", minimum=0)
        check_int(self.restart_steps, "restart_steps")

    def stochasticity(self) -> float:
        return 0.0

    def nfe(self, ts) -> int:
        n = len(ts) - 1
        heun = 2 * n - 1 if float(ts[-1]) == 0.0 else 2 * n
        return heun + 2 * self.k * self.restart_steps

    def init(self, problem, ts, x):
        p = problem.process
        rho = p.noise_level(torch.tensor(ts, dtype=torch.float64))
        inner = [j for j in range(1, len(ts)) if ts[j] > 0]
        land = min(inner, key=lambda j: abs(math.log(float(rho[j]) / self.restart_min))) if inner else len(ts)
        t_max = float(p.t_from_noise_level(torch.tensor(min(self.restart_max, float(p.noise_level(p.T))), dtype=torch.float64)))
        sub: tuple[float, ...] = ()
        if land < len(ts) and t_max > ts[land]:
            grid = Karras(t_max=t_max, t_min=ts[land], to_zero=False)(p, self.restart_steps)
            sub = tuple(float(v) for v in grid)
        return RestartState(0, land, sub, t_max)

    def step(self, problem, t0, t1, x, state, noise):
        x, x0 = _heun(problem, t0, t1, x)
        if state.i + 1 == state.land and state.sub and self.k > 0:
            p = problem.process
            a_land, a_max = float(p.alpha(t1)), float(p.alpha(state.t_max))
            r_land, r_max = float(p.noise_level(t1)), float(p.noise_level(state.t_max))
            jump = math.sqrt(max(r_max * r_max - r_land * r_land, 0.0))
            knots = [t0 + (t1 - t0) * j / self.k for j in range(self.k + 1)]
            for j in range(self.k):
                z = noise(knots[j], knots[j + 1]) / math.sqrt(abs(knots[j + 1] - knots[j]))
                x = a_max * (x / a_land + jump * z)  # forward jump to rho_max
                for ta, tb in zip(state.sub[:-1], state.sub[1:]):
                    x, _ = _heun(problem, ta, tb, x)
        return StepResult(x, state._replace(i=state.i + 1), x0)
