"""Model parameterizations: every prediction kind through one (x0_hat, eps_hat) hub."""

from .denoiser import Denoised, Denoiser, NonFiniteModelOutput
from .guidance import ClassifierFreeGuidance
from .parameterization import PREDICTIONS, check_prediction, from_x0_eps, to_x0_eps
from .preconditioning import EDMPrecond

__all__ = [
    "PREDICTIONS",
    "ClassifierFreeGuidance",
    "Denoised",
    "Denoiser",
    "EDMPrecond",
    "NonFiniteModelOutput",
    "check_prediction",
    "from_x0_eps",
    "to_x0_eps",
]
