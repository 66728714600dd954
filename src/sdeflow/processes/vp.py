"""Variance-preserving processes: the continuous VP SDE and discrete DDPM tables."""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from .._utils import Time, as_time, check_positive, expm1, log1p, sigmoid, softplus
from .base import DiffusionProcess

__all__ = ["VP", "SubVP", "DiscreteVP"]


class _LinearBeta(DiffusionProcess):
    """Shared linear-beta integral ``B(t) = int_0^t beta = beta_min t + (beta_max - beta_min) t^2 / 2``."""

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, T: float = 1.0, t_min: float = 1e-3) -> None:
        self.beta_min = check_positive(beta_min, "beta_min")
        self.beta_max = check_positive(beta_max, "beta_max")
        if self.beta_max < self.beta_min:
            raise ValueError(f"beta_max must be >= beta_min; got beta_min={beta_min}, beta_max={beta_max}")
        self.T = check_positive(T, "T")
        self.t_min = check_positive(t_min, "t_min")
        if self.t_min >= self.T:
            raise ValueError(f"t_min must be < T; got t_min={t_min}, T={T}")

    def config(self) -> dict[str, Any]:
        return {"beta_min": self.beta_min, "beta_max": self.beta_max, "T": self.T, "t_min": self.t_min}

    def beta(self, t: Time) -> torch.Tensor:
        """The noise rate ``beta(t) = beta_min + t (beta_max - beta_min)``."""
        return self.beta_min + as_time(t) * (self.beta_max - self.beta_min)

    def beta_integral(self, t: Time) -> torch.Tensor:
        """``B(t) = int_0^t beta(s) ds``."""
        t = as_time(t)
        return t * (self.beta_min + 0.5 * (self.beta_max - self.beta_min) * t)

    def t_from_beta_integral(self, b: torch.Tensor) -> torch.Tensor:
        """Inverse of ``B``: the positive root of ``(db/2) t^2 + beta_min t - b = 0`` in a stable form."""
        db = self.beta_max - self.beta_min
        return 2.0 * b / (self.beta_min + torch.sqrt(self.beta_min**2 + 2.0 * db * b))

    def alpha(self, t: Time) -> torch.Tensor:
        return torch.exp(-0.5 * self.beta_integral(t))

    def d_alpha(self, t: Time) -> torch.Tensor:
        return -0.5 * self.beta(t) * self.alpha(t)

    def f(self, t: Time) -> torch.Tensor:
        return -0.5 * self.beta(t)


class VP(_LinearBeta):
    """The variance-preserving SDE of Song et al. (2021), the continuous limit of DDPM.

    ``dx = -beta(t)/2 x dt + sqrt(beta(t)) dW`` with ``beta(t) = beta_min + t (beta_max - beta_min)``:
    ``alpha = exp(-B(t)/2)``, ``sigma = sqrt(1 - alpha^2)``, ``log_snr = -log(expm1(B))``.
    Defaults ``beta_min = 0.1``, ``beta_max = 20``, ``T = 1``, ``t_min = 1e-3``.
    Use :meth:`from_betas` / :meth:`from_alphas_cumprod` to serve a model trained on a discrete table.
    """

    name = "vp"
    formula = "alpha = exp(-B(t)/2), sigma = sqrt(1 - alpha^2), B = int_0^t beta, beta linear 0.1 -> 20"

    def sigma(self, t: Time) -> torch.Tensor:
        return torch.sqrt(-expm1(-self.beta_integral(t)))

    def d_sigma(self, t: Time) -> torch.Tensor:
        t = as_time(t)
        a = self.alpha(t)
        return 0.5 * self.beta(t) * a * a / self.sigma(t)

    def g2(self, t: Time) -> torch.Tensor:
        return self.beta(t)

    def log_snr(self, t: Time) -> torch.Tensor:
        return -torch.log(expm1(self.beta_integral(t)))

    def t_from_log_snr(self, log_snr: Time) -> torch.Tensor:
        # alpha^2/sigma^2 = 1/(e^B - 1) = e^lambda  =>  B = log(1 + e^-lambda) = softplus(-lambda).
        return self.t_from_beta_integral(softplus(-as_time(log_snr)))

    @staticmethod
    def from_betas(betas: Sequence[float] | torch.Tensor) -> "DiscreteVP":
        """A :class:`DiscreteVP` from a DDPM beta table ``beta_1..beta_N``."""
        b = torch.as_tensor(betas, dtype=torch.float64)
        return DiscreteVP(torch.cumprod(1.0 - b, 0))

    @staticmethod
    def from_alphas_cumprod(alphas_cumprod: Sequence[float] | torch.Tensor) -> "DiscreteVP":
        """A :class:`DiscreteVP` from a DDPM ``alphas_cumprod`` table (``alpha_bar_1..alpha_bar_N``)."""
        return DiscreteVP(alphas_cumprod)


