"""Targets with known answers: Gaussian mixtures with exact noised scores, denoisers and flows."""

from .gaussian_mixture import PREDICTIONS, GaussianMixture, MixtureModel
from .presets import available, gaussian, get, mixture64d, ring2d

__all__ = ["PREDICTIONS", "GaussianMixture", "MixtureModel", "available", "gaussian", "get", "mixture64d", "ring2d"]
