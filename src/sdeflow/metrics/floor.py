"""What "perfect" looks like: the two-sample floor of a distance, and one call that reports them all.

A distance between finite sample sets is not 0 even for a perfect model: two independent draws of
the same distribution are at a positive sliced/exact Wasserstein distance, their histograms differ,
their moments differ. The *two-sample floor* is the distribution of the same distance between two
independent draws of the reference at the same sample sizes; a model's value inside its interval
is indistinguishable from perfect at that sample size.

Draws come either from a sampler (exact, e.g. :class:`sdeflow.targets.GaussianMixture`) or from a
pool of reference samples, split into disjoint random subsets (disjoint subsets of an i.i.d. sample
are independent i.i.d. draws; with a finite pool the replicates overlap, so their spread is a
subsampling-bootstrap estimate).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Union

import numpy as np
import torch

from .._utils import check_int, progress_bar
from ._arrays import ArrayLike, as_pair, as_samples
from .divergence import histogram_edges, jensen_shannon, kl_divergence
from .gaussian import frechet_distance
from .kernel import energy_distance, median_bandwidth, mmd
from .transport import sliced_wasserstein2, wasserstein2

__all__ = ["Floor", "MetricResult", "Reference", "compare", "two_sample_floor", "METRIC_NAMES"]

Reference = Union[ArrayLike, Callable[[int, torch.Generator], Any], Any]
"""Samples ``(N, *event)``; an object with ``.sample(n, generator=...)``; or ``fn(n, generator)``."""

METRIC_NAMES: tuple[str, ...] = (
    "sliced_wasserstein2",
    "wasserstein2",
    "mmd",
    "energy_distance",
    "frechet_distance",
    "jensen_shannon",
    "kl_divergence",
)
"""Every distance :func:`compare` reports (the last two for 1-D and 2-D samples only)."""

_QUADRATIC = ("wasserstein2", "mmd", "energy_distance")


@dataclass(frozen=True)
class Floor:
    """The two-sample floor of a distance at sample sizes ``(n, m)``.

    Attributes:
        value: mean of the distance over ``n_boot`` pairs of independent reference draws.
        low, high: the central ``level`` percentile interval of those values: where a perfect
            sample's value falls with probability ``level``.
        std: standard deviation of the replicate values (``std / sqrt(n_boot)`` is the standard
            error of ``value``).
        n, m: sizes of the two draws; n_boot: number of pairs; level: interval level.
        values: every replicate value.
    """

    value: float
    low: float
    high: float
    std: float
    n: int
    m: int
    n_boot: int
    level: float
    values: tuple[float, ...] = field(repr=False)

    @property
    def stderr(self) -> float:
        """Standard error of :attr:`value`."""
        return self.std / math.sqrt(self.n_boot)

    def __str__(self) -> str:
        return (
            f"{self.value:.4g} [{self.low:.4g}, {self.high:.4g}] "
            f"({100 * self.level:.0f}%, n={self.n}, m={self.m}, {self.n_boot} pairs)"
        )


@dataclass(frozen=True)
class MetricResult:
    """One distance from :func:`compare`: its value on ``(n, m)`` points and, with a reference, its floor.

    ``float(result)`` is the value. :attr:`within_floor` says whether the value lies at or below
    the floor's upper end (indistinguishable from perfect at this sample size).
    """

    name: str
    value: float
    n: int
    m: int
    floor: Floor | None = None

    def __float__(self) -> float:
        return self.value

    @property
    def within_floor(self) -> bool | None:
        """``value <= floor.high``, or ``None`` without a floor."""
        return None if self.floor is None else self.value <= self.floor.high

    def __str__(self) -> str:
        s = f"{self.name} = {self.value:.4g} (n={self.n}, m={self.m})"
        return s if self.floor is None else f"{s}; floor {self.floor}"


def _summarize(values: list[float], n: int, m: int, level: float) -> Floor:
    arr = np.asarray(values, dtype=np.float64)
    lo, hi = np.percentile(arr, [50 * (1 - level), 50 * (1 + level)])
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return Floor(float(arr.mean()), float(lo), float(hi), std, n, m, arr.size, level, tuple(float(v) for v in arr))


def _draw_pairs(reference: Reference, n: int, m: int, n_boot: int, seed: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``n_boot`` pairs of independent reference draws of sizes ``n`` and ``m`` (float64 ``(., d)``)."""
    if isinstance(reference, (torch.Tensor, np.ndarray)):
        pool = as_samples(reference, "reference")
        if pool.shape[0] < n + m:
            raise ValueError(
                f"the reference holds {pool.shape[0]} samples but a floor at sizes n = {n}, m = {m} needs "
                f"{n + m} (two disjoint draws); pass more reference samples, a sampler "
                "(an object with .sample(n, generator=...)), or smaller n"
            )
        rng = np.random.default_rng(seed)
        for _ in range(n_boot):
            perm = rng.permutation(pool.shape[0])
            yield pool[perm[:n]], pool[perm[n : n + m]]
        return
    if hasattr(reference, "sample") and callable(reference.sample):
        draw = lambda k, g: reference.sample(k, generator=g)  # noqa: E731
    elif callable(reference):
        draw = reference
    else:
        raise TypeError(
            "reference must be samples (a tensor or array of shape (N, *event)), an object with "
            f".sample(n, generator=...), or a callable (n, generator) -> samples; got {type(reference).__name__}"
        )
    for s in np.random.SeedSequence(seed).generate_state(n_boot, dtype=np.uint64):
        gen = torch.Generator().manual_seed(int(s) & 0x7FFF_FFFF_FFFF_FFFF)
        yield as_samples(draw(n, gen), "reference sample"), as_samples(draw(m, gen), "reference sample")


