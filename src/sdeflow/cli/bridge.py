"""``sdeflow bridge``: a learned Schrodinger bridge (SB-CFM / [SF]2M or DSBM-IMF) between two data sets.

Thin: it loads both sides with :func:`sdeflow.data.get_data`, calls
:func:`sdeflow.transport.bridges.train_sbcfm` or :func:`~sdeflow.transport.bridges.run_dsbm`, carries
held-out source samples to the target with the learned SDE (and, for SB-CFM, its probability-flow
ODE) and reports the exact W2 to held-out target samples.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

from .train import _positive_int  # the one integer-flag parser of the training commands

__all__ = ["register", "run_bridge_command"]


def register(subparsers) -> None:
    """Add the ``bridge`` command (``--threads`` and ``--quiet`` are the shared options)."""
    from ._common import add_json_option

    p = subparsers.add_parser(
        "bridge",
        help="learn a Schrodinger bridge between two distributions (SB-CFM or DSBM-IMF)",
        description=(
            "Learn the Schrodinger bridge for a Brownian reference of diffusion --sigma from --source (t = 1) to "
            "--target (t = 0): --method sbcfm (minibatch Schrodinger plan, flow and score regression; Tong et al. "
            "2024) or dsbm (iterative Markovian fitting; Shi et al. 2023). Held-out source samples are carried to the "
            "target by the learned SDE (Euler-Maruyama) and, for sbcfm, its probability-flow ODE (heun); the samples "
            "go to OUT/samples.npz and the exact W2 to held-out target data is reported."
        ),
    )
    p.add_argument("--method", choices=("sbcfm", "dsbm"), required=True, help="SB-CFM / [SF]2M or DSBM-IMF")
    p.add_argument("--source", required=True, help="source data (t = 1): 'noise', a 2-D toy, a mixture preset or a file")
    p.add_argument("--target", required=True, help="target data (t = 0): a 2-D toy, a mixture preset or a file")
    p.add_argument("--sigma", type=float, default=1.0, help="the Brownian reference's diffusion coefficient (> 0)")
    p.add_argument("--n-data", type=_positive_int, default=20_000, help="training-set size for sampled data")
    p.add_argument("--steps", type=_positive_int, default=2000, help="optimizer steps of each network fit")
    p.add_argument("--iterations", type=_positive_int, default=3, help="DSBM's IMF iterations")
    p.add_argument("--n-pairs", type=_positive_int, default=20_000, help="size of each DSBM coupling")
    p.add_argument("--width", type=_positive_int, default=256, help="MLP width")
    p.add_argument("--depth", type=_positive_int, default=3, help="MLP residual blocks")
    p.add_argument("--batch-size", type=_positive_int, default=256, help="minibatch size")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    p.add_argument("--sde-steps", type=_positive_int, default=100, help="Euler-Maruyama steps of the sampled SDE")
    p.add_argument("--eval", type=_positive_int, default=2000, metavar="N", help="held-out samples carried and compared")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    p.add_argument("--out", type=Path, required=True, help="output folder (samples.npz, report.json)")
    p.add_argument("--overwrite", action="store_true", help="replace samples.npz and report.json in --out")
    add_json_option(p)
    p.set_defaults(func=run_bridge_command)


def _load(name: str, flag: str, n: int, seed: int, shape=None):
    import torch

    from ..data import get_data
    from ..noise.rng import randn
    from ._common import reading

    if name == "noise":
        if shape is None:
            raise ValueError(f"{flag} noise needs the other side's shape: give noise as --source only")
        return randn((n,) + shape, seeds=seed * 1_000_003), randn((n,) + shape, seeds=seed * 1_000_003 + 500_000_000)
    with reading(name, flag):
        src = get_data(name, n=n, seed=seed, normalize="none")
    held = src.heldout if src.heldout is not None else src.x
    return src.x.to(torch.float32), held.to(torch.float32)


def run_bridge_command(args: argparse.Namespace) -> int:
    """``sdeflow bridge``."""
    import json

    import numpy as np

    from ..metrics import wasserstein2
    from ..processes import Linear
    from ..sample import sample
    from ..transport import euler_grid
    from ..transport.bridges import BridgeConfig, run_dsbm, simulate_bridge, train_sbcfm
    from .._utils import atomic_write_bytes
    from ._common import emit, prepare_out_dir, write_json

    quiet = bool(getattr(args, "quiet", False))
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0; got {args.seed}")
    if args.target == "noise":
        raise ValueError("--target noise: the target is data (t = 0); put the noise on --source")
    config = BridgeConfig(sigma=args.sigma, steps=args.steps, iterations=args.iterations, batch_size=args.batch_size,
                          lr=args.lr, width=args.width, depth=args.depth, n_pairs=args.n_pairs, seed=args.seed,
                          progress=not quiet)
    out = prepare_out_dir(args.out, "bridge", ["samples.npz", "report.json"], args.overwrite)
    x0, held0 = _load(args.target, "--target", args.n_data, args.seed)
    x1, held1 = _load(args.source, "--source", args.n_data, args.seed + 1, tuple(x0.shape[1:]))
    if x0.shape[1:] != x1.shape[1:]:
        raise ValueError(
            f"--source {args.source} has items of shape {tuple(x1.shape[1:])} and --target {args.target} of shape "
            f"{tuple(x0.shape[1:])}; a bridge needs the same shape on both sides"
        )
    n = min(args.eval, held0.shape[0], held1.shape[0])
    start, ref = held1[:n], held0[:n]
    report = {"method": args.method, "sigma": args.sigma, "source": args.source, "target": args.target, "n": n}
    samples = {}
    if args.method == "sbcfm":
        result = train_sbcfm(x0, x1, config)
        samples["ode"] = sample(result.velocity_model, Linear(), start, prediction="velocity", solver="heun",
                                grid=euler_grid(20)).samples
        report["final_loss"] = {k: v[-1] for k, v in result.losses.items() if v}
    else:
        result = run_dsbm(x0, x1, config)
        report["fits"] = result.fits
    samples["sde"] = simulate_bridge(result.sde("backward"), start, steps=args.sde_steps, seed=args.seed)
    for kind, x in samples.items():
        report[f"w2_{kind}"] = wasserstein2(x, ref)
    buf = io.BytesIO()
    np.savez(buf, **{k: v.numpy() for k, v in samples.items()}, source=start.numpy())
    atomic_write_bytes(out / "samples.npz", buf.getvalue())
    write_json(out / "report.json", report)
    emit(args, report, json.dumps(report, indent=2))
    return 0
