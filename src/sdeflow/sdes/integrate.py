"""``sdeint`` and ``odeint``: solve an SDE or ODE on a time grid, fixed or adaptive steps.

``sdeint`` takes a sdeflow :class:`~sdeflow.sdes.SDE` or, unchanged, a torchsde-style object
(:mod:`sdeflow.sdes.adapter`), and torchsde's method names; ``odeint`` follows torchdiffeq's calling
convention. Both run the registered solvers through their one interface (``init``/``step``;
``step_with_error`` for adaptive steps): nothing here knows a method's formula.

Fixed steps run on the grid ``t0 + k dt`` merged with the output times (never ``t += dt``); the
Brownian motion is a :class:`~sdeflow.noise.BrownianPath` on that grid unless ``bm`` is given.
Adaptive steps use the method's embedded error estimate and a PI step-size controller
(Gustafsson 1991; Hairer & Wanner, "Solving ODEs II", IV.2) on a
:class:`~sdeflow.noise.BrownianTree`, which gives the same path whatever steps are tried or rejected
(rejection sampling with memory comes for free: a rejected step's Brownian bridge is kept).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterator, Sequence

import torch

from .._utils import check_state
from ..solvers._sde import check_method, structure
from ..solvers.base import Solver, get as get_solver
from .adapter import ODEFunction, as_sde
from .base import SDE

__all__ = ["sdeint", "odeint", "iterate", "resolve_method", "SDE_ALIASES", "ODE_ALIASES"]

SDE_ALIASES = {
    "euler": "euler_maruyama",
    "heun": "heun_sde",
    "midpoint": "midpoint_sde",
    "milstein": "milstein",
    "euler_heun": "euler_heun",
}
"""torchsde's method names and the sdeflow methods they run (``srk`` is resolved by noise type)."""

ODE_ALIASES = {"heun2": "heun", "explicit_euler": "euler", "rk4": "rk4", "dopri5": "dopri5"}
"""torchdiffeq's method names that differ from sdeflow's."""

_SAFETY, _FAC_MIN, _FAC_MAX = 0.9, 0.2, 10.0


def resolve_method(method: str | Solver | None, sde: SDE) -> Solver:
    """The solver for ``method`` (a sdeflow name, a torchsde alias, or a solver object) on ``sde``.

    ``None`` is torchsde's default: ``srk`` for Ito SDEs (``sri2``; ``sra3`` on additive noise;
    Euler-Maruyama on general noise), ``midpoint`` for Stratonovich SDEs.
    """
    if method is None:
        if getattr(sde, "calculus", "ito") == "stratonovich" and structure(sde) != "additive":
            method = "midpoint"
        else:
            method = "srk" if structure(sde) in ("additive", "diagonal", "scalar") else "euler"
    if method == "srk":
        kind = structure(sde)
        method = "sra3" if kind == "additive" else "sri2" if kind in ("diagonal", "scalar") else "srk"
        if method == "srk":
            check_method(get_solver("sri2"), sde)  # raises with the methods that serve
    if isinstance(method, str):
        method = SDE_ALIASES.get(method, method)
    solver = get_solver(method)
    if solver.needs != "sde" or not solver.stochastic:
        raise ValueError(
            f"method {solver.name!r} is not a general SDE method; use one of {sorted(set(SDE_ALIASES) | {'srk'})} "
            "or a registered stochastic method such as 'sri2', 'sra1', 'platen_weak2'"
        )
    check_method(solver, sde)
    return solver


def _as_times(ts: Sequence[float] | torch.Tensor) -> list[float]:
    try:
        tt = torch.as_tensor(ts).detach().to(device="cpu", dtype=torch.float64).reshape(-1)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"ts must be a 1-d tensor or sequence of times; got {ts!r}") from err
    if tt.numel() < 2:
        raise ValueError(f"ts must hold at least 2 times (start and end); got {tt.numel()}")
    if not bool(torch.isfinite(tt).all()) or not bool((tt.diff() > 0).all()):
        raise ValueError(f"ts must be finite and strictly increasing; got {tt.tolist() if tt.numel() < 10 else tt}")
    return tt.tolist()


