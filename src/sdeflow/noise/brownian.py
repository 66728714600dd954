"""Brownian motion objects: a virtual Brownian tree and fixed-grid increments.

Stochastic solvers never draw noise themselves: they ask a Brownian path for ``W(t1) - W(t0)``
(DESIGN.md, "Randomness"). :class:`BrownianTree` gives the same path at any step count, grid or
query order (for convergence tests, adaptive steps and reproducibility across NFE budgets);
:class:`BrownianIncrements` is the cheap path for one fixed grid.

Both are built on the counter-based generator of :mod:`sdeflow.noise.rng`: every normal is a pure
function of ``(sample key, tag, element)``, so nothing depends on the batch a sample is in or on
the order of queries.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from .._utils import Time, sqrt_exact
from .rng import as_seeds, derive_keys, mix64, normal_from_keys

__all__ = ["BrownianIncrements", "BrownianTree"]

# Relative slack on time bounds (times computed in float arithmetic may overshoot t0 or t1 by
# round-off); it is relative to max(|t0|, |t1|, t1 - t0).
_SLACK = 1e-12
# A leaf's interior times are quantized to this many steps to key the bridge draw.
_LEAF_QUANT = 2**40
# Leaves must be at least 2**-48 * max(|t0|, |t1|, t1 - t0) wide (>= 16 float64 ulps of the times),
# so bisection never makes an empty cell; this also keeps node ids (< 2**49) and tags in int64.
_MIN_LEAF_EXP = 48
# The default depth: leaves of width (t1 - t0) * 2**-24.
_DEFAULT_DEPTH = 24


def _check_shape(shape: object) -> tuple[int, ...]:
    try:
        out = tuple(int(s) for s in shape)  # type: ignore[union-attr]
    except TypeError as err:
        raise TypeError(f"shape must be a tuple of ints (batch, *event_shape); got {shape!r}") from err
    if len(out) < 1 or any(s < 1 for s in out):
        raise ValueError(f"shape must be (batch, *event_shape) with every size >= 1; got {shape!r}")
    return out


def _check_dtype(dtype: object) -> torch.dtype:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype (float32 or float64); got {dtype!r}")
    return dtype


def _compute_device(device: torch.device | str | None) -> tuple[torch.device, torch.device]:
    """(device of the results, device of the float64/int64 work: the CPU where MPS lacks float64)."""
    out = torch.device("cpu") if device is None else torch.device(device)
    work = torch.device("cpu") if out.type == "mps" else out
    return out, work


def _sample_keys(
    seeds: int | Sequence[int] | torch.Tensor | None,
    generator: torch.Generator | None,
    batch: int,
    stream: int,
    device: torch.device,
) -> torch.Tensor:
    """Per-sample 64-bit keys ``derive_keys(mix64(seed_b), stream)``: int64 ``(batch,)`` on ``device``."""
    if (seeds is None) == (generator is None):
        raise ValueError(
            "pass exactly one source of noise: seeds=(int or one per sample) or generator=torch.Generator "
            "(sdeflow never uses the global random generator)"
        )
    if isinstance(stream, bool) or not isinstance(stream, int):
        raise TypeError(f"stream must be an int; got {stream!r}")
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator; got {type(generator).__name__}")
        # One random 64-bit seed per sample, drawn once: the generator is not touched afterwards.
        seed_t = torch.randint(
            -(2**63), 2**63 - 1, (batch,), generator=generator, dtype=torch.int64, device=generator.device
        ).cpu()
    else:
        seed_t = as_seeds(seeds, batch)
    return derive_keys(mix64(seed_t), stream).to(device)


def _check_interval(t0: float, t1: float) -> tuple[float, float]:
    try:
        t0, t1 = float(t0), float(t1)
    except (TypeError, ValueError) as err:
        raise TypeError(f"t0 and t1 must be real numbers; got t0={t0!r}, t1={t1!r}") from err
    if not (math.isfinite(t0) and math.isfinite(t1)) or not t0 < t1:
        raise ValueError(f"need finite t0 < t1 for the time interval [t0, t1]; got t0={t0!r}, t1={t1!r}")
    return t0, t1


def _leaf_terms(t: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The Brownian bridge inside a leaf ``[a, b]`` at times ``a < t < b`` (float64 ``(n,)`` tensors).

    Returns ``(frac, q, std)``: the interpolation weight ``(t - a) / (b - a)``, the time quantized to
    ``2**-40`` of the leaf (int64, the key of the bridge normal) and the bridge standard deviation
    ``sqrt((t - a) (b - t) / (b - a))``, correctly rounded (:func:`~sdeflow._utils.sqrt_exact`).
    The scalar and per-sample paths of :class:`BrownianTree` both call this, so a time gives the
    same bits whichever path it takes.
    """
    width = b - a
    frac = (t - a) / width
    q = torch.round(frac * _LEAF_QUANT).to(torch.int64)
    return frac, q, sqrt_exact((t - a) * (b - t) / width)


