"""Input handling shared by the metrics: samples to float64 ``(n, d)`` arrays, blockwise pair sums.

Every metric accepts torch tensors (any device, any float dtype) or numpy arrays and computes in
float64 numpy. Samples of shape ``(n, *event_shape)`` are flattened to ``(n, d)``; a 1-D array of
shape ``(n,)`` is ``n`` scalar samples (``d = 1``).
"""

from __future__ import annotations

from typing import Callable, Union

import numpy as np
import torch

ArrayLike = Union[torch.Tensor, np.ndarray]
"""Samples or densities: a torch tensor or a numpy array (lists of numbers also work)."""


def to_numpy(value: object, name: str) -> np.ndarray:
    """``value`` as a float64 numpy array (a detached CPU copy for tensors); checks finiteness."""
    if isinstance(value, torch.Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{name} must hold real numbers (a float or integer tensor); got dtype {value.dtype}")
        arr = value.detach().to(device="cpu", dtype=torch.float64).numpy()
    elif isinstance(value, (np.ndarray, list, tuple, float, int, np.floating, np.integer)):
        kind = np.asarray(value).dtype.kind if isinstance(value, np.ndarray) else None
        if kind in ("c", "b") or isinstance(value, bool):
            raise TypeError(f"{name} must hold real numbers (a float or integer array); got {'dtype ' + str(value.dtype) if kind else repr(value)}")
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be numeric (a torch tensor or numpy array); got {value!r}") from exc
    else:
        raise TypeError(f"{name} must be a torch.Tensor or a numpy.ndarray; got {type(value).__name__}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values; remove or fix them before measuring")
    return arr


def as_samples(x: object, name: str, *, min_n: int = 1) -> np.ndarray:
    """Samples ``(n, *event_shape)`` (or ``(n,)``) as a float64 array of shape ``(n, d)``."""
    arr = to_numpy(x, name)
    if arr.ndim == 0:
        raise ValueError(f"{name} must have shape (n, *event_shape) or (n,); got a scalar")
    shape = tuple(arr.shape)
    if arr.shape[0] < min_n:
        raise ValueError(
            f"{name} must hold at least {min_n} sample{'s' if min_n > 1 else ''} (shape (n, *event_shape) or (n,)); "
            f"got shape {shape}"
        )
    # The event size from the shape itself: reshape(n, -1) cannot infer it when n = 0.
    d = int(np.prod(arr.shape[1:])) if arr.ndim > 1 else 1
    if d < 1:
        raise ValueError(f"{name} has an empty event shape; got shape {shape}")
    return arr.reshape(arr.shape[0], d)


def as_pair(x: object, y: object, *, min_n: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Two sample sets as ``(n, d)`` and ``(m, d)`` float64 arrays with the same ``d``."""
    xa = as_samples(x, "x", min_n=min_n)
    ya = as_samples(y, "y", min_n=min_n)
    if xa.shape[1] != ya.shape[1]:
        raise ValueError(
            f"x and y must have the same number of dimensions per sample; got x with d = {xa.shape[1]} and "
            f"y with d = {ya.shape[1]} (flattened event shapes); pass samples of the same event shape"
        )
    return xa, ya


def pair_sum(
    a: np.ndarray, b: np.ndarray, fn: Callable[[np.ndarray], np.ndarray], *, block: int = 1024
) -> float:
    """``sum_{i, j} fn(|a_i - b_j|^2)`` over all pairs, in row blocks (memory ``block * len(b)``).

    ``fn`` maps an array of squared Euclidean distances to values (vectorized). Squared distances
    use ``|a|^2 + |b|^2 - 2 a.b`` clipped at 0 (round-off), in float64, after shifting both sets
    by the mean of ``a`` (distances do not change; the cancellation error does, ``~1e-16 |a|^2``).
    """
    shift = a.mean(axis=0)
    a = a - shift
    b = b - shift
    b2 = np.einsum("ij,ij->i", b, b)
    total = 0.0
    for start in range(0, a.shape[0], block):
        ab = a[start : start + block]
        sq = np.einsum("ij,ij->i", ab, ab)[:, None] + b2[None, :] - 2.0 * (ab @ b.T)
        np.maximum(sq, 0.0, out=sq)
        total += float(fn(sq).sum())
    return total
