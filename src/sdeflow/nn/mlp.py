"""A residual MLP with a time embedding, for vector data of any event shape."""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import nn

from .._utils import check_int
from .embeddings import LabelEmbedding, TimeEmbedding, seeded_init

__all__ = ["MLP"]


class _Block(nn.Module):
    """``h + W2 SiLU(LN(W1 SiLU(LN(h))) + E c)``: a pre-norm residual block conditioned by the embedding."""

    def __init__(self, width: int, cond_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width)
        self.cond = nn.Linear(cond_dim, width)
        self.norm2 = nn.LayerNorm(width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        z = self.fc1(torch.nn.functional.silu(self.norm1(h))) + self.cond(emb)
        return h + self.fc2(torch.nn.functional.silu(self.norm2(z)))


class MLP(nn.Module):
    """A residual MLP ``(x, c, y) -> out`` for states of shape ``(batch, *event_shape)``.

    The state is flattened to ``D = prod(event_shape)`` entries, projected to ``width``, passed
    through ``depth`` pre-norm residual blocks each conditioned additively on the time embedding
    (plus a learned class embedding when ``num_classes > 0``), and projected back; the output has
    the state's shape. The last layer starts at zero, so an untrained network predicts 0.

    Args:
        event_shape: the shape of one state, e.g. ``(2,)``.
        width: hidden width.
        depth: number of residual blocks.
        time_embedding: ``"sinusoidal"`` or ``"fourier"`` (see :mod:`sdeflow.nn.embeddings`).
        embed_dim: width of the raw time embedding.
        time_scale: input scale of the sinusoidal embedding (1000 for ``c`` in ``[0, 1]``).
        num_classes: number of class labels (0: unconditional). Label ``num_classes`` is the null
            label of classifier-free guidance (Ho & Salimans 2022); ``y=None`` means null.
        seed: the initial weights are a function of this seed (the global generator is untouched).

    Shapes: ``x (batch, *event_shape)``, ``c (batch,)`` float, ``y (batch,)`` int64 or ``None``.
    """

    kind = "mlp"

    def __init__(
        self,
        event_shape: Sequence[int],
        width: int = 256,
        depth: int = 3,
        *,
        time_embedding: str = "sinusoidal",
        embed_dim: int = 64,
        time_scale: float = 1000.0,
        num_classes: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.event_shape = tuple(check_int(int(s), "event_shape entries") for s in event_shape)
        if not self.event_shape:
            raise ValueError("event_shape must have at least one dimension, e.g. (2,)")
        self.width = check_int(width, "width")
        self.depth = check_int(depth, "depth")
        self.num_classes = check_int(num_classes, "num_classes", minimum=0)
        self.time_embedding = time_embedding
        self.embed_dim = embed_dim
        self.time_scale = float(time_scale)
        self.seed = seed
        dim = math.prod(self.event_shape)
        with seeded_init(seed):
            self.time = TimeEmbedding(time_embedding, embed_dim, width, scale=time_scale)
            self.label = LabelEmbedding(num_classes, width)
            self.inp = nn.Linear(dim, width)
            self.blocks = nn.ModuleList(_Block(width, width) for _ in range(depth))
            self.norm = nn.LayerNorm(width)
            self.out = nn.Linear(width, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def config(self) -> dict[str, Any]:
        """Constructor arguments: ``MLP(**net.config())`` rebuilds the architecture."""
        return {
            "event_shape": list(self.event_shape),
            "width": self.width,
            "depth": self.depth,
            "time_embedding": self.time_embedding,
            "embed_dim": self.embed_dim,
            "time_scale": self.time_scale,
            "num_classes": self.num_classes,
            "seed": self.seed,
        }

    def forward(self, x: torch.Tensor, c: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.event_shape:
            raise ValueError(
                f"x must have shape (batch, {', '.join(map(str, self.event_shape))}) for this MLP; "
                f"got {tuple(x.shape)}"
            )
        emb = self.time(c) + self.label(y, x.shape[0], x.device)
        h = self.inp(x.reshape(x.shape[0], -1))
        for block in self.blocks:
            h = block(h, emb)
        return self.out(torch.nn.functional.silu(self.norm(h))).reshape(x.shape)

