"""``sdeflow sample``: draw samples from an exact-score target (or a checkpoint) with any solver."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from .._utils import check_int
from ..distributed import on_main, parse_seed_range, sample_seed_range
from ._common import add_json_option, emit, parse_options, prepare_out_dir, save_array, write_json

__all__ = ["register", "run_sample"]

OUT_NAMES = ["samples.npz", "samples.pt", "samples.png", "metrics.json"]


def _build_target_model(args: argparse.Namespace):
    from .. import processes, targets
    from ..models import check_prediction

    target = targets.get(args.target, **parse_options(args.target_option, "--target-option", "std=0.1"))
    process = processes.get(args.process)
    prediction = check_prediction(args.prediction, "--prediction")
    return target, process, target.model(process, prediction)


def _solver_label(args: argparse.Namespace, options: dict) -> str:
    """The solver as the reports name it; ``--solver`` absent: the default configuration and its order."""
    if args.solver is not None or options:
        return args.solver or "ipndm"
    from ..pilot import PILOT_MAX_NFE
    from ..sample import DEFAULT_STEPS, default_solver

    budget = args.steps or args.nfe or DEFAULT_STEPS
    if budget <= PILOT_MAX_NFE and not args.grid:
        return "default (the configuration a pilot chose for this model and budget)"
    return f"default (unipc, order {default_solver(budget).order})"


def _is_grid_file(value: str | None) -> bool:
    """``--grid`` names a tuned-grid file (``.json`` or an existing file) rather than a grid rule."""
    from ..grids import available

    if value is None or value.lower() in available():
        return False
    return Path(value).suffix.lower() == ".json" or Path(value).exists()


def _load_grid_file(args: argparse.Namespace):
    """``--grid FILE``: the tuned grid, with ``args.solver``/``args.nfe`` taken from it or checked against it.

    Returns ``(tuned grid, solver options)``; the process is checked where it is known (before sampling).
    """
    from ..grids import load_tuned_grid

    tuned = load_tuned_grid(args.grid)
    where = f"--grid {args.grid}"
    given = parse_options(args.option)
    if args.solver is not None or given:
        tuned.check_solver(args.solver or tuned.solver, given, where=where)
    if args.nfe is not None and args.nfe != tuned.nfe:
        raise ValueError(f"{where} was tuned for nfe={tuned.nfe}; got --nfe {args.nfe}: omit --nfe (it comes from the file)")
    if args.steps is not None and args.steps != tuned.steps:
        raise ValueError(f"{where} has {tuned.steps} steps; got --steps {args.steps}: omit --steps (it comes from the file)")
    args.solver, args.nfe, args.steps = tuned.solver, tuned.nfe, None
    return tuned, dict(tuned.solver_options)


def _run_process(args: argparse.Namespace):
    """The process of this run: the checkpoint's (``--ckpt``) or ``--process``."""
    from .. import processes
    from ..training import read_checkpoint
    from ..training.checkpoint import process_from_config

    if args.ckpt is not None:
        return process_from_config(read_checkpoint(args.ckpt).config)
    return processes.get(args.process)


def _checkpoint_metrics(config: dict, samples: torch.Tensor, seed: int) -> dict:
    """A measure of the samples against the checkpoint's own data, where it names built-in data.

    Digits: the Frechet distance in the shipped classifier's features to the held-out digits, with
    its floor, and the classifier's confidence (:func:`sdeflow.training.digits_scores`). Built-in
    vector data (toys, mixtures): sliced W2 to as many held-out points. Data from a file: none (its
    held-out part is not known here; use ``sdeflow evaluate --data``).
    """
    from ..data import get_data
    from ..metrics import sliced_wasserstein2
    from ..training import digits_scores

    from ..data.sources import data_names

    name = (config.get("data") or {}).get("name")
    if name not in data_names():
        return {}
    if name == "digits":
        return {"metric_reference": "held-out digits", **digits_scores(samples)}
    try:
        source = get_data(name, n=2, n_heldout=samples.shape[0], normalize="none")
    except (ValueError, TypeError, OSError):
        return {}
    if source.heldout is None or tuple(source.heldout.shape[1:]) != tuple(samples.shape[1:]) or source.kind != "vector":
        return {}
    return {"metric_reference": f"{samples.shape[0]} held-out points of {name}",
            "sliced_wasserstein2": sliced_wasserstein2(samples.to(torch.float64), source.heldout.to(torch.float64), seed=seed)}


