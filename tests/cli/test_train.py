"""``sdeflow train`` / ``sdeflow evaluate``: a run, its exact resumption, its evaluation, its errors."""

from __future__ import annotations

import json

import pytest
import torch

from sdeflow.cli import main
from sdeflow.training import read_checkpoint, sample_checkpoint

COMMON = ["--width", "16", "--depth", "1", "--batch-size", "32", "--warmup", "2", "--quiet",
          "--eval-solver", "euler", "--eval-steps", "3", "--n-data", "2000"]


@pytest.mark.slow
def test_train_resume_and_evaluate(tmp_path, capsys):
    # Expected: 6 steps in one go equal `--stop-after 4` + `--resume` (same raw weights), the checkpoint alone
    # is enough to sample, and `evaluate` prints W2 with its two-sample floor as JSON.
    full, split = tmp_path / "full", tmp_path / "split"
    assert main(["train", "--data", "moons", "--steps", "6", "--out", str(full), *COMMON]) == 0
    assert main(["train", "--data", "moons", "--steps", "6", "--stop-after", "4", "--out", str(split), *COMMON]) == 0
    assert read_checkpoint(split).step == 4
    assert main(["train", "--data", "moons", "--steps", "6", "--out", str(split), "--resume", *COMMON]) == 0
    a, b = read_checkpoint(full), read_checkpoint(split)
    assert a.step == b.step == 6
    for name, tensor in a.weights(ema=False).items():
        assert torch.equal(tensor, b.weights(ema=False)[name])
    samples = sample_checkpoint(full, 5, solver="euler", steps=3)
    assert samples.shape == (5, 2)
    capsys.readouterr()
    assert main(["evaluate", "--ckpt", str(full), "--n", "100", "--solver", "euler", "--steps", "3",
                 "--json", str(tmp_path / "eval.json")]) == 0
    capsys.readouterr()
    report = json.loads((tmp_path / "eval.json").read_text())
    assert main(["evaluate", "--ckpt", str(full), "--n", "100", "--solver", "euler", "--steps", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == report  # --json alone: the same report on stdout
    assert report["step"] == 6 and report["wasserstein2"] > 0 and report["wasserstein2_floor"] > 0


def test_train_dsm_on_a_user_file_with_labels(tmp_path):
    # A class-conditional DSM run on an .npz with labels; the config records 3 classes and the
    # standardization, and guided sampling from the checkpoint works.
    rng = torch.Generator().manual_seed(0)
    x = torch.randn(200, 3, generator=rng) * 5 + 2
    y = torch.randint(0, 3, (200,), generator=rng)
    import numpy as np

    np.savez(tmp_path / "d.npz", x=x.numpy(), y=y.numpy())
    out = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "d.npz"), "--objective", "dsm", "--process", "vp",
                 "--prediction", "v", "--weighting", "min_snr", "--time-sampler", "importance", "--conditional",
                 "--steps", "3", "--ckpt-every", "0", "--out", str(out), *COMMON]) == 0
    ckpt = read_checkpoint(out)
    assert ckpt.config["data"]["num_classes"] == 3 and len(ckpt.config["data"]["transform"]["shift"]) == 3
    samples = sample_checkpoint(out, 4, solver="ddim", steps=3, label=1, guidance=2.0)
    assert samples.shape == (4, 3)


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--data", "nope"], "unknown data"),
        (["--data", "moons", "--objective", "dsm", "--coupling", "exact"], "--coupling applies"),
        (["--data", "moons", "--conditional"], "class labels"),
        (["--data", "moons", "--net", "unet"], "U-Net needs images"),
        (["--data", "moons", "--resume"], "nothing to resume"),
    ],
)
def test_train_errors_exit_with_code_2(tmp_path, capsys, argv, message):
    code = main(["train", *argv, "--steps", "2", "--out", str(tmp_path / "run"), *COMMON])
    assert code == 2
    assert message in capsys.readouterr().err


def test_evaluate_errors(tmp_path, capsys):
    assert main(["evaluate", "--ckpt", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
