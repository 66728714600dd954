"""Variance-exploding, EDM, cosine and linear (rectified-flow) processes."""

from __future__ import annotations

import math
from typing import Any

import torch

from .._utils import Time, as_time, check_positive, expm1, log1p, sigmoid, softplus
from .base import DiffusionProcess

__all__ = ["VE", "EDM", "Cosine", "Linear"]


class VE(DiffusionProcess):
    """The variance-exploding SDE of SMLD / Song et al. (2021) started exactly at the data.

    ``dx = sqrt(d[s^2]/dt) dW`` with ``s(t) = sigma_min (sigma_max/sigma_min)^t``; started at ``x0``
    the marginal has ``alpha = 1`` and ``sigma(t)^2 = s(t)^2 - sigma_min^2`` (so ``sigma(0) = 0``,
    data at ``t = 0``). ``t_min`` is where ``sigma = sigma_min``; ``T = 1``.
    """

    name = "ve"
    formula = "alpha = 1, sigma^2 = s(t)^2 - s(0)^2, s(t) = 0.01 (50/0.01)^t"

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0, T: float = 1.0) -> None:
        self.sigma_min = check_positive(sigma_min, "sigma_min")
        self.sigma_max = check_positive(sigma_max, "sigma_max")
        if sigma_max <= sigma_min:
            raise ValueError(f"sigma_max must be > sigma_min; got sigma_min={sigma_min}, sigma_max={sigma_max}")
        self.T = check_positive(T, "T")
        self._log_ratio = math.log(sigma_max / sigma_min) / self.T
        self.t_min = math.log(2.0) / (2.0 * self._log_ratio)

    def config(self) -> dict[str, Any]:
        return {"sigma_min": self.sigma_min, "sigma_max": self.sigma_max, "T": self.T}

    def alpha(self, t: Time) -> torch.Tensor:
        return torch.ones_like(as_time(t))

    def d_alpha(self, t: Time) -> torch.Tensor:
        return torch.zeros_like(as_time(t))

    def f(self, t: Time) -> torch.Tensor:
        return torch.zeros_like(as_time(t))

    def sigma(self, t: Time) -> torch.Tensor:
        return self.sigma_min * torch.sqrt(expm1(2.0 * self._log_ratio * as_time(t)))

    def d_sigma(self, t: Time) -> torch.Tensor:
        t = as_time(t)
        return self.sigma_min**2 * self._log_ratio * torch.exp(2.0 * self._log_ratio * t) / self.sigma(t)

    def g2(self, t: Time) -> torch.Tensor:
        return 2.0 * self._log_ratio * self.sigma_min**2 * torch.exp(2.0 * self._log_ratio * as_time(t))

    def log_snr(self, t: Time) -> torch.Tensor:
        return -2.0 * math.log(self.sigma_min) - torch.log(expm1(2.0 * self._log_ratio * as_time(t)))

    def t_from_log_snr(self, log_snr: Time) -> torch.Tensor:
        lam = as_time(log_snr)
        return log1p(torch.exp(-lam) / self.sigma_min**2) / (2.0 * self._log_ratio)


class EDM(DiffusionProcess):
    """The process of Karras et al. (2022): ``alpha = 1``, ``sigma = t``; ``t`` is the noise level.

    Defaults ``sigma_min = 0.002`` (``t_min``) and ``sigma_max = 80`` (``T``). ``g^2 = 2 t``.
    """

    name = "edm"
    formula = "alpha = 1, sigma = t (t is the noise level, 0.002 -> 80)"

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0) -> None:
        self.t_min = check_positive(sigma_min, "sigma_min")
        self.T = check_positive(sigma_max, "sigma_max")
        if self.T <= self.t_min:
            raise ValueError(f"sigma_max must be > sigma_min; got sigma_min={sigma_min}, sigma_max={sigma_max}")

    @property
    def sigma_min(self) -> float:
        return self.t_min

    @property
    def sigma_max(self) -> float:
        return self.T

    def config(self) -> dict[str, Any]:
        return {"sigma_min": self.t_min, "sigma_max": self.T}

    def alpha(self, t: Time) -> torch.Tensor:
        return torch.ones_like(as_time(t))

    def d_alpha(self, t: Time) -> torch.Tensor:
        return torch.zeros_like(as_time(t))

    def f(self, t: Time) -> torch.Tensor:
        return torch.zeros_like(as_time(t))

    def sigma(self, t: Time) -> torch.Tensor:
        return as_time(t).clone()

    def d_sigma(self, t: Time) -> torch.Tensor:
        return torch.ones_like(as_time(t))

    def g2(self, t: Time) -> torch.Tensor:
        return 2.0 * as_time(t)

    def log_snr(self, t: Time) -> torch.Tensor:
        return -2.0 * torch.log(as_time(t))

    def t_from_log_snr(self, log_snr: Time) -> torch.Tensor:
        return torch.exp(-0.5 * as_time(log_snr))


