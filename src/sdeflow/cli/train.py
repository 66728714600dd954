"""``sdeflow train`` and ``sdeflow evaluate``: from data to a checkpoint, and a checkpoint to numbers.

Thin: the commands parse, validate and call :mod:`sdeflow.training`, :mod:`sdeflow.data` and
:mod:`sdeflow.nn`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

__all__ = ["register", "build_network", "run_train", "run_evaluate"]


EVAL_CHUNK = 256
"""Seeds per sampling batch (and images per feature batch) of ``sdeflow evaluate``: its unit of work under torchrun."""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1; got {text}")
    return value


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 1,2; got {text!r}") from err


def register(subparsers) -> None:
    """Add the ``train`` and ``evaluate`` commands."""
    from ..processes import available as processes
    from ..training import COUPLINGS, TIME_SAMPLERS, WEIGHTINGS
    from ._common import add_json_option, deprecated_alias

    p = subparsers.add_parser(
        "train",
        help="train a diffusion or flow model on data",
        description=(
            "Train a score (diffusion) or flow model. DATA is a 2-D toy (moons, 8gaussians, swissroll, checkerboard, "
            "circles, pinwheel, 2spirals, scurve), 'digits', a Gaussian-mixture preset (ring2d, mixture64d) or a path "
            "to a .npy/.npz/.pt file or a folder of images. Checkpoints go to OUT/checkpoints; sample them with "
            "`sdeflow sample --ckpt OUT`."
        ),
    )
    p.add_argument("--data", required=True, help="data name or path")
    p.add_argument("--data-key", default=None, help="array name inside an .npz/.pt file")
    p.add_argument("--n-data", type=_positive_int, default=None, help="training-set size for sampled data (default 100000)")
    p.add_argument("--normalize", choices=("auto", "none", "standardize"), default="auto",
                   help="data scaling: auto (images to [-1, 1], vectors standardized), none, standardize")
    p.add_argument("--objective", choices=("fm", "dsm", "ct", "ect", "interpolant"), default="fm",
                   help="flow matching, denoising score matching, consistency training (improved CT), easy consistency tuning "
                        "(needs --init) or a stochastic interpolant's field from N(0, I) to the data (docs/transport.md)")
    p.add_argument("--interpolant", choices=("linear", "trigonometric", "encoder_decoder"), default="linear",
                   help="--objective interpolant: the path a(t) x0 + b(t) x1 + gamma(t) z")
    p.add_argument("--gamma", choices=("sqrt", "quadratic", "sin2", "none"), default=None,
                   help="--objective interpolant: gamma(t) / gamma-scale = sqrt(t(1-t)), t(1-t), sin^2(pi t) or 0 "
                        "(default sin2 for encoder_decoder, else sqrt)")
    p.add_argument("--gamma-scale", type=float, default=1.0, help="--objective interpolant: the scale c of gamma(t)")
    p.add_argument("--field", choices=("velocity", "denoiser"), default="velocity",
                   help="--objective interpolant: learn the velocity b (samples with sdeflow sample --ckpt) or the denoiser "
                        "E[z | x_t] (the score, for interpolant_sample's SDE)")
    p.add_argument("--init", type=Path, default=None, help="ect: the trained diffusion checkpoint the consistency model starts from")
    p.add_argument("--process", choices=processes(), default=None, help="default: linear for fm, vp for dsm")
    p.add_argument("--prediction", choices=("eps", "x0", "v", "score", "velocity"), default=None,
                   help="default: velocity for fm, v for dsm (x0 with --precond edm)")
    p.add_argument("--weighting", choices=sorted(WEIGHTINGS), default="uniform", help="loss weighting over time")
    p.add_argument("--time-sampler", choices=sorted(TIME_SAMPLERS) + ["importance"], default=None,
                   help="default: uniform (lognormal with --precond edm)")
    p.add_argument("--coupling", choices=sorted(COUPLINGS), default="independent", help="flow matching only")
    p.add_argument("--sinkhorn-reg", type=float, default=0.05, help="entropic regularization of --coupling sinkhorn")
    p.add_argument("--precond", choices=("none", "edm"), default="none", help="network preconditioning (edm: Karras et al. 2022)")
    p.add_argument("--sigma-data", type=float, default=0.5, help="data standard deviation assumed by --precond edm")
    p.add_argument("--net", choices=("auto", "mlp", "unet"), default="auto", help="auto: unet for images, mlp otherwise")
    p.add_argument("--width", type=_positive_int, default=256, help="MLP width")
    p.add_argument("--depth", type=_positive_int, default=3, help="MLP residual blocks")
    p.add_argument("--channels", type=_positive_int, default=32, help="U-Net base channels")
    p.add_argument("--channel-mults", type=_int_list, default=[1, 2], help="U-Net channel multipliers, e.g. 1,2,2")
    p.add_argument("--res-blocks", type=_positive_int, default=1, help="U-Net residual blocks per level")
    p.add_argument("--attention", type=_int_list, default=[], help="U-Net levels with attention, e.g. 1")
    p.add_argument("--conditional", action="store_true", help="condition on the data's class labels (classifier-free guidance)")
    p.add_argument("--steps", type=_positive_int, default=2000, help="optimizer steps")
    p.add_argument("--batch-size", type=_positive_int, default=256, help="minibatch size")
    p.add_argument("--micro-batch", type=int, default=0,
                   help="examples per forward pass on each process (default 0: its whole share of the global --batch-size); "
                        "smaller values accumulate gradients")
    p.add_argument("--fsdp", action="store_true",
                   help="under torchrun, shard the model, gradients, optimizer state and EMA over the processes (torch FSDP2) "
                        "instead of replicating them (DDP); checkpoints hold full weights (docs/distributed.md)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (AdamW, cosine decay)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="AdamW decoupled weight decay")
    p.add_argument("--warmup", type=int, default=100, help="warm-up steps")
    p.add_argument("--grad-clip", type=float, default=1.0, help="clip the gradient norm to this (0: no clipping)")
    p.add_argument("--ema-decay", type=float, default=0.999, help="decay of the weight average used for sampling")
    p.add_argument("--amp", choices=("none", "bf16"), default="none", help="mixed precision for the network call")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw of the run")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps")
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, samples, metrics)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run in --out (its checkpoints, samples and metrics.jsonl are deleted when training starts)")
    p.add_argument("--stop-after", type=_positive_int, default=None,
                   help="stop after this many steps in all, with a checkpoint (continue later with --resume)")
    p.add_argument("--ckpt-every", type=int, default=500, help="steps between checkpoints (0: only at the end)")
    p.add_argument("--eval-every", type=int, default=0, help="steps between evaluations (0: at the end only)")
    p.add_argument("--eval-solver", default="heun", help="solver of the evaluation samples")
    p.add_argument("--eval-steps", type=_positive_int, default=30, help="steps of the evaluation solver")
    deprecated_alias(p, "--no-progress", "--quiet", "quiet", flag=True)
    add_json_option(p)
    p.add_argument("--corruption", default=None,
                   help="the data is corrupted: noise:S (Gaussian noise of std S, data units) or mask:P (each coordinate missing with "
                        "probability P, simulated with --seed); --objective dsm; see docs/corrupted-and-latent.md")
    p.add_argument("--latent", type=Path, default=None, help="train on the normalized latents of this autoencoder (a train-autoencoder run)")
    p.set_defaults(func=run_train, distributed=True)

    e = subparsers.add_parser(
        "evaluate",
        help="measure a checkpoint's samples against held-out data",
        description=(
            "Sample a checkpoint and compare with held-out data: exact and sliced Wasserstein-2 and MMD for vectors "
            "(with the two-sample floor), the Frechet distance in the digits classifier's feature space (with its "
            "floor) and the classifier's confidence for digits. Prints JSON. Under torchrun the samples (chunks of "
            f"{EVAL_CHUNK} seeds) and the classifier features are shared out over the processes: the same report."
        ),
    )
    e.add_argument("--ckpt", required=True, type=Path, help="checkpoint folder or run folder")
    e.add_argument("--data", default=None, help="reference data (default: the checkpoint's training data, held-out part)")
    e.add_argument("--n", "--num-samples", dest="n", type=_positive_int, default=2000, help="samples to draw (--num-samples under torchrun)")
    e.add_argument("--solver", default="heun", help="solver of the samples")
    e.add_argument("--steps", type=_positive_int, default=None, help="solver steps (default: the solver's default for the process)")
    e.add_argument("--seed", type=int, default=0, help="first per-sample seed")
    e.add_argument("--raw", action="store_true", help="use the raw weights instead of the EMA")
    add_json_option(e)
    deprecated_alias(e, "--out", "--json FILE", "json")
    e.add_argument("--overwrite", action="store_true", help="allow replacing an existing --json file")
    e.set_defaults(func=run_evaluate, distributed=True)


def build_network(kind: str, source, *, conditional: bool = False, width: int = 256, depth: int = 3,
                  channels: int = 32, channel_mults: list[int] | None = None, res_blocks: int = 1,
                  attention: list[int] | None = None, seed: int = 0):
    """The network for a :class:`~sdeflow.data.DataSource`: ``auto`` is a U-Net for images, an MLP otherwise."""
    from ..nn import MLP, UNet

    num_classes = source.num_classes if conditional else 0
    if conditional and num_classes == 0:
        raise ValueError(f"--conditional needs class labels, and the data {source.name!r} has none")
    if kind == "auto":
        kind = "unet" if source.kind == "image" else "mlp"
    if kind == "unet":
        if len(source.event_shape) != 3:
            raise ValueError(f"the U-Net needs images (C, H, W); the data's items have shape {source.event_shape}. Use --net mlp")
        c, h, w = source.event_shape
        return UNet(c, (h, w), channels, tuple(channel_mults or [1, 2]), res_blocks,
                    attention_levels=tuple(attention or []), num_classes=num_classes, seed=seed)
    return MLP(source.event_shape, width, depth, num_classes=num_classes, seed=seed)


def run_train(args: argparse.Namespace) -> int:
    """``sdeflow train``."""
    from ..data import get_data
    from ..processes import get as get_process
    from ..training import (DenoisingScoreMatching, DiffusionModel, DigitsEvaluator, FlowMatching, TrainConfig, Trainer,
                            VectorEvaluator, check_device, check_run_dir)
    from ._common import check_writable, emit, reading

    if args.warmup < 0:
        raise ValueError(f"--warmup must be >= 0 (learning-rate warm-up steps); got {args.warmup}")
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0; got {args.seed}")
    if args.resume and args.overwrite:
        raise ValueError("--resume continues the run in --out and --overwrite replaces it; give one of them")
    # The output folder and the device first: a wrong one fails in milliseconds, not after loading data or training.
    check_run_dir(args.out, resume=args.resume, overwrite=args.overwrite, name="--out")
    check_writable(args.out, "--out")
    check_device(args.device, "--device")
    with reading(args.data, "--data"):
        source = get_data(args.data, n=args.n_data, seed=args.seed, normalize=args.normalize, key=args.data_key)
    precond = None if args.precond == "none" else args.precond
    process = get_process(args.process or ("linear" if args.objective in ("fm", "interpolant") else "vp"))
    default_prediction = {"fm": "velocity", "interpolant": "eps" if args.field == "denoiser" else "velocity"}
    prediction = "x0" if precond else (args.prediction or default_prediction.get(args.objective, "v"))
    sampler = args.time_sampler or ("lognormal" if precond else None)
    if args.objective != "interpolant" and (args.interpolant, args.gamma, args.gamma_scale, args.field) != ("linear", None, 1.0, "velocity"):
        raise ValueError("--interpolant, --gamma, --gamma-scale and --field apply to --objective interpolant")
    if args.objective == "interpolant":  # sdeflow.transport.StochasticInterpolant, noise-to-data
        from ..transport import StochasticInterpolant

        if args.coupling != "independent" or precond:
            raise ValueError("--objective interpolant draws x1 ~ N(0, I) independently of the data and takes no --coupling or --precond")
        objective = StochasticInterpolant(process, prediction, interpolant=args.interpolant, gamma=args.gamma,
                                          gamma_scale=args.gamma_scale, field=args.field, weighting=args.weighting,
                                          time_sampler=sampler)
    elif args.objective == "fm":
        coupling = {"name": args.coupling, "reg": args.sinkhorn_reg} if args.coupling == "sinkhorn" else args.coupling
        objective = FlowMatching(process, prediction, weighting=args.weighting, time_sampler=sampler, coupling=coupling)
    else:
        if args.coupling != "independent":
            raise ValueError("--coupling applies to --objective fm; denoising score matching uses independent pairs")
        objective = DenoisingScoreMatching(process, prediction, weighting=args.weighting, time_sampler=sampler or "uniform")
    net = build_network(args.net, source, conditional=args.conditional, width=args.width, depth=args.depth,
                        channels=args.channels, channel_mults=args.channel_mults, res_blocks=args.res_blocks,
                        attention=args.attention, seed=args.seed)
    model = DiffusionModel(net, process, prediction, precond=precond, sigma_data=args.sigma_data,
                           amp_dtype=None if args.amp == "none" else args.amp)
    config = TrainConfig(
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
        warmup_steps=args.warmup, grad_clip=args.grad_clip, ema_decay=args.ema_decay, seed=args.seed,
        ckpt_every=args.ckpt_every, eval_every=args.eval_every, micro_batch=args.micro_batch, progress=not args.quiet, device=args.device,
        fsdp=args.fsdp,
    )
    if source.name == "digits":
        evaluator = DigitsEvaluator(solver=args.eval_solver, steps=args.eval_steps)
    elif source.heldout is not None and source.kind == "vector":
        evaluator = VectorEvaluator(source.heldout, source.transform(), solver=args.eval_solver, steps=args.eval_steps)
    else:
        evaluator = None
    if args.objective == "interpolant" and args.field == "denoiser":
        evaluator = None  # E[z | x_t] is not a sampler: it is the score's half of interpolant_sample's SDE
    if args.objective in ("ct", "ect"):  # consistency models (sdeflow.distill); sample with solver "consistency"
        from ..distill.runs import consistency_objective

        objective, model = consistency_objective(args, process, model)
        evaluator = None
    info = source.checkpoint_info(net.num_classes)
    if args.corruption or args.latent:  # sdeflow.training.corrupted, sdeflow.latent (cli/_corrupted.py)
        from ._corrupted import corrupted_or_latent_run

        return corrupted_or_latent_run(args, source, model, objective, config, evaluator, info)
    trainer = Trainer(model, objective, source.x, labels=source.labels, config=config, out_dir=args.out,
                      evaluator=evaluator, data_info=info)
    start = time.perf_counter()
    result = trainer.fit(resume=args.resume, stop_at=args.stop_after, overwrite=args.overwrite)
    from ..distributed import is_main

    if not is_main():  # under torchrun rank 0 reports
        return 0
    summary = {
        "checkpoint": str(result.checkpoint),
        "steps": result.step,
        "wall_seconds": round(time.perf_counter() - start, 2),
        "samples_per_second": round(result.samples_per_second, 1),
        "final_loss": result.history[-1]["loss"] if result.history else None,
        "evaluation": result.evaluations[-1] if result.evaluations else None,
    }
    loss = "" if summary["final_loss"] is None else f"; final loss {summary['final_loss']:.4g}"
    emit(args, summary, f"trained {result.step} steps in {summary['wall_seconds']} s ({summary['samples_per_second']} samples/s)"
                        f"{loss}\ncheckpoint {result.checkpoint}\n"
                        + (f"evaluation {json.dumps(summary['evaluation'], default=float)}\n" if summary["evaluation"] else "")
                        + f"sample it with: sdeflow sample --ckpt {args.out}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """``sdeflow evaluate``."""
    from .. import distributed as dist_utils
    from ..data import get_data
    from ..training import digits_scores, read_checkpoint, sample_checkpoint
    from ._common import check_output_file, emit, json_file, reading

    check_output_file(json_file(args), "--json", overwrite=args.overwrite, inputs=[args.data])
    ckpt = read_checkpoint(args.ckpt)
    data_name = args.data or ckpt.config["data"].get("name")
    if data_name is None:
        raise ValueError("the checkpoint does not name its data; pass --data NAME_OR_PATH")
    # Chunks of EVAL_CHUNK seeds, shared out under torchrun and gathered in seed order (the same samples on every process).
    samples = sample_checkpoint(ckpt.path, args.n, solver=args.solver, steps=args.steps, seed=args.seed, ema=not args.raw,
                                batch_size=EVAL_CHUNK, distributed=True)
    report: dict[str, Any] = {"checkpoint": str(ckpt.path), "step": ckpt.step, "solver": args.solver,
                              "steps": args.steps, "n": args.n, "data": str(data_name)}
    if data_name == "digits":
        report.update(digits_scores(samples, chunk=EVAL_CHUNK))
    else:
        from ..metrics import mmd, sliced_wasserstein2, two_sample_floor, wasserstein2

        with reading(data_name, "--data"):
            source = get_data(data_name, n_heldout=2 * args.n, normalize="none")
        ref = source.heldout
        if ref is None or tuple(ref.shape[1:]) != tuple(samples.shape[1:]):
            shape = None if ref is None else tuple(ref.shape[1:])
            raise ValueError(f"reference data {data_name!r} has items of shape {shape}, the model's samples {tuple(samples.shape[1:])}")
        k = min(args.n, ref.shape[0] // 2)

        def metrics() -> dict[str, Any]:  # on the gathered samples, by rank 0 (exact transport does not split)
            floor = two_sample_floor("wasserstein2", ref, n=k, n_boot=3, seed=args.seed)
            return {"wasserstein2": wasserstein2(samples[:k], ref[:k]), "sliced_wasserstein2": sliced_wasserstein2(samples[:k], ref[:k]),
                    "mmd": mmd(samples[:k], ref[:k]), "wasserstein2_floor": floor.value}

        report.update(dist_utils.on_main(metrics, share=True))
    if not dist_utils.is_main():  # under torchrun rank 0 reports
        return 0
    emit(args, report, "\n".join(f"{k}: {v}" for k, v in report.items()))
    return 0
