"""A periodic score network on torsion angles, carrying the molecule it generates conformers of.

:class:`TorsionNet` is the network of torsional diffusion (Jing et al. 2022, "Torsional Diffusion for
Molecular Conformer Generation") reduced to its core on one molecule: the state is the vector
``theta in R^k`` of the ``k`` torsion angles (radians) of the molecule's rotatable bonds, diffused on the
real line by the VE process and read modulo ``2 pi``. The network sees the angles only through the
periodic features ``[cos(m theta_j), sin(m theta_j)]``, ``m = 1 .. harmonics``, so its output is a
function on the torus ``(R / 2 pi Z)^k``; a residual MLP (the blocks of :class:`~sdeflow.nn.MLP`,
conditioned on the time embedding) maps them to ``k`` outputs (the ``eps`` prediction). Why periodic
inputs make denoising score matching learn the torus score: :mod:`sdeflow.applications.molecules.torsional`.

The net also stores what turns angles into a conformer, so that a checkpoint is a complete conformer
generator: the rotatable torsions ``(a, b, c, d)``, the bonds, the atomic numbers, and ``n_templates``
local structures (``(n_templates, n_atoms, 3)`` angstrom, float64, a persistent buffer: bond lengths and
angles of conformers of the data set, onto which sampled torsions are set).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from .._utils import check_int
from .embeddings import TimeEmbedding, seeded_init
from .mlp import _Block

__all__ = ["TorsionNet"]


class TorsionNet(nn.Module):
    """``(theta, c) -> eps_hat``: a residual MLP on periodic features of ``k`` torsion angles.

    Args:
        torsions: the rotatable torsions ``[(a, b, c, d), ...]`` (atom indices; ``k = len(torsions) >= 1``).
        bonds: the molecular graph ``[[i, j, order], ...]``.
        atomic_numbers: one per atom.
        n_templates: number of stored local structures (the buffer ``local_structures``).
        width, depth: the MLP's width and number of residual blocks.
        harmonics: the periodic features ``cos(m theta), sin(m theta)`` for ``m = 1 .. harmonics``.
        embed_dim, time_scale: the sinusoidal time embedding (its input ``c`` is ``log(sigma) / 4``).
        seed: the initial weights are a function of this seed (the global generator is untouched).

    Shapes: ``x (batch, k)`` radians (any real values), ``c (batch,)``; output ``(batch, k)``.
    """

    kind = "torsion"

    def __init__(
        self,
        torsions: Sequence[Sequence[int]],
        bonds: Sequence[Sequence[int]],
        atomic_numbers: Sequence[int],
        n_templates: int = 1,
        width: int = 64,
        depth: int = 3,
        *,
        harmonics: int = 1,
        embed_dim: int = 32,
        time_scale: float = 1000.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if isinstance(torsions, (str, bytes)) or not hasattr(torsions, "__len__") or len(torsions) < 1:
            raise ValueError(f"torsions must list at least one rotatable torsion (a, b, c, d); got {torsions!r}")
        self.atomic_numbers = [int(z) for z in atomic_numbers]
        n = len(self.atomic_numbers)
        if n < 4:
            raise ValueError(f"atomic_numbers must list the atoms of a molecule with a torsion (>= 4 atoms); got {n}")
        self.torsions = [[int(v) for v in q] for q in torsions]
        for q in self.torsions:
            if len(q) != 4 or len(set(q)) != 4 or min(q) < 0 or max(q) >= n:
                raise ValueError(f"torsions must be 4 distinct atom indices in [0, {n}); got {q}")
        self.bonds = [[int(v) for v in b] for b in bonds]
        self.n_templates = check_int(n_templates, "n_templates")
        self.width = check_int(width, "width")
        self.depth = check_int(depth, "depth")
        self.harmonics = check_int(harmonics, "harmonics")
        self.embed_dim = check_int(embed_dim, "embed_dim", minimum=2)
        self.time_scale = float(time_scale)
        self.seed = seed
        k = len(self.torsions)
        self.register_buffer("local_structures", torch.zeros(self.n_templates, n, 3, dtype=torch.float64))
        self.register_buffer("orders", torch.arange(1, self.harmonics + 1, dtype=torch.float32), persistent=False)
        with seeded_init(seed):
            self.time = TimeEmbedding("sinusoidal", self.embed_dim, self.width, scale=self.time_scale)
            self.inp = nn.Linear(2 * self.harmonics * k, self.width)
            self.blocks = nn.ModuleList(_Block(self.width, self.width) for _ in range(self.depth))
            self.norm = nn.LayerNorm(self.width)
            self.out = nn.Linear(self.width, k)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @property
    def n_atoms(self) -> int:
        return len(self.atomic_numbers)

    @property
    def n_torsions(self) -> int:
        return len(self.torsions)

    def config(self) -> dict[str, Any]:
        """Constructor arguments: ``TorsionNet(**net.config())`` rebuilds the architecture (the templates are weights)."""
        return {
            "torsions": [list(q) for q in self.torsions],
            "bonds": [list(b) for b in self.bonds],
            "atomic_numbers": list(self.atomic_numbers),
            "n_templates": self.n_templates,
            "width": self.width,
            "depth": self.depth,
            "harmonics": self.harmonics,
            "embed_dim": self.embed_dim,
            "time_scale": self.time_scale,
            "seed": self.seed,
        }

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, 2 * harmonics * k)``: ``cos(m theta_j)`` and ``sin(m theta_j)``, periodic in every angle."""
        a = x.unsqueeze(-1) * self.orders.to(x.dtype)
        return torch.cat([torch.cos(a), torch.sin(a)], dim=-1).reshape(x.shape[0], -1)

    def forward(self, x: torch.Tensor, c: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.n_torsions:
            raise ValueError(f"x must be torsion angles of shape (batch, {self.n_torsions}); got {tuple(x.shape)}")
        if y is not None:
            raise ValueError("TorsionNet is unconditional; y must be None")
        emb = self.time(c).to(x.dtype)
        h = self.inp(self.features(x))
        for block in self.blocks:
            h = block(h, emb)
        return self.out(torch.nn.functional.silu(self.norm(h)))
