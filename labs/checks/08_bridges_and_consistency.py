"""Checks of lab 8 against the mathematics."""

from __future__ import annotations

import math

import torch

from sdeflow import processes
from sdeflow.distill import consistency_coefficients
from sdeflow.targets import GaussianBridge

F64 = torch.float64


def check_sb_cross_covariance_1d(sb_cross_covariance_1d) -> str:
    worst = 0.0
    for v0, v1, sigma in ((1.0, 1.0, 1.0), (0.5, 2.0, 0.7), (3.0, 0.2, 2.0)):
        got = float(sb_cross_covariance_1d(v0, v1, sigma))
        ref = float(GaussianBridge([0.0], [[v0]], [0.0], [[v1]], sigma=sigma).cross_covariance())
        assert abs(got - ref) < 1e-12, f"v0 = {v0}, v1 = {v1}, sigma = {sigma}: {got:.6f}, GaussianBridge gives {ref:.6f}"
        worst = max(worst, abs(got - ref))
    # DSBM's figure for unit Gaussians and sigma = 1: (sqrt(5) - 1)/2.
    golden = float(sb_cross_covariance_1d(1.0, 1.0, 1.0))
    assert abs(golden - (math.sqrt(5) - 1) / 2) < 1e-12
    # Limits: optimal transport (comonotone, C = sqrt(v0 v1)) as sigma -> 0; independence as sigma -> infinity.
    ot = float(sb_cross_covariance_1d(0.5, 2.0, 1e-4))
    assert abs(ot - 1.0) < 1e-6, f"sigma -> 0 must give sqrt(v0 v1) = 1; got {ot}"
    indep = float(sb_cross_covariance_1d(0.5, 2.0, 1e3))
    assert abs(indep) < 1e-5, f"sigma -> infinity must give 0; got {indep}"
    return f"equals GaussianBridge to {worst:.1e}; (sqrt 5 - 1)/2 for unit Gaussians; OT and independence limits"


def check_sb_marginal_cov(sb_marginal_cov) -> str:
    br = GaussianBridge([0.0, 1.0], [[1.0, 0.2], [0.2, 0.6]], [1.0, 0.0], [[0.5, -0.1], [-0.1, 1.5]], sigma=0.9)
    C = br.cross_covariance()
    for t in (0.0, 0.3, 0.5, 0.9, 1.0):
        got = sb_marginal_cov(br.cov0, br.cov1, C, br.sigma, t)
        assert isinstance(got, torch.Tensor) and got.shape == (2, 2), "expected a (2, 2) tensor"
        gap = float((got - br.marginal(t)[1]).abs().max())
        assert gap < 1e-12, f"at t = {t}: differs from GaussianBridge.marginal by {gap:.3g}"
    # Against simulated bridge paths (the coupling, then Brownian bridges): 40,000 paths, covariance entries
    # of size ~1 have standard error ~0.01; 0.05 is five of them.
    paths = br.sample(40_000, seeds=0, ts=[0.5])[:, 0].to(F64)
    emp = torch.cov(paths.T)
    gap = float((emp - sb_marginal_cov(br.cov0, br.cov1, C, br.sigma, 0.5)).abs().max())
    assert gap < 0.05, f"simulated paths at t = 0.5 have covariance {emp.tolist()}, off by {gap:.3f}"
    return f"equals GaussianBridge.marginal at 5 times; simulated paths agree to {gap:.3f}"


def check_consistency_skip_out(consistency_skip_out) -> str:
    edm, sd = processes.EDM(), 0.5
    s_min = float(edm.noise_level(edm.t_min))
    s = torch.tensor([s_min, 0.01, 0.1, 1.0, 10.0, 80.0], dtype=F64)
    out = consistency_skip_out(s, s_min, sd)
    assert isinstance(out, tuple) and len(out) == 2, "return (c_skip, c_out)"
    c_skip, c_out = (torch.as_tensor(c, dtype=F64) for c in out)
    assert c_skip.shape == s.shape and c_out.shape == s.shape, f"expected shapes {tuple(s.shape)}"
    # The boundary condition f(x, s_min) = x: c_skip = 1 and c_out = 0 exactly there.
    assert float(c_skip[0]) == 1.0 and float(c_out[0]) == 0.0, "at s = s_min: c_skip = 1, c_out = 0 exactly"
    # sdeflow writes f = k y + r D with D = c_skip^EDM y + c_out^EDM F (EDM's denoiser), so
    # c_skip = k + r c_skip^EDM and c_out = r c_out^EDM.
    k, r = consistency_coefficients(edm, edm.t_from_noise_level(s), edm.t_min, sd)
    want_skip = k + r * sd**2 / (s * s + sd**2)
    want_out = r * s * sd / torch.sqrt(s * s + sd**2)
    gap = max(float((c_skip - want_skip).abs().max()), float((c_out - want_out).abs().max()))
    assert gap < 1e-10, f"differs from sdeflow's ConsistencyFunction coefficients by {gap:.3g}"
    return f"boundary condition exact; equal to sdeflow's coefficients to {gap:.1e}"
