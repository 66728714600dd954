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
import warnings
from typing import Any, Callable, Iterator, Sequence

import torch

from .._utils import check_state
from ..solvers._sde import check_method, structure
from ..solvers.base import Solver, get as get_solver
from .._utils import check_int
from ._checks import FirstSteps, check_finite_end, check_finite_start, function_names
from ._noise import RowsOf, SampleBrownianPath
from .adapter import LogqpSDE, ODEFunction, as_sde, torchsde_methods
from .base import CALCULI, NOISE_TYPES, SDE

__all__ = ["sdeint", "odeint", "TORCHSDE_METHODS", "METHOD_OPTIONS", "iterate", "resolve_method", "SDE_ALIASES", "ODE_ALIASES", "MAX_FIXED_STEPS"]

SDE_ALIASES = {
    "euler": "euler_maruyama",
    "reversible_heun": "reversible_heun",
    "log_ode": "log_ode",
    "heun": "heun_sde",
    "midpoint": "midpoint_sde",
    "milstein": "milstein",
    "euler_heun": "euler_heun",
}
"""torchsde's method names and the sdeflow methods they run (``srk`` is resolved by noise type)."""

ODE_ALIASES = {"heun2": "heun", "explicit_euler": "euler", "rk4": "rk4", "dopri5": "dopri5"}
"""torchdiffeq's method names that differ from sdeflow's."""

_SAFETY, _FAC_MIN, _FAC_MAX = 0.9, 0.2, 10.0


def _get_method(method: Any, names: list[str]) -> Solver:
    """``method`` (a registered name or a Solver object) as a solver; errors name ``method``."""
    if not isinstance(method, (str, Solver)):
        raise TypeError(
            f"method must be a method name (e.g. {names[0]!r}) or a sdeflow Solver; got {type(method).__name__} {method!r}"
        )
    try:
        return get_solver(method)
    except ValueError as err:
        raise ValueError(f"method {method!r}: {err} (shortcuts: {names})") from err


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
    solver = _get_method(method, sorted(set(SDE_ALIASES) | {"srk"}))
    if solver.needs != "sde" or not solver.stochastic:
        raise ValueError(
            f"method {solver.name!r} is not a general SDE method; use one of {sorted(set(SDE_ALIASES) | {'srk'})} "
            "or a registered stochastic method such as 'sri2', 'sra1', 'platen_weak2'"
        )
    check_method(solver, sde)
    return solver


def _as_times(ts: Sequence[float] | torch.Tensor, name: str = "ts") -> list[float]:
    if isinstance(ts, (str, bytes)):
        raise TypeError(f"{name} must be a 1-d tensor or sequence of times; got {ts!r}")
    try:
        tt = torch.as_tensor(ts).detach()
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{name} must be a 1-d tensor or sequence of times; got {ts!r}") from err
    if tt.is_complex() or tt.dtype == torch.bool:
        raise TypeError(f"{name} must hold real times; got dtype {tt.dtype}")
    if tt.ndim > 1:
        raise ValueError(
            f"{name} must be 1-d (one grid of output times shared by the batch); got shape {tuple(tt.shape)}. "
            f"Solve each grid separately (a 2-d {name} is not flattened)"
        )
    tt = tt.to(device="cpu", dtype=torch.float64).reshape(-1)
    if tt.numel() < 2:
        raise ValueError(f"{name} must hold at least 2 times (start and end); got {tt.numel()}")
    if not bool(torch.isfinite(tt).all()) or not bool((tt.diff() > 0).all()):
        raise ValueError(f"{name} must be finite and strictly increasing; got {tt.tolist() if tt.numel() < 10 else tt}")
    return tt.tolist()


