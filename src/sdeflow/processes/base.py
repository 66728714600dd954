"""The forward noising process as a Gaussian path, and everything derived from it once.

A process is ``x_t = alpha(t) * x0 + sigma(t) * eps`` with ``eps ~ N(0, I)``, data at ``t = 0``
and noise at ``t = T``. A subclass implements ``alpha`` and ``sigma`` (and, where closed forms are
cheap, their derivatives, the log-SNR and its exact inverse); this base class derives the rest:

* ``log_snr(t) = log(alpha^2 / sigma^2)`` (the full log-SNR) and its inverse ``t_from_log_snr``
  (bisection when no closed form is given),
* the drift coefficient ``f(t) = d_alpha / alpha`` and the squared diffusion
  ``g^2(t) = d(sigma^2)/dt - 2 f sigma^2`` of the forward SDE ``dx = f x dt + g dW``
  (Song et al. 2021, eq. 5; Kingma et al. 2021, appendix),
* marginal and prior sampling, the prior log-density,
* the forward SDE, the reverse-time SDE with a stochasticity knob and the probability-flow ODE
  as SDE objects that any general solver integrates (see :mod:`sdeflow.sdes`).
"""

from __future__ import annotations

import math
import numbers
import operator
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch

from .._utils import Time, as_time, check_state, expand_to
from ..noise.rng import randn

__all__ = ["DiffusionProcess"]


def _check_shape(shape: object) -> tuple[int, ...]:
    """A sample shape ``(batch, *event_shape)`` of non-negative integers."""
    try:
        if isinstance(shape, (str, bytes)) or any(isinstance(n, bool) for n in shape):  # type: ignore[union-attr]
            raise TypeError
        out = tuple(operator.index(n) for n in shape)  # type: ignore[union-attr]
    except TypeError:
        out = ()
    if not out or any(n < 0 for n in out):
        raise ValueError(f"shape must be (batch, *event_shape), a tuple of integers >= 0 such as (16, 2); got {shape!r}")
    return out