class BrownianTree:
    r"""A virtual Brownian tree: per-sample Brownian motion ``W`` on ``[t0, t1]``, queried at any time.

    ``W(t0) = 0`` and each sample has its own independent path, a deterministic function of
    (its seed, ``t``): the same value whatever the query order, whatever other queries were made,
    whatever batch the sample is in. Hence the same path at any step count: the increment over a
    coarse step equals the sum of the fine increments inside it, to float round-off.

    Construction (Gaines & Lyons 1997, "Variable step size control in the numerical solution of
    stochastic differential equations"; Li, Wong, Chen & Duvenaud 2020, "Scalable gradients for
    stochastic differential equations", virtual Brownian tree):

    * sample key ``k_b = derive_keys(mix64(seed_b), stream)``; ``W(t1) = sqrt(t1 - t0) * z_0``;
    * a cell ``[a, b]`` with known ``W(a)``, ``W(b)`` and heap id ``node`` (root 1, children
      ``2 node`` and ``2 node + 1``) has the midpoint value (Brownian bridge / Levy construction)
      ``W(m) = (W(a) + W(b)) / 2 + sqrt((b - a) / 4) * z(node)``;
    * a query descends towards ``t`` to the fixed depth ``L = depth`` (the same for every query,
      so ``W(t)`` never depends on other queries) and, inside the final leaf ``[a, b]``, samples
      the exact bridge ``W(t) = W(a) + (t-a)/(b-a) (W(b) - W(a)) + sqrt((t-a)(b-t)/(b-a)) z_leaf``
      with ``z_leaf`` keyed by the leaf and ``t`` quantized to ``2**-40`` of the leaf (equal ``t``,
      equal value). A dyadic point returns its tree value, with no extra noise.

    The normals are ``normal_from_keys(derive_keys(k_b, tag), D)`` (``D`` event elements) with tags
    ``0`` for ``z_0``, ``2 node`` for ``z(node)`` and ``2 leaf + 1`` (then ``derive_keys(., q)``
    with the quantized time ``q``) for ``z_leaf``: even and odd tags never collide.

    Exactness: the joint law of ``W`` at any set of times is exactly Brownian as long as no two of
    them fall strictly inside the same leaf (width ``tol``); two times inside one leaf get
    conditionally independent bridge draws, so increments shorter than ``tol`` are not exact.

    Times are float64 throughout and ``W`` is accumulated in float64, then cast to ``dtype``.

    Cost: a cold query draws ``L + 1`` normals per element (``L`` levels and the leaf). Scalar-time
    queries cache the last descent and restart from the deepest cell still containing the new
    time, so a sampling loop stepping through neighbouring times costs about
    ``L - log2((t1 - t0) / |dt|)`` normal draws per element per query (plus the leaf draw and, on
    average, ~2 levels lost where a step crosses a coarse dyadic point; the last query's value is
    cached too, so ``bm(t_i, t_{i+1})`` in a loop costs one new descent per step). The cache holds
    up to ``L + 2`` float64 tensors of the state's size. Per-sample ``(batch,)`` times always do a
    full vectorized descent; a ``(batch,)`` tensor of equal times takes the cached scalar path.

    Args:
        t0, t1: the time interval, ``t0 < t1``.
        shape: ``(batch, *event_shape)``, the shape of every result.
        seeds: per-sample seeds (see :func:`sdeflow.noise.as_seeds`): an int ``s`` gives seeds
            ``s, ..., s + batch - 1`` so sample ``i`` equals the single-sample tree of seed ``s + i``.
        generator: instead of ``seeds``, a ``torch.Generator`` from which one 64-bit seed per
            sample is drawn once, at construction.
        dtype, device: of the results.
        tol: the leaf width; ``depth = ceil(log2((t1 - t0) / tol))``. Default ``(t1 - t0) * 2**-24``
            (``depth = 24``, fewer only if ``|t0|`` or ``|t1|`` dwarfs ``t1 - t0``: leaves must be
            at least ``2**-48 * max(|t0|, |t1|, t1 - t0)`` wide, well above float64 resolution).
        stream: an independent stream for the same seeds (``randn`` uses 0 for the initial noise).

    Call:
        ``bm(ta)`` returns ``W(ta)``; ``bm(ta, tb)`` returns ``W(tb) - W(ta)`` (torchsde's
        convention). ``tb < ta`` is allowed (time running backwards): the result is exactly
        ``-(W(ta) - W(tb))``, of variance ``|tb - ta|``. Times are floats, 0-d tensors or
        ``(batch,)`` tensors (one time per sample), inside ``[t0, t1]``. Returns a tensor of
        ``shape``, ``dtype`` and ``device``.

    Example::

        bm = BrownianTree(0.0, 1.0, (16, 3), seeds=0)
        dw = bm(0.5, 0.25)   # W(0.25) - W(0.5), shape (16, 3), variance 0.25
    """

    def __init__(
        self,
        t0: float,
        t1: float,
        shape: tuple[int, ...],
        *,
        seeds: int | Sequence[int] | torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        tol: float | None = None,
        stream: int = 1,
    ) -> None:
        self.t0, self.t1 = _check_interval(t0, t1)
        self.shape = _check_shape(shape)
        self.dtype = _check_dtype(dtype)
        self.device, self._work = _compute_device(device)
        self.batch = self.shape[0]
        self.event_shape = self.shape[1:]
        self._numel = math.prod(self.event_shape)
        span = self.t1 - self.t0
        scale = max(abs(self.t0), abs(self.t1), span)
        # The deepest tree whose leaves stay well above float64 resolution of the times.
        max_depth = math.floor(math.log2(span / scale) + _MIN_LEAF_EXP)
        if max_depth < 0:
            raise ValueError(
                f"the interval [t0, t1] = [{self.t0}, {self.t1}] is too narrow for float64 times at that "
                "magnitude; shift the times towards 0"
            )
        if tol is None:
            self.depth = min(_DEFAULT_DEPTH, max_depth)
            tol = span * 2.0**-self.depth
        elif isinstance(tol, bool) or not isinstance(tol, (int, float)) or not math.isfinite(tol) or tol <= 0:
            raise ValueError(f"tol must be a finite number > 0 (the leaf width of the tree); got {tol!r}")
        else:
            # ceil(log2(span / tol)), robust to the round-off of an exact power of two.
            self.depth = max(0, math.ceil(math.log2(span / tol) - 1e-9))
            if self.depth > max_depth:
                raise ValueError(
                    f"tol={tol!r} would need depth {self.depth} > {max_depth} on [t0, t1] = "
                    f"[{self.t0}, {self.t1}]: leaves narrower than 2**-{_MIN_LEAF_EXP} * max(|t0|, |t1|, t1 - t0) "
                    f"are below float64 resolution; use tol >= {span * 2.0**-max_depth!r}"
                )
        self.tol = float(tol)
        # The bridge standard deviation at the midpoint of a level-j cell (nominal width span 2**-j),
        # sqrt(width / 4): one table for the scalar and the per-sample descents (same bits in both).
        self._level_std = [math.sqrt(span * 2.0 ** -(j + 2)) for j in range(self.depth)]
        self._slack = _SLACK * scale
        self._keys = _sample_keys(seeds, generator, self.batch, stream, self._work)
        # W(t0) = 0 and W(t1) = sqrt(t1 - t0) * z_0 (tag 0).
        self._w0 = torch.zeros(self.batch, self._numel, dtype=torch.float64, device=self._work)
        self._w1 = math.sqrt(span) * self._normal(0)
        # Cache of the last scalar query: the descent stack, level j -> (a, b, W(a), W(b), node).
        self._stack: list[tuple[float, float, torch.Tensor, torch.Tensor, int]] = [
            (self.t0, self.t1, self._w0, self._w1, 1)
        ]
        self._last: tuple[float, torch.Tensor] | None = None

    def __repr__(self) -> str:
        return (
            f"BrownianTree(t0={self.t0}, t1={self.t1}, shape={self.shape}, depth={self.depth}, "
            f"dtype={self.dtype}, device={self.device})"
        )

    # ---- noise -------------------------------------------------------------------------------
    def _normal(self, tag: int | torch.Tensor, keys: torch.Tensor | None = None) -> torch.Tensor:
        """Standard normals, float64 ``(batch, D)``, keyed by ``derive_keys(keys, tag)``."""
        return normal_from_keys(derive_keys(self._keys if keys is None else keys, tag), self._numel, torch.float64)

    def _leaf_normal(self, leaf: int | torch.Tensor, q: int | torch.Tensor) -> torch.Tensor:
        """The bridge normal of leaf ``leaf`` at quantized time ``q`` (odd tags: disjoint from nodes)."""
        return self._normal(q, derive_keys(self._keys, 2 * leaf + 1))

    # ---- time handling -----------------------------------------------------------------------
    def _as_time(self, t: Time, name: str) -> float | torch.Tensor:
        """A float (one time for the whole batch) or a float64 ``(batch,)`` tensor, clamped to [t0, t1]."""
        lo, hi = self.t0 - self._slack, self.t1 + self._slack
        interval = f"[t0, t1] = [{self.t0}, {self.t1}]"
        if isinstance(t, torch.Tensor):
            if t.is_complex() or t.dtype == torch.bool:
                raise TypeError(f"{name} must be a real time; got a tensor of dtype {t.dtype}")
            if t.ndim == 0:
                t = float(t)
            elif t.ndim == 1 and t.shape[0] == self.batch:
                t = t.detach().to(device=self._work, dtype=torch.float64)
                bad = ~((t >= lo) & (t <= hi))  # also catches NaN
                if bool(bad.any()):
                    i = int(bad.nonzero()[0, 0])
                    raise ValueError(
                        f"{name} must lie in {interval}; got {name}[{i}] = {float(t[i])!r}"
                    )
                t = t.clamp(self.t0, self.t1)
                # One time for the whole batch: take the (cached) scalar path, same values.
                first = float(t[0])
                if bool((t == first).all()):
                    return first
                return t
            else:
                raise ValueError(
                    f"{name} must be a float, a 0-d tensor or a (batch,) = ({self.batch},) tensor; "
                    f"got shape {tuple(t.shape)}"
                )
        else:
            try:
                t = float(t)
            except (TypeError, ValueError) as err:
                raise TypeError(f"{name} must be a float or a tensor of times; got {t!r}") from err
        if not lo <= t <= hi:
            raise ValueError(f"{name} must lie in {interval}; got {name} = {t!r}")
        return min(max(t, self.t0), self.t1)

    # ---- evaluation --------------------------------------------------------------------------
    @staticmethod
    def _contains(a: float, b: float, t: float, t0: float) -> bool:
        # The descent sends t <= m left, so the cells on t's path are (a, b], or [t0, b] for t = t0.
        return a < t <= b or t == a == t0

    def _bridge(self, t: float, a: float, b: float, wa: torch.Tensor, wb: torch.Tensor, leaf: int) -> torch.Tensor:
        if t == b:
            return wb
        if t == a:
            return wa
        # A scalar time is a per-sample time of one element: the leaf terms come from _leaf_terms.
        tab = torch.tensor([t, a, b], dtype=torch.float64, device=self._work)
        frac, q, std = _leaf_terms(tab[0:1], tab[1:2], tab[2:3])
        return wa + frac.unsqueeze(-1) * (wb - wa) + std.unsqueeze(-1) * self._leaf_normal(leaf, q)

    def _scalar(self, t: float) -> torch.Tensor:
        """W(t) in float64 ``(batch, D)`` for one time, restarting from the cached descent."""
        if self._last is not None and self._last[0] == t:
            return self._last[1]
        stack = self._stack
        # Deepest cached level whose cell still contains t (level 0 always does).
        j = len(stack) - 1
        while j > 0 and not self._contains(stack[j][0], stack[j][1], t, self.t0):
            j -= 1
        del stack[j + 1 :]
        a, b, wa, wb, node = stack[j]
        while True:
            if t == b or t == a:  # a dyadic point: its tree value, no more noise
                w = wb if t == b else wa
                break
            if len(stack) - 1 == self.depth:  # the leaf: exact Brownian bridge
                w = self._bridge(t, a, b, wa, wb, node)
                break
            # Bisection: W(m) from the bridge between W(a) and W(b).
            m = (a + b) * 0.5
            wm = (wa + wb) * 0.5 + self._level_std[len(stack) - 1] * self._normal(2 * node)
            if t <= m:
                b, wb, node = m, wm, 2 * node
            else:
                a, wa, node = m, wm, 2 * node + 1
            stack.append((a, b, wa, wb, node))
        self._last = (t, w)
        return w

    def _vector(self, t: torch.Tensor) -> torch.Tensor:
        """W(t) in float64 ``(batch, D)`` for per-sample times ``t`` (float64 ``(batch,)``)."""
        n = self.batch
        a = torch.full((n,), self.t0, dtype=torch.float64, device=self._work)
        b = torch.full((n,), self.t1, dtype=torch.float64, device=self._work)
        node = torch.ones(n, dtype=torch.int64, device=self._work)
        wa, wb = self._w0, self._w1
        # The same arithmetic as the scalar path, per sample: identical values. Samples at a dyadic
        # point keep it as an end of every later cell, so the full descent needs no early exit.
        for level in range(self.depth):
            m = (a + b) * 0.5
            wm = (wa + wb) * 0.5 + self._level_std[level] * self._normal(2 * node)
            left = t <= m
            left_e = left.unsqueeze(-1)
            wa, wb = torch.where(left_e, wa, wm), torch.where(left_e, wm, wb)
            a, b = torch.where(left, a, m), torch.where(left, m, b)
            node = 2 * node + (~left).to(torch.int64)
        frac, q, std = _leaf_terms(t, a, b)
        w = wa + frac.unsqueeze(-1) * (wb - wa) + std.unsqueeze(-1) * self._leaf_normal(node, q)
        w = torch.where((t == a).unsqueeze(-1), wa, w)
        return torch.where((t == b).unsqueeze(-1), wb, w)

    def _w(self, t: float | torch.Tensor) -> torch.Tensor:
        return self._scalar(t) if isinstance(t, float) else self._vector(t)

    def _out(self, w: torch.Tensor, owned: bool) -> torch.Tensor:
        out = w.to(dtype=self.dtype, device=self.device).reshape(self.shape)
        # Never hand out a view of the cache (the caller may write into the result).
        return out if owned or out.data_ptr() != w.data_ptr() else out.clone()

    def __call__(self, ta: Time, tb: Time | None = None) -> torch.Tensor:
        """``W(ta)``, or the increment ``W(tb) - W(ta)`` when ``tb`` is given; shape ``self.shape``."""
        ta_ = self._as_time(ta, "ta")
        if tb is None:
            return self._out(self._w(ta_), owned=False)
        tb_ = self._as_time(tb, "tb")
        wa = self._w(ta_)
        # Differences in float64, then cast: bm(ta, tb) is exactly -bm(tb, ta).
        return self._out(self._w(tb_) - wa, owned=True)


