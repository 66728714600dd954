"""A 1-D Gaussian data distribution N(mu, s^2): exact eps model and exact probability-flow ODE flow.

Shared by the solver tests. The noised marginal is N(alpha mu, alpha^2 s^2 + sigma^2), so the
probability-flow ODE is linear and maps x_t to
x_u = alpha_u mu + sqrt(alpha_u^2 s^2 + sigma_u^2) / sqrt(alpha_t^2 s^2 + sigma_t^2) (x_t - alpha_t mu).
"""

import torch

from sdeflow._utils import expand_to

MU, STD = 0.7, 0.3


def eps_model(process, mu: float = MU, std: float = STD):
    def model(x, t):
        a, s = expand_to(process.alpha(t), x), expand_to(process.sigma(t), x)
        return s * (x - a * mu) / (a * a * std**2 + s * s)

    model.prediction = "eps"
    return model


def exact_flow(process, x_t, t: float, u: float, mu: float = MU, std: float = STD):
    def scale(v):
        return torch.sqrt(process.alpha(v) ** 2 * std**2 + process.sigma(v) ** 2)

    return float(process.alpha(u)) * mu + float(scale(u) / scale(t)) * (x_t - float(process.alpha(t)) * mu)
