"""Two-sided objectives: flow matching between paired samples of any two distributions.

The training data are pairs packed as one tensor ``(n, 2, *event_shape)`` (:func:`pack_pairs`):
``pairs[:, 0]`` is the target side ``x0`` (sdeflow's data side, ``t = 0``) and ``pairs[:, 1]`` the
source side ``x1`` (``t = 1``; Gaussian noise for noise-to-data). A model is a velocity model of the
:class:`~sdeflow.processes.Linear` process, so it samples with every deterministic solver of the
suite starting from source samples at ``t = 1``.

:class:`PairedFlowMatching` regresses the velocity of the path

    x_t = (1 - t) x0 + t x1 + s sqrt(t (1 - t)) z,        z ~ N(0, I),

on its conditional velocity

    u_t = x1 - x0 + s (1 - 2t) / (2 sqrt(t (1 - t))) z

(the time derivative of the path at fixed ``(x0, x1, z)``). With ``s = 0`` this is rectified flow
(Liu et al. 2023, eq. (1)): with the given pairs, ``k``-rectified flow on the coupling of the
``(k-1)``-th; with minibatch re-pairing (``coupling="exact"``) OT-CFM (Tong et al. 2024). With
``s > 0`` and the entropic coupling of regularization ``2 s^2`` it is the flow part of SB-CFM /
[SF]2M (Tong et al. 2024, "Simulation-free Schrodinger bridges", Prop. 3.4): the Brownian bridge
of diffusion ``s`` between entropic-OT pairs has the Schrodinger bridge's marginals, and ``u_t``'s
conditional expectation is their probability-flow velocity.

The ``field`` option chooses what is regressed at ``x_t`` (each conditional target's expectation given
``x_t`` is the named field of the path's marginals; Shi et al. 2023, eq. (8), Tong et al. 2024, eq. (9)):

* ``"velocity"``: ``u_t`` above (the probability-flow velocity);
* ``"forward_drift"``: ``(x1 - x_t) / (1 - t) = x1 - x0 - s sqrt(t / (1 - t)) z``, the drift of the
  Markovian projection run from ``t = 0`` to ``1`` (DSBM's forward network);
* ``"backward_drift"``: ``(x0 - x_t) / t = x0 - x1 - s sqrt((1 - t) / t) z``, its time reversal's drift
  (DSBM's backward network, run from ``t = 1`` to ``0``);
* ``"noise"``: ``z`` (an ``eps`` model): the marginal score is ``-E[z | x_t] / (s sqrt(t (1 - t)))``.

With ``times="end"`` every training time is ``t = 1``: the loss is ``|v(x1, 1) - (x1 - x0)|^2``,
the one-step distillation of Liu et al. (2023, section 2.3): a single Euler step
``x0 = x1 - v(x1, 1)`` from the source reproduces the coupling.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from .._utils import check_nonnegative, check_state, expand_to
from ..processes import Linear
from ..processes.base import DiffusionProcess
from ..training.couplings import Coupling
from ..training.objectives import FlowMatching, LossOutput
from ..training.time_samplers import TimeSampler
from ..training.weighting import Weighting

__all__ = ["pack_pairs", "unpack_pairs", "PairedFlowMatching", "TIMES", "FIELDS", "INTERPOLANTS"]

TIMES = ("uniform", "end")
FIELDS = ("velocity", "forward_drift", "backward_drift", "noise")
INTERPOLANTS = ("linear", "trigonometric")


def pack_pairs(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """``(n, 2, *event_shape)`` from target samples ``x0`` and source samples ``x1`` of one shape ``(n, *event_shape)``."""
    check_state(x0, "x0")
    check_state(x1, "x1")
    if x0.shape != x1.shape:
        raise ValueError(
            f"x0 (target) and x1 (source) must have the same shape (n, *event_shape) to be paired; "
            f"got {tuple(x0.shape)} and {tuple(x1.shape)}"
        )
    return torch.stack((x0, x1.to(x0.dtype)), dim=1)


def unpack_pairs(pairs: torch.Tensor, name: str = "pairs") -> tuple[torch.Tensor, torch.Tensor]:
    """``(x0, x1)`` from packed pairs ``(n, 2, *event_shape)``."""
    if not isinstance(pairs, torch.Tensor) or pairs.ndim < 3 or pairs.shape[1] != 2:
        shape = tuple(pairs.shape) if isinstance(pairs, torch.Tensor) else type(pairs).__name__
        raise ValueError(f"{name} must be packed pairs (n, 2, *event_shape) (see pack_pairs); got {shape}")
    return pairs[:, 0], pairs[:, 1]


class PairedFlowMatching(FlowMatching):
    """Velocity regression between paired samples on the linear path, optionally with a Brownian bridge.

    Args:
        process: a :class:`~sdeflow.processes.Linear` process (default ``Linear()``).
        coupling: re-pairing inside each minibatch: ``independent`` keeps the given pairs (rectified
            flow, reflow); ``exact`` is OT-CFM; ``sinkhorn`` (relative ``reg``) entropic OT.
        bridge_sigma: ``s``, the diffusion of the Brownian bridge between the pair (``0``: straight lines).
        times: ``"uniform"`` (``t ~ U(0, 1)``) or ``"end"`` (``t = 1``, one-step distillation).
        field: ``"velocity"``, ``"forward_drift"``, ``"backward_drift"`` or ``"noise"`` (module docstring);
            the model's prediction is ``"eps"`` for ``"noise"`` and ``"velocity"`` otherwise.
        interpolant: ``"linear"`` (``(1 - t) x0 + t x1``) or ``"trigonometric"`` (``cos(pi t/2) x0 + sin(pi t/2) x1``),
            the two deterministic parts of Albergo et al.'s stochastic interpolants; with ``bridge_sigma = c``
            the latent term is ``gamma(t) z = c sqrt(t (1 - t)) z`` and :class:`sdeflow.targets.MixtureInterpolant`
            gives the exact fields between Gaussian mixtures.
        weighting, time_sampler: as for :class:`~sdeflow.training.FlowMatching` (``times="uniform"`` only).

    ``loss(model, pairs, generator=...)`` takes packed pairs ``(batch, 2, *event_shape)``.
    """

    name = "paired_fm"

    def __init__(
        self,
        process: DiffusionProcess | str | None = None,
        prediction: str | None = None,
        *,
        weighting: Weighting | str | dict = "uniform",
        time_sampler: TimeSampler | str | dict | None = None,
        coupling: Coupling | str | dict = "independent",
        bridge_sigma: float = 0.0,
        times: str = "uniform",
        field: str = "velocity",
        interpolant: str = "linear",
    ) -> None:
        if interpolant not in INTERPOLANTS:
            raise ValueError(f"interpolant must be one of {list(INTERPOLANTS)}; got {interpolant!r}")
        if interpolant != "linear" and field in ("forward_drift", "backward_drift"):
            raise ValueError(f"field={field!r} is the Brownian bridge's drift, defined for the linear interpolant only")
        self.interpolant = interpolant
        if field not in FIELDS:
            raise ValueError(f"field must be one of {list(FIELDS)}; got {field!r}")
        expected = "eps" if field == "noise" else "velocity"
        prediction = expected if prediction is None else prediction
        super().__init__(process, prediction, weighting=weighting, time_sampler=time_sampler, coupling=coupling)
        if not isinstance(self.process, Linear) or self.process.T != 1.0:
            raise ValueError(f"paired flow matching runs on the Linear process on [0, 1]; got {self.process!r}")
        if self.prediction != expected:
            raise ValueError(f"the {field!r} field is learned by a {expected!r} model; got prediction={self.prediction!r}")
        if field != "velocity" and not bridge_sigma:
            raise ValueError(f"field={field!r} needs a Brownian bridge: give bridge_sigma > 0")
        self.field = field
        if isinstance(bridge_sigma, bool) or not isinstance(bridge_sigma, (int, float)):
            raise TypeError(f"bridge_sigma must be a number >= 0; got {type(bridge_sigma).__name__}")
        self.bridge_sigma = check_nonnegative(float(bridge_sigma), "bridge_sigma")
        if times not in TIMES:
            raise ValueError(f"times must be one of {list(TIMES)}; got {times!r}")
        if times == "end" and (self.bridge_sigma > 0 or field != "velocity"):
            raise ValueError("times='end' (one-step distillation) needs bridge_sigma=0: the bridge's velocity is singular at t = 1")
        self.times = times

    @property
    def stochastic_sampling_valid(self) -> bool:
        """A transport velocity between two distributions has no diffusion score: deterministic solvers only."""
        return False

    def config(self) -> dict[str, Any]:
        return {**super().config(), "bridge_sigma": self.bridge_sigma, "times": self.times, "field": self.field,
                "interpolant": self.interpolant}

    def loss(
        self,
        model: Callable[..., torch.Tensor],
        x0: torch.Tensor,
        *,
        generator: torch.Generator,
        labels: torch.Tensor | None = None,
    ) -> LossOutput:
        """The objective on a minibatch of packed pairs ``x0 = pairs (batch, 2, *event_shape)`` (labels are ignored)."""
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator (sdeflow never uses the global one); got {type(generator).__name__}")
        target_side, source_side = unpack_pairs(x0, "the training data")
        n = target_side.shape[0]
        if self.times == "end":
            t = torch.ones(n, dtype=torch.float64, device=x0.device)
        else:
            t = self.time_sampler.sample(self.process, n, generator).to(x0.device)
            t = t.to(x0.dtype).to(torch.float64)  # the model and the target see one t
        i, j = self.coupling(target_side, source_side, generator)
        a, b = target_side[i], source_side[j]
        tt = expand_to(t, a).to(a.dtype)
        if self.interpolant == "linear":
            x_t = (1 - tt) * a + tt * b
            velocity = b - a
        else:  # trigonometric: x_t = cos(pi t/2) x0 + sin(pi t/2) x1, velocity pi/2 (-sin x0 + cos x1)
            half = 0.5 * math.pi
            c, sn = torch.cos(half * tt), torch.sin(half * tt)
            x_t = c * a + sn * b
            velocity = half * (c * b - sn * a)
        if self.bridge_sigma > 0:
            z = torch.randn(a.shape, generator=generator, dtype=a.dtype, device=generator.device).to(a.device)
            root = expand_to(torch.sqrt(t * (1 - t)), a).to(a.dtype)
            x_t = x_t + self.bridge_sigma * root * z
            # The fields' conditional targets (module docstring); denominators are clamped against a draw of t at 0
            # (uniform draws never reach 1) so that a rare endpoint gives a large finite target, not inf.
            s, safe_t, safe_1t = self.bridge_sigma, tt.clamp_min(1e-6), (1 - tt).clamp_min(1e-6)
            if self.field == "velocity":  # d/dt [s sqrt(t(1-t))] z = s (1 - 2t) / (2 sqrt(t(1-t))) z
                velocity = velocity + s * (1 - 2 * tt) / (2 * root.clamp_min(1e-6)) * z
            elif self.field == "forward_drift":
                velocity = velocity - s * torch.sqrt(tt / safe_1t) * z
            elif self.field == "backward_drift":
                velocity = -velocity - s * torch.sqrt((1 - tt) / safe_t) * z
            else:
                velocity = z
        out = model(x_t, t.to(x0.dtype))
        if not isinstance(out, torch.Tensor) or out.shape != x_t.shape:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"the model returned {shape} for a state of shape {tuple(x_t.shape)}; it must return the state's shape")
        sq = (out.to(a.dtype) - velocity).pow(2).reshape(n, -1).mean(dim=1)
        weight = self.weighting.weight(self.process, t, self.prediction)
        if self.times == "uniform":
            weight = weight * self.time_sampler.importance_weight(self.process, t)
        per_sample = expand_to(weight, sq) * sq
        return LossOutput(per_sample.mean(), per_sample, t)
