"""The finance-paths application (issue 18): stylized-fact estimators against closed forms, pricing on paths
against Black-Scholes and Heston, the file reader's errors, and the pipeline end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from sdeflow.applications import finance_paths as fp
from sdeflow.finance import black_scholes

F64 = torch.float64


def _normal(shape, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def test_kurtosis_of_gaussian_and_student_t_returns():
    # Expected: i.i.d. Gaussian returns (GBM's log-returns) have kurtosis 3, within 4 standard errors
    # sqrt(24 / N) = 0.0098 at N = 250,000; Student-t returns with nu = 12 degrees of freedom have
    # 3 + 6 / (nu - 4) = 3.75, within 4 standard errors measured from 50 independent batches (~0.03).
    n = 250_000
    z = _normal((n // 50, 50), 0)
    assert abs(fp.kurtosis(z) - 3.0) < 4 * math.sqrt(24 / n)
    nu = 12
    chi2 = (_normal((nu, 500_000), 1) ** 2).sum(0)
    t = (_normal((500_000,), 2) / (chi2 / nu).sqrt()).reshape(50, 10_000)
    batches = torch.tensor([fp.kurtosis(b.reshape(100, 100)) for b in t])
    se = float(batches.std()) / math.sqrt(len(batches))
    assert abs(fp.kurtosis(t) - 3.75) < 4 * se, (fp.kurtosis(t), se)


def test_autocorrelations_of_iid_returns_vanish_and_of_ar1_are_powers():
    # Expected: for i.i.d. returns every pooled autocorrelation (raw and absolute) and leverage correlation
    # is 0 within 4 standard errors 1 / sqrt(n_paths (L - k)) (~0.008 here). For a stationary AR(1)
    # path x_t = phi x_{t-1} + sqrt(1 - phi^2) z_t, phi = 0.6, the autocorrelation at lag k is phi^k
    # (0.6, 0.36, 0.216), within 0.02 (Bartlett's standard error at lag 1 is sqrt((1+phi^2)/(1-phi^2)/N)
    # = 0.0046 at N = 64,000; the pooled mean and variance add O(1/L) = 0.01 of bias at most).
    n_paths, length = 4000, 64
    x = _normal((n_paths, length), 3)
    for values in (fp.autocorrelation(x, 5), fp.autocorrelation(x, 5, absolute=True), fp.leverage(x, 5)):
        for k, v in enumerate(values, start=1):
            assert abs(v) < 4 / math.sqrt(n_paths * (length - k)), (k, v)
    phi, z = 0.6, _normal((1000, 64), 4)
    ar = torch.empty_like(z)
    ar[:, 0] = z[:, 0]
    for i in range(1, 64):
        ar[:, i] = phi * ar[:, i - 1] + math.sqrt(1 - phi * phi) * z[:, i]
    for k, v in zip((1, 2, 3), fp.autocorrelation(ar, [1, 2, 3])):
        assert abs(v - phi**k) < 0.02, (k, v)


def test_leverage_correlation_against_its_closed_form():
    # Expected: paths of two returns r_1 = z_1, r_2 = exp(-c z_1) z_2 (volatility rises after a fall, c = 0.3)
    # have pooled leverage corr(r_1, |r_2|) = -c e^{c^2/2} sqrt(2/pi) / sqrt(Var r * Var |r|) with the pooled
    # moments Var r = (1 + e^{2c^2}) / 2, E|r| = sqrt(2/pi) (1 + e^{c^2/2}) / 2, Var|r| = Var r - (E|r|)^2
    # (E z e^{-cz} = -c e^{c^2/2}): -0.3633; within 0.01 (standard error ~0.002 at 200,000 paths).
    c = 0.3
    z = _normal((200_000, 2), 5)
    r = torch.stack((z[:, 0], torch.exp(-c * z[:, 0]) * z[:, 1]), dim=1)
    var_r = (1 + math.exp(2 * c * c)) / 2
    mean_abs = math.sqrt(2 / math.pi) * (1 + math.exp(c * c / 2)) / 2
    want = -c * math.exp(c * c / 2) * math.sqrt(2 / math.pi) / math.sqrt(var_r * (var_r - mean_abs**2))
    assert abs(want + 0.3633) < 1e-4
    assert abs(fp.leverage(r, [1])[0] - want) < 0.01


def test_calls_on_gbm_return_paths_are_black_scholes():
    # Expected: paths of 64 exact GBM log-returns (sigma 0.2, r = 0, daily) price calls at 90, 100, 110
    # within 3 standard errors of Black-Scholes (T = 64/252); the martingale correction makes the mean
    # of S_T exactly S_0 (1e-12), and its prices stay within 3 standard errors too.
    sigma, dt, length = 0.2, 1 / 252, 64
    r = -0.5 * sigma**2 * dt + sigma * math.sqrt(dt) * _normal((40_000, length), 6)
    strikes = (90.0, 100.0, 110.0)
    for corrected in (False, True):
        prices, errors = fp.call_prices(r, strikes, martingale=corrected)
        for k, p, se in zip(strikes, prices, errors):
            assert abs(p - float(black_scholes(100.0, k, length * dt, 0.0, sigma))) < 3 * se, (k, p, se, corrected)
    zero_strike, _ = fp.call_prices(r, [1e-300], martingale=True)
    assert abs(zero_strike[0] - 100.0) < 1e-12


def test_simulated_heston_paths_have_the_semi_closed_form_prices_and_the_stylized_facts():
    # Expected: 6,000 simulated paths of 64 daily returns (default Heston: v0 = theta = 0.04, xi 0.6,
    # rho -0.7; full-truncation Euler at 4 steps a day) price calls at 90, 100, 110 within 3 standard errors of
    # the semi-closed form (3.71 ATM; the Euler bias ~0.01 is far below the ~0.07 standard error); their
    # stylized facts are the ones the application checks for: kurtosis ~5.5 (above 4), ACF of |r| ~0.26
    # at lag 1 (above 0.15; ~0 for raw returns, below 0.05), leverage ~-0.07 at lag 1 (below -0.03).
    r = fp.simulate_returns(n_paths=6000, n_steps=64, substeps=4, seed=7)
    assert r.shape == (6000, 64) and r.dtype == F64
    strikes = (90.0, 100.0, 110.0)
    exact = fp.heston_calls(fp.DEFAULT_HESTON, strikes, 64 / 252)
    prices, errors = fp.call_prices(r, strikes)
    for k, p, e, se in zip(strikes, prices, exact, errors):
        assert abs(p - e) < 3 * se, (k, p, e, se)
    facts = fp.stylized_facts(r, 3)
    assert facts["kurtosis"] > 4.0 and facts["acf_abs"][0] > 0.15 and abs(facts["acf_raw"][0]) < 0.05
    assert facts["leverage"][0] < -0.03, facts
    again = fp.simulate_returns(n_paths=6000, n_steps=64, substeps=4, seed=7)
    assert torch.equal(r, again)  # the seed fixes the paths


def test_load_paths_reads_npy_and_csv_and_names_the_file_on_bad_shapes(tmp_path):
    # Expected: a .npy and a .csv of the same (5, 4) returns read back equal (float64); prices become
    # log-returns (one fewer column); a 1-D array, a wrong number of steps, a NaN, a price <= 0 and an
    # unknown suffix are refused with a ValueError naming the file and the expected shape.
    x = np.random.default_rng(0).normal(scale=0.01, size=(5, 4))
    np.save(tmp_path / "r.npy", x)
    np.savetxt(tmp_path / "r.csv", x, delimiter=",")
    a, b = fp.load_paths(tmp_path / "r.npy"), fp.load_paths(tmp_path / "r.csv")
    assert a.dtype == F64 and torch.allclose(a, torch.as_tensor(x)) and torch.allclose(b, a, atol=1e-15, rtol=1e-15)
    prices = 100 * np.exp(np.cumsum(np.hstack([np.zeros((5, 1)), x]), axis=1))
    np.save(tmp_path / "p.npy", prices)
    assert torch.allclose(fp.load_paths(tmp_path / "p.npy", kind="prices", n_steps=4), a, atol=1e-12)
    np.save(tmp_path / "flat.npy", x.reshape(-1))
    with pytest.raises(ValueError, match=r"flat\.npy.*shape \(20,\).*expected log-returns of shape \(n_paths, n_steps\)"):
        fp.load_paths(tmp_path / "flat.npy")
    with pytest.raises(ValueError, match=r"r\.npy has shape \(5, 4\); expected log-returns of shape \(n_paths, 64\)"):
        fp.load_paths(tmp_path / "r.npy", n_steps=64)
    y = x.copy()
    y[2, 1] = np.nan
    np.save(tmp_path / "nan.npy", y)
    with pytest.raises(ValueError, match=r"nan\.npy holds NaN or infinite values in 1 paths \(first rows \[2\]\)"):
        fp.load_paths(tmp_path / "nan.npy")
    with pytest.raises(ValueError, match=r"r\.npy holds prices <= 0"):
        fp.load_paths(tmp_path / "r.npy", kind="prices")
    (tmp_path / "r.txt").write_text("1,2\n")
    with pytest.raises(ValueError, match=r"r\.txt: expected a \.npy or \.csv file"):
        fp.load_paths(tmp_path / "r.txt")
    with pytest.raises(ValueError, match="lags must be integers in"):
        fp.autocorrelation(a, [4])


def test_train_sample_and_evaluate_end_to_end(tmp_path):
    # Expected: a few training steps on 256 simulated paths of 16 returns write a checkpoint whose
    # normalization is the data's mean and sd; sampling gives finite (n, 16) float64 returns in return
    # units (sd within a factor 3 of the data's: the 3-step model is close to its Gaussian prior mapped
    # by the stored scale); compare() gives a JSON-ready report; the CLI runs train and sample the same
    # way (sample draws the four pictures with plot_report) and its --json report parses.
    from sdeflow.cli import main

    data = fp.simulate_returns(n_paths=256, n_steps=16, substeps=2, seed=0)
    result = fp.train_path_model(data, steps=3, batch_size=32, width=16, depth=1, out_dir=tmp_path / "run", progress=False)
    stats = fp.return_statistics(data)
    config = json.loads((result.checkpoint / "config.json").read_text())
    assert config["data"]["transform"] == {"shift": [stats["shift"]], "scale": [stats["scale"]]}
    x = fp.sample_paths(tmp_path / "run", 64, steps=2)
    assert x.shape == (64, 16) and x.dtype == F64 and bool(torch.isfinite(x).all())
    assert 1 / 3 < float(x.std()) / stats["scale"] < 3
    ref = fp.simulate_returns(n_paths=64, n_steps=16, substeps=2, seed=1)
    report = fp.compare(x, ref, data[:64], model=fp.DEFAULT_HESTON, lags=3)
    json.dumps(report)
    assert set(report["distance"]) == {"synthetic", "floor"} and len(report["pricing"]["synthetic"]["z"]) == 5
    with pytest.raises(ValueError, match="expected one trained by train_path_model"):
        config["data"]["kind"] = "toy"
        (result.checkpoint / "config.json").write_text(json.dumps(config))
        fp.sample_paths(tmp_path / "run", 4)

    assert main(["finance", "train", "--paths", "128", "--length", "8", "--substeps", "1", "--steps", "2", "--width", "8",
                 "--depth", "1", "--batch-size", "16", "--out", str(tmp_path / "cli"), "--quiet"]) == 0
    assert main(["finance", "sample", "--ckpt", str(tmp_path / "cli"), "--n", "40", "--sample-steps", "2", "--lags", "2",
                 "--out", str(tmp_path / "cli-s"), "--json", str(tmp_path / "s.json"), "--quiet"]) == 0
    report = json.loads((tmp_path / "s.json").read_text())
    assert report["facts"]["synthetic"]["n_steps"] == 8
    assert sorted(p.name for p in (tmp_path / "cli-s").glob("*.png")) == ["acf.png", "histogram.png", "paths.png", "smile.png"]
    assert np.load(tmp_path / "cli-s" / "paths.npy").shape == (40, 8)
    # A sample flag given to train is refused, naming it (exit 2, before any work).
    assert main(["finance", "train", "--ckpt", str(tmp_path / "cli"), "--out", str(tmp_path / "x"), "--quiet"]) == 2
    # User data: prices in a CSV train a model (6 returns a path); `sample --reference` refuses a held-out
    # file of another length before sampling (exit 2, naming the file and the expected shape), and the
    # model's paths compare with a held-out file of the same length.
    rng = np.random.default_rng(1)
    prices = 100 * np.exp(np.cumsum(np.hstack([np.zeros((64, 1)), 0.01 * rng.standard_t(5, (64, 6))]), axis=1))
    np.savetxt(tmp_path / "prices.csv", prices, delimiter=",")
    np.save(tmp_path / "held.npy", 0.01 * rng.standard_t(5, (64, 6)))
    np.save(tmp_path / "short.npy", 0.01 * rng.standard_t(5, (64, 5)))
    assert main(["finance", "train", "--data", str(tmp_path / "prices.csv"), "--kind", "prices", "--steps", "2", "--width",
                 "8", "--depth", "1", "--batch-size", "16", "--out", str(tmp_path / "user"), "--quiet"]) == 0
    assert main(["finance", "sample", "--ckpt", str(tmp_path / "user"), "--n", "32", "--sample-steps", "2", "--lags", "2",
                 "--reference", str(tmp_path / "short.npy"), "--out", str(tmp_path / "user-s"), "--quiet"]) == 2
    user = fp.sample_paths(tmp_path / "user", 32, steps=2)  # the CLI's valid run (and its pictures) is checked above
    held = fp.load_paths(tmp_path / "held.npy", n_steps=6)
    assert user.shape == (32, 6) and set(fp.compare(user, held, lags=2)["distance"]) == {"synthetic"}


@pytest.mark.slow
def test_a_short_training_run_learns_the_stylized_facts(tmp_path):
    # Expected: 600 steps (width 128, depth 2) on 4,000 simulated paths of 16 daily returns give samples
    # (4,000, Heun in 8 steps) that show every stylized fact of the simulator, if weaker. Measured
    # (seed 0; simulator on a fresh seed in brackets): sd 0.0127 (0.0126), kurtosis 3.32 (3.86), ACF of
    # |r| at lag 1 0.049 (0.103), ACF of r at lag 1 -0.005 (-0.001), leverage at lag 1 -0.052 (-0.085), ATM
    # call 1.904 +- 0.039 (semi-closed form 1.964). Bounds: sd within 5% of the data's; kurtosis above
    # 3.15 (Gaussian returns give 3 +- 0.02, one standard error sqrt(24/64000)); ACF of |r| above 0.02 and
    # leverage below -0.02 (i.i.d. returns give 0 +- 0.004, one standard error 1/sqrt(4000 * 15)); ACF of
    # r within 0.03 of 0; the ATM call within 3 standard errors of Heston's price.
    data = fp.simulate_returns(n_paths=4000, n_steps=16, substeps=2, seed=0)
    fp.train_path_model(data, steps=600, batch_size=256, width=128, depth=2, out_dir=tmp_path / "run", progress=False)
    x = fp.sample_paths(tmp_path / "run", 4000, steps=8)
    facts = fp.stylized_facts(x, 1)
    assert abs(facts["std"] / float(data.std()) - 1) < 0.05, facts
    assert facts["kurtosis"] > 3.15, facts
    assert facts["acf_abs"][0] > 0.02 and facts["leverage"][0] < -0.02 and abs(facts["acf_raw"][0]) < 0.03, facts
    (price,), (se,) = fp.call_prices(x, [100.0])
    assert abs(price - fp.heston_calls(fp.DEFAULT_HESTON, [100.0], 16 / 252)[0]) < 3 * se, (price, se)