class DiffusionProcess(ABC):
    """Base class of forward processes ``x_t = alpha(t) x0 + sigma(t) eps`` on ``t in [0, T]``.

    Every coefficient method takes a time ``t`` (float, 0-d or ``(batch,)`` tensor) and returns a
    float64 tensor of the same shape. Coefficients are computed in float64 and cast by the caller
    (:func:`sdeflow._utils.expand_to`).

    Attributes:
        T: the end of the process (pure noise, up to ``alpha(T)``).
        t_min: the smallest positive time of default sampling grids; grids go
            ``T -> ... -> t_min -> 0`` with a final step to the data.
    """

    name: ClassVar[str] = "process"
    formula: ClassVar[str] = ""
    T: float = 1.0
    t_min: float = 1e-3

    # ------------------------------------------------------------------ implemented by subclasses
    @abstractmethod
    def alpha(self, t: Time) -> torch.Tensor:
        """Signal coefficient ``alpha(t)``; ``alpha(0) = 1``, non-increasing."""

    @abstractmethod
    def sigma(self, t: Time) -> torch.Tensor:
        """Noise standard deviation ``sigma(t)``; ``sigma(0) = 0``, increasing."""

    def config(self) -> dict[str, Any]:
        """The constructor arguments, so that ``type(p)(**p.config())`` rebuilds ``p``."""
        return {}

    # ------------------------------------------------------------------ derivatives (autograd default)
    def _autograd(self, fn, t: Time) -> torch.Tensor:
        t64 = as_time(t).detach().clone().requires_grad_(True)
        with torch.enable_grad():
            y = fn(t64)
            if not y.requires_grad:  # a coefficient that does not depend on t
                return torch.zeros_like(t64).detach()
            (dy,) = torch.autograd.grad(y.sum(), t64)
        return dy.detach()

    def d_alpha(self, t: Time) -> torch.Tensor:
        """Time derivative of ``alpha`` (autograd in float64 unless a subclass gives it)."""
        return self._autograd(self.alpha, t)

    def d_sigma(self, t: Time) -> torch.Tensor:
        """Time derivative of ``sigma`` (autograd in float64 unless a subclass gives it)."""
        return self._autograd(self.sigma, t)

    # ------------------------------------------------------------------ log-SNR
    def log_snr(self, t: Time) -> torch.Tensor:
        """The full log signal-to-noise ratio ``lambda(t) = log(alpha^2 / sigma^2)``, decreasing in t."""
        t = as_time(t)
        return 2.0 * (torch.log(self.alpha(t)) - torch.log(self.sigma(t)))

    def t_from_log_snr(self, log_snr: Time) -> torch.Tensor:
        """Inverse of :meth:`log_snr` on ``[0, T]``.

        The default is a vectorized bisection in float64 (100 halvings, exact to round-off);
        subclasses with a closed form override it. Values outside the process's range of log-SNR
        are clamped to ``0`` or ``T``.
        """
        lam = as_time(log_snr)
        lo = torch.zeros_like(lam)
        hi = torch.full_like(lam, self.T)
        for _ in range(100):
            mid = 0.5 * (lo + hi)
            # log_snr is decreasing: a larger value than asked means mid is too early.
            too_early = self.log_snr(mid) > lam
            lo = torch.where(too_early, mid, lo)
            hi = torch.where(too_early, hi, mid)
        return 0.5 * (lo + hi)

    def noise_level(self, t: Time) -> torch.Tensor:
        """The EDM/VE noise level ``sigma(t) / alpha(t)`` (``exp(-log_snr / 2)``)."""
        t = as_time(t)
        return self.sigma(t) / self.alpha(t)

    def t_from_noise_level(self, noise_level: Time) -> torch.Tensor:
        """Inverse of :meth:`noise_level`."""
        return self.t_from_log_snr(-2.0 * torch.log(as_time(noise_level)))

    # ------------------------------------------------------------------ SDE coefficients
    def f(self, t: Time) -> torch.Tensor:
        """Drift coefficient of the forward SDE ``dx = f(t) x dt + g(t) dW``: ``d_alpha / alpha``."""
        t = as_time(t)
        return self.d_alpha(t) / self.alpha(t)

    def g2(self, t: Time) -> torch.Tensor:
        """Squared diffusion of the forward SDE: ``g^2 = d(sigma^2)/dt - 2 f sigma^2``."""
        t = as_time(t)
        sigma = self.sigma(t)
        return 2.0 * sigma * (self.d_sigma(t) - self.f(t) * sigma)

    def g(self, t: Time) -> torch.Tensor:
        """Diffusion coefficient of the forward SDE, ``sqrt(g^2)``."""
        return torch.sqrt(torch.clamp(self.g2(t), min=0.0))

    # ------------------------------------------------------------------ sampling and densities
    def marginal(self, x0: torch.Tensor, t: Time, eps: torch.Tensor) -> torch.Tensor:
        """``x_t = alpha(t) x0 + sigma(t) eps``; shapes ``(batch, *event)``, ``t`` scalar or ``(batch,)``."""
        t = as_time(t, x0.device)
        return expand_to(self.alpha(t), x0) * x0 + expand_to(self.sigma(t), x0) * eps

    def sample_marginal(
        self,
        x0: torch.Tensor,
        t: Time,
        *,
        seeds: torch.Tensor | int | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``x_t ~ q(x_t | x0)``. Returns ``(x_t, eps)``, both shaped like ``x0``.

        Noise comes from ``seeds`` (per-sample, see :func:`sdeflow.noise.randn`) or ``generator``.
        """
        check_state(x0, "x0")
        self.check_time(t)
        tt = as_time(t)
        if tt.ndim > 1 or (tt.ndim == 1 and tt.shape[0] != x0.shape[0]):
            raise ValueError(f"t must be a float, a 0-d tensor or a (batch,) = ({x0.shape[0]},) tensor; got shape {tuple(tt.shape)}")
        eps = randn(x0.shape, seeds=seeds, generator=generator, dtype=x0.dtype, device=x0.device)
        return self.marginal(x0, t, eps), eps

    def prior_std(self) -> float:
        """Standard deviation of the prior ``N(0, sigma(T)^2 I)`` used as the start of sampling."""
        return float(self.sigma(self.T))

    def prior_sample(
        self,
        shape: tuple[int, ...] | torch.Size,
        *,
        seeds: torch.Tensor | int | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """Draw from the prior ``N(0, sigma(T)^2 I)``; ``shape = (batch, *event_shape)``.

        With integer ``seeds`` each sample's noise depends on its own seed only, not on the batch.
        """
        shape = _check_shape(shape)
        z = randn(shape, seeds=seeds, generator=generator, dtype=dtype, device=device)
        return self.prior_std() * z

    def prior_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log-density of ``x`` under the prior, summed over event dimensions: shape ``(batch,)``."""
        check_state(x)
        s = self.prior_std()
        d = x[0].numel()
        sq = x.to(torch.float64).reshape(x.shape[0], -1).pow(2).sum(-1)
        return -0.5 * sq / s**2 - d * (math.log(s) + 0.5 * math.log(2 * math.pi))

    # ------------------------------------------------------------------ SDE objects
    def forward_sde(self):
        """The forward noising SDE ``dx = f(t) x dt + g(t) dW`` as an :class:`sdeflow.sdes.SDE`."""
        from ..sdes.diffusion import ForwardDiffusionSDE

        return ForwardDiffusionSDE(self)

    def reverse_sde(self, model, prediction: str, stochasticity: float = 1.0):
        """The reverse-time SDE of Anderson (1982) / Song et al. (2021) with a stochasticity knob.

        ``dx = [f x - (1 + eta^2)/2 g^2 score] dt + eta g dW_bar``, integrated from ``T`` down to 0.
        ``eta = 0`` is the probability-flow ODE, ``eta = 1`` the reverse SDE. ``model`` is any
        callable ``(x, t) -> tensor`` predicting ``prediction`` (eps, x0, v, score, velocity).
        """
        from ..models.denoiser import Denoiser
        from ..sdes.diffusion import ReverseDiffusionSDE

        return ReverseDiffusionSDE(Denoiser(model, self, prediction), stochasticity)

    def probability_flow_ode(self, model, prediction: str):
        """The probability-flow ODE ``dx/dt = f x - g^2/2 score`` (the reverse SDE with ``eta = 0``)."""
        return self.reverse_sde(model, prediction, stochasticity=0.0)

    # ------------------------------------------------------------------ misc
    def check_time(self, t: Time, name: str = "t") -> None:
        """Raise ``ValueError`` unless every time lies in ``[0, T]`` (``TypeError`` unless it is a number or tensor)."""
        if isinstance(t, bool) or not isinstance(t, (numbers.Real, torch.Tensor)):
            raise TypeError(f"{name} must be a float, a 0-d tensor or a (batch,) tensor; got {type(t).__name__} {t!r}")
        tt = as_time(t)
        if not bool(torch.isfinite(tt).all()) or bool((tt < 0).any()) or bool((tt > self.T * (1 + 1e-12)).any()):
            raise ValueError(f"{name} must lie in [0, T] = [0, {self.T}] for {self!r}; got {t!r}")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if not isinstance(v, (list, tuple)))
        return f"{type(self).__name__}({args})"
