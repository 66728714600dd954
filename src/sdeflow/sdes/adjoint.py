r"""``sdeint_adjoint``: gradients of an SDE solve in memory that does not grow with the number of steps.

torchsde's ``sdeint_adjoint`` (Li, Wong, Chen & Duvenaud 2020, "Scalable Gradients for Stochastic
Differential Equations") solves a continuous adjoint SDE backwards in time, so its gradients approach
those of the solve only as ``dt -> 0``. Here the backward pass is the *discrete* adjoint: the exact
transpose of the forward steps, taken one step at a time,

    a_k = (d y_{k+1} / d y_k)^T a_{k+1},     g_theta += (d y_{k+1} / d theta)^T a_{k+1},

with ``(y_k, s_k)`` (the state and the solver's own state) recomputed instead of stored, so the
gradients equal backpropagation through :func:`~sdeflow.sdes.integrate.sdeint` up to rounding (the same
Brownian path, queried at the same times) while the autograd graph of only one step exists at a time:

* **reversible methods** (``reversible_heun``; torchsde's ``adjoint_method="adjoint_reversible_heun"``):
  ``(y_k, s_k)`` is reconstructed from ``(y_{k+1}, s_{k+1})`` algebraically (Kidger, Foster, Li & Lyons
  2021, "Efficient and Accurate Gradients for Neural SDEs"): memory O(1), two steps' work per step.
* **every other method**: binomial checkpointing (Griewank 1992, "Achieving logarithmic growth of
  temporal and spatial complexity in reverse automatic differentiation"; Griewank & Walther 2000,
  "Algorithm 799: revolve"): at most ``checkpoints`` states are held, and ``n`` steps are reversed
  with ``r`` forward recomputations of each step where ``n <= binom(checkpoints + r, r)`` (``r = 2``
  for 560 steps with the default 32, ``r = 4`` for 58,905).

Memory is therefore ``checkpoints`` states plus one step's graph whatever the number of steps (the
step times of an adaptive solve are kept as floats: 8 bytes a step).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch

from .._utils import check_int
from ..solvers.base import Solver
from .integrate import TORCHSDE_METHODS, _check_options, _check_tolerances, _Setup, carried

__all__ = ["sdeint_adjoint", "ADJOINT_METHODS"]

ADJOINT_METHODS = TORCHSDE_METHODS + ("adjoint_reversible_heun",)
"""torchsde's ``adjoint_method`` names. The backward pass here is the exact transpose of the forward
method, so the name only chooses how states are recovered: ``adjoint_reversible_heun`` (the default
with ``method="reversible_heun"``) by reversing the steps, the others by checkpointing."""


def _binomial_split(n: int, slots: int) -> int:
    """How many of ``n`` steps to advance before storing a checkpoint, with ``slots`` states to hold
    (the current one included): Griewank's ``beta(c, r) = binom(c + r, c)`` rule, ``r`` the fewest
    repetitions with ``beta(slots, r) >= n``; the tail then fits ``beta(slots - 1, r)``."""
    r = 1
    while math.comb(slots + r, slots) < n:
        r += 1
    return max(1, n - math.comb(slots - 1 + r, slots - 1))


class _Reverser:
    """The backward pass over the step grid ``grid``: adjoints of the state, the solver state and the
    parameters, accumulated step by step in decreasing order."""

    def __init__(self, run: _Setup, problem, noise, grid: list[float], positions: list[int],
                 params: tuple[torch.Tensor, ...], grad_ys: torch.Tensor) -> None:
        self.run, self.problem, self.noise, self.grid = run, problem, noise, grid
        self.solver: Solver = run.solver
        self.params = params
        self.grad_ys = grad_ys
        self.at = {p: j for j, p in enumerate(positions)}
        self.a_params = [torch.zeros_like(p) for p in params]
        self.a_y: torch.Tensor | None = None
        self.a_s: tuple[torch.Tensor, ...] = ()
        self.live_states = 0  # states held by the checkpointing (asserted by the tests)
        self.opaque = None  # a state of per-solve constants (Milstein, SRK), passed to every step as it is
        self.peak_states = 0

    def arrive(self, node: int) -> None:
        """Add the loss's gradient with respect to the output at grid ``node`` (if it is one)."""
        j = self.at.get(node)
        if j is not None and self.grad_ys is not None:
            self.a_y = self.a_y + self.grad_ys[j]

    def advance(self, k: int, y: torch.Tensor, s: tuple) -> tuple[torch.Tensor, tuple]:
        """Step ``k`` forward without a graph."""
        with torch.no_grad():
            res = self.solver.step(self.problem, self.grid[k], self.grid[k + 1], y, s or self.opaque, self.noise)
        return res.x, carried(res.state)

    def back(self, k: int, y: torch.Tensor, s: tuple) -> None:
        """Transpose step ``k`` at its input ``(y, s)``: the adjoints move from node ``k + 1`` to ``k``."""
        with torch.enable_grad():
            y = y.detach().requires_grad_(True)
            s = tuple(v.detach().requires_grad_(True) for v in s)
            res = self.solver.step(self.problem, self.grid[k], self.grid[k + 1], y, s or self.opaque, self.noise)
            outs = (res.x,) + carried(res.state)
            adj = (self.a_y,) + self.a_s
            pairs = [(o, a) for o, a in zip(outs, adj) if o.requires_grad]
            inputs = (y,) + s + self.params
            if pairs:
                grads = torch.autograd.grad([o for o, _ in pairs], inputs, [a for _, a in pairs], allow_unused=True)
            else:
                grads = (None,) * len(inputs)
        zero = [torch.zeros_like(v) for v in inputs]
        grads = [z if g is None else g for g, z in zip(grads, zero)]
        self.a_y = grads[0]
        self.a_s = tuple(grads[1 : 1 + len(s)])
        for i, g in enumerate(grads[1 + len(s):]):
            self.a_params[i] = self.a_params[i] + g
        self.arrive(k)

    def _hold(self, delta: int) -> None:
        self.live_states += delta
        self.peak_states = max(self.peak_states, self.live_states)

    def checkpointed(self, a: int, b: int, y: torch.Tensor, s: tuple, slots: int) -> None:
        """Reverse steps ``a .. b-1`` from the state at node ``a``, holding at most ``slots`` states."""
        self._hold(1)
        while b - a > 1:
            if slots == 1:  # no room for a checkpoint: advance from a to the last step, reverse it
                ym, sm = y, s
                for k in range(a, b - 1):
                    ym, sm = self.advance(k, ym, sm)
                self._hold(1)
                self.back(b - 1, ym, sm)
                self._hold(-1)
                del ym, sm
                b -= 1
                continue
            m = a + _binomial_split(b - a, slots)
            ym, sm = y, s
            for k in range(a, m):
                ym, sm = self.advance(k, ym, sm)
            self.checkpointed(m, b, ym, sm, slots - 1)
            del ym, sm
            b = m
        self.back(a, y, s)
        self._hold(-1)

    def reversed_steps(self, y: torch.Tensor, s: tuple) -> tuple[torch.Tensor, tuple]:
        """Reverse every step from the final ``(y, s)`` by the method's algebraic inverse; returns the
        reconstructed initial ``(y0, s0)``."""
        self._hold(1)
        for k in range(len(self.grid) - 2, -1, -1):
            with torch.no_grad():
                y, s = self.solver.reverse(self.problem, self.grid[k], self.grid[k + 1], y, s, self.noise)
            self.back(k, y, tuple(s))
        self._hold(-1)
        return y, tuple(s)


