"""Image restoration: tasks, metrics with known values and the `sdeflow restore` command on the cached digits model."""

import json
import math
from pathlib import Path

import pytest
import torch

from sdeflow.inverse.restore import TASKS, psnr, restoration_metrics, ssim, task_operator

ROOT = Path(__file__).resolve().parents[2]
CKPT = ROOT / "benchmarks" / "results" / "networks" / "digits"


def test_metrics_have_their_known_values():
    x = torch.zeros(2, 1, 8, 8, dtype=torch.float64)
    # MSE 0.01 on data range 2: PSNR = 10 log10(4 / 0.01) = 26.02 dB
    assert abs(float(psnr(x + 0.1, x)[0]) - 10 * math.log10(400)) < 1e-9
    img = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1
    assert float((ssim(img, img) - 1).abs().max()) < 1e-12  # identical images: SSIM 1
    other = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 - 1
    # independent noise images: the structure term averages ~0 over the 36 windows (measured 0.05 and 0.02)
    assert float(ssim(img.double(), other).abs().max()) < 0.2
    # a constant shift keeps contrast and structure and lowers luminance agreement: strictly below 1
    assert float(ssim(img, img + 0.5).max()) < 0.99
    samples = torch.stack([img, img], 1)
    op = task_operator("superres", (1, 8, 8), noise_std=0.1)
    m = restoration_metrics(samples, img, op.forward(img), op)
    assert m["residual_rms"] < 1e-12 and m["spread"] == 0.0 and m["consistency"] < 1e-10


def test_task_operators():
    for task in TASKS:
        op = task_operator(task, (1, 8, 8))
        y = op.forward(torch.zeros(3, 1, 8, 8))
        assert y.shape[0] == 3
    op = task_operator("inpaint_random", (1, 8, 8), seed=3)
    assert abs(op.n_observed - 0.3 * 64) <= 8  # 70 % missing, one seeded draw of 64 pixels
    with pytest.raises(ValueError, match="task must be one of"):
        task_operator("colorize", (1, 8, 8))


@pytest.mark.skipif(not CKPT.exists(), reason="the cached digits checkpoint of benchmarks/networks.py is not in this checkout")
def test_restore_command_writes_restorations_grid_and_metrics(tmp_path):
    from sdeflow.cli import main

    out = tmp_path / "r"
    images = tmp_path / "in.pt"  # three images in [-1, 1] (the held-out digits would import scikit-learn: seconds)
    torch.save(torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1, images)
    code = main(["restore", "--ckpt", str(CKPT), "--task", "inpaint", "--method", "ddrm", "--nfe", "6", "--input", str(images), "--n", "3",
                 "--samples", "2", "--out", str(out), "--quiet"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert (out / "grid.png").stat().st_size > 0
    saved = torch.load(out / "restorations.pt")
    assert saved["samples"].shape == (3, 2, 1, 8, 8)
    assert metrics["nfe"] <= 6
    # DDRM keeps the observed half: the residual is within 3 noise levels (measured 0.9 on digits at 20 calls)
    assert metrics["consistency"] < 3.0
    assert main(["restore", "--ckpt", str(CKPT), "--task", "inpaint", "--method", "ddrm", "--n", "1", "--out", str(out), "--quiet"]) != 0
