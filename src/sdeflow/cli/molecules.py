"""``sdeflow molecules train|sample``: conformers of a small molecule with a diffusion model.

Thin: ``train`` generates (or reads from the cache) ETKDG + MMFF conformers and calls
:func:`sdeflow.applications.molecules.train_conformer_model` (``--model torsional``, the default: torsional
diffusion on the rotatable torsions; ``--model egnn``: the Cartesian EGNN); ``sample`` reads the model kind
from the checkpoint and calls
:func:`~sdeflow.applications.molecules.sample_conformers`, writes an SDF or XYZ file and
:func:`~sdeflow.applications.molecules.evaluate` s the samples against held-out conformers beside the
floor of a second held-out set, with the torsion and energy pictures.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from .train import _positive_int  # the one integer-flag parser of the training commands

__all__ = ["register", "run_molecules"]

# Seeds of the held-out and floor conformer sets of ``sample``: far from any training seed.
_HELDOUT_SEED, _FLOOR_SEED = 1_000_003, 2_000_003
_TRAIN_ONLY = ("molecule", "model", "n_train", "steps", "batch_size", "lr", "width", "layers", "resume")
_SAMPLE_ONLY = ("ckpt", "n", "solver", "sample_steps", "format", "no_eval")
_DEFAULT_CACHE = Path("~/.cache/sdeflow/molecules")


def register(subparsers) -> None:
    """Add the ``molecules`` command (``--threads`` and ``--quiet`` are the shared options)."""
    from ._common import add_json_option

    p = subparsers.add_parser(
        "molecules",
        help="train a diffusion model (torsional, or an E(3)-equivariant EGNN) on conformers of a small molecule and sample SDF/XYZ files",
        description=(
            "molecules train: generate --n-train ETKDG conformers of --molecule (a shipped name such as butane, pentane, "
            "alanine_dipeptide, or a SMILES string), minimize them with MMFF94 (RDKit, the extra sdeflow[molecules]; "
            "cached in --cache) and train a model on them (run folder --out): --model torsional (default) diffuses the torsion "
            "angles of the rotatable bonds on the torus and sets them on the data's local structures; --model egnn is an "
            "EGNN denoiser on the zero-centroid coordinates. "
            "molecules sample: draw --n conformers from --ckpt with sdeflow.sample, write conformers.sdf or .xyz, and "
            "compare torsion-angle JSD, COV/MAT RMSD and MMFF energies with held-out conformers and the floor of a "
            "second held-out set; writes report.json, torsions.png and energies.png to --out."
        ),
    )
    p.add_argument("action", choices=("train", "sample"), help="train a model, or sample (and evaluate) one")
    g = p.add_argument_group("train")
    g.add_argument("--molecule", default=None, help="train: a shipped molecule name or a SMILES string (default butane)")
    g.add_argument("--model", choices=("torsional", "egnn"), default=None,
                   help="train: torsional diffusion on the rotatable torsions, or the Cartesian EGNN (default torsional; with --resume, the run's model)")
    g.add_argument("--n-train", type=_positive_int, default=None, help="train: training conformers (default 2000)")
    g.add_argument("--steps", type=_positive_int, default=None, help="train: optimizer steps (default 2000)")
    g.add_argument("--batch-size", type=_positive_int, default=None, help="train: minibatch size (default 64)")
    g.add_argument("--lr", type=float, default=None, help="train: peak learning rate (default 2e-3)")
    g.add_argument("--width", type=_positive_int, default=None, help="train: network width (default 64 torsional, 32 egnn)")
    g.add_argument("--layers", type=_positive_int, default=None, help="train: residual blocks (torsional) or EGNN layers (default 3)")
    g.add_argument("--resume", action="store_true", default=None, help="train: continue the run in --out where it stopped")
    g = p.add_argument_group("sample")
    g.add_argument("--ckpt", default=None, help="sample: a run folder or checkpoint written by 'sdeflow molecules train'")
    g.add_argument("--n", "--num-samples", dest="n", type=_positive_int, default=None, help="sample: conformers to draw (and held-out/floor sizes) (default 500)")
    g.add_argument("--solver", default=None, help="sample: solver of sdeflow.sample (default: heun for a torsional model, sdeflow.sample's default UniPC for egnn)")
    g.add_argument("--sample-steps", type=_positive_int, default=None, help="sample: solver steps (default 50 torsional, 25 egnn)")
    g.add_argument("--format", choices=("sdf", "xyz"), default=None, help="sample: file format of the conformers (default sdf)")
    g.add_argument("--no-eval", action="store_true", default=None,
                   help="sample: only write the conformers (no held-out comparison; with --format xyz RDKit is not needed)")
    p.add_argument("--cache", type=Path, default=None,
                   help=f"folder of the conformer cache (default $SDEFLOW_CACHE/molecules, else {_DEFAULT_CACHE})")
    p.add_argument("--seed", type=int, default=0,
                   help="train: seed of the conformers and of training; sample: first per-sample seed")
    p.add_argument("--out", type=Path, default=None,
                   help="train: the run folder; sample: the folder of the conformers, report.json and pictures "
                        "(default: a fresh ./sdeflow-molecules-N)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run or earlier results in --out")
    add_json_option(p)
    p.set_defaults(func=run_molecules)


def _check_flags(args: argparse.Namespace) -> None:
    """Each action's flags only with it (a sample flag given to train is a mistake, not ignored)."""
    from ._common import check_action_flags

    check_action_flags(args, "molecules", {"train": _TRAIN_ONLY, "sample": _SAMPLE_ONLY})
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0; got {args.seed}")


