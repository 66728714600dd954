"""Training from corrupted data on Gaussian mixtures with exact answers (issue 15, benchmark 1).

Clean data: ``sdeflow.targets.random_mixture(seed=0, dim, 4 components, scale 0.25, data_std 1.0)`` in
2-D and 8-D. Observed (a) with Gaussian noise ``sigma_n = 0.5`` and (b) with each coordinate missing
with probability 1/2 (``sigma_y = 0.01``). Every model is the same MLP on the cosine process with v
prediction (the setting of BENCHMARKS-training.md), trained with the same budget:

* ``clean``: denoising score matching on the clean data (the reference the goal is stated against);
* ``naive``: denoising score matching on the noisy data (learns the law of y);
* ``tweedie`` / ``sure``: :class:`sdeflow.training.corrupted.NoisyDataObjective` on the noisy data;
* ``naive-mask``: denoising score matching on the zero-filled masked data;
* ``diem``: :class:`sdeflow.training.corrupted.ExpectationMaximization` on the masked data (the
  training budget split over its rounds);
* ``ambient`` / ``ambient-fixed``: :class:`sdeflow.training.ambient.AmbientObjective` (Ambient
  Diffusion, further corruption ``delta = 0.1``) on the masked data, an MLP told the mask
  (:class:`sdeflow.nn.MaskedNet`); sampled with the all-observed mask (``ambient``: the clean
  denoiser wherever training saw that pattern, probability ``0.45^D``) or with the paper's fixed-mask
  sampler (``ambient-fixed``: one mask per sample from the training law of ``A~``).

Metric: exact W2 (POT) between ``--n`` samples (Heun, 25 steps) and ``--n`` fresh clean samples; also
W2 of the noisy law to the clean law and the two-sample floor. Records are appended as JSON lines
(a partial run is usable; a rerun skips what is done) and summarized in BENCHMARKS-corrupted.md.

    OMP_NUM_THREADS=1 python benchmarks/corrupted.py --quick            # 1 seed, reduced sizes
    OMP_NUM_THREADS=1 python benchmarks/corrupted.py --seeds 5 --n 10000 # the issue's protocol
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from sdeflow.metrics import wasserstein2
from sdeflow.nn import MLP
from sdeflow.processes import Cosine
from sdeflow.targets import random_mixture
from sdeflow.training import DenoisingScoreMatching, DiffusionModel, TrainConfig, Trainer, draw_samples
from sdeflow.nn import MaskedNet
from sdeflow.sample import sample
from sdeflow.training.ambient import AmbientObjective, FixedMaskModel, pack_masked
from sdeflow.training.corrupted import CONSISTENCY_STEPS, ExpectationMaximization, NoisyDataObjective, mask_corruption

ROOT = Path(__file__).resolve().parents[1]
SIGMA_N = 0.5
MISSING = 0.5
DELTA = 0.1
METHODS = ("clean", "naive", "tweedie", "sure", "naive-mask", "diem", "ambient", "ambient-fixed")


def _env() -> dict:
    return {"threads": torch.get_num_threads(), "torch": torch.__version__, "machine": platform.machine(),
            "load_average_1min": round(os.getloadavg()[0], 2)}


def _data(dim: int, n: int, seed: int):
    target = random_mixture(0, dim, 4, scale=0.25, data_std=1.0)
    x = target.sample(n, seeds=1_000_000 * seed)
    gen = torch.Generator().manual_seed(10_000 + seed)
    y = x + SIGMA_N * torch.randn(x.shape, generator=gen)
    mask = (torch.rand(x.shape, generator=gen) >= MISSING).to(x.dtype)
    return target, x, y, mask, gen


def run_one(dim: int, method: str, seed: int, args) -> dict:
    target, x, y, mask, gen = _data(dim, args.n_train, seed)
    process = Cosine()
    model = DiffusionModel(MLP((dim,), args.width, args.depth, seed=seed), process, "v")
    config = TrainConfig(steps=args.steps, batch_size=256, lr=2e-3, warmup_steps=100, ema_decay=0.999, seed=seed, progress=False)
    tic = time.process_time()
    if method == "diem":
        n_obs = min(args.n_train, args.n_em)
        obs = mask_corruption(x[:n_obs], mask[:n_obs], 0.01, generator=gen)
        per_round = TrainConfig(**{**config.__dict__, "steps": max(1, args.steps // args.rounds)})
        ref_rounds = target.sample(n_obs, seeds=4_000_000 + seed)
        trace: list[float] = []  # W2 of each round's posterior samples (the data the next round trains on) to clean points
        fallback: list[float] = []  # share of (sample, call) pairs whose posterior step fell back to the diagonal covariance

        def record(r) -> None:
            if r.round < args.rounds:  # the last round draws no posterior samples
                trace.append(round(wasserstein2(r.samples.double(), ref_rounds.double(), max_points=n_obs), 4))
                if r.round > 0:
                    fallback.append(round(r.metrics.get("fallback_share", 0.0), 4))

        em = ExpectationMaximization(model, DenoisingScoreMatching(process, "v"), obs, per_round, rounds=args.rounds,
                                     steps=args.posterior_steps, progress=False, callback=record)
        sampler = em.fit()[-1].result.ema_model
    elif method.startswith("ambient"):
        model = DiffusionModel(MaskedNet((dim,), MLP((2, dim), args.width, args.depth, seed=seed)), process, "v")
        sampler = Trainer(model, AmbientObjective(process, "v", delta=DELTA), pack_masked(x, mask), config=config).fit().ema_model
    else:
        data = {"clean": x, "naive": y, "tweedie": y, "sure": y, "naive-mask": x * mask}[method]
        chain = {"consistency_steps": args.consistency_steps, "consistency_weighting": args.consistency_weighting}
        objective = {"tweedie": lambda: NoisyDataObjective(process, "v", sigma_n=SIGMA_N, **chain),
                     "sure": lambda: NoisyDataObjective(process, "v", sigma_n=SIGMA_N, method="sure", **chain)}.get(
            method, lambda: DenoisingScoreMatching(process, "v"))()
        sampler = Trainer(model, objective, data, config=config).fit().ema_model
    train_cpu = time.process_time() - tic
    if method == "ambient-fixed":  # one mask per sample, kept for the whole trajectory (Daras et al. 2023, sec. 3.3)
        keep = (torch.rand(args.n, dim, generator=torch.Generator().manual_seed(8_000_000 + seed)) < (1 - MISSING) * (1 - DELTA)).float()
        x_T = process.prior_sample((args.n, dim), seeds=7_000_000 + seed)
        with torch.no_grad():
            samples = sample(FixedMaskModel(sampler, keep), process, x_T, prediction="x0", solver="heun", steps=25).samples
    else:
        samples = draw_samples(sampler, process, (dim,), args.n, solver="heun", steps=25, seed=7_000_000 + seed)
    ref = target.sample(args.n, seeds=2_000_000 + 100_000 * seed)
    extra = {"rounds": args.rounds, "posterior_w2_by_round": trace, "posterior_fallback_share_by_round": fallback} if method == "diem" else {}
    if method in ("tweedie", "sure"):
        extra = {"consistency_steps": args.consistency_steps, "consistency_weighting": args.consistency_weighting}
    return {"dim": dim, "method": method, "seed": seed, "w2": wasserstein2(samples, ref, max_points=args.n), "n": args.n,
            "steps": args.steps, "n_train": args.n_train, "train_cpu_seconds": round(train_cpu, 1), **extra, **_env()}


def references(dim: int, seed: int, args) -> list[dict]:
    target, x, y, mask, _ = _data(dim, args.n, seed)
    ref = target.sample(args.n, seeds=2_000_000 + 100_000 * seed)
    other = target.sample(args.n, seeds=3_000_000 + 100_000 * seed)
    return [{"dim": dim, "method": "law of y (noisy data itself)", "seed": seed, "w2": wasserstein2(y, ref, max_points=args.n), "n": args.n},
            {"dim": dim, "method": "floor (two clean draws)", "seed": seed, "w2": wasserstein2(other, ref, max_points=args.n), "n": args.n}]


class _PerturbedGaussian(torch.nn.Module):
    """v model of the exact denoiser of N(mean, diag(std^2)) plus ``u xt + b`` (two scalar parameters)."""

    prediction = "v"

    def __init__(self, process, mean, std, u, b):
        super().__init__()
        self.process, self.mean, self.std, self.u, self.b = process, mean, std, u, b

    def forward(self, x, t):
        t = t.to(torch.float64)
        alpha, sigma, s = (f(t)[:, None] for f in (self.process.alpha, self.process.sigma, self.process.noise_level))
        xt = x / alpha
        x0 = self.mean + self.std**2 / (self.std**2 + s**2) * (xt - self.mean) + self.u * xt + self.b
        return alpha * (x - alpha * x0) / sigma - sigma * x0


def gradient_spread(dim: int = 8, n: int = 20_000, levels=(0.6, 1.0, 2.0, 4.0, 8.0, 16.0)) -> dict:
    """Per-sample gradient spread of each objective at the exact Gaussian denoiser, one noise level at a time.

    The loss is quadratic in ``(u, b)``, so central differences give each sample's exact gradient at
    ``(0, 0)``; the table is their standard deviation over ``n`` samples (the noise of a minibatch
    gradient is this divided by ``sqrt(batch)``). The model's Jacobian is diagonal, so SURE's one
    Rademacher probe gives its divergence exactly: what SURE adds is the spread of ``|h - y|^2``.
    """
    gen = torch.Generator().manual_seed(0)
    mean = 0.5 * torch.randn(dim, generator=gen, dtype=torch.float64)
    std = 0.4 + 0.6 * torch.rand(dim, generator=gen, dtype=torch.float64)
    process = Cosine()
    x0 = mean + std * torch.randn(n, dim, generator=gen, dtype=torch.float64)
    y = x0 + SIGMA_N * torch.randn(n, dim, generator=gen, dtype=torch.float64)
    rows = []
    for level in levels:
        t = float(process.t_from_noise_level(torch.tensor(level, dtype=torch.float64)))
        at = {"name": "uniform", "t_lo": t, "t_hi": t * (1 + 1e-9)}
        objectives = {"clean": (DenoisingScoreMatching(process, "v", time_sampler=at), x0),
                      "tweedie": (NoisyDataObjective(process, "v", sigma_n=SIGMA_N, time_sampler=at), y),
                      "sure": (NoisyDataObjective(process, "v", sigma_n=SIGMA_N, method="sure", time_sampler=at), y)}
        row = {"noise_level": level}
        for name, (objective, data) in objectives.items():
            grads, curvature = [], []
            for k in range(2):
                h = 1e-3
                losses = []
                for sign in (1.0, 0.0, -1.0):
                    theta = [torch.tensor(sign * h if k == j else 0.0, dtype=torch.float64) for j in range(2)]
                    model = _PerturbedGaussian(process, mean, std, *theta)
                    losses.append(objective.loss(model, data, generator=torch.Generator().manual_seed(5)).per_sample.detach())
                grads.append((losses[0] - losses[2]) / (2 * h))
                curvature.append(float((losses[0] - 2 * losses[1] + losses[2]).mean()) / h**2)
            row[name] = torch.stack(grads, 1).std(0).tolist()
            # the gradient noise in units of the loss's curvature: the parameter error one sample's gradient step carries
            row[name + "_noise"] = [g / c for g, c in zip(row[name], curvature)]
        rows.append(row)
    return {"dim": dim, "n": n, "sigma_n": SIGMA_N, "rows": rows}


FULL = ROOT / "benchmarks" / "results" / "corrupted_full.jsonl"
FULL_COMMAND = ("OMP_NUM_THREADS=1 python benchmarks/corrupted.py --dims D --seeds 5 --n 10000 --out benchmarks/results/corrupted_full.jsonl "
                "(D = 2 and D = 8 in two processes side by side)")


def _mixture_table(recs: list[dict], title: str, command: str) -> list[str]:
    """The W2 table of a set of mixture records and its computed reading (goal: corrected methods <= 1.5x clean)."""
    groups: dict[tuple[int, str], list[float]] = {}
    by_seed: dict[tuple[int, str], dict[int, float]] = {}
    for r in recs:
        groups.setdefault((r["dim"], r["method"]), []).append(r["w2"])
        by_seed.setdefault((r["dim"], r["method"]), {})[r["seed"]] = r["w2"]

    def over_clean(dim: int, method: str) -> float | None:
        """The method's mean W2 over the clean model's, both on the seeds that the method has (and clean has)."""
        mine, clean = by_seed.get((dim, method), {}), by_seed.get((dim, "clean"), {})
        seeds = [k for k in mine if k in clean]
        return statistics.mean(mine[k] for k in seeds) / statistics.mean(clean[k] for k in seeds) if seeds else None

    loads = [r["load_average_1min"] for r in recs if "load_average_1min" in r]
    load = f"; load average {min(loads):.1f}-{max(loads):.1f} during the runs" if loads else ""
    n = sorted({r["n"] for r in recs})
    lines = [title, "", f"Command (2 shared CPU cores{load}; W2 on {', '.join(map(str, n))} points):", "",
             f"    {command}", "", "| dim | method | W2 mean (+- std over seeds) | seeds | / clean (same seeds) |", "|---|---|---|---|---|"]
    for dim in sorted({d for d, _ in groups}):
        for (d, method), vals in sorted(groups.items(), key=lambda kv: (kv[0][0], METHODS.index(kv[0][1]) if kv[0][1] in METHODS else 99)):
            if d != dim:
                continue
            m = statistics.mean(vals)
            sd = f" +- {statistics.stdev(vals):.3f}" if len(vals) > 1 else ""
            q = over_clean(dim, method) if method in METHODS else None
            lines.append(f"| {dim} | {method} | {m:.3f}{sd} | {len(vals)} | {'' if q is None else f'{q:.2f}x'} |")
    lines += ["", "Reading (computed from the table):", ""]
    for dim in sorted({d for d, _ in groups}):
        mean = {m: statistics.mean(v) for (d, m), v in groups.items() if d == dim}
        clean = mean.get("clean")
        if clean is None:
            continue
        for method in ("tweedie", "sure", "diem", "ambient", "ambient-fixed"):
            ratio = over_clean(dim, method) if method in mean else None
            if ratio is not None:
                lines.append(f"* {dim}-D, {method}: W2 {ratio:.2f}x the clean-data model's on the same seeds (goal <= 1.5x): "
                             f"{'met' if ratio <= 1.5 else 'NOT met'}.")
        y_law, floor = mean.get("law of y (noisy data itself)"), mean.get("floor (two clean draws)")
        if "naive" in mean and y_law is not None:
            closer = abs(mean["naive"] - y_law) < abs(mean["naive"] - clean)
            lines.append(f"* {dim}-D, naive: W2 {mean['naive']:.3f}, the noisy law itself scores {y_law:.3f} and the clean model "
                         f"{clean:.3f}: {'closer to the law of y, the predicted bias' if closer else 'not closer to the law of y'}.")
        if floor is not None:
            lines.append(f"* {dim}-D: the two-sample floor at this sample size is {floor:.3f}; differences below it are not resolved.")
    return lines


def summarize(path: Path, out_md: Path, command: str) -> str:
    recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    lines: list[str] = []
    if FULL.exists() and FULL.resolve() != path.resolve():  # the protocol, kept in its own records
        full = [json.loads(line) for line in FULL.read_text().splitlines() if line.strip()]
        seeds = sorted({r["seed"] for r in full})
        counts = {len({r["seed"] for r in full if (r["dim"], r["method"]) == key}) for key in {(r["dim"], r["method"]) for r in full}}
        done = "all 5 seeds for every row" if counts == {5} else f"seeds {seeds[0]}-{seeds[-1]} of 5 so far; the seeds column counts each row's"
        lines += _mixture_table(full, f"## Corrupted data: exact mixtures (the protocol: 3,000 steps, 10,000 W2 points, {done})", FULL_COMMAND)
        lines += ["", f"Records: `{FULL.relative_to(ROOT)}`.", ""]
        lines += _mixture_table(recs, "### The quick runs (1,000 steps, 2,000 W2 points, 1 seed)", command)
    else:
        lines += _mixture_table(recs, "## Corrupted data: exact mixtures", command)
    lines += ["", f"Records: `{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}`."]
    chains = ROOT / "benchmarks" / "results" / "corrupted_consistency.jsonl"
    if chains.exists():  # the consistency term's chain length and weighting, double Tweedie, seed 0
        rows = [json.loads(line) for line in chains.read_text().splitlines() if line.strip()]
        lines += ["", "### The noisy-data objectives' consistency term: chain length and weighting", "",
                  "W2 on 10,000 points, seed 0, 3,000 steps (the protocol's settings); the clean models score 0.057 (2-D) and 0.383 "
                  "(8-D), the floors 0.074 and 0.441. Command, for each row:", "",
                  "    OMP_NUM_THREADS=1 python benchmarks/corrupted.py --dims D --seeds 1 --n 10000 --methods M "
                  "--consistency-steps K --consistency-weighting W --out benchmarks/results/corrupted_consistency.jsonl", "",
                  "| method M | dim | chain steps K | weighting W | W2 | training CPU s |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['method']} | {r['dim']} | {r['consistency_steps']} | {r['consistency_weighting']} | {r['w2']:.3f} | "
                  f"{r['train_cpu_seconds']:.0f} |" for r in rows]
    manifold = ROOT / "benchmarks" / "results" / "corrupted_manifold.json"
    if manifold.exists():  # written by benchmarks/corrupted_manifold.py
        rec = json.loads(manifold.read_text())
        lines += ["", "### DiEM's manifold protocol (reduced scale)", "",
                  "Points on a random smooth closed curve in 5-D seen through a random 2 x 5 projection per sample "
                  "(sigma_y = 0.01); Sinkhorn divergence (reg 0.05) of the model's samples to clean points after each EM round "
                  "(round 0: the Gaussian EM fit's posterior samples). Command:", "",
                  f"    OMP_NUM_THREADS=1 python benchmarks/corrupted_manifold.py {'--quick' if rec['args'].get('quick') == 'True' else ''}",
                  "", f"Settings: {rec['args']['n_obs']} observations, {rec['args']['rounds']} rounds of {rec['args']['steps']} steps, "
                  f"{rec['args']['n_eval']} evaluation points.", "",
                  "| EM round | Sinkhorn divergence | CPU seconds of the round | posterior steps shortened | load average |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['round']} | {'diverged' if r['sinkhorn_divergence'] is None else format(r['sinkhorn_divergence'], '.4f')} | "
                  f"{r['cpu_seconds']} | {'' if r.get('posterior_fallback_share') is None else format(r['posterior_fallback_share'], '.1%')} | "
                  f"{r['load_average_1min']} |" for r in rec["rounds"]]
        if rec.get("floor") is not None:
            lines += ["", f"Floor (two draws of clean points): {rec['floor']:.4f}."]
        if rec.get("note"):
            lines += ["", rec["note"]]
    spread = ROOT / "benchmarks" / "results" / "corrupted_gradient_spread.json"
    if spread.exists():  # python benchmarks/corrupted.py --gradient-spread
        rec = json.loads(spread.read_text())
        lines += ["", "### The noisy-data objectives' gradient noise", "",
                  f"At the exact denoiser of an {rec['dim']}-D Gaussian, for the two parameters (u, b) of `exact + u xt + b` (v "
                  f"prediction, cosine process, sigma_n = {rec['sigma_n']}, {rec['n']} samples, one noise level at a time; exact "
                  "per-sample gradients and curvature: the loss is quadratic in (u, b)): the per-sample gradient's standard "
                  "deviation divided by the mean loss's curvature, i.e. the parameter error one sample's gradient carries (lower "
                  "is better; the raw standard deviations are in the records). Command:", "",
                  "    OMP_NUM_THREADS=1 python benchmarks/corrupted.py --gradient-spread", "",
                  "| noise level s | clean DSM (u, b) | double Tweedie (u, b) | SURE (u, b) | SURE / Tweedie (u, b) |", "|---|---|---|---|---|"]
        for r in rec["rows"]:
            ratio = [a / b for a, b in zip(r["sure_noise"], r["tweedie_noise"])]
            lines.append(f"| {r['noise_level']} | " + " | ".join(", ".join(f"{v:.3g}" for v in r[k + '_noise']) for k in ("clean", "tweedie", "sure"))
                         + f" | {ratio[0]:.2f}x, {ratio[1]:.2f}x |")
    digits = ROOT / "benchmarks" / "results" / "corrupted_digits.jsonl"
    if digits.exists():  # python benchmarks/corrupted_digits.py
        recs = [json.loads(line) for line in digits.read_text().splitlines() if line.strip()]
        commands = sorted({r["command"] for r in recs if "command" in r})
        lines += ["", "### Digits: noisy (sigma_n = 0.2) and half-masked observations", "",
                  "Frechet distance (shipped digits classifier's features) to the held-out digits; every model the same network "
                  f"({recs[-1].get('net', 'mlp')}, VP, eps prediction) with the same budget. Command(s):", ""] + [f"    {c}" for c in commands] + [
                  "", "| method | Frechet distance (mean over seeds) | seeds | / clean | confident fraction | train CPU s |", "|---|---|---|---|---|---|"]
        by: dict[str, list[dict]] = {}
        for r in recs:
            by.setdefault(r["method"], []).append(r)
        clean = statistics.mean(r["frechet_distance"] for r in by["clean"]) if "clean" in by else None
        for method, rs in by.items():
            fd = statistics.mean(r["frechet_distance"] for r in rs)
            ratio = f"{fd / clean:.2f}x" if clean and "train_cpu_seconds" in rs[0] else ""
            cpu = statistics.mean(r["train_cpu_seconds"] for r in rs) if "train_cpu_seconds" in rs[0] else None
            lines.append(f"| {method} | {fd:.2f} | {len(rs)} | {ratio} | {statistics.mean(r['confident_fraction'] for r in rs):.3f} | "
                         f"{'' if cpu is None else f'{cpu:.0f}'} |")
        lines += ["", f"Floor (training digits vs held-out): {recs[0]['frechet_floor']:.3f}. Records: `benchmarks/results/corrupted_digits.jsonl`."]
    notes = ROOT / "benchmarks" / "results" / "corrupted_notes.md"
    if notes.exists():  # the reading of the runs above, written by hand beside the records
        lines += ["", notes.read_text().strip()]
    text = "\n".join(lines) + "\n"
    out_md.write_text(text)
    return text


def main(argv=None) -> int:
    """Run the missing (dim, method, seed) records, then rewrite BENCHMARKS-corrupted.md from all of them."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="1 seed, 2000 W2 points, 1000 steps, 2000 DiEM observations")
    p.add_argument("--dims", type=int, nargs="+", default=[2, 8])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--n", type=int, default=10_000, help="samples for W2")
    p.add_argument("--n-train", type=int, default=20_000)
    p.add_argument("--n-em", type=int, default=4000, help="observations DiEM samples posteriors for")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--posterior-steps", type=int, default=32)
    p.add_argument("--consistency-steps", type=int, default=CONSISTENCY_STEPS, help="tweedie/sure: the consistency term's chain length")
    p.add_argument("--consistency-weighting", choices=["anchor", "dsm"], default="anchor", help="tweedie/sure: the consistency term's weights")
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "corrupted.jsonl")
    p.add_argument("--report", type=Path, default=ROOT / "BENCHMARKS-corrupted.md")
    p.add_argument("--digits", nargs=argparse.REMAINDER, default=None,
                   help="run the digits benchmark instead (benchmarks/corrupted_digits.py) with the options that follow")
    p.add_argument("--gradient-spread", action="store_true", help="only measure the per-sample gradient spread of DSM, Tweedie and SURE")
    p.add_argument("--render", action="store_true", help="only rewrite the report from the records")
    p.add_argument("--command", default=None, help="with --render: the command line to show for the mixture table")
    args = p.parse_args(argv)
    if args.digits is not None:
        import importlib.util

        spec = importlib.util.spec_from_file_location("corrupted_digits", Path(__file__).with_name("corrupted_digits.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.main(args.digits)
    if args.render:
        print(summarize(args.out, args.report, args.command or "OMP_NUM_THREADS=1 python benchmarks/corrupted.py --quick"))
        return 0
    if args.gradient_spread:
        torch.set_num_threads(1)
        rec = gradient_spread()
        (ROOT / "benchmarks" / "results" / "corrupted_gradient_spread.json").write_text(json.dumps(rec, indent=2) + "\n")
        print(json.dumps(rec, indent=2))
        return 0
    if args.quick:
        args.seeds, args.n, args.steps, args.n_em = 1, 2000, 1000, 2000
    torch.set_num_threads(1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if args.out.exists():
        done = {(r["dim"], r["method"], r["seed"]) for r in map(json.loads, args.out.read_text().splitlines()) if r}
    for dim in args.dims:
        for seed in range(args.seeds):
            if (dim, "law of y (noisy data itself)", seed) not in done and "clean" in args.methods:
                for rec in references(dim, seed, args):
                    with open(args.out, "a") as fh:
                        fh.write(json.dumps(rec) + "\n")
            for method in args.methods:
                if (dim, method, seed) in done:
                    continue
                rec = run_one(dim, method, seed, args)
                print(json.dumps(rec), flush=True)
                with open(args.out, "a") as fh:
                    fh.write(json.dumps(rec) + "\n")
    command = "OMP_NUM_THREADS=1 python benchmarks/corrupted.py " + " ".join(argv if argv is not None else os.sys.argv[1:])
    print(summarize(args.out, args.report, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
