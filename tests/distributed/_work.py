"""What the launched workers run (importable by a fresh process; see ``_launch.py``).

Each function returns plain tensors and numbers, identical on every rank; the tests compare rank 0's
with the same function run in the test's own single process.
"""

from __future__ import annotations

import torch

from sdeflow import distributed

SOLVERS = {  # one of each kind: deterministic, stochastic, adaptive (per-sample step sizes)
    "heun": {"steps": 10},
    "euler_maruyama": {"steps": 20},
    "adaptive_ode": {},
}


def sample_range(solver: str, count: int, chunk: int, options: dict):
    """Samples of seeds 0..count-1 on ring2d's exact score, drawn by chunks shared over the ranks."""
    from sdeflow import processes, sample, targets

    target = targets.get("ring2d")
    process = processes.get("edm")
    model = target.model(process, "eps")

    def draw(first, m):
        x = process.prior_sample((m, 2), seeds=first, dtype=torch.float64)
        res = sample(model, process, x, solver=solver, seed=first + 10**9, **options)
        return res.samples, res.nfe

    return distributed.sample_seed_range(draw, 0, count, chunk)


def price(distributed_: bool = True):
    """An Asian call under GBM, Euler steps, 7 chunks of 300 paths (the last one shorter), with delta."""
    from sdeflow import finance

    model = finance.GBM(s0=100.0, r=0.03, sigma=0.25)
    res = finance.price(model, finance.Asian(strike=100.0), 1.0, paths=2000, steps=16, method="euler", seed=5,
                        chunk=300, antithetic=True, greeks=["delta"], distributed=distributed_)
    return res.price, res.stderr, res.ci, res.greeks["delta"]


def digits_frechet(chunk: int = 100):
    """Frechet distance between classifier features of 700 noisy digits and the held-out digits,
    the features computed on shards (map_chunks) and gathered in order."""
    from sdeflow.data.digits import digits_classifier, load_digits
    from sdeflow.metrics import frechet_distance
    from sdeflow.noise import randn

    clf = digits_classifier()
    images = load_digits("train").images[:700]
    noisy = images + 0.3 * randn(images.shape, seeds=0)
    with torch.no_grad():
        feats = distributed.map_chunks(lambda x: clf.features(x).double(), noisy, chunk)
        ref = clf.features(load_digits("test").images).double()
    return feats, frechet_distance(feats, ref)


def invariance(count: int = 1000, chunk: int = 128):
    """Everything that must not depend on the number of processes, in one launch."""
    out = {name: sample_range(name, count, chunk, opts) for name, opts in SOLVERS.items()}
    out["price"] = price()
    out["frechet"] = digits_frechet()
    out["world"] = distributed.world_size()
    return out


def train(steps: int = 100, batch: int = 256, micro_batch: int = 0, out_dir: str | None = None,
          stop_at: int | None = None, resume: bool = False):
    """Flow matching on 8 Gaussians with a tiny MLP; returns the weights, the EMA weights and the loss history."""
    from sdeflow.data import sample_toy
    from sdeflow.nn import MLP
    from sdeflow.training import DiffusionModel, FlowMatching, TrainConfig, Trainer

    data = sample_toy("8gaussians", 2048, seed=0)
    objective = FlowMatching()
    model = DiffusionModel(MLP((2,), 16, 2, seed=0), objective.process, "velocity")
    config = TrainConfig(steps=steps, batch_size=batch, lr=3e-3, warmup_steps=10, log_every=10, progress=False,
                         micro_batch=micro_batch, ckpt_every=0, ema_decay=0.9)
    result = Trainer(model, objective, data, config=config, out_dir=out_dir,
                     data_info={"name": "8gaussians", "kind": "vector"}).fit(stop_at=stop_at, resume=resume)
    return {
        "weights": {k: v.detach().clone() for k, v in result.model.net.state_dict().items()},
        "ema": {k: v.detach().clone() for k, v in result.ema_model.net.state_dict().items()},
        "history": result.history,
        "world": distributed.world_size(),
    }


def train_and_resume(out_dir: str):
    """The full run, and a run stopped at step 50 (its checkpoint written by rank 0) and resumed (one launch)."""
    full = train()
    train(out_dir=out_dir, stop_at=50)
    resumed = train(out_dir=out_dir, resume=True)
    return {"full": full, "resumed": resumed}


def two_processes(out_dir: str):
    """Everything checked on 2 processes, in one launch (a process start costs seconds)."""
    return {"invariance": invariance(), "training": train_and_resume(out_dir)}
