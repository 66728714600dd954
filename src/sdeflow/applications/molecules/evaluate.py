"""Samples against held-out conformers, beside the floor of a second held-out set; the pictures.

:func:`evaluate` reports, for generated conformers ``G`` against held-out reference conformers
``R`` (and the same for a second held-out set ``F`` of ``G``'s size against ``R``: the floor, what a
perfect generator scores with this many samples):

* ``torsion_jsd``: mean over rotatable bonds of the JSD (bits) of 10-degree torsion histograms;
* ``torsion_jsd_relaxed``: the same after the ``relax_iters`` MMFF steps of the relaxed energies (too few to
  cross a torsion barrier: it moves each torsion to the bottom of the basin it is in), and
  ``torsion_sectors``: per rotatable bond, the shares of the three staggered sectors ``[0, 120)``,
  ``[120, 240)``, ``[240, 360)`` degrees (gauche+, anti, gauche- of an sp3-sp3 bond) as generated. Together
  they separate the basins' weights from the spread of the torsions within a basin;
* ``cov_r, mat_r, cov_p, mat_p``: COV/MAT of heavy-atom Kabsch RMSD minimized over the heavy-atom
  graph's automorphisms, at ``threshold`` angstrom;
* ``energy_raw``, ``energy_relaxed``: MMFF94 energies (kcal/mol) relative to the lowest reference
  energy, as generated and after ``relax_iters`` MMFF steps: median, 90th percentile, and the
  1-Wasserstein distance to the reference energies (the reference is MMFF-minimized, so it is
  compared as is);
* ``bond_error``: mean absolute bond-length deviation (angstrom) from the reference's mean lengths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from . import metrics as M
from .data import ConformerSet
from .diagnostics import staggered_sector

__all__ = ["evaluate", "plot_torsions", "plot_energies", "RELAX_ITERS", "THRESHOLD"]

RELAX_ITERS = 50
"""MMFF minimization steps of the "relaxed" energies (a short fixed relaxation, not to convergence)."""
THRESHOLD = 0.5
"""COV threshold (angstrom of heavy-atom RMSD), as GEOM-QM9's in the conformer-generation papers."""


def _energy_summary(e: np.ndarray, ref: np.ndarray, e0: float) -> dict[str, float]:
    from scipy.stats import wasserstein_distance

    ok = np.isfinite(e)
    d = e[ok] - e0
    return {
        "median": float(np.median(d)) if d.size else float("nan"),
        "p90": float(np.percentile(d, 90)) if d.size else float("nan"),
        "w1": float(wasserstein_distance(d, ref - e0)) if d.size else float("nan"),
        "evaluated": int(ok.sum()),
    }


def _scores(coords: np.ndarray, reference: ConformerSet, mol, quads, perms, heavy, threshold, relax_iters, ref_angles,
            progress) -> dict[str, Any]:
    angles = M.torsion_angles(coords, quads)
    rmsd = M.rmsd_matrix(coords[:, heavy], reference.coords[:, heavy], perms, progress=progress)
    e_raw, _ = M.mmff_energies(mol, coords, 0)
    e_rel, relaxed = M.mmff_energies(mol, coords, relax_iters)
    sectors = staggered_sector(angles)
    e0 = float(reference.energies.min())
    return {
        "torsion_jsd": M.torsion_jsd(angles, ref_angles)["mean"] if quads else None,
        "torsion_jsd_per_bond": M.torsion_jsd(angles, ref_angles)["per_torsion"] if quads else [],
        "torsion_jsd_relaxed": M.torsion_jsd(M.torsion_angles(relaxed, quads), ref_angles)["mean"] if quads else None,
        "torsion_sectors": [[float(np.mean(sectors[:, j] == k)) for k in range(3)] for j in range(len(quads))],
        **M.coverage_matching(rmsd, threshold),
        "energy_raw": _energy_summary(e_raw, reference.energies, e0),
        "energy_relaxed": _energy_summary(e_rel, reference.energies, e0),
        "bond_error": M.bond_length_error(coords, reference.coords, reference.bonds),
        "_angles": angles,
        "_energies": (e_raw - e0, e_rel - e0),
    }


