"""The torchsde-compatibility features checked against mathematics: the log-ratio in closed form, the
log-ODE Levy-area term against its formula, reversible Heun's order, the global-generator default,
f_and_g's single evaluation per stage, and the argument errors."""

from __future__ import annotations

import math

import pytest
import torch

from sdeflow.noise.path import BrownianPath
from sdeflow.sdes import sdeint
from sdeflow.sdes.adapter import TorchsdeSDE
from sdeflow.solvers import get

from .problems import GBM

F64 = torch.float64


class LinearPair:
    """``f = a y``, prior ``h = b y``, ``g = s y`` (diagonal) or ``G = diag(s y) M`` (general, m = 2)."""

    sde_type = "ito"
    M = torch.tensor([[1.0, 0.5], [0.25, 1.0]], dtype=F64)

    def __init__(self, noise_type):
        self.noise_type = noise_type
        self.a = torch.tensor([0.3, -0.5], dtype=F64)
        self.b = torch.tensor([-0.2, 0.4], dtype=F64)
        self.s = torch.tensor([0.5, 1.5], dtype=F64)

    def f(self, t, y):
        return self.a * y

    def h(self, t, y):
        return self.b * y

    def g(self, t, y):
        if self.noise_type == "diagonal":
            return self.s * y
        return (self.s * y).unsqueeze(-1) * self.M


@pytest.mark.parametrize("noise", ["diagonal", "general"])
def test_logqp_log_ratio_is_the_girsanov_rate(noise):
    # Expected: G u = f - h has a solution u that does not depend on y: u = (a - b) / s (diagonal), and
    # u = M^{-1} (a - b) / s for G = diag(s y) M. So every log-ratio increment is exactly
    # |u|^2 / 2 * (t_{i+1} - t_i), whatever the path and the method (to rounding: 1e-12).
    sde = LinearPair(noise)
    y0 = torch.full((3, 2), 0.7, dtype=F64)
    ts = torch.tensor([0.0, 0.25, 0.75, 1.0], dtype=F64)
    ys, log_ratio = sdeint(sde, y0, ts, dt=0.05, logqp=True, seed=0, method="euler")
    u = (sde.a - sde.b) / sde.s
    if noise == "general":
        u = torch.linalg.solve(sde.M, u)
    expected = (0.5 * u.square().sum() * ts.diff()).unsqueeze(-1).expand(3, 3)
    torch.testing.assert_close(log_ratio, expected, rtol=1e-12, atol=1e-14)
    assert ys.shape == (4, 3, 2)


def test_log_ode_equals_midpoint_on_commutative_noise():
    # Expected: on diagonal noise the Levy-area term vanishes and log_ode is the stochastic midpoint
    # rule: the same floats, bit for bit, on the same path.
    sde = GBM(calculus="stratonovich")
    y0 = torch.full((5, 2), 0.5, dtype=F64)
    a = sdeint(sde, y0, [0.0, 1.0], method="log_ode", dt=0.1, seed=4)
    b = sdeint(sde, y0, [0.0, 1.0], method="midpoint_sde", dt=0.1, seed=4)
    assert torch.equal(a, b)


class _Linear2:
    """``dY = B1 Y o dW1 + B2 Y o dW2`` with non-commuting B1, B2 (general noise, Stratonovich)."""

    noise_type, sde_type = "general", "stratonovich"

    def __init__(self):
        self.b = torch.tensor([[[0.0, 1.0], [0.0, 0.0]], [[0.0, 0.0], [1.0, 0.0]]], dtype=F64)  # B1 B2 != B2 B1

    def f(self, t, y):
        return -0.5 * y

    def g(self, t, y):
        return torch.einsum("kij,bj->bik", self.b, y)


def test_log_ode_levy_area_term_matches_its_formula():
    # Expected: for G(y) = [B1 y, B2 y], d_j G_il G_jk = (B_l B_k y)_i, so one log-ODE step is
    # y1 = y + h f(y') + G(y') dW + sum_{k,l} B_l B_k y' A_kl with y' = y + h f(y) / 2 + G(y) dW / 2:
    # the forward-mode computation equals this closed form to 1e-14.
    sde = _Linear2()
    y0 = torch.tensor([[1.0, -0.5], [0.3, 0.8]], dtype=F64)
    dw = torch.tensor([[0.3, -0.2], [-0.1, 0.4]], dtype=F64)
    a12 = torch.tensor([0.05, -0.07], dtype=F64)
    area = torch.zeros(2, 2, 2, dtype=F64)
    area[:, 0, 1], area[:, 1, 0] = a12, -a12

    def noise(ta, tb, return_A=False):
        return (dw, area) if return_A else dw

    problem = TorchsdeSDE(sde, y0, 0.0)
    h = 0.1
    y1 = get("log_ode").step(problem, 0.0, h, y0, None, noise).x
    t = torch.tensor(0.0, dtype=F64)
    ym = y0 + 0.5 * h * sde.f(t, y0) + 0.5 * torch.einsum("bik,bk->bi", sde.g(t, y0), dw)
    expected = y0 + h * sde.f(t, ym) + torch.einsum("bik,bk->bi", sde.g(t, ym), dw)
    for k in range(2):
        for l in range(2):
            expected = expected + torch.einsum("ij,jm,bm->bi", sde.b[l], sde.b[k], ym) * area[:, k, l:l + 1]
    torch.testing.assert_close(y1, expected, rtol=1e-14, atol=1e-14)


class _CubicAdditive:
    """``dY = -(Y + Y^3) dt + 0.5 dW``: additive noise, a nonlinear drift (no closed form)."""

    noise_type, sde_type = "additive", "ito"

    def f(self, t, y):
        return -(y + y**3)

    def g(self, t, y):
        return torch.full((y.shape[0], y.shape[1], 1), 0.5, dtype=y.dtype)