def step_grid(ts: list[float], dt: float) -> tuple[list[float], list[int]]:
    """The fixed-step grid: ``t0 + k dt`` merged with the output times ``ts``.

    A grid point closer than ``dt / 1000`` to an output time is dropped (no needless tiny steps).
    Returns the grid and the positions of ``ts`` in it.
    """
    t0, t1 = ts[0], ts[-1]
    n = math.ceil((t1 - t0) / dt * (1 - 1e-12))
    base = t0 + dt * torch.arange(1, n, dtype=torch.float64)
    out = torch.tensor(ts, dtype=torch.float64)
    near = torch.searchsorted(out, base).clamp(1, len(ts) - 1)
    gap = torch.minimum((base - out[near - 1]).abs(), (out[near] - base).abs())
    grid = torch.cat((base[gap > 1e-3 * dt], out)).sort().values
    pos = torch.searchsorted(grid, out)
    return grid.tolist(), pos.tolist()


def _default_noise(sde: SDE, solver: Solver, y0: torch.Tensor, grid: list[float] | None, t0: float, t1: float,
                   seed, generator, adaptive: bool):
    from ..noise.path import BrownianPath

    shape = tuple(sde.brownian_shape(y0))
    if seed is None and generator is None:
        raise ValueError(
            f"method {solver.name!r} is stochastic: pass seed=int (or generator=torch.Generator, or bm=a Brownian "
            "object). sdeflow never draws from torch's global random generator; torchsde users who relied on "
            "torch.manual_seed can pass seed=0 (or any int) for a reproducible path"
        )
    if not adaptive:
        return BrownianPath(grid, shape, seed=seed, generator=generator, dtype=y0.dtype, device=y0.device)
    from ..noise.brownian import BrownianTree
    from ..noise.levy import LevyBrownianTree

    tree = BrownianTree if getattr(solver, "levy_area", "none") == "none" else LevyBrownianTree
    return tree(t0, t1, shape, seeds=seed, generator=generator, dtype=y0.dtype, device=y0.device)


def _error_norm(err: torch.Tensor, y: torch.Tensor, y1: torch.Tensor, rtol: float, atol: float, per: str) -> torch.Tensor:
    """RMS of ``err / (atol + rtol max(|y|, |y1|))``: over the batch, or the worst sample's."""
    scale = atol + rtol * torch.maximum(y.detach().abs(), y1.detach().abs())
    ratio = (err.detach() / scale).square()
    if per == "batch":
        return ratio.mean().sqrt()
    return ratio.reshape(ratio.shape[0], -1).mean(dim=1).sqrt().max()


def iterate(
    problem: SDE,
    solver: Solver,
    y0: torch.Tensor,
    ts: list[float],
    noise,
    *,
    dt: float | None,
    adaptive: bool = False,
    rtol: float = 1e-5,
    atol: float = 1e-4,
    dt_min: float = 1e-5,
    error_norm: str = "batch",
    max_steps: int = 10**7,
    order: float = 1.0,
    grid: list[float] | None = None,
    positions: list[int] | None = None,
) -> Iterator[torch.Tensor]:
    """Yield the solution at ``ts[1:]`` one at a time (the streaming core of :func:`sdeint`/:func:`odeint`).

    Fixed steps follow ``grid`` (from :func:`step_grid`); adaptive steps start at ``dt`` and are
    controlled by ``rtol``, ``atol`` through the solver's ``step_with_error``; ``order`` is the
    exponent ``q`` of the controller (the error estimate scales as ``h^q``).
    """
    y = y0
    if not adaptive:
        state = solver.init(problem, list(grid), y)  # the interface: init sees the whole grid
        step = solver.step
        k = 0
        for p in positions[1:]:
            while k < p:
                res = step(problem, grid[k], grid[k + 1], y, state, noise)
                y, state = res.x, res.state
                k += 1
            yield y
        return
    beta1, beta2 = 0.7 / order, 0.4 / order
    t, h, prev, steps = ts[0], dt, 1.0, 0
    state = solver.init(problem, [float(t), float(ts[-1])], y)  # adaptive: only the interval is known
    for t_out in ts[1:]:
        while t < t_out:
            if steps >= max_steps:
                raise RuntimeError(f"adaptive stepping took more than max_steps={max_steps} steps before t = {t_out}")
            t1 = t_out if t + 1.01 * h >= t_out else t + h
            res, err = solver.step_with_error(problem, t, t1, y, state, noise)
            y1, new_state = res.x, res.state
            r = float(_error_norm(err, y, y1, rtol, atol, error_norm)) if err is not None else 0.0
            steps += 1
            if not math.isfinite(r):
                r = 1e10
            taken = t1 - t
            if r <= 1.0 or taken <= dt_min * 1.0000001:
                t, y, state = t1, y1, new_state
                fac = _SAFETY * max(r, 1e-10) ** -beta1 * prev**beta2
                prev = max(r, 1e-4)
            else:
                fac = _SAFETY * r ** (-1.0 / order)
            h = max(dt_min, taken * min(_FAC_MAX, max(_FAC_MIN, fac)))
        yield y


