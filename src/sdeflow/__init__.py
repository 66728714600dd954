"""sdeflow: noise to data with stochastic and ordinary differential equations.

Processes (:mod:`sdeflow.processes`), model parameterizations (:mod:`sdeflow.models`), time grids
(:mod:`sdeflow.grids`), explicit noise (:mod:`sdeflow.noise`), solvers (:mod:`sdeflow.solvers`) and
one sampling loop (:func:`sdeflow.sample`). Time runs from data at ``t = 0`` to noise at ``t = T``.
"""

__version__ = "0.1.0"  # before the subpackages, which read it

from . import data, finance, fokker_planck, grids, likelihood, metrics, models, nn, noise, plots, processes, sdes, solvers, targets, training
from .models import Denoiser, EDMPrecond
from .processes import EDM, VE, VP, Cosine, DiscreteVP, Linear, SubVP
from .sample import DEFAULT_SOLVER as DEFAULT_SOLVER_NAME
from .sdes.integrate import odeint, sdeint
from .stepper import Stepper
from .sample import SampleResult, sample


__all__ = [
    "data",
    "finance",
    "nn",
    "training",
    "fokker_planck",
    "sdeint",
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
    "__version__",
]
