"""A broad family of exact-score test problems, split into a tuning part and a validation part.

Samplers, grids and coefficient tables tuned on one or two targets can win on those targets and lose
everywhere else. This module gives a fixed, explicit family of random Gaussian mixtures that spans
the situations a sampler meets, with the exact noised scores of :class:`GaussianMixture`:

- dimensions 2 to 512;
- component standard deviations from ``1e-3`` to ``1`` times the data's standard deviation (sharp
  components far below the final noise level of a sampler, and wide ones);
- unequal weights (Dirichlet);
- isotropic, diagonal anisotropic and full rotated covariances (random orthogonal eigenvectors,
  eigenvalues spread over one to two decades);
- near (overlapping) and far (well separated) modes.

It is split in two: :func:`family` ``("tuning")`` is what tuning may look at, ``family("validation")``
is what no tuning ever sees; a tuned artefact reports its figures on both. The splits are generated
from disjoint seeds, use different settings of the knobs per dimension, and contain neither public
benchmark target (``ring2d``, ``mixture64d``).

Scale. Every problem has mixture mean 0 and a mean per-coordinate variance ``tr(Cov) / D`` of exactly
``data_std^2`` with ``data_std = 0.5``: EDM's ``sigma_data``, the convention of data in about
``[-1, 1]`` per coordinate, so the usual noise range (EDM: 80 down to 0.002) fits every problem.

The recipe of one problem is :func:`random_mixture`; a problem of the family is a
:class:`FamilyProblem` (a short stable name, its knobs, and its :class:`GaussianMixture`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .._utils import check_int, check_positive
from .gaussian_mixture import ArrayLike, GaussianMixture, _as_float64

__all__ = ["DATA_STD", "FAMILY_SPLITS", "FamilyProblem", "family", "family_names", "family_problem", "random_mixture"]

FAMILY_SPLITS: tuple[str, ...] = ("tuning", "validation")
"""The two parts of the family: tuning sees only ``"tuning"``; ``"validation"`` is held out."""

DATA_STD = 0.5
"""The data scale of the family: ``sqrt(tr(Cov) / D)`` of every problem (EDM's ``sigma_data``)."""


# ---------------------------------------------------------------------------------------- the recipe
def _check_scale(scale: object) -> tuple[float, float]:
    if isinstance(scale, (int, float)) and not isinstance(scale, bool):
        lo = hi = float(scale)
    elif isinstance(scale, (tuple, list)) and len(scale) == 2:
        lo, hi = scale
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi)):
            raise ValueError(f"scale must be a number or a pair (low, high) of numbers; got {scale!r}")
        lo, hi = float(lo), float(hi)
    else:
        raise ValueError(f"scale must be a number or a pair (low, high) of numbers in (0, 1]; got {scale!r}")
    if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 < lo <= hi <= 1.0):
        raise ValueError(
            f"scale must lie in (0, 1] (a component's standard deviation relative to the data's), with "
            f"low <= high for a pair; got {scale!r}"
        )
    return lo, hi


def _log_spaced(lo: float, hi: float, n: int) -> np.ndarray:
    """``n`` values log-spaced from ``lo`` to ``hi`` (both ends included; ``lo`` alone when ``n = 1``)."""
    if n == 1 or lo == hi:
        return np.full(n, lo)
    return np.exp(np.linspace(math.log(lo), math.log(hi), n))


def _haar_orthogonal(gaussian: torch.Tensor) -> torch.Tensor:
    """Haar-distributed orthogonal matrices from ``(..., D, D)`` standard normal draws: QR with the signs
    of R's diagonal moved into Q (Mezzadri 2007), so the distribution is uniform and the result is a
    function of the draws. Done in torch (float64), which keeps to torch's thread setting."""
    q, r = torch.linalg.qr(gaussian)
    return q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[..., None, :]