def run_checkpoint(args: argparse.Namespace, out: Path, tuned=None) -> dict:
    """``--ckpt``: sample a trained model (EMA weights) with any solver; nothing else is needed."""
    from .. import plots
    from ..grids import get as get_grid
    from ..solvers import get as get_solver
    from ..training import read_checkpoint, sample_checkpoint

    path = Path(args.ckpt)
    options = dict(tuned.solver_options) if tuned is not None else parse_options(args.option)
    solver = args.solver  # None: the default configuration
    # The checkpoint's config (of the newest checkpoint for a run folder), checked as it is read.
    config = read_checkpoint(path).config
    from ..distill.runs import CONSISTENCY_OBJECTIVES

    if solver is None and (config.get("objective") or {}).get("name") in CONSISTENCY_OBJECTIVES:
        solver = "consistency"  # a consistency model: its own multistep sampler (one call per step)
    name = solver or _solver_label(args, options)
    grid = tuned if tuned is not None else (get_grid(args.grid) if args.grid else None)
    objective = config.get("objective") or {}
    if objective.get("name") == "interpolant" and objective.get("field") == "denoiser":
        raise ValueError(f"{path} is a stochastic interpolant's denoiser E[z | x_t], not a sampler: sample the velocity "
                         "checkpoint, or both with sdeflow.transport.interpolant_sample (docs/transport.md)")
    if config.get("stochastic_sampling_valid") is False and bool(get_solver(solver or "ipndm", **options).stochastic):
        print(
            f"warning: {path} was trained with an optimal-transport coupling; its velocity is not a marginal "
            f"score, so the stochastic solver {name!r} does not sample its distribution (use a deterministic one)"
        )
    stats: dict = {}  # the model calls per sample and the steps, from the sampling loop
    start = time.perf_counter()
    samples, _ = sample_seed_range(
        lambda first, m: (sample_checkpoint(
            path, m, solver=solver, steps=args.steps, nfe=args.nfe, seed=first, label=args.label,
            guidance=1.0 if args.guidance is None else args.guidance, grid=grid, stats=stats, **options,
        ), None),
        args.seed, args.n, args.batch_size,
    )
    seconds = time.perf_counter() - start
    if out is None:  # a rank other than 0 under torchrun: its share is drawn and gathered, rank 0 writes
        return {}
    save_array(out / f"samples.{args.format}", samples)
    if samples.ndim == 4 or (samples.ndim == 3 and samples.shape[1] > 2):
        lo, hi = float(samples.min()), float(samples.max())
        plots.image_grid(out / "samples.png", samples[:64], value_range=(lo, hi), title=f"{path.name}: {name}")
    else:
        plots.scatter(out / "samples.png", samples, title=f"{path.name}: {name}")
    report = {"checkpoint": str(path), "solver": name, "solver_options": options, "n": args.n, "seed": args.seed,
              "steps": args.steps, "nfe_budget": args.nfe, "grid": args.grid, "seconds": seconds,
              "nfe": stats.get("nfe"), "steps_taken": stats.get("steps")}
    if tuned is not None:
        report["ts"] = list(tuned.ts)  # the tuned grid is used as given
    report.update(_checkpoint_metrics(config, samples, args.seed))
    write_json(out / "metrics.json", report)
    if args.json is not None:
        emit(args, report)
    if not args.quiet:
        print(f"{args.n} samples from {path} with {name} ({stats.get('nfe')} model calls per sample, {seconds:.2f} s)")
        if "sliced_wasserstein2" in report or "frechet_distance" in report:
            key = "sliced_wasserstein2" if "sliced_wasserstein2" in report else "frechet_distance"
            print(f"{key} to {report['metric_reference']}: {report[key]:.4f}")
        print(f"wrote {out / f'samples.{args.format}'}, {out / 'samples.png'}, {out / 'metrics.json'}")
    return report


