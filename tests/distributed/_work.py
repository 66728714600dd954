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
          stop_at: int | None = None, resume: bool = False, fsdp: bool = False, evaluator=None, eval_every: int = 0):
    """Flow matching on 8 Gaussians with a tiny MLP; returns the weights, the EMA weights and the loss history."""
    from sdeflow.data import sample_toy
    from sdeflow.nn import MLP
    from sdeflow.training import DiffusionModel, FlowMatching, TrainConfig, Trainer

    data = sample_toy("8gaussians", 2048, seed=0)
    objective = FlowMatching()
    model = DiffusionModel(MLP((2,), 16, 2, seed=0), objective.process, "velocity")
    config = TrainConfig(steps=steps, batch_size=batch, lr=3e-3, warmup_steps=10, log_every=10, progress=False,
                         micro_batch=micro_batch, ckpt_every=0, ema_decay=0.9, fsdp=fsdp, eval_every=eval_every)
    result = Trainer(model, objective, data, config=config, out_dir=out_dir, evaluator=evaluator,
                     data_info={"name": "8gaussians", "kind": "vector"}).fit(stop_at=stop_at, resume=resume)
    return {
        "weights": {k: v.detach().clone() for k, v in result.model.net.state_dict().items()},
        "ema": {k: v.detach().clone() for k, v in result.ema_model.net.state_dict().items()},
        "history": result.history,
        "evaluations": result.evaluations,
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


def evaluators(n: int = 300, chunk: int = 100):
    """The trainer's two evaluators on fixed models, their sampling and features shared out by chunks."""
    from sdeflow.data import sample_toy
    from sdeflow.nn import MLP
    from sdeflow.training import DiffusionModel, DigitsEvaluator, FlowMatching, VectorEvaluator

    process = FlowMatching().process
    vector = DiffusionModel(MLP((2,), 16, 2, seed=1), process, "velocity")
    digits = DiffusionModel(MLP((1, 8, 8), 16, 2, seed=2), process, "velocity")
    with torch.no_grad():  # non-zero output layers, so that the samples depend on the networks
        for net in (vector.net, digits.net):
            net.out.weight.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(3))
    heldout = sample_toy("8gaussians", n, seed=1)
    out = {"vector": VectorEvaluator(heldout, n=n, steps=4, chunk=chunk, plot=False)(vector, 0, None),
           "digits": DigitsEvaluator(n=n, steps=4, chunk=chunk, grid=0)(digits, 0, None)}
    return out


def gaussian_problem():
    """A 3-D Gaussian prior seen through a 2 x 3 matrix with noise 0.3, three measurements."""
    from sdeflow.inverse import Linear
    from sdeflow.targets import gaussian

    g = torch.Generator().manual_seed(0)
    prior = gaussian(torch.randn(3, generator=g, dtype=torch.float64), torch.tensor([0.6, 1.0, 1.5], dtype=torch.float64))
    op = Linear(torch.randn(2, 3, generator=g, dtype=torch.float64), noise_std=0.3)
    y = op.measure(prior.sample(3, seeds=1, dtype=torch.float64), generator=g)
    return prior, op, y


def posteriors():
    """DPS with each measurement's 8 samples in units of 3; MCGdiff (a particle method) by measurement."""
    from sdeflow.inverse import posterior_sample_sharded
    from sdeflow.processes import VP

    prior, op, y = gaussian_problem()
    model = prior.model(VP(), "eps")
    dps = posterior_sample_sharded(model, VP(), op, y, method="dps", n_samples=8, samples_per_unit=3, steps=20,
                                   dtype=torch.float64, seed=7)
    smc = posterior_sample_sharded(model, VP(), op, y, method="mcgdiff", n_samples=16, particles=32, steps=20,
                                   dtype=torch.float64, seed=7)
    return {"dps": (dps.samples, dps.nfe), "mcgdiff": (smc.samples, smc.nfe, smc.ess, smc.resampled)}


def sde_paths(paths: int = 1000, chunk: int = 128):
    """Monte Carlo of a GBM's terminal value (Euler, 16 steps) and adaptive SRK paths, per-path seeds, shared out."""
    from sdeflow.finance import GBM

    sde = GBM(s0=100.0, r=0.05, sigma=0.2)
    y0 = sde.initial(paths).double()
    ts = torch.tensor([0.0, 1.0], dtype=torch.float64)
    terminal = distributed.sdeint(sde, y0, ts, seed=11, chunk_size=chunk, method="euler", dt=1 / 16,
                                  per_path=lambda ys: ys[-1, :, 0])
    mean = terminal.mean()
    stderr = terminal.std() / paths**0.5
    adaptive = distributed.sdeint(sde, y0[:40], torch.linspace(0, 1, 5, dtype=torch.float64), seed=3, chunk_size=16,
                                  method="srk", adaptive=True, dt=0.1, rtol=1e-3, atol=1e-3)
    return {"terminal": terminal, "mean": float(mean), "stderr": float(stderr), "adaptive": adaptive}


def sharded_work(out_dir: str):
    """FSDP training (40 planned steps, stopped at 20 with a checkpoint) with sharded evaluations at steps 10 and
    20, the evaluators, posterior samples and SDE paths: everything new of the second round, one launch."""
    fsdp = train(steps=40, out_dir=out_dir, stop_at=20, fsdp=True, micro_batch=48, evaluator=small_evaluator(),
                 eval_every=10)
    return {"fsdp": fsdp, "evaluate": evaluate_command(out_dir, out_dir + "/evaluate.json"), "evaluators": evaluators(),
            "posteriors": posteriors(), "sde": sde_paths(), "world": distributed.world_size()}


def evaluate_command(run: str, report: str):
    """``sdeflow evaluate`` on the run's step-20 checkpoint (600 samples, 4 Heun steps); its JSON report."""
    import json

    from sdeflow.cli import main

    assert main(["evaluate", "--ckpt", run + "/checkpoints/step_00000020", "--num-samples", "600", "--steps", "4",
                 "--json", report, "--quiet"]) == 0
    distributed.barrier()  # rank 0 has written the report
    with open(report) as fh:
        return json.load(fh)


def small_evaluator():
    """W2, sliced W2 and MMD of 400 samples (4 Heun steps, chunks of 100 seeds) against 400 held-out points."""
    from sdeflow.data import sample_toy
    from sdeflow.training import VectorEvaluator

    return VectorEvaluator(sample_toy("8gaussians", 400, seed=1), n=400, steps=4, chunk=100, plot=False)
