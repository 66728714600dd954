"""sdeint/odeint refuse bad input at the boundary, fail fast instead of spinning, report blow-up,
and solve in chunks with per-sample noise to the same bits as one solve."""

from __future__ import annotations

import math
import time
import warnings

import pytest
import torch

from sdeflow.sdes import SDE
from sdeflow.sdes._noise import SampleBrownianPath
from sdeflow.sdes.integrate import MAX_FIXED_STEPS, odeint, sdeint

from .problems import GBM

F64 = torch.float64


class Linear(SDE):
    """dX = -lam X dt + s dW (additive noise unless told otherwise)."""

    noise_type = "diagonal"

    def __init__(self, lam=50.0, s=0.1):
        self.lam, self.s = lam, s

    def drift(self, t, x):
        return -self.lam * x

    def diffusion(self, t, x):
        return self.s * torch.ones_like(x)


class Torchsde:
    """A torchsde-style object whose f and g return what the test asks."""

    sde_type = "ito"

    def __init__(self, noise_type="diagonal", f=None, g=None):
        self.noise_type = noise_type
        self._f = f or (lambda t, y: 0.1 * y)
        self._g = g or (lambda t, y: 0.2 * y)

    def f(self, t, y):
        return self._f(t, y)

    def g(self, t, y):
        return self._g(t, y)


# ---- shapes, dtypes, times: checked at the first call, named -------------------------------------
def test_drift_of_the_wrong_shape_is_refused_at_the_first_call():
    # Expected: a drift returning (1, 1) for a (4, 2) state is a ValueError naming the drift and the
    # expected shape (4, 2): before, it broadcast silently and every sample moved by the same value.
    class Reduced(Linear):
        def drift(self, t, x):
            return x.mean().reshape(1, 1)

    with pytest.raises(ValueError, match=r"Reduced\.drift\(t, y\) must return the state's shape \(4, 2\).*got \(1, 1\)"):
        sdeint(Reduced(), torch.ones(4, 2), [0.0, 1.0], dt=0.1, seed=0, method="euler")


@pytest.mark.parametrize(
    "noise, g, message",
    [
        ("diagonal", lambda t, y: torch.ones(y.shape[0], 3, dtype=y.dtype), r"sde\.g.*\(batch, d\) = \(4, 2\).*got \(4, 3\)"),
        ("scalar", lambda t, y: 0.2 * y, r"sde\.g.*\(batch, d, 1\) = \(4, 2, 1\).*got \(4, 2\)"),
    ],
)
def test_diffusion_of_the_wrong_shape_names_expected_and_received(noise, g, message):
    # Expected: a ValueError at the first call with torchsde's expected layout and the received shape
    # (before: "the size of tensor a must match" from inside the step, or "stack expects each tensor
    # to be equal size" at the end; a scalar-noise g of (batch, d) ran silently as if d were 1 column).
    with pytest.raises(ValueError, match=message):
        sdeint(Torchsde(noise, g=g), torch.ones(4, 2), [0.0, 1.0], dt=0.1, seed=0, method="euler")


def test_general_noise_matrix_of_the_wrong_shape_is_refused():
    # Expected: a sdeflow SDE with general noise whose G is (batch, d, m) for a state of another d is
    # refused naming (*y.shape, m).
    class General(Linear):
        noise_type = "general"

        def brownian_shape(self, x):
            return (x.shape[0], 2)

        def diffusion(self, t, x):
            return torch.ones(x.shape[0], 3, 2, dtype=x.dtype)

    with pytest.raises(ValueError, match=r"General\.diffusion.*\(4, 2, 2\).*got \(4, 3, 2\)"):
        sdeint(General(), torch.ones(4, 2), [0.0, 1.0], dt=0.1, seed=0, method="euler")


