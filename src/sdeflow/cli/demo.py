"""``sdeflow demo``: the README's main job, end to end.

1. Trains a U-Net on the scikit-learn 8x8 digits and a flow on a 2-D toy, samples each with a fast
   deterministic solver and a stochastic one, and writes an image grid, trajectory figures, the
   checkpoints and a metrics JSON (:func:`sdeflow.training.demo.run_demo`).
2. Samples the 2-D ring of 8 Gaussians with its exact score with four solvers and writes a figure
   of the reverse trajectories fanning from noise to the modes, with sliced W2 and its floor.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from ._common import add_json_option, emit, prepare_out_dir, write_json

__all__ = ["register", "run_demo"]

# (label, solver, options, steps): a fast ODE solver, first-order ODE, ancestral and reverse SDE.
DEMO_RUNS = [
    ("Heun (EDM), 18 steps", "heun", {}, 18),
    ("DDIM, 30 steps", "ddim", {}, 30),
    ("DDPM ancestral, 100 steps", "ddpm", {}, 100),
    ("Euler-Maruyama reverse SDE, 200 steps", "euler_maruyama", {}, 200),
]
OUT_NAMES = ["trajectories.png", "samples.png", "metrics.json"]
RING_DIR = "exact_score_ring"


def run_demo(out: Path, n: int = 2000, seed: int = 0, progress: bool = True) -> dict:
    """Run the demo into folder ``out``; returns the metrics written to ``metrics.json``."""
    from .. import metrics, processes, sample, targets
    from ..plots import scatter
    from ._figures import trajectory_fan

    target = targets.ring2d()
    process = processes.EDM()
    model = target.model(process, "eps")
    x = process.prior_sample((n, 2), seeds=seed, dtype=torch.float32)
    truth = target.sample(n, seeds=seed + 2 * 10**9, dtype=torch.float64)
    floor = metrics.two_sample_floor(metrics.sliced_wasserstein2, target, n, n_boot=20, seed=1)
    runs, report = [], {"target": "ring2d (8 Gaussians, std 0.05)", "process": repr(process), "n": n, "solvers": {}}
    report["sliced_wasserstein2_floor"] = {"value": floor.value, "interval": [floor.low, floor.high]}
    samples_by_label = {}
    for label, solver, options, steps in DEMO_RUNS:
        start = time.perf_counter()
        r = sample(
            model, process, x, solver=solver, steps=steps, seed=seed + 10**9, return_trajectory=True,
            progress=progress, **options,
        )
        seconds = time.perf_counter() - start
        sw2 = metrics.sliced_wasserstein2(r.samples, truth, seed=0)
        report["solvers"][solver] = {"label": label, "nfe": r.nfe, "seconds": seconds, "sliced_wasserstein2": sw2}
        # Stochastic solvers: five paths over the density of all the samples (more jagged paths hide the picture).
        stochastic = r.trajectory is not None and solver in ("ddpm", "euler_maruyama")
        traj = r.trajectory[:, :5] if stochastic else r.trajectory
        runs.append((f"{label}\n{r.nfe} model calls, SW2 {sw2:.3f}", r.ts, traj, r.samples if stochastic else None))
        samples_by_label[label] = r.samples
    # Divide x_t by sqrt(alpha^2 v + sigma^2) / sqrt(v), v the data's variance per coordinate, so the
    # noise at t = T and the data at t = 0 are drawn at one scale.
    v = float(target.covariance.diagonal().mean())

    def scale(ts: torch.Tensor) -> torch.Tensor:
        return torch.sqrt((process.alpha(ts) ** 2 * v + process.sigma(ts) ** 2) / v)

    trajectory_fan(out / "trajectories.png", runs, scale=scale, n_paths=120,
                   title="reverse trajectories, rescaled to unit marginal variance, fanning from noise to the 8 modes")
    best = min(report["solvers"], key=lambda k: report["solvers"][k]["sliced_wasserstein2"])
    best_label = report["solvers"][best]["label"]
    scatter(out / "samples.png", samples_by_label[best_label], reference=truth, labels=("samples", "true samples"),
            title=f"best: {best_label}")
    write_json(out / "metrics.json", report)
    return report


def run(args: argparse.Namespace) -> int:
    if args.n < 2:  # checked before the training part, which runs first
        raise ValueError(f"--n must be >= 2 (samples per solver); got {args.n}")
    names = [RING_DIR]
    if not args.skip_training:
        from ..training.demo import DEMO_OUTPUTS

        names += list(DEMO_OUTPUTS)
    out = prepare_out_dir(args.out, "sdeflow-demo", names, args.overwrite)
    start = time.perf_counter()
    written: list[Path] = []
    r: dict = {}
    if not args.skip_training:
        from ..training.demo import run_demo as run_training_demo

        r = run_training_demo(out, quick=args.quick, progress=not args.quiet, overwrite=args.overwrite)
        for key in ("digits_grid", "toy_trajectories", "toy_samples", "metrics_json", "digits_checkpoint", "toy_checkpoint"):
            if r.get(key):
                written.append(Path(r[key]))
    ring = out / RING_DIR
    ring.mkdir(exist_ok=True)
    report = run_demo(ring, n=args.n, seed=args.seed, progress=not args.quiet)
    floor = report["sliced_wasserstein2_floor"]
    lines = [f"\nexact-score ring of 8 Gaussians, {report['n']} samples per solver",
             f"{'solver':<40}{'model calls':>12}{'sliced W2':>12}"]
    for s in report["solvers"].values():
        lines.append(f"{s['label']:<40}{s['nfe']:>12}{s['sliced_wasserstein2']:>12.4f}")
    lines.append(f"{'two-sample floor (perfect sampler)':<40}{'':>12}{floor['value']:>12.4f}")
    written += [ring / name for name in OUT_NAMES]
    seconds = time.perf_counter() - start
    lines.append(f"\nsdeflow demo finished in {seconds:.1f} s; files written:")
    lines += [f"  {path.resolve()}" for path in written]
    summary = {"seconds": seconds, "exact_score_ring": report, "files": [str(p.resolve()) for p in written]}
    if r:
        summary["training"] = r
    emit(args, summary, "\n".join(lines))
    return 0


def register(sub) -> None:
    p = sub.add_parser("demo", help="the main job: train a digits U-Net and a 2-D flow, sample them and an exact-score ring "
                                    "with several solvers, and draw the pictures (minutes on a CPU; --quick for a smoke run)")
    p.add_argument("--out", default=None, help="output folder (default: a fresh ./sdeflow-demo-N)")
    p.add_argument("--overwrite", action="store_true", help="allow replacing an earlier demo's files in --out")
    p.add_argument("--n", "--num-samples", dest="n", type=int, default=2000, help="samples per solver (default 2000; --num-samples under torchrun)")
    p.add_argument("--seed", type=int, default=0, help="first per-sample seed")
    p.add_argument("--quick", action="store_true", help="a shorter training (for a smoke test)")
    p.add_argument("--skip-training", action="store_true", help="only the exact-score part (no training)")
    add_json_option(p)
    p.set_defaults(func=run)
