"""Checks of a solve that cost nothing per step: the first steps' drift and diffusion outputs, a
stiffness estimate from those same calls, and the finiteness of the start and the end.

The first steps of :func:`~sdeflow.sdes.integrate.iterate` run on a :class:`FirstSteps` proxy of the
problem: it forwards everything, checks the shape and dtype of each drift and diffusion value
against the state it was evaluated at (so a wrong shape fails at the first call, naming the function
and the expected and received shapes, instead of broadcasting silently or failing later), and
records the first drift value. With one more drift value at the same time and the state after the
checked steps, a secant estimates the drift's rate of change ``|df/dy|`` (the size of its Jacobian
along the path), from which a step
far beyond the stability limit of explicit methods is reported before its result is trusted (the
idea of Hairer & Wanner's stiffness detection in DOPRI5, "Solving ODEs II", IV.2). The remaining
steps run on the problem itself: the per-step hot path is unchanged.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch

from .adapter import ODEFunction, TorchsdeSDE

__all__ = ["FirstSteps", "function_names", "check_finite_start", "check_finite_end", "STIFF_LIMIT"]

STIFF_LIMIT = 3.0
"""``dt * |df/dy|`` above which a fixed step is reported as beyond explicit stability. Explicit
Euler, Heun and the SRK methods are stable on ``dy = -lambda y dt`` for ``dt lambda < 2`` (RK4:
2.79); 3 leaves room for the secant estimate's error, as Hairer & Wanner's 3.25 does for DOPRI5."""


def function_names(problem: Any) -> tuple[str, str]:
    """How errors name the problem's drift and diffusion: the user's own names where known."""
    if isinstance(problem, ODEFunction):
        return "func", "func"
    if isinstance(problem, TorchsdeSDE):
        f, g = problem.names
        return f"sde.{f}", f"sde.{g}"
    kind = type(problem).__name__
    return f"{kind}.drift", f"{kind}.diffusion"


def _shape(x: torch.Tensor) -> tuple[int, ...]:
    return tuple(x.shape)


class FirstSteps:
    """The problem seen through shape checks, for the first steps of a solve (module docstring).

    Args:
        problem: the SDE (or ODE) being solved.
        label: the entry point for messages (``"sdeint"``, ``"odeint"``).
    """

    def __init__(self, problem: Any, label: str) -> None:
        self._problem = problem
        self._label = label
        self._f_name, self._g_name = function_names(problem)
        self.first_drift: tuple[Any, torch.Tensor, torch.Tensor] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._problem, name)

    # ---- checks ------------------------------------------------------------------------------
    def _check_tensor(self, value: object, name: str) -> torch.Tensor:
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{self._label}: {name}(t, y) must return a torch.Tensor; got {type(value).__name__}")
        return value

    def _check_dtype(self, value: torch.Tensor, x: torch.Tensor, name: str) -> None:
        if value.dtype != x.dtype or value.device != x.device:
            raise TypeError(
                f"{self._label}: {name}(t, y) returned dtype {value.dtype} on {value.device} for a state of dtype "
                f"{x.dtype} on {x.device}; return it in y's dtype and device (cast parameters with .to(y))"
            )

    def drift(self, t, x: torch.Tensor) -> torch.Tensor:
        f = self._check_tensor(self._problem.drift(t, x), self._f_name)
        if _shape(f) != _shape(x):
            raise ValueError(
                f"{self._label}: {self._f_name}(t, y) must return the state's shape {_shape(x)} (batch, *event_shape); "
                f"got {_shape(f)}. Return one drift value per sample and coordinate (no reduction over the batch, "
                "no broadcasting of a constant: expand it with .expand_as(y))"
            )
        self._check_dtype(f, x, self._f_name)
        if self.first_drift is None:
            self.first_drift = (t, x, f)
        return f

    def diffusion(self, t, x: torch.Tensor) -> torch.Tensor:
        problem = self._problem
        if isinstance(problem, TorchsdeSDE):
            # Check what the user's g returned, before the adapter squeezes scalar noise.
            raw = self._check_tensor(problem._g(problem._time(t), x), self._g_name)
            noise = problem.torchsde_noise_type
            b, d = x.shape
            if noise == "diagonal":
                want, ok = f"(batch, d) = ({b}, {d})", _shape(raw) == (b, d)
            elif noise == "scalar":
                want, ok = f"(batch, d, 1) = ({b}, {d}, 1)", _shape(raw) == (b, d, 1)
            else:
                m = problem._m
                want, ok = f"(batch, d, m) = ({b}, {d}, {m})", _shape(raw) == (b, d, m)
            if not ok:
                raise ValueError(f"{self._label}: {self._g_name}(t, y) must return {want} for {noise} noise "
                                 f"(torchsde's convention); got {_shape(raw)}")
            self._check_dtype(raw, x, self._g_name)
            return raw.squeeze(-1) if noise == "scalar" else raw
        g = self._check_tensor(problem.diffusion(t, x), self._g_name)
        if problem.noise_type == "general":
            m = problem.brownian_shape(x)[-1]
            if _shape(g) != _shape(x) + (m,):
                raise ValueError(
                    f"{self._label}: {self._g_name}(t, y) must return (*y.shape, m) = {_shape(x) + (m,)} for general "
                    f"noise (a matrix per sample, m = {m} Brownian motions); got {_shape(g)}"
                )
        else:
            try:
                fits = torch.broadcast_shapes(g.shape, x.shape) == x.shape
            except RuntimeError:
                fits = False
            if not fits:
                raise ValueError(
                    f"{self._label}: {self._g_name}(t, y) must return the state's shape {_shape(x)} (or a shape that "
                    f"broadcasts to it, such as (batch, 1)) for {problem.noise_type} noise; got {_shape(g)}. For a "
                    "diffusion matrix (batch, d, m) declare noise_type = 'general'"
                )
        self._check_dtype(g, x, self._g_name)
        return g

    def diffusion_times(self, t, x: torch.Tensor, dw: torch.Tensor) -> torch.Tensor:
        """``G dW`` as the problem computes it, after checking ``G`` (one more diffusion call, first steps only)."""
        self.diffusion(t, x)
        return self._problem.diffusion_times(t, x, dw)

    def checked_noise(self, noise, y0: torch.Tensor):
        """``noise`` whose increments are checked against the Brownian shape (for the first steps)."""
        if noise is None:
            return None
        want = tuple(self._problem.brownian_shape(y0))
        label, kind = self._label, getattr(self._problem, "noise_type", "diagonal")

        def checked(ta, tb, return_U: bool = False, return_A: bool = False):
            if return_A:  # the Levy area (log_ode on general noise): only dW is checked
                out = noise(ta, tb, return_U=True, return_A=True) if return_U else noise(ta, tb, return_A=True)
                parts = out[:1]
            else:
                out = noise(ta, tb, return_U=True) if return_U else noise(ta, tb)
                parts = out if isinstance(out, tuple) else (out,)
            for part, what in zip(parts, ("W(tb) - W(ta)", "U")):
                if isinstance(part, torch.Tensor) and _shape(part) != want:
                    raise ValueError(
                        f"{label}: the Brownian object returned {what} of shape {_shape(part)}; {kind} noise on y0 of "
                        f"shape {_shape(y0)} needs {want} (build bm with that shape)"
                    )
            return out

        return checked

    def check_step(self, y0: torch.Tensor, y1: object, method: str) -> None:
        """The first step kept the state's shape and dtype (a catch-all for paths not checked above)."""
        if not isinstance(y1, torch.Tensor) or _shape(y1) != _shape(y0) or y1.dtype != y0.dtype:
            got = f"shape {_shape(y1)}, dtype {y1.dtype}" if isinstance(y1, torch.Tensor) else type(y1).__name__
            raise ValueError(
                f"{self._label}: the first step of method {method!r} turned y0 of shape {_shape(y0)}, dtype {y0.dtype} "
                f"into {got}; {self._f_name} and {self._g_name} must return values of y's shape and dtype"
            )

    # ---- stiffness -------------------------------------------------------------------------------
    def drift_rate(self, y: torch.Tensor) -> float | None:
        """A secant estimate of ``|df/dy|`` between the first drift call ``(t0, x0)`` and the state ``y``.

        One more drift call, ``f(t0, y)``, at the first call's time (so that a drift's dependence on
        ``t`` does not enter): ``|f(t0, y) - f(t0, x0)| / |y - x0|`` with norms over the whole batch
        (samples that move most weigh most, so a sample that blows up dominates). None where there is
        no first drift call (an exact step), or the drift is a model (a diffusion: one more model
        call is not free).
        """
        first = self.first_drift
        if first is None or hasattr(self._problem, "denoiser"):
            return None
        t0, x0, f0 = first
        if _shape(y) != _shape(x0):
            return None
        f1 = self._problem.drift(t0, y)
        with torch.no_grad():  # two norms, one host sync
            norms = torch.stack((torch.linalg.vector_norm(y - x0), torch.linalg.vector_norm(f1 - f0)))
            dx, df = norms.double().tolist()
        if not (dx > 0 and math.isfinite(dx) and math.isfinite(df)):
            return None
        return df / dx

    def warn_if_stiff(self, y: torch.Tensor, dt: float, method: str) -> None:
        """A RuntimeWarning when ``dt * |df/dy| > STIFF_LIMIT`` (explicit methods blow up there)."""
        rate = self.drift_rate(y)
        if rate is None or not dt * rate > STIFF_LIMIT:
            return
        warnings.warn(
            f"{self._label}: the step dt = {dt:g} is far beyond the stability limit of the explicit method "
            f"{method!r}: {self._f_name} changes at a rate |df/dy| ~ {rate:.3g} (estimated on the first steps), so "
            f"dt * |df/dy| ~ {dt * rate:.3g} > {STIFF_LIMIT:g} (explicit methods are stable for about dt |df/dy| < 2) "
            f"and the solution may grow without bound. Use dt <= {2.0 / rate:.3g} (2 / rate), or adaptive steps",
            RuntimeWarning,
            stacklevel=4,
        )