def random_mixture(
    seed: int,
    dim: int,
    n_components: int,
    *,
    scale: float | tuple[float, float] = 0.1,
    anisotropy: float = 1.0,
    rotated: bool = False,
    n_clusters: int | None = None,
    separation: float = 2.0,
    concentration: float = 1.0,
    weights: ArrayLike | None = None,
    data_std: float = DATA_STD,
) -> GaussianMixture:
    """A random Gaussian mixture with mean 0 and data scale ``data_std``, a deterministic function of its arguments.

    Args:
        seed: the seed of ``numpy.random.default_rng``; the same arguments give bit-identical parameters
            (on one machine: the rotations go through LAPACK's QR, which another BLAS may round differently).
        dim: ``D >= 1``.
        n_components: ``K >= 2`` (a single Gaussian is :func:`sdeflow.targets.gaussian`).
        scale: the component scale ``s_k``, relative to ``data_std``: component ``k`` has
            ``sqrt(tr(Sigma_k) / D) = s_k * data_std`` (its RMS standard deviation). A number gives every
            component that scale; a pair ``(low, high)`` in ``(0, 1]`` gives ``K`` scales log-spaced from
            ``low`` to ``high`` (both ends reached), assigned to the components in random order.
        anisotropy: the condition number ``>= 1`` of every ``Sigma_k`` (ratio of its largest to its
            smallest eigenvalue): the ``D`` eigenvalues are log-spaced over that ratio (so
            ``anisotropy = 100`` spreads variances over two decades, standard deviations over one) and
            rescaled to the trace ``D (s_k data_std)^2``. ``1`` gives isotropic components.
        rotated: ``False``: diagonal ``Sigma_k`` (the eigenvalues in random order along the axes);
            ``True``: full ``Sigma_k = U_k diag(l_k) U_k^T`` with a Haar-random orthogonal ``U_k`` per
            component. Full covariances cost ``K D^2`` memory and ``O(batch K D^2)`` per evaluation.
        n_clusters: the number ``G`` of mode centres, ``2 <= G <= K`` (default ``K``: every mode alone,
            "far" modes when the scales are small). Mode ``k`` belongs to centre ``k mod G``; with
            ``G < K`` several modes share a centre, "near" modes.
        separation: the distance of each mode from its centre, in units of its RMS standard deviation
            ``s_k data_std`` (along a random direction). Two modes of one centre are then at most
            ``sqrt(2) separation`` combined standard deviations ``sqrt(s_j^2 + s_k^2) data_std`` apart
            (about ``separation`` in high dimension, where the directions are nearly orthogonal):
            ``~1.5`` overlaps, ``>~ 5`` separates.
        concentration: the Dirichlet concentration of the weights, ``w ~ Dirichlet(concentration 1_K)``:
            ``1`` is uniform on the simplex (largest / smallest weight from ~10 at K = 4 to ~10^4 at
            K = 32), large values give nearly equal weights.
        weights: ``(K,)`` positive weights instead of the Dirichlet draw (normalized; the other
            parameters are the same as without them, the Dirichlet draw is made and discarded).
        data_std: the data scale ``sqrt(tr(Cov) / D)`` of the result (default 0.5, EDM's ``sigma_data``).

    Recipe (fixed; the family depends on it). ``rng = numpy.random.default_rng(seed)``, then in this
    order: ``w = rng.dirichlet(concentration * ones(K))``; the order of the scales
    ``rng.permutation(K)``; the centres ``c = rng.normal(size=(G, D))``; the offset directions
    ``u = rng.normal(size=(K, D))`` (normalized rows); per component ``k`` in turn, the order of its
    eigenvalues ``rng.permutation(D)`` (diagonal), or (rotated) ``rng.normal(size=(D, D))``, made Haar
    orthogonal ``U_k`` by QR with the signs of R's diagonal (:func:`_haar_orthogonal`).
    Mode ``k`` sits at ``b c_{k mod G} + separation s_k data_std u_k``, with ``b > 0`` solved in closed
    form (a quadratic) so that the mixture's ``tr(Cov) / D`` is exactly ``data_std^2``; then the mixture
    mean is subtracted. ``s_k`` is thus exactly the component's scale relative to the data.

    Raises:
        ValueError: for a knob out of range, or when the components and their offsets alone already
            exceed the data's variance (``sum_k w_k s_k^2 (1 + separation^2 / D) >~ 1``): lower ``scale``
            or ``separation``.
    """
    seed = check_int(seed, "seed", minimum=0)
    D = check_int(dim, "dim", minimum=1)
    K = check_int(n_components, "n_components", minimum=2)
    lo, hi = _check_scale(scale)
    anisotropy = check_positive(anisotropy, "anisotropy")
    if anisotropy < 1.0:
        raise ValueError(f"anisotropy must be >= 1 (the ratio of largest to smallest eigenvalue); got {anisotropy!r}")
    if not isinstance(rotated, bool):
        raise TypeError(f"rotated must be a bool; got {type(rotated).__name__}")
    G = K if n_clusters is None else check_int(n_clusters, "n_clusters", minimum=2)
    if G > K:
        raise ValueError(f"n_clusters must be between 2 and n_components = {K}; got {n_clusters!r}")
    if not (isinstance(separation, (int, float)) and not isinstance(separation, bool)) or not (
        math.isfinite(separation) and separation >= 0
    ):
        raise ValueError(f"separation must be a finite number >= 0; got {separation!r}")
    concentration = check_positive(concentration, "concentration")
    data_std = check_positive(data_std, "data_std")

    rng = np.random.default_rng(seed)
    # 1. Weights (always drawn, so that passing weights= leaves every other parameter unchanged).
    w_np = rng.dirichlet(np.full(K, concentration))
    if weights is not None:
        given = _as_float64(weights, "weights")
        if tuple(given.shape) != (K,) or not bool(torch.isfinite(given).all()) or not bool((given > 0).all()):
            raise ValueError(
                f"weights must be {K} finite numbers > 0 (one per component); got shape {tuple(given.shape)}"
            )
        w = given / given.sum()
    else:
        w = torch.from_numpy(w_np)
    # Dirichlet draws underflow to 0 for tiny concentrations; GaussianMixture needs w > 0.
    if not bool((w > 0).all()):
        raise ValueError(f"concentration = {concentration} drew a zero weight; use a larger concentration")
    # 2. Component scales (in units of data_std until the end), log-spaced and shuffled.
    s = torch.from_numpy(_log_spaced(lo, hi, K)[rng.permutation(K)])
    # 3-4. Centres and unit offset directions.
    centres = torch.from_numpy(rng.normal(size=(G, D)))
    u = torch.from_numpy(rng.normal(size=(K, D)))
    u = u / torch.linalg.vector_norm(u, dim=1, keepdim=True)
    # 5. Eigenvalues with mean 1 (trace D), log-spaced over the anisotropy, then per component its
    #    eigenvectors: the axes in random order, or a random rotation.
    base = torch.from_numpy(_log_spaced(1.0, anisotropy, D))
    base = base / base.mean()
    if rotated:
        eig = base * (s * s)[:, None]
        gauss = np.empty((K, D, D))
        for k in range(K):
            gauss[k] = rng.normal(size=(D, D))
        rot = _haar_orthogonal(torch.from_numpy(gauss))
    else:
        eig = torch.stack([base[torch.from_numpy(rng.permutation(D))] for _ in range(K)]) * (s * s)[:, None]

    # Means mu_k = b c_{g(k)} + o_k. With m = sum_k w_k mu_k, the mixture's trace is
    #   tr(Cov) = sum_k w_k tr(Sigma_k) + sum_k w_k |mu_k - m|^2 = W + A b^2 + 2 B b + C,
    # and b > 0 solves tr(Cov) = D (data_std = 1 until the final rescaling).
    offsets = separation * s[:, None] * u
    c = centres[torch.arange(K) % G]
    c_dev = c - w @ c
    o_dev = offsets - w @ offsets
    A = float(w @ (c_dev * c_dev).sum(1))
    B = float(w @ (c_dev * o_dev).sum(1))
    C = float(w @ (o_dev * o_dev).sum(1))
    W = float(D * (w @ (s * s)))
    room = D - W - C
    if room <= 0 or A <= 0:
        raise ValueError(
            f"scale {scale!r} and separation {separation!r} leave no variance for the mode centres: the "
            f"components and their offsets alone have tr(Cov) / D = {(W + C) / D:.3g} >= 1 (relative to "
            f"data_std^2); lower scale or separation"
        )
    b = (-B + math.sqrt(B * B + A * room)) / A
    means = b * c + offsets
    means = (means - w @ means) * data_std
    eig = eig * data_std**2
    if rotated:
        covs = (rot * eig[:, None, :]) @ rot.mT
        return GaussianMixture(w, means, covs=0.5 * (covs + covs.mT))
    return GaussianMixture(w, means, stds=torch.sqrt(eig))


