r"""The one exponential-integrator kernel: phi-functions, exact quadrature weights, grid tables.

Every Gaussian path ``x = alpha x0 + sigma eps`` has a semi-linear probability-flow ODE. With the
half log-SNR ``lambda = log(alpha / sigma)`` (the full log-SNR is ``2 lambda``), the noise level
``rho = sigma / alpha = e^{-lambda}`` and a step ``s -> t`` of ``h = lambda_t - lambda_s``
(Lu et al. 2022, "DPM-Solver", eq. 3.4; Lu et al. 2022b, "DPM-Solver++", eq. 8):

* data prediction:   ``x_t = (sigma_t/sigma_s) x_s + alpha_t int_0^h e^{-(h-u)} x0(lambda_s + u) du``,
* noise prediction:  ``x_t = (alpha_t/alpha_s) x_s - sigma_t int_0^h e^{h-u} eps(lambda_s + u) du``
  ``= alpha_t (x_s/alpha_s - int_{rho_t}^{rho_s} eps drho)``.

The reverse SDE with stochasticity ``eta`` (``dx = [f x - (1+eta^2)/2 g^2 score] dt + eta g dW``,
:class:`~sdeflow.sdes.ReverseDiffusionSDE`) is, in data prediction with ``c = 1 + eta^2``, exactly

    ``x_t = (sigma_t/sigma_s) e^{-eta^2 h} x_s + alpha_t c int_0^h e^{-c(h-u)} x0 du
           + sigma_t sqrt(1 - e^{-2 eta^2 h}) z``

(Lu et al. 2022b, appendix; Gonzalez et al. 2023 "SEEDS"; Xue et al. 2023 "SA-Solver"); ``eta = 1``
is DPM-Solver++ SDE. Approximating the model output by the polynomial through earlier or
intermediate nodes and integrating it exactly against the exponential gives every solver of this
family: the weights are moments ``int_0^1 e^{(1-v) z} v^m dv = m! phi_{m+1}(z)`` of the
phi-functions ``phi_k(z) = int_0^1 e^{(1-v) z} v^{k-1}/(k-1)! dv`` (``phi_1(z) = (e^z - 1)/z``,
``phi_{k+1}(z) = (phi_k(z) - 1/k!)/z``).

Everything here is float64 Python arithmetic done once per grid (in a solver's ``init``): a step of
a solver of this family is then a fixed linear combination of the state and model outputs (a few
fused tensor operations, no process evaluation, no host-device synchronization).
"""

from __future__ import annotations

import math
import threading
import weakref
from abc import abstractmethod
from collections import OrderedDict
from dataclasses import dataclass
from typing import ClassVar, NamedTuple, Sequence

import numpy as np
import torch

from .._utils import check_int, check_nonnegative
from ..models.parameterization import to_x0_eps
from .base import Solver, StepResult

__all__ = [
    "phi",
    "phis",
    "exp_weights",
    "lagrange_integral_weights",
    "GridTable",
    "grid_table",
    "lincomb",
    "Plan",
    "run_plan",
    "cached",
]


def check_order(order: object, solver: str, highest: int) -> int:
    """Validate a solver's ``order`` option: an integer in ``1..highest``."""
    check_int(order, "order")
    if order > highest:
        raise ValueError(f"order must be an integer from 1 to {highest} for {solver}; got {order}")
    return order


# --------------------------------------------------------------------------------- phi-functions
def phis(n: int, z: float) -> list[float]:
    """``[phi_1(z), ..., phi_n(z)]`` with ``phi_k(z) = int_0^1 e^{(1-v) z} v^{k-1}/(k-1)! dv``, accurate for every ``z``.

    Where ``|z| < 1`` the upward recurrence ``phi_{k+1} = (phi_k - 1/k!)/z`` cancels: there ``phi_n`` comes
    from its Taylor series ``sum_m z^m/(m+n)!`` and the others from the stable downward recurrence
    ``phi_k = z phi_{k+1} + 1/k!``. Elsewhere the upward recurrence from ``phi_1 = expm1(z)/z``.
    ``phi_k(-inf) = 0``.
    """
    if z == -math.inf:
        return [0.0] * n
    if abs(z) < 1.0:
        term = 1.0 / math.factorial(n)
        top = term
        for m in range(1, 40):
            term *= z / (m + n)
            top += term
            if abs(term) <= 1e-17 * abs(top):
                break
        out = [top]
        for k in range(n - 1, 0, -1):
            out.append(z * out[-1] + 1.0 / math.factorial(k))
        return out[::-1]
    out = [math.expm1(z) / z]
    for k in range(1, n):
        out.append((out[-1] - 1.0 / math.factorial(k)) / z)
    return out


