"""Regenerate the solver-aware grids shipped in ``src/sdeflow/grids/optimized_grids.json``.

For each family of exact-score targets, solver and step count, Nelder-Mead on the noise levels
(:func:`sdeflow.grids.optimized.optimize_grid`) minimizes ``log RMS + w log median`` of the distance
to the exact probability-flow ODE solution on training noise (seeds from 10**7 on; the benchmark
uses seeds 0..). EDM process, noise 80 down to the optimized last level, then the denoising step.

    python benchmarks/optimize_grids.py --family ring2d --solvers ipndm:3 dpm_solver_pp_2m --steps 5 6 8 10 15 20 35 50

Families: ``ring2d``, ``mixture64d`` (one benchmark target each) and ``default`` (both benchmark
targets plus a 5-mode ring of radius 0.7 and std 0.1 and a 16-D, 8-component mixture, summed
objectives): the grid of the documented default configuration.
Runs on one thread; a family takes several minutes per solver. The shipped table came from, in order
(each step count starts from the Karras grid and from the grid of the next smaller stored count):

    optimize_grids.py --family ring2d --solvers ipndm:3 dpm_solver_pp_2m --steps 5 6 8 10 15 20 --iters 600
    optimize_grids.py --family default --solvers ipndm:4 --iters 400 --train 512
    optimize_grids.py --family mixture64d --solvers ipndm:3 --steps 5 6 8 10 --iters 600
    optimize_grids.py --family mixture64d --solvers tuned_ab --steps 5 6 8 10 --iters 5000
    optimize_grids.py --family default --solvers ipndm:4 --steps 6 8 --iters 1000 --train 1024
    optimize_grids.py --family default --solvers ipndm:4 --steps 20 --iters 400 --train 512
    optimize_grids.py --family default --solvers ipndm:4 --steps 35 --iters 1000 --train 1024
    optimize_grids.py --family mixture64d --solvers ipndm:3 --steps 15 --iters 600
    optimize_grids.py --family mixture64d --solvers tuned_ab --steps 6 --iters 5000
    optimize_grids.py --family mixture64d --solvers ipndm:3 --steps 20 --iters 600
    optimize_grids.py --family default --solvers ipndm:4 --steps 8 --iters 2000 --train 1024
    optimize_grids.py --family default --solvers ipndm:3 --steps 5 6 8 10 --iters 800 --train 2048 --weights 1 2 1 1

(the last: the grids of the default configuration's order-3 range, with the 64-D mixture's term
weighted twice, since its RMS is set by the few samples that end in another mode.)

Nelder-Mead is deterministic: these commands, in this order, give the table again (up to the warm
starts, which depend on what is stored when a count is optimized).
(``tuned_ab`` starts from the family's ``ipndm:3`` grid and from its own result with one step fewer.)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import sdeflow
from sdeflow import targets
from sdeflow.grids import Karras
from sdeflow.grids.optimized import _DATA, _interpolate, load_table, optimize_grid
from sdeflow.noise import randn
from sdeflow.processes import EDM

RHO_MAX, RHO_MIN = 80.0, 0.002
def mixture16d(seed: int = 7) -> targets.GaussianMixture:
    """A 16-D, 8-component mixture (means N(0, 0.6^2), stds log-uniform in [0.05, 0.5], Dirichlet(5) weights)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 0.6, size=(8, 16))
    stds = np.exp(rng.uniform(np.log(0.05), np.log(0.5), size=(8, 16)))
    return targets.GaussianMixture(rng.dirichlet(5.0 * np.ones(8)), means, stds=stds)


FAMILIES = {
    "ring2d": lambda: [targets.ring2d()],
    "mixture64d": lambda: [targets.mixture64d(seed=64)],
    "default": lambda: [targets.ring2d(), targets.mixture64d(seed=64), targets.ring2d(n_modes=5, radius=0.7, std=0.1),
                        mixture16d(seed=7)],
}


