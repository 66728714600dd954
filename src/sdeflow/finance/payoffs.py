"""Option payoffs evaluated while the paths stream past: European, arithmetic Asian, discrete barrier.

A payoff folds the asset prices at the monitoring dates into a small per-path accumulator
(``start``, ``update``) and turns it into the payoff at maturity (``value``): paths are never stored.
A multi-asset state is reduced to one price by ``weights`` (a basket), if given.
"""

from __future__ import annotations

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

    def price_of(self, asset: torch.Tensor) -> torch.Tensor:
        """One price per path ``(batch,)`` from the model's asset prices."""
        if asset.ndim == 1:
            return asset
        if self.weights is None:
            if asset.shape[1] != 1:
                raise ValueError(f"a payoff on {asset.shape[1]} assets needs weights= (a basket); got none")
            return asset[:, 0]
        return asset @ torch.as_tensor(self.weights, dtype=asset.dtype)

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