class SubVP(_LinearBeta):
    """The sub-VP SDE of Song et al. (2021): ``alpha = exp(-B/2)``, ``sigma = 1 - exp(-B)``.

    Its marginal variance is below the VP one at every ``t``; ``g^2 = beta (1 - exp(-2B))``.
    """

    name = "subvp"
    formula = "alpha = exp(-B(t)/2), sigma = 1 - exp(-B(t))"

    def sigma(self, t: Time) -> torch.Tensor:
        return -expm1(-self.beta_integral(t))

    def d_sigma(self, t: Time) -> torch.Tensor:
        return self.beta(t) * torch.exp(-self.beta_integral(t))

    def log_snr(self, t: Time) -> torch.Tensor:
        b = self.beta_integral(t)
        return -b - 2.0 * torch.log(-expm1(-b))

    def t_from_log_snr(self, log_snr: Time) -> torch.Tensor:
        # u = alpha = e^{-B/2} solves u / (1 - u^2) = e^{lambda/2}: u = 2 e^{l/2} / (1 + sqrt(1 + 4 e^l)).
        lam = as_time(log_snr)
        log_u = math.log(2.0) + 0.5 * lam - log1p(torch.sqrt(1.0 + 4.0 * torch.exp(lam)))
        return self.t_from_beta_integral(-2.0 * log_u)


