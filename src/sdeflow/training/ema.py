"""Exponential moving average of a model's weights (sampling uses it by default).

After each optimizer step, ``theta_ema <- d theta_ema + (1 - d) theta`` with
``d = min(decay, (1 + n) / (10 + n))`` when ``warmup`` is on (``n`` the number of updates so far;
the warm-up of TensorFlow's ``ExponentialMovingAverage`` with ``num_updates``), so that a short run
is not dominated by its random initialization. Buffers are copied, not averaged.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

__all__ = ["EMA"]


class EMA:
    """An averaged copy :attr:`shadow` of ``model`` (eval mode, no gradients).

    Args:
        model: the model being trained.
        decay: the target decay ``d`` in ``[0, 1)``.
        warmup: use ``min(decay, (1 + n)/(10 + n))``.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True) -> None:
        if not isinstance(decay, (int, float)) or isinstance(decay, bool) or not 0.0 <= decay < 1.0:
            raise ValueError(f"ema decay must be a number in [0, 1); got {decay!r}")
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.num_updates = 0
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)

    def current_decay(self) -> float:
        """The decay the next update uses."""
        if not self.warmup:
            return self.decay
        n = self.num_updates
        return min(self.decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s current weights."""
        d = self.current_decay()
        for avg, cur in zip(self.shadow.parameters(), model.parameters()):
            avg.lerp_(cur.detach().to(avg.dtype), 1.0 - d)
        for avg, cur in zip(self.shadow.buffers(), model.buffers()):
            avg.copy_(cur)
        self.num_updates += 1

    def state(self) -> dict[str, Any]:
        """The JSON-ready counters (the weights are :attr:`shadow`'s state dict)."""
        return {"decay": self.decay, "warmup": self.warmup, "num_updates": self.num_updates}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore the counters from :meth:`state`."""
        self.decay = float(state["decay"])
        self.warmup = bool(state["warmup"])
        self.num_updates = int(state["num_updates"])
