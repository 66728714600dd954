"""The U-Net with a one-entry ``image_size``: a 1-D network on ``(batch, channels, length)``."""

import pytest
import torch

from sdeflow.nn import UNet, build


def _net(**kw):
    return UNet(6, (16,), base_channels=8, channel_mults=(1, 2), num_classes=3, attention_levels=(1,), seed=3, **kw)


def test_one_dimensional_unet_keeps_the_shape_and_is_rebuilt_from_its_config():
    net = _net()
    assert net.dims == 1 and isinstance(net.conv_in, torch.nn.Conv1d)
    gen = torch.Generator().manual_seed(0)
    x, c, y = torch.randn(4, 6, 16, generator=gen), torch.rand(4, generator=gen), torch.tensor([0, 1, 2, 3])
    # The output convolution starts at zero (Ho et al.'s initialization): exactly 0 before training.
    assert torch.equal(net(x, c, y), torch.zeros_like(x))
    with torch.no_grad():  # every weight random (the zero-initialized ones too), so every path counts
        for p in net.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=gen))
    twin = build("unet", net.config())
    twin.load_state_dict(net.state_dict())
    out = net(x, c, y)
    # Same weights, same architecture: identical outputs (0 difference), and the label matters.
    assert out.shape == x.shape and torch.equal(out, twin(x, c, y))
    assert not torch.allclose(out, net(x, c, torch.tensor([2, 1, 0, 3])))


def test_one_dimensional_unet_refuses_a_wrong_length_and_a_bad_size():
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 6, 16\)"):
        _net()(torch.zeros(2, 6, 8), torch.zeros(2))
    with pytest.raises(ValueError, match="divisible by 2"):
        UNet(6, (15,), channel_mults=(1, 2))
    with pytest.raises(ValueError, match=r"\(length,\)"):
        UNet(6, (4, 4, 4))
