"""The Monte Carlo pricer: paths streamed in chunks, float64 accumulation, confidence interval,
antithetic variates and pathwise Greeks by autograd.

Memory is bounded by the chunk (``chunk`` paths at a time, nothing stored across monitoring dates
beyond the payoff's accumulator), so 10^7 paths and more run in constant memory. Sums of the
discounted payoff and of its square are accumulated in float64 whatever the simulation dtype (a
float32 sum of 10^7 terms would lose ~4 digits). With antithetic variates each chunk runs the paths
of ``dW`` and ``-dW`` (same seed) and the estimator averages each pair first, so the standard error is
the one of the pair means (Glasserman 2003, "Monte Carlo Methods in Financial Engineering", 4.2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Sequence

import torch

from .._utils import check_int
from ..noise.path import BrownianPath, _mix
from ..sdes.integrate import MAX_FIXED_STEPS, iterate, resolve_method, step_grid
from ..solvers.base import Solver, StepResult
from .payoffs import European, Payoff

__all__ = ["MCResult", "price", "steps_taken", "GREEK_ALIASES"]

GREEK_ALIASES = {"delta": "s0", "vega": "sigma", "rho": "r"}

MAX_PATH_STEPS = 10**12
"""The most simulated steps (``paths * steps``) one :func:`price` call takes: beyond it a request runs for
hours (chunks bound the memory, not the time) and is refused before any work."""
"""Greek names and the model parameter they differentiate."""


@dataclass
class MCResult:
    """A Monte Carlo price: estimate, standard error, confidence interval, and Greeks ``name -> (value, se)``."""

    price: float
    stderr: float
    ci: tuple[float, float]
    paths: int
    greeks: dict[str, tuple[float, float]] = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f"price {self.price:.6f}  stderr {self.stderr:.6f}  CI [{self.ci[0]:.6f}, {self.ci[1]:.6f}]  "
                 f"({self.paths} paths)"]
        lines += [f"{k} {v:.6f}  stderr {s:.6f}" for k, (v, s) in self.greeks.items()]
        return "\n".join(lines)


@dataclass(frozen=True)
class ExactStep(Solver):
    """The model's exact transition from the same Gaussian increment (``model.exact_step``)."""

    name = "exact"
    stochastic = True
    strong_order = math.inf
    weak_order = math.inf

    def step(self, problem, t0, t1, x, state, noise):
        return StepResult(problem.exact_step(t0, t1, x, noise(t0, t1)), None, None)


class _Antithetic:
    """A Brownian object whose second half of the batch is the negative of the first."""

    def __init__(self, bm: BrownianPath) -> None:
        self.bm = bm

    def __call__(self, ta, tb, return_U: bool = False):
        out = self.bm(ta, tb, return_U)
        if return_U:
            return torch.cat((out[0], -out[0])), torch.cat((out[1], -out[1]))
        return torch.cat((out, -out))


class _Sums:
    """Float64 running sums of values and squares (the mean and standard error at the end).

    Each chunk's partial sums are kept (:attr:`parts`) and added in chunk order, so that the chunks of a
    run shared over processes, gathered in chunk order (:meth:`gathered`), give the same bits.
    """

    def __init__(self) -> None:
        self.n, self.s, self.s2 = 0, 0.0, 0.0
        self.parts: list[tuple[int, float, float]] = []

    def add(self, v: torch.Tensor) -> None:
        v = v.detach().to(torch.float64)
        self.add_part((v.numel(), float(v.sum()), float((v * v).sum())))

    def add_part(self, part: tuple[int, float, float]) -> None:
        self.parts.append(part)
        self.n += part[0]
        self.s += part[1]
        self.s2 += part[2]

    def gathered(self) -> "_Sums":
        """The sums of every process's chunks in chunk order (itself without a process group)."""
        from ..distributed import gather_objects

        out = _Sums()
        for part in gather_objects(self.parts):
            out.add_part(part)
        return out

    def mean_se(self) -> tuple[float, float]:
        m = self.s / self.n
        var = max(self.s2 / self.n - m * m, 0.0) * self.n / max(self.n - 1, 1)
        return m, math.sqrt(var / self.n)


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1); got {confidence!r}")
    return float(torch.special.ndtri(torch.tensor(0.5 + confidence / 2, dtype=torch.float64)))


