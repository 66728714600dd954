"""Classifier-free guidance (Ho & Salimans 2022) at sampling time, as a model wrapper.

Any solver gets guidance by sampling the wrapped model: ``sample(ClassifierFreeGuidance(...), ...)``.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from .._utils import expand_to
from .parameterization import check_prediction

__all__ = ["ClassifierFreeGuidance"]


class ClassifierFreeGuidance:
    r"""``out = out(x, t, null) + w (out(x, t, cond) - out(x, t, null))`` inside a guidance interval.

    Args:
        model: a conditional model ``(x, t, cond) -> prediction`` of kind ``prediction``.
        cond: the condition, a tensor of ``batch`` rows (or anything the model accepts).
        null_cond: the null condition of the same form (the "unconditional" input).
        scale: the guidance weight ``w`` (``1``: the conditional model; ``0``: the unconditional one;
            ``w > 1``: guided). Ho & Salimans write ``1 + w``.
        prediction: ``eps``, ``x0``, ``v``, ``score`` or ``velocity``.
        interval: ``(t_lo, t_hi)``: guidance only where ``t_lo <= t <= t_hi`` (process time; elsewhere
            the conditional prediction), as in Kynkaanniemi et al. (2024), "Applying guidance in a
            limited interval improves sample and distribution quality". Default: everywhere.

    Why the kind does not matter: every conversion between prediction kinds is affine in the output
    at fixed ``(x, t)`` (:mod:`sdeflow.models.parameterization`), and an affine map preserves
    combinations whose weights sum to one (``(1 - w) u + w c``). Guiding eps, x0, v, score or velocity
    therefore gives the same ``(x0_hat, eps_hat)``; the combination is done in the model's own kind.

    Calls: when ``cond`` and ``null_cond`` are tensors, the conditional and unconditional inputs are
    concatenated into one model call of batch ``2 B`` (one counted model call); otherwise the model
    is called twice. The interval is applied per sample with ``torch.where`` (no host-device
    synchronization), so both branches are always evaluated.
    """

    def __init__(
        self,
        model: Callable[..., torch.Tensor],
        cond: Any,
        null_cond: Any,
        scale: float,
        prediction: str,
        interval: tuple[float, float] | None = None,
    ) -> None:
        if not callable(model):
            raise TypeError(f"model must be callable as model(x, t, cond); got {type(model).__name__}")
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
            raise ValueError(f"scale must be a finite number (1 = conditional model); got {scale!r}")
        if interval is not None:
            if len(interval) != 2 or not float(interval[0]) <= float(interval[1]):
                raise ValueError(f"interval must be (t_lo, t_hi) with t_lo <= t_hi; got {interval!r}")
            interval = (float(interval[0]), float(interval[1]))
        self.model = model
        self.cond = cond
        self.null_cond = null_cond
        self.scale = float(scale)
        self.prediction = check_prediction(prediction)
        self.interval = interval

    def _both(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c, u = self.cond, self.null_cond
        if isinstance(c, torch.Tensor) and isinstance(u, torch.Tensor) and c.shape == u.shape:
            if c.shape[0] != x.shape[0]:
                raise ValueError(
                    f"cond must have one row per sample: got {c.shape[0]} rows for a batch of {x.shape[0]}"
                )
            out = self.model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([c, u]))
            return out[: x.shape[0]], out[x.shape[0]:]
        return self.model(x, t, c), self.model(x, t, u)

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        cond_out, null_out = self._both(x, t)
        diff = cond_out - null_out
        if self.interval is None:
            return null_out + self.scale * diff
        t = torch.as_tensor(t, device=x.device)
        inside = (t >= self.interval[0]) & (t <= self.interval[1])
        w = torch.where(inside, torch.full_like(t, self.scale, dtype=torch.float64), torch.ones_like(t, dtype=torch.float64))
        return null_out + expand_to(w.reshape(-1).expand(x.shape[0]), diff) * diff

    def __repr__(self) -> str:
        return f"ClassifierFreeGuidance(scale={self.scale}, prediction={self.prediction!r}, interval={self.interval})"
