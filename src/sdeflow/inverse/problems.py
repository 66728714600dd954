"""The Gaussian-mixture inverse problems of Cardoso, Janati, Le Corff & Moulines (MCGdiff, ICLR 2024, sec. 4.1).

A prior with an exact score and an exact posterior (:meth:`GaussianMixture.posterior`), so that a
method's samples can be compared with the truth:

* prior: 25 components with identity covariances in dimension ``d``; the means are the 5 x 5 grid
  ``(8 i, 8 j)``, ``i, j in {-2, ..., 2}``, repeated over the coordinates (``(8i, 8j, 8i, 8j, ...)``);
  weights proportional to squared standard normals;
* operator: ``A = U diag(s) V^T`` of ``d_y`` rows with ``U`` and the ``d_y`` rows of ``V^T`` random
  orthonormal (QR of Gaussian matrices), singular values ``s ~ U(0, 1)`` (sorted); noise standard
  deviation ``noise_std = u * max(s)`` with ``u ~ U(0, 1)``;
* measurement: ``y = A x* + noise_std n`` with ``x*`` drawn from the prior.

Everything is drawn from ``numpy.random.default_rng(seed)`` in the order written above.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .._utils import check_int
from ..targets.gaussian_mixture import GaussianMixture
from .operators import Linear

__all__ = ["MixtureProblem", "mixture_problem"]


@dataclass(frozen=True)
class MixtureProblem:
    """One problem: ``prior``, ``operator``, ``y`` ``(1, d_y)``, the true ``x`` ``(1, d)`` and the exact ``posterior``."""

    prior: GaussianMixture
    operator: Linear
    y: torch.Tensor
    x: torch.Tensor
    posterior: GaussianMixture


def mixture_problem(d: int, d_y: int, seed: int) -> MixtureProblem:
    """The problem of dimension ``d`` with ``d_y`` measurements drawn from ``seed`` (module docstring)."""
    d = check_int(d, "d", minimum=2)
    d_y = check_int(d_y, "d_y")
    if d_y > d:
        raise ValueError(f"d_y must be <= d = {d}; got {d_y}")
    seed = check_int(seed, "seed", minimum=0)
    rng = np.random.default_rng(seed)
    grid = np.array([(8.0 * i, 8.0 * j) for i in range(-2, 3) for j in range(-2, 3)])  # (25, 2)
    means = np.tile(grid, (1, (d + 1) // 2))[:, :d]
    weights = rng.standard_normal(25) ** 2
    prior = GaussianMixture(weights, means, stds=np.ones(25))
    U, _ = np.linalg.qr(rng.standard_normal((d_y, d_y)))
    V, _ = np.linalg.qr(rng.standard_normal((d, d_y)))  # (d, d_y) orthonormal columns
    s = np.sort(rng.uniform(0.0, 1.0, d_y))[::-1]
    A = U @ np.diag(s) @ V.T
    noise_std = float(rng.uniform(0.0, 1.0) * s.max())
    op = Linear(torch.from_numpy(A.copy()), noise_std=noise_std)
    k = int(np.searchsorted(np.cumsum(weights / weights.sum()), rng.uniform(), side="right"))
    x = torch.from_numpy((means[min(k, 24)] + rng.standard_normal(d))[None, :].copy())
    y = torch.from_numpy((A @ x[0].numpy() + noise_std * rng.standard_normal(d_y))[None, :].copy())
    return MixtureProblem(prior, op, y, x, prior.posterior(op, y))
