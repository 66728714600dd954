"""The sampling driver: reproducibility, model-call accounting, trajectories, and every error path."""

import pytest
import torch

import sdeflow
from sdeflow import targets
from sdeflow.grids import UniformT
from sdeflow.models import NonFiniteModelOutput
from sdeflow.processes import EDM, VP, Linear

from .gaussian_problem import eps_model


def test_per_sample_seeds_make_samples_batch_invariant():
    # Sample i of a batch drawn with seed s equals the single sample drawn with seed s + i (stochastic
    # solvers draw their Brownian path per sample).
    p = VP()
    x = p.prior_sample((6, 3), seeds=40, dtype=torch.float64)
    big = sdeflow.sample(eps_model(p), p, x, solver="euler_maruyama", steps=10, seed=7).samples
    one = sdeflow.sample(eps_model(p), p, x[4:5], solver="euler_maruyama", steps=10, seed=11).samples
    torch.testing.assert_close(big[4:5], one, rtol=0, atol=0)


def test_same_seed_same_brownian_path_across_step_counts():
    # With the Brownian tree, the reverse SDE solved with 200 and 400 steps from the same seed ends
    # close (strong convergence on one path): the difference is far below the spread of samples.
    p = VP()
    x = p.prior_sample((200, 1), seeds=0, dtype=torch.float64)
    a = sdeflow.sample(eps_model(p), p, x, solver="euler_maruyama", steps=200, seed=3, grid=UniformT()).samples
    b = sdeflow.sample(eps_model(p), p, x, solver="euler_maruyama", steps=400, seed=3, grid=UniformT()).samples
    other = sdeflow.sample(eps_model(p), p, x, solver="euler_maruyama", steps=400, seed=999, grid=UniformT()).samples
    assert float((a - b).abs().mean()) < 0.2 * float((b - other).abs().mean())


def test_nfe_budget_is_respected_and_used():
    # Heun with a budget of 35 calls gets 18 steps (2*18 - 1 = 35); Euler gets 35 steps; 1 call is too few for nothing.
    p = EDM()
    x = p.prior_sample((2, 2), seeds=0)
    r = sdeflow.sample(eps_model(p), p, x, solver="heun", nfe=35)
    assert r.nfe == 35 and len(r.ts) == 19
    r = sdeflow.sample(eps_model(p), p, x, solver="heun", nfe=36)
    assert r.nfe == 35
    r = sdeflow.sample(eps_model(p), p, x, solver="euler", nfe=7)
    assert r.nfe == 7
    r = sdeflow.sample(eps_model(p), p, x, solver="heun", nfe=1)
    assert r.nfe == 1


def test_trajectory_callback_and_progress(capsys):
    p = VP()
    x = p.prior_sample((3, 2, 2), seeds=0)
    seen = []
    r = sdeflow.sample(
        eps_model(p), p, x, solver="heun", steps=5, return_trajectory=True, callback=seen.append, progress=True
    )
    assert r.trajectory.shape == (6, 3, 2, 2) and r.x0_trajectory.shape == (5, 3, 2, 2)
    torch.testing.assert_close(r.trajectory[0], x)
    torch.testing.assert_close(r.trajectory[-1], r.samples)
    assert [c["i"] for c in seen] == [0, 1, 2, 3, 4] and seen[-1]["t1"] == 0.0
    assert "sampling (heun)" in capsys.readouterr().err


def test_custom_grid_is_used_as_given():
    p = VP()
    ts = [1.0, 0.7, 0.2, 0.05, 0.0]
    r = sdeflow.sample(eps_model(p), p, p.prior_sample((2, 1), seeds=0), solver="euler", grid=ts)
    assert r.ts.tolist() == ts and r.nfe == 4


def test_float32_state_and_float64_state():
    p = VP()
    for dtype in (torch.float32, torch.float64):
        x = p.prior_sample((2, 3), seeds=0, dtype=dtype)
        assert sdeflow.sample(eps_model(p), p, x, steps=4).samples.dtype == dtype