def phi(k: int, z: float) -> float:
    """``phi_k(z)`` for ``k >= 1`` (see :func:`phis`)."""
    if k < 1:
        raise ValueError(f"phi needs k >= 1; got {k}")
    return phis(k, z)[-1]


def _solve(matrix: list[list[float]], rhs: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting for the tiny (n <= 4) systems of the weights."""
    n = len(rhs)
    a = [row[:] + [rhs[i]] for i, row in enumerate(matrix)]
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(a[r][c]))
        a[c], a[p] = a[p], a[c]
        for r in range(c + 1, n):
            f = a[r][c] / a[c][c]
            for k in range(c, n + 1):
                a[r][k] -= f * a[c][k]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (a[r][n] - sum(a[r][k] * x[k] for k in range(r + 1, n))) / a[r][r]
    return x


def exp_weights(r: Sequence[float], h: float, z: float) -> list[float]:
    """Exact weights of ``int_0^h e^{z (1 - u/h)} p(u) du = sum_j w_j p(r_j h)`` for polynomials ``p``.

    ``r`` are the interpolation nodes in units of the step (``u_j = r_j h``, e.g. ``0`` for the
    current node and ``-h_prev/h`` for the previous one); ``p`` is the Lagrange polynomial through
    them, of degree ``len(r) - 1``. ``z = -c h`` for data prediction, ``z = h`` for noise prediction.
    With monomial moments ``int_0^1 e^{(1-v) z} v^m dv = m! phi_{m+1}(z)`` the weights solve the
    transposed Vandermonde system ``sum_j w_j r_j^m = h m! phi_{m+1}(z)``, ``m < len(r)``.
    """
    n = len(r)
    moments = [math.factorial(m) * v for m, v in enumerate(phis(n, z))]
    if n == 1:
        return [h * moments[0]]
    vander = [[rj**m for rj in r] for m in range(n)]
    return [h * w for w in _solve(vander, moments)]


def lagrange_integral_weights(nodes: Sequence[float], a: float, b: float, fn=None, points: int = 24) -> list[float]:
    """Weights ``W_j = int_a^b l_j(fn(s)) ds`` of the Lagrange basis ``l_j`` through ``nodes``.

    ``fn`` maps the integration variable to the interpolation variable (identity if ``None``:
    then the Gauss-Legendre rule with ``points`` nodes is exact for the polynomial). Used by DEIS
    (interpolation in time ``t``, integration in noise level ``rho``). Float64.
    """
    gx, gw = np.polynomial.legendre.leggauss(points)
    s = 0.5 * (b - a) * gx + 0.5 * (b + a)
    y = s if fn is None else np.asarray(fn(s), dtype=np.float64)
    nodes = np.asarray(nodes, dtype=np.float64)
    weights = []
    for j in range(len(nodes)):
        basis = np.ones_like(y)
        for m in range(len(nodes)):
            if m != j:
                basis = basis * (y - nodes[m]) / (nodes[j] - nodes[m])
        weights.append(float(0.5 * (b - a) * np.dot(gw, basis)))
    return weights


# --------------------------------------------------------------------------------- grid tables
@dataclass(frozen=True)
class GridTable:
    """Float64 coefficients of a process at a list of times, computed once (Python floats).

    ``lam = log(alpha/sigma)`` (half log-SNR; ``+inf`` where ``sigma = 0``, ``-inf`` where
    ``alpha = 0``), ``rho = sigma/alpha``. ``x0_map[i] = (a, b)`` means ``x0_hat = a x + b out`` for
    the raw model output ``out`` at ``times[i]`` (the model's prediction kind; the conversions of
    :mod:`sdeflow.models.parameterization` are linear in ``(x, out)``); ``eps_map`` likewise.
    Maps are ``None`` at times where the model is never evaluated (``t = 0``).
    """

    times: tuple[float, ...]
    alpha: tuple[float, ...]
    sigma: tuple[float, ...]
    lam: tuple[float, ...]
    rho: tuple[float, ...]
    x0_map: tuple[tuple[float, float] | None, ...]
    eps_map: tuple[tuple[float, float] | None, ...]
    process: object = None

    def t_of_rho(self, rho: np.ndarray) -> np.ndarray:
        """Times of noise levels ``rho`` (float64 numpy in and out), through the process's inverse."""
        return self.process.t_from_noise_level(torch.as_tensor(rho, dtype=torch.float64)).numpy()


def grid_table(process, prediction: str, times: Sequence[float]) -> GridTable:
    """The :class:`GridTable` of ``process`` at ``times`` for a model of kind ``prediction``.

    The conversions of :func:`~sdeflow.models.parameterization.to_x0_eps` are linear in
    ``(x, out)``: evaluating them once on the basis ``(x, out) = ((1, 0), (0, 1))`` at every time
    (a batch of times, one row each) gives the coefficients exactly, with no second copy of the formulas.
    """
    tt = torch.tensor([float(t) for t in times], dtype=torch.float64)
    alpha = process.alpha(tt).tolist()
    sigma = process.sigma(tt).tolist()
    live = [i for i, (t, s) in enumerate(zip(tt.tolist(), sigma)) if t > 0.0 and s > 0.0]
    x0_map: list = [None] * len(alpha)
    eps_map: list = [None] * len(alpha)
    if live:
        tl = tt[live]
        basis_x = torch.tensor([[1.0, 0.0]], dtype=torch.float64).expand(len(live), 2)
        basis_out = torch.tensor([[0.0, 1.0]], dtype=torch.float64).expand(len(live), 2)
        x0, eps = to_x0_eps(prediction, basis_out, basis_x, tl, process)
        for j, i in enumerate(live):
            x0_map[i] = tuple(x0[j].tolist())
            eps_map[i] = tuple(eps[j].tolist())
    lam, rho = [], []
    for a, s in zip(alpha, sigma):
        if s <= 0.0:
            lam.append(math.inf)
            rho.append(0.0)
        elif a <= 0.0:
            lam.append(-math.inf)
            rho.append(math.inf)
        else:
            lam.append(math.log(a) - math.log(s))
            rho.append(s / a)
    return GridTable(tuple(tt.tolist()), tuple(alpha), tuple(sigma), tuple(lam), tuple(rho), tuple(x0_map), tuple(eps_map), process)


# --------------------------------------------------------------------------------- plan cache
_PLANS: "weakref.WeakKeyDictionary[object, OrderedDict]" = weakref.WeakKeyDictionary()
_PLANS_PER_PROCESS = 32


def cached(solver, problem, ts: Sequence[float], build):
    """``build()`` once per (process, solver, prediction, grid): the coefficients of a grid are pure
    functions of these, so repeated sampling with one configuration skips all float64 work.

    A small LRU per process object (weakly keyed: it goes with the process). Solvers are frozen
    dataclasses, hence hashable and safe to share; the cached plans are immutable tuples.
    """
    key = (solver, problem.denoiser.prediction, tuple(ts))
    try:
        table = _PLANS.setdefault(problem.process, OrderedDict())
    except TypeError:  # an unhashable or non-weakref-able process: no cache
        return build()
    with _LOCK:
        if key in table:
            table.move_to_end(key)
            return table[key]
    value = build()
    with _LOCK:
        table[key] = value
        while len(table) > _PLANS_PER_PROCESS:
            table.popitem(last=False)
    return value


_LOCK = threading.Lock()


# --------------------------------------------------------------------------------- tensor kernel
def lincomb(x: torch.Tensor, a: float, terms: Sequence[tuple[float, torch.Tensor]]) -> torch.Tensor:
    """``a x + sum_j b_j y_j`` in fused in-place adds on one new tensor (zero coefficients skipped)."""
    out = x * a if a != 1.0 else x.clone()
    for b, y in terms:
        if b != 0.0:
            out.add_(y, alpha=b)
    return out


class Plan(NamedTuple):
    """One precomputed step of a one-call-per-step method (multistep exponential integrators).

    With ``out`` the raw model output at ``(x, t0)`` and ``m_{i-j}`` the stored history (x0 or eps
    predictions of earlier steps, newest first):

        ``x1 = a x + b_out out + sum_j hist[j] m_{i-1-j} + noise_scale * (W(t1) - W(t0))``,

    and ``m_i = store[0] x + store[1] out`` is appended to the history when ``store`` is set;
    ``x0`` is the map of the step's ``x0_hat`` (reported to callbacks and trajectories).
    """

    a: float
    b_out: float
    hist: tuple[float, ...]
    noise_scale: float
    store: tuple[float, float] | None
    x0: tuple[float, float] | None = None


def run_plan(plan: Plan, x: torch.Tensor, out: torch.Tensor, history: tuple, noise, t0: float, t1: float):
    """Apply a :class:`Plan`; returns ``(x1, new_history)`` (history newest first, as long as needed)."""
    terms = [(plan.b_out, out)] + list(zip(plan.hist, history))
    if plan.noise_scale != 0.0:
        terms.append((plan.noise_scale, noise(t0, t1)))
    x1 = lincomb(x, plan.a, terms)
    if plan.store is None:
        return x1, history
    cx, co = plan.store
    m = out if (cx == 0.0 and co == 1.0) else lincomb(out, co, [(cx, x)])
    return x1, (m,) + tuple(history)


def fold_current(a: float, b_cur: float, m_map: tuple[float, float]) -> tuple[float, float]:
    """Fold ``b_cur m`` with ``m = cx x + co out`` into the ``(a, b_out)`` coefficients of ``x`` and ``out``."""
    cx, co = m_map
    return a + b_cur * cx, b_cur * co


def multistep_orders(lam: Sequence[float], order: int, final_first_order: bool = True, reach: float | None = 3.0,
                     alpha_zero_node: bool = False) -> list[int]:
    """Order (number of interpolation nodes) of a multistep method at each step of a grid.

    Warm-up: step ``i`` uses at most ``i + 1`` nodes, all at finite ``lambda`` (a node where
    ``alpha = 0`` cannot anchor the polynomial). A step that starts at ``alpha = 0`` is first
    order, and so is a step that ends at ``sigma = 0`` when ``final_first_order``: polynomials in
    ``lambda`` have diverging weights there, and the exact last step of data prediction is the
    denoised ``x0_hat`` (no ``log(0)``, no duplicated noise level). Methods that interpolate in
    ``t`` or ``rho`` (DEIS, iPNDM) keep their order on that last step (``final_first_order=False``).

    Stability (methods interpolating in ``lambda``): a step longer than ``reach`` times the previous
    one is first order, since the extrapolated polynomial would amplify the model's variation by
    about ``(h/h_prev)^(k-1)``. This only acts on grids whose steps grow abruptly, e.g. uniform in
    ``t`` on rectified flow, whose last step spans several units of log-SNR (diffusers'
    ``lower_order_final`` and ``euler_at_final`` address the same instability). ``reach=None``
    disables it (interpolation in ``t`` or ``rho``, where those steps are short).

    ``alpha_zero_node=True``: the method anchors its polynomial at a node where ``alpha = 0`` by other
    means (UniPC's steps in the inverse noise level, for a model whose ``x0_hat`` is finite there), so
    that node counts like any other.
    """
    orders, run = [], 0
    for i in range(len(lam) - 1):
        regular = math.isfinite(lam[i]) or alpha_zero_node
        run = run + 1 if regular else 0
        k = max(1, min(order, run))
        if not regular or (final_first_order and not math.isfinite(lam[i + 1])):
            k = 1
        h = lam[i + 1] - lam[i]
        if reach is not None and k > 1 and math.isfinite(h) and h > reach * (lam[i] - lam[i - 1]):
            k = 1
        orders.append(k)
    return orders


def data_step(tab: GridTable, i: int, nodes: Sequence[int], eta: float = 0.0) -> tuple[float, list[float], float]:
    """DPM-Solver++ weights of the step ``i -> i+1`` interpolating x0 at grid ``nodes`` (newest first).

    Returns ``(a, [b_j], noise_std)`` for ``x1 = a x + sum_j b_j x0_{nodes[j]} + noise_std z``:
    ``a = (sigma_1/sigma_0) e^{-eta^2 h}``, ``b = alpha_1 c w`` with ``c = 1 + eta^2`` and ``w`` the
    :func:`exp_weights` with ``z = -c h``, ``noise_std = sigma_1 sqrt(1 - e^{-2 eta^2 h})``.
    A step to ``sigma = 0`` is ``x1 = alpha_1 x0_hat`` (the denoising step).
    """
    s0, a1, s1 = tab.sigma[i], tab.alpha[i + 1], tab.sigma[i + 1]
    if s1 <= 0.0:
        return 0.0, [a1], 0.0
    h = tab.lam[i + 1] - tab.lam[i]
    if not math.isfinite(h):  # from alpha = 0 (h = inf): e^{-c h} = 0
        return (s1 / s0) * (0.0 if eta > 0 else 1.0), [a1], (s1 if eta > 0 else 0.0)
    c = 1.0 + eta * eta
    w = exp_weights([(tab.lam[j] - tab.lam[i]) / h for j in nodes], h, -c * h)
    std = s1 * math.sqrt(max(-math.expm1(-2.0 * eta * eta * h), 0.0)) if eta > 0 else 0.0
    return (s1 / s0) * math.exp(-eta * eta * h), [a1 * c * wj for wj in w], std


class MultistepState(NamedTuple):
    """State of a multistep method: the step index, the precomputed plans and the history."""

    i: int
    plans: tuple[Plan, ...]
    history: tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class ExponentialMultistep(Solver):
    """Base of one-call-per-step exponential multistep methods (DPM-Solver++ kM, DEIS, iPNDM).

    A subclass declares ``mode`` (``"x0"``: the history holds data predictions; ``"eps"``: noise
    predictions) and implements :meth:`weights`: for step ``i`` with ``k`` nodes
    ``i, i-1, ..., i-k+1``, the coefficients ``(a, [b_0..b_{k-1}], noise_std)`` of
    ``x1 = a x + sum_j b_j m_{i-j} + noise_std z``. :meth:`init` turns them into :class:`Plan` s once
    per grid (folding the current model output's conversion in), and :meth:`step` is one model
    call and one fused linear combination. A step from ``alpha = 0`` is DDIM
    (``x1 = alpha_1 x0_hat + sigma_1 eps_hat``), whatever the mode.
    """

    needs = "denoiser"
    calls_per_step = 1
    mode: ClassVar[str] = "x0"
    final_first_order: ClassVar[bool] = True
    alpha_zero_node: ClassVar[bool] = False  # coefficients() handles nodes where alpha = 0 (lambda = -inf)

    def max_order(self) -> int:
        """The most nodes a step uses (the history kept is one less)."""
        return int(getattr(self, "order", 1))

    def orders(self, tab: GridTable) -> list[int]:
        """Nodes used at each step (warm-up and final steps lower)."""
        return multistep_orders(tab.lam, self.max_order(), self.final_first_order, 3.0 if self.final_first_order else None)

    @abstractmethod
    def weights(self, tab: GridTable, i: int, k: int) -> tuple[float, list[float], float]:
        """``(a, [b_0..b_{k-1}], noise_std)`` of step ``i`` with ``k`` nodes (finite ``lambda_i``)."""

    def init(self, problem, ts, x):
        return MultistepState(0, cached(self, problem, ts, lambda: self._plans(problem, ts)), ())

    def _plans(self, problem, ts) -> tuple[Plan, ...]:
        tab = grid_table(problem.process, problem.denoiser.prediction, ts)
        orders = self.orders(tab)
        n = len(ts) - 1
        plans = []
        for i in range(n):
            m_map = tab.x0_map[i] if self.mode == "x0" else tab.eps_map[i]
            if not math.isfinite(tab.lam[i]):  # DDIM from alpha = 0, finite in the (x0, eps) pair
                (p, q), (r, s) = tab.x0_map[i], tab.eps_map[i]
                a1, s1 = tab.alpha[i + 1], tab.sigma[i + 1]
                a, b_out, hist, std = a1 * p + s1 * r, a1 * q + s1 * s, (), 0.0
            else:
                a, b, std = self.weights(tab, i, orders[i])
                a, b_out = fold_current(a, b[0], m_map)
                hist = tuple(b[1:])
            dt = abs(ts[i + 1] - ts[i])
            needed = any(j - i < orders[j] for j in range(i + 1, n))
            store = m_map if needed else None
            plans.append(Plan(a, b_out, hist, std / math.sqrt(dt) if std else 0.0, store, tab.x0_map[i]))
        return tuple(plans)

    def step(self, problem, t0, t1, x, state, noise):
        plan = state.plans[state.i]
        out = problem.denoiser.raw(x, t0)
        x1, history = run_plan(plan, x, out, state.history, noise, t0, t1)
        keep = max(self.max_order() - 1, 0)
        if self.mode == "x0" and plan.store is not None:
            x0 = history[0]
        else:
            cx, co = plan.x0
            x0 = out if (cx == 0.0 and co == 1.0) else lincomb(out, co, [(cx, x)])
        return StepResult(x1, MultistepState(state.i + 1, state.plans, history[:keep]), x0)


# --------------------------------------------------------------------------------- predictor-corrector multistep
class PCState(NamedTuple):
    """Step index, precomputed weights, the corrected state at the step start, history (newest first)."""

    i: int
    plans: tuple
    x_base: torch.Tensor | None
    history: tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class MultistepPC(Solver):
    """Base of multistep predictor-corrector methods with one model call per step (UniPC; DEIS with
    its corrector).

    :meth:`coefficients` gives, for step ``i`` with ``p`` nodes, ``(a, pred, corr)``: the predictor
    ``x~_{i+1} = a x_i + sum_j pred[j] m_{i-j}`` and, if ``corr`` is not ``None``, the corrector
    ``x_{i+1} = a x_i + corr[0] m_{i+1} + sum_j corr[1 + j] m_{i-j}``, ``m`` being the x0 or eps
    prediction (``mode``). At step ``i`` the model is called once, at the predicted ``x~_i``; its
    output ``m_i`` first corrects the previous step (no extra call: the corrected ``x_i`` is not
    re-evaluated, as in UniPC) and then drives the predictor.
    """

    needs = "denoiser"
    calls_per_step = 1
    mode: ClassVar[str] = "x0"
    final_first_order: ClassVar[bool] = True
    alpha_zero_node: ClassVar[bool] = False  # coefficients() handles nodes where alpha = 0 (lambda = -inf)

    def check_options(self, highest: int) -> None:
        """Validate ``order`` (``1..highest``) and the ``corrector`` flag of a subclass."""
        check_order(self.order, self.name, highest)
        if not isinstance(self.corrector, bool):
            raise TypeError(f"corrector must be a bool; got {self.corrector!r}")

    @property
    def ode_order(self) -> int:  # type: ignore[override]
        """``order``, plus one with the corrector."""
        return self.order + (1 if self.corrector else 0)

    @abstractmethod
    def coefficients(self, tab: GridTable, i: int, p: int) -> tuple[float, list[float], list[float] | None]:
        """``(a, pred, corr)`` of step ``i`` with ``p`` nodes."""

    def init(self, problem, ts, x):
        def build():
            tab = grid_table(problem.process, problem.denoiser.prediction, ts)
            # A start at alpha = 0 (a flow's t = T) is a node like the others where the subclass can step from
            # it and the model's x0_hat is finite there (velocity, x0 and v models; not eps, whose x0 is 0/0).
            at_zero = self.alpha_zero_node and self.mode == "x0" and tab.x0_map[0] is not None and all(
                math.isfinite(c) for c in tab.x0_map[0])
            orders = multistep_orders(tab.lam, self.order, self.final_first_order, 3.0 if self.final_first_order else None,
                                      alpha_zero_node=at_zero)
            maps = tab.x0_map if self.mode == "x0" else tab.eps_map
            plans = []
            for i in range(len(ts) - 1):
                if math.isfinite(tab.lam[i]) or at_zero:
                    plans.append(self.coefficients(tab, i, orders[i]) + (maps[i], tab.x0_map[i], None))
                else:  # DDIM from alpha = 0, finite in the (x0, eps) pair: x1 = alpha_1 x0_hat + sigma_1 eps_hat
                    (p, q), (r, s) = tab.x0_map[i], tab.eps_map[i]
                    a1, s1 = tab.alpha[i + 1], tab.sigma[i + 1]
                    plans.append((0.0, [], None, maps[i], tab.x0_map[i], (a1 * p + s1 * r, a1 * q + s1 * s)))
            return tuple(plans)

        return PCState(0, cached(self, problem, ts, build), None, ())

    def step(self, problem, t0, t1, x, state, noise):
        i = state.i
        out = problem.denoiser.raw(x, t0)
        a, pred, _, m_map, x0_map, direct = state.plans[i]
        m = _apply(m_map, x, out)
        x0 = m if self.mode == "x0" else _apply(x0_map, x, out)
        if i > 0 and state.plans[i - 1][2] is not None:
            a0, _, corr, _, _, _ = state.plans[i - 1]
            x = lincomb(state.x_base, a0, [(corr[0], m)] + list(zip(corr[1:], state.history)))
        history = (m,) + state.history
        x1 = lincomb(x, a, list(zip(pred, history))) if direct is None else lincomb(x, direct[0], [(direct[1], out)])
        return StepResult(x1, PCState(i + 1, state.plans, x, history[: self.order]), x0)


# --------------------------------------------------------------------------------- single-step methods
class Stage(NamedTuple):
    """A model call inside a step: at time ``t`` and state ``a x + sum_j coefs[j] m_j``.

    ``m_j`` is the linear functional ``m_map = (cx, co)`` of the stage's state and raw model output
    (an x0 or eps prediction, or any fixed combination of them).
    """

    t: float
    a: float
    coefs: tuple[float, ...]
    m_map: tuple[float, float]


class Program(NamedTuple):
    """A precomputed single step: stages, then ``x1 = a x + sum_j coefs[j] m_j + noise_scale dW``.

    ``x0_map`` converts the first stage's output to the step's ``x0_hat`` (for callbacks).
    """

    stages: tuple[Stage, ...]
    a: float
    coefs: tuple[float, ...]
    noise_scale: float
    x0_map: tuple[float, float]


class ProgramState(NamedTuple):
    """State of a single-step method: the step index and the precomputed programs."""

    i: int
    programs: tuple[Program, ...]


def _apply(m_map: tuple[float, float], x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    cx, co = m_map
    return out if (cx == 0.0 and co == 1.0) else lincomb(out, co, [(cx, x)])


def run_program(prog: Program, denoiser, x: torch.Tensor, noise, t0: float, t1: float):
    """Run a :class:`Program` (``len(stages)`` model calls); returns ``(x1, x0_hat)``."""
    ms: list[torch.Tensor] = []
    x0 = None
    for k, stage in enumerate(prog.stages):
        xs = x if k == 0 else lincomb(x, stage.a, list(zip(stage.coefs, ms)))
        out = denoiser.raw(xs, stage.t)
        ms.append(_apply(stage.m_map, xs, out))
        if k == 0:
            x0 = ms[0] if stage.m_map == prog.x0_map else _apply(prog.x0_map, x, out)
    terms = list(zip(prog.coefs, ms))
    if prog.noise_scale != 0.0:
        terms.append((prog.noise_scale, noise(t0, t1)))
    return lincomb(x, prog.a, terms), x0


def t_at_lambda(process, lam: float) -> float:
    """The time where the half log-SNR equals ``lam`` (float64, through ``t_from_log_snr``)."""
    return float(process.t_from_log_snr(torch.tensor(2.0 * lam, dtype=torch.float64)))


def denoise_program(tab: GridTable, i: int) -> Program:
    """The exact last step to ``sigma = 0``: ``x1 = alpha_1 x0_hat`` (one call)."""
    m = tab.x0_map[i]
    return Program((Stage(tab.times[i], 1.0, (), m),), 0.0, (tab.alpha[i + 1],), 0.0, m)


def ddim_program(tab: GridTable, i: int, eta: float = 0.0, keep_eps: float | None = None) -> Program:
    """DDIM: ``x1 = alpha_1 x0_hat + sqrt(sigma_1^2 - c^2) eps_hat + c z``, ``c = min(eta sigma_1 sqrt(1 - e^{-2h}), sigma_1)``.

    Written on the ``(x0_hat, eps_hat)`` pair, so it is finite where ``alpha_0 = 0`` (``h = inf``)
    and is the denoising step where ``sigma_1 = 0``. ``eta = 0``: DDIM = DPM-Solver-1 (ODE order 1);
    ``eta = 1``: DDPM's posterior (the ancestral step, = Euler ancestral in the noise level).
    """
    a1, s1 = tab.alpha[i + 1], tab.sigma[i + 1]
    if s1 <= 0.0:
        return denoise_program(tab, i)
    h = tab.lam[i + 1] - tab.lam[i]
    c = min(eta * s1 * math.sqrt(max(-math.expm1(-2.0 * h), 0.0)), s1) if eta > 0 else 0.0
    keep = math.sqrt(max(s1 * s1 - c * c, 0.0))
    (p, q), (r, s) = tab.x0_map[i], tab.eps_map[i]
    m = (a1 * p + keep * r, a1 * q + keep * s)
    dt = abs(tab.times[i + 1] - tab.times[i])
    return Program((Stage(tab.times[i], 1.0, (), m),), 0.0, (1.0,), c / math.sqrt(dt) if c else 0.0, tab.x0_map[i])


@dataclass(frozen=True)
class EtaStochastic:
    """Mixin of samplers with an ``eta`` knob (0: the deterministic ODE method of ``eta_ode_order``;
    > 0: ancestral noise from the Brownian path, weak order 1)."""

    eta_ode_order: ClassVar[int] = 1

    def __post_init__(self) -> None:
        check_nonnegative(self.eta, "eta")

    @property
    def stochastic(self) -> bool:
        return self.eta > 0

    @property
    def ode_order(self) -> int | None:
        return self.eta_ode_order if self.eta == 0 else None

    @property
    def weak_order(self) -> float | None:
        return 1.0 if self.eta > 0 else None


@dataclass(frozen=True)
class ExponentialSingleStep(Solver):
    """Base of single-step exponential integrators: :meth:`program` builds each step once per grid.

    ``calls_per_step`` model calls per step, one on the last step to ``t = 0`` (the denoising
    step): a grid of ``n`` steps ending at 0 costs ``calls (n - 1) + 1`` calls.
    """

    needs = "denoiser"

    @abstractmethod
    def program(self, problem, tab: GridTable, i: int) -> Program:
        """The :class:`Program` of step ``i`` of the grid ``tab``."""

    def nfe(self, ts) -> int:
        n = len(ts) - 1
        k = self.calls_per_step
        return k * (n - 1) + 1 if float(ts[-1]) == 0.0 else k * n

    def init(self, problem, ts, x):
        def build():
            tab = grid_table(problem.process, problem.denoiser.prediction, ts)
            return tuple(self.program(problem, tab, i) for i in range(len(ts) - 1))

        return ProgramState(0, cached(self, problem, ts, build))

    def step(self, problem, t0, t1, x, state, noise):
        x1, x0 = run_program(state.programs[state.i], problem.denoiser, x, noise, t0, t1)
        return StepResult(x1, ProgramState(state.i + 1, state.programs), x0)
