"""Ambient Diffusion's further-corruption objective: its minimizer is E[x0 | A~ x_t, A~] (closed form on Gaussian data)."""

from __future__ import annotations

import pytest
import torch

from sdeflow import sample
from sdeflow.nn import MLP
from sdeflow.nn.masked import MaskedNet
from sdeflow.processes import VP
from sdeflow.training import DenoisingScoreMatching, DiffusionModel, TrainConfig, Trainer
from sdeflow.training.ambient import AmbientObjective, FixedMaskModel, pack_masked, unpack_masked

MU = torch.tensor([0.4, -0.3, 0.1], dtype=torch.float64)
COV = torch.tensor([[1.0, 0.7, -0.3], [0.7, 0.9, 0.1], [-0.3, 0.1, 0.5]], dtype=torch.float64)
MISSING, DELTA = 0.4, 0.3


def _exact(x_in, mask, t, process, mu=MU, cov=COV):
    """E[x0 | A~ x_t, A~] for x0 ~ N(mu, cov): mu + alpha cov M K^-1 M (x_in - alpha mu), K = M(alpha^2 cov + s I)M + (I - M)."""
    alpha, sigma = process.alpha(t)[:, None, None], process.sigma(t)[:, None, None]
    m = torch.diag_embed(mask.to(torch.float64))
    eye = torch.eye(mu.numel(), dtype=torch.float64)
    k = m @ (alpha**2 * cov + sigma**2 * eye) @ m + (eye - m)
    r = (mask * (x_in - alpha[:, :, 0] * mu))[..., None]
    return mu + (alpha * cov @ m @ torch.linalg.solve(k, r))[..., 0]


class _ExactPlus(torch.nn.Module):
    """Inner network of a MaskedNet: the exact Gaussian answer (of ``mu``, ``cov``) plus ``W x_in + b`` (12 parameters)."""

    kind = "exact"

    def __init__(self, process, mu=MU, cov=COV):
        super().__init__()
        self.process, self.mu, self.cov = process, mu, cov
        self.w = torch.nn.Parameter(torch.zeros(3, 3, dtype=torch.float64))
        self.b = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))

    def config(self):
        return {}

    def forward(self, inp, c, y=None):
        x_in, mask = inp[:, 0], inp[:, 1]
        t = c.to(torch.float64) * self.process.T
        h = _exact(x_in, mask, t, self.process, self.mu, self.cov) + x_in @ self.w.T + self.b
        return torch.stack([h, torch.zeros_like(h)], dim=1)


def _observations(n, seed):
    gen = torch.Generator().manual_seed(seed)
    x0 = MU + torch.randn(n, 3, generator=gen, dtype=torch.float64) @ torch.linalg.cholesky(COV).T
    mask = (torch.rand(n, 3, generator=gen, dtype=torch.float64) >= MISSING).to(torch.float64)
    return pack_masked(x0, mask)


def _z_scores(inner, n=15_000, seed=3):
    # For fixed draws the loss is quadratic in theta = (W, b): one Newton step from 0 is the empirical
    # minimizer; its standard errors come from the per-sample gradients (sandwich estimate).
    process = inner.process
    model = DiffusionModel(MaskedNet((3,), inner), process, "x0")
    obj = AmbientObjective(process, "x0", delta=DELTA, time_sampler={"name": "uniform", "t_lo": 0.05, "t_hi": 0.95})
    data = _observations(n, seed)
    params = [inner.w, inner.b]
    out = obj.loss(model, data, generator=torch.Generator().manual_seed(seed + 1))
    grad = torch.cat([g.reshape(-1) for g in torch.autograd.grad(out.loss, params, create_graph=True)])
    hess = torch.stack([torch.cat([h.reshape(-1) for h in torch.autograd.grad(g, params, retain_graph=True)]) for g in grad])
    step = -torch.linalg.solve(hess, grad.detach())
    jac = torch.stack([_per_sample_tangent(obj, process, data, seed, k) for k in range(12)], dim=1)  # (n, 12)
    cov_g = torch.cov(jac.T) / n
    h_inv = torch.linalg.inv(hess.detach())
    se = torch.sqrt(torch.diagonal(h_inv @ cov_g @ h_inv))
    return step / se


def _per_sample_tangent(obj, process, data, seed, k):
    """d(per-sample loss)/d theta_k at theta = 0, by forward-mode AD (the same draws as the loss)."""
    import torch.autograd.forward_ad as fwad

    tangent = torch.zeros(12, dtype=torch.float64)
    tangent[k] = 1.0
    inner = _ExactPlus(process)
    del inner.w, inner.b  # plain (dual) tensors in place of the parameters
    with fwad.dual_level():
        inner.w = fwad.make_dual(torch.zeros(3, 3, dtype=torch.float64), tangent[:9].reshape(3, 3))
        inner.b = fwad.make_dual(torch.zeros(3, dtype=torch.float64), tangent[9:])
        model = DiffusionModel(MaskedNet((3,), inner), process, "x0")
        out = obj.loss(model, data, generator=torch.Generator().manual_seed(seed + 1)).per_sample
        return fwad.unpack_dual(out).tangent


