"""Diagnostics of a conformer denoiser's torsions: does it pull a torsion back into its basin?

A torsion distribution is learned when the denoiser ``x0_hat(x, s)`` knows where the basins of each
rotatable bond are. Two checks, both against what the exact denoiser of the data does:

* :func:`torsion_restoring_scan`: take a data conformer, set one dihedral to each angle of a scan by
  rotating the atoms on one side of the bond (everything else exact), and read the dihedral of
  ``x0_hat`` at a noise level ``s``. The data are force-field minima (a few exact shapes up to rigid
  motion), so a displacement of ``delta`` degrees of the whole fragment is a move of
  ``|delta| * sqrt(sum_k r_k^2)`` angstrom (``r_k``: the rotating atoms' distances from the bond
  axis; about 4.3 A per radian for butane's C-C-C-C) that the noise would make with a probability
  of order ``exp(-move^2 / (2 s^2))``: for ``s`` well below the move, the exact posterior puts
  the conformer back into the nearest basin, and ``x0_hat``'s dihedral is the basin's angle
  (butane: 180 or about +-65 degrees). A denoiser that returns the input angle has learned
  the torsion as a free coordinate.
* :func:`torsion_basin_retention`: noise held-out conformers to a level ``s`` and integrate the
  probability-flow ODE back to ``s = 0`` from there (Heun on a Karras grid); report the median
  change of the dihedral and the share of conformers that end in the basin (staggered sector) they
  started from. The exact model keeps the basin with probability near 1 until ``s`` reaches the
  scale of the fragment's move between basins, and its dihedral change is near 0 (the data's
  torsions are exact minima).

Both checks also run on :class:`ExactConformerDenoiser`, the exact denoiser of a set of conformers made
invariant under rotations (and reflections, as the O(3)-equivariant EGNN's target is): for templates
``S_k`` (centred, ``(n, 3)``) and ``x = S_k R^T + s eps`` the posterior over ``R in SO(3)`` given ``k`` is
the matrix Fisher distribution ``p(R) ~ exp(tr(F^T R))`` with ``F = x^T S_k / s^2`` (Khatri & Mardia
1977). With the proper SVD ``F = U diag(d) V^T`` (``U, V`` rotations, ``d_1 >= d_2 >= |d_3|``) its
normalizer is the 1-D integral (Wood 1993; Lee, Leok & McClamroch 2018, eq. 9)::

    c(d) = 1/2 int_{-1}^{1} I0((d1 - d2)(1 - u)/2) I0((d1 + d2)(1 + u)/2) exp(d3 u) du

and ``E[R] = U diag(d log c / d d_i) V^T``. So ``E[x0 | x] = sum_k w_k S_k E_k[R]^T`` with weights
``w_k ~ c(d^k) exp(-|S_k|^2 / (2 s^2))``: exact up to the quadrature (48 Gauss-Legendre nodes after an
exponential change of variable that follows the integrand's peak at ``u = 1``).

Noise levels are in angstrom (the standard deviation of each coordinate's noise); the model sees
``s / length_unit``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ..._utils import check_int
from .metrics import dihedral

__all__ = [
    "set_dihedral",
    "torsion_restoring_scan",
    "torsion_basin_retention",
    "staggered_sector",
    "matrix_fisher_moments",
    "ExactConformerDenoiser",
]


def set_dihedral(coords: Any, quad: Sequence[int], bonds: Sequence[Sequence[int]], phi: float) -> np.ndarray:
    """``coords (n, 3)`` with the dihedral ``quad = (a, b, c, d)`` set to ``phi`` degrees.

    The atoms on ``c``'s side of the bond ``b-c`` rotate rigidly about the axis ``b -> c`` (Rodrigues'
    formula; :func:`~.torsional.set_torsions` for one conformer and one torsion); bond lengths, bond angles
    and every other dihedral that does not cross ``b-c`` are unchanged.
    """
    from .torsional import set_torsions

    x = np.asarray(coords, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 3:
        raise ValueError(f"coords must be one conformer of shape (n_atoms, 3); got {x.shape}")
    if len(quad) != 4:
        raise ValueError(f"quad must be 4 atom indices (a, b, c, d); got {quad!r}")
    return set_torsions(x[None], [quad], bonds, [[float(phi)]])[0]


def staggered_sector(phi: Any) -> np.ndarray:
    """The staggered basin of dihedrals ``phi`` (degrees): 0 for ``[0, 120)`` (gauche+, centred at 60),
    1 for ``[120, 240)`` (anti, 180), 2 for ``[240, 360)`` (gauche-, -60), angles taken mod 360."""
    return (np.floor(np.mod(np.asarray(phi, dtype=np.float64), 360.0) / 120.0).astype(np.int64)) % 3


def _x0_hat(model, x: torch.Tensor, noise_level: float) -> torch.Tensor:
    """The model's denoised ``x0_hat`` (model units) of ``x = x0 + noise_level * eps`` (model units)."""
    from ...models.parameterization import to_x0_eps

    process = model.process
    t = process.t_from_noise_level(torch.tensor(float(noise_level), dtype=torch.float64)).to(x.dtype)
    t = t.expand(x.shape[0])
    x_t = (process.alpha(t).view(-1, 1, 1) * x).to(x.dtype)
    with torch.no_grad():
        x0, _ = to_x0_eps(model.prediction, model(x_t, t), x_t, t, process)
    return x0


