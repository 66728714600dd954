"""Synthetic Heston return paths from a flow model: stylized facts and option prices against the simulator and a floor.

The pipeline of ``sdeflow finance train|sample`` (issue 18, finance), end to end:

* data: ``--paths`` paths of 64 daily log-returns of the default Heston model
  (:data:`sdeflow.applications.finance_paths.DEFAULT_HESTON`, full-truncation Euler at 8 steps a day,
  seed 0);
* model: flow matching (linear path, velocity) with an MLP over the 64 normalized returns, trained
  ``--steps`` steps at batch 256 on one thread (the training time is the wall time on this machine);
* samples: ``--n`` paths by :func:`sdeflow.sample` (Heun, ``--sample-steps`` steps);
* reference: ``--n`` fresh simulator paths (seed 1,000,003); floor: another ``--n`` (seed 2,000,003),
  the distance a perfect model would show;
* metrics (:func:`~sdeflow.applications.finance_paths.compare`): kurtosis, ACF of ``|r|`` and ``r`` at
  lags 1..10, leverage ``corr(r_t, |r_{t+k}|)``, and calls at strikes 80..120 (T = 64/252) against
  Heston's semi-closed form, with z-scores in Monte Carlo standard errors, raw and with the empirical
  martingale correction.

Writes BENCHMARKS-finance.md, benchmarks/results/finance_paths.json and four pictures under
benchmarks/figures/ (finance_*.png).

    OMP_NUM_THREADS=1 python benchmarks/finance_paths.py            # the documented run
    OMP_NUM_THREADS=1 python benchmarks/finance_paths.py --quick    # a smoke run (minutes)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch

from sdeflow.applications import finance_paths as fp

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_SEED, FLOOR_SEED = 1_000_003, 2_000_003


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2,000 paths, 300 steps, width 64, 2,000 samples (a smoke run)")
    p.add_argument("--paths", type=int, default=20_000, help="simulated training paths")
    p.add_argument("--steps", type=int, default=8000, help="optimizer steps (8000: the documented run; 3000 was the first)")
    p.add_argument("--width", type=int, default=256, help="MLP width")
    p.add_argument("--depth", type=int, default=3, help="MLP residual blocks")
    p.add_argument("--n", type=int, default=20_000, help="synthetic, reference and floor paths each")
    p.add_argument("--sample-steps", type=int, default=32, help="Heun steps of the sampler")
    p.add_argument("--report", type=Path, default=ROOT / "BENCHMARKS-finance.md")
    p.add_argument("--figures", type=Path, default=ROOT / "benchmarks" / "figures")
    p.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "finance_paths.json")
    args = p.parse_args(argv)
    if args.quick:
        args.paths, args.steps, args.width, args.n = 2000, 300, 64, 2000
    torch.set_num_threads(1)
    out: dict = {"machine": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                 "load_average_1min_start": round(os.getloadavg()[0], 2), "paths": args.paths, "steps": args.steps,
                 "width": args.width, "depth": args.depth, "n": args.n, "sample_steps": args.sample_steps}
    tic = time.perf_counter()
    train = fp.simulate_returns(n_paths=args.paths, seed=0)
    out["simulation_seconds"] = round(time.perf_counter() - tic, 1)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        tic, cpu = time.perf_counter(), time.process_time()
        result = fp.train_path_model(train, steps=args.steps, width=args.width, depth=args.depth, out_dir=run)
        out["training_seconds"] = round(time.perf_counter() - tic, 1)
        out["training_cpu_seconds"] = round(time.process_time() - cpu, 1)
        out["final_loss"] = result.history[-1]["loss"] if result.history else None
        tic = time.perf_counter()
        synthetic = fp.sample_paths(run, args.n, steps=args.sample_steps)
        out["sampling_seconds"] = round(time.perf_counter() - tic, 1)
    reference = fp.simulate_returns(n_paths=args.n, seed=REFERENCE_SEED)
    floor = fp.simulate_returns(n_paths=args.n, seed=FLOOR_SEED)
    report = fp.compare(synthetic, reference, floor, model=fp.DEFAULT_HESTON)
    out["load_average_1min_end"] = round(os.getloadavg()[0], 2)
    out["report"] = report
    with tempfile.TemporaryDirectory() as tmp:
        for path in fp.plot_report(synthetic, reference, report, tmp):
            args.figures.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, args.figures / f"finance_{path.name}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    args.report.write_text(render(out, argv))
    print(f"wrote {args.report}, {args.json} and {args.figures}/finance_*.png")
    return 0


def render(out: dict, argv) -> str:
    rep = out["report"]
    facts, dist, pricing = rep["facts"], rep["distance"], rep["pricing"]
    command = "OMP_NUM_THREADS=1 python benchmarks/finance_paths.py" + ("" if not argv else " " + " ".join(argv))
    lines = [
        "## Finance: synthetic Heston return paths",
        "",
        f"`{command}` on {out['cores']} shared cores (load average {out['load_average_1min_start']} at the start, "
        f"{out['load_average_1min_end']} at the end), one torch thread.",
        "",
        f"Flow matching, MLP width {out['width']} depth {out['depth']} over 64 normalized daily log-returns, "
        f"{out['steps']} steps at batch 256 on {out['paths']:,} simulated paths: **{out['training_seconds']:.0f} s** wall "
        f"({out['training_cpu_seconds']:.0f} s CPU); {out['n']:,} samples by Heun in {out['sample_steps']} steps: "
        f"{out['sampling_seconds']:.0f} s. Reference and floor: {out['n']:,} fresh simulator paths each.",
        "",
        "| stylized fact | synthetic | simulator (reference) | floor (held-out simulation) |",
        "| --- | --- | --- | --- |",
    ]
    rows = [("daily sd", "std", None, "{:.5f}"), ("kurtosis (3 = Gaussian)", "kurtosis", None, "{:.2f}"),
            ("ACF of abs r, lag 1", "acf_abs", 0, "{:.3f}"), ("ACF of abs r, lag 5", "acf_abs", 4, "{:.3f}"),
            ("ACF of abs r, lag 10", "acf_abs", 9, "{:.3f}"), ("ACF of r, lag 1", "acf_raw", 0, "{:.3f}"),
            ("leverage corr(r_t, abs r_t+1)", "leverage", 0, "{:.3f}"), ("leverage corr(r_t, abs r_t+5)", "leverage", 4, "{:.3f}")]
    for label, key, i, fmt in rows:
        cells = [fmt.format(facts[s][key] if i is None else facts[s][key][i]) for s in ("synthetic", "reference", "floor")]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Distances to the reference (mean absolute gap over lags 1..10 for the correlations):", "",
              "| distance | synthetic | floor |", "| --- | --- | --- |"]
    for key in ("kurtosis_gap", "std_ratio", "acf_abs_gap", "acf_raw_gap", "leverage_gap"):
        lines.append(f"| {key} | {dist['synthetic'][key]:.4f} | {dist['floor'][key]:.4f} |")
    lines += ["", f"European calls, T = {pricing['maturity']:.4f} y, S0 = {pricing['s0']:g}: prices (z-score in standard errors "
              "against Heston's semi-closed form) and implied volatilities:", "",
              "| strike | Heston semi-closed | synthetic | synthetic, martingale-corrected | floor |", "| --- | --- | --- | --- | --- |"]
    for j, k in enumerate(pricing["strikes"]):
        cells = [f"{pricing['exact'][j]:.4f} ({pricing['exact_implied_vol'][j]:.4f})"]
        for s in ("synthetic", "synthetic_martingale", "floor"):
            e = pricing[s]
            cells.append(f"{e['price'][j]:.4f} (z {e['z'][j]:+.2f}; {e['implied_vol'][j]:.4f})")
        lines.append(f"| {k:g} | " + " | ".join(cells) + " |")
    lines += ["", "![paths](benchmarks/figures/finance_paths.png)", "![acf](benchmarks/figures/finance_acf.png)",
              "![histogram](benchmarks/figures/finance_histogram.png)", "![smile](benchmarks/figures/finance_smile.png)", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
