"""Posterior sampling shared out over the processes of a ``torch.distributed`` run, by seed.

:func:`posterior_sample` draws every random number of a call from one generator, so its samples
depend on what else is in the batch. :func:`posterior_sample_sharded` cuts the work into *units*
whose randomness is their own, fixed by global index and never by rank, the pattern of
:func:`sdeflow.distributed.sample_seed_range`:

* the samples form the grid ``(m measurements, n_samples)``; sample ``(i, s)`` has the flat index
  ``g = i * n_samples + s``;
* a unit is a run of ``posterior_sample`` on a block of that grid, seeded by ``seed + g0`` with ``g0``
  the flat index of its first sample: ``observations`` whole measurements (all their samples), or,
  for methods whose samples do not interact, ``samples_per_unit`` samples of one measurement;
* each process runs a contiguous run of whole units (:func:`sdeflow.distributed.my_chunks`) and the
  samples are gathered in flat order on every process.

A unit is the same computation whatever the number of processes, so the samples are bit for bit
those of one process with the same units. Particle methods (``tds``, ``mcgdiff``: the particles of one
measurement are reweighted and resampled together, Cardoso et al. 2024) are sharded over
measurements only; their populations are never split.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from .. import distributed as dist_utils
from .._utils import check_int
from ..processes.base import DiffusionProcess
from .base import PosteriorMethod, get_method
from .operators import Operator
from .posterior import PosteriorResult, posterior_sample

__all__ = ["posterior_sample_sharded", "posterior_units"]


def posterior_units(m: int, n_samples: int, *, observations: int = 1, samples_per_unit: int | None = None) -> list[tuple[int, int, int, int]]:
    """The units ``(first measurement, last + 1, first sample, last + 1)`` of an ``(m, n_samples)`` grid, in flat order.

    ``samples_per_unit=None``: blocks of ``observations`` measurements with all their samples; otherwise
    (``observations`` must be 1) blocks of ``samples_per_unit`` samples of one measurement.
    """
    check_int(m, "m")
    check_int(n_samples, "n_samples")
    check_int(observations, "observations")
    if samples_per_unit is None:
        return [(a, b, 0, n_samples) for a, b in dist_utils.chunk_bounds(m, observations)]
    check_int(samples_per_unit, "samples_per_unit")
    if observations != 1:
        raise ValueError(
            f"samples_per_unit={samples_per_unit} splits the samples of one measurement: a unit then holds one "
            f"measurement, so observations must be 1; got observations={observations}"
        )
    return [(i, i + 1, s, t) for i in range(m) for s, t in dist_utils.chunk_bounds(n_samples, samples_per_unit)]


def posterior_sample_sharded(
    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    process: DiffusionProcess,
    operator: Operator,
    y: torch.Tensor,
    *,
    method: str | PosteriorMethod,
    n_samples: int = 1,
    seed: int = 0,
    observations: int = 1,
    samples_per_unit: int | None = None,
    progress: bool = False,
    **kwargs: Any,
) -> PosteriorResult:
    """``n_samples`` posterior samples for each measurement of ``y``, the units shared out over processes.

    Call it on every process of a ``torch.distributed`` run (or in a plain single process: the same
    samples). Every argument of :func:`~sdeflow.inverse.posterior_sample` but ``return_trajectory``
    passes through ``kwargs`` (``steps``, ``nfe``, ``particles``, ``dtype``, the method's options...).

    Args:
        model, process, operator, y, method, n_samples: as :func:`~sdeflow.inverse.posterior_sample`;
            ``y`` is ``(m, *measurement_shape)``.
        seed: unit ``u`` (first sample of flat index ``g0 = i0 * n_samples + s0``) runs with seed ``seed + g0``.
        observations: measurements per unit (default 1: each measurement's randomness is its own seed's).
        samples_per_unit: split each measurement's samples into units of this many (methods whose samples
            are independent given ``y``: ``dps``, ``pigdm``, ``ddrm``, ``ddnm``, ``repaint``, ``daps``); refused
            for particle methods, whose population of one measurement interacts.
        progress: a bar over this process's units on rank 0.

    Returns:
        :class:`PosteriorResult`: ``samples`` ``(m, n_samples, *event_shape)`` on every process, ``nfe``
        the model calls of all units together (each call batched over one unit), ``ts`` the grid, and for
        particle methods ``ess`` ``(len(schedule), m)`` and ``resampled`` summed over the units.
    """
    if "return_trajectory" in kwargs:
        raise ValueError("return_trajectory is not available in posterior_sample_sharded (only the samples are gathered)")
    meth = get_method(method)  # a name or a configured object; the method's options travel in kwargs
    if meth.particle and samples_per_unit is not None:
        raise ValueError(
            f"method {meth.name!r} is a particle method: the particles of one measurement are reweighted and resampled "
            "together, so its work is shared out by measurements (observations=...), never split by samples_per_unit"
        )
    if not isinstance(y, torch.Tensor) or y.ndim < 2 or y.shape[0] < 1:
        raise ValueError(f"y must be a tensor (m, *measurement_shape) with m >= 1; got {getattr(y, 'shape', type(y).__name__)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0; got {seed!r}")
    m = y.shape[0]
    n_samples = check_int(n_samples, "n_samples")
    units = posterior_units(m, n_samples, observations=observations, samples_per_unit=samples_per_unit)
    mine = [units[u] for u in dist_utils.shard_range(len(units), dist_utils.rank(), dist_utils.world_size())]
    bar = None
    if progress and dist_utils.is_main():
        from .._utils import progress_bar

        bar = progress_bar(total=len(mine), desc=f"posterior units ({meth.name})", unit="unit")
    rows, infos = [], []
    try:
        for a, b, s, t in mine:
            res = posterior_sample(model, process, operator, y[a:b], method=method, n_samples=t - s,
                                   seed=seed + a * n_samples + s, **kwargs)
            rows.append(res.samples.reshape((-1,) + tuple(res.samples.shape[2:])))
            infos.append((res.nfe, res.ts, res.ess, res.resampled))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if not rows:  # a process without units still joins the gather, with zero rows of the right kind
        ev = tuple(operator.event_shape_for(tuple(y.shape[1:])))
        rows = [torch.zeros((0,) + ev, dtype=kwargs.get("dtype", torch.float32), device=kwargs.get("device") or y.device)]
    flat = dist_utils.gather_rows(torch.cat(rows), m * n_samples)
    everything = dist_utils.gather_objects(infos)
    ess = [e for _, _, e, _ in everything]
    return PosteriorResult(
        samples=flat.reshape((m, n_samples) + tuple(flat.shape[1:])),
        nfe=sum(nfe for nfe, _, _, _ in everything),
        ts=everything[0][1],
        ess=torch.cat(ess, dim=1) if samples_per_unit is None and all(e is not None for e in ess) else None,
        resampled=sum(r for _, _, _, r in everything),
    )
