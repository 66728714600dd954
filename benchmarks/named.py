"""Named solvers on their default grids against the peers' same methods on their default schedules.

Issue 11 asks that a user who keeps their sampler and moves to sdeflow never gets worse samples: a
named sdeflow solver on the grid :func:`sdeflow.sample` gives it when no grid is passed must not lose to
the same method in diffusers (its default "linspace" timesteps on the 1000-step linear-beta table,
``final_sigmas_type="zero"``) or k-diffusion (its Karras grid, the schedule its samplers are used with).

Problems and protocol are those of ``benchmarks/samplers.py`` (ring2d and mixture64d, 4096 and 2048
samples) and ``benchmarks/family.py`` (the tuning and validation halves): EDM process, the same noise,
exact scores, float64, errors as per-sample distances to the probability-flow ODE solution from the same
noise. Peer rows are read from the runs stored by those scripts (``benchmarks/results/samplers.json``,
``benchmarks/results/family.{tuning,validation}.json``; peers are unchanged by sdeflow's changes), so
only sdeflow's named solvers run here.

Run: ``python benchmarks/named.py --split public`` (and ``tuning``, ``validation``; each saves its rows to
``benchmarks/results/named.<split>.json``), then ``python benchmarks/named.py --report`` writes
``BENCHMARKS-named.md`` from the saved rows. ``--quick``: two problems of the tuning half, budgets 5 and 10.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import family as F  # noqa: E402
import samplers as B  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

# (label, solver, options) -> the peers' labels of the same method on their default schedules
PAIRS: list[tuple[str, str, dict, tuple[str, ...]]] = [
    ("ddim", "ddim", {}, ("diffusers DDIM",)),
    ("dpm_solver_pp_2m", "dpm_solver_pp_2m", {}, ("diffusers DPMSolverMultistep 2M",)),
    ("dpmpp_2m", "dpmpp_2m", {}, ("diffusers DPMSolverMultistep 2M", "k-diffusion dpmpp_2m")),
    ("dpm_solver_pp_3m", "dpm_solver_pp_3m", {}, ("diffusers DPMSolverMultistep 3M", "k-diffusion dpmpp_3m")),
    ("unipc order=2", "unipc", {"order": 2}, ("diffusers UniPC 2",)),
    ("unipc order=3", "unipc", {"order": 3}, ("diffusers UniPC 3",)),
    ("deis order=3", "deis", {"order": 3}, ("diffusers DEIS 3",)),
    ("dpm_solver order=2", "dpm_solver", {"order": 2}, ("diffusers DPMSolverSinglestep 2", "k-diffusion dpm_2", "diffusers KDPM2")),
    ("dpm_solver order=3", "dpm_solver", {"order": 3}, ("diffusers DPMSolverSinglestep 3",)),
    ("dpm_solver_pp_2s", "dpm_solver_pp_2s", {}, ("k-diffusion dpmpp_2s",)),
    ("euler", "euler", {}, ("k-diffusion euler", "diffusers Euler")),
    ("heun", "heun", {}, ("k-diffusion heun", "diffusers Heun")),
    ("lms", "lms", {}, ("k-diffusion lms", "diffusers LMS")),
]


WORSE = 1.02
"""A cell is marked when some problem's ratio exceeds this (2 %: the same method on the same grid differs
from its peer by round-off only, ratio 1.00)."""


def configs() -> list[B.Config]:
    return [B.ours(f"sdeflow {label}", solver, grid="solver", **opts) for label, solver, opts, _ in PAIRS]


def problems(split: str, quick: bool) -> tuple[list[B.Problem], tuple[int, ...]]:
    if split == "public":
        return B.make_problems(4096, 2048), B.BUDGETS
    probs = F.problems(split, 256)
    return (probs[:2], (5, 10)) if quick else (probs, F.BUDGETS)


def peer_rows(split: str) -> list[dict]:
    if split == "public":
        return json.loads((RESULTS / "samplers.json").read_text())["rows"]
    return json.loads((RESULTS / f"family.{split}.json").read_text())


def table(rows: list[dict], peers: list[dict], key: str) -> list[str]:
    """Per pair and budget: ours / the best of the same method's peers, geometric mean [worst] over problems."""
    peer = {(r["problem"], r["config"], r["budget"]): r.get(key) for r in peers if key in r}
    budgets = sorted({r["budget"] for r in rows})
    lines = ["| sdeflow solver (default grid) | peers' same method | " + " | ".join(str(b) for b in budgets) + " |",
             "|---|---|" + "---|" * len(budgets)]
    for label, _, _, names in PAIRS:
        cells = []
        for b in budgets:
            ratios = []
            for r in rows:
                if r["config"] != f"sdeflow {label}" or r["budget"] != b or key not in r:
                    continue
                vals = [peer.get((r["problem"], n, b)) for n in names]
                vals = [v for v in vals if v is not None and math.isfinite(v)]
                if vals:
                    ratios.append(r[key] / max(min(vals), 1e-300) if math.isfinite(r[key]) else math.inf)
            if not ratios:
                cells.append("-")
                continue
            fin = [x for x in ratios if math.isfinite(x)]
            geo = math.exp(sum(math.log(max(x, 1e-300)) for x in fin) / len(fin)) if fin else math.inf
            worst = max(ratios)
            cells.append(f"{geo:.2f} [{worst:.3g}]" + (" **" if worst > WORSE else ""))
        lines.append(f"| `{label}` | {', '.join(names)} | " + " | ".join(cells) + " |")
    return lines