def _resolve_seeds(args: argparse.Namespace) -> None:
    """``--seeds A-B`` sets ``--seed A --n B-A+1``; otherwise the defaults of ``--seed`` (0) and ``--n`` (2000)."""
    if args.seeds is not None:
        if args.n is not None or args.seed is not None:
            raise ValueError("--seeds A-B gives the seeds and the number of samples: drop --seed and --n (--num-samples)")
        seeds = parse_seed_range(args.seeds)
        args.seed, args.n = seeds.start, len(seeds)
    args.n = 2000 if args.n is None else args.n
    args.seed = 0 if args.seed is None else args.seed


def run_sample(args: argparse.Namespace) -> dict:
    """Sample, write samples / figure / metrics into the output folder and return the metrics.

    The seed range is cut into chunks of ``--batch-size`` seeds; under torchrun each process draws
    its own chunks (:func:`sdeflow.distributed.sample_seed_range`) and rank 0 gathers them in seed order
    and writes the files, which are those of a single-process run.
    """
    from .. import metrics, plots, sample
    from ..grids import get as get_grid

    _resolve_seeds(args)
    check_int(args.batch_size, "--batch-size")
    if args.n < 2:
        raise ValueError(f"--n must be >= 2; got {args.n}")
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0 (the first per-sample seed); got {args.seed}")
    from ..sdes.integrate import MAX_FIXED_STEPS

    for flag, value in (("--steps", args.steps), ("--nfe", args.nfe)):
        if value is not None and value > MAX_FIXED_STEPS:  # refused before the grid and the trajectory are allocated
            raise ValueError(f"{flag} must be <= {MAX_FIXED_STEPS}; got {value}")
    if args.floor_boot < 2:
        raise ValueError(f"--floor-boot must be >= 2 (replicates of the two-sample floor); got {args.floor_boot}")
    if args.ckpt is None and (args.label is not None or args.guidance is not None):
        given = " and ".join(f for f, v in (("--label", args.label), ("--guidance", args.guidance)) if v is not None)
        verb = "apply" if " and " in given else "applies"
        raise ValueError(f"{given} only {verb} to a conditional checkpoint (--ckpt); an exact-score --target has no classes: drop {given}")
    fmt = args.format
    tuned, options = _load_grid_file(args) if _is_grid_file(args.grid) else (None, parse_options(args.option))
    if tuned is not None:  # a grid of another process is refused before the output folder is made
        tuned.check_process(_run_process(args), where=f"--grid {args.grid}")
    # Rank 0 alone makes the output folder (its error, if any, ends every rank); the others write nothing.
    out = on_main(lambda: prepare_out_dir(args.out, "sdeflow-sample", [f"samples.{fmt}", "samples.png", "metrics.json"], args.overwrite))
    if args.ckpt is not None:
        return run_checkpoint(args, out, tuned)
    dtype = torch.float64 if args.float64 else torch.float32
    target, process, model = _build_target_model(args)
    grid = tuned if tuned is not None else (get_grid(args.grid) if args.grid else None)

    def draw(first: int, m: int):
        x = process.prior_sample((m, *target.event_shape), seeds=first, dtype=dtype)
        res = sample(
            model,
            process,
            x,
            solver=args.solver,
            steps=args.steps,
            nfe=args.nfe,
            grid=grid,
            seed=first + 10**9,  # the Brownian path's seeds, distinct from the initial noise's
            progress=not args.quiet and out is not None,
            **options,
        )
        return res.samples, (res.nfe, res.ts.tolist())

    start = time.perf_counter()
    samples, chunks = sample_seed_range(draw, args.seed, args.n, args.batch_size)
    seconds = time.perf_counter() - start
    if out is None:
        return {}
    nfe, ts = max(c[0] for c in chunks), chunks[0][1]  # adaptive solvers: the most calls of any chunk
    save_array(out / f"samples.{fmt}", samples)
    truth = target.sample(args.n, seeds=args.seed + 2 * 10**9, dtype=torch.float64)
    sw2 = metrics.sliced_wasserstein2(samples, truth, seed=0)
    floor = metrics.two_sample_floor(metrics.sliced_wasserstein2, target, args.n, n_boot=args.floor_boot, seed=1)
    report = {
        "target": args.target,
        "process": repr(process),
        "prediction": args.prediction,
        "solver": _solver_label(args, options),
        "solver_options": options,
        "steps": len(ts) - 1,
        "nfe": nfe,
        "grid": args.grid,
        "ts": ts,
        "n": args.n,
        "seed": args.seed,
        "seconds": seconds,
        "sliced_wasserstein2": sw2,
        "sliced_wasserstein2_floor": floor.value,
        "sliced_wasserstein2_floor_interval": [floor.low, floor.high],
    }
    plots.scatter(out / "samples.png", samples, reference=truth, labels=("samples", "true samples"),
                  title=f"{args.target}: {report['solver']}, {nfe} model calls")
    write_json(out / "metrics.json", report)
    if args.json is not None:
        emit(args, report)
    if not args.quiet:
        print(f"{args.n} samples with {report['solver']} ({nfe} model calls, {seconds:.2f} s)")
        print(f"sliced W2 to fresh true samples: {sw2:.4f} (two-sample floor {floor.value:.4f} [{floor.low:.4f}, {floor.high:.4f}])")
        print(f"wrote {out / f'samples.{fmt}'}, {out / 'samples.png'}, {out / 'metrics.json'}")
    return report


