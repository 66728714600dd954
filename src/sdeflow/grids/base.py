"""Time grids: ``(process, steps) -> ts``, a strictly decreasing float64 tensor of ``steps + 1`` times."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Sequence

import torch

from .._utils import check_int

__all__ = ["TimeGrid", "Explicit", "validate_ts"]


def validate_ts(ts: Sequence[float] | torch.Tensor, process=None, name: str = "grid") -> torch.Tensor:
    """Check a time grid: 1-D, at least 2 times, finite, strictly decreasing, inside ``[0, T]``.

    Returns it as a float64 CPU tensor. Errors name the first offending index.
    """
    try:
        t = torch.as_tensor(ts, dtype=torch.float64).detach().to("cpu")
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{name} must be a 1-D sequence of times; got {type(ts).__name__}") from err
    if t.ndim != 1 or t.numel() < 2:
        raise ValueError(f"{name} must be a 1-D sequence of at least 2 times; got shape {tuple(t.shape)}")
    finite = torch.isfinite(t)
    if not bool(finite.all()):
        i = int((~finite).nonzero()[0])
        raise ValueError(f"{name} must be finite; {name}[{i}] = {float(t[i])}")
    diffs = t[1:] - t[:-1]
    if not bool((diffs < 0).all()):
        i = int((diffs >= 0).nonzero()[0])
        raise ValueError(
            f"{name} must be strictly decreasing (from noise at t=T towards data at t=0); "
            f"{name}[{i}] = {float(t[i])!r} is followed by {name}[{i + 1}] = {float(t[i + 1])!r}"
        )
    if bool(t[-1] < 0):
        raise ValueError(f"{name} must not go below t = 0; its last time is {float(t[-1])!r}")
    if process is not None and bool(t[0] > process.T * (1 + 1e-12)):
        raise ValueError(f"{name} starts at t = {float(t[0])!r}, beyond the end of the process T = {process.T}")
    return t


class TimeGrid(ABC):
    """A rule that places ``steps`` steps between ``t_max`` (default ``T``) and 0.

    With ``to_zero=True`` (default) the grid is ``t_max = ts[0] > ... > ts[steps-1] = t_min > ts[steps] = 0``:
    ``steps - 1`` steps placed by the rule between ``t_max`` and ``t_min`` and a final step to the
    data at ``t = 0`` (no model call happens at ``t = 0``). With ``to_zero=False`` the ``steps``
    steps end at ``t_min``. ``t_min`` defaults to ``process.t_min``.

    Rules whose spacing reaches ``t = 0`` itself (uniform in ``t``, uniform in DDPM time) also take
    ``final="spacing"``: the ``steps`` steps follow the rule from ``t_max`` all the way to 0, so the
    last model call is at the rule's last node ``ts[steps-1] >= t_min`` rather than at ``t_min`` (diffusers'
    "linspace" timesteps with ``final_sigmas_type="zero"``). No call is spent at ``t_min``, where a
    data-prediction solver's denoising step barely moves the state. Where that node would fall below
    ``t_min`` (thousands of steps) the grid keeps the ``t_min`` convention.
    """

    t_max: float | None = None
    t_min: float | None = None
    to_zero: bool = True

    final: str = "t_min"

    @abstractmethod
    def _interior(self, process, t_max: float, t_min: float, n: int) -> torch.Tensor:
        """``n >= 2`` decreasing float64 times from ``t_max`` to ``t_min`` inclusive."""

    def _spaced_to_zero(self, process, t_max: float, n: int) -> torch.Tensor:
        """``n + 1`` decreasing float64 times from ``t_max`` to 0 by the rule's own spacing (``final="spacing"``)."""
        raise ValueError(f"{type(self).__name__} has no spacing that reaches t = 0; final must be 't_min'")

    def __call__(self, process, steps: int) -> torch.Tensor:
        check_int(steps, "steps")
        t_max = float(process.T if self.t_max is None else self.t_max)
        t_min = float(process.t_min if self.t_min is None else self.t_min)
        if not 0 < t_min < t_max:
            raise ValueError(f"a grid needs 0 < t_min < t_max; got t_min={t_min}, t_max={t_max}")
        if t_max > process.T * (1 + 1e-12):
            raise ValueError(f"t_max={t_max} lies beyond the end of the process T={process.T}")
        if self.final not in ("t_min", "spacing"):
            raise ValueError(f"final must be 't_min' or 'spacing'; got {self.final!r}")
        if self.final == "spacing" and self.to_zero and steps > 1:
            ts = self._spaced_to_zero(process, t_max, steps)
            if float(ts[-2]) >= t_min:  # else so many steps that the spacing passes t_min: the t_min convention
                ts[0], ts[-1] = t_max, 0.0
                return validate_ts(ts, process, name=f"{type(self).__name__} grid")
        if self.to_zero:
            if steps == 1:
                ts = torch.tensor([t_max, 0.0], dtype=torch.float64)
            else:
                ts = torch.cat([self._interior(process, t_max, t_min, steps), torch.zeros(1, dtype=torch.float64)])
                ts[-2] = t_min
        else:
            ts = self._interior(process, t_max, t_min, steps + 1)
            ts[-1] = t_min
        ts[0] = t_max  # exact ends, whatever the round trip through log-SNR did
        return validate_ts(ts, process, name=f"{type(self).__name__} grid")


@dataclass(frozen=True)
class Explicit:
    """A user-given grid, used as it is (validated, never rewritten); ``steps`` must match it."""

    ts: tuple[float, ...]

    def __init__(self, ts: Sequence[float] | torch.Tensor) -> None:
        object.__setattr__(self, "ts", tuple(float(v) for v in validate_ts(ts)))

    def __call__(self, process, steps: int | None = None) -> torch.Tensor:
        t = validate_ts(self.ts, process)
        if steps is not None and steps != t.numel() - 1:
            raise ValueError(f"steps={steps} does not match the explicit grid of {t.numel() - 1} steps")
        return t
