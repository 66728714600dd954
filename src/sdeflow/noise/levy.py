r"""A virtual Brownian tree that also carries the space-time Levy area (for strong order 1.5 methods).

The stochastic Runge-Kutta methods of order 1.5 (:mod:`sdeflow.solvers.srk`) need, besides
``dW``, the space-time integral ``U = int_ta^tb (W_s - W_ta) ds = I_(1,0)`` over each step, and
adaptive steps need it over arbitrary intervals, consistently: the ``U`` of a step must equal the
aggregate of the ``U`` of its halves. :class:`LevyBrownianTree` builds ``W`` and the running
integral ``I(t) = int_t0^t W ds`` together, top-down, so both are pure functions of (seed, t).

Construction. A cell ``[a, b]`` of width ``h`` carries ``W_a``, ``W_b``, ``I(a)`` and its
space-time Levy area ``H = (1/h) int_a^b (W_s - W_a - (s - a)/h (W_b - W_a)) ds ~ N(0, h/12)``,
independent of ``w = W_b - W_a`` (the root draws both). Splitting at ``s = a + x h`` (``x = 1/2``
inside the tree, the query time inside a leaf), ``h1 = x h``, ``h2 = h - h1``: the bridge's
covariance with its integral is ``h x (1 - x) / 2``, hence

    W_s = W_a + x w + 6 x (1 - x) H + sqrt(h (x (1 - x) - 3 x^2 (1 - x)^2)) z1,

and with ``w1 = W_s - W_a``, ``w2 = W_b - W_s`` the children's areas satisfy
``h1 H1 + h2 H2 = C = h H - (h2 w1 - h1 w2)/2``, ``H_i ~ N(0, h_i/12)`` independent otherwise:

    h1 H1 = C h1^3 / (h1^3 + h2^3) + sqrt(h1^3 h2^3 / (12 (h1^3 + h2^3))) z2,   H2 = (C - h1 H1) / h2.

At ``x = 1/2``: ``W_m = W_a + w/2 + 3H/2 + sqrt(h/16) z1`` (J. Foster, "Numerical approximations
for stochastic differential equations", PhD thesis, Oxford 2020, ch. 5; torchsde's
``BrownianInterval`` uses the midpoint case). Every left part passed adds
``h1 (W_a + w1/2 + H1)`` to ``I``; ``U = I(tb) - I(ta) - (tb - ta) W(ta)`` is then exactly
additive. The normals are keyed like :class:`~sdeflow.noise.BrownianTree`'s (``z1``: node and leaf
tags of the tree; ``z2``: the same tags on the stream ``derive_keys(k_b, 2**62)``), so the path is
batch-invariant and query-order invariant; it differs from the plain tree's path of the same seed.
"""

from __future__ import annotations

import math

import torch

from .._utils import Time
from .brownian import _LEAF_QUANT, BrownianTree
from .rng import derive_keys

__all__ = ["LevyBrownianTree"]

_LEVY_TAG = 2**62  # stream of the second normal of each split (node tags stay far below)


