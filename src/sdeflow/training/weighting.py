"""Loss weightings of denoising score matching, in one space: the squared error of the noise.

Following Kingma & Gao (2023, "Understanding diffusion objectives"), a weighting is a function
``w(t)`` multiplying ``||eps_hat - eps||^2``. A model of another prediction kind regresses its own
target, whose error at a fixed ``x_t`` is a multiple of the noise error (the hub's conversions are
linear, :mod:`sdeflow.models.parameterization`):

==========  ===============================================  ==============================
kind        error of the output                               ``c_k^2`` below
==========  ===============================================  ==============================
eps         ``eps_hat - eps``                                 ``1``
x0          ``-(sigma/alpha) (eps_hat - eps)``                ``sigma^2 / alpha^2``
v           ``((alpha^2 + sigma^2)/alpha) (eps_hat - eps)``   ``(alpha^2 + sigma^2)^2 / alpha^2``
score       ``-(1/sigma) (eps_hat - eps)``                    ``1 / sigma^2``
velocity    ``((alpha d_sigma - sigma d_alpha)/alpha) (...)``  ``(alpha d_sigma - sigma d_alpha)^2 / alpha^2``
==========  ===============================================  ==============================

so the objective ``w(t) ||eps_hat - eps||^2`` is computed as ``(w(t) / c_k(t)^2) ||out - target||^2``
in the model's own space: the same weighting gives the same objective whatever the prediction.

Weightings (``SNR = exp(log_snr) = alpha^2 / sigma^2``):

* ``uniform``: weight 1 on the model's *own* squared error (Ho et al. 2020's L_simple for eps,
  conditional flow matching for velocity, plain regression for x0 and v); the one weighting
  defined in the prediction's space rather than the noise's.
* ``snr``: ``w = 1`` on the noise error, which is ``SNR`` on the x0 error (``||x0_hat - x0||^2 =
  ||eps_hat - eps||^2 / SNR``): the "SNR weighting" of Hang et al. (2023), Ho et al.'s L_simple
  for a model of any prediction kind.
* ``min_snr``: ``w = min(SNR, gamma) / SNR`` (Hang et al. 2023, min-SNR-gamma; ``gamma = 5``).
* ``edm``: ``w = lambda(s) s^2 = 1 + s^2 / sigma_data^2`` with the noise level ``s = sigma/alpha`` and
  EDM's ``lambda(s) = (s^2 + sigma_data^2) / (s sigma_data)^2`` (Karras et al. 2022, eq. 8 and Table 1).
* ``likelihood``: ``w = g^2 / sigma^2 = -d log_snr / dt`` (Song et al. 2021, "Maximum likelihood
  training of score-based diffusion models"): with ``t`` uniform on ``[t_lo, t_hi]``,
  ``(t_hi - t_lo) D / 2`` times the loss is the continuous-time negative ELBO's diffusion term,
  ``(1/2) int g^2 E||s_theta - grad log q(x_t | x0)||^2 dt`` (Kingma et al. 2021, eq. 17), i.e.
  the negative ELBO up to a constant that does not depend on the model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch

from .._utils import Time, as_time, check_positive
from ..models.parameterization import check_prediction
from ._spec import from_spec

__all__ = [
    "Weighting",
    "Uniform",
    "SNRWeighting",
    "MinSNR",
    "EDMWeighting",
    "LikelihoodWeighting",
    "eps_error_scale2",
    "WEIGHTINGS",
    "get_weighting",
]


def eps_error_scale2(kind: str, process, t: Time) -> torch.Tensor:
    """``c_k(t)^2``: the squared error of a ``kind`` output per unit squared error of eps (float64).

    See the module table; ``t`` is a float or a ``(batch,)`` tensor.
    """
    check_prediction(kind, "kind")
    t = as_time(t)
    if kind == "eps":
        return torch.ones_like(t)
    alpha, sigma = process.alpha(t), process.sigma(t)
    if kind == "x0":
        return (sigma / alpha) ** 2
    if kind == "v":
        return ((alpha * alpha + sigma * sigma) / alpha) ** 2
    if kind == "score":
        return 1.0 / sigma**2
    return ((alpha * process.d_sigma(t) - sigma * process.d_alpha(t)) / alpha) ** 2


@dataclass(frozen=True)
class Weighting(ABC):
    """A loss weighting ``w(t)`` on the noise error; :meth:`weight` converts it to a prediction's space."""

    name: ClassVar[str] = ""

    @abstractmethod
    def eps_weight(self, process, t: torch.Tensor) -> torch.Tensor:
        """``w(t)`` multiplying ``||eps_hat - eps||^2`` (float64, shape of ``t``)."""

    def weight(self, process, t: Time, prediction: str) -> torch.Tensor:
        """The factor on ``||out - target||^2`` for a ``prediction`` model: ``w(t) / c_k(t)^2`` (float64)."""
        t = as_time(t)
        return self.eps_weight(process, t) / eps_error_scale2(prediction, process, t)

    def config(self) -> dict[str, Any]:
        """``{"name": ..., **options}`` (JSON-ready); :func:`get_weighting` rebuilds it."""
        return {"name": self.name, **asdict(self)}


