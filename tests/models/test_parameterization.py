"""Every prediction kind round-trips through the (x0, eps) hub on every process; EDM preconditioning."""

import pytest
import torch

from sdeflow.models import PREDICTIONS, Denoiser, EDMPrecond, NonFiniteModelOutput, from_x0_eps, to_x0_eps
from sdeflow.processes import EDM, VE, VP, Cosine, DiscreteVP, Linear, SubVP

PROCESSES = [VP(), SubVP(), VE(), EDM(), Cosine(), Linear(), DiscreteVP.linear()]


@pytest.mark.parametrize("p", PROCESSES, ids=repr)
@pytest.mark.parametrize("kind", PREDICTIONS)
def test_round_trip_every_kind(p, kind):
    # from (x0, eps) to kind and back is the identity (1e-10 in float64), with x = alpha x0 + sigma eps,
    # at scalar and per-sample times.
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(5, 3, generator=g, dtype=torch.float64)
    eps = torch.randn(5, 3, generator=g, dtype=torch.float64)
    for t in (0.3 * p.T, torch.linspace(p.t_min * 2, p.T * 0.9, 5, dtype=torch.float64)):
        x = p.marginal(x0, t, eps)
        out = from_x0_eps(kind, x0, eps, x, t, p)
        x0_b, eps_b = to_x0_eps(kind, out, x, t, p)
        torch.testing.assert_close(x0_b, x0, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(eps_b, eps, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kind_a", PREDICTIONS)
@pytest.mark.parametrize("kind_b", PREDICTIONS)
def test_every_pair_converts(kind_a, kind_b):
    # Converting kind_a -> (x0, eps) -> kind_b equals the direct kind_b of the same (x0, eps).
    p = VP()
    g = torch.Generator().manual_seed(2)
    x0, eps = torch.randn(4, 2, generator=g, dtype=torch.float64), torch.randn(4, 2, generator=g, dtype=torch.float64)
    t = 0.4
    x = p.marginal(x0, t, eps)
    a = from_x0_eps(kind_a, x0, eps, x, t, p)
    b = from_x0_eps(kind_b, *to_x0_eps(kind_a, a, x, t, p), x, t, p)
    torch.testing.assert_close(b, from_x0_eps(kind_b, x0, eps, x, t, p), rtol=1e-9, atol=1e-9)


def test_known_relations():
    # v = alpha eps - sigma x0 (Salimans & Ho); score = -eps/sigma; Linear velocity = eps - x0.
    p = Linear()
    x0, eps = torch.ones(2, 2, dtype=torch.float64), 2 * torch.ones(2, 2, dtype=torch.float64)
    t = 0.25
    x = p.marginal(x0, t, eps)
    torch.testing.assert_close(from_x0_eps("velocity", x0, eps, x, t, p), eps - x0)
    torch.testing.assert_close(from_x0_eps("v", x0, eps, x, t, p), 0.75 * eps - 0.25 * x0)
    torch.testing.assert_close(from_x0_eps("score", x0, eps, x, t, p), -eps / 0.25)


def test_denoiser_counts_casts_and_reports_nonfinite():
    # Calls are counted; a bf16 model output is cast to the state's dtype; a NaN is reported with its step.
    p = VP()
    den = Denoiser(lambda x, t: torch.zeros_like(x, dtype=torch.bfloat16), p, "eps")
    x = torch.ones(3, 2)
    d = den(x, 0.5)
    assert d.x0.dtype == torch.float32 and den.nfe == 1
    den.raise_if_nonfinite()
    bad = Denoiser(lambda x, t: torch.full_like(x, float("nan")), p, "eps")
    bad.step_index = 7
    bad(x, 0.25)
    with pytest.raises(NonFiniteModelOutput, match="at step 7.*t = 0.25"):
        bad.raise_if_nonfinite()


def test_denoiser_errors():
    p = VP()
    with pytest.raises(ValueError, match="unknown prediction"):
        Denoiser(lambda x, t: x, p, "noise")
    with pytest.raises(TypeError, match="callable"):
        Denoiser(3, p, "eps")
    with pytest.raises(ValueError, match="returned shape"):
        Denoiser(lambda x, t: x[:, :1], p, "eps")(torch.ones(2, 3), 0.5)
    with pytest.raises(TypeError, match="must return a torch.Tensor"):
        Denoiser(lambda x, t: 1.0, p, "eps")(torch.ones(2, 3), 0.5)


def test_edm_preconditioning_is_exact_for_the_ideal_network():
    # With F = (x0 - c_skip x)/c_out in scaled variables the wrapper returns x0 exactly (any process);
    # on EDM the coefficients are Karras et al.'s Table 1 (sigma_data = 0.5, c_noise = log(sigma)/4).
    for p in (EDM(), VP()):
        g = torch.Generator().manual_seed(3)
        x0 = torch.randn(4, 3, generator=g, dtype=torch.float64)
        eps = torch.randn(4, 3, generator=g, dtype=torch.float64)
        t = torch.tensor([0.1, 0.3, 0.5, 0.7], dtype=torch.float64) * p.T
        x = p.marginal(x0, t, eps)
        pre = EDMPrecond(lambda xi, cn: torch.zeros_like(xi), p)
        c = pre.coefficients(t)
        target_f = (x0 - c["c_skip"][:, None] * x / p.alpha(t)[:, None]) / c["c_out"][:, None]
        pre.net = lambda xi, cn: target_f
        torch.testing.assert_close(pre(x, t), x0)
    s = torch.tensor([2.0], dtype=torch.float64)
    c = EDMPrecond(lambda a, b: a, EDM()).coefficients(s)
    torch.testing.assert_close(c["c_skip"], torch.tensor([0.25 / (4 + 0.25)], dtype=torch.float64))
    torch.testing.assert_close(c["c_in"], 1 / torch.sqrt(s**2 + 0.25))
    torch.testing.assert_close(c["c_noise"], torch.log(s) / 4)
