"""Grids: shapes, ends, the rule each follows, validation of user grids."""

import math

import pytest
import torch

from sdeflow.grids import Explicit, Karras, LogSNRFromT, Polynomial, UniformLogSNR, UniformT, get, validate_ts
from sdeflow.grids import default_grid
from sdeflow.processes import EDM, VP, Linear


@pytest.mark.parametrize("grid", [UniformT(), Karras(), UniformLogSNR(), LogSNRFromT(), Polynomial()], ids=repr)
@pytest.mark.parametrize("steps", [1, 2, 5, 40])
def test_grid_shape_and_ends(grid, steps):
    # steps + 1 strictly decreasing times from T to t_min, then 0.
    p = VP()
    ts = grid(p, steps)
    assert ts.dtype == torch.float64 and ts.shape == (steps + 1,)
    assert float(ts[0]) == p.T and float(ts[-1]) == 0.0
    if steps > 1:
        assert float(ts[-2]) == p.t_min
    assert bool((ts[1:] < ts[:-1]).all())


def test_karras_is_edm_eq5():
    # On EDM the Karras grid is sigma_i = (80^(1/7) + i/(n-1) (0.002^(1/7) - 80^(1/7)))^7.
    ts = Karras()(EDM(), 18)
    i = torch.arange(18, dtype=torch.float64)
    expected = (80 ** (1 / 7) + i / 17 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    torch.testing.assert_close(ts[:-1], expected, rtol=1e-12, atol=0)


def test_uniform_log_snr_is_uniform():
    p = VP()
    ts = UniformLogSNR()(p, 10)
    lam = p.log_snr(ts[:-1])
    d = lam[1:] - lam[:-1]
    torch.testing.assert_close(d, torch.full_like(d, float(d[0])), rtol=1e-9, atol=1e-9)


def test_log_snr_from_t_on_a_flow():
    # Rectified flow: log-SNR is -inf at T. One step from T to t_1 = T - (T - t_min)/(n - 1), then equal
    # steps in log-SNR down to t_min, then 0; on a process with finite log-SNR at T it is UniformLogSNR.
    lin = Linear()
    for steps in (1, 2, 3, 12):
        ts = LogSNRFromT()(lin, steps)
        assert ts.shape == (steps + 1,) and float(ts[0]) == 1.0 and float(ts[-1]) == 0.0
        assert bool((ts[1:] < ts[:-1]).all())
    ts = LogSNRFromT()(lin, 12)
    assert float(ts[1]) == pytest.approx(1.0 - (1.0 - lin.t_min) / 11, rel=1e-12)
    d = lin.log_snr(ts[1:-1])
    d = d[1:] - d[:-1]
    torch.testing.assert_close(d, torch.full_like(d, float(d[0])), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(LogSNRFromT()(VP(), 9), UniformLogSNR()(VP(), 9), rtol=0, atol=0)


def test_to_zero_false_and_custom_range():
    ts = UniformT(t_max=0.8, t_min=0.1, to_zero=False)(VP(), 7)
    torch.testing.assert_close(ts, torch.linspace(0.8, 0.1, 8, dtype=torch.float64))


def test_default_grid_per_process():
    # Rectified flow has an infinite noise level at T = 1: uniform in t; elsewhere Karras.
    assert isinstance(default_grid(Linear()), UniformT)
    assert isinstance(default_grid(EDM()), Karras)


def test_validation_errors():
    with pytest.raises(ValueError, match=r"strictly decreasing.*grid\[1\]"):
        validate_ts([1.0, 0.5, 0.7, 0.0])
    with pytest.raises(ValueError, match="finite"):
        validate_ts([1.0, math.nan, 0.0])
    with pytest.raises(ValueError, match="below t = 0"):
        validate_ts([1.0, -0.1])
    with pytest.raises(ValueError, match="at least 2"):
        validate_ts([1.0])
    with pytest.raises(ValueError, match="beyond the end"):
        validate_ts([2.0, 0.0], VP())
    with pytest.raises(ValueError, match="not finite at t_max"):
        Karras()(Linear(), 5)
    with pytest.raises(ValueError, match="unknown grid"):
        get("cosine")
    with pytest.raises(ValueError, match="steps"):
        UniformT()(VP(), 0)
    with pytest.raises(ValueError, match="rho"):
        Karras(rho=0)
    with pytest.raises(ValueError, match="does not match"):
        Explicit([1.0, 0.5, 0.0])(VP(), 3)
    assert isinstance(get([1.0, 0.0]), Explicit)
