"""Any SDE or ODE object as a :class:`~sdeflow.sdes.SDE`: torchsde-style objects and plain functions.

torchsde's convention (Li et al. 2020, the ``torchsde`` package): an object with methods
``f(t, y)`` and ``g(t, y)``, attributes ``noise_type`` (diagonal, scalar, additive, general) and
``sde_type`` (ito, stratonovich); ``t`` is a 0-d tensor and ``g`` returns

=========  ========================  ================  ====================================
noise      torchsde ``g(t, y)``      Brownian motion   as an sdeflow SDE
=========  ========================  ================  ====================================
diagonal   ``(batch, d)``            ``(batch, d)``    diagonal, as it is
scalar     ``(batch, d, 1)``         ``(batch, 1)``    scalar, ``g`` squeezed to ``(batch, d)``
additive   ``(batch, d, m)``         ``(batch, m)``    general layout with ``additive = True``
general    ``(batch, d, m)``         ``(batch, m)``    general
=========  ========================  ================  ====================================
"""

from __future__ import annotations

from typing import Callable

import torch

from .base import CALCULI, NOISE_TYPES, SDE

__all__ = ["TorchsdeSDE", "ODEFunction", "as_sde"]


class _TensorTime:
    """Converts float times to 0-d tensors for user functions, caching the recent ones.

    A step evaluates the coefficients at a few stage times, the next step at the same or the next
    ones: a small cache makes the conversion (a few microseconds each) about once per time.
    """

    def __init__(self, like: torch.Tensor) -> None:
        self._dtype, self._device = like.dtype, like.device
        self._cache: dict[float, torch.Tensor] = {}
        self._pinned: dict[float, torch.Tensor] = {}

    def pin(self, times: list[float]) -> None:
        """Convert every time a fixed-step solve will use at once (one tensor, viewed per time)."""
        times = list(dict.fromkeys(times))
        if len(times) > 2**20:  # a huge grid: convert on the fly, memory stays small
            self._pinned = {}
            return
        values = torch.tensor(times, dtype=self._dtype, device=self._device).unbind(0)
        self._pinned = dict(zip(times, values))

    def __call__(self, t) -> torch.Tensor:
        if isinstance(t, torch.Tensor):
            return t
        hit = self._pinned.get(t)
        if hit is None:
            hit = self._cache.get(t)
        if hit is None:
            if len(self._cache) > 16:
                self._cache.clear()
            hit = self._cache[t] = torch.scalar_tensor(t, dtype=self._dtype, device=self._device)
        return hit


class TorchsdeSDE(SDE):
    """A torchsde-style SDE object seen as a sdeflow :class:`SDE` (the table in the module docstring).

    Args:
        sde: an object with ``f(t, y)``, ``g(t, y)``, ``noise_type`` and ``sde_type``.
        y0: the initial state ``(batch, d)`` (gives the time tensors' dtype and device, and ``m``).
        t0: the initial time (``g(t0, y0)`` is evaluated once for general and additive noise).
        names: torchsde's renaming of the methods, e.g. ``{"drift": "h", "diffusion": "g"}``.
    """

    def __init__(self, sde: object, y0: torch.Tensor, t0: float, names: dict[str, str] | None = None) -> None:
        names = dict(names or {})
        unknown = set(names) - {"drift", "diffusion"}
        if unknown:
            raise ValueError(f"names may rename 'drift' and 'diffusion' only; got keys {sorted(unknown)}")
        f_name, g_name = names.get("drift", "f"), names.get("diffusion", "g")
        f, g = getattr(sde, f_name, None), getattr(sde, g_name, None)
        if not callable(f) or not callable(g):
            raise TypeError(
                f"sde must be a sdeflow SDE or a torchsde-style object with methods {f_name}(t, y) and {g_name}(t, y); "
                f"{type(sde).__name__} lacks {f_name if not callable(f) else g_name}"
            )
        noise = getattr(sde, "noise_type", None)
        calc = getattr(sde, "sde_type", None)
        if noise not in NOISE_TYPES:
            raise ValueError(f"sde.noise_type must be one of {NOISE_TYPES}; got {noise!r}")
        if calc not in CALCULI:
            raise ValueError(f"sde.sde_type must be one of {CALCULI}; got {calc!r}")
        if y0.ndim != 2:
            raise ValueError(f"a torchsde-style SDE needs y0 of shape (batch, d); got shape {tuple(y0.shape)}")
        self.wrapped = sde
        self.names = (f_name, g_name)
        self.calculus = calc
        self.torchsde_noise_type = noise
        self._f, self._g = f, g
        self._time = _TensorTime(y0)
        self.noise_type = {"additive": "general"}.get(noise, noise)
        self.additive = noise == "additive"
        self._m = None
        if noise in ("additive", "general"):
            g0 = g(self._time(float(t0)), y0)
            if g0.ndim != 3 or g0.shape[:2] != y0.shape:
                raise ValueError(
                    f"sde.g must return (batch, d, m) = ({y0.shape[0]}, {y0.shape[1]}, m) for {noise} noise; "
                    f"got shape {tuple(g0.shape)}"
                )
            self._m = g0.shape[-1]
        # Per-step hot path: closures that convert the time once and call the user's f and g
        # directly (no method layers); they shadow the methods below.
        time_of = self._time
        self.drift = lambda t, x: f(time_of(t), x)
        if noise == "scalar":
            self.diffusion = lambda t, x: g(time_of(t), x).squeeze(-1)
        else:
            self.diffusion = lambda t, x: g(time_of(t), x)

    def prepare_times(self, times: list[float]) -> None:
        """The times a fixed-step solve will evaluate at, given before it starts (see :meth:`SDEMethod.init`):
        their 0-d tensors are made in one operation instead of one per step."""
        self._time.pin(times)

    def drift(self, t, x: torch.Tensor) -> torch.Tensor:
        return self._f(self._time(t), x)

    def diffusion(self, t, x: torch.Tensor) -> torch.Tensor:
        return self._g(self._time(t), x)

    def brownian_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        if self._m is not None:
            return (x.shape[0], self._m)
        return super().brownian_shape(x)


class ODEFunction(SDE):
    """An ODE ``dy/dt = func(t, y)`` (torchdiffeq's convention: ``t`` a 0-d tensor) as an :class:`SDE`."""

    noise_type = "additive"
    calculus = "ito"

    def __init__(self, func: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], y0: torch.Tensor) -> None:
        if not callable(func):
            raise TypeError(f"func must be a callable func(t, y) -> dy/dt; got {type(func).__name__}")
        self.func = func
        self._time = _TensorTime(y0)

    @property
    def is_ode(self) -> bool:
        return True

    def drift(self, t, x: torch.Tensor) -> torch.Tensor:
        return self.func(self._time(t), x)

    def diffusion(self, t, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def as_sde(sde: object, y0: torch.Tensor, t0: float, names: dict[str, str] | None = None) -> SDE:
    """A sdeflow SDE as it is, or a torchsde-style object wrapped in :class:`TorchsdeSDE`."""
    if isinstance(sde, SDE):
        if names:
            raise ValueError("names= renames the methods of a torchsde-style object; a sdeflow SDE has drift/diffusion")
        return sde
    return TorchsdeSDE(sde, y0, t0, names)
