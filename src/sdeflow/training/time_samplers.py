"""Training-time distributions of ``t``: uniform, EDM's log-normal, uniform in log-SNR (importance).

A sampler draws ``t`` in ``[t_lo, t_hi]`` (default ``[process.t_min, process.T]``) from an explicit
``torch.Generator``. Most samplers are part of the objective (EDM's log-normal defines, with its
weighting, the total weight ``w(t) p(t)``). An *importance* sampler instead only reduces variance:
the objective multiplies each sample by ``u(t) / p(t)`` (``u`` the uniform density on
``[t_lo, t_hi]``), so that the expected loss is the one of uniform ``t``.

* :class:`UniformTime`: ``t ~ U(t_lo, t_hi)``.
* :class:`LogNormalTime`: EDM (Karras et al. 2022, section 5): the noise level
  ``s = sigma/alpha = exp(P_mean + P_std z)``, ``z ~ N(0, 1)``, mapped to ``t`` by
  ``process.t_from_noise_level`` and clamped to ``[t_lo, t_hi]``; ``P_mean = -1.2``, ``P_std = 1.2``.
* :class:`LogSNRTime`: ``log_snr ~ U(log_snr(t_hi), log_snr(t_lo))``, ``t = t_from_log_snr``.
  Its density is ``p(t) = (-d log_snr/dt) / Delta = (g^2/sigma^2) / Delta`` with ``Delta`` the
  log-SNR range, proportional to the likelihood weighting: as an importance sampler
  (``importance=True``, the default) it makes the likelihood-weighted loss a constant times the
  noise error, the variance reduction of Song et al. (2021, section 5.1).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch

from .._utils import check_positive
from ._spec import from_spec

__all__ = ["TimeSampler", "UniformTime", "LogNormalTime", "LogSNRTime", "TIME_SAMPLERS", "get_time_sampler"]


@dataclass(frozen=True)
class TimeSampler(ABC):
    """Draws training times in ``[t_lo, t_hi]``; ``None`` bounds default to ``[process.t_min, process.T]``."""

    name: ClassVar[str] = ""
    importance: ClassVar[bool] = False

    t_lo: float | None = None
    t_hi: float | None = None

    def bounds(self, process) -> tuple[float, float]:
        """``(t_lo, t_hi)`` for ``process``, checked."""
        lo = float(process.t_min if self.t_lo is None else self.t_lo)
        hi = float(process.T if self.t_hi is None else self.t_hi)
        if not 0.0 <= lo < hi <= process.T * (1 + 1e-12):
            raise ValueError(
                f"training times need 0 <= t_lo < t_hi <= T = {process.T}; got t_lo={lo}, t_hi={hi} for {process!r}"
            )
        return lo, hi

    @abstractmethod
    def sample(self, process, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` times, float64 ``(n,)`` on the generator's device."""

    def importance_weight(self, process, t: torch.Tensor) -> torch.Tensor:
        """``u(t) / p(t)``, the factor making the expected loss that of uniform ``t`` (ones if not importance)."""
        return torch.ones_like(t)

    def config(self) -> dict[str, Any]:
        """``{"name": ..., **options}``; :func:`get_time_sampler` rebuilds it."""
        return {"name": self.name, **asdict(self)}

    @staticmethod
    def _uniform(n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.rand(n, generator=generator, dtype=torch.float64, device=generator.device)


@dataclass(frozen=True)
class UniformTime(TimeSampler):
    """``t ~ U(t_lo, t_hi)``."""

    name: ClassVar[str] = "uniform"

    def sample(self, process, n: int, generator: torch.Generator) -> torch.Tensor:
        lo, hi = self.bounds(process)
        return lo + (hi - lo) * self._uniform(n, generator)


@dataclass(frozen=True)
class LogNormalTime(TimeSampler):
    """EDM's ``log(sigma/alpha) ~ N(P_mean, P_std^2)``, mapped to ``t`` and clamped to ``[t_lo, t_hi]``."""

    name: ClassVar[str] = "lognormal"
    p_mean: float = -1.2
    p_std: float = 1.2

    def __post_init__(self) -> None:
        check_positive(self.p_std, "p_std")

    def sample(self, process, n: int, generator: torch.Generator) -> torch.Tensor:
        lo, hi = self.bounds(process)
        z = torch.randn(n, generator=generator, dtype=torch.float64, device=generator.device)
        t = process.t_from_noise_level(torch.exp(self.p_mean + self.p_std * z))
        return torch.clamp(t, lo, hi)


@dataclass(frozen=True)
class LogSNRTime(TimeSampler):
    """``log_snr`` uniform on its range over ``[t_lo, t_hi]``; an importance sampler by default.

    With ``importance=False`` it is a plain sampling density (no correction) instead.
    """

    name: ClassVar[str] = "logsnr"
    as_importance: bool = True

    @property
    def importance(self) -> bool:  # type: ignore[override]
        return self.as_importance

    def _range(self, process) -> tuple[float, float, float, float]:
        lo, hi = self.bounds(process)
        lam_hi, lam_lo = float(process.log_snr(lo)), float(process.log_snr(hi))
        if not (torch.isfinite(torch.tensor([lam_hi, lam_lo])).all()):
            raise ValueError(
                f"the log-SNR is infinite at t_lo={lo} or t_hi={hi} for {process!r} ({lam_hi}, {lam_lo}); "
                "give t_lo > 0 and a t_hi where alpha > 0 (e.g. t_hi=0.999 for the linear path)"
            )
        return lo, hi, lam_lo, lam_hi

    def sample(self, process, n: int, generator: torch.Generator) -> torch.Tensor:
        lo, hi, lam_lo, lam_hi = self._range(process)
        lam = lam_lo + (lam_hi - lam_lo) * self._uniform(n, generator)
        return torch.clamp(process.t_from_log_snr(lam), lo, hi)

    def importance_weight(self, process, t: torch.Tensor) -> torch.Tensor:
        if not self.as_importance:
            return torch.ones_like(t)
        lo, hi, lam_lo, lam_hi = self._range(process)
        # p(t) = (-d log_snr/dt) / (lam_hi - lam_lo) and -d log_snr/dt = g^2 / sigma^2.
        density = process.g2(t) / process.sigma(t) ** 2 / (lam_hi - lam_lo)
        return 1.0 / ((hi - lo) * density)


TIME_SAMPLERS: dict[str, type[TimeSampler]] = {cls.name: cls for cls in (UniformTime, LogNormalTime, LogSNRTime)}
"""Time samplers by name (``importance`` is ``LogSNRTime`` as an importance sampler)."""


def get_time_sampler(spec: "str | dict[str, Any] | TimeSampler", **options: Any) -> TimeSampler:
    """A sampler from a name (``uniform``, ``lognormal``, ``logsnr``, ``importance``), a config dict, or an object.

    ``importance`` is :class:`LogSNRTime` as an importance sampler; ``logsnr`` is the same density
    without the correction (unless ``as_importance=True`` is given).
    """
    if spec == "importance":
        spec, options = "logsnr", {"as_importance": True, **options}
    elif spec == "logsnr":
        options = {"as_importance": False, **options}
    return from_spec(spec, TIME_SAMPLERS, TimeSampler, "time sampler", options)
