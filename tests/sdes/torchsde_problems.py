"""The SDEs of torchsde's test suite (its ``tests/problems.py``), rewritten as plain torchsde-style objects.

Same equations and noise layouts; written here without torchsde's base classes, in float64, and
with parameters drawn from an explicit generator (the suite never touches torch's global generator).

* ``ExDiagonal``, ``ExScalar``, ``ExAdditive``: examples 1-3 of Rackauckas & Nie 2017 ("Adaptive
  methods for SDEs via natural embeddings and rejection sampling with memory").
* ``NeuralDiagonal``, ``NeuralScalar``, ``NeuralAdditive``, ``NeuralGeneral``: small networks of
  ``(t, y)``.
* ``BasicSDE1`` ... ``BasicSDE4``: drifts and diffusions that may not depend on every parameter.
* ``CustomNamesSDE``, ``CustomNamesSDELogqp``: methods under other names (``names=``).
* ``FG``, ``FAndG``, ``GProd``, ``FAndGProd``, ``FAndGWithGProd``, ``FGAndFAndGWithGProd``: one
  general-noise SDE ``dy = -y dt + sigmoid(y) v^T dW`` defined through each of torchsde's method sets.
"""

from __future__ import annotations

import torch
from torch import nn

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(shape, gen) -> torch.Tensor:
    return torch.randn(shape, generator=gen, dtype=F64)


