"""Results that do not depend on the number of processes: 1, 2, 3 and 4 gloo processes on this CPU.

Sampling, Monte Carlo pricing and evaluation: the work is cut into chunks fixed by global index
(never by rank), each sample's noise comes from its own seed, and reductions fold per-chunk partial
results in chunk order, so every figure is expected to be *bit for bit* the single-process one
(``torch.equal`` and ``==`` on floats, no tolerance): the samples of seeds 0..999 for a deterministic
(heun), a stochastic (Euler-Maruyama on per-sample Brownian paths) and an adaptive (per-sample step
sizes) solver, an Asian option's Monte Carlo price, standard error, interval and pathwise delta, and
a Frechet distance whose classifier features are computed on shards.

Training: 100 steps of flow matching with a global batch of 256 on a tiny MLP. Every example of the
global batch gets the data, time and noise of its global position on every process; only the order
in which gradients are summed differs (DistributedDataParallel's all-reduce, gradient accumulation).
The weights are expected to agree to float32 rounding carried through 100 Adam steps: relative
difference below 1e-6 (measured 1.3e-7 for 2 processes and for micro-batches of 32). A run stopped
at step 50 and resumed from rank 0's checkpoint performs the same operations as the uninterrupted run
on the same number of processes: bit for bit equal.

Each launch does all its checks at once (starting processes costs seconds).
"""

from __future__ import annotations

import pytest
import torch

from . import _work
from ._launch import launch


def _relative(a: dict, b: dict) -> float:
    num = sum(float((a[k] - b[k]).double().norm() ** 2) for k in a) ** 0.5
    den = sum(float(a[k].double().norm() ** 2) for k in a) ** 0.5
    return num / den


@pytest.fixture(scope="module")
def single_invariance():
    return _work.invariance()


@pytest.fixture(scope="module")
def single_training():
    return _work.train()


def _check_invariance(many: dict, single: dict, world: int) -> None:
    assert many["world"] == world and single["world"] == 1
    for solver in _work.SOLVERS:
        samples, nfe = many[solver]
        # Expected: the gathered samples equal the single-process ones bit for bit, in seed order, and
        # every chunk made the same number of model calls (the adaptive solver's too).
        assert samples.shape == (1000, 2)
        assert torch.equal(samples, single[solver][0]), solver
        assert nfe == single[solver][1], solver
    # Expected: price, standard error, interval and delta identical to the last bit (== on floats).
    assert many["price"] == single["price"]
    feats, fd = many["frechet"]
    assert torch.equal(feats, single["frechet"][0])
    assert fd == single["frechet"][1]


