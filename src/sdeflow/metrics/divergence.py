"""Jensen-Shannon and Kullback-Leibler divergences: between 1-D/2-D sample sets and between gridded densities.

Sample sets are binned on **shared** bins and compared as discrete distributions:

* **Bin rule** (:func:`histogram_edges`, applied per axis, ``d`` = 1 or 2, ``n = min(n_x, n_y)``):
  the Freedman-Diaconis width ``h = 2 IQR n^{-1/(d+2)}`` (Freedman & Diaconis 1981 for ``d = 1``,
  ``n^{-1/3}``; the exponent ``-1/(d+2)`` is the optimal histogram rate in ``d`` dimensions, Scott
  1992, ch. 3) on the pooled samples, ``k = ceil(range / h)`` bins, capped at
  ``ceil(n^{1/(d+1)})`` per axis (``sqrt(n)`` bins in 1-D, ``n^{1/3}`` per axis in 2-D, so that a
  cell holds at least ``~n^{1/(d+1)}`` points on average). The range is the pooled min/max unless
  given; with a given range, points outside it go to one extra "outside" cell per set, so no mass
  is dropped.
* **JSD** ``= 1/2 KL(P || M) + 1/2 KL(Q || M)``, ``M = (P + Q)/2``, in nats, with ``0 log 0 = 0``.
  It needs no smoothing (``M > 0`` wherever ``P`` or ``Q`` is), lies in ``[0, log 2]``, is 0 for
  identical histograms and ``log 2`` for disjoint supports. It is symmetric.
* **KL** ``= sum P log(P / Q)`` with **epsilon smoothing**: ``eps`` (default ``1e-10``) is added to
  every cell's probability of both histograms, which are then renormalized
  (``P' = (P + eps) / (1 + K eps)`` over ``K`` cells), so an empty cell of ``Q`` under mass of ``P``
  costs ``~ P log(P / eps)`` instead of infinity.

Histogram estimates are biased upward by the finite sample (empty and noisy cells): compare them
with :func:`sdeflow.metrics.two_sample_floor`, the same number between two draws of the reference.
"""

from __future__ import annotations

import math
from typing import Sequence, Union

import numpy as np

from ._arrays import ArrayLike, as_pair, to_numpy

__all__ = [
    "histogram_edges",
    "histograms",
    "jensen_shannon",
    "jensen_shannon_density",
    "jensen_shannon_masses",
    "kl_density",
    "kl_divergence",
    "kl_masses",
]

Bins = Union[int, Sequence[int], None]
Range = Union[Sequence[float], Sequence[Sequence[float]], None]

LOG2 = math.log(2.0)


def _check_range(range_: Range, d: int) -> list[tuple[float, float]] | None:
    if range_ is None:
        return None
    r = np.asarray(range_, dtype=np.float64)
    if d == 1 and r.shape == (2,):
        r = r.reshape(1, 2)
    if r.shape != (d, 2) or not np.all(np.isfinite(r)) or np.any(r[:, 1] <= r[:, 0]):
        raise ValueError(
            f"range must be (lo, hi) with lo < hi for 1-D samples or ((lo, hi), (lo, hi)) for 2-D; "
            f"got {range_!r} for d = {d}"
        )
    return [(float(lo), float(hi)) for lo, hi in r]


