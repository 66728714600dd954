"""Solvers: one interface (init/step), declared orders, a registry by name.

Every module of this package is imported here, so a solver file registers itself with
``@register``: adding a solver is adding one short file.
"""

import importlib as _importlib
import pkgutil as _pkgutil

from .base import Solver, StepResult, available, get, register, registry
from .ddim import DDIM
from .ddpm import DDPM
from .euler import Euler
from .euler_maruyama import EulerMaruyama
from .heun import Heun

for _info in _pkgutil.iter_modules(__path__):
    if not _info.name.startswith("_"):
        _importlib.import_module(f"{__name__}.{_info.name}")

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
