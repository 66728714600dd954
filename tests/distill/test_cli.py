"""``sdeflow distill`` and ``sdeflow train --objective ct|ect``: runs, checkpoints, exact resume, errors."""

from __future__ import annotations

import json

import pytest
import torch

import sdeflow
from sdeflow.cli import main
from sdeflow.distill.runs import load_consistency_model
from sdeflow.training import read_checkpoint


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    # A small EDM-preconditioned teacher checkpoint of the ring preset, written by the Trainer as
    # `sdeflow train` writes it (without train's final evaluation, which costs a minute).
    from sdeflow.data import get_data
    from sdeflow.nn import MLP
    from sdeflow.processes import EDM
    from sdeflow.training import DenoisingScoreMatching, DiffusionModel, TrainConfig, Trainer

    out = tmp_path_factory.mktemp("teacher") / "run"
    source = get_data("ring2d", n=2000, n_heldout=500)
    model = DiffusionModel(MLP((2,), 32, 1), EDM(), precond="edm")
    objective = DenoisingScoreMatching(EDM(), "x0", weighting="edm", time_sampler="lognormal")
    Trainer(model, objective, source.x, config=TrainConfig(steps=40, batch_size=64, progress=False), out_dir=out,
            data_info=source.checkpoint_info()).fit()
    return out


def _json(capsys):
    text = capsys.readouterr().out
    return json.loads(text[text.index("{"):text.rindex("}") + 1])


def test_distill_cd_writes_a_consistency_checkpoint_and_resumes_exactly(teacher, tmp_path, capsys):
    # Expected: 20 steps in one go and 10 + 10 with --resume give bit-identical weights (the trainer's exact
    # resume carries over to the consistency objective: its target is the checkpointed EMA); the summary
    # reports one evaluation row per --eval-nfe with that many model calls.
    common = ["distill", "--teacher", str(teacher), "--method", "cd", "--batch-size", "64", "--eval-n", "100",
              "--quiet", "--ckpt-every", "10"]
    assert main(common + ["--steps", "20", "--out", str(tmp_path / "a"), "--json"]) == 0
    summary = _json(capsys)
    assert [r["nfe"] for r in summary["evaluation"]] == [1, 2]
    assert all(r["wasserstein2"] > 0 for r in summary["evaluation"])
    assert main(common + ["--steps", "10", "--out", str(tmp_path / "b"), "--eval-n", "0"]) == 0
    assert main(common + ["--steps", "20", "--out", str(tmp_path / "b"), "--resume"]) == 0
    capsys.readouterr()
    wa, wb = read_checkpoint(tmp_path / "a").weights(), read_checkpoint(tmp_path / "b").weights()
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    f, process, config = load_consistency_model(tmp_path / "a")
    assert config["objective"]["name"] == "cd" and config["objective"]["teacher"].endswith("run")
    r = sdeflow.sample(f, process, process.prior_sample((8, 2), seeds=0), solver="consistency", nfe=2, seed=0)
    assert r.nfe == 2 and torch.isfinite(r.samples).all()
    # `sdeflow sample --ckpt` knows the kind: with no --solver it runs the consistency sampler (2 calls
    # here), and its samples are the consistency function's own, mapped back to data space: equal to
    # sampling load_consistency_model's f from the same per-sample seeds (to float rounding of the map).
    import numpy as np

    from sdeflow.data.sources import transform_to_data

    assert main(["sample", "--ckpt", str(tmp_path / "a"), "--nfe", "2", "--n", "8", "--out", str(tmp_path / "s"), "--json"]) == 0
    report = _json(capsys)
    assert report["solver"] == "consistency" and report["nfe"] == 2
    expected = transform_to_data(r.samples, config["data"].get("transform"))
    got = torch.as_tensor(np.load(tmp_path / "s" / "samples.npz")["samples"])
    assert torch.allclose(got.to(expected.dtype), expected, rtol=1e-5, atol=1e-6)
    # The implied noise (eta = 0) through the solver option, still the consistency sampler.
    assert main(["sample", "--ckpt", str(tmp_path / "a"), "--nfe", "2", "--n", "8", "-o", "eta=0",
                 "--out", str(tmp_path / "s1"), "--json"]) == 0
    report = _json(capsys)
    assert report["solver"] == "consistency" and report["solver_options"] == {"eta": 0} and report["nfe"] == 2


def test_distill_pd_halves_the_steps_per_round(teacher, tmp_path, capsys):
    # Expected: --start-steps 8 and 2 rounds give students of 4 and 2 DDIM steps with grids ts[::2] and ts[::4].
    assert main(["distill", "--teacher", str(teacher), "--method", "pd", "--start-steps", "8", "--rounds", "2",
                 "--steps", "10", "--batch-size", "64", "--out", str(tmp_path / "pd"), "--eval-nfe", "2",
                 "--eval-n", "100", "--quiet", "--json"]) == 0
    summary = _json(capsys)
    assert [r["steps"] for r in summary["rounds"]] == [4, 2]
    assert len(summary["rounds"][1]["ts"]) == 3 and summary["rounds"][1]["ts"][-1] == 0.0
    assert summary["evaluation"][0]["nfe"] == 2
    assert (tmp_path / "pd" / "round2").is_dir()


def test_train_ct_and_ect(teacher, tmp_path, capsys):
    # Expected: both write checkpoints that load as consistency functions and sample in one call.
    assert main(["train", "--data", "ring2d", "--objective", "ct", "--process", "edm", "--precond", "edm", "--steps", "10",
                 "--width", "32", "--depth", "1", "--batch-size", "64", "--out", str(tmp_path / "ct"), "--quiet"]) == 0
    assert main(["train", "--data", "ring2d", "--objective", "ect", "--init", str(teacher), "--steps", "10",
                 "--batch-size", "64", "--out", str(tmp_path / "ect"), "--quiet"]) == 0
    capsys.readouterr()
    for name in ("ct", "ect"):
        f, process, config = load_consistency_model(tmp_path / name)
        assert config["objective"]["name"] == name
        r = sdeflow.sample(f, process, process.prior_sample((4, 2), seeds=0), solver="consistency", nfe=1)
        assert r.nfe == 1 and torch.isfinite(r.samples).all()


def test_cli_errors_name_the_flag(teacher, tmp_path, capsys):
    assert main(["distill", "--teacher", str(teacher), "--method", "pd", "--rounds", "-1", "--out", str(tmp_path / "x")]) == 2
    assert "--rounds" in capsys.readouterr().err
    assert main(["distill", "--teacher", str(teacher), "--method", "pd", "--start-steps", "6", "--rounds", "2",
                 "--out", str(tmp_path / "y")]) == 2
    assert "--start-steps" in capsys.readouterr().err
    assert main(["train", "--data", "ring2d", "--objective", "ect", "--steps", "5", "--out", str(tmp_path / "z")]) == 2
    assert "--init" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not a consistency objective"):
        load_consistency_model(teacher)