def _mlp(sizes, gen, last=None) -> nn.Sequential:
    """Linear layers with Softplus between (and ``last`` after), weights drawn from ``gen``."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = torch.nn.utils.skip_init(nn.Linear, a, b, dtype=F64)  # no draw from the global generator
        with torch.no_grad():
            bound = a**-0.5
            lin.weight.copy_((torch.rand(b, a, generator=gen, dtype=F64) * 2 - 1) * bound)
            lin.bias.copy_((torch.rand(b, generator=gen, dtype=F64) * 2 - 1) * bound)
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(nn.Softplus())
    if last is not None:
        layers.append(last)
    return nn.Sequential(*layers)


class ExDiagonal(nn.Module):
    """Geometric Brownian motion per coordinate: ``f = mu y`` (Ito), ``g = sigma y``."""

    noise_type = "diagonal"

    def __init__(self, d, sde_type="ito", seed=0, **unused):
        super().__init__()
        gen = _gen(seed)
        self.sde_type = sde_type
        sigma = torch.sigmoid(_randn(d, gen))
        self.mu = nn.Parameter(-sigma**2 - torch.sigmoid(_randn(d, gen)))
        self.sigma = nn.Parameter(sigma)

    def f(self, t, y):
        if self.sde_type == "ito":
            return self.mu * y
        return self.mu * y - 0.5 * self.sigma**2 * y

    def g(self, t, y):
        return self.sigma * y

    def h(self, t, y):
        return torch.zeros_like(y)


class ExScalar(nn.Module):
    """``f = -p^2 sin(y) cos(y)^3`` (Ito; 0 as Stratonovich), ``g = p cos(y)^2``, one Brownian motion."""

    noise_type = "scalar"

    def __init__(self, d, sde_type="ito", seed=0, **unused):
        super().__init__()
        self.sde_type = sde_type
        self.p = nn.Parameter(torch.sigmoid(_randn(d, _gen(seed))))

    def f(self, t, y):
        if self.sde_type == "ito":
            return -self.p**2 * torch.sin(y) * torch.cos(y) ** 3
        return torch.zeros_like(y)

    def g(self, t, y):
        return (self.p * torch.cos(y) ** 2).unsqueeze(-1)

    def h(self, t, y):
        return torch.zeros_like(y)


class ExAdditive(nn.Module):
    """``f = b / sqrt(1 + t) - y / (2 + 2t)``, ``g = a b / sqrt(1 + t)`` in each of ``m`` columns."""

    noise_type = "additive"

    def __init__(self, d, m, sde_type="ito", seed=0, **unused):
        super().__init__()
        gen = _gen(seed)
        self.sde_type, self.m = sde_type, m
        self.a = nn.Parameter(torch.sigmoid(_randn(d, gen)))
        self.b = nn.Parameter(torch.sigmoid(_randn(d, gen)))

    def f(self, t, y):
        return self.b / torch.sqrt(1.0 + t) - y / (2.0 + 2.0 * t)

    def g(self, t, y):
        value = self.a * self.b / torch.sqrt(1.0 + t)
        return value.reshape(1, -1, 1).repeat(y.shape[0], 1, self.m)

    def h(self, t, y):
        return torch.zeros_like(y)


class _Neural(nn.Module):
    def __init__(self, d, m, sde_type, seed, g_in, g_out):
        super().__init__()
        gen = _gen(seed)
        self.sde_type, self.d, self.m = sde_type, d, m
        self.f_net = _mlp((d + 1, 8, d), gen)
        self.g_net = _mlp((g_in, 8, g_out), gen, nn.Sigmoid())

    def _ty(self, t, y):
        return torch.cat((t.expand(y.shape[0], 1), y), dim=1)

    def f(self, t, y):
        return self.f_net(self._ty(t, y))

    def h(self, t, y):
        return torch.zeros_like(y)


class NeuralDiagonal(_Neural):
    noise_type = "diagonal"

    def __init__(self, d, sde_type="ito", seed=0, **unused):
        super().__init__(d, d, sde_type, seed, d + 1, d)

    def g(self, t, y):
        return 0.1 * self.g_net(self._ty(t, y))  # small noise, as torchsde's problems


class NeuralScalar(_Neural):
    noise_type = "scalar"

    def __init__(self, d, sde_type="ito", seed=0, **unused):
        super().__init__(d, 1, sde_type, seed, d + 1, d)

    def g(self, t, y):
        return 0.1 * self.g_net(self._ty(t, y)).unsqueeze(-1)


class NeuralAdditive(_Neural):
    noise_type = "additive"

    def __init__(self, d, m, sde_type="ito", seed=0, **unused):
        super().__init__(d, m, sde_type, seed, 1, d * m)

    def g(self, t, y):
        return self.g_net(t.expand(y.shape[0], 1)).reshape(y.shape[0], self.d, self.m)


class NeuralGeneral(_Neural):
    noise_type = "general"

    def __init__(self, d, m, sde_type="ito", seed=0, **unused):
        super().__init__(d, m, sde_type, seed, d + 1, d * m)

    def g(self, t, y):
        return self.g_net(self._ty(t, y)).reshape(y.shape[0], self.d, self.m)


class _Basic(nn.Module):
    """Diagonal Ito SDEs with a shared parameter, a frozen one and two unused ones."""

    noise_type = "diagonal"
    sde_type = "ito"
    grads = (True, False, False, True)  # requires_grad of shared, no_grad, unused1, unused2

    def __init__(self, d=10, seed=0):
        super().__init__()
        gen = _gen(seed)
        for name, grad in zip(("shared_param", "no_grad_param", "unused_param1", "unused_param2"), self.grads):
            setattr(self, name, nn.Parameter(_randn((1, d), gen), requires_grad=grad))

    def h(self, t, y):
        return torch.sigmoid(y)


class BasicSDE1(_Basic):
    def f(self, t, y):
        return self.shared_param * torch.sin(y) * 0.2 + torch.cos(y**2.0) * 0.1 + torch.cos(t) + self.no_grad_param * y

    def g(self, t, y):
        return (torch.sigmoid(self.shared_param * torch.cos(y) * 0.3 + torch.sin(t))
                + torch.sigmoid(self.no_grad_param * y) + 0.1)


class BasicSDE2(_Basic):
    def f(self, t, y):
        return self.shared_param * 0.2 + self.no_grad_param + torch.zeros_like(y)

    def g(self, t, y):
        return torch.sigmoid(self.shared_param * 0.3) + torch.sigmoid(self.no_grad_param) + torch.zeros_like(y) + 0.1


class BasicSDE3(BasicSDE2):
    grads = (False, False, True, False)


class BasicSDE4(_Basic):
    def f(self, t, y):
        return torch.zeros_like(y).fill_(0.1)

    def g(self, t, y):
        return torch.sigmoid(torch.zeros_like(y)) + 0.1


class CustomNamesSDE(nn.Module):
    noise_type, sde_type = "diagonal", "ito"

    def forward(self, t, y):
        return y * t

    def g(self, t, y):
        return torch.sigmoid(t * y)


class CustomNamesSDELogqp(CustomNamesSDE):
    def w(self, t, y):
        return y * t


class _Vector(nn.Module):
    noise_type = "general"

    def __init__(self, sde_type, vector):
        super().__init__()
        self.sde_type = sde_type
        self.register_buffer("vector", vector)

    def _g(self, y):
        return y.unsqueeze(-1).sigmoid() * self.vector

    def _gv(self, y, v):
        return self._g(y).bmm(v.unsqueeze(-1)).squeeze(-1)


class FG(_Vector):
    def f(self, t, y):
        return -y

    def g(self, t, y):
        return self._g(y)


class FAndG(_Vector):
    def f_and_g(self, t, y):
        return -y, self._g(y)


class GProd(_Vector):
    def f(self, t, y):
        return -y

    def g_prod(self, t, y, v):
        return self._gv(y, v)


class FAndGProd(_Vector):
    def f_and_g_prod(self, t, y, v):
        return -y, self._gv(y, v)


class FAndGWithGProd(_Vector):
    def f_and_g(self, t, y):
        return -y, self._g(y)

    def g_prod(self, t, y, v):
        return self._gv(y, v)


class FGAndFAndGWithGProd(FAndGWithGProd):
    def f(self, t, y):
        return -y
