"""Checks of lab 1 against the mathematics (each returns a one-line summary, or raises AssertionError)."""

from __future__ import annotations

import math

import torch

import sdeflow
from sdeflow.noise import BrownianPath

F64 = torch.float64


class _GBM:
    """dX = mu X dt + s X dW as a torchsde-style object (f, g), exact solution X0 exp((mu - s^2/2)T + s W_T)."""

    noise_type = "diagonal"
    sde_type = "ito"

    def __init__(self, mu: float = 1.0, s: float = 0.8) -> None:
        self.mu, self.s = mu, s

    def f(self, t, x):
        return self.mu * x

    def g(self, t, x):
        return self.s * x


def _slope(hs, errs) -> float:
    x = torch.tensor(hs, dtype=F64).log()
    y = torch.tensor(errs, dtype=F64).log()
    return float(((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum())


def check_euler_maruyama(euler_maruyama) -> str:
    sde = _GBM()
    n, fine = 1000, 64
    ts_fine = [k / fine for k in range(fine + 1)]
    bm = BrownianPath(ts_fine, (n, 1), seed=7, dtype=F64)
    x0 = torch.ones(n, 1, dtype=F64)
    # 1) The same path through sdeflow's Euler-Maruyama: equal to round-off (1e-10), on 16 steps.
    ts = [k / 16 for k in range(17)]
    dws = torch.stack([bm(ts[k], ts[k + 1]) for k in range(16)])
    mine = euler_maruyama(sde.f, sde.g, x0, ts, dws)
    assert isinstance(mine, torch.Tensor) and mine.shape == x0.shape, f"expected a tensor of shape {tuple(x0.shape)}"
    ref = sdeflow.sdeint(sde, x0, [0.0, 1.0], bm, method="euler", dt=1 / 16)[-1]
    gap = float((mine - ref).abs().max())
    assert gap < 1e-10, f"differs from Euler-Maruyama on the same Brownian path by {gap:.3g} (expected < 1e-10)"
    # 2) Strong order 1/2 on GBM against the exact solution on the path: slope within 0.2.
    exact = x0 * torch.exp((sde.mu - sde.s**2 / 2) + sde.s * bm(0.0, 1.0))
    hs, errs = [], []
    for steps in (8, 16, 32, 64):
        grid = [k / steps for k in range(steps + 1)]
        dw = torch.stack([bm(grid[k], grid[k + 1]) for k in range(steps)])
        errs.append(float((euler_maruyama(sde.f, sde.g, x0, grid, dw) - exact).abs().mean()))
        hs.append(1 / steps)
    order = _slope(hs, errs)
    assert abs(order - 0.5) < 0.2, f"measured strong order {order:.2f}; Euler-Maruyama's is 1/2 (+-0.2)"
    return f"matches sdeint(method='euler') to {gap:.1e}; strong order {order:.2f} (theory 1/2)"


def check_fitted_order(fitted_order) -> str:
    hs = [0.5, 0.25, 0.125, 0.0625]
    # An exact power law e = 3 h^1.5 has slope 1.5 to round-off.
    p = float(fitted_order(hs, [3 * h**1.5 for h in hs]))
    assert abs(p - 1.5) < 1e-9, f"fitted_order of errors 3 h^1.5 gave {p}; expected 1.5"
    # Noisy errors: the least-squares slope of log e on log h (closed form of simple regression).
    errs = [0.9, 0.5, 0.21, 0.12]
    x = [math.log(h) for h in hs]
    y = [math.log(e) for e in errs]
    mx, my = sum(x) / 4, sum(y) / 4
    expected = sum((a - mx) * (b - my) for a, b in zip(x, y)) / sum((a - mx) ** 2 for a in x)
    p = float(fitted_order(hs, errs))
    assert abs(p - expected) < 1e-9, f"fitted_order gave {p:.6f} on noisy errors; least squares gives {expected:.6f}"
    return f"slope 1.5 of 3 h^1.5 recovered; least-squares slope {expected:.4f} on noisy errors"


def check_refine(refine) -> str:
    # Conditional moments: with z = 0 the mean; with z = 1 the mean plus one standard deviation.
    a = torch.tensor([0.2, -1.0], dtype=F64)
    b = torch.tensor([1.0, 0.5], dtype=F64)
    s, u, t = 0.5, 0.8, 1.5
    mean = ((t - u) * a + (u - s) * b) / (t - s)
    sd = math.sqrt((u - s) * (t - u) / (t - s))
    got0 = refine(a, b, s, u, t, torch.zeros(2, dtype=F64))
    assert isinstance(got0, torch.Tensor) and got0.shape == a.shape, f"expected a tensor of shape {tuple(a.shape)}"
    assert torch.allclose(got0, mean, atol=1e-12), f"with z = 0 expected the bridge mean {mean.tolist()}; got {got0.tolist()}"
    got1 = refine(a, b, s, u, t, torch.ones(2, dtype=F64))
    assert torch.allclose(got1 - got0, torch.full((2,), sd, dtype=F64), atol=1e-12), f"the bridge's standard deviation is {sd:.6f}"
    # A Brownian motion again: W_1 ~ N(0, 1), W_0.3 refined between W_0 = 0 and W_1. 200,000 draws: the
    # moments 0.3 have standard errors ~0.0015 (variance) and ~0.001 (covariance); 0.01 is > 6 of them.
    gen = torch.Generator().manual_seed(0)
    w1 = torch.randn(200_000, generator=gen, dtype=F64)
    w03 = refine(torch.zeros_like(w1), w1, 0.0, 0.3, 1.0, torch.randn(200_000, generator=gen, dtype=F64))
    var, cov = float(w03.var()), float((w03 * w1).mean())
    assert abs(var - 0.3) < 0.01 and abs(cov - 0.3) < 0.01, f"Var W(0.3) = {var:.4f}, Cov(W(0.3), W(1)) = {cov:.4f}; both must be 0.3"
    return f"bridge mean and sd exact; Var W(0.3) = {var:.4f}, Cov(W(0.3), W(1)) = {cov:.4f} (theory 0.3, 0.3)"
