"""Checks of lab 3 against the mathematics."""

from __future__ import annotations

import math

import torch

from sdeflow import processes, targets

F64 = torch.float64


def check_reverse_drift(reverse_drift) -> str:
    ring = targets.ring2d()
    worst = 0.0
    for process in (processes.VP(), processes.VE()):
        model = ring.model(process, prediction="score")
        for t in (0.2, 0.6, 0.9):
            x = ring.noised_sample(300, t, process, seeds=1, dtype=F64)
            tt = torch.full((300,), t, dtype=F64)
            for eta in (0.0, 1.0):
                mine = reverse_drift(x, t, ring.score(x, t, process), process, eta)
                assert isinstance(mine, torch.Tensor) and mine.shape == x.shape, f"expected shape {tuple(x.shape)}"
                ref = process.reverse_sde(model, "score", stochasticity=eta).drift(tt, x)
                gap = float((mine - ref).abs().max() / ref.abs().max())
                assert gap < 1e-8, (
                    f"{process.name} at t = {t}, eta = {eta}: relative gap {gap:.3g} to the reverse SDE's drift"
                )
                worst = max(worst, gap)
    # Closed form on N(0, v I) data: f x + (1 + eta^2)/2 g^2 x / (alpha^2 v + sigma^2).
    vp, v, t = processes.VP(), 0.3, 0.4
    x = torch.linspace(-2, 2, 9, dtype=F64).reshape(-1, 1)
    var_t = float(vp.alpha(t)) ** 2 * v + float(vp.sigma(t)) ** 2
    for eta in (0.0, 1.0):
        want = float(vp.f(t)) * x + (1 + eta**2) / 2 * float(vp.g2(t)) * x / var_t
        got = reverse_drift(x, t, -x / var_t, vp, eta)
        assert torch.allclose(got, want, rtol=1e-10, atol=1e-12), f"eta = {eta}: not the Gaussian closed form"
    return f"equals process.reverse_sde(...).drift on VP and VE, eta 0 and 1 (max relative gap {worst:.1e})"


def check_vp_to_ve(vp_to_ve) -> str:
    ring = targets.ring2d()
    vp, ve = processes.VP(), processes.VE()
    for t in (0.2, 0.5, 0.8):
        x = ring.noised_sample(400, t, vp, seeds=3, dtype=F64)
        out = vp_to_ve(x, t, vp, ve)
        assert isinstance(out, tuple) and len(out) == 2, "return (x_ve, t_ve)"
        x_ve, t_ve = out
        t_ve = float(t_ve)
        assert 0 < t_ve <= ve.T, f"t_ve = {t_ve} is outside VE's (0, {ve.T}]"
        lvl_vp, lvl_ve = float(vp.noise_level(t)), float(ve.noise_level(t_ve))
        assert abs(lvl_vp - lvl_ve) < 1e-8 * lvl_vp, f"noise levels differ: VP {lvl_vp:.6g}, VE {lvl_ve:.6g}"
        gap = float((ring.x0(x, t, vp) - ring.x0(x_ve, t_ve, ve)).abs().max())
        assert gap < 1e-8, f"at t = {t}: the exact denoisers disagree by {gap:.3g} (expected < 1e-8)"
        # Change of variables y = x / alpha in D = 2 dimensions: log p_ve(y) = log p_vp(x) + 2 log alpha.
        lp_vp = ring.marginal_log_prob(x, t, vp)
        lp_ve = ring.marginal_log_prob(x_ve, t_ve, ve)
        dens = float((lp_ve - lp_vp - 2 * math.log(float(vp.alpha(t)))).abs().max())
        assert dens < 1e-8, f"at t = {t}: log-densities break the change of variables by {dens:.3g}"
    return "same noise level, same exact denoiser output, and log-densities related by D log alpha (to 1e-8)"


def check_ddpm_posterior(ddpm_posterior) -> str:
    # Condition the joint Gaussian of (x_s, x_t) given x0 directly: x_s = a_s x0 + sig_s e1 and
    # x_t = a_t x0 + sig_t e2 with Cov(x_s, x_t) = (a_t / a_s) sig_s^2 (the Markov forward process), so
    # E[x_s | x_t] = a_s x0 + Cov/Var(x_t) (x_t - a_t x0) and Var = sig_s^2 - Cov^2 / sig_t^2.
    worst = 0.0
    gen = torch.Generator().manual_seed(0)
    for process in (processes.VP(), processes.VE(), processes.Cosine()):
        for t, s in ((0.9, 0.6), (0.5, 0.45), (0.2, 0.05)):
            x_t = torch.randn(16, 2, generator=gen, dtype=F64)
            x0 = torch.randn(16, 2, generator=gen, dtype=F64)
            out = ddpm_posterior(x_t, x0, t, s, process)
            assert isinstance(out, tuple) and len(out) == 2, "return (mean, variance)"
            mean, var = out
            a_s, a_t = float(process.alpha(s)), float(process.alpha(t))
            sig_s, sig_t = float(process.sigma(s)), float(process.sigma(t))
            cov = a_t / a_s * sig_s**2
            want_mean = a_s * x0 + cov / sig_t**2 * (x_t - a_t * x0)
            want_var = sig_s**2 - cov**2 / sig_t**2
            gm = float((mean - want_mean).abs().max())
            gv = abs(float(var) - want_var)
            assert gm < 1e-10, f"{process.name}, t = {t}, s = {s}: posterior mean off by {gm:.3g}"
            assert gv < 1e-10, f"{process.name}, t = {t}, s = {s}: posterior variance {float(var):.6g}, expected {want_var:.6g}"
            worst = max(worst, gm, gv)
    return f"equals the conditioned joint Gaussian on VP, VE and cosine (max gap {worst:.1e})"
