"""``sdeflow simulate`` and ``sdeflow price``: files written, closed forms printed, errors reported."""

from __future__ import annotations

import json
import math
import re

import numpy as np

from sdeflow.cli import main


def test_simulate_gbm_writes_paths_figures_and_summary(tmp_path, capsys):
    # Expected: paths of shape (steps + 1, paths, 1) starting at s0 = 100; the terminal mean within
    # 5 standard errors of s0 e^{rT} = 105.13 (Milstein, 2000 paths, 50 steps: bias ~1e-3); the two
    # figures exist; the same folder again is refused without --overwrite (exit code 2).
    out = tmp_path / "gbm"
    code = main(["simulate", "--model", "gbm", "--paths", "2000", "--steps", "50", "--method", "milstein",
                 "--float64", "--out", str(out)])
    assert code == 0
    data = np.load(out / "paths.npz")
    paths = data["samples"]
    assert paths.shape == (51, 2000, 1) and np.allclose(paths[0], 100.0)
    assert data["ts"][-1] == 1.0
    summary = json.loads((out / "summary.json").read_text())
    sd = summary["terminal_std"] / math.sqrt(2000)
    assert abs(summary["terminal_mean"] - 100 * math.exp(0.05)) < 5 * sd
    for name in ("paths.png", "terminal.png"):
        assert (out / name).stat().st_size > 1000
    capsys.readouterr()
    assert main(["simulate", "--paths", "10", "--steps", "5", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_simulate_heston_reports_prices(tmp_path):
    # Expected: Heston paths are written as (price, variance), the price starting at s0 = 100.
    out = tmp_path / "heston"
    assert main(["simulate", "--model", "heston", "--paths", "200", "--steps", "20", "--out", str(out)]) == 0
    paths = np.load(out / "paths.npz")["samples"]
    assert paths.shape == (21, 200, 2) and np.allclose(paths[0, :, 0], 100.0, rtol=1e-6)


def test_price_prints_estimate_and_closed_form(capsys):
    # Expected: the Black-Scholes call by exact Monte Carlo (100000 paths, antithetic) is within 3
    # standard errors of the printed closed form 10.45058357, and delta is reported.
    assert main(["price", "--paths", "100000", "--steps", "1", "--antithetic", "--greeks", "delta",
                 "--float64"]) == 0  # no --quiet: it silences the text checked here
    text = capsys.readouterr().out
    assert "closed form 10.45058357" in text
    price, se = (float(v) for v in re.search(r"price ([\d.]+)\s+stderr ([\d.]+)", text).groups())
    assert abs(price - 10.450583572185565) < 3 * se
    assert "delta" in text and "CI [" in text


def test_price_bond_and_errors(capsys):
    # Expected: the CIR bond prints its closed form 0.83523442; unknown parameters and models are
    # errors with exit code 2 that name the argument.
    assert main(["price", "--option", "bond", "--model", "cir", "--T", "5", "--paths", "2000", "--steps", "50"]) == 0
    assert "closed form 0.83523442" in capsys.readouterr().out
    assert main(["price", "--model", "gbm", "--param", "vol=0.2", "--quiet", "--paths", "10"]) == 2
    assert "--param ['vol'] unknown for model 'gbm'" in capsys.readouterr().err
    assert main(["simulate", "--paths", "0"]) == 2