def matrix_fisher_moments(d: Any, nodes: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """``(log c(d), E[diag Q])`` of the matrix Fisher density ``exp(sum_i d_i Q_ii)`` on SO(3) (Haar measure 1).

    ``d (..., 3)`` are proper singular values, ``d_1 >= d_2 >= |d_3|`` (module docstring). Returns
    ``(...)`` and ``(..., 3)``. The integrand over ``u`` is ``exp(d1 + (d2 + d3) u)`` times scaled Bessel
    functions, so ``v = 1 - u`` is drawn through the inverse distribution function of ``exp(-(d2 + d3) v)``
    on ``[0, 2]`` and the rest integrated by Gauss-Legendre (stable for any size of ``d``).
    """
    from scipy.special import i0e, i1e

    d = np.asarray(d, dtype=np.float64)
    if d.shape[-1:] != (3,):
        raise ValueError(f"d must be (..., 3) singular values; got shape {d.shape}")
    y, wy = np.polynomial.legendre.leggauss(int(nodes))
    y, wy = (y + 1.0) / 2.0, wy / 2.0
    d1, d2, d3 = d[..., 0:1], d[..., 1:2], d[..., 2:3]
    rate = np.maximum(d2 + d3, 1e-12)
    span = -np.expm1(-2.0 * rate)
    v = -np.log1p(-y * span) / rate
    u = 1.0 - v
    a = np.maximum((d1 - d2) * v / 2.0, 0.0)
    b = np.maximum((d1 + d2) * (2.0 - v) / 2.0, 0.0)
    i0a, i0b, i1a, i1b = i0e(a), i0e(b), i1e(a), i1e(b)
    # I0(a) I0(b) exp(d3 u) = i0e(a) i0e(b) exp(d1 + d2 + d3) exp(-(d2 + d3) v); dv = span / rate dy.
    w = 0.5 * (span / rate) * wy
    g = i0a * i0b
    total = (g * w).sum(-1)
    log_c = (d1 + d2 + d3)[..., 0] + np.log(total)
    mean = np.stack(
        [
            ((i1a * i0b * (1.0 - u) / 2.0 + i0a * i1b * (1.0 + u) / 2.0) * w).sum(-1) / total,
            ((-i1a * i0b * (1.0 - u) / 2.0 + i0a * i1b * (1.0 + u) / 2.0) * w).sum(-1) / total,
            (g * u * w).sum(-1) / total,
        ],
        axis=-1,
    )
    return log_c, mean


class ExactConformerDenoiser:
    """The exact ``x0`` predictor of conformers ``templates`` made invariant under rotations (and reflections).

    Args:
        templates: ``(K, n, 3)`` conformers in angstrom (the data distribution: each with weight ``1 / K``).
        length_unit: angstrom per model unit (a trained model's ``net.length_unit``), so the denoiser is
            called like that model: ``model(x, t)`` with ``x (batch, n, 3)`` in model units under the ``edm``
            process (``t`` is the noise level in model units); returns ``x0_hat`` in model units.
        reflections: include the mirror images (the target of an O(3)-equivariant network; default).

    ``prediction = "x0"`` and ``process`` make it a model of :func:`sdeflow.sample`. Cost: ``batch x K``
    3x3 SVDs and quadratures per call.
    """

    prediction = "x0"

    def __init__(self, templates: Any, length_unit: float = 1.0, *, reflections: bool = True) -> None:
        from ...processes import get as get_process

        t = np.asarray(templates, dtype=np.float64)
        if t.ndim != 3 or t.shape[-1] != 3 or t.shape[0] < 1:
            raise ValueError(f"templates must be (K, n_atoms, 3) conformers; got shape {t.shape}")
        t = t - t.mean(axis=1, keepdims=True)
        self.templates = np.concatenate([t, t * np.array([1.0, 1.0, -1.0])]) if reflections else t
        self.length_unit = float(length_unit)
        self.n_atoms = int(t.shape[1])
        self.process = get_process("edm")

    def denoise(self, x: Any, noise_level: float) -> np.ndarray:
        """``E[x0 | x]`` for ``x (m, n, 3)`` in angstrom at noise level ``noise_level`` (angstrom)."""
        x = np.asarray(x, dtype=np.float64)
        x = x - x.mean(axis=1, keepdims=True)
        s2 = float(noise_level) ** 2
        f = np.einsum("mni,knj->mkij", x, self.templates) / s2  # F = x^T S_k / s^2
        u, d, vt = np.linalg.svd(f)
        sign = np.sign(np.linalg.det(u) * np.linalg.det(vt))
        sign = np.where(sign == 0, 1.0, sign)
        u[..., :, 2] *= sign[..., None]  # the proper SVD: U, V rotations, d_3 carries the sign
        d[..., 2] *= sign
        log_c, mean = matrix_fisher_moments(d)
        log_w = log_c - (self.templates**2).sum(axis=(1, 2))[None] / (2.0 * s2)
        w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
        w /= w.sum(axis=1, keepdims=True)
        rot = np.einsum("mkij,mkj,mkjl->mkil", u, mean, vt)  # E[R] = U diag(E Q_ii) V^T
        return np.einsum("mk,knj,mkij->mni", w, self.templates, rot)

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float64).reshape(-1)
        if not bool((t == t[0]).all()):
            raise ValueError("ExactConformerDenoiser takes one noise level per call (as sdeflow.sample's solvers give)")
        if not float(t[0]) > 0:
            return x
        x0 = self.denoise(x.detach().to(torch.float64).numpy() * self.length_unit, float(t[0]) * self.length_unit)
        return torch.as_tensor(x0 / self.length_unit, dtype=x.dtype)


