"""Learned Schrodinger bridges (SB-CFM, DSBM-IMF) against the closed-form Gaussian bridge."""

import pytest
import torch

from sdeflow.targets import GaussianBridge
from sdeflow.training.couplings import SchrodingerCoupling, get_coupling
from sdeflow.transport import PairedFlowMatching
from sdeflow.transport.bridges import BridgeConfig, BridgeSDE, run_dsbm, simulate_bridge, train_sbcfm


def _dsbm_problem(d: int):
    # DSBM's Gaussian benchmark (Shi et al. 2023, section 7): N(-0.1 * 1, I) -> N(0.1 * 1, I), sigma = 1.
    return GaussianBridge(-0.1 * torch.ones(d), 1.0, 0.1 * torch.ones(d), 1.0, sigma=1.0)


def _moments(x0: torch.Tensor, x1: torch.Tensor) -> tuple[float, float, float]:
    cov = ((x0 - x0.mean(0)) * (x1 - x1.mean(0))).mean(0)
    return float(x0.mean()), float(x0.var(0).mean()), float(cov.mean())


def test_schrodinger_coupling_matches_the_closed_form_cross_covariance():
    # The minibatch Schrodinger plan (Sinkhorn at reg sigma^2 on |x - y|^2 / 2) of 1000 + 1000 Gaussian points,
    # sampled into pairs: their cross-covariance is GaussianBridge's C = (sqrt(5) - 1)/2 = 0.618 per coordinate
    # (unit variances, sigma = 1) up to the plan's sampling error (~0.04 at n = 1000; bound 0.1 on the mean of 2).
    br = _dsbm_problem(2)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(1000, 2, generator=g) - 0.1
    x1 = torch.randn(1000, 2, generator=g) + 0.1
    i, j = SchrodingerCoupling(sigma=1.0)(x0, x1, g)
    _, _, cross = _moments(x0[i], x1[j])
    assert abs(cross - float(br.cross_covariance()[0, 0])) < 0.1
    assert isinstance(get_coupling({"name": "schrodinger", "sigma": 0.5}), SchrodingerCoupling)
    with pytest.raises(ValueError, match="sigma must be a finite number > 0"):
        SchrodingerCoupling(sigma=-1.0)


@pytest.mark.slow
def test_dsbm_converges_on_the_gaussian_case():
    # DSBM-IMF, 2 iterations of 300 steps in d = 3, 20 Euler-Maruyama steps: from exact source samples the backward
    # SDE gives X0 with mean -0.1, variance 1 and Cov(X0, X1) = 0.618 per coordinate (closed form). Measured at d = 5
    # with 2 x 300 steps: 0.618 / 1.02 / -0.099; bounds: mean 0.05, variance 0.1, cross-covariance 0.06
    # (4000 test samples: sampling error ~0.01 on each averaged figure; the rest is the network's).
    br = _dsbm_problem(3)
    x0, _ = br.sample(8000, seeds=0)
    _, x1 = br.sample(8000, seeds=10**6)
    cfg = BridgeConfig(steps=300, iterations=2, width=64, depth=2, n_pairs=4000, progress=False)
    result = run_dsbm(x0, x1, cfg)
    a0, a1 = br.sample(4000, seeds=5 * 10**6)
    x0_hat = simulate_bridge(result.sde("backward"), a1, steps=20, seed=1)
    mean, var, cross = _moments(x0_hat, a1)
    assert abs(mean + 0.1) < 0.05 and abs(var - 1.0) < 0.1 and abs(cross - 0.618034) < 0.06, (mean, var, cross)
    x1_hat = simulate_bridge(result.sde("forward"), a0, steps=20, seed=2)
    _, _, cross = _moments(a0, x1_hat)
    assert abs(float(x1_hat.mean()) - 0.1) < 0.05 and abs(cross - 0.618034) < 0.06


