"""The particle method against exact posteriors: a single Gaussian prior and Cardoso et al.'s mixture."""

import pytest
import torch

from sdeflow.inverse import Linear, posterior_sample
from sdeflow.inverse.mcgdiff import chain_moments, systematic_resample
from sdeflow.inverse.problems import mixture_problem
from sdeflow.processes import VP
from sdeflow.targets import gaussian


def test_systematic_resampling_is_unbiased_and_tight():
    # Systematic resampling gives every index floor(n w_i) or ceil(n w_i) copies (Kitagawa 1996): the counts
    # differ from n w_i by less than 1, for every row.
    g = torch.Generator().manual_seed(0)
    logw = torch.randn(5, 50, generator=g, dtype=torch.float64) * 2
    idx = systematic_resample(logw, 1000, g)
    w = torch.softmax(logw, 1)
    for row in range(5):
        counts = torch.bincount(idx[row], minlength=50).double()
        assert float((counts - 1000 * w[row]).abs().max()) < 1.0


@pytest.mark.slow
def test_single_gaussian_posterior_mean_and_covariance():
    # A 3-D Gaussian prior N(m, diag(0.36, 1, 2.25)) observed through a 2 x 3 matrix with noise 0.3: the
    # posterior is Gaussian in closed form. 10,000 particles, 10,000 samples, 100 steps.
    # Measured over seeds 0-3 with the default chain (order 2, kernel ddpm; its own bias is 0.3 % in variance,
    # chain_moments): mean errors 0.020-0.034 posterior standard deviations, covariance errors 0.016-0.057 (relative
    # to sqrt(C_ii C_jj)); 40,000 particles give 0.014-0.084 and 0.010-0.072: Monte Carlo error of the particle
    # filter (its effective sample size for the posterior mean is about 3,400 of 20,000 particles at 100 steps),
    # not bias. The goal of 2 % is therefore NOT met in every run; we assert 0.1 for both.
    g = torch.Generator().manual_seed(0)
    prior = gaussian(torch.randn(3, generator=g, dtype=torch.float64), torch.tensor([0.6, 1.0, 1.5], dtype=torch.float64))
    op = Linear(torch.randn(2, 3, generator=g, dtype=torch.float64), noise_std=0.3)
    y = op.measure(prior.sample(1, seeds=1, dtype=torch.float64), generator=g)
    post = prior.posterior(op, y)
    r = posterior_sample(prior.model(VP(), "eps"), VP(), op, y, method="mcgdiff", n_samples=10_000, steps=100,
                         dtype=torch.float64, seed=0)
    s = r.samples[0]
    C = post.covariance
    sd = C.diagonal().sqrt()
    assert float(((s.mean(0) - post.mean) / sd).abs().max()) < 0.1
    assert float(((torch.cov(s.T) - C) / (sd[:, None] * sd[None, :])).abs().max()) < 0.1
    assert r.ess is not None and r.ess.shape == (100, 1) and r.resampled > 0


@pytest.mark.slow
def test_error_shrinks_as_particles_grow():
    # Cardoso et al.'s mixture in d = 2 (problem 3: a sharp measurement, noise_std 0.02, four posterior modes
    # 8 apart with weights 0.30, 0.01, 0.10, 0.60). The Euclidean error of the posterior mean, averaged over
    # 4 seeds at 30 steps, falls as the population grows: measured 3.4 at 30 particles and 1.0 at 3,000
    # (the Monte Carlo error of the mode weights; it would not fall for a method with a fixed bias).
    # We assert a fall by at least 2x.
    pb = mixture_problem(2, 1, 3)
    model = pb.prior.model(VP(), "eps")

    def error(n):
        errs = []
        for seed in range(4):
            r = posterior_sample(model, VP(), pb.operator, pb.y, method="mcgdiff", n_samples=n, steps=30,
                                 dtype=torch.float64, seed=seed)
            errs.append(float(((r.samples[0].mean(0) - pb.posterior.mean) ** 2).sum().sqrt()))
        return sum(errs) / len(errs)

    assert error(3000) < 0.5 * error(30)