def test_drift_of_another_dtype_is_a_type_error():
    # Expected: a float64 drift for a float32 state is a TypeError naming both dtypes (it would
    # otherwise promote the state and fail at the end, or change the output dtype).
    class Wide(Linear):
        def drift(self, t, x):
            return -x.to(F64)

    with pytest.raises(TypeError, match=r"Wide\.drift.*torch\.float64.*torch\.float32"):
        sdeint(Wide(), torch.ones(3, 1), [0.0, 1.0], dt=0.1, seed=0, method="euler")


def test_ts_must_be_1d_and_y0_finite_and_not_empty():
    # Expected: a 2-d ts is refused (before: flattened into one grid); NaN in y0 and an empty batch
    # are ValueErrors naming y0 (before: a NaN solution, or an error from the Brownian path).
    y0 = torch.ones(3, 1)
    with pytest.raises(ValueError, match=r"ts must be 1-d.*got shape \(2, 2\)"):
        sdeint(GBM(), y0, torch.tensor([[0.0, 0.5], [0.7, 1.0]]), dt=0.1, seed=0)
    with pytest.raises(ValueError, match=r"t must be 1-d"):
        odeint(lambda t, y: -y, y0, torch.tensor([[0.0, 1.0]]))
    bad = y0.clone()
    bad[1, 0] = float("nan")
    with pytest.raises(ValueError, match=r"y0 holds NaN.*rows \[1\]"):
        sdeint(GBM(), bad, [0.0, 1.0], dt=0.1, seed=0)
    with pytest.raises(ValueError, match=r"y0 holds NaN"):
        odeint(lambda t, y: -y, bad, [0.0, 1.0])
    with pytest.raises(ValueError, match=r"at least one sample"):
        sdeint(GBM(), torch.ones(0, 2), [0.0, 1.0], dt=0.1, seed=0)
    with pytest.raises(ValueError, match="chunk_size must be an integer >= 1"):
        sdeint(GBM(), y0, [0.0, 1.0], dt=0.1, seed=0, chunk_size=0)
    with pytest.raises(ValueError, match=r"non-empty event shape.*got shape \(3, 0\)"):
        sdeint(GBM(), torch.ones(3, 0), [0.0, 1.0], dt=0.1, seed=0)
    with pytest.raises(TypeError, match="generator must be a torch.Generator; got int"):
        sdeint(GBM(), y0, [0.0, 1.0], dt=0.1, generator=3)


@pytest.mark.parametrize("adaptive", [False, True])
def test_brownian_object_of_the_wrong_shape_is_named(adaptive):
    # Expected: a user's bm returning (5, 5) increments for a (3, 2) state with diagonal noise is a
    # ValueError at the first step naming the shape needed, (3, 2) (before: "the size of tensor a (2)
    # must match the size of tensor b (5)" from inside the method).
    from sdeflow.noise.brownian import BrownianTree

    bm = BrownianTree(0.0, 1.0, (5, 5), seeds=0)
    with pytest.raises(ValueError, match=r"Brownian object returned W\(tb\) - W\(ta\) of shape \(5, 5\).*needs \(3, 2\)"):
        sdeint(GBM(), torch.ones(3, 2), [0.0, 1.0], bm, dt=0.1, method="milstein", adaptive=adaptive)


# ---- no hangs, no runaway memory ----------------------------------------------------------------
def test_tiny_dt_is_refused_before_allocating():
    # Expected: dt = 1e-9 on [0, 1] (10^9 steps, ~200 GB of step tables) is a ValueError naming dt,
    # the step count and max_steps, in well under a second (before: it built a 10^9-element list).
    t = time.perf_counter()
    with pytest.raises(ValueError, match=rf"dt = 1e-09.*1000000000 fixed steps, above max_steps = {MAX_FIXED_STEPS}"):
        sdeint(GBM(), torch.ones(2, 1), [0.0, 1.0], dt=1e-9, seed=0, method="euler")
    assert time.perf_counter() - t < 1.0
    with pytest.raises(ValueError, match=r"options\['step_size'\].*above max_steps = 1000"):
        odeint(lambda t, y: -y, torch.ones(2), [0.0, 1.0], method="euler", options={"step_size": 1e-4, "max_num_steps": 1000})


