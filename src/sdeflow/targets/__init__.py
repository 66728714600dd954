"""Targets with known answers: Gaussian mixtures with exact noised scores, denoisers and flows."""

from .bridge import GaussianBridge, MixtureInterpolant
from .family import DATA_STD, FAMILY_SPLITS, FamilyProblem, family, family_names, family_problem, random_mixture
from .gaussian_mixture import PREDICTIONS, GaussianMixture, MixtureModel
from .presets import available, gaussian, get, mixture64d, ring2d

__all__ = [
    "DATA_STD",
    "FAMILY_SPLITS",
    "FamilyProblem",
    "GaussianBridge",
    "PREDICTIONS",
    "GaussianMixture",
    "MixtureModel",
    "MixtureInterpolant",
    "available",
    "family",
    "family_names",
    "family_problem",
    "gaussian",
    "get",
    "mixture64d",
    "random_mixture",
    "ring2d",
]
