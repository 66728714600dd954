"""A small U-Net for images and 1-D signals (Ronneberger et al. 2015, in the form of Ho et al. 2020, appendix B).

Group-normalized residual blocks conditioned on a time embedding (and optional class label),
strided-convolution downsampling, nearest-neighbour upsampling, skip connections by channel
concatenation and optional self-attention at chosen resolutions. Images of any height and width
divisible by ``2^(levels - 1)`` work; no torchvision. With a one-entry ``image_size = (length,)``
the same network is one-dimensional (``Conv1d`` layers on ``(batch, channels, length)``), as for
waveforms or spectrograms whose frequency bins are channels (:mod:`sdeflow.applications.audio`).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .._utils import check_int, check_nonnegative
from .embeddings import LabelEmbedding, TimeEmbedding, seeded_init

__all__ = ["UNet"]


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(groups, channels), channels)


_CONV = {1: nn.Conv1d, 2: nn.Conv2d}


class _ResBlock(nn.Module):
    """``h + conv(drop(SiLU(GN(conv(SiLU(GN(h))) + E emb))))`` with a 1x1 skip when widths differ."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int, dropout: float, dims: int = 2) -> None:
        super().__init__()
        conv = _CONV[dims]
        self.norm1 = _norm(c_in, groups)
        self.conv1 = conv(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = _norm(c_out, groups)
        self.drop = nn.Dropout(dropout)
        self.conv2 = conv(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = conv(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        z = self.conv1(F.silu(self.norm1(h)))
        e = self.emb(emb)
        z = z + e.reshape(*e.shape, *([1] * (h.ndim - 2)))
        z = self.conv2(self.drop(F.silu(self.norm2(z))))
        return self.skip(h) + z


class _Attention(nn.Module):
    """Multi-head self-attention over the ``H*W`` (or ``length``) positions, residual, output projection starting at 0."""

    def __init__(self, channels: int, groups: int, head_dim: int = 32, dims: int = 2) -> None:
        super().__init__()
        self.heads = max(1, channels // head_dim)
        if channels % self.heads:
            raise ValueError(f"attention needs channels divisible by heads; got {channels} and {self.heads}")
        self.norm = _norm(channels, groups)
        self.qkv = _CONV[dims](channels, 3 * channels, 1)
        self.proj = _CONV[dims](channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, c = h.shape[:2]
        q, k, v = self.qkv(self.norm(h)).reshape(b, 3, self.heads, c // self.heads, -1).unbind(1)
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return h + self.proj(out.transpose(-1, -2).reshape(h.shape))


class UNet(nn.Module):
    """A U-Net ``(x, c, y) -> out`` for images ``(batch, channels, height, width)`` or signals ``(batch, channels, length)``.

    Level ``i`` works at resolution ``H / 2^i`` with ``base_channels * channel_mults[i]`` channels and
    ``num_res_blocks`` residual blocks (the decoder has one more per level, for the skip of the
    downsampling); a middle block (res, attention, res) sits at the lowest resolution. The output
    convolution starts at zero.

    Args:
        in_channels: image channels (1 for the digits, 3 for RGB).
        image_size: ``(height, width)``, or ``(length,)`` for a 1-D U-Net (``Conv1d`` throughout); every
            entry must be divisible by ``2^(len(channel_mults) - 1)``.
        base_channels: channels of the first level.
        channel_mults: channel multiplier per level.
        num_res_blocks: residual blocks per encoder level.
        attention_levels: levels (indices into ``channel_mults``) with self-attention; the
            middle block always has it unless ``middle_attention=False``.
        groups: group-norm groups (at most the channel count).
        dropout: dropout rate in the residual blocks.
        time_embedding, embed_scale: the time embedding (see :mod:`sdeflow.nn.embeddings`).
        num_classes: class labels for conditioning (0: unconditional); label ``num_classes`` or
            ``y=None`` is the null label of classifier-free guidance.
        seed: initial weights are a function of this seed.
    """

    kind = "unet"

    def __init__(
        self,
        in_channels: int = 1,
        image_size: Sequence[int] = (8, 8),
        base_channels: int = 32,
        channel_mults: Sequence[int] = (1, 2),
        num_res_blocks: int = 1,
        *,
        attention_levels: Sequence[int] = (),
        middle_attention: bool = True,
        groups: int = 8,
        dropout: float = 0.0,
        time_embedding: str = "sinusoidal",
        embed_scale: float = 1000.0,
        num_classes: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels")
        size = tuple(int(s) for s in image_size)
        if len(size) not in (1, 2):
            raise ValueError(f"image_size must be (height, width), or (length,) for 1-D signals; got {image_size!r}")
        self.image_size = size
        self.dims = len(size)
        conv = _CONV[self.dims]
        self.base_channels = check_int(base_channels, "base_channels")
        self.channel_mults = tuple(check_int(int(m), "channel_mults entries") for m in channel_mults)
        if not self.channel_mults:
            raise ValueError("channel_mults must have at least one level, e.g. (1, 2)")
        self.num_res_blocks = check_int(num_res_blocks, "num_res_blocks")
        levels = len(self.channel_mults)
        self.attention_levels = tuple(sorted(set(int(a) for a in attention_levels)))
        if any(not 0 <= a < levels for a in self.attention_levels):
            raise ValueError(f"attention_levels must be level indices in [0, {levels - 1}]; got {attention_levels!r}")
        self.middle_attention = bool(middle_attention)
        self.groups = check_int(groups, "groups")
        self.dropout = check_nonnegative(dropout, "dropout")
        self.time_embedding = time_embedding
        self.embed_scale = float(embed_scale)
        self.num_classes = check_int(num_classes, "num_classes", minimum=0)
        self.seed = seed
        factor = 2 ** (levels - 1)
        if any(s % factor for s in size) or min(size) < 1:
            raise ValueError(
                f"image_size {size} must be divisible by 2^(levels - 1) = {factor} for {levels} levels "
                f"(channel_mults={self.channel_mults}); pad the images or use fewer levels"
            )
        chans = [self.base_channels * m for m in self.channel_mults]
        for ch in chans:
            if ch % min(self.groups, ch):
                raise ValueError(f"groups={groups} must divide every level's channel count; got channels {chans}")
        emb_dim = 4 * self.base_channels

        with seeded_init(seed):
            self.time = TimeEmbedding(time_embedding, self.base_channels, emb_dim, scale=embed_scale)
            self.label = LabelEmbedding(self.num_classes, emb_dim)
            self.conv_in = conv(self.in_channels, chans[0], 3, padding=1)
            # Encoder: per level, res blocks (+ attention) then a strided conv, except at the bottom.
            self.down = nn.ModuleList()
            skips = [chans[0]]
            c = chans[0]
            for i, ch in enumerate(chans):
                for _ in range(self.num_res_blocks):
                    self.down.append(self._stage(c, ch, emb_dim, i in self.attention_levels))
                    c = ch
                    skips.append(c)
                if i < levels - 1:
                    self.down.append(conv(c, c, 3, stride=2, padding=1))
                    skips.append(c)
            self.mid1 = _ResBlock(c, c, emb_dim, self.groups, self.dropout, self.dims)
            self.mid_attn = _Attention(c, self.groups, dims=self.dims) if self.middle_attention else nn.Identity()
            self.mid2 = _ResBlock(c, c, emb_dim, self.groups, self.dropout, self.dims)
            # Decoder: per level, num_res_blocks + 1 res blocks eating one skip each, then upsample.
            self.up = nn.ModuleList()
            for i in reversed(range(levels)):
                ch = chans[i]
                for _ in range(self.num_res_blocks + 1):
                    self.up.append(self._stage(c + skips.pop(), ch, emb_dim, i in self.attention_levels))
                    c = ch
                if i > 0:
                    self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv(c, c, 3, padding=1)))
            self.norm_out = _norm(c, self.groups)
            self.conv_out = conv(c, self.in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def _stage(self, c_in: int, c_out: int, emb_dim: int, attention: bool) -> nn.ModuleList:
        parts: list[nn.Module] = [_ResBlock(c_in, c_out, emb_dim, self.groups, self.dropout, self.dims)]
        if attention:
            parts.append(_Attention(c_out, self.groups, dims=self.dims))
        return nn.ModuleList(parts)

    def config(self) -> dict[str, Any]:
        """Constructor arguments: ``UNet(**net.config())`` rebuilds the architecture."""
        return {
            "in_channels": self.in_channels,
            "image_size": list(self.image_size),
            "base_channels": self.base_channels,
            "channel_mults": list(self.channel_mults),
            "num_res_blocks": self.num_res_blocks,
            "attention_levels": list(self.attention_levels),
            "middle_attention": self.middle_attention,
            "groups": self.groups,
            "dropout": self.dropout,
            "time_embedding": self.time_embedding,
            "embed_scale": self.embed_scale,
            "num_classes": self.num_classes,
            "seed": self.seed,
        }

    @staticmethod
    def _run(stage: nn.Module, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        if isinstance(stage, nn.ModuleList):
            h = stage[0](h, emb)
            for extra in stage[1:]:
                h = extra(h)
            return h
        return stage(h)

    def forward(self, x: torch.Tensor, c: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if x.ndim != 2 + self.dims or x.shape[1] != self.in_channels or tuple(x.shape[2:]) != self.image_size:
            raise ValueError(
                f"x must have shape (batch, {', '.join(str(v) for v in (self.in_channels, *self.image_size))}) "
                f"for this U-Net; got {tuple(x.shape)}"
            )
        emb = self.time(c) + self.label(y, x.shape[0], x.device)
        h = self.conv_in(x)
        skips = [h]
        for stage in self.down:
            h = self._run(stage, h, emb)
            skips.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for stage in self.up:
            if isinstance(stage, nn.ModuleList):
                h = torch.cat([h, skips.pop()], dim=1)
            h = self._run(stage, h, emb)
        return self.conv_out(F.silu(self.norm_out(h)))
