"""``sdeflow restore``: restore images with a trained diffusion prior (inpainting, super-resolution, deblurring, denoising).

Thin: it parses, validates and calls :mod:`sdeflow.inverse`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

__all__ = ["register", "run_restore"]

OUT_NAMES = ["restorations.pt", "grid.png", "metrics.json"]
TASKS = ("inpaint", "inpaint_random", "superres", "deblur", "denoise")  # sdeflow.inverse.restore.TASKS (no torch import here)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1; got {text}")
    return value


def register(subparsers) -> None:
    """Add the ``restore`` command."""
    from ._common import add_json_option

    p = subparsers.add_parser(
        "restore",
        help="restore images with a trained diffusion model as the prior (inpaint, superres, deblur, denoise)",
        description=(
            "Measure each input image with the task's operator (y = A x + noise, seeded) and draw --samples posterior "
            "samples per measurement with --method at a budget of --nfe model calls. Writes restorations.pt "
            "(samples, measurements, truth), grid.png (measurement | samples | truth) and metrics.json (PSNR, SSIM, "
            "consistency = RMS(y - A x) / noise std, spread across samples, and for digits the Frechet distance of the "
            "restorations to the held-out digits). Without --input: the first --n held-out digits."
        ),
    )
    p.add_argument("--ckpt", required=True, type=Path, help="checkpoint or run folder of an image model (sdeflow train / demo)")
    p.add_argument("--task", required=True, choices=TASKS, help="the measurement: " + ", ".join(TASKS))
    p.add_argument("--method", default="ddrm", help="dps, pigdm, ddrm, ddnm, repaint, daps, tds or mcgdiff (default ddrm)")
    p.add_argument("--nfe", type=_positive_int, default=50, help="budget of model calls (default 50)")
    p.add_argument("--input", type=Path, default=None, help=".pt or .npy file of images (n, C, H, W) in data space")
    p.add_argument("--n", "--num-images", dest="n", type=_positive_int, default=8, help="images to restore (default 8; --num-images under torchrun)")
    p.add_argument("--samples", type=_positive_int, default=4, help="posterior samples per image (default 4)")
    p.add_argument("--noise-std", type=float, default=None, help="measurement noise std (default: the task's)")
    p.add_argument("-o", "--option", action="append", default=[], help="method option NAME=VALUE (e.g. eta=0.5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the measurement noise, the mask and the sampler")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: a fresh ./restore-N)")
    p.add_argument("--overwrite", action="store_true", help="replace restorations.pt, grid.png, metrics.json in --out")
    add_json_option(p)
    p.set_defaults(func=run_restore)


def _load_input(path: Path | None, n: int, event_shape: tuple[int, ...], data_name: str | None):
    import numpy as np
    import torch

    from ._common import reading

    if path is None:
        if data_name != "digits":
            raise ValueError(f"--input is required: the checkpoint's data is {data_name!r}, not the digits with their held-out split")
        from ..data.digits import load_digits

        return load_digits("test").images[:n]
    with reading(path, "--input"):
        if path.suffix == ".npy":
            x = torch.from_numpy(np.load(path))
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
            x = obj["samples"] if isinstance(obj, dict) else obj
    if not isinstance(x, torch.Tensor) or x.ndim != 1 + len(event_shape) or tuple(x.shape[1:]) != event_shape:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"--input must hold images of shape (n, {', '.join(map(str, event_shape))}) like the model's; got {shape}")
    return x[:n].float()


def run_restore(args: argparse.Namespace) -> int:
    import torch

    from ..data.sources import transform_to_data
    from ..inverse import posterior_sample
    from ..inverse.restore import restoration_metrics, save_grid, task_operator
    from ..training.checkpoint import load_checkpoint_model
    from ._common import emit, parse_options, prepare_out_dir, write_json

    from ..inverse import available_methods

    if args.method not in available_methods():
        raise ValueError(f"--method must be one of {', '.join(sorted(available_methods()))}; got {args.method!r}")
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0; got {args.seed}")
    if args.noise_std is not None and not (args.noise_std >= 0 and args.noise_std < float("inf")):
        raise ValueError(f"--noise-std must be a finite number >= 0; got {args.noise_std}")
    options = parse_options(args.option)
    out = prepare_out_dir(args.out, "restore", OUT_NAMES, args.overwrite)
    model, process, prediction, config = load_checkpoint_model(args.ckpt)
    event_shape = tuple(config["data"]["event_shape"])
    transform = config["data"].get("transform") or {}
    truth = _load_input(args.input, args.n, event_shape, config["data"].get("name"))
    shift = float(transform.get("shift", 0.0)) if not isinstance(transform.get("shift"), list) else 0.0
    scale = float(transform.get("scale", 1.0)) if not isinstance(transform.get("scale"), list) else 1.0
    x_model = (truth - shift) / scale
    noise = None if args.noise_std is None else args.noise_std / scale
    op = task_operator(args.task, event_shape, noise_std=noise, seed=args.seed)
    y = op.measure(x_model.double(), generator=torch.Generator().manual_seed(args.seed)).float()
    t = time.perf_counter()
    result = posterior_sample(model, process, op, y, method=args.method, n_samples=args.samples, nfe=args.nfe,
                              seed=args.seed, progress=not args.quiet, **options)
    wall = time.perf_counter() - t
    samples = transform_to_data(result.samples, transform).clamp(-1e6, 1e6)
    # PSNR and SSIM in data space; the consistency in the model space, where the operator measured
    metrics = restoration_metrics(samples, truth, y, op, model_samples=result.samples)
    metrics.update(task=args.task, method=args.method, nfe=result.nfe, samples_per_image=args.samples, images=int(truth.shape[0]),
                   noise_std=op.noise_std * scale, wall_s=wall, checkpoint=str(args.ckpt))
    if config["data"].get("name") == "digits" and samples.shape[0] * samples.shape[1] >= 100:
        # (with fewer restorations the Frechet distance of 64-D features is dominated by its sampling bias)
        from ..training.evaluation import digits_scores

        scores = digits_scores(samples.reshape((-1,) + event_shape).float())
        metrics.update(frechet_distance=scores["frechet_distance"], frechet_floor=scores["frechet_floor"])
    view = transform_to_data(op.adjoint(y.double()).float(), transform) if op.linear else truth * 0
    torch.save({"samples": samples, "y": y, "truth": truth, "task": args.task, "method": args.method}, out / "restorations.pt")
    save_grid(out / "grid.png", view, samples, truth, title=f"{args.task}, {args.method}, {result.nfe} model calls")
    write_json(out / "metrics.json", metrics)
    emit(args, {**metrics, "out": str(out)},
         f"{args.task} with {args.method} ({result.nfe} model calls, {wall:.1f} s): PSNR {metrics['psnr']:.2f} dB, "
         f"SSIM {metrics['ssim']:.3f}, consistency {metrics['consistency']:.2f}, spread {metrics['spread']:.3f} -> {out}")
    return 0
