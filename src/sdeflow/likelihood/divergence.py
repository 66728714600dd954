"""Divergence of a vector field ``v: R^D -> R^D``, exactly or by Hutchinson-Skilling estimation.

* Exact: ``div v = sum_i dv_i/dx_i`` by ``D`` reverse-mode passes through one forward pass,
  ``O(D)`` backward passes: for small ``D`` (2-D targets, up to a few hundred dimensions).
* Hutchinson (1989) / Skilling (1989): ``div v = E_z[z^T (dv/dx) z]`` for probes ``z`` with
  ``E[z z^T] = I`` (standard Gaussian, or Rademacher +-1, which has the smaller variance
  ``2 sum_{i != j} J_ij^2`` against Gaussian ``2 |J|_F^2``); one vector-Jacobian product per
  probe (Grathwohl et al. 2019, FFJORD, eq. 7).
"""

from __future__ import annotations

from typing import Callable

import torch

from ..noise.rng import randn

__all__ = ["PROBES", "divergence_exact", "divergence_hutchinson", "make_probes"]

PROBES: tuple[str, ...] = ("rademacher", "gaussian")

# Stream of the per-sample counter RNG for probes; far from sampling streams (0, 1, ...).
_PROBE_STREAM = 0x6C696B00


def make_probes(
    n_probes: int, shape: tuple[int, ...], kind: str, seeds: torch.Tensor, *, dtype: torch.dtype, device
) -> torch.Tensor:
    """``n_probes`` probe vectors per sample, ``(n_probes, batch, *event)``, from per-sample seeds.

    Probe ``k`` of sample ``i`` depends on ``seeds[i]`` and ``k`` only (not on the batch).
    ``kind``: ``rademacher`` (signs of the normals) or ``gaussian``.
    """
    if kind not in PROBES:
        raise ValueError(f"probe must be one of {list(PROBES)}; got {kind!r}")
    zs = [randn(shape, seeds=seeds, stream=_PROBE_STREAM + k, dtype=torch.float64) for k in range(n_probes)]
    z = torch.stack(zs)
    if kind == "rademacher":
        z = torch.where(z >= 0, 1.0, -1.0).to(torch.float64)
    return z.to(dtype=dtype, device=device)


def divergence_exact(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(v, div v)`` of ``v = fn(x)`` with the exact divergence (one forward, ``D`` backward passes).

    Args:
        fn: ``(batch, *event) -> (batch, *event)``, differentiable; samples must not interact
            (the Jacobian is block-diagonal over the batch, as for any per-sample model).
        x: ``(batch, *event)``.

    Returns:
        ``v`` (detached, shape of ``x``) and ``div v`` of shape ``(batch,)`` in float64.
    """
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        v = fn(xg)
        flat = v.reshape(v.shape[0], -1)
        d = flat.shape[1]
        div = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
        for i in range(d):
            (g,) = torch.autograd.grad(flat[:, i].sum(), xg, retain_graph=i < d - 1)
            div += g.reshape(g.shape[0], -1)[:, i].to(torch.float64)
    return v.detach(), div


def divergence_hutchinson(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, probes: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(v, est)`` with ``est[k] = z_k^T (dv/dx) z_k`` for each probe (one forward, ``K`` VJPs).

    Args:
        fn: ``(batch, *event) -> (batch, *event)``, differentiable, per-sample.
        x: ``(batch, *event)``.
        probes: ``(K, batch, *event)``, ``E[z z^T] = I``.

    Returns:
        ``v`` (detached) and the per-probe estimates ``(batch, K)`` in float64 (their mean is an
        unbiased estimate of ``div v``).
    """
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        v = fn(xg)
        k = probes.shape[0]
        out = torch.empty((x.shape[0], k), dtype=torch.float64, device=x.device)
        for j in range(k):
            (g,) = torch.autograd.grad(v, xg, grad_outputs=probes[j], retain_graph=j < k - 1)
            out[:, j] = (g * probes[j]).reshape(x.shape[0], -1).sum(1).to(torch.float64)
    return v.detach(), out
