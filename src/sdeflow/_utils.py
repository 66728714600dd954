"""Small helpers shared by every subpackage: broadcasting, time handling, input checks.

The one place where a per-sample coefficient is reshaped against a state (DESIGN.md, "Shapes").
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Union

import numpy as np
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


def sqrt_exact(x: torch.Tensor) -> torch.Tensor:
    """The correctly rounded square root (IEEE 754, round to nearest) of a float64 tensor, on every CPU.

    torch's CPU ``sqrt`` may run through MKL's vector math, which on some instruction sets (AVX-512
    Xeons) returns the neighbour of the correctly rounded value for about 1% of float64 inputs, so
    it can disagree in the last bit with ``math.sqrt`` or with itself on another CPU. Quantities that
    decide *which* random numbers a sample sees (Brownian bridge scales, step sizes) use this
    function: numpy's ``sqrt`` is the hardware instruction, correctly rounded by IEEE 754, and CUDA's
    float64 ``sqrt`` is correctly rounded too. A scalar is computed as a one-element tensor, so a
    scalar and a per-sample query of the same time give the same bits.

    Args:
        x: a float64 tensor of any shape (no gradient is tracked).

    Returns:
        ``sqrt(x)`` with ``x``'s shape, dtype and device.
    """
    if x.device.type == "cpu":
        return torch.from_numpy(np.asarray(np.sqrt(x.detach().numpy())))
    return torch.sqrt(x.detach())


# ---- batch-invariant elementwise math --------------------------------------------------------
# torch's CPU kernels for float64 expm1, log1p, softplus, sigmoid and fractional pow run a vector
# body and a scalar tail that round differently, so the last bit of an element depends on its
# position in the tensor (measured on an AMD EPYC: log1p differs on 494 and pow(x, -0.2) on 971 of
# 2,000 inputs between a one-element tensor and the same value inside a longer one). exp, log, sqrt,
# sin, cos, tan and arccos run one kernel over the whole array (MKL's vector math on x86-64 builds),
# and + - * / are IEEE operations. The functions below compute the former from the latter, so that a
# per-sample coefficient (a process at per-sample times) has the same bits in a batch of one and in
# a batch of a thousand. They keep the accuracy of the library functions (a few ulps; Kahan's and
# Goldberg's corrections) and their gradients.


def expm1(x: torch.Tensor) -> torch.Tensor:
    """``exp(x) - 1`` without cancellation near 0 (Kahan: ``(u - 1) x / log(u)``, ``u = exp(x)``)."""
    u = torch.exp(x)
    um1 = u - 1.0
    lu = torch.log(u)
    degenerate = (um1 == 0.0) | (u == 0.0) | ~torch.isfinite(lu)
    safe = torch.where(degenerate, torch.ones_like(lu), lu)
    out = torch.where(um1 == 0.0, x, um1 * (x / safe))
    return torch.where((u == 0.0) | torch.isinf(u), um1, out)


def log1p(x: torch.Tensor) -> torch.Tensor:
    """``log(1 + x)`` without cancellation near 0 (Goldberg: ``log(u) x / (u - 1)``, ``u = 1 + x``)."""
    u = 1.0 + x
    um1 = u - 1.0
    exact = (um1 == 0.0) | torch.isinf(u) | (u == 0.0)
    safe = torch.where(exact, torch.ones_like(um1), um1)
    out = torch.log(u) * (x / safe)
    out = torch.where(um1 == 0.0, x, out)
    return torch.where(torch.isinf(u) | (u == 0.0), torch.log(u), out)


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    """``1 / (1 + exp(-x))``."""
    return 1.0 / (1.0 + torch.exp(-x))


def softplus(x: torch.Tensor) -> torch.Tensor:
    """``log(1 + exp(x))``, exactly ``x`` above 20 (torch's threshold)."""
    return torch.where(x > 20.0, x, log1p(torch.exp(torch.clamp(x, max=20.0))))


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


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, an fsync and a rename: a reader (or a crash)
    sees the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            # mkstemp creates the file private (0600); give it the mode open() would (0666 less the
            # umask), like the pictures matplotlib writes, so all of a command's outputs agree.
            os.fchmod(fh.fileno(), 0o666 & ~_umask())
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    """The process's file-mode creation mask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# ---- progress bars ------------------------------------------------------------------------------
NON_TTY_INTERVAL = 10.0
"""Seconds between two updates of a progress bar whose stream is not a terminal (a log file, a pipe)."""

_progress_off = False


@contextlib.contextmanager
def progress_off() -> Iterator[None]:
    """Within the block, every sdeflow progress bar is off (``--quiet`` of the command line)."""
    global _progress_off
    before, _progress_off = _progress_off, True
    try:
        yield
    finally:
        _progress_off = before


def progress_bar(iterable: Iterable[Any] | None = None, *, disable: bool = False, **kwargs: Any) -> Any:
    """A tqdm bar (``tqdm.auto``) that does not flood logs: the one way sdeflow shows progress.

    On a terminal it updates as tqdm does (at most 10 times a second). When stderr is not a terminal
    (a log file, a pipe, a CI job) it updates at most once every :data:`NON_TTY_INTERVAL` seconds, so a
    long run writes a line every few seconds instead of thousands (a 2-minute training wrote 1,400
    updates, 150-200 KB, before). ``disable`` or :func:`progress_off` turn it off; other arguments
    are tqdm's.
    """
    from tqdm.auto import tqdm

    file = kwargs.get("file") or sys.stderr
    isatty = getattr(file, "isatty", None)
    if not (callable(isatty) and isatty()):
        kwargs.setdefault("mininterval", NON_TTY_INTERVAL)
        kwargs.setdefault("maxinterval", max(NON_TTY_INTERVAL, 10.0))
    bar = tqdm(iterable, disable=disable or _progress_off, **kwargs)
    if "mininterval" in kwargs and kwargs["mininterval"] >= NON_TTY_INTERVAL:
        # set_postfix/set_description redraw at once by default, which would bypass the interval.
        postfix, description = bar.set_postfix, bar.set_description
        bar.set_postfix = lambda *a, **k: postfix(*a, **{**k, "refresh": False})
        bar.set_description = lambda *a, **k: description(*a, **{**k, "refresh": False})
    return bar