def _cache(args: argparse.Namespace) -> Path:
    if args.cache is not None:
        return args.cache
    root = os.environ.get("SDEFLOW_CACHE")
    return Path(root) / "molecules" if root else _DEFAULT_CACHE.expanduser()


def _rdkit() -> None:
    """RDKit, or the CLI's one-line error naming the extra."""
    from ..applications.molecules import require_rdkit

    try:
        require_rdkit()
    except ImportError as err:
        raise ValueError(str(err)) from None


def run_molecules(args: argparse.Namespace) -> int:
    """``sdeflow molecules train|sample``."""
    _check_flags(args)
    return _train(args) if args.action == "train" else _sample(args)


def _train(args: argparse.Namespace) -> int:
    from ..applications.molecules import generate_conformers, resolve_molecule, train_conformer_model
    from ..applications.molecules.data import describe, parse_smiles
    from ..applications.molecules.metrics import torsion_quadruples
    from ..training import TrainConfig
    from ..training.checkpoint import check_run_dir
    from ._common import emit, fresh_dir

    quiet = bool(getattr(args, "quiet", False))
    if args.lr is not None and not (args.lr > 0):
        raise ValueError(f"--lr must be > 0; got {args.lr}")
    _rdkit()
    try:
        name, smiles = resolve_molecule(args.molecule or "butane")
    except ValueError as err:
        raise ValueError(f"--molecule: {err}") from None
    kind = args.model or _resumed_kind(args.out, bool(args.resume)) or "torsional"
    if kind == "torsional" and not torsion_quadruples(parse_smiles(smiles)):  # before the conformers are made
        raise ValueError(f"--model torsional: {name} has no rotatable torsion (a single bond in no ring between two atoms "
                         "that each have another heavy neighbour); the torsional model needs one: use --model egnn")
    out = fresh_dir("sdeflow-molecules") if args.out is None else check_run_dir(
        args.out, resume=bool(args.resume), overwrite=args.overwrite, name="--out")
    start = time.perf_counter()
    data = generate_conformers(args.molecule or "butane", args.n_train or 2000, seed=args.seed, cache_dir=_cache(args))
    generated = time.perf_counter() - start
    config = TrainConfig(steps=args.steps or 2000, batch_size=args.batch_size or 64, lr=args.lr or 2e-3, warmup_steps=50,
                         ema_decay=0.995, seed=args.seed, progress=not quiet)
    start, cpu = time.perf_counter(), time.process_time()
    result = train_conformer_model(data, model=kind, config=config, width=args.width, layers=args.layers, out_dir=out,
                                   resume=bool(args.resume), overwrite=args.overwrite)
    trained, cpu = time.perf_counter() - start, time.process_time() - cpu
    report = {
        "run": str(out), "model": kind, "checkpoint": str(result.checkpoint), "steps": result.step,
        "final_loss": result.history[-1]["loss"] if result.history else None,
        "data": describe(data), "seconds": {"data": generated, "training": trained, "training_cpu": cpu},
    }
    text = (f"trained the {kind} model {result.step} steps on {len(data)} conformers of {data.name} ({data.n_atoms} atoms with hydrogens) "
            f"in {trained:.1f} s ({cpu:.1f} s of CPU; final loss {report['final_loss']}); run folder {out}\n"
            f"next: sdeflow molecules sample --ckpt {out}")
    emit(args, report, text)
    return 0


def _resumed_kind(out: Path | None, resume: bool) -> str | None:
    """With ``--resume`` and no ``--model``: the model of the run being resumed (runs from before the torsional
    model have no ``model`` entry and are EGNN runs); ``None`` when there is nothing to resume."""
    from ..training.checkpoint import read_checkpoint

    if not resume or out is None:
        return None
    try:
        info = read_checkpoint(out).config.get("data", {}).get("molecule")
    except (FileNotFoundError, ValueError):
        return None
    return info.get("model", "egnn") if isinstance(info, dict) else None


