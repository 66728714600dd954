"""Strong order 1.5 stochastic Runge-Kutta methods (Roessler 2010): SRI for diagonal, SRA for additive noise.

One kernel runs every table, in the form of A. Roessler, "Runge-Kutta methods for the strong
approximation of solutions of stochastic differential equations", SIAM J. Numer. Anal. 48 (2010),
eqs. (3.1) and (4.1), for an Ito SDE with diagonal or scalar noise (the increments act per
component), with ``h = t1 - t0``, ``dW`` the increment, ``U = I_(1,0) = int (W_s - W_t0) ds``,
``I_(1,1) = (dW^2 - h)/2`` and ``I_(1,1,1) = (dW^3 - 3 h dW)/6``:

    H0_i = x + h sum_j A0_ij f(t0 + c0_j h, H0_j) + sum_j B0_ij G(t0 + c1_j h, H1_j) U / h
    H1_i = x + h sum_j A1_ij f(t0 + c0_j h, H0_j) + sqrt(h) sum_j B1_ij G(t0 + c1_j h, H1_j)
    x1   = x + h sum_i alpha_i f_i
             + sum_i (beta1_i dW + beta2_i I_(1,1)/sqrt(h) + beta3_i U/h + beta4_i I_(1,1,1)/h) G_i.

An SRA method (additive noise, Roessler 2010 section 5) is the same form with ``A1 = B1 = 0``,
``beta2 = beta4 = 0`` and its ``beta2`` in ``beta3``; on additive noise ``G`` does not depend on
the state, so the ``H1`` stages are skipped and any diffusion layout works (general ``(b, d, m)``
included). Ito and Stratonovich agree on additive noise.

Strong order 1.5 (SRI on diagonal/scalar/additive Ito noise, SRA on additive noise). The
embedded error estimate (Rackauckas & Nie 2017, "Adaptive methods for stochastic differential
equations via natural embeddings and rejection sampling with memory", DCDS-B 22) is the part of
the step beyond the order-1 terms: ``h (sum_i alpha_i f_i - f_1) + sum_i (beta3_i U/h + beta4_i
I_(1,1,1)/h) G_i``.

How the kernel runs a table (the same arithmetic, in few tensor operations). Once per table and
kind of problem, :class:`_Plan` keeps only the nonzero terms, evaluates only the stages whose
``f_i`` or ``G_i`` is used, adds a sum of ``G_j`` times ``U/h`` as one fused op, and starts a stage
value from an earlier one whose terms it contains (SRI2: ``H1_2 = H0_1 + sqrt(h) G_0``). The
update is written as a cubic in ``dW`` (``I_(1,1)``, ``I_(1,1,1)`` expanded):

    x1 = C0 + dW (C1 + dW (C2 + dW C3)) + U CU,
    C0 = x + h sum alpha_i f_i - sqrt|h| sum beta2_i G_i / 2,   CU = sum beta3_i G_i / h,
    C1 = sum (beta1_i - beta4_i / 2) G_i,  C2 = sum beta2_i G_i / (2 sqrt|h|),  C3 = sum beta4_i G_i / (6 |h|),

so every ``C`` (and the error estimate's rows) is a fixed linear combination of ``x, f_i, G_i``:
one ``stack``, one broadcast product with the coefficient matrix and one add per column (not a
matrix product, whose kernel and last bits depend on the batch width: a sample must not change with
its batch), then Horner's rule (four fused ops). The matrices are built once per distinct step ``h``
(a fixed grid has a handful) and cached in the plan; :meth:`init` hands the
plan to the steps as the solver state.

The space-time integral ``U`` comes from the Brownian object, with ``dW``, in one call
(``bm(t0, t1, return_U=True)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from ._sde import SDEMethod, add_diffusion, layout, prepare_stage_times, space_time, structure
from .base import StepResult, register


@dataclass(frozen=True)
class SRKTable:
    """Coefficients of an SRI/SRA method (rows of the matrices strictly lower triangular)."""

    c0: tuple[float, ...]
    c1: tuple[float, ...]
    a0: tuple[tuple[float, ...], ...]
    a1: tuple[tuple[float, ...], ...]
    b0: tuple[tuple[float, ...], ...]
    b1: tuple[tuple[float, ...], ...]
    alpha: tuple[float, ...]
    beta1: tuple[float, ...]
    beta2: tuple[float, ...]
    beta3: tuple[float, ...]
    beta4: tuple[float, ...]

    @classmethod
    def sra(cls, c0, c1, a0, b0, alpha, beta1, beta2) -> "SRKTable":
        """An SRA table (Roessler 2010, eq. 5.1) in the SRI form."""
        s = len(c0)
        zero_rows = tuple((0.0,) * i for i in range(s))
        return cls(c0, c1, a0, zero_rows, b0, zero_rows, alpha, beta1, (0.0,) * s, beta2, (0.0,) * s)


class _Plan:
    """What one table runs on one kind of problem, computed once (the module docstring).

    The values of a step live in slots: ``f_i`` in slot ``i``, ``G_i`` in slot ``s + i``.
    ``evals`` lists, in order, the evaluations the step makes (only of the ``f_i``, ``G_i`` it
    uses) as ``(slot, c, base, lin, grouped)``: the stage value starts from the stage value of
    evaluation number ``base`` (``-1``: ``x``), adds the terms ``lin = ((slot, coef, kind)...)``
    (``coef h f`` for kind 0, ``coef sqrt(h) G`` for kind 1; one fused op each), then
    ``c1 (U/h) (G_k1 + sum_k r_k G_k)`` for ``grouped = ((k1, c1), (k, r_k)...)``, and is
    evaluated at ``t0 + c h``. ``parts`` are the final contractions, ``(slots, rows)`` with
    ``rows[r][col] = (coef, scale)`` (slot ``-1`` is ``x``): one of ``[x, f..., G...]``, or for
    the general layout (``G`` is ``(batch, d, m)``) one of ``[x, f...]`` and one of ``[G...]``.
    The rows come out in the order ``C0, C0g, CU, C1, C2, C3, E0, E1`` (those present), and
    ``c0``, ``c0g``, ``cu``, ``e0``, ``poly = (C1, C2, C3)``, ``err_poly = (E1, -, C3)`` hold their
    indices (``-1``: absent); :func:`_run` says what each row is.
    """

    __slots__ = ("slots", "evals", "parts", "matrix", "act", "c0", "c0g", "cu", "e0", "poly", "err_poly", "_cache", "fast")

    def __init__(self, tab: SRKTable, additive: bool, kind: str, want_error: bool) -> None:
        s = len(tab.c0)
        betas = list(zip(tab.beta1, tab.beta2, tab.beta3, tab.beta4))
        # Which f_i, G_i the step needs: a backward sweep (the tables are strictly lower triangular).
        need_f = [tab.alpha[i] != 0 or (want_error and i == 0) for i in range(s)]
        need_g = [any(b) for b in betas]
        for i in reversed(range(s)):
            for j in range(i):
                if need_f[i]:
                    need_f[j] |= tab.a0[i][j] != 0
                    need_g[j] |= tab.b0[i][j] != 0
                if need_g[i] and not additive:  # on additive noise G_i is evaluated at x
                    need_f[j] |= tab.a1[i][j] != 0
                    need_g[j] |= tab.b1[i][j] != 0
        # Stage values as term sets: (slot, coef, kind), kind 0: coef h f, 1: coef sqrt(h) G, 2: coef (U/h) G.
        wanted = []
        for i in range(s):
            if need_f[i]:
                wanted.append((i, tab.c0[i], [(j, a, 0) for j, a in enumerate(tab.a0[i]) if a]
                               + [(s + j, b, 2) for j, b in enumerate(tab.b0[i]) if b]))
            if need_g[i]:
                terms = [] if additive else ([(j, a, 0) for j, a in enumerate(tab.a1[i]) if a]
                                             + [(s + j, b, 1) for j, b in enumerate(tab.b1[i]) if b])
                wanted.append((s + i, tab.c1[i], terms))
        built: list[frozenset] = []
        evals = []
        for slot, c, terms in wanted:
            want = frozenset(terms)
            # Start from the largest earlier stage value whose terms are a subset of these
            # (SRI2: H1_2 = H0_1 + sqrt(h) G_0).
            base = max((b for b in range(len(built)) if built[b] <= want), key=lambda b: len(built[b]), default=-1)
            rest = want - built[base] if base >= 0 else want
            built.append(want)
            lin = tuple(t for t in terms if t in rest and t[2] != 2)
            grp = [(k, b) for k, b, kind in terms if (k, b, kind) in rest and kind == 2]
            grouped = tuple(grp[:1] + [(k, b / grp[0][1]) for k, b in grp[1:]])
            evals.append((slot, c, base, lin, grouped))
        self.slots = 2 * s
        self.evals = tuple(evals)
        f_cols = [j for j in range(s) if tab.alpha[j] != 0 or (want_error and j == 0)]
        g_cols = [j for j in range(s) if any(betas[j])]
        # The rows of the final contraction as {column: (coef, scale)}; a column is "x", ("f", j)
        # or ("g", j); the scale (an index into _scales(h)) is 1, h, sqrt|h|, 1/h, 1/|h| or 1/sqrt|h|.
        f_part = {"C0": {"x": (1.0, 0)} | {("f", j): (tab.alpha[j], 1) for j in f_cols}}
        g_part = {
            "C0g": {("g", j): (-betas[j][1] / 2, 2) for j in g_cols},
            "CU": {("g", j): (betas[j][2], 3) for j in g_cols},
            "C1": {("g", j): (betas[j][0] - betas[j][3] / 2, 0) for j in g_cols},
            "C2": {("g", j): (betas[j][1] / 2, 5) for j in g_cols},
            "C3": {("g", j): (betas[j][3] / 6, 4) for j in g_cols},
        }
        if want_error:
            f_part["E0"] = {("f", j): (tab.alpha[j] - (j == 0), 1) for j in f_cols}
            g_part["E1"] = {("g", j): (-betas[j][3] / 2, 0) for j in g_cols}
        f_part = {k: r for k, r in f_part.items() if any(c for c, _ in r.values())}
        g_part = {k: r for k, r in g_part.items() if any(c for c, _ in r.values())}
        self.matrix = kind == "matrix"
        self.act = "matrix" if self.matrix else "elementwise"  # how a G-shaped row meets dW, U
        slot = {"x": -1} | {("f", j): j for j in f_cols} | {("g", j): s + j for j in g_cols}
        if self.matrix:  # G is (batch, d, m): the f and G columns are contracted apart
            parts = [(["x"] + [("f", j) for j in f_cols], f_part), ([("g", j) for j in g_cols], g_part)]
        else:  # one contraction of [x, f..., G...]; the constant G terms join C0
            f_part["C0"] |= g_part.pop("C0g", {})
            parts = [(["x"] + [("f", j) for j in f_cols] + [("g", j) for j in g_cols], f_part | g_part)]
        parts = [(cols, rows) for cols, rows in parts if rows]
        self.parts = tuple((tuple(slot[c] for c in cols), [[rows[r].get(c, (0.0, 0)) for c in cols] for r in rows])
                           for cols, rows in parts)
        names = [r for _, rows in parts for r in rows]
        # An absent row has index -1: _run appends None to the rows.
        row = {k: names.index(k) if k in names else -1 for k in ("C0", "C0g", "CU", "C1", "C2", "C3", "E0", "E1")}
        self.c0, self.c0g, self.cu, self.e0 = row["C0"], row["C0g"], row["CU"], row["E0"]
        self.poly = (row["C1"], row["C2"], row["C3"])
        self.err_poly = (row["E1"], -1, row["C3"])
        self._cache: dict = {}
        self.fast = None if self.matrix else self._compile()

    def _compile(self):
        """The plain step of an elementwise problem as straight-line Python (no table loop).

        The same operations :func:`_run` performs, in the same order, written out once per plan: at
        batch 1 a step is ~25 tensor operations of a few microseconds each, and the loop over the
        plan's tuples cost a fifth of the step. A partial sum that starts two stage values is
        computed once.
        """
        s = self.slots // 2
        lines = ["def fast(x, dw, u, t0, t1, h, sh, inv_h, drift, diffusion, k):"]
        partial: dict[tuple, str] = {}  # (value, term) -> the name of value + term: shared partial sums
        for i, (slot, c, base, lin, grouped) in enumerate(self.evals):
            acc = "x" if base < 0 else f"h{base}"
            for kk, coef, kind in lin:
                key = (acc, kk, coef, kind)
                if key not in partial:  # SRI2: x + h f_0 / 4 starts two stage values
                    partial[key] = f"p{len(partial)}"
                    lines.append(f"    {partial[key]} = torch.add({acc}, v{kk}, alpha={coef!r} * {'h' if kind == 0 else 'sh'})")
                acc = partial[key]
            if grouped:
                k1, coef = grouped[0]
                g = f"v{k1}"
                for k2, r in grouped[1:]:
                    lines.append(f"    g = torch.add({g}, v{k2}, alpha={r!r})")
                    g = "g"
                lines.append(f"    a = torch.addcmul({acc}, {g}, u, value={coef!r} * inv_h)")
                acc = "a"
            lines.append(f"    h{i} = {acc}")
            t = "t0" if c == 0 else "t1" if c == 1 else f"(t0 + {c!r} * h)"
            lines.append(f"    v{slot} = {'drift' if slot < s else 'diffusion'}({t}, h{i})")
        (cols, _), = self.parts
        names = ", ".join("x" if j == -1 else f"v{j}" for j in cols)
        lines.append(f"    r = _contract(k, [{names}])")
        p1, p2, p3 = self.poly
        coef = [p1, p2, p3]
        deg = max((d for d in range(3) if coef[d] >= 0), default=-1)
        if deg < 0:
            lines.append(f"    x1 = r[{self.c0}]")
        else:
            lines.append(f"    q = r[{coef[deg]}]")
            for d in range(deg - 1, -1, -1):
                lines.append(f"    q = q * dw" if coef[d] < 0 else f"    q = torch.addcmul(r[{coef[d]}], q, dw)")
            lines.append(f"    x1 = torch.addcmul(r[{self.c0}], q, dw)")
        if self.cu >= 0:
            lines.append(f"    x1 = torch.addcmul(x1, r[{self.cu}], u)")
        lines.append("    return x1")
        scope = {"torch": torch, "_contract": _contract}
        exec(compile("\n".join(lines), f"<srk plan {id(self):x}>", "exec"), scope)
        return scope["fast"]

    def matrices(self, h: float, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, ...]:
        """The contraction matrices for the step ``h`` (cached: a fixed grid has few distinct steps)."""
        key = (h, dtype, device)
        hit = self._cache.get(key)
        if hit is None:
            if len(self._cache) >= 64:
                self._cache.clear()
            sc = _scales(h)
            hit = self._cache[key] = tuple(
                torch.tensor([[c * sc[k] for c, k in r] for r in rows], dtype=dtype, device=device)
                for _, rows in self.parts
            )
        return hit


def _scales(h: float) -> tuple[float, ...]:
    """The scales of the contraction coefficients: ``1, h, sqrt|h|, 1/h, 1/|h|, 1/sqrt|h|``."""
    sh = math.sqrt(abs(h))
    return (1.0, h, sh, 1.0 / h, 1.0 / abs(h), 1.0 / sh)


def _contract(k: torch.Tensor | None, tensors: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """The rows ``sum_j k_rj tensors_j`` of the contraction: one broadcast product, then one add per column.

    Elementwise products and adds, in column order, give every sample the same operations whatever
    its batch: a matrix product (``k @ stack(tensors)``) picks its kernel by the batch width, and its
    last bits then depend on the batch a sample is in.
    """
    if k is None:
        return ()
    try:
        st = torch.stack(tensors)
    except RuntimeError:  # a diffusion broadcastable to the state (diagonal noise): expand views first
        shape = torch.broadcast_shapes(*(t.shape for t in tensors))
        st = torch.stack([t.expand(shape) for t in tensors])
    if k.dtype != st.dtype:
        k = k.to(st.dtype)
    prod = k.reshape(k.shape + (1,) * (st.ndim - 1)) * st  # (rows, columns, *state), a fresh tensor
    acc = prod[:, 0]
    for j in range(1, prod.shape[1]):
        acc.add_(prod[:, j])  # in place: acc is column 0 of prod
    return acc.unbind(0)


def _add_poly(acc: torch.Tensor, c: tuple, dw: torch.Tensor, act: str, c0g: torch.Tensor | None = None) -> torch.Tensor:
    """``acc + c1 dW + c2 dW^2 + c3 dW^3`` by Horner's rule, each power per Brownian component.

    ``c[k - 1]`` is the coefficient of ``dW^k`` (``None``: zero). For the elementwise action the
    coefficients broadcast against ``dw``; for the general layout (``act = "matrix"``) they are
    ``(batch, d, m)``, ``dw`` is ``(batch, m)``, the sum runs over ``m`` and ``c0g`` is a constant
    term of that shape.
    """
    deg = 2 if c[2] is not None else 1 if c[1] is not None else 0 if c[0] is not None else -1
    if deg < 0:
        return acc if c0g is None else acc + c0g.sum(-1)
    if act == "matrix":
        if deg == 0 and c0g is None:
            return add_diffusion("matrix", acc, c[0], dw)
        dw = dw.unsqueeze(-2)
    q = c[deg]
    for k in range(deg - 1, -1, -1):
        q = q * dw if c[k] is None else torch.addcmul(c[k], q, dw)
    if act != "matrix":
        return torch.addcmul(acc, q, dw)
    q = q * dw if c0g is None else torch.addcmul(c0g, q, dw)
    return acc + q.sum(-1)


@dataclass(frozen=True)
class StochasticRungeKutta(SDEMethod):
    """The SRI/SRA kernel; subclasses set :attr:`table`.

    :meth:`init` returns the solver state, the plan of the table for this problem (which stages,
    which terms, the contraction matrices), so that a step does no table work.
    """

    table: ClassVar[SRKTable]
    levy_area = "space-time"
    error_estimate = True
    calculus = "ito"
    strong_order = 1.5

    def _plan(self, problem, want_error: bool) -> _Plan:
        key = (type(self), structure(problem) == "additive", layout(problem), want_error)
        plan = _PLANS.get(key)
        if plan is None:
            plan = _PLANS[key] = _Plan(self.table, key[1], key[2], want_error)
        return plan

    def init(self, problem, ts, x: torch.Tensor) -> "_State":
        """The plans of this problem (plain and error-estimating steps) and its ``can_evaluate``."""
        plan = self._plan(problem, False)
        prepare_stage_times(problem, ts, sorted({c for _, c, *_ in plan.evals}))
        return _State(plan, self._plan(problem, True), getattr(problem, "can_evaluate", None))

    def step(self, problem, t0, t1, x, state, noise) -> StepResult:
        if type(state) is not _State:
            state = self.init(problem, None, x)
        if state.can_evaluate is not None and not state.can_evaluate(t1):
            return super().step(problem, t0, t1, x, None, noise)  # a diffusion's final Euler-Maruyama step
        return StepResult(_run(state.plan, problem, t0, t1, x, noise, False)[0], state, None)

    def step_with_error(self, problem, t0, t1, x, state, noise) -> tuple[StepResult, torch.Tensor]:
        if type(state) is not _State:
            state = self.init(problem, None, x)
        x1, err = _run(state.err_plan, problem, t0, t1, x, noise, True)
        return StepResult(x1, state, None), err

    def advance(self, problem, t0, t1, x, noise, want_error):
        return _run(self._plan(problem, want_error), problem, t0, t1, x, noise, want_error)


class _State:
    """The state of an SRK solve: the plans (plain and error-estimating steps) and ``can_evaluate``."""

    __slots__ = ("plan", "err_plan", "can_evaluate")

    def __init__(self, plan: _Plan, err_plan: _Plan, can_evaluate) -> None:
        self.plan, self.err_plan, self.can_evaluate = plan, err_plan, can_evaluate


_PLANS: dict[tuple, _Plan] = {}


def _run(plan: _Plan, problem, t0: float, t1: float, x: torch.Tensor, noise, want_error: bool):
    """One step of the SRI/SRA form (module docstring): ``(x1, error estimate or None)``, shapes of ``x``."""
    h = t1 - t0
    sh = math.sqrt(abs(h))
    inv_h = 1.0 / h
    act = plan.act
    dw, u = space_time(noise, t0, t1)
    if act != "matrix" and dw.ndim < x.ndim:  # scalar noise: (batch, 1) against (batch, *event)
        col = dw.shape[:1] + (1,) * (x.ndim - 1)
        dw, u = dw.reshape(col), u.reshape(col)
    drift, diffusion = problem.drift, problem.diffusion
    if not want_error and plan.fast is not None:
        (k,) = plan.matrices(h, x.dtype, x.device)
        return plan.fast(x, dw, u, t0, t1, h, sh, inv_h, drift, diffusion, k), None
    s = plan.slots // 2
    v: list = [None] * (plan.slots + 1)  # f_i in slot i, G_i in slot s + i, x in the last
    hs: list = []  # the stage values, one per evaluation
    scale = (h, sh)
    for slot, c, base, lin, grouped in plan.evals:
        acc = x if base < 0 else hs[base]
        for k, coef, kind in lin:
            acc = torch.add(acc, v[k], alpha=coef * scale[kind])
        if grouped:
            k, coef = grouped[0]
            g = v[k]
            for k2, r in grouped[1:]:
                g = torch.add(g, v[k2], alpha=r)
            acc = add_diffusion(act, acc, g, u, coef * inv_h)
        hs.append(acc)
        t = t0 if c == 0 else t1 if c == 1 else t0 + c * h
        v[slot] = drift(t, acc) if slot < s else diffusion(t, acc)
    v[-1] = x  # the column "x" of the contraction
    rows: tuple = ()
    for (cols, _), k in zip(plan.parts, plan.matrices(h, x.dtype, x.device)):
        rows += _contract(k, [v[j] for j in cols])
    # x1 = C0 + c1 dW + c2 dW^2 + c3 dW^3 + CU U (C0 = x + h sum alpha f - sqrt|h| sum beta2 G / 2).
    rows += (None,)  # what the index -1 of an absent row gives
    x1 = rows[plan.c0]
    p1, p2, p3 = plan.poly
    x1 = _add_poly(x1, (rows[p1], rows[p2], rows[p3]), dw, act, rows[plan.c0g])
    cu = rows[plan.cu]
    if cu is not None:
        x1 = add_diffusion(act, x1, cu, u)
    if not want_error:
        return x1, None
    # The error estimate h (sum alpha f - f_1) + sum_i (beta3_i U/h + beta4_i I_(1,1,1)/h) G_i: the
    # terms of the step beyond order 1, E0 + E1 dW + C3 dW^3 + CU U.
    err = torch.zeros_like(x1) if plan.e0 < 0 else rows[plan.e0]
    err = _add_poly(err, tuple(rows[k] for k in plan.err_poly), dw, act)
    if cu is not None:
        err = add_diffusion(act, err, cu, u)
    return x1, err


@dataclass(frozen=True)
class SRI(StochasticRungeKutta):
    """An SRI method: Ito, diagonal or scalar noise (additive too), strong order 1.5."""

    strong_orders = {"additive": 1.5, "diagonal": 1.5, "scalar": 1.5}
    noise_types = ("diagonal", "additive", "scalar")


@dataclass(frozen=True)
class SRA(StochasticRungeKutta):
    """An SRA method: additive noise (either calculus), strong order 1.5, weak order 2."""

    strong_orders = {"additive": 1.5}
    calculi = ("ito", "stratonovich")
    calculus = "any"
    noise_types = ("additive",)
    weak_order = 2.0


@register
@dataclass(frozen=True)
class SRIW1(SRI):
    """SRIW1 (Roessler 2010, table 5.2, "SRI1"): Ito, diagonal or scalar noise; strong 1.5, weak 2.

    Four stages: two drift and four diffusion calls per step.
    """

    name = "sriw1"
    weak_order = 2.0
    calls_per_step = 2
    description = "SRIW1 stochastic Runge-Kutta (Ito, diagonal/scalar noise), strong 1.5, weak 2"
    table = SRKTable(
        c0=(0.0, 0.75, 0.0, 0.0),
        c1=(0.0, 0.25, 1.0, 0.25),
        a0=((), (0.75,), (0.0, 0.0), (0.0, 0.0, 0.0)),
        a1=((), (0.25,), (1.0, 0.0), (0.0, 0.0, 0.25)),
        b0=((), (1.5,), (0.0, 0.0), (0.0, 0.0, 0.0)),
        b1=((), (0.5,), (-1.0, 0.0), (-5.0, 3.0, 0.5)),
        alpha=(1 / 3, 2 / 3, 0.0, 0.0),
        beta1=(-1.0, 4 / 3, 2 / 3, 0.0),
        beta2=(-1.0, 4 / 3, -1 / 3, 0.0),
        beta3=(2.0, -4 / 3, -2 / 3, 0.0),
        beta4=(-2.0, 5 / 3, -2 / 3, 1.0),
    )


@register
@dataclass(frozen=True)
class SRI2(SRI):
    """SRI2 (Roessler 2010, table 5.3): Ito, diagonal or scalar noise; strong 1.5, weak 3 for ODE-like drift.

    Four stages: three drift and four diffusion calls per step. Declared weak order 1 (the order
    asserted by the tests).
    """

    name = "sri2"
    weak_order = 1.0
    calls_per_step = 3
    description = "SRI2 stochastic Runge-Kutta (Ito, diagonal/scalar noise), strong 1.5"
    table = SRKTable(
        c0=(0.0, 1.0, 0.5, 0.0),
        c1=(0.0, 0.25, 1.0, 0.25),
        a0=((), (1.0,), (0.25, 0.25), (0.0, 0.0, 0.0)),
        a1=((), (0.25,), (1.0, 0.0), (0.0, 0.0, 0.25)),
        b0=((), (0.0,), (1.0, 0.5), (0.0, 0.0, 0.0)),
        b1=((), (-0.5,), (1.0, 0.0), (2.0, -1.0, 0.5)),
        alpha=(1 / 6, 1 / 6, 2 / 3, 0.0),
        beta1=(-1.0, 4 / 3, 2 / 3, 0.0),
        beta2=(1.0, -4 / 3, 1 / 3, 0.0),
        beta3=(2.0, -4 / 3, -2 / 3, 0.0),
        beta4=(-2.0, 5 / 3, -2 / 3, 1.0),
    )


@register
@dataclass(frozen=True)
class SRA1(SRA):
    """SRA1 (Roessler 2010, table 6.1): additive noise, strong order 1.5, weak order 2.

    Two stages: two drift and two diffusion calls per step.
    """

    name = "sra1"
    calls_per_step = 2
    description = "SRA1 stochastic Runge-Kutta (additive noise), strong 1.5, weak 2"
    table = SRKTable.sra(
        c0=(0.0, 0.75), c1=(1.0, 0.0), a0=((), (0.75,)), b0=((), (1.5,)),
        alpha=(1 / 3, 2 / 3), beta1=(1.0, 0.0), beta2=(-1.0, 1.0),
    )


@register
@dataclass(frozen=True)
class SRA3(SRA):
    """SRA3 (Roessler 2010, table 6.3): additive noise, strong order 1.5, weak order 3 (declared 2).

    Three stages: three drift and three diffusion calls per step.
    """

    name = "sra3"
    calls_per_step = 3
    description = "SRA3 stochastic Runge-Kutta (additive noise), strong 1.5"
    table = SRKTable.sra(
        c0=(0.0, 1.0, 0.5), c1=(1.0, 0.0, 0.0), a0=((), (1.0,), (0.25, 0.25)), b0=((), (0.0,), (1.0, 0.5)),
        alpha=(1 / 6, 1 / 6, 2 / 3), beta1=(1.0, 0.0, 0.0), beta2=(-1.0, 1.0, 0.0),
    )
