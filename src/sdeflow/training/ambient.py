"""Ambient Diffusion: a clean prior from randomly masked data by further corruption (Daras et al. 2023).

Data: ``y_i = A_i x0_i`` with ``A_i = diag(m_i)`` a random 0/1 mask per sample, known, independent of
``x0`` (each coordinate observed with probability ``1 - p``); ``x0`` is never seen. Training (Daras
et al. 2023, "Ambient Diffusion: Learning Clean Distributions from Corrupted Data", sec. 3.2) hides
a further fraction ``delta`` of the observed coordinates, ``A~ = B A`` with ``B = diag(b)``,
``b_d ~ Bernoulli(1 - delta)``, and trains ``h(A~ x_t, A~, t)`` to predict the coordinates that ``A``
observed:

    L(h) = E_{t, x0, A, B, eps} [ lambda(t) |A (h(A~ x_t, A~, t) - x0)|^2 ],    x_t = alpha x0 + sigma eps

computable from the data alone, since ``A x0 = y`` and ``A~ x_t = A~ (alpha y + sigma eps)``. Given
``(A~ x_t, A~)``, the mask ``A`` is independent of ``x0``, so the conditional expected loss is
``sum_d P(A_dd = 1 | A~) E[(h_d - x0_d)^2 | A~ x_t, A~]``; every coordinate has
``P(A_dd = 1 | A~) > 0`` (the observed coordinates of ``A~`` surely, the others with probability
``(1 - p) delta / (p + (1 - p) delta)``), so the minimizer is the clean conditional mean (the
paper's Theorem 4.1 in this setting):

    h*(A~ x_t, A~, t) = E[x0 | A~ x_t, A~]

checked in closed form on Gaussian data in ``tests/corrupted/test_ambient.py``. The model sees the
mask through :class:`~sdeflow.nn.masked.MaskedNet`; any prediction kind works, converted to ``x0`` at
the masked state ``A~ x_t`` (a function of ``(A~ x_t, A~)`` for every kind).

Sampling (sec. 3.3 of the paper): the pattern ``A~ = I`` (all observed) occurs in training with
probability ``((1 - p)(1 - delta))^D``; where it is not negligible (low dimension) the trained model
used as a plain model (the mask defaults to all ones) is ``E[x0 | x_t]``, the clean denoiser, and
every solver samples the clean law. In high dimension the paper's fixed-mask sampler
(:class:`FixedMaskModel`) keeps one mask ``A~`` drawn from the training law per sample for the
whole trajectory: the coordinates it observes follow the exact reverse process of their marginal,
the others end at the conditional mean ``E[x0_rest | x0_observed]`` (an approximation that loses
their conditional spread).

Data reach the objective packed as ``(n, 2, *event_shape)``: ``[:, 0]`` the zero-filled observations
``y``, ``[:, 1]`` the masks (:func:`pack_masked`), so the :class:`~sdeflow.training.Trainer` batches
them like any data.
"""

from __future__ import annotations

from typing import Any

import torch

from .._utils import check_state, expand_to
from ..models.parameterization import to_x0_eps
from ..processes.base import DiffusionProcess
from .corrupted import x0_error_weight
from .objectives import LossOutput, Objective
from .time_samplers import TimeSampler
from .weighting import Weighting

__all__ = ["AmbientObjective", "FixedMaskModel", "pack_masked", "unpack_masked", "check_mask"]


def check_mask(mask: Any, like: torch.Tensor, name: str = "mask") -> torch.Tensor:
    """``mask`` as a 0/1 tensor of ``like``'s shape and dtype, or a ValueError naming ``name``."""
    if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != tuple(like.shape):
        raise ValueError(f"{name} must be a 0/1 tensor of the data's shape {tuple(like.shape)}; got {getattr(mask, 'shape', type(mask).__name__)}")
    m = mask.to(dtype=like.dtype, device=like.device)
    if not bool(((m == 0) | (m == 1)).all()):
        raise ValueError(f"{name} must hold only 0 (missing) and 1 (observed)")
    return m


