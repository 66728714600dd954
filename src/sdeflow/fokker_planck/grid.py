"""Uniform cell-centred grids in 1-D and 2-D for finite-volume densities."""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch

__all__ = ["Grid"]


class Grid:
    """A uniform grid of ``prod(cells)`` cells on a box in ``d = 1`` or ``2`` dimensions.

    A density on the grid is a float64 tensor of shape :attr:`shape` holding cell averages
    (``p[i, j] ~ p(x_i, y_j)``, matrix ``ij`` indexing: axis 0 is the first coordinate).

    Args:
        bounds: ``(low, high)`` for 1-D, or ``((x_low, x_high), (y_low, y_high))`` for 2-D.
        cells: cells per axis (an int for every axis, or one per axis), each >= 3.
    """

    def __init__(self, bounds: Sequence[float] | Sequence[Sequence[float]], cells: int | Sequence[int]) -> None:
        b = np.asarray(bounds, dtype=np.float64)
        if b.shape == (2,):
            b = b.reshape(1, 2)
        if b.ndim != 2 or b.shape[1] != 2 or b.shape[0] not in (1, 2):
            raise ValueError(
                f"bounds must be (low, high) for 1-D or ((x_low, x_high), (y_low, y_high)) for 2-D; got {bounds!r}"
            )
        if not np.all(np.isfinite(b)) or np.any(b[:, 1] <= b[:, 0]):
            raise ValueError(f"bounds must be finite with low < high on every axis; got {bounds!r}")
        d = b.shape[0]
        n = [cells] * d if isinstance(cells, (int, np.integer)) and not isinstance(cells, bool) else list(cells)
        if len(n) != d or any(isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 3 for c in n):
            raise ValueError(f"cells must be an int >= 3 or {d} such ints (one per axis); got {cells!r}")
        self.ndim = d
        self.lows = tuple(float(v) for v in b[:, 0])
        self.highs = tuple(float(v) for v in b[:, 1])
        self.shape = tuple(int(c) for c in n)
        self.dx = tuple((hi - lo) / c for lo, hi, c in zip(self.lows, self.highs, self.shape))
        self.cell_volume = math.prod(self.dx)
        self.centers = [
            torch.linspace(lo + h / 2, hi - h / 2, c, dtype=torch.float64)
            for lo, hi, h, c in zip(self.lows, self.highs, self.dx, self.shape)
        ]
        self.edges = [torch.linspace(lo, hi, c + 1, dtype=torch.float64) for lo, hi, c in zip(self.lows, self.highs, self.shape)]

    def __repr__(self) -> str:
        b = ", ".join(f"({lo:g}, {hi:g})" for lo, hi in zip(self.lows, self.highs))
        return f"Grid(bounds=[{b}], cells={self.shape})"

    @property
    def bounds(self) -> list[tuple[float, float]]:
        """``[(low, high), ...]`` per axis."""
        return list(zip(self.lows, self.highs))

    def points(self) -> torch.Tensor:
        """Cell centres as ``(prod(shape), d)`` float64 points, in the order of ``density.reshape(-1)``."""
        mesh = torch.meshgrid(*self.centers, indexing="ij")
        return torch.stack([m.reshape(-1) for m in mesh], dim=1)

    def face_points(self, axis: int) -> torch.Tensor:
        """Centres of the faces normal to ``axis`` (boundary faces included), ``(M, d)``.

        Their order is that of a tensor of shape ``shape`` with ``shape[axis] + 1`` along ``axis``.
        """
        coords = [self.edges[a] if a == axis else self.centers[a] for a in range(self.ndim)]
        mesh = torch.meshgrid(*coords, indexing="ij")
        return torch.stack([m.reshape(-1) for m in mesh], dim=1)

    def face_shape(self, axis: int) -> tuple[int, ...]:
        """Shape of the face array normal to ``axis``."""
        return tuple(s + 1 if a == axis else s for a, s in enumerate(self.shape))

    def density(self, log_prob: Callable[[torch.Tensor], torch.Tensor], *, normalize: bool = True) -> torch.Tensor:
        """``exp(log_prob)`` at the cell centres (midpoint rule, ``O(dx^2)`` cell averages), shape :attr:`shape`.

        ``log_prob`` maps ``(N, d)`` float64 points to ``(N,)`` log-densities (e.g.
        ``target.log_prob`` or ``lambda x: target.marginal_log_prob(x, t, process)``). With
        ``normalize`` the result has unit mass on the grid.
        """
        lp = torch.as_tensor(log_prob(self.points()), dtype=torch.float64).reshape(self.shape)
        p = torch.exp(lp - lp.max()) if normalize else torch.exp(lp)
        return p / (p.sum() * self.cell_volume) if normalize else p

    def mass(self, p: torch.Tensor) -> float:
        """``sum(p) * cell_volume``."""
        return float(p.sum()) * self.cell_volume

    def histogram(self, samples: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Density estimate ``counts / (n cell_volume)`` of ``(n, d)`` samples on the grid's cells.

        Samples outside the grid are counted in ``n`` but in no cell (so the mass on the grid is the
        fraction of samples inside).
        """
        s = torch.as_tensor(samples).detach().to(device="cpu", dtype=torch.float64)
        s = s.reshape(s.shape[0], -1)
        if s.shape[1] != self.ndim:
            raise ValueError(f"samples must have shape (n, {self.ndim}) for this grid; got {tuple(s.shape)}")
        counts, _ = np.histogramdd(s.numpy(), bins=[e.numpy() for e in self.edges])
        return torch.from_numpy(counts) / (s.shape[0] * self.cell_volume)
