"""The sampler suite on every process and prediction kind, custom grids, budgets, final steps,
noise reproducibility, reduced-precision models and convergence in distribution."""

import pytest
import torch

import sdeflow
from sdeflow import targets
from sdeflow.grids import Karras
from sdeflow.metrics import sliced_wasserstein2
from sdeflow.models.parameterization import PREDICTIONS
from sdeflow.processes import EDM, VE, VP, Cosine, DiscreteVP, Linear, SubVP
from sdeflow.solvers import get

from ..gaussian_problem import eps_model

DETERMINISTIC = [
    ("ddim", {}), ("dpm_solver", {"order": 2}), ("dpm_solver", {"order": 3}), ("dpm_solver_pp_2s", {}),
    ("dpm_solver_pp_2m", {}), ("dpm_solver_pp_3m", {}), ("unipc", {"order": 3}), ("unipc", {"order": 2, "variant": "bh1"}),
    ("deis", {"order": 3}), ("deis", {"order": 3, "corrector": True}), ("ipndm", {"order": 4}), ("tuned_ab", {}), ("edm", {}),
]
STOCHASTIC = [
    ("dpm_solver_pp_2m_sde", {}), ("dpm_solver_pp_3m_sde", {}), ("euler_ancestral", {}), ("dpm_solver_pp_2s_ancestral", {}),
    ("edm", {"s_churn": 20.0}), ("pc", {}), ("pc", {"predictor": "euler_maruyama", "n_corrector": 2}), ("restart", {}),
    ("ddim", {"eta": 0.5}),
]
PROCESSES = [VP(), SubVP(), VE(), EDM(), Cosine(), Linear(), DiscreteVP.linear(1000)]
TARGET = targets.gaussian([0.4], [0.3])


LEVELS = [40.0, 12.0, 3.0, 0.8, 0.2, 0.05, 0.012]  # noise levels sigma/alpha of the shared grid, then 0


def _run_everywhere(name, options, process, prediction):
    # The same grid of noise levels and the same scaled start y = x/alpha on every process.
    ts = [float(v) for v in process.t_from_noise_level(torch.tensor(LEVELS, dtype=torch.float64))] + [0.0]
    y0 = 40.0 * torch.linspace(-1.0, 1.0, 3, dtype=torch.float64).reshape(3, 1)
    x = float(process.alpha(ts[0])) * y0
    return sdeflow.sample(TARGET.model(process, prediction), process, x, solver=name, grid=ts, seed=5, **options)


@pytest.mark.parametrize("name,options", DETERMINISTIC + STOCHASTIC, ids=[f"{n}-{o}" for n, o in DETERMINISTIC + STOCHASTIC])
def test_every_solver_on_every_process_and_prediction(name, options):
    # In the scaled state x/alpha and the noise level every Gaussian path has the same probability-flow
    # ODE, and every prediction kind converts exactly to (x0_hat, eps_hat): on one grid of noise levels a
    # deterministic solver gives the same samples (to 1e-7) for all 7 processes x 5 prediction kinds
    # (DEIS interpolates in the process's own time t, so only across prediction kinds). Stochastic
    # solvers give finite samples everywhere. Every solver makes exactly the calls it declares.
    solver = get(name, **options)
    first = None
    for process in PROCESSES:
        if name == "deis":
            first = None
        for prediction in PREDICTIONS:
            r = _run_everywhere(name, options, process, prediction)
            assert torch.isfinite(r.samples).all(), (type(process).__name__, prediction)
            assert r.nfe == solver.nfe(r.ts)
            if not solver.stochastic:
                first = r.samples if first is None else first
                torch.testing.assert_close(r.samples, first, rtol=1e-7, atol=1e-7, msg=f"{type(process).__name__} {prediction}")


@pytest.mark.parametrize("name,options", DETERMINISTIC + STOCHASTIC[:4])
def test_custom_grid_is_used_as_given_and_budget_is_used(name, options):
    # An explicit grid (odd spacing, its own last positive time) is never rewritten; with nfe=budget the
    # solver takes the most steps its declared count allows and never exceeds the budget.
    p = EDM()
    x = p.prior_sample((2, 2), seeds=0, dtype=torch.float64)
    model = targets.gaussian([0.1, 0.2], [0.5, 0.4]).model(p, "x0")
    ts = [80.0, 31.0, 7.5, 2.2, 0.61, 0.17, 0.011, 0.0]
    r = sdeflow.sample(model, p, x, solver=name, grid=ts, seed=0, **options)
    assert r.ts.tolist() == ts and r.nfe == get(name, **options).nfe(r.ts)
    for budget in (5, 8, 13):
        r = sdeflow.sample(model, p, x, solver=name, nfe=budget, seed=0, **options)
        solver = get(name, **options)
        assert r.nfe <= budget
        longer = Karras()(p, len(r.ts))
        assert solver.nfe(longer) > budget  # one more step would not fit


