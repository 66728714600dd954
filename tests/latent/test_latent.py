"""Latent diffusion: stored statistics, exact resume of the autoencoder, LatentModel with every solver."""

import json
import math
from types import SimpleNamespace

import pytest
import torch

from sdeflow import solvers
from sdeflow.data import load_digits
from sdeflow.latent import AutoencoderConfig, ConvAutoencoder, LatentModel, from_diffusers, latent_statistics, load_autoencoder, train_autoencoder
from sdeflow.processes import VP
from sdeflow.sample import sample
from sdeflow.targets import GaussianMixture


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("ae")
    images = load_digits("train").images[:200]
    ae = ConvAutoencoder(1, (8, 8), latent_channels=2, channels=8, variational=True)
    summary = train_autoencoder(ae, images, AutoencoderConfig(steps=20, batch_size=32, ckpt_every=10, progress=False), out_dir=out / "run")
    return out / "run", images, summary


def test_statistics_are_computed_stored_and_reloaded_exactly(trained):
    run, images, summary = trained
    ae = load_autoencoder(run)
    # Reloaded exactly: the numbers written after training come back bit for bit.
    assert summary["latent_mean"] == ae.mean.tolist() and summary["latent_std"] == ae.std.tolist()
    # They are the training latents' per-channel mean and std: recomputed from the reloaded weights
    # they agree to float32 rounding of the encoder (measured 3e-8; the convolution's kernel differs
    # with and without autograd); bound 1e-6.
    mean, std = latent_statistics(ae.module.encode, images)
    assert torch.allclose(ae.mean, mean, atol=1e-6, rtol=0) and torch.allclose(ae.std, std, atol=1e-6, rtol=0)
    # Normalized latents of the training data have mean 0 and std 1 per channel (float32 encoder: 1e-5).
    u = ae.encode(images).double()
    assert torch.allclose(u.mean(dim=(0, 2, 3)), torch.zeros(2, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(u.std(dim=(0, 2, 3), unbiased=False), torch.ones(2, dtype=torch.float64), atol=1e-5)
    # decode(encode(x)) is the autoencoder's reconstruction: the normalization cancels (1e-5).
    with torch.no_grad():
        assert torch.allclose(ae.decode(u.float()), ae.module(images), atol=1e-5)


def test_a_checkpoint_without_statistics_is_refused(trained, tmp_path):
    run, _, _ = trained
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    newest = sorted((copy / "checkpoints").glob("step_*"))[-1]
    cfg = json.loads((newest / "config.json").read_text())
    del cfg["latent"]
    (newest / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="no latent statistics"):
        load_autoencoder(copy)


def test_autoencoder_training_resumes_exactly(tmp_path):
    # 6 steps straight and 3 + 3 with a resume end with the same weights (each step's minibatch and
    # noise depend on (seed, step) alone; the optimizer state is in the checkpoint).
    images = load_digits("train").images[:64]
    cfg = dict(batch_size=16, ckpt_every=3, progress=False)
    a = ConvAutoencoder(1, (8, 8), channels=8, variational=True)
    train_autoencoder(a, images, AutoencoderConfig(steps=6, **cfg), out_dir=tmp_path / "a")
    b = ConvAutoencoder(1, (8, 8), channels=8, variational=True)
    train_autoencoder(b, images, AutoencoderConfig(steps=3, **cfg), out_dir=tmp_path / "b")
    c = ConvAutoencoder(1, (8, 8), channels=8, variational=True)
    train_autoencoder(c, images, AutoencoderConfig(steps=6, **cfg), out_dir=tmp_path / "b", resume=True)
    for (name, p), q in zip(a.state_dict().items(), c.state_dict().values()):
        assert torch.equal(p, q), name


def test_latent_model_samples_with_every_solver(trained):
    # An exact mixture model on the latent space: LatentModel is a plain model for sample(), so every
    # registered solver runs on latents and the result decodes to images of the data's shape.
    run, _, _ = trained
    ae = load_autoencoder(run)
    d = math.prod(ae.latent_shape)
    target = GaussianMixture([0.5, 0.5], torch.stack([torch.full((d,), 0.5), torch.full((d,), -0.5)]), stds=[0.3, 0.3],
                             event_shape=ae.latent_shape)
    process = VP()
    latent = LatentModel(target.model(process, "eps"), ae, process)
    x = process.prior_sample((2, *ae.latent_shape), seeds=0)
    for name in solvers.available():
        if name == "consistency":  # samples consistency functions only, and says so for any other model
            with pytest.raises(TypeError, match="consistency function"):
                sample(latent, process, x, solver=name, steps=4, seed=0)
            continue
        opts = {"rtol": 0.2, "atol": 0.2} if name.startswith("adaptive") else {"steps": 4}
        u = sample(latent, process, x, solver=name, seed=0, **opts).samples
        assert u.shape == x.shape and bool(torch.isfinite(u).all()), name
        img = latent.decode(u)
        assert img.shape == (2, 1, 8, 8), name
    assert latent.sample(2, solver="heun", steps=3).shape == (2, 1, 8, 8)


def test_diffusers_scaling_factor_is_read_not_assumed():
    # A stand-in with AutoencoderKL's interface (diffusers is an optional extra): u = (z - shift) * scale.
    class Fake(torch.nn.Module):
        def __init__(self, config):
            super().__init__()
            self.config = config

        def encode(self, x):
            return SimpleNamespace(latent_dist=SimpleNamespace(mean=x[:, :2, ::2, ::2] * 10.0))

        def decode(self, z):
            return SimpleNamespace(sample=z.repeat_interleave(2, -1).repeat_interleave(2, -2)[:, :1].repeat(1, 3, 1, 1))

    cfg = SimpleNamespace(scaling_factor=0.13025, shift_factor=0.1, latent_channels=2, in_channels=3, block_out_channels=[8, 8])
    ae = from_diffusers(Fake(cfg), (8, 8))
    x = torch.ones(1, 3, 8, 8)
    assert torch.allclose(ae.encode(x), torch.full((1, 2, 4, 4), (10.0 - 0.1) * 0.13025))
    assert ae.latent_shape == (2, 4, 4)
    with pytest.raises(ValueError, match="scaling_factor"):
        from_diffusers(Fake(SimpleNamespace(latent_channels=2, in_channels=3, block_out_channels=[8, 8])), (8, 8))


def test_bad_latent_input_is_refused(trained):
    run, _, _ = trained
    ae = load_autoencoder(run)
    with pytest.raises(ValueError, match="latents must have shape"):
        ae.decode(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match="x must have shape"):
        ae.module.encode(torch.zeros(2, 1, 6, 6))
    with pytest.raises(TypeError, match="LatentAutoencoder"):
        LatentModel(None, object())
    with pytest.raises(ValueError, match="divisible"):
        ConvAutoencoder(1, (7, 8))
