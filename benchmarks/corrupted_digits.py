"""Digits from noisy and from masked observations (issue 15, benchmark 3).

The 1,438 training digits (8x8, pixels in [-1, 1]) observed (a) with Gaussian noise ``sigma_n = 0.2``
(in those units) and (b) with each pixel missing with probability 1/2 (a fresh mask per image, seed
fixed). Every model is the same network (``--net unet``: the demo's small U-Net; ``mlp``: a residual
MLP on the 64 pixels), VP process, eps prediction, trained with the same budget:

* ``clean``: denoising score matching on the clean digits (the reference);
* ``naive``: denoising score matching on the noisy digits; ``tweedie``: double Tweedie with the
  consistency term (:class:`sdeflow.training.corrupted.NoisyDataObjective`); ``sure``: the same with
  Stein's unbiased risk estimate above the noise level;
* ``naive-mask``: denoising score matching on the zero-filled masked digits; ``ambient``: Ambient
  Diffusion (:class:`sdeflow.training.ambient.AmbientObjective`, ``delta = 0.1``) on the masked
  digits, the network told the mask (:class:`sdeflow.nn.MaskedNet`: a U-Net on 2 channels), sampled
  with the all-observed mask (``ambient``) or with the paper's fixed-mask sampler (``ambient-fixed``: one
  mask per sample from the training law of ``A~``, each pixel kept with probability 0.45).

Metric: Frechet distance in the shipped digits classifier's features (``sdeflow.training.digits_scores``)
of ``--n`` samples (DPM-Solver++(2M), ``--nfe`` calls) to the held-out digits; also the score of the
noisy and of the zero-filled training images themselves (what a model that learns the law of the
observations tends to). Records go to ``benchmarks/results/corrupted_digits.jsonl`` (a rerun skips
what is done) and a section of BENCHMARKS-corrupted.md (``python benchmarks/corrupted.py --render``).

    OMP_NUM_THREADS=1 python benchmarks/corrupted_digits.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from sdeflow.data import load_digits
from sdeflow.nn import MLP, MaskedNet, UNet
from sdeflow.processes import VP
from sdeflow.training import DenoisingScoreMatching, DiffusionModel, TrainConfig, Trainer, digits_scores, draw_samples
from sdeflow.sample import sample
from sdeflow.training.ambient import AmbientObjective, FixedMaskModel, pack_masked
from sdeflow.training.corrupted import NoisyDataObjective

ROOT = Path(__file__).resolve().parents[1]
SIGMA_N, MISSING, DELTA = 0.2, 0.5, 0.1
METHODS = ("clean", "naive", "tweedie", "sure", "naive-mask", "ambient", "ambient-fixed")
SHAPE = (1, 8, 8)


def _observations(seed: int):
    x = load_digits("train").images.float()
    gen = torch.Generator().manual_seed(20_000 + seed)
    y = x + SIGMA_N * torch.randn(x.shape, generator=gen)
    mask = (torch.rand(x.shape, generator=gen) >= MISSING).float()
    return x, y, mask


def run_one(method: str, seed: int, args) -> dict:
    x, y, mask = _observations(seed)
    process = VP()
    def network(channels: int):
        if args.net == "unet":
            return UNet(channels, SHAPE[1:], args.channels, (1, 2), 1, groups=min(8, args.channels), seed=seed)
        return MLP((channels // SHAPE[0], *SHAPE) if channels != SHAPE[0] else SHAPE, args.width, args.depth, seed=seed)

    if method.startswith("ambient"):
        net = MaskedNet(SHAPE, network(2 * SHAPE[0]))
        data, objective = pack_masked(x, mask), AmbientObjective(process, "eps", delta=DELTA)
    else:
        net = network(SHAPE[0])
        data = {"clean": x, "naive": y, "tweedie": y, "sure": y, "naive-mask": x * mask}[method]
        objective = (NoisyDataObjective(process, "eps", sigma_n=SIGMA_N, method=method) if method in ("tweedie", "sure")
                     else DenoisingScoreMatching(process, "eps"))
    config = TrainConfig(steps=args.steps, batch_size=args.batch, lr=2e-3, warmup_steps=100, ema_decay=0.999, seed=seed, progress=False)
    tic = time.process_time()
    model = Trainer(DiffusionModel(net, process, "eps"), objective, data, config=config).fit().ema_model
    train_cpu = time.process_time() - tic
    with torch.no_grad():
        if method == "ambient-fixed":
            keep = (torch.rand(args.n, *SHAPE, generator=torch.Generator().manual_seed(8_000_000 + seed)) < (1 - MISSING) * (1 - DELTA)).float()
            x_T = process.prior_sample((args.n, *SHAPE), seeds=9_000_000 + seed)
            samples = sample(FixedMaskModel(model, keep), process, x_T, prediction="x0", solver="dpm_solver_pp_2m", steps=args.nfe).samples
        else:
            samples = draw_samples(model, process, SHAPE, args.n, solver="dpm_solver_pp_2m", steps=args.nfe, seed=9_000_000 + seed)
    scores = digits_scores(samples)
    return {"method": method, "seed": seed, "frechet_distance": scores["frechet_distance"], "frechet_floor": scores["frechet_floor"],
            "confident_fraction": scores["confident_fraction"], "n": args.n, "nfe": args.nfe, "steps": args.steps, "batch": args.batch,
            "net": args.net, "channels": args.channels, "width": args.width, "depth": args.depth, "train_cpu_seconds": round(train_cpu, 1),
            "load_average_1min": round(os.getloadavg()[0], 2), "threads": torch.get_num_threads(), "torch": torch.__version__}


def references(seed: int) -> list[dict]:
    x, y, mask = _observations(seed)
    out = []
    for name, imgs in (("noisy digits themselves", y), ("zero-filled masked digits themselves", x * mask)):
        s = digits_scores(imgs.clamp(-1, 1))
        out.append({"method": name, "seed": seed, "frechet_distance": s["frechet_distance"], "frechet_floor": s["frechet_floor"],
                    "confident_fraction": s["confident_fraction"], "n": int(imgs.shape[0])})
    return out


def main(argv=None) -> int:
    """Run the missing (method, seed) records; BENCHMARKS-corrupted.md shows them (benchmarks/corrupted.py --render)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="1 seed, 800 steps of batch 64, U-Net width 16, 1000 samples")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--net", choices=["unet", "mlp"], default="unet")
    p.add_argument("--channels", type=int, default=32, help="U-Net base width")
    p.add_argument("--width", type=int, default=256, help="MLP width")
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--n", type=int, default=1438, help="samples for the Frechet distance")
    p.add_argument("--nfe", type=int, default=20, help="DPM-Solver++(2M) steps")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "corrupted_digits.jsonl")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.steps, args.batch, args.channels, args.n = 1, 800, 64, 16, 1000
    torch.set_num_threads(1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if args.out.exists():
        done = {(r["method"], r["seed"]) for r in map(json.loads, args.out.read_text().splitlines()) if r}
    command = "OMP_NUM_THREADS=1 python benchmarks/corrupted_digits.py " + " ".join(argv if argv is not None else os.sys.argv[1:])
    for seed in range(args.seeds):
        todo = [] if ("noisy digits themselves", seed) in done else references(seed)
        todo_methods = [m for m in args.methods if (m, seed) not in done]
        for rec in todo:
            with open(args.out, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
        for method in todo_methods:
            rec = {**run_one(method, seed, args), "command": command}
            print(json.dumps(rec), flush=True)
            with open(args.out, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
