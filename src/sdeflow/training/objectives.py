"""Training objectives: denoising score matching and conditional flow matching, for any process and prediction.

Both regress a model's output at ``x_t = alpha(t) x0 + sigma(t) eps`` on the conditional target of
its prediction kind, ``target = from_x0_eps(kind, x0, eps, x_t, t)`` (eps: ``eps``; x0: ``x0``;
v: ``alpha eps - sigma x0``; score: ``-eps/sigma``; velocity: ``d_alpha x0 + d_sigma eps``):

    L(theta) = E_{t ~ p, (x0, eps) ~ coupling} [ lambda_k(t) r(t) mean_d (out_theta(x_t, t) - target)^2 ]

with ``lambda_k(t) = w(t) / c_k(t)^2`` the weighting ``w`` on the noise error converted to the
prediction's space (:mod:`sdeflow.training.weighting`), and ``r(t) = u(t)/p(t)`` for importance
samplers (ones otherwise; :mod:`sdeflow.training.time_samplers`). The minimizer over all functions
is the conditional expectation of the target given ``x_t`` (Vincent 2011): with independent pairs,
the exact ``E[eps | x_t]``, ``E[x0 | x_t]``, score, v and probability-flow velocity of the data's
diffusion; and for any model ``m``,

    L(m) - L(m*) = E[ lambda_k(t) r(t) mean_d (m - m*)^2 ]        (m* the exact model),

which the tests check on Gaussian mixtures with known exact models.

* :class:`DenoisingScoreMatching`: independent pairs, any weighting and time sampler
  (Song et al. 2021; Ho et al. 2020; Karras et al. 2022 with :class:`~sdeflow.models.EDMPrecond`,
  weighting ``edm`` and the log-normal sampler).
* :class:`FlowMatching`: conditional flow matching on the ``Linear`` path by default
  (Lipman et al. 2023; Liu et al. 2023) or any Gaussian path, with independent, exact-OT or
  Sinkhorn couplings (Tong et al. 2024). On the linear path with velocity prediction the target is
  ``eps - x0``: data at ``t = 0``, noise at ``t = 1`` (flow-matching papers' ``t`` is ``1 - t`` here).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import torch

from .._utils import check_state, expand_to
from ..models.parameterization import check_prediction, from_x0_eps
from ..processes import Linear
from ..processes import get as get_process
from ..processes.base import DiffusionProcess
from .couplings import Coupling, IndependentCoupling, get_coupling
from .time_samplers import TimeSampler, get_time_sampler
from .weighting import Weighting, get_weighting

__all__ = ["LossOutput", "Objective", "DenoisingScoreMatching", "FlowMatching", "OBJECTIVES", "build_objective"]


class LossOutput(NamedTuple):
    """What :meth:`Objective.loss` returns.

    Attributes:
        loss: the batch mean, a 0-d tensor (differentiable).
        per_sample: ``(batch,)`` weighted per-sample losses.
        t: ``(batch,)`` float64 training times used.
    """

    loss: torch.Tensor
    per_sample: torch.Tensor
    t: torch.Tensor


class Objective:
    """Weighted regression of a prediction on its conditional target (see the module docstring).

    Args:
        process: the Gaussian path (an object or a name of :func:`sdeflow.processes.get`).
        prediction: ``eps``, ``x0``, ``v``, ``score`` or ``velocity``.
        weighting: a :class:`~sdeflow.training.weighting.Weighting` or its name.
        time_sampler: a :class:`~sdeflow.training.time_samplers.TimeSampler` or its name.
        coupling: a :class:`~sdeflow.training.couplings.Coupling` or its name.
    """

    name = "objective"

    def __init__(
        self,
        process: DiffusionProcess | str,
        prediction: str,
        *,
        weighting: Weighting | str | dict = "uniform",
        time_sampler: TimeSampler | str | dict = "uniform",
        coupling: Coupling | str | dict = "independent",
    ) -> None:
        self.process = get_process(process) if isinstance(process, str) else process
        if not isinstance(self.process, DiffusionProcess):
            raise TypeError(f"process must be a DiffusionProcess or a process name; got {type(process).__name__}")
        self.prediction = check_prediction(prediction)
        self.weighting = get_weighting(weighting)
        self.time_sampler = get_time_sampler(time_sampler)
        self.coupling = get_coupling(coupling)
        if self.prediction == "score" and not isinstance(self.coupling, IndependentCoupling):
            raise ValueError(
                f"a 'score' model needs independent pairs: with the {self.coupling.name!r} coupling the path's "
                "marginals are not the data's diffusion, so -eps/sigma is not a score. Use prediction='velocity'"
            )
        self.time_sampler.bounds(self.process)  # fail now on bad bounds, not at the first step

    @property
    def stochastic_sampling_valid(self) -> bool:
        """Whether the trained model's implied score is the diffusion's (independent pairs only)."""
        return isinstance(self.coupling, IndependentCoupling)

    def config(self) -> dict[str, Any]:
        """JSON-ready description; :func:`build_objective` rebuilds the objective with the process."""
        return {
            "name": self.name,
            "prediction": self.prediction,
            "weighting": self.weighting.config(),
            "time_sampler": self.time_sampler.config(),
            "coupling": self.coupling.config(),
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(process={self.process!r}, prediction={self.prediction!r}, "
            f"weighting={self.weighting.name!r}, time_sampler={self.time_sampler.name!r}, coupling={self.coupling.name!r})"
        )

    def draw_noise(self, x0: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The path's noise ``eps`` for data ``x0``: standard normal of ``x0``'s shape, dtype and device.

        A subclass whose data lives on a linear subspace overrides it with the subspace's standard
        normal (e.g. coordinates of atoms with zero centre of mass).
        """
        return torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=generator.device).to(x0.device)

    def loss(
        self,
        model: Callable[..., torch.Tensor],
        x0: torch.Tensor,
        *,
        generator: torch.Generator,
        labels: torch.Tensor | None = None,
    ) -> LossOutput:
        """The objective on a data minibatch.

        Args:
            model: ``model(x_t, t)`` (or ``model(x_t, t, labels)`` when labels are given) returning
                a prediction of ``self.prediction`` with the shape of ``x_t``; ``t`` is ``(batch,)``.
            x0: data ``(batch, *event_shape)``, float32 or float64.
            generator: the source of ``t``, the noise and the coupling's draws.
            labels: optional ``(batch,)`` class labels passed to the model (they follow the coupling).

        Returns:
            :class:`LossOutput` ``(loss, per_sample, t)``.
        """
        check_state(x0, "x0")
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator (sdeflow never uses the global one); got {type(generator).__name__}")
        if labels is not None and (not isinstance(labels, torch.Tensor) or tuple(labels.shape) != (x0.shape[0],)):
            shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
            raise ValueError(f"labels must be a (batch,) = ({x0.shape[0]},) tensor; got {shape}")
        n = x0.shape[0]
        # Times are rounded to the state's dtype first, so that the model and the target see one t.
        t = self.time_sampler.sample(self.process, n, generator).to(x0.device)
        t = t.to(x0.dtype).to(torch.float64)
        eps = self.draw_noise(x0, generator)
        i, j = self.coupling(x0, eps, generator)
        x0, eps = x0[i], eps[j]
        if labels is not None:
            labels = labels[i]
        x_t = self.process.marginal(x0, t, eps)
        target = from_x0_eps(self.prediction, x0, eps, x_t, t, self.process)
        t_in = t.to(x0.dtype)
        out = model(x_t, t_in) if labels is None else model(x_t, t_in, labels)
        if not isinstance(out, torch.Tensor) or out.shape != x_t.shape:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"the model returned {shape} for a state of shape {tuple(x_t.shape)}; it must return the state's shape")
        sq = (out.to(x0.dtype) - target).pow(2).reshape(n, -1).mean(dim=1)
        weight = self.weighting.weight(self.process, t, self.prediction) * self.time_sampler.importance_weight(self.process, t)
        per_sample = expand_to(weight, sq) * sq
        return LossOutput(per_sample.mean(), per_sample, t)


