"""Checks of lab 5 against the mathematics."""

from __future__ import annotations

import math

import torch

import sdeflow
from sdeflow import processes, targets
from sdeflow.grids import Karras

F64 = torch.float64
GRID = Karras(to_zero=False, t_min=0.05)


def _setup():
    edm = processes.EDM()
    gauss = targets.gaussian([0.3, -0.2], [0.5, 0.2])
    x = edm.prior_sample((8, 2), seeds=0, dtype=F64)
    return edm, gauss, x


def _run(step_loop, steps, solver):
    """(learner's result, sdeflow's result, exact flow) on the Karras grid with ``steps`` steps."""
    edm, gauss, x = _setup()
    ref = sdeflow.sample(gauss.model(edm, "x0"), edm, x, prediction="x0", solver=solver, steps=steps, grid=GRID)
    ts = [float(t) for t in ref.ts]
    mine = step_loop(edm, gauss, x, ts)
    assert isinstance(mine, torch.Tensor) and mine.shape == x.shape, f"expected shape {tuple(x.shape)}"
    return mine, ref.samples, gauss.pf_ode_solution(x, ts[0], ts[-1], edm)


def _order(step_loop, solver, expected):
    errs = []
    for steps in (64, 128):
        mine, ref, exact = _run(step_loop, steps, solver)
        gap = float((mine - ref).abs().max())
        assert gap < 1e-10, f"differs from sdeflow's {solver} on the same {steps}-step grid by {gap:.3g} (expected < 1e-10)"
        errs.append(float((mine - exact).pow(2).mean().sqrt()))
    order = math.log(errs[0] / errs[1]) / math.log(2)
    assert abs(order - expected) < 0.2, f"measured order {order:.2f} against the exact flow; expected {expected}"
    return gap, order


def check_ddim_step(ddim_step) -> str:
    def loop(edm, gauss, x, ts):
        for t0, t1 in zip(ts[:-1], ts[1:]):
            x0_hat = gauss.x0(x, t0, edm)
            x = ddim_step(x, x0_hat, float(edm.alpha(t0)), float(edm.sigma(t0)), float(edm.alpha(t1)), float(edm.sigma(t1)))
        return x

    gap, order = _order(loop, "ddim", 1.0)
    return f"equals sdeflow's ddim to {gap:.1e}; order {order:.2f} against the exact flow (theory 1)"


def check_heun_step(heun_step) -> str:
    def loop(edm, gauss, x, ts):
        def u(t, y):
            return (y - gauss.x0(y, t, edm)) / t      # EDM: dx/dt = (x - x0_hat)/t

        for t0, t1 in zip(ts[:-1], ts[1:]):
            x = heun_step(u, t0, t1, x)
        return x

    gap, order = _order(loop, "heun", 2.0)
    return f"equals sdeflow's heun to {gap:.1e}; order {order:.2f} against the exact flow (theory 2)"


def check_karras_levels(karras_levels) -> str:
    edm = processes.EDM()
    worst = 0.0
    for steps, rho, t_min in ((4, 7.0, 0.05), (18, 7.0, 0.002), (10, 3.0, 0.1)):
        got = karras_levels(80.0, t_min, steps, rho)
        assert isinstance(got, torch.Tensor) and got.shape == (steps + 1,), f"expected {steps + 1} levels"
        ref = Karras(rho=rho, to_zero=False, t_min=t_min)(edm, steps)   # on EDM the time is the noise level
        gap = float((got.to(F64) - ref).abs().max() / ref.max())
        assert gap < 1e-12, f"steps = {steps}, rho = {rho}: relative gap {gap:.3g} to sdeflow.grids.Karras"
        worst = max(worst, gap)
    # rho = 1 is the uniform grid.
    flat = karras_levels(80.0, 0.05, 4, 1.0)
    assert torch.allclose(flat.to(F64), torch.linspace(80.0, 0.05, 5, dtype=F64), rtol=1e-12), "rho = 1 must be uniform"
    return f"equals sdeflow.grids.Karras (relative gap {worst:.1e}); rho = 1 is uniform"
