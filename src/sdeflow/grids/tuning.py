"""Tune a solver's time grid for one model: :func:`tune_grid`, :class:`TunedGrid`, :func:`load_tuned_grid`.

The shipped solver-aware grids (:mod:`sdeflow.grids.optimized`) were tuned on exact-score mixtures.
A user's own model has its own errors; this module tunes the grid on the model itself, the way the
shipped grids were made:

1. Draw pilot noise (per-sample seeds ``seed, seed+1, ...``) and, apart from it, validation noise
   (seeds ``seed + 10**6, ...``).
2. Compute the references: the model's own probability-flow ODE from the same noise, solved by the
   adaptive solver (``adaptive_ode``, Dormand-Prince 5(4) in the exponential variable) with tight
   tolerances (``reference_rtol``, default ``1e-6`` for both ``rtol`` and ``atol``) down to
   ``reference_t_min`` (default ``process.t_min``) and then the exact final denoising step to ``t = 0``.
3. Start from the grid :func:`sdeflow.sample` would use for this solver and budget of model calls
   (:func:`sdeflow.sample.default_grid_for`), keep its first time, and optimize the interior noise
   levels ``rho_1 > ... > rho_{n-1}`` (``rho = sigma / alpha``) with
   :func:`~sdeflow.grids.optimized.optimize_grid`: Nelder-Mead on their log gaps, minimizing
   :func:`~sdeflow.grids.optimized.grid_objective`
   ``J = log RMS_i ||x_i - x_i^*|| + 0.3 log median_i ||x_i - x_i^*||`` on the pilot noise.
4. Report ``J``, the RMS and the median distance on the validation noise before and after: the
   validation figures say whether the tuned grid generalizes beyond the pilot draws.

The result is tied to the process it was tuned for (grids are times, and times mean different noise
levels on different processes): using it with a process of another configuration is refused.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from .._utils import atomic_write_bytes
from .base import TimeGrid, validate_ts

__all__ = ["GridScore", "TunedGrid", "tune_grid", "load_tuned_grid", "process_spec"]

FORMAT = "sdeflow-tuned-grid"
VERSION = 1
VALIDATION_SEED_OFFSET = 10**6
"""Validation noise uses seeds ``seed + VALIDATION_SEED_OFFSET, ...``: disjoint from the pilot seeds."""
DEFAULT_MAX_ITER = 300
"""Default Nelder-Mead iterations: about 400 runs of the sampler, a minute or less for a small MLP on
one CPU thread with 64 pilot samples (the test suite's ring target: a few seconds)."""


def check_event_shape(event_shape: Any) -> tuple[int, ...]:
    """``event_shape`` as a tuple of integers >= 1 (a clear error naming it otherwise)."""
    try:
        shape = tuple(int(d) for d in event_shape)
    except TypeError as err:
        raise TypeError(f"event_shape must be a sequence of integers, e.g. (2,); got {event_shape!r}") from err
    if not shape or any(d < 1 for d in shape):
        raise ValueError(f"event_shape must be a non-empty sequence of integers >= 1; got {shape}")
    return shape


def process_spec(process) -> dict[str, Any]:
    """``{"name", "config"}`` of a process, in its JSON form (the key a tuned grid is tied to)."""
    return json.loads(json.dumps({"name": process.name, "config": process.config()}, default=_json_default))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


@dataclass(frozen=True)
class GridScore:
    """Distances ``d_i = ||x_i - x_i^*||`` of a sampler's outputs to the reference ODE solutions.

    Attributes:
        objective: ``log RMS d + median_weight * log median d`` (:func:`~sdeflow.grids.optimized.grid_objective`).
        rms: ``sqrt(mean d_i^2)``.
        median: ``median d_i``.
    """

    objective: float
    rms: float
    median: float

    def as_dict(self) -> dict[str, float]:
        return {"objective": self.objective, "rms": self.rms, "median": self.median}


def _score(samples: torch.Tensor, reference: torch.Tensor, median_weight: float) -> GridScore:
    from .optimized import grid_objective

    d = (samples - reference).flatten(1).norm(dim=1).double()
    return GridScore(
        objective=float(grid_objective([samples], [reference], median_weight)),
        rms=float(d.pow(2).mean().sqrt()),
        median=float(d.median()),
    )


@dataclass(frozen=True)
class TunedGrid(TimeGrid):
    """A time grid tuned for one model, solver and budget of model calls (made by :func:`tune_grid`).

    It is a :class:`~sdeflow.grids.TimeGrid`, so ``sdeflow.sample(model, process, x,
    solver=tuned.solver, nfe=tuned.nfe, grid=tuned, **tuned.solver_options)`` samples on it, after
    checking that ``process`` has the configuration it was tuned for; ``grid=tuned.ts`` (explicit
    times) works too, without that check.

    Attributes:
        ts: the times, float64 values ``T >= ts[0] > ... > ts[-2] > ts[-1] = 0`` (``steps + 1`` of them).
        levels: the tuned interior noise levels ``rho_j = sigma/alpha`` at ``ts[1:-1]``.
        solver: the solver's registered name; ``solver_options``: its options (all of them).
        nfe: the budget of model calls it was tuned for; ``steps``: ``len(ts) - 1``.
        process: ``{"name", "config"}`` of the process (see :func:`process_spec`).
        tuning_before, tuning_after: :class:`GridScore` on the pilot noise, default grid vs tuned grid.
        validation_before, validation_after: the same on the validation noise (never seen by the tuning).
        default_ts: the grid it started from (what ``sample`` uses by default at this budget).
        settings: how it was tuned (pilot and validation sizes and seeds, iterations, tolerances, ...).
    """

    ts: tuple[float, ...]
    levels: tuple[float, ...]
    solver: str
    solver_options: dict[str, Any]
    nfe: int
    process: dict[str, Any]
    tuning_before: GridScore
    tuning_after: GridScore
    validation_before: GridScore
    validation_after: GridScore
    default_ts: tuple[float, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        """Number of steps of the grid."""
        return len(self.ts) - 1

    @property
    def t_max(self) -> float:  # type: ignore[override]
        return self.ts[0]

    @property
    def t_min(self) -> float:  # type: ignore[override]
        return self.ts[-2]

    @property
    def to_zero(self) -> bool:  # type: ignore[override]
        return True

    # ---------------------------------------------------------------- use
    def check_process(self, process, where: str = "") -> None:
        """Refuse a process of another configuration than the one the grid was tuned for."""
        given = process_spec(process)
        if given != self.process:
            src = f" ({where})" if where else ""
            raise ValueError(
                f"the tuned grid{src} was tuned for process {_describe_process(self.process)}, not "
                f"{_describe_process(given)}: its times mean other noise levels there; tune a grid for this process "
                "(sdeflow tune-grid) or sample with the process it was tuned for"
            )

    def check_solver(self, solver: str, options: dict[str, Any] | None = None, where: str = "") -> None:
        """Refuse another solver, or other solver options, than the grid was tuned for."""
        from ..solvers import get as get_solver

        src = f" ({where})" if where else ""
        given = get_solver(solver, **(options or {}))
        if given.name != self.solver or _jsonable(given.options()) != self.solver_options:
            raise ValueError(
                f"the tuned grid{src} was tuned for solver {self.solver!r} with options {self.solver_options}, not "
                f"{given.name!r} with {_jsonable(given.options())}; use that solver (or omit the solver to take it "
                "from the file), or tune a grid for this one"
            )

    def solver_object(self):
        """The configured solver the grid was tuned for."""
        from ..solvers import get as get_solver

        return get_solver(self.solver, **self.solver_options)

    def __call__(self, process, steps: int | None = None) -> torch.Tensor:
        """The times ``ts`` as a float64 tensor, after checking ``process`` and ``steps``."""
        self.check_process(process)
        if steps is not None and steps != self.steps:
            raise ValueError(
                f"the tuned grid has {self.steps} steps ({self.solver!r} with nfe={self.nfe}); got steps={steps}: "
                f"pass nfe={self.nfe} (or steps={self.steps}) with it"
            )
        return validate_ts(self.ts, process, name="tuned grid")

    def _interior(self, process, t_max: float, t_min: float, n: int) -> torch.Tensor:
        return torch.tensor(self.ts[:-1], dtype=torch.float64)

    # ---------------------------------------------------------------- files
    def to_dict(self) -> dict[str, Any]:
        """The JSON form written by :meth:`save`."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "ts": list(self.ts),
            "levels": list(self.levels),
            "solver": self.solver,
            "solver_options": self.solver_options,
            "nfe": self.nfe,
            "steps": self.steps,
            "process": self.process,
            "tuning": {"before": self.tuning_before.as_dict(), "after": self.tuning_after.as_dict()},
            "validation": {"before": self.validation_before.as_dict(), "after": self.validation_after.as_dict()},
            "default_ts": list(self.default_ts),
            "settings": self.settings,
        }

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the grid as JSON to ``path`` (atomically); an existing file is refused unless ``overwrite``."""
        path = Path(path)
        if path.is_dir():
            raise ValueError(f"{path} is a folder; expected a file name, e.g. {path / 'grid.json'}")
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it, or choose another name")
        atomic_write_bytes(path, (json.dumps(self.to_dict(), indent=2) + "\n").encode())
        return path


def _describe_process(spec: dict[str, Any]) -> str:
    cfg = spec.get("config", {})
    args = ", ".join(f"{k}={v!r}" for k, v in cfg.items() if not isinstance(v, (list, dict)))
    return f"{spec.get('name')}({args})"


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=_json_default))


