"""MixtureInterpolant: exact velocity and score of interpolants between Gaussian mixtures, against autograd."""

import pytest
import torch

from sdeflow.targets import GaussianMixture
from sdeflow.targets.bridge import MixtureInterpolant


def _mixtures():
    m0 = GaussianMixture([0.3, 0.7], [[-2.0, 0.0], [1.0, 1.5]], covs=[[[0.5, 0.2], [0.2, 0.3]], [[0.2, 0.0], [0.0, 0.6]]])
    m1 = GaussianMixture([0.5, 0.25, 0.25], [[0.0, 0.0], [3.0, -1.0], [-1.0, 2.0]], stds=[[1.0, 1.0], [0.3, 0.4], [0.5, 0.5]])
    return m0, m1


@pytest.mark.parametrize(
    "interpolant,gamma_scale,gamma",
    [("linear", 0.0, None), ("linear", 0.8, None), ("trigonometric", 0.0, None), ("trigonometric", 0.8, None),
     ("encoder_decoder", 0.8, "sin2"), ("linear", 0.8, "quadratic"), ("encoder_decoder", 0.6, "sqrt")],
)
def test_fields_satisfy_the_continuity_equation(interpolant, gamma_scale, gamma):
    # The velocity transports the marginal: d/dt log p + div v + v . grad log p = 0 at every (t, x). With d/dt log p
    # by central differences (h = 1e-5, error ~1e-9) and div v, grad log p by autograd, the residual is below 1e-6;
    # the closed-form score equals autograd of log_prob to 1e-10.
    oracle = MixtureInterpolant(*_mixtures(), interpolant=interpolant, gamma_scale=gamma_scale, gamma=gamma)
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2
    for t in (0.2, 0.45, 0.8):  # 0.45: the encoder-decoder's first half, near its noise-only middle
        h = 1e-5
        dlogp = (oracle.log_prob(t + h, x) - oracle.log_prob(t - h, x)) / (2 * h)
        xg = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(oracle.log_prob(t, xg).sum(), xg)
        assert torch.allclose(oracle.score(t, x), grad, atol=1e-10)
        v = oracle.velocity(t, xg)
        div = sum(torch.autograd.grad(v[:, k].sum(), xg, retain_graph=True)[0][:, k] for k in range(2))
        residual = dlogp + div + (v * grad).sum(-1)
        assert residual.abs().max() < 1e-6, residual


def test_deterministic_linear_velocity_between_point_like_gaussians():
    # Two single Gaussians with tiny covariance, gamma = 0: the velocity is m1 - m0 everywhere near the path.
    m0 = GaussianMixture([1.0], [[0.0, 0.0]], stds=[[1e-3, 1e-3]])
    m1 = GaussianMixture([1.0], [[2.0, -1.0]], stds=[[1e-3, 1e-3]])
    oracle = MixtureInterpolant(m0, m1)
    x = torch.tensor([[1.0, -0.5]], dtype=torch.float64)
    assert torch.allclose(oracle.velocity(0.5, x), torch.tensor([[2.0, -1.0]], dtype=torch.float64), atol=1e-9)


def test_bad_input_is_named():
    m0, m1 = _mixtures()
    with pytest.raises(ValueError, match="interpolant must be one of"):
        MixtureInterpolant(m0, m1, interpolant="cubic")
    with pytest.raises(ValueError, match="gamma_scale"):
        MixtureInterpolant(m0, m1, gamma_scale=-1.0)
    with pytest.raises(ValueError, match="one dimension"):
        MixtureInterpolant(m0, GaussianMixture([1.0], [[0.0, 0.0, 0.0]], stds=[[1.0, 1.0, 1.0]]))
    with pytest.raises(ValueError, match=r"t must be a number in \[0, 1\]"):
        MixtureInterpolant(m0, m1).velocity(1.5, torch.zeros(1, 2))
    with pytest.raises(ValueError, match="gamma must be one of"):
        MixtureInterpolant(m0, m1, gamma_scale=1.0, gamma="cosine")