# ---------------------------------------------------------------------------------------- the family
@dataclass(frozen=True)
class _Spec:
    """The knobs of one family problem (arguments of :func:`random_mixture`)."""

    seed: int
    dim: int
    n_components: int
    scale: tuple[float, float]
    anisotropy: float
    rotated: bool
    n_clusters: int | None = None
    separation: float = 2.0
    concentration: float = 1.0

    @property
    def name(self) -> str:
        lo, hi = self.scale
        scale = f"sc{lo:g}" if lo == hi else f"sc{lo:g}-{hi:g}"
        if self.anisotropy == 1.0 and not self.rotated:
            cov = "iso"
        else:
            cov = f"{'rot' if self.rotated else 'diag'}{self.anisotropy:g}"
        layout = "far" if self.n_clusters is None else "near"
        return f"d{self.dim}-k{self.n_components}-{scale}-{cov}-{layout}-s{self.seed}"


# One problem per dimension in each split; the two splits pair the dimensions with different knobs
# (sharp/wide, diagonal/rotated, near/far, K) and draw from disjoint seeds (1xxx and 2xxx), so a
# validation problem is never a tuning problem with other random numbers only. Together each split
# reaches scales 1e-3 and 1, anisotropy 100, both covariance types and both layouts.
# Full covariances stay at K D^2 <= 2^18 (2 MiB of float64 per copy).
_SPECS: dict[str, tuple[_Spec, ...]] = {
    "tuning": (
        _Spec(1101, 2, 8, (0.01, 0.01), 10.0, False, concentration=1.0),
        _Spec(1102, 4, 16, (0.001, 0.1), 100.0, True, n_clusters=4, separation=1.5),
        _Spec(1103, 16, 8, (0.001, 0.001), 10.0, True),
        _Spec(1104, 32, 32, (0.03, 1.0), 100.0, False, n_clusters=8, separation=1.5),
        _Spec(1105, 64, 16, (0.1, 0.1), 30.0, True, concentration=2.0),
        _Spec(1106, 128, 8, (0.3, 1.0), 100.0, True, n_clusters=4, separation=1.0),
        _Spec(1107, 256, 12, (0.003, 0.003), 10.0, False, n_clusters=4, separation=2.0),
        _Spec(1108, 512, 16, (0.01, 0.3), 30.0, False),
    ),
    "validation": (
        _Spec(2101, 2, 6, (0.001, 0.001), 100.0, True, n_clusters=3, separation=1.5),
        _Spec(2102, 4, 8, (0.1, 1.0), 10.0, False),
        _Spec(2103, 16, 16, (0.003, 0.3), 100.0, False, n_clusters=4, separation=1.5),
        _Spec(2104, 32, 8, (0.01, 0.01), 30.0, True, concentration=2.0),
        _Spec(2105, 64, 32, (0.3, 1.0), 10.0, False, n_clusters=8, separation=1.0),
        _Spec(2106, 128, 4, (0.001, 0.03), 10.0, True),
        _Spec(2107, 256, 4, (0.03, 0.03), 100.0, True, n_clusters=2, separation=2.0),
        _Spec(2108, 512, 12, (0.01, 0.1), 100.0, False, concentration=0.5),
    ),
}


