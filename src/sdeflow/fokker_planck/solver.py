"""A finite-volume solver of the Fokker-Planck equation on 1-D and 2-D grids.

For the SDE ``dx = b(t, x) dt + G(t, x) dW`` with diagonal noise ``G = diag(g_1, ..., g_d)``,
integrated from ``t_0`` towards ``t_1`` (either direction; ``s = sign(t_1 - t_0)``), the density obeys,
in the elapsed time ``tau = |t - t_0|``,

    dp/dtau = -div J,        J_k = s b_k p - 1/2 d_k (g_k^2 p),                      (Fokker-Planck)

(Risken 1989, eq. 4.95 for diagonal diffusion). A reverse-time SDE stepped with ``dt < 0`` (as
:class:`sdeflow.sdes.ReverseDiffusionSDE`) is handled by the same equation with ``s = -1``. With no
diffusion (an ODE, ``sde.is_ode``) it is the continuity equation ``dp/dtau = -div(s v p)`` of the flow.

Scheme (finite volumes on cell averages):

* advection: MUSCL reconstruction with the minmod limiter (van Leer 1979) and upwind fluxes at
  each face, with the drift evaluated at the face centre; second order where the density is
  smooth, first order at extrema;
* diffusion: the central flux ``-(g^2 p)_{i+1} - (g^2 p)_i) / (2 dx)`` (second order);
* zero flux through the boundary faces, so ``sum(p) dx`` is conserved to round-off: the box must be
  large enough that the density is negligible at its edges (:attr:`FokkerPlanckSolution.boundary_mass`);
* time: the two-stage strong-stability-preserving Runge-Kutta method (Shu & Osher 1988; Heun),
  a convex combination of forward-Euler steps.

Stability and positivity (the CFL-type condition). A forward-Euler step keeps ``p >= 0`` when

    dt * sum_k ( 3 max|b_k| / dx_k + max g_k^2 / dx_k^2 ) <= 1,

because the minmod face values lie in ``[p_i / 2, 3 p_i / 2]`` (outflow at most ``3 |b| dt / dx p_i``
over the two faces of an axis) and the diffusion removes at most ``g^2 dt / dx^2 p_i`` per axis;
every other term adds mass. The solver takes ``dt = cfl / rate`` with that rate measured at the start
of the step (``cfl = 0.9`` by default) and re-checks it at the second stage, shrinking the step if
the coefficients grew; the SSP combination then preserves positivity. Diffusion makes this
``dt = O(dx^2)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from .._utils import check_int, check_positive, progress_bar
from .grid import Grid

__all__ = ["FieldSDE", "FokkerPlanckSolution", "solve", "stable_step"]


class FieldSDE:
    """A drift and an optional diagonal diffusion as plain functions (for :func:`solve`).

    Args:
        drift: ``(t: float, x: (N, d)) -> (N, d)``.
        diffusion: ``(t: float, x: (N, d)) -> (N, d)`` or broadcastable (``g_k``, not squared), or
            ``None`` for an ODE (the continuity equation).
    """

    noise_type = "diagonal"

    def __init__(self, drift: Callable, diffusion: Callable | None = None) -> None:
        if not callable(drift) or (diffusion is not None and not callable(diffusion)):
            raise TypeError("drift (and diffusion, if given) must be callables (t, x) -> tensor of shape (N, d)")
        self._drift = drift
        self._diffusion = diffusion

    @property
    def is_ode(self) -> bool:
        return self._diffusion is None

    def drift(self, t: float, x: torch.Tensor) -> torch.Tensor:
        return self._drift(t, x)

    def diffusion(self, t: float, x: torch.Tensor) -> torch.Tensor:
        if self._diffusion is None:
            return torch.zeros_like(x)
        return self._diffusion(t, x)


@dataclass(frozen=True)
class FokkerPlanckSolution:
    """Densities on a grid at the requested times.

    Attributes:
        grid: the :class:`Grid`.
        times: ``(m,)`` float64, the requested times (``times[0]`` the initial one).
        densities: ``(m, *grid.shape)`` float64 densities (cell averages).
        n_steps: time steps taken; dt_min, dt_max: their extremes (elapsed-time units).
        rejected: steps redone with a smaller ``dt`` because the rate grew within the step.
    """

    grid: Grid
    times: torch.Tensor
    densities: torch.Tensor
    n_steps: int
    dt_min: float
    dt_max: float
    rejected: int

    @property
    def mass(self) -> torch.Tensor:
        """``(m,)`` total mass at each time (conserved to round-off)."""
        return self.densities.reshape(self.densities.shape[0], -1).sum(1) * self.grid.cell_volume

    @property
    def boundary_mass(self) -> torch.Tensor:
        """``(m,)`` mass in the outermost cells (should stay negligible: the box is closed there)."""
        p = self.densities
        inner = p
        for axis in range(1, p.ndim):
            inner = inner.narrow(axis, 1, inner.shape[axis] - 2)
        return self.mass - inner.reshape(p.shape[0], -1).sum(1) * self.grid.cell_volume


def _minmod(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(a * b > 0, torch.sign(a) * torch.minimum(a.abs(), b.abs()), torch.zeros_like(a))


def _axis_flux(p: torch.Tensor, u: torch.Tensor, dp: torch.Tensor | None, dx: float, axis: int) -> torch.Tensor:
    """``-d(F)/dx`` along ``axis``: upwind-MUSCL advection flux with face velocities ``u`` plus the
    central diffusion flux of ``dp = g^2 p`` (``None``: none). Boundary fluxes are zero."""
    p = p.movedim(axis, 0)
    u = u.movedim(axis, 0)
    delta = p[1:] - p[:-1]  # (n - 1, ...)
    slope = torch.zeros_like(p)
    slope[1:-1] = _minmod(delta[:-1], delta[1:])
    left = p[:-1] + 0.5 * slope[:-1]  # value at face i + 1/2 from cell i
    right = p[1:] - 0.5 * slope[1:]  # from cell i + 1
    ui = u[1:-1]
    flux = torch.clamp(ui, min=0.0) * left + torch.clamp(ui, max=0.0) * right
    if dp is not None:
        dp = dp.movedim(axis, 0)
        flux = flux - 0.5 * (dp[1:] - dp[:-1]) / dx
    zero = torch.zeros_like(p[:1])
    full = torch.cat([zero, flux, zero])
    return (-(full[1:] - full[:-1]) / dx).movedim(0, axis)


def _as_field(value: Any, n: int, d: int, what: str) -> torch.Tensor:
    out = torch.as_tensor(value, dtype=torch.float64)
    try:
        return torch.broadcast_to(out.to(torch.float64), (n, d))
    except RuntimeError as err:
        raise ValueError(f"the {what} must return shape (N, {d}) (or broadcastable) for N points; got {tuple(out.shape)}") from err


class _Operator:
    """The right-hand side ``dp/dtau`` on a grid, with the CFL rate of its coefficients."""

    def __init__(self, sde: Any, grid: Grid, sign: float, dtype: torch.dtype) -> None:
        self.sde, self.grid, self.sign, self.dtype = sde, grid, sign, dtype
        self.faces = [grid.face_points(a).to(dtype) for a in range(grid.ndim)]
        self.sizes = [f.shape[0] for f in self.faces]
        self.all_faces = torch.cat(self.faces)
        self.centres = grid.points().to(dtype)
        self.has_diffusion = not bool(getattr(sde, "is_ode", False))
        nt = getattr(sde, "noise_type", "diagonal")
        if self.has_diffusion and nt not in ("diagonal", "additive"):
            raise ValueError(
                f"the Fokker-Planck solver handles diagonal or additive noise; got noise_type={nt!r} "
                "(a scalar or general noise has cross-diffusion terms)"
            )

    def coefficients(self, t: float) -> tuple[list[torch.Tensor], list[torch.Tensor] | None, float]:
        """Face velocities per axis, ``g_k^2`` at the centres per axis (or ``None``), and the CFL rate."""
        g, d = self.grid, self.grid.ndim
        with torch.no_grad():
            b = _as_field(self.sde.drift(t, self.all_faces), self.all_faces.shape[0], d, "drift")
        b = b.to(torch.float64) * self.sign
        vel = []
        rate = 0.0
        for axis, part in enumerate(torch.split(b, self.sizes)):
            u = part[:, axis].reshape(g.face_shape(axis))
            vel.append(u)
            rate += 3.0 * float(u.abs().max()) / g.dx[axis]
        diff = None
        if self.has_diffusion:
            with torch.no_grad():
                gg = _as_field(self.sde.diffusion(t, self.centres), self.centres.shape[0], d, "diffusion")
            gg = gg.to(torch.float64) ** 2
            diff = [gg[:, axis].reshape(g.shape) for axis in range(d)]
            rate += sum(float(diff[a].max()) / g.dx[a] ** 2 for a in range(d))
        if not math.isfinite(rate):
            raise FloatingPointError(f"the drift or diffusion is not finite on the grid at t = {t:.6g}")
        return vel, diff, rate

    def apply(self, p: torch.Tensor, vel: list[torch.Tensor], diff: list[torch.Tensor] | None) -> torch.Tensor:
        out = torch.zeros_like(p)
        for axis in range(self.grid.ndim):
            out += _axis_flux(p, vel[axis], None if diff is None else diff[axis] * p, self.grid.dx[axis], axis)
        return out


def stable_step(sde: Any, grid: Grid, t: float, *, backward: bool = False, cfl: float = 0.9) -> float:
    """The step :func:`solve` takes at time ``t``: ``cfl / sum_k (3 max|b_k|/dx_k + max g_k^2/dx_k^2)``.

    Use it to predict the cost of a solve (``|t_1 - t_0| / stable_step`` steps, each two evaluations
    of the drift on every face). ``backward`` for a run towards smaller times.
    """
    rate = _Operator(sde, grid, -1.0 if backward else 1.0, torch.float64).coefficients(float(t))[2]
    return math.inf if rate == 0 else check_positive(cfl, "cfl") / rate


def solve(
    sde: Any,
    p0: torch.Tensor | Callable[[torch.Tensor], torch.Tensor],
    grid: Grid,
    times: Sequence[float] | torch.Tensor,
    *,
    cfl: float = 0.9,
    dtype: torch.dtype = torch.float64,
    max_steps: int = 10_000_000,
    progress: bool = False,
) -> FokkerPlanckSolution:
    """Evolve a density under the Fokker-Planck (or continuity) equation of ``sde`` on ``grid``.

    Args:
        sde: an object with ``drift(t, x)`` and ``diffusion(t, x)`` on points ``x`` of shape
            ``(N, d)`` (a :class:`sdeflow.sdes.SDE` such as ``process.forward_sde()``,
            ``process.reverse_sde(model, prediction)`` or ``process.probability_flow_ode(...)``, or a
            :class:`FieldSDE`); diagonal or additive noise; ``is_ode = True`` for a flow.
        p0: the density at ``times[0]``: a tensor of shape ``grid.shape`` (non-negative), or a
            log-density callable ``(N, d) -> (N,)`` evaluated at the cell centres and normalized.
        grid: the :class:`Grid` (its box must contain the mass at every time).
        times: strictly monotone output times (increasing: forward in time; decreasing: a reverse-
            time SDE integrated towards ``t = 0``, whose model must not be called at ``t = 0``).
        cfl: safety factor in ``(0, 1]`` of the positivity condition (module docstring).
        dtype: dtype of the points given to ``drift``/``diffusion`` (the density is float64).
        max_steps: cap on time steps.
        progress: tqdm bar over the elapsed time.

    Returns:
        :class:`FokkerPlanckSolution` with the densities at every requested time.
    """
    if not isinstance(grid, Grid):
        raise TypeError(f"grid must be a sdeflow.fokker_planck.Grid; got {type(grid).__name__}")
    if not callable(getattr(sde, "drift", None)):
        raise TypeError(
            "sde must have drift(t, x) and diffusion(t, x) (a sdeflow SDE or fokker_planck.FieldSDE(drift, diffusion)); "
            f"got {type(sde).__name__}"
        )
    ts = torch.as_tensor(times, dtype=torch.float64).reshape(-1)
    if ts.numel() < 2 or not bool(torch.isfinite(ts).all()):
        raise ValueError(f"times must hold at least two finite times; got {times!r}")
    steps_between = ts.diff()
    if not (bool((steps_between > 0).all()) or bool((steps_between < 0).all())):
        raise ValueError(f"times must be strictly increasing or strictly decreasing; got {ts.tolist()}")
    cfl = check_positive(cfl, "cfl")
    if cfl > 1:
        raise ValueError(f"cfl must lie in (0, 1] (positivity needs dt * rate <= 1); got {cfl}")
    max_steps = check_int(max_steps, "max_steps")
    sign = 1.0 if float(ts[-1]) > float(ts[0]) else -1.0

    if callable(p0) and not isinstance(p0, torch.Tensor):
        p = grid.density(p0)
    else:
        p = torch.as_tensor(p0, dtype=torch.float64).clone()
        if tuple(p.shape) != grid.shape:
            raise ValueError(f"p0 must have the grid's shape {grid.shape}; got {tuple(p.shape)}")
        if not bool(torch.isfinite(p).all()) or bool((p < 0).any()):
            raise ValueError("p0 must be a finite, non-negative density on the grid")
    op = _Operator(sde, grid, sign, dtype)
    out = [p.clone()]
    n_steps = rejected = 0
    dt_min, dt_max = math.inf, 0.0
    t = float(ts[0])
    total = abs(float(ts[-1]) - t)
    bar = progress_bar(total=len(ts) - 1, desc="Fokker-Planck", unit="frame", disable=not progress)
    for t_out in ts[1:].tolist():
        while sign * (t_out - t) > 1e-12 * max(1.0, total):
            if n_steps >= max_steps:
                raise RuntimeError(f"more than max_steps = {max_steps} steps before t = {t_out}; refine less or raise max_steps")
            vel, diff, rate = op.coefficients(t)
            dt = min(cfl / rate if rate > 0 else math.inf, abs(t_out - t))
            while True:
                # SSP-RK2: p1 = p + dt L(t, p); p_new = (p + p1 + dt L(t + dt, p1)) / 2.
                p1 = p + dt * op.apply(p, vel, diff)
                t1 = t_out if dt >= abs(t_out - t) else t + sign * dt
                vel1, diff1, rate1 = op.coefficients(t1)
                if dt * rate1 <= 1.0 + 1e-12:
                    break
                rejected += 1
                dt = cfl / rate1
            p = 0.5 * (p + p1 + dt * op.apply(p1, vel1, diff1))
            t = t1
            n_steps += 1
            dt_min, dt_max = min(dt_min, dt), max(dt_max, dt)
        out.append(p.clone())
        bar.update(1)
        bar.set_postfix(t=f"{t:.4g}", steps=n_steps)
    bar.close()
    return FokkerPlanckSolution(
        grid=grid,
        times=ts,
        densities=torch.stack(out),
        n_steps=n_steps,
        dt_min=dt_min if n_steps else 0.0,
        dt_max=dt_max,
        rejected=rejected,
    )