def _check_level(level: float) -> float:
    if not isinstance(level, (int, float)) or not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), e.g. 0.95; got {level!r}")
    return float(level)


def two_sample_floor(
    metric: Callable[[np.ndarray, np.ndarray], float] | str,
    reference: Reference,
    n: int,
    *,
    m: int | None = None,
    n_boot: int = 100,
    seed: int = 0,
    level: float = 0.95,
    progress: bool = False,
) -> Floor:
    """The distance ``metric`` between two independent draws of the reference, ``n_boot`` times.

    Args:
        metric: a callable ``(x, y) -> float`` (any function of this package, or a
            ``functools.partial`` of one with fixed options), or one of :data:`METRIC_NAMES`.
        reference: reference samples ``(N, *event)`` (split into disjoint random subsets of sizes
            ``n`` and ``m``; needs ``N >= n + m``), an object with ``.sample(n, generator=...)`` (such
            as :class:`sdeflow.targets.GaussianMixture`), or a callable ``(n, generator) -> samples``.
        n: size of the first draw (use the size of the sample you evaluate).
        m: size of the second draw (default ``n``; use the size of the data you compare against).
        n_boot: number of independent pairs (cost: ``n_boot`` metric evaluations).
        seed: seed of the draws (a ``torch.Generator`` per pair for samplers, a numpy generator for
            permutations of a pool); never the global generator.
        level: level of the percentile interval (default 0.95).
        progress: show a tqdm progress bar.

    Returns:
        :class:`Floor` with the mean, the ``level`` percentile interval and the replicate values.
    """
    if isinstance(metric, str):
        if metric not in _FUNCTIONS:
            raise ValueError(f"unknown metric {metric!r}; expected a callable or one of {list(METRIC_NAMES)}")
        metric = _FUNCTIONS[metric]
    if not callable(metric):
        raise TypeError(f"metric must be callable as metric(x, y) -> float; got {type(metric).__name__}")
    n = check_int(n, "n", minimum=2)
    m = n if m is None else check_int(m, "m", minimum=2)
    n_boot = check_int(n_boot, "n_boot", minimum=2)
    seed = check_int(seed, "seed", minimum=0)
    level = _check_level(level)
    pairs = progress_bar(_draw_pairs(reference, n, m, n_boot, seed), total=n_boot, desc="two-sample floor", disable=not progress)
    return _summarize([float(metric(a, b)) for a, b in pairs], n, m, level)


_FUNCTIONS: Mapping[str, Callable[..., float]] = {
    "sliced_wasserstein2": sliced_wasserstein2,
    "wasserstein2": wasserstein2,
    "mmd": mmd,
    "energy_distance": energy_distance,
    "frechet_distance": frechet_distance,
    "jensen_shannon": jensen_shannon,
    "kl_divergence": kl_divergence,
}