def test_error_paths():
    p = VP()
    m = eps_model(p)
    x = p.prior_sample((2, 3), seeds=0)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        sdeflow.sample(m, p, [1.0, 2.0])
    with pytest.raises(ValueError, match="x must have shape"):
        sdeflow.sample(m, p, torch.tensor(1.0))
    with pytest.raises(TypeError, match="float32 or float64"):
        sdeflow.sample(m, p, x.half())
    with pytest.raises(TypeError, match="DiffusionProcess"):
        sdeflow.sample(m, "vp", x)
    with pytest.raises(ValueError, match="strictly decreasing"):
        sdeflow.sample(m, p, x, grid=[1.0, 0.5, 0.6, 0.0])
    with pytest.raises(ValueError, match="unknown solver"):
        sdeflow.sample(m, p, x, solver="rk45x")
    with pytest.raises(ValueError, match="unknown prediction"):
        sdeflow.sample(lambda x, t: x, p, x, prediction="noise")
    with pytest.raises(ValueError, match="prediction is required"):
        sdeflow.sample(lambda x, t: x, p, x)
    with pytest.raises(ValueError, match="either steps or nfe"):
        sdeflow.sample(m, p, x, steps=3, nfe=3)
    with pytest.raises(ValueError, match="steps must be an integer"):
        sdeflow.sample(m, p, x, steps=0)
    with pytest.raises(ValueError, match="stochastic: pass seed"):
        sdeflow.sample(m, p, x, solver="euler_maruyama")
    with pytest.raises(ValueError, match="alpha"):
        sdeflow.sample(lambda x, t: x, Linear(), x, prediction="eps", grid="uniform")
    with pytest.raises(ValueError, match="infinite coefficients"):
        sdeflow.sample(lambda x, t: x, Linear(), x, prediction="velocity", solver="euler_maruyama", seed=0, grid="uniform")
    # Its default grid starts one t_min below T, where the reverse SDE is finite.
    r = sdeflow.sample(lambda x, t: x, Linear(), x, prediction="velocity", solver="euler_maruyama", seed=0, steps=4)
    assert abs(float(r.ts[0]) - (1.0 - Linear().t_min)) < 1e-12
    # Bad input named: empty x, seed, generator, callback, model, absurd step counts.
    for kwargs, err, word in ((dict(x=x[:0]), ValueError, "x must"), (dict(seed=2.5, solver="heun"), TypeError, "seed"),
                              (dict(seed=[0, 1, 2], solver="heun"), ValueError, "seed"),
                              (dict(generator=3, solver="heun"), TypeError, "generator"),
                              (dict(callback=3, solver="heun"), TypeError, "callback"),
                              (dict(steps=10**12), ValueError, "steps"), (dict(nfe=10**12), ValueError, "nfe"),
                              (dict(model=3), TypeError, "model")):
        args = dict(model=m, x=x, steps=3) | kwargs
        if "nfe" in kwargs:
            args.pop("steps")
        with pytest.raises(err, match=word):
            sdeflow.sample(args.pop("model"), p, args.pop("x"), **args)

    def nan_after(x, t):
        return torch.where(t[:, None] < 0.5, torch.full_like(x, float("nan")), x)

    with pytest.raises(NonFiniteModelOutput, match=r"at step \d+ .*t = 0\.4"):
        sdeflow.sample(nan_after, p, x, prediction="eps", solver="euler", grid=[1.0, 0.8, 0.4, 0.1, 0.0])


def test_rectified_flow_with_velocity_model_starts_at_one():
    # Linear process, exact velocity of N(mu, s^2) data: Heun on the uniform grid reaches the data law.
    from sdeflow.models import from_x0_eps, to_x0_eps

    p = Linear()
    em = eps_model(p)

    def velocity(x, t):
        # The exact eps model divides by alpha only through x0; use the closed form at alpha = 0 too.
        a, s = p.alpha(t)[:, None].float(), p.sigma(t)[:, None].float()
        var = a * a * 0.09 + s * s
        x0 = 0.7 + a * 0.09 * (x - a * 0.7) / var
        eps = s * (x - a * 0.7) / var
        return eps - x0

    x = p.prior_sample((4000, 1), seeds=0)
    r = sdeflow.sample(velocity, p, x, prediction="velocity", solver="heun", steps=20)
    assert abs(float(r.samples.mean()) - 0.7) < 0.02 and abs(float(r.samples.std()) - 0.3) < 0.02
    del em, from_x0_eps, to_x0_eps


