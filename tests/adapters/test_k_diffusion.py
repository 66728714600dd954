"""k-diffusion's samplers, by their names, against sdeflow's on the same denoiser and grid (float64).

k-diffusion's ``sampling.py`` is loaded by path (``import k_diffusion`` needs torchvision); it is a
test dependency (`pip install --no-deps k-diffusion`, Makefile) and never skipped.
"""

import pytest
import torch

import sdeflow
from sdeflow import targets
from sdeflow.adapters import from_k_diffusion, load_k_diffusion_sampling, to_k_diffusion
from sdeflow.processes import EDM, VE, VP, DiscreteVP

from ..solvers.test_ode_orders import test_declared_ode_order_is_measured as measured_order

K = load_k_diffusion_sampling()


def _denoiser():
    # A nonlinear EDM-preconditioned denoiser D(x, sigma) (random MLP): any exact-arithmetic difference
    # between two samplers shows at once.
    with torch.random.fork_rng():  # the test suite forbids touching the global generator
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(5, 32), torch.nn.Tanh(), torch.nn.Linear(32, 4)).double()

    def D(x, sigma):
        c = (1.0 / (1.0 + sigma**2).sqrt())[:, None]
        with torch.no_grad():
            return x * c**2 + sigma[:, None] * c * net(torch.cat([x * c, sigma.log()[:, None] / 4], 1))

    return D


@pytest.mark.parametrize("steps", [10, 50])
@pytest.mark.parametrize("name", ["euler", "heun", "dpmpp_2m", "lms"])
def test_k_diffusion_samplers_are_reproduced(name, steps):
    # Same denoiser, same Karras grid (ending with 0), same start: sdeflow's solver of the same name
    # equals k-diffusion's sample_<name> to 1e-6 (measured: 0 for euler/heun, ~6e-15 for dpmpp_2m and lms
    # on states of size ~5; lms's weights are exact Gauss-Legendre where k-diffusion uses scipy's quad).
    D = _denoiser()
    model, process = from_k_diffusion(D, sigma_min=0.002, sigma_max=80.0)
    x = 80.0 * torch.randn(16, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    sigmas = K.get_sigmas_karras(steps, 0.002, 80.0).double()
    with torch.random.fork_rng():  # k-diffusion's euler/heun draw churn noise from the global generator
        ref = getattr(K, f"sample_{name}")(D, x.clone(), sigmas, disable=True)
    out = sdeflow.sample(model, process, x, solver=name, grid=sigmas).samples
    assert float((out - ref).abs().max()) <= 1e-6


def test_dpmpp_2m_is_the_midpoint_flavour():
    # dpmpp_2m is dpm_solver_pp_2m with solver_type="midpoint"; the "heun" flavour (exact phi_2) differs
    # from k-diffusion's sample_dpmpp_2m by far more than round-off at 10 steps (> 1e-3 here).
    D = _denoiser()
    model, process = from_k_diffusion(D)
    x = 80.0 * torch.randn(8, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    sigmas = K.get_sigmas_karras(10, 0.002, 80.0).double()
    ref = K.sample_dpmpp_2m(D, x.clone(), sigmas, disable=True)
    mid = sdeflow.sample(model, process, x, solver="dpm_solver_pp_2m", solver_type="midpoint", grid=sigmas).samples
    heun = sdeflow.sample(model, process, x, solver="dpm_solver_pp_2m", grid=sigmas).samples
    assert float((mid - ref).abs().max()) <= 1e-6
    assert float((heun - ref).abs().max()) > 1e-3
    with pytest.raises(ValueError, match="solver_type"):
        sdeflow.sample(model, process, x, solver="dpm_solver_pp", solver_type="rk", grid=sigmas)


@pytest.mark.parametrize("name,options", [("lms", {"order": 2}), ("lms", {"order": 4}), ("dpmpp_2m", {})])
def test_new_solvers_have_their_declared_order(name, options):
    # The suite's measured-order check (tests/solvers/test_ode_orders.py): slope of log-error between 128
    # and 256 Karras steps = declared order +- 0.2 (lms: variable-step Adams-Bashforth of order k; the
    # midpoint 2M: second order).
    measured_order(name, options)


def test_to_k_diffusion_maps_any_process_to_edm():
    # The wrappers' state map y = x/alpha, rho = sigma/alpha: the exact x0 of a Gaussian mixture served on
    # VP, on a DDPM table and on VE (alpha = 1: the identity map), seen as k-diffusion denoisers, equals the mixture's exact EDM denoiser (1e-10).
    mix = targets.ring2d()
    y = 3.0 * torch.randn(32, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    rho = torch.full((32,), 2.5, dtype=torch.float64)
    exact = mix.x0(y, 2.5, EDM())
    for process in (VP(), DiscreteVP.linear(), VE(sigma_max=50.0)):
        for kind in ("eps", "v"):
            D = to_k_diffusion(mix.model(process, kind), process)
            torch.testing.assert_close(D(y, rho), exact, rtol=1e-10, atol=1e-10)
        assert D.sigma_max == pytest.approx(float(process.noise_level(process.T)))
    model, edm = from_k_diffusion(to_k_diffusion(mix.model(VP(), "eps"), VP()))
    assert edm.sigma_max == pytest.approx(float(VP().noise_level(1.0)))
    assert model.prediction == "x0"


def test_extra_args_reach_the_denoiser():
    # k-diffusion's extra_args (conditioning) pass through bind() and per call.
    seen = []

    def D(x, sigma, cond=None):
        seen.append(cond)
        return torch.zeros_like(x)

    model, process = from_k_diffusion(D, extra_args={"cond": 1})
    model(torch.ones(2, 3), torch.ones(2))
    model.bind(cond=2)(torch.ones(2, 3), torch.ones(2))
    assert seen == [1, 2]


def test_bad_input_is_named():
    with pytest.raises(TypeError, match="denoiser"):
        from_k_diffusion(3)
    with pytest.raises(TypeError, match="extra_args"):
        from_k_diffusion(lambda x, s: x, extra_args=[1])
    with pytest.raises(TypeError, match="process"):
        to_k_diffusion(lambda x, t: x, "vp", "eps")
    with pytest.raises(ValueError, match="prediction"):
        to_k_diffusion(lambda x, t: x, VP())
