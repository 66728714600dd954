"""``sdeflow tune-grid`` and ``sdeflow sample --grid FILE``: the file, the printed figures, the checks."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

import sdeflow
from sdeflow.cli import main
from sdeflow.grids import load_tuned_grid

TUNE = ["tune-grid", "--target", "ring2d", "--solver", "dpm_solver_pp_2m", "--nfe", "6", "--pilot", "16",
        "--validation", "32", "--max-iter", "60"]  # no --quiet: the printed figures are checked


@pytest.fixture(scope="module")
def grid_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("tuned") / "grid.json"
    assert main([*TUNE, "--out", str(path)]) == 0
    return path


def test_tune_grid_writes_the_file_and_prints_the_validation_figures(tmp_path, capsys):
    # Exact-score ring, EDM, DPM-Solver++(2M) at 6 calls, 16 pilot and 32 held-out draws. Measured:
    # tuning J -0.860 -> -6.206, validation J -0.873 -> -5.884 (RMS 0.513 -> 0.0129). Required: the
    # printed validation line carries the file's before/after figures, and the tuned grid is better on
    # the held-out draws (objective lower by more than 2).
    path = tmp_path / "grid.json"
    assert main([*TUNE, "--out", str(path)]) == 0
    out = capsys.readouterr().out
    tuned = load_tuned_grid(path)
    line = next(ln for ln in out.splitlines() if ln.startswith("validation"))
    numbers = [float(v) for v in re.findall(r"-?\d+\.\d+(?:e-?\d+)?", line)]
    assert numbers[:2] == pytest.approx([tuned.validation_before.objective, tuned.validation_after.objective], abs=1e-4)
    assert numbers[2:4] == pytest.approx([tuned.validation_before.rms, tuned.validation_after.rms], rel=1e-3)
    assert tuned.validation_after.objective < tuned.validation_before.objective - 2
    assert tuned.tuning_after.objective < tuned.tuning_before.objective - 2
    assert f"wrote {path}" in out and tuned.settings["source"] == "target ring2d"
    assert tuned.solver == "dpm_solver_pp_2m" and tuned.nfe == 6 and tuned.settings["n_pilot"] == 16


def test_tune_grid_refuses_to_overwrite_before_any_work(grid_file, capsys):
    # The output is checked first: the existing file is refused (exit 2) and left byte for byte as it was;
    # with --overwrite the same run replaces it (same seeds: the same grid).
    before = grid_file.read_bytes()
    assert main([*TUNE, "--out", str(grid_file)]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert grid_file.read_bytes() == before
    assert main([*TUNE, "--out", str(grid_file), "--overwrite"]) == 0
    assert json.loads(grid_file.read_text())["ts"] == json.loads(before)["ts"]


def test_sample_grid_file_samples_on_exactly_those_times(grid_file, tmp_path):
    # Solver, options and nfe come from the file; the run's grid (metrics.json "ts", the result's ts) is
    # the file's list of times, float for float, and 6 model calls are made.
    out = tmp_path / "s"
    assert main(["sample", "--target", "ring2d", "--grid", str(grid_file), "--n", "50", "--floor-boot", "2",
                 "--out", str(out), "--quiet"]) == 0
    report = json.loads((out / "metrics.json").read_text())
    stored = json.loads(grid_file.read_text())
    assert report["ts"] == stored["ts"] and report["nfe"] == 6 and report["solver"] == "dpm_solver_pp_2m"
    # The samples are those of sdeflow.sample on the stored times from the same noise (float32 state).
    from sdeflow import processes, targets

    edm = processes.get("edm")
    x = edm.prior_sample((50, 2), seeds=0, dtype=torch.float32)
    expected = sdeflow.sample(targets.ring2d().model(edm, "eps"), edm, x, solver="dpm_solver_pp_2m", grid=stored["ts"]).samples
    assert np.array_equal(np.load(out / "samples.npz")["samples"], expected.numpy())


@pytest.mark.parametrize("argv, message", [
    (["--process", "vp"], "was tuned for process edm(sigma_min=0.002, sigma_max=80.0), not vp"),
    (["--solver", "ipndm"], "was tuned for solver 'dpm_solver_pp_2m'"),
    (["-o", "order=1"], "with options {'order': 2, 'eta': 0.0, 'solver_type': 'heun'}, not 'dpm_solver_pp_2m' with {'order': 1"),
    (["--nfe", "8"], "was tuned for nfe=6; got --nfe 8"),
    (["--steps", "5"], "has 6 steps; got --steps 5"),
])
def test_sample_grid_file_refuses_another_run(grid_file, tmp_path, capsys, argv, message):
    # Each mismatch ends as one line naming the file (exit 2) before the output folder is made.
    out = tmp_path / "s"
    assert main(["sample", "--target", "ring2d", "--grid", str(grid_file), *argv, "--n", "10", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sdeflow sample: error:") and message in err and str(grid_file) in err
    assert not out.exists()


def test_sample_with_a_damaged_grid_file(grid_file, tmp_path, capsys):
    data = json.loads(grid_file.read_text())
    data["ts"] = data["ts"][::-1]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    assert main(["sample", "--target", "ring2d", "--grid", str(bad), "--n", "10", "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: field 'ts'" in err and "strictly decreasing" in err


@pytest.mark.parametrize("argv, message", [
    (["--target", "ring2d", "--solver", "ddpm", "--nfe", "6"], "is stochastic"),
    (["--target", "no_such", "--solver", "ipndm", "--nfe", "6"], "neither a preset"),
    (["--target", "ring2d", "--solver", "ipndm", "--nfe", "0"], "--nfe must be >= 1"),
    (["--ckpt", "missing_run", "--process", "vp", "--solver", "ipndm", "--nfe", "6"], "--process applies to --target"),
])
def test_tune_grid_errors(tmp_path, capsys, argv, message):
    assert main(["tune-grid", *argv, "--out", str(tmp_path / "g.json"), "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "g.json").exists()


@pytest.mark.slow
def test_checkpoint_round_trip(tmp_path, capsys):
    # A 3-step checkpoint (flow matching, linear process, velocity MLP): tune-grid --ckpt tunes its grid
    # (start t = 1 kept, last time 0), and sample --ckpt --grid draws exactly what sdeflow.sample draws on
    # the stored times from the same noise, in data space.
    run = tmp_path / "run"
    assert main(["train", "--data", "ring2d", "--steps", "3", "--width", "16", "--depth", "1", "--batch-size", "32",
                 "--warmup", "2", "--no-progress", "--eval-solver", "euler", "--eval-steps", "3", "--n-data", "500",
                 "--eval-every", "0", "--out", str(run)]) == 0
    grid = tmp_path / "g.json"
    assert main(["tune-grid", "--ckpt", str(run), "--solver", "ipndm", "-o", "order=3", "--nfe", "5", "--pilot", "8",
                 "--validation", "8", "--max-iter", "10", "--out", str(grid), "--quiet"]) == 0
    tuned = load_tuned_grid(grid)
    assert tuned.ts[0] == 1.0 and tuned.ts[-1] == 0.0 and tuned.process["name"] == "linear"
    assert tuned.tuning_after.objective <= tuned.tuning_before.objective
    assert main(["sample", "--ckpt", str(run), "--grid", str(grid), "--n", "20", "--out", str(tmp_path / "s"), "--quiet"]) == 0
    assert json.loads((tmp_path / "s" / "metrics.json").read_text())["ts"] == list(tuned.ts)
    from sdeflow.data.sources import transform_to_data
    from sdeflow.training import load_checkpoint_model

    model, process, prediction, config = load_checkpoint_model(run)
    x = process.prior_sample((20, 2), seeds=0)
    with torch.no_grad():
        expected = sdeflow.sample(model, process, x, prediction=prediction, solver="ipndm", order=3, grid=list(tuned.ts)).samples
    expected = transform_to_data(expected, config["data"].get("transform"))
    assert np.array_equal(np.load(tmp_path / "s" / "samples.npz")["samples"], expected.numpy())