def test_odeint_nan_from_the_function_fails_in_milliseconds():
    # Expected: a function that returns NaN from t = 0.5 on makes dopri5 raise a FloatingPointError
    # naming func and t = 0.5 within a second (before: about 200 s of ever smaller rejected steps
    # until max_steps); a function NaN at the start fails at its first step, naming func and t = 0.
    def func(t, y):
        return -y if float(t) < 0.5 else torch.full_like(y, float("nan"))

    t = time.perf_counter()
    with pytest.raises(FloatingPointError, match=r"every step from t = 0\.5 gives NaN.*func"):
        odeint(func, torch.ones(3), [0.0, 1.0])
    with pytest.raises(FloatingPointError, match=r"func\(t, y\) returned NaN or infinite values at t = 0 "):
        odeint(lambda t, y: y / 0.0 * 0.0, torch.ones(3), [0.0, 1.0])
    assert time.perf_counter() - t < 1.0


def test_odeint_state_that_leaves_the_domain_fails_fast():
    # Expected: y' = -1/sqrt(y) from y = 1 (y^1.5 = 1 - 1.5 t) reaches y = 0 at t = 2/3: beyond, every trial step gives
    # sqrt of a negative number. The solve stops with a FloatingPointError naming the time just
    # before 2/3, in under a second (before: max_steps = 10^6 rejected steps).
    t = time.perf_counter()
    with pytest.raises(FloatingPointError, match=r"every step from t = 0\.66"):
        odeint(lambda t, y: -1.0 / y.sqrt(), torch.ones(1, dtype=F64), [0.0, 1.0])
    assert time.perf_counter() - t < 1.0


# ---- blow-up of explicit steps ------------------------------------------------------------------
@pytest.mark.parametrize("method", ["euler", "srk", "milstein"])
def test_step_beyond_stability_warns_naming_dt(method):
    # Expected: on dX = -50 X dt + 0.1 dW, dt = 1/4 gives dt * |df/dy| = 12.5 (stable only below ~2):
    # a RuntimeWarning naming dt = 0.25 and the step that serves, 2 / 50 = 0.04 (before: |x| > 50
    # returned silently). At dt = 1/200 (dt |df/dy| = 0.25) there is no warning.
    y0 = torch.ones(8, 1, dtype=F64)
    with pytest.warns(RuntimeWarning, match=r"dt = 0\.25 is far beyond.*\|df/dy\| ~ 50.*dt <= 0\.04"):
        sdeint(Linear(), y0, [0.0, 1.0], dt=0.25, seed=0, method=method)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = sdeint(Linear(), y0, [0.0, 1.0], dt=1 / 200, seed=0, method=method)
    assert float(y[-1].abs().max()) < 1.0  # stable: the OU state stays O(0.1 / sqrt(100))