def _subset(a: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    return a if a.shape[0] <= k else a[np.sort(rng.choice(a.shape[0], size=k, replace=False))]


def compare(
    x: ArrayLike,
    y: ArrayLike,
    reference: Reference | None = None,
    *,
    metrics: tuple[str, ...] | list[str] | None = None,
    n_boot: int = 20,
    seed: int = 0,
    max_points: int = 2000,
    level: float = 0.95,
    progress: bool = False,
) -> dict[str, MetricResult]:
    """Every distance of this package between ``x`` and ``y``, each with its floor given a reference.

    Options are fixed once from ``(x, y)`` and used for the value and every floor replicate, so
    they are comparable: the MMD bandwidths (0.25..4 times the median distance of ``y``), the sliced
    directions (``seed``) and the histogram bins (the rule of :mod:`sdeflow.metrics.divergence` on
    ``x u y``; floor draws outside that range land in the "outside" cell).
    The quadratic-cost distances (``wasserstein2``, ``mmd``, ``energy_distance``) use random subsets
    of at most ``max_points`` points of each set (recorded in ``MetricResult.n, .m``); the others use
    all points. ``jensen_shannon`` and ``kl_divergence`` (``KL(x || y)``) are computed for 1-D and 2-D
    samples only; ``frechet_distance`` needs at least 2 points.

    Args:
        x: ``(n, *event_shape)`` samples, e.g. from a model.
        y: ``(m, *event_shape)`` samples, e.g. data.
        reference: ``None`` (no floors), reference samples, or a sampler (see :func:`two_sample_floor`);
            floors are at the sizes ``(n, m)`` used for each distance. One set of ``n_boot`` pairs is
            drawn and shared by every distance.
        metrics: names from :data:`METRIC_NAMES` (default all that apply).
        n_boot: pairs for the floors (each costs one evaluation of every distance).
        seed: seed of directions, subsets and floor draws.
        max_points: subset size for the quadratic-cost distances.
        level: floor interval level.
        progress: progress bar over floor pairs.

    Returns:
        ``{name: MetricResult}`` in the order of :data:`METRIC_NAMES`.
    """
    xa, ya = as_pair(x, y, min_n=2)
    seed = check_int(seed, "seed", minimum=0)
    max_points = check_int(max_points, "max_points", minimum=2)
    n_boot = check_int(n_boot, "n_boot", minimum=2)  # checked without a reference too (not silently unused)
    level = _check_level(level)
    d = xa.shape[1]
    names = [k for k in METRIC_NAMES if d <= 2 or k not in ("jensen_shannon", "kl_divergence")]
    if metrics is not None:
        unknown = [k for k in metrics if k not in METRIC_NAMES]
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; expected names from {list(METRIC_NAMES)}")
        if d > 2 and any(k in ("jensen_shannon", "kl_divergence") for k in metrics):
            raise ValueError(f"jensen_shannon and kl_divergence need 1-D or 2-D samples; got d = {d}")
        names = [k for k in METRIC_NAMES if k in metrics]

    fns: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {}
    for k in names:
        if k == "sliced_wasserstein2":
            fns[k] = lambda a, b: sliced_wasserstein2(a, b, seed=seed)
        elif k == "mmd":
            bw = median_bandwidth(ya, ya)
            fns[k] = lambda a, b, bw=bw: mmd(a, b, bandwidths=[f * bw for f in (0.25, 0.5, 1.0, 2.0, 4.0)])
        elif k in ("jensen_shannon", "kl_divergence"):
            edges = histogram_edges(xa, ya)
            opts = {"bins": [len(e) - 1 for e in edges], "range": [(e[0], e[-1]) for e in edges]}
            fns[k] = lambda a, b, f=_FUNCTIONS[k], o=opts: f(a, b, **o)
        else:
            fns[k] = _FUNCTIONS[k]

    def sizes(k: str, a: int, b: int) -> tuple[int, int]:
        return (min(a, max_points), min(b, max_points)) if k in _QUADRATIC else (a, b)

    def evaluate(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> dict[str, float]:
        out = {}
        for k in names:
            na, nb = sizes(k, a.shape[0], b.shape[0])
            out[k] = float(fns[k](_subset(a, na, rng), _subset(b, nb, rng)))
        return out

    values = evaluate(xa, ya, np.random.default_rng(seed))
    floors: dict[str, Floor] = {}
    if reference is not None:
        n_boot = check_int(n_boot, "n_boot", minimum=2)
        reps: dict[str, list[float]] = {k: [] for k in names}
        pairs = _draw_pairs(reference, xa.shape[0], ya.shape[0], n_boot, seed)
        for i, (a, b) in enumerate(progress_bar(pairs, total=n_boot, desc="two-sample floors", disable=not progress)):
            for k, v in evaluate(a, b, np.random.default_rng([seed, i + 1])).items():
                reps[k].append(v)
        floors = {k: _summarize(reps[k], *sizes(k, xa.shape[0], ya.shape[0]), level) for k in names}
    return {
        k: MetricResult(k, values[k], *sizes(k, xa.shape[0], ya.shape[0]), floors.get(k)) for k in names
    }