def _check_model(model):
    from ...nn.egnn import EGNN
    from ...training import DiffusionModel

    if isinstance(model, ExactConformerDenoiser):
        return model
    if not isinstance(model, DiffusionModel) or not isinstance(model.net, EGNN):
        raise TypeError(f"model must be a DiffusionModel with an EGNN network (from train_conformer_model) or an "
                        f"ExactConformerDenoiser; got {type(model).__name__}")
    return model.net


def torsion_restoring_scan(
    model, coords: Any, quad: Sequence[int], bonds: Sequence[Sequence[int]], angles: Sequence[float],
    noise_levels: Sequence[float],
) -> np.ndarray:
    """Dihedrals (degrees) of ``x0_hat`` for one conformer with its torsion set to each of ``angles``.

    Args:
        model: a trained conformer model (:func:`~sdeflow.applications.molecules.train_conformer_model`).
        coords: ``(n, 3)`` one conformer in angstrom (a data minimum).
        quad: the torsion's atoms ``(a, b, c, d)``; ``bonds``: the molecule's ``(i, j, order)`` list.
        angles: the dihedrals to set (degrees).
        noise_levels: the noise levels ``s`` (angstrom) at which ``x0_hat`` is read; the input carries no
            noise (module docstring).

    Returns:
        ``(len(noise_levels), len(angles))`` dihedrals of ``x0_hat`` in degrees.
    """
    net = _check_model(model)
    levels = [float(s) for s in noise_levels]
    if not levels or min(levels) <= 0:
        raise ValueError(f"noise_levels must be positive noise levels in angstrom; got {noise_levels!r}")
    shaped = np.stack([set_dihedral(coords, quad, bonds, float(p)) for p in angles])
    x = torch.as_tensor((shaped - shaped.mean(axis=1, keepdims=True)) / net.length_unit, dtype=torch.float32)
    out = []
    for s in levels:
        x0 = _x0_hat(model, x, s / net.length_unit).to(torch.float64).numpy() * net.length_unit
        out.append(dihedral(x0, tuple(quad)))
    return np.stack(out)


