"""Metrics of conformer generation: torsion JSD, force-field energies, COV/MAT RMSD, bond lengths.

* **Kabsch RMSD** (Kabsch 1976): ``min_{R in SO(3), t} sqrt(mean_i |a_i - (R b_i + t)|^2)``. With
  both sets centred, ``H = B^T A = U S V^T`` and ``R = V diag(1, 1, d) U^T``, ``d = sign det(V U^T)``
  (the sign keeps ``R`` a proper rotation: a mirror image is not aligned away).
* **Symmetry**: the RMSD of heavy atoms is minimized over the automorphisms of the heavy-atom graph
  (atom relabellings that keep elements and bonds), as RDKit's ``GetBestRMS`` does; hydrogens are
  left out, as in the conformer-generation papers (GeoMol, Ganea et al. 2021; GeoDiff, Xu et al.
  2022; Torsional Diffusion, Jing et al. 2022).
* **COV / MAT** (Xu et al. 2021, "Learning Neural Generative Dynamics for Molecular Conformation
  Generation", eqs. 13-14): for generated ``G`` and reference ``R``,
  ``COV-R = |{r in R : min_g RMSD(r, g) < delta}| / |R|`` and ``MAT-R = mean_r min_g RMSD(r, g)``;
  the precision versions COV-P / MAT-P swap the roles of ``G`` and ``R``.
* **Torsion angles**: for each rotatable bond ``b-c`` (single, in no ring, both ends bonded to
  another heavy atom) the dihedral ``a-b-c-d`` with ``a`` and ``d`` the lowest-index heavy
  neighbours; with ``b1 = b - a``, ``b2 = c - b``, ``b3 = d - c``, ``n1 = b1 x b2``, ``n2 = b2 x b3``
  the dihedral is ``atan2((b2/|b2|) . (n1 x n2), n1 . n2)``, the IUPAC sign that RDKit's
  ``GetDihedralDeg`` uses (``a = (1,0,0)``, ``b = 0``, ``c = (0,0,1)``, ``d = c + (cos phi, sin phi, 0)``
  has dihedral ``phi``).
* **Jensen-Shannon divergence** of two histograms ``p, q`` (36 bins of 10 degrees):
  ``JSD = (KL(p || m) + KL(q || m)) / 2``, ``m = (p + q) / 2``, in bits (log base 2: 0 for equal
  histograms, 1 for disjoint ones); averaged over the molecule's torsions.
* **Energies**: MMFF94 energies (kcal/mol) of the structures as generated ("raw"), and after a short
  fixed relaxation of ``relax_iters`` MMFF minimization steps ("relaxed"), both against the
  reference conformers' energies.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = [
    "kabsch_rmsd",
    "rmsd_matrix",
    "heavy_atom_automorphisms",
    "dihedral",
    "torsion_quadruples",
    "torsion_angles",
    "histogram_jsd",
    "torsion_jsd",
    "coverage_matching",
    "mmff_energies",
    "bond_length_error",
]


def _check_coords(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 3 or a.shape[-1] != 3 or a.shape[0] < 1:
        raise ValueError(f"{name} must be coordinates of shape (m, n_atoms, 3) with m >= 1; got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} holds NaN or infinite coordinates")
    return a


def kabsch_rmsd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """RMSD after optimal rotation and translation of ``b`` onto ``a`` (module docstring).

    ``a (..., n, 3)`` and ``b (..., n, 3)`` broadcast against each other; returns ``(...)``.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape[-1] != 3 or b.shape[-1] != 3 or a.shape[-2] != b.shape[-2]:
        raise ValueError(f"a and b must be (..., n, 3) with the same n; got {a.shape} and {b.shape}")
    a = a - a.mean(axis=-2, keepdims=True)
    b = b - b.mean(axis=-2, keepdims=True)
    h = np.swapaxes(b, -1, -2) @ a  # (..., 3, 3) = B^T A
    u, s, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(u @ vt))
    d = np.where(d == 0, 1.0, d)
    # R = U diag(1, 1, d) V^T minimizes |A - B R| over rotations; the residual is formed explicitly (the
    # closed form |A|^2 + |B|^2 - 2 (s1 + s2 + d s3) loses half the digits near RMSD 0).
    u = u.copy()
    u[..., :, 2] *= d[..., None]
    r = u @ vt
    return np.sqrt(((a - b @ r) ** 2).sum(axis=(-1, -2)) / a.shape[-2])


