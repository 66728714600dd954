"""``sdeflow train --corruption``, ``sdeflow train-autoencoder`` and ``sdeflow train --latent``: runs, resume, errors."""

from __future__ import annotations

import pytest
import torch

from sdeflow.cli import main
from sdeflow.cli._corrupted import parse_corruption
from sdeflow.latent import load_latent_model
from sdeflow.training import read_checkpoint

SMALL = ["--width", "16", "--depth", "1", "--batch-size", "16", "--warmup", "2", "--ckpt-every", "0", "--quiet", "--objective", "dsm",
         "--eval-solver", "euler", "--eval-steps", "2"]


def _straight_and_resumed(tmp_path, corruption, steps, stop):
    """Checkpoints of one run of ``steps`` steps and of one stopped at ``stop`` then resumed, on a small moons file."""
    import numpy as np

    from sdeflow.data import sample_toy

    path = tmp_path / "moons.npy"  # a small file: its evaluation uses its 256 points, not 10,000 fresh ones
    np.save(path, sample_toy("moons", 256, 0).numpy())
    args = ["train", "--data", str(path), "--corruption", corruption, "--steps", str(steps), *SMALL]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b"), "--stop-after", str(stop)]) == 0
    assert main([*args, "--out", str(tmp_path / "b"), "--resume"]) == 0
    a, b = read_checkpoint(tmp_path / "a"), read_checkpoint(tmp_path / "b")
    for key, value in a.weights().items():
        assert torch.equal(value, b.weights()[key]), key
    return a


def test_noisy_run_stores_the_level_in_model_units_and_resumes_exactly(tmp_path):
    # noise:0.5 is in data units; the data are standardized per coordinate, so the stored level is
    # 0.5 / scale_d per coordinate. 6 steps straight and 4 + 2 with --resume give the same weights.
    a = _straight_and_resumed(tmp_path, "noise:0.5", 6, 4)
    scale = torch.tensor(a.config["data"]["transform"]["scale"], dtype=torch.float64)
    assert a.config["objective"]["name"] == "noisy"
    assert torch.allclose(torch.tensor(a.config["objective"]["sigma_n"], dtype=torch.float64), 0.5 / scale)


def test_masked_run_trains_by_em_rounds(tmp_path):
    out = tmp_path / "em"
    assert main(["train", "--data", "moons", "--n-data", "64", "--corruption", "mask:0.5:method=diem,rounds=2,posterior_steps=4",
                 "--steps", "3", *SMALL, "--out", str(out)]) == 0
    assert read_checkpoint(out / "round_2").step == 3
    # A second run into the same folder is refused (exit 2, the message names --resume / --overwrite).
    assert main(["train", "--data", "moons", "--n-data", "64", "--corruption", "mask:0.5:method=diem", "--steps", "3", *SMALL,
                 "--out", str(out)]) == 2


def test_masked_run_trains_by_ambient_diffusion_resumes_exactly_and_samples(tmp_path):
    # mask:P trains Ambient Diffusion by default: a MaskedNet in the checkpoint, the state's event
    # shape (not the packed one), 5 steps straight and 3 + 2 with --resume give the same weights,
    # and sdeflow sample --ckpt draws from it (all-observed mask).
    a = _straight_and_resumed(tmp_path, "mask:0.5:delta=0.2", 5, 3)
    assert a.config["model"]["net"]["kind"] == "masked" and a.config["objective"]["delta"] == 0.2
    assert a.config["data"]["event_shape"] == [2]
    assert main(["sample", "--ckpt", str(tmp_path / "a"), "--n", "8", "--steps", "2", "--solver", "euler", "--quiet",
                 "--out", str(tmp_path / "s")]) == 0


def test_latent_run_from_a_trained_autoencoder(tmp_path):
    ae = tmp_path / "ae"
    assert main(["train-autoencoder", "--data", "digits", "--steps", "4", "--channels", "8", "--ckpt-every", "0", "--quiet",
                 "--out", str(ae)]) == 0
    run = tmp_path / "latent"
    assert main(["train", "--data", "digits", "--latent", str(ae), "--steps", "3", *SMALL, "--out", str(run)]) == 0
    latent = load_latent_model(run)
    assert latent.event_shape == (2, 4, 4)
    assert latent.sample(2, solver="euler", steps=2).shape == (2, 1, 8, 8)


def test_bad_corruptions_are_named():
    for text, match in (("blur:1", "noise:S or mask:P"), ("mask:1.5", "0 < P < 1"), ("noise:-1", "S > 0"),
                        ("noise:0.5:rounds=2", "unknown option"), ("noise:x", "must be a number")):
        with pytest.raises(ValueError, match=match):
            parse_corruption(text)
    assert parse_corruption("noise:0.2:method=sure") == {"kind": "noise", "level": 0.2, "method": "sure"}
    for text, match in (("mask:0.5:rounds=2", "add method=diem"), ("mask:0.5:method=diem,delta=0.1", "Ambient Diffusion's option"),
                        ("mask:0.5:delta=1.5", "delta must be in"), ("mask:0.5:method=em", "method must be one of")):
        with pytest.raises(ValueError, match=match):
            parse_corruption(text)
