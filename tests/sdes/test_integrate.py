"""sdeint/odeint: the torchsde drop-in, method checks, adaptive steps, ODE orders, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from sdeflow.noise.levy import LevyBrownianTree
from sdeflow.noise.path import BrownianPath
from sdeflow.sdes import SDE
from sdeflow.sdes.integrate import odeint, sdeint, step_grid

from .problems import GBM, CommutativeGBM

F64 = torch.float64


class TorchsdeGBM(torch.nn.Module):
    """A torchsde-style SDE (f, g, noise_type, sde_type) with every noise layout of torchsde."""

    def __init__(self, noise_type="diagonal", sde_type="ito", mu=0.5, sigma=0.8):
        super().__init__()
        self.noise_type, self.sde_type, self.mu, self.sigma = noise_type, sde_type, mu, sigma

    def f(self, t, y):
        assert isinstance(t, torch.Tensor) and t.ndim == 0  # torchsde passes 0-d tensor times
        return self.mu * y

    def g(self, t, y):
        if self.noise_type == "diagonal":
            return self.sigma * y
        if self.noise_type == "scalar":
            return (self.sigma * y).unsqueeze(-1)
        if self.noise_type == "additive":
            return torch.full((y.shape[0], y.shape[1], 3), 0.1, dtype=y.dtype)
        return torch.stack((self.sigma * y, 0.5 * self.sigma * y), dim=-1)  # general, commutative columns


# ---- the torchsde drop-in ------------------------------------------------------------------------
@pytest.mark.parametrize("noise", ["diagonal", "scalar", "additive", "general"])
def test_torchsde_style_object_matches_torchsde(noise):
    # Expected: on the same Brownian path (torchsde's BrownianInterval) and the same grid,
    # sdeflow.sdeint(method="euler") equals torchsde.sdeint(method="euler") to 1e-6, for every noise
    # type: torchsde accumulates t += dt, so it queries its Brownian bridge at times a few ulps
    # away from k dt, which moves W by ~sqrt(1e-16) = 1e-8 (measured differences 5e-8).
    torchsde = pytest.importorskip("torchsde")
    sde = TorchsdeGBM(noise)
    y0 = torch.full((5, 2), 0.7, dtype=F64)
    m = {"diagonal": 2, "scalar": 1, "additive": 3, "general": 2}[noise]
    bm = torchsde.BrownianInterval(0.0, 1.0, size=(5, m), dtype=F64, entropy=7)
    ts = torch.tensor([0.0, 0.5, 1.0], dtype=F64)
    theirs = torchsde.sdeint(sde, y0, ts, bm=bm, method="euler", dt=0.05)
    ours = sdeint(sde, y0, ts, bm, method="euler", dt=0.05)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("method", ["srk", "milstein", "heun", "euler_heun", "midpoint"])
def test_torchsde_method_names(method):
    # Expected: torchsde's method names run the matching sdeflow methods and converge to the closed
    # form (GBM, Ito for srk/milstein and Stratonovich for the others): at dt = 2^-8 the error on a
    # shared path is below 0.01 (strong errors measured ~1e-3).
    calc = "ito" if method in ("srk", "milstein") else "stratonovich"
    sde = TorchsdeGBM("diagonal", calc)
    y0 = torch.full((200, 1), 0.5, dtype=F64)
    bm = BrownianPath(torch.linspace(0, 1, 257, dtype=F64), (200, 1), seed=4, dtype=F64)
    y = sdeint(sde, y0, [0.0, 1.0], bm, method=method, dt=2.0**-8)[-1]
    exact = GBM(calculus=calc).exact(y0, 1.0, bm(0.0, 1.0))
    assert float((y - exact).abs().mean()) < 0.01


def test_output_shape_and_grid():
    # Expected: one output per time of ts, the first being y0; the step grid is t0 + k dt merged
    # with the output times, no step shorter than dt/1000 and none longer than dt.
    y0 = torch.ones(3, 2, 4, dtype=F64)  # any event shape for sdeflow SDEs
    out = sdeint(GBM(), y0, [0.0, 0.3, 0.35, 1.0], method="milstein", dt=0.1, seed=0)
    assert out.shape == (4, 3, 2, 4) and torch.equal(out[0], y0)
    grid, pos = step_grid([0.0, 0.3, 0.35, 1.0], 0.1)
    steps = torch.tensor(grid, dtype=F64).diff()
    assert [grid[p] for p in pos] == [0.0, 0.3, 0.35, 1.0]
    assert float(steps.min()) > 1e-4 and float(steps.max()) <= 0.1 + 1e-12
    # Float32 pitfall avoided: the grid is t0 + k dt (never t += dt), so 10^5 steps of 0.01 from
    # t0 = 1000 end exactly on the grid: every point within 1 ulp-scale (1e-10) of t0 + k dt.
    grid, _ = step_grid([1000.0, 2000.0], 0.01)
    want = 1000.0 + 0.01 * torch.arange(len(grid), dtype=F64)
    assert len(grid) == 100_001 and float((torch.tensor(grid, dtype=F64) - want).abs().max()) < 1e-10


def test_seed_reproducibility():
    # Expected: the same seed gives the same solution; another seed another one.
    y0 = torch.ones(4, 1)
    a = sdeint(GBM(), y0, [0.0, 1.0], method="euler", dt=0.01, seed=3)
    b = sdeint(GBM(), y0, [0.0, 1.0], method="euler", dt=0.01, seed=3)
    c = sdeint(GBM(), y0, [0.0, 1.0], method="euler", dt=0.01, seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)


# ---- refusing what would be wrong ----------------------------------------------------------------
class NonCommutative(SDE):
    noise_type = "general"
    calculus = "ito"

    def brownian_shape(self, x):
        return (x.shape[0], 2)

    def drift(self, t, x):
        return torch.zeros_like(x)

    def diffusion(self, t, x):
        return torch.stack((torch.stack((x[:, 1], torch.ones_like(x[:, 0])), -1), torch.zeros(x.shape[0], 2)), 1)


@pytest.mark.parametrize(
    "sde,method,message",
    [
        (NonCommutative(), "milstein", r"general noise.*euler_heun|euler_maruyama.*commutative = True"),
        (GBM(calculus="stratonovich"), "euler", r"stratonovich calculus.*milstein"),
        (GBM(), "sra1", r"diagonal noise.*sri2"),
        (GBM(), "heun", r"stratonovich.*euler_maruyama|ito calculus"),
        (NonCommutative(), "srk", r"general noise"),
    ],
)
def test_wrong_method_fails_with_the_methods_that_serve(sde, method, message):
    # Expected: a ValueError naming the problem and the methods that would serve, never a result.
    with pytest.raises(ValueError, match=message):
        sdeint(sde, torch.ones(2, 2), [0.0, 1.0], method=method, seed=0)


def test_input_errors():
    # Expected: each bad argument is a ValueError/TypeError naming it and the fix.
    y0 = torch.ones(2, 1)
    with pytest.raises(ValueError, match="strictly increasing"):
        sdeint(GBM(), y0, [1.0, 0.0], method="euler", seed=0)
    with pytest.raises(ValueError, match="dt must be a finite number > 0"):
        sdeint(GBM(), y0, [0.0, 1.0], method="euler", dt=0.0, seed=0)
    with pytest.raises(ValueError, match="not a general SDE method"):
        sdeint(GBM(), y0, [0.0, 1.0], method="ddim", seed=0)
    with pytest.raises(TypeError, match="torchsde-style object with methods f"):
        sdeint(object(), y0, [0.0, 1.0], seed=0)
    bad = TorchsdeGBM("diagonal", "ito")
    bad.noise_type = "diag"
    with pytest.raises(ValueError, match="noise_type must be one of"):
        sdeint(bad, y0, [0.0, 1.0], seed=0)
    with pytest.raises(ValueError, match="error_norm"):
        sdeint(GBM(), y0, [0.0, 1.0], method="milstein", seed=0, error_norm="max")


# ---- adaptive steps ------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["sri2", "milstein", "heun_sde"])
def test_adaptive_error_follows_tolerance(method):
    # Expected: on GBM (Ito for sri2/milstein, Stratonovich for heun_sde) the error against the
    # closed form on the Levy tree's path falls as the tolerance falls (a factor >= 3 over two
    # decades of rtol = atol), with more steps taken; each sample's path is one Brownian tree.
    calc = "stratonovich" if method == "heun_sde" else "ito"
    sde = GBM(calculus=calc)
    y0 = torch.full((64, 1), 0.5, dtype=F64)
    errors = []
    # Order-1 estimates scale as h, order 1.5 as h^1.5: the order-1 methods get looser tolerances.
    for tol in (1e-2, 1e-3, 1e-4) if method == "sri2" else (1e-1, 1e-2, 1e-3):
        bm = LevyBrownianTree(0.0, 1.0, (64, 1), seeds=2, dtype=F64)
        y = sdeint(sde, y0, [0.0, 1.0], bm, method=method, adaptive=True, rtol=tol, atol=tol, dt=0.1, dt_min=1e-6)
        errors.append(float((y[-1] - sde.exact(y0, 1.0, bm(0.0, 1.0))).abs().mean()))
    assert errors[2] * 3 < errors[0], errors


def test_adaptive_per_sample_norm_is_stricter():
    # Expected: error_norm="sample" (every sample within tolerance) gives an error no larger than
    # "batch" (RMS over the batch) at the same tolerance, on the same path.
    y0 = torch.full((32, 1), 0.5, dtype=F64)
    out = {}
    for norm in ("batch", "sample"):
        bm = LevyBrownianTree(0.0, 1.0, (32, 1), seeds=1, dtype=F64)
        y = sdeint(GBM(), y0, [0.0, 1.0], bm, method="sri2", adaptive=True, rtol=1e-3, atol=1e-3, error_norm=norm)
        out[norm] = float((y[-1] - GBM().exact(y0, 1.0, bm(0.0, 1.0))).abs().max())
    assert out["sample"] <= out["batch"] * 1.01, out


# ---- odeint --------------------------------------------------------------------------------------
def test_odeint_dopri5_accuracy():
    # Expected: y' = -2 t y, y(0) = 1 has y = exp(-t^2); dopri5 at rtol 1e-8, atol 1e-10 is within
    # 1e-7 at every output time; at rtol 1e-4 the error is larger but below 1e-3.
    t = torch.linspace(0.0, 2.0, 5, dtype=F64)
    exact = torch.exp(-t * t).unsqueeze(-1)
    y = odeint(lambda s, y: -2 * s * y, torch.ones(1, dtype=F64), t, rtol=1e-8, atol=1e-10)
    assert float((y - exact).abs().max()) < 1e-7
    y = odeint(lambda s, y: -2 * s * y, torch.ones(1, dtype=F64), t, rtol=1e-4, atol=1e-6)
    assert float((y - exact).abs().max()) < 1e-3


@pytest.mark.parametrize("method,order", [("euler", 1), ("midpoint", 2), ("heun", 2), ("rk4", 4), ("dopri5", 5)])
def test_odeint_fixed_step_orders(method, order):
    # Expected: on y' = y cos t (y = exp(sin t)) the error at t = 2 with step h falls as h^order:
    # fitted slope within 0.2 of the order (dopri5 run at fixed steps via step_size).
    from ..solvers.test_sde_strong_order import fitted_slope

    hs = [0.2, 0.1, 0.05, 0.025]
    errs = []
    for h in hs:
        y = odeint(lambda s, y: y * torch.cos(s), torch.ones(1, dtype=F64), [0.0, 2.0], method=method,
                   options={"step_size": h}) if method != "dopri5" else _fixed_dopri5(h)
        errs.append(float((y[-1] - math.exp(math.sin(2.0))).abs()))
    assert abs(fitted_slope(hs, errs) - order) < 0.2, errs


def _fixed_dopri5(h):
    from sdeflow.sdes.adapter import ODEFunction
    from sdeflow.sdes.integrate import iterate
    from sdeflow.solvers import get

    f = ODEFunction(lambda s, y: y * torch.cos(s), torch.ones(1, dtype=F64))
    grid, pos = step_grid([0.0, 2.0], h)
    return list(iterate(f, get("dopri5"), torch.ones(1, dtype=F64), [0.0, 2.0], None, dt=None, grid=grid, positions=pos))


# ---- gradients -----------------------------------------------------------------------------------
class ParamGBM(SDE):
    noise_type = "diagonal"
    calculus = "ito"

    def __init__(self, mu, sigma):
        self.mu, self.sigma = mu, sigma

    def drift(self, t, x):
        return self.mu * x

    def diffusion(self, t, x):
        return self.sigma * x


@pytest.mark.parametrize("method", ["euler", "milstein", "sri2"])
def test_pathwise_gradients_match_finite_differences_and_closed_form(method):
    # Expected: (1) autograd through the whole solve equals central finite differences of the same
    # computation (same Brownian path, float64, step 1e-6) to 1e-6 relative; (2) the Monte Carlo
    # mean of the pathwise gradient of E X_T = x0 exp(mu T) matches d/dmu = T x0 exp(mu T) and
    # d/dx0 = exp(mu T) within 4 standard errors, and d/dsigma E X_T = 0 too.
    n = 4000
    mu = torch.tensor(0.3, dtype=F64, requires_grad=True)
    sigma = torch.tensor(0.4, dtype=F64, requires_grad=True)
    x0 = torch.full((n, 1), 0.8, dtype=F64, requires_grad=True)
    bm = BrownianPath(torch.linspace(0, 1, 65, dtype=F64), (n, 1), seed=5, dtype=F64)

    def solve(m, s, x):
        return sdeint(ParamGBM(m, s), x, [0.0, 1.0], bm, method=method, dt=1 / 64)[-1]

    y = solve(mu, sigma, x0)
    gmu, gsig, gx = torch.autograd.grad(y.sum(), (mu, sigma, x0))
    with torch.no_grad():
        eps = 1e-6
        fd_mu = (solve(mu + eps, sigma, x0).sum() - solve(mu - eps, sigma, x0).sum()) / (2 * eps)
        fd_sig = (solve(mu, sigma + eps, x0).sum() - solve(mu, sigma - eps, x0).sum()) / (2 * eps)
    assert abs(float(gmu / fd_mu) - 1) < 1e-6 and abs(float(gsig / fd_sig) - 1) < 1e-6
    # Per-path derivatives for the Monte Carlo comparison (x0 is per path: its gradient is per path).
    mu_e = math.exp(0.3)
    d_x0 = gx.flatten()
    assert abs(float(d_x0.mean()) - mu_e) < 4 * float(d_x0.std()) / math.sqrt(n)
    d_mu = (y.detach() * 1.0).flatten()  # dX_T/dmu = T X_T for GBM's exact path; the scheme's mean is close
    assert abs(float(gmu) / n - 0.8 * mu_e) < 4 * float(d_mu.std()) / math.sqrt(n) + 0.01
    assert abs(float(gsig) / n) < 4 * float(y.detach().std()) / math.sqrt(n) * 2 + 0.01
