"""A diffusion process's forward SDE, reverse-time SDE and probability-flow ODE as SDE objects."""

from __future__ import annotations

import torch

from .._utils import as_time, expand_to
from ..models.denoiser import Denoised, Denoiser
from .base import SDE

__all__ = ["ForwardDiffusionSDE", "ReverseDiffusionSDE"]


class ForwardDiffusionSDE(SDE):
    """The forward noising SDE ``dx = f(t) x dt + g(t) dW`` of a process (additive noise)."""

    noise_type = "additive"
    calculus = "ito"

    def __init__(self, process) -> None:
        self.process = process

    def drift(self, t, x: torch.Tensor) -> torch.Tensor:
        return expand_to(self.process.f(as_time(t, x.device)), x) * x

    def diffusion(self, t, x: torch.Tensor) -> torch.Tensor:
        return expand_to(self.process.g(as_time(t, x.device)), x)


class ReverseDiffusionSDE(SDE):
    """The reverse-time SDE with a stochasticity knob ``eta``, integrated from ``T`` towards 0.

    ``dx = [f x - (1 + eta^2)/2 g^2 score] dt + eta g dW_bar`` (Song et al. 2021, eqs. 6 and 13;
    Karras et al. 2022, eq. 6). With ``score = -eps/sigma`` and ``x = alpha x0 + sigma eps`` the
    drift is computed without dividing by ``sigma``:

        drift = d_alpha x0 + d_sigma eps  +  eta^2 (d_sigma - f sigma) eps,

    the first part being the probability-flow velocity. Time steps are negative (``t1 < t0``) and
    Brownian increments have variance ``|t1 - t0|``. ``eta = 0`` is the probability-flow ODE.

    Attributes:
        denoiser: the :class:`~sdeflow.models.Denoiser` (model calls are counted there).
        process: the forward process.
        stochasticity: ``eta >= 0``.
    """

    noise_type = "additive"
    calculus = "ito"

    def __init__(self, denoiser: Denoiser, stochasticity: float = 1.0) -> None:
        if not isinstance(denoiser, Denoiser):
            raise TypeError(f"denoiser must be a sdeflow.models.Denoiser; got {type(denoiser).__name__}")
        eta = float(stochasticity)
        if not eta >= 0.0 or eta == float("inf"):
            raise ValueError(f"stochasticity must be a finite number >= 0; got {stochasticity!r}")
        self.denoiser = denoiser
        self.process = denoiser.process
        self.stochasticity = eta

    @property
    def is_ode(self) -> bool:
        return self.stochasticity == 0.0

    def can_evaluate(self, t) -> bool:
        """Whether the model may be called at ``t`` (never at ``t = 0``, where the data lives)."""
        return bool(torch.all(as_time(t) > 0))

    def drift_from(self, t, x: torch.Tensor, d: Denoised) -> torch.Tensor:
        """The drift given a denoised pair at ``(x, t)`` (no model call)."""
        t64 = as_time(t, x.device)
        p = self.process
        d_alpha, d_sigma = p.d_alpha(t64), p.d_sigma(t64)
        velocity = expand_to(d_alpha, x) * d.x0 + expand_to(d_sigma, x) * d.eps
        if self.stochasticity == 0.0:
            return velocity
        extra = self.stochasticity**2 * (d_sigma - p.f(t64) * p.sigma(t64))
        return velocity + expand_to(extra, x) * d.eps

    def drift_and_denoised(self, t, x: torch.Tensor) -> tuple[torch.Tensor, Denoised]:
        """The drift and the denoised pair; one model call."""
        d = self.denoiser(x, t)
        return self.drift_from(t, x, d), d

    def drift(self, t, x: torch.Tensor) -> torch.Tensor:
        return self.drift_and_denoised(t, x)[0]

    def diffusion(self, t, x: torch.Tensor) -> torch.Tensor:
        return expand_to(self.stochasticity * self.process.g(as_time(t, x.device)), x)