@pytest.mark.parametrize("solver", ["sri2", "sra1"])
def test_order_15_srk_samplers_get_a_levy_area_tree(solver):
    # SRI/SRA methods need the space-time Levy area: sample() gives them a LevyBrownianTree. On the VP
    # reverse SDE (additive noise) of N(0.7, 0.3^2) data, 100 steps and 2000 samples land within
    # 4 standard errors + 0.02 of the mean and within 0.03 of the std.
    p = VP()
    x = p.prior_sample((2000, 1), seeds=0, dtype=torch.float64)
    r = sdeflow.sample(eps_model(p), p, x, solver=solver, steps=100, seed=1, grid=UniformT())
    assert abs(float(r.samples.mean()) - 0.7) < 4 * 0.3 / 2000**0.5 + 0.02
    assert abs(float(r.samples.std()) - 0.3) < 0.03


def test_the_fixed_rule_of_the_budget():
    # The fixed rule (the pilot's fallback, and the default above PILOT_MAX_NFE calls or with a grid
    # given): UniPC (bh2, corrector) of order 2 on the DDPM schedule's grid up to 10 steps, of order 3 on
    # the grid uniform in log-SNR above, whether the budget is given as nfe or steps (the same samples,
    # bit for bit, as naming that configuration); an explicit grid keeps the rule's solver for its step
    # count. Rectified flow (infinite noise level at T) gets the grid uniform in t. Named solvers:
    # exponential integrators on log-SNR, the others on Karras.
    from sdeflow.grids import Karras, UniformLogSNR, UniformVPTime
    from sdeflow.processes import EDM, Linear
    from sdeflow.sample import DEFAULT_LOW_ORDER_MAX_STEPS, default_configuration_grid, default_grid_for, default_solver
    from sdeflow.solvers import get

    assert DEFAULT_LOW_ORDER_MAX_STEPS == 10
    assert default_solver(10).order == 2 and default_solver(11).order == 3
    assert default_solver(11).name == "unipc" and default_solver(11).variant == "bh2" and default_solver(11).corrector
    p = EDM()
    assert isinstance(default_configuration_grid(p, 10), UniformVPTime)
    assert isinstance(default_configuration_grid(p, 11), UniformLogSNR)
    x = p.prior_sample((3, 2), seeds=0, dtype=torch.float64)
    model = targets.ring2d().model(p, "x0")
    for budget, order, kind in ((5, 2, UniformVPTime), (10, 2, UniformVPTime), (11, 3, UniformLogSNR), (20, 3, UniformLogSNR)):
        same = sdeflow.sample(model, p, x, solver="unipc", order=order, grid=kind(), steps=budget).samples
        rule = sdeflow.sample(model, p, x, solver=default_solver(budget), grid=default_configuration_grid(p, budget), nfe=budget)
        assert rule.nfe == budget
        torch.testing.assert_close(rule.ts, kind()(p, budget), rtol=0, atol=0)
        torch.testing.assert_close(rule.samples, same, rtol=0, atol=0)
        # A grid given (here the rule's own times) and no solver: the rule's solver for that step count.
        torch.testing.assert_close(sdeflow.sample(model, p, x, grid=rule.ts).samples, same, rtol=0, atol=0)
    # Named one-call multistep exponential integrators follow the same rule of the budget; the others keep
    # log-SNR (single-step, stochastic) or Karras.
    for name in ("dpm_solver_pp_3m", "dpm_solver_pp_2m", "unipc", "deis", "ddim"):
        rule = default_grid_for(p, get(name))
        assert isinstance(rule.pick(10), UniformVPTime) and isinstance(rule.pick(11), UniformLogSNR), name
        torch.testing.assert_close(rule(p, 7), UniformVPTime()(p, 7), rtol=0, atol=0)
    for name, kind in (("dpm_solver", UniformLogSNR), ("dpm_solver_pp_2m_sde", UniformLogSNR), ("heun", Karras),
                       ("ipndm", Karras), ("euler", Karras)):
        assert isinstance(default_grid_for(p, get(name)), kind), name
    # Rectified flow: uniform in t, to 0 from the spacing's own node up to 10 steps, to t_min then 0 above.
    lin = Linear()
    vel = targets.ring2d().model(lin, "velocity")
    r = sdeflow.sample(vel, lin, x, solver=default_solver(8), grid=default_configuration_grid(lin, 8), nfe=8)
    assert r.ts[0] == 1.0 and torch.allclose(r.ts, torch.linspace(1.0, 0.0, 9, dtype=torch.float64))
    r = sdeflow.sample(vel, lin, x, solver=default_solver(12), grid=default_configuration_grid(lin, 12), nfe=12)
    assert torch.allclose(r.ts[:-1], torch.linspace(1.0, lin.t_min, 12, dtype=torch.float64)) and r.ts[-1] == 0

