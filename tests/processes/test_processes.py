"""Process identities against autograd and closed forms, log-SNR round trips, forward simulation."""

import math

import pytest
import torch

from sdeflow.processes import EDM, VE, VP, Cosine, DiffusionProcess, DiscreteVP, Linear, SubVP, available, get

PROCESSES = [VP(), SubVP(), VE(), EDM(), Cosine(), Linear(), DiscreteVP.linear(), VP(beta_min=0.5, beta_max=10.0)]
IDS = [repr(p) for p in PROCESSES]


def interior_times(p: DiffusionProcess, n: int = 9) -> torch.Tensor:
    # Avoid the ends, and for the piecewise-linear DiscreteVP the knots (derivative jumps there).
    t = torch.linspace(p.t_min * 1.5, p.T * 0.98, n, dtype=torch.float64)
    if isinstance(p, DiscreteVP):
        t = (torch.floor(t * p.N) + 0.37) / p.N
    return t


@pytest.mark.parametrize("p", PROCESSES, ids=IDS)
def test_derivatives_match_autograd(p):
    # Closed-form d_alpha, d_sigma must equal float64 autograd of alpha, sigma to round-off (1e-9 relative).
    t = interior_times(p)
    for closed, fn in ((p.d_alpha(t), p.alpha), (p.d_sigma(t), p.sigma)):
        auto = DiffusionProcess._autograd(p, fn, t)
        torch.testing.assert_close(closed, auto, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("p", PROCESSES, ids=IDS)
def test_f_and_g2_are_the_derived_ones(p):
    # f = d_alpha/alpha and g^2 = d(sigma^2)/dt - 2 f sigma^2, whatever a subclass overrides (1e-9 relative).
    t = interior_times(p)
    a, s = p.alpha(t), p.sigma(t)
    auto_da = DiffusionProcess._autograd(p, p.alpha, t)
    auto_ds2 = DiffusionProcess._autograd(p, lambda u: p.sigma(u) ** 2, t)
    f = auto_da / a
    torch.testing.assert_close(p.f(t), f, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(p.g2(t), auto_ds2 - 2 * f * s**2, rtol=1e-8, atol=1e-12)
    assert bool((p.g2(t) > 0).all())


@pytest.mark.parametrize("p", PROCESSES, ids=IDS)
def test_log_snr_matches_definition_and_round_trips(p):
    # log_snr = log(alpha^2/sigma^2) (1e-10) and t_from_log_snr inverts it to 1e-9 in t, also via bisection.
    t = interior_times(p)
    lam = p.log_snr(t)
    torch.testing.assert_close(lam, torch.log(p.alpha(t) ** 2 / p.sigma(t) ** 2), rtol=1e-10, atol=1e-10)
    assert bool((lam[1:] < lam[:-1]).all()), "log-SNR must decrease in t"
    torch.testing.assert_close(p.t_from_log_snr(lam), t, rtol=0, atol=1e-9)
    torch.testing.assert_close(DiffusionProcess.t_from_log_snr(p, lam), t, rtol=0, atol=1e-9)
    torch.testing.assert_close(p.t_from_noise_level(p.noise_level(t)), t, rtol=0, atol=1e-9)


@pytest.mark.parametrize("p", PROCESSES, ids=IDS)
def test_boundary_values(p):
    # Data at t = 0: alpha(0) = 1 and sigma(0) = 0 exactly (to 1e-12).
    assert abs(float(p.alpha(0.0)) - 1.0) < 1e-12
    assert abs(float(p.sigma(0.0))) < 1e-12
    assert 0 < p.t_min < p.T


def test_closed_forms_of_named_processes():
    # VP: sigma^2 + alpha^2 = 1; SubVP: sigma = 1 - alpha^2; EDM: sigma = t; Linear: alpha + sigma = 1;
    # VE: sigma(t)^2 = s(t)^2 - sigma_min^2 with s geometric; the cosine schedule at t: cos formula.
    t = torch.linspace(0.01, 0.9, 7, dtype=torch.float64)
    vp, svp = VP(), SubVP()
    torch.testing.assert_close(vp.alpha(t) ** 2 + vp.sigma(t) ** 2, torch.ones_like(t))
    torch.testing.assert_close(svp.sigma(t), 1 - svp.alpha(t) ** 2)
    B = 0.1 * t + 0.5 * 19.9 * t**2
    torch.testing.assert_close(vp.alpha(t), torch.exp(-0.5 * B))
    torch.testing.assert_close(EDM().sigma(t), t)
    lin = Linear()
    torch.testing.assert_close(lin.alpha(t) + lin.sigma(t), torch.ones_like(t))
    ve = VE(sigma_min=0.01, sigma_max=50.0)
    torch.testing.assert_close(ve.sigma(t) ** 2, (0.01 * (5000.0**t)) ** 2 - 0.01**2)
    assert abs(float(ve.sigma(ve.t_min)) - 0.01) < 1e-12
    c = Cosine()
    s = 0.008
    expected = torch.cos((t + s) / (1 + s) * math.pi / 2) / math.cos(s / (1 + s) * math.pi / 2)
    torch.testing.assert_close(c.alpha(t), expected)


def test_discrete_vp_serves_the_table_exactly():
    # At the knots t_n = n/N the process equals the DDPM table: alpha^2 = alpha_bar_n to 1e-14.
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    p = VP.from_betas(betas)
    ac = torch.cumprod(1 - betas, 0)
    n = torch.tensor([0, 1, 10, 500, 999])
    t = (n + 1).double() / 1000
    torch.testing.assert_close(p.alpha(t) ** 2, ac[n], rtol=1e-13, atol=0)
    torch.testing.assert_close(p.model_index(t), n.double())
    torch.testing.assert_close(VP.from_alphas_cumprod(ac).alpha(t), p.alpha(t))


def test_forward_simulation_matches_marginal():
    # Euler-Maruyama on the forward SDE dx = f x dt + g dW from x0 = 1.5 (1000 fine steps, 20k paths)
    # must reproduce the closed-form marginal N(alpha x0, sigma^2) at t = 0.6 T: mean within 5 standard
    # errors (+ the O(dt) bias, far smaller), std within 2%, and a KS test p-value above 1e-3.
    from scipy import stats

    gen = torch.Generator().manual_seed(0)
    for p in (VP(), SubVP(), Cosine(), EDM(), VE()):
        sde = p.forward_sde()
        n, steps = 20000, 1000
        t_end = 0.6 * p.T
        ts = torch.linspace(0.0, t_end, steps + 1, dtype=torch.float64)
        x = torch.full((n, 1), 1.5, dtype=torch.float64)
        for i in range(steps):
            t0, t1 = float(ts[i]), float(ts[i + 1])
            dw = torch.randn(x.shape, generator=gen, dtype=torch.float64) * math.sqrt(t1 - t0)
            x = x + sde.drift(t0, x) * (t1 - t0) + sde.diffusion_times(t0, x, dw)
        mean, std = float(p.alpha(t_end)) * 1.5, float(p.sigma(t_end))
        assert abs(float(x.mean()) - mean) < 5 * std / math.sqrt(n) + 0.01 * std, p
        assert abs(float(x.std()) / std - 1) < 0.02, p
        assert stats.kstest(((x.squeeze() - mean) / std).numpy(), "norm").pvalue > 1e-3, p


def test_prior_sampling_and_log_prob():
    # Prior N(0, sigma(T)^2 I): per-sample seeds make draws batch-invariant; log-density equals the
    # closed form of a 3-D isotropic Gaussian.
    p = VP()
    x = p.prior_sample((6, 3), seeds=10, dtype=torch.float64)
    x1 = p.prior_sample((1, 3), seeds=13, dtype=torch.float64)
    torch.testing.assert_close(x[3:4], x1)
    s = p.prior_std()
    expected = -0.5 * (x**2).sum(-1) / s**2 - 3 * math.log(s) - 1.5 * math.log(2 * math.pi)
    torch.testing.assert_close(p.prior_log_prob(x), expected)
    xt, eps = p.sample_marginal(torch.ones(4, 2, dtype=torch.float64), 0.5, seeds=0)
    torch.testing.assert_close(xt, p.alpha(0.5) * 1 + p.sigma(0.5) * eps)


def test_per_sample_times_broadcast():
    # Coefficients accept (batch,) times and marginal() applies them per sample.
    p = EDM()
    t = torch.tensor([1.0, 2.0, 3.0])
    x0 = torch.zeros(3, 2, 2)
    eps = torch.ones(3, 2, 2)
    xt = p.marginal(x0, t, eps)
    torch.testing.assert_close(xt[:, 0, 0], t)


def test_registry_and_errors():
    assert set(available()) == {"vp", "subvp", "ve", "edm", "cosine", "linear"}
    assert isinstance(get("edm", sigma_max=10.0), EDM)
    with pytest.raises(ValueError, match="unknown process"):
        get("nope")
    with pytest.raises(ValueError, match="beta_max"):
        VP(beta_min=1.0, beta_max=0.5)
    with pytest.raises(ValueError, match="sigma_max"):
        EDM(sigma_min=1.0, sigma_max=0.5)
    with pytest.raises(ValueError, match="T must be < 1"):
        Cosine(T=1.0)
    with pytest.raises(ValueError, match="T must be <= 1"):
        Linear(T=2.0)
    with pytest.raises(ValueError, match="strictly decreasing"):
        DiscreteVP([0.5, 0.9])
    with pytest.raises(ValueError, match="t_min"):
        VP(t_min=2.0)
    with pytest.raises(ValueError, match=r"\[0, T\]"):
        VP().check_time(1.5)