# ------------------------------------------------------------------------------------------- loading
def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def load_tuned_grid(path: str | Path) -> TunedGrid:
    """Read a grid written by :meth:`TunedGrid.save` (``sdeflow tune-grid``), checking every field.

    Raises:
        ValueError: the file is not JSON or a field is missing or wrong; the message names the file and the field.
        FileNotFoundError: there is no such file.
    """
    from ..solvers import get as get_solver

    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; expected a tuned-grid JSON file written by sdeflow tune-grid")
    try:
        raw = json.loads(path.read_text())
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a text file ({err}); expected a tuned-grid JSON file written by sdeflow tune-grid") from err
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}); expected a tuned-grid file written by sdeflow tune-grid") from err

    def bad(name: str, what: str) -> ValueError:
        return ValueError(f"{path}: field {name!r} {what}; the file is damaged or not a tuned grid written by sdeflow tune-grid")

    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object; got {type(raw).__name__}; not a tuned grid written by sdeflow tune-grid")
    if raw.get("format") != FORMAT:
        raise bad("format", f"must be {FORMAT!r}; got {raw.get('format')!r}")
    if raw.get("version") != VERSION:
        raise bad("version", f"must be {VERSION}; got {raw.get('version')!r}")
    for key in ("ts", "levels", "solver", "solver_options", "nfe", "process", "tuning", "validation"):
        if key not in raw:
            raise bad(key, "is missing")

    ts = raw["ts"]
    if not (isinstance(ts, list) and len(ts) >= 3 and all(_is_number(v) and math.isfinite(v) for v in ts)):
        raise bad("ts", f"must be a list of at least 3 finite times; got {ts!r:.200}")
    try:
        validate_ts(ts, name="ts")
    except (TypeError, ValueError) as err:
        raise bad("ts", f"is not a time grid ({err})") from err
    if ts[-1] != 0:
        raise bad("ts", f"must end at t = 0; ends at {ts[-1]!r}")
    levels = raw["levels"]
    if not (isinstance(levels, list) and len(levels) == len(ts) - 2
            and all(_is_number(v) and math.isfinite(v) and v > 0 for v in levels)):
        raise bad("levels", f"must be {len(ts) - 2} positive finite noise levels (one per interior time); got {levels!r:.200}")
    if not all(a > b for a, b in zip(levels, levels[1:])):
        raise bad("levels", "must be strictly decreasing")
    solver, options = raw["solver"], raw["solver_options"]
    if not isinstance(solver, str):
        raise bad("solver", f"must be a solver name; got {solver!r}")
    if not isinstance(options, dict):
        raise bad("solver_options", f"must be an object of options; got {options!r}")
    try:
        solver_obj = get_solver(solver, **options)
    except (TypeError, ValueError) as err:
        raise bad("solver", f"with solver_options {options} is not a usable solver ({err})") from err
    nfe = raw["nfe"]
    if not (isinstance(nfe, int) and not isinstance(nfe, bool) and nfe >= 1):
        raise bad("nfe", f"must be an integer >= 1; got {nfe!r}")
    if solver_obj.nfe(torch.tensor(ts, dtype=torch.float64)) > nfe:
        raise bad("nfe", f"= {nfe} is below the {solver_obj.nfe(torch.tensor(ts, dtype=torch.float64))} model calls "
                         f"that {solver!r} makes on the {len(ts) - 1} steps of ts")
    proc = raw["process"]
    if not (isinstance(proc, dict) and isinstance(proc.get("name"), str) and isinstance(proc.get("config"), dict)):
        raise bad("process", f'must be {{"name": ..., "config": {{...}}}}; got {proc!r:.200}')
    scores = {}
    for part in ("tuning", "validation"):
        block = raw[part]
        if not isinstance(block, dict):
            raise bad(part, f"must be an object with 'before' and 'after'; got {block!r:.200}")
        for when in ("before", "after"):
            s = block.get(when)
            if not (isinstance(s, dict) and all(_is_number(s.get(k)) for k in ("objective", "rms", "median"))):
                raise bad(f"{part}.{when}", f"must hold numbers 'objective', 'rms' and 'median'; got {s!r:.200}")
            scores[(part, when)] = GridScore(float(s["objective"]), float(s["rms"]), float(s["median"]))
    default_ts = raw.get("default_ts", [])
    if not (isinstance(default_ts, list) and all(_is_number(v) for v in default_ts)):
        raise bad("default_ts", f"must be a list of times; got {default_ts!r:.200}")
    settings = raw.get("settings", {})
    if not isinstance(settings, dict):
        raise bad("settings", f"must be an object; got {settings!r:.200}")
    return TunedGrid(
        ts=tuple(float(v) for v in ts),
        levels=tuple(float(v) for v in levels),
        solver=solver,
        solver_options=_jsonable(solver_obj.options()),
        nfe=nfe,
        process=proc,
        tuning_before=scores[("tuning", "before")],
        tuning_after=scores[("tuning", "after")],
        validation_before=scores[("validation", "before")],
        validation_after=scores[("validation", "after")],
        default_ts=tuple(float(v) for v in default_ts),
        settings=settings,
    )


