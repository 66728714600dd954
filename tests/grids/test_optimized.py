"""Solver-aware grids: the shipped table, its use on any process, and the optimizer."""

import pytest
import torch

import sdeflow
from sdeflow import targets
from sdeflow.grids import Karras
from sdeflow.grids.optimized import OptimizedGrid, available_optimized, grid_objective, load_table, optimize_grid
from sdeflow.noise import randn
from sdeflow.processes import EDM, VP


def _entry(family, solver, steps):
    return next(e for e in load_table()["entries"] if e["family"] == family and e["solver"] == solver and e["steps"] == steps)


def test_stored_grid_is_used_exactly_on_the_edm_range():
    # On EDM (noise 80 -> 0.002) the grid is the stored noise levels, then 0.
    e = _entry("ring2d", "dpm_solver_pp_2m", 5)
    ts = OptimizedGrid("dpm_solver_pp_2m", family="ring2d")(EDM(), 5)
    torch.testing.assert_close(ts, torch.tensor([80.0] + e["levels"] + [0.0], dtype=torch.float64))


def test_other_step_counts_and_processes_give_valid_grids():
    # A step count that is not stored is interpolated (log-linear); another process gets the levels mapped
    # onto its own noise range: strictly decreasing, from T to 0, the right length.
    grid = OptimizedGrid("dpm_solver_pp_2m", family="ring2d")
    for process, steps in ((EDM(), 7), (EDM(), 30), (VP(), 10)):
        ts = grid(process, steps)
        assert len(ts) == steps + 1 and ts[0] == process.T and ts[-1] == 0 and bool((ts[1:] < ts[:-1]).all())
    assert "ring2d/dpm_solver_pp_2m" in available_optimized()
    with pytest.raises(ValueError, match="no optimized grid"):
        OptimizedGrid("heun", family="ring2d")


def test_shipped_grid_beats_karras_on_held_out_noise():
    # DPM-Solver++(2M) at 5 model calls on the ring: the optimized grid's RMS distance to the exact ODE
    # solution (held-out noise, seeds 0..255) is several times below Karras's (about 0.03 against 0.84).
    p = EDM()
    g = targets.ring2d()
    z = randn((256, 2), seeds=0, dtype=torch.float64)
    x = 80.0 * z
    ref_p = EDM(sigma_min=1e-6)
    ref = sdeflow.sample(g.model(ref_p, "x0"), ref_p, x, solver="adaptive_ode", grid=[80.0, 1e-6, 0.0], rtol=1e-8, atol=1e-8).samples
    errs = {}
    for name, grid in (("opt", OptimizedGrid("dpm_solver_pp_2m", family="ring2d")), ("karras", Karras())):
        out = sdeflow.sample(g.model(p, "x0"), p, x, solver="dpm_solver_pp_2m", nfe=5, grid=grid).samples
        errs[name] = float((out - ref).norm(dim=1).pow(2).mean().sqrt())
    assert errs["opt"] < 0.25 * errs["karras"], errs


def test_optimizer_lowers_the_objective():
    # Nelder-Mead from the Karras grid never returns a worse grid, and here improves it clearly.
    pytest.importorskip("scipy")
    p = EDM()
    g = targets.ring2d()
    x = 80.0 * randn((64, 2), seeds=10**7, dtype=torch.float64)
    ref_p = EDM(sigma_min=1e-6)
    ref = sdeflow.sample(g.model(ref_p, "x0"), ref_p, x, solver="adaptive_ode", grid=[80.0, 1e-6, 0.0], rtol=1e-8, atol=1e-8).samples
    run = lambda ts: [sdeflow.sample(g.model(p, "x0"), p, x, solver="ipndm", order=3, grid=ts).samples]
    init = Karras()(p, 4).tolist()[1:-1]
    start = grid_objective(run(torch.tensor([80.0] + init + [0.0], dtype=torch.float64)), [ref])
    levels, value = optimize_grid(run, [ref], 80.0, init, max_iter=60)
    assert value < start - 0.5 and len(levels) == 3 and levels[0] > levels[1] > levels[2] > 0


