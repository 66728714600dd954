"""The one sampling loop: validation, the step loop, model-call counting, progress, callbacks."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from ._threads import with_threads
from ._utils import check_int, check_state
from .grids import ByStepCount, TimeGrid, UniformLogSNR, UniformT, UniformVPTime, default_grid, get as get_grid, validate_ts
from .grids.base import Explicit
from .models.denoiser import Denoiser
from .models.parameterization import check_prediction
from .processes.base import DiffusionProcess
from .sdes.diffusion import ReverseDiffusionSDE
from .pilot import PILOT_MAX_NFE, choose_or_warn
from .solvers.base import Solver, get as get_solver

__all__ = ["sample", "SampleResult", "DEFAULT_SOLVER", "DEFAULT_STEPS", "DEFAULT_LOW_ORDER_MAX_STEPS", "default_solver", "default_configuration_grid", "default_grid_for"]

DEFAULT_SOLVER = "unipc"
"""The default solver: UniPC (Zhao et al. 2023; ``bh2``, with its corrector). Up to
:data:`DEFAULT_LOW_ORDER_MAX_STEPS` steps it runs with order 2 on the DDPM schedule's grid
(:class:`~sdeflow.grids.UniformVPTime`), above with order 3 on the grid uniform in log-SNR; where the
noise level at ``T`` is infinite (rectified flow) the grid is uniform in ``t``
(:func:`default_solver`, :func:`default_configuration_grid`)."""
DEFAULT_STEPS = 18
DEFAULT_LOW_ORDER_MAX_STEPS = 10
"""Up to this many steps the default configuration is UniPC of order 2 on the DDPM schedule's grid,
above it UniPC of order 3 on the grid uniform in log-SNR. With a handful of steps the DDPM grid
spends them where the solution bends (noise levels near the data's scale) and a third-order
extrapolation over steps of more than one unit of log-SNR overshoots; with more steps the log-SNR
grid resolves fine structure at low noise that the DDPM grid skips in one long last step. Chosen on
the tuning half of :func:`sdeflow.targets.family` (docs/samplers.md, "The default configuration",
has the figures and the validation half, the moons flow and the digits U-Net)."""

# Solvers whose natural grid is uniform in log-SNR: exponential integrators, which integrate the
# linear part exactly and interpolate the model's output in lambda (DPM-Solver's and UniPC's papers'
# choice). The others (Euler, Heun, EDM, iPNDM, Runge-Kutta) default to the Karras grid.
_LOG_SNR_SOLVERS = frozenset({
    "ddim", "ddpm", "dpm_solver", "dpm_solver_pp", "dpm_solver_pp_2m", "dpm_solver_pp_3m", "dpm_solver_pp_2s",
    "dpm_solver_pp_2m_sde", "dpm_solver_pp_3m_sde", "unipc", "deis",
})

# The one-call multistep exponential integrators: on their default grid they follow the default
# configuration's rule of the budget (DDPM schedule up to DEFAULT_LOW_ORDER_MAX_STEPS steps, log-SNR above).
_MULTISTEP_EXPONENTIAL = frozenset({"ddim", "dpm_solver_pp", "dpm_solver_pp_2m", "dpmpp_2m", "dpm_solver_pp_3m", "unipc", "deis"})

MAX_STEPS = 2**22
"""The largest ``steps`` or ``nfe`` accepted (a grid of that many float64 times is 32 MiB)."""

Callback = Callable[[dict[str, Any]], None]


def _check_seed(seed: object, batch: int) -> None:
    """``seed``: an int, one int per sample (a sequence or an integer tensor); named in the error."""
    from .noise.rng import as_seeds

    try:
        as_seeds(seed, batch, name="seed")
    except (TypeError, ValueError) as err:
        raise type(err)(str(err)) from None


@dataclass
class SampleResult:
    """What :func:`sample` returns.

    Attributes:
        samples: the state at the end of the grid (``t = 0`` by default), shape ``(batch, *event)``.
        nfe: the number of model calls actually made.
        ts: the grid used, float64 ``(steps + 1,)``.
        trajectory: ``(steps + 1, batch, *event)`` states at every grid time, if asked.
        x0_trajectory: ``(steps, batch, *event)`` the x0 estimate of each step's first model call, if asked.
        configuration: the configuration the pilot chose (:mod:`sdeflow.pilot`) when the default ran one,
            else ``None``.
    """

    samples: torch.Tensor
    nfe: int
    ts: torch.Tensor
    trajectory: torch.Tensor | None = None
    x0_trajectory: torch.Tensor | None = None
    configuration: str | None = None



def check_budget(steps: int | None, nfe: int | None) -> None:
    """Validate a sampling budget: ``steps`` or ``nfe`` (not both), each a positive int of at most
    :data:`MAX_STEPS`. Shared by :func:`sample` and :func:`sdeflow.inverse.posterior_sample`."""
    if steps is not None:
        check_int(steps, "steps")
        if steps > MAX_STEPS:
            raise ValueError(f"steps={steps} exceeds the bound of {MAX_STEPS} steps (2**22); sampling needs far fewer")
    if nfe is not None:
        check_int(nfe, "nfe")
        if nfe > MAX_STEPS:
            raise ValueError(f"nfe={nfe} exceeds the bound of {MAX_STEPS} model calls (2**22); sampling needs far fewer")
        if steps is not None:
            raise ValueError("give either steps or nfe, not both")

def default_solver(steps: int) -> Solver:
    """The default configuration's solver for ``steps`` steps: UniPC (bh2, with corrector) of order 2
    up to :data:`DEFAULT_LOW_ORDER_MAX_STEPS` steps, of order 3 above (one model call per step, so
    ``steps`` is also the number of model calls)."""
    check_int(steps, "steps")
    return get_solver(DEFAULT_SOLVER, order=2 if steps <= DEFAULT_LOW_ORDER_MAX_STEPS else 3)


def default_configuration_grid(process: DiffusionProcess, steps: int) -> TimeGrid:
    """The default configuration's grid for ``steps`` steps: the DDPM schedule's grid
    (:class:`~sdeflow.grids.UniformVPTime`, with its last step to ``t = 0`` from its own node, as diffusers'
    default timesteps) up to :data:`DEFAULT_LOW_ORDER_MAX_STEPS` steps, uniform in log-SNR above; on
    rectified flow (infinite noise level at ``T``) uniform in ``t``, likewise to 0 from its own node up to
    that many steps and to ``t_min`` above."""
    check_int(steps, "steps")
    return _budget_rule(process).pick(steps)


def _budget_rule(process: DiffusionProcess) -> ByStepCount:
    """Few steps: the spacing that reaches ``t = 0`` with the last call at its own node (DDPM schedule, or
    uniform ``t`` on rectified flow); more steps: log-SNR (uniform ``t`` to ``t_min`` on rectified flow)."""
    if not bool(torch.isfinite(process.noise_level(process.T))):
        return ByStepCount(UniformT(final="spacing"), UniformT(), DEFAULT_LOW_ORDER_MAX_STEPS)
    return ByStepCount(UniformVPTime(), UniformLogSNR(), DEFAULT_LOW_ORDER_MAX_STEPS)


def _default_step_count(grid, steps: int | None, nfe: int | None) -> int:
    """How many steps the default configuration will take (it picks its order from that)."""
    if steps is not None:
        return steps
    if nfe is not None:
        return nfe  # UniPC: one model call per step, the last step to t = 0 included
    if isinstance(grid, Explicit):
        return len(grid.ts) - 1
    if grid is not None and not isinstance(grid, (str, TimeGrid)):
        return len(grid) - 1  # explicit times (a sequence or a 1-d tensor), used as given
    return DEFAULT_STEPS


def default_grid_for(process: DiffusionProcess, solver: Solver) -> TimeGrid:
    """The grid used when none is given, a rule tuned on no benchmark: the deterministic one-call multistep
    exponential integrators (DDIM, DPM-Solver++ 2M (both flavours: dpm_solver_pp_2m, dpmpp_2m)/3M/k, UniPC, DEIS) follow the default configuration's
    rule of the budget (:func:`default_configuration_grid`: the DDPM schedule up to
    :data:`DEFAULT_LOW_ORDER_MAX_STEPS` steps, log-SNR above); the other exponential integrators
    (single-step DPM-Solver, the SDE variants, DDPM) use the grid uniform in log-SNR from ``T`` to ``t_min``,
    the rest Karras (rho = 7); uniform in ``t`` wherever the noise level at ``T`` is infinite (rectified flow). The solver-aware grids of
    :mod:`sdeflow.grids.optimized` and grids tuned for your model (``sdeflow tune-grid``) are used
    when asked for (``grid=OptimizedGrid(...)``, ``grid=load_tuned_grid(path)``); ``tuned_ab`` keeps
    its own grid, which its coefficients were tuned with. A stochastic solver on a process whose
    noise level is infinite at ``T`` starts at ``T - t_min`` (its reverse SDE is singular at ``T``)."""
    own = getattr(solver, "default_grid", None)
    if callable(own):  # a solver whose times mean something else (consistency levels) brings its grid
        return own(process)
    finite = bool(torch.isfinite(process.noise_level(process.T)))
    if finite and solver.name == "tuned_ab":
        from .grids.optimized import OptimizedGrid

        try:
            return OptimizedGrid("tuned_ab", family=solver.options().get("family", "default"))
        except ValueError:
            pass
    if solver.name in _MULTISTEP_EXPONENTIAL and not bool(solver.stochastic):
        return _budget_rule(process)
    if finite and solver.name in _LOG_SNR_SOLVERS and not getattr(solver, "adaptive", False):
        return UniformLogSNR()
    if not finite and bool(solver.stochastic):
        # The reverse SDE's coefficients are infinite at alpha = 0: start one t_min below T.
        return UniformT(t_max=process.T - process.t_min)
    return default_grid(process)


def _resolve_grid(grid, process: DiffusionProcess, steps: int | None, nfe: int | None, solver: Solver) -> torch.Tensor:
    if grid is None:
        grid = default_grid_for(process, solver)
    elif isinstance(grid, str) or not isinstance(grid, (TimeGrid, Explicit)):
        grid = get_grid(grid)
    if isinstance(grid, Explicit):
        ts = grid(process)
        if steps is not None and steps != len(ts) - 1:
            raise ValueError(f"steps={steps} does not match the explicit grid of {len(ts) - 1} steps; omit steps")
        if nfe is not None and solver.nfe(ts) > nfe:
            raise ValueError(
                f"the explicit grid of {len(ts) - 1} steps costs {solver.nfe(ts)} model calls with solver "
                f"{solver.name!r}, over the budget nfe={nfe}"
            )
        return ts
    if getattr(solver, "adaptive", False):
        # Adaptive solvers choose their own steps: the grid only gives output times (default: T, t_min, 0)
        # and nfe is a cap on model calls, not a step count.
        return grid(process, 2 if steps is None else steps)
    if steps is None and nfe is None:
        # A grid that fixes its own length (consistency levels given explicitly) says so.
        steps = getattr(grid, "natural_steps", None) or DEFAULT_STEPS
    if steps is None:
        steps = solver.steps_for_nfe(nfe, ends_at_zero=bool(getattr(grid, "to_zero", True)))
        ts = grid(process, steps)
        if solver.nfe(ts) > nfe:
            raise ValueError(f"nfe={nfe} is too small for solver {solver.name!r}: one step costs {solver.nfe(ts)} model calls")
        return ts
    return grid(process, steps)


def _check_start(problem: ReverseDiffusionSDE, t0: float, prediction: str) -> None:
    """Fail before the loop where the process cannot serve this model or solver at the first time."""
    p = problem.process
    alpha = float(p.alpha(t0))
    if prediction in ("eps", "score") and not alpha > 0:
        raise ValueError(
            f"the grid starts at t = {t0} where alpha(t) = {alpha}: an {prediction!r} model cannot predict x0 "
            "there; start the grid below T (e.g. grid=UniformT(t_max=0.999)) or use a 'velocity', 'x0' or 'v' model"
        )
    if problem.stochasticity > 0:
        g2 = float(p.g2(t0))
        f = float(p.f(t0))
        if not (math.isfinite(g2) and math.isfinite(f)):
            raise ValueError(
                f"the reverse SDE of {p!r} has infinite coefficients at t = {t0} (f = {f}, g^2 = {g2}); "
                "a stochastic solver needs a grid that starts below T (e.g. grid=UniformT(t_max=0.999))"
            )


@with_threads
def sample(
    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | Denoiser,
    process: DiffusionProcess,
    x: torch.Tensor,
    *,
    prediction: str | None = None,
    solver: str | Solver | None = None,
    steps: int | None = None,
    nfe: int | None = None,
    grid: TimeGrid | str | Sequence[float] | torch.Tensor | None = None,
    seed: int | Sequence[int] | torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    brownian: Callable[[float, float], torch.Tensor] | None = None,
    return_trajectory: bool = False,
    callback: Callback | None = None,
    progress: bool = False,
    check_finite: bool = True,
    pilot: bool | int = True,
    **solver_options: Any,
) -> SampleResult:
    """Integrate from noise ``x`` at ``ts[0]`` (``T`` by default) to data at ``t = 0``.

    Args:
        model: a callable ``(x, t) -> tensor`` (``t`` of shape ``(batch,)``) predicting ``prediction``,
            or a :class:`~sdeflow.models.Denoiser`.
        process: the forward process the model was trained for.
        x: the initial noise, shape ``(batch, *event_shape)``, float32 or float64 (e.g.
            ``process.prior_sample(shape, seeds=...)``).
        prediction: ``eps``, ``x0``, ``v``, ``score`` or ``velocity`` (read from ``model.prediction`` if absent).
        solver: a registered name (see :func:`sdeflow.solvers.available`) or a configured solver.
            Default (``None``): the default configuration, UniPC of order 2 on the DDPM schedule's
            grid up to 10 steps, of order 3 on the grid uniform in log-SNR above
            (:func:`default_solver`, :func:`default_configuration_grid`).
        steps: number of steps (default 18); or give ``nfe``, a budget of model calls never exceeded.
        grid: a :class:`~sdeflow.grids.TimeGrid`, a grid name, or explicit strictly decreasing times
            (used as given). Default: :func:`default_grid_for` (uniform in log-SNR for exponential
            integrators, else Karras rho=7; uniform in t where the noise level at ``T`` is infinite).
        seed: per-sample seeds for the Brownian path of stochastic solvers (an int ``s`` means
            ``s, s+1, ...``); or ``generator``; or a ready ``brownian`` object ``(ta, tb) -> W(tb) - W(ta)``.
        return_trajectory: also return the states at every grid time and the per-step x0 estimates.
        callback: called after each step with a dict ``{i, t0, t1, x, x0}``.
        progress: show a tqdm progress bar.
        check_finite: report a non-finite model output with its step and time (checked once, after the loop).
        pilot: with no solver and no grid, choose the configuration by a pilot (:mod:`sdeflow.pilot`; ``True``:
            :func:`~sdeflow.pilot.pilot_size` draws, an int: that many draws); ``False``: the fixed rule of the
            budget (:func:`default_solver`, :func:`default_configuration_grid`).
        threads: torch CPU threads for this call (``None``: ``SDEFLOW_THREADS`` or 1, or the setting of an
            enclosing sdeflow call; an integer, ``"auto"`` or ``"torch"``; docs/threads.md).
        **solver_options: options for a solver given by name (e.g. ``eta=0.5``).

    Returns:
        :class:`SampleResult` with ``samples`` and the real number of model calls ``nfe``.
    """
    check_state(x, "x")
    if x.shape[0] < 1 or x.numel() == 0:
        raise ValueError(f"x must hold at least one sample of at least one element, shape (batch, *event_shape); got shape {tuple(x.shape)}")
    if not isinstance(process, DiffusionProcess):
        raise TypeError(f"process must be a sdeflow DiffusionProcess (e.g. sdeflow.processes.VP()); got {type(process).__name__}")
    if not callable(model):
        raise TypeError(f"model must be a callable model(x, t) -> prediction (or a Denoiser); got {type(model).__name__}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be a callable taking a dict {{i, t0, t1, x, x0}}; got {type(callback).__name__}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator; got {type(generator).__name__}")
    if seed is not None:
        _check_seed(seed, x.shape[0])
    if isinstance(model, Denoiser):
        if prediction is not None and prediction != model.prediction:
            raise ValueError(f"prediction={prediction!r} contradicts the Denoiser's prediction {model.prediction!r}")
        denoiser = model
        if denoiser.process is not process:
            raise ValueError("the Denoiser was built for another process than the one given")
        denoiser.reset()
    else:
        if prediction is None:
            prediction = getattr(model, "prediction", None)
            if prediction is None:
                raise ValueError("prediction is required: one of 'eps', 'x0', 'v', 'score', 'velocity'")
        check_prediction(prediction)
        denoiser = Denoiser(model, process, prediction, check_finite=check_finite)
    check_budget(steps, nfe)
    if not isinstance(pilot, (bool, int)) or (not isinstance(pilot, bool) and pilot < 2):
        raise ValueError(f"pilot must be True, False or a number of pilot draws >= 2; got {pilot!r}")
    configuration = None
    if solver is None and not solver_options:
        n_default = _default_step_count(grid, steps, nfe)
        choice = None
        if grid is None and n_default <= PILOT_MAX_NFE and pilot is not False:
            n_pilot = None if pilot is True else int(pilot)
            choice = choose_or_warn(model, process, tuple(x.shape[1:]), nfe=n_default, dtype=x.dtype, device=x.device,
                                    prediction=None if isinstance(model, Denoiser) else prediction, progress=progress,
                                    n_pilot=n_pilot, batch=x.shape[0])
            if isinstance(model, Denoiser):
                denoiser.reset()  # the pilot ran through it
        if choice is not None:
            solver_obj, grid, configuration = choice.candidate.solver_object(), choice.candidate.grid, choice.label
        else:
            solver_obj = default_solver(n_default)
            if grid is None:
                grid = default_configuration_grid(process, n_default)
    else:
        solver_obj = get_solver(DEFAULT_SOLVER if solver is None else solver, **solver_options)
    if nfe is not None and steps is None and hasattr(solver_obj, "for_budget"):
        solver_obj = solver_obj.for_budget(nfe)  # a solver that splits a budget its own way (single-step DPM-Solver)

    ts = _resolve_grid(grid, process, steps, nfe, solver_obj)
    ts = validate_ts(ts, process)
    n_steps = len(ts) - 1

    problem = ReverseDiffusionSDE(denoiser, solver_obj.stochasticity())
    _check_start(problem, float(ts[0]), denoiser.prediction)

    noise = brownian
    if solver_obj.draws_noise(ts) and noise is None:
        if seed is None and generator is None:
            raise ValueError(
                f"solver {solver_obj.name!r} is stochastic: pass seed= (per-sample seeds), generator= or brownian="
            )
        from .noise.brownian import BrownianTree
        from .noise.levy import LevyBrownianTree

        # Order-1.5 stochastic Runge-Kutta methods also need the space-time Levy area of each step.
        tree = LevyBrownianTree if getattr(solver_obj, "levy_area", "none") != "none" else BrownianTree
        noise = tree(0.0, process.T, tuple(x.shape), seeds=seed, generator=generator, dtype=x.dtype, device=x.device)

    traj: list[torch.Tensor] | None = [x] if return_trajectory else None
    x0_traj: list[torch.Tensor] | None = [] if return_trajectory else None
    bar = None
    if progress:
        from ._utils import progress_bar

        bar = progress_bar(total=n_steps, desc=f"sampling ({solver_obj.name})", unit="step")

    tlist = ts.tolist()
    state = solver_obj.init(problem, tlist, x)
    # Adaptive solvers repeat attempts on one interval until every sample reached its end; a fixed-grid
    # solver takes exactly one step per interval (no synchronization, no branching on tensor values).
    reached = getattr(solver_obj, "reached", None) if getattr(solver_obj, "adaptive", False) else None
    cap = nfe if nfe is not None else getattr(solver_obj, "max_nfe", 100_000)
    try:
        for i in range(n_steps):
            denoiser.step_index = i
            t0, t1 = tlist[i], tlist[i + 1]
            result = solver_obj.step(problem, t0, t1, x, state, noise)
            x, state = result.x, result.state
            while reached is not None and not reached(state):
                if denoiser.nfe + solver_obj.calls_per_step > cap:
                    raise RuntimeError(
                        f"adaptive solver {solver_obj.name!r} would exceed the budget of {cap} model calls before "
                        f"reaching t = {t1:.6g}; loosen rtol/atol or raise nfe"
                    )
                if callback is not None:
                    callback({"i": i, "t0": t0, "t1": t1, "x": x, "x0": result.x0})
                if bar is not None:
                    bar.set_postfix(t=f"{t1:.4g}", nfe=denoiser.nfe)
                result = solver_obj.step(problem, t0, t1, x, state, noise)
                x, state = result.x, result.state
            if traj is not None:
                traj.append(x)
                x0_traj.append(result.x0 if result.x0 is not None else torch.full_like(x, float("nan")))
            if callback is not None:
                callback({"i": i, "t0": t0, "t1": t1, "x": x, "x0": result.x0})
            if bar is not None:
                bar.update(1)
                bar.set_postfix(t=f"{t1:.4g}", nfe=denoiser.nfe)
    finally:
        if bar is not None:
            bar.close()
    denoiser.raise_if_nonfinite()
    if nfe is not None and denoiser.nfe > nfe:  # a solver that under-declares its calls is a bug
        raise RuntimeError(f"solver {solver_obj.name!r} made {denoiser.nfe} model calls, over the budget nfe={nfe}")
    return SampleResult(
        samples=x,
        nfe=denoiser.nfe,
        ts=ts,
        trajectory=torch.stack(traj) if traj is not None else None,
        x0_trajectory=torch.stack(x0_traj) if x0_traj else None,
        configuration=configuration,
    )