@dataclass(frozen=True)
class FamilyProblem:
    """One problem of the family: a stable name, its split, its knobs and its exact-score target.

    The name reads ``d{dim}-k{K}-sc{scale}-{iso|diag{anisotropy}|rot{anisotropy}}-{near|far}-s{seed}``,
    e.g. ``d16-k8-sc0.001-rot10-far-s1103``: dimension, components, component scale range relative
    to the data, covariance type and condition number, layout of the modes, seed. ``target`` is
    ``random_mixture(seed, dim, n_components, scale=scale, anisotropy=anisotropy, rotated=rotated,
    n_clusters=n_clusters, separation=separation, concentration=concentration)``.
    """

    name: str
    split: str
    seed: int
    dim: int
    n_components: int
    scale: tuple[float, float]
    anisotropy: float
    rotated: bool
    n_clusters: int | None
    separation: float
    concentration: float
    target: GaussianMixture

    @property
    def near(self) -> bool:
        """Whether modes share centres (``n_clusters < n_components``): overlapping modes."""
        return self.n_clusters is not None


def _build(split: str, spec: _Spec) -> FamilyProblem:
    target = random_mixture(
        spec.seed,
        spec.dim,
        spec.n_components,
        scale=spec.scale,
        anisotropy=spec.anisotropy,
        rotated=spec.rotated,
        n_clusters=spec.n_clusters,
        separation=spec.separation,
        concentration=spec.concentration,
    )
    return FamilyProblem(
        name=spec.name,
        split=split,
        seed=spec.seed,
        dim=spec.dim,
        n_components=spec.n_components,
        scale=spec.scale,
        anisotropy=spec.anisotropy,
        rotated=spec.rotated,
        n_clusters=spec.n_clusters,
        separation=spec.separation,
        concentration=spec.concentration,
        target=target,
    )


def _check_split(split: object) -> str:
    if not isinstance(split, str) or split not in FAMILY_SPLITS:
        raise ValueError(
            f"split must be one of {list(FAMILY_SPLITS)} (tune on 'tuning', report 'validation' beside it); "
            f"got {split!r}"
        )
    return split


def family(split: str) -> list[FamilyProblem]:
    """The problems of one split, ``"tuning"`` or ``"validation"``, in increasing dimension.

    Each split has 8 problems, one per dimension 2, 4, 16, 32, 64, 128, 256, 512 (see the module
    docstring). The targets are built afresh on every call (about 0.1 s for a split); the same split
    always gives the same names and bit-identical parameters.
    """
    split = _check_split(split)
    return [_build(split, spec) for spec in _SPECS[split]]


def family_names(split: str) -> list[str]:
    """The names of one split's problems, without building them."""
    return [spec.name for spec in _SPECS[_check_split(split)]]


def family_problem(name: str) -> FamilyProblem:
    """One problem of either split by its name (see :func:`family_names`)."""
    for split, specs in _SPECS.items():
        for spec in specs:
            if spec.name == name:
                return _build(split, spec)
    known = [spec.name for specs in _SPECS.values() for spec in specs]
    raise ValueError(f"unknown family problem {name!r}; expected one of {known}")