def step_grid(ts: list[float], dt: float, max_steps: int | None = None, name: str = "dt") -> tuple[list[float], list[int]]:
    """The fixed-step grid: ``t0 + k dt`` merged with the output times ``ts``.

    A grid point closer than ``dt / 1000`` to an output time is dropped (no needless tiny steps).
    Returns the grid and the positions of ``ts`` in it. A grid of more than ``max_steps`` steps is
    refused before anything is allocated (its times are held as lists: about 200 bytes a step
    with the Brownian path's tables, measured).
    """
    t0, t1 = ts[0], ts[-1]
    n = math.ceil((t1 - t0) / dt * (1 - 1e-12))
    if max_steps is not None and n + len(ts) - 2 > max_steps:
        raise ValueError(
            f"{name} = {dt:g} on [{t0:g}, {t1:g}] gives {n} fixed steps, above max_steps = {max_steps} (each step "
            f"time is held in memory with the Brownian path's tables, ~200 bytes a step: {n * 200 / 2**30:.3g} GiB here); use a larger {name}, "
            "adaptive steps, or raise max_steps if that memory and time are intended"
        )
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
        seed = _global_seed()  # torchsde's default (sdeint draws it once, before this)
    if getattr(solver, "levy_area_general", False) and structure(sde) == "general":
        # log_ode on general noise: Levy areas by Foster's approximation from the space-time area
        from ..solvers.log_ode import FosterArea

        area_seed = int(torch.randint(0, 2**62, (1,), generator=generator).item()) if seed is None else seed
        if generator is not None:
            seed, generator = area_seed, None
        path = (BrownianPath(grid, shape, seed=seed, dtype=y0.dtype, device=y0.device) if not adaptive else
                _tree(True, t0, t1, shape, seed, None, y0))
        return FosterArea(path, area_seed)
    if not adaptive:
        return BrownianPath(grid, shape, seed=seed, generator=generator, dtype=y0.dtype, device=y0.device)
    return _tree(getattr(solver, "levy_area", "none") != "none", t0, t1, shape, seed, generator, y0)


def _tree(levy: bool, t0: float, t1: float, shape, seed, generator, y0: torch.Tensor):
    from ..noise.brownian import BrownianTree
    from ..noise.levy import LevyBrownianTree

    tree = LevyBrownianTree if levy else BrownianTree
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
    label: str = "sdeint",
    state0: Any = None,
    final: dict | None = None,
) -> Iterator[torch.Tensor]:
    """Yield the solution at ``ts[1:]`` one at a time (the streaming core of :func:`sdeint`/:func:`odeint`).

    Fixed steps follow ``grid`` (from :func:`step_grid`); adaptive steps start at ``dt`` and are
    controlled by ``rtol``, ``atol`` through the solver's ``step_with_error``; ``order`` is the
    exponent ``q`` of the controller (the error estimate scales as ``h^q``).

    The first steps (two fixed steps, or the first adaptive attempt) run on a
    :class:`~sdeflow.sdes._checks.FirstSteps` view of ``problem``: the drift's and diffusion's
    outputs are checked against the state's shape and dtype at their first call (a ValueError
    naming the function, the expected and the received shapes), and a fixed step far beyond the
    stability limit of explicit methods gives a RuntimeWarning naming ``dt``. The other steps call
    ``problem`` directly. An adaptive step whose error estimate is not finite is retried smaller;
    where the drift itself is not finite at an accepted (finite) state, or no smaller step helps,
    a FloatingPointError names the function and the time (no spinning until ``max_steps``).
    ``label`` names the entry point in messages.

    ``state0`` replaces the solver's initial state (torchsde's ``extra_solver_state``); ``final``, a
    dict, receives the solver state after the last step (``final["state"]``) and, for adaptive steps,
    the accepted step times (``final["times"]``). A method without an embedded error estimate steps
    adaptively by step doubling (torchsde's rule): the error is the difference between one step of
    ``h`` and two of ``h / 2``, and the two half steps are kept.
    """
    y = y0
    probe = FirstSteps(problem, label)
    if not adaptive:
        state = solver.init(problem, list(grid), y)  # the interface: init sees the whole grid
        if state0 is not None:
            state = state0
        step = solver.step
        targets = positions[1:]
        k, j = 0, 0
        n_probe = min(2, len(grid) - 1)
        checked_noise = probe.checked_noise(noise, y0)
        while k < n_probe:  # the checked first steps
            res = step(probe, grid[k], grid[k + 1], y, state, checked_noise)
            if k == 0:
                probe.check_step(y0, res.x, solver.name)
            y, state = res.x, res.state
            k += 1
            if k == targets[j]:
                yield y
                j += 1
        probe.warn_if_stiff(y, max(b - a for a, b in zip(grid[:n_probe], grid[1 : n_probe + 1])), solver.name)
        del probe
        for p in targets[j:]:
            while k < p:
                res = step(problem, grid[k], grid[k + 1], y, state, noise)
                y, state = res.x, res.state
                k += 1
            yield y
        if final is not None:
            final["state"] = state
        return
    beta1, beta2 = 0.7 / order, 0.4 / order
    t, h, prev, steps, bad = ts[0], dt, 1.0, 0, 0
    span = abs(ts[-1] - ts[0])
    state = solver.init(problem, [float(t), float(ts[-1])], y)  # adaptive: only the interval is known
    if state0 is not None:
        state = state0
    current = probe
    embedded = getattr(solver, "error_estimate", False)
    accepted = [float(t)] if final is not None else None
    for t_out in ts[1:]:
        while t < t_out:
            if steps >= max_steps:
                raise RuntimeError(f"adaptive stepping took more than max_steps={max_steps} steps before t = {t_out}")
            t1 = t_out if t + 1.01 * h >= t_out else t + h
            bm_now = noise if current is problem else probe.checked_noise(noise, y0)
            if embedded:
                res, err, mid = *solver.step_with_error(current, t, t1, y, state, bm_now), None
            else:  # step doubling: one step of h against two of h / 2
                mid = t + 0.5 * (t1 - t)
                whole = solver.step(current, t, t1, y, state, bm_now)
                half = solver.step(current, t, mid, y, state, bm_now)
                res = solver.step(current, mid, t1, half.x, half.state, bm_now)
                err = res.x - whole.x
            if current is probe:
                probe.check_step(y0, res.x, solver.name)
                current = problem
            y1, new_state = res.x, res.state
            r = float(_error_norm(err, y, y1, rtol, atol, error_norm)) if err is not None else 0.0
            steps += 1
            taken = t1 - t
            if not math.isfinite(r):
                bad += 1
                _raise_if_stuck(problem, t, y, taken, bad, dt_min, label, span)
                r = 1e10
            else:
                bad = 0
            if r > 1.0 and taken <= _TINY * max(abs(t), span) and taken > dt_min * 1.0000001:
                raise RuntimeError(
                    f"{label}: the step size fell to {taken:.3g} at t = {t:g}, below what float64 times resolve, "
                    f"with the error still above tolerance (rtol = {rtol:g}, atol = {atol:g}): the solution is "
                    "singular or discontinuous there; check the function near that time, loosen the tolerances or "
                    "end the solve before t"
                )
            if r <= 1.0 or taken <= dt_min * 1.0000001:
                t, y, state = t1, y1, new_state
                if accepted is not None:
                    accepted.extend((mid, t1) if mid is not None else (t1,))
                fac = _SAFETY * max(r, 1e-10) ** -beta1 * prev**beta2
                prev = max(r, 1e-4)
            else:
                fac = _SAFETY * r ** (-1.0 / order)
            h = max(dt_min, taken * min(_FAC_MAX, max(_FAC_MIN, fac)))
        yield y
    if final is not None:
        final["state"], final["times"] = state, accepted