def _sample(args: argparse.Namespace) -> int:
    from ..applications.molecules import evaluate, generate_conformers, sample_conformers, write_sdf, write_xyz
    from ..applications.molecules.data import parse_smiles
    from ..nn import EGNN, TorsionNet
    from ..training.checkpoint import load_checkpoint_model
    from ._common import emit, prepare_out_dir, write_json

    if args.ckpt is None:
        raise ValueError("sdeflow molecules sample needs --ckpt (a run folder written by 'sdeflow molecules train')")
    fmt = args.format or "sdf"
    evaluate_too = not args.no_eval
    if fmt == "sdf" or evaluate_too:
        _rdkit()
    model, _, _, config = load_checkpoint_model(args.ckpt)
    info = config["data"].get("molecule")
    if not isinstance(model.net, (EGNN, TorsionNet)) or not isinstance(info, dict):
        raise ValueError(f"--ckpt {args.ckpt} was not written by 'sdeflow molecules train' (no EGNN or TorsionNet and molecule in its config)")
    kind = "torsional" if isinstance(model.net, TorsionNet) else "egnn"
    names = [f"conformers.{fmt}", "report.json"] + (["torsions.png", "energies.png"] if evaluate_too else [])
    out = prepare_out_dir(args.out, "sdeflow-molecules", names, args.overwrite)
    n = args.n or 500
    start, cpu = time.perf_counter(), time.process_time()
    # Defaults by measurement (docs/molecules.md): the torsional model's sharp basins want Heun's 50 steps (torsion JSD
    # 0.002-0.005 bits over three training seeds, against 0.004-0.016 with UniPC in 25); the EGNN keeps UniPC in 25.
    solver = args.solver or ("heun" if kind == "torsional" else None)
    steps = args.sample_steps or (50 if kind == "torsional" else 25)
    coords = sample_conformers(model, n, seed=args.seed, solver=solver, steps=steps,
                               progress=not bool(getattr(args, "quiet", False)))
    sampled, cpu = time.perf_counter() - start, time.process_time() - cpu
    report = {"molecule": info, "model": kind, "n": n, "solver": solver or "default (UniPC)", "steps": steps,
              "seconds": {"sampling": sampled, "sampling_cpu": cpu}, "file": str(out / f"conformers.{fmt}")}
    text = f"sampled {n} conformers of {info['name']} ({kind} model) in {sampled:.1f} s: {out / f'conformers.{fmt}'}"
    if fmt == "sdf":
        write_sdf(out / "conformers.sdf", parse_smiles(info["smiles"]), coords)
    else:
        from ..applications.molecules.model import ELEMENTS

        # the network's own atoms: no RDKit needed
        numbers = model.net.atomic_numbers if kind == "torsional" else [ELEMENTS[t] for t in model.net.atom_types]
        write_xyz(out / "conformers.xyz", numbers, coords)
    if evaluate_too:
        start = time.perf_counter()
        cache = _cache(args)
        held = generate_conformers(info["smiles"], n, seed=_HELDOUT_SEED + info["seed"], cache_dir=cache)
        floor = generate_conformers(info["smiles"], n, seed=_FLOOR_SEED + info["seed"], cache_dir=cache)
        held.name = floor.name = info["name"]
        metrics = evaluate(coords, held, floor, plots=out, progress=True)  # --quiet turns bars off
        report["seconds"]["evaluation"] = time.perf_counter() - start
        report["metrics"] = metrics
        s, f = metrics["samples"], metrics["floor"]
        rows = [("torsion JSD (bits)", "torsion_jsd"), ("COV-R", "cov_r"), ("MAT-R (A)", "mat_r"), ("COV-P", "cov_p"),
                ("MAT-P (A)", "mat_p"), ("bond error (A)", "bond_error")]
        lines = [f"{'metric':<28} {'samples':>10} {'floor':>10}"]
        for label, key in rows:
            if s[key] is not None:
                lines.append(f"{label:<28} {s[key]:>10.4f} {f[key]:>10.4f}")
        for kind in ("raw", "relaxed"):
            lines.append(f"{'median dE ' + kind + ' (kcal/mol)':<28} {s['energy_' + kind]['median']:>10.3f} "
                         f"{f['energy_' + kind]['median']:>10.3f}")
        text += "\n" + "\n".join(lines) + f"\n(COV at {metrics['threshold']} A heavy-atom RMSD; relaxed: {metrics['relax_iters']} MMFF steps)"
    write_json(out / "report.json", report)
    emit(args, report, text)
    return 0
