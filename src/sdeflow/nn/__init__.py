"""Networks for training: a residual MLP for vectors and a small U-Net for images, with time embeddings.

Every network is called as ``net(x, c, y=None)``: ``x`` the state ``(batch, *event_shape)``, ``c``
the time input ``(batch,)`` and ``y`` optional class labels ``(batch,)``; it returns the shape of
``x``. ``net.config()`` gives the constructor arguments, so :func:`build` rebuilds it from a
checkpoint's JSON.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .egnn import EGNN
from .embeddings import EMBEDDINGS, FourierFeatures, LabelEmbedding, SinusoidalEmbedding, TimeEmbedding, seeded_init
from .masked import MaskedNet
from .mlp import MLP
from .torsion import TorsionNet
from .unet import UNet

__all__ = [
    "EGNN",
    "MaskedNet",
    "MLP",
    "TorsionNet",
    "UNet",
    "SinusoidalEmbedding",
    "FourierFeatures",
    "TimeEmbedding",
    "LabelEmbedding",
    "EMBEDDINGS",
    "NETWORKS",
    "build",
    "seeded_init",
]

NETWORKS: dict[str, type[nn.Module]] = {"mlp": MLP, "unet": UNet, "egnn": EGNN, "masked": MaskedNet, "torsion": TorsionNet}
"""Network classes by name (their ``kind``)."""


def build(kind: str, config: dict[str, Any]) -> nn.Module:
    """Rebuild a network from its ``kind`` (``mlp``, ``unet``, ``egnn``, ``masked``, ``torsion``) and ``config()`` dict."""
    if kind not in NETWORKS:
        raise ValueError(f"unknown network kind {kind!r}; expected one of {sorted(NETWORKS)}")
    try:
        return NETWORKS[kind](**config)
    except TypeError as err:
        raise ValueError(f"bad configuration for network {kind!r}: {err}") from err