def register(sub) -> None:
    from .. import DEFAULT_SOLVER_NAME

    p = sub.add_parser("sample", help="sample an exact-score target or a trained checkpoint with any registered solver")
    p.add_argument("--ckpt", default=None, help="a checkpoint folder written by `sdeflow train` or `sdeflow distill` (needs no "
                   "other flag; a consistency model's default solver is `consistency`)")
    p.add_argument("--label", type=int, default=None, help="with --ckpt: class label of a conditional model")
    p.add_argument("--guidance", type=float, default=None,
                   help="with --ckpt and --label: classifier-free guidance scale (default 1, no guidance)")
    p.add_argument("--target", default="ring2d", help="exact-score target: ring2d, mixture64d, gaussian (default ring2d)")
    p.add_argument("--target-option", action="append", metavar="NAME=VALUE",
                   help="target option, repeatable (e.g. for gaussian: --target-option mean=0 --target-option std=1)")
    p.add_argument("--process", default="edm", help="process: vp, subvp, ve, edm, cosine, linear (default edm)")
    p.add_argument("--prediction", default="eps", help="prediction kind of the model: eps, x0, v, score, velocity")
    p.add_argument("--solver", default=None,
                   help=f"a name from `sdeflow solvers` (default: the default configuration, chosen per model and budget "
                        f"by a pilot among {DEFAULT_SOLVER_NAME} of orders 2 and 3 on four grids and iPNDM, docs/samplers.md)")
    p.add_argument("-o", "--option", action="append", metavar="NAME=VALUE", help="a solver option, repeatable (e.g. -o eta=0.5)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, default=None, help="number of steps")
    g.add_argument("--nfe", type=int, default=None, help="budget of model calls (never exceeded)")
    p.add_argument("--grid", default=None,
                   help="time grid: karras, uniform, logsnr, polynomial (default: the solver's), or a tuned-grid JSON file "
                        "written by `sdeflow tune-grid` (its solver, options and nfe are used; the process must match)")
    p.add_argument("--n", "--num-samples", dest="n", type=int, default=None,
                   help="number of samples (default 2000); under torchrun write --num-samples (torchrun claims --n)")
    p.add_argument("--seed", type=int, default=None, help="first per-sample seed (default 0)")
    p.add_argument("--seeds", default=None, metavar="A-B",
                   help="one sample per seed A..B (inclusive), in seed order; replaces --seed and --n")
    p.add_argument("--batch-size", type=int, default=4096,
                   help="seeds drawn at a time (default 4096); under torchrun each process draws whole batches")
    p.add_argument("--format", choices=["npz", "pt"], default="npz", help="sample file format")
    p.add_argument("--float64", action="store_true", help="sample in float64 (default float32)")
    p.add_argument("--floor-boot", type=int, default=20, help="replicates of the two-sample floor (default 20)")
    p.add_argument("--out", default=None, help="output folder (default: a fresh ./sdeflow-sample-N)")
    p.add_argument("--overwrite", action="store_true", help="allow replacing files in --out")
    add_json_option(p)
    p.set_defaults(func=lambda a: (run_sample(a), 0)[1], distributed=True)
