"""sdeflow: noise to data with stochastic and ordinary differential equations.

Processes (:mod:`sdeflow.processes`), model parameterizations (:mod:`sdeflow.models`), time grids
(:mod:`sdeflow.grids`), explicit noise (:mod:`sdeflow.noise`), solvers (:mod:`sdeflow.solvers`) and
one sampling loop (:func:`sdeflow.sample`). Time runs from data at ``t = 0`` to noise at ``t = T``.

Imports are lazy: ``import sdeflow`` loads neither torch nor any subpackage; ``sdeflow.NAME`` imports
the subpackage ``sdeflow.NAME`` (any of them, including ones added later) or the object exported
under that name on first access, and ``from sdeflow import sample, VP`` works as before. This keeps
``sdeflow --help`` fast (PEP 562, module ``__getattr__``).
"""

from __future__ import annotations

import importlib
import sys
import types

__version__ = "0.1.0"

# Exported objects: name -> (submodule, attribute). Subpackages need no entry.
_EXPORTS = {
    "Denoiser": (".models", "Denoiser"),
    "EDMPrecond": (".models", "EDMPrecond"),
    "EDM": (".processes", "EDM"),
    "VE": (".processes", "VE"),
    "VP": (".processes", "VP"),
    "Cosine": (".processes", "Cosine"),
    "DiscreteVP": (".processes", "DiscreteVP"),
    "Linear": (".processes", "Linear"),
    "SubVP": (".processes", "SubVP"),
    "DEFAULT_SOLVER_NAME": (".sample", "DEFAULT_SOLVER"),
    "SampleResult": (".sample", "SampleResult"),
    "sample": (".sample", "sample"),
    "odeint": (".sdes.integrate", "odeint"),
    "sdeint": (".sdes.integrate", "sdeint"),
    "sdeint_adjoint": (".sdes.adjoint", "sdeint_adjoint"),
    "Stepper": (".stepper", "Stepper"),
    "num_threads": ("._threads", "num_threads"),
}

__all__ = [
    "data",
    "finance",
    "nn",
    "training",
    "fokker_planck",
    "sdeint",
    "sdeint_adjoint",
    "odeint",
    "grids",
    "likelihood",
    "metrics",
    "models",
    "plots",
    "targets",
    "noise",
    "processes",
    "sdes",
    "solvers",
    "sample",
    "SampleResult",
    "Stepper",
    "DEFAULT_SOLVER_NAME",
    "Denoiser",
    "EDMPrecond",
    "VP",
    "SubVP",
    "DiscreteVP",
    "VE",
    "EDM",
    "Cosine",
    "Linear",
    "num_threads",
    "__version__",
]


class _Package(types.ModuleType):
    """The package's module type: an exported function keeps its name when a submodule shares it.

    Importing the submodule ``sdeflow.sample`` makes Python set the package attribute ``sample`` to
    that module; the function :func:`sdeflow.sample` must stay what ``sdeflow.sample`` means.
    """

    def __setattr__(self, name: str, value: object) -> None:
        if isinstance(value, types.ModuleType) and name in _EXPORTS and _EXPORTS[name][0] == f".{name}":
            return  # the submodule stays reachable as sys.modules["sdeflow.NAME"]
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> object:
    if name in _EXPORTS:
        module, attr = _EXPORTS[name]
        value = getattr(importlib.import_module(module, __name__), attr)
        globals()[name] = value
        return value
    if not name.startswith("__"):
        try:
            return importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise  # the subpackage exists but one of its own imports failed: keep that error
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
