"""The standard grid rules: uniform in t, Karras (rho), uniform in log-SNR, polynomial in t."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import TimeGrid, validate_ts

__all__ = ["UniformT", "Karras", "UniformLogSNR", "LogSNRFromT", "Polynomial", "ByStepCount", "GeometricBlend"]


def _finite(value: torch.Tensor, what: str, t: float, cls: str) -> None:
    if not bool(torch.isfinite(value).all()):
        raise ValueError(
            f"{cls} grid: the {what} is not finite at t_max = {t}; start the grid below T "
            f"(e.g. {cls}(t_max=0.999 * T)) or use UniformT"
        )


@dataclass(frozen=True)
class UniformT(TimeGrid):
    """Equal steps in ``t`` (DDIM's "linear" spacing; the usual rectified-flow grid)."""

    t_max: float | None = None
    t_min: float | None = None
    to_zero: bool = True
    final: str = "t_min"

    def _interior(self, process, t_max, t_min, n):
        return torch.linspace(t_max, t_min, n, dtype=torch.float64)

    def _spaced_to_zero(self, process, t_max, n):
        return torch.linspace(t_max, 0.0, n + 1, dtype=torch.float64)


@dataclass(frozen=True)
class Polynomial(TimeGrid):
    """``t_i = t_min + (t_max - t_min) (1 - i/(n-1))^power``; ``power = 2`` is DDIM's quadratic grid."""

    power: float = 2.0
    t_max: float | None = None
    t_min: float | None = None
    to_zero: bool = True

    def __post_init__(self) -> None:
        if not self.power > 0:
            raise ValueError(f"power must be > 0; got {self.power}")

    def _interior(self, process, t_max, t_min, n):
        u = torch.linspace(1.0, 0.0, n, dtype=torch.float64)
        return t_min + (t_max - t_min) * u**self.power


@dataclass(frozen=True)
class Karras(TimeGrid):
    """Karras et al. (2022), eq. 5: noise levels ``(s_max^(1/rho) + i/(n-1) (s_min^(1/rho) - s_max^(1/rho)))^rho``.

    The noise level is ``sigma/alpha``; times come back through :meth:`t_from_noise_level`, so the
    grid is the EDM grid on every process. ``rho = 7`` by default.
    """

    rho: float = 7.0
    t_max: float | None = None
    t_min: float | None = None
    to_zero: bool = True

    def __post_init__(self) -> None:
        if not self.rho > 0:
            raise ValueError(f"rho must be > 0; got {self.rho}")

    def _interior(self, process, t_max, t_min, n):
        s_max = process.noise_level(t_max)
        _finite(s_max, "noise level sigma/alpha", t_max, "Karras")
        s_min = process.noise_level(t_min)
        u = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
        inv = 1.0 / self.rho
        levels = (s_max**inv + u * (s_min**inv - s_max**inv)) ** self.rho
        return process.t_from_noise_level(levels)


@dataclass(frozen=True)
class UniformLogSNR(TimeGrid):
    """Equal steps in log-SNR (DPM-Solver's "logSNR" spacing)."""

    t_max: float | None = None
    t_min: float | None = None
    to_zero: bool = True

    def _interior(self, process, t_max, t_min, n):
        lam_lo = process.log_snr(t_max)
        _finite(lam_lo, "log-SNR", t_max, "UniformLogSNR")
        lam_hi = process.log_snr(t_min)
        lam = torch.linspace(float(lam_lo), float(lam_hi), n, dtype=torch.float64)
        return process.t_from_log_snr(lam)




@dataclass(frozen=True)
class LogSNRFromT(TimeGrid):
    """For a process whose log-SNR is infinite at ``t_max`` (rectified flow at ``T``): one step from ``t_max``
    to ``t_1 = t_max - (t_max - t_min) / (n - 1)``, then equal steps in log-SNR from ``t_1`` to ``t_min``
    (``n`` nodes down to ``t_min``). Where the log-SNR at ``t_max`` is finite it is :class:`UniformLogSNR`.

    A grid uniform in ``t`` spends its steps evenly in ``t`` and leaves the small noise levels, where a flow
    resolves fine structure, to a few long steps; this grid spaces them as the exponential integrators'
    log-SNR grid does, after the one step that log-SNR cannot take."""

    t_max: float | None = None
    t_min: float | None = None
    to_zero: bool = True

    def _interior(self, process, t_max, t_min, n):
        if bool(torch.isfinite(process.log_snr(t_max))):
            return UniformLogSNR()._interior(process, t_max, t_min, n)
        if n < 3:
            return torch.linspace(t_max, t_min, n, dtype=torch.float64)
        t1 = t_max - (t_max - t_min) / (n - 1)
        rest = UniformLogSNR()._interior(process, t1, t_min, n - 1)
        return torch.cat([torch.tensor([t_max], dtype=torch.float64), rest])


@dataclass(frozen=True)
class UniformVPTime(TimeGrid):
    """Equal steps in the time of the DDPM schedule (VP, beta linear from 0.1 to 20), on any process.

    The noise levels ``rho = sigma/alpha`` are those of a grid uniform in ``t`` on the VP process of
    Ho et al. and Song et al. (diffusers' default "linspace"/"trailing" spacing of a 1000-step linear
    beta table), between this process's noise levels at ``t_max`` and ``t_min``, then mapped to this
    process's times. In log-SNR its steps are long at high noise, shortest around noise level 1 and
    long again at the end: it spends few steps where the ODE is nearly linear (high noise) and on the
    final approach, which suits a handful of steps; with many steps a grid uniform in log-SNR resolves
    fine structure better (``docs/samplers.md``, "The default configuration").
    """

    t_max: float | None = None
    t_min: float | None = None
    to_zero: bool = True
    final: str = "spacing"

    def _interior(self, process, t_max, t_min, n):
        rho_hi, rho_lo = process.noise_level(t_max), process.noise_level(t_min)
        return self._map(process, t_max, rho_hi, float(self._vp().t_from_noise_level(rho_lo)), n, rho_lo)

    def _spaced_to_zero(self, process, t_max, n):
        ts = self._map(process, t_max, process.noise_level(t_max), 0.0, n + 1, None)
        ts[-1] = 0.0
        return ts

    @staticmethod
    def _vp():
        from ..processes import VP

        return VP()

    def _map(self, process, t_max, rho_hi, u_lo, n, rho_lo):
        """``n`` times of this process at the noise levels of VP times uniform from ``rho_hi``'s to ``u_lo``."""
        _finite(rho_hi, "noise level", t_max, "UniformVPTime")
        vp = self._vp()
        u = torch.linspace(float(vp.t_from_noise_level(rho_hi)), u_lo, n, dtype=torch.float64)
        levels = vp.noise_level(u)
        levels[0] = rho_hi
        if rho_lo is not None:
            levels[-1] = rho_lo
        else:
            levels = levels[:-1]  # the last VP time is 0 (noise level 0): t = 0, set by the caller
            return torch.cat([process.t_from_noise_level(levels), torch.zeros(1, dtype=torch.float64)])
        return process.t_from_noise_level(levels)


@dataclass(frozen=True)
class ByStepCount(TimeGrid):
    """The grid ``few`` for up to ``max_few`` steps and ``many`` above: a budget-aware rule.

    ``sdeflow.sample``'s default for the one-call multistep exponential integrators is
    ``ByStepCount(UniformVPTime(), UniformLogSNR(), 10)`` (``docs/samplers.md``, "The default configuration").
    """

    few: TimeGrid = None
    many: TimeGrid = None
    max_few: int = 10

    def __post_init__(self) -> None:
        for name in ("few", "many"):
            if not isinstance(getattr(self, name), TimeGrid):
                raise TypeError(f"{name} must be a TimeGrid; got {getattr(self, name)!r}")
        if not isinstance(self.max_few, int) or isinstance(self.max_few, bool) or self.max_few < 1:
            raise ValueError(f"max_few must be a positive int; got {self.max_few!r}")

    def pick(self, steps: int) -> TimeGrid:
        """The grid used for ``steps`` steps."""
        return self.few if steps <= self.max_few else self.many

    @property
    def t_max(self):  # type: ignore[override]
        return self.few.t_max if self.few.t_max == self.many.t_max else None

    def _interior(self, process, t_max, t_min, n):
        return self.pick(n - 1)._interior(process, t_max, t_min, n)

    def __call__(self, process, steps: int) -> torch.Tensor:
        return self.pick(steps)(process, steps)


@dataclass(frozen=True)
class GeometricBlend(TimeGrid):
    """Two grids mixed node by node in log noise level: ``rho_i = rho_a,i^(1-w) rho_b,i^w``.

    Both grids are built for the same number of steps; the blend keeps ``a``'s first and last times
    and mixes the interior noise levels (every interior time of both must have a finite, positive
    noise level). ``GeometricBlend(UniformVPTime(), UniformLogSNR(), 0.5)`` lies halfway between the
    DDPM schedule's grid (long steps at high noise and a long last step) and the log-SNR grid.
    """

    a: TimeGrid = None
    b: TimeGrid = None
    w: float = 0.5

    def __post_init__(self) -> None:
        for name in ("a", "b"):
            if not isinstance(getattr(self, name), TimeGrid):
                raise TypeError(f"{name} must be a TimeGrid; got {getattr(self, name)!r}")
        if not isinstance(self.w, (int, float)) or isinstance(self.w, bool) or not 0.0 <= float(self.w) <= 1.0:
            raise ValueError(f"w must be a number in [0, 1]; got {self.w!r}")

    @property
    def t_max(self):  # type: ignore[override]
        return self.a.t_max

    def _interior(self, process, t_max, t_min, n):
        return self(process, n - 1)

    def __call__(self, process, steps: int) -> torch.Tensor:
        ta, tb = self.a(process, steps), self.b(process, steps)
        if ta.numel() != tb.numel() or steps < 2:
            return ta
        ra, rb = process.noise_level(ta[1:-1]), process.noise_level(tb[1:-1])
        w = float(self.w)
        rho = torch.exp((1.0 - w) * torch.log(ra) + w * torch.log(rb))
        ts = torch.cat([ta[:1], process.t_from_noise_level(rho), ta[-1:]])
        return validate_ts(ts, process, name="GeometricBlend grid")
