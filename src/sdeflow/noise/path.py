"""A fast Brownian path on a fixed grid: increments drawn in chunks of steps by torch's generator.

The counter-based objects of :mod:`sdeflow.noise.brownian` give per-sample reproducibility (a
sample's noise does not depend on its batch) at the price of ~20 integer operations per normal.
:class:`BrownianPath` is the fast path for Monte Carlo: the increments of steps ``k0 .. k1`` (a
chunk of about ``2**16`` numbers, cache-sized) are drawn at once by ``torch.randn`` from a generator seeded with
``mix(seed, chunk)``, so step ``i`` has the same increment whatever the order of queries, and the
cost per step is the cost of ``torch.randn`` itself. The path depends on the batch size (one stream
for the batch), and on the grid: for the same path at several step counts, draw it on the finest
grid and query coarser steps (their increments and space-time areas are aggregated exactly).
"""

from __future__ import annotations

import bisect
import math
from typing import Sequence

import torch

from .._utils import Time

__all__ = ["BrownianPath"]

_MASK = (1 << 64) - 1


def _mix(seed: int, tag: int) -> int:
    """SplitMix64 of ``seed + golden * (tag + 1)``, as a non-negative 63-bit int (a generator seed)."""
    z = (seed + 0x9E3779B97F4A7C15 * (tag + 1)) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return (z ^ (z >> 31)) >> 1


