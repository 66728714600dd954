"""``sdeflow reflow``: the rectified-flow pipeline (1-RF, couplings, k-RF, one-step distillation) in one command.

Thin: it parses, loads the two sides with :func:`sdeflow.data.get_data` and calls
:func:`sdeflow.transport.run_reflow`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .train import _positive_int  # the one integer-flag parser of the training commands

__all__ = ["register", "run_reflow_command", "load_coupling_file"]


def register(subparsers) -> None:
    """Add the ``reflow`` command (``--threads`` and ``--quiet`` are the shared options)."""
    from ._common import add_json_option

    p = subparsers.add_parser(
        "reflow",
        help="rectified flow with reflow and one-step distillation between two distributions",
        description=(
            "Train 1-rectified flow from --source (Gaussian noise by default, or any data) to --data, generate its "
            "coupling with an ODE solver of the suite, train 2- (and k-) rectified flow on it and, with --distill, a "
            "one-step model. Every stage is checkpointed under OUT (rf1/, coupling1.pt, rf2/, ..., distill/, "
            "report.json) and --resume continues an interrupted run. Straightness and normalized path energy are "
            "reported at each stage; with --eval N also the exact W2 of N samples drawn with 1 and 2 Euler steps."
        ),
    )
    p.add_argument("--data", required=True, help="target: a 2-D toy (8gaussians, moons, ...), a mixture preset or a .npy/.npz/.pt file")
    p.add_argument("--source", default="noise", help="source: 'noise' (standard Gaussian) or data like --data")
    p.add_argument("--data-key", default=None, help="array name inside an .npz/.pt file")
    p.add_argument("--coupling", type=Path, default=None,
                   help="a .pt/.npy file of packed pairs (n, 2, *event): the first round trains on it instead of independent pairs")
    p.add_argument("--n-data", type=_positive_int, default=100_000, help="training-set size for sampled data")
    p.add_argument("--rounds", type=_positive_int, default=2, help="rectified flows to train (2: 1-RF then 2-RF)")
    p.add_argument("--distill", action="store_true", help="distill the last round into a one-step model")
    p.add_argument("--steps", type=_positive_int, default=4000, help="optimizer steps of 1-RF")
    p.add_argument("--reflow-steps", type=_positive_int, default=4000, help="optimizer steps of each later round")
    p.add_argument("--distill-steps", type=_positive_int, default=2000, help="optimizer steps of the one-step distillation")
    p.add_argument("--batch-size", type=_positive_int, default=512, help="minibatch size of every stage")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (AdamW, warm-up and cosine decay)")
    p.add_argument("--width", type=_positive_int, default=256, help="MLP width")
    p.add_argument("--depth", type=_positive_int, default=3, help="MLP residual blocks")
    p.add_argument("--n-pairs", type=_positive_int, default=20_000, help="size of each generated coupling")
    p.add_argument("--solver", default="heun", help="deterministic solver that generates the couplings")
    p.add_argument("--solver-steps", type=_positive_int, default=32, help="steps of that solver from t = 1 to 0")
    p.add_argument("--eval", type=int, default=0, metavar="N", help="exact W2 of N samples per stage against held-out data (0: none)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    p.add_argument("--out", type=Path, required=True, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue the run in --out (finished stages are kept)")
    add_json_option(p)
    p.set_defaults(func=run_reflow_command)


def load_coupling_file(path: Path, event_shape: tuple[int, ...]):
    """Packed pairs ``(n, 2, *event_shape)`` from a ``.pt`` or ``.npy`` file, checked against the data's items."""
    import numpy as np
    import torch

    if not path.exists():
        raise ValueError(f"--coupling {path}: no such file")
    if not path.is_file():
        raise ValueError(f"--coupling {path} is not a file; expected a .pt or .npy file of packed pairs (n, 2, *event)")
    if path.suffix == ".npy":
        pairs = torch.from_numpy(np.load(path, allow_pickle=False))
    elif path.suffix == ".pt":
        pairs = torch.load(path, weights_only=True, map_location="cpu")
    else:
        raise ValueError(f"--coupling {path}: expected a .pt or .npy file of packed pairs (n, 2, *event)")
    if not isinstance(pairs, torch.Tensor) or pairs.ndim < 3 or pairs.shape[1] != 2 or tuple(pairs.shape[2:]) != event_shape:
        shape = tuple(pairs.shape) if isinstance(pairs, torch.Tensor) else type(pairs).__name__
        raise ValueError(
            f"--coupling {path} does not match the data: expected packed pairs (n, 2, *{event_shape}) for items of "
            f"shape {event_shape} (pairs[:, 0] target, pairs[:, 1] source); got {shape}"
        )
    return pairs.to(torch.float32)