def report(splits: list[str]) -> str:
    out = ["# Named solvers on their default grids vs the peers' same methods", "",
           "Generated by `python benchmarks/named.py --report` from the rows of `python benchmarks/named.py --split "
           "public|tuning|validation` (issue 11). Each cell: sdeflow's solver on the grid `sdeflow.sample` picks when "
           "none is given, over the best of the listed peers (the same method on diffusers' default schedule or "
           "k-diffusion's Karras grid), geometric mean [worst] over the problems of the split; `**` marks a cell "
           "where some problem is more than 2 % worse than the peer. Protocol as in BENCHMARKS-samplers.md / BENCHMARKS-family.md "
           "(same noise, same references); peer rows from their stored runs.", ""]
    for split in splits:
        path = RESULTS / f"named.{split}.json"
        if not path.exists():
            continue
        rows = json.loads(path.read_text())
        peers = peer_rows(split)
        notes = sorted({r["rerun"] for r in rows if r.get("rerun")})
        if notes:
            out += [f"{split}: " + "; ".join(notes) + "; every other cell is from the full run of the split.", ""]
        for key in ("rms", "median"):
            out += [f"## {split}: {key.upper() if key == 'rms' else key} distance", ""] + table(rows, peers, key) + [""]
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=("public", "tuning", "validation"), help="run sdeflow's named solvers on this split")
    parser.add_argument("--report", action="store_true", help="write BENCHMARKS-named.md from the saved rows")
    parser.add_argument("--quick", action="store_true", help="two tuning problems, budgets 5 and 10, no files written")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--only", nargs="+", default=None, metavar="LABEL",
                        help="with --split: re-run only these solvers (their labels, e.g. 'dpm_solver order=3') and merge "
                             "the rows into the split's stored rows")
    parser.add_argument("--budgets", default=None, help="with --only: comma-separated budgets to re-run (default: all)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.quick:
        probs, budgets = problems("tuning", True)
        rows = B.evaluate(probs, configs(), budgets)
        print("\n".join(table(rows, peer_rows("tuning"), "rms")))
        return 0
    if args.split:
        t0 = time.time()
        probs, budgets = problems(args.split, False)
        chosen = configs()
        path = RESULTS / f"named.{args.split}.json"
        if args.only:
            labels = {f"sdeflow {label}" for label in args.only}
            unknown = labels - {c.label for c in chosen}
            if unknown:
                raise SystemExit(f"--only: unknown solver label(s) {sorted(unknown)}; known: {[label for label, *_ in PAIRS]}")
            chosen = [c for c in chosen if c.label in labels]
            if args.budgets:
                try:
                    budgets = tuple(int(b) for b in args.budgets.split(","))
                except ValueError:
                    raise SystemExit(f"--budgets must be comma-separated integers such as 5,10; got {args.budgets!r}") from None
        rows = B.evaluate(probs, chosen, budgets)
        for r in rows:
            r["split"] = args.split
        if args.only:  # merged: the re-run (solver, budget) cells replace the stored ones
            note = (f"`{', '.join(args.only)}` at {', '.join(str(b) for b in budgets)} calls re-run after the full run "
                    f"(`python benchmarks/named.py --split {args.split} --only ... --budgets ...`)")
            for r in rows:
                r["rerun"] = note
            redone = {(r["config"], r["budget"]) for r in rows}
            rows = [r for r in json.loads(path.read_text()) if (r["config"], r["budget"]) not in redone] + rows
        path.write_text(json.dumps(rows, indent=0))
        print(f"{args.split}: {len(rows)} rows in {time.time() - t0:.0f} s")
    if args.report or not args.split:
        text = report(["public", "tuning", "validation"])
        (ROOT / "BENCHMARKS-named.md").write_text(text + "\n")
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