class Cosine(DiffusionProcess):
    """The cosine schedule of Nichol & Dhariwal (2021, iDDPM) in continuous time.

    ``alpha(t) = cos(pi/2 (t+s)/(1+s)) / cos(pi/2 s/(1+s))``, ``sigma = sqrt(1 - alpha^2)``,
    ``s = 0.008``. ``alpha`` vanishes at ``t = 1``, so ``T = 0.9946`` by default, as in DPM-Solver
    (Lu et al. 2022), where the log-SNR is still finite.
    """

    name = "cosine"
    formula = "alpha = cos(pi/2 (t+s)/(1+s)) / cos(pi/2 s/(1+s)), sigma = sqrt(1 - alpha^2)"

    def __init__(self, s: float = 0.008, T: float = 0.9946, t_min: float = 1e-3) -> None:
        self.s = check_positive(s, "s")
        self.T = check_positive(T, "T")
        if self.T >= 1.0:
            raise ValueError(f"T must be < 1 (alpha(1) = 0 for the cosine schedule); got T={T}")
        self.t_min = check_positive(t_min, "t_min")
        if self.t_min >= self.T:
            raise ValueError(f"t_min must be < T; got t_min={t_min}, T={T}")
        self._log_c0 = math.log(math.cos(0.5 * math.pi * s / (1.0 + s)))

    def config(self) -> dict[str, Any]:
        return {"s": self.s, "T": self.T, "t_min": self.t_min}

    def _angle(self, t: Time) -> torch.Tensor:
        return 0.5 * math.pi * (as_time(t) + self.s) / (1.0 + self.s)

    def log_alpha(self, t: Time) -> torch.Tensor:
        # Clamped at 0: round-off must not make alpha(0) exceed 1 (sigma(0) would be NaN).
        return torch.clamp(torch.log(torch.cos(self._angle(t))) - self._log_c0, max=0.0)

    def alpha(self, t: Time) -> torch.Tensor:
        return torch.exp(self.log_alpha(t))

    def sigma(self, t: Time) -> torch.Tensor:
        return torch.sqrt(-expm1(2.0 * self.log_alpha(t)))

    def f(self, t: Time) -> torch.Tensor:
        return -0.5 * math.pi / (1.0 + self.s) * torch.tan(self._angle(t))

    def d_alpha(self, t: Time) -> torch.Tensor:
        return self.f(t) * self.alpha(t)

    def d_sigma(self, t: Time) -> torch.Tensor:
        t = as_time(t)
        a = self.alpha(t)
        return -a * a * self.f(t) / self.sigma(t)

    def g2(self, t: Time) -> torch.Tensor:
        # Variance preserving (alpha^2 + sigma^2 = 1): g^2 = -2 f, finite at t = 0 where d_sigma is not.
        return -2.0 * self.f(t)

    def log_snr(self, t: Time) -> torch.Tensor:
        la = self.log_alpha(t)
        return 2.0 * la - torch.log(-expm1(2.0 * la))

    def t_from_log_snr(self, log_snr: Time) -> torch.Tensor:
        # alpha^2 = sigmoid(lambda); cos(angle) = alpha * cos(angle(0)).
        lam = as_time(log_snr)
        log_alpha = -0.5 * softplus(-lam)
        angle = torch.arccos(torch.exp(log_alpha + self._log_c0))
        return angle * 2.0 * (1.0 + self.s) / math.pi - self.s


class Linear(DiffusionProcess):
    """The linear interpolant of rectified flow (Liu et al. 2023) / flow matching (Lipman et al. 2023).

    ``alpha = 1 - t``, ``sigma = t`` on ``[0, 1]``. Flow-matching papers put data at ``t = 1``; their
    time is ``1 - t`` here. At ``t = 1`` the log-SNR is ``-inf`` and ``f = -1/(1-t)`` diverges:
    deterministic samplers may start at ``T = 1`` with a velocity, x0 or v model; stochastic ones and
    eps/score models need a grid that starts below 1 (e.g. ``t_max = 0.999``).
    """

    name = "linear"
    formula = "alpha = 1 - t, sigma = t (rectified flow; flow matching's time is 1 - t)"

    def __init__(self, T: float = 1.0, t_min: float = 1e-3) -> None:
        self.T = check_positive(T, "T")
        if self.T > 1.0:
            raise ValueError(f"T must be <= 1 for the linear interpolant; got T={T}")
        self.t_min = check_positive(t_min, "t_min")
        if self.t_min >= self.T:
            raise ValueError(f"t_min must be < T; got t_min={t_min}, T={T}")

    def config(self) -> dict[str, Any]:
        return {"T": self.T, "t_min": self.t_min}

    def alpha(self, t: Time) -> torch.Tensor:
        return 1.0 - as_time(t)

    def sigma(self, t: Time) -> torch.Tensor:
        return as_time(t).clone()

    def d_alpha(self, t: Time) -> torch.Tensor:
        return -torch.ones_like(as_time(t))

    def d_sigma(self, t: Time) -> torch.Tensor:
        return torch.ones_like(as_time(t))

    def log_snr(self, t: Time) -> torch.Tensor:
        t = as_time(t)
        return 2.0 * (log1p(-t) - torch.log(t))

    def t_from_log_snr(self, log_snr: Time) -> torch.Tensor:
        # (1-t)/t = e^{lambda/2}  =>  t = sigmoid(-lambda/2).
        return sigmoid(-0.5 * as_time(log_snr))
