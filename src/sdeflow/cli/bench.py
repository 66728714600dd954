"""``sdeflow bench samplers``: the sampler benchmark against k-diffusion and diffusers.

The benchmark lives in the repository's ``benchmarks/samplers.py`` (peers are optional extras of the
benchmark, never of the package); this command finds that file and runs it.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

__all__ = ["register", "find_benchmark"]


def find_benchmark(name: str) -> Path:
    """``benchmarks/<name>.py`` from ``$SDEFLOW_BENCHMARKS``, the working directory or the source checkout."""
    here = Path(__file__).resolve()
    candidates = []
    if os.environ.get("SDEFLOW_BENCHMARKS"):
        candidates.append(Path(os.environ["SDEFLOW_BENCHMARKS"]))
    candidates += [Path.cwd() / "benchmarks", here.parents[3] / "benchmarks"]
    for folder in candidates:
        path = folder / f"{name}.py"
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"benchmarks/{name}.py not found (looked in {', '.join(str(c) for c in candidates)}); run from a source "
        "checkout of sdeflow or set SDEFLOW_BENCHMARKS to its benchmarks folder"
    )


def _run_samplers(args: argparse.Namespace) -> int:
    from ._common import prepare_out_dir

    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1; got {args.threads}")
    path = find_benchmark("samplers")
    out = None
    if args.out:
        out = prepare_out_dir(args.out, "sdeflow-bench", ["BENCHMARKS-samplers.md", "samplers.json"], args.overwrite,
                              patterns=["samplers_*.png"])
    spec = importlib.util.spec_from_file_location("sdeflow_benchmark_samplers", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses in the benchmark look their module up
    spec.loader.exec_module(module)
    argv = ["--threads", str(args.threads)]
    if args.quick:
        argv.append("--quick")
    if args.no_peers:
        argv.append("--no-peers")
    if out is not None:
        argv += ["--out", str(out / "BENCHMARKS-samplers.md"), "--json", str(out / "samplers.json"), "--figures", str(out)]
    return int(module.main(argv) or 0)


def register(subparsers) -> None:
    p = subparsers.add_parser("bench", help="run a benchmark (samplers: against k-diffusion and diffusers)")
    sub = p.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    s = sub.add_parser("samplers", help="error vs model calls on exact-score mixtures, peers when installed")
    s.add_argument("--quick", action="store_true", help="a smoke run: small samples, budgets 5, 10, 20")
    s.add_argument("--no-peers", action="store_true", help="skip k-diffusion and diffusers even if installed")
    s.add_argument("--out", default=None, help="folder for the report, raw JSON and plots (default: the repository)")
    s.add_argument("--overwrite", action="store_true", help="allow replacing an earlier report in --out")
    s.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    s.set_defaults(func=_run_samplers)
