"""The analysis commands end to end: likelihood, compare, fokker-planck."""

from __future__ import annotations

import json

import pytest

import numpy as np

from sdeflow.cli import main
from sdeflow.targets import ring2d



def test_likelihood_of_an_exact_target_with_the_elbo(tmp_path, capsys):
    # The exact ring2d model: the ODE likelihood's mean absolute error is at the ODE tolerance
    # (< 5e-3 nats), and the 64-step ELBO lies below the likelihood.
    out = tmp_path / "l.json"
    rc = main(["likelihood", "--target", "ring2d", "--n", "16", "--elbo-steps", "64", "--elbo-samples", "8",
               "--json", str(out)])
    assert rc == 0
    rep = json.loads(out.read_text())
    assert rep["mean_abs_error"] < 5e-3
    assert rep["elbo"]["elbo"] < rep["likelihood"]["nats"]
    text = capsys.readouterr().out
    assert "bits/dim" in text and "ELBO" in text


def test_likelihood_of_a_data_file_with_hutchinson(tmp_path):
    x = ring2d().sample(8, seeds=3).numpy()
    np.save(tmp_path / "d.npy", x)
    out = tmp_path / "l.json"
    assert main(["likelihood", "--target", "ring2d", "--data", str(tmp_path / "d.npy"), "--method", "hutchinson",
                 "--probes", "2", "--quiet", "--json", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["n"] == 8 and rep["mean_probe_stderr"] >= 0
    assert main(["likelihood", "--quiet"]) == 2  # no model: a clear error, exit code 2


def test_compare_two_sample_files(tmp_path, capsys):
    t = ring2d()
    np.savez(tmp_path / "a.npz", samples=t.sample(300, seeds=0).numpy())
    np.savez(tmp_path / "b.npz", samples=t.sample(600, seeds=1000).numpy())
    out = tmp_path / "c.json"
    assert main(["compare", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--boot", "3", "--json", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert set(rep["metrics"]) >= {"sliced_wasserstein2", "wasserstein2", "mmd", "jensen_shannon"}
    assert all("floor" in m for m in rep["metrics"].values())
    assert "halves of B" in rep["floor"]
    assert "sliced_wasserstein2" in capsys.readouterr().out
    assert main(["compare", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--target", "ring2d", "--boot", "2",
                 "--quiet"]) == 0


def test_fokker_planck_writes_animations_and_plots(tmp_path):
    out = tmp_path / "fp"
    rc = main(["fokker-planck", "--cells", "24", "--frames", "3", "--samples", "400", "--sde-steps", "40",
               "--process-option", "beta_max=8", "--out", str(out), "--quiet"])
    assert rc == 0
    for name in ("forward.gif", "backward.gif", "densities.png", "jsd.png", "fokker_planck.json"):
        assert (out / name).stat().st_size > 1000
    rep = json.loads((out / "fokker_planck.json").read_text())
    assert rep["forward"]["mass_drift"] < 1e-10 and len(rep["backward"]["times"]) == 4
    # A second run into the same folder refuses to overwrite.
    assert main(["fokker-planck", "--cells", "24", "--frames", "3", "--out", str(out), "--quiet"]) == 2


@pytest.mark.parametrize("t_end", [0.05, 0.5])
def test_fokker_planck_t_end_anywhere_in_the_run(tmp_path, t_end):
    # --t-end above the first frame's noise level (log-SNR 5, t about 0.03 with beta_max=8) used to be
    # refused because the backward times repeated t_end; now the frames move up (uniform in log-SNR from
    # one spacing above t_end), so the backward run's last time is exactly t_end and the times strictly decrease.
    out = tmp_path / "fp"
    rc = main(["fokker-planck", "--cells", "12", "--frames", "3", "--samples", "50", "--sde-steps", "4",
               "--process-option", "beta_max=8", "--t-end", str(t_end), "--out", str(out), "--quiet"])
    assert rc == 0
    times = json.loads((out / "fokker_planck.json").read_text())["backward"]["times"]
    assert times[-1] == pytest.approx(t_end, rel=1e-12) and all(a > b for a, b in zip(times, times[1:]))


def test_likelihood_of_a_checkpoint(tmp_path):
    # A (barely) trained checkpoint: the command maps the data file into model space with the
    # checkpoint's normalization and reports a finite likelihood and bound in data units.
    run = tmp_path / "run"
    assert main(["train", "--data", "ring2d", "--n-data", "500", "--steps", "10", "--width", "16", "--depth", "1",
                 "--batch-size", "32", "--threads", "1", "--out", str(run)]) == 0
    np.save(tmp_path / "d.npy", ring2d().sample(8, seeds=0).numpy())
    out = tmp_path / "l.json"
    assert main(["likelihood", "--checkpoint", str(run), "--data", str(tmp_path / "d.npy"), "--rtol", "1e-3",
                 "--atol", "1e-3", "--elbo-steps", "8", "--elbo-samples", "2", "--quiet", "--json", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert np.isfinite(rep["likelihood"]["nats"]) and np.isfinite(rep["elbo"]["elbo"])
