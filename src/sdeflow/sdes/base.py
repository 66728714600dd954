"""General SDEs ``dx = drift(t, x) dt + diffusion(t, x) dW`` for any solver.

Shapes: the state ``x`` is ``(batch, *event_shape)``. What ``diffusion`` returns depends on the
declared noise type (torchsde's vocabulary):

=========  ==============================================  =========================
noise      ``diffusion(t, x)``                             Brownian motion ``W``
=========  ==============================================  =========================
diagonal   broadcastable to ``x`` (elementwise product)      shape of ``x``
additive   as diagonal, independent of ``x``                 shape of ``x``
scalar     shape of ``x`` (one column)                       ``(batch, 1)``
general    ``(batch, d, m)`` for a flat state ``(batch, d)``   ``(batch, m)``
=========  ==============================================  =========================
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch

__all__ = ["SDE", "NOISE_TYPES", "CALCULI"]

NOISE_TYPES = ("diagonal", "additive", "scalar", "general")
CALCULI = ("ito", "stratonovich")


class SDE(ABC):
    """An SDE ``dx = drift(t, x) dt + diffusion(t, x) dW`` with a declared noise type and calculus.

    ``t`` is a float (or 0-d/``(batch,)`` tensor). Subclasses implement :meth:`drift` and
    :meth:`diffusion`; :meth:`diffusion_times` applies the diffusion to a Brownian increment
    according to the noise type. An SDE with ``is_ode = True`` has no diffusion.
    """

    noise_type: ClassVar[str] = "diagonal"
    calculus: ClassVar[str] = "ito"

    @property
    def is_ode(self) -> bool:
        """True when the diffusion vanishes identically (a probability-flow ODE, say)."""
        return False

    @abstractmethod
    def drift(self, t, x: torch.Tensor) -> torch.Tensor:
        """The drift, shape of ``x``."""

    @abstractmethod
    def diffusion(self, t, x: torch.Tensor) -> torch.Tensor:
        """The diffusion; its shape depends on :attr:`noise_type` (module docstring)."""

    def brownian_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        """Shape of the Brownian motion driving a state of ``x``'s shape."""
        if self.noise_type in ("diagonal", "additive"):
            return tuple(x.shape)
        if self.noise_type == "scalar":
            return (x.shape[0], 1)
        # General noise: W has as many columns as the diffusion matrix (batch, d, m).
        return (x.shape[0], int(self.diffusion(0.0, x).shape[-1]))

    def diffusion_times(self, t, x: torch.Tensor, dw: torch.Tensor) -> torch.Tensor:
        """``diffusion(t, x) @ dW`` for the declared noise type; shape of ``x``."""
        g = self.diffusion(t, x)
        if self.noise_type in ("diagonal", "additive"):
            return g * dw
        if self.noise_type == "scalar":
            return g * dw.reshape((dw.shape[0],) + (1,) * (x.ndim - 1))
        return torch.einsum("bdm,bm->bd", g, dw)
