"""Discrete data: uniform dequantization and bits per dimension.

For data on a lattice with spacing ``bin_width = Delta`` in model units (8-bit images mapped to
``[-1, 1]`` by ``k / 127.5 - 1`` have ``Delta = 2/255``), the probability of the cell of ``x`` obeys
``log P(x) >= E_u[log p(x + Delta (u - 1/2))] + D log Delta`` with ``u ~ U[0, 1)^D`` (Theis et al.
2016, eq. 9; Ho et al. 2019, Flow++ section 3.1). Bits per dimension are

    bpd = -(log p(x_deq) + D log Delta) / (D log 2),

and ``-log p / (D log 2)`` for continuous data (``Delta = None``).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import torch

from .._utils import check_state

from ..noise.rng import as_seeds, derive_keys, mix64, uniform_from_keys

__all__ = ["bits_per_dim", "check_data", "dequantize", "normal_interval", "summarize"]

_DEQUANT_STREAM = 0x6C696B01


def dequantize(x: torch.Tensor, bin_width: float, seeds: int | torch.Tensor) -> torch.Tensor:
    """``x + bin_width * (u - 1/2)``, ``u ~ U[0, 1)`` per element from per-sample ``seeds``.

    ``x`` holds the cell centres, shape ``(batch, *event)``; sample ``i``'s noise depends on
    ``seeds[i]`` only (an int ``s`` means ``s, s+1, ...``).
    """
    _check_bin_width(bin_width)
    x = check_data(x)
    keys = derive_keys(mix64(as_seeds(seeds, x.shape[0])), _DEQUANT_STREAM)
    u = uniform_from_keys(keys, x[0].numel()).reshape(x.shape)
    return x + (bin_width * (u - 0.5)).to(dtype=x.dtype, device=x.device)


def bits_per_dim(log_prob: torch.Tensor | float, dim: int, bin_width: float | None = None) -> torch.Tensor | float:
    """``-(log_prob + dim log bin_width) / (dim log 2)`` (``bin_width = None``: continuous data).

    ``dim`` is the number of dimensions ``D >= 1``; ``bin_width`` the lattice spacing (finite, > 0).
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"dim must be the number of dimensions of a point, an integer >= 1; got {dim!r}")
    if bin_width is not None:
        _check_bin_width(bin_width)
    shift = 0.0 if bin_width is None else dim * math.log(bin_width)
    return -(log_prob + shift) / (dim * math.log(2.0))


def _check_bin_width(bin_width: object) -> None:
    if isinstance(bin_width, bool) or not (isinstance(bin_width, (int, float)) and math.isfinite(bin_width) and bin_width > 0):
        raise ValueError(f"bin_width must be a finite number > 0 (the lattice spacing in model units); got {bin_width!r}")


def normal_interval(mean: float, stderr: float, level: float) -> tuple[float, float]:
    """``mean -+ z stderr`` with ``z`` the two-sided normal quantile of ``level``."""
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1); got {level!r}")
    z = NormalDist().inv_cdf(0.5 + level / 2)
    return mean - z * stderr, mean + z * stderr


def summarize(values: torch.Tensor, stderr: torch.Tensor, dim: int, bin_width: float | None, level: float, name: str) -> dict[str, float]:
    """Mean of per-point log-likelihoods (or bounds) ``values`` with a normal interval, in nats and bits/dim.

    The standard error of the mean is the spread over points, ``std / sqrt(n)`` (estimator noise is
    inside that spread), or the single point's own ``stderr`` when ``n = 1``. Keys: ``n``, ``name``,
    ``name_low``, ``name_high``, ``bits_per_dim``, ``bpd_low``, ``bpd_high``, ``stderr``, ``level``.
    """
    n = values.shape[0]
    mean = float(values.mean())
    se = float(values.std(unbiased=True)) / math.sqrt(n) if n > 1 else float(stderr[0])
    lo, hi = normal_interval(mean, se if math.isfinite(se) else 0.0, level)
    bpd = float(bits_per_dim(values, dim, bin_width).mean())
    scale = 1.0 / (dim * math.log(2.0))
    return {
        "n": n,
        name: mean,
        f"{name}_low": lo,
        f"{name}_high": hi,
        "bits_per_dim": bpd,
        "bpd_low": bpd - (hi - mean) * scale,
        "bpd_high": bpd + (mean - lo) * scale,
        "stderr": se,
        "level": level,
    }


def check_data(x: object, name: str = "x") -> torch.Tensor:
    """Data ``(n, *event_shape)`` for a likelihood: a float tensor with ``n >= 1`` finite points.

    Checked before any solve (one host sync): a NaN point would otherwise make an adaptive ODE solve
    shrink its steps until ``max_steps`` (minutes) before failing.
    """
    x = check_state(x, name)
    if x.shape[0] < 1 or x[0].numel() < 1:
        raise ValueError(f"{name} must hold at least one point of at least one dimension; got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        bad = (~torch.isfinite(x.detach())).reshape(x.shape[0], -1).any(dim=1).nonzero().reshape(-1)
        raise ValueError(
            f"{name} holds NaN or infinite values in {bad.numel()} of {x.shape[0]} points (first rows "
            f"{bad[:5].tolist()}); a log-likelihood needs finite data: drop or fix those points"
        )
    return x
