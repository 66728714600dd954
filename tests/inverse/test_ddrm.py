"""DDRM against its own closed form on a Gaussian prior, and how far that is from the posterior."""

import math

import pytest
import torch

from sdeflow.grids import get as get_grid, validate_ts
from sdeflow.inverse import Denoising, Inpainting, posterior_sample
from sdeflow.inverse.ddrm import gaussian_moments
from sdeflow.processes import VP
from sdeflow.targets import gaussian


@pytest.mark.parametrize("steps,eta,eta_b", [(20, 0.85, 1.0), (10, 0.5, 0.5)])
def test_ddrm_follows_its_closed_form_on_a_gaussian_prior(steps, eta, eta_b):
    # Prior N((0.3, -0.5), diag(1, 2.25)); the first coordinate observed with noise 0.5 (inpainting, singular
    # value 1), the second unobserved (singular value 0): both branches of DDRM's rule that use y and the
    # DDIM branch. With an exact denoiser every step is linear, so the output's mean and variance given y are
    # gaussian_moments' recursion. 40,000 samples: the standard error of a variance v is v sqrt(2 / 40,000)
    # = 0.007 v, of a mean sqrt(v / 40,000) = 0.005 sqrt(v); we allow 5 standard errors.
    mean, std = torch.tensor([0.3, -0.5], dtype=torch.float64), torch.tensor([1.0, 1.5], dtype=torch.float64)
    prior = gaussian(mean, std)
    op = Inpainting(torch.tensor([True, False]), noise_std=0.5)
    y = torch.tensor([[0.7]], dtype=torch.float64)
    proc = VP()
    r = posterior_sample(prior.model(proc, "eps"), proc, op, y, method="ddrm", n_samples=40_000, steps=steps,
                         dtype=torch.float64, seed=0, eta=eta, eta_b=eta_b)
    s = r.samples[0]
    for i, (sing, uy) in enumerate([(1.0, 0.7), (0.0, 0.0)]):
        m, v = gaussian_moments(r.ts, proc, mean=float(mean[i]), var=float(std[i]) ** 2, singular=sing, noise_std=0.5,
                                uy=uy, eta=eta, eta_b=eta_b)
        assert abs(float(s[:, i].mean()) - m) < 5 * math.sqrt(v / 40_000)
        assert abs(float(s[:, i].var()) / v - 1) < 5 * math.sqrt(2 / 40_000)


def test_ddrm_is_not_an_exact_posterior_sampler():
    # Prior N(0, 1), denoising with noise 0.5, y = 0.7: the posterior is N(0.56, 0.2). At the paper's settings
    # (eta = 0.85, eta_b = 1, 20 steps) DDRM's closed-form output is N(0.571, 0.051): a quarter of the posterior
    # variance; at 100 steps 0.018, at 1000 steps 0.005 (the samples contract onto y as steps grow, see the
    # module docstring). The sampler agrees with the recursion (previous test), so this is the method's bias,
    # not an implementation error.
    proc = VP()
    r = posterior_sample(gaussian(torch.zeros(1, dtype=torch.float64), 1.0).model(proc, "eps"), proc,
                         Denoising(noise_std=0.5), torch.tensor([[0.7]], dtype=torch.float64), method="ddrm", steps=20,
                         n_samples=20_000, dtype=torch.float64)
    # the sampler's own figures (standard errors 0.0016 for the mean and 0.0005 for the variance)
    assert abs(float(r.samples.mean()) - 0.5713) < 0.01 and abs(float(r.samples.var()) - 0.0514) < 0.003
    variances = []
    for steps in (20, 100, 1000):
        ts = validate_ts(get_grid("logsnr")(proc, steps), proc)  # posterior_sample's default grid for VP
        if steps == 20:
            assert torch.equal(ts, r.ts)
        m, v = gaussian_moments(ts, proc, mean=0.0, var=1.0, singular=1.0, noise_std=0.5, uy=0.7)
        variances.append(v)
        if steps == 20:
            assert abs(m - 0.5713) < 1e-3 and abs(v - 0.0514) < 1e-3
    assert variances[0] > variances[1] > variances[2] and variances[2] < 0.01  # the posterior's is 0.2
    with pytest.raises(ValueError, match="var must be > 0"):
        gaussian_moments(r.ts, proc, mean=0.0, var=0.0, singular=1.0, noise_std=0.5, uy=0.7)