class LevyBrownianTree(BrownianTree):
    """:class:`~sdeflow.noise.BrownianTree` with the space-time Levy area (module docstring).

    Same arguments as :class:`~sdeflow.noise.BrownianTree`; times are scalars (one time for the
    whole batch). Call: ``bm(ta)`` is ``W(ta)``, ``bm(ta, tb)`` is ``W(tb) - W(ta)`` and
    ``bm(ta, tb, return_U=True)`` is ``(W(tb) - W(ta), U)`` with ``U = int_ta^tb (W_s - W_ta) ds``
    (torchsde's convention), each of shape ``shape``. Cost: two normals per level of a descent.
    """

    levy_area = "space-time"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._keys_h = derive_keys(self._keys, _LEVY_TAG)
        h_root = math.sqrt((self.t1 - self.t0) / 12.0) * self._normal(0, self._keys_h)
        # Cells (a, b, W(a), W(b), H, I(a), node); the cached descent of the last query.
        self._cells: list[tuple] = [(self.t0, self.t1, self._w0, self._w1, h_root, self._w0, 1)]
        self._memo: tuple[float, torch.Tensor, torch.Tensor] | None = None

    def __repr__(self) -> str:
        return "Levy" + super().__repr__()

    @staticmethod
    def _split(cell: tuple, s: float, z1: torch.Tensor, z2: torch.Tensor) -> tuple[tuple, tuple]:
        """The two cells of ``cell`` split at ``s``, given the split's two normals."""
        a, b, wa, wb, area, ia, node = cell
        h, h1, h2 = b - a, s - a, b - s
        x = h1 / h
        v = max(h * (x * (1.0 - x) - 3.0 * (x * (1.0 - x)) ** 2), 0.0)
        ws = wa + x * (wb - wa) + (6.0 * x * (1.0 - x)) * area + math.sqrt(v) * z1
        w1, w2 = ws - wa, wb - ws
        c = h * area - 0.5 * (h2 * w1 - h1 * w2)
        c1, c2 = h1**3, h2**3
        area1 = (c * (c1 / (c1 + c2)) + math.sqrt(c1 * c2 / (12.0 * (c1 + c2))) * z2) / h1
        area2 = (c - h1 * area1) / h2
        i_s = ia + h1 * (wa + 0.5 * w1 + area1)
        return (a, s, wa, ws, area1, ia, 2 * node), (s, b, ws, wb, area2, i_s, 2 * node + 1)

    @staticmethod
    def _integral_at_end(cell: tuple) -> torch.Tensor:
        a, b, wa, wb, area, ia, _ = cell
        return ia + (b - a) * (0.5 * (wa + wb) + area)

    def _w_and_integral(self, t: float | torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W(t), I(t))``, float64 ``(batch, D)``, restarting from the deepest cached cell holding ``t``."""
        if not isinstance(t, float):
            raise ValueError(f"{name}: a LevyBrownianTree takes one time for the whole batch (a float or 0-d tensor)")
        if self._memo is not None and self._memo[0] == t:
            return self._memo[1], self._memo[2]
        cells = self._cells
        j = len(cells) - 1
        while j > 0 and not self._contains(cells[j][0], cells[j][1], t, self.t0):
            j -= 1
        del cells[j + 1 :]
        while True:
            cell = cells[-1]
            a, b, node = cell[0], cell[1], cell[6]
            if t == a:
                out = (cell[2], cell[5])
                break
            if t == b:
                out = (cell[3], self._integral_at_end(cell))
                break
            if len(cells) - 1 == self.depth:  # a leaf: split at t itself, keyed by the quantized time
                q = round((t - a) / (b - a) * _LEAF_QUANT)
                keys = derive_keys(self._keys, 2 * node + 1)
                left, _ = self._split(cell, t, self._normal(q, keys), self._normal(q, derive_keys(keys, _LEVY_TAG)))
                out = (left[3], self._integral_at_end(left))
                break
            m = 0.5 * (a + b)
            left, right = self._split(cell, m, self._normal(2 * node), self._normal(2 * node, self._keys_h))
            cells.append(left if t <= m else right)
        self._memo = (t, out[0], out[1])
        return out

    def _w(self, t: float | torch.Tensor) -> torch.Tensor:
        return self._w_and_integral(t, "t")[0]

    def __call__(self, ta: Time, tb: Time | None = None, return_U: bool = False):
        """``W(ta)``; ``W(tb) - W(ta)``; or ``(W(tb) - W(ta), U)`` with ``return_U=True``."""
        if not return_U:
            return super().__call__(ta, tb)
        if tb is None:
            raise ValueError("return_U=True needs an interval: call bm(ta, tb, return_U=True)")
        ta_, tb_ = self._as_time(ta, "ta"), self._as_time(tb, "tb")
        wa, ia = self._w_and_integral(ta_, "ta")
        wb, ib = self._w_and_integral(tb_, "tb")
        return self._out(wb - wa, owned=True), self._out(ib - ia - (tb_ - ta_) * wa, owned=True)
