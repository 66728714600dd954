"""The denoiser: any model, seen by solvers only through ``(x0_hat, eps_hat)``."""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch

from .._utils import Time, as_time, batch_time
from .parameterization import check_prediction, from_x0_eps, to_x0_eps

__all__ = ["Denoised", "Denoiser", "NonFiniteModelOutput"]

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Denoised(NamedTuple):
    """A model call seen through the hub: ``x0`` and ``eps`` predictions, shapes of the state."""

    x0: torch.Tensor
    eps: torch.Tensor


class NonFiniteModelOutput(FloatingPointError):
    """The model returned NaN or infinity; the message names the step and the time."""


class Denoiser:
    """Wraps a model ``(x, t) -> tensor`` of a declared prediction kind for a process.

    Calling it returns :class:`Denoised` ``(x0_hat, eps_hat)``; solvers never see the kind.
    It counts model calls in :attr:`nfe` and watches for non-finite outputs without a host-device
    synchronization per call: the first bad call is recorded on the device and reported once by
    :meth:`raise_if_nonfinite` (the sampling driver calls it after the loop).

    Args:
        model: callable ``(x, t) -> out`` with ``x`` of shape ``(batch, *event)`` and ``t`` of shape
            ``(batch,)`` (the state's dtype); ``out`` has the shape of ``x`` and any float dtype
            (reduced precision is cast back to the state's dtype).
        process: the :class:`~sdeflow.processes.DiffusionProcess` the model was trained for.
        prediction: ``eps``, ``x0``, ``v``, ``score`` or ``velocity``.
        check_finite: record non-finite outputs (default ``True``).
    """

    def __init__(self, model: Model, process, prediction: str, *, check_finite: bool = True) -> None:
        if not callable(model):
            raise TypeError(f"model must be callable as model(x, t); got {type(model).__name__}")
        self.model = model
        self.process = process
        self.prediction = check_prediction(prediction)
        self.check_finite = check_finite
        self.nfe = 0
        self.step_index: int | None = None
        self._calls: list[tuple[int | None, str]] = []
        self._first_bad: torch.Tensor | None = None

    def reset(self) -> None:
        """Zero the call counter and forget recorded calls."""
        self.nfe = 0
        self.step_index = None
        self._calls = []
        self._first_bad = None

    def raw(self, x: torch.Tensor, t: Time) -> torch.Tensor:
        """Call the model once (counted and checked) and return its output in ``x``'s dtype."""
        tb = batch_time(t, x)
        out = self.model(x, tb)
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"the model must return a torch.Tensor; got {type(out).__name__}")
        if out.shape != x.shape:
            raise ValueError(
                f"the model returned shape {tuple(out.shape)} for a state of shape {tuple(x.shape)}; "
                f"a {self.prediction!r} model must return the shape of its input"
            )
        out = out.to(x.dtype)
        if self.check_finite:
            t_desc = f"{float(t):.6g}" if not isinstance(t, torch.Tensor) or t.ndim == 0 else "per-sample times"
            self._calls.append((self.step_index, t_desc))
            # NaN and inf propagate through a sum: one reduction instead of an elementwise mask
            # (24x cheaper at 4096 x 64); finite values summing past the dtype's range also trip it.
            bad = ~torch.isfinite(out.sum())
            idx = torch.tensor(self.nfe, device=out.device)
            if self._first_bad is None:
                self._first_bad = torch.where(bad, idx, torch.full_like(idx, -1))
            else:
                self._first_bad = torch.where((self._first_bad < 0) & bad, idx, self._first_bad)
        self.nfe += 1
        return out

    def __call__(self, x: torch.Tensor, t: Time) -> Denoised:
        """``(x0_hat, eps_hat)`` at ``(x, t)``; one model call."""
        out = self.raw(x, t)
        return Denoised(*to_x0_eps(self.prediction, out, x, t, self.process))

    def predict(self, kind: str, x: torch.Tensor, t: Time) -> torch.Tensor:
        """The model's prediction converted to any ``kind``; one model call."""
        check_prediction(kind, "kind")
        out = self.raw(x, t)
        if kind == self.prediction:
            return out
        x0, eps = to_x0_eps(self.prediction, out, x, t, self.process)
        return from_x0_eps(kind, x0, eps, x, t, self.process)

    def raise_if_nonfinite(self) -> None:
        """Raise :class:`NonFiniteModelOutput` if any recorded call returned NaN/inf (one sync)."""
        if self._first_bad is None:
            return
        first = int(self._first_bad)
        if first < 0:
            return
        step, t_desc = self._calls[first]
        where = f"at step {step} " if step is not None else ""
        raise NonFiniteModelOutput(
            f"the model returned a non-finite value (NaN or inf) {where}(model call {first}, t = {t_desc}); "
            "check the model at that time, the prediction kind, and that the grid avoids times where the "
            "process has alpha = 0 or sigma = 0"
        )

    def __repr__(self) -> str:
        return f"Denoiser(prediction={self.prediction!r}, process={self.process!r}, nfe={self.nfe})"