def test_vp_time_grid_is_the_ddpm_schedule_on_every_process():
    # UniformVPTime on VP is the grid uniform in t (to 1e-12); on EDM its noise levels are VP's
    # time-uniform levels between EDM's ends (80 and 0.002): the same levels wherever both are inside.
    from sdeflow.grids import UniformT, UniformVPTime
    from sdeflow.processes import EDM, VP

    vp = VP()
    torch.testing.assert_close(UniformVPTime(final="t_min")(vp, 7), UniformT()(vp, 7), rtol=1e-12, atol=1e-12)
    edm = EDM()
    ts = UniformVPTime(final="t_min")(edm, 6)
    assert float(ts[0]) == 80.0 and float(ts[-2]) == 0.002 and float(ts[-1]) == 0.0
    u = torch.linspace(float(vp.t_from_noise_level(torch.tensor(80.0, dtype=torch.float64))),
                       float(vp.t_from_noise_level(torch.tensor(0.002, dtype=torch.float64))), 6, dtype=torch.float64)
    torch.testing.assert_close(edm.noise_level(ts[1:-2]), vp.noise_level(u[1:-1]), rtol=1e-9, atol=0)
    # The default final="spacing": diffusers' "linspace" timesteps with a zero final sigma. Six steps from
    # VP time u_0 (EDM's noise 80) at u_0 (1 - k/6), the last call at u_0/6, then t = 0; no call at t_min.
    ts = UniformVPTime()(edm, 6)
    u0 = float(vp.t_from_noise_level(torch.tensor(80.0, dtype=torch.float64)))
    u = u0 * (1 - torch.arange(6, dtype=torch.float64) / 6)
    assert float(ts[0]) == 80.0 and float(ts[-1]) == 0.0 and ts.numel() == 7
    torch.testing.assert_close(edm.noise_level(ts[1:-1]), vp.noise_level(u[1:]), rtol=1e-9, atol=0)
    # On VP itself: exactly uniform in t over [T, 0].
    torch.testing.assert_close(UniformVPTime()(vp, 5), torch.linspace(1.0, 0.0, 6, dtype=torch.float64), rtol=0, atol=1e-12)
    # So many steps that the spacing's last node would pass t_min: the t_min convention.
    ts = UniformVPTime()(vp, 2000)
    assert float(ts[-2]) == vp.t_min and float(ts[-1]) == 0.0


def test_geometric_blend_mixes_two_grids_in_log_noise_level():
    # GeometricBlend(a, b, w): a's ends, interior noise levels rho_a^(1-w) rho_b^w node by node; w = 0
    # and w = 1 give a's and b's interior levels (to round-off through t_from_noise_level), w = 0.5
    # their geometric mean. Bad w or non-grid parts are refused by name.
    import pytest
    from sdeflow.grids import GeometricBlend, UniformLogSNR, UniformVPTime
    from sdeflow.processes import EDM

    p = EDM()
    a, b = UniformVPTime()(p, 8), UniformLogSNR()(p, 8)
    for w, expect in ((0.0, p.noise_level(a[1:-1])), (1.0, p.noise_level(b[1:-1])),
                      (0.5, (p.noise_level(a[1:-1]) * p.noise_level(b[1:-1])).sqrt())):
        ts = GeometricBlend(UniformVPTime(), UniformLogSNR(), w)(p, 8)
        assert ts[0] == a[0] and ts[-1] == a[-1] == 0.0 and ts.numel() == 9
        torch.testing.assert_close(p.noise_level(ts[1:-1]), expect, rtol=1e-10, atol=0)
    with pytest.raises(ValueError, match="w must be"):
        GeometricBlend(UniformVPTime(), UniformLogSNR(), 1.5)
    with pytest.raises(TypeError, match="b must be a TimeGrid"):
        GeometricBlend(UniformVPTime(), "logsnr")