def histogram_edges(x: ArrayLike, y: ArrayLike, *, bins: Bins = None, range: Range = None) -> list[np.ndarray]:
    """The shared bin edges of two 1-D or 2-D sample sets (one array of edges per axis).

    Args:
        x: ``(n,)``, ``(n, 1)`` or ``(n, 2)`` samples.
        y: ``(m,)``, ``(m, 1)`` or ``(m, 2)`` samples.
        bins: ``None`` for the rule of this module (Freedman-Diaconis ``2 IQR n^{-1/(d+2)}``, capped
            at ``ceil(n^{1/(d+1)})`` bins per axis), an int for every axis, or one int per axis.
        range: ``(lo, hi)`` (1-D) or ``((lo, hi), (lo, hi))`` (2-D); default the pooled min/max.

    Returns:
        ``d`` arrays of increasing edges.
    """
    xa, ya = as_pair(x, y)
    d = xa.shape[1]
    if d not in (1, 2):
        raise ValueError(
            f"histogram divergences need 1-D or 2-D samples; got d = {d}. In higher dimension use "
            "sliced_wasserstein2, mmd or energy_distance, or project the samples first"
        )
    pooled = np.concatenate([xa, ya])
    n = min(xa.shape[0], ya.shape[0])
    ranges = _check_range(range, d)
    if ranges is None:
        lo, hi = pooled.min(axis=0), pooled.max(axis=0)
        ranges = [(float(a), float(b)) if b > a else (float(a) - 0.5, float(a) + 0.5) for a, b in zip(lo, hi)]
    if bins is None:
        cap = max(1, math.ceil(n ** (1.0 / (d + 1))))
        counts = []
        for k, (a, b) in enumerate(ranges):
            q75, q25 = np.percentile(pooled[:, k], [75, 25])
            h = 2.0 * (q75 - q25) * n ** (-1.0 / (d + 2))
            counts.append(cap if h <= 0 else int(min(max(math.ceil((b - a) / h), 1), cap)))
    else:
        counts = [bins] * d if isinstance(bins, (int, np.integer)) else list(bins)
        if len(counts) != d or any(isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 1 for c in counts):
            raise ValueError(f"bins must be a positive int or {d} positive ints (one per axis); got {bins!r}")
    return [np.linspace(a, b, int(c) + 1) for (a, b), c in zip(ranges, counts)]


