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
  (60, 180 or -60 degrees for an sp3-sp3 bond). A denoiser that returns the input angle has learned
  the torsion as a free coordinate.
* :func:`torsion_basin_retention`: noise held-out conformers to a level ``s`` and integrate the
  probability-flow ODE back to ``s = 0`` from there (Heun on a Karras grid); report the median
  change of the dihedral and the share of conformers that end in the basin (staggered sector) they
  started from. The exact model keeps the basin with probability near 1 until ``s`` reaches the
  scale of the fragment's move between basins, and its dihedral change is near 0 (the data's
  torsions are exact minima).

Noise levels are in angstrom (the standard deviation of each coordinate's noise); the model sees
``s / length_unit``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ..._utils import check_int
from .metrics import dihedral

__all__ = ["set_dihedral", "torsion_restoring_scan", "torsion_basin_retention", "staggered_sector"]


def _side(n_atoms: int, bonds: Sequence[Sequence[int]], b: int, c: int) -> list[int]:
    """Atoms reachable from ``c`` without crossing the bond ``b-c`` (``c`` included)."""
    adjacency: list[list[int]] = [[] for _ in range(n_atoms)]
    for i, j, *_ in bonds:
        adjacency[int(i)].append(int(j))
        adjacency[int(j)].append(int(i))
    if c not in adjacency[b]:
        raise ValueError(f"quad: atoms {b} and {c} are not bonded; the torsion's middle atoms must share a bond")
    seen, frontier = {c}, [c]
    while frontier:
        nxt = []
        for a in frontier:
            for k in adjacency[a]:
                if (a, k) in ((c, b), (b, c)) or k in seen:
                    continue
                seen.add(k)
                nxt.append(k)
        frontier = nxt
    if b in seen:
        raise ValueError(f"quad: the bond {b}-{c} lies in a ring; its torsion cannot be set by rotating one side")
    return sorted(seen)


def set_dihedral(coords: Any, quad: Sequence[int], bonds: Sequence[Sequence[int]], phi: float) -> np.ndarray:
    """``coords (n, 3)`` with the dihedral ``quad = (a, b, c, d)`` set to ``phi`` degrees.

    The atoms on ``c``'s side of the bond ``b-c`` rotate rigidly about the axis ``b -> c`` (Rodrigues'
    formula); bond lengths, bond angles and every other dihedral that does not cross ``b-c`` are unchanged.
    """
    x = np.asarray(coords, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 3:
        raise ValueError(f"coords must be one conformer of shape (n_atoms, 3); got {x.shape}")
    if len(quad) != 4:
        raise ValueError(f"quad must be 4 atom indices (a, b, c, d); got {quad!r}")
    a, b, c, d = (int(v) for v in quad)
    side = _side(x.shape[0], bonds, b, c)
    delta = np.radians(phi - float(dihedral(x[None], (a, b, c, d))[0]))
    k = (x[c] - x[b]) / np.linalg.norm(x[c] - x[b])
    v = x[side] - x[b]
    # The dihedral a-b-c-d grows by delta when d turns by +delta about b -> c (right-handed, IUPAC sign).
    rotated = v * np.cos(delta) + np.cross(k, v) * np.sin(delta) + np.outer(v @ k, k) * (1.0 - np.cos(delta))
    out = x.copy()
    out[side] = x[b] + rotated
    return out


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


def _check_model(model):
    from ...nn.egnn import EGNN
    from ...training import DiffusionModel

    if not isinstance(model, DiffusionModel) or not isinstance(model.net, EGNN):
        raise TypeError(f"model must be a DiffusionModel with an EGNN network (from train_conformer_model); got {type(model).__name__}")
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
