"""Objectives on Gaussian mixtures with exact models: the exact model is the minimizer.

For a regression objective ``L(m) = E[w (m(x_t, t) - target)^2]`` whose target has conditional mean
``m*(x_t, t)`` (the exact eps/x0/v/score/velocity of the mixture), the directional derivative at
``m*`` in any direction ``h(x_t, t)`` is ``2 E[w (m* - target) h] = 0`` (Vincent 2011), and
``L(m* + d h) - L(m*) = d^2 E[w h^2] > 0``. The tests evaluate both on one shared draw of
``(t, x0, eps)`` (same generator seed), so the comparisons are paired.
"""

from __future__ import annotations

import math

import pytest
import torch

from sdeflow.processes import EDM, VE, VP, Cosine, Linear
from sdeflow.targets import ring2d
from sdeflow.training import (
    DenoisingScoreMatching,
    FlowMatching,
    LikelihoodWeighting,
    LogNormalTime,
    LogSNRTime,
    UniformTime,
    build_objective,
)

N = 8_000
TARGET = ring2d(n_modes=4, radius=1.0, std=0.2)
X0 = TARGET.sample(N, seeds=0)

PROCESSES = {
    "vp": VP(),
    "cosine": Cosine(),
    "edm": EDM(),
    "ve": VE(),
    # alpha(1) = 0 on the linear path: x0, v and velocity conversions need t < 1.
    "linear": Linear(),
}


DIRECTIONS = {
    "constant": lambda x, t: torch.ones_like(x),
    "nonlinear": lambda x, t: torch.tanh(2 * x[:, [1, 0]]) * torch.as_tensor(t, dtype=x.dtype).reshape(-1, 1),
}


def _check_minimizer(objective, exact):
    """Stationarity (z-test) and minimality of ``exact`` for ``objective`` along every direction.

    The loss is exactly quadratic in the model output, so with ``L(d) = L(exact + d h)`` on one
    draw: ``L(1) - L(-1) = 4 E_n[w (m* - target) h]`` (the gradient, 0 in expectation) and
    ``(L(1) + L(-1))/2 - L(0) = E_n[w h^2] = A > 0`` (the curvature). The perturbation size
    ``d = sqrt(0.2 L(0) / A)`` raises the loss by about 20% whatever the output's scale.
    """
    def run(model):
        return objective.loss(model, X0, generator=torch.Generator().manual_seed(1)).per_sample.double()

    base = run(exact)
    for name, h in DIRECTIONS.items():
        plus = run(lambda x, t: exact(x, t) + h(x, t))
        minus = run(lambda x, t: exact(x, t) - h(x, t))
        diff = plus - minus
        z = float(diff.mean() / (diff.std() / math.sqrt(N)))
        assert abs(z) < 4.5, f"{objective!r}, direction {name}: gradient at the exact model has z = {z:.2f}"
        curvature = float(((plus + minus) / 2 - base).mean())
        assert curvature > 0
        d = math.sqrt(0.2 * float(base.mean()) / curvature)
        for sign in (1.0, -1.0):
            worse = run(lambda x, t: exact(x, t) + sign * d * h(x, t))
            assert float(worse.mean()) > float(base.mean()), f"{objective!r}, direction {name}, sign {sign}"


@pytest.mark.parametrize("process_name", sorted(PROCESSES))
@pytest.mark.parametrize("prediction", ["eps", "x0", "v", "score", "velocity"])
def test_exact_model_minimizes_dsm_for_every_process_and_prediction(process_name, prediction):
    # Expected: z-scores of the directional derivative below 4.5 and perturbed losses above the exact one.
    process = PROCESSES[process_name]
    sampler = UniformTime(t_hi=0.98) if process_name == "linear" else UniformTime()
    objective = DenoisingScoreMatching(process, prediction, time_sampler=sampler)
    _check_minimizer(objective, TARGET.model(process, prediction))


@pytest.mark.parametrize(
    "weighting,sampler",
    [
        ("snr", "uniform"),
        ({"name": "min_snr", "gamma": 5.0}, "uniform"),
        ("edm", "lognormal"),
        ("likelihood", "uniform"),
        ("likelihood", "importance"),
        ("uniform", "logsnr"),
    ],
)
@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_exact_model_minimizes_every_weighting_and_time_sampler(weighting, sampler, prediction):
    # Expected: as above; weightings and importance weights multiply the loss by positive factors of t only.
    process = VP()
    objective = DenoisingScoreMatching(process, prediction, weighting=weighting, time_sampler=sampler)
    _check_minimizer(objective, TARGET.model(process, prediction))