@pytest.mark.slow
def test_sbcfm_learns_the_bridge_marginals():
    # SB-CFM in d = 2 with sigma = 1 between Gaussians with different covariances: the probability-flow ODE of the
    # learned velocity (sdeflow.sample, heun, 20 steps) and the learned SDE (Euler-Maruyama, 50 steps) both carry
    # exact source samples to the target law: mean within 0.1 and covariance entries within 0.25 of cov0
    # (2000 samples: sampling error ~0.04; the rest is 400 training steps on minibatches of 128: measured largest
    # errors, mean / covariance, 0.017 / 0.16 for the ODE and 0.026 / 0.12 for the SDE).
    from sdeflow.processes import Linear
    from sdeflow.sample import sample

    c0 = torch.tensor([[1.0, 0.5], [0.5, 0.8]], dtype=torch.float64)
    br = GaussianBridge([1.0, -1.0], c0, [0.0, 0.0], [0.5, 2.0], sigma=1.0)
    x0, _ = br.sample(8000, seeds=0)
    _, x1 = br.sample(8000, seeds=10**6)
    result = train_sbcfm(x0, x1, BridgeConfig(steps=400, batch_size=128, width=64, depth=2, progress=False))
    assert result.losses["noise"][-1] < result.losses["noise"][0]
    _, start = br.sample(2000, seeds=7 * 10**6)
    ode = sample(result.velocity_model, Linear(), start, solver="heun", grid=torch.linspace(1, 0, 21, dtype=torch.float64)).samples
    sde = simulate_bridge(result.sde("backward"), start, steps=50, seed=3)
    for out in (ode, sde):
        assert (out.mean(0).double() - br.mean0).abs().max() < 0.1
        assert (torch.cov(out.T.double()) - c0).abs().max() < 0.25


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="sigma must be a finite number > 0"):
        BridgeConfig(sigma=-1.0)
    with pytest.raises(ValueError, match="items of one shape"):
        run_dsbm(torch.zeros(10, 2), torch.zeros(10, 3), BridgeConfig(progress=False))
    with pytest.raises(ValueError, match="direction must be one of"):
        BridgeSDE(1.0, "sideways", drift_model=lambda x, t: x)
    with pytest.raises(ValueError, match="needs a Brownian bridge"):
        PairedFlowMatching(field="noise")
    with pytest.raises(ValueError, match="field must be one of"):
        PairedFlowMatching(field="curl", bridge_sigma=1.0)


def test_bridge_command_runs_and_reports(tmp_path, capsys):
    # A tiny SB-CFM run through the CLI: exit 0, the samples file and finite W2 figures for the SDE and the ODE.
    import json

    import numpy as np

    from sdeflow.cli import main

    out = tmp_path / "b"
    assert main(["bridge", "--method", "sbcfm", "--source", "noise", "--target", "moons", "--steps", "5", "--width", "8",
                 "--depth", "1", "--n-data", "300", "--eval", "100", "--sde-steps", "5", "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["w2_sde"] > 0 and report["w2_ode"] > 0
    assert np.load(out / "samples.npz")["sde"].shape == (100, 2)
    # A second run into the same folder is refused before any work (exit 2, the clash and --overwrite named),
    # and the first run's files are left as they were.
    before = (out / "report.json").read_bytes()
    argv = ["bridge", "--method", "sbcfm", "--source", "noise", "--target", "moons", "--steps", "5", "--width", "8",
            "--depth", "1", "--n-data", "300", "--eval", "100", "--sde-steps", "5", "--out", str(out), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "report.json" in err and "--overwrite" in err
    assert (out / "report.json").read_bytes() == before
    assert main(argv + ["--overwrite"]) == 0


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--sigma", "-1"], "sigma must be a finite number > 0"),
        (["--target", "noise"], "--target noise"),
        (["--source", "three.npy"], "same shape on both sides"),
    ],
)
def test_bridge_command_errors(tmp_path, capsys, monkeypatch, argv, message):
    import numpy as np

    from sdeflow.cli import main

    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "three.npy", np.zeros((50, 3), dtype=np.float32))
    base = {"--method": "dsbm", "--source": "noise", "--target": "moons"}
    for flag, value in zip(argv[::2], argv[1::2]):
        base[flag] = value
    flat = [w for kv in base.items() for w in kv]
    assert main(["bridge", *flat, "--n-data", "100", "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert message in capsys.readouterr().err
