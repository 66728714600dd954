"""Weightings, time samplers, couplings, EMA and the learning-rate schedule, against closed forms."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from sdeflow.models.parameterization import from_x0_eps
from sdeflow.nn import seeded_init
from sdeflow.processes import EDM, VE, VP, Cosine, Linear
from sdeflow.training import (
    EMA,
    ExactOTCoupling,
    IndependentCoupling,
    LogNormalTime,
    LogSNRTime,
    SinkhornCoupling,
    TrainConfig,
    UniformTime,
    eps_error_scale2,
    get_time_sampler,
    get_weighting,
    lr_at,
)

PROCESSES = [VP(), Cosine(), VE(), EDM(), Linear()]


@pytest.mark.parametrize("process", PROCESSES, ids=lambda p: p.name)
@pytest.mark.parametrize("kind", ["eps", "x0", "v", "score", "velocity"])
def test_eps_error_scale_is_the_derivative_of_each_prediction_in_eps(process, kind):
    # At fixed x_t, moving eps_hat by d (and x0_hat = (x - sigma eps_hat)/alpha with it) moves the
    # output of `kind` by c_k d with c_k^2 = eps_error_scale2 (the table of sdeflow.training.weighting).
    t = torch.tensor([0.05, 0.3, 0.7], dtype=torch.float64) * process.T
    x = torch.randn(3, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    eps = torch.randn(3, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    a, s = process.alpha(t)[:, None], process.sigma(t)[:, None]

    def out(e):
        return from_x0_eps(kind, (x - s * e) / a, e, x, t, process)

    d = 1e-3
    slope = (out(eps + d) - out(eps)) / d
    assert torch.allclose(slope.pow(2), eps_error_scale2(kind, process, t)[:, None].expand(3, 2), rtol=1e-6)


def test_named_weightings_match_their_papers():
    p = VP()
    t = torch.linspace(0.01, 0.99, 50, dtype=torch.float64)
    snr = torch.exp(p.log_snr(t))
    # Hang et al. (2023): min-SNR-gamma is min(SNR, gamma) on the x0 error, min(SNR, gamma)/(SNR + 1) on v.
    w = get_weighting({"name": "min_snr", "gamma": 5.0})
    assert torch.allclose(w.weight(p, t, "x0"), torch.clamp(snr, max=5.0))
    assert torch.allclose(w.weight(p, t, "v"), torch.clamp(snr, max=5.0) / (snr + 1.0))
    assert torch.allclose(w.weight(p, t, "eps"), torch.clamp(snr, max=5.0) / snr)
    # SNR weighting (Hang et al.): SNR on the x0 error = unit weight on the noise error.
    assert torch.allclose(get_weighting("snr").weight(p, t, "x0"), snr)
    assert torch.allclose(get_weighting("snr").weight(p, t, "eps"), torch.ones_like(t))
    # Karras et al. (2022), eq. 8: lambda(sigma) = (sigma^2 + sd^2)/(sigma sd)^2 on the denoiser, EDM process.
    e = EDM()
    sig = torch.linspace(0.01, 80, 50, dtype=torch.float64)
    lam = (sig**2 + 0.25) / (sig * 0.5) ** 2
    assert torch.allclose(get_weighting("edm").weight(e, sig, "x0"), lam)
    # Likelihood weighting: g^2/sigma^2 = -d log_snr/dt (autograd), and g^2 on the score error.
    tt = t.clone().requires_grad_(True)
    (dlam,) = torch.autograd.grad(p.log_snr(tt).sum(), tt)
    lik = get_weighting("likelihood")
    assert torch.allclose(lik.eps_weight(p, t), -dlam)
    assert torch.allclose(lik.weight(p, t, "score"), p.g2(t))
    # Uniform: 1 in every prediction's own space.
    for kind in ("eps", "x0", "v", "score", "velocity"):
        assert torch.equal(get_weighting("uniform").weight(p, t, kind), torch.ones_like(t))


def test_time_samplers_distributions():
    gen = torch.Generator().manual_seed(0)
    n = 200_000
    # Uniform on [t_min, T].
    p = VP()
    t = UniformTime().sample(p, n, gen)
    assert float(t.min()) >= p.t_min and float(t.max()) <= p.T
    assert float(t.mean()) == pytest.approx((p.t_min + p.T) / 2, abs=3e-3)
    # EDM log-normal on the EDM process (t is the noise level): log t ~ N(-1.2, 1.2^2) away from the clamps.
    e = EDM()
    lt = torch.log(LogNormalTime().sample(e, n, gen))
    assert float(lt.mean()) == pytest.approx(-1.2, abs=0.02)
    assert float(lt.std()) == pytest.approx(1.2, abs=0.02)
    # Uniform log-SNR: lambda(t) is uniform on its range, and as an importance sampler E_p[u/p] = 1.
    s = LogSNRTime()
    t = s.sample(p, n, gen)
    lam = p.log_snr(t)
    lo, hi = float(p.log_snr(p.T)), float(p.log_snr(p.t_min))
    assert float(lam.mean()) == pytest.approx((lo + hi) / 2, abs=0.02 * (hi - lo))
    assert float(lam.var()) == pytest.approx((hi - lo) ** 2 / 12, rel=0.02)
    assert float(s.importance_weight(p, t).mean()) == pytest.approx(1.0, abs=0.02)
    # get_time_sampler names.
    assert get_time_sampler("importance").importance and not get_time_sampler("logsnr").importance
    assert not UniformTime().importance


_PERMS = np.array(list(itertools.permutations(range(6))))


def _brute_force_cost(x0, eps):
    """The least total squared distance over all 720 pairings of 6 points."""
    cost = torch.cdist(x0.double(), eps.double()).pow(2).numpy()
    return float(cost[np.arange(6), _PERMS].sum(axis=1).min())


def test_exact_ot_coupling_is_the_optimal_permutation():
    # Expected: ot.emd's pairing has the brute-force minimal total squared distance (n = 6: 720 permutations),
    # is a permutation, and does not change when eps is scaled (the prior sigma(T) eps of any process).
    gen = torch.Generator().manual_seed(0)
    for trial in range(5):
        x0 = torch.randn(6, 3, generator=gen) * 2 + 1
        eps = torch.randn(6, 3, generator=gen)
        i, j = ExactOTCoupling()(x0, eps, gen)
        assert torch.equal(i, torch.arange(6)) and sorted(j.tolist()) == list(range(6))
        cost = float(((x0[i].double() - eps[j].double()) ** 2).sum())
        assert cost == pytest.approx(_brute_force_cost(x0, eps), rel=1e-9)
        _, j5 = ExactOTCoupling()(x0, 5.0 * eps, gen)
        assert torch.equal(j, j5)


def test_sinkhorn_coupling_interpolates_between_exact_and_independent():
    # Small reg: pairs drawn from a plan near the exact one, so their mean squared distance is within 5%
    # of the optimal transport cost. Large reg: the plan tends to the product coupling, whose mean cost
    # is the average over all pairs.
    gen = torch.Generator().manual_seed(1)
    x0 = torch.randn(64, 2, generator=gen) * 3
    eps = torch.randn(64, 2, generator=gen)
    _, j_exact = ExactOTCoupling()(x0, eps, gen)
    exact_cost = float((x0 - eps[j_exact]).pow(2).sum(-1).mean())
    i, j = SinkhornCoupling(reg=0.01)(x0, eps, gen)
    assert float((x0[i] - eps[j]).pow(2).sum(-1).mean()) == pytest.approx(exact_cost, rel=0.05)
    i, j = SinkhornCoupling(reg=50.0)(x0, eps, gen)
    indep = float(torch.cdist(x0, eps).pow(2).mean())
    assert float((x0[i] - eps[j]).pow(2).sum(-1).mean()) == pytest.approx(indep, rel=0.25)
    assert exact_cost < 0.5 * indep
    ii, jj = IndependentCoupling()(x0, eps, gen)
    assert torch.equal(ii, jj) and torch.equal(ii, torch.arange(64))
    with pytest.raises(ValueError, match="same shape"):
        ExactOTCoupling()(x0, eps[:3], gen)
    with pytest.raises(ValueError, match="reg"):
        SinkhornCoupling(reg=0.0)


def test_ema_closed_form():
    # With warm-up off, after n updates towards a constant target c from theta_0:
    # theta_ema = c + d^n (theta_0 - c).
    with seeded_init(0):  # layer construction draws from the global generator; keep it untouched
        lin = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(1.0)
    ema = EMA(lin, decay=0.9, warmup=False)
    with torch.no_grad():
        lin.weight.fill_(3.0)
    for _ in range(7):
        ema.update(lin)
    assert float(ema.shadow.weight) == pytest.approx(3.0 + 0.9**7 * (1.0 - 3.0), rel=1e-6)
    # Warm-up: the first update uses d = min(0.9, 1/10) = 0.1.
    ema2 = EMA(lin, decay=0.9, warmup=True)
    with torch.no_grad():
        lin.weight.fill_(5.0)
    ema2.update(lin)
    assert float(ema2.shadow.weight) == pytest.approx(0.1 * 3.0 + 0.9 * 5.0, rel=1e-6)
    with pytest.raises(ValueError, match="decay"):
        EMA(lin, decay=1.0)


def test_learning_rate_schedule():
    cfg = TrainConfig(steps=110, lr=1e-3, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(1e-4)
    assert lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(10, cfg) == pytest.approx(1e-3)
    assert lr_at(109, cfg) == pytest.approx(1e-4)
    mid = 10 + 99 / 2
    assert lr_at(int(mid), cfg) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (int(mid) - 10) / 99))))
    assert lr_at(50, TrainConfig(steps=110, schedule="constant", warmup_steps=0)) == pytest.approx(1e-3)
    for bad in ({"steps": 0}, {"lr": -1.0}, {"schedule": "linear"}, {"label_dropout": 1.0}, {"min_lr_ratio": 2.0}):
        with pytest.raises(ValueError):
            TrainConfig(**bad)
    with pytest.raises(ValueError, match="unknown training options"):
        TrainConfig.from_dict({"stepz": 3})
    assert np.isfinite(lr_at(0, TrainConfig(steps=1, warmup_steps=0)))