def evaluate(
    samples: np.ndarray,
    reference: ConformerSet,
    floor: ConformerSet | None = None,
    *,
    threshold: float = THRESHOLD,
    relax_iters: int = RELAX_ITERS,
    plots: str | Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Metrics of ``samples (m, n, 3)`` (angstrom) against ``reference``, and of ``floor`` (the floor).

    ``floor`` should have the samples' size (its first ``m`` conformers are used). With ``plots``
    (a folder) the torsion histograms and the energy histograms are drawn there; ``progress`` shows
    progress bars over the RMSD matrices (the slow part).
    Returns ``{"samples": {...}, "floor": {...} or None, "torsions": [...], ...}``.
    """
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim != 3 or samples.shape[1:] != (reference.n_atoms, 3):
        raise ValueError(f"samples must be (m, {reference.n_atoms}, 3) conformers of {reference.name}; got {samples.shape}")
    mol = reference.mol()
    quads = M.torsion_quadruples(mol)
    perms = M.heavy_atom_automorphisms(mol)
    heavy = np.flatnonzero(reference.atomic_numbers > 1)
    ref_angles = M.torsion_angles(reference.coords, quads)
    args = (reference, mol, quads, perms, heavy, threshold, relax_iters, ref_angles, progress)
    out = {"samples": _scores(samples, *args)}
    if floor is not None:
        out["floor"] = _scores(floor.coords[: samples.shape[0]], *args)
    if plots is not None:
        plots = Path(plots)
        sets = {"held-out": ref_angles, "samples": out["samples"]["_angles"]}
        if floor is not None:
            sets["second held-out (floor)"] = out["floor"]["_angles"]
        plot_torsions(plots / "torsions.png", sets, quads, f"{reference.name}: torsion angles")
        energies = {"samples raw": out["samples"]["_energies"][0], f"samples relaxed ({relax_iters} steps)": out["samples"]["_energies"][1]}
        plot_energies(plots / "energies.png", reference.energies - reference.energies.min(), energies, f"{reference.name}: MMFF94 energies")
    for part in out.values():
        part.pop("_angles")
        part.pop("_energies")
    out.setdefault("floor", None)
    out.update(
        {
            "torsions": [list(q) for q in quads],
            "automorphisms": int(perms.shape[0]),
            "threshold": threshold,
            "relax_iters": relax_iters,
            "reference_size": len(reference),
            "sample_size": int(samples.shape[0]),
        }
    )
    return out


def plot_torsions(path: str | Path, sets: dict[str, np.ndarray], quads, title: str) -> Path:
    """Histograms (10-degree bins, densities) of each torsion, one panel per rotatable bond."""
    from ...plots import _finish, _plt

    plt = _plt()
    k = max(1, len(quads))
    cols = min(k, 3)
    rows = -(-k // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    edges = np.linspace(-180, 180, 37)
    for j in range(rows * cols):
        ax = axes[j // cols][j % cols]
        if j >= len(quads):
            ax.axis("off")
            continue
        for (label, angles), style in zip(sets.items(), ("stepfilled", "step", "step")):
            ax.hist(angles[:, j], edges, density=True, histtype=style, alpha=0.35 if style == "stepfilled" else 1.0, label=label, linewidth=1.4)
        ax.set_xlabel(f"torsion {'-'.join(map(str, quads[j]))} (degrees)")
        ax.set_xlim(-180, 180)
        if j == 0:
            ax.legend(fontsize=7)
    return _finish(fig, path, title)


def plot_energies(path: str | Path, reference: np.ndarray, sets: dict[str, np.ndarray], title: str) -> Path:
    """Histograms of energies relative to the lowest reference energy (kcal/mol), log-spaced bins."""
    from ...plots import _finish, _plt

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    values = [v[np.isfinite(v)] for v in [reference, *sets.values()]]
    hi = max(float(np.percentile(np.concatenate(values), 98)), 1.0)
    edges = np.concatenate([[-1e-6], np.geomspace(1e-2, hi, 40)])
    ax.hist(np.clip(values[0], 0, None), edges, histtype="stepfilled", alpha=0.35, label="held-out (MMFF minima)")
    for (label, _), v in zip(sets.items(), values[1:]):
        ax.hist(np.clip(v, 0, None), edges, histtype="step", linewidth=1.4, label=label)
    ax.set_xscale("symlog", linthresh=1e-2)
    ax.set_xlabel("E - min E(held-out)  (kcal/mol)")
    ax.set_ylabel("conformers")
    ax.legend(fontsize=8)
    return _finish(fig, path, title)
