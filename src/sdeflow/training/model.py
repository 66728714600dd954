"""A trainable diffusion/flow model: a network, its process, its prediction kind, guidance.

:class:`DiffusionModel` turns a network ``net(x, c, y)`` into the model contract of sdeflow,
``model(x, t) -> prediction`` with ``t`` the process time, so that :func:`sdeflow.sample` and
every solver use it as they use any model. It decides what the network sees as time:

* ``time_input="t"``: ``c = t / T`` (in ``[0, 1]``);
* ``time_input="log_noise"``: ``c = log(sigma/alpha) / 4`` (EDM's ``c_noise``), for processes whose
  ``t`` spans decades (EDM, VE);
* ``precond="edm"``: the network is wrapped in :class:`~sdeflow.models.EDMPrecond` (Karras et al.
  2022, Table 1): scaled input, ``c_noise`` time input, skip connection; the model then predicts ``x0``.

Mixed precision (``amp_dtype=torch.bfloat16``) applies to the network call only; the model's
output is cast back to the state's dtype (DESIGN.md, "Precision").

Classifier-free guidance (Ho & Salimans 2022): a class-conditional network trained with labels
dropped to the null label gives :meth:`DiffusionModel.guided` ``(y, scale)``, the model
``out_u + scale (out_c - out_u)``. The combination is affine with weights summing to one, so it is
the same guidance for every prediction kind (eps, x0, v, score, velocity).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .._utils import as_time, check_positive
from ..models.guidance import ClassifierFreeGuidance
from ..models.parameterization import check_prediction
from ..models.preconditioning import EDMPrecond
from ..nn import build as build_net

__all__ = ["DiffusionModel", "GuidedModel", "TIME_INPUTS", "PRECONDS"]

TIME_INPUTS = ("auto", "t", "log_noise")
PRECONDS = (None, "edm")
_AMP = {None: None, "none": None, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}


class _LabelledNet(nn.Module):
    """Calls ``net(x, c, labels)`` with labels set for the duration of one :class:`DiffusionModel` call."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.labels: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.net(x, c, self.labels)


