"""``sdeflow bench NAME``: run one of the repository's benchmarks.

Every benchmark lives in the repository's ``benchmarks/NAME.py`` (peers are optional extras of the
benchmark, never of the package); this command finds that file and runs its ``main(argv)``.
``bench samplers`` has options of its own; every other benchmark named in ``BENCHMARKS`` takes its
arguments verbatim (``sdeflow bench inverse --quick`` runs ``benchmarks/inverse.py --quick``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

__all__ = ["register", "find_benchmark", "BENCHMARKS"]

# The benchmarks that ``sdeflow bench NAME ARGS...`` runs by passing ARGS to ``benchmarks/NAME.py``'s
# ``main(argv)``; each file's ``--help`` documents its options. Adding a benchmark is adding its file and
# one line here.
BENCHMARKS = {
    "family": "sampler defaults on the tuning and validation family of exact-score mixtures",
    "named": "named solvers on their default grids against the peers' same methods on their default schedules",
    "networks": "samplers on the demo's trained networks (digits U-Net, moons flow) against peers",
    "tuned_networks": "tune-grid on the demo's networks: UniPC on a grid tuned on the model against the default and the best peer",
    "transport": "reflow's one-call goal, the [SF]2M 2-D table (OT-CFM, SB-CFM, DSBM-IMF, rectified flow) and DSBM's Gaussian bridge benchmark",
    "corrupted": "clean priors from noisy or masked Gaussian-mixture data (double Tweedie, SURE, DiEM) against clean and naive training",
    "latent": "a latent digits model (autoencoder + MLP) against the pixel U-Net: Frechet distance and CPU per sample at 10 calls",
    "corrupted_manifold": "DiEM's manifold protocol at reduced scale: Sinkhorn divergence to clean points after each EM round",
    "inverse": "posterior methods against exact mixture posteriors (Cardoso et al.) and digits restoration",
    "adapters": "cost per step of sdeflow solvers inside a diffusers loop (DiffusersScheduler) against diffusers' own",
    "sde_adjoint": "sdeint_adjoint against backpropagation and torchsde's adjoint: gradient error, memory held, time, by steps",
    "few_step": "consistency distillation and training against exact teachers (W2 at 1 and 2 calls) and on digits (Frechet distance at 1, 2, 4 calls)",
    "distributed": "training and sampling throughput with 1 and 2 torchrun processes; communication per step on N GPUs",
    "finance_paths": "a flow model of Heston return paths: stylized facts and call prices against the simulator and a held-out floor, training time",
    "audio": "pitch-conditional notes: training time, pitch accuracy and Frechet distance in the pitch classifier's features against held-out floors",
}


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


def _load(name: str):
    """The module of ``benchmarks/<name>.py``, registered in sys.modules (its dataclasses look it up)."""
    path = find_benchmark(name)
    spec = importlib.util.spec_from_file_location(f"sdeflow_benchmark_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _run_generic(args: argparse.Namespace) -> int:
    module = _load(args.benchmark)
    return int(module.main(list(args.args)) or 0)


def _run_samplers(args: argparse.Namespace) -> int:
    from ._common import prepare_out_dir

    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1; got {args.threads}")
    out = None
    if args.out:
        out = prepare_out_dir(args.out, "sdeflow-bench", ["BENCHMARKS-samplers.md", "samplers.json"], args.overwrite,
                              patterns=["samplers_*.png"])
    module = _load("samplers")
    argv = ["--threads", str(args.threads)]
    if args.quick:
        argv.append("--quick")
    if args.no_peers:
        argv.append("--no-peers")
    if out is not None:
        argv += ["--out", str(out / "BENCHMARKS-samplers.md"), "--json", str(out / "samplers.json"), "--figures", str(out)]
    return int(module.main(argv) or 0)


def register(subparsers) -> None:
    p = subparsers.add_parser("bench", help="run a benchmark of the repository's benchmarks/ folder")
    sub = p.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    s = sub.add_parser("samplers", help="error vs model calls on exact-score mixtures, peers when installed")
    s.add_argument("--quick", action="store_true", help="a smoke run: small samples, budgets 5, 10, 20")
    s.add_argument("--no-peers", action="store_true", help="skip k-diffusion and diffusers even if installed")
    s.add_argument("--out", default=None, help="folder for the report, raw JSON and plots (default: the repository)")
    s.add_argument("--overwrite", action="store_true", help="allow replacing an earlier report in --out")
    s.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    s.set_defaults(func=_run_samplers)
    for name, text in sorted(BENCHMARKS.items()):
        g = sub.add_parser(name, help=text, add_help=False,
                           description=f"runs benchmarks/{name}.py; its options: sdeflow bench {name} --help")
        g.add_argument("args", nargs=argparse.REMAINDER, help=f"arguments of benchmarks/{name}.py")
        g.set_defaults(func=_run_generic, pass_through=True)