@pytest.mark.slow
def test_particles_target_the_posterior_of_the_model_chain():
    # With kernel="ddpm" the prior chain is linear-Gaussian on a Gaussian prior, so the x_0 marginal of the chain
    # is N(m_0, diag(v_0)) in closed form (chain_moments) and the weighted particles target that prior's exact
    # posterior. At 20 steps the chain is a poor prior (variances 37 % low): the samples must match the chain's
    # posterior (Monte Carlo only) and miss the data prior's (posterior variances 37 %, 4.6 % and 25 % low, the
    # mean 0.15 posterior standard deviations off), which proves that the remaining error of mcgdiff on this
    # problem is the chain's discretization, not the particle approximation. 50,000 particles, 20,000 samples:
    # measured errors to the chain posterior over seeds 0-2: at most 0.025 (mean, in posterior standard deviations)
    # and 0.022 (relative variance); we allow 0.05 and 0.07.
    g = torch.Generator().manual_seed(0)
    mean, std = torch.randn(3, generator=g, dtype=torch.float64), torch.tensor([0.6, 1.0, 1.5], dtype=torch.float64)
    prior = gaussian(mean, std)
    op = Linear(torch.randn(2, 3, generator=g, dtype=torch.float64), noise_std=0.3)
    y = op.measure(prior.sample(1, seeds=1, dtype=torch.float64), generator=g)
    # The same holds for the second-order chain (order=2, the default): its posterior is again matched to Monte Carlo
    # error (measured mean / variance errors 0.003 / 0.014 and 0.016 / 0.008 on seeds 0 and 1), and it is 5x closer to the
    # data prior's (posterior variances 6.6 % and 5.9 % off at 20 steps, against 36 % for order 1).
    for order in (1, 2):
        r = posterior_sample(prior.model(VP(), "eps"), VP(), op, y, method="mcgdiff", n_samples=20_000, particles=50_000,
                             steps=20, dtype=torch.float64, seed=0, kernel="ddpm", order=order)
        m0, v0 = chain_moments(r.ts, VP(), mean=mean, var=std**2, order=order)
        s = r.samples[0]
        for post, close in ((gaussian(m0, v0.sqrt()).posterior(op, y), True), (prior.posterior(op, y), False)):
            sd = post.covariance.diagonal().sqrt()
            mean_err = float(((s.mean(0) - post.mean) / sd).abs().max())
            var_err = float((torch.cov(s.T).diagonal() / post.covariance.diagonal() - 1).abs().max())
            if close:
                assert mean_err < 0.05 and var_err < 0.07
            elif order == 1:
                assert var_err > 0.2
    with pytest.raises(ValueError, match="shape"):
        chain_moments(r.ts, VP(), mean=mean, var=std[:2])


@pytest.mark.slow
def test_marginal_kernel_is_exact_on_an_isotropic_gaussian_and_the_population_estimate_is_not():
    # (order=1: the marginal kernel's variance is the exact reverse transition only with the DDPM mean)
    # Prior N(m, 0.64 I) in 3-D, the 2 x 3 operator of the tests above, 20 steps. For an isotropic Gaussian the kernel
    # c_ddpm^2 + k0^2 Var(x0 | x_t) with Analytic-DPM's isotropic Var is the exact reverse transition, so the chain is
    # exact at any step count when the expectation is over the prior marginal (kernel="marginal": the companion
    # draws of the prior chain). Measured with 50,000 particles over seeds 0-2: errors at most 0.013 (mean, in
    # posterior standard deviations) and 0.024 (relative variance); the test runs 30,000 (seed 0: 0.026 and 0.025);
    # we allow 0.05 and 0.06. The same estimate over the y-conditioned population (kernel="analytic") is biased:
    # posterior variances 13 % high (measured 0.133 with 50,000 particles, 0.136 with 30,000); we assert > 0.08.
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(3, generator=g, dtype=torch.float64)
    prior = gaussian(mean, 0.8)
    op = Linear(torch.randn(2, 3, generator=g, dtype=torch.float64), noise_std=0.3)
    y = op.measure(prior.sample(1, seeds=1, dtype=torch.float64), generator=g)
    post = prior.posterior(op, y)
    C = post.covariance
    sd = C.diagonal().sqrt()
    errs = {}
    for kernel in ("marginal", "analytic"):
        r = posterior_sample(prior.model(VP(), "eps"), VP(), op, y, method="mcgdiff", n_samples=20_000, particles=30_000,
                             steps=20, dtype=torch.float64, seed=0, kernel=kernel, order=1)
        assert r.nfe == 20  # the companion draws ride in the same model calls
        s = r.samples[0]
        errs[kernel] = (float(((s.mean(0) - post.mean) / sd).abs().max()),
                        float((torch.cov(s.T).diagonal() / C.diagonal() - 1).abs().max()))
    assert errs["marginal"][0] < 0.05 and errs["marginal"][1] < 0.06
    assert errs["analytic"][1] > 0.08
    # the closed form of the marginal chain (infinitely many companion draws): the prior's variance to rounding (measured
    # 8e-10 relative) and its mean to 6e-5 (the start N(0, s_T^2) leaves out alpha(T) m, alpha(T) = 0.0066); on the
    # anisotropic prior diag(0.36, 1, 2.25) at 100 steps the variances miss by 2.9 % (measured 0.029, -0.002,
    # -0.026): an isotropic kernel variance cannot be exact there
    m0, v0 = chain_moments(r.ts, VP(), mean=mean, var=torch.full((3,), 0.64, dtype=torch.float64), kernel="marginal", order=1)
    assert torch.allclose(m0, mean, rtol=0, atol=2e-4) and torch.allclose(v0, torch.full_like(v0, 0.64), rtol=1e-7, atol=0)
    with pytest.raises(ValueError, match="companion"):
        posterior_sample(prior.model(VP(), "eps"), VP(), op, y, method="mcgdiff", kernel="marginal", companion=0)