_MAX_NONFINITE = 40
"""Consecutive adaptive steps with a non-finite error estimate before giving up (each one shrinks
the step 5-fold: 40 of them is a factor 1e-28, far below any useful step)."""


_TINY = 1e-13
"""A step below ``_TINY * max(|t|, span)`` cannot make progress in float64 times (~500 ulps)."""


def _raise_if_stuck(problem, t: float, y: torch.Tensor, taken: float, bad: int, dt_min: float, label: str,
                    span: float) -> None:
    """After a non-finite error estimate at ``(t, y)``: raise where no smaller step can help."""
    f_name, _ = function_names(problem)
    if bad == 1:
        # The first time only: is the drift itself non-finite at this (finite) accepted state?
        f = problem.drift(t, y)
        if not bool(torch.isfinite(f).all()):
            raise FloatingPointError(
                f"{label}: {f_name}(t, y) returned NaN or infinite values at t = {t:g} from a finite state y; no step "
                f"size can integrate through that. Check {f_name} near t = {t:g} (divisions by zero, logs or square "
                "roots of values that reach 0 or below, overflow)"
            )
    if bad >= _MAX_NONFINITE or taken <= dt_min * 1.0000001 or taken <= _TINY * max(abs(t), span):
        raise FloatingPointError(
            f"{label}: every step from t = {t:g} gives NaN or infinite values, down to a step of {taken:.3g}; the "
            f"solution leaves the domain of {f_name} (or of the diffusion) just after t = {t:g}. Check the functions "
            "there, or end the solve before t"
        )


