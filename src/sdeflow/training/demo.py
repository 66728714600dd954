"""The end-to-end demo: train on the scikit-learn digits and on a 2-D toy, sample, measure, draw.

:func:`run_demo` (behind ``sdeflow demo``) does, on the CPU:

1. **2-D toy** (moons, Tong et al.'s definition): conditional flow matching on the linear path with
   independent pairs and a velocity MLP; sampled with Heun's method on the probability-flow ODE
   (fast, deterministic) and with Euler-Maruyama on the reverse SDE (stochastic); exact
   Wasserstein-2 against held-out points, with the two-sample floor; a trajectory figure.
2. **Digits** (1438 training images, 8x8): denoising score matching on the VP process with an
   eps-predicting U-Net; sampled with DPM-Solver++(2M) (fast, deterministic) and with
   DPM-Solver++(2M) SDE (stochastic); Frechet distance in the shipped classifier's feature space
   against the 359 held-out digits, with its floor, and the share of samples the classifier labels
   with confidence above 0.5; an image grid.

Both runs write ordinary checkpoints (``toy/`` and ``digits/`` run folders), so
``sdeflow sample --ckpt OUT/digits`` works on them afterwards. ``metrics.json`` collects every
number, with the training budget, the solvers and their model calls (NFE).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from ..data import get_data
from ..grids import UniformT
from ..nn import MLP, UNet
from ..processes import VP, Linear
from .. import plots
from .evaluation import digits_scores, draw_samples
from .model import DiffusionModel
from .objectives import DenoisingScoreMatching, FlowMatching
from .trainer import TrainConfig, Trainer

__all__ = ["run_demo", "DEMO_SETTINGS", "DEMO_OUTPUTS"]

DEMO_OUTPUTS = ("toy", "digits", "toy_trajectories.png", "toy_samples.png", "digits_grid.png", "metrics.json")
"""What :func:`run_demo` writes into its folder: two run folders, three figures and the metrics."""

DEMO_SETTINGS: dict[str, dict[str, Any]] = {
    "full": {
        "toy_steps": 1500, "toy_batch": 256, "toy_width": 128,
        "digits_steps": 1200, "digits_batch": 128, "digits_channels": 16,
        "toy_samples": 2000, "digits_samples": 1438,
    },
    "quick": {
        "toy_steps": 150, "toy_batch": 128, "toy_width": 64,
        "digits_steps": 60, "digits_batch": 64, "digits_channels": 8,
        "toy_samples": 500, "digits_samples": 200,
    },
}
"""Training budgets of the full demo and of ``quick=True`` (a smoke run for tests)."""

_FAST_SOLVER = {"toy": ("heun", 8), "digits": ("dpm_solver_pp_2m", 10)}
_STOCHASTIC_SOLVER = {"toy": ("euler_maruyama", 100), "digits": ("dpm_solver_pp_2m_sde", 25)}


def _fit(source, objective, model, steps: int, batch: int, ema: float, out_dir: Path, progress: bool, overwrite: bool):
    """Train ``model`` on ``source`` (checkpoints in ``out_dir``); returns ``(result, seconds)``."""
    config = TrainConfig(steps=steps, batch_size=batch, lr=2e-3, warmup_steps=50, ema_decay=ema, progress=progress)
    tic = time.perf_counter()
    trainer = Trainer(model, objective, source.x, config=config, out_dir=out_dir, data_info=source.checkpoint_info())
    result = trainer.fit(overwrite=overwrite)
    return result, time.perf_counter() - tic


def _train_toy(out: Path, s: dict[str, Any], progress: bool, overwrite: bool) -> tuple[dict[str, Any], dict[str, Path]]:
    from ..metrics import two_sample_floor, wasserstein2

    source = get_data("moons", n=20_000, n_heldout=2 * s["toy_samples"], seed=0)
    objective = FlowMatching(Linear(), "velocity", coupling="independent")
    model = DiffusionModel(MLP((2,), s["toy_width"], 3), objective.process, "velocity")
    result, train_seconds = _fit(source, objective, model, s["toy_steps"], s["toy_batch"], 0.999, out / "toy", progress, overwrite)
    n, ref = s["toy_samples"], source.heldout
    metrics: dict[str, Any] = {
        "data": "moons", "objective": "conditional flow matching (linear path, independent pairs)",
        "network": f"MLP width {s['toy_width']}, 3 residual blocks", "train_steps": s["toy_steps"],
        "batch_size": s["toy_batch"], "train_seconds": round(train_seconds, 2),
        "samples_per_second": round(result.samples_per_second, 1), "n_samples": n,
        "w2_floor": two_sample_floor("wasserstein2", ref, n=n, n_boot=3, seed=1).value,
    }
    figures: dict[str, Path] = {}
    proc = objective.process
    name, steps = _FAST_SOLVER["toy"]
    fast, traj, ts = draw_samples(result.ema_model, proc, (2,), n, solver=name, steps=steps, seed=0, return_trajectory=True)
    metrics["fast"] = {"solver": name, "steps": steps, "nfe": 2 * steps - 1, "w2": wasserstein2(fast, ref[:n])}
    name, steps = _STOCHASTIC_SOLVER["toy"]
    # The linear path's reverse SDE has f = -1/(1-t): the stochastic grid starts just below T = 1.
    noisy = draw_samples(result.ema_model, proc, (2,), n, solver=name, steps=steps, seed=0, grid=UniformT(t_max=0.99))
    metrics["stochastic"] = {"solver": name, "steps": steps, "nfe": steps, "grid": "uniform in t from 0.99", "w2": wasserstein2(noisy, ref[:n])}
    figures["toy_trajectories"] = plots.trajectories(
        out / "toy_trajectories.png", [("probability-flow ODE (heun)", ts, traj)], n_paths=300,
        title=f"moons: flow paths, {metrics['fast']['nfe']} NFE")
    figures["toy_samples"] = plots.scatter(
        out / "toy_samples.png", fast, reference=ref[n:], labels=(f"ODE: {_FAST_SOLVER['toy'][0]}, W2 {metrics['fast']['w2']:.3f}", "held-out data"),
        others={f"SDE: {name}, W2 {metrics['stochastic']['w2']:.3f}": noisy},
        title=f"moons: samples of the trained flow beside held-out data (W2 floor {metrics['w2_floor']:.3f})")
    figures["toy_checkpoint"] = result.checkpoint
    return metrics, figures


def _train_digits(out: Path, s: dict[str, Any], progress: bool, overwrite: bool) -> tuple[dict[str, Any], dict[str, Path]]:
    source = get_data("digits")
    process = VP()
    objective = DenoisingScoreMatching(process, "eps")
    net = UNet(1, (8, 8), s["digits_channels"], (1, 2), 1, groups=min(8, s["digits_channels"]))
    model = DiffusionModel(net, process, "eps")
    result, train_seconds = _fit(source, objective, model, s["digits_steps"], s["digits_batch"], 0.995, out / "digits", progress,
                                 overwrite)
    n = s["digits_samples"]
    metrics: dict[str, Any] = {
        "data": "scikit-learn digits (1438 train / 359 held-out)", "objective": "denoising score matching (VP, eps, uniform weighting)",
        "network": f"U-Net {s['digits_channels']} channels, levels (1, 2), 1 residual block, attention in the middle",
        "train_steps": s["digits_steps"], "batch_size": s["digits_batch"], "train_seconds": round(train_seconds, 2),
        "samples_per_second": round(result.samples_per_second, 1), "n_samples": n,
        "feature_space": "penultimate layer of the shipped digits classifier (sdeflow.data.digits)",
    }
    figures: dict[str, Path] = {}
    groups = {"real digits\n(held out)": source.heldout[:20]}
    for key, (name, steps) in (("fast", _FAST_SOLVER["digits"]), ("stochastic", _STOCHASTIC_SOLVER["digits"])):
        x = draw_samples(result.ema_model, process, (1, 8, 8), n, solver=name, steps=steps, seed=0)
        scores = digits_scores(x)
        metrics[key] = {"solver": name, "steps": steps, "nfe": steps, **scores}
        kind = "ODE" if key == "fast" else "SDE"
        groups[f"{kind}: {name}\n{steps} steps, FD {scores.get('frechet_distance', float('nan')):.2f}"] = x[:30]
    figures["digits_grid"] = plots.image_rows(
        out / "digits_grid.png", groups, ncol=10,
        title="digits: real (held out) above, samples of the trained U-Net below (FD: Frechet distance, classifier features)")
    figures["digits_checkpoint"] = result.checkpoint
    return metrics, figures


def run_demo(out_dir: Path, *, quick: bool = False, progress: bool = True, overwrite: bool = False) -> dict[str, Any]:
    """Train, sample and measure the digits and the moons models; write figures and ``metrics.json``.

    Args:
        out_dir: the folder to write into (created).
        quick: a small budget (a smoke test of the whole path, seconds instead of minutes).
        progress: show progress bars.
        overwrite: replace the files of an earlier demo (:data:`DEMO_OUTPUTS`) in ``out_dir``;
            without it an earlier demo's files there are an error, before any training.

    Returns:
        ``{"out_dir", "metrics", "metrics_json", "digits_grid", "toy_trajectories", "toy_samples",
        "digits_checkpoint", "toy_checkpoint", "seconds"}`` (paths as :class:`pathlib.Path`).
    """
    out = Path(out_dir)
    clashes = [name for name in DEMO_OUTPUTS if (out / name).exists()]
    if clashes and not overwrite:
        raise FileExistsError(f"out_dir {out} already holds {clashes}; pass overwrite=True (--overwrite) or choose another folder")
    out.mkdir(parents=True, exist_ok=True)
    settings = DEMO_SETTINGS["quick" if quick else "full"]
    tic = time.perf_counter()
    toy_metrics, toy_files = _train_toy(out, settings, progress, overwrite)
    digit_metrics, digit_files = _train_digits(out, settings, progress, overwrite)
    seconds = time.perf_counter() - tic
    metrics = {"quick": quick, "seconds": round(seconds, 2), "threads": torch.get_num_threads(),
               "toy": toy_metrics, "digits": digit_metrics}
    path = out / "metrics.json"
    path.write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    return {"out_dir": out, "metrics": metrics, "metrics_json": path, **toy_files, **digit_files, "seconds": seconds}