def check_finite_start(y0: torch.Tensor, label: str, name: str = "y0") -> None:
    """A ValueError (one host sync) if ``y0`` holds NaN or inf: no solve can repair it."""
    if not bool(torch.isfinite(y0).all()):
        rows = y0.detach().reshape(y0.shape[0], -1) if y0.ndim > 1 else y0.detach().reshape(1, -1)
        bad = (~torch.isfinite(rows)).any(dim=1).nonzero().reshape(-1)[:5].tolist()
        where = f" (rows {bad} of {rows.shape[0]})" if y0.ndim > 1 else ""
        raise ValueError(f"{label}: {name} holds NaN or infinite values{where}; pass a finite initial state")


def check_finite_end(out: torch.Tensor, times: list[float], label: str, hint: str) -> None:
    """A FloatingPointError (one host sync) if the last output of a trajectory ``out`` is not finite
    (a ValueError naming y0 if the first output, ``y0`` itself, is not).

    A non-finite value propagates to the end of the solve, so the last output is enough to detect
    it; only then are the outputs searched for the first non-finite time (the failure path).
    """
    if bool(torch.isfinite(out[-1]).all()):
        return
    finite = torch.isfinite(out.detach()).reshape(out.shape[0], -1).all(dim=1)
    first = int((~finite).nonzero()[0, 0])
    if first == 0:
        check_finite_start(out[0], label)  # raises: y0 itself is not finite
    raise FloatingPointError(
        f"{label}: the solution became NaN or infinite (first at output {first}, t = {times[first]:g}). {hint}"
    )