def heavy_atom_automorphisms(mol, max_count: int = 1000) -> np.ndarray:
    """``(k, h)`` relabellings of the heavy atoms (indices into the heavy atoms) that keep the graph.

    The identity is first. At most ``max_count`` are returned (a molecule with more symmetric
    relabellings keeps the first ``max_count`` RDKit finds; the RMSD is then an upper bound).
    """
    from rdkit import Chem

    heavy = Chem.RemoveHs(mol)
    matches = heavy.GetSubstructMatches(heavy, uniquify=False, useChirality=False, maxMatches=max_count)
    perms = np.array(matches, dtype=np.int64) if matches else np.arange(heavy.GetNumAtoms())[None]
    identity = np.arange(perms.shape[1])
    order = np.argsort([0 if (p == identity).all() else 1 for p in perms], kind="stable")
    return perms[order]


def rmsd_matrix(
    a: np.ndarray, b: np.ndarray, perms: np.ndarray | None = None, block: int = 256, *, progress: bool = False
) -> np.ndarray:
    """``(len(a), len(b))`` Kabsch RMSDs, each minimized over the atom relabellings ``perms (k, n)``.

    ``a (m, n, 3)``, ``b (l, n, 3)``; ``perms=None``: the identity only; ``progress``: a progress bar
    (``m * l * k`` 3 x 3 SVDs: the slow part of an evaluation).
    """
    from ..._utils import progress_bar

    a = _check_coords(a, "a")
    b = _check_coords(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must have the same atoms; got {a.shape[1]} and {b.shape[1]}")
    perms = np.arange(a.shape[1])[None] if perms is None else np.asarray(perms, dtype=np.int64)
    out = np.full((a.shape[0], b.shape[0]), np.inf)
    jobs = [(p, i) for p in perms for i in range(0, a.shape[0], block)]
    for p, i in progress_bar(jobs, disable=not progress, desc="RMSD matrix", unit="block"):
        r = kabsch_rmsd(a[i : i + block, None], b[:, p][None])
        out[i : i + block] = np.minimum(out[i : i + block], r)
    return out


def coverage_matching(rmsd: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """COV-R, MAT-R, COV-P, MAT-P from ``rmsd (n_generated, n_reference)`` (module docstring)."""
    rmsd = np.asarray(rmsd, dtype=np.float64)
    if rmsd.ndim != 2 or 0 in rmsd.shape:
        raise ValueError(f"rmsd must be a non-empty (n_generated, n_reference) matrix; got {rmsd.shape}")
    if not threshold > 0:
        raise ValueError(f"threshold must be a positive RMSD in angstrom; got {threshold}")
    to_ref = rmsd.min(axis=0)  # each reference conformer's best generated match
    to_gen = rmsd.min(axis=1)
    return {
        "cov_r": float((to_ref < threshold).mean()),
        "mat_r": float(to_ref.mean()),
        "cov_p": float((to_gen < threshold).mean()),
        "mat_p": float(to_gen.mean()),
        "threshold": float(threshold),
    }


def dihedral(x: np.ndarray, quad: Sequence[int]) -> np.ndarray:
    """Dihedral angles in degrees, in ``(-180, 180]``, of atoms ``quad = (a, b, c, d)``; ``x (m, n, 3)`` -> ``(m,)``."""
    x = np.asarray(x, dtype=np.float64)
    a, b, c, d = (int(i) for i in quad)
    b1 = x[:, b] - x[:, a]
    b2 = x[:, c] - x[:, b]
    b3 = x[:, d] - x[:, c]
    n1 = np.cross(b1, b2)
    n2 = np.cross(b2, b3)
    unit = b2 / np.linalg.norm(b2, axis=-1, keepdims=True)
    return np.degrees(np.arctan2((unit * np.cross(n1, n2)).sum(-1), (n1 * n2).sum(-1)))


def torsion_quadruples(mol) -> list[tuple[int, int, int, int]]:
    """``(a, b, c, d)`` of every rotatable bond ``b-c`` (module docstring), in bond order."""
    quads = []
    for bond in mol.GetBonds():
        if str(bond.GetBondType()).split(".")[-1] != "SINGLE" or bond.IsInRing():
            continue
        b, c = bond.GetBeginAtom(), bond.GetEndAtom()
        if b.GetAtomicNum() == 1 or c.GetAtomicNum() == 1:
            continue
        left = sorted(n.GetIdx() for n in b.GetNeighbors() if n.GetAtomicNum() > 1 and n.GetIdx() != c.GetIdx())
        right = sorted(n.GetIdx() for n in c.GetNeighbors() if n.GetAtomicNum() > 1 and n.GetIdx() != b.GetIdx())
        if left and right:
            quads.append((left[0], b.GetIdx(), c.GetIdx(), right[0]))
    return quads


def torsion_angles(x: np.ndarray, quads: Sequence[Sequence[int]]) -> np.ndarray:
    """``(m, len(quads))`` dihedral angles in degrees."""
    x = _check_coords(x, "x")
    if not quads:
        return np.zeros((x.shape[0], 0))
    return np.stack([dihedral(x, q) for q in quads], axis=1)


def histogram_jsd(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence in bits of two histograms (counts or probabilities)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.shape != q.shape or p.sum() <= 0 or q.sum() <= 0 or (p < 0).any() or (q < 0).any():
        raise ValueError(f"p and q must be non-negative histograms of one shape with positive mass; got {p.shape}, {q.shape}")
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl(a):
        nz = a > 0
        return float((a[nz] * np.log2(a[nz] / m[nz])).sum())

    return 0.5 * kl(p) + 0.5 * kl(q)


def torsion_jsd(a: np.ndarray, b: np.ndarray, bins: int = 36) -> dict[str, Any]:
    """Per-torsion and mean JSD (bits) between torsion angle sets ``a (m, k)`` and ``b (l, k)`` in degrees."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must be (samples, torsions) with the same torsions; got {a.shape}, {b.shape}")
    edges = np.linspace(-180.0, 180.0, bins + 1)
    per = [histogram_jsd(np.histogram(a[:, k], edges)[0], np.histogram(b[:, k], edges)[0]) for k in range(a.shape[1])]
    return {"mean": float(np.mean(per)) if per else 0.0, "per_torsion": per, "bins": bins}


def mmff_energies(mol, coords: np.ndarray, relax_iters: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """MMFF94 energies (kcal/mol) of ``coords (m, n, 3)``, and the relaxed coordinates.

    ``relax_iters = 0``: the energies of the structures as given. Otherwise each structure is first
    minimized for at most ``relax_iters`` MMFF steps. A structure MMFF cannot evaluate gets ``nan``.
    """
    from rdkit import Chem
    from rdkit.Chem import rdForceFieldHelpers
    from rdkit.Geometry import Point3D

    coords = _check_coords(coords, "coords")
    work = Chem.Mol(mol)
    work.RemoveAllConformers()
    conf = Chem.Conformer(work.GetNumAtoms())
    work.AddConformer(conf, assignId=True)
    props = rdForceFieldHelpers.MMFFGetMoleculeProperties(work)
    energies = np.full(coords.shape[0], np.nan)
    out = coords.copy()
    for k, x in enumerate(coords):
        c = work.GetConformer()
        for i, (px, py, pz) in enumerate(x):
            c.SetAtomPosition(i, Point3D(float(px), float(py), float(pz)))
        ff = rdForceFieldHelpers.MMFFGetMoleculeForceField(work, props)
        if ff is None:
            continue
        if relax_iters:
            ff.Minimize(maxIts=int(relax_iters))
            out[k] = np.asarray(ff.Positions(), dtype=np.float64).reshape(-1, 3)
        energies[k] = ff.CalcEnergy()
    return energies, out


def bond_length_error(x: np.ndarray, reference: np.ndarray, bonds: Sequence[Sequence[int]]) -> float:
    """Mean absolute deviation (angstrom) of the bond lengths of ``x`` from the reference's mean bond lengths."""
    x = _check_coords(x, "x")
    reference = _check_coords(reference, "reference")
    i = np.array([b[0] for b in bonds])
    j = np.array([b[1] for b in bonds])
    lengths = np.linalg.norm(x[:, i] - x[:, j], axis=-1)
    ref = np.linalg.norm(reference[:, i] - reference[:, j], axis=-1).mean(axis=0)
    return float(np.abs(lengths - ref).mean())
