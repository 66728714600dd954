"""Molecules: 3-D conformers of small flexible molecules with diffusion models.

* data (:mod:`.data`): shipped SMILES, RDKit ETKDG embedding + MMFF94 minimization, all hydrogens,
  a seeded cache (RDKit is the optional extra ``sdeflow[molecules]``);
* model (:mod:`.model`): an :class:`~sdeflow.nn.EGNN` ``eps``-denoiser on coordinates with zero
  centroid (the diffusion runs on the ``(n - 1) * 3``-dimensional subspace), trained with
  :class:`~sdeflow.training.Trainer` and sampled with :func:`sdeflow.sample`;
* torsional diffusion (:mod:`.torsional`, Jing et al. 2022): the VE process on the torsion angles of the
  rotatable bonds with a periodic :class:`~sdeflow.nn.TorsionNet`, read modulo ``2 pi`` and set on local
  structures of the data (``train_conformer_model(..., model="torsional")``);
* metrics (:mod:`.metrics`): torsion-angle JSD, MMFF energies (raw and briefly relaxed), COV/MAT
  with Kabsch alignment over heavy-atom symmetries, bond-length error;
* diagnostics (:mod:`.diagnostics`): does the denoiser pull a torsion back into its basin (a scan of
  ``x0_hat`` over set dihedrals, and the ODE from noised held-out conformers), beside the exact denoiser of
  the conformers made rotation- and reflection-invariant (:class:`ExactConformerDenoiser`)?
* :func:`evaluate` compares samples with held-out conformers, beside the floor of a second held-out set;
* files (:mod:`.io`): XYZ (no RDKit needed) and SDF.

``sdeflow molecules train|sample`` is the command line (docs/molecules.md).
This package imports torch and numpy only; RDKit is imported by the functions that need it.
"""

from .data import MOLECULES, ConformerSet, conformer_seeds, generate_conformers, parse_smiles, require_rdkit, resolve_molecule
from .diagnostics import ExactConformerDenoiser, set_dihedral, torsion_basin_retention, torsion_restoring_scan
from .evaluate import evaluate, plot_energies, plot_torsions
from .io import write_sdf, write_xyz
from .model import MODELS, ZeroCentroidDenoising, build_model, prior_noise, sample_conformers, train_conformer_model
from .torsional import (
    build_torsional_model,
    sample_torsions,
    set_torsions,
    torsion_score_check,
    torsions_to_conformers,
    torus_mixture_eps,
    train_torsional_model,
    wrapped_normal_score,
    wrapped_uniformity,
)

__all__ = [
    "MOLECULES",
    "ConformerSet",
    "conformer_seeds",
    "generate_conformers",
    "parse_smiles",
    "require_rdkit",
    "resolve_molecule",
    "ExactConformerDenoiser",
    "set_dihedral",
    "torsion_basin_retention",
    "torsion_restoring_scan",
    "evaluate",
    "plot_energies",
    "plot_torsions",
    "write_sdf",
    "write_xyz",
    "MODELS",
    "ZeroCentroidDenoising",
    "build_model",
    "prior_noise",
    "sample_conformers",
    "train_conformer_model",
    "build_torsional_model",
    "sample_torsions",
    "set_torsions",
    "torsion_score_check",
    "torsions_to_conformers",
    "torus_mixture_eps",
    "train_torsional_model",
    "wrapped_normal_score",
    "wrapped_uniformity",
]
