"""The reflow pipeline: it straightens, it samples in one step, it resumes exactly, it refuses bad input."""

import json

import pytest
import torch

from sdeflow.cli import main
from sdeflow.metrics import wasserstein2
from sdeflow.noise.rng import randn
from sdeflow.processes import Linear
from sdeflow.sample import sample
from sdeflow.transport import ReflowConfig, euler_grid, pack_pairs, run_reflow

TINY = dict(width=48, depth=2, batch_size=256, n_pairs=3000, n_eval=500, straightness_steps=32, solver_steps=16, progress=False)


def _two_blobs(n: int, seed: int) -> torch.Tensor:
    # Two Gaussian blobs at (+-2, 0), std 0.3: 1-RF from N(0, I) crosses paths near t = 1/2 and curves them.
    g = torch.Generator().manual_seed(seed)
    side = torch.randint(0, 2, (n,), generator=g).to(torch.float32) * 4 - 2
    return torch.stack((side, torch.zeros(n)), 1) + 0.3 * torch.randn(n, 2, generator=g)


@pytest.mark.slow
def test_reflow_straightens_and_samples_in_one_step(tmp_path):
    # Expected: 2-RF's straightness is at least 5x below 1-RF's (Liu et al. 2023, Fig. 6: reflow straightens;
    # measured here 0.95 -> 0.008 with 300 steps per round), and with ONE Euler step 2-RF's samples are closer to
    # the target than 1-RF's (exact W2 on 2000 points; one 1-RF step lands near the blobs' mean; bound 0.6 for 2-RF),
    # and both losses fell during training.
    target = _two_blobs(10_000, 0)
    cfg = ReflowConfig(rounds=2, steps=300, reflow_steps=300, **TINY)
    result = run_reflow(target, config=cfg, out_dir=tmp_path / "run")
    s1, s2 = (stage["straightness"] for stage in result.stages)
    assert s2 < s1 / 5, (s1, s2)
    ref = _two_blobs(2000, 1)
    z = randn((2000, 2), seeds=123)
    w = {name: wasserstein2(sample(m, Linear(), z, solver="euler", grid=euler_grid(1)).samples, ref)
         for name, m in result.models.items()}
    assert w["rf2"] < 0.6 and w["rf2"] < w["rf1"], w
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert [s["stage"] for s in report["stages"]] == ["rf1", "rf2"]
    for stage in result.stages:
        assert stage["final_loss"] < stage["first_loss"], stage


def test_resume_continues_where_the_run_stopped(tmp_path):
    # Expected: a run of 1 round, resumed with 2 rounds and distillation, ends with the same weights, bit for
    # bit, as the uninterrupted run (the trainer's exact resume and per-sample seeded couplings).
    target = _two_blobs(2000, 0)
    small = dict(TINY, width=16, depth=1, n_pairs=500, n_eval=50, batch_size=64)
    full = run_reflow(target, config=ReflowConfig(rounds=2, distill=True, steps=20, reflow_steps=20, distill_steps=10, **small),
                      out_dir=tmp_path / "full")
    run_reflow(target, config=ReflowConfig(rounds=1, steps=20, **small), out_dir=tmp_path / "split")
    again = run_reflow(target, config=ReflowConfig(rounds=2, distill=True, steps=20, reflow_steps=20, distill_steps=10, **small),
                       out_dir=tmp_path / "split", resume=True)
    assert [s["stage"] for s in again.stages] == ["rf1", "rf2", "distill"]
    for name in ("rf1", "rf2", "distill"):
        for a, b in zip(full.models[name].state_dict().values(), again.models[name].state_dict().values()):
            assert torch.equal(a, b), name
    with pytest.raises(FileExistsError, match="resume=True"):
        run_reflow(target, config=ReflowConfig(rounds=1, steps=20, **small), out_dir=tmp_path / "full")


def test_bad_input_is_named(tmp_path):
    target = _two_blobs(100, 0)
    with pytest.raises(ValueError, match="source samples must have the target's item shape"):
        run_reflow(target, torch.zeros(100, 3), config=ReflowConfig(**TINY))
    with pytest.raises(ValueError, match="coupling must be packed pairs"):
        run_reflow(target, coupling=pack_pairs(torch.zeros(10, 3), torch.zeros(10, 3)), config=ReflowConfig(**TINY))
    with pytest.raises(ValueError, match="solver must be deterministic"):
        ReflowConfig(solver="euler_maruyama")
    with pytest.raises(ValueError, match="lr"):
        ReflowConfig(lr=-1.0)


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--source", "3d.npy"], "same shape on both sides"),
        (["--coupling", "bad.pt"], "does not match the data"),
        (["--solver", "euler_maruyama"], "deterministic"),
        (["--coupling", "missing.pt"], "no such file"),
    ],
)
def test_cli_errors_exit_with_code_2(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    torch.save(torch.zeros(10, 2, 3), tmp_path / "bad.pt")
    import numpy as np

    np.save(tmp_path / "3d.npy", np.zeros((50, 3), dtype=np.float32))
    code = main(["reflow", "--data", "moons", "--n-data", "200", *argv, "--out", str(tmp_path / "run"), "--quiet"])
    assert code == 2
    assert message in capsys.readouterr().err


def test_cli_runs_the_pipeline_and_checkpoints_sample(tmp_path, capsys):
    # A two-round run with distillation in seconds: the report names every stage and the distilled
    # checkpoint samples through `sdeflow sample --ckpt` machinery with one Euler step.
    from sdeflow.training import sample_checkpoint

    out = tmp_path / "run"
    argv = ["reflow", "--data", "moons", "--n-data", "500", "--rounds", "2", "--distill", "--steps", "5", "--reflow-steps", "5",
            "--distill-steps", "3", "--n-pairs", "200", "--width", "16", "--depth", "1", "--batch-size", "32", "--solver-steps", "4",
            "--eval", "100", "--out", str(out), "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)  # --json: the report alone on stdout
    assert [s["stage"] for s in report["stages"]] == ["rf1", "rf2", "distill"]
    assert all(s["w2_euler1"] > 0 for s in report["stages"])
    samples = sample_checkpoint(out / "distill", 7, solver="euler", steps=1)
    assert samples.shape == (7, 2) and bool(torch.isfinite(samples).all())
    assert main(argv) == 2  # the folder holds a run: --resume or a new folder
    assert main([*argv, "--resume"]) == 0
