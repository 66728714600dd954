"""Latent digits against pixel digits (issue 15, benchmark 4).

* Autoencoder: :class:`sdeflow.latent.ConvAutoencoder` (1 -> 2 latent channels, 8x8 -> 4x4, base width
  32) trained on the 1,438 training digits; its reconstruction MSE and the per-channel latent
  statistics stored in its checkpoint are reported.
* Latent model: an MLP (width 256, depth 3) on the normalized 2x4x4 latents, VP process, eps prediction.
* Pixel model: the demo's U-Net (32 channels, levels (1, 2), one residual block) on the 8x8 images,
  same process, prediction and number of optimizer steps.
* Both sampled with DPM-Solver++(2M) at 10 model calls; Frechet distance in the shipped digits
  classifier's feature space to the held-out digits (`sdeflow.training.digits_scores`), and CPU time
  per sample (sampling + decoding, one thread, medians of ``--repeats`` runs taken side by side).

Goal (issue 15): the latent model within 10% of the pixel model's Frechet distance at >= 4x less CPU
time per sample. Writes BENCHMARKS-latent.md and benchmarks/results/latent.json.

    OMP_NUM_THREADS=1 python benchmarks/latent.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from sdeflow.data import load_digits
from sdeflow.latent import AutoencoderConfig, ConvAutoencoder, LatentModel, load_autoencoder, train_autoencoder
from sdeflow.nn import MLP, UNet
from sdeflow.processes import VP
from sdeflow.training import DenoisingScoreMatching, DiffusionModel, TrainConfig, Trainer, digits_scores, draw_samples

ROOT = Path(__file__).resolve().parents[1]


def _cpu_per_sample(fn, n: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        tic = time.process_time()
        fn()
        times.append((time.process_time() - tic) / n)
    return statistics.median(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="800 diffusion steps, 300 autoencoder steps, widths 16, batch 64, 512 samples (each only where not given)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps of each diffusion model (default 4000)")
    p.add_argument("--latent-steps", type=int, default=None, help="optimizer steps of the latent model (default: --steps)")
    p.add_argument("--ae-steps", type=int, default=None, help="autoencoder steps (default 3000)")
    p.add_argument("--n", type=int, default=None, help="samples for the Frechet distance (default 1438)")
    p.add_argument("--nfe", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--channels", type=int, default=None, help="base width of the U-Net and of the autoencoder (default 32)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default 128)")
    p.add_argument("--report", type=Path, default=ROOT / "BENCHMARKS-latent.md")
    args = p.parse_args(argv)
    # --quick changes only the sizes the command line did not give (it once overrode --steps silently)
    sizes = {"steps": (4000, 800), "ae_steps": (3000, 300), "n": (1438, 512), "channels": (32, 16), "batch": (128, 64)}
    for name, (full, quick) in sizes.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    latent_steps = args.steps if args.latent_steps is None else args.latent_steps
    torch.set_num_threads(1)
    images = load_digits("train").images
    process = VP()
    out: dict = {"load_average_1min_start": round(os.getloadavg()[0], 2), "steps": args.steps, "latent_steps": latent_steps,
                 "ae_steps": args.ae_steps, "n": args.n,
                 "channels": args.channels, "batch": args.batch,
                 "nfe": args.nfe}
    with tempfile.TemporaryDirectory() as tmp:
        ae = ConvAutoencoder(1, (8, 8), latent_channels=2, channels=args.channels)
        summary = train_autoencoder(ae, images, AutoencoderConfig(steps=args.ae_steps, batch_size=args.batch, kl_weight=0.0, progress=True),
                                    out_dir=Path(tmp) / "ae")
        auto = load_autoencoder(Path(tmp) / "ae")
    out["autoencoder"] = {k: summary[k] for k in ("reconstruction_mse", "latent_mean", "latent_std", "latent_shape")}
    latents = auto.encode(images).detach()
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch, lr=2e-3, warmup_steps=50, ema_decay=0.995, progress=True)
    lat = DiffusionModel(MLP((2, 4, 4), 256, 3), process, "eps")
    tic = time.process_time()
    lat = Trainer(lat, DenoisingScoreMatching(process, "eps"), latents, config=replace(cfg, steps=latent_steps)).fit().ema_model
    out["latent_train_cpu_seconds"] = round(time.process_time() - tic, 1)
    pix = DiffusionModel(UNet(1, (8, 8), args.channels, (1, 2), 1, groups=min(8, args.channels)), process, "eps")
    tic = time.process_time()
    pix = Trainer(pix, DenoisingScoreMatching(process, "eps"), images, config=cfg).fit().ema_model
    out["pixel_train_cpu_seconds"] = round(time.process_time() - tic, 1)
    latent = LatentModel(lat, auto, process)
    solver = dict(solver="dpm_solver_pp_2m", steps=args.nfe)
    with torch.no_grad():
        x_lat = latent.sample(args.n, seed=0, **solver)
        x_pix = draw_samples(pix, process, (1, 8, 8), args.n, seed=0, **solver)
        recon = auto.decode(auto.encode(load_digits("test").images))
    out["latent"] = {k: v for k, v in digits_scores(x_lat).items() if k != "class_counts"}
    out["pixel"] = {k: v for k, v in digits_scores(x_pix).items() if k != "class_counts"}
    out["autoencoder_reconstructions_fd"] = digits_scores(recon)["frechet_distance"]
    m = min(args.n, 256)
    out["cpu_per_sample_latent_ms"] = 1e3 * _cpu_per_sample(lambda: latent.sample(m, seed=1, **solver), m, args.repeats)
    out["cpu_per_sample_pixel_ms"] = 1e3 * _cpu_per_sample(lambda: draw_samples(pix, process, (1, 8, 8), m, seed=1, **solver), m, args.repeats)
    out["load_average_1min_end"] = round(os.getloadavg()[0], 2)
    fd_ratio = out["latent"]["frechet_distance"] / out["pixel"]["frechet_distance"]
    speed = out["cpu_per_sample_pixel_ms"] / out["cpu_per_sample_latent_ms"]
    (ROOT / "benchmarks" / "results").mkdir(parents=True, exist_ok=True)
    (ROOT / "benchmarks" / "results" / "latent.json").write_text(json.dumps(out, indent=2) + "\n")
    command = "OMP_NUM_THREADS=1 python benchmarks/latent.py " + " ".join(argv if argv is not None else os.sys.argv[1:])
    a = out["autoencoder"]
    text = "\n".join([
        "## Latent digits against pixel digits", "",
        "Command (2 shared CPU cores, loaded by other work; load average "
        f"{out['load_average_1min_start']} at the start, {out['load_average_1min_end']} at the end):", "", f"    {command}", "",
        f"Autoencoder: reconstruction MSE {a['reconstruction_mse']:.4f} (pixels in [-1, 1]), latent {a['latent_shape']}, per-channel "
        f"mean {[round(v, 4) for v in a['latent_mean']]}, std {[round(v, 4) for v in a['latent_std']]} (computed from the training "
        f"latents, stored in the checkpoint). Frechet distance of its reconstructions of the held-out digits: "
        f"{out['autoencoder_reconstructions_fd']:.3f} (what a perfect latent model could reach).", "",
        f"| model | Frechet distance ({args.n} samples, {args.nfe} calls) | confident fraction | CPU per sample (median of {args.repeats}) |",
        "|---|---|---|---|",
        f"| pixel U-Net | {out['pixel']['frechet_distance']:.3f} | {out['pixel']['confident_fraction']:.3f} | {out['cpu_per_sample_pixel_ms']:.3f} ms |",
        f"| latent MLP + decoder | {out['latent']['frechet_distance']:.3f} | {out['latent']['confident_fraction']:.3f} | {out['cpu_per_sample_latent_ms']:.3f} ms |",
        "", f"Floor (training digits vs held-out): {out['pixel']['frechet_floor']:.3f}. Ratio latent / pixel Frechet distance "
        f"{fd_ratio:.2f} (goal <= 1.10); CPU per sample pixel / latent {speed:.1f}x (goal >= 4x).",
        f"Goal {'met' if fd_ratio <= 1.10 and speed >= 4 else 'NOT met'} in this run.", ""])
    args.report.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