@dataclass(frozen=True)
class Uniform(Weighting):
    """Weight 1 on the model's own squared error (L_simple; conditional flow matching)."""

    name: ClassVar[str] = "uniform"

    def eps_weight(self, process, t: torch.Tensor) -> torch.Tensor:
        raise TypeError("the uniform weighting is defined in the prediction's own space; call weight(process, t, prediction)")

    def weight(self, process, t: Time, prediction: str) -> torch.Tensor:
        check_prediction(prediction)
        return torch.ones_like(as_time(t))


@dataclass(frozen=True)
class SNRWeighting(Weighting):
    """``w = 1`` on the noise error: ``SNR(t) = alpha^2 / sigma^2`` on the x0 error (Hang et al. 2023)."""

    name: ClassVar[str] = "snr"

    def eps_weight(self, process, t: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(t)


@dataclass(frozen=True)
class MinSNR(Weighting):
    """``w = min(SNR, gamma) / SNR = min(1, gamma / SNR)`` (Hang et al. 2023; ``gamma = 5``)."""

    name: ClassVar[str] = "min_snr"
    gamma: float = 5.0

    def __post_init__(self) -> None:
        check_positive(self.gamma, "gamma")

    def eps_weight(self, process, t: torch.Tensor) -> torch.Tensor:
        return torch.clamp(self.gamma * torch.exp(-process.log_snr(t)), max=1.0)


@dataclass(frozen=True)
class EDMWeighting(Weighting):
    """``w = 1 + s^2 / sigma_data^2``, ``s = sigma/alpha``: EDM's ``lambda(s)`` on the denoiser error."""

    name: ClassVar[str] = "edm"
    sigma_data: float = 0.5

    def __post_init__(self) -> None:
        check_positive(self.sigma_data, "sigma_data")

    def eps_weight(self, process, t: torch.Tensor) -> torch.Tensor:
        return 1.0 + (process.noise_level(t) / self.sigma_data) ** 2


@dataclass(frozen=True)
class LikelihoodWeighting(Weighting):
    """``w = g^2 / sigma^2 = -d log_snr/dt``: the loss is the negative ELBO up to a constant."""

    name: ClassVar[str] = "likelihood"

    def eps_weight(self, process, t: torch.Tensor) -> torch.Tensor:
        return process.g2(t) / process.sigma(t) ** 2


WEIGHTINGS: dict[str, type[Weighting]] = {
    cls.name: cls for cls in (Uniform, SNRWeighting, MinSNR, EDMWeighting, LikelihoodWeighting)
}
"""Weightings by name."""


def get_weighting(spec: "str | dict[str, Any] | Weighting", **options: Any) -> Weighting:
    """A weighting from a name (with options), a ``config()`` dict, or a weighting object."""
    return from_spec(spec, WEIGHTINGS, Weighting, "weighting", options)