class _AdjointSolve(torch.autograd.Function):
    """``(y0, *state0, *params) -> (ys, *final_state)`` with the discrete-adjoint backward pass."""

    @staticmethod
    def forward(ctx, run: _Setup, y0: torch.Tensor, n_state: int, *tensors: torch.Tensor):
        state0 = tuple(tensors[:n_state]) or None
        params = tuple(tensors[n_state:])
        problem = run.problem
        noise = run.noise(problem, 0, run.batch, y0)
        final: dict = {}
        ys = torch.empty((len(run.times),) + tuple(y0.shape), dtype=y0.dtype, device=y0.device)
        ys[0] = y0
        for i, y in enumerate(run.steps(problem, y0, noise, state0, final, label="sdeint_adjoint", **run.tolerances), 1):
            ys[i] = y
        run.check_end(ys, problem, "sdeint_adjoint")
        state = carried(final.get("state"))
        if run.adaptive:
            grid = final["times"]
            where = {t: i for i, t in enumerate(grid)}
            positions = [where[t] for t in run.times]
        else:
            grid, positions = run.grid, run.positions
        ctx.run, ctx.problem, ctx.noise, ctx.grid, ctx.positions = run, problem, noise, grid, positions
        ctx.n_state, ctx.given_state = len(state), state0 is not None
        ctx.save_for_backward(y0, *(state0 or ()), *params)
        ctx.end = (ys[-1].clone(), state)  # where the reversal starts (a copy: ys may be edited in place)
        ctx.n_params = len(params)
        return (ys,) + tuple(v.clone() for v in state)

    @staticmethod
    def backward(ctx, grad_ys: torch.Tensor, *grad_state: torch.Tensor):
        run: _Setup = ctx.run
        saved = ctx.saved_tensors
        y0 = saved[0]
        n0 = ctx.n_state if ctx.given_state else 0
        state0 = tuple(saved[1 : 1 + n0])
        params = tuple(saved[1 + n0 : 1 + n0 + ctx.n_params])
        y_end, state_end = ctx.end
        rev = _Reverser(run, ctx.problem, ctx.noise, ctx.grid, ctx.positions, params, grad_ys)
        rev.a_y = torch.zeros_like(y0)
        rev.a_s = tuple(torch.zeros_like(v) if g is None else g for v, g in zip(state_end, grad_state))
        n = len(ctx.grid) - 1
        rev.arrive(n)
        if run.reversing:
            rev.reversed_steps(y_end, state_end)
        else:
            with torch.no_grad():
                first = run.solver.init(ctx.problem, list(ctx.grid), y0)
            s_first = state0 if ctx.given_state else carried(first)
            if not carried(first):
                rev.opaque = first
            rev.checkpointed(0, n, y0, s_first, run.checkpoints)
        ctx.peak_states = rev.peak_states
        run.peak_states = rev.peak_states
        grad_y0 = rev.a_y
        grad_state0: tuple = ()
        if ctx.given_state:
            grad_state0 = rev.a_s
        elif rev.a_s:
            # The method's initial state s0 = init(y0) depends on y0 and the parameters: one more transpose.
            with torch.enable_grad():
                y = y0.detach().requires_grad_(True)
                s0 = carried(run.solver.init(ctx.problem, list(ctx.grid), y))
                pairs = [(o, a) for o, a in zip(s0, rev.a_s) if o.requires_grad]
                if pairs:
                    grads = torch.autograd.grad([o for o, _ in pairs], (y,) + params, [a for _, a in pairs],
                                                allow_unused=True)
                    if grads[0] is not None:
                        grad_y0 = grad_y0 + grads[0]
                    for i, g in enumerate(grads[1:]):
                        if g is not None:
                            rev.a_params[i] = rev.a_params[i] + g
        return (None, grad_y0, None, *grad_state0, *rev.a_params)


