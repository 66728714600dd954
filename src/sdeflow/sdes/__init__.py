"""SDE objects: general SDEs and the SDEs of diffusion processes."""

from .base import CALCULI, NOISE_TYPES, SDE
from .diffusion import ForwardDiffusionSDE, ReverseDiffusionSDE

__all__ = ["CALCULI", "NOISE_TYPES", "SDE", "ForwardDiffusionSDE", "ReverseDiffusionSDE"]