class DiffusionModel(nn.Module):
    """``model(x, t, y=None) -> prediction``: a network serving a process.

    Args:
        net: a network ``net(x, c, y=None)`` (see :mod:`sdeflow.nn`) with ``kind`` and ``config()``
            to be saved in checkpoints.
        process: the process the model serves.
        prediction: what the network predicts (ignored with ``precond="edm"``, which predicts ``x0``).
        precond: ``None`` or ``"edm"``.
        sigma_data: the data standard deviation of EDM's preconditioning.
        time_input: ``"t"``, ``"log_noise"`` or ``"auto"`` (``log_noise`` for the EDM process, else ``t``).
        amp_dtype: ``None``, ``"bf16"`` or ``"fp16"`` autocast for the network call.

    Shapes: ``x (batch, *event_shape)``, ``t`` float or ``(batch,)``, ``y (batch,)`` int64 or ``None``.
    """

    def __init__(
        self,
        net: nn.Module,
        process,
        prediction: str = "eps",
        *,
        precond: str | None = None,
        sigma_data: float = 0.5,
        time_input: str = "auto",
        amp_dtype: str | None = None,
    ) -> None:
        super().__init__()
        if precond not in PRECONDS:
            raise ValueError(f"precond must be one of {list(PRECONDS)}; got {precond!r}")
        if time_input not in TIME_INPUTS:
            raise ValueError(f"time_input must be one of {list(TIME_INPUTS)}; got {time_input!r}")
        if amp_dtype not in _AMP:
            raise ValueError(f"amp_dtype must be one of {[k for k in _AMP if k]} or None; got {amp_dtype!r}")
        self.net = net
        self.process = process
        self.precond = precond
        self.sigma_data = check_positive(sigma_data, "sigma_data")
        self.prediction = "x0" if precond == "edm" else check_prediction(prediction)
        if time_input == "auto":
            time_input = "log_noise" if getattr(process, "name", "") == "edm" else "t"
        self.time_input = time_input
        self.amp_dtype = amp_dtype if amp_dtype != "none" else None
        self._edm = EDMPrecond(_LabelledNet(net), process, sigma_data) if precond == "edm" else None

    @property
    def num_classes(self) -> int:
        """Class labels the network takes (0: unconditional)."""
        return int(getattr(self.net, "num_classes", 0))

    def config(self) -> dict[str, Any]:
        """JSON-ready description of the model (the network's kind and constructor arguments included)."""
        return {
            "net": {"kind": getattr(self.net, "kind", type(self.net).__name__), "config": self.net.config()},
            "prediction": self.prediction,
            "precond": self.precond,
            "sigma_data": self.sigma_data,
            "time_input": self.time_input,
            "amp_dtype": self.amp_dtype,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any], process) -> "DiffusionModel":
        """Rebuild (with fresh weights) from :meth:`config` and the process."""
        net = build_net(config["net"]["kind"], config["net"]["config"])
        return cls(
            net,
            process,
            config["prediction"],
            precond=config.get("precond"),
            sigma_data=config.get("sigma_data", 0.5),
            time_input=config.get("time_input", "auto"),
            amp_dtype=config.get("amp_dtype"),
        )

    def _autocast(self, x: torch.Tensor):
        dtype = _AMP[self.amp_dtype]
        return torch.autocast(device_type=x.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)

    def forward(self, x: torch.Tensor, t: torch.Tensor | float, y: torch.Tensor | None = None) -> torch.Tensor:
        t = as_time(t, x.device)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        with self._autocast(x):
            if self._edm is not None:
                self._edm.net.labels = y
                try:
                    out = self._edm(x, t)
                finally:
                    self._edm.net.labels = None
            else:
                if self.time_input == "t":
                    c = t / self.process.T
                else:
                    c = 0.25 * torch.log(self.process.noise_level(t))
                out = self.net(x, c.to(x.dtype), y)
        return out.to(x.dtype)

    def guided(self, y: torch.Tensor | int, scale: float = 1.0) -> "GuidedModel":
        """The class-``y`` model with classifier-free guidance ``scale`` (1: plain conditional, 0: unconditional)."""
        return GuidedModel(self, y, scale)


class GuidedModel:
    """``model(x, t) = out_u + scale (out_c - out_u)``: classifier-free guidance (Ho & Salimans 2022, eq. 6).

    ``out_c`` is the prediction with label ``y`` (an int for the whole batch, or a ``(batch,)``
    tensor), ``out_u`` with the null label. The combination is
    :class:`sdeflow.models.guidance.ClassifierFreeGuidance` (one batched call of twice the size);
    ``scale = 1`` is the plain conditional model and costs one network call of the batch size.
    """

    def __init__(self, model: DiffusionModel, y: torch.Tensor | int, scale: float = 1.0) -> None:
        if model.num_classes < 1:
            raise ValueError("classifier-free guidance needs a class-conditional network (num_classes > 0)")
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
            raise ValueError(f"scale must be a finite number (1: no guidance); got {scale!r}")
        if isinstance(y, int) and not 0 <= y < model.num_classes:
            raise ValueError(f"y must be a class label in [0, {model.num_classes - 1}]; got {y}")
        self.model = model
        self.y = y
        self.scale = float(scale)
        self.prediction = model.prediction

    def __call__(self, x: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        y = torch.full((x.shape[0],), self.y, dtype=torch.int64, device=x.device) if isinstance(self.y, int) else self.y.to(x.device)
        if self.scale == 1.0:
            return self.model(x, t, y)
        t = as_time(t, x.device)
        t = (t.expand(x.shape[0]) if t.ndim == 0 else t).to(x.dtype)
        cfg = ClassifierFreeGuidance(self.model, y, torch.full_like(y, self.model.num_classes), self.scale, self.prediction)
        return cfg(x, t)