def price(
    model,
    payoff: Payoff,
    maturity: float,
    *,
    paths: int = 100_000,
    steps: int = 100,
    method: str | Solver = "exact",
    seed: int = 0,
    chunk: int = 100_000,
    antithetic: bool = False,
    greeks: Sequence[str] = (),
    confidence: float = 0.95,
    dtype: torch.dtype = torch.float64,
    monitoring: int | None = None,
    progress: bool = False,
    distributed: bool = False,
) -> MCResult:
    r"""Monte Carlo price ``e^{-rT} E[payoff]`` of ``payoff`` under ``model`` at ``maturity``.

    Args:
        model: a :mod:`sdeflow.finance.models` model (or any SDE with ``initial``, ``asset``, ``r``).
        payoff: a :mod:`sdeflow.finance.payoffs` payoff.
        maturity: ``T > 0``.
        paths: number of paths (rounded up to an even number with ``antithetic``).
        steps: time steps of the simulation, uniform ``T/steps`` (a European payoff on an exact step
            needs one: :func:`steps_taken`, which ``sdeflow price`` applies).
        method: ``"exact"`` (the model's exact step; GBM, MultiGBM, OU) or any method of
            :func:`sdeflow.sdeint` (``"euler"`` is the full-truncation scheme on Heston and CIR).
        seed: chunk ``c`` draws its Brownian path with ``mix(seed, c)``: results are reproducible
            for a given ``chunk``.
        chunk: paths simulated at a time (memory ~ ``chunk * (state + noise) * steps_per_chunk``).
        antithetic: pair every path with its antithetic (``-dW``).
        greeks: parameters to differentiate pathwise by autograd: ``"delta"`` (``s0``), ``"vega"``
            (``sigma``), ``"rho"`` (``r``) or any model parameter name. Each is given one value per path,
            so that its per-path derivatives give a standard error too.
        confidence: level of the two-sided normal confidence interval.
        dtype: of the simulation (accumulation is always float64).
        monitoring: monitoring dates for path-dependent payoffs: every ``steps // monitoring``
            steps (default: every step).
        distributed: share the chunks over the processes of a ``torch.distributed`` group (each
            process runs a contiguous run of whole chunks, :func:`sdeflow.distributed.my_chunks`) and
            gather their partial sums in chunk order: every process returns the single-process result,
            bit for bit, whatever the number of processes. Without a process group: one process.

    Returns:
        :class:`MCResult`.
    """
    check_int(paths, "paths")
    check_int(steps, "steps")
    check_int(chunk, "chunk")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int (any integer; chunk c draws from mix(seed, c)); got {type(seed).__name__} {seed!r}")
    if steps > MAX_FIXED_STEPS:
        raise ValueError(f"steps must be <= {MAX_FIXED_STEPS} (sdeint's bound on fixed steps); got {steps}")
    if paths * steps > MAX_PATH_STEPS:
        raise ValueError(
            f"paths * steps = {paths} * {steps} = {paths * steps:.3g} simulated steps exceeds the bound {MAX_PATH_STEPS:.0e} "
            "(hours of work at ~1e8 steps/s); ask for fewer paths or steps (the standard error falls as 1/sqrt(paths))"
        )
    if isinstance(maturity, bool) or not (isinstance(maturity, (int, float)) and math.isfinite(maturity) and maturity > 0):
        raise ValueError(f"maturity must be a finite number > 0; got {maturity!r}")
    if not isinstance(payoff, Payoff):
        raise TypeError(f"payoff must be a sdeflow.finance payoff (European, Asian, Barrier, ...); got {type(payoff).__name__}")
    for attr in ("initial", "asset", "drift", "diffusion"):
        if not callable(getattr(model, attr, None)):
            raise TypeError(
                f"model must be a sdeflow.finance model (GBM, MultiGBM, Heston, CIR, OrnsteinUhlenbeck) or an SDE with "
                f"initial(n, dtype) and asset(y); {type(model).__name__} has no {attr}()"
            )
    if not isinstance(antithetic, bool):
        raise TypeError(f"antithetic must be True or False; got {antithetic!r}")
    if not isinstance(dtype, torch.dtype) or dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64 (the simulation's); got {dtype!r}")
    if isinstance(greeks, str) or any(not isinstance(g, str) for g in greeks):
        raise TypeError(f"greeks must be a list of names such as ['delta', 'vega']; got {greeks!r}")
    if not (method == "exact" or isinstance(method, (str, Solver))):
        raise TypeError(f"method must be 'exact', a sdeint method name or a solver object; got {method!r}")
    params = [GREEK_ALIASES.get(g, g) for g in greeks]
    for g, p in zip(greeks, params):
        if not hasattr(model, p):
            names = sorted(set(GREEK_ALIASES) | {f for f in getattr(model, "__dataclass_fields__", {})})
            raise ValueError(
                f"greeks: {g!r} differentiates the parameter {p!r}, which {type(model).__name__} does not have; "
                f"expected some of {names}"
            )
    z = _z(confidence)
    monitoring = steps if monitoring is None else check_int(monitoring, "monitoring")
    if steps % monitoring:
        raise ValueError(f"steps={steps} must be a multiple of monitoring={monitoring}")
    ts = [maturity * k / monitoring for k in range(monitoring + 1)]
    grid, positions = step_grid(ts, maturity / steps)
    half = 2 if antithetic else 1
    value_sums, greek_sums = _Sums(), {g: _Sums() for g in greeks}
    if not isinstance(distributed, bool):
        raise TypeError(f"distributed must be True or False; got {distributed!r}")
    # Chunk c holds paths [c * chunk, (c + 1) * chunk); a process runs its own chunks only.
    from ..distributed import chunk_bounds, my_chunks

    mine = my_chunks(paths, chunk) if distributed else chunk_bounds(paths, chunk)
    bar = None
    if progress:
        from .._utils import progress_bar

        bar = progress_bar(total=paths, desc="Monte Carlo", unit="path")
    for a, b in mine:
        n, c = b - a, a // chunk
        base = -(-n // half)
        leaves = {p: torch.full((base * half, 1), float(getattr(model, p)), dtype=dtype, requires_grad=True)
                  for p in params}
        m = replace(model, **leaves) if leaves else model
        solver = ExactStep() if method == "exact" else resolve_method(method, m)
        if method == "exact" and not hasattr(m, "exact_step"):
            raise ValueError(f"{type(model).__name__} has no exact step; pass method='euler' (or another sdeint method)")
        y0 = m.initial(base * half, dtype)
        wshape = tuple(m.brownian_shape(y0))
        bm = BrownianPath(grid, (base,) + wshape[1:], seed=_mix(seed, c), dtype=dtype)
        noise = _Antithetic(bm) if antithetic else bm
        with torch.set_grad_enabled(bool(leaves)):
            s = payoff.price_of(m.asset(y0))
            acc = payoff.start(s)
            for y in iterate(m, solver, y0, ts, noise, dt=None, grid=grid, positions=positions):
                s = payoff.price_of(m.asset(y))
                acc = payoff.update(acc, s)
            disc = torch.exp(-_rate(m, y) * maturity)
            v = disc * payoff.value(acc, s, y)
        if leaves:
            grads = torch.autograd.grad(v.sum(), list(leaves.values()), allow_unused=True)
        v = v.detach()
        value_sums.add(v.reshape(half, base).mean(0) if antithetic else v)
        for g, gr in zip(greeks, grads if leaves else ()):
            gr = torch.zeros_like(v) if gr is None else gr.reshape(-1)
            greek_sums[g].add(gr.reshape(half, base).mean(0) if antithetic else gr)
        if bar is not None:
            bar.update(n)
    if bar is not None:
        bar.close()
    if distributed:
        value_sums, greek_sums = value_sums.gathered(), {g: v.gathered() for g, v in greek_sums.items()}
    done = paths
    mean, se = value_sums.mean_se()
    if not (math.isfinite(mean) and math.isfinite(se)):
        raise FloatingPointError(
            f"the Monte Carlo price is not finite ({mean}): some paths became NaN or infinite with method "
            f"{getattr(method, 'name', method)!r} and {steps} steps (dt = {maturity / steps:g}); use more steps, "
            "method='exact' where the model has it, or check the model's parameters"
        )
    return MCResult(mean, se, (mean - z * se, mean + z * se), done,
                    {g: greek_sums[g].mean_se() for g in greeks})


def steps_taken(payoff: Payoff, method: object, steps: int, monitoring: int | None = None) -> int:
    """The steps a price needs: 1 for a European payoff on the model's exact step, else ``steps``.

    A European payoff depends on ``S_T`` alone, and the exact step (GBM, MultiGBM, OU) draws the
    transition law exactly for any step size (e.g. ``S_T = S_0 exp((r - q - sigma^2/2) T + sigma W_T)``),
    so one step of length ``T`` gives the same distribution as 100 at 1/100 of the work (and of the
    pathwise Greeks' autograd graph).
    """
    if method == "exact" and type(payoff) is European and monitoring is None:
        return 1
    return steps


def _rate(model, y: torch.Tensor):
    r = getattr(model, "r", 0.0)
    return r.reshape(-1) if isinstance(r, torch.Tensor) else torch.tensor(float(r), dtype=y.dtype)