def run_reflow_command(args: argparse.Namespace) -> int:
    """``sdeflow reflow``."""
    import json

    import torch

    from ..data import get_data
    from ..metrics import wasserstein2
    from ..noise.rng import randn
    from ..processes import Linear
    from ..sample import sample
    from ..transport import ReflowConfig, euler_grid, run_reflow
    from ._common import check_writable, emit, reading

    quiet = bool(getattr(args, "quiet", False))
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0; got {args.seed}")
    if args.eval < 0:
        raise ValueError(f"--eval must be >= 0 (samples for the W2 evaluation); got {args.eval}")
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} is a file; expected a run folder")
    if args.out.is_dir() and any(args.out.iterdir()) and not args.resume:
        raise FileExistsError(f"--out {args.out} already holds files; continue its run with --resume or choose a new folder")
    check_writable(args.out, "--out")
    config = ReflowConfig(
        rounds=args.rounds, distill=args.distill, steps=args.steps, reflow_steps=args.reflow_steps,
        distill_steps=args.distill_steps, batch_size=args.batch_size, lr=args.lr, width=args.width, depth=args.depth,
        n_pairs=args.n_pairs, solver=args.solver, solver_steps=args.solver_steps, seed=args.seed,
        progress=not quiet,
    )
    with reading(args.data, "--data"):
        target = get_data(args.data, n=args.n_data, seed=args.seed, normalize="none", key=args.data_key)
    source = "noise"
    if args.source != "noise":
        with reading(args.source, "--source"):
            src = get_data(args.source, n=args.n_data, seed=args.seed + 1, normalize="none", key=args.data_key)
        if src.event_shape != target.event_shape:
            raise ValueError(
                f"--source {args.source} has items of shape {src.event_shape} and --data {args.data} of shape "
                f"{target.event_shape}; transport needs the same shape on both sides"
            )
        source = src.x
    coupling = None
    if args.coupling is not None:
        with reading(args.coupling, "--coupling"):
            coupling = load_coupling_file(args.coupling, target.event_shape)
    result = run_reflow(
        target.x, source, coupling=coupling, config=config, out_dir=args.out, resume=args.resume,
        data_info={"name": str(args.data), "source": str(args.source)}, log=None if quiet else (lambda line: print(line, flush=True)),
    )
    report = {"out": str(args.out), "stages": result.stages}
    if args.eval and target.heldout is not None:
        n = min(args.eval, target.heldout.shape[0])
        ref = target.heldout[:n]
        if isinstance(source, str):
            x1 = randn((n,) + target.event_shape, seeds=3_000_000_000 + args.seed)
        else:
            x1 = src.heldout[:n] if src.heldout is not None else source[:n]
        for stage in report["stages"]:
            model = result.models[stage["stage"]]
            for k in (1, 2):
                out = sample(model, Linear(), x1, prediction="velocity", solver="euler", grid=euler_grid(k)).samples
                stage[f"w2_euler{k}"] = wasserstein2(out, ref)
    text = json.dumps(report, indent=2) + (
        f"\nsample a stage with: sdeflow sample --ckpt {args.out / result.stages[-1]['stage']} --solver euler --steps 1")
    emit(args, report, text)
    return 0