@pytest.mark.slow
def test_minimizer_is_the_clean_posterior_mean_given_the_further_corrupted_state():
    # The exact E[x0 | A~ x_t, A~] is the minimizer: the empirical minimizer over the 12 extra
    # parameters sits within Monte Carlo error of 0 (measured max |z| = 1.4 over 12 z-scores at
    # n = 1.5e4; bound 4.5: each |z| > 4.5 has probability 7e-6 under the hypothesis).
    z = _z_scores(_ExactPlus(VP()))
    assert float(z.abs().max()) < 4.5, z
    # The check can fail: the same answer for a law without the correlations (the off-diagonal
    # entries zeroed, so a hidden coordinate is predicted by its mean) is far from the minimizer
    # (measured max |z| = 12.8 on the same draws, 18.7 at n = 3e4: it grows like sqrt(n); bound 8).
    z_wrong = _z_scores(_ExactPlus(VP(), cov=torch.diag(torch.diagonal(COV))))
    assert float(z_wrong.abs().max()) > 8, z_wrong


def test_fixed_mask_sampling_follows_the_observed_marginal_and_conditions_the_rest():
    # With the exact model and one fixed mask observing coordinates {0, 2}, the probability-flow
    # ODE of those coordinates is the exact one of their marginal N(mu_S, cov_SS), and the hidden
    # coordinate ends at E[x1 | x0, x2] (sec. 3.3 of the paper). Heun, 60 steps: the sample
    # covariance of the observed pair matches cov_SS to Monte Carlo error at n = 4000 (measured
    # 0.007; bound 0.08), and x1 matches the conditional mean up to the noise the grid leaves at its
    # last time (sigma(1e-3) = 0.0105: measured max 0.027 over 4000 samples, the same at 30 and 120
    # steps; bound 0.05, about 5 sigma).
    process = VP()
    model = DiffusionModel(MaskedNet((3,), _ExactPlus(process)), process, "x0")
    n = 4000
    mask = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64).expand(n, 3)
    x = process.prior_sample((n, 3), seeds=0, dtype=torch.float64)
    with torch.no_grad():
        out = sample(FixedMaskModel(model, mask), process, x, prediction="x0", solver="heun", steps=60).samples
    s = [0, 2]
    assert torch.allclose(out[:, s].mean(0), MU[s], atol=0.08)
    assert torch.allclose(torch.cov(out[:, s].T), COV[s][:, s], atol=0.08)
    gain = COV[1, s] @ torch.linalg.inv(COV[s][:, s])
    cond = MU[1] + (out[:, s] - MU[s]) @ gain
    assert float((out[:, 1] - cond).abs().max()) < 0.05


def test_a_masked_mlp_trains_through_the_trainer_and_samples_without_a_mask():
    # Wiring: packed data through the Trainer (the checkpoint's event shape is the state's, not the
    # packed one), and the trained model used as a plain model (all-observed mask) by sample().
    process = VP()
    net = MaskedNet((3,), MLP((2, 3), 16, 1, seed=0))
    model = DiffusionModel(net, process, "eps")
    trainer = Trainer(model, AmbientObjective(process, "eps"), _observations(64, 0).float(),
                      config=TrainConfig(steps=3, batch_size=16, warmup_steps=1, ckpt_every=0, progress=False))
    assert trainer.data_info["event_shape"] == [3]
    res = trainer.fit()
    x = process.prior_sample((5, 3), seeds=0)
    with torch.no_grad():
        assert sample(res.ema_model, process, x, solver="euler", steps=2).samples.shape == (5, 3)


def test_bad_input_is_named():
    process = VP()
    with pytest.raises(ValueError, match="delta must be a probability"):
        AmbientObjective(process, "eps", delta=1.0)
    with pytest.raises(ValueError, match="mask must be a 0/1 tensor of the data's shape"):
        pack_masked(torch.zeros(4, 3), torch.ones(4, 2))
    with pytest.raises(ValueError, match="only 0"):
        pack_masked(torch.zeros(4, 3), torch.full((4, 3), 0.5))
    with pytest.raises(ValueError, match="packed as"):
        unpack_masked(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="needs \\(2, 3\\)"):
        MaskedNet((3,), MLP((3,), 8, 1))
    plain = DiffusionModel(MLP((3,), 8, 1), process, "eps")
    with pytest.raises(TypeError, match="MaskedNet"):
        AmbientObjective(process, "eps").loss(plain, _observations(4, 0).float(), generator=torch.Generator())
    # Plain DSM on packed data would be a silent mistake: its shape (n, 2, 3) is not the model's.
    with pytest.raises(ValueError):
        DenoisingScoreMatching(process, "eps").loss(plain, _observations(4, 0).float(), generator=torch.Generator())
