"""``sdeflow tune-grid`` on the benchmark networks: the default configuration's solver (UniPC, order 2 up
to 10 calls, 3 above) on a grid tuned on the network itself, against the default and the best peer.

Issue 11's goal 1 asks for an sdeflow solver at half the best peer's error from 5 to 20 calls on the two
real networks; a grid tuned on the model (in the spirit of Align Your Steps) is the suite's strongest
candidate there. The grid is tuned with :func:`sdeflow.grids.tune_grid` on pilot noise with seeds from
``10**7`` (64 draws, 64 held-out validation draws, ``--max-iter`` Nelder-Mead iterations), then evaluated
exactly as ``benchmarks/networks.py`` evaluates every sampler: the same noise (seeds ``0..n-1``, disjoint
from the pilot), the same cached references, RMS and median distance to the exact ODE solution.

Run: ``python benchmarks/tuned_networks.py moons --budgets 5 8 10 20`` (and ``digits``); one line of JSON
per budget, and ``--json FILE`` keeps them. Slow: each budget runs the tuner (about 400 sampler runs on 64
samples) and, for the digits U-Net, takes minutes of CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import networks as N  # noqa: E402

from sdeflow.grids import tune_grid  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("network", choices=("digits", "moons"), help="which benchmark network")
    parser.add_argument("--budgets", type=int, nargs="+", default=[5, 8, 10, 20], help="model calls per sample")
    parser.add_argument("--max-iter", type=int, default=200, help="Nelder-Mead iterations of the tuner")
    parser.add_argument("--quick", action="store_true", help="budget 5 only, 20 iterations, 16 digits / 500 moons")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    budgets, iters = ([5], 20) if args.quick else (args.budgets, args.max_iter)
    probs = N.make_problems(n_digits=16 if args.quick else 64, n_moons=500 if args.quick else 2000)
    problem = {p.name: p for p in probs}[args.network]
    rows = []
    for b in budgets:
        order = 2 if b <= 10 else 3
        t0 = time.time()
        tuned = tune_grid(problem.model, problem.process, problem.prediction, "unipc", b, order=order,
                          event_shape=tuple(problem.z.shape[1:]), n_pilot=64, n_validation=64, seed=10**7,
                          max_iter=iters, progress=False, dtype=problem.dtype)
        seconds = time.time() - t0
        row = N.evaluate([N.ours(f"unipc-{order} tuned grid", "unipc", grid=tuned, order=order)], [b], [problem],
                         progress=False)[0]
        row.update(tune_seconds=seconds, validation_before=tuned.validation_before.as_dict(),
                   validation_after=tuned.validation_after.as_dict())
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
