"""SDE objects (general, forward diffusion, reverse diffusion) and the general integrators."""

from .adapter import LogqpSDE, TorchsdeSDE, as_sde
from .adjoint import sdeint_adjoint
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
    "LogqpSDE",
    "as_sde",
    "odeint",
    "sdeint",
    "sdeint_adjoint",
]
