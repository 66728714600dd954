"""Conformer files: XYZ (plain text, no RDKit needed) and SDF (RDKit's writer, bonds included)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..._utils import atomic_write_bytes

__all__ = ["write_xyz", "write_sdf", "SYMBOLS"]

SYMBOLS = {1: "H", 6: "C", 7: "N", 8: "O", 9: "F", 15: "P", 16: "S", 17: "Cl", 35: "Br", 53: "I"}


def _check(coords, n_atoms: int) -> np.ndarray:
    x = np.asarray(coords, dtype=np.float64)
    if x.ndim != 3 or x.shape[1:] != (n_atoms, 3):
        raise ValueError(f"coords must be (m, {n_atoms}, 3) in angstrom; got {x.shape}")
    return x


def write_xyz(path: str | Path, atomic_numbers: Sequence[int], coords, comments: Sequence[str] | None = None) -> Path:
    """All conformers in one multi-frame XYZ file (angstrom); ``comments`` one line per conformer."""
    numbers = [int(z) for z in atomic_numbers]
    x = _check(coords, len(numbers))
    lines = []
    for k, frame in enumerate(x):
        lines.append(str(len(numbers)))
        lines.append((comments[k] if comments is not None else f"conformer {k}").replace("\n", " "))
        for z, (px, py, pz) in zip(numbers, frame):
            lines.append(f"{SYMBOLS.get(z, str(z)):<2} {px:12.6f} {py:12.6f} {pz:12.6f}")
    path = Path(path)
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
    return path


def write_sdf(path: str | Path, mol, coords, properties: dict[str, Sequence[float]] | None = None) -> Path:
    """All conformers as records of one SDF file (RDKit ``mol`` with hydrogens gives atoms and bonds)."""
    from rdkit import Chem
    from rdkit.Geometry import Point3D

    x = _check(coords, mol.GetNumAtoms())
    import io

    buf = io.StringIO()
    writer = Chem.SDWriter(buf)
    for k, frame in enumerate(x):
        m = Chem.Mol(mol)
        m.RemoveAllConformers()
        conf = Chem.Conformer(m.GetNumAtoms())
        for i, (px, py, pz) in enumerate(frame):
            conf.SetAtomPosition(i, Point3D(float(px), float(py), float(pz)))
        m.AddConformer(conf, assignId=True)
        m.SetProp("_Name", f"conformer {k}")
        for key, values in (properties or {}).items():
            m.SetDoubleProp(key, float(values[k]))
        writer.write(m)
    writer.close()
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue().encode())
    return path
