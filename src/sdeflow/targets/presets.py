"""Named Gaussian-mixture targets: a 2-D ring, a 64-D benchmark mixture and a single Gaussian."""

from __future__ import annotations

import inspect

import math
from typing import Any, Callable

import numpy as np
import torch

from .._utils import check_int, check_nonnegative, check_positive
from .gaussian_mixture import ArrayLike, GaussianMixture, _as_float64

__all__ = ["available", "gaussian", "get", "mixture64d", "ring2d"]


def ring2d(n_modes: int = 8, radius: float = 1.0, std: float = 0.05) -> GaussianMixture:
    """``n_modes`` equal-weight isotropic Gaussians of standard deviation ``std`` on a circle.

    Means ``radius * (cos(2 pi k / n), sin(2 pi k / n))`` for ``k = 0 .. n-1``. Event shape ``(2,)``.
    """
    n_modes = check_int(n_modes, "n_modes", minimum=1)
    radius = check_nonnegative(radius, "radius")
    std = check_positive(std, "std")
    angles = 2.0 * math.pi * torch.arange(n_modes, dtype=torch.float64) / n_modes
    means = radius * torch.stack((torch.cos(angles), torch.sin(angles)), dim=-1)
    return GaussianMixture(
        torch.ones(n_modes, dtype=torch.float64), means, stds=torch.full((n_modes,), std, dtype=torch.float64)
    )


def mixture64d(seed: int = 64) -> GaussianMixture:
    """A 64-dimensional, 16-component mixture with diagonal covariances (the benchmark target).

    The recipe is fixed (benchmarks depend on it): ``rng = numpy.random.default_rng(seed)``, then in
    this order ``means = rng.normal(0.0, 0.6, size=(16, 64))``,
    ``stds = exp(rng.uniform(log 0.05, log 0.5, size=(16, 64)))`` (log-uniform on [0.05, 0.5]) and
    ``weights = rng.dirichlet(5 * ones(16))``.
    """
    seed = check_int(seed, "seed", minimum=0)
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 0.6, size=(16, 64))
    stds = np.exp(rng.uniform(np.log(0.05), np.log(0.5), size=(16, 64)))
    weights = rng.dirichlet(5.0 * np.ones(16))
    return GaussianMixture(weights, means, stds=stds)


def gaussian(mean: ArrayLike, std: ArrayLike) -> GaussianMixture:
    """A single Gaussian ``N(mean, diag(std^2))`` (K = 1) in any dimension.

    Args:
        mean: ``(D,)``.
        std: a positive scalar (isotropic) or ``(D,)`` per-dimension standard deviations.

    Its probability-flow ODE is linear with the closed-form flow
    :meth:`GaussianMixture.pf_ode_solution`, the reference for ODE-solver convergence orders.
    """
    m = _as_float64(mean, "mean")
    if m.ndim != 1 or m.shape[0] < 1:
        raise ValueError(f"mean must have shape (D,) with D >= 1; got shape {tuple(m.shape)}")
    if not bool(torch.isfinite(m).all()):
        raise ValueError(f"mean must be finite; got {m.tolist() if m.numel() <= 8 else 'NaN or infinite entries'}")
    sd = _as_float64(std, "std")
    if sd.ndim == 0:
        stds = sd.reshape(1)
    elif tuple(sd.shape) == tuple(m.shape):
        stds = sd.reshape(1, -1)
    else:
        raise ValueError(
            f"std must be a scalar or have shape (D,) = ({m.shape[0]},) like mean; got shape {tuple(sd.shape)}"
        )
    if not bool(torch.isfinite(stds).all()) or not bool((stds > 0).all()):
        raise ValueError(f"std must be finite and > 0; got {sd.tolist() if sd.numel() <= 8 else 'other values'}")
    return GaussianMixture(torch.ones(1, dtype=torch.float64), m[None, :], stds=stds)


_REGISTRY: dict[str, Callable[..., GaussianMixture]] = {
    "ring2d": ring2d,
    "mixture64d": mixture64d,
    "gaussian": gaussian,
}


def available() -> list[str]:
    """Names of the preset targets."""
    return sorted(_REGISTRY)


def get(name: str, **kwargs: Any) -> GaussianMixture:
    """A preset target by name (``ring2d``, ``mixture64d``, ``gaussian``) built with ``kwargs``."""
    if not isinstance(name, str) or name.lower() not in _REGISTRY:
        raise ValueError(f"unknown target {name!r}; expected one of {available()}")
    build = _REGISTRY[name.lower()]
    params = inspect.signature(build).parameters
    unknown = sorted(set(kwargs) - set(params))
    required = [p for p, par in params.items() if par.default is inspect.Parameter.empty]
    missing = [p for p in required if p not in kwargs]
    if unknown or missing:
        what = f"unknown options {unknown}" if unknown else f"missing options {missing}"
        example = ", ".join(f"{p}=..." for p in (missing or list(params)[:2]))
        raise TypeError(
            f"target {name!r}: {what}; it takes {list(params)} (required: {required or 'none'}), "
            f"e.g. targets.get({name!r}, {example}) or on the command line --target-option NAME=VALUE"
        )
    return build(**kwargs)