class BrownianIncrements:
    r"""Brownian increments on one fixed grid ``ts``: one normal per element per step.

    The increment of step ``i`` (from ``ts[i]`` to ``ts[i+1]``) is
    ``sqrt(|ts[i+1] - ts[i]|) * z_i`` with ``z_i = normal_from_keys(derive_keys(k_b, i), D)`` and
    the sample key ``k_b = derive_keys(mix64(seed_b), stream)``: a pure function of (seed, step),
    independent across steps and samples, whatever the batch.

    This is the fast path when the step count is fixed (one normal per element per step, against
    about ``depth - log2(T / dt)`` for :class:`BrownianTree`). It does NOT give the same path at a
    different step count or on another grid: use :class:`BrownianTree` for convergence studies,
    adaptive steps and comparisons across NFE budgets.

    The increments are drawn on demand, which gives the values of drawing them all up front
    (each is a pure function of its counter) without storing ``len(ts) - 1`` states.

    Args:
        ts: the grid, a strictly monotone (increasing or decreasing) sequence or 1-d tensor of at
            least two times.
        shape: ``(batch, *event_shape)``, the shape of every increment.
        seeds, generator: the source of noise, exactly one (as for :class:`BrownianTree`).
        dtype, device: of the results.
        stream: an independent stream for the same seeds (default 2, apart from the tree's 1).

    Call:
        ``inc(ta, tb)`` with ``ta``, ``tb`` consecutive grid times (``ts[i], ts[i+1]`` or
        ``ts[i+1], ts[i]``; floats, 0-d or ``(batch,)`` tensors) returns ``W(tb) - W(ta)``:
        the step's increment, or its exact negative for the reversed pair. Shape ``shape``.
    """

    def __init__(
        self,
        ts: Sequence[float] | torch.Tensor,
        shape: tuple[int, ...],
        *,
        seeds: int | Sequence[int] | torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        stream: int = 2,
    ) -> None:
        try:
            grid = torch.as_tensor(ts, dtype=torch.float64).detach().cpu()
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"ts must be a 1-d sequence or tensor of times; got {ts!r}") from err
        if grid.ndim != 1 or grid.shape[0] < 2:
            raise ValueError(f"ts must be a 1-d grid of at least 2 times; got shape {tuple(grid.shape)}")
        if not bool(torch.isfinite(grid).all()):
            raise ValueError("ts must be finite times; got a NaN or an infinity")
        d = grid.diff()
        if not (bool((d > 0).all()) or bool((d < 0).all())):
            raise ValueError(
                "ts must be strictly monotone (increasing or decreasing, no repeated times); "
                f"got {grid.tolist() if grid.numel() <= 10 else grid}"
            )
        self.ts = grid
        self._increasing = bool(d[0] > 0)
        self._sorted = grid if self._increasing else grid.flip(0)
        self.shape = _check_shape(shape)
        self.dtype = _check_dtype(dtype)
        self.device, self._work = _compute_device(device)
        self.batch = self.shape[0]
        self._numel = math.prod(self.shape[1:])
        self._slack = _SLACK * float(grid.abs().max())
        self._keys = _sample_keys(seeds, generator, self.batch, stream, self._work)

    def __len__(self) -> int:
        """The number of steps, ``len(ts) - 1``."""
        return self.ts.shape[0] - 1

    def __repr__(self) -> str:
        return f"BrownianIncrements(steps={len(self)}, shape={self.shape}, dtype={self.dtype}, device={self.device})"

    def _index(self, t: torch.Tensor, name: str, slack: float) -> torch.Tensor:
        """Grid indices of the times ``t`` (float64, any shape on the CPU); ValueError if one is off-grid."""
        n = self._sorted.shape[0]
        shape, t = t.shape, t.reshape(-1)
        pos = torch.searchsorted(self._sorted, t).clamp(1, n - 1)
        lo, hi = self._sorted[pos - 1], self._sorted[pos]
        nearest = torch.where((t - lo).abs() <= (hi - t).abs(), pos - 1, pos)
        off = ~((self._sorted[nearest] - t).abs() <= slack)  # also catches NaN
        if bool(off.any()):
            bad = float(t[off.nonzero()[0, 0]])
            raise ValueError(
                f"{name} = {bad!r} is not a time of the grid ts; BrownianIncrements only gives the "
                "increments between consecutive grid times (use BrownianTree for arbitrary times)"
            )
        index = nearest if self._increasing else n - 1 - nearest
        return index.reshape(shape)

    def _grid_index(self, t: Time, name: str) -> torch.Tensor:
        """The grid index of ``t`` (int64, shape ``()`` or ``(batch,)``)."""
        slack = self._slack
        if isinstance(t, torch.Tensor):
            if t.is_complex() or t.dtype == torch.bool:
                raise TypeError(f"{name} must be a real time; got a tensor of dtype {t.dtype}")
            if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != self.batch):
                raise ValueError(
                    f"{name} must be a float, a 0-d tensor or a (batch,) = ({self.batch},) tensor; "
                    f"got shape {tuple(t.shape)}"
                )
            if t.is_floating_point() and t.dtype != torch.float64:
                # Grid times rounded to a lower precision are still matched, to that precision.
                slack = max(slack, 4 * torch.finfo(t.dtype).eps * float(self.ts.abs().max()))
            t = t.detach().to(device="cpu", dtype=torch.float64)
        else:
            try:
                t = torch.tensor(float(t), dtype=torch.float64)
            except (TypeError, ValueError) as err:
                raise TypeError(f"{name} must be a float or a tensor of times; got {t!r}") from err
        return self._index(t, name, slack)

    def __call__(self, ta: Time, tb: Time) -> torch.Tensor:
        """``W(tb) - W(ta)`` for consecutive grid times; shape ``self.shape``."""
        ia = self._grid_index(ta, "ta")
        ib = self._grid_index(tb, "tb")
        if not bool(((ia - ib).abs() == 1).all()):
            raise ValueError(
                f"ta and tb must be consecutive times of the grid ts (indices i and i+1, either order); "
                f"got grid indices {ia.tolist()} and {ib.tolist()}. BrownianIncrements gives one step "
                "at a time; use BrownianTree for increments across several steps or off the grid"
            )
        step = torch.minimum(ia, ib)
        sign = torch.where(ib > ia, 1.0, -1.0).to(torch.float64)
        # One correctly rounded scale per step, whichever path below uses it.
        scale = sqrt_exact((self.ts[step + 1] - self.ts[step]).abs())
        if step.ndim == 0 or bool((step == step[0]).all()):
            i = int(step.reshape(-1)[0])
            z = normal_from_keys(derive_keys(self._keys, i), self._numel, torch.float64)
            dw = float(scale.reshape(-1)[0]) * z
            if sign.ndim == 0 or bool((sign == sign[0]).all()):
                dw = dw * float(sign.reshape(-1)[0])
            else:
                dw = dw * sign.to(self._work).unsqueeze(-1)
        else:  # per-sample steps
            z = normal_from_keys(derive_keys(self._keys, step.to(self._work)), self._numel, torch.float64)
            dw = (sign * scale).to(self._work).unsqueeze(-1) * z
        return dw.to(self.dtype).reshape(self.shape).to(self.device)
