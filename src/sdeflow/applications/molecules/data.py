"""Conformer data: shipped SMILES, RDKit ETKDG embedding + MMFF minimization, a seeded on-disk cache.

Every molecule is used **with all its hydrogens** (``Chem.AddHs``): the force-field energies of
the metrics need them. Atoms keep RDKit's order (the heavy atoms of the SMILES, then the hydrogens).

A conformer set is made by

1. ETKDG v3 distance-geometry embedding (Riniker & Landrum 2015, "Better Informed Distance
   Geometry"; Wang et al. 2020 for v3) of ``n`` conformers, conformer ``i`` with its own seed
   (:func:`conformer_seeds`: ``n`` distinct 31-bit integers drawn from ``numpy``'s
   ``SeedSequence(seed)``), no RMSD pruning, one thread (so the result is a function of the seed).
   Not RDKit's ``EmbedMultipleConfs(n, randomSeed=seed)``: with one thread it embeds conformer ``i``
   with the seed ``seed * (i + 1)``, so ``seed = 0`` gives ``n`` copies of one conformer (for butane:
   all anti, no gauche) and the sets of seeds ``s`` and ``k s`` share conformers;
2. MMFF94 minimization of each conformer (Halgren 1996) to convergence (at most 2,000 iterations),
   its final energy in kcal/mol kept.

So the data are the local minima ETKDG's starting points fall into, in proportion to how often
they are reached (not a Boltzmann ensemble). Sets are cached as ``.npz`` under a folder the user
gives, keyed by the canonical SMILES, the size, the seed and the RDKit version.

RDKit is an optional extra (``pip install 'sdeflow[molecules]'``); :func:`require_rdkit` names it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..._utils import atomic_write_bytes, check_int

__all__ = [
    "MOLECULES",
    "ConformerSet",
    "require_rdkit",
    "parse_smiles",
    "resolve_molecule",
    "generate_conformers",
    "conformer_seeds",
    "molecule_graph",
]

MOLECULES: dict[str, str] = {
    "butane": "CCCC",
    "pentane": "CCCCC",
    "hexane": "CCCCCC",
    "propanol": "CCCO",
    "butanol": "CCCCO",
    "ethylene_glycol": "OCCO",
    "diethyl_ether": "CCOCC",
    "dimethoxyethane": "COCCOC",
    "methyl_propanoate": "CCC(=O)OC",
    "n_methylacetamide": "CC(=O)NC",
    "alanine_dipeptide": "CC(=O)NC(C)C(=O)NC",
    "glycine_dipeptide": "CC(=O)NCC(=O)NC",
}
"""Small flexible molecules shipped with the package, by name (SMILES; hydrogens are added)."""

BOND_ORDER = {"SINGLE": 1, "DOUBLE": 2, "TRIPLE": 3, "AROMATIC": 4}
EXTRA = "molecules"


def require_rdkit():
    """Import RDKit, or fail with the extra to install."""
    try:
        from rdkit import Chem, RDLogger  # noqa: F401
    except ImportError as err:
        raise ImportError(
            "the molecules application needs RDKit, an optional extra: pip install 'sdeflow[molecules]' (or pip install rdkit)"
        ) from err
    RDLogger.DisableLog("rdApp.*")  # parse errors are reported by our own messages
    return Chem


def parse_smiles(smiles: str, *, hydrogens: bool = True):
    """An RDKit molecule from ``smiles`` (hydrogens added), or a ValueError naming the string."""
    if not isinstance(smiles, str) or not smiles.strip():
        raise ValueError(f"smiles must be a non-empty SMILES string; got {smiles!r}")
    Chem = require_rdkit()
    mol = Chem.MolFromSmiles(smiles.strip())
    if mol is None:
        raise ValueError(f"RDKit cannot parse the SMILES string {smiles!r}; check its syntax (rings closed, valences, brackets)")
    if len(Chem.GetMolFrags(mol)) != 1:
        raise ValueError(f"the SMILES string {smiles!r} holds {len(Chem.GetMolFrags(mol))} molecules; give one connected molecule")
    return Chem.AddHs(mol) if hydrogens else mol


def resolve_molecule(name_or_smiles: str) -> tuple[str, str]:
    """``(name, smiles)`` for a shipped name (see :data:`MOLECULES`) or a SMILES string (named by itself)."""
    if not isinstance(name_or_smiles, str) or not name_or_smiles.strip():
        raise ValueError(f"molecule must be a shipped name ({', '.join(MOLECULES)}) or a SMILES string; got {name_or_smiles!r}")
    key = name_or_smiles.strip()
    if key in MOLECULES:
        return key, MOLECULES[key]
    parse_smiles(key)  # a clear error for a string that is neither
    return key, key


def molecule_graph(mol) -> tuple[list[int], list[list[int]]]:
    """``(atomic_numbers, bonds)`` of an RDKit molecule; bonds are ``[i, j, order]`` (4: aromatic)."""
    numbers = [a.GetAtomicNum() for a in mol.GetAtoms()]
    bonds = []
    for b in mol.GetBonds():
        kind = str(b.GetBondType()).split(".")[-1]
        if kind not in BOND_ORDER:
            raise ValueError(f"bond {b.GetBeginAtomIdx()}-{b.GetEndAtomIdx()} is of type {kind}; expected one of {sorted(BOND_ORDER)}")
        bonds.append([b.GetBeginAtomIdx(), b.GetEndAtomIdx(), BOND_ORDER[kind]])
    return numbers, bonds


@dataclass
class ConformerSet:
    """Conformers of one molecule (all hydrogens included).

    Attributes:
        name: a short name (the shipped name, or the SMILES).
        smiles: the SMILES string the molecule was built from.
        atomic_numbers: ``(n,)`` int64.
        bonds: ``[[i, j, order], ...]`` (order 4: aromatic).
        coords: ``(m, n, 3)`` float64 coordinates in angstrom.
        energies: ``(m,)`` float64 MMFF94 energies in kcal/mol.
        seed: the embedding seed.
    """

    name: str
    smiles: str
    atomic_numbers: np.ndarray
    bonds: list[list[int]]
    coords: np.ndarray
    energies: np.ndarray
    seed: int

    @property
    def n_atoms(self) -> int:
        return int(self.atomic_numbers.shape[0])

    def __len__(self) -> int:
        return int(self.coords.shape[0])

    def mol(self):
        """The RDKit molecule (hydrogens included, no conformers)."""
        return parse_smiles(self.smiles)


def conformer_seeds(seed: int, n: int) -> list[int]:
    """``n`` distinct ETKDG seeds in ``[0, 2^31)`` for the conformers of the set with seed ``seed``.

    The first ``n`` distinct values of ``numpy.random.SeedSequence(seed).generate_state`` (a hash of
    the seed; a longer set of the same seed starts with the shorter one's seeds), masked to 31 bits.
    Sets of different seeds share a conformer seed only by chance (probability about ``n_1 n_2 / 2^31``).
    """
    check_int(n, "n")
    check_int(seed, "seed", minimum=0)
    draws = n
    while True:  # a repeat among 31-bit draws is rare (about n^2 / 2^32); draw more until n are distinct
        words = np.random.SeedSequence(int(seed)).generate_state(draws, dtype=np.uint32) & 0x7FFFFFFF
        _, first = np.unique(words, return_index=True)
        if len(first) >= n:
            return [int(v) for v in words[np.sort(first)[:n]]]
        draws *= 2


@contextlib.contextmanager
def _sigint_recorded():
    """Record SIGINT in a list instead of raising inside RDKit's C++ code, which abandons the embedding and
    returns a failure: the caller turns a recorded signal into KeyboardInterrupt. Main thread only (the only
    one that receives signals); elsewhere the list stays empty."""
    import signal
    import threading

    seen: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)
    if seen:
        raise KeyboardInterrupt


def _embed(mol, n: int, seed: int):
    from rdkit import Chem
    from rdkit.Chem import rdDistGeom, rdForceFieldHelpers

    params = rdDistGeom.ETKDGv3()
    params.numThreads = 1
    params.pruneRmsThresh = -1.0
    with _sigint_recorded() as interrupted:
        for i, s in enumerate(conformer_seeds(seed, n)):  # one embedding per conformer, each with its own seed
            params.randomSeed = s
            one = Chem.Mol(mol)
            failed = rdDistGeom.EmbedMolecule(one, params) < 0
            if interrupted:  # Ctrl-C during RDKit's embedding (which then gives up): an interrupt, not a failure
                raise KeyboardInterrupt
            if failed:
                raise ValueError(f"ETKDG embedded {i} of {n} conformers (seed {seed}); the molecule may be too strained to embed")
            mol.AddConformer(one.GetConformer(), assignId=True)
    ids = [c.GetId() for c in mol.GetConformers()]
    if not rdForceFieldHelpers.MMFFHasAllMoleculeParams(mol):
        raise ValueError("MMFF94 has no parameters for some atom of this molecule; choose a molecule of common organic elements")
    results = rdForceFieldHelpers.MMFFOptimizeMoleculeConfs(mol, numThreads=1, maxIters=2000)
    coords = np.stack([mol.GetConformer(i).GetPositions() for i in ids]).astype(np.float64)
    energies = np.array([e for _, e in results], dtype=np.float64)
    return coords, energies


def _cache_name(smiles: str, n: int, seed: int) -> str:
    import rdkit

    key = json.dumps({"smiles": smiles, "n": n, "seed": seed, "rdkit": rdkit.__version__, "recipe": "etkdgv3-seed-per-conformer+mmff94/2000"})
    return f"conformers-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


def generate_conformers(
    molecule: str, n: int, *, seed: int = 0, cache_dir: str | Path | None = None
) -> ConformerSet:
    """``n`` MMFF-minimized ETKDG conformers of ``molecule`` (a shipped name or a SMILES), seeded.

    Args:
        molecule: a name of :data:`MOLECULES` or a SMILES string.
        n: number of conformers.
        seed: ETKDG's random seed; the set is a function of ``(molecule, n, seed, RDKit version)``.
        cache_dir: a folder for the ``.npz`` cache (created if needed); ``None``: no cache.

    Returns:
        :class:`ConformerSet`.
    """
    check_int(n, "n")
    check_int(seed, "seed", minimum=0)
    name, smiles = resolve_molecule(molecule)
    mol = parse_smiles(smiles)
    Chem = require_rdkit()
    canonical = Chem.MolToSmiles(Chem.RemoveHs(mol))
    numbers, bonds = molecule_graph(mol)
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / _cache_name(canonical, n, seed)
        if path.exists():
            with np.load(path) as z:
                coords, energies = z["coords"], z["energies"]
            if coords.shape == (n, len(numbers), 3):
                return ConformerSet(name, smiles, np.array(numbers, dtype=np.int64), bonds, coords, energies, seed)
    coords, energies = _embed(mol, n, seed)
    if path is not None:
        import io

        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.savez(buf, coords=coords, energies=energies, atomic_numbers=np.array(numbers), smiles=np.array(canonical))
        atomic_write_bytes(path, buf.getvalue())
    return ConformerSet(name, smiles, np.array(numbers, dtype=np.int64), bonds, coords, energies, seed)


def describe(conformers: ConformerSet) -> dict[str, Any]:
    """A JSON-ready summary (sizes, energy quantiles)."""
    e = conformers.energies
    return {
        "name": conformers.name,
        "smiles": conformers.smiles,
        "atoms": conformers.n_atoms,
        "heavy_atoms": int((conformers.atomic_numbers > 1).sum()),
        "conformers": len(conformers),
        "seed": conformers.seed,
        "energy_min": float(e.min()),
        "energy_median": float(np.median(e)),
    }
