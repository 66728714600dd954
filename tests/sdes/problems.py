"""SDEs with closed-form solutions as functions of W_T, for the convergence tests (float64)."""

from __future__ import annotations

import math

import torch

from sdeflow.sdes import SDE


class GBM(SDE):
    """dX = mu X dt + sigma X dW: Ito X_T = x0 exp((mu - sigma^2/2) T + sigma W_T), Stratonovich drops -sigma^2/2."""

    noise_type = "diagonal"

    def __init__(self, mu=0.5, sigma=0.8, calculus="ito", noise_type="diagonal"):
        self.mu, self.sigma, self.calculus, self.noise_type = mu, sigma, calculus, noise_type

    def drift(self, t, x):
        return self.mu * x

    def diffusion(self, t, x):
        return self.sigma * x

    def exact(self, x0, t, w):
        c = self.mu - (0.5 * self.sigma**2 if self.calculus == "ito" else 0.0)
        return x0 * torch.exp(c * t + self.sigma * w)


class Logistic(SDE):
    """Kloeden & Platen (1992) eq. 4.4.46: dX = -(a + b^2 X)(1 - X^2) dt + b (1 - X^2) dW (Ito), diagonal.

    X_t = ((1 + x0) Z + x0 - 1) / ((1 + x0) Z + 1 - x0), Z = exp(-2 a t + 2 b W_t).
    """

    noise_type = "diagonal"
    calculus = "ito"

    def __init__(self, a=1.0, b=0.8):
        self.a, self.b = a, b

    def drift(self, t, x):
        return -(self.a + self.b**2 * x) * (1 - x * x)

    def diffusion(self, t, x):
        return self.b * (1 - x * x)

    def exact(self, x0, t, w):
        z = torch.exp(-2 * self.a * t + 2 * self.b * w)
        return ((1 + x0) * z + x0 - 1) / ((1 + x0) * z + 1 - x0)


class AdditiveDecay(SDE):
    """dX = -X/(1 + t) dt + 1/(1 + t) dW (additive, time-dependent): X_t = (x0 + W_t)/(1 + t)."""

    noise_type = "additive"
    calculus = "ito"

    def drift(self, t, x):
        return -x / (1.0 + t)

    def diffusion(self, t, x):
        return torch.full_like(x, 1.0 / (1.0 + t))

    def exact(self, x0, t, w):
        return (x0 + w) / (1.0 + t)


class Arctan(SDE):
    """dX = -sin(X) cos^3(X) dt + cos^2(X) dW (Ito, diagonal): X_t = arctan(W_t + tan x0) (Kloeden & Platen 4.4)."""

    noise_type = "diagonal"
    calculus = "ito"

    def drift(self, t, x):
        return -torch.sin(x) * torch.cos(x) ** 3

    def diffusion(self, t, x):
        return torch.cos(x) ** 2

    def exact(self, x0, t, w):
        return torch.atan(w + torch.tan(x0))


class CommutativeGBM(SDE):
    """dX = mu X dt + sum_j sigma_j X dW_j, d = 2, m = 2 (general, commutative noise)."""

    noise_type = "general"
    commutative = True

    def __init__(self, mu=0.3, sigmas=(0.5, 0.4), calculus="ito"):
        self.mu, self.sigmas, self.calculus = mu, sigmas, calculus

    def brownian_shape(self, x):
        return (x.shape[0], len(self.sigmas))

    def drift(self, t, x):
        return self.mu * x

    def diffusion(self, t, x):
        s = torch.tensor(self.sigmas, dtype=x.dtype)
        return x.unsqueeze(-1) * s

    def exact(self, x0, t, w):
        s = torch.tensor(self.sigmas, dtype=x0.dtype)
        c = self.mu - (0.5 * float((s * s).sum()) if self.calculus == "ito" else 0.0)
        return x0 * torch.exp(c * t + (w * s).sum(-1, keepdim=True))


class ScalarGBM(GBM):
    """Two components driven by one Brownian motion (scalar noise): X_T = x0 exp((mu - sigma^2/2) T + sigma W_T)."""

    def __init__(self, mu=0.5, sigma=0.8, calculus="ito"):
        super().__init__(mu, sigma, calculus, "scalar")


class SineWell(SDE):
    """dX = (1.5 sin X - X/2) dt + dW: additive noise with a nonlinear drift (no closed form in W_T)."""

    noise_type = "additive"
    calculus = "ito"

    def drift(self, t, x):
        return 1.5 * torch.sin(x) - 0.5 * x

    def diffusion(self, t, x):
        return torch.ones_like(x)
