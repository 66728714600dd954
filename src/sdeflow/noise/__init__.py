"""Explicit noise: per-sample counter-based normals and Brownian motion objects."""

from .brownian import BrownianIncrements, BrownianTree
from .rng import as_seeds, derive_keys, mix64, normal_from_keys, randn, uniform_from_keys

__all__ = [
    "BrownianIncrements",
    "BrownianTree",
    "as_seeds",
    "derive_keys",
    "mix64",
    "normal_from_keys",
    "randn",
    "uniform_from_keys",
]
