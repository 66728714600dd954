"""Small helpers shared by every subpackage: broadcasting, time handling, input checks.

The one place where a per-sample coefficient is reshaped against a state (DESIGN.md, "Shapes").
"""

from __future__ import annotations

import math
from typing import Union

import torch

Time = Union[float, torch.Tensor]
"""A time: a Python float, a 0-d tensor, or a ``(batch,)`` tensor (one time per sample)."""


def as_time(t: Time, device: torch.device | str | None = None) -> torch.Tensor:
    """Return ``t`` as a float64 tensor (shape ``()`` or ``(batch,)``) on ``device``.

    Process coefficients are always computed in float64 (DESIGN.md, "Precision").
    """
    if isinstance(t, torch.Tensor):
        if t.dtype == torch.float64 and (device is None or t.device == torch.device(device)):
            return t
        # MPS has no float64; coefficients are then computed on the CPU and moved by expand_to.
        target = t.device if device is None else torch.device(device)
        if target.type == "mps":
            target = torch.device("cpu")
        return t.to(device=target, dtype=torch.float64)
    return torch.tensor(float(t), dtype=torch.float64, device=device)


def expand_to(coef: Time, x: torch.Tensor) -> torch.Tensor:
    """Broadcast a scalar or per-sample coefficient against a state ``x``.

    Args:
        coef: a float, a 0-d tensor, or a ``(batch,)`` tensor.
        x: the state, shape ``(batch, *event_shape)``.

    Returns:
        ``coef`` cast to ``x``'s dtype and device, shaped ``()`` or ``(batch, 1, ..., 1)``
        so that ``coef * x`` is per-sample.
    """
    if not isinstance(coef, torch.Tensor):
        return torch.tensor(coef, dtype=x.dtype, device=x.device)
    coef = coef.to(dtype=x.dtype, device=x.device)
    if coef.ndim == 0:
        return coef
    if coef.ndim != 1 or coef.shape[0] != x.shape[0]:
        raise ValueError(
            f"a per-sample coefficient must have shape (batch,) = ({x.shape[0]},) to match the "
            f"state of shape {tuple(x.shape)}; got shape {tuple(coef.shape)}"
        )
    return coef.reshape((x.shape[0],) + (1,) * (x.ndim - 1))


def batch_time(t: Time, x: torch.Tensor) -> torch.Tensor:
    """Return the time as a ``(batch,)`` tensor of ``x``'s dtype and device (the model's input)."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.ndim == 0:
        return t.expand(x.shape[0])
    return t


def check_state(x: object, name: str = "x") -> torch.Tensor:
    """Check that ``x`` is a floating tensor of shape ``(batch, *event_shape)``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (batch, *event_shape); got {type(x).__name__}")
    if x.ndim < 1:
        raise ValueError(f"{name} must have shape (batch, *event_shape) with at least one dimension; got a 0-d tensor")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (float32 or float64); got dtype {x.dtype}")
    if x.dtype in (torch.float16, torch.bfloat16):
        raise TypeError(
            f"{name} has dtype {x.dtype}: solver states must be float32 or float64 "
            "(reduced precision is for the model call only; cast the model's input inside the model)"
        )
    return x


def check_positive(value: float, name: str) -> float:
    """Check that ``value`` is a finite number > 0."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0; got {value!r}")
    return float(value)


def check_nonnegative(value: float, name: str) -> float:
    """Check that ``value`` is a finite number >= 0."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0; got {value!r}")
    return float(value)


def check_int(value: object, name: str, minimum: int = 1) -> int:
    """Check that ``value`` is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return value
