"""The consistency function and its boundary parameterization on every process, and the distances.

A consistency function maps any point ``x_t`` of a probability-flow ODE trajectory to the
trajectory's point at the smallest noise level ``t_min`` (Song et al. 2023, "Consistency Models",
eq. 3), expressed in the scaled variable ``y = x / alpha``: ``f(x_t, t) = x_{t_min} / alpha(t_min)``.
It is built on any sdeflow model (a *backbone* of any prediction kind), whose ``x0`` prediction
``D(x, t)`` comes through the prediction hub, with EDM's boundary parameterization (Song et al. 2023,
appendix C; Karras et al. 2022, Table 1) written with the noise level ``s = sigma/alpha``:

    f(x, t) = c_skip(s) y + c_out(s) F(x, t),
    c_skip(s) = sd^2 / ((s - s_min)^2 + sd^2),     c_out(s) = (s - s_min) sd / sqrt(s^2 + sd^2),

where ``sd = sigma_data``, ``s_min = s(t_min)`` and ``F = (D - c_skip^EDM y) / c_out^EDM`` is the
backbone's network output in EDM's form (``c_skip^EDM = sd^2/(s^2 + sd^2)``,
``c_out^EDM = s sd / sqrt(s^2 + sd^2)``; for an :class:`~sdeflow.models.EDMPrecond` backbone ``F`` is
exactly the raw network). Substituting,

    f(x, t) = k(s) y + r(s) D(x, t),    k = c_skip(s) - r(s) c_skip^EDM(s),    r(s) = 1 - s_min / s,

which needs no division by ``c_out^EDM`` and stays finite where ``alpha = 0`` (rectified flow at
``T``: ``c_skip y -> 0``, ``r -> 1``). At ``t = t_min`` we have ``s = s_min`` so ``r = 0`` and
``c_skip = 1`` in floating point, and ``f(x, t_min) = x / alpha(t_min)`` *exactly* (the boundary
condition ``f(x, epsilon) = x``, in the scaled variable). Below ``t_min`` the noise level is clamped
to ``s_min`` (``f`` is the identity in ``y`` there). With ``s_min -> 0`` the function is the
backbone's denoiser ``D`` itself, which is why easy consistency tuning (Geng et al. 2024) starts
from a trained diffusion model.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn

from .._utils import as_time, check_positive, expand_to
from ..models.parameterization import check_prediction, to_x0_eps
from ..processes.base import DiffusionProcess

__all__ = [
    "ConsistencyFunction",
    "consistency_coefficients",
    "is_consistency_model",
    "DISTANCES",
    "squared_l2",
    "pseudo_huber",
    "get_distance",
    "default_s_max",
]

S_MAX_CAP = 80.0
"""The largest noise level ``sigma/alpha`` of the consistency levels (EDM's ``sigma_max``) where a
process's own noise level at ``T`` is larger or infinite (VP: 152; rectified flow: infinite)."""


def default_s_max(process: DiffusionProcess) -> float:
    """``min(noise_level(T), 80)``: the top noise level of discretizations and the default grid."""
    s = float(process.noise_level(process.T))
    return min(s, S_MAX_CAP) if math.isfinite(s) else S_MAX_CAP


def consistency_coefficients(process: DiffusionProcess, t, t_min: float, sigma_data: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(k, r)`` with ``f(x, t) = k y + r D(x, t)``, ``y = x / alpha`` (float64, shape of ``t``).

    ``k = c_skip(s) - r c_skip^EDM(s)`` (0 where ``alpha = 0``, where ``k y -> 0``) and
    ``r = 1 - s_min/s`` (see the module docstring); ``k = 1``, ``r = 0`` exactly at ``t = t_min``.
    """
    t = as_time(t)
    s_min = process.noise_level(as_time(t_min, t.device))
    s = torch.maximum(process.noise_level(t), s_min)
    finite = torch.isfinite(s) & (process.alpha(t) > 0)
    sd2 = float(sigma_data) ** 2
    r = torch.where(torch.isfinite(s), 1.0 - s_min / s, torch.ones_like(s))
    s_safe = torch.where(finite, s, torch.ones_like(s))
    c_skip = sd2 / ((s_safe - s_min) ** 2 + sd2)
    c_skip_edm = sd2 / (s_safe * s_safe + sd2)
    k = torch.where(finite, c_skip - r * c_skip_edm, torch.zeros_like(s))
    return k, r


def is_consistency_model(model: object) -> bool:
    """Whether ``model`` is a consistency function (declares ``consistency_t_min``)."""
    return getattr(model, "consistency_t_min", None) is not None


class ConsistencyFunction(nn.Module):
    """``f(x, t)``: a consistency function with the boundary parameterization, on a backbone model.

    Args:
        backbone: a model ``(x, t) -> prediction`` of any kind (a :class:`~sdeflow.training.DiffusionModel`,
            a teacher's copy, any callable with ``prediction``); its parameters are this module's.
        process: the process (default: ``backbone.process``).
        prediction: the backbone's prediction kind (default: ``backbone.prediction``).
        sigma_data: ``sd`` of the parameterization (0.5 as in EDM and the consistency papers).
        t_min: the boundary time (default ``process.t_min``, where sampling grids end before ``t = 0``).

    Calling it returns ``f(x, t)`` with the shape of ``x`` (``(batch, *event)``, ``t`` a float or
    ``(batch,)``). Its ``prediction`` is ``"x0"``: seen through the prediction hub the output is an
    estimate of the data (the end of the ODE trajectory, not the posterior mean ``E[x0 | x_t]``), so
    every solver runs on it; the ``consistency`` solver requires it (``consistency_t_min`` is set).
    """

    prediction = "x0"

    def __init__(self, backbone: Callable[..., torch.Tensor], process: DiffusionProcess | None = None, *,
                 prediction: str | None = None, sigma_data: float = 0.5, t_min: float | None = None) -> None:
        super().__init__()
        if not callable(backbone):
            raise TypeError(f"backbone must be a callable model(x, t); got {type(backbone).__name__}")
        process = process if process is not None else getattr(backbone, "process", None)
        if not isinstance(process, DiffusionProcess):
            raise TypeError(f"process must be a sdeflow DiffusionProcess (or the backbone must carry one); got {type(process).__name__}")
        kind = prediction if prediction is not None else getattr(backbone, "prediction", None)
        if kind is None:
            raise ValueError("prediction is required: the backbone's kind, one of 'eps', 'x0', 'v', 'score', 'velocity'")
        self.backbone_prediction = check_prediction(kind, "prediction")
        self.backbone = backbone
        self.process = process
        self.sigma_data = check_positive(sigma_data, "sigma_data")
        t_min = float(process.t_min if t_min is None else t_min)
        if not 0.0 < t_min < float(process.T):
            raise ValueError(f"t_min must lie in (0, T) = (0, {process.T}); got {t_min}")
        self.consistency_t_min = t_min

    def coefficients(self, t) -> tuple[torch.Tensor, torch.Tensor]:
        """``(a, r)`` of :func:`consistency_coefficients` at ``t``."""
        return consistency_coefficients(self.process, t, self.consistency_t_min, self.sigma_data)

    def forward(self, x: torch.Tensor, t, *args: Any) -> torch.Tensor:
        tt = as_time(t, x.device)
        if tt.ndim == 0:
            tt = tt.expand(x.shape[0])
        k, r = self.coefficients(tt)
        alpha = self.process.alpha(tt)
        out = self.backbone(x, tt.to(x.dtype), *args)
        d, _ = to_x0_eps(self.backbone_prediction, out.to(x.dtype), x, tt, self.process)
        # y = x / alpha where alpha > 0; where alpha = 0 (rectified flow at T) k = 0 and y is not needed.
        y = x / expand_to(torch.where(alpha > 0, alpha, torch.ones_like(alpha)), x)
        # r = 0 exactly at t_min: the backbone's output there must not leak in (0 * inf would).
        d = torch.where(expand_to(r, x) == 0, torch.zeros_like(d), d)
        return expand_to(k, x) * y + expand_to(r, x) * d

    def config(self) -> dict[str, Any]:
        """What a checkpoint stores besides the backbone: ``sigma_data`` and ``t_min``."""
        return {"sigma_data": self.sigma_data, "t_min": self.consistency_t_min}


# ---------------------------------------------------------------------- distances
def squared_l2(diff: torch.Tensor, c: float | None = None) -> torch.Tensor:
    """``mean_d diff^2`` per sample: ``(batch, *event) -> (batch,)`` (Song et al. 2023's squared L2, per dimension)."""
    return diff.reshape(diff.shape[0], -1).pow(2).mean(dim=1)


def pseudo_huber(diff: torch.Tensor, c: float | None = None) -> torch.Tensor:
    """``sqrt(||diff||^2 + c^2) - c`` per sample (Song & Dhariwal 2024, "Improved techniques", eq. 9).

    ``c`` defaults to ``0.00054 sqrt(D)`` with ``D`` the number of dimensions (their choice, which
    scales with the norm of a unit-variance vector). Shapes ``(batch, *event) -> (batch,)``.
    """
    flat = diff.reshape(diff.shape[0], -1)
    if c is None:
        c = 0.00054 * math.sqrt(flat.shape[1])
    return torch.sqrt(flat.pow(2).sum(dim=1) + c * c) - c


DISTANCES: dict[str, Callable[..., torch.Tensor]] = {"l2": squared_l2, "pseudo_huber": pseudo_huber}
"""Distances of the consistency losses, by name."""


def get_distance(name: str) -> Callable[..., torch.Tensor]:
    """A distance by name (``l2`` or ``pseudo_huber``)."""
    if name not in DISTANCES:
        raise ValueError(f"unknown distance {name!r}; expected one of {sorted(DISTANCES)}")
    return DISTANCES[name]
