"""Checks of lab 4 against the mathematics."""

from __future__ import annotations

import math

import numpy as np
import torch

from sdeflow import processes

F64 = torch.float64


def _gaussian_case(fokker_planck_rhs, cells: int):
    """Error of the learner's right-hand side against d p/dt of N(0, v_t) under the VP forward SDE at t = 0.3."""
    process, v, t = processes.VP(), 0.5, 0.3
    a, s = float(process.alpha(t)), float(process.sigma(t))
    da, ds = float(process.d_alpha(t)), float(process.d_sigma(t))
    v_t = a * a * v + s * s
    dv_t = 2 * a * da * v + 2 * s * ds
    x = torch.linspace(-5, 5, cells, dtype=F64)
    p = torch.exp(-x * x / (2 * v_t)) / math.sqrt(2 * math.pi * v_t)
    drift = float(process.f(t)) * x
    got = fokker_planck_rhs(p, x, drift, float(process.g2(t)))
    assert isinstance(got, torch.Tensor) and got.shape == (cells - 2,), f"expected shape ({cells - 2},) (interior points)"
    xi = x[1:-1]
    want = 0.5 * dv_t * (xi * xi / v_t**2 - 1 / v_t) * p[1:-1]
    return float((got - want).abs().max() / want.abs().max())


def check_fokker_planck_rhs(fokker_planck_rhs) -> str:
    coarse = _gaussian_case(fokker_planck_rhs, 201)
    fine = _gaussian_case(fokker_planck_rhs, 401)
    # Central differences are second order: relative error ~1e-3 at dx = 0.05, and x4 smaller at dx/2.
    assert coarse < 5e-3, f"relative error {coarse:.3g} against the closed form at dx = 0.05 (expected < 5e-3)"
    ratio = coarse / fine
    assert 3.0 < ratio < 5.0, f"halving dx divided the error by {ratio:.2f}; second order gives ~4"
    return f"relative error {coarse:.1e} at dx = 0.05, {fine:.1e} at dx/2 (ratio {ratio:.2f}, second order)"


def check_jensen_shannon(jensen_shannon) -> str:
    # Disjoint supports: log 2; equal distributions: 0.
    p = np.array([0.5, 0.5, 0.0, 0.0])
    q = np.array([0.0, 0.0, 0.25, 0.75])
    js = float(jensen_shannon(p, q))
    assert abs(js - math.log(2)) < 1e-12, f"disjoint supports give log 2 = {math.log(2):.6f}; got {js}"
    same = float(jensen_shannon(p, p))
    assert abs(same) < 1e-12, f"JS(P, P) must be 0; got {same}"
    # Two Bernoulli laws, closed form: H(M) - (H(P) + H(Q))/2 with binary entropies.
    def h(u):
        return -sum(w * math.log(w) for w in (u, 1 - u) if w > 0)

    a, b = 0.2, 0.7
    want = h((a + b) / 2) - (h(a) + h(b)) / 2
    got = float(jensen_shannon(np.array([a, 1 - a]), np.array([b, 1 - b])))
    assert abs(got - want) < 1e-12, f"Bernoulli(0.2) vs Bernoulli(0.7): closed form {want:.6f}, got {got:.6f}"
    sym = float(jensen_shannon(np.array([b, 1 - b]), np.array([a, 1 - a])))
    assert abs(sym - got) < 1e-12, "the Jensen-Shannon divergence is symmetric"
    return f"log 2 on disjoint supports, 0 on equal laws, Bernoulli closed form {want:.4f} matched"


def check_divergence(divergence) -> str:
    from sdeflow import targets
    from sdeflow.likelihood import divergence_exact

    gen = torch.Generator().manual_seed(0)
    M = torch.randn(3, 3, generator=gen, dtype=F64)
    x = torch.randn(20, 3, generator=gen, dtype=F64)
    got = divergence(lambda z: z @ M.T, x)
    assert isinstance(got, torch.Tensor) and got.shape == (20,), "expected a (batch,) tensor"
    gap = float((got - torch.trace(M)).abs().max())
    assert gap < 1e-12, f"div(M x) must be tr M = {float(torch.trace(M)):.6f} at every x; off by {gap:.3g}"
    # The VP probability-flow field of N(0, v I) data: u = f x + g^2 x / (2 v_t), div u = D (f + g^2 / (2 v_t)).
    process, v, t = processes.VP(), 0.4, 0.35
    flow = process.probability_flow_ode(targets.gaussian([0.0] * 3, [v**0.5] * 3).model(process, "score"), "score")
    tt = torch.full((20,), t, dtype=F64)
    v_t = float(process.alpha(t)) ** 2 * v + float(process.sigma(t)) ** 2
    want = 3 * (float(process.f(t)) + float(process.g2(t)) / (2 * v_t))
    got = divergence(lambda z: flow.drift(tt, z), x)
    gap2 = float((got - want).abs().max())
    assert gap2 < 1e-10, f"Gaussian flow field: closed form {want:.6f}, off by {gap2:.3g}"
    # A nonlinear field (the ring's flow) against sdeflow's exact divergence.
    ring = targets.ring2d()
    ring_flow = process.probability_flow_ode(ring.model(process, "score"), "score")
    x2 = ring.noised_sample(50, 0.2, process, seeds=0, dtype=F64)
    t2 = torch.full((50,), 0.2, dtype=F64)
    fn = lambda z: ring_flow.drift(t2, z)  # noqa: E731
    gap3 = float((divergence(fn, x2) - divergence_exact(fn, x2)[1]).abs().max())
    assert gap3 < 1e-8, f"ring flow: differs from divergence_exact by {gap3:.3g}"
    return f"tr M on linear fields, Gaussian closed form {want:.4f} (to {gap2:.0e}), equals divergence_exact ({gap3:.0e})"
