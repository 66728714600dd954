"""EDM preconditioning (Karras et al. 2022, Table 1 and section 5) as a model wrapper."""

from __future__ import annotations

from typing import Callable

import torch

from .._utils import as_time, expand_to

__all__ = ["EDMPrecond"]


class EDMPrecond(torch.nn.Module):
    """Wrap a raw network ``F(x_in, c_noise)`` into an ``x0`` model with EDM's preconditioning.

    For any process, work in the scaled variable ``x/alpha = x0 + s eps`` with noise level
    ``s = sigma/alpha``; then ``D(x; t) = c_skip x/alpha + c_out F(c_in x/alpha, c_noise)`` with
    ``c_skip = sd^2/(s^2 + sd^2)``, ``c_out = s sd / sqrt(s^2 + sd^2)``, ``c_in = 1/sqrt(s^2 + sd^2)``,
    ``c_noise = log(s)/4`` and ``sd = sigma_data``. For the EDM process (``alpha = 1``) this is
    exactly Karras et al.'s ``D_theta``. The wrapper's ``prediction`` is ``"x0"``.

    Args:
        net: a module or callable ``(x_in, c_noise) -> F`` with ``x_in`` shaped like the state and
            ``c_noise`` of shape ``(batch,)``.
        process: the process the model serves.
        sigma_data: the data standard deviation (0.5 in EDM).
    """

    prediction = "x0"

    def __init__(self, net: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], process, sigma_data: float = 0.5):
        super().__init__()
        if sigma_data <= 0:
            raise ValueError(f"sigma_data must be > 0; got {sigma_data}")
        self.net = net
        self.process = process
        self.sigma_data = float(sigma_data)

    def coefficients(self, t: torch.Tensor) -> dict[str, torch.Tensor]:
        """``c_skip, c_out, c_in, c_noise`` and ``1/alpha`` at ``t`` (float64, shape of ``t``)."""
        t = as_time(t)
        s = self.process.noise_level(t)
        sd2 = self.sigma_data**2
        norm = s * s + sd2
        return {
            "c_skip": sd2 / norm,
            "c_out": s * self.sigma_data / torch.sqrt(norm),
            "c_in": 1.0 / torch.sqrt(norm),
            "c_noise": 0.25 * torch.log(s),
            "inv_alpha": 1.0 / self.process.alpha(t),
        }

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        c = self.coefficients(t)
        xs = expand_to(c["inv_alpha"], x) * x
        out = self.net(expand_to(c["c_in"], x) * xs, c["c_noise"].to(x.dtype).expand(x.shape[0]))
        return expand_to(c["c_skip"], x) * xs + expand_to(c["c_out"], x) * out.to(x.dtype)
