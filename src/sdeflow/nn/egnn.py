"""An E(n)-equivariant graph network (EGNN) denoiser for point clouds of typed atoms.

The layers are those of Satorras, Hoogeboom & Welling (2021), "E(n) Equivariant Graph Neural
Networks" (eqs. 3-6), with the coordinate normalization of Hoogeboom et al. (2022), "Equivariant
Diffusion for Molecule Generation in 3D" (EDM, Sec. 3.3 and App. B). For atoms ``i`` with
coordinates ``x_i`` and features ``h_i``, one layer is::

    d_ij  = |x_i - x_j|
    m_ij  = phi_e(h_i, h_j, d_ij^2, rbf(d_ij), a_ij)                    (messages, all pairs i != j)
    x_i  <- x_i + sum_j (x_i - x_j) / (d_ij + 1) * phi_x(m_ij) / (n - 1)
    h_i  <- h_i + phi_h(h_i, sum_j m_ij / (n - 1))

``a_ij`` are fixed edge attributes of the molecular graph (bond order, and the topological distance
1, 2, 3 or more bonds), ``rbf`` a bank of Gaussians of the distance in angstrom. The features start
as ``h_i = E[type_i] + time embedding``. Every quantity entering ``phi_e`` and ``phi_h`` is
invariant under rotations, reflections and translations of ``x``; the coordinate update is a sum of
difference vectors times invariants, so it is equivariant; hence the network is E(3)-equivariant.
Relabelling the atoms (with their types and edge attributes) permutes the output the same way.

The output is ``x_L - x_0`` with its centroid removed (EDM's ``eps`` output): a vector field on the
subspace of zero centre of mass, translation invariant and rotation/reflection equivariant.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from .._utils import check_int, check_positive
from .embeddings import TimeEmbedding, seeded_init

__all__ = ["EGNN", "remove_centroid", "graph_edge_attributes"]

BOND_ORDERS = (1, 2, 3, 4)
"""Bond orders of the edge attributes: single, double, triple, aromatic (4)."""
MAX_HOPS = 3
"""Topological distances 1, 2, 3 get their own attribute; 4 bonds or more share one."""


def remove_centroid(x: torch.Tensor) -> torch.Tensor:
    """``x - mean_i x_i``: the projection onto the zero-centroid subspace; ``x (batch, n, 3)``."""
    return x - x.mean(dim=-2, keepdim=True)


def graph_edge_attributes(n_atoms: int, bonds: Sequence[Sequence[int]]) -> torch.Tensor:
    """One-hot edge attributes ``(n, n, 4 + MAX_HOPS + 1)`` of a molecular graph.

    Channels: bond order (single, double, triple, aromatic; all zero for a non-bonded pair), then the
    topological distance (1, 2, ..., ``MAX_HOPS``, more; all zero on the diagonal and between
    disconnected atoms). ``bonds`` is a list of ``(i, j, order)`` with order in ``BOND_ORDERS``.
    """
    n = check_int(n_atoms, "n_atoms", minimum=1)
    # Plain Python lists (not tensors): checkpoints rebuild networks on the meta device, where no value can be read.
    attr = [[[0.0] * (len(BOND_ORDERS) + MAX_HOPS + 1) for _ in range(n)] for _ in range(n)]
    hops = [[-1] * n for _ in range(n)]
    adjacency: list[list[int]] = [[] for _ in range(n)]
    for bond in bonds:
        if len(bond) != 3:
            raise ValueError(f"bonds must be (i, j, order) triples; got {bond!r}")
        i, j, order = (int(v) for v in bond)
        if not (0 <= i < n and 0 <= j < n and i != j):
            raise ValueError(f"bond {bond!r} names atoms outside 0..{n - 1} (or a loop)")
        if order not in BOND_ORDERS:
            raise ValueError(f"bond {bond!r}: order must be one of {BOND_ORDERS} (4: aromatic); got {order}")
        attr[i][j][order - 1] = attr[j][i][order - 1] = 1.0
        adjacency[i].append(j)
        adjacency[j].append(i)
    for start in range(n):  # breadth-first search: topological distances
        hops[start][start] = 0
        frontier = [start]
        while frontier:
            nxt = []
            for a in frontier:
                for b in adjacency[a]:
                    if hops[start][b] < 0:
                        hops[start][b] = hops[start][a] + 1
                        nxt.append(b)
            frontier = nxt
    for i in range(n):
        for j in range(n):
            k = hops[i][j]
            if 1 <= k <= MAX_HOPS:
                attr[i][j][len(BOND_ORDERS) + k - 1] = 1.0
            elif k > MAX_HOPS:
                attr[i][j][-1] = 1.0
    return torch.tensor(attr, dtype=torch.float64, device="cpu")


class _Layer(nn.Module):
    """One EGNN layer (module docstring): messages, coordinate update, feature update.

    The first linear map of ``phi_e`` acts on the concatenation ``[h_i, h_j, a_ij, dist_ij]``; it is
    computed as ``A h_i + B h_j + C a_ij + D dist_ij`` (the same map), so the per-pair work is a sum
    rather than a matrix product of width ``2 width + edge features``.
    """

    def __init__(self, width: int, n_graph: int, n_dist: int) -> None:
        super().__init__()
        self.msg_i = nn.Linear(width, width)
        self.msg_j = nn.Linear(width, width, bias=False)
        self.msg_graph = nn.Linear(n_graph, width, bias=False)
        self.msg_dist = nn.Linear(n_dist, width, bias=False)
        self.msg_out = nn.Sequential(nn.SiLU(), nn.Linear(width, width), nn.SiLU())
        self.phi_x = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, 1))
        self.phi_h = nn.Sequential(nn.Linear(2 * width, width), nn.SiLU(), nn.Linear(width, width))
        self.norm = nn.LayerNorm(width)
        nn.init.zeros_(self.phi_x[-1].weight)  # the first coordinate updates start small
        nn.init.zeros_(self.phi_x[-1].bias)

    def forward(self, h, x, graph, dist_feats, off_diag):
        n = h.shape[1]
        pre = self.msg_i(h).unsqueeze(2) + self.msg_j(h).unsqueeze(1) + self.msg_graph(graph) + self.msg_dist(dist_feats)
        m = self.msg_out(pre) * off_diag  # (batch, n, n, width); no message from an atom to itself
        diff = x.unsqueeze(2) - x.unsqueeze(1)  # x_i - x_j
        dist = diff.pow(2).sum(-1, keepdim=True).clamp_min(1e-12).sqrt()  # clamped: no 0 * inf gradient on the diagonal
        x = x + (diff / (dist + 1.0) * self.phi_x(m) * off_diag).sum(dim=2) / max(n - 1, 1)
        h = h + self.phi_h(torch.cat([self.norm(h), m.sum(dim=2) / max(n - 1, 1)], dim=-1))
        return h, x


class EGNN(nn.Module):
    """An EGNN ``(x, c) -> eps_hat`` for one molecular graph (module docstring for the layers).

    Args:
        atom_types: the type index of each atom (e.g. an index into the elements present); ``n``
            atoms in all.
        num_types: how many types exist (embedding rows).
        bonds: ``(i, j, order)`` triples of the graph (order 1, 2, 3 or 4 = aromatic).
        width: feature width.
        layers: number of EGNN layers.
        length_unit: angstrom per model unit (data are divided by it); the distance features are
            computed in angstrom.
        rbf: number of Gaussian distance features, centres spread over [0, ``rbf_max``] angstrom.
        rbf_max: the largest centre (angstrom).
        embed_dim: width of the raw time embedding.
        time_scale: input scale of the sinusoidal time embedding (1000: DDPM's, for ``c = t / T`` in
            ``[0, 1]``). For EDM's ``c_noise = log(sigma) / 4``, a few units wide, 1000 aliases the highest
            frequencies; 10 does not, but on butane it trained no better (600 steps: bond-length error
            0.117 A against 0.126 A, the same torsion shares), so the molecules recipe keeps 1000.
        seed: the initial weights are a function of this seed (the global generator is untouched).

    Shapes: ``x (batch, n, 3)`` in model units, ``c (batch,)``; the output ``(batch, n, 3)`` has zero centroid.
    """

    kind = "egnn"

    def __init__(
        self,
        atom_types: Sequence[int],
        num_types: int,
        bonds: Sequence[Sequence[int]] = (),
        width: int = 64,
        layers: int = 4,
        *,
        length_unit: float = 1.0,
        rbf: int = 16,
        rbf_max: float = 6.0,
        embed_dim: int = 32,
        time_scale: float = 1000.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if isinstance(atom_types, (str, bytes)) or not hasattr(atom_types, "__len__") or len(atom_types) < 2:
            raise ValueError(f"atom_types must list the type index of each of at least 2 atoms; got {atom_types!r}")
        self.num_types = check_int(num_types, "num_types")
        self.atom_types = [int(a) for a in atom_types]
        if min(self.atom_types) < 0 or max(self.atom_types) >= self.num_types:
            raise ValueError(f"atom_types must be indices in [0, {self.num_types}); got {self.atom_types}")
        self.bonds = [[int(v) for v in b] for b in bonds]
        self.width = check_int(width, "width")
        self.layers = check_int(layers, "layers")
        self.length_unit = float(check_positive(length_unit, "length_unit"))
        self.rbf = check_int(rbf, "rbf", minimum=0)
        self.rbf_max = float(check_positive(rbf_max, "rbf_max"))
        self.embed_dim = check_int(embed_dim, "embed_dim", minimum=2)
        self.time_scale = float(check_positive(time_scale, "time_scale"))
        self.seed = seed
        n = len(self.atom_types)
        edge = graph_edge_attributes(n, self.bonds)
        self.register_buffer("types", torch.tensor(self.atom_types, dtype=torch.int64), persistent=False)
        self.register_buffer("edge_attr", edge.float(), persistent=False)
        self.register_buffer("off_diag", (1.0 - torch.eye(n)).unsqueeze(-1), persistent=False)
        self.register_buffer("centres", torch.linspace(0.0, self.rbf_max, self.rbf), persistent=False)
        with seeded_init(seed):
            self.embed = nn.Embedding(self.num_types, self.width)
            self.time = TimeEmbedding("sinusoidal", self.embed_dim, self.width, scale=self.time_scale)
            self.blocks = nn.ModuleList(_Layer(self.width, edge.shape[-1], 1 + self.rbf) for _ in range(self.layers))

    @property
    def n_atoms(self) -> int:
        return len(self.atom_types)

    def config(self) -> dict[str, Any]:
        """Constructor arguments: ``EGNN(**net.config())`` rebuilds the architecture and its graph."""
        return {
            "atom_types": list(self.atom_types),
            "num_types": self.num_types,
            "bonds": [list(b) for b in self.bonds],
            "width": self.width,
            "layers": self.layers,
            "length_unit": self.length_unit,
            "rbf": self.rbf,
            "rbf_max": self.rbf_max,
            "embed_dim": self.embed_dim,
            "time_scale": self.time_scale,
            "seed": self.seed,
        }

    def forward(self, x: torch.Tensor, c: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        n = self.n_atoms
        if not isinstance(x, torch.Tensor) or x.ndim != 3 or tuple(x.shape[1:]) != (n, 3):
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must have shape (batch, {n}, 3) for this molecule's EGNN; got {shape}")
        if y is not None:
            raise ValueError("this EGNN is unconditional: y must be None")
        dtype = x.dtype
        x0 = remove_centroid(x)
        edge = self.edge_attr.to(dtype)
        off = self.off_diag.to(dtype)
        # The sinusoidal features are float32 (embeddings.py); the layers run in the network's dtype.
        temb = self.time.mlp(self.time.embed(c).to(self.embed.weight.dtype))
        h = (self.embed(self.types).unsqueeze(0) + temb.unsqueeze(1)).to(dtype)
        xl = x0
        for block in self.blocks:
            # Invariants of the current geometry: squared distance and Gaussian features (angstrom).
            d2 = (xl.unsqueeze(2) - xl.unsqueeze(1)).pow(2).sum(-1, keepdim=True) * self.length_unit**2
            feats = [d2 / 10.0]
            if self.rbf:
                d = d2.clamp_min(1e-12).sqrt()
                spacing = self.rbf_max / max(self.rbf - 1, 1)
                feats.append(torch.exp(-((d - self.centres.to(dtype)) / spacing).pow(2)))
            h, xl = block(h, xl, edge, torch.cat(feats, dim=-1), off)
        return remove_centroid(xl - x0)
