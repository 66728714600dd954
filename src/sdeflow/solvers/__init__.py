"""Solvers: one interface (init/step), declared orders, a registry by name."""

from .base import Solver, StepResult, available, get, register, registry
from .ddim import DDIM
from .ddpm import DDPM
from .euler import Euler
from .euler_maruyama import EulerMaruyama
from .heun import Heun

__all__ = [
    "Solver",
    "StepResult",
    "available",
    "get",
    "register",
    "registry",
    "DDIM",
    "DDPM",
    "Euler",
    "EulerMaruyama",
    "Heun",
]