@pytest.mark.slow
@pytest.mark.parametrize("noise,order", [("diagonal", 0.5), ("additive", 1.0)])
def test_reversible_heun_strong_order(noise, order):
    # Expected: the strong error E|Y_N - X_T| decays at least at the declared order (0.5 in general,
    # 1.0 on additive noise: Kidger et al. 2021, Theorem 3.3): the fitted log-log slope over
    # dt = 2^-4 .. 2^-7 is above order - 0.2. References: GBM's closed form (Stratonovich, diagonal);
    # SRA3 (strong order 1.5) at dt = 2^-10 on the same path for the nonlinear additive SDE.
    n = 400
    fine = torch.linspace(0, 1, 2**10 + 1, dtype=F64)
    x0 = torch.full((n, 1), 0.8, dtype=F64)
    if noise == "diagonal":
        sde = GBM(mu=0.3, sigma=0.6, calculus="stratonovich")
        bm = BrownianPath(fine, (n, 1), seed=11, dtype=F64)
        exact = sde.exact(x0, 1.0, bm(0.0, 1.0))
    else:
        sde = _CubicAdditive()
        bm = BrownianPath(fine, (n, 1), seed=11, dtype=F64)
        exact = sdeint(sde, x0, [0.0, 1.0], bm, method="sra3", dt=2.0**-10)[-1]
    errs, dts = [], [2.0**-k for k in range(4, 8)]
    for dt in dts:
        y = sdeint(sde, x0, [0.0, 1.0], bm, method="reversible_heun", dt=dt)[-1]
        errs.append(float((y - exact).abs().mean()))
    slope = (math.log(errs[0]) - math.log(errs[-1])) / (math.log(dts[0]) - math.log(dts[-1]))
    assert slope > order - 0.2, (errs, slope)


def test_global_generator_default_is_reproducible():
    # Expected: with no bm, seed or generator, the path's seed comes from torch's global generator
    # (torchsde's default): the same torch.manual_seed gives the same solution, another seed another.
    sde = GBM()
    y0 = torch.full((4, 2), 0.5, dtype=F64)
    with torch.random.fork_rng(devices=[]):
        outs = []
        for s in (3, 3, 4):
            torch.manual_seed(s)
            outs.append(sdeint(sde, y0, [0.0, 1.0], method="milstein", dt=0.1))
        torch.manual_seed(3)
        chunked = [sdeint(sde, y0, [0.0, 1.0], method="milstein", dt=0.1, chunk_size=2) for _ in range(2)]
    assert torch.equal(outs[0], outs[1]) and not torch.equal(outs[0], outs[2])
    assert not torch.equal(chunked[0], chunked[1])  # two draws from the generator: two paths


def test_f_and_g_is_called_once_per_stage():
    # Expected: an SDE defined by f_and_g only is evaluated once per (t, y) pair a method uses: Euler
    # calls it once a step (10 steps: 10 calls, plus the shape probe at t0 and the stiffness probe).
    calls = []

    class OnlyFG:
        noise_type, sde_type = "diagonal", "ito"

        def f_and_g(self, t, y):
            calls.append(float(t))
            return -y, 0.1 * y

    sdeint(OnlyFG(), torch.ones(2, 2, dtype=F64), [0.0, 1.0], method="euler", dt=0.1, seed=0)
    assert len(calls) <= 12, calls


def test_torchsde_argument_errors():
    # Expected: each bad torchsde-style argument is a ValueError/TypeError naming it.
    sde = LinearPair("diagonal")
    y0 = torch.ones(2, 2, dtype=F64)
    with pytest.raises(ValueError, match="unknown keys \\['drfit'\\]"):
        sdeint(sde, y0, [0.0, 1.0], names={"drfit": "h"}, seed=0)
    with pytest.raises(ValueError, match="has no method 'nothere'"):
        sdeint(sde, y0, [0.0, 1.0], names={"prior_drift": "nothere"}, seed=0)
    with pytest.raises(ValueError, match="unknown options \\['step'\\]"):
        sdeint(sde, y0, [0.0, 1.0], options={"step": 1}, seed=0)
    with pytest.raises(ValueError, match="logqp=True needs the drift, diffusion and prior drift"):
        sdeint(type("NoH", (), {"noise_type": "diagonal", "sde_type": "ito", "f": sde.f, "g": sde.g})(), y0,
               [0.0, 1.0], logqp=True, seed=0)
    with pytest.raises(ValueError, match="extra_solver_state of method 'reversible_heun' must hold 3 tensors"):
        strat = LinearPair("diagonal")
        strat.sde_type = "stratonovich"
        sdeint(strat, y0, [0.0, 1.0], method="reversible_heun", extra_solver_state=(y0,), seed=0)
    with pytest.raises(ValueError, match="adjoint_method of sdeint_adjoint"):
        sdeint(sde, y0, [0.0, 1.0], method="adjoint_reversible_heun", seed=0)

    class OnlyProd:
        noise_type, sde_type = "general", "ito"

        def f(self, t, y):
            return -y

        def g_prod(self, t, y, v):
            return v.sum(-1, keepdim=True) * y

    with pytest.raises(ValueError, match="cannot infer the number of Brownian motions"):
        sdeint(OnlyProd(), y0, [0.0, 1.0], seed=0)
    bm = BrownianPath(torch.linspace(0, 1, 11, dtype=F64), (2, 3), seed=0, dtype=F64)
    assert sdeint(OnlyProd(), y0, [0.0, 1.0], bm, dt=0.1, method="euler").shape == (2, 2, 2)
