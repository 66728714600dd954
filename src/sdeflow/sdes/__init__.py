"""SDE objects (general, forward diffusion, reverse diffusion) and the general integrators."""

from .adapter import TorchsdeSDE, as_sde
from .base import CALCULI, NOISE_TYPES, SDE
from .diffusion import ForwardDiffusionSDE, ReverseDiffusionSDE
from .integrate import odeint, sdeint

__all__ = [
    "CALCULI",
    "NOISE_TYPES",
    "SDE",
    "ForwardDiffusionSDE",
    "ReverseDiffusionSDE",
    "TorchsdeSDE",
    "as_sde",
    "odeint",
    "sdeint",
]
