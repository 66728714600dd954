"""The default configuration chosen for each model by a pilot: :func:`choose_configuration`.

No fixed solver and grid is best for every model: which grid resolves a model's structure depends on
the noise levels where its data has structure (sharp components want steps at small noise, smooth
ones at large), and which order is stable depends on how far the model is from the linear regime
between steps. A rule fitted on a few problems loses on others (issue 11; docs/samplers.md, "The
default configuration"). So the default measures, once per model and budget:

1. Draw pilot noise with fixed per-sample seeds (``PILOT_SEED, PILOT_SEED + 1, ...``; never the
   user's noise, so the choice does not depend on the batch being sampled) and solve the model's own
   probability-flow ODE from it finely: UniPC-3 on the log-SNR grid with :data:`REFERENCE_STEPS` steps
   (four times the largest budget the pilot serves; on rectified flow a first step from ``T``, then
   log-SNR), the reference.
2. Run every candidate configuration (:func:`pilot_candidates`) from the same noise with the budget
   of model calls, and score it with the objective of the grid tuner,
   ``J = log RMS_i ||x_i - x_i^*|| + 0.3 log median_i ||x_i - x_i^*||``.
3. Keep the configuration with the smallest ``J`` (the first in the candidates' order on a tie), and
   cache the choice for this model (its identity and, for a ``torch.nn.Module``, the versions of its
   parameters, so a model trained further is measured again), process, prediction, budget, event
   shape, dtype and device.

The candidates are UniPC (Zhao et al. 2023) of orders 2 and 3 on four grids (the DDPM schedule's,
the log-SNR grid, the Karras grid and the grid halfway between the first two in log noise level) and
iPNDM of order 3 on the Karras grid; on a process whose noise level is infinite at ``T`` (rectified
flow), UniPC of orders 2 and 3 on grids uniform in ``t`` (to 0 from their own last node, or to
``t_min``), quadratic in ``t``, and, above :data:`FLOW_LOG_SNR_MIN_NFE` calls, uniform in log-SNR after a
first step from ``T`` (:class:`~sdeflow.grids.LogSNRFromT`). All take one model call per step. The set was chosen as the
configurations that win somewhere on the tuning half of :func:`sdeflow.targets.family`; the
validation half, the public problems and the real networks report how the choice transfers
(docs/samplers.md).

Cost: the pilot's sample count is ``clamp(2**19 // D, 32, 1024)`` for states of ``D`` elements (1,024
samples up to ``D = 512``, 32 for large images), each solved once by the reference (400 model calls)
and once per candidate (``nfe`` calls each). It is paid once per model and
budget in a process (the cache; the reference is shared by the budgets of the last model measured)
and reported in :attr:`PilotChoice.pilot_calls`.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from .grids import GeometricBlend, Karras, LogSNRFromT, Polynomial, TimeGrid, UniformLogSNR, UniformT, UniformVPTime
from .grids.tuning import GridScore, _score, check_event_shape, process_spec

__all__ = ["Candidate", "PilotChoice", "choose_configuration", "choose_or_warn", "pilot_candidates", "pilot_size", "clear_cache",
           "PILOT_SEED", "PILOT_MAX_NFE", "REFERENCE_STEPS", "FLOW_LOG_SNR_MIN_NFE", "MEDIAN_WEIGHT"]

PILOT_SEED = 10**9
"""First per-sample seed of the pilot noise (far from the seeds users and the benchmarks start at)."""
PILOT_MAX_NFE = 100
"""Budgets above this many model calls skip the pilot and use the fixed rule (every configuration is
close to the exact solution there, and the pilot's cost grows with the budget)."""
REFERENCE_STEPS = 400
"""Steps of the pilot's reference solve (UniPC-3 on the log-SNR grid): four times the largest budget the
pilot serves, so that its error is under 2 % of any candidate's (third order: ``(1/4)^3``). An adaptive
solve at tight tolerance costs far more on a trained network (about 3,000 calls at ``rtol = 1e-7`` on the
digits U-Net, whose ODE is stiff near ``t = 0``)."""
FLOW_LOG_SNR_MIN_NFE = 10
"""On rectified flow the log-SNR grid after a first step is a candidate above this many calls only. Measured
on the family's mixtures with the ``Linear`` process (RMS of the pilot's choice with it over without it,
geometric mean over the 8 problems of each half): tuning half 1.63 / 0.61 / 0.50 at 10 / 20 / 35 calls,
validation half 1.27 / 0.26 / 0.82; at 10 calls it wins the pilot on medians and loses single samples to
other modes."""
MEDIAN_WEIGHT = 0.3
"""``w`` in the pilot's objective ``log RMS + w log median`` (the grid tuner's objective)."""
_MIN_PILOT, _MAX_PILOT, _PILOT_ELEMENTS = 32, 1024, 2**19


@dataclass(frozen=True)
class Candidate:
    """One configuration the pilot may choose: a solver name, its options and a grid."""

    label: str
    solver: str
    options: dict[str, Any]
    grid: TimeGrid

    def solver_object(self):
        from .solvers import get as get_solver

        return get_solver(self.solver, **self.options)


@dataclass(frozen=True)
class PilotChoice:
    """What :func:`choose_configuration` measured and chose.

    Attributes:
        candidate: the chosen :class:`Candidate` (``candidate.label`` names it).
        nfe: the budget of model calls it was chosen for.
        scores: ``label -> GridScore`` of every candidate on the pilot noise (``inf`` where it failed).
        n_pilot: pilot samples; ``pilot_calls``: model calls on the pilot batch made by this choice (the
            reference, unless the same model's reference was cached for another budget, and the candidates).
    """

    candidate: Candidate
    nfe: int
    scores: dict[str, GridScore] = field(default_factory=dict)
    n_pilot: int = 0
    pilot_calls: int = 0

    @property
    def label(self) -> str:
        return self.candidate.label


def pilot_candidates(process, nfe: int | None = None) -> tuple[Candidate, ...]:
    """The configurations the pilot chooses among for ``process`` at ``nfe`` calls (module docstring; ``None``:
    every one)."""
    finite = bool(torch.isfinite(process.noise_level(process.T)))
    if finite:
        grids = (("DDPM grid", UniformVPTime()), ("DDPM/log-SNR blend", GeometricBlend(UniformVPTime(), UniformLogSNR(), 0.5)),
                 ("log-SNR", UniformLogSNR()), ("Karras", Karras()))
    else:
        grids = (("uniform t to 0", UniformT(final="spacing")), ("uniform t", UniformT()), ("quadratic t", Polynomial(2.0)))
        if nfe is None or nfe > FLOW_LOG_SNR_MIN_NFE:
            grids += (("log-SNR after a first step", LogSNRFromT()),)
    out = [Candidate(f"unipc-{order} {name}", "unipc", {"order": order}, grid) for name, grid in grids for order in (2, 3)]
    if finite:
        out.append(Candidate("ipndm-3 Karras", "ipndm", {"order": 3}, Karras()))
    return tuple(out)


def pilot_size(event_shape: Sequence[int]) -> int:
    """Pilot samples for states of shape ``event_shape``: ``clamp(2**19 // D, 32, 1024)``."""
    d = math.prod(int(s) for s in event_shape)
    return max(_MIN_PILOT, min(_MAX_PILOT, _PILOT_ELEMENTS // max(d, 1)))


def _reference_grid(process, steps: int | None = None) -> torch.Tensor:
    """The reference's times: :class:`~sdeflow.grids.LogSNRFromT` with :data:`REFERENCE_STEPS` steps (uniform in
    log-SNR from ``T`` to ``t_min``, then 0; on rectified flow one step from ``T`` first). A grid uniform in ``t``
    leaves a flow's small noise levels unresolved: on the ring its 400-step error is 0.44 times its 100-step
    error; this grid's is 0.004 times."""
    return LogSNRFromT()(process, REFERENCE_STEPS if steps is None else steps)


_CACHE: dict[tuple, tuple[Any, PilotChoice]] = {}
_REFERENCES: dict[tuple, tuple[Any, torch.Tensor]] = {}


def clear_cache() -> None:
    """Forget every cached choice and reference."""
    _CACHE.clear()
    _REFERENCES.clear()


def _model_key(model: Any) -> tuple[Any, tuple] | None:
    """A weak reference to the model and a fingerprint of its parameters; ``None``: not cacheable."""
    from .models.denoiser import Denoiser

    inner = model.model if isinstance(model, Denoiser) else model
    try:
        ref = weakref.WeakMethod(inner) if hasattr(inner, "__self__") and hasattr(inner, "__func__") else weakref.ref(inner)
    except TypeError:
        return None
    params: tuple = ()
    if isinstance(inner, torch.nn.Module):
        params = tuple((p.data_ptr(), p._version) for p in inner.parameters())
    return ref, (id(inner), params)


def choose_configuration(
    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    process,
    event_shape: Sequence[int],
    *,
    nfe: int,
    prediction: str | None = None,
    n_pilot: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    cache: bool = True,
    progress: bool = False,
) -> PilotChoice:
    """Choose the configuration with the smallest pilot objective for ``model`` at ``nfe`` model calls.

    Args:
        model: ``(x, t) -> prediction`` or a :class:`~sdeflow.models.Denoiser`.
        process: the process the model was trained for.
        event_shape: the shape of one sample.
        nfe: the budget of model calls (every candidate takes one call per step).
        prediction: the model's prediction kind (``None``: ``model.prediction``).
        n_pilot: pilot samples (default :func:`pilot_size`).
        dtype, device: of the pilot noise (the dtype and device the model will be sampled in).
        cache: reuse an earlier choice for the same model, process, prediction, budget, shape, dtype and
            device (and, for a module, the same parameter versions).
        progress: show a progress bar of the pilot's runs.

    Returns:
        a :class:`PilotChoice`. If every candidate fails (non-finite samples), :class:`RuntimeError`.
    """
    from ._utils import check_int
    from .sample import sample as run_sampler

    check_int(nfe, "nfe")
    if nfe < 1:
        raise ValueError(f"nfe must be >= 1; got {nfe}")
    event_shape = check_event_shape(event_shape)
    n = pilot_size(event_shape) if n_pilot is None else n_pilot
    check_int(n, "n_pilot")
    if n < 2:
        raise ValueError(f"n_pilot must be >= 2; got {n}")
    from .models.denoiser import Denoiser

    if prediction is None and not isinstance(model, Denoiser):
        prediction = getattr(model, "prediction", None)

    mk = _model_key(model) if cache else None
    key = ref_key = None
    if mk is not None:
        ref_key = (mk[1], repr(process_spec(process)), prediction, event_shape, str(dtype), str(torch.device(device)), n)
        key = (*ref_key, nfe)
        hit = _CACHE.get(key)
        if hit is not None and hit[0]() is not None:
            return hit[1]

    cands = pilot_candidates(process, nfe)
    bar = None
    if progress:
        from ._utils import progress_bar

        bar = progress_bar(total=len(cands) + 1, desc=f"choosing the sampler (pilot, nfe {nfe})", unit="run")
    calls = 0
    scores: dict[str, GridScore] = {}
    try:
        x = process.prior_sample((n, *event_shape), seeds=PILOT_SEED, dtype=dtype, device=device)
        with torch.no_grad():
            hit = _REFERENCES.get(ref_key) if ref_key is not None else None
            if hit is not None and hit[0]() is not None:
                ref = hit[1]  # the same model's reference from the same pilot noise, solved for another budget
            else:
                solved = run_sampler(model, process, x, prediction=prediction, solver="unipc", order=3,
                                     grid=_reference_grid(process))
                ref, calls = solved.samples, calls + solved.nfe
                if ref_key is not None:
                    _REFERENCES.clear()  # one reference kept: the last model's, for its other budgets
                    _REFERENCES[ref_key] = (mk[0], ref)
            if bar is not None:
                bar.update(1)
            for c in cands:
                try:
                    res = run_sampler(model, process, x, prediction=prediction, solver=c.solver_object(), grid=c.grid,
                                      nfe=nfe, check_finite=False)
                except ValueError:  # a grid this process or budget cannot take
                    scores[c.label] = GridScore(math.inf, math.inf, math.inf)
                else:
                    calls += res.nfe
                    s = _score(res.samples, ref, MEDIAN_WEIGHT)
                    failed = math.isnan(s.objective) or s.objective == math.inf
                    scores[c.label] = GridScore(math.inf, math.inf, math.inf) if failed else s
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(c.label, refresh=False)
    finally:
        if bar is not None:
            bar.close()
    best = min(cands, key=lambda c: scores[c.label].objective)
    if scores[best.label].objective == math.inf:
        raise RuntimeError(f"no candidate configuration gave finite samples at nfe={nfe} on the pilot noise")
    choice = PilotChoice(candidate=best, nfe=nfe, scores=scores, n_pilot=n, pilot_calls=calls)
    if key is not None:
        _CACHE[key] = (mk[0], choice)
    return choice


def choose_or_warn(model, process, event_shape: Sequence[int], *, nfe: int, prediction: str | None = None,
                   dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu", progress: bool = False,
                   n_pilot: int | None = None, batch: int | None = None) -> PilotChoice | None:
    """:func:`choose_configuration` for the default configuration, or ``None`` with a ``RuntimeWarning`` where the
    pilot cannot run (the caller then uses the fixed rule of the budget). A model that fails on the pilot's batch
    (conditioning captured for the batch it is sampled with) first gets a pilot of ``batch`` draws (pilot noise,
    not the caller's), where ``batch >= 2`` is given."""
    import warnings

    kw = dict(nfe=nfe, prediction=prediction, dtype=dtype, device=device, progress=progress)
    try:
        return choose_configuration(model, process, event_shape, n_pilot=n_pilot, **kw)
    except Exception as err:  # noqa: BLE001  (any failure of the pilot falls back to the fixed rule)
        if batch is not None and batch >= 2:
            try:
                return choose_configuration(model, process, event_shape, n_pilot=batch, **kw)
            except Exception:  # noqa: BLE001
                pass
        warnings.warn(
            f"the default configuration's pilot could not run ({type(err).__name__}: {err}); using the fixed rule "
            "of the budget (UniPC-2 on the DDPM grid up to 10 steps, UniPC-3 on log-SNR above). Pass solver= to "
            "choose a configuration yourself.", RuntimeWarning, stacklevel=4)
        return None