def test_last_step_is_the_exact_denoising_step():
    # The step to t = 0 returns x0_hat of the last positive time (alpha(0) = 1): for a Gaussian the
    # distance to the exact flow equals |posterior mean - flow| at t_min, computed in closed form.
    p = EDM()
    g = targets.gaussian([0.3], [0.5])
    x = p.prior_sample((4, 1), seeds=3, dtype=torch.float64)
    for name in ("dpm_solver_pp_3m", "unipc", "dpm_solver_pp_2m", "dpm_solver"):
        r = sdeflow.sample(g.model(p, "eps"), p, x, solver=name, steps=30, return_trajectory=True)
        assert r.ts[-2] > 0 and r.ts[-1] == 0 and (r.ts[:-1] > r.ts[1:]).all()  # no duplicated level
        x_min = r.trajectory[-2]
        torch.testing.assert_close(r.samples, g.x0(x_min, float(r.ts[-2]), p))


def test_sde_samplers_same_path_across_step_counts_and_batches():
    # DPM-Solver++(2M) SDE from one seed at 200 and 400 steps ends close (one Brownian path, strong
    # convergence): the difference is far below the spread between two seeds. Sample 2 of a batch of 5
    # equals the same sample drawn alone with its own seed.
    p = EDM()
    g = targets.gaussian([0.3], [0.5])
    x = p.prior_sample((64, 1), seeds=0, dtype=torch.float64)
    a = sdeflow.sample(g.model(p, "x0"), p, x, solver="dpm_solver_pp_2m_sde", steps=200, seed=3).samples
    b = sdeflow.sample(g.model(p, "x0"), p, x, solver="dpm_solver_pp_2m_sde", steps=400, seed=3).samples
    c = sdeflow.sample(g.model(p, "x0"), p, x, solver="dpm_solver_pp_2m_sde", steps=400, seed=1000).samples
    assert float((a - b).abs().mean()) < 0.2 * float((b - c).abs().mean())
    one = sdeflow.sample(g.model(p, "x0"), p, x[2:3], solver="dpm_solver_pp_2m_sde", steps=20, seed=5).samples
    many = sdeflow.sample(g.model(p, "x0"), p, x[:5], solver="dpm_solver_pp_2m_sde", steps=20, seed=3).samples
    torch.testing.assert_close(many[2:3], one, rtol=0, atol=0)


def test_reduced_precision_model_keeps_float32_state():
    # A bf16 model: the state stays float32 and the result is within bf16 resolution of the float32 run.
    p = EDM()
    g = targets.gaussian([0.3, 0.1], [0.5, 0.5])
    x = p.prior_sample((8, 2), seeds=0)
    m32 = g.model(p, "x0")

    def m16(xx, t):
        return m32(xx.to(torch.bfloat16).float(), t).to(torch.bfloat16)

    r16 = sdeflow.sample(m16, p, x, prediction="x0", solver="unipc", steps=10)
    r32 = sdeflow.sample(m32, p, x, prediction="x0", solver="unipc", steps=10)
    assert r16.samples.dtype == torch.float32
    assert float((r16.samples - r32.samples).abs().max()) < 0.05


def test_stochastic_samplers_converge_in_distribution():
    # On the 2-D ring (exact scores), sliced W2 to fresh true samples (2000 vs 2000) shrinks from 10 to
    # 80 model calls, and at 80 it is within 0.06 of the two-sample floor (about 0.04 here).
    p = EDM()
    g = targets.ring2d()
    x = p.prior_sample((2000, 2), seeds=0, dtype=torch.float64)
    truth = g.sample(2000, seeds=10**6, dtype=torch.float64)
    floor = sliced_wasserstein2(g.sample(2000, seeds=2 * 10**6, dtype=torch.float64), truth, n_projections=64)
    for name, options in [("dpm_solver_pp_2m_sde", {}), ("euler_ancestral", {}), ("edm", {"s_churn": 10.0}),
                          ("dpm_solver_pp_2s_ancestral", {}), ("pc", {"predictor": "euler_maruyama"})]:
        d = [sliced_wasserstein2(sdeflow.sample(g.model(p, "x0"), p, x, solver=name, nfe=n, seed=7, **options).samples,
                                 truth, n_projections=64) for n in (10, 80)]
        assert d[1] < d[0] and d[1] < floor + 0.06, (name, d, floor)


