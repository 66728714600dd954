"""``sdeflow distill``: few-step students of a trained teacher (consistency distillation, progressive distillation).

Thin: it parses, validates and calls :mod:`sdeflow.distill` and :mod:`sdeflow.training`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from .train import _positive_int

__all__ = ["register", "run_distill"]


def register(subparsers) -> None:
    """Add the ``distill`` command."""
    from ._common import add_json_option, deprecated_alias
    p = subparsers.add_parser(
        "distill",
        help="distill a trained model into a one- or few-step sampler (consistency or progressive distillation)",
        description=(
            "Distill a teacher checkpoint. --method cd: consistency distillation (Song et al. 2023) of the teacher's "
            "probability-flow ODE, one teacher ODE step per level pair (Heun by default), EMA target network; the "
            "student starts from the teacher's weights and samples with solver 'consistency' in 1, 2, ... calls. "
            "--method pd: progressive distillation (Salimans & Ho 2022), --rounds halvings of a DDIM grid of "
            "--start-steps steps, each round a run folder OUT/roundR. Checkpoints go to OUT (cd) or OUT/roundR (pd); "
            "--resume continues exactly."
        ),
    )
    p.add_argument("--teacher", required=True, type=Path, help="the teacher's checkpoint or run folder")
    p.add_argument("--method", required=True, choices=("cd", "pd"), help="cd: consistency distillation; pd: progressive distillation")
    p.add_argument("--out", required=True, type=Path, help="run folder")
    p.add_argument("--data", default=None, help="training data (default: the teacher's)")
    p.add_argument("--n-data", type=_positive_int, default=None, help="training-set size for sampled data")
    p.add_argument("--steps", type=_positive_int, default=2000, help="optimizer steps (per round for pd)")
    p.add_argument("--batch-size", type=_positive_int, default=256, help="minibatch size")
    p.add_argument("--lr", type=float, default=1e-4, help="peak learning rate")
    p.add_argument("--warmup", type=int, default=100, help="warm-up steps")
    p.add_argument("--grad-clip", type=float, default=1.0, help="clip the gradient norm to this (0: no clipping)")
    p.add_argument("--ema-decay", type=float, default=None,
                   help="cd: the target network's EMA decay mu (default 0.95); pd: the sampling EMA (default 0.999)")
    p.add_argument("--levels", type=_positive_int, default=18, help="cd: the discretization N of the noise levels")
    p.add_argument("--solver", default="heun", help="cd: the deterministic solver of the teacher's ODE step")
    p.add_argument("--distance", choices=("l2", "pseudo_huber"), default="l2", help="cd: the distance of the loss")
    p.add_argument("--sigma-data", type=float, default=0.5, help="cd: sigma_data of the boundary parameterization")
    p.add_argument("--rounds", type=int, default=None, help="pd: halvings (default: down to 1 step)")
    p.add_argument("--start-steps", type=_positive_int, default=64, help="pd: the teacher's DDIM steps in round 1")
    p.add_argument("--eval-nfe", default="1,2", help="model calls per sample of the final evaluation, e.g. 1,2,4")
    p.add_argument("--eval-n", type=int, default=1000, help="samples of the final evaluation (0: none)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw of the run")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    p.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    p.add_argument("--ckpt-every", type=int, default=500, help="steps between checkpoints (0: only at the end)")
    deprecated_alias(p, "--no-progress", "--quiet", "quiet", flag=True)
    add_json_option(p)
    p.set_defaults(func=run_distill)


def _nfe_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise ValueError(f"--eval-nfe must be comma-separated integers such as 1,2,4; got {text!r}") from err
    if not values or min(values) < 1:
        raise ValueError(f"--eval-nfe must list model-call counts >= 1; got {text!r}")
    return values


def run_distill(args: argparse.Namespace) -> int:
    """``sdeflow distill``."""
    import torch

    from ..distill import ConsistencyDistillation, progressive_distillation
    from ..distill.evaluation import evaluate_few_step
    from ._common import emit
    from ..distill.runs import student_from_teacher, teacher_data
    from ..grids import UniformLogSNR, UniformT
    from ..training import TrainConfig, Trainer, check_device, check_run_dir, load_checkpoint_model
    from ._common import check_writable, reading

    if getattr(args, "threads", None):  # set by the CLI's shared --threads where it exists
        torch.set_num_threads(args.threads)
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0; got {args.seed}")
    if args.warmup < 0:
        raise ValueError(f"--warmup must be >= 0 (learning-rate warm-up steps); got {args.warmup}")
    if args.rounds is not None and args.rounds < 1:
        raise ValueError(f"--rounds must be a positive number of halvings; got {args.rounds}")
    if args.resume and args.overwrite:
        raise ValueError("--resume continues the run in --out and --overwrite replaces it; give one of them")
    nfes = _nfe_list(args.eval_nfe)
    if args.eval_n < 0:
        raise ValueError(f"--eval-n must be >= 0 (0: no evaluation); got {args.eval_n}")
    if args.method == "cd":
        check_run_dir(args.out, resume=args.resume, overwrite=args.overwrite, name="--out")
    check_writable(args.out, "--out")
    with reading(args.teacher, "--teacher"):
        teacher, process, prediction, tconfig = load_checkpoint_model(args.teacher)
    if teacher.num_classes > 0:
        raise ValueError("the teacher is class-conditional; distillation here trains unconditional students")
    with reading(args.data, "--data"):
        source, x = teacher_data(tconfig, n=args.n_data, seed=args.seed, data=args.data)
    if tuple(x.shape[1:]) != tuple(tconfig["data"]["event_shape"]):
        raise ValueError(f"--data items have shape {tuple(x.shape[1:])}, the teacher's {tuple(tconfig['data']['event_shape'])}")
    info = {**tconfig["data"], "name": tconfig["data"].get("name") if args.data is None else args.data}
    ema = args.ema_decay if args.ema_decay is not None else (0.95 if args.method == "cd" else 0.999)
    check_device("cpu")
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup,
                         grad_clip=args.grad_clip, ema_decay=ema, seed=args.seed, ckpt_every=args.ckpt_every,
                         progress=not args.quiet)
    start, cpu0 = time.perf_counter(), time.process_time()
    summary: dict = {"method": args.method, "teacher": str(args.teacher)}
    if args.method == "cd":
        objective = ConsistencyDistillation(teacher, process, prediction, levels=args.levels, solver=args.solver,
                                            distance=args.distance, sigma_data=args.sigma_data,
                                            teacher_path=str(Path(args.teacher).resolve()))
        result = Trainer(student_from_teacher(teacher), objective, x, config=config, out_dir=args.out,
                         data_info=info).fit(resume=args.resume, overwrite=args.overwrite)
        f = objective.wrap(result.ema_model)
        summary.update(checkpoint=str(result.checkpoint), steps=result.step,
                       final_loss=result.history[-1]["loss"] if result.history else None)
        runs = [("consistency", f, None, n) for n in nfes]
    else:
        n = args.start_steps
        rounds = args.rounds if args.rounds is not None else max(1, n.bit_length() - 1)
        if n % (2**rounds):
            raise ValueError(f"--start-steps {n} cannot be halved --rounds {rounds} times; use a multiple of {2**rounds}")
        # Uniform in log-SNR (DDIM's natural grid); uniform in t where the log-SNR is infinite at T (rectified flow).
        finite = bool(torch.isfinite(process.log_snr(torch.tensor(process.T, dtype=torch.float64))))
        ts = (UniformLogSNR() if finite else UniformT())(process, n)
        out = progressive_distillation(teacher, x, ts, rounds=rounds, config=config, out_dir=args.out, resume=args.resume,
                                       overwrite=args.overwrite, data_info=info)
        summary["rounds"] = [{"steps": r.steps, "train_steps": r.train_steps, "cpu_seconds": round(r.cpu_seconds, 1),
                              "final_loss": r.final_loss, "checkpoint": str(r.checkpoint), "ts": r.ts.tolist()} for r in out]
        runs = [("ddim", r.model, r.ts, r.steps) for r in out if r.steps in nfes or r is out[-1]]
    summary["wall_seconds"] = round(time.perf_counter() - start, 1)
    summary["cpu_seconds"] = round(time.process_time() - cpu0, 1)
    if args.eval_n:
        summary["evaluation"] = evaluate_few_step(runs, process, source, tconfig["data"], n=args.eval_n, seed=args.seed)
    emit(args, summary, json.dumps(summary, indent=2, default=float))
    return 0
