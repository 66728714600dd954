"""The foundation's commands: solvers, sample, demo; files written, never overwritten silently, errors."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sdeflow.cli import main
from sdeflow.solvers import available


def test_solvers_lists_the_registry(capsys):
    assert main(["solvers"]) == 0
    out = capsys.readouterr().out
    for name in available():
        assert name in out
    assert main(["solvers", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    heun = next(r for r in rows if r["name"] == "heun")
    assert heun["ode_order"] == 2 and heun["calls_per_step"] == 2


def test_sample_writes_samples_figure_and_metrics(tmp_path, capsys):
    # 400 ring samples with Heun, 12 steps (23 calls): files exist, the samples have the right shape,
    # and the sliced W2 is finite and reported with its floor.
    out = tmp_path / "run"
    code = main(["sample", "--solver", "heun", "--n", "400", "--steps", "12", "--out", str(out), "--quiet", "--floor-boot", "5"])
    assert code == 0
    data = np.load(out / "samples.npz")["samples"]
    assert data.shape == (400, 2)
    report = json.loads((out / "metrics.json").read_text())
    assert report["nfe"] == 23 and report["steps"] == 12
    assert np.isfinite(report["sliced_wasserstein2"]) and report["sliced_wasserstein2_floor"] > 0
    assert (out / "samples.png").stat().st_size > 1000
    # The same folder again: refused without --overwrite, so no file is lost.
    assert main(["sample", "--n", "400", "--steps", "12", "--out", str(out), "--quiet"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_sample_with_solver_options_and_pt_format(tmp_path):
    out = tmp_path / "ddim"
    args = ["sample", "--solver", "ddim", "-o", "eta=1.0", "--nfe", "10", "--n", "300", "--format", "pt"]
    assert main(args + ["--out", str(out), "--quiet", "--floor-boot", "3", "--process", "vp"]) == 0
    saved = torch.load(out / "samples.pt")
    assert saved["samples"].shape == (300, 2)
    assert json.loads((out / "metrics.json").read_text())["nfe"] == 10


@pytest.mark.parametrize(
    "args, message",
    [
        (["--solver", "nope"], "unknown solver"),
        (["--process", "nope"], "unknown process"),
        (["--target", "nope"], "unknown"),
        (["--prediction", "noise"], "prediction"),
        (["-o", "eta"], "NAME=VALUE"),
        (["--n", "1"], "--n"),
    ],
)
def test_sample_errors_are_clear(tmp_path, capsys, args, message):
    assert main(["sample", "--out", str(tmp_path / "x"), "--quiet", *args]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_demo_writes_its_files(tmp_path, capsys):
    # The main job with a short training budget: every file it names exists, and every exact-score
    # solver gets a sliced W2 below 0.5 (the ring's radius is 1; a broken sampler lands far off).
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--n", "300", "--quick"]) == 0  # no --quiet: the printed list is checked
    printed = capsys.readouterr().out
    for name in ("trajectories.png", "samples.png", "metrics.json"):
        assert (out / "exact_score_ring" / name).exists()
    listed = [line.strip() for line in printed.splitlines() if line.startswith("  /")]
    assert len(listed) >= 6 and all(Path(p).exists() for p in listed)
    report = json.loads((out / "exact_score_ring" / "metrics.json").read_text())
    assert all(s["sliced_wasserstein2"] < 0.5 for s in report["solvers"].values())
    assert (out / "metrics.json").exists()  # the training part's metrics


def test_sample_from_a_checkpoint_needs_no_other_flag(tmp_path, capsys):
    # `sdeflow train` for a few steps, then `sdeflow sample --ckpt PATH` alone: 2-D samples, a figure, JSON.
    ckpt = tmp_path / "ckpt"
    assert main(["train", "--data", "moons", "--steps", "5", "--batch-size", "32", "--width", "16", "--depth", "1",
                 "--warmup", "1", "--no-progress", "--eval-solver", "euler", "--eval-steps", "3", "--n-data", "500",
                 "--out", str(ckpt)]) == 0
    out = tmp_path / "samples"
    assert main(["sample", "--ckpt", str(ckpt), "--n", "50", "--steps", "4", "--out", str(out), "--quiet"]) == 0
    assert np.load(out / "samples.npz")["samples"].shape == (50, 2)
    assert (out / "samples.png").exists() and json.loads((out / "metrics.json").read_text())["n"] == 50