def sdeint_adjoint(
    sde: Any,
    y0: torch.Tensor,
    ts: Sequence[float] | torch.Tensor,
    bm: Callable | None = None,
    method: str | Solver | None = None,
    adjoint_method: str | None = None,
    dt: float = 1e-3,
    adaptive: bool = False,
    adjoint_adaptive: bool = False,
    rtol: float = 1e-5,
    adjoint_rtol: float = 1e-5,
    atol: float = 1e-4,
    adjoint_atol: float = 1e-4,
    dt_min: float = 1e-5,
    options: dict[str, Any] | None = None,
    adjoint_options: dict[str, Any] | None = None,
    adjoint_params: Sequence[torch.Tensor] | None = None,
    names: dict[str, str] | None = None,
    logqp: bool = False,
    extra: bool = False,
    extra_solver_state: tuple[torch.Tensor, ...] | None = None,
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    error_norm: str = "batch",
    max_steps: int | None = None,
    checkpoints: int = 32,
):
    r"""Solve an SDE like :func:`~sdeflow.sdes.integrate.sdeint`, with gradients by the discrete adjoint
    (module docstring): equal to backpropagation through the solve, in memory that does not grow with
    the number of steps.

    The arguments are torchsde's ``sdeint_adjoint``'s, in its order; the results are
    :func:`~sdeflow.sdes.integrate.sdeint`'s (``ys``; the log-ratio increments with ``logqp``; the
    solver state with ``extra``), bit for bit the same forward values.

    Args:
        sde: as in :func:`sdeint`; a ``torch.nn.Module`` unless ``adjoint_params`` is given.
        adjoint_method: torchsde's name of the backward method (:data:`ADJOINT_METHODS`).
            ``"adjoint_reversible_heun"`` (the default for ``method="reversible_heun"``, and only for it)
            recovers the states by reversing the steps (no checkpoints); any other name, or None,
            checkpoints. Either way the backward pass is the exact transpose of ``method``.
        adjoint_adaptive, adjoint_rtol, adjoint_atol, adjoint_options: torchsde's settings of its
            backward solve, checked and accepted; the discrete adjoint has no tolerance of its own (it is
            exact), so they change nothing.
        adjoint_params: the tensors to differentiate (default: ``sde.parameters()``); those without
            ``requires_grad`` are left out.
        seed, generator, error_norm, max_steps: as in :func:`sdeint` (no ``seed``, ``generator`` or
            ``bm``: the seed is drawn from torch's global generator, as torchsde does).
        checkpoints: the most states held by the backward pass of a non-reversible method (>= 1); ``n``
            steps cost about ``r n`` extra step evaluations where ``binom(checkpoints + r, r) >= n``.

    Gradients flow to ``y0``, ``extra_solver_state`` and ``adjoint_params``; not to ``ts`` or ``dt``.
    """
    if adjoint_params is None:
        if not isinstance(sde, torch.nn.Module):
            raise ValueError(
                "sde must be a torch.nn.Module for sdeint_adjoint to find its parameters; otherwise pass "
                "adjoint_params=(tensors...) (adjoint_params=() where there are none)"
            )
        adjoint_params = tuple(sde.parameters())
    else:
        if isinstance(adjoint_params, torch.Tensor):
            adjoint_params = (adjoint_params,)
        adjoint_params = tuple(adjoint_params)
        if not all(isinstance(p, torch.Tensor) for p in adjoint_params):
            raise TypeError("adjoint_params must be a sequence of tensors")
    params = tuple(p for p in adjoint_params if p.requires_grad)
    if adjoint_method is not None and adjoint_method not in ADJOINT_METHODS:
        raise ValueError(f"adjoint_method must be one of {list(ADJOINT_METHODS)} or None; got {adjoint_method!r}")
    method_name = method.name if isinstance(method, Solver) else method
    if adjoint_method == "adjoint_reversible_heun" and method_name != "reversible_heun":
        raise ValueError(
            f"adjoint_method='adjoint_reversible_heun' reverses the steps of method='reversible_heun'; got "
            f"method={method_name!r}"
        )
    if not isinstance(adjoint_adaptive, bool):
        raise TypeError(f"adjoint_adaptive must be a bool; got {adjoint_adaptive!r}")
    _check_tolerances(adjoint_rtol, adjoint_atol, 0.0)
    _check_options(adjoint_options)
    checkpoints = check_int(checkpoints, "checkpoints")
    if checkpoints < 1:
        raise ValueError(f"checkpoints must be >= 1 (the states the backward pass may hold); got {checkpoints}")
    run = _Setup(sde, y0, ts, bm, method, dt, adaptive, rtol, atol, dt_min, options, names, logqp,
                 extra_solver_state, seed, generator, error_norm, max_steps, None, "sdeint_adjoint")
    run.tolerances = dict(rtol=rtol, atol=atol, dt_min=dt_min, error_norm=error_norm)
    run.checkpoints = checkpoints
    reversible = getattr(run.solver, "reversible", False)
    run.reversing = reversible and adjoint_method in (None, "adjoint_reversible_heun")
    state0 = tuple(run.state0 or ())
    outs = _AdjointSolve.apply(run, run.y0, len(state0), *state0, *params)
    ys, state = outs[0], outs[1:]
    return run.result(ys, state if state else None, extra)
