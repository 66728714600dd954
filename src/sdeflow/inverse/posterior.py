"""``posterior_sample``: the one loop of every posterior method.

It validates the call, builds the counted model (:class:`~sdeflow.models.Denoiser`, any prediction
kind), the grid (:mod:`sdeflow.grids`), the prior noise (the process's prior, one
``torch.Generator`` from ``seed``), then runs the method's schedule of steps with a progress bar,
checks the budget of model calls and returns the samples per measurement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from .._utils import check_int
from ..grids import TimeGrid, UniformT, get as get_grid, validate_ts
from ..grids.base import Explicit
from ..models.denoiser import Denoiser
from ..models.parameterization import check_prediction
from ..processes.base import DiffusionProcess
from ..sample import SampleResult, check_budget
from .base import InverseProblem, PosteriorMethod, get_method
from .operators import Operator

__all__ = ["posterior_sample", "PosteriorResult", "DEFAULT_STEPS"]

DEFAULT_STEPS = 100
"""Steps of a run when neither ``steps`` nor ``nfe`` is given."""


@dataclass
class PosteriorResult(SampleResult):
    """What :func:`posterior_sample` returns: a :class:`~sdeflow.sample.SampleResult` whose ``samples``
    have shape ``(m, n_samples, *event_shape)`` (``m`` measurements), ``nfe`` the real number of model
    calls (each call evaluates the model on the whole batch of ``m * population`` states), ``ts`` the
    grid; ``trajectory`` ``(len(schedule) + 1, m, population, *event)`` if asked. Particle methods also
    report ``ess``, ``(len(schedule), m)``: the effective sample size ``(sum w)^2 / sum w^2`` of each
    population before each step's resampling decision, and ``resampled``, how many steps resampled
    (summed over measurements)."""

    ess: torch.Tensor | None = None
    resampled: int = 0


def _default_grid(process: DiffusionProcess) -> TimeGrid:
    # Uniform in log-SNR from T to t_min, then to 0 (the grid of exponential integrators); uniform in t below T
    # where the noise level at T is infinite (rectified flow: alpha(T) = 0).
    if bool(torch.isfinite(process.noise_level(process.T))):
        return get_grid("logsnr")
    return UniformT(t_max=process.T - process.t_min)


def posterior_sample(
    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | Denoiser,
    process: DiffusionProcess,
    operator: Operator,
    y: torch.Tensor,
    *,
    method: str | PosteriorMethod,
    n_samples: int = 1,
    nfe: int | None = None,
    steps: int | None = None,
    seed: int = 0,
    progress: bool = False,
    particles: int | None = None,
    prediction: str | None = None,
    grid: TimeGrid | str | Sequence[float] | torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    event_shape: Sequence[int] | None = None,
    return_trajectory: bool = False,
    **options: Any,
) -> PosteriorResult:
    """Draw ``n_samples`` samples of ``p(x | y)`` for each of the ``m`` measurements in ``y``.

    The prior is the diffusion model ``model`` (any prediction kind, for ``process``); the likelihood is
    ``y = operator(x) + operator.noise_std * n``, ``n ~ N(0, I)``.

    Args:
        model: callable ``(x, t) -> prediction`` with a ``prediction`` attribute (or ``prediction=``), or a Denoiser.
        process: the forward process the model was trained for.
        operator: a :mod:`sdeflow.inverse.operators` operator; its event shape is learnt from ``y`` if unset.
        y: ``(m, *measurement_shape)``, ``m`` measurements.
        method: ``dps``, ``pigdm``, ``ddrm``, ``ddnm``, ``repaint``, ``daps``, ``tds`` or ``mcgdiff``
            (:func:`sdeflow.inverse.available_methods`), or a configured method object.
        n_samples: samples per measurement.
        nfe: a budget of model calls, never exceeded (each call is one batched evaluation); or ``steps``.
        steps: grid steps (default :data:`DEFAULT_STEPS` = 100 when neither is given).
        seed: seed of the ``torch.Generator`` of every draw (prior noise, step noise, resampling).
        progress: show a tqdm progress bar.
        particles: population per measurement of a particle method (default ``n_samples``); its final
            weighted population is resampled to ``n_samples`` members.
        prediction: the model's prediction kind if the model has no ``prediction`` attribute.
        grid: a grid object, name or explicit times (default: uniform in log-SNR to ``t_min``, then 0).
        dtype, device: of the state (float32 default; float64 for exact-posterior comparisons).
        event_shape: the state's shape, checked against the operator's when given.
        return_trajectory: also return the states at every visited time.
        **options: the method's options (e.g. ``eta=0.85`` for ``ddrm``); an unknown one is refused.

    Returns:
        :class:`PosteriorResult` with ``samples`` ``(m, n_samples, *event_shape)``.
    """
    if not isinstance(process, DiffusionProcess):
        raise TypeError(f"process must be a sdeflow DiffusionProcess (e.g. sdeflow.processes.VP()); got {type(process).__name__}")
    if not isinstance(operator, Operator):
        raise TypeError(f"operator must be a sdeflow.inverse.operators.Operator (e.g. Inpainting(mask)); got {type(operator).__name__}")
    if not callable(model):
        raise TypeError(f"model must be a callable model(x, t) -> prediction (or a Denoiser); got {type(model).__name__}")
    meth = get_method(method, **options)
    if not isinstance(y, torch.Tensor) or not y.is_floating_point():
        raise TypeError(f"y must be a floating-point torch.Tensor of shape (m, *measurement_shape); got {type(y).__name__}")
    if y.ndim < 2 or y.shape[0] < 1:
        raise ValueError(f"y must have shape (m, *measurement_shape) with m >= 1 measurements; got shape {tuple(y.shape)}")
    ev = operator.event_shape_for(tuple(y.shape[1:]))
    if event_shape is not None and tuple(int(s) for s in event_shape) != tuple(ev):
        raise ValueError(
            f"operator acts on states of event shape {tuple(ev)} but event_shape={tuple(event_shape)} was given: "
            "the operator does not match the model's states"
        )
    op = operator.bind(ev)
    y = op.check_y(y, "y")
    if not bool(torch.isfinite(y).all()):
        raise ValueError("y must be finite")
    n_samples = check_int(n_samples, "n_samples")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0; got {seed!r}")
    if particles is not None:
        if not meth.particle:
            raise ValueError(f"particles= is an option of particle methods (tds, mcgdiff); method {meth.name!r} has none")
        particles = check_int(particles, "particles")
    pop = (particles or n_samples) if meth.particle else n_samples
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64; got {dtype}")
    check_budget(steps, nfe)
    steps_given = steps is not None
    if nfe is not None:
        steps = meth.steps_for_nfe(nfe)
    if steps is None:
        steps = DEFAULT_STEPS

    if isinstance(model, Denoiser):
        if model.process is not process:
            raise ValueError("the Denoiser was built for another process than the one given")
        denoiser = model
        denoiser.reset()
    else:
        kind = prediction if prediction is not None else getattr(model, "prediction", None)
        if kind is None:
            raise ValueError("prediction is required: one of 'eps', 'x0', 'v', 'score', 'velocity'")
        denoiser = Denoiser(model, process, check_prediction(kind))

    if grid is None:
        grid = _default_grid(process)
    elif not isinstance(grid, (TimeGrid, Explicit)):
        grid = get_grid(grid)
    if isinstance(grid, Explicit):
        ts = grid(process)
        if steps_given and len(ts) - 1 != steps:
            raise ValueError(f"the explicit grid has {len(ts) - 1} steps; omit steps/nfe or make them agree")
        steps = len(ts) - 1
        if nfe is not None and meth.model_calls(steps) > nfe:
            raise ValueError(f"the explicit grid costs {meth.model_calls(steps)} model calls with {meth.name!r}, over nfe={nfe}")
    else:
        ts = grid(process, steps)
    ts = validate_ts(ts, process)
    tlist = ts.tolist()

    m = y.shape[0]
    dev = torch.device(device) if device is not None else y.device
    generator = torch.Generator(device=dev if dev.type != "mps" else "cpu").manual_seed(seed)
    y_rep = y.to(device=dev, dtype=dtype).repeat_interleave(pop, dim=0)
    problem = InverseProblem(denoiser, process, op, y_rep, m, pop, generator)
    meth.check(problem)

    # The prior at ts[0]: x ~ N(alpha(t) * 0, ...) -- the marginal of data at the first grid time, which the
    # samplers of sdeflow start from: sigma(ts[0]) * z (alpha(ts[0]) x0 is negligible or zero there).
    sig0 = float(process.sigma(tlist[0]))
    x = sig0 * torch.randn((m * pop,) + tuple(ev), generator=generator, dtype=dtype, device=generator.device).to(dev)
    state = meth.init(problem, x)
    sched = meth.schedule(len(tlist) - 1)
    traj = [x] if return_trajectory else None
    bar = None
    if progress:
        from .._utils import progress_bar

        bar = progress_bar(total=len(sched), desc=f"posterior ({meth.name})", unit="step")
    try:
        for k, (i, j) in enumerate(sched):
            denoiser.step_index = k
            x, state = meth.step(problem, tlist[i], tlist[j], x, state)
            if traj is not None:
                traj.append(x)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(t=f"{tlist[j]:.4g}", nfe=denoiser.nfe)
        x = meth.finalize(problem, x, state, n_samples)
    finally:
        if bar is not None:
            bar.close()
    denoiser.raise_if_nonfinite()
    if nfe is not None and denoiser.nfe > nfe:  # a method that under-declares its calls is a bug
        raise RuntimeError(f"method {meth.name!r} made {denoiser.nfe} model calls, over the budget nfe={nfe}")
    if denoiser.nfe != meth.model_calls(len(tlist) - 1):
        raise RuntimeError(f"method {meth.name!r} declared {meth.model_calls(len(tlist) - 1)} model calls and made {denoiser.nfe}")
    ess = getattr(state, "ess", None)
    return PosteriorResult(
        samples=x.reshape((m, -1) + tuple(ev)),
        nfe=denoiser.nfe,
        ts=ts,
        trajectory=torch.stack(traj).reshape((len(traj), m, pop) + tuple(ev)) if traj is not None else None,
        ess=torch.stack(ess) if ess else None,
        resampled=int(getattr(state, "resampled", 0)),
    )