def torsion_basin_retention(
    model, coords: Any, quad: Sequence[int], noise_levels: Sequence[float], *, seed: int = 0, steps: int = 12,
) -> list[dict[str, float]]:
    """Noise conformers to each level ``s`` and integrate the ODE back: does the torsion stay in its basin?

    Args:
        model: a trained conformer model.
        coords: ``(m, n, 3)`` held-out conformers in angstrom.
        quad: the torsion's atoms ``(a, b, c, d)``.
        noise_levels: the starting noise levels ``s`` (angstrom).
        seed: conformer ``i`` gets its noise from seed ``seed + i`` (on the zero-centroid subspace).
        steps: Heun steps of the Karras grid (``rho = 7``) from ``s`` down to 0.002 model units, then to 0.

    Returns:
        one dict per level: ``noise_level`` (angstrom), ``median_change`` (degrees, the wrapped dihedral
        difference between the ODE's end and the conformer), ``basin_kept`` (share ending in the starting
        :func:`staggered_sector`).
    """
    from ...nn.egnn import remove_centroid
    from ...sample import sample

    net = _check_model(model)
    check_int(steps, "steps", minimum=2)
    x0 = np.asarray(coords, dtype=np.float64)
    if x0.ndim != 3 or x0.shape[1:] != (net.n_atoms, 3):
        raise ValueError(f"coords must be (m, {net.n_atoms}, 3) conformers of the model's molecule; got {x0.shape}")
    start = dihedral(x0, tuple(quad))
    x = torch.as_tensor((x0 - x0.mean(axis=1, keepdims=True)) / net.length_unit, dtype=torch.float32)
    seeds = torch.arange(x.shape[0], dtype=torch.int64) + int(seed)
    eps = remove_centroid(torch.stack([torch.randn(x.shape[1:], generator=torch.Generator().manual_seed(int(s))) for s in seeds]))
    process, rows = model.process, []
    for level in noise_levels:
        s = float(level) / net.length_unit
        if not s > 0.002:
            raise ValueError(f"noise_levels must exceed 0.002 model units ({0.002 * net.length_unit:.4f} A); got {level}")
        levels = [(s ** (1 / 7) + i / (steps - 1) * (0.002 ** (1 / 7) - s ** (1 / 7))) ** 7 for i in range(steps)]
        ts = torch.cat([process.t_from_noise_level(torch.tensor(levels, dtype=torch.float64)), torch.zeros(1, dtype=torch.float64)])
        t0 = ts[:1].to(torch.float32)
        x_t = (process.alpha(t0) * (x + s * eps)).to(x.dtype)
        with torch.no_grad():
            out = sample(model, process, x_t, solver="heun", grid=ts, seed=seed).samples
        end = dihedral(remove_centroid(out).to(torch.float64).numpy() * net.length_unit, tuple(quad))
        change = np.abs((end - start + 180.0) % 360.0 - 180.0)
        rows.append({"noise_level": float(level), "median_change": float(np.median(change)),
                     "basin_kept": float(np.mean(staggered_sector(end) == staggered_sector(start)))})
    return rows
