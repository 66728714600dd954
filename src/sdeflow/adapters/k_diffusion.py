"""k-diffusion's denoisers as sdeflow models, and any sdeflow model as a k-diffusion denoiser.

k-diffusion (Crowson) works on the EDM process of Karras et al. (2022): the state is
``y = x0 + rho eps`` at noise level ``rho`` and a model is a denoiser ``D(y, rho) -> x0_hat``. Any
Gaussian path ``x = alpha(t) x0 + sigma(t) eps`` maps to it by the state map of k-diffusion's
wrappers (``VDenoiser``, ``DiscreteEpsDDPMDenoiser``: ``c_in = 1/sqrt(rho^2 + 1)`` on a VP path):

    ``y = x / alpha(t)``,  ``rho = sigma(t) / alpha(t)``,  ``t = t_from_noise_level(rho)``,

under which both processes have the same probability-flow ODE solutions (Karras et al. 2022, eq. 4
and section 4; the ODE ``dy/drho = (y - D(y, rho))/rho`` is k-diffusion's ``to_d``). Nothing here
imports k-diffusion; :func:`load_k_diffusion_sampling` loads its samplers for comparison.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path
from typing import Any, Callable

import torch

from .._utils import as_time, expand_to
from ..models.parameterization import check_prediction, to_x0_eps
from ..processes.base import DiffusionProcess
from ..processes.others import EDM

__all__ = ["KDiffusionModel", "KDiffusionDenoiser", "from_k_diffusion", "to_k_diffusion", "load_k_diffusion_sampling"]


def _noise_range(denoiser: Any, sigma_min: float | None, sigma_max: float | None) -> tuple[float, float]:
    """``(sigma_min, sigma_max)``: given, else the denoiser's own (k-diffusion's discrete wrappers have them)."""
    out = []
    for name, given, default in (("sigma_min", sigma_min, 0.002), ("sigma_max", sigma_max, 80.0)):
        value = given if given is not None else getattr(denoiser, name, default)
        if isinstance(value, torch.Tensor):
            value = float(value.detach().reshape(-1)[0])
        out.append(float(value))
    return out[0], out[1]


class KDiffusionModel:
    """A k-diffusion denoiser ``D(x, sigma, **extra) -> x0`` as an sdeflow ``x0`` model on the EDM process.

    On :class:`~sdeflow.processes.EDM` the time is the noise level, so ``model(x, t) = D(x, t, **extra)``
    with ``t`` of shape ``(batch,)``. ``extra`` (k-diffusion's ``extra_args``, e.g. ``cond=...``) is bound
    with :meth:`bind`; sdeflow's solvers then call ``model(x, t)``.
    """

    prediction = "x0"

    def __init__(self, denoiser: Callable[..., torch.Tensor], extra_args: dict[str, Any] | None = None) -> None:
        if not callable(denoiser):
            raise TypeError(f"denoiser must be callable as denoiser(x, sigma) -> x0; got {type(denoiser).__name__}")
        if extra_args is not None and not isinstance(extra_args, dict):
            raise TypeError(f"extra_args must be a dict of keyword arguments for the denoiser; got {type(extra_args).__name__}")
        self.denoiser = denoiser
        self.extra_args = dict(extra_args or {})

    def bind(self, **extra_args: Any) -> "KDiffusionModel":
        """A copy that passes ``extra_args`` (added to the bound ones) to every call."""
        return KDiffusionModel(self.denoiser, {**self.extra_args, **extra_args})

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **extra_args: Any) -> torch.Tensor:
        sigma = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        if sigma.ndim == 0:
            sigma = sigma.expand(x.shape[0])
        return self.denoiser(x, sigma, **{**self.extra_args, **extra_args})

    def __repr__(self) -> str:
        return f"KDiffusionModel({type(self.denoiser).__name__}, extra_args={sorted(self.extra_args)})"


def from_k_diffusion(
    denoiser: Callable[..., torch.Tensor],
    *,
    sigma_min: float | None = None,
    sigma_max: float | None = None,
    extra_args: dict[str, Any] | None = None,
) -> tuple[KDiffusionModel, EDM]:
    """A k-diffusion-style denoiser ``D(x, sigma) -> x0`` as ``(model, process)`` for :func:`sdeflow.sample`.

    The process is :class:`~sdeflow.processes.EDM` (``alpha = 1``, ``sigma = t``) from ``sigma_min`` to
    ``sigma_max``: given, else the denoiser's own attributes (k-diffusion's ``DiscreteSchedule``
    wrappers have them), else EDM's 0.002 and 80. With the same grid of noise levels
    ``sdeflow.sample(model, process, x, solver=..., grid=sigmas)`` reproduces k-diffusion's
    ``sample_euler``, ``sample_heun``, ``sample_lms``, ``sample_dpmpp_2m`` (docs/peers.md).
    """
    lo, hi = _noise_range(denoiser, sigma_min, sigma_max)
    return KDiffusionModel(denoiser, extra_args), EDM(sigma_min=lo, sigma_max=hi)


class KDiffusionDenoiser:
    """Any sdeflow model seen as a k-diffusion denoiser ``D(y, rho, **kwargs) -> x0_hat`` (see :func:`to_k_diffusion`)."""

    def __init__(self, model: Callable[..., torch.Tensor], process: DiffusionProcess, prediction: str) -> None:
        self.model = model
        self.process = process
        self.prediction = check_prediction(prediction)
        self.sigma_min = float(process.noise_level(process.t_min))
        self.sigma_max = float(process.noise_level(process.T))

    def __call__(self, y: torch.Tensor, sigma: torch.Tensor | float, **kwargs: Any) -> torch.Tensor:
        rho = as_time(sigma, y.device)
        if rho.ndim == 0:
            rho = rho.expand(y.shape[0])
        t = self.process.t_from_noise_level(rho)
        x = expand_to(self.process.alpha(t), y) * y  # k-diffusion's c_in: the process's own state
        out = self.model(x, t.to(y.dtype), **kwargs)
        return to_x0_eps(self.prediction, out.to(y.dtype), x, t, self.process)[0]


def to_k_diffusion(model: Callable[..., torch.Tensor], process: DiffusionProcess, prediction: str | None = None) -> KDiffusionDenoiser:
    """An sdeflow model of ``process`` as a k-diffusion denoiser ``D(y, rho) = x0_hat(alpha(t) y, t)``.

    ``t = process.t_from_noise_level(rho)``: the state map of k-diffusion's VP wrappers for every process.
    Its ``sigma_min``/``sigma_max`` are the process's noise levels at ``t_min`` and ``T``. With
    :func:`from_k_diffusion` it moves any model onto the EDM process, where Euler, Heun and LMS are
    k-diffusion's (and diffusers' ``EulerDiscreteScheduler``'s) samplers: a model trained on a DDPM table
    sampled on ``y = x / alpha`` with the table's noise levels (docs/adapters.md).
    ``prediction`` defaults to ``model.prediction``.
    """
    if not callable(model):
        raise TypeError(f"model must be callable as model(x, t); got {type(model).__name__}")
    if not isinstance(process, DiffusionProcess):
        raise TypeError(f"process must be a sdeflow DiffusionProcess; got {type(process).__name__}")
    if prediction is None:
        prediction = getattr(model, "prediction", None)
        if prediction is None:
            raise ValueError("prediction is required (the model has no .prediction): one of 'eps', 'x0', 'v', 'score', 'velocity'")
    return KDiffusionDenoiser(model, process, prediction)


def load_k_diffusion_sampling() -> types.ModuleType:
    """k-diffusion's ``sampling`` module (``sample_euler``, ``sample_lms``...), loaded from its file.

    ``import k_diffusion`` imports the whole package, which needs torchvision and more; its sampling
    module needs only scipy, torchdiffeq, torchsde and tqdm, plus ``utils.append_dims``, given here by a
    stand-in package. Install with ``pip install --no-deps k-diffusion``. Raises ``ImportError`` where
    k-diffusion or one of those is missing.
    """
    name = "k_diffusion.sampling"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("k-diffusion is not installed: pip install --no-deps k-diffusion")
    path = Path(next(iter(spec.submodule_search_locations))) / "sampling.py"
    if "k_diffusion" not in sys.modules:
        package = types.ModuleType("k_diffusion")
        package.__path__ = []
        helpers = types.ModuleType("k_diffusion.utils")
        helpers.append_dims = lambda x, n: x[(...,) + (None,) * (n - x.ndim)]
        package.utils = helpers
        sys.modules["k_diffusion"] = package
        sys.modules["k_diffusion.utils"] = helpers
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    sys.modules[name] = module
    return module
