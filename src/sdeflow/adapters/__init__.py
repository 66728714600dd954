"""Adapters: foreign models as sdeflow models, sdeflow solvers as foreign schedulers.

* :func:`from_diffusers` — a diffusers ``UNet2DModel`` / ``UNet2DConditionModel`` (or a pipeline holding
  one) and its scheduler's table as ``(model, process)``;
* :func:`from_k_diffusion` / :func:`to_k_diffusion` — k-diffusion's denoiser convention ``D(x, sigma)``
  on the EDM process, both ways;
* :class:`DiffusersScheduler` — any sdeflow solver behind diffusers' scheduler interface.

No peer is imported by the library itself: diffusers is imported only where a diffusers object is
handed over (docs/adapters.md, docs/peers.md).
"""

from .diffusers import DiffusersModel, from_diffusers, grid_from_timesteps, noise_grid_from_timesteps
from .k_diffusion import KDiffusionDenoiser, KDiffusionModel, from_k_diffusion, load_k_diffusion_sampling, to_k_diffusion
from .scheduler import DiffusersScheduler, SchedulerOutput

__all__ = [
    "DiffusersModel",
    "DiffusersScheduler",
    "KDiffusionDenoiser",
    "KDiffusionModel",
    "SchedulerOutput",
    "from_diffusers",
    "grid_from_timesteps",
    "noise_grid_from_timesteps",
    "from_k_diffusion",
    "load_k_diffusion_sampling",
    "to_k_diffusion",
]
