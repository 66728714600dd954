"""Gaussian closed forms: KL and Wasserstein-2 between Gaussians, and the Frechet distance.

For ``N1 = N(m1, C1)`` and ``N2 = N(m2, C2)`` in ``R^d``:

* ``KL(N1 || N2) = 1/2 [tr(C2^-1 C1) + (m2 - m1)^T C2^-1 (m2 - m1) - d + log det C2 - log det C1]``,
* ``W2(N1, N2)^2 = |m1 - m2|^2 + tr(C1 + C2 - 2 (C1^{1/2} C2 C1^{1/2})^{1/2})``
  (Dowson & Landau 1982; Givens & Shortt 1984),
* the Frechet distance between sample sets is that ``W2^2`` between their Gaussian fits
  (the FID of Heusel et al. 2017, on raw coordinates instead of Inception features).

Matrix square roots use the symmetric eigendecomposition (``eigh``) with eigenvalues clipped at 0,
which is stable for singular or nearly singular covariances (unlike ``scipy.linalg.sqrtm`` on the
non-symmetric product ``C1 C2``).
"""

from __future__ import annotations

import numpy as np

from ._arrays import ArrayLike, as_pair, as_samples, to_numpy

__all__ = ["frechet_distance", "gaussian_fit", "kl_gaussian", "w2_gaussian"]


def _mean_cov(m: object, c: object, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A mean ``(d,)`` (or scalar) and a covariance as a full ``(d, d)`` matrix.

    The covariance may be a scalar (isotropic variance), ``(d,)`` (diagonal variances) or ``(d, d)``.
    """
    mean = np.atleast_1d(to_numpy(m, f"m{name}")).reshape(-1)
    cov = to_numpy(c, f"c{name}")
    d = mean.shape[0]
    if d < 1:
        raise ValueError(f"m{name} must be a mean of at least one dimension; got shape {np.shape(mean)}")
    if cov.ndim == 0:
        cov = float(cov) * np.eye(d)
    elif cov.ndim == 1:
        if cov.shape[0] != d:
            raise ValueError(f"c{name} as a vector of variances must have shape ({d},) like m{name}; got {cov.shape}")
        cov = np.diag(cov)
    elif cov.shape != (d, d):
        raise ValueError(
            f"c{name} must be a variance, a (d,) vector of variances or a (d, d) covariance with d = {d}; "
            f"got shape {cov.shape}"
        )
    if not np.allclose(cov, cov.T, rtol=1e-8, atol=1e-12 * max(1.0, float(np.abs(cov).max()))):
        raise ValueError(f"c{name} must be symmetric; symmetrize it with (c + c.T) / 2")
    return mean, 0.5 * (cov + cov.T)


def _psd_sqrt(c: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix via ``eigh``."""
    w, v = np.linalg.eigh(c)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def _w2_squared(m1: np.ndarray, c1: np.ndarray, m2: np.ndarray, c2: np.ndarray) -> float:
    s1 = _psd_sqrt(c1)
    mid = s1 @ c2 @ s1
    # tr sqrt(C1^{1/2} C2 C1^{1/2}) = sum of square roots of its (non-negative) eigenvalues.
    tr_cross = float(np.sum(np.sqrt(np.clip(np.linalg.eigvalsh(0.5 * (mid + mid.T)), 0.0, None))))
    value = float(np.sum((m1 - m2) ** 2)) + float(np.trace(c1) + np.trace(c2)) - 2.0 * tr_cross
    return max(value, 0.0)


def w2_gaussian(m1: ArrayLike, c1: ArrayLike, m2: ArrayLike, c2: ArrayLike) -> float:
    """Wasserstein-2 distance between ``N(m1, c1)`` and ``N(m2, c2)`` (closed form, not squared).

    Args:
        m1, m2: means, ``(d,)`` or scalars.
        c1, c2: covariances: a scalar variance, ``(d,)`` variances or ``(d, d)`` matrices (PSD).

    Returns:
        ``W2 = sqrt(|m1 - m2|^2 + tr(c1 + c2 - 2 (c1^{1/2} c2 c1^{1/2})^{1/2}))``.
    """
    a, ca = _mean_cov(m1, c1, "1")
    b, cb = _mean_cov(m2, c2, "2")
    if a.shape != b.shape:
        raise ValueError(f"m1 and m2 must have the same dimension; got {a.shape[0]} and {b.shape[0]}")
    return float(np.sqrt(_w2_squared(a, ca, b, cb)))


def kl_gaussian(m1: ArrayLike, c1: ArrayLike, m2: ArrayLike, c2: ArrayLike) -> float:
    """``KL(N(m1, c1) || N(m2, c2))`` in nats (closed form, Cholesky factorizations).

    Args:
        m1, m2: means, ``(d,)`` or scalars.
        c1, c2: covariances (scalar variance, ``(d,)`` variances or ``(d, d)``), positive definite.

    Returns:
        ``1/2 [tr(c2^-1 c1) + (m2 - m1)^T c2^-1 (m2 - m1) - d + log det c2 - log det c1]`` >= 0.
    """
    a, ca = _mean_cov(m1, c1, "1")
    b, cb = _mean_cov(m2, c2, "2")
    if a.shape != b.shape:
        raise ValueError(f"m1 and m2 must have the same dimension; got {a.shape[0]} and {b.shape[0]}")
    try:
        l1 = np.linalg.cholesky(ca)
        l2 = np.linalg.cholesky(cb)
    except np.linalg.LinAlgError as exc:
        raise ValueError("c1 and c2 must be positive definite for the KL divergence (a singular covariance gives infinity)") from exc
    d = a.shape[0]
    # tr(C2^-1 C1) = |L2^-1 L1|_F^2 ; Mahalanobis term |L2^-1 (m2 - m1)|^2.
    s = np.linalg.solve(l2, l1)
    u = np.linalg.solve(l2, b - a)
    logdet1 = 2.0 * float(np.sum(np.log(np.diag(l1))))
    logdet2 = 2.0 * float(np.sum(np.log(np.diag(l2))))
    value = 0.5 * (float(np.sum(s * s)) + float(u @ u) - d + logdet2 - logdet1)
    return max(value, 0.0)


def gaussian_fit(x: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(d,)`` and unbiased covariance ``(d, d)`` (divisor ``n - 1``) of ``(n, *event)`` samples."""
    xa = as_samples(x, "x", min_n=2)
    return xa.mean(axis=0), np.atleast_2d(np.cov(xa, rowvar=False))


def frechet_distance(x: ArrayLike, y: ArrayLike) -> float:
    """Frechet distance between sample sets: ``W2^2`` between their Gaussian fits (FID convention).

    ``FD = |mu_x - mu_y|^2 + tr(C_x + C_y - 2 (C_x^{1/2} C_y C_x^{1/2})^{1/2})`` with sample means and
    unbiased covariances (Heusel et al. 2017, eq. 6; here on the raw flattened coordinates).
    It is squared (as FID is), equals ``w2_gaussian(...)**2`` of the fits, and is exact for
    Gaussian data up to the estimation error of the moments (bias ``~ tr(C) d / n`` for equal
    distributions, see :func:`sdeflow.metrics.two_sample_floor`).

    Args:
        x: ``(n, *event_shape)`` or ``(n,)`` samples, ``n >= 2``.
        y: ``(m, *event_shape)`` or ``(m,)`` samples, ``m >= 2``.

    Returns:
        The Frechet distance (float, squared units of the samples).
    """
    xa, ya = as_pair(x, y, min_n=2)
    mx, cx = gaussian_fit(xa)
    my, cy = gaussian_fit(ya)
    return _w2_squared(mx, cx, my, cy)
