"""Stochastic interpolants (Albergo, Boffi and Vanden-Eijnden 2023): learn the velocity and the denoiser, sample
with the probability-flow ODE or with an SDE whose diffusion is chosen after training, and the ODE's likelihood.

The path is ``x_t = a(t) x0 + b(t) x1 + gamma(t) z`` (:class:`~sdeflow.processes.interpolant.InterpolantSchedule`:
linear, trigonometric or encoder-decoder ``a, b``; ``gamma`` of shape ``sqrt(t (1 - t))``, ``t (1 - t)`` or
``sin^2(pi t)``), ``x0`` the data side (``t = 0``), ``x1`` the source (``t = 1``): Gaussian noise drawn by the
objective (noise-to-data) or a second data set given as packed pairs (data-to-data). Two fields are learned
("Stochastic interpolants: a unifying framework for flows and diffusions", arXiv:2303.08797, section 2):

* the velocity ``b(t, x) = E[a' x0 + b' x1 + gamma' z | x_t = x]`` (their eq. (2.10)), minimizer of
  ``L_b = E[ |b(t, x_t)|^2 - 2 (a' x0 + b' x1 + gamma' z) . b(t, x_t) ]`` (their eq. (2.12), the square
  ``|b - target|^2`` less the target's square, which does not depend on ``b``);
* the denoiser ``eta(t, x) = E[z | x_t = x]`` (their eq. (2.13)), minimizer of ``E |eta(t, x_t) - z|^2``;
  the score of the marginal is ``s = -eta / gamma``.

With ``gamma = sqrt(c^2 t (1 - t))`` the target's ``gamma' z`` has infinite variance near the ends
(``gamma'^2 ~ c^2 / (4 t)``). Antithetic sampling (their section 6.1) evaluates every ``(x0, x1, t)`` at
``z`` and at ``-z``: the two ``gamma' z`` terms of ``L_b`` combine into ``gamma' z . (b(x+) - b(x-))``, of
order ``gamma gamma' |z|^2``, which stays finite. It is on by default.

Generation from ``x1`` at ``t = 1`` to ``t = 0`` (their Theorem 2.21 with time reversed; ``eps(t) >= 0`` is
free and chosen after training):

    probability-flow ODE    dX = b(t, X) dt
    SDE                     dX = [b(t, X) - eps(t) s(t, X)] dt + sqrt(2 eps(t)) dW-bar     (backward in t)

both with the marginals of ``x_t`` at every ``t``. :class:`InterpolantSDE` is that SDE in the simulation
time ``tau = 1 - t`` for the suite's SDE solvers (:func:`interpolant_sample`); a velocity model is also a
``velocity`` model of the :class:`~sdeflow.processes.Linear` process, so :func:`sdeflow.sample` runs the
ODE with every deterministic solver. The ODE's likelihood is the instantaneous change of variables
``log p_0(x) = log p_1(X_1) + int_0^1 div b(t, X_t) dt`` (:func:`interpolant_log_likelihood`, through
:func:`sdeflow.likelihood.log_likelihood`).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable

import torch

from .._utils import check_int, check_nonnegative, check_positive, expand_to
from ..processes import Linear
from ..processes.base import DiffusionProcess
from ..processes.interpolant import GAMMAS, INTERPOLANTS, InterpolantSchedule
from ..sdes import SDE, sdeint
from ..training.objectives import FlowMatching, LossOutput
from ..training.time_samplers import TimeSampler
from ..training.weighting import Weighting
from .objectives import unpack_pairs

__all__ = ["FIELDS", "SOURCES", "StochasticInterpolant", "InterpolantSDE", "interpolant_sample", "interpolant_log_likelihood",
           "INTERPOLANTS", "GAMMAS", "InterpolantSchedule"]

FIELDS = ("velocity", "denoiser")
SOURCES = ("gaussian", "pairs")


class StochasticInterpolant(FlowMatching):
    """Learns one field of a stochastic interpolant: the velocity ``b`` or the denoiser ``eta = E[z | x_t]``.

    Args:
        process: a :class:`~sdeflow.processes.Linear` process on ``[0, 1]`` (default): its only role is the
            model contract (a ``velocity`` model of it samples from ``t = 1`` to ``0`` with any deterministic solver).
        prediction: ``"velocity"`` for ``field="velocity"``, ``"eps"`` for ``field="denoiser"`` (the default).
        interpolant, gamma, gamma_scale: the path (:class:`~sdeflow.processes.interpolant.InterpolantSchedule`).
        field: ``"velocity"`` or ``"denoiser"`` (module docstring).
        source: ``"gaussian"``: the data are ``x0 (batch, *event)`` and ``x1 ~ N(0, I)`` is drawn per batch
            (noise-to-data); ``"pairs"``: the data are packed pairs ``(batch, 2, *event)``
            (:func:`~sdeflow.transport.pack_pairs`, data-to-data).
        shuffle: with ``source="pairs"``, re-pair ``x1`` by a random permutation inside each minibatch
            (the independent coupling of Albergo et al.); ``False`` keeps the given pairs.
        antithetic: evaluate each draw at ``z`` and ``-z`` (module docstring).
        weighting, time_sampler: as for :class:`~sdeflow.training.FlowMatching` (default ``t ~ U(0, 1)``).

    ``loss(model, data, generator=...)``; labels (``source="gaussian"`` only) are passed to the model.
    """

    name = "interpolant"

    def __init__(
        self,
        process: DiffusionProcess | str | None = None,
        prediction: str | None = None,
        *,
        interpolant: str = "linear",
        gamma: str | None = None,
        gamma_scale: float = 1.0,
        field: str = "velocity",
        source: str = "gaussian",
        shuffle: bool = True,
        antithetic: bool = True,
        weighting: Weighting | str | dict = "uniform",
        time_sampler: TimeSampler | str | dict | None = None,
    ) -> None:
        self.schedule = InterpolantSchedule(interpolant, gamma, gamma_scale)
        if field not in FIELDS:
            raise ValueError(f"field must be one of {list(FIELDS)}; got {field!r}")
        if field == "denoiser" and not self.schedule.stochastic:
            raise ValueError("field='denoiser' learns E[z | x_t] and needs gamma > 0: give gamma_scale > 0 and gamma != 'none'")
        if source not in SOURCES:
            raise ValueError(f"source must be one of {list(SOURCES)}; got {source!r}")
        for name, flag in (("shuffle", shuffle), ("antithetic", antithetic)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be True or False; got {type(flag).__name__}")
        expected = "eps" if field == "denoiser" else "velocity"
        prediction = expected if prediction is None else prediction
        super().__init__(process, prediction, weighting=weighting, time_sampler=time_sampler)
        if not isinstance(self.process, Linear) or self.process.T != 1.0:
            raise ValueError(f"a stochastic interpolant's model serves the Linear process on [0, 1]; got {self.process!r}")
        if self.prediction != expected:
            raise ValueError(f"field={field!r} is learned by a {expected!r} model; got prediction={self.prediction!r}")
        self.field, self.source, self.shuffle, self.antithetic = field, source, shuffle, antithetic

    @property
    def stochastic_sampling_valid(self) -> bool:
        """The model is an interpolant's field, not a diffusion's: the suite's stochastic solvers do not apply
        (sample the SDE with :func:`interpolant_sample`)."""
        return False

    def config(self) -> dict[str, Any]:
        return {**super().config(), **self.schedule.config(), "field": self.field, "source": self.source,
                "shuffle": self.shuffle, "antithetic": self.antithetic}

    def __repr__(self) -> str:
        return f"StochasticInterpolant({self.schedule!r}, field={self.field!r}, source={self.source!r})"

    def _sides(self, data: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if self.source == "gaussian":
            if not isinstance(data, torch.Tensor) or data.ndim < 2 or not data.is_floating_point():
                raise ValueError(f"the data must be a floating tensor (batch, *event_shape); got {getattr(data, 'shape', type(data).__name__)}")
            x1 = torch.randn(data.shape, generator=generator, dtype=data.dtype, device=generator.device).to(data.device)
            return data, x1
        x0, x1 = unpack_pairs(data, "the training data (source='pairs')")
        if self.shuffle:
            x1 = x1[torch.randperm(x1.shape[0], generator=generator, device=generator.device).to(x1.device)]
        return x0, x1

    def loss(
        self,
        model: Callable[..., torch.Tensor],
        x0: torch.Tensor,
        *,
        generator: torch.Generator,
        labels: torch.Tensor | None = None,
    ) -> LossOutput:
        """The objective on a minibatch: data ``(batch, *event)`` or packed pairs ``(batch, 2, *event)`` (``source``)."""
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator (sdeflow never uses the global one); got {type(generator).__name__}")
        if labels is not None and self.source == "pairs":
            raise ValueError("labels apply to source='gaussian' (noise-to-data); pairs carry none")
        a0, a1 = self._sides(x0, generator)
        n = a0.shape[0]
        t = self.time_sampler.sample(self.process, n, generator).to(a0.device)
        t = t.to(a0.dtype).to(torch.float64)  # the model and the target see one t
        z = torch.randn(a0.shape, generator=generator, dtype=a0.dtype, device=generator.device).to(a0.device)
        c = self.schedule.coefficients(t)
        a, b, g, da, db, dg = (expand_to(v, a0).to(a0.dtype) for v in (c.a, c.b, c.gamma, c.d_a, c.d_b, c.d_gamma))
        mean, mean_dot = a * a0 + b * a1, da * a0 + db * a1
        signs = (1.0, -1.0) if self.antithetic else (1.0,)
        t_in = t.to(a0.dtype)
        sq = torch.zeros(n, dtype=a0.dtype, device=a0.device)
        for sign in signs:
            x_t = mean + sign * g * z
            out = model(x_t, t_in) if labels is None else model(x_t, t_in, labels)
            if not isinstance(out, torch.Tensor) or out.shape != x_t.shape:
                shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise ValueError(f"the model returned {shape} for a state of shape {tuple(x_t.shape)}; it must return the state's shape")
            out = out.to(a0.dtype)
            if self.field == "velocity":  # |b|^2 - 2 target . b  (eq. (2.12)); target = a' x0 + b' x1 + gamma' z
                target = mean_dot + sign * dg * z
                term = out * out - 2 * target * out
            else:
                term = (out - sign * z).pow(2)
            sq = sq + term.reshape(n, -1).mean(dim=1) / len(signs)
        weight = self.weighting.weight(self.process, t, self.prediction) * self.time_sampler.importance_weight(self.process, t)
        per_sample = expand_to(weight, sq) * sq
        return LossOutput(per_sample.mean(), per_sample, t)


def _eps_function(eps: float | Callable[[float], float]) -> Callable[[float], float]:
    if callable(eps):
        return eps
    if isinstance(eps, bool) or not isinstance(eps, (int, float)):
        raise TypeError(f"eps must be a number >= 0 or a function t -> eps(t) >= 0; got {type(eps).__name__}")
    value = check_nonnegative(float(eps), "eps")
    return lambda t: value


def _call(model: Callable, x: torch.Tensor, t: float) -> torch.Tensor:
    out = model(x, torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device))
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"a field model returned {shape} for a state of shape {tuple(x.shape)}; it must return the state's shape")
    return out.to(x.dtype)


RATIO_WARNING = 1e3
""":class:`InterpolantSDE` warns when ``eps(t) / gamma(t)`` exceeds this at ``t_clip`` or ``1 - t_clip`` with a denoiser."""


class InterpolantSDE(SDE):
    """The generative SDE of a stochastic interpolant in the simulation time ``tau`` in ``[0, 1]``.

    ``direction="backward"`` (default) runs from ``x1`` at ``t = 1`` to ``t = 0`` (``t = 1 - tau``):

        dX = [-b(t, X) + eps(t) s(t, X)] dtau + sqrt(2 eps(t)) dW;

    ``"forward"`` from ``t = 0`` to ``1`` (``t = tau``): ``dX = [b + eps s] dtau + sqrt(2 eps) dW``
    (Albergo et al. 2023, Theorem 2.21). ``eps = 0`` is the probability-flow ODE.

    Args:
        velocity: the velocity model ``b(x, t)``.
        schedule: the interpolant's :class:`~sdeflow.processes.interpolant.InterpolantSchedule`
            (needed to turn a denoiser into the score, ``s = -eta / gamma``).
        denoiser: a denoiser model ``eta(x, t) = E[z | x_t]``; or ``score``: a score model ``s(x, t)``
            (one of them when ``eps`` is not zero).
        eps: the diffusion coefficient, a number or a function ``t -> eps(t) >= 0``, chosen freely after training.
        t_clip: the fields are evaluated at ``t`` clipped to ``[t_clip, 1 - t_clip]`` where ``eps(t) > 0``,
            since ``s = -eta / gamma`` divides by ``gamma(t) -> 0`` at the ends.

    Choosing ``eps``: any ``eps(t) >= 0`` keeps the interpolant's marginals with exact fields, but a learned
    denoiser's error reaches the drift multiplied by ``eps(t) / gamma(t)``. With ``gamma = sqrt(t (1 - t))`` a
    constant ``eps`` is safe (``gamma(t_clip) ~ 0.03``); with ``gamma = sin^2(pi t)`` (``~ 1e-5`` at ``t_clip``) it
    is not, and ``eps(t) = c gamma(t)`` is the choice (``eps=lambda t: c * schedule.coefficients(t).gamma``). A
    :class:`RuntimeWarning` is raised when the ratio exceeds ``RATIO_WARNING`` at the clipped ends.

    Models are called as ``model(x, t)`` with ``t`` of shape ``(batch,)``.
    """

    noise_type = "additive"

    def __init__(self, velocity: Callable, schedule: InterpolantSchedule, *, denoiser: Callable | None = None,
                 score: Callable | None = None, eps: float | Callable[[float], float] = 0.0, direction: str = "backward",
                 t_clip: float = 1e-3) -> None:
        if not callable(velocity):
            raise TypeError(f"velocity must be a model (x, t) -> b; got {type(velocity).__name__}")
        if not isinstance(schedule, InterpolantSchedule):
            raise TypeError(f"schedule must be an InterpolantSchedule; got {type(schedule).__name__}")
        if denoiser is not None and score is not None:
            raise ValueError("give either denoiser (E[z | x_t]) or score, not both")
        if direction not in ("forward", "backward"):
            raise ValueError(f"direction must be 'forward' or 'backward'; got {direction!r}")
        self.velocity, self.schedule, self.denoiser, self.score = velocity, schedule, denoiser, score
        self.eps, self.direction = _eps_function(eps), direction
        self.t_clip = check_positive(t_clip, "t_clip")
        if self.t_clip >= 0.5:
            raise ValueError(f"t_clip must lie in (0, 0.5); got {t_clip}")
        if denoiser is not None and not schedule.stochastic:
            raise ValueError("a denoiser gives the score only where gamma > 0; this schedule has gamma = 0 (give score=)")
        if denoiser is not None:
            # s = -eta / gamma: near an end where gamma -> 0 a learned denoiser's error is multiplied by eps / gamma.
            ratio, at = max((self._eps(t) / float(schedule.coefficients(t).gamma), t) for t in (self.t_clip, 1.0 - self.t_clip))
            if ratio > RATIO_WARNING:
                warnings.warn(
                    f"eps(t) / gamma(t) reaches {ratio:.3g} at t = {at:g} ({schedule!r}): the score -eta / gamma multiplies a "
                    f"learned denoiser's error by that factor, and the SDE can diverge; give an eps(t) that vanishes with "
                    f"gamma, e.g. eps=lambda t: c * schedule.coefficients(t).gamma", RuntimeWarning, stacklevel=3)

    def _t(self, tau) -> float:
        tau = float(tau)
        return tau if self.direction == "forward" else 1.0 - tau

    def _eps(self, t: float) -> float:
        value = float(self.eps(t))
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"eps(t) must be a finite number >= 0; got {value} at t = {t}")
        return value

    def drift(self, tau, x: torch.Tensor) -> torch.Tensor:
        t = self._t(tau)
        eps = self._eps(t)
        sign = 1.0 if self.direction == "forward" else -1.0
        if eps == 0.0:
            return sign * _call(self.velocity, x, t)
        if self.denoiser is None and self.score is None:
            raise ValueError(f"eps(t) = {eps} > 0 at t = {t} needs the score: give denoiser= or score=")
        tc = min(max(t, self.t_clip), 1.0 - self.t_clip)
        if self.score is not None:
            s = _call(self.score, x, tc)
        else:
            s = -_call(self.denoiser, x, tc) / float(self.schedule.coefficients(tc).gamma)
        return sign * _call(self.velocity, x, tc) + eps * s

    def diffusion(self, tau, x: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x, math.sqrt(2.0 * self._eps(self._t(tau))))


@torch.no_grad()
def interpolant_sample(
    velocity: Callable,
    x: torch.Tensor,
    schedule: InterpolantSchedule,
    *,
    denoiser: Callable | None = None,
    score: Callable | None = None,
    eps: float | Callable[[float], float] = 0.0,
    steps: int = 100,
    method: str = "euler_maruyama",
    direction: str = "backward",
    seed: int = 0,
    t_clip: float = 1e-3,
    batch_size: int = 10_000,
) -> torch.Tensor:
    """The end states ``(n, *event)`` of :class:`InterpolantSDE` from ``x (n, *event)`` with ``steps`` fixed steps.

    ``direction="backward"`` generates data from source samples ``x`` at ``t = 1``; ``eps = 0`` integrates
    the probability-flow ODE (Euler with ``euler_maruyama``). ``method`` is an SDE solver of the suite
    (``euler_maruyama``, ``heun_sde``, ``sra1``, ...); sample ``i`` of chunk ``k`` is driven by the Brownian
    path of seed ``seed + k * batch_size + i``, so a sample does not depend on the others.
    """
    steps, batch_size = check_int(steps, "steps"), check_int(batch_size, "batch_size")
    check_int(seed, "seed", minimum=0)
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or not x.is_floating_point():
        raise ValueError(f"x must be a floating tensor (n, *event_shape); got {getattr(x, 'shape', type(x).__name__)}")
    sde = InterpolantSDE(velocity, schedule, denoiser=denoiser, score=score, eps=eps, direction=direction, t_clip=t_clip)
    outs = []
    for k in range(0, x.shape[0], batch_size):
        chunk = x[k:k + batch_size]
        outs.append(sdeint(sde, chunk, [0.0, 1.0], method=method, dt=1.0 / steps, seed=seed + k)[-1])
    return torch.cat(outs)


def interpolant_log_likelihood(velocity: Callable, x: torch.Tensor, *, source_log_prob: Callable | None = None,
                               **kwargs: Any):
    """``log p_0(x)`` of data ``x (n, *event)`` under the interpolant's probability-flow ODE (nats).

    Integrates ``dx/dt = b(t, x)`` from ``t_start`` to ``1`` with the divergence (exact or Hutchinson) by
    :func:`sdeflow.likelihood.log_likelihood` (the velocity is a ``velocity`` model of ``Linear()``):
    ``log p_0(x) = log p_1(X_1) + int div b dt``. ``source_log_prob`` is ``log p_1``, ``(b, *event) -> (b,)``
    (default ``N(0, I)``, noise-to-data; give the source distribution's for data-to-data). Other keyword
    arguments (``method``, ``n_probes``, ``rtol``, ``atol``, ``t_start``, ``batch_size``, ``seed``...) go to
    :func:`~sdeflow.likelihood.log_likelihood`; the result is its :class:`~sdeflow.likelihood.LikelihoodResult`.
    """
    from ..likelihood import log_likelihood

    if not callable(velocity):
        raise TypeError(f"velocity must be a model (x, t) -> b; got {type(velocity).__name__}")
    return log_likelihood(velocity, Linear(), x, prediction="velocity", prior=source_log_prob, **kwargs)
