"""Adams-Bashforth in the noise level with per-step coefficients tuned together with the grid."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ._exponential import ExponentialMultistep
from .base import register
from .ipndm import AB_COEFFICIENTS

__all__ = ["TunedAB", "tuned_entry"]


def tuned_entry(family: str, levels: list[float]) -> dict | None:
    """The stored ``tuned_ab`` entry of ``family`` whose grid has these noise levels (rel. 1e-6), if any.

    ``levels`` are the grid's positive noise levels ``rho_0 > ... > rho_{n-1}``; the first is the
    process's own start (80 on EDM, about 152 on VP), so only the interior levels are compared
    (:class:`~sdeflow.grids.OptimizedGrid` keeps them as stored on every process whose range holds them).
    """
    from ..grids.optimized import load_table

    for e in load_table()["entries"]:
        if e["family"] != family or e["solver"] != "tuned_ab" or "coefficients" not in e:
            continue
        stored = [float(v) for v in e["levels"]]
        given = levels[1:]
        if len(stored) == len(given) and all(abs(a - b) <= 1e-6 * max(abs(a), 1e-12) for a, b in zip(stored, given)):
            return e
    return None


@register
@dataclass(frozen=True)
class TunedAB(ExponentialMultistep):
    r"""iPNDM's update with coefficients tuned per step and per budget on exact-score targets.

    The probability-flow ODE in the noise level ``rho = sigma/alpha`` is ``d(x/alpha)/drho = eps``;
    step ``i`` is ``x_{i+1} = (alpha_{i+1}/alpha_i) x_i + alpha_{i+1} (rho_{i+1} - rho_i) sum_j b_{ij} eps_{i-j}``
    (up to 3 past noise predictions). iPNDM fixes ``b`` to the equal-step Adams-Bashforth values;
    here ``b`` and the grid were tuned jointly (Nelder-Mead, from iPNDM's values and its optimized
    grid) to minimize the distance to the exact ODE solution on the targets of ``family``, on
    training noise (``benchmarks/optimize_grids.py --solvers tuned_ab``), in the spirit of learned
    solvers (Shaul et al. 2024, "Bespoke solvers"; Tong et al. 2024, "LD3"). The tuned
    coefficients are used on the grid they were tuned with, ``OptimizedGrid("tuned_ab", family=...)``
    (the default grid of this solver); on any other grid the solver is iPNDM of order 3 (documented
    fallback, the grid itself is used as given). ``coefficients`` (one tuple per step, newest noise
    prediction first) overrides the table, for coefficients tuned elsewhere. Declared ODE order 1 (the tuned coefficients need
    not satisfy higher order conditions). One model call per step.
    """

    name = "tuned_ab"
    mode = "eps"
    final_first_order = False
    ode_order = 1
    description = "Adams-Bashforth in noise level with per-step coefficients tuned with the grid (family)"

    family: str = "default"
    coefficients: tuple[tuple[float, ...], ...] | None = None

    def __post_init__(self) -> None:
        if self.coefficients is not None:
            rows = tuple(tuple(float(b) for b in row) for row in self.coefficients)
            if any(not 1 <= len(row) <= min(i + 1, 3) for i, row in enumerate(rows)):
                raise ValueError("coefficients must give, for step i, 1 to min(i + 1, 3) weights of the newest noise predictions")
            object.__setattr__(self, "coefficients", rows)

    def max_order(self) -> int:
        return 3

    def _table(self, tab) -> tuple[tuple[float, ...], ...] | None:
        if self.coefficients is not None:
            if len(self.coefficients) != len(tab.times) - 1:
                raise ValueError(
                    f"tuned_ab was given coefficients for {len(self.coefficients)} steps but the grid has "
                    f"{len(tab.times) - 1}; pass a grid of that many steps"
                )
            return self.coefficients
        entry = tuned_entry(self.family, list(tab.rho[:-1])) if tab.sigma[-1] == 0.0 else None
        return None if entry is None else tuple(tuple(c) for c in entry["coefficients"])

    def orders(self, tab):
        table = self._table(tab)
        return [len(c) for c in table] if table is not None else super().orders(tab)

    def weights(self, tab, i, k):
        a0, a1 = tab.alpha[i], tab.alpha[i + 1]
        table = self._table(tab)  # once per step of a new grid; the plans are cached
        coefs = table[i] if table is not None else AB_COEFFICIENTS[k - 1]
        drho = tab.rho[i + 1] - tab.rho[i]
        if not math.isfinite(drho):
            drho = 0.0
        return a1 / a0, [a1 * drho * b for b in coefs[:k]], 0.0