def histograms(
    x: ArrayLike, y: ArrayLike, *, bins: Bins = None, range: Range = None
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Probability masses of ``x`` and ``y`` on shared bins (see :func:`histogram_edges`).

    Returns:
        ``(P, Q, edges)``: ``P`` and ``Q`` are flat arrays of ``K`` cell probabilities (each sums to
        1); when ``range`` is given the last entry is the mass outside the range.
    """
    xa, ya = as_pair(x, y)
    edges = histogram_edges(xa, ya, bins=bins, range=range)
    outside = range is not None
    masses = []
    for s in (xa, ya):
        counts, _ = np.histogramdd(s, bins=edges)
        flat = counts.reshape(-1)
        if outside:
            flat = np.concatenate([flat, [s.shape[0] - flat.sum()]])
        masses.append(flat / s.shape[0])
    return masses[0], masses[1], edges


def jensen_shannon_masses(p: np.ndarray, q: np.ndarray) -> float:
    """JSD (nats) between two discrete distributions given as arrays of masses of the same shape."""
    m = 0.5 * (p + q)
    total = 0.0
    for a in (p, q):
        pos = a > 0
        total += 0.5 * float(np.sum(a[pos] * (np.log(a[pos]) - np.log(m[pos]))))
    return float(min(max(total, 0.0), LOG2))


def kl_masses(p: np.ndarray, q: np.ndarray, eps: float = 0.0) -> float:
    """``KL(P || Q)`` (nats) between mass arrays, after adding ``eps`` to every cell and renormalizing.

    With ``eps = 0`` the result is ``inf`` when ``Q = 0`` somewhere ``P > 0``.
    """
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be a finite number >= 0; got {eps!r}")
    if eps > 0:
        p = (p + eps) / (1.0 + p.size * eps)
        q = (q + eps) / (1.0 + q.size * eps)
    pos = p > 0
    if np.any(q[pos] <= 0):
        return math.inf
    return float(max(np.sum(p[pos] * (np.log(p[pos]) - np.log(q[pos]))), 0.0))


def jensen_shannon(x: ArrayLike, y: ArrayLike, *, bins: Bins = None, range: Range = None) -> float:
    """Jensen-Shannon divergence (nats, in ``[0, log 2]``) between 1-D or 2-D sample sets.

    The histograms share the bins of :func:`histogram_edges` (rule in the module docstring); no
    smoothing is needed. Symmetric; 0 for identical samples, ``log 2`` for disjoint supports.

    Args:
        x: ``(n,)``, ``(n, 1)`` or ``(n, 2)`` samples (torch or numpy).
        y: ``(m,)``, ``(m, 1)`` or ``(m, 2)`` samples.
        bins, range: see :func:`histogram_edges`.
    """
    p, q, _ = histograms(x, y, bins=bins, range=range)
    return jensen_shannon_masses(p, q)


def kl_divergence(
    x: ArrayLike, y: ArrayLike, *, bins: Bins = None, range: Range = None, eps: float = 1e-10
) -> float:
    """``KL(P_x || P_y)`` (nats) between the histograms of 1-D or 2-D sample sets.

    Shared bins of :func:`histogram_edges`; ``eps`` smoothing of both histograms as stated in the
    module docstring (``eps = 0`` gives ``inf`` when ``y`` has an empty cell where ``x`` has mass).
    Not symmetric.

    Args:
        x: ``(n,)``, ``(n, 1)`` or ``(n, 2)`` samples.
        y: ``(m,)``, ``(m, 1)`` or ``(m, 2)`` samples.
        bins, range: see :func:`histogram_edges`.
        eps: probability added to every cell before renormalizing (default ``1e-10``).
    """
    p, q, _ = histograms(x, y, bins=bins, range=range)
    return kl_masses(p, q, eps)


def _grid_masses(p: ArrayLike, q: ArrayLike, cell_area: float | ArrayLike, normalize: bool) -> tuple[np.ndarray, np.ndarray]:
    pa = to_numpy(p, "p")
    qa = to_numpy(q, "q")
    if pa.shape != qa.shape:
        raise ValueError(f"p and q must be densities on the same grid; got shapes {pa.shape} and {qa.shape}")
    area = to_numpy(cell_area, "cell_area")
    if np.any(area <= 0) or (area.ndim and area.shape != pa.shape):
        raise ValueError(f"cell_area must be > 0, a number or an array of the grid's shape {pa.shape}; got {cell_area!r}")
    out = []
    for name, a in (("p", pa), ("q", qa)):
        scale = float(np.max(np.abs(a))) if a.size else 0.0
        if np.any(a < -1e-12 * scale):
            raise ValueError(f"{name} must be a non-negative density; its minimum is {float(a.min()):.3g}")
        mass = np.clip(a, 0.0, None) * area
        total = float(mass.sum())
        if total <= 0:
            raise ValueError(f"{name} has zero mass on the grid; pass a density that is positive somewhere")
        if normalize:
            mass = mass / total
        elif abs(total - 1.0) > 1e-3:
            raise ValueError(
                f"{name} has mass {total:.6g} on the grid with normalize=False; pass normalize=True to "
                "compare the densities restricted to the grid, or check cell_area"
            )
        out.append(mass.reshape(-1))
    return out[0], out[1]


def jensen_shannon_density(p: ArrayLike, q: ArrayLike, cell_area: float | ArrayLike, *, normalize: bool = True) -> float:
    """Jensen-Shannon divergence (nats, ``[0, log 2]``) between two densities on the same grid.

    Cell masses are ``p * cell_area`` and ``q * cell_area`` (midpoint rule), renormalized to unit
    total on the grid when ``normalize`` (the default: mass outside the grid is ignored).

    Args:
        p, q: non-negative densities, the same shape (a 1-D or 2-D grid, any shape works).
        cell_area: the cell length (1-D), area (2-D), or an array of per-cell measures.
        normalize: rescale each to unit mass; with ``False`` each must have mass ``1 +- 1e-3``.
    """
    pm, qm = _grid_masses(p, q, cell_area, normalize)
    return jensen_shannon_masses(pm, qm)


def kl_density(
    p: ArrayLike, q: ArrayLike, cell_area: float | ArrayLike, *, normalize: bool = True, eps: float = 0.0
) -> float:
    """``KL(p || q)`` (nats) between two densities on the same grid (cell masses as in
    :func:`jensen_shannon_density`); ``eps`` smoothing as :func:`kl_masses` (default none: ``inf``
    if ``q`` vanishes where ``p`` has mass)."""
    pm, qm = _grid_masses(p, q, cell_area, normalize)
    return kl_masses(pm, qm, eps)