def test_adaptive_ode_meets_its_tolerance_and_caps_calls():
    # Dormand-Prince 5(4) per sample: error at t_min against the closed form shrinks with the
    # tolerance (1e-3 -> 1e-8: errors ~7e-4 and ~5e-9); a budget too small raises with the fix.
    p = VP()
    g = targets.gaussian([0.3, -0.2], [0.5, 0.2])
    x = p.prior_sample((16, 2), seeds=0, dtype=torch.float64)
    errs = []
    for tol in (1e-3, 1e-8):
        r = sdeflow.sample(g.model(p, "eps"), p, x, solver="adaptive_ode", rtol=tol, atol=tol, return_trajectory=True)
        ref = g.pf_ode_solution(x, r.ts[0], r.ts[-2], p)
        errs.append(float((r.trajectory[-2] - ref).abs().max()))
    assert errs[0] < 5e-3 and errs[1] < 1e-7
    with pytest.raises(RuntimeError, match="budget"):
        sdeflow.sample(g.model(p, "eps"), p, x, solver="adaptive_ode", rtol=1e-8, atol=1e-8, nfe=30)


def test_adaptive_ode_starts_where_alpha_is_zero():
    # Rectified flow (Linear): alpha(T) = 0, so the first interval cannot use the scaled state
    # x/alpha; it runs in t. Against the closed-form flow of a Gaussian at t_min, with a small
    # call count: the straight-path ODE is smooth (errors ~1e-6 at tol 1e-6; before the t-space
    # start this never reached t_min and only stopped at the 100,000-call cap; measured 1.3e-6, 80 calls).
    p = Linear()
    g = targets.gaussian([0.3, -0.2], [0.5, 0.2])
    x = p.prior_sample((16, 2), seeds=0, dtype=torch.float64)
    for kind in ("velocity", "x0"):
        r = sdeflow.sample(g.model(p, kind), p, x, solver="adaptive_ode", rtol=1e-6, atol=1e-6, return_trajectory=True)
        ref = g.pf_ode_solution(x, r.ts[0], r.ts[-2], p)
        assert float((r.trajectory[-2] - ref).abs().max()) < 2e-5, kind
        assert r.nfe < 400, (kind, r.nfe)


def test_adaptive_sde_is_per_sample_and_reaches_the_end():
    # Each sample steps on its own: a sample drawn alone equals the same sample inside a batch (an
    # elementwise model, so that the model itself is exactly batch-invariant).
    p = VP()
    x = p.prior_sample((6, 1), seeds=0, dtype=torch.float64)
    many = sdeflow.sample(eps_model(p), p, x, solver="adaptive_sde", seed=11).samples
    one = sdeflow.sample(eps_model(p), p, x[3:4], solver="adaptive_sde", seed=14).samples
    torch.testing.assert_close(many[3:4], one)
    assert torch.isfinite(many).all()


def test_solver_options_are_checked():
    for name, bad in [("dpm_solver_pp", {"order": 4}), ("unipc", {"variant": "bh3"}), ("deis", {"order": 0}),
                      ("ipndm", {"order": 5}), ("edm", {"s_churn": -1.0}), ("pc", {"predictor": "ode"}),
                      ("restart", {"restart_min": 1.0, "restart_max": 0.5}), ("adaptive_ode", {"rtol": 0.0})]:
        with pytest.raises(ValueError):
            get(name, **bad)


def test_solver_state_is_not_shared_between_runs():
    # Solvers are immutable: one object used by two interleaved step-by-step runs gives two correct results.
    p = EDM()
    g = targets.gaussian([0.3], [0.5])
    solver = get("dpm_solver_pp_3m")
    x = p.prior_sample((4, 1), seeds=0, dtype=torch.float64)
    a = sdeflow.sample(g.model(p, "x0"), p, x, solver=solver, steps=12).samples
    b = sdeflow.sample(g.model(p, "x0"), p, 2 * x, solver=solver, steps=12).samples
    torch.testing.assert_close(sdeflow.sample(g.model(p, "x0"), p, x, solver=solver, steps=12).samples, a)
    assert not torch.equal(a, b)


@pytest.mark.parametrize("name,options", DETERMINISTIC, ids=[f"{n}-{o}" for n, o in DETERMINISTIC])
def test_rectified_flow_from_t_one_with_the_default_grid(name, options):
    # Linear path, velocity model, grid uniform in t from t = 1 (alpha = 0, infinite noise level): every
    # deterministic solver reaches N(0.7, 0.3^2) within 0.05 in mean and std at 20 model calls (4000
    # samples; errors 0.001-0.03, no blow-up). Multistep methods in log-SNR fall back to first order on
    # the last, much longer step (without that, DPM-Solver++(3M) ends with std 0.02).
    p = Linear()
    g = targets.gaussian([0.7], [0.3])
    x = p.prior_sample((4000, 1), seeds=0, dtype=torch.float64)
    r = sdeflow.sample(g.model(p, "velocity"), p, x, solver=name, nfe=20, **options)
    assert abs(float(r.samples.mean()) - 0.7) < 0.05 and abs(float(r.samples.std()) - 0.3) < 0.05, (
        float(r.samples.mean()), float(r.samples.std()))


