"""Couplings of a data minibatch with a noise minibatch for conditional flow matching.

A coupling returns index pairs ``(i, j)``: the training pairs are ``(x0[i], eps[j])`` (labels follow
``i``). With independent pairs the regression target's conditional expectation is the marginal
velocity of the diffusion path (Lipman et al. 2023; Liu et al. 2023). Minibatch optimal transport
pairs (Tong et al. 2024, OT-CFM; Pooladian et al. 2023) straighten the learned flow; they change the
marginal path, so a model trained with them is a flow to be integrated by a deterministic solver
(its implied score is not the data's score and stochastic samplers do not apply).

Transport plans come from POT (Flamary et al. 2021): ``ot.emd`` for the exact plan and
``ot.sinkhorn`` (log-domain) for the entropic one, on the squared Euclidean cost between flattened
``x0`` and ``eps``. The exact plan is invariant to scaling ``eps`` (the cost's cross term is all
that varies), so it is the optimal pairing with the prior ``sigma(T) eps`` of any process. The
entropic plan uses the cost divided by its maximum, so ``reg`` is relative (Tong et al. use 0.05).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from .._utils import check_positive
from ._spec import from_spec

__all__ = ["Coupling", "IndependentCoupling", "ExactOTCoupling", "SinkhornCoupling", "SchrodingerCoupling", "COUPLINGS",
           "get_coupling"]


def _cost(x0: torch.Tensor, eps: torch.Tensor) -> np.ndarray:
    """Squared Euclidean cost matrix ``(n, n)`` in float64 (numpy, for POT)."""
    a = x0.detach().reshape(x0.shape[0], -1).to(device="cpu", dtype=torch.float64)
    b = eps.detach().reshape(eps.shape[0], -1).to(device="cpu", dtype=torch.float64)
    return torch.cdist(a, b).pow_(2).numpy()


def _ot():
    try:
        import ot
    except ImportError as err:  # pragma: no cover - POT is a dependency
        raise ImportError("optimal-transport couplings need POT: pip install pot") from err
    return ot


@dataclass(frozen=True)
class Coupling(ABC):
    """Pairs ``x0 (n, *event)`` with ``eps (n, *event)``: returns int64 index tensors ``(i, j)`` of shape ``(n,)``."""

    name: ClassVar[str] = ""

    @abstractmethod
    def __call__(self, x0: torch.Tensor, eps: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Index pairs on ``x0``'s device."""

    def config(self) -> dict[str, Any]:
        """``{"name": ..., **options}``; :func:`get_coupling` rebuilds it."""
        return {"name": self.name, **asdict(self)}

    @staticmethod
    def _check(x0: torch.Tensor, eps: torch.Tensor) -> int:
        if x0.shape != eps.shape:
            raise ValueError(f"x0 and eps must have the same shape to be coupled; got {tuple(x0.shape)} and {tuple(eps.shape)}")
        return int(x0.shape[0])


@dataclass(frozen=True)
class IndependentCoupling(Coupling):
    """The product coupling: pairs ``(x0[k], eps[k])`` as drawn (I-CFM; denoising score matching)."""

    name: ClassVar[str] = "independent"

    def __call__(self, x0, eps, generator):
        n = self._check(x0, eps)
        idx = torch.arange(n, device=x0.device)
        return idx, idx


@dataclass(frozen=True)
class ExactOTCoupling(Coupling):
    """The exact optimal-transport pairing of the minibatch (OT-CFM; ``ot.emd``): a permutation."""

    name: ClassVar[str] = "exact"

    def __call__(self, x0, eps, generator):
        n = self._check(x0, eps)
        ot = _ot()
        w = np.full(n, 1.0 / n)
        plan = ot.emd(w, w, _cost(x0, eps), numItermax=1_000_000)
        j = plan.argmax(axis=1)
        if np.unique(j).size != n:  # a degenerate plan that is not a vertex: sample from it instead
            return _sample_plan(plan, n, generator, x0.device)
        return torch.arange(n, device=x0.device), torch.from_numpy(j).to(device=x0.device, dtype=torch.int64)


@dataclass(frozen=True)
class SinkhornCoupling(Coupling):
    """Pairs drawn from the entropic OT plan (``ot.sinkhorn``, log domain) of relative strength ``reg``."""

    name: ClassVar[str] = "sinkhorn"
    reg: float = 0.05

    def __post_init__(self) -> None:
        check_positive(self.reg, "reg")

    def __call__(self, x0, eps, generator):
        self._check(x0, eps)
        cost = _cost(x0, eps)
        cost = cost / max(float(cost.max()), 1e-300)
        return _entropic_pairs(cost, self.reg, generator, x0.device, f"the Sinkhorn plan is not finite (reg={self.reg}); use a larger reg")


@dataclass(frozen=True)
class SchrodingerCoupling(Coupling):
    """Pairs drawn from the static Schrodinger bridge of the minibatch for a Brownian reference of diffusion ``sigma``.

    The plan minimizes ``sum pi_ij |x0_i - eps_j|^2 / 2 - sigma^2 H(pi)``: Sinkhorn (log domain) on the
    absolute cost at regularization ``sigma^2`` (Tong et al. 2024's SB-CFM: cost ``|x - y|^2``,
    ``reg = 2 sigma^2``). Unlike :class:`SinkhornCoupling`, the cost is not rescaled, so the plan is the
    entropic OT plan whose Brownian bridges have the Schrodinger bridge's marginals
    (:class:`sdeflow.targets.GaussianBridge` is its closed form between Gaussians).
    """

    name: ClassVar[str] = "schrodinger"
    sigma: float = 1.0

    def __post_init__(self) -> None:
        check_positive(self.sigma, "sigma")

    def __call__(self, x0, eps, generator):
        self._check(x0, eps)
        return _entropic_pairs(0.5 * _cost(x0, eps), self.sigma**2, generator, x0.device,
                               f"the Schrodinger plan is not finite (sigma={self.sigma}); use a larger sigma")


def _entropic_pairs(cost: np.ndarray, reg: float, generator: torch.Generator, device, failure: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs drawn from the entropic plan (uniform marginals, log-domain Sinkhorn) of ``cost (n, n)`` at ``reg``."""
    n = cost.shape[0]
    # POT's torch backend: its log-sum-exp is several times faster than the numpy backend's (same iterations, same plan).
    w = torch.full((n,), 1.0 / n, dtype=torch.float64)
    plan = _ot().sinkhorn(w, w, torch.from_numpy(cost), reg, method="sinkhorn_log", numItermax=10_000).numpy()
    if not np.isfinite(plan).all() or plan.sum() <= 0:
        raise FloatingPointError(failure)
    return _sample_plan(plan, n, generator, device)


def _sample_plan(plan: np.ndarray, n: int, generator: torch.Generator, device) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` index pairs drawn with replacement from a transport plan ``(n, n)``."""
    p = torch.from_numpy(plan.reshape(-1)).to(torch.float64).clamp_min_(0.0)
    flat = torch.multinomial(p.to(generator.device), n, replacement=True, generator=generator)
    return (flat // plan.shape[1]).to(device), (flat % plan.shape[1]).to(device)


COUPLINGS: dict[str, type[Coupling]] = {
    cls.name: cls for cls in (IndependentCoupling, ExactOTCoupling, SinkhornCoupling, SchrodingerCoupling)
}
"""Couplings by name."""


def get_coupling(spec: "str | dict[str, Any] | Coupling", **options: Any) -> Coupling:
    """A coupling from a name (``independent``, ``exact``, ``sinkhorn``), a config dict, or an object."""
    return from_spec(spec, COUPLINGS, Coupling, "coupling", options)
