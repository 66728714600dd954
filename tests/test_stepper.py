"""The step-by-step adapter gives exactly the results of sample(), for any solver, without shared state."""

import threading

import pytest
import torch

import sdeflow
from sdeflow import targets
from sdeflow.processes import EDM
from sdeflow.stepper import Stepper


@pytest.mark.parametrize("solver,options", [("unipc", {}), ("dpm_solver", {"order": 3}), ("dpm_solver_pp_2m_sde", {"seed": 4}),
                                            ("edm", {"s_churn": 5.0, "seed": 1}), ("adaptive_ode", {"rtol": 1e-3, "atol": 1e-3})])
def test_stepper_reproduces_sample(solver, options):
    # Same samples bit for bit and the same number of model calls as sdeflow.sample (multi-stage
    # solvers simply ask for more calls).
    p = EDM()
    g = targets.ring2d()
    model = g.model(p, "eps")
    x = p.prior_sample((5, 2), seeds=0, dtype=torch.float64)
    ref = sdeflow.sample(model, p, x, solver=solver, steps=8, **options)
    st = Stepper(p, x, prediction="eps", solver=solver, steps=8, **options)
    while not st.done:
        x_in, t = st.request
        st.step(model(x_in, t))
    assert torch.equal(st.result.samples, ref.samples) and st.nfe == ref.nfe == st.result.nfe


def test_steppers_run_side_by_side_in_threads():
    # Two steppers interleaved in two threads, no shared counter: each equals its own sample() result.
    p = EDM()
    g = targets.ring2d()
    model = g.model(p, "x0")
    xs = [p.prior_sample((3, 2), seeds=s, dtype=torch.float64) for s in (0, 100)]
    out = {}

    def drive(k):
        with Stepper(p, xs[k], prediction="x0", solver="dpm_solver_pp_3m", nfe=10) as st:
            while not st.done:
                x_in, t = st.request
                st.step(model(x_in, t))
            out[k] = st.result.samples

    threads = [threading.Thread(target=drive, args=(k,)) for k in (0, 1)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for k in (0, 1):
        assert torch.equal(out[k], sdeflow.sample(model, p, xs[k], prediction="x0", solver="dpm_solver_pp_3m", nfe=10).samples)


def test_stepper_errors_and_early_close():
    p = EDM()
    x = p.prior_sample((2, 2), seeds=0)
    st = Stepper(p, x, prediction="eps", solver="ddim", steps=4)
    with pytest.raises(RuntimeError, match="not finished"):
        st.result
    with pytest.raises(TypeError, match="torch.Tensor"):
        st.step([0.0])
    st.close()
    assert st.done
    with pytest.raises(RuntimeError, match="finished"):
        st.request
    with pytest.raises(ValueError, match="unknown solver"):
        Stepper(p, x, prediction="eps", solver="nope", steps=4)
    st = Stepper(p, x, prediction="eps", solver="ddim", steps=2)
    x_in, t = st.request
    with pytest.raises(ValueError, match="shape"):
        st.step(torch.zeros(3, 2))