def test_non_finite_solution_raises_naming_dt():
    # Expected: Euler on dX = -1e6 X dt with dt = 0.1 multiplies |X| by 1e5 a step: float32 overflows
    # to inf within 8 steps and NaN follows. A FloatingPointError names the first non-finite output,
    # the method and dt (before: a NaN tensor came back).
    y0 = torch.ones(2, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(FloatingPointError, match=r"NaN or infinite \(first at output \d+.*'euler_maruyama' and dt = 0\.1"):
            sdeint(Linear(lam=1e6, s=0.0), y0, [0.0, 0.5, 1.0, 1.5, 2.0], dt=0.1, seed=0, method="euler")


# ---- chunked solving -----------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["euler", "srk", "milstein"])
def test_chunked_solve_equals_the_one_chunk_solve_bit_for_bit(method):
    # Expected: with per-sample noise, chunks of 7 (the last one short) give exactly the result of one
    # chunk of the whole batch: sample i's path depends on (seed, i) only, and every step is
    # row-wise. Also sample i with seed s equals sample 0 with seed s + i.
    y0 = torch.rand(30, 3, dtype=F64, generator=torch.Generator().manual_seed(1)) + 0.5
    ts = [0.0, 0.3, 1.0]
    whole = sdeint(GBM(), y0, ts, method=method, dt=0.05, seed=11, chunk_size=30)
    parts = sdeint(GBM(), y0, ts, method=method, dt=0.05, seed=11, chunk_size=7)
    assert torch.equal(whole, parts)
    one = sdeint(GBM(), y0[5:6], ts, method=method, dt=0.05, seed=16, chunk_size=1)
    assert torch.equal(one[:, 0], whole[:, 5])
    gen = [sdeint(GBM(), y0, ts, method=method, dt=0.05, generator=torch.Generator().manual_seed(3), chunk_size=c)
           for c in (30, 4)]
    assert torch.equal(gen[0], gen[1])


def test_chunked_solve_of_a_torchsde_general_noise_object_and_a_given_bm():
    # Expected: a torchsde-style object with general noise (batch, d, m = 2) and a user's Brownian
    # object queried for the whole batch give the same bits in chunks of 3 as in one solve.
    sde = Torchsde("general", g=lambda t, y: torch.stack((0.2 * y, 0.1 * y), dim=-1))
    y0 = torch.ones(10, 2, dtype=F64)
    a = sdeint(sde, y0, [0.0, 1.0], method="euler", dt=0.1, seed=2, chunk_size=10)
    b = sdeint(sde, y0, [0.0, 1.0], method="euler", dt=0.1, seed=2, chunk_size=3)
    assert torch.equal(a, b)
    from sdeflow.noise.brownian import BrownianTree

    bm = BrownianTree(0.0, 1.0, (10, 2), seeds=0, dtype=F64)
    c = sdeint(sde, y0, [0.0, 1.0], bm, method="euler", dt=0.1)
    d = sdeint(sde, y0, [0.0, 1.0], bm, method="euler", dt=0.1, chunk_size=4)
    assert torch.equal(c, d)


def test_chunked_solve_keeps_pathwise_gradients():
    # Expected: d E[X_1] / d x0 for GBM (mu = 0.5) is E[X_1 / x0] ~ e^0.5: the chunked solve writes
    # into one preallocated tensor and the gradient flows through every chunk (equal to one chunk's).
    grads = []
    for chunk in (4000, 1000):
        x0 = torch.ones(4000, 1, dtype=F64, requires_grad=True)
        y = sdeint(GBM(), x0, [0.0, 1.0], method="srk", dt=0.05, seed=0, chunk_size=chunk)
        (g,) = torch.autograd.grad(y[-1].mean(), x0)
        grads.append(g)
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=1e-15)
    assert abs(float(grads[0].sum()) - math.exp(0.5)) < 0.08  # 4000 paths: se ~ 0.02


def test_sample_brownian_path_moments():
    # Expected: dW ~ N(0, h), U = int (W - W_0) ds with E U = 0, Var U = h^3 / 3, Cov(dW, U) = h^2 / 2
    # (Foster, Lyons & Oberhauser 2020); 2e5 samples: relative sampling error ~ 0.3%, tolerance 2%.
    h = 0.25
    bm = SampleBrownianPath([0.0, h, 2 * h], (200_000, 1), torch.arange(200_000), F64, torch.device("cpu"))
    dw, u = bm(h, 2 * h, return_U=True)
    assert torch.equal(dw, bm(h, 2 * h))
    assert abs(float(dw.var()) / h - 1) < 0.02
    assert abs(float(u.var()) / (h**3 / 3) - 1) < 0.02
    assert abs(float((dw * u).mean()) / (h**2 / 2) - 1) < 0.02
    assert abs(float(u.mean())) < 4 * math.sqrt(h**3 / 3 / 200_000)
    first, _ = bm(0.0, h, return_U=True)
    assert abs(float((first * dw).mean())) < 4 * h / math.sqrt(200_000)  # independent steps