def test_tuned_ab_is_ipndm_with_its_coefficients():
    # With iPNDM's own Adams-Bashforth coefficients tuned_ab is iPNDM(3) exactly; coefficient rows must fit.
    p = EDM()
    g = targets.ring2d()
    x = p.prior_sample((4, 2), seeds=0, dtype=torch.float64)
    ab = ((1.0,), (1.5, -0.5)) + ((23 / 12, -16 / 12, 5 / 12),) * 6
    a = sdeflow.sample(g.model(p, "x0"), p, x, solver="tuned_ab", coefficients=ab, grid=Karras(), steps=8).samples
    b = sdeflow.sample(g.model(p, "x0"), p, x, solver="ipndm", order=3, grid=Karras(), steps=8).samples
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError, match="coefficients for 8 steps"):
        sdeflow.sample(g.model(p, "x0"), p, x, solver="tuned_ab", coefficients=ab, grid=Karras(), steps=5)
    with pytest.raises(ValueError, match="weights"):
        get("tuned_ab", coefficients=((1.0, 2.0),))


@pytest.mark.parametrize("process", [VP(), VE(), EDM()], ids=["vp", "ve", "edm"])
def test_pc_langevin_step_stays_bounded_on_a_1d_gaussian(process):
    # Song et al.'s Langevin step 2 (snr |z| / |score|)^2 taken per sample explodes where the score is
    # near zero: on N(0.3, 0.5^2) it put 633 of 2,000 samples beyond 5 standard deviations (max |x|
    # 9,735). With the step 2 a (snr sigma)^2 every sample stays within 5 standard deviations (a
    # Gaussian has 1 in 1.7 million beyond; measured max |x - 0.3| ~ 1.8) and the standard deviation
    # is 0.5 within 8% (its sampling error at n = 2,000 is 1.6%; measured 0.498 to 0.520).
    g = targets.gaussian([0.3], [0.5])
    x = process.prior_sample((2000, 1), seeds=0, dtype=torch.float64)
    r = sdeflow.sample(g.model(process, "eps"), process, x, solver="pc", steps=100, seed=1).samples
    assert float((r - 0.3).abs().max()) < 2.5
    assert abs(float(r.std()) - 0.5) < 0.04
    assert abs(float(r.mean()) - 0.3) < 0.05


@pytest.mark.parametrize("order", [2, 3])
def test_single_step_dpm_solver_spends_its_whole_budget(order):
    # With nfe=N the N - 1 calls before the denoising step are split into steps of order `order` plus one
    # step of the remaining order (DPM-Solver's "fast" schedule), so every budget is used exactly; before,
    # N = 5 at order 3 took one third-order step from T to t_min (4 calls) and was 15 units off a 1-D
    # Gaussian's exact ODE solution (0.16 now). steps= keeps one order for every step.
    p = EDM()
    target = targets.gaussian([0.4], [0.3])
    x = 80.0 * torch.linspace(-2.0, 2.0, 5, dtype=torch.float64).reshape(5, 1)
    exact = 0.4 + 0.3 * (x - 0.4) / (0.3**2 + 80.0**2) ** 0.5  # the PF-ODE map of N(0.4, 0.3^2) from noise 80
    for nfe in range(2, 14):
        r = sdeflow.sample(target.model(p, "eps"), p, x, solver="dpm_solver", order=order, nfe=nfe)
        # steps before the denoising step: ceil((nfe - 1) / order), one more at order 3 when 3 divides
        # nfe - 1 (DPM-Solver-fast's (3, ..., 3, 2, 1), Lu et al. 2022)
        extra = order == 3 and (nfe - 1) % 3 == 0
        assert r.nfe == nfe and len(r.ts) - 2 == -(-(nfe - 1) // order) + extra
    assert get("dpm_solver", order=3).for_budget(10).layout == (3, 3, 2, 1)
    assert get("dpm_solver", order=3).for_budget(4).layout == (2, 1)
    assert get("dpm_solver", order=3).for_budget(9).layout == (3, 3, 2)
    assert get("dpm_solver", order=2).for_budget(9).layout == (2, 2, 2, 2)
    r5 = sdeflow.sample(target.model(p, "eps"), p, x, solver="dpm_solver", order=3, nfe=5)
    assert float((r5.samples - exact).abs().max()) < 0.5
    fixed = sdeflow.sample(target.model(p, "eps"), p, x, solver="dpm_solver", order=order, steps=4)
    assert fixed.nfe == order * 3 + 1
    with pytest.raises(ValueError, match="layout"):
        get("dpm_solver", order=2, layout=(3,))