def test_tuned_coefficients_beat_plain_ipndm_on_their_target():
    # tuned_ab on its own grid (family mixture64d, 5 calls) against iPNDM(3) on the family's iPNDM grid,
    # on held-out noise: the tuned coefficients lower the RMS distance to the exact ODE solution.
    p = EDM()
    g = targets.mixture64d(seed=64)
    x = 80.0 * randn((512, 64), seeds=0, dtype=torch.float64)
    ref_p = EDM(sigma_min=1e-6)
    ref = sdeflow.sample(g.model(ref_p, "x0"), ref_p, x, solver="adaptive_ode", grid=[80.0, 1e-6, 0.0], rtol=1e-7, atol=1e-7).samples
    tuned = sdeflow.sample(g.model(p, "x0"), p, x, solver="tuned_ab", family="mixture64d", nfe=5).samples
    plain = sdeflow.sample(g.model(p, "x0"), p, x, solver="ipndm", order=3, nfe=5,
                           grid=OptimizedGrid("ipndm", family="mixture64d", order=3)).samples
    rms = lambda s: float((s - ref).norm(dim=1).pow(2).mean().sqrt())
    assert rms(tuned) < rms(plain), (rms(tuned), rms(plain))


def test_stored_levels_are_kept_on_a_process_whose_range_holds_them():
    # The probability-flow ODE in (x/alpha, rho) is the same on every process: on VP (noise levels
    # 0.0105 to 152) the stored interior levels of the default 8-step iPNDM-3 grid are used exactly
    # (rel. 1e-9), the first level is VP's own start (152.2); before, the whole grid was stretched
    # onto VP's range and its last level moved from 0.052 to about 0.11.
    grid = OptimizedGrid("ipndm", order=3)
    stored = grid.levels(8)[1:]
    p = VP()
    ts = grid(p, 8)
    rho = p.noise_level(ts[:-1])
    torch.testing.assert_close(rho[1:], torch.tensor(stored, dtype=torch.float64), rtol=1e-9, atol=0)
    assert abs(float(rho[0]) - float(p.noise_level(p.T))) < 1e-9 * float(rho[0])


def test_tuned_ab_uses_its_coefficients_on_vp():
    # tuned_ab's lookup compared the whole grid, start level included, with levels stored on EDM's
    # range (start 80): on VP (start 152) it found nothing and ran as iPNDM-3, bit for bit. It now
    # compares the interior levels: on VP its samples differ from iPNDM-3's on the same grid.
    p = VP()
    g = targets.mixture64d(seed=64)
    x = p.prior_sample((8, 64), seeds=0, dtype=torch.float64)
    grid = OptimizedGrid("tuned_ab", family="mixture64d")
    tuned = sdeflow.sample(g.model(p, "eps"), p, x, solver="tuned_ab", family="mixture64d", grid=grid, steps=8).samples
    plain = sdeflow.sample(g.model(p, "eps"), p, x, solver="ipndm", order=3, grid=grid, steps=8).samples
    assert not torch.equal(tuned, plain)


@pytest.mark.parametrize("process", [EDM(), VP()], ids=["edm", "vp"])
def test_every_stored_grid_loads_and_follows_the_grid_convention(process):
    # Every entry of the shipped table (each family, solver, options and step count) gives, on EDM
    # and on VP, a strictly decreasing grid of steps + 1 times from the process's T to 0, every
    # positive time at or above the process's t_min, and the tuned_ab entries carry one coefficient
    # row of 1 to min(i + 1, 3) weights per step.
    for e in load_table()["entries"]:
        grid = OptimizedGrid(e["solver"], family=e["family"], **e["options"])
        n = int(e["steps"])
        ts = grid(process, n)
        assert ts.shape == (n + 1,), (e["family"], e["solver"], n)
        assert float(ts[0]) == process.T and float(ts[-1]) == 0.0
        assert bool((ts[1:] < ts[:-1]).all())
        assert bool((ts[:-1] >= process.t_min * (1 - 1e-9)).all()), (e["family"], e["solver"], n, ts.tolist())
        if e["solver"] == "tuned_ab":
            rows = e["coefficients"]
            assert len(rows) == n and all(1 <= len(r) <= min(i + 1, 3) for i, r in enumerate(rows))