class BrownianPath:
    r"""Brownian motion on the times of a fixed grid, with its space-time Levy area, drawn fast.

    Step ``i`` (from ``ts[i]`` to ``ts[i+1]``, ``dt_i = |ts[i+1] - ts[i]|``) has the increment
    ``dW_i = sqrt(dt_i) z_i`` and the space-time integral ``U_i = int (W_s - W_{ts[i]}) ds =
    dt_i (dW_i / 2 + H_i)``, ``H_i = sqrt(dt_i / 12) z'_i`` (the space-time Levy area, independent
    of ``dW_i``; Foster, Lyons & Oberhauser 2020), with independent standard normals ``z``, ``z'``
    drawn by ``torch.randn`` in chunks of steps; ``z'`` only when asked for.

    A query over several steps aggregates exactly: ``W_{s,t} = W_{s,u} + W_{u,t}`` and
    ``U_{s,t} = U_{s,u} + U_{u,t} + (t - u) W_{s,u}``.

    Args:
        ts: the grid, strictly monotone, at least two times.
        shape: ``(batch, *event_shape)`` of every increment.
        seed: an int (the same seed gives the same path); or ``generator``, a ``torch.Generator``
            from which one seed is drawn at construction.
        dtype, device: of the increments.
        chunk_elements: numbers drawn per chunk (memory held: about twice that).

    Call:
        ``bm(ta, tb)`` with ``ta``, ``tb`` times of the grid (any two, either order) returns
        ``W(tb) - W(ta)``; ``bm(ta, tb, return_U=True)`` returns ``(W(tb) - W(ta), U)`` with
        ``U = int_ta^tb (W_s - W_ta) ds`` (torchsde's convention). :meth:`step` returns step ``i``.
    """

    def __init__(
        self,
        ts: Sequence[float] | torch.Tensor,
        shape: tuple[int, ...],
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        chunk_elements: int = 2**16,
    ) -> None:
        grid = torch.as_tensor(ts, dtype=torch.float64).detach().cpu()
        if grid.ndim != 1 or grid.shape[0] < 2 or not bool(torch.isfinite(grid).all()):
            raise ValueError(f"ts must be a 1-d grid of at least 2 finite times; got {ts!r}")
        d = grid.diff()
        if not (bool((d > 0).all()) or bool((d < 0).all())):
            raise ValueError("ts must be strictly monotone (no repeated times)")
        if (seed is None) == (generator is None):
            raise ValueError(
                "pass exactly one source of noise: seed=int or generator=torch.Generator "
                "(sdeflow never uses the global random generator)"
            )
        if generator is not None:
            seed = int(torch.randint(0, 2**62, (), generator=generator, device=generator.device))
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int; got {seed!r}")
        self.shape = tuple(int(s) for s in shape)
        if len(self.shape) < 1 or any(s < 1 for s in self.shape):
            raise ValueError(f"shape must be (batch, *event_shape) with sizes >= 1; got {shape!r}")
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating-point torch.dtype; got {dtype!r}")
        self.dtype, self.device = dtype, torch.device("cpu") if device is None else torch.device(device)
        self.seed = seed
        self.times = grid.tolist()
        self._sign = 1.0 if bool(d[0] > 0) else -1.0
        self._sorted = self.times if self._sign > 0 else self.times[::-1]
        self._where = {t: i for i, t in enumerate(self.times)}
        self._dt = d.abs().tolist()
        self._slack = 1e-12 * max(abs(self.times[0]), abs(self.times[-1]), sum(self._dt))
        numel = math.prod(self.shape)
        self.chunk = max(1, min(len(self._dt), chunk_elements // numel))
        self._cache: dict[tuple[int, int], tuple[torch.Tensor, ...]] = {}

    def __len__(self) -> int:
        return len(self._dt)

    def __repr__(self) -> str:
        return f"BrownianPath(steps={len(self)}, shape={self.shape}, dtype={self.dtype}, device={self.device})"

    def _draw(self, c: int, kind: int) -> tuple[torch.Tensor, ...]:
        """Chunk ``c`` of ``dW`` (``kind = 0``) or of ``U`` (``kind = 1``), as a tuple of per-step tensors."""
        key = (c, kind)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        k0, k1 = c * self.chunk, min(len(self._dt), (c + 1) * self.chunk)
        gen = torch.Generator(device=self.device).manual_seed(_mix(_mix(self.seed, c), kind))
        dts = self._dt[k0:k1]
        z = torch.empty((k1 - k0,) + self.shape, dtype=self.dtype, device=self.device)
        col = (-1,) + (1,) * len(self.shape)
        if max(dts) == min(dts):  # uniform steps: the scale is fused into the draw
            z.normal_(0.0, math.sqrt(dts[0] if kind == 0 else dts[0] / 12.0), generator=gen)
        else:
            scale = torch.tensor(dts, dtype=torch.float64)
            scale = (scale.sqrt() if kind == 0 else (scale / 12.0).sqrt()).to(self.dtype).to(self.device)
            z.normal_(generator=gen).mul_(scale.reshape(col))
        if kind == 1:  # U = dt (dW / 2 + H), for the whole chunk at once
            dt = torch.tensor(dts, dtype=self.dtype, device=self.device).reshape(col)
            z = z.add_(torch.stack(self._draw(c, 0)), alpha=0.5).mul_(dt)
        out = z.unbind(0)
        # Hold the current chunk of each kind only: memory stays bounded whatever the step count.
        for old in [k for k in self._cache if k[1] == kind]:
            del self._cache[old]
        self._cache[key] = out
        return out

    def step(self, i: int, return_U: bool = False):
        """``dW`` of step ``i`` (from ``ts[i]`` to ``ts[i+1]``), or ``(dW, U)``."""
        c, k = divmod(i, self.chunk)
        dw = self._draw(c, 0)[k]
        if not return_U:
            return dw
        if self._sign < 0:
            raise ValueError("the space-time Levy area (return_U=True) needs an increasing grid ts")
        return dw, self._draw(c, 1)[k]

    def _index(self, t: Time, name: str) -> int:
        t = float(t)
        i = self._where.get(t)
        if i is not None:
            return i
        p = bisect.bisect_left(self._sorted, t)
        for q in (p - 1, p):
            if 0 <= q < len(self._sorted) and abs(self._sorted[q] - t) <= self._slack:
                return q if self._sign > 0 else len(self._sorted) - 1 - q
        raise ValueError(
            f"{name} = {t!r} is not a time of the grid of this BrownianPath; query grid times only "
            "(use BrownianTree for arbitrary times)"
        )

    def __call__(self, ta: Time, tb: Time, return_U: bool = False):
        """``W(tb) - W(ta)`` (and ``U``) for grid times ``ta``, ``tb``; shape ``self.shape``."""
        where = self._where
        ia, ib = where.get(ta), where.get(tb)  # the per-step fast path: exact grid floats
        if ia is None or ib is None:
            ia, ib = self._index(ta, "ta"), self._index(tb, "tb")
        if ib == ia + 1:
            return self.step(ia, return_U)
        lo, hi = min(ia, ib), max(ia, ib)
        if lo == hi:
            zero = torch.zeros(self.shape, dtype=self.dtype, device=self.device)
            return (zero, zero.clone()) if return_U else zero
        w = u = None
        for i in range(lo, hi):
            out = self.step(i, return_U)
            dw, du = out if return_U else (out, None)
            if w is None:
                w, u = dw, du
            else:
                if return_U:
                    u = u + du + self._dt[i] * w
                w = w + dw
        if ib < ia:  # time running backwards: W(tb) - W(ta) = -W_{tb,ta}, U from the reversed interval
            span = sum(self._dt[lo:hi])
            w, u = -w, (span * w - u) if return_U else None
        return (w, u) if return_U else w
