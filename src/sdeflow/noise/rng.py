"""Counter-based random numbers with per-sample keys, vectorized in torch.

``torch.Generator`` draws one stream per batch, so a sample's noise would depend on the batch it is
drawn in. Here every sample owns a 64-bit key (from its seed), and the ``j``-th normal of a sample
is a pure function of ``(key, j)``: SplitMix64 (Steele, Lea & Flood 2014) gives the uniforms and
Box-Muller the normals. The same seed therefore gives the same numbers whatever the batch size,
the device or the order of queries, which the Brownian tree builds on.

All integer arithmetic is on int64 tensors with two's-complement wrap-around (what torch does on
every backend); ``tests/noise/test_rng.py`` checks the bits against a pure-Python reference.
"""

from __future__ import annotations

import math
import operator
from typing import Sequence

import torch

__all__ = ["as_seeds", "derive_keys", "mix64", "normal_from_keys", "randn", "uniform_from_keys"]

_MASK64 = (1 << 64) - 1


def _signed(c: int) -> int:
    """A 64-bit constant as the int64 that has its bits."""
    c &= _MASK64
    return c - (1 << 64) if c >= 1 << 63 else c


_GOLDEN = _signed(0x9E3779B97F4A7C15)
_C1 = _signed(0xBF58476D1CE4E5B9)
_C2 = _signed(0x94D049BB133111EB)


def _srl(z: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 bits (torch's ``>>`` is arithmetic)."""
    return (z >> k) & ((1 << (64 - k)) - 1)


def mix64(z: torch.Tensor) -> torch.Tensor:
    """SplitMix64's finalizer: a bijective mixing of 64-bit integers (int64 tensor in, out)."""
    z = z ^ _srl(z, 30)
    z = z * _C1
    z = z ^ _srl(z, 27)
    z = z * _C2
    return z ^ _srl(z, 31)


def derive_keys(keys: torch.Tensor, tag: int | torch.Tensor) -> torch.Tensor:
    """Keys of an independent stream: ``mix64(keys + golden * (tag + 1))`` (int64, broadcasting)."""
    if isinstance(tag, torch.Tensor):
        return mix64(keys + (tag.to(torch.int64) + 1) * _GOLDEN)
    return mix64(keys + _signed((tag + 1) * 0x9E3779B97F4A7C15))


def _uniform53(h: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    # The top 53 bits, centred in their cell: values in (0, 1), never 0 or 1.
    return (_srl(h, 11).to(torch.float64) + 0.5).mul_(2.0**-53).to(dtype)


def uniform_from_keys(keys: torch.Tensor, n: int, offset: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Uniforms in ``(0, 1)``: ``out[..., j] = U(keys[...], offset + j)``; shape ``keys.shape + (n,)``."""
    counters = torch.arange(offset, offset + n, dtype=torch.int64, device=keys.device)
    return _uniform53(mix64(keys.unsqueeze(-1) + counters * _GOLDEN), dtype)


def normal_from_keys(keys: torch.Tensor, n: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normals: ``out[..., j]`` depends only on ``(keys[...], j)``; shape ``keys.shape + (n,)``.

    Box-Muller on one 64-bit hash per pair ``p``: its high and low 32 bits give two uniforms in
    ``(0, 1)`` (centred in their cells, so never 0), which give normals ``2p`` (cosine) and ``2p+1``
    (sine), computed in float64 and cast to ``dtype``. The smallest uniform ``2^-33`` bounds
    ``|z| <= 6.8`` (probability of a larger normal: 1e-11).
    """
    pairs = (n + 1) // 2
    counters = torch.arange(pairs, dtype=torch.int64, device=keys.device)
    h = mix64(keys.unsqueeze(-1) + counters * _GOLDEN)
    u1 = (_srl(h, 32).to(torch.float64) + 0.5).mul_(2.0**-32)
    u2 = ((h & 0xFFFFFFFF).to(torch.float64) + 0.5).mul_(2.0**-32)
    r = torch.sqrt(-2.0 * torch.log(u1))
    theta = (2.0 * math.pi) * u2
    z = torch.stack((r * torch.cos(theta), r * torch.sin(theta)), dim=-1).flatten(-2)
    return z[..., :n].to(dtype)


def as_seeds(seeds: int | Sequence[int] | torch.Tensor, batch: int, name: str = "seeds") -> torch.Tensor:
    """Per-sample seeds as an int64 ``(batch,)`` tensor on the CPU.

    An int ``s`` means seeds ``s, s+1, ..., s+batch-1`` (sample ``i`` of a batch drawn with seed
    ``s`` equals the single sample drawn with seed ``s+i``); a sequence or tensor gives one seed
    per sample.
    """
    if isinstance(seeds, bool):
        raise TypeError(f"{name} must be an int, a sequence of ints or an int64 tensor; got a bool")
    if isinstance(seeds, int):
        return torch.arange(seeds, seeds + batch, dtype=torch.int64)
    if isinstance(seeds, torch.Tensor):
        if seeds.is_floating_point() or seeds.is_complex():
            raise TypeError(f"{name} must be an integer tensor; got dtype {seeds.dtype}")
        out = seeds.to(device="cpu", dtype=torch.int64).reshape(-1)
    else:
        try:
            out = torch.tensor([operator.index(s) for s in seeds], dtype=torch.int64)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name} must be an int, a sequence of ints or an int64 tensor; got {seeds!r}") from err
    if out.shape[0] != batch:
        raise ValueError(f"{name} must give one seed per sample: expected {batch} seeds, got {out.shape[0]}")
    return out


def randn(
    shape: tuple[int, ...] | torch.Size,
    *,
    seeds: int | Sequence[int] | torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    stream: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Standard normal noise of ``shape = (batch, *event_shape)`` from an explicit source.

    Args:
        shape: ``(batch, *event_shape)``.
        seeds: per-sample seeds (see :func:`as_seeds`): sample ``i`` depends on ``seeds[i]`` alone.
        generator: a ``torch.Generator`` (one stream for the whole batch) instead of seeds.
        stream: an independent stream for the same seeds (0 is the initial noise of sampling).
        dtype, device: of the result.

    Never uses torch's global generator: one of ``seeds`` and ``generator`` is required.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) < 1:
        raise ValueError(f"shape must be (batch, *event_shape); got {shape}")
    if (seeds is None) == (generator is None):
        raise ValueError(
            "pass exactly one source of noise: seeds=(int or one per sample) or generator=torch.Generator "
            "(sdeflow never uses the global random generator)"
        )
    if generator is not None:
        return torch.randn(shape, generator=generator, dtype=dtype, device=generator.device).to(device or generator.device)
    keys = derive_keys(mix64(as_seeds(seeds, shape[0])), stream)
    n = math.prod(shape[1:])
    return normal_from_keys(keys, n, dtype).reshape(shape).to(device)
