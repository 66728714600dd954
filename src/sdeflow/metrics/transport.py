"""Optimal-transport distances between sample sets: sliced and exact Wasserstein-2.

For empirical measures ``mu = (1/n) sum delta_{x_i}`` and ``nu = (1/m) sum delta_{y_j}``,

* ``W2(mu, nu)^2 = min_pi sum_ij pi_ij |x_i - y_j|^2`` over couplings with uniform marginals,
  solved exactly by the network simplex of POT (``ot.emd2``; Bonneel et al. 2011),
* ``SW2(mu, nu)^2 = E_theta W2(theta#mu, theta#nu)^2`` over directions ``theta`` uniform on the
  sphere (Rabin et al. 2011; Bonneel et al. 2015), estimated with ``n_projections`` random
  directions; each 1-D ``W2`` is exact: ``int_0^1 (F^-1(u) - G^-1(u))^2 du`` between the step
  quantile functions of the projected samples.

Both return the distance (the square root), in the units of the samples.
"""

from __future__ import annotations

import numpy as np

from .._utils import check_int
from ._arrays import ArrayLike, as_pair

__all__ = ["sliced_wasserstein2", "wasserstein2", "wasserstein2_1d_squared"]


def wasserstein2_1d_squared(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Exact squared ``W2`` between 1-D empirical measures, column by column.

    Args:
        xs: ``(n, L)`` sorted along axis 0 (``L`` independent 1-D sample sets).
        ys: ``(m, L)`` sorted along axis 0.

    Returns:
        ``(L,)``: ``int_0^1 (F^-1(u) - G^-1(u))^2 du``. With ``n = m`` this is the mean squared
        difference of the sorted samples; otherwise the two step quantile functions are merged at
        the union of their jump levels ``{i/n} u {j/m}`` and integrated piece by piece (exact, the
        monotone "quantile" coupling; ``n + m - gcd(n, m)`` pieces).
    """
    n, m = xs.shape[0], ys.shape[0]
    if n == m:
        return np.mean((xs - ys) ** 2, axis=0)
    levels = np.union1d(np.arange(1, n + 1) / n, np.arange(1, m + 1) / m)
    levels = np.concatenate(([0.0], levels))
    widths = np.diff(levels)
    mid = 0.5 * (levels[:-1] + levels[1:])
    # On (u_k, u_{k+1}) the quantile function of n sorted points is the point of index floor(u n).
    ix = np.minimum((mid * n).astype(np.int64), n - 1)
    iy = np.minimum((mid * m).astype(np.int64), m - 1)
    return widths @ (xs[ix] - ys[iy]) ** 2


def sliced_wasserstein2(x: ArrayLike, y: ArrayLike, *, n_projections: int = 256, seed: int = 0) -> float:
    """Sliced Wasserstein-2 distance between two sample sets (Monte Carlo over directions).

    ``SW2 = sqrt( (1/L) sum_l W2(<theta_l, x>, <theta_l, y>)^2 )`` with ``L = n_projections``
    directions ``theta_l`` drawn uniformly on the unit sphere from ``numpy.random.default_rng(seed)``
    (the same directions for every call with the same ``seed`` and dimension, so values are
    comparable). Each 1-D distance is exact (:func:`wasserstein2_1d_squared`), also for ``n != m``.
    The Monte Carlo error over directions is ``O(L^{-1/2})`` relative; for ``d = 1`` the result is
    the exact ``W2``. Cost ``O(L (n log n + m log m) + (n + m) d L)``.

    Args:
        x: ``(n, *event_shape)`` or ``(n,)`` samples (torch or numpy).
        y: ``(m, *event_shape)`` or ``(m,)`` samples with the same event size.
        n_projections: number of random directions ``L`` (ignored for ``d = 1``).
        seed: seed of the directions.

    Returns:
        The sliced Wasserstein-2 distance (float, units of the samples).
    """
    xa, ya = as_pair(x, y)
    n_projections = check_int(n_projections, "n_projections")
    seed = check_int(seed, "seed", minimum=0)
    d = xa.shape[1]
    if d == 1:
        theta = np.ones((1, 1))
    else:
        theta = np.random.default_rng(seed).standard_normal((d, n_projections))
        theta /= np.linalg.norm(theta, axis=0, keepdims=True)
    xs = np.sort(xa @ theta, axis=0)
    ys = np.sort(ya @ theta, axis=0)
    return float(np.sqrt(max(float(np.mean(wasserstein2_1d_squared(xs, ys))), 0.0)))


def wasserstein2(x: ArrayLike, y: ArrayLike, *, max_points: int = 10_000, num_iter_max: int = 10_000_000) -> float:
    """Exact Wasserstein-2 distance between two empirical measures with uniform weights (POT).

    Solves the discrete optimal-transport problem ``min_pi sum_ij pi_ij |x_i - y_j|^2`` with
    ``pi 1 = 1/n``, ``pi^T 1 = 1/m`` by the network simplex (``ot.emd2``) and returns its square
    root. The cost matrix is ``n x m`` float64 (800 MB at 10,000 x 10,000) and the simplex is
    roughly cubic, so sample sets are limited to ``max_points`` points each.

    Args:
        x: ``(n, *event_shape)`` or ``(n,)`` samples.
        y: ``(m, *event_shape)`` or ``(m,)`` samples.
        max_points: largest ``n`` or ``m`` accepted (default 10,000).
        num_iter_max: iteration cap of the network simplex; reaching it raises ``RuntimeError``.

    Returns:
        ``W2`` (float, units of the samples).

    Raises:
        ValueError: if ``n`` or ``m`` exceeds ``max_points`` (subsample, or use
            :func:`sliced_wasserstein2`, which scales to millions of points).
    """
    import ot  # POT, the optimal-transport library (dependency "pot").

    xa, ya = as_pair(x, y)
    max_points = check_int(max_points, "max_points")
    if max(xa.shape[0], ya.shape[0]) > max_points:
        raise ValueError(
            f"wasserstein2 solves an exact n x m transport problem; got n = {xa.shape[0]}, m = {ya.shape[0]} "
            f"points, more than max_points = {max_points}. Subsample both sets (e.g. x[:{max_points}]), "
            "use sliced_wasserstein2 for large sets, or raise max_points if you have the memory "
            "(8 n m bytes) and time"
        )
    a = np.full(xa.shape[0], 1.0 / xa.shape[0])
    b = np.full(ya.shape[0], 1.0 / ya.shape[0])
    cost = ot.dist(xa, ya, metric="sqeuclidean")
    value, log = ot.emd2(a, b, cost, numItermax=num_iter_max, log=True)
    if log.get("warning"):
        raise RuntimeError(
            f"the network simplex did not finish ({log['warning']}); raise num_iter_max "
            f"(now {num_iter_max}) or use fewer points"
        )
    return float(np.sqrt(max(float(value), 0.0)))
