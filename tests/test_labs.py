"""The hands-on labs (labs/NN_name.py) run, and their exercise checks can fail.

Each lab runs in "verify" mode with the small CI sizes (labs/labkit.py): every exercise's check must
raise AssertionError on the function as written in the lab (the unfilled exercise; otherwise the
check could not fail), then pass on the worked solution of labs/solutions/, and the lab must run to
its end with the solutions substituted (its own asserts against closed forms included). Expected
figure: the lab finishes, and the exercises it checked are exactly the functions of its solutions file.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAB_DIR = ROOT / "labs"
LABS = sorted(LAB_DIR.glob("[0-9][0-9]_*.py"))


def _solution_functions(stem: str) -> set[str]:
    spec = importlib.util.spec_from_file_location(f"_labsol_{stem}", LAB_DIR / "solutions" / f"{stem}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {n for n, f in vars(module).items() if inspect.isfunction(f) and f.__module__ == module.__name__ and not n.startswith("_")}


def test_the_course_has_its_eight_labs():
    # The course: eight labs, each with a checks file and a solutions file of the same stem.
    assert [p.stem[:2] for p in LABS] == [f"{i:02d}" for i in range(1, 9)], [p.stem for p in LABS]
    for path in LABS:
        assert (LAB_DIR / "checks" / path.name).is_file(), f"labs/checks/{path.name} is missing"
        assert (LAB_DIR / "solutions" / path.name).is_file(), f"labs/solutions/{path.name} is missing"


@pytest.mark.parametrize("path", LABS, ids=[p.stem for p in LABS])
def test_lab_is_a_jupytext_percent_script(path):
    # jupytext's percent format: a YAML header in comments, then cells opened by "# %%"; markdown cells
    # are "# %% [markdown]" followed by comment lines only. The file must also be valid Python.
    text = path.read_text()
    ast.parse(text)
    lines = text.splitlines()
    assert lines[0] == "# ---" and "jupytext" in text.split("# ---")[1], "missing the jupytext header"
    cells = [i for i, line in enumerate(lines) if line.startswith("# %%")]
    assert len(cells) >= 6, f"only {len(cells)} cells"
    markdown = [i for i in cells if lines[i].strip() == "# %% [markdown]"]
    assert len(markdown) >= 3, "a lab explains itself in markdown cells"
    for i in markdown:
        j = i + 1
        while j < len(lines) and not lines[j].startswith("# %%"):
            assert lines[j] == "" or lines[j].startswith("#"), f"line {j + 1}: code inside a markdown cell"
            j += 1


@pytest.mark.slow
@pytest.mark.parametrize("path", LABS, ids=[p.stem for p in LABS])
def test_lab_runs_with_solutions_and_its_checks_can_fail(path, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("SDEFLOW_LABS_MODE", "verify")
    monkeypatch.setenv("SDEFLOW_LABS_QUICK", "1")
    monkeypatch.setenv("SDEFLOW_LABS_OUT", str(tmp_path))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.syspath_prepend(str(LAB_DIR))
    monkeypatch.chdir(tmp_path)
    import matplotlib

    matplotlib.use("Agg")
    namespace = runpy.run_path(str(path), run_name="__main__")
    out = capsys.readouterr().out
    lab = namespace["lab"]
    expected = _solution_functions(path.stem)
    # Every solved exercise went through lab.check (which in verify mode saw its check fail first).
    assert sorted(lab.passed) == sorted(expected), f"checked {lab.passed}, solutions define {sorted(expected)}"
    assert out.count("fails its check as it must") == len(expected)
    assert f"[{path.stem}] done" in out
    sys.modules.pop("labkit", None)


def _checks(stem: str):
    spec = importlib.util.spec_from_file_location(f"_labcheck_{stem}", LAB_DIR / "checks" / f"{stem}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _em_with_sqrt_h(drift, diffusion, x0, ts, dws):
    # Mistake: scales the Brownian increment by sqrt(h) a second time.
    x = x0
    for k in range(len(ts) - 1):
        h = float(ts[k + 1]) - float(ts[k])
        x = x + drift(ts[k], x) * h + diffusion(ts[k], x) * dws[k] * h**0.5
    return x


def _dsm_mean_over_coordinates(eps_model, x0, t, eps, process):
    # Mistake: averages the squared error over coordinates (a factor D too small).
    a = process.alpha(t).to(x0.dtype)[:, None]
    s = process.sigma(t).to(x0.dtype)[:, None]
    return (eps_model(a * x0 + s * eps, t) - eps).pow(2).mean()


def _reverse_drift_without_half(x, t, score, process, eta):
    # Mistake: Anderson's drift f x - g^2 score whatever eta (the probability-flow ODE needs g^2/2).
    return process.f(t).to(x.dtype) * x - process.g2(t).to(x.dtype) * score


def _jensen_shannon_as_kl(p, q):
    # Mistake: KL(P || Q) instead of the symmetrized divergence to the mixture.
    import numpy as np

    pos = p > 0
    return float(np.sum(p[pos] * np.log(p[pos] / np.maximum(q[pos], 1e-300))))


def _ddim_swapped(x, x0_hat, alpha0, sigma0, alpha1, sigma1):
    # Mistake: the noise estimate rescaled by sigma0/sigma1 instead of sigma1/sigma0.
    return alpha1 * x0_hat + sigma0 * (x - alpha0 * x0_hat) / sigma1


def _fm_loss_paper_orientation(velocity_model, x0, eps, t):
    # Mistake: flow-matching papers' target x0 - eps (data at t = 1); sdeflow's time runs the other way.
    tc = t.to(x0.dtype)[:, None]
    return (velocity_model((1 - tc) * x0 + tc * eps, t) - (x0 - eps)).pow(2).sum(-1).mean()


def _posterior_without_noise_scale(mu, Sigma, A, y, noise_std):
    # Mistake: forgets to divide A^T A and A^T y by the noise variance.
    import torch

    cov = torch.linalg.inv(torch.linalg.inv(Sigma) + A.T @ A)
    return cov @ (torch.linalg.solve(Sigma, mu) + A.T @ y), cov


def _cross_covariance_without_half(v0, v1, sigma):
    # Mistake: drops the factor 1/2 of C = (D - sigma^2)/2.
    return (4 * v0 * v1 + sigma**4) ** 0.5 - sigma**2


MISTAKES = [
    ("01_sdes", "euler_maruyama", _em_with_sqrt_h),
    ("02_score_matching", "dsm_loss", _dsm_mean_over_coordinates),
    ("03_reverse_time", "reverse_drift", _reverse_drift_without_half),
    ("04_likelihoods", "jensen_shannon", _jensen_shannon_as_kl),
    ("05_fast_samplers", "ddim_step", _ddim_swapped),
    ("06_flow_matching", "fm_loss", _fm_loss_paper_orientation),
    ("07_inverse_problems", "gaussian_posterior", _posterior_without_noise_scale),
    ("08_bridges_and_consistency", "sb_cross_covariance_1d", _cross_covariance_without_half),
]


@pytest.mark.parametrize("stem,name,mistake", MISTAKES, ids=[f"{s[:2]}-{n}" for s, n, _ in MISTAKES])
def test_checks_reject_a_plausible_mistake(stem, name, mistake):
    # Beyond the unfilled stubs: one mistake a learner could make per lab (a wrong factor, the other time
    # orientation, KL instead of JS). Expected: the check raises AssertionError on it.
    with pytest.raises(AssertionError):
        getattr(_checks(stem), f"check_{name}")(mistake)
