"""DiEM's manifold protocol at reduced scale (issue 15, benchmark 2; Rozet et al. 2024, section 5.1).

Clean points lie on a random smooth closed curve in 5-D, ``x(u) = sum_{k=1..3} (a_k cos(2 pi k u) + b_k sin(2 pi k u)) / k``
with ``a_k, b_k ~ N(0, I_5)`` (seed 0), ``u ~ U(0, 1)``, scaled to unit RMS. Each observation sees
``y_i = A_i x_i + 0.01 z`` through its own random ``2 x 5`` Gaussian projection ``A_i`` (entries N(0, 1/5)).
:class:`sdeflow.training.corrupted.ExpectationMaximization` learns a diffusion prior from the ``y_i``
(round 0: the Gaussian EM fit); after each round, the Sinkhorn divergence (POT, squared Euclidean
cost, regularization 0.05) between ``--n-eval`` prior samples (Heun, 32 steps; round 0: the Gaussian)
and fresh clean points, and the round's CPU time. Writes its section into BENCHMARKS-corrupted.md's
companion file benchmarks/results/corrupted_manifold.json and prints a table.

    OMP_NUM_THREADS=1 python benchmarks/corrupted_manifold.py --quick
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import torch

from sdeflow.nn import MLP
from sdeflow.processes import Cosine
from sdeflow.training import DenoisingScoreMatching, DiffusionModel, TrainConfig, draw_samples
from sdeflow.training.corrupted import ExpectationMaximization, LinearCorruption

ROOT = Path(__file__).resolve().parents[1]


def curve_points(n: int, seed: int, *, curve_seed: int = 0) -> torch.Tensor:
    """``n`` points of the fixed random curve (``curve_seed``), positions drawn with ``seed``; ``(n, 5)`` float32."""
    g = torch.Generator().manual_seed(curve_seed)
    a, b = torch.randn(3, 5, generator=g, dtype=torch.float64), torch.randn(3, 5, generator=g, dtype=torch.float64)
    k = torch.arange(1, 4, dtype=torch.float64)[:, None]
    u = torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)[:, None, None]
    x = ((a * torch.cos(2 * math.pi * k * u) + b * torch.sin(2 * math.pi * k * u)) / k).sum(1)
    grid = torch.linspace(0, 1, 1001, dtype=torch.float64)[:, None, None]
    ref = ((a * torch.cos(2 * math.pi * k * grid) + b * torch.sin(2 * math.pi * k * grid)) / k).sum(1)
    return (x / ref.pow(2).mean().sqrt()).to(torch.float32)


def sinkhorn_divergence(x: torch.Tensor, y: torch.Tensor, reg: float = 0.05) -> float:
    import ot

    return float(ot.bregman.empirical_sinkhorn_divergence(x.double().numpy(), y.double().numpy(), reg, numIterMax=2000))


def main(argv=None) -> int:
    """Run the EM rounds and print (and store) the divergence after each."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2000 observations, 4 rounds of 400 steps, 1000 evaluation points")
    p.add_argument("--n-obs", type=int, default=16384)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--steps", type=int, default=2000, help="training steps per round")
    p.add_argument("--n-eval", type=int, default=4096)
    p.add_argument("--posterior-steps", type=int, default=32)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "corrupted_manifold.json")
    args = p.parse_args(argv)
    if args.quick:
        args.n_obs, args.rounds, args.steps, args.n_eval = 2000, 4, 400, 1000
    torch.set_num_threads(1)
    x = curve_points(args.n_obs, 1)
    g = torch.Generator().manual_seed(2)
    A = torch.randn(args.n_obs, 2, 5, generator=g) / math.sqrt(5.0)
    y = torch.einsum("nmd,nd->nm", A, x) + 0.01 * torch.randn(args.n_obs, 2, generator=g)
    obs = LinearCorruption(y, A, 0.01, (5,))
    clean = curve_points(args.n_eval, 3)
    process = Cosine()
    model = DiffusionModel(MLP((5,), 256, 3), process, "v")
    records: list[dict] = []

    def after(rec) -> None:
        if rec.round == 0:
            samples = rec.samples[: args.n_eval]  # posterior samples of the Gaussian fit (its prior is not stored)
        else:
            samples = draw_samples(rec.result.ema_model, process, (5,), args.n_eval, solver="heun", steps=32, seed=5)
        finite = bool(torch.isfinite(samples).all())  # a diverged round is reported as such, not as a divergence value
        row = {"round": rec.round, "sinkhorn_divergence": sinkhorn_divergence(samples, clean) if finite else None,
               "non_finite_samples": int((~torch.isfinite(samples)).any(dim=1).sum()), "cpu_seconds": round(rec.seconds, 1),
               "posterior_fallback_share": rec.metrics.get("fallback_share"),
               "load_average_1min": round(os.getloadavg()[0], 2)}
        records.append(row)
        print(json.dumps(row), flush=True)

    em = ExpectationMaximization(model, DenoisingScoreMatching(process, "v"), obs,
                                 TrainConfig(steps=args.steps, batch_size=256, lr=1e-3, warmup_steps=50, ema_decay=0.99, progress=False),
                                 rounds=args.rounds, steps=args.posterior_steps, callback=after, progress=False)
    em.fit()
    floor = sinkhorn_divergence(curve_points(args.n_eval, 4), clean)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rounds": records, "floor": floor}, indent=2) + "\n")
    print("| EM round | Sinkhorn divergence to clean | CPU s (round) |\n|---|---|---|")
    for r in records:
        value = "diverged" if r["sinkhorn_divergence"] is None else f"{r['sinkhorn_divergence']:.4f}"
        print(f"| {r['round']} | {value} | {r['cpu_seconds']} |")
    print(f"floor (two clean draws): {floor:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
