"""The Brownian motion of a chunked solve: per-sample seeded, so a sample's path does not depend on
the chunk it is solved in (:func:`sdeflow.sdeint` with ``chunk_size``).

:class:`~sdeflow.noise.BrownianPath` draws one stream for the whole batch (fast, but a sample's
noise depends on the batch); here every sample owns a counter-based key (:mod:`sdeflow.noise.rng`)
and the normals of step ``i`` are a pure function of ``(key, i)``. Solving rows ``lo:hi`` with the
keys of rows ``lo:hi`` therefore gives exactly the rows ``lo:hi`` of the solve of the whole batch.
"""

from __future__ import annotations

import math

import torch

from ..noise.rng import derive_keys, mix64, normal_from_keys

__all__ = ["SampleBrownianPath", "RowsOf", "STREAM"]

STREAM = 3
"""The key stream of these paths (the tree uses 1, ``BrownianIncrements`` 2): independent of both."""


class SampleBrownianPath:
    r"""Brownian increments and space-time areas on a fixed grid, from per-sample keys.

    Step ``i`` (``grid[i] -> grid[i+1]``, ``h_i`` long) has ``dW_i = sqrt(h_i) z`` and
    ``U_i = int (W_s - W_{grid[i]}) ds = h_i (dW_i / 2 + sqrt(h_i / 12) z')`` (Foster, Lyons &
    Oberhauser 2020), with ``z = normal_from_keys(derive_keys(k, 2 i))`` and
    ``z' = normal_from_keys(derive_keys(k, 2 i + 1))`` for the sample key ``k``: computed in float64,
    cast to ``dtype``.

    Args:
        grid: the step grid (floats, increasing); queries are ``(grid[i], grid[i+1])``.
        shape: ``(batch, *event_shape)`` of an increment.
        seeds: int64 ``(batch,)``, one seed per sample.
        dtype, device: of the increments.
    """

    def __init__(self, grid: list[float], shape: tuple[int, ...], seeds: torch.Tensor, dtype: torch.dtype,
                 device: torch.device) -> None:
        self.shape = tuple(int(s) for s in shape)
        self.dtype, self.device = dtype, device
        self._keys = derive_keys(mix64(seeds.to(torch.int64)), STREAM).to(device)
        self._where = {t: i for i, t in enumerate(grid)}
        self._dt = [b - a for a, b in zip(grid[:-1], grid[1:])]
        self._numel = math.prod(self.shape[1:])
        self._last: tuple[int, torch.Tensor] | None = None

    def _normals(self, tag: int) -> torch.Tensor:
        return normal_from_keys(derive_keys(self._keys, tag), self._numel, torch.float64)

    def __call__(self, ta: float, tb: float, return_U: bool = False):
        i, j = self._where.get(ta), self._where.get(tb)
        if i is None or j != i + 1:
            raise ValueError(
                f"the per-sample Brownian path of a chunked solve gives the increments of single grid steps; got "
                f"ta = {ta!r}, tb = {tb!r} (grid indices {i}, {j})"
            )
        h = self._dt[i]
        last = self._last
        if last is not None and last[0] == i:
            dw64 = last[1]
        else:
            dw64 = self._normals(2 * i).mul_(math.sqrt(h))
            self._last = (i, dw64)
        dw = dw64.to(self.dtype).reshape(self.shape)
        if not return_U:
            return dw
        u = self._normals(2 * i + 1).mul_(math.sqrt(h / 12.0)).add_(dw64, alpha=0.5).mul_(h)
        return dw, u.to(self.dtype).reshape(self.shape)


class RowsOf:
    """A user's Brownian object restricted to the rows ``lo:hi`` of its batch (a chunk of the solve)."""

    def __init__(self, bm, lo: int, hi: int) -> None:
        self.bm, self.lo, self.hi = bm, lo, hi

    def __call__(self, ta, tb, return_U: bool = False, return_A: bool = False):
        if return_U or return_A:
            flags = {"return_U": True} if return_U else {}
            out = self.bm(ta, tb, **flags, return_A=True) if return_A else self.bm(ta, tb, **flags)
            return tuple(v[self.lo:self.hi] for v in out)
        return self.bm(ta, tb)[self.lo:self.hi]
