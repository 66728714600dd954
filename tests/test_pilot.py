"""The default configuration chosen by a pilot (sdeflow.pilot; docs/samplers.md, "The default configuration")."""

import math
import warnings

import pytest
import torch

import sdeflow
from sdeflow import pilot, targets
from sdeflow.grids import UniformLogSNR, UniformT, UniformVPTime
from sdeflow.processes import EDM, VP, Linear
from sdeflow.sample import default_configuration_grid, default_solver


def _reference(model, process, x):
    ts = torch.tensor([process.T, process.t_min, 0.0], dtype=torch.float64)
    return sdeflow.sample(model, process, x, solver="adaptive_ode", grid=ts, rtol=1e-8, atol=1e-8).samples


def _rms(a, b):
    return float((a - b).flatten(1).norm(dim=1).pow(2).mean().sqrt())


def test_pilot_size_and_candidates():
    # clamp(2**19 // D, 32, 1024): 1024 samples up to D = 512, 32 for large images.
    assert pilot.pilot_size((2,)) == 1024 and pilot.pilot_size((512,)) == 1024
    assert pilot.pilot_size((1024,)) == 512 and pilot.pilot_size((3, 64, 64)) == 42 and pilot.pilot_size((4, 128, 128)) == 32
    labels = [c.label for c in pilot.pilot_candidates(EDM())]
    assert len(labels) == len(set(labels)) == 9
    # The fixed rule's two configurations are candidates, so the pilot's objective is never above the rule's.
    assert "unipc-2 DDPM grid" in labels and "unipc-3 log-SNR" in labels
    flow = pilot.pilot_candidates(Linear())
    assert [c.label for c in flow][:2] == ["unipc-2 uniform t to 0", "unipc-3 uniform t to 0"] and len(flow) == 8
    assert len(pilot.pilot_candidates(Linear(), 10)) == 6 and len(pilot.pilot_candidates(Linear(), 11)) == 8
    for c in flow:  # every grid of a flow starts at T, where the noise level is infinite
        assert float(c.grid(Linear(), 6)[0]) == 1.0


def test_choice_is_the_pilot_argmin_and_deterministic():
    p = EDM()
    model = targets.ring2d().model(p, "x0")
    pilot.clear_cache()
    a = pilot.choose_configuration(model, p, (2,), nfe=8, dtype=torch.float64)
    assert a.label == min(a.scores, key=lambda k: a.scores[k].objective)
    rule = a.scores["unipc-2 DDPM grid"].objective  # the former default at 8 calls
    assert a.scores[a.label].objective <= rule
    assert a.n_pilot == 1024 and a.pilot_calls == pilot.REFERENCE_STEPS + 9 * 8
    pilot.clear_cache()
    b = pilot.choose_configuration(model, p, (2,), nfe=8, dtype=torch.float64)
    assert b.label == a.label and {k: v.objective for k, v in b.scores.items()} == {k: v.objective for k, v in a.scores.items()}


def test_default_sample_runs_the_chosen_configuration_and_is_batch_invariant():
    p = EDM()
    model = targets.ring2d().model(p, "x0")
    x = p.prior_sample((64, 2), seeds=5, dtype=torch.float64)
    for budget in (5, 12):
        r = sdeflow.sample(model, p, x, nfe=budget)
        choice = pilot.choose_configuration(model, p, (2,), nfe=budget, dtype=torch.float64)
        assert r.configuration == choice.label and r.nfe == budget
        c = choice.candidate
        same = sdeflow.sample(model, p, x, solver=c.solver, grid=c.grid, nfe=budget, **c.options)
        torch.testing.assert_close(r.samples, same.samples, rtol=0, atol=0)
        # The choice does not depend on the batch: a part of it gives the same rows.
        torch.testing.assert_close(sdeflow.sample(model, p, x[:7], nfe=budget).samples, r.samples[:7], rtol=0, atol=0)
        torch.testing.assert_close(sdeflow.sample(model, p, x, steps=budget).samples, r.samples, rtol=0, atol=0)


