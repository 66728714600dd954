"""Option payoffs evaluated while the paths stream past: European, arithmetic Asian, discrete barrier.

A payoff folds the asset prices at the monitoring dates into a small per-path accumulator
(``start``, ``update``) and turns it into the payoff at maturity (``value``): paths are never stored.
A multi-asset state is reduced to one price by ``weights`` (a basket), if given: the weights are
explicit, not normalized: the basket is ``sum_i w_i S_i`` (``(0.5, 0.5)`` is the average of two
assets, ``(1, 1)`` their sum), and there must be one weight per asset of the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["European", "Asian", "Barrier", "ZeroCouponBond", "Payoff"]


def _intrinsic(s: torch.Tensor, strike: float, kind: str) -> torch.Tensor:
    return torch.relu(s - strike) if kind == "call" else torch.relu(strike - s)


@dataclass(frozen=True)
class Payoff:
    """Base: a call or put with strike ``strike``; ``weights`` reduce several assets to a basket."""

    strike: float = 100.0
    kind: str = "call"
    weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("call", "put"):
            raise ValueError(f"kind must be 'call' or 'put'; got {self.kind!r}")
        if isinstance(self.strike, bool) or not isinstance(self.strike, (int, float)) or not math.isfinite(self.strike):
            raise ValueError(f"strike must be a finite number; got {self.strike!r}")
        if self.strike < 0:
            raise ValueError(f"strike must be >= 0; got {self.strike!r} (a negative strike has no meaning for prices > 0)")
        if self.weights is not None:
            w = self.weights
            if isinstance(w, (str, bytes)) or not hasattr(w, "__len__") or len(w) < 1:
                raise TypeError(f"weights must be a tuple of numbers, one per asset (w_i in sum_i w_i S_i); got {w!r}")
            if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in w):
                raise ValueError(f"weights must be finite numbers; got {w!r}")

    def price_of(self, asset: torch.Tensor) -> torch.Tensor:
        """One price per path ``(batch,)`` from the model's asset prices: the basket ``sum_i w_i S_i``."""
        n = 1 if asset.ndim == 1 else asset.shape[1]
        if self.weights is None:
            if n != 1:
                raise ValueError(f"a payoff on {n} assets needs weights= (a basket, sum_i w_i S_i); got none")
            return asset if asset.ndim == 1 else asset[:, 0]
        if len(self.weights) != n:
            raise ValueError(
                f"weights has {len(self.weights)} entries but the model has {n} asset(s); pass one weight per asset "
                f"(weights are explicit: the basket is sum_i w_i S_i){' or drop weights for a single asset' if n == 1 else ''}"
            )
        w = torch.as_tensor(self.weights, dtype=asset.dtype, device=asset.device)
        return asset * w[0] if asset.ndim == 1 else asset @ w

    def start(self, s0: torch.Tensor) -> Any:
        return None

    def update(self, acc: Any, s: torch.Tensor) -> Any:
        return acc

    def value(self, acc: Any, s_t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        raise TypeError("use a concrete payoff: European, Asian, Barrier or ZeroCouponBond")


@dataclass(frozen=True)
class European(Payoff):
    """``(S_T - K)+`` or ``(K - S_T)+``."""

    def value(self, acc, s_t, state):
        return _intrinsic(s_t, self.strike, self.kind)


@dataclass(frozen=True)
class Asian(Payoff):
    """Arithmetic-average Asian option on the monitoring dates ``t_1 .. t_n`` (``t_0`` excluded)."""

    def start(self, s0):
        return (torch.zeros_like(s0), 0)

    def update(self, acc, s):
        return (acc[0] + s, acc[1] + 1)

    def value(self, acc, s_t, state):
        return _intrinsic(acc[0] / acc[1], self.strike, self.kind)


@dataclass(frozen=True)
class Barrier(Payoff):
    """Discretely monitored barrier option: ``up-and-out``, ``down-and-out``, ``up-and-in``, ``down-and-in``.

    The barrier ``barrier`` is checked at the monitoring dates (and at ``t_0``). Broadie, Glasserman &
    Kou (1997) relate it to the continuous barrier by the shift ``barrier * exp(+-0.5826 sigma sqrt(dt))``.
    """

    barrier: float = 120.0
    style: str = "up-and-out"

    def __post_init__(self) -> None:
        super().__post_init__()
        b = self.barrier
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not math.isfinite(b) or b <= 0:
            raise ValueError(f"barrier must be a finite price > 0; got {b!r}")
        if self.style not in ("up-and-out", "down-and-out", "up-and-in", "down-and-in"):
            raise ValueError(f"style must be up-and-out, down-and-out, up-and-in or down-and-in; got {self.style!r}")

    def _hit(self, s):
        return s >= self.barrier if self.style.startswith("up") else s <= self.barrier

    def start(self, s0):
        return self._hit(s0)

    def update(self, acc, s):
        return acc | self._hit(s)

    def value(self, acc, s_t, state):
        alive = ~acc if self.style.endswith("out") else acc
        return _intrinsic(s_t, self.strike, self.kind) * alive.to(s_t.dtype)


@dataclass(frozen=True)
class ZeroCouponBond(Payoff):
    """Pays 1 at maturity, discounted pathwise by ``exp(-int r dt)`` (the CIR model's second state)."""

    def value(self, acc, s_t, state):
        return torch.exp(-state[:, 1])