def test_exact_marginal_velocity_minimizes_flow_matching():
    # Conditional flow matching with independent pairs: the minimizer is the marginal velocity
    # E[eps - x0 | x_t] (Lipman et al. 2023, Thm. 2), here exact; t in [0, 1] including both ends.
    objective = FlowMatching()
    assert objective.time_sampler.bounds(objective.process) == (0.0, 1.0)
    _check_minimizer(objective, TARGET.model(objective.process, "velocity"))


def test_exact_denoiser_minimizes_edm_training():
    # EDM's training on the EDM process (x0 prediction, lambda(sigma) weighting, log-normal sigma):
    # the exact denoiser E[x0 | x_t] is the minimizer.
    process = EDM()
    objective = DenoisingScoreMatching(process, "x0", weighting="edm", time_sampler="lognormal")
    _check_minimizer(objective, TARGET.model(process, "x0"))


def test_likelihood_weighting_loss_is_the_elbo_up_to_a_constant():
    # Song et al. (2021, Thm. 1) / Kingma et al. (2021, eq. 17): with w = g^2/sigma^2 and t ~ U(lo, hi),
    # (hi - lo) D / 2 * [L(m) - L(m*)] = (1/2) int g^2 E|s_m - s*|^2 dt. For a score shifted by a constant c
    # on VP this is |c|^2 (B(hi) - B(lo)) / 2 exactly, B the integrated beta. Uniform and importance
    # sampling must both give it (within 3% here); importance sampling must lower the variance.
    process = VP()
    c = torch.tensor([0.3, -0.2])
    exact = TARGET.model(process, "score")
    lo, hi = process.t_min, process.T
    expected = 0.5 * float(c.pow(2).sum()) * float(process.beta_integral(hi) - process.beta_integral(lo))
    spreads = {}
    for sampler in ("uniform", "importance"):
        objective = DenoisingScoreMatching(process, "score", weighting="likelihood", time_sampler=sampler)
        gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
        base = objective.loss(exact, X0, generator=gen()).per_sample.double()
        shifted = objective.loss(lambda x, t: exact(x, t) + c, X0, generator=gen()).per_sample.double()
        measured = (hi - lo) * X0.shape[1] / 2 * float((shifted - base).mean())
        assert measured == pytest.approx(expected, rel=0.03), sampler
        eps_objective = DenoisingScoreMatching(process, "eps", weighting="likelihood", time_sampler=sampler)
        losses = eps_objective.loss(TARGET.model(process, "eps"), X0, generator=gen()).per_sample.double()
        spreads[sampler] = float(losses.std() / losses.mean())
    assert spreads["importance"] < 0.5 * spreads["uniform"], spreads


def test_objective_config_round_trip():
    # Expected: build_objective(config) rebuilds an objective with the same configuration.
    for objective in (
        DenoisingScoreMatching(VP(), "v", weighting={"name": "min_snr", "gamma": 3.0}, time_sampler="importance"),
        FlowMatching(coupling={"name": "sinkhorn", "reg": 0.1}),
        DenoisingScoreMatching(EDM(), "x0", weighting="edm", time_sampler=LogNormalTime(p_mean=-1.0)),
    ):
        again = build_objective(objective.config(), objective.process)
        assert again.config() == objective.config()
        assert type(again) is type(objective)


def test_objective_errors():
    with pytest.raises(ValueError, match="score"):
        FlowMatching(prediction="score", coupling="exact")
    with pytest.raises(ValueError, match="independent pairs"):
        DenoisingScoreMatching(VP(), coupling="exact")
    with pytest.raises(ValueError, match="unknown weighting"):
        DenoisingScoreMatching(VP(), weighting="nope")
    with pytest.raises(ValueError, match="unknown time sampler"):
        DenoisingScoreMatching(VP(), time_sampler="nope")
    with pytest.raises(ValueError, match="unknown coupling"):
        FlowMatching(coupling="nope")
    with pytest.raises(ValueError, match="t_lo"):
        DenoisingScoreMatching(VP(), time_sampler=UniformTime(t_lo=0.5, t_hi=0.2))
    with pytest.raises(ValueError, match="log-SNR is infinite"):
        DenoisingScoreMatching(Linear(), time_sampler=LogSNRTime(t_lo=0.0)).loss(
            lambda x, t: x, X0[:4], generator=torch.Generator()
        )
    objective = DenoisingScoreMatching(VP())
    with pytest.raises(TypeError, match="generator"):
        objective.loss(lambda x, t: x, X0[:4], generator=None)
    with pytest.raises(ValueError, match="labels"):
        objective.loss(lambda x, t, y: x, X0[:4], generator=torch.Generator(), labels=torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="shape"):
        objective.loss(lambda x, t: x[:, :1], X0[:4], generator=torch.Generator())
    with pytest.raises(ValueError, match="unknown kind"):
        LikelihoodWeighting().weight(VP(), 0.5, "nope")
