"""Time embeddings: sinusoidal (Vaswani et al. 2017; Ho et al. 2020) and random Fourier features.

A network sees the diffusion time through a scalar ``c`` per sample (the process time ``t / T``,
or EDM's ``c_noise = log(sigma / alpha) / 4``; see :class:`sdeflow.training.DiffusionModel`). Both
embeddings map ``c`` of shape ``(batch,)`` to ``(batch, dim)``:

* :class:`SinusoidalEmbedding`: ``[sin(s c w_k), cos(s c w_k)]`` with frequencies
  ``w_k = max_period^(-k / (dim/2))``, ``k = 0 .. dim/2 - 1`` and an input scale ``s`` (1000 turns
  ``c in [0, 1]`` into DDPM's step range).
* :class:`FourierFeatures`: ``[sin(2 pi c b_k), cos(2 pi c b_k)]`` with fixed ``b_k ~ N(0, std^2)``
  drawn from a seed (Tancik et al. 2020; the Gaussian Fourier projection of Song et al. 2021, std 16).

:class:`TimeEmbedding` follows either with the usual two-layer MLP ``Linear -> SiLU -> Linear``.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator

import torch
from torch import nn

from .._utils import check_int, check_positive

__all__ = ["SinusoidalEmbedding", "FourierFeatures", "TimeEmbedding", "LabelEmbedding", "EMBEDDINGS", "seeded_init"]


@contextlib.contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Build modules whose default initialization is a pure function of ``seed``.

    torch's layers draw their initial weights from the global generator; inside this context that
    generator is forked (its state is saved and restored on exit) and seeded with ``seed``, so a
    network's weights depend on ``seed`` alone and the caller's global random state is untouched.
    """
    check_int(seed, "seed", minimum=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _check_even(dim: int, name: str) -> int:
    check_int(dim, name, minimum=2)
    if dim % 2:
        raise ValueError(f"{name} must be even (half sines, half cosines); got {dim}")
    return dim


def _as_conditioning(c: torch.Tensor) -> torch.Tensor:
    if not isinstance(c, torch.Tensor) or c.ndim != 1:
        shape = tuple(c.shape) if isinstance(c, torch.Tensor) else type(c).__name__
        raise ValueError(f"the time input c must be a (batch,) tensor; got {shape}")
    return c.float()


class SinusoidalEmbedding(nn.Module):
    """``c (batch,) -> [sin(s c w_k), cos(s c w_k)] (batch, dim)``, ``w_k = max_period^(-2k/dim)``.

    Args:
        dim: output width (even).
        max_period: the longest period, 10000 as in the Transformer.
        scale: input scale ``s`` (1000 for ``c`` in ``[0, 1]``; 1 for ``c`` already of order 100).
    """

    def __init__(self, dim: int, max_period: float = 10_000.0, scale: float = 1000.0) -> None:
        super().__init__()
        self.dim = _check_even(dim, "dim")
        self.max_period = check_positive(max_period, "max_period")
        self.scale = check_positive(scale, "scale")
        half = dim // 2
        freqs = torch.exp(-math.log(self.max_period) * torch.arange(half, dtype=torch.float64) / half)
        self.register_buffer("freqs", freqs.float(), persistent=False)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        arg = self.scale * _as_conditioning(c)[:, None] * self.freqs[None, :]
        return torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1)


class FourierFeatures(nn.Module):
    """``c (batch,) -> [sin(2 pi c b_k), cos(2 pi c b_k)] (batch, dim)`` with fixed ``b_k ~ N(0, std^2)``.

    The frequencies are drawn once from ``torch.Generator().manual_seed(seed)`` and kept as a
    (saved) buffer, so a checkpoint restores them exactly.
    """

    def __init__(self, dim: int, std: float = 16.0, seed: int = 0) -> None:
        super().__init__()
        self.dim = _check_even(dim, "dim")
        self.std = check_positive(std, "std")
        gen = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
        self.register_buffer("freqs", self.std * torch.randn(dim // 2, generator=gen))

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        arg = (2.0 * math.pi) * _as_conditioning(c)[:, None] * self.freqs[None, :]
        return torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1)


EMBEDDINGS = ("sinusoidal", "fourier")
"""Names accepted by :class:`TimeEmbedding`."""


class TimeEmbedding(nn.Module):
    """A time embedding followed by ``Linear(dim, out) -> SiLU -> Linear(out, out)``.

    Args:
        kind: ``"sinusoidal"`` or ``"fourier"``.
        dim: width of the raw embedding (even).
        out_dim: width of the output.
        scale: input scale of the sinusoidal embedding (``c`` is multiplied by it).
        std: frequency scale of the Fourier features.
    """

    def __init__(self, kind: str, dim: int, out_dim: int, *, scale: float = 1000.0, std: float = 16.0) -> None:
        super().__init__()
        if kind == "sinusoidal":
            self.embed: nn.Module = SinusoidalEmbedding(dim, scale=scale)
        elif kind == "fourier":
            self.embed = FourierFeatures(dim, std=std)
        else:
            raise ValueError(f"unknown time embedding {kind!r}; expected one of {list(EMBEDDINGS)}")
        check_int(out_dim, "out_dim")
        self.mlp = nn.Sequential(nn.Linear(dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.embed(c))


class LabelEmbedding(nn.Module):
    """Class labels ``y (batch,) -> (batch, dim)`` with a null label for classifier-free guidance.

    Labels ``0 .. num_classes - 1`` are classes; label ``num_classes`` (and ``y=None``) is the null
    label that classifier-free guidance (Ho & Salimans 2022) trains by dropping labels and uses for
    the unconditional prediction. With ``num_classes = 0`` the embedding is the constant 0 and any
    ``y`` other than ``None`` is an error.
    """

    def __init__(self, num_classes: int, dim: int) -> None:
        super().__init__()
        self.num_classes = check_int(num_classes, "num_classes", minimum=0)
        self.dim = check_int(dim, "dim")
        self.table = nn.Embedding(num_classes + 1, dim) if num_classes > 0 else None

    def forward(self, y: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor:
        if self.table is None:
            if y is not None:
                raise ValueError("this network is unconditional (num_classes=0): call it without class labels y")
            return torch.zeros((), device=device)
        if y is None:
            y = torch.full((batch,), self.num_classes, dtype=torch.int64, device=device)
        elif not isinstance(y, torch.Tensor) or tuple(y.shape) != (batch,) or y.is_floating_point():
            shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise ValueError(f"y must be an integer (batch,) = ({batch},) tensor of class labels; got {shape}")
        elif bool(((y < 0) | (y > self.num_classes)).any()):
            raise ValueError(
                f"class labels must lie in [0, {self.num_classes - 1}] (or {self.num_classes}, the null label); "
                f"got values in [{int(y.min())}, {int(y.max())}]"
            )
        return self.table(y.to(device=device, dtype=torch.int64))