def _check_tolerances(rtol: float, atol: float, dt_min: float) -> None:
    for name, v in (("rtol", rtol), ("atol", atol), ("dt_min", dt_min)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ValueError(f"{name} must be a finite number >= 0; got {v!r}")
    if rtol == 0 and atol == 0:
        raise ValueError("rtol and atol cannot both be 0 (the error scale would vanish)")


def sdeint(
    sde: SDE | Any,
    y0: torch.Tensor,
    ts: Sequence[float] | torch.Tensor,
    bm: Callable | None = None,
    *,
    method: str | Solver | None = None,
    dt: float = 1e-3,
    adaptive: bool = False,
    rtol: float = 1e-5,
    atol: float = 1e-4,
    dt_min: float = 1e-5,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    error_norm: str = "batch",
    names: dict[str, str] | None = None,
    max_steps: int = 10**7,
) -> torch.Tensor:
    r"""Solve ``dy = f(t, y) dt + G(t, y) dW`` and return ``y`` at every time of ``ts``.

    Args:
        sde: a sdeflow :class:`~sdeflow.sdes.SDE`, or a torchsde-style object (``f``, ``g``,
            ``noise_type``, ``sde_type``), used unchanged.
        y0: the initial state ``(batch, *event_shape)`` (``(batch, d)`` for torchsde-style objects).
        ts: strictly increasing output times; ``ts[0]`` is the initial time.
        bm: a Brownian object ``bm(ta, tb) -> W(tb) - W(ta)`` (sdeflow's or torchsde's); by default a
            :class:`~sdeflow.noise.BrownianPath` (fixed steps) or a
            :class:`~sdeflow.noise.BrownianTree` (adaptive), seeded by ``seed`` or ``generator``.
        method: a registered method name (``sdeflow.solvers.available()``), a torchsde name
            (``euler``, ``milstein``, ``srk``, ``heun``, ``euler_heun``, ``midpoint``) or a solver
            object; default ``srk`` for Ito and ``midpoint`` for Stratonovich SDEs (torchsde's). A
            method that cannot integrate the SDE's noise or calculus raises a ValueError naming those
            that can.
        dt: the step (fixed), or the first step (adaptive).
        adaptive: adaptive steps from the method's embedded error estimate (methods with
            ``error_estimate = True``: milstein, the Stratonovich Runge-Kutta methods, the SRK family,
            platen_weak2) and a PI controller on ``rtol``, ``atol``, never below ``dt_min``.
        seed, generator: the source of the default Brownian motion (one is required without ``bm``).
        error_norm: ``"batch"`` (RMS over the whole batch) or ``"sample"`` (every sample's RMS
            error within tolerance: the worst sample decides).
        names: torchsde's renaming of ``f``/``g`` (keys ``drift``, ``diffusion``).
        max_steps: a bound on the adaptive steps.

    Returns:
        ``(len(ts), *y0.shape)``: ``y`` at each time of ``ts`` (the first is ``y0``). Gradients
        flow through the whole solve (pathwise sensitivities) when ``y0`` or the SDE's parameters
        require them.
    """
    check_state(y0, "y0")
    times = _as_times(ts)
    problem = as_sde(sde, y0, times[0], names)
    solver = resolve_method(method, problem)
    dt = _check_dt(dt, "dt")
    _check_tolerances(rtol, atol, dt_min)
    if error_norm not in ("batch", "sample"):
        raise ValueError(f"error_norm must be 'batch' or 'sample'; got {error_norm!r}")
    grid = positions = None
    if adaptive:
        if not getattr(solver, "error_estimate", False):
            raise ValueError(
                f"method {solver.name!r} has no embedded error estimate for adaptive=True; use 'milstein', 'sri2', "
                "'sra1', 'heun_sde', 'euler_heun', 'midpoint_sde' or 'platen_weak2' (or adaptive=False)"
            )
    else:
        grid, positions = step_grid(times, dt)
    noise = bm if bm is not None else _default_noise(
        problem, solver, y0, grid, times[0], times[-1], seed, generator, adaptive
    )
    order = getattr(solver, "strong_orders", {}).get(structure(problem), solver.strong_order or 1.0)
    out = iterate(problem, solver, y0, times, noise, dt=dt, adaptive=adaptive, rtol=rtol, atol=atol, dt_min=dt_min,
                  error_norm=error_norm, max_steps=max_steps, order=order, grid=grid, positions=positions)
    return torch.stack([y0, *out])


def _check_dt(dt: float, name: str) -> float:
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not math.isfinite(dt) or dt <= 0:
        raise ValueError(f"{name} must be a finite number > 0; got {dt!r}")
    return float(dt)


def odeint(
    func: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | SDE,
    y0: torch.Tensor,
    t: Sequence[float] | torch.Tensor,
    rtol: float = 1e-7,
    atol: float = 1e-9,
    method: str | Solver | None = None,
    options: dict[str, Any] | None = None,
) -> torch.Tensor:
    r"""Solve ``dy/dt = func(t, y)`` in torchdiffeq's calling convention; returns ``(len(t), *y0.shape)``.

    Args:
        func: ``func(t, y) -> dy/dt`` (``t`` a 0-d tensor), or a sdeflow SDE whose drift is used.
        y0: the initial state (any shape; a leading batch dimension is not required).
        t: strictly increasing output times.
        rtol, atol: tolerances of the adaptive method (``dopri5``: Dormand-Prince 5(4)).
        method: ``dopri5`` (default, adaptive), or fixed-step ``euler``, ``midpoint``, ``heun``
            (``heun2``), ``rk4``, or any registered deterministic solver.
        options: ``{"step_size": h}`` for the fixed-step methods (default: the output grid
            itself), ``{"first_step": h, "max_num_steps": n}`` for dopri5.
    """
    if not isinstance(y0, torch.Tensor) or not y0.is_floating_point():
        raise TypeError(f"y0 must be a floating-point tensor; got {type(y0).__name__}")
    times = _as_times(t)
    options = dict(options or {})
    method = "dopri5" if method is None else method
    if isinstance(method, str):
        method = ODE_ALIASES.get(method, method)
    solver = get_solver(method)
    if solver.stochastic or solver.ode_order is None:
        raise ValueError(f"method {solver.name!r} is not an ODE method; use dopri5, euler, midpoint, heun or rk4")
    problem = func if isinstance(func, SDE) else ODEFunction(func, y0)
    adaptive = getattr(solver.table, "b_err", None) is not None if hasattr(solver, "table") else False
    known = {"step_size", "first_step", "max_num_steps", "dt_min"}
    if set(options) - known:
        raise ValueError(f"unknown options {sorted(set(options) - known)}; odeint accepts {sorted(known)}")
    _check_tolerances(rtol, atol, 0.0)
    if adaptive:
        span = times[-1] - times[0]
        first = _check_dt(options.get("first_step", span / 100), "options['first_step']")
        order = solver.table.error_order + 1
        out = iterate(problem, solver, y0, times, None, dt=first, adaptive=True, rtol=rtol, atol=atol,
                      dt_min=float(options.get("dt_min", 0.0)), max_steps=int(options.get("max_num_steps", 10**6)),
                      order=order)
    else:
        if "step_size" in options:
            grid, positions = step_grid(times, _check_dt(options["step_size"], "options['step_size']"))
        else:
            grid, positions = times, list(range(len(times)))
        out = iterate(problem, solver, y0, times, None, dt=None, grid=grid, positions=positions)
    return torch.stack([y0, *out])