def parse_solver(text: str) -> tuple[str, dict]:
    name, _, order = text.partition(":")
    return name, ({"order": int(order)} if order else {})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--family", choices=sorted(FAMILIES), required=True)
    ap.add_argument("--solvers", nargs="+", default=["ipndm:3"])
    ap.add_argument("--steps", nargs="+", type=int, default=[5, 6, 8, 10, 15, 20, 35, 50])
    ap.add_argument("--train", type=int, default=1024, help="training noise draws per target")
    ap.add_argument("--median-weight", type=float, default=0.3)
    ap.add_argument("--iters", type=int, default=1500)
    ap.add_argument("--weights", nargs="+", type=float, default=None,
                    help="per-target weights of the objective, in the family's order (default: all 1)")
    ap.add_argument("--out", default=str(_DATA))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    proc = EDM(sigma_min=RHO_MIN, sigma_max=RHO_MAX)
    ref_proc = EDM(sigma_min=1e-6, sigma_max=RHO_MAX)
    problems = []
    for i, tgt in enumerate(FAMILIES[args.family]()):
        z = randn((args.train, tgt.dim), seeds=10**7 + 10**5 * i, dtype=torch.float64)
        ref = sdeflow.sample(tgt.model(ref_proc, "x0"), ref_proc, RHO_MAX * z, solver="adaptive_ode",
                             grid=torch.tensor([RHO_MAX, 1e-6, 0.0], dtype=torch.float64), rtol=1e-9, atol=1e-9).samples
        problems.append((tgt.model(proc, "x0"), RHO_MAX * z, ref))
    table = load_table() if Path(args.out) == _DATA else {"entries": []}
    entries = [e for e in table.get("entries", [])]
    for text in args.solvers:
        solver, options = parse_solver(text)
        previous = None
        for steps in sorted(args.steps):
            if previous is None:  # warm start from the stored grid with the most steps below this count
                below = [e for e in entries if e["family"] == args.family and e["solver"] == solver
                         and e["options"] == options and e["steps"] < steps]
                if below:
                    previous = max(below, key=lambda e: e["steps"])["levels"]
            t0 = time.time()

            def run(ts: torch.Tensor, solver=solver, options=options):
                return [sdeflow.sample(m, proc, x, solver=solver, grid=ts, check_finite=False, **options).samples
                        for m, x, _ in problems]

            karras = Karras()(proc, steps).tolist()[1:-1]
            starts = [karras]
            if previous is not None:
                starts.append(_interpolate([RHO_MAX] + previous, steps)[1:])
            best = None
            coefficients = None
            if solver == "tuned_ab":
                best = tune(problems, proc, args, steps, karras)
                coefficients = best[2]
            else:
                for init in starts:
                    levels, value = optimize_grid(run, [r for _, _, r in problems], RHO_MAX, init,
                                                  median_weight=args.median_weight, max_iter=args.iters,
                                                  knots=8 if steps > 8 else None, weights=args.weights)
                    if best is None or value < best[1]:
                        best = (levels, value)
            previous = best[0]
            entries = [e for e in entries if not (e["family"] == args.family and e["solver"] == solver
                                                  and e["options"] == options and e["steps"] == steps)]
            entry = {"family": args.family, "solver": solver, "options": options, "steps": steps,
                     "rho_max": RHO_MAX, "rho_min": RHO_MIN, "levels": [float(f"{v:.6g}") for v in best[0]],
                     "objective": round(best[1], 4), "median_weight": args.median_weight, "train": args.train}
            if args.weights is not None:
                entry["weights"] = args.weights
            if coefficients is not None:
                entry["coefficients"] = coefficients
            entries.append(entry)
            print(f"{args.family} {text} steps={steps} J={best[1]:.4f} ({time.time() - t0:.0f}s) levels={[round(v, 4) for v in best[0]]}", flush=True)
            entries.sort(key=lambda e: (e["family"], e["solver"], json.dumps(e["options"]), e["steps"]))
            Path(args.out).write_text(json.dumps({"version": 1, "entries": entries}, indent=1) + "\n")
    return 0


def tune(problems, proc, args, steps, karras):
    """``tuned_ab``: grid and per-step coefficients together. Starts: iPNDM(3) on the family's iPNDM(3)
    grid, and the tuned solution of one step fewer (its grid resampled, its last row repeated)."""
    from sdeflow.solvers.ipndm import AB_COEFFICIENTS
    from sdeflow.solvers.tuned import TunedAB

    table = load_table()["entries"]
    sizes = [min(i + 1, 3) for i in range(steps)]
    starts = []
    stored = [e for e in table if e["family"] == args.family and e["solver"] == "ipndm"
              and e["options"] == {"order": 3} and e["steps"] == steps]
    starts.append((stored[0]["levels"] if stored else karras, [b for k in sizes for b in AB_COEFFICIENTS[k - 1]]))
    fewer = [e for e in table if e["family"] == args.family and e["solver"] == "tuned_ab" and e["steps"] == steps - 1]
    if fewer:
        rows = [list(r) for r in fewer[0]["coefficients"]]
        rows.insert(len(rows) - 1, list(rows[-2]) if len(rows) > 1 else list(rows[-1]))
        rows = [r[:k] + [0.0] * (k - len(r)) for r, k in zip(rows, sizes)]
        levels = _interpolate([RHO_MAX] + fewer[0]["levels"], steps)[1:]
        starts.append((levels, [b for r in rows for b in r]))

    def rows_of(flat):
        out, j = [], 0
        for k in sizes:
            out.append(tuple(float(v) for v in flat[j:j + k]))
            j += k
        return tuple(out)

    def run(ts, flat):
        solver = TunedAB(coefficients=rows_of(flat))
        return [sdeflow.sample(m, proc, x, solver=solver, grid=ts, check_finite=False).samples for m, x, _ in problems]

    best = None
    for init_levels, init_coefs in starts:
        levels, flat, value = optimize_grid(run, [r for _, _, r in problems], RHO_MAX, init_levels,
                                            median_weight=args.median_weight, max_iter=args.iters, init_extra=init_coefs)
        if best is None or value < best[1]:
            best = (levels, value, [[float(f"{b:.8g}") for b in row] for row in rows_of(flat)])
    return best


if __name__ == "__main__":
    raise SystemExit(main())
