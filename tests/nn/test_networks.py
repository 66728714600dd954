"""Networks: shapes for any event/image size, embeddings' closed forms, class labels and guidance, errors."""

from __future__ import annotations

import math

import pytest
import torch

from sdeflow.nn import MLP, FourierFeatures, SinusoidalEmbedding, UNet, build, seeded_init
from sdeflow.processes import VP
from sdeflow.training import DiffusionModel

GEN = torch.Generator().manual_seed(0)


def test_sinusoidal_embedding_closed_form():
    # Expected: [sin(s c w_k), cos(s c w_k)] with w_k = 10000^(-k/half) exactly (float32 rounding).
    emb = SinusoidalEmbedding(8, scale=1000.0)
    c = torch.tensor([0.0, 0.25, 1.0])
    w = torch.tensor([10000.0 ** (-k / 4) for k in range(4)])
    arg = 1000.0 * c[:, None] * w[None, :]
    assert torch.allclose(emb(c), torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1), atol=1e-4)


def test_fourier_features_are_a_function_of_the_seed():
    # Same seed, same frequencies (b_k ~ N(0, 16^2)); another seed, others; the buffer is saved.
    a, b, c = FourierFeatures(16, seed=3), FourierFeatures(16, seed=3), FourierFeatures(16, seed=4)
    assert torch.equal(a.freqs, b.freqs) and not torch.equal(a.freqs, c.freqs)
    assert "freqs" in a.state_dict()
    out = a(torch.tensor([0.5]))
    assert torch.allclose(out, torch.cat([torch.sin(math.pi * a.freqs), torch.cos(math.pi * a.freqs)])[None], atol=1e-5)


def test_seeded_init_makes_weights_a_function_of_the_seed():
    # The conftest checks that the global generator is untouched.
    n1, n2, n3 = MLP((2,), 16, 2, seed=1), MLP((2,), 16, 2, seed=1), MLP((2,), 16, 2, seed=2)
    for a, b in zip(n1.state_dict().values(), n2.state_dict().values()):
        assert torch.equal(a, b)
    assert not torch.equal(n1.inp.weight, n3.inp.weight)
    with seeded_init(5):
        x = torch.randn(3)
    with seeded_init(5):
        assert torch.equal(x, torch.randn(3))


@pytest.mark.parametrize("event_shape", [(2,), (5,), (3, 4)])
def test_mlp_shapes_and_zero_init_output(event_shape):
    net = MLP(event_shape, 32, 2, time_embedding="fourier")
    x = torch.randn((7, *event_shape), generator=GEN)
    out = net(x, torch.rand(7, generator=GEN))
    assert out.shape == x.shape
    assert torch.equal(out, torch.zeros_like(out))  # the last layer starts at zero
    assert build("mlp", net.config()).config() == net.config()


@pytest.mark.parametrize(
    "channels,size,mults,attention",
    [(1, (8, 8), (1, 2), ()), (3, (12, 16), (1, 2, 2), (1,)), (2, (4, 6), (1, 2), (0, 1))],
)
def test_unet_any_size_divisible_by_its_downsampling(channels, size, mults, attention):
    net = UNet(channels, size, 8, mults, 1, attention_levels=attention, groups=4, num_classes=3)
    with torch.no_grad():  # the zero-initialized layers hide the conditioning: randomize every weight
        for p in net.parameters():
            p.normal_(0.0, 0.2, generator=GEN)
    x = torch.randn(2, channels, *size, generator=GEN)
    out = net(x, torch.rand(2, generator=GEN), torch.tensor([0, 2]))
    assert out.shape == x.shape and torch.isfinite(out).all()
    # The label changes the output; None is the null label 3.
    c = torch.full((2,), 0.5)
    assert not torch.allclose(net(x, c, torch.tensor([0, 0])), net(x, c, torch.tensor([1, 1])))
    assert torch.equal(net(x, c, None), net(x, c, torch.tensor([3, 3])))
    assert build("unet", net.config()).config() == net.config()


def test_classifier_free_guidance_is_the_affine_combination():
    # out = out_u + w (out_c - out_u): w = 0 gives the unconditional model, w = 1 the conditional one,
    # and any w is linear in w (Ho & Salimans 2022, eq. 6).
    process = VP()
    net = MLP((2,), 16, 1, num_classes=4)
    with torch.no_grad():
        net.out.weight.normal_(generator=GEN)
    model = DiffusionModel(net, process, "eps")
    x, t = torch.randn(5, 2, generator=GEN), torch.rand(5, generator=GEN)
    y = torch.tensor([0, 1, 2, 3, 1])
    cond, uncond = model(x, t, y), model(x, t)
    assert torch.allclose(model.guided(y, 0.0)(x, t), uncond, atol=1e-6)
    assert torch.allclose(model.guided(y, 1.0)(x, t), cond, atol=1e-6)
    assert torch.allclose(model.guided(y, 3.0)(x, t), uncond + 3.0 * (cond - uncond), atol=1e-5)
    assert torch.allclose(model.guided(2, 1.0)(x, t), model(x, t, torch.full((5,), 2)), atol=1e-6)
    assert model.guided(2, 2.0).prediction == "eps"


def test_network_errors():
    with pytest.raises(ValueError, match="divisible"):
        UNet(1, (10, 10), 8, (1, 2, 2))
    with pytest.raises(ValueError, match="attention_levels"):
        UNet(1, (8, 8), 8, (1, 2), attention_levels=(2,))
    with pytest.raises(ValueError, match="groups"):
        UNet(1, (8, 8), 12, (1, 2), groups=8)
    net = UNet(1, (8, 8), 8, (1, 2), groups=4)
    with pytest.raises(ValueError, match="shape"):
        net(torch.zeros(2, 1, 4, 4), torch.zeros(2))
    with pytest.raises(ValueError, match="unconditional"):
        net(torch.zeros(2, 1, 8, 8), torch.zeros(2), torch.zeros(2, dtype=torch.int64))
    mlp = MLP((2,), 8, 1, num_classes=2)
    with pytest.raises(ValueError, match="class labels must lie"):
        mlp(torch.zeros(2, 2), torch.zeros(2), torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="integer"):
        mlp(torch.zeros(2, 2), torch.zeros(2), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="time input"):
        mlp(torch.zeros(2, 2), torch.zeros(2, 1))
    with pytest.raises(ValueError, match="even"):
        SinusoidalEmbedding(7)
    with pytest.raises(ValueError, match="unknown time embedding"):
        MLP((2,), 8, 1, time_embedding="nope")
    with pytest.raises(ValueError, match="unknown network"):
        build("transformer", {})
    with pytest.raises(ValueError, match="classifier-free guidance"):
        DiffusionModel(MLP((2,), 8, 1), VP(), "eps").guided(0, 2.0)
    with pytest.raises(ValueError, match="precond"):
        DiffusionModel(MLP((2,), 8, 1), VP(), "eps", precond="karras")