class DenoisingScoreMatching(Objective):
    """Denoising score matching (independent pairs) with a weighting and a time sampler.

    Defaults: ``eps`` prediction, ``uniform`` weighting (Ho et al.'s L_simple), uniform ``t``.
    The likelihood weighting with ``time_sampler="importance"`` is Song et al. (2021)'s maximum-
    likelihood training; ``x0`` prediction through :class:`~sdeflow.models.EDMPrecond` with
    ``weighting="edm"`` and ``time_sampler="lognormal"`` is EDM's training.
    """

    name = "dsm"

    def __init__(
        self,
        process: DiffusionProcess | str,
        prediction: str = "eps",
        *,
        weighting: Weighting | str | dict = "uniform",
        time_sampler: TimeSampler | str | dict = "uniform",
        coupling: Coupling | str | dict = "independent",
    ) -> None:
        super().__init__(process, prediction, weighting=weighting, time_sampler=time_sampler, coupling=coupling)
        if not isinstance(self.coupling, IndependentCoupling):
            raise ValueError(
                f"denoising score matching uses independent pairs; got coupling {self.coupling.name!r}. "
                "Use FlowMatching for optimal-transport couplings"
            )


class FlowMatching(Objective):
    """Conditional flow matching: velocity regression on a Gaussian path with a coupling.

    Defaults: the :class:`~sdeflow.processes.Linear` path, ``velocity`` prediction, unit weight,
    ``t`` uniform on ``[0, 1]``, independent pairs (I-CFM). ``coupling="exact"`` is OT-CFM and
    ``coupling="sinkhorn"`` its entropic version (Tong et al. 2024).
    """

    name = "fm"

    def __init__(
        self,
        process: DiffusionProcess | str | None = None,
        prediction: str = "velocity",
        *,
        weighting: Weighting | str | dict = "uniform",
        time_sampler: TimeSampler | str | dict | None = None,
        coupling: Coupling | str | dict = "independent",
    ) -> None:
        process = Linear() if process is None else process
        if time_sampler is None:
            p = get_process(process) if isinstance(process, str) else process
            time_sampler = {"name": "uniform", "t_lo": 0.0, "t_hi": float(p.T)} if isinstance(p, Linear) else "uniform"
        super().__init__(process, prediction, weighting=weighting, time_sampler=time_sampler, coupling=coupling)


OBJECTIVES: dict[str, type[Objective]] = {"dsm": DenoisingScoreMatching, "fm": FlowMatching}
"""Objectives by name."""


def build_objective(config: dict[str, Any], process: DiffusionProcess) -> Objective:
    """Rebuild an objective from :meth:`Objective.config` and its process."""
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict such as {{'name': 'fm', 'prediction': 'velocity'}}; got {type(config).__name__}")
    name = config.get("name")
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r} (config['name']); expected one of {sorted(OBJECTIVES)}")
    known = {"name", "prediction", "weighting", "time_sampler", "coupling"}
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(f"unknown objective options {unknown} in config; expected some of {sorted(known)}")
    if "prediction" not in config:
        raise ValueError(f"config has no 'prediction' (the objective's model output, e.g. {{'name': {name!r}, 'prediction': 'eps'}})")
    return OBJECTIVES[name](
        process,
        config["prediction"],
        weighting=config.get("weighting", "uniform"),
        time_sampler=config.get("time_sampler", "uniform"),
        coupling=config.get("coupling", "independent"),
    )
