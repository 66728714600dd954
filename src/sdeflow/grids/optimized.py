"""Solver-aware time grids: noise levels optimized for a solver and a step count.

In the spirit of Align Your Steps (Sabour, Fidler & Kreis 2024), the grid is tuned for the solver
that will use it: for a solver and a number of steps, the interior noise levels
``rho_1 > ... > rho_{n-1}`` (``rho = sigma/alpha``; the grid is ``T = rho_0 -> rho_1 -> ... ->
rho_{n-1} -> 0``) minimize the distance of the sampler's output to the exact probability-flow ODE
solution from the same noise, on exact-score Gaussian-mixture targets (:mod:`sdeflow.targets`):

    ``J = log RMS_i ||x_i - x_i^*|| + w log median_i ||x_i - x_i^*||``

over training noise draws (never the benchmark's). The optimizer is Nelder-Mead on the log gaps
``log(log rho_{j-1} - log rho_j)`` (the grid stays strictly decreasing), started from the Karras
grid and from the optimized grid of the previous step count.

Shipped grids live in ``optimized_grids.json`` next to this module; ``benchmarks/optimize_grids.py``
regenerates them. A stored grid was optimized on the EDM range (noise 80 down to the final level);
on another process the interior noise levels are used as they are (the ODE in ``(x/alpha, rho)`` does
not depend on the process) when they fit inside its range ``(rho(t_min), rho(T))``, else mapped
linearly in log onto that range; a level below ``rho(t_min)`` is raised to it (a model is trained down
to ``t_min``, not below); and a step count that is not stored is interpolated log-linearly from the nearest stored one, as
Align Your Steps does.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .base import TimeGrid, validate_ts

__all__ = ["OptimizedGrid", "available_optimized", "grid_objective", "optimize_grid", "load_table"]

_DATA = Path(__file__).with_name("optimized_grids.json")


@lru_cache(maxsize=1)
def load_table() -> dict[str, Any]:
    """The shipped table: ``{"entries": [{"family", "solver", "options", "steps", "levels", "rho_max", ...}]}``."""
    if not _DATA.exists():
        return {"entries": []}
    return json.loads(_DATA.read_text())


def _key(solver: str, options: dict[str, Any]) -> str:
    return solver + "".join(f",{k}={options[k]}" for k in sorted(options))


def available_optimized() -> dict[str, list[int]]:
    """``"family/solver,options" -> [step counts]`` of the shipped grids."""
    out: dict[str, list[int]] = {}
    for e in load_table()["entries"]:
        out.setdefault(f"{e['family']}/{_key(e['solver'], e['options'])}", []).append(int(e["steps"]))
    return {k: sorted(v) for k, v in out.items()}


def _interpolate(levels: Sequence[float], steps: int) -> list[float]:
    """Log-linear resampling of ``[rho_0, ..., rho_{m-1}]`` (positive levels) to ``steps`` levels."""
    logs = np.log(np.asarray(levels, dtype=np.float64))
    u_old = np.linspace(0.0, 1.0, len(logs))
    u_new = np.linspace(0.0, 1.0, steps)
    return list(np.exp(np.interp(u_new, u_old, logs)))


@dataclass(frozen=True)
class OptimizedGrid(TimeGrid):
    """A shipped solver-aware grid: ``OptimizedGrid("ipndm", order=3)`` or ``family="ring2d"``.

    ``family`` names the training targets (``"default"``: the mixture of targets the default
    configuration was tuned on; ``"ring2d"``, ``"mixture64d"``: one target each). ``steps`` is the
    number of steps, so a grid ends ``... -> rho_{steps-1} -> 0`` (the final denoising step).
    Solver options given here must agree with the stored ones where both name them (``order``...).
    A grid of another step count is interpolated log-linearly from the nearest stored one.
    """

    solver: str = "ipndm"
    family: str = "default"
    options: tuple = ()
    t_max: float | None = None
    t_min: float | None = None
    to_zero: bool = True

    def __init__(self, solver: str = "ipndm", family: str = "default", t_max: float | None = None,
                 t_min: float | None = None, **options: Any) -> None:
        object.__setattr__(self, "solver", solver)
        object.__setattr__(self, "family", family)
        object.__setattr__(self, "options", tuple(sorted(options.items())))
        object.__setattr__(self, "t_max", t_max)
        object.__setattr__(self, "t_min", t_min)
        object.__setattr__(self, "to_zero", True)
        if not self._entries():
            raise ValueError(
                f"no optimized grid is stored for solver {_key(solver, options)!r} and family {family!r}; "
                f"stored: {sorted(available_optimized())} (regenerate with benchmarks/optimize_grids.py)"
            )

    def _entries(self) -> dict[int, dict[str, Any]]:
        given = dict(self.options)
        out = {}
        for e in load_table()["entries"]:
            if e["family"] != self.family or e["solver"] != self.solver:
                continue
            if all(given[k] == v for k, v in e["options"].items() if k in given):
                out.setdefault(int(e["steps"]), e)
        return out

    def _rho_min(self) -> float:
        return float(next(iter(self._entries().values())).get("rho_min", 0.002))

    def levels(self, steps: int) -> list[float]:
        """The stored (or interpolated) positive noise levels ``rho_0 .. rho_{steps-1}`` for ``steps`` steps."""
        entries = self._entries()
        if steps in entries:
            e = entries[steps]
            return [float(e["rho_max"])] + [float(v) for v in e["levels"]]
        nearest = min(entries, key=lambda m: (abs(m - steps), -m))
        e = entries[nearest]
        return _interpolate([float(e["rho_max"])] + [float(v) for v in e["levels"]], steps)

    def _interior(self, process, t_max, t_min, n):
        levels = np.asarray(self.levels(n), dtype=np.float64)
        lo, hi = float(process.noise_level(t_min)), float(process.noise_level(t_max))
        if not math.isfinite(hi):
            raise ValueError("OptimizedGrid needs a finite noise level at t_max; start the grid below T")
        # The probability-flow ODE in (x/alpha, rho) is the same on every process, so the stored
        # interior levels are used as they are whenever they fit strictly inside this process's
        # range; only the first level becomes the process's own start. Levels that do not fit are
        # mapped linearly in log onto [rho(t_min), rho(t_max)] instead.
        interior = levels[1:]
        if not (bool((interior < hi).all()) and bool((interior > lo).all())):
            stored_hi, stored_lo = math.log(levels[0]), math.log(self._rho_min())
            logs = np.log(interior)
            interior = np.exp(math.log(lo) + (logs - stored_lo) * (math.log(hi) - math.log(lo)) / (stored_hi - stored_lo))
        # A level below rho(t_min) (the optimizer may push the last one past the trained range) is
        # raised to it; a tail that this makes equal is spread geometrically down to rho(t_min).
        below = np.nonzero(interior <= lo)[0]
        if below.size:
            k = int(below[0])
            top = interior[k - 1] if k > 0 else hi
            interior = np.concatenate([interior[:k], np.geomspace(top, lo, len(interior) - k + 1)[1:]])
        mapped = np.concatenate([[hi], interior])
        return process.t_from_noise_level(torch.as_tensor(mapped, dtype=torch.float64))

    def __call__(self, process, steps: int) -> torch.Tensor:
        if steps == 1:
            return super().__call__(process, steps)
        t_max = float(process.T if self.t_max is None else self.t_max)
        t_min = float(process.t_min if self.t_min is None else self.t_min)
        ts = torch.cat([self._interior(process, t_max, t_min, steps), torch.zeros(1, dtype=torch.float64)])
        ts[0] = t_max
        return validate_ts(ts, process, name="OptimizedGrid")


# ------------------------------------------------------------------------------------------ optimizer
def _levels_from_gaps(rho_max: float, q: np.ndarray) -> list[float]:
    """Levels ``rho_1 > ... `` from log gaps: ``log rho_j = log rho_max - sum_{k<=j} e^{q_k}``."""
    logs = math.log(rho_max) - np.cumsum(np.exp(q))
    return list(np.exp(logs))


def _gaps_from_knots(knots: np.ndarray, n: int) -> np.ndarray:
    """``n`` log gaps from a piecewise-linear profile through ``len(knots)`` values at equally spaced positions."""
    return np.interp(np.linspace(0.0, 1.0, n), np.linspace(0.0, 1.0, len(knots)), knots)


def grid_objective(samples: Sequence[torch.Tensor], references: Sequence[torch.Tensor], median_weight: float = 0.3,
                   weights: Sequence[float] | None = None) -> float:
    """``sum over targets of v_i (log RMS_i ||x_i - x_i^*|| + w log median_i ||x_i - x_i^*||)`` (inf if not
    finite), with target weights ``v_i`` (default 1)."""
    total = 0.0
    weights = [1.0] * len(samples) if weights is None else list(weights)
    if len(weights) != len(samples):
        raise ValueError(f"weights must give one weight per target ({len(samples)}); got {len(weights)}")
    for x, ref, v in zip(samples, references, weights):
        d = (x - ref).flatten(1).norm(dim=1).double()
        if not bool(torch.isfinite(d).all()):
            return math.inf
        total += v * (math.log(float(d.pow(2).mean().sqrt()) + 1e-300) + median_weight * math.log(float(d.median()) + 1e-300))
    return total


def optimize_grid(
    run: Callable[..., Sequence[torch.Tensor]],
    references: Sequence[torch.Tensor],
    rho_max: float,
    init_levels: Sequence[float],
    *,
    median_weight: float = 0.3,
    max_iter: int = 2000,
    knots: int | None = None,
    to_time: Callable[[list[float]], torch.Tensor] | None = None,
    init_extra: Sequence[float] | None = None,
    weights: Sequence[float] | None = None,
) -> tuple[list[float], float] | tuple[list[float], list[float], float]:
    """Nelder-Mead on the log gaps of the noise levels; returns ``(levels rho_1..rho_{n-1}, J)``.

    Args:
        run: ``ts -> [samples per target]``: the sampler on a grid ``ts`` (float64, decreasing, ending
            at 0); ``(ts, extra) -> [...]`` when ``init_extra`` is given.
        references: the exact ODE solutions of the same noise, one ``(n, *event)`` tensor per target.
        rho_max: the first noise level (kept fixed).
        init_levels: the starting interior levels ``rho_1 > ... > rho_{n-1} > 0``.
        median_weight: ``w`` in :func:`grid_objective`.
        max_iter: Nelder-Mead iterations (per phase).
        knots: optimize a piecewise-linear profile of the log gaps through this many values first
            (a low-dimensional search that scales to many steps), then every gap.
        to_time: levels -> times (default: the levels themselves, as on the EDM process).
        init_extra: solver parameters optimized jointly with the grid (e.g. the coefficients of
            ``tuned_ab``); then the result is ``(levels, extra, J)``.
        weights: per-target weights of the objective (:func:`grid_objective`).

    Needs scipy (a development dependency; the shipped grids do not).
    """
    from scipy.optimize import minimize

    init = np.log(np.asarray([rho_max] + list(init_levels), dtype=np.float64))
    q0 = np.log(-np.diff(init))
    n = len(q0)
    extra0 = None if init_extra is None else np.asarray(init_extra, dtype=np.float64)

    def objective(q: np.ndarray, extra: np.ndarray | None = None) -> float:
        levels = [rho_max] + _levels_from_gaps(rho_max, q)
        times = to_time(levels) if to_time else torch.tensor(levels, dtype=torch.float64)
        ts = torch.cat([times.to(torch.float64), torch.zeros(1, dtype=torch.float64)])
        if not bool((ts[1:] < ts[:-1]).all()) or not bool((ts[:-1] > 0).all()):
            return 1e6
        try:
            samples = run(ts) if extra is None else run(ts, list(extra))
            value = grid_objective(samples, references, median_weight, weights)
        except (ValueError, RuntimeError, FloatingPointError):
            return 1e6
        return value if math.isfinite(value) else 1e6

    def nm(fun, x0, iters):
        res = minimize(fun, x0, method="Nelder-Mead", options={"maxiter": iters, "xatol": 1e-5, "fatol": 1e-7, "adaptive": True})
        return res.x, float(res.fun)

    best_q, best = q0, objective(q0, extra0)
    if knots is not None and knots < n:
        k0 = np.interp(np.linspace(0.0, 1.0, knots), np.linspace(0.0, 1.0, n), q0)
        kq, kv = nm(lambda k: objective(_gaps_from_knots(k, n), extra0), k0, max_iter)
        if kv < best:
            best_q, best = _gaps_from_knots(kq, n), kv
    if extra0 is None:
        q, v = nm(objective, best_q, max_iter)
        if v < best:
            best_q, best = q, v
        return _levels_from_gaps(rho_max, best_q), best
    # Grid and solver parameters together, two restarts of the simplex (it collapses in many dimensions).
    z = np.concatenate([best_q, extra0])
    for _ in range(2):
        z2, v = nm(lambda w: objective(w[:n], w[n:]), z, max_iter)
        if v < best:
            z, best = z2, v
    return _levels_from_gaps(rho_max, z[:n]), [float(v) for v in z[n:]], best
