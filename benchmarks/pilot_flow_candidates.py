"""Does the log-SNR grid after a first step from ``T`` help the pilot on rectified flow? (issue 11)

For every problem of both halves of :func:`sdeflow.targets.family`, with the ``Linear`` process and the exact
velocity, the pilot chooses a configuration at 5 / 10 / 20 / 35 calls among the flow candidates without and
with :class:`~sdeflow.grids.LogSNRFromT`; each choice is then run from held-out noise (seeds from 0; the
pilot's are from 10**9) and scored by its RMS distance to the adaptive ODE solution (rtol = atol = 1e-9).
Prints one line per problem and budget and, per half and budget, the geometric mean, worst and best of the
ratio with / without. This measurement set :data:`sdeflow.pilot.FLOW_LOG_SNR_MIN_NFE`.

Run: ``python benchmarks/pilot_flow_candidates.py`` (about 6 minutes on one core).
"""

from __future__ import annotations

import math

import torch

import sdeflow
from sdeflow import pilot, targets
from sdeflow.grids import LogSNRFromT
from sdeflow.processes import Linear


def main() -> int:
    torch.set_num_threads(1)
    process = Linear()
    every = pilot.pilot_candidates

    def with_log_snr(proc, nfe=None):
        return every(proc)  # every flow candidate, whatever the budget

    def without(proc, nfe=None):
        return tuple(c for c in every(proc) if not isinstance(c.grid, LogSNRFromT))

    geo = lambda a: math.exp(sum(math.log(x) for x in a) / len(a))  # noqa: E731
    ratios: dict = {}
    try:
        for split in ("tuning", "validation"):
            for fp in targets.family(split):
                t = fp.target
                model = t.model(process, "velocity")
                n = 256 if t.dim <= 64 else 64
                x = process.prior_sample((n, t.dim), seeds=0, dtype=torch.float64)
                ref = sdeflow.sample(model, process, x, solver="adaptive_ode", rtol=1e-9, atol=1e-9,
                                     grid=torch.tensor([process.T, process.t_min, 0.0], dtype=torch.float64)).samples
                for budget in (5, 10, 20, 35):
                    out = []
                    for cands in (without, with_log_snr):
                        pilot.pilot_candidates = cands
                        pilot.clear_cache()
                        c = pilot.choose_configuration(model, process, (t.dim,), nfe=budget, dtype=torch.float64).candidate
                        y = sdeflow.sample(model, process, x, solver=c.solver, grid=c.grid, nfe=budget, **c.options).samples
                        d = (y - ref).norm(dim=1)
                        out.append((float(d.pow(2).mean().sqrt()), float(d.median()), c.label))
                    ratios.setdefault((split, budget), []).append(out[1][0] / out[0][0])
                    print(split, fp.name, budget, "%.3g [%.3g] %s -> %.3g [%.3g] %s" % (*out[0], *out[1]), flush=True)
    finally:
        pilot.pilot_candidates = every
        pilot.clear_cache()
    for (split, budget), v in sorted(ratios.items()):
        print(f"{split} {budget}: RMS with / without, geometric mean {geo(v):.3f}, worst {max(v):.2f}, best {min(v):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