def pack_masked(y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(n, 2, *event_shape)``: zero-filled observations ``mask * y`` and the masks, for :class:`AmbientObjective`."""
    check_state(y, "y")
    m = check_mask(mask, y)
    return torch.stack([m * y, m], dim=1)


def unpack_masked(data: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The inverse of :func:`pack_masked`: ``(y, mask)``, each ``(n, *event_shape)``."""
    if not isinstance(data, torch.Tensor) or data.ndim < 3 or data.shape[1] != 2:
        raise ValueError(f"masked data must be packed as (n, 2, *event_shape) by pack_masked; got {getattr(data, 'shape', type(data).__name__)}")
    return data[:, 0], data[:, 1]


def _masked_net(model):
    from ..nn.masked import MaskedNet

    net = getattr(model, "net", None)
    if not isinstance(net, MaskedNet):
        raise TypeError("Ambient Diffusion needs a model whose network sees the mask: a DiffusionModel with a "
                        f"sdeflow.nn.masked.MaskedNet; got a network of type {type(net).__name__}")
    return net


class AmbientObjective(Objective):
    """Ambient Diffusion's further-corruption objective (see the module docstring).

    Args:
        process, prediction, weighting, time_sampler: as for :class:`~sdeflow.training.Objective`.
        delta: the probability that an observed coordinate is hidden again (the paper's ``delta``; in ``(0, 1)``).

    The weighting is that of denoising score matching of the same prediction carried to the ``x0``
    error (:func:`~sdeflow.training.corrupted.x0_error_weight`). Costs one model call per sample.
    """

    name = "ambient"

    def __init__(
        self,
        process: DiffusionProcess | str,
        prediction: str = "eps",
        *,
        delta: float = 0.1,
        weighting: Weighting | str | dict = "uniform",
        time_sampler: TimeSampler | str | dict = "uniform",
    ) -> None:
        super().__init__(process, prediction, weighting=weighting, time_sampler=time_sampler)  # independent pairs
        if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not 0 < float(delta) < 1:
            raise ValueError(f"delta must be a probability in (0, 1) (the further-corruption rate, e.g. 0.1); got {delta!r}")
        self.delta = float(delta)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "delta": self.delta}

    def event_shape_of(self, data: torch.Tensor) -> tuple[int, ...]:
        """The model's event shape for packed data ``(n, 2, *event_shape)``."""
        return tuple(unpack_masked(data)[0].shape[1:])

    def loss(self, model, x0: torch.Tensor, *, generator: torch.Generator, labels: torch.Tensor | None = None) -> LossOutput:
        """The objective on a minibatch of packed observations ``x0 = pack_masked(y, mask)``."""
        check_state(x0, "x0")
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator (sdeflow never uses the global one); got {type(generator).__name__}")
        y, mask = unpack_masked(x0)
        net = _masked_net(model)
        n, dtype, dev = y.shape[0], y.dtype, y.device
        t = self.time_sampler.sample(self.process, n, generator).to(dev).to(dtype).to(torch.float64)
        eps = torch.randn(y.shape, generator=generator, dtype=dtype, device=generator.device).to(dev)
        keep = torch.rand(y.shape, generator=generator, dtype=dtype, device=generator.device).to(dev) >= self.delta
        further = mask * keep.to(dtype)  # A~ = B A
        alpha = expand_to(self.process.alpha(t), y).to(dtype)
        sigma = expand_to(self.process.sigma(t), y).to(dtype)
        x_in = further * (alpha * y + sigma * eps)  # A~ x_t: only coordinates that A observed enter
        t_in = t.to(dtype)
        with net.using(further):
            out = model(x_in, t_in) if labels is None else model(x_in, t_in, labels)
        x0_hat = to_x0_eps(self.prediction, out.to(dtype), x_in, t, self.process)[0]
        sq = (mask * (x0_hat - y)).pow(2).reshape(n, -1).mean(dim=1)  # |A (h - x0)|^2 / D
        per_sample = x0_error_weight(self, t).to(dtype) * sq
        return LossOutput(per_sample.mean(), per_sample, t)


class FixedMaskModel:
    """The fixed-mask sampler's model (Daras et al. 2023, sec. 3.3): ``x0_hat = h(A~ x_t, A~, t)`` with one ``A~`` per sample.

    Args:
        model: a :class:`~sdeflow.training.DiffusionModel` with a :class:`~sdeflow.nn.masked.MaskedNet`.
        mask: ``(batch, *event_shape)`` 0/1, the batch being sampled (draw it from the training law of
            ``A~``: each coordinate kept with probability ``(1 - p)(1 - delta)``).

    Predicts ``x0``; run it with :func:`sdeflow.sample` (``prediction="x0"``) on the same batch.
    """

    prediction = "x0"

    def __init__(self, model, mask: torch.Tensor) -> None:
        self.net = _masked_net(model)
        self.model, self.process = model, model.process
        if not isinstance(mask, torch.Tensor) or tuple(mask.shape[1:]) != tuple(self.net.event_shape):
            raise ValueError(f"mask must be (batch, *{tuple(self.net.event_shape)}) of 0/1; got {getattr(mask, 'shape', type(mask).__name__)}")
        self.mask = mask

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        mask = check_mask(self.mask, x)
        x_in = mask * x
        with self.net.using(mask):
            out = self.model(x_in, t)
        t64 = torch.as_tensor(t, dtype=torch.float64, device=x.device)
        return to_x0_eps(self.model.prediction, out.to(x.dtype), x_in, t64 if t64.ndim else t64.expand(x.shape[0]), self.process)[0]