def _check_training(many: dict, single: dict, world: int) -> None:
    assert many["world"] == world
    # Expected: < 1e-6 relative (measured 1.3e-7); the logged losses agree to float32 rounding.
    assert _relative(single["weights"], many["weights"]) < 1e-6
    assert _relative(single["ema"], many["ema"]) < 1e-6
    assert [h["step"] for h in many["history"]] == [h["step"] for h in single["history"]]
    for a, b in zip(single["history"], many["history"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)


def test_chunks_are_real_work_units():
    # The checks are only meaningful if the work is shared: with 1000 seeds in chunks of 128 there are
    # 8 chunks, so 2 ranks run 4 each and 3 ranks run 3, 3 and 2; the Monte Carlo check has 7 chunks
    # of 300 paths (2000 paths, the last chunk 200); 256 examples on 4 ranks are 64 rows each.
    from sdeflow.distributed import chunk_bounds, shard_range

    bounds = chunk_bounds(1000, 128)
    assert len(bounds) == 8 and bounds[-1] == (896, 1000)
    assert [len(shard_range(8, r, 3)) for r in range(3)] == [3, 3, 2]
    assert len(chunk_bounds(2000, 300)) == 7
    assert [len(shard_range(256, r, 4)) for r in range(4)] == [64] * 4


def test_gradient_accumulation_matches_one_pass(single_training):
    # Micro-batches of 32 (8 backward passes summed into one step): the same gradient up to the order of the sums.
    micro = _work.train(micro_batch=32)
    _check_training(micro, single_training, 1)


@pytest.mark.slow
def test_two_processes(single_invariance, single_training, tmp_path):
    two = launch(2, "tests.distributed._work:two_processes", str(tmp_path / "run"))
    _check_invariance(two["invariance"], single_invariance, 2)
    full, resumed = two["training"]["full"], two["training"]["resumed"]
    _check_training(full, single_training, 2)
    # Expected: stopped at 50 and resumed == uninterrupted, bit for bit (same processes, same operations).
    for key in ("weights", "ema"):
        for name, value in full[key].items():
            assert torch.equal(value, resumed[key][name]), (key, name)
    assert resumed["history"] == full["history"]
    # Rank 0 wrote the checkpoints, atomically (no temporary folder is left behind).
    ckpts = tmp_path / "run" / "checkpoints"
    assert list(ckpts.iterdir()) and not list(ckpts.glob(".tmp-*"))


@pytest.mark.slow
def test_three_processes(single_invariance):
    _check_invariance(launch(3, "tests.distributed._work:invariance"), single_invariance, 3)


@pytest.mark.slow
def test_four_processes(single_training):
    _check_training(launch(4, "tests.distributed._work:train"), single_training, 4)


@pytest.mark.slow
def test_two_processes_fsdp_evaluation_posteriors_and_sde_paths(tmp_path):
    # One launch of 2 processes: FSDP training (40 planned steps) stopped at step 20 with a checkpoint by rank 0
    # and sharded evaluations at steps 10 and 20; the two evaluators on fixed models; posterior samples (DPS by
    # units of 3 samples, MCGdiff by measurement); Monte Carlo SDE paths.
    # The single-process figures first: the forked processes then inherit the imports they need (POT, FSDP).
    import torch.distributed.fsdp  # noqa: F401

    single = _work.train(steps=40, stop_at=20, evaluator=_work.small_evaluator(), eval_every=10)
    full = _work.train(steps=40)
    evaluators, posteriors, sde = _work.evaluators(), _work.posteriors(), _work.sde_paths()
    two = launch(2, "tests.distributed._work:sharded_work", str(tmp_path / "run"))
    assert two["world"] == 2

    # FSDP: the same global-batch gradient as one process, only summed in another order (reduce-scatter and
    # micro-batches of 48): weights after 20 steps within 1e-6 relative (measured 4.7e-8), the EMA too.
    fsdp = two["fsdp"]
    assert fsdp["world"] == 2
    assert _relative(single["weights"], fsdp["weights"]) < 1e-6
    assert _relative(single["ema"], fsdp["ema"]) < 1e-6
    # The evaluations during the FSDP run (the EMA's full weights gathered, sampled on shards) are the
    # single-process evaluations of weights equal to 5e-8: the same metrics to 1e-4 relative (measured 5e-9).
    assert [e["step"] for e in fsdp["evaluations"]] == [e["step"] for e in single["evaluations"]] == [10, 20]
    for a, b in zip(single["evaluations"], fsdp["evaluations"]):
        assert a["w2"] == pytest.approx(b["w2"], rel=1e-4) and a["mmd"] == pytest.approx(b["mmd"], rel=1e-4)

    # The FSDP checkpoint holds full tensors: a single process resumes it to step 40 and ends within 1e-6 of the
    # uninterrupted single-process run (measured 5.8e-8).
    alone = _work.train(steps=40, out_dir=str(tmp_path / "run"), resume=True)
    assert alone["history"][-1]["step"] == 40
    assert _relative(full["weights"], alone["weights"]) < 1e-6
    assert _relative(full["ema"], alone["ema"]) < 1e-6

    # Evaluators: samples drawn by chunks of seeds and classifier features by chunks of images, shared out:
    # every metric equal to the last bit (== on floats); `sdeflow evaluate` under the launch writes the report
    # of one process (W2, sliced W2, MMD and the W2 floor).
    assert two["evaluators"] == evaluators
    one = _work.evaluate_command(str(tmp_path / "run"), str(tmp_path / "evaluate-1.json"))
    assert two["evaluate"] == one and set(one) >= {"wasserstein2", "sliced_wasserstein2", "mmd", "wasserstein2_floor"}

    # Posterior samples: each unit's randomness is its own seed's, so 2 processes give the same bits.
    assert torch.equal(two["posteriors"]["dps"][0], posteriors["dps"][0])
    assert two["posteriors"]["dps"][1] == posteriors["dps"][1]
    samples, nfe, ess, resampled = two["posteriors"]["mcgdiff"]
    assert torch.equal(samples, posteriors["mcgdiff"][0]) and torch.equal(ess, posteriors["mcgdiff"][2])
    assert (nfe, resampled) == (posteriors["mcgdiff"][1], posteriors["mcgdiff"][3])

    # SDE paths with per-path seeds: the terminal values, the Monte Carlo mean and standard error, and adaptive
    # paths (each chunk its own steps) identical to the last bit.
    assert torch.equal(two["sde"]["terminal"], sde["terminal"]) and torch.equal(two["sde"]["adaptive"], sde["adaptive"])
    assert (two["sde"]["mean"], two["sde"]["stderr"]) == (sde["mean"], sde["stderr"])
