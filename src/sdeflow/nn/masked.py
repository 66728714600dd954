"""A network that also sees which coordinates of its input are observed: Ambient Diffusion's ``h(A~ x_t, A~)``.

Ambient Diffusion (Daras et al. 2023, "Ambient Diffusion: Learning Clean Distributions from
Corrupted Data", sec. 3) trains ``E[x0 | A~ x_t, A~]`` with ``A~ = diag(mask)`` a random mask: the
network must be told the mask, since a zero in ``A~ x_t`` may be a value or a hole.
:class:`MaskedNet` wraps any network of :mod:`sdeflow.nn` whose input carries the mask beside the
masked state and returns the state's shape:

* a U-Net on ``(C, *size)`` (images, or 1-D signals): the inner network sees ``2C`` channels
  ``[mask * x, mask]`` (``in_channels = 2C``) and the first ``C`` output channels are kept;
* any other network on event shape ``E``: it sees ``(2, *E)`` (an MLP of that event shape) and
  its first slice is kept.

The mask of a call is set with :meth:`MaskedNet.using` for the duration of the call (as
:class:`~sdeflow.training.DiffusionModel` sets class labels); outside it the network uses the
all-observed mask, so a trained model used as a plain model (``sdeflow sample --ckpt``) is
``E[x0 | x_t, A~ = I]``, the clean denoiser wherever training saw that pattern.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from .._utils import check_int

__all__ = ["MaskedNet", "masked_inner_shape"]


def masked_inner_shape(event_shape: Sequence[int], kind: str) -> tuple[int, ...]:
    """The inner network's input shape for states of ``event_shape``: ``(2C, *size)`` for a U-Net, ``(2, *E)`` otherwise."""
    shape = tuple(int(s) for s in event_shape)
    return (2 * shape[0], *shape[1:]) if kind == "unet" else (2, *shape)


class MaskedNet(nn.Module):
    """``net(x, c, y=None)`` with the mask of :meth:`using` fed beside ``mask * x`` (see the module docstring).

    Args:
        event_shape: the state's shape, e.g. ``(8,)`` or ``(1, 8, 8)``.
        inner: a network of :mod:`sdeflow.nn` on :func:`masked_inner_shape` ``(event_shape, kind)``, or its
            ``{"kind": ..., "config": ...}`` (how a checkpoint rebuilds it).

    Shapes: ``x (batch, *event_shape)``, ``c (batch,)``, ``y (batch,)`` or ``None``; the mask
    ``(batch, *event_shape)`` of 0/1.
    """

    kind = "masked"

    def __init__(self, event_shape: Sequence[int], inner: nn.Module | dict[str, Any]) -> None:
        super().__init__()
        self.event_shape = tuple(check_int(int(s), "event_shape entries") for s in event_shape)
        if not self.event_shape:
            raise ValueError("event_shape must have at least one dimension, e.g. (2,)")
        if isinstance(inner, dict):
            from . import build

            if set(inner) != {"kind", "config"}:
                raise ValueError(f"inner must be a network or {{'kind': ..., 'config': ...}}; got keys {sorted(inner)}")
            inner = build(inner["kind"], inner["config"])
        if not isinstance(inner, nn.Module) or not hasattr(inner, "config"):
            raise TypeError(f"inner must be a sdeflow.nn network (with kind and config()); got {type(inner).__name__}")
        want = masked_inner_shape(self.event_shape, getattr(inner, "kind", ""))
        have = _input_shape(inner)
        if have is not None and have != want:
            raise ValueError(f"the inner network takes states of shape {have}; a MaskedNet on {self.event_shape} needs {want}")
        self.inner = inner
        self._mask: torch.Tensor | None = None

    @property
    def num_classes(self) -> int:
        return int(getattr(self.inner, "num_classes", 0))

    def config(self) -> dict[str, Any]:
        """Constructor arguments: ``MaskedNet(**net.config())`` rebuilds the architecture."""
        return {"event_shape": list(self.event_shape), "inner": {"kind": self.inner.kind, "config": self.inner.config()}}

    @contextlib.contextmanager
    def using(self, mask: torch.Tensor) -> Iterator["MaskedNet"]:
        """Calls inside the block see ``mask`` (``(batch, *event_shape)`` of 0/1) as the observed coordinates."""
        if not isinstance(mask, torch.Tensor) or tuple(mask.shape[1:]) != self.event_shape:
            raise ValueError(f"mask must be a (batch, {', '.join(map(str, self.event_shape))}) tensor of 0/1; "
                             f"got {getattr(mask, 'shape', type(mask).__name__)}")
        previous, self._mask = self._mask, mask
        try:
            yield self
        finally:
            self._mask = previous

    def forward(self, x: torch.Tensor, c: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.event_shape:
            raise ValueError(f"x must have shape (batch, {', '.join(map(str, self.event_shape))}); got {tuple(x.shape)}")
        mask = torch.ones_like(x) if self._mask is None else self._mask.to(dtype=x.dtype, device=x.device)
        if mask.shape[0] != x.shape[0]:
            raise ValueError(f"the mask set with using() has batch {mask.shape[0]}, the state {x.shape[0]}")
        if self.inner.kind == "unet":
            out = self.inner(torch.cat([mask * x, mask], dim=1), c, y)
            return out[:, : self.event_shape[0]]
        return self.inner(torch.stack([mask * x, mask], dim=1), c, y)[:, 0]


def _input_shape(net: nn.Module) -> tuple[int, ...] | None:
    cfg = net.config()
    if getattr(net, "kind", None) == "mlp":
        return tuple(cfg["event_shape"])
    if getattr(net, "kind", None) == "unet":
        return (int(cfg["in_channels"]), *cfg["image_size"])
    return None