def test_pilot_beats_the_fixed_rule_on_held_out_noise():
    # The ring's components (std 0.05) are sharper than the DDPM grid's last step resolves. Measured on
    # 512 held-out draws (seeds 123...; the pilot's are 10**9...): the choice's RMS distance to the exact
    # ODE solution is 0.25 / 0.16 of the fixed rule's at 8 / 10 calls on EDM and 0.23 / 0.21 on VP. Bound 0.5.
    for p, kind in ((EDM(), "x0"), (VP(), "eps")):
        model = targets.ring2d().model(p, kind)
        x = p.prior_sample((512, 2), seeds=123, dtype=torch.float64)
        ref = _reference(model, p, x)
        for budget in (8, 10):
            chosen = sdeflow.sample(model, p, x, nfe=budget).samples
            rule = sdeflow.sample(model, p, x, solver=default_solver(budget), grid=default_configuration_grid(p, budget), nfe=budget).samples
            assert _rms(chosen, ref) <= 0.5 * _rms(rule, ref), (type(p).__name__, budget)


def test_cache_skips_the_pilot_and_a_trained_module_is_measured_again():
    p = VP()

    class Net(torch.nn.Module):
        prediction = "eps"

        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 2).double()
            self.calls = 0

        def forward(self, x, t):
            self.calls += 1
            return self.lin(torch.cat([x, t[:, None]], dim=1))

    with torch.random.fork_rng():  # the suite checks that no test draws from the global RNG
        torch.manual_seed(0)
        net = Net()
    x = p.prior_sample((4, 2), seeds=0, dtype=torch.float64)
    pilot.clear_cache()
    r = sdeflow.sample(net, p, x, nfe=6)
    first = net.calls
    assert r.nfe == 6 and first > 6 + 9 * 6  # the reference and every candidate ran on the pilot batch
    sdeflow.sample(net, p, x, nfe=6)
    assert net.calls == first + 6  # cached: only the sampling calls
    sdeflow.sample(net, p, x, nfe=7)
    assert net.calls == first + 6 + 9 * 7 + 7  # a new budget: the candidates run again, the reference is reused
    with torch.no_grad():
        net.lin.weight.add_(0.1)  # a training step changes the parameters' versions
    before = net.calls
    sdeflow.sample(net, p, x, nfe=6)
    assert net.calls > before + 6 + 9 * 6  # measured again, reference included


