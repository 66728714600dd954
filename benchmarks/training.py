"""Training benchmarks: 2-D Wasserstein-2 (Tong et al. protocol), digits Frechet distance, throughput, demo time.

Usage (from the repository root, one thread per process recommended on a shared machine)::

    OMP_NUM_THREADS=1 python benchmarks/training.py w2 --out benchmarks/results/training_w2.jsonl
    OMP_NUM_THREADS=1 python benchmarks/training.py digits --out benchmarks/results/training_digits.json
    OMP_NUM_THREADS=1 python benchmarks/training.py throughput
    python benchmarks/training.py demo                      # wall time of sdeflow.training.demo.run_demo

``w2``: Gaussian -> moons and Gaussian -> 8gaussians (the torchdyn / Tong et al. definitions in
:mod:`sdeflow.data.toys`), 5 seeds, exact W2 (POT network simplex) between 10,000 generated and
10,000 fresh data points, for OT-CFM, I-CFM and denoising score matching (cosine process with v
prediction; VP with eps prediction as a contrast), each with the same MLP and training budget; the
two-sample floor (10,000 vs 10,000 data points).
Results are appended as JSON lines as they come, so a partial run is still usable.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from sdeflow.data import get_data, sample_toy
from sdeflow.metrics import wasserstein2
from sdeflow.nn import MLP, UNet
from sdeflow.processes import VP, Cosine, Linear
from sdeflow.training import DenoisingScoreMatching, DiffusionModel, FlowMatching, TrainConfig, Trainer, digits_scores, draw_samples

METHODS = {
    "ot-cfm": lambda: (FlowMatching(Linear(), "velocity", coupling="exact"), "velocity"),
    "i-cfm": lambda: (FlowMatching(Linear(), "velocity", coupling="independent"), "velocity"),
    "dsm-vp-eps": lambda: (DenoisingScoreMatching(VP(), "eps"), "eps"),
    "dsm-cosine-v": lambda: (DenoisingScoreMatching(Cosine(), "v"), "v"),
}


def _env() -> dict:
    return {"threads": torch.get_num_threads(), "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
            "load_average_1min": os.getloadavg()[0]}


def run_w2(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if out.exists():
        for line in out.read_text().splitlines():
            rec = json.loads(line)
            done.add((rec["data"], rec["method"], rec.get("seed")))
    n = args.n
    for data in args.data:
        if (data, "floor", None) not in done:
            tic = time.perf_counter()
            floor = wasserstein2(sample_toy(data, n, 10_001), sample_toy(data, n, 10_002), max_points=n)
            rec = {"data": data, "method": "floor", "seed": None, "w2": floor, "n": n, "seconds": time.perf_counter() - tic}
            with open(out, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
            print(rec, flush=True)
        for method in args.methods:
            for seed in range(args.seeds):
                if (data, method, seed) in done:
                    continue
                objective, prediction = METHODS[method]()
                model = DiffusionModel(MLP((2,), args.width, args.depth, seed=seed), objective.process, prediction)
                train = sample_toy(data, args.n_train, seed)
                config = TrainConfig(steps=args.steps, batch_size=args.batch, lr=args.lr, warmup_steps=100,
                                     ema_decay=0.999, seed=seed, progress=False)
                tic = time.perf_counter()
                result = Trainer(model, objective, train, config=config).fit()
                train_s = time.perf_counter() - tic
                ref = sample_toy(data, n, 20_000 + seed)
                for text in args.samplers:
                    solver, _, count = text.partition(":")
                    options = {"steps": int(count)} if count else {"rtol": 1e-5, "atol": 1e-5}
                    tic = time.perf_counter()
                    x = draw_samples(result.ema_model, objective.process, (2,), n, solver=solver, seed=1_000_000 * (seed + 1),
                                     **options)
                    sample_s = time.perf_counter() - tic
                    tic = time.perf_counter()
                    w2 = wasserstein2(x, ref, max_points=n)
                    steps = options.get("steps")
                    rec = {"data": data, "method": method, "seed": seed, "w2": w2, "n": n, "steps": args.steps, "batch": args.batch,
                           "width": args.width, "depth": args.depth, "solver": solver, "solver_steps": steps,
                           "nfe": (2 * steps - 1 if solver == "heun" else steps) if steps else "adaptive",
                           "train_seconds": train_s, "samples_per_second": result.samples_per_second,
                           "sample_seconds": sample_s, "w2_seconds": time.perf_counter() - tic, **_env()}
                    with open(out, "a") as fh:
                        fh.write(json.dumps(rec) + "\n")
                    print(rec, flush=True)
    summarize_w2(out)


def summarize_w2(path: Path) -> None:
    recs = [json.loads(line) for line in Path(path).read_text().splitlines()]
    print(f"\n| data | method | W2 mean +- std (seeds) | floor |")
    print("|---|---|---|---|")
    floors = {r["data"]: r["w2"] for r in recs if r["method"] == "floor"}
    groups: dict[tuple[str, str], list[float]] = {}
    for r in recs:
        if r["method"] != "floor":
            groups.setdefault((r["data"], f'{r["method"]} ({r["solver"]}, {r["nfe"]} NFE, {r["steps"]} steps)'), []).append(r["w2"])
    for (data, method), vals in sorted(groups.items()):
        std = statistics.stdev(vals) if len(vals) > 1 else float("nan")
        print(f"| {data} | {method} | {statistics.mean(vals):.3f} +- {std:.3f} ({len(vals)}) | {floors.get(data, float('nan')):.3f} |")


def run_digits(args: argparse.Namespace) -> None:
    source = get_data("digits")
    process = VP()
    objective = DenoisingScoreMatching(process, "eps")
    net = UNet(1, (8, 8), args.channels, (1, 2), 1)
    model = DiffusionModel(net, process, "eps")
    config = TrainConfig(steps=args.steps, batch_size=args.batch, lr=2e-3, warmup_steps=50, ema_decay=0.995, progress=True)
    tic = time.perf_counter()
    result = Trainer(model, objective, source.x, config=config).fit()
    train_s = time.perf_counter() - tic
    report = {"steps": args.steps, "batch": args.batch, "channels": args.channels, "train_seconds": train_s,
              "samples_per_second": result.samples_per_second, **_env(), "solvers": {}}
    for solver, steps in (("dpm_solver_pp_2m", 10), ("dpm_solver_pp_2m", 25), ("dpm_solver_pp_2m_sde", 25), ("euler_maruyama", 200)):
        x = draw_samples(result.ema_model, process, (1, 8, 8), 1438, solver=solver, steps=steps, seed=0)
        report["solvers"][f"{solver}/{steps}"] = digits_scores(x)
        print(solver, steps, report["solvers"][f"{solver}/{steps}"], flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


def run_throughput(args: argparse.Namespace) -> None:
    cases = {
        "mlp-2d (width 128, depth 3, batch 256, OT-CFM)": (FlowMatching(coupling="exact"), MLP((2,), 128, 3), sample_toy("moons", 20_000), 256),
        "mlp-2d (width 128, depth 3, batch 256, I-CFM)": (FlowMatching(), MLP((2,), 128, 3), sample_toy("moons", 20_000), 256),
        "unet-digits (16 ch, batch 128, DSM)": (DenoisingScoreMatching(VP(), "eps"), UNet(1, (8, 8), 16, (1, 2), 1), get_data("digits").x, 128),
        "unet-digits (32 ch, batch 128, DSM)": (DenoisingScoreMatching(VP(), "eps"), UNet(1, (8, 8), 32, (1, 2), 1), get_data("digits").x, 128),
    }
    for name, (objective, net, data, batch) in cases.items():
        model = DiffusionModel(net, objective.process, objective.prediction)
        Trainer(model, objective, data, config=TrainConfig(steps=5, batch_size=batch, progress=False)).fit()  # warm-up
        result = Trainer(model, objective, data, config=TrainConfig(steps=args.steps, batch_size=batch, progress=False)).fit()
        print(json.dumps({"case": name, "samples_per_second": round(result.samples_per_second, 1), **_env()}), flush=True)


def run_demo_time(args: argparse.Namespace) -> None:
    from sdeflow.training.demo import run_demo

    out = Path(args.out)
    tic = time.perf_counter()
    result = run_demo(out, quick=args.quick, progress=False)
    print(json.dumps({"demo_seconds": time.perf_counter() - tic, **_env(), "metrics": result["metrics"]}, indent=2, default=float))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("w2")
    w.add_argument("--data", nargs="+", default=["moons", "8gaussians"])
    w.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    w.add_argument("--seeds", type=int, default=5)
    w.add_argument("--n", type=int, default=10_000)
    w.add_argument("--n-train", type=int, default=100_000)
    w.add_argument("--steps", type=int, default=5000)
    w.add_argument("--batch", type=int, default=256)
    w.add_argument("--lr", type=float, default=1e-3)
    w.add_argument("--width", type=int, default=128)
    w.add_argument("--depth", type=int, default=3)
    w.add_argument("--samplers", nargs="+", default=["heun:25"],
                   help="samplers for each trained model: SOLVER:STEPS (e.g. heun:25 = 49 NFE) or an adaptive solver "
                        "name (adaptive_ode, rtol = atol = 1e-5)")
    w.add_argument("--out", default="benchmarks/results/training_w2.jsonl")
    w.set_defaults(func=run_w2)
    d = sub.add_parser("digits")
    d.add_argument("--steps", type=int, default=3000)
    d.add_argument("--batch", type=int, default=128)
    d.add_argument("--channels", type=int, default=32)
    d.add_argument("--out", default="benchmarks/results/training_digits.json")
    d.set_defaults(func=run_digits)
    t = sub.add_parser("throughput")
    t.add_argument("--steps", type=int, default=100)
    t.set_defaults(func=run_throughput)
    m = sub.add_parser("demo")
    m.add_argument("--out", default="/tmp/sdeflow-demo-bench")
    m.add_argument("--quick", action="store_true")
    m.set_defaults(func=run_demo_time)
    s = sub.add_parser("summary")
    s.add_argument("path")
    s.set_defaults(func=lambda a: summarize_w2(Path(a.path)))
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
