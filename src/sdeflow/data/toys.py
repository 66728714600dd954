"""Two-dimensional toy distributions, deterministic from a seed.

Every sampler is ``name(n, seed=0, **options) -> (n, 2) float32 tensor`` and draws from a
``numpy.random.default_rng(seed)`` stream of its own, never from a global generator: the same
``(n, seed)`` always gives the same points. :func:`sample_toy` dispatches by name.

The definitions (with their defaults) follow the usual toy benchmarks:

* ``moons``: the two interleaved half circles of torchdyn / Tong et al. (2024, [SF]^2M and OT-CFM
  2-D benchmarks), drawn as they draw them: ``n // 2`` points on the outer moon ``(cos theta,
  sin theta)`` and the rest on the inner moon ``(1 - cos theta, 1/2 - sin theta)``, with the
  angles ``theta`` evenly spaced on ``[0, pi]`` (``linspace``, so the two moons hold exactly half the
  points each and the angles are stratified), every point shifted along the diagonal by ``u (1, 1)``
  with ``u ~ U(0, noise)``, mapped by ``3 x - 1``, and the rows put in a random order. The
  stratification matters for two-sample distances: with independent angles and moon labels, a
  10,000-point draw puts about 50 points (one standard deviation) more on one moon than on the
  other, and moving that mass between the moons dominates the Wasserstein-2 distance.
* ``8gaussians``: 8 isotropic Gaussians on a circle of radius ``scale = 5`` at angles ``k pi/4``,
  covariance ``sqrt(var) I`` with ``var = 0.1`` (the convention of the same benchmarks: standard
  deviation ``0.1^(1/4) = 0.562``).
* ``swissroll``: ``r (cos r, sin r) / 5`` with ``r = 1.5 pi (1 + 2 u)``, plus ``N(0, noise^2)``.
* ``checkerboard``: uniform on the 8 black squares of a 4x4 board on ``[-4, 4]^2``.
* ``circles``: two concentric circles of radii 4 and 2 (equal mass), plus ``N(0, noise^2)``.
* ``pinwheel``: 5 arms, radial std 0.3, tangential std 0.05, rate 0.25 (Johnson et al. 2016).
* ``2spirals``: two interleaved Archimedean spirals, plus ``N(0, noise^2)``.
* ``scurve``: the x-z projection of scikit-learn's S-curve, ``(sin a, sign(a) (cos a - 1))`` with
  ``a = 3 pi (u - 1/2)``, scaled by 2, plus ``N(0, noise^2)``.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch

from .._utils import check_int, check_nonnegative, check_positive

__all__ = ["TOYS", "sample_toy", "moons", "eight_gaussians", "swissroll", "checkerboard", "circles", "pinwheel", "two_spirals", "scurve"]


def _rng(n: int, seed: int) -> np.random.Generator:
    check_int(n, "n", minimum=1)
    check_int(seed, "seed", minimum=0)
    return np.random.default_rng(seed)


def _out(points: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32))


def moons(n: int, seed: int = 0, *, noise: float = 0.2) -> torch.Tensor:
    """Two half moons (torchdyn / Tong et al. convention, see the module docstring); ``(n, 2)``."""
    rng = _rng(n, seed)
    check_nonnegative(noise, "noise")
    n_out = n // 2
    t_out, t_in = np.linspace(0.0, math.pi, n_out), np.linspace(0.0, math.pi, n - n_out)
    x = np.concatenate([np.cos(t_out), 1.0 - np.cos(t_in)])
    y = np.concatenate([np.sin(t_out), 0.5 - np.sin(t_in)])
    shift = noise * rng.random(n)
    points = 3.0 * np.stack([x + shift, y + shift], axis=1) - 1.0
    return _out(points[rng.permutation(n)])


def eight_gaussians(n: int, seed: int = 0, *, scale: float = 5.0, var: float = 0.1) -> torch.Tensor:
    """Eight Gaussians at radius ``scale``, covariance ``sqrt(var) I``; ``(n, 2)``."""
    rng = _rng(n, seed)
    check_positive(scale, "scale")
    check_positive(var, "var")
    k = rng.integers(0, 8, size=n)
    centers = scale * np.stack([np.cos(k * math.pi / 4), np.sin(k * math.pi / 4)], axis=1)
    return _out(centers + var**0.25 * rng.standard_normal((n, 2)))


def swissroll(n: int, seed: int = 0, *, noise: float = 0.25) -> torch.Tensor:
    """A 2-D swiss roll ``r (cos r, sin r) / 5``, ``r = 1.5 pi (1 + 2u)``; ``(n, 2)``."""
    rng = _rng(n, seed)
    check_nonnegative(noise, "noise")
    r = 1.5 * math.pi * (1.0 + 2.0 * rng.random(n))
    pts = np.stack([r * np.cos(r), r * np.sin(r)], axis=1) / 5.0
    return _out(pts + noise * rng.standard_normal((n, 2)))


def checkerboard(n: int, seed: int = 0) -> torch.Tensor:
    """Uniform on the 8 dark squares ``(i + j)`` even of a 4x4 board of side-2 squares over ``[-4, 4]^2``; ``(n, 2)``."""
    rng = _rng(n, seed)
    square = rng.integers(0, 8, size=n)
    i = square // 2
    j = 2 * (square % 2) + (i % 2)  # the dark columns of row i: j = i mod 2, i mod 2 + 2
    corner = np.stack([2.0 * i - 4.0, 2.0 * j - 4.0], axis=1)
    return _out(corner + 2.0 * rng.random((n, 2)))


def circles(n: int, seed: int = 0, *, noise: float = 0.08) -> torch.Tensor:
    """Two concentric circles of radii 4 and 2 with equal mass; ``(n, 2)``."""
    rng = _rng(n, seed)
    check_nonnegative(noise, "noise")
    radius = np.where(rng.random(n) < 0.5, 4.0, 2.0)
    angle = 2.0 * math.pi * rng.random(n)
    pts = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return _out(pts + noise * rng.standard_normal((n, 2)))


def pinwheel(n: int, seed: int = 0, *, arms: int = 5, radial_std: float = 0.3, tangential_std: float = 0.05, rate: float = 0.25) -> torch.Tensor:
    """The pinwheel of Johnson et al. (2016): Gaussian blobs sheared into ``arms`` spiral arms; ``(n, 2)``."""
    rng = _rng(n, seed)
    check_int(arms, "arms")
    z = rng.standard_normal((n, 2)) * np.array([radial_std, tangential_std])
    z[:, 0] += 1.0
    label = rng.integers(0, arms, size=n)
    angle = 2.0 * math.pi * label / arms + rate * np.exp(z[:, 0])
    c, s = np.cos(angle), np.sin(angle)
    pts = np.stack([c * z[:, 0] - s * z[:, 1], s * z[:, 0] + c * z[:, 1]], axis=1)
    return _out(2.0 * pts)


def two_spirals(n: int, seed: int = 0, *, noise: float = 0.1) -> torch.Tensor:
    """Two interleaved spirals ``+-(-cos(r) r, sin(r) r) / 3``, ``r = sqrt(u) 540 deg``; ``(n, 2)``."""
    rng = _rng(n, seed)
    check_nonnegative(noise, "noise")
    r = np.sqrt(rng.random(n)) * 3.0 * math.pi
    sign = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    pts = sign[:, None] * np.stack([-np.cos(r) * r, np.sin(r) * r], axis=1) / 3.0
    return _out(pts + noise * rng.standard_normal((n, 2)))


def scurve(n: int, seed: int = 0, *, noise: float = 0.1) -> torch.Tensor:
    """The S-curve ``2 (sin a, sign(a)(cos a - 1))``, ``a = 3 pi (u - 1/2)``; ``(n, 2)``."""
    rng = _rng(n, seed)
    check_nonnegative(noise, "noise")
    a = 3.0 * math.pi * (rng.random(n) - 0.5)
    pts = 2.0 * np.stack([np.sin(a), np.sign(a) * (np.cos(a) - 1.0)], axis=1)
    return _out(pts + noise * rng.standard_normal((n, 2)))


TOYS: dict[str, Callable[..., torch.Tensor]] = {
    "moons": moons,
    "8gaussians": eight_gaussians,
    "swissroll": swissroll,
    "checkerboard": checkerboard,
    "circles": circles,
    "pinwheel": pinwheel,
    "2spirals": two_spirals,
    "scurve": scurve,
}
"""The toy samplers by name."""


def sample_toy(name: str, n: int, seed: int = 0, **options: Any) -> torch.Tensor:
    """``n`` points of the toy ``name`` (one of :data:`TOYS`) drawn from ``seed``; ``(n, 2)`` float32."""
    if name not in TOYS:
        raise ValueError(f"unknown toy data set {name!r}; expected one of {sorted(TOYS)}")
    try:
        return TOYS[name](n, seed, **options)
    except TypeError as err:
        raise ValueError(f"bad options {options} for toy {name!r}: {err}") from err