def _check_tolerances(rtol: float, atol: float, dt_min: float) -> None:
    for name, v in (("rtol", rtol), ("atol", atol), ("dt_min", dt_min)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ValueError(f"{name} must be a finite number >= 0; got {v!r}")
    if rtol == 0 and atol == 0:
        raise ValueError("rtol and atol cannot both be 0 (the error scale would vanish)")


MAX_FIXED_STEPS = 2**22
"""The default bound on the steps of a fixed-step solve (about 0.8 GiB of step tables, measured:
~200 bytes a step for the grid, the Brownian path's tables and the time tensors)."""

MAX_ADAPTIVE_STEPS = 10**7
"""The default bound on the steps of an adaptive solve (nothing is stored per step)."""


TORCHSDE_METHODS = ("euler", "milstein", "srk", "midpoint", "reversible_heun", "heun", "log_ode", "euler_heun")
"""torchsde's method names (``adjoint_reversible_heun`` is an ``adjoint_method`` only)."""

METHOD_OPTIONS = ("grad_free",)
"""torchsde's ``options`` keys: ``grad_free`` (Milstein without derivatives of ``g``; sdeflow's Milstein
is always derivative-free, so both values run the same method)."""

_EULER_WARNING = (
    "Numerical solution is not guaranteed to converge to the correct solution when using adaptive time-stepping "
    "with the Euler-Maruyama method with non-additive noise (its step-doubling error estimate measures the strong "
    "error of an order-0.5 method); prefer an adaptive method with an embedded estimate such as 'milstein' or 'srk'"
)


def _check_options(options) -> dict[str, Any]:
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise TypeError(f"options must be a dict such as {{'grad_free': True}} or None; got {type(options).__name__}")
    unknown = set(options) - set(METHOD_OPTIONS)
    if unknown:
        raise ValueError(f"unknown options {sorted(unknown)}; sdeint accepts {list(METHOD_OPTIONS)} (torchsde's)")
    if "grad_free" in options and not isinstance(options["grad_free"], bool):
        raise TypeError(f"options['grad_free'] must be a bool; got {options['grad_free']!r}")
    return dict(options)


def _noise_size(bm) -> int | None:
    """The number of Brownian motions of a Brownian object that tells its shape (torchsde's ``bm.shape``)."""
    shape = getattr(bm, "shape", None)
    try:
        return int(shape[-1]) if shape is not None and len(shape) >= 2 else None
    except (TypeError, ValueError):
        return None


class _Setup:
    """What :func:`sdeint` and :func:`~sdeflow.sdes.adjoint.sdeint_adjoint` share: checked arguments, the
    (logqp-augmented) initial state, the problem, the method, the step grid and the default noise."""

    def __init__(self, sde, y0, ts, bm, method, dt, adaptive, rtol, atol, dt_min, options, names, logqp,
                 extra_solver_state, seed, generator, error_norm, max_steps, chunk_size, label):
        check_state(y0, "y0")
        if y0.shape[0] < 1 or y0[0].numel() < 1:
            raise ValueError(
                f"y0 must hold at least one sample of at least one coordinate (batch >= 1, non-empty event shape); "
                f"got shape {tuple(y0.shape)}"
            )
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator; got {type(generator).__name__}")
        self.times = times = _as_times(ts)
        self.dt = dt = _check_dt(dt, "dt")
        _check_tolerances(rtol, atol, dt_min)
        if error_norm not in ("batch", "sample"):
            raise ValueError(f"error_norm must be 'batch' or 'sample'; got {error_norm!r}")
        if bm is not None and not callable(bm):
            raise TypeError(
                f"bm must be a Brownian object bm(ta, tb) -> W(tb) - W(ta) (e.g. sdeflow.noise.BrownianPath) or "
                f"None; got {type(bm).__name__}"
            )
        self.options = _check_options(options)
        if not isinstance(logqp, bool):
            raise TypeError(f"logqp must be a bool; got {logqp!r}")
        if max_steps is None:
            max_steps = MAX_ADAPTIVE_STEPS if adaptive else MAX_FIXED_STEPS
        self.max_steps = check_int(max_steps, "max_steps")
        self.batch = batch = y0.shape[0]
        self.chunk = batch if chunk_size is None else min(check_int(chunk_size, "chunk_size"), batch)
        if chunk_size is not None and extra_solver_state is not None:
            raise ValueError("extra_solver_state cannot be combined with chunk_size (the state is the whole batch's)")
        if adaptive:  # NaN in y0 would make every step's error estimate NaN; fixed steps find it at the end
            check_finite_start(y0, label)
        self.d = None
        if logqp:
            if isinstance(sde, SDE):
                raise ValueError(
                    "logqp=True augments a torchsde-style object with methods f, g and h (the prior drift); got a "
                    f"sdeflow {type(sde).__name__}"
                )
            if y0.ndim != 2:
                raise ValueError(f"logqp=True needs y0 of shape (batch, d); got shape {tuple(y0.shape)}")
            noise_type, sde_type = getattr(sde, "noise_type", None), getattr(sde, "sde_type", None)
            if noise_type not in NOISE_TYPES or sde_type not in CALCULI:
                raise ValueError(f"sde.noise_type must be one of {NOISE_TYPES} and sde.sde_type one of {CALCULI}; got "
                                 f"{noise_type!r}, {sde_type!r}")
            sde = LogqpSDE(torchsde_methods(sde, names), noise_type, sde_type)
            names = None
            self.d = y0.shape[1]
            y0 = torch.cat((y0, y0.new_zeros(batch, 1)), dim=1)
        self.sde, self.names, self.y0 = sde, names, y0
        self.noise_size = _noise_size(bm)
        if method == "adjoint_reversible_heun":
            raise ValueError("'adjoint_reversible_heun' is an adjoint_method of sdeint_adjoint, not a method; use "
                             "method='reversible_heun'")
        self.problem = problem = as_sde(sde, y0[: self.chunk], times[0], names, self.noise_size)
        self.solver = solver = resolve_method(method, problem)
        self.adaptive = adaptive
        self.grid = self.positions = None
        if adaptive:
            if not getattr(solver, "error_estimate", False) and solver.name == "euler_maruyama" \
                    and structure(problem) != "additive":
                warnings.warn(_EULER_WARNING, UserWarning, stacklevel=3)
        else:
            self.grid, self.positions = step_grid(times, dt, self.max_steps)
        self.order = getattr(solver, "strong_orders", {}).get(structure(problem), solver.strong_order or 1.0)
        self.state0 = self._check_state0(extra_solver_state, y0)
        self.bm, self.seed, self.generator = bm, seed, generator
        self.base_seed = None
        if chunk_size is not None and bm is None:
            self.base_seed = _base_seed(seed, generator, solver)
        elif bm is None and seed is None and generator is None:
            self.seed = _global_seed()

    def _check_state0(self, state, y0):
        if state is None:
            return None
        if not isinstance(state, (tuple, list)) or not all(isinstance(s, torch.Tensor) for s in state):
            raise TypeError(f"extra_solver_state must be a tuple of tensors (as returned with extra=True); got "
                            f"{type(state).__name__}")
        want = carried(self.solver.init(self.problem, [self.times[0]], y0))
        if len(state) != len(want) or any(a.shape != b.shape for a, b in zip(state, want)):
            raise ValueError(
                f"extra_solver_state of method {self.solver.name!r} must hold {len(want)} tensors of shapes "
                f"{[tuple(w.shape) for w in want]} (what extra=True returns); got {[tuple(s.shape) for s in state]}"
            )
        return tuple(state) if want else None

    def noise(self, problem, lo: int, hi: int, yc: torch.Tensor):
        """The Brownian motion of rows ``lo:hi``."""
        if self.bm is not None:
            return self.bm if hi - lo == self.batch else RowsOf(self.bm, lo, hi)
        times = self.times
        if self.base_seed is None:
            return _default_noise(problem, self.solver, yc, self.grid, times[0], times[-1], self.seed,
                                  self.generator, self.adaptive)
        seeds = torch.arange(self.base_seed + lo, self.base_seed + hi, dtype=torch.int64)
        return _sample_noise(problem, self.solver, yc, self.grid, times[0], times[-1], seeds, self.adaptive)

    def steps(self, problem, yc, noise, state0=None, final=None, label="sdeint", rtol=1e-5, atol=1e-4, dt_min=1e-5,
              error_norm="batch"):
        return iterate(problem, self.solver, yc, self.times, noise, dt=self.dt, adaptive=self.adaptive, rtol=rtol,
                       atol=atol, dt_min=dt_min, error_norm=error_norm, max_steps=self.max_steps, order=self.order,
                       grid=self.grid, positions=self.positions, label=label, state0=state0, final=final)

    def check_end(self, out: torch.Tensor, problem, label: str) -> None:
        f_name, g_name = function_names(problem)
        check_finite_end(out, self.times, label, (
            f"With method {self.solver.name!r} and dt = {self.dt:g}: an explicit step beyond the method's stability "
            f"limit makes the solution grow without bound; use a smaller dt or adaptive=True. Otherwise {f_name} or "
            f"{g_name} returns NaN/inf there (check them at those times and states)"
        ))

    def result(self, ys: torch.Tensor, state, extra: bool):
        """torchsde's return convention: ``ys``, then the log-ratio increments (logqp), then the state (extra)."""
        out = [ys]
        if self.d is not None:
            ys, log_ratio = ys[..., : self.d], ys[..., self.d]
            out = [ys, log_ratio[1:] - log_ratio[:-1]]  # (T - 1, batch)
        if extra:
            out.append(carried(state))
        return out[0] if len(out) == 1 else tuple(out)


def carried(state) -> tuple[torch.Tensor, ...]:
    """The tensors a method carries from step to step (torchsde's ``extra_solver_state``): a solver state
    that is a plain tuple of tensors (``reversible_heun``'s ``(f, G, z)``); ``()`` for a state of per-solve
    constants (Milstein's layout, the SRK plans) or none."""
    if type(state) in (tuple, list) and state and all(isinstance(v, torch.Tensor) for v in state):
        return tuple(state)
    return ()


def _global_seed() -> int:
    """A seed drawn from torch's global generator (torchsde's default: ``torch.manual_seed`` reproduces it)."""
    return int(torch.randint(0, 2**62, (1,)).item())


def sdeint(
    sde: SDE | object,
    y0: torch.Tensor,
    ts: Sequence[float] | torch.Tensor,
    bm: Callable | None = None,
    method: str | Solver | None = None,
    dt: float = 1e-3,
    adaptive: bool = False,
    rtol: float = 1e-5,
    atol: float = 1e-4,
    dt_min: float = 1e-5,
    options: dict[str, Any] | None = None,
    names: dict[str, str] | None = None,
    logqp: bool = False,
    extra: bool = False,
    extra_solver_state: tuple[torch.Tensor, ...] | None = None,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    error_norm: str = "batch",
    max_steps: int | None = None,
    chunk_size: int | None = None,
):
    r"""Solve ``dy = f(t, y) dt + G(t, y) dW`` and return ``y`` at every time of ``ts``.

    The arguments up to ``extra_solver_state`` are torchsde's ``sdeint``'s, in its order, with its
    meaning (torchsde code runs unchanged; the differences are listed in ``docs/sde-engine.md``).

    Args:
        sde: a sdeflow :class:`~sdeflow.sdes.SDE`, or a torchsde-style object (``noise_type``,
            ``sde_type`` and ``f``/``g``, or ``f_and_g``, or ``f`` with ``g_prod``, or ``f_and_g_prod``),
            used unchanged.
        y0: the initial state ``(batch, *event_shape)`` (``(batch, d)`` for torchsde-style objects),
            finite.
        ts: strictly increasing output times, 1-d; ``ts[0]`` is the initial time.
        bm: a Brownian object ``bm(ta, tb) -> W(tb) - W(ta)`` (sdeflow's or torchsde's); by default a
            :class:`~sdeflow.noise.BrownianPath` (fixed steps) or a
            :class:`~sdeflow.noise.BrownianTree` (adaptive), seeded by ``seed`` or ``generator``.
        method: a registered method name (``sdeflow.solvers.available()``), a torchsde name
            (``euler``, ``milstein``, ``srk``, ``heun``, ``euler_heun``, ``midpoint``,
            ``reversible_heun``, ``log_ode``) or a solver object; default ``srk`` for Ito and ``midpoint``
            for Stratonovich SDEs (torchsde's). A method that cannot integrate the SDE's noise or calculus
            raises a ValueError naming those that can.
        dt: the step (fixed), or the first step (adaptive).
        adaptive: adaptive steps controlled by ``rtol``, ``atol`` through a PI controller, never below
            ``dt_min``: from the method's embedded error estimate (milstein, the Stratonovich Runge-Kutta
            methods, the SRK family, platen_weak2), or by step doubling for the others (torchsde's rule;
            ``euler`` on non-additive noise warns, as torchsde does).
        options: torchsde's method options: ``{"grad_free": bool}`` (Milstein; sdeflow's is always
            derivative-free).
        names: torchsde's renaming of the methods: keys ``drift``, ``diffusion``, ``prior_drift``,
            ``diffusion_prod``, ``drift_and_diffusion``, ``drift_and_diffusion_prod``.
        logqp: also return the log-ratio increments ``(len(ts) - 1, batch)`` of the posterior ``f`` to the
            prior drift ``h`` (:class:`~sdeflow.sdes.adapter.LogqpSDE`; Li et al. 2020).
        extra: also return the solver's state after the last step (``()`` for methods without one;
            ``(f, G, z)`` for ``reversible_heun``).
        extra_solver_state: the solver's initial state (what ``extra=True`` returned), instead of the
            one the method computes from ``y0``.
        seed, generator: the source of the default Brownian motion. Without ``bm``, ``seed`` or
            ``generator`` the seed is drawn from torch's global generator, as torchsde does (so
            ``torch.manual_seed`` makes a run reproducible): the one place sdeflow reads that generator,
            for torchsde compatibility. Per-sample seeds (``seed=`` with ``chunk_size``) stay the
            recommended way.
        error_norm: ``"batch"`` (RMS over the whole batch) or ``"sample"`` (every sample's RMS
            error within tolerance: the worst sample decides).
        max_steps: a bound on the steps: fixed steps are refused before anything is allocated when
            ``(ts[-1] - ts[0]) / dt`` exceeds it (default :data:`MAX_FIXED_STEPS` = 2^22, about
            0.8 GiB of step tables); adaptive steps stop with a RuntimeError there (default 10^7).
        chunk_size: solve the batch ``chunk_size`` samples at a time (memory: the returned tensor
            plus one chunk's working memory, instead of the whole batch's). The default noise is then
            per-sample seeded: sample ``i`` has the seed ``seed + i`` (``generator`` gives ``seed``)
            and its own counter-based Brownian path (:class:`~sdeflow.sdes._noise.SampleBrownianPath`;
            :class:`~sdeflow.noise.BrownianTree` with per-sample seeds for adaptive steps), so the
            result is the same for every ``chunk_size`` (bit for bit with fixed steps; with adaptive
            steps each chunk takes its own steps, to the tolerance). It differs from the default
            ``chunk_size=None`` path, which draws one stream for the batch. A given ``bm`` is
            queried for the whole batch and sliced per chunk.

    Returns:
        ``ys`` of shape ``(len(ts), *y0.shape)``: ``y`` at each time of ``ts`` (the first is ``y0``),
        written into one preallocated tensor; then the log-ratio increments if ``logqp``, then the
        solver state if ``extra`` (torchsde's order). Gradients flow through the whole solve
        (pathwise sensitivities) when ``y0`` or the SDE's parameters require them;
        :func:`~sdeflow.sdes.adjoint.sdeint_adjoint` gives the same gradients in memory independent
        of the number of steps.

    Raises:
        ValueError: a drift or diffusion value of the wrong shape at the first call (naming the
            function, the expected and the received shapes), a 2-d ``ts``, a non-finite ``y0``, too
            many fixed steps.
        FloatingPointError: the solution became NaN or infinite (checked once, at the end).

    A fixed step far beyond the stability limit of explicit methods (``dt |df/dy| > 3``, estimated
    on the first two steps) gives a RuntimeWarning naming ``dt`` and the step that would serve.
    """
    setup = _Setup(sde, y0, ts, bm, method, dt, adaptive, rtol, atol, dt_min, options, names, logqp,
                   extra_solver_state, seed, generator, error_norm, max_steps, chunk_size, "sdeint")
    y0, problem, batch, chunk = setup.y0, setup.problem, setup.batch, setup.chunk
    out = torch.empty((len(setup.times),) + tuple(y0.shape), dtype=y0.dtype, device=y0.device)
    final: dict = {}
    for lo in range(0, batch, chunk):
        hi = min(lo + chunk, batch)
        yc = y0[lo:hi]
        if lo > 0 and not isinstance(setup.sde, SDE):
            # a torchsde-style object: its adapter sees the chunk
            problem = as_sde(setup.sde, yc, setup.times[0], setup.names, setup.noise_size)
        noise = setup.noise(problem, lo, hi, yc)
        steps = setup.steps(problem, yc, noise, setup.state0, final, rtol=rtol, atol=atol, dt_min=dt_min,
                            error_norm=error_norm)
        if chunk == batch:
            out[0] = yc
            for i, y in enumerate(steps, 1):
                out[i] = y
        else:
            out[0, lo:hi] = yc
            for i, y in enumerate(steps, 1):
                out[i, lo:hi] = y
    setup.check_end(out, problem, "sdeint")
    return setup.result(out, final.get("state"), extra)


def _base_seed(seed, generator, solver: Solver) -> int:
    """The seed of sample 0 of a chunked solve (sample ``i`` has ``base + i``): ``seed``, or one int drawn
    from ``generator`` (per-sample seeds made per chunk: no ``(batch,)`` table of seeds in memory)."""
    if seed is not None and generator is not None:
        raise ValueError(
            f"method {solver.name!r} is stochastic: pass one of seed=int and generator=torch.Generator (or bm=a "
            "Brownian object) with chunk_size, not both"
        )
    if seed is None and generator is None:
        return _global_seed()  # torchsde's default: torch.manual_seed reproduces it
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator; got {type(generator).__name__}")
        return int(torch.randint(0, 2**62, (), generator=generator, device=generator.device))
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int; got {seed!r}")
    return seed


def _sample_noise(sde: SDE, solver: Solver, y0: torch.Tensor, grid: list[float] | None, t0: float, t1: float,
                  seeds: torch.Tensor, adaptive: bool):
    """The per-sample seeded Brownian motion of one chunk (rows of ``seeds``)."""
    shape = tuple(sde.brownian_shape(y0))
    if not adaptive:
        return SampleBrownianPath(grid, shape, seeds, y0.dtype, y0.device)
    from ..noise.brownian import BrownianTree
    from ..noise.levy import LevyBrownianTree

    tree = BrownianTree if getattr(solver, "levy_area", "none") == "none" else LevyBrownianTree
    return tree(t0, t1, shape, seeds=seeds, dtype=y0.dtype, device=y0.device)


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
        got = f"a tensor of dtype {y0.dtype}" if isinstance(y0, torch.Tensor) else type(y0).__name__
        raise TypeError(f"y0 must be a floating-point tensor (float32 or float64); got {got}")
    if y0.numel() == 0:
        raise ValueError(f"y0 must hold at least one value; got an empty tensor of shape {tuple(y0.shape)}")
    times = _as_times(t, "t")
    if options is not None and not isinstance(options, dict):
        raise TypeError(f"options must be a dict such as {{'step_size': 0.01}} or None; got {type(options).__name__}")
    options = dict(options or {})
    method = "dopri5" if method is None else method
    if isinstance(method, str):
        method = ODE_ALIASES.get(method, method)
    solver = _get_method(method, ["dopri5", "euler", "midpoint", "heun", "rk4"])
    if solver.stochastic or solver.ode_order is None:
        raise ValueError(f"method {solver.name!r} is not an ODE method; use dopri5, euler, midpoint, heun or rk4")
    problem = func if isinstance(func, SDE) else ODEFunction(func, y0)
    adaptive = getattr(solver.table, "b_err", None) is not None if hasattr(solver, "table") else False
    known = {"step_size", "first_step", "max_num_steps", "dt_min"}
    if set(options) - known:
        raise ValueError(f"unknown options {sorted(set(options) - known)}; odeint accepts {sorted(known)}")
    # An option of the other kind of method would be ignored: refuse it rather than solve without it.
    serves = {"first_step", "max_num_steps", "dt_min"} if adaptive else {"step_size", "max_num_steps"}
    if set(options) - serves:
        kind = "the adaptive method" if adaptive else "the fixed-step method"
        other = "a fixed-step method (euler, midpoint, heun, rk4)" if adaptive else "method='dopri5'"
        raise ValueError(
            f"options {sorted(set(options) - serves)} do not apply to {kind} {solver.name!r}, which takes "
            f"{sorted(serves)}; drop them, or choose {other}"
        )
    _check_tolerances(rtol, atol, 0.0)
    max_num = check_int(options.get("max_num_steps", 10**6), "options['max_num_steps']")
    if adaptive:
        check_finite_start(y0, "odeint")
        span = times[-1] - times[0]
        first = _check_dt(options.get("first_step", span / 100), "options['first_step']")
        dt_min = options.get("dt_min", 0.0)
        _check_tolerances(rtol, atol, dt_min)
        order = solver.table.error_order + 1
        steps = iterate(problem, solver, y0, times, None, dt=first, adaptive=True, rtol=rtol, atol=atol,
                        dt_min=float(dt_min), max_steps=max_num, order=order, label="odeint")
        step_size = first
    else:
        if "step_size" in options:
            step_size = _check_dt(options["step_size"], "options['step_size']")
            grid, positions = step_grid(times, step_size, max_num, "options['step_size']")
        else:
            grid, positions = times, list(range(len(times)))
            step_size = max(b - a for a, b in zip(times[:-1], times[1:]))
        steps = iterate(problem, solver, y0, times, None, dt=None, grid=grid, positions=positions, label="odeint")
    out = torch.empty((len(times),) + tuple(y0.shape), dtype=y0.dtype, device=y0.device)
    out[0] = y0
    for i, y in enumerate(steps, 1):
        out[i] = y
    f_name = "func" if isinstance(problem, ODEFunction) else function_names(problem)[0]
    check_finite_end(out, times, "odeint", (
        f"With method {solver.name!r} (step {step_size:g}): a fixed step beyond the method's stability limit makes "
        f"the solution grow without bound (use a smaller options['step_size'] or method='dopri5'); otherwise {f_name} "
        "returns NaN/inf there"
    ))
    return out
