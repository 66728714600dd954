"""Explicit noise: per-sample counter-based normals and Brownian motion objects.

- :class:`BrownianTree`: W(t) as a deterministic function of (seed, t): the same path at any step
  count and query order (diffusion samplers, adaptive steps).
- :class:`LevyBrownianTree`: the same, carrying the space-time Levy area (order-1.5 SRK methods).
- :class:`BrownianIncrements`: per-sample increments on one fixed grid.
- :class:`BrownianPath`: the fastest fixed-grid path (chunked ``torch.randn``; depends on the batch).
"""

from .brownian import BrownianIncrements, BrownianTree
from .levy import LevyBrownianTree
from .path import BrownianPath
from .rng import as_seeds, derive_keys, mix64, normal_from_keys, randn, uniform_from_keys

__all__ = [
    "BrownianIncrements",
    "BrownianPath",
    "BrownianTree",
    "LevyBrownianTree",
    "as_seeds",
    "derive_keys",
    "mix64",
    "normal_from_keys",
    "randn",
    "uniform_from_keys",
]
