"""Gaussian-mixture targets: exact scores, denoisers, samples and probability-flow solutions.

Every expected figure comes from mathematics (autograd of the exact density, Tweedie's identity,
moments of the mixture, the closed-form flow of one Gaussian), never from stored sums.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import sdeflow.targets.gaussian_mixture as gm_module
from sdeflow.processes import EDM, VE, VP, Cosine, DiscreteVP, Linear, SubVP
from sdeflow.targets import (
    PREDICTIONS,
    GaussianMixture,
    MixtureModel,
    available,
    gaussian,
    get,
    mixture64d,
    ring2d,
)

F64 = torch.float64

PROCESSES = [VP(), SubVP(), VE(), EDM(), Cosine(), Linear(), DiscreteVP.linear()]
PROCESS_IDS = ["vp", "subvp", "ve", "edm", "cosine", "linear", "discrete_vp"]
COV_TYPES = ["diagonal", "full", "isotropic"]

# Fractions of T: the data end, a little noise, the middle, mostly noise, the noise end. They avoid
# the knots n/N of DiscreteVP (where its log alpha has a kink) so finite differences stay smooth.
FRACTIONS = [0.0, 0.0213, 0.3127, 0.7071, 1.0]


def make_mixture(cov_type: str, event_shape=None) -> GaussianMixture:
    """A 3-component mixture in D = 4 with unequal weights and well-separated means."""
    rng = np.random.default_rng(2024)
    weights = np.array([0.2, 0.5, 0.3])
    means = np.array([[-1.0, 0.5, 0.0, 0.3], [1.2, -0.4, 0.6, -0.2], [0.1, 1.1, -0.9, 0.4]])
    if cov_type == "diagonal":
        stds = np.exp(rng.uniform(np.log(0.1), np.log(0.7), size=(3, 4)))
        return GaussianMixture(weights, means, stds=stds, event_shape=event_shape)
    if cov_type == "isotropic":
        return GaussianMixture(weights, means, stds=np.array([0.3, 0.15, 0.5]), event_shape=event_shape)
    a = rng.normal(size=(3, 4, 4)) * 0.4
    covs = a @ a.transpose(0, 2, 1) + 0.02 * np.eye(4)
    return GaussianMixture(weights, means, covs=covs, event_shape=event_shape)


def times(process, n: int):
    """The scalar test times and one per-sample time vector spanning [0, T]."""
    T = float(process.T)
    per_sample = torch.tensor([FRACTIONS[i % len(FRACTIONS)] * T for i in range(n)], dtype=F64)
    return [f * T for f in FRACTIONS] + [per_sample]


def points(target: GaussianMixture, t, process, n: int = 20, seed: int = 0) -> torch.Tensor:
    """Float64 states drawn from the marginal at t (where the functions are evaluated in practice)."""
    return target.noised_sample(n, t, process, seeds=seed, dtype=F64)


def coef(fn, t, x):
    """A process coefficient at t as a float64 tensor broadcastable against flat (batch, D) x."""
    c = fn(t)
    return c if c.ndim == 0 else c.reshape(-1, *([1] * (x.ndim - 1)))


# ---------------------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("cov_type", COV_TYPES)
@pytest.mark.parametrize("process", PROCESSES, ids=PROCESS_IDS)
def test_score_is_the_gradient_of_the_marginal_log_density(process, cov_type):
    # Expected: score == autograd of marginal_log_prob to rtol 1e-8. Both are closed forms of the
    # same float64 density, so only round-off (~1e-13 here) separates them.
    target = make_mixture(cov_type)
    for t in times(process, 20):
        x = points(target, t, process).requires_grad_(True)
        (grad,) = torch.autograd.grad(target.marginal_log_prob(x, t, process).sum(), x)
        score = target.score(x.detach(), t, process)
        torch.testing.assert_close(score, grad, rtol=1e-8, atol=1e-10 * float(grad.abs().max()))


@pytest.mark.parametrize("cov_type", COV_TYPES)
@pytest.mark.parametrize("process", PROCESSES, ids=PROCESS_IDS)
def test_predictions_convert_into_each_other(process, cov_type):
    # Expected: x = alpha x0 + sigma eps (Tweedie) to 1e-12 relative, since x0 and eps are exact
    # posterior means and the identity is algebraic; eps = -sigma score, v = alpha eps - sigma x0,
    # x0 = (alpha x - sigma v) / (alpha^2 + sigma^2), velocity = d_alpha x0 + d_sigma eps, and where
    # f is finite also velocity = f x - g^2/2 score (the probability-flow ODE), all to round-off.
    target = make_mixture(cov_type)
    T = float(process.T)
    for t in [0.0213 * T, 0.3127 * T, 0.7071 * T, torch.linspace(0.05, 0.95, 20, dtype=F64) * T]:
        x = points(target, t, process)
        out = {kind: target.predict(kind, x, t, process) for kind in PREDICTIONS}
        a, s = coef(process.alpha, t, x), coef(process.sigma, t, x)
        da, ds = coef(process.d_alpha, t, x), coef(process.d_sigma, t, x)
        scale = float(x.abs().max())
        torch.testing.assert_close(a * out["x0"] + s * out["eps"], x, rtol=1e-12, atol=1e-12 * scale)
        torch.testing.assert_close(out["eps"], -s * out["score"], rtol=1e-12, atol=1e-13)
        torch.testing.assert_close(out["v"], a * out["eps"] - s * out["x0"], rtol=1e-12, atol=1e-13)
        torch.testing.assert_close((a * x - s * out["v"]) / (a * a + s * s), out["x0"], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(out["velocity"], da * out["x0"] + ds * out["eps"], rtol=1e-12, atol=1e-12)
        f, g2 = coef(process.f, t, x), coef(process.g2, t, x)
        pf = f * x - 0.5 * g2 * out["score"]
        torch.testing.assert_close(out["velocity"], pf, rtol=1e-9, atol=1e-9 * float(pf.abs().max()))
        # Each named method is predict(kind, ...).
        for kind in PREDICTIONS:
            assert torch.equal(getattr(target, kind)(x, t, process), out[kind])


@pytest.mark.parametrize("kind", PREDICTIONS)
def test_model_callable_returns_predict_in_the_state_dtype(kind):
    # Expected: model(process, kind)(x, t) is predict(kind, x, t, process) (bitwise: same code) in
    # float32 for a float32 state, with the attributes the samplers read.
    target, process = make_mixture("full"), VP()
    model = target.model(process, kind)
    assert isinstance(model, MixtureModel) and model.prediction == kind and model.process is process
    x = points(target, 0.4, process).float()
    t = torch.full((x.shape[0],), 0.4)
    out = model(x, t)
    assert out.dtype == torch.float32 and out.shape == x.shape
    assert torch.equal(out, target.predict(kind, x, t, process))
    assert kind in repr(model)


@pytest.mark.parametrize("cov_type", COV_TYPES)
@pytest.mark.parametrize("process", PROCESSES, ids=PROCESS_IDS)
def test_data_end_returns_the_state_and_the_data_density(process, cov_type):
    # Expected at t = 0 (sigma = 0): the posterior is a point mass, so x0 == x bitwise and eps == 0;
    # p_0 is the data density, so marginal_log_prob == log_prob (1e-12: the same formula with
    # alpha = 1, sigma = 0). The velocity stays finite although d_sigma = inf for most processes,
    # and equals its limit: velocity at t = 1e-12 T differs by O(t), far below rtol 1e-5, atol 1e-6.
    target = make_mixture(cov_type)
    x = points(target, 0.0, process)
    assert torch.equal(target.x0(x, 0.0, process), x)
    assert torch.equal(target.eps(x, 0.0, process), torch.zeros_like(x))
    torch.testing.assert_close(target.marginal_log_prob(x, 0.0, process), target.log_prob(x), rtol=1e-12, atol=1e-12)
    velocity = target.velocity(x, 0.0, process)
    assert bool(torch.isfinite(velocity).all())
    nearby = target.velocity(x, 1e-12 * float(process.T), process)
    torch.testing.assert_close(velocity, nearby, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_linear_noise_end_gives_the_mixture_mean(cov_type):
    # Expected at Linear t = 1 (alpha = 0, sigma = 1): x_t carries no information about x0, so
    # E[x0 | x_t] is the mixture mean (1e-12), p_1 = N(0, I) exactly, score = -x, and every
    # prediction is finite (no division by alpha anywhere).
    target, process = make_mixture(cov_type), Linear()
    x = points(target, 1.0, process)
    x0 = target.x0(x, 1.0, process)
    torch.testing.assert_close(x0, target.mean.expand_as(x0), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        target.marginal_log_prob(x, 1.0, process), process.prior_log_prob(x), rtol=1e-12, atol=1e-12
    )
    torch.testing.assert_close(target.score(x, 1.0, process), -x, rtol=1e-12, atol=1e-12)
    for kind in PREDICTIONS:
        for t in (1.0, torch.ones(x.shape[0], dtype=F64)):
            assert bool(torch.isfinite(target.predict(kind, x, t, process)).all()), kind


def test_log_densities_integrate_to_one_on_a_grid():
    # Expected: the Riemann sum of exp(log_prob) over [-2.5, 2.5]^2 with spacing h = 0.01 (= std/5
    # for ring2d's std 0.05) is 1 within 1e-3: by Poisson summation a Gaussian's Riemann sum errs by
    # ~exp(-2 pi^2 std^2 / h^2) ~ 1e-214, and the mass outside the box is < 1e-30. The noised
    # marginal at VP t = 0.1 (std ~ 0.33, mean radius ~ 0.95) is a density too (mass outside < 1e-6).
    target = ring2d()
    h = 0.01
    axis = torch.arange(-2.5, 2.5 + h / 2, h, dtype=F64)
    grid = torch.cartesian_prod(axis, axis)
    mass = torch.exp(target.log_prob(grid)).sum() * h * h
    assert abs(float(mass) - 1.0) < 1e-3
    mass_t = torch.exp(target.marginal_log_prob(grid, 0.1, VP())).sum() * h * h
    assert abs(float(mass_t) - 1.0) < 1e-3


@pytest.mark.parametrize("process", PROCESSES, ids=PROCESS_IDS)
def test_full_isotropic_and_diagonal_paths_agree(process):
    # Expected: a full-covariance mixture whose covariances are diagonal, and an isotropic one given
    # as (K, D) stds, give the diagonal path's numbers (1e-10: same mathematics, different
    # arithmetic: eigenbasis products vs elementwise, matrix products vs broadcasts).
    rng = np.random.default_rng(7)
    weights, means = np.array([0.3, 0.7]), rng.normal(size=(2, 3))
    stds = np.exp(rng.uniform(-2.0, 0.0, size=(2, 3)))
    diag = GaussianMixture(weights, means, stds=stds)
    full = GaussianMixture(weights, means, covs=np.stack([np.diag(s**2) for s in stds]))
    iso = GaussianMixture(weights, means, stds=stds[:, 0])
    iso_as_diag = GaussianMixture(weights, means, stds=np.repeat(stds[:, :1], 3, axis=1))
    x = torch.tensor(rng.normal(size=(12, 3)), dtype=F64)
    torch.testing.assert_close(full.log_prob(x), diag.log_prob(x), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(full.covariance, diag.covariance, rtol=1e-12, atol=1e-14)
    for t in times(process, 12):
        for a, b in ((full, diag), (iso, iso_as_diag)):
            lp_a, lp_b = a.marginal_log_prob(x, t, process), b.marginal_log_prob(x, t, process)
            torch.testing.assert_close(lp_a, lp_b, rtol=1e-10, atol=1e-10)
            for kind in PREDICTIONS:
                out_a, out_b = a.predict(kind, x, t, process), b.predict(kind, x, t, process)
                torch.testing.assert_close(out_a, out_b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_per_sample_times_match_row_by_row_evaluation(cov_type, monkeypatch):
    # Expected: with one time per sample, row i equals the evaluation of row i alone at its scalar
    # time (1e-12): the per-sample (batch, K, D) path and the one-time matrix-product path compute
    # the same formulas; chunking the batch (forced here with tiny chunks) changes nothing.
    target, process = make_mixture(cov_type), Cosine()
    t = torch.linspace(0.0, 1.0, 9, dtype=F64) * process.T
    x = points(target, t, process, n=9)
    monkeypatch.setattr(gm_module, "_CHUNK_ELEMENTS", 2 * target.n_components * target.dim)
    for kind in PREDICTIONS:
        batch = target.predict(kind, x, t, process)
        for i in range(9):
            row = target.predict(kind, x[i : i + 1], float(t[i]), process)
            torch.testing.assert_close(batch[i : i + 1], row, rtol=1e-12, atol=1e-12)
    lp = target.marginal_log_prob(x, t, process)
    rows = torch.cat([target.marginal_log_prob(x[i : i + 1], float(t[i]), process) for i in range(9)])
    torch.testing.assert_close(lp, rows, rtol=1e-12, atol=1e-12)


def test_event_shape_flattens_images():
    # Expected: a mixture on (1, 2, 2) "images" returns (batch, 1, 2, 2) predictions equal to the
    # flat D = 4 mixture's predictions reshaped, and (batch,) log-densities (bitwise: same numbers).
    flat, image = make_mixture("full"), make_mixture("full", event_shape=(1, 2, 2))
    assert image.event_shape == (1, 2, 2) and image.dim == 4
    x = points(flat, 0.3, VP())
    xi = x.reshape(-1, 1, 2, 2)
    for kind in PREDICTIONS:
        out = image.predict(kind, xi, 0.3, VP())
        assert out.shape == xi.shape
        assert torch.equal(out.reshape(x.shape), flat.predict(kind, x, 0.3, VP()))
    assert torch.equal(image.log_prob(xi), flat.log_prob(x))
    assert image.sample(3, seeds=0).shape == (3, 1, 2, 2)


# ---------------------------------------------------------------------------------------- sampling
def assert_moments(samples: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor, n_se: float = 5.0) -> None:
    """Sample mean and covariance within n_se standard errors of the exact moments.

    The standard error of a covariance entry is std((x_i - m_i)(x_j - m_j)) / sqrt(n), estimated
    from the samples; that of a mean entry is sqrt(cov_ii / n).
    """
    n = samples.shape[0]
    x = samples.to(F64)
    se_mean = torch.sqrt(torch.diagonal(cov) / n)
    assert bool(((x.mean(0) - mean).abs() <= n_se * se_mean).all()), (x.mean(0), mean)
    c = x - mean
    products = c[:, :, None] * c[:, None, :]
    se_cov = products.std(0) / math.sqrt(n)
    assert bool(((products.mean(0) - cov).abs() <= n_se * se_cov).all()), (products.mean(0), cov)


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_samples_have_the_mixture_moments(cov_type):
    # Expected: mean, covariance and component frequencies of 100k samples within 5 standard errors
    # of the exact values (a 5-SE miss has probability < 1e-6 per entry; the seeds are fixed).
    target = make_mixture(cov_type)
    n = 100_000
    x, comp = target.sample(n, seeds=123, dtype=F64, return_components=True)
    assert x.shape == (n, 4) and comp.shape == (n,) and comp.dtype == torch.int64
    assert_moments(x, target.mean, target.covariance)
    freq = torch.bincount(comp, minlength=3).to(F64) / n
    w = target.weights
    assert bool(((freq - w).abs() <= 5 * torch.sqrt(w * (1 - w) / n)).all())
    # The generator path draws from the same law.
    xg = target.sample(n, generator=torch.Generator().manual_seed(5), dtype=F64)
    assert_moments(xg, target.mean, target.covariance)


def test_per_sample_seeds_are_batch_invariant():
    # Expected: sample i of a batch drawn with seed s equals the single sample drawn with seed s + i
    # (bitwise), as does its component; explicit seed lists give the same rows; the default dtype is
    # float32 and a generator reproduces itself.
    target = make_mixture("full")
    batch, comp = target.sample(7, seeds=100, return_components=True)
    assert batch.dtype == torch.float32
    for i in range(7):
        one, c = target.sample(1, seeds=[100 + i], return_components=True)
        assert torch.equal(one[0], batch[i]) and int(c[0]) == int(comp[i])
    assert torch.equal(target.sample(3, seeds=torch.tensor([102, 100, 106])), batch[[2, 0, 6]])
    a = target.sample(5, generator=torch.Generator().manual_seed(1))
    b = target.sample(5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    # noised samples keep the data of sample() and are batch invariant too.
    xt, x0 = target.noised_sample(7, 0.5, VP(), seeds=100, return_x0=True)
    assert torch.equal(x0, batch)
    assert torch.equal(target.noised_sample(1, 0.5, VP(), seeds=[103])[0], xt[3])


@pytest.mark.parametrize("process", [VP(), EDM(), Linear()], ids=["vp", "edm", "linear"])
def test_noised_samples_have_the_marginal_moments(process):
    # Expected: samples of p_t have mean alpha m and covariance alpha^2 Cov + sigma^2 I within 5
    # standard errors (100k samples, fixed seeds).
    target = make_mixture("diagonal")
    t = 0.4 * float(process.T)
    x = target.noised_sample(100_000, t, process, seeds=7, dtype=F64)
    a, s = float(process.alpha(t)), float(process.sigma(t))
    assert_moments(x, a * target.mean, a * a * target.covariance + s * s * torch.eye(4, dtype=F64))


def test_posterior_mean_matches_monte_carlo():
    # A 1-D two-component mixture at VP t = 0.3 (alpha ~ 0.76, sigma ~ 0.65). Within any bin B of
    # x_t, E[x0 - x0_hat(x_t) | x_t in B] = 0 exactly (the tower property; no binning bias), so the
    # bin mean of x0 - x0_hat(x_t) must be within 5 standard errors (its std / sqrt(count)) of 0 in
    # each of 20 quantile bins (400k pairs; a 5-SE miss has probability ~ 1e-5 overall). As a
    # check of power, the bin means of x0 themselves differ from 0 by many standard errors.
    target = GaussianMixture([0.3, 0.7], [[-1.0], [1.5]], stds=[[0.3], [0.5]])
    process = VP()
    x_t, x0 = target.noised_sample(400_000, 0.3, process, seeds=11, dtype=F64, return_x0=True)
    resid = (x0 - target.x0(x_t, 0.3, process))[:, 0]
    edges = torch.quantile(x_t[:50_000, 0], torch.linspace(0.0, 1.0, 21, dtype=F64))
    idx = torch.bucketize(x_t[:, 0], edges[1:-1])
    for b in range(20):
        r = resid[idx == b]
        se = float(r.std()) / math.sqrt(r.numel())
        assert abs(float(r.mean())) <= 5 * se, (b, float(r.mean()), se)
    assert float(resid.abs().mean()) < float((x0 - target.mean).abs().mean())


# ---------------------------------------------------------------------------------------- one Gaussian
def single_gaussians():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(3, 3))
    return [
        gaussian([0.5, -1.0, 2.0], [0.2, 1.0, 3.0]),
        GaussianMixture([1.0], [[0.5, -1.0, 2.0]], covs=(a @ a.T + 0.1 * np.eye(3))[None]),
    ]


@pytest.mark.parametrize("target", single_gaussians(), ids=["diagonal", "full"])
@pytest.mark.parametrize("process", PROCESSES, ids=PROCESS_IDS)
def test_pf_ode_solution_is_the_flow_of_the_velocity(process, target):
    # Expected: (1) the flow composes, t -> s -> u equals t -> u, and t -> t is the identity (1e-12,
    # the maps are linear with ratios of square roots); (2) d/ds x_s equals the exact velocity at
    # (x_s, s): a central difference with h = 1e-6 T has error O(h^2) ~ 1e-12 relative plus
    # round-off ~ 1e-10, well within rtol 1e-5. Times avoid DiscreteVP's knots.
    T = float(process.T)
    t, s, u = 0.8123 * T, 0.4123 * T, 0.1234 * T
    x = points(target, t, process, n=16)
    x_s = target.pf_ode_solution(x, t, s, process)
    two_steps, one_step = target.pf_ode_solution(x_s, s, u, process), target.pf_ode_solution(x, t, u, process)
    torch.testing.assert_close(two_steps, one_step, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(target.pf_ode_solution(x, t, t, process), x, rtol=1e-12, atol=1e-12)
    h = 1e-6 * T
    derivative = (target.pf_ode_solution(x, t, s + h, process) - target.pf_ode_solution(x, t, s - h, process)) / (2 * h)
    velocity = target.velocity(x_s, s, process)
    torch.testing.assert_close(derivative, velocity, rtol=1e-5, atol=1e-7 * float(velocity.abs().max()))
    # Per-sample times give the rows of scalar evaluations.
    ts = torch.linspace(0.3, 0.9, 16, dtype=F64) * T
    per_sample = target.pf_ode_solution(x, ts, s, process)
    for i in (0, 7, 15):
        row = target.pf_ode_solution(x[i : i + 1], float(ts[i]), s, process)
        torch.testing.assert_close(per_sample[i : i + 1], row, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("t", [0.37, torch.linspace(0.1, 0.9, 6, dtype=F64)], ids=["scalar_t", "per_sample_t"])
def test_predictions_are_differentiable_in_x(t):
    # Expected: for one Gaussian the velocity is affine in x, velocity = f x + (g^2/2) C^{-1} (x - alpha mu)
    # with C = alpha^2 Sigma + sigma^2 I, so its Jacobian trace (the divergence that likelihood
    # computations need) is D f + (g^2/2) tr C^{-1}; autograd through predict must give it (1e-10).
    target, process = single_gaussians()[1], VP()
    x = points(target, t, process, n=6).requires_grad_(True)
    velocity = target.velocity(x, t, process)
    trace = sum(torch.autograd.grad(velocity[:, i].sum(), x, retain_graph=True)[0][:, i] for i in range(3))
    tt = torch.as_tensor(t, dtype=F64).expand(6)
    a, s = process.alpha(tt), process.sigma(tt)
    cov = target.covs[0]
    eye = torch.eye(3, dtype=F64)
    expected = torch.stack(
        [
            3 * process.f(ti) + 0.5 * process.g2(ti) * torch.trace(torch.linalg.inv(ai**2 * cov + si**2 * eye))
            for ti, ai, si in zip(tt, a, s)
        ]
    )
    torch.testing.assert_close(trace, expected, rtol=1e-10, atol=1e-10)


def test_pf_ode_solution_transports_the_marginal():
    # Expected: pushing exact samples of p_t through the flow to s gives samples of p_s, so their
    # moments are those of p_s within 5 standard errors (50k samples).
    target, process = single_gaussians()[1], VP()
    x = target.noised_sample(50_000, 0.9, process, seeds=3, dtype=F64)
    x_s = target.pf_ode_solution(x, 0.9, 0.2, process)
    a, s = float(process.alpha(0.2)), float(process.sigma(0.2))
    assert_moments(x_s, a * target.mean, a * a * target.covariance + s * s * torch.eye(3, dtype=F64))


# ---------------------------------------------------------------------------------------- presets
def test_mixture64d_follows_its_recipe():
    # Expected: two builds are equal; K = 16, D = 64, diagonal; the parameters are numpy's draws in
    # the documented order (recomputed here with numpy), in particular means[0, 0] is the first
    # draw of default_rng(64).normal(0, 0.6).
    a, b = mixture64d(), mixture64d()
    assert torch.equal(a.means, b.means) and torch.equal(a.weights, b.weights) and torch.equal(a.covs, b.covs)
    assert (a.n_components, a.dim, a.event_shape, a.covariance_type) == (16, 64, (64,), "diagonal")
    assert a.means.shape == (16, 64) and a.mean.shape == (64,) and a.covariance.shape == (64, 64)
    assert float(a.means[0, 0]) == np.random.default_rng(64).normal(0.0, 0.6)
    rng = np.random.default_rng(64)
    means = rng.normal(0.0, 0.6, size=(16, 64))
    stds = np.exp(rng.uniform(np.log(0.05), np.log(0.5), size=(16, 64)))
    weights = rng.dirichlet(5.0 * np.ones(16))
    np.testing.assert_array_equal(a.means.numpy(), means)
    np.testing.assert_allclose(torch.diagonal(a.covs, dim1=1, dim2=2).numpy(), stds**2, rtol=1e-15)
    np.testing.assert_allclose(a.weights.numpy(), weights / weights.sum(), rtol=1e-15)
    assert not torch.equal(mixture64d(seed=1).means, a.means)


def test_ring2d_and_gaussian_presets():
    # Expected: ring2d's means are radius (cos 2 pi k/n, sin 2 pi k/n) with equal weights and its
    # covariance is std^2 I + (radius^2 / 2) I (a uniform ring has second moment r^2/2 per axis for
    # n >= 3); gaussian() is K = 1 with the given mean and variances; get() builds by name.
    ring = ring2d(n_modes=6, radius=2.0, std=0.1)
    k = torch.arange(6, dtype=F64)
    expected = 2.0 * torch.stack((torch.cos(2 * math.pi * k / 6), torch.sin(2 * math.pi * k / 6)), -1)
    torch.testing.assert_close(ring.means, expected)
    torch.testing.assert_close(ring.weights, torch.full((6,), 1 / 6, dtype=F64))
    torch.testing.assert_close(ring.covariance, (0.01 + 2.0) * torch.eye(2, dtype=F64), rtol=1e-12, atol=1e-12)
    assert ring.covariance_type == "isotropic"
    g = gaussian([1.0, 2.0, 3.0], 0.5)
    assert g.n_components == 1 and g.dim == 3
    torch.testing.assert_close(g.covariance, 0.25 * torch.eye(3, dtype=F64))
    g2 = gaussian(np.array([1.0, 2.0]), torch.tensor([0.5, 2.0]))
    torch.testing.assert_close(g2.covariance, torch.diag(torch.tensor([0.25, 4.0], dtype=F64)))
    assert available() == ["gaussian", "mixture64d", "ring2d"]
    assert torch.equal(get("ring2d", n_modes=6, radius=2.0, std=0.1).means, ring.means)
    assert torch.equal(get("mixture64d").means, mixture64d().means)
    assert get("gaussian", mean=[0.0], std=1.0).dim == 1
    assert "n_components=6" in repr(ring) and "event_shape" in repr(make_mixture("full", event_shape=(1, 2, 2)))


# ---------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(weights=[1.0, -1.0], means=[[0.0], [1.0]], stds=[1.0, 1.0]), ValueError, "weights"),
        (dict(weights=[1.0, float("nan")], means=[[0.0], [1.0]], stds=[1.0, 1.0]), ValueError, "weights"),
        (dict(weights=[[1.0]], means=[[0.0]], stds=[1.0]), ValueError, r"weights must have shape \(K,\)"),
        (dict(weights="abc", means=[[0.0]], stds=[1.0]), TypeError, "weights"),
        (dict(weights=[1.0, 1.0], means=[[0.0]], stds=[1.0]), ValueError, r"means must have shape \(K, D\) = \(2, D\)"),
        (dict(weights=[1.0], means=[0.0, 1.0], stds=[1.0]), ValueError, "means must have shape"),
        (dict(weights=[1.0], means=[[float("inf")]], stds=[1.0]), ValueError, "means must be finite"),
        (dict(weights=[1.0], means=[[0.0]]), ValueError, "exactly one of stds"),
        (dict(weights=[1.0], means=[[0.0]], stds=[1.0], covs=[[[1.0]]]), ValueError, "exactly one of stds"),
        (
            dict(weights=[1.0], means=[[0.0, 0.0]], stds=[[1.0, 1.0, 1.0]]),
            ValueError,
            r"stds must have shape \(K, D\) = \(1, 2\)",
        ),
        (dict(weights=[1.0], means=[[0.0]], stds=[0.0]), ValueError, "stds must be finite and > 0"),
        (
            dict(weights=[1.0], means=[[0.0, 0.0]], covs=[[1.0, 0.0], [0.0, 1.0]]),
            ValueError,
            r"covs must have shape \(K, D, D\) = \(1, 2, 2\)",
        ),
        (dict(weights=[1.0], means=[[0.0, 0.0]], covs=[[[1.0, 0.5], [0.0, 1.0]]]), ValueError, "covs must be sym"),
        (dict(weights=[1.0], means=[[0.0, 0.0]], covs=[[[1.0, 2.0], [2.0, 1.0]]]), ValueError, "covs must be pos"),
        (dict(weights=[1.0], means=[[0.0] * 4], stds=[1.0], event_shape=(3,)), ValueError, "event_shape"),
        (dict(weights=[1.0], means=[[0.0] * 4], stds=[1.0], event_shape="ab"), TypeError, "event_shape"),
    ],
)
def test_constructor_errors_name_the_argument(kwargs, error, match):
    # Expected: each malformed argument raises the stated error type, naming the argument.
    kwargs = dict(kwargs)
    with pytest.raises(error, match=match):
        GaussianMixture(kwargs.pop("weights"), kwargs.pop("means"), **kwargs)


def test_call_errors_name_the_argument():
    # Expected: bad states, times, kinds, processes and randomness sources raise with the argument's name.
    target, process = make_mixture("diagonal"), VP()
    x = torch.zeros(5, 4)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, \*event_shape\) = \(batch, 4\)"):
        target.score(torch.zeros(5, 3), 0.5, process)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        target.score(np.zeros((5, 4)), 0.5, process)
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        target.log_prob(torch.zeros(5, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"t must be a float, a 0-d tensor or a \(batch,\) = \(5,\) tensor"):
        target.score(x, torch.full((4,), 0.5), process)
    with pytest.raises(ValueError, match="t must be"):
        target.marginal_log_prob(x, torch.full((5, 1), 0.5), process)
    with pytest.raises(TypeError, match="t must be"):
        target.x0(x, "0.5", process)
    with pytest.raises(ValueError, match=r"kind must be one of \['eps', 'x0', 'v', 'score', 'velocity'\]"):
        target.predict("noise", x, 0.5, process)
    with pytest.raises(ValueError, match="prediction must be one of"):
        target.model(process, "epsilon")
    with pytest.raises(TypeError, match="process must be a sdeflow.processes.DiffusionProcess"):
        target.score(x, 0.5, "vp")
    with pytest.raises(TypeError, match="process must be"):
        target.model(None, "eps")
    with pytest.raises(ValueError, match="exactly one source of randomness"):
        target.sample(3)
    with pytest.raises(ValueError, match="exactly one source of randomness"):
        target.sample(3, seeds=0, generator=torch.Generator())
    with pytest.raises(ValueError, match="exactly one source of randomness"):
        target.noised_sample(3, 0.5, process)
    with pytest.raises(ValueError, match="n must be an integer"):
        target.sample(-1, seeds=0)
    with pytest.raises(ValueError, match="seeds must give one seed per sample"):
        target.sample(3, seeds=[1, 2])
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        target.sample(3, generator=5)
    with pytest.raises(ValueError, match=r"t must be a float, a 0-d tensor or a \(batch,\) = \(3,\)"):
        target.noised_sample(3, torch.full((2,), 0.5), process, seeds=0)
    with pytest.raises(ValueError, match="pf_ode_solution needs a single Gaussian"):
        target.pf_ode_solution(x, 0.5, 0.2, process)
    single = gaussian([0.0, 0.0, 0.0, 0.0], 1.0)
    with pytest.raises(ValueError, match=r"x_t must have shape"):
        single.pf_ode_solution(torch.zeros(5, 3), 0.5, 0.2, process)
    with pytest.raises(ValueError, match=r"s must be a float, a 0-d tensor or a \(batch,\) = \(5,\)"):
        single.pf_ode_solution(x, 0.5, torch.zeros(2), process)


def test_preset_errors_name_the_argument():
    # Expected: unknown names list the available ones; bad preset arguments name themselves.
    names = r"\['gaussian', 'mixture64d', 'ring2d'\]"
    with pytest.raises(ValueError, match=r"unknown target 'moons'; expected one of " + names):
        get("moons")
    with pytest.raises(ValueError, match="n_modes"):
        ring2d(n_modes=0)
    with pytest.raises(ValueError, match="radius"):
        ring2d(radius=-1.0)
    with pytest.raises(ValueError, match="std"):
        ring2d(std=0.0)
    with pytest.raises(ValueError, match="seed"):
        mixture64d(seed=-1)
    with pytest.raises(ValueError, match=r"mean must have shape \(D,\)"):
        gaussian([[0.0, 1.0]], 1.0)
    with pytest.raises(ValueError, match=r"std must be a scalar or have shape \(D,\) = \(2,\)"):
        gaussian([0.0, 1.0], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="std must be finite and > 0"):
        gaussian([0.0, 1.0], -1.0)