class DiscreteVP(DiffusionProcess):
    """A DDPM process given by its table ``alpha_bar_n``, ``n = 1..N``, served exactly.

    Following DPM-Solver (Lu et al. 2022, appendix), table entry ``n`` sits at time ``t_n = n / N``
    and ``log alpha(t)`` is interpolated linearly between the knots, with ``alpha(0) = 1`` at the
    extra knot ``t = 0``. At a knot the process equals the table exactly; a model trained with
    integer indices ``0..N-1`` is called with :meth:`model_index` ``(t) = N t - 1``.
    ``T = 1``; ``t_min = 1/N`` (the first table entry).
    """

    name = "discrete_vp"
    formula = "alpha^2 = alpha_bar_n at t = n/N (DDPM table), log alpha linear between"

    def __init__(self, alphas_cumprod: Sequence[float] | torch.Tensor) -> None:
        ac = torch.as_tensor(alphas_cumprod, dtype=torch.float64).reshape(-1)
        if ac.numel() < 2:
            raise ValueError(f"alphas_cumprod must have at least 2 entries; got {ac.numel()}")
        if not bool(((ac > 0) & (ac < 1)).all()):
            raise ValueError("alphas_cumprod must lie strictly between 0 and 1")
        if not bool((ac[1:] < ac[:-1]).all()):
            raise ValueError("alphas_cumprod must be strictly decreasing")
        self.alphas_cumprod = ac
        self.N = int(ac.numel())
        self.T = 1.0
        self.t_min = 1.0 / self.N
        self._knots_t = torch.linspace(0.0, 1.0, self.N + 1, dtype=torch.float64)
        self._knots_log_alpha = torch.cat([torch.zeros(1, dtype=torch.float64), 0.5 * torch.log(ac)])

    def config(self) -> dict[str, Any]:
        return {"alphas_cumprod": self.alphas_cumprod.tolist()}

    @classmethod
    def linear(cls, n: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> "DiscreteVP":
        """The DDPM table of Ho et al. (2020): betas linear from ``beta_start`` to ``beta_end``."""
        return VP.from_betas(torch.linspace(beta_start, beta_end, n, dtype=torch.float64))

    def _segment(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.clamp(torch.floor(t * self.N).to(torch.int64), 0, self.N - 1)
        kt = self._knots_t.to(t.device)
        ka = self._knots_log_alpha.to(t.device)
        slope = (ka[idx + 1] - ka[idx]) * self.N
        return ka[idx] + slope * (t - kt[idx]), slope

    def log_alpha(self, t: Time) -> torch.Tensor:
        """``log alpha(t)``, piecewise linear in ``t`` between knots."""
        return self._segment(as_time(t))[0]

    def alpha(self, t: Time) -> torch.Tensor:
        return torch.exp(self.log_alpha(t))

    def sigma(self, t: Time) -> torch.Tensor:
        return torch.sqrt(-expm1(2.0 * self.log_alpha(t)))

    def d_alpha(self, t: Time) -> torch.Tensor:
        la, slope = self._segment(as_time(t))
        return slope * torch.exp(la)

    def d_sigma(self, t: Time) -> torch.Tensor:
        la, slope = self._segment(as_time(t))
        return -slope * torch.exp(2.0 * la) / torch.sqrt(-expm1(2.0 * la))

    def f(self, t: Time) -> torch.Tensor:
        return self._segment(as_time(t))[1]

    def g2(self, t: Time) -> torch.Tensor:
        # Variance preserving: g^2 = -2 f (finite at t = 0, where d_sigma is not).
        return -2.0 * self.f(t)

    def log_snr(self, t: Time) -> torch.Tensor:
        la = self.log_alpha(t)
        return 2.0 * la - torch.log(-expm1(2.0 * la))

    def t_from_log_snr(self, log_snr: Time) -> torch.Tensor:
        # alpha^2 = sigmoid(lambda): log alpha = -softplus(-lambda)/2, then invert the linear piece.
        lam = as_time(log_snr)
        la = -0.5 * softplus(-lam)
        ka = self._knots_log_alpha.to(lam.device)
        # ka is decreasing; find the segment [k, k+1] with ka[k] >= la >= ka[k+1].
        idx = torch.searchsorted(-ka, -la.reshape(-1).contiguous(), right=True).reshape(la.shape) - 1
        idx = torch.clamp(idx, 0, self.N - 1)
        slope = (ka[idx + 1] - ka[idx]) * self.N
        t = self._knots_t.to(lam.device)[idx] + (la - ka[idx]) / slope
        return torch.clamp(t, 0.0, self.T)

    def model_index(self, t: Time) -> torch.Tensor:
        """The (continuous) discrete index ``N t - 1`` at which a DDPM-trained model is evaluated."""
        return as_time(t) * self.N - 1.0

    def time_from_index(self, index: Time | Sequence[float]) -> torch.Tensor:
        """The time ``t = (n + 1) / N`` of a DDPM index ``n`` (the inverse of :meth:`model_index`).

        ``index`` is a number, a sequence or a tensor of (possibly fractional) indices in ``[-1, N - 1]``,
        e.g. a diffusers scheduler's ``timesteps``; returns float64 times of the same shape. Index ``-1``
        is ``t = 0`` (the data), index ``N - 1`` is ``t = T = 1``. At an integer index the process equals
        the table entry exactly, so a grid ``time_from_index(timesteps)`` reproduces the schedule.
        """
        if isinstance(index, torch.Tensor):
            if index.dtype == torch.bool or index.is_complex():
                raise TypeError(f"index must be a real number or tensor of indices; got dtype {index.dtype}")
            n = index.detach().to(dtype=torch.float64, device="cpu" if index.device.type == "mps" else index.device)
        else:
            try:
                n = torch.as_tensor(index, dtype=torch.float64)
            except (TypeError, ValueError, RuntimeError) as err:
                raise TypeError(f"index must be a number, a sequence of numbers or a tensor; got {index!r}") from err
        if n.numel() and not bool(((n >= -1.0) & (n <= self.N - 1)).all()):
            raise ValueError(f"index must lie in [-1, {self.N - 1}] (the table has N = {self.N} entries); "
                             f"got values from {float(n.min()):g} to {float(n.max()):g}")
        return (n + 1.0) / self.N

    def __repr__(self) -> str:
        return f"DiscreteVP(N={self.N})"
