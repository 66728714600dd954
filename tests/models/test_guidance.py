"""Classifier-free guidance as a model wrapper: the same guided (x0, eps) for every prediction kind."""

import pytest
import torch

import sdeflow
from sdeflow import targets
from sdeflow.models import Denoiser
from sdeflow.models.guidance import ClassifierFreeGuidance
from sdeflow.models.parameterization import PREDICTIONS
from sdeflow.processes import EDM, VP

# Two classes: class 0 is N(-1, 0.3^2), class 1 is N(+1, 0.3^2); the null condition is their mixture.
CLASSES = [targets.gaussian([-1.0], [0.3]), targets.gaussian([1.0], [0.3])]
MIXTURE = targets.GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], stds=[0.3, 0.3])


def conditional(process, kind, calls):
    def model(x, t, cond):
        calls.append(x.shape[0])
        out = torch.empty_like(x)
        for c, target in ((0, CLASSES[0]), (1, CLASSES[1])):
            rows = cond == c
            if rows.any():
                out[rows] = target.predict(kind, x[rows], t[rows], process)
        rows = cond < 0
        if rows.any():
            out[rows] = MIXTURE.predict(kind, x[rows], t[rows], process)
        return out

    return model


@pytest.mark.parametrize("process", [VP(), EDM()], ids=["VP", "EDM"])
def test_guidance_is_the_same_in_every_prediction_kind(process):
    # w = 3: eps_guided = eps_u + 3 (eps_c - eps_u). Guiding in x0, v, score or velocity and converting
    # to (x0, eps) gives the same pair to round-off (affine conversions preserve affine combinations).
    x = torch.linspace(-2, 2, 6, dtype=torch.float64).reshape(6, 1)
    t = 0.3 * process.T
    cond = torch.tensor([1, 1, 0, 0, 1, 0])
    pairs = []
    for kind in PREDICTIONS:
        calls = []
        cfg = ClassifierFreeGuidance(conditional(process, kind, calls), cond, torch.full_like(cond, -1), 3.0, kind)
        d = Denoiser(cfg, process, kind)(x, t)
        pairs.append(d)
        assert calls == [12]  # one batched call of 2B
    for d in pairs[1:]:
        torch.testing.assert_close(d.x0, pairs[0].x0, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(d.eps, pairs[0].eps, rtol=1e-10, atol=1e-10)
    # scale 1 is the conditional model itself
    one = ClassifierFreeGuidance(conditional(process, "eps", []), cond, torch.full_like(cond, -1), 1.0, "eps")
    torch.testing.assert_close(one(x, torch.full((6,), t, dtype=torch.float64)),
                               conditional(process, "eps", [])(x, torch.full((6,), t, dtype=torch.float64), cond))


def test_guidance_interval_and_sampling_with_any_solver():
    # Outside the interval the prediction is the conditional one. Sampled with any solver, w = 1 gives the
    # conditional sampler's samples and w = 0 the unconditional one's (to round-off).
    p = EDM()
    cond = torch.ones(400, dtype=torch.long)
    null = torch.full_like(cond, -1)
    model = conditional(p, "x0", [])
    inside = ClassifierFreeGuidance(model, cond[:3], null[:3], 4.0, "x0", interval=(1.0, 10.0))
    x = torch.randn(3, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    tt = torch.tensor([0.5, 5.0, 20.0], dtype=torch.float64)
    guided = inside(x, tt)
    plain = model(x, tt, cond[:3])
    torch.testing.assert_close(guided[[0, 2]], plain[[0, 2]])
    assert not torch.allclose(guided[1], plain[1])
    x = p.prior_sample((400, 1), seeds=0, dtype=torch.float64)
    for solver in ("unipc", "dpm_solver_pp_2m_sde", "dpm_solver"):
        for w, plain_cond in ((1.0, cond), (0.0, null)):
            g = sdeflow.sample(ClassifierFreeGuidance(model, cond, null, w, "x0"), p, x, solver=solver, nfe=12, seed=0)
            c = sdeflow.sample(lambda xx, tt: model(xx, tt, plain_cond), p, x, prediction="x0", solver=solver, nfe=12, seed=0)
            torch.testing.assert_close(g.samples, c.samples, rtol=1e-9, atol=1e-9)


def test_guidance_checks_its_arguments():
    with pytest.raises(ValueError, match="scale"):
        ClassifierFreeGuidance(lambda x, t, c: x, 0, 1, float("nan"), "eps")
    with pytest.raises(ValueError, match="interval"):
        ClassifierFreeGuidance(lambda x, t, c: x, 0, 1, 2.0, "eps", interval=(2.0, 1.0))
    with pytest.raises(ValueError):
        ClassifierFreeGuidance(lambda x, t, c: x, 0, 1, 2.0, "noise")
