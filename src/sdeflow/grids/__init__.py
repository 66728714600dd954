"""Time grids: objects ``(process, steps) -> ts`` giving strictly decreasing times from T to 0."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from .base import Explicit, TimeGrid, validate_ts
from .optimized import OptimizedGrid
from .schedules import ByStepCount, GeometricBlend, Karras, LogSNRFromT, Polynomial, UniformLogSNR, UniformT, UniformVPTime
from .tuning import GridScore, TunedGrid, load_tuned_grid, tune_grid

__all__ = ["OptimizedGrid", "TunedGrid", "GridScore", "tune_grid", "load_tuned_grid", "TimeGrid", "Explicit", "UniformT", "Karras", "UniformLogSNR", "LogSNRFromT", "UniformVPTime", "Polynomial", "ByStepCount", "GeometricBlend", "available", "get", "validate_ts"]

_REGISTRY = {"uniform": UniformT, "karras": Karras, "logsnr": UniformLogSNR, "vp_time": UniformVPTime, "polynomial": Polynomial}


def available() -> list[str]:
    """Names accepted by :func:`get`."""
    return sorted(_REGISTRY)


def get(grid: "str | TimeGrid | Explicit | Sequence[float] | torch.Tensor", **kwargs: Any):
    """A grid from a name (``uniform``, ``karras``, ``logsnr``, ``vp_time``, ``polynomial``), an object, or explicit times."""
    if isinstance(grid, (TimeGrid, Explicit)):
        if kwargs:
            raise ValueError("grid options can only be given with a grid name")
        return grid
    if isinstance(grid, str):
        key = grid.lower()
        if key not in _REGISTRY:
            raise ValueError(f"unknown grid {grid!r}; expected one of {available()} or a sequence of times")
        return _REGISTRY[key](**kwargs)
    return Explicit(grid)


def default_grid(process) -> TimeGrid:
    """Karras (rho=7) where the noise level at ``T`` is finite, else uniform in t (rectified flow)."""
    if bool(torch.isfinite(process.noise_level(process.T))):
        return Karras()
    return UniformT()