def test_chain_moments_first_and_second_order():
    # The closed-form x_0 law of the prior chain on N(m, diag(0.36, 1, 2.25)) (chain_moments), default log-SNR grid of VP.
    # order=1 (the DDPM kernel mean k0 x0_hat + k1 x_t): variances 37.0 %, 9.08 % and 0.953 % low at 20, 100 and 1000
    # steps, first order in the step (10x per decade). order=2 (the multistep mean, DPM-Solver++(2M)'s midpoint rule):
    # 6.7 %, 0.31 % and 0.003 % high, second order (100x per decade). The means agree to 2e-4 in both (the start
    # N(0, sigma_T^2) leaves out alpha(T) m). We assert the orders from the ratios (8-12 and > 50) and 0.5 % at 100 steps.
    from sdeflow.grids import get

    mean = torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
    var = torch.tensor([0.36, 1.0, 2.25], dtype=torch.float64)
    err = {}
    for order in (1, 2):
        for steps in (100, 1000):
            m0, v0 = chain_moments(get("logsnr")(VP(), steps), VP(), mean=mean, var=var, order=order)
            assert float((m0 - mean).abs().max()) < 2e-4
            err[order, steps] = float((v0 / var - 1).abs().max())
    assert 8 < err[1, 100] / err[1, 1000] < 12
    assert err[2, 100] < 0.005 and err[2, 100] / err[2, 1000] > 50
    with pytest.raises(ValueError, match="order"):
        chain_moments(get("logsnr")(VP(), 10), VP(), mean=mean, var=var, order=3)


@pytest.mark.slow
def test_unconditional_chain_keeps_the_mode_weights_of_the_prior():
    # The prior chain alone (a zero operator: no potential, every particle weight equal) on Cardoso et al.'s 25-mode
    # prior in d = 8 (problem 0's weights; the centre mode weighs 0.2935), 20,000 draws at 100 steps, each draw
    # assigned to its nearest mean (modes 8 apart, unit variances: misassignment ~1e-4). The DDPM chain (order=1)
    # favours the centre: measured 0.3123 (+5.8 standard errors), total variation to the prior's weights 0.037; the
    # exact reverse transitions of the mixture give 0.004-0.005 (50,000 - 200,000 draws), so this is the chain's
    # discretization, made where the modes separate (log-SNR -6 to -3). The second-order chain (order=2) gives
    # 0.2952 (+0.5 se), total variation 0.0086 (the multinomial noise of 20,000 draws is about 0.01).
    # We assert the centre within 2 standard errors (0.0065) and TV < 0.015 for order 2; > 0.010 and > 0.025 for order 1.
    pb = mixture_problem(8, 1, 0)
    op = Linear(torch.zeros(1, 8, dtype=torch.float64), noise_std=1.0)
    means = torch.as_tensor(pb.prior.means, dtype=torch.float64)
    w = torch.as_tensor(pb.prior.weights, dtype=torch.float64)
    w = w / w.sum()
    centre = int(means.norm(dim=1).argmin())
    model = pb.prior.model(VP(), "eps")
    out = {}
    for order in (1, 2):
        r = posterior_sample(model, VP(), op, torch.zeros(1, 1, dtype=torch.float64), method="mcgdiff", n_samples=20_000,
                             steps=100, dtype=torch.float64, seed=1, order=order)
        freq = torch.bincount(torch.cdist(r.samples[0], means).argmin(1), minlength=25).double() / 20_000
        out[order] = (float(freq[centre] - w[centre]), float(0.5 * (freq - w).abs().sum()))
    assert abs(out[2][0]) < 0.0065 and out[2][1] < 0.015
    assert out[1][0] > 0.010 and out[1][1] > 0.025