# -------------------------------------------------------------------------------------------- tuning
def _check_count(value: Any, name: str, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return value


def tune_grid(
    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    process,
    prediction: str | None,
    solver: Any,
    nfe: int,
    *,
    event_shape: Sequence[int],
    n_pilot: int = 64,
    n_validation: int = 64,
    seed: int = 0,
    max_iter: int = DEFAULT_MAX_ITER,
    progress: bool = True,
    median_weight: float = 0.3,
    reference_rtol: float = 1e-6,
    reference_t_min: float | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    **solver_options: Any,
) -> TunedGrid:
    """Tune the interior noise levels of ``solver``'s grid at ``nfe`` model calls for ``model``.

    Args:
        model: ``(x, t) -> prediction`` (``t`` of shape ``(batch,)``), e.g. a trained
            :class:`~sdeflow.training.DiffusionModel` or a target's exact model.
        process: the process the model was trained for; the grid is tied to it.
        prediction: ``eps``, ``x0``, ``v``, ``score`` or ``velocity`` (``None``: ``model.prediction``).
        solver: a deterministic fixed-grid solver name (or a configured solver object).
        nfe: the budget of model calls; the grid has as many steps as :func:`sdeflow.sample` takes
            for this solver and budget (at least 2).
        event_shape: the shape of one sample, e.g. ``(2,)`` or ``(1, 28, 28)``.
        n_pilot: noise draws the objective is minimized on (seeds ``seed, seed + 1, ...``).
        n_validation: held-out draws (seeds ``seed + 10**6, ...``) for the validation figures.
        seed: the first seed.
        max_iter: Nelder-Mead iterations (about 1.3 sampler runs each); with more than 9 steps half of
            them go to a 6-knot piecewise-linear profile of the log gaps first, half to every gap.
        progress: show a tqdm progress bar of the sampler runs.
        median_weight: ``w`` in the objective ``log RMS + w log median``.
        reference_rtol: ``rtol = atol`` of the adaptive reference solve (``1e-6``: about 230 model calls
            per reference on the ring target, errors of order 1e-8).
        reference_t_min: where the reference's adaptive solve ends before its final denoising step
            (default ``process.t_min``).
        dtype: the state's dtype (float32 for a float32 network; float64 for exact-score models).
        device: where the noise goes (the model's device).
        **solver_options: options of a solver given by name (``order=3``...).

    Returns:
        a :class:`TunedGrid`. If the optimizer finds nothing better on the pilot noise than the start,
        the tuned grid is the default grid.
    """
    from .. import sample as run_sampler
    from ..sample import _resolve_grid
    from ..solvers import get as get_solver
    from .optimized import optimize_grid

    solver_obj = get_solver(solver, **solver_options)
    if bool(solver_obj.stochastic):
        raise ValueError(
            f"solver {solver_obj.name!r} is stochastic; grids are tuned against the probability-flow ODE, so choose a "
            "deterministic solver (see `sdeflow solvers`)"
        )
    if getattr(solver_obj, "adaptive", False):
        raise ValueError(f"solver {solver_obj.name!r} chooses its own steps; there is no grid to tune")
    nfe = _check_count(nfe, "nfe", 1)
    n_pilot = _check_count(n_pilot, "n_pilot", 2)
    n_validation = _check_count(n_validation, "n_validation", 2)
    if n_pilot > VALIDATION_SEED_OFFSET:
        raise ValueError(f"n_pilot must be at most {VALIDATION_SEED_OFFSET} (validation seeds start there); got {n_pilot}")
    max_iter = _check_count(max_iter, "max_iter", 1)
    seed = _check_count(seed, "seed", 0)
    if not (isinstance(reference_rtol, (int, float)) and 0 < reference_rtol < 1e-3):
        raise ValueError(f"reference_rtol must lie in (0, 1e-3) (the reference must be far more accurate than the sampler); got {reference_rtol!r}")
    event_shape = check_event_shape(event_shape)
    if prediction is None:
        prediction = getattr(model, "prediction", None)

    # The grid sample() would use for this solver and budget: the starting point and the baseline.
    ts0 = _resolve_grid(None, process, None, nfe, solver_obj)
    ts0 = validate_ts(ts0, process)
    steps = len(ts0) - 1
    if float(ts0[-1]) != 0.0:
        raise ValueError(f"the default grid of {solver_obj.name!r} does not end at t = 0; cannot tune it")
    if steps < 2:
        raise ValueError(
            f"nfe={nfe} gives {solver_obj.name!r} a single step: there is no interior noise level to tune; raise nfe"
        )

    t_ref = float(process.t_min if reference_t_min is None else reference_t_min)
    if not 0.0 < t_ref < float(ts0[0]):
        raise ValueError(f"reference_t_min must lie in (0, {float(ts0[0])}); got {t_ref}")
    pilot_x = process.prior_sample((n_pilot, *event_shape), seeds=seed, dtype=dtype, device=device)
    val_x = process.prior_sample((n_validation, *event_shape), seeds=seed + VALIDATION_SEED_OFFSET, dtype=dtype, device=device)
    ref_grid = torch.tensor([float(ts0[0]), t_ref, 0.0], dtype=torch.float64)

    def on_grid(x: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return run_sampler(model, process, x, prediction=prediction, solver=solver_obj, grid=ts,
                               check_finite=False).samples

    bar = None
    if progress:
        from .._utils import progress_bar

        bar = progress_bar(desc=f"tuning grid ({solver_obj.name}, nfe {nfe})", unit="run")
        bar.set_postfix_str("reference ODE solves", refresh=False)
    try:
        with torch.no_grad():
            refs = [
                run_sampler(model, process, x, prediction=prediction, solver="adaptive_ode", grid=ref_grid,
                            rtol=reference_rtol, atol=reference_rtol).samples
                for x in (pilot_x, val_x)
            ]
        pilot_ref, val_ref = refs
        tuning_before = _score(on_grid(pilot_x, ts0), pilot_ref, median_weight)

        # Noise levels of the grid; the first one is kept fixed. Where the noise level at ts[0] is
        # infinite (rectified flow at t = 1) a finite stand-in above the first interior level plays its
        # part in the log gaps, and the first time stays ts[0].
        rho = process.noise_level(ts0[:-1]).to(torch.float64)
        rho_max = float(rho[0]) if math.isfinite(float(rho[0])) else float(rho[1]) * 1e3
        init_levels = [float(v) for v in rho[1:]]
        best = {"value": tuning_before.objective}

        def to_time(levels: list[float]) -> torch.Tensor:
            t = process.t_from_noise_level(torch.tensor(levels, dtype=torch.float64)).to(torch.float64)
            t[0] = ts0[0]  # the start stays exactly where sample() starts
            return t

        def run(ts: torch.Tensor) -> list[torch.Tensor]:
            out = on_grid(pilot_x, ts)
            if bar is not None:
                from .optimized import grid_objective

                value = grid_objective([out], [pilot_ref], median_weight)
                best["value"] = min(best["value"], value)
                bar.update(1)
                bar.set_postfix(J=f"{best['value']:.4f}", start=f"{tuning_before.objective:.4f}", refresh=False)
            return [out]

        if bar is not None:
            bar.set_postfix(J=f"{tuning_before.objective:.4f}", start=f"{tuning_before.objective:.4f}")
        knots = 6 if steps - 1 > 9 else None
        iters = max(1, max_iter // 2) if knots else max_iter
        levels, _ = optimize_grid(run, [pilot_ref], rho_max, init_levels, median_weight=median_weight,
                                  max_iter=iters, knots=knots, to_time=to_time)
        ts1 = validate_ts(torch.cat([to_time([rho_max] + list(levels)), torch.zeros(1, dtype=torch.float64)]), process)
        tuning_after = _score(on_grid(pilot_x, ts1), pilot_ref, median_weight)
        if not tuning_after.objective < tuning_before.objective:
            ts1, tuning_after = ts0, tuning_before  # nothing better found: keep the default grid
        validation_before = _score(on_grid(val_x, ts0), val_ref, median_weight)
        validation_after = _score(on_grid(val_x, ts1), val_ref, median_weight)
    finally:
        if bar is not None:
            bar.close()

    interior = process.noise_level(ts1[1:-1]).to(torch.float64)
    return TunedGrid(
        ts=tuple(float(v) for v in ts1),
        levels=tuple(float(v) for v in interior),
        solver=solver_obj.name,
        solver_options=_jsonable(solver_obj.options()),
        nfe=nfe,
        process=process_spec(process),
        tuning_before=tuning_before,
        tuning_after=tuning_after,
        validation_before=validation_before,
        validation_after=validation_after,
        default_ts=tuple(float(v) for v in ts0),
        settings={
            "prediction": prediction,
            "event_shape": list(event_shape),
            "n_pilot": n_pilot,
            "n_validation": n_validation,
            "pilot_seeds": [seed, seed + n_pilot - 1],
            "validation_seeds": [seed + VALIDATION_SEED_OFFSET, seed + VALIDATION_SEED_OFFSET + n_validation - 1],
            "max_iter": max_iter,
            "median_weight": median_weight,
            "reference": {"solver": "adaptive_ode", "rtol": reference_rtol, "atol": reference_rtol, "t_min": t_ref},
            "dtype": str(dtype).replace("torch.", ""),
        },
    )