def test_a_model_that_takes_only_its_batch_gets_a_pilot_of_that_size_or_the_fixed_rule():
    p = EDM()
    exact = targets.ring2d().model(p, "x0")

    def only(batch):
        def model(xx, t):  # conditioning captured for one batch size: any other fails
            if xx.shape[0] != batch:
                raise ValueError(f"this model takes batches of {batch}")
            return exact(xx, t)
        return model

    x = p.prior_sample((5, 2), seeds=1, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = sdeflow.sample(only(5), p, x, prediction="x0", nfe=8)
    c = pilot.choose_configuration(exact, p, (2,), nfe=8, n_pilot=5, dtype=torch.float64)
    assert r.configuration == c.label  # the pilot ran on 5 pilot draws
    one = x[:1]
    with pytest.warns(RuntimeWarning, match="pilot could not run.*fixed rule"):
        r = sdeflow.sample(only(1), p, one, prediction="x0", nfe=8)
    assert r.configuration is None
    rule = sdeflow.sample(exact, p, one, solver=default_solver(8), grid=default_configuration_grid(p, 8), nfe=8)
    torch.testing.assert_close(r.samples, rule.samples, rtol=0, atol=0)


def test_draw_samples_chooses_once_for_every_batch_and_for_guided_models():
    from sdeflow.training.evaluation import _default_configuration

    p = EDM()
    exact = targets.ring2d().model(p, "x0")
    solver, grid = _default_configuration(exact, p, (2,), None, 8, None, 1.0, "cpu")
    c = pilot.choose_configuration(exact, p, (2,), nfe=8, prediction="x0")
    assert solver.name == c.candidate.solver and grid == c.candidate.grid
    solver, grid = _default_configuration(exact, p, (2,), None, pilot.PILOT_MAX_NFE + 1, None, 1.0, "cpu")
    assert solver.order == 3 and isinstance(grid, UniformLogSNR)  # above the pilot's range: the fixed rule

def test_large_budgets_and_given_grids_use_the_fixed_rule():
    p = EDM()
    model = targets.ring2d().model(p, "x0")
    x = p.prior_sample((3, 2), seeds=0, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = sdeflow.sample(model, p, x, nfe=pilot.PILOT_MAX_NFE + 1)
    assert r.configuration is None and r.nfe == pilot.PILOT_MAX_NFE + 1
    torch.testing.assert_close(r.ts, UniformLogSNR()(p, pilot.PILOT_MAX_NFE + 1), rtol=0, atol=0)
    r = sdeflow.sample(model, p, x, grid=UniformVPTime(), nfe=8)
    assert r.configuration is None
    torch.testing.assert_close(r.ts, UniformVPTime()(p, 8), rtol=0, atol=0)


def test_flow_and_denoiser_paths():
    lin = Linear()
    model = targets.ring2d().model(lin, "velocity")
    x = lin.prior_sample((16, 2), seeds=2, dtype=torch.float64)
    r = sdeflow.sample(model, lin, x, nfe=8)
    assert r.configuration.startswith("unipc-") and "t" in r.configuration and float(r.ts[0]) == 1.0 and r.nfe == 8
    ref = _reference(model, lin, x)
    assert _rms(r.samples, ref) < 0.1
    from sdeflow.models import Denoiser

    p = EDM()
    den = Denoiser(targets.ring2d().model(p, "x0"), p, "x0")
    r = sdeflow.sample(den, p, p.prior_sample((4, 2), seeds=0, dtype=torch.float64), nfe=6)
    assert r.nfe == 6 and den.nfe == 6 and r.configuration is not None  # the pilot's calls are not counted


def test_bad_arguments_are_named():
    p = EDM()
    model = targets.ring2d().model(p, "x0")
    with pytest.raises(ValueError, match="nfe"):
        pilot.choose_configuration(model, p, (2,), nfe=0)
    with pytest.raises(ValueError, match="event_shape"):
        pilot.choose_configuration(model, p, (0,), nfe=5)
    with pytest.raises(TypeError, match="event_shape"):
        pilot.choose_configuration(model, p, 2, nfe=5)
    with pytest.raises(ValueError, match="n_pilot"):
        pilot.choose_configuration(model, p, (2,), nfe=5, n_pilot=1)
    assert math.isfinite(pilot.choose_configuration(model, p, (2,), nfe=5, n_pilot=8, dtype=torch.float64).scores["unipc-2 DDPM grid"].rms)


def test_the_reference_is_far_more_accurate_than_any_candidate():
    # UniPC-3 with REFERENCE_STEPS = 400 steps (log-SNR; on a flow one step from T, then log-SNR) against
    # the adaptive solve at rtol = atol = 1e-10, over the same solver at PILOT_MAX_NFE = 100 steps, on the
    # ring (256 draws): measured 0.0022 (EDM), 0.0022 (VP), 0.0036 (Linear); third order predicts
    # (1/4)^3 = 0.016. Bound 0.02: the reference's error is under 2 % of the best candidate's at any budget.
    for p, kind in ((EDM(), "x0"), (VP(), "eps"), (Linear(), "velocity")):
        model = targets.ring2d().model(p, kind)
        x = p.prior_sample((256, 2), seeds=3, dtype=torch.float64)
        exact = sdeflow.sample(model, p, x, solver="adaptive_ode", grid=torch.tensor([p.T, p.t_min, 0.0], dtype=torch.float64),
                               rtol=1e-10, atol=1e-10).samples
        fine = sdeflow.sample(model, p, x, solver="unipc", order=3, grid=pilot._reference_grid(p)).samples
        coarse = sdeflow.sample(model, p, x, solver="unipc", order=3,
                                grid=pilot._reference_grid(p, pilot.PILOT_MAX_NFE)).samples
        assert _rms(fine, exact) <= 0.02 * _rms(coarse, exact), type(p).__name__


def test_the_pilot_argument_of_sample():
    p = EDM()
    model = targets.ring2d().model(p, "x0")
    x = p.prior_sample((8, 2), seeds=4, dtype=torch.float64)
    off = sdeflow.sample(model, p, x, nfe=8, pilot=False)
    rule = sdeflow.sample(model, p, x, solver=default_solver(8), grid=default_configuration_grid(p, 8), nfe=8)
    assert off.configuration is None
    torch.testing.assert_close(off.samples, rule.samples, rtol=0, atol=0)
    small = sdeflow.sample(model, p, x, nfe=8, pilot=64)
    assert small.configuration == pilot.choose_configuration(model, p, (2,), nfe=8, n_pilot=64, dtype=torch.float64).label
    for bad in (1, 0.5, "yes"):
        with pytest.raises(ValueError, match="pilot must be True, False or a number"):
            sdeflow.sample(model, p, x, nfe=8, pilot=bad)
