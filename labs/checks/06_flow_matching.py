"""Checks of lab 6 against the mathematics."""

from __future__ import annotations

import math

import torch

from sdeflow import processes, targets
from sdeflow.transport import straightness

F64 = torch.float64


def check_fm_loss(fm_loss) -> str:
    linear = processes.Linear()
    s, D, n = 0.6, 2, 200_000
    gauss = targets.gaussian([0.0] * D, [s] * D)
    exact = gauss.model(linear, "velocity")
    gen = torch.Generator().manual_seed(3)
    x0 = s * torch.randn(n, D, generator=gen, dtype=F64)
    eps = torch.randn(n, D, generator=gen, dtype=F64)
    results = []
    for t in (0.3, 0.7):
        tt = torch.full((n,), t, dtype=F64)
        loss = fm_loss(exact, x0, eps, tt)
        assert isinstance(loss, torch.Tensor) and loss.ndim == 0, "fm_loss must return a 0-d tensor"
        var_x = (1 - t) ** 2 * s * s + t * t
        cov = t - (1 - t) * s * s
        want = D * ((1 + s * s) - cov * cov / var_x)
        # Per-sample loss: (want / D) x chi-square(D), sd = want sqrt(2/D) <= 2.7; 5 SE at n = 200,000 <= 0.03.
        assert abs(float(loss) - want) < 0.03, f"at t = {t}: loss of the exact velocity {float(loss):.4f}, closed form {want:.4f}"
        results.append((t, float(loss), want))
    zero = float(fm_loss(lambda x, t: torch.zeros_like(x), x0, eps, torch.full((n,), 0.5, dtype=F64)))
    # ||eps - x0||^2 = (1 + s^2) chi-square(2): sd 2.72, 5 SE = 0.03.
    assert abs(zero - D * (1 + s * s)) < 0.05, f"the zero model's loss is E||eps - x0||^2 = {D * (1 + s * s):.3f}; got {zero:.4f}"
    return "; ".join(f"t = {t}: {got:.4f} vs closed form {want:.4f}" for t, got, want in results)


def check_path_straightness(path_straightness) -> str:
    ts = [1 - k / 256 for k in range(257)]
    # Straight lines at constant speed: 0.
    a, b = torch.tensor([[1.0, 2.0]], dtype=F64), torch.tensor([[-1.0, 0.5]], dtype=F64)
    line = torch.stack([b + (a - b) * t for t in ts])
    zero = float(path_straightness(line, ts))
    assert abs(zero) < 1e-12, f"a straight path has straightness 0; got {zero}"
    # A quarter circle x(t) = (cos(pi t/2), sin(pi t/2)): |x'|^2 = pi^2/4, chord c = x(1) - x(0) = (-1, 1),
    # S = int |x' - c|^2 dt = pi^2/4 - 2 c.(x(1) - x(0)) + |c|^2 = pi^2/4 - 2 (discretization error O(h^2)).
    arc = torch.stack([torch.tensor([[math.cos(math.pi * t / 2), math.sin(math.pi * t / 2)]], dtype=F64) for t in ts])
    got = float(path_straightness(arc, ts))
    want = math.pi**2 / 4 - 2
    assert abs(got - want) < 1e-4, f"quarter circle: {got:.6f}, closed form pi^2/4 - 2 = {want:.6f}"
    # sdeflow's own measurement on Euler paths of the ring's exact velocity (the same definition).
    ring, linear = targets.ring2d(), processes.Linear()
    model = ring.model(linear, "velocity")
    x1 = linear.prior_sample((200, 2), seeds=0, dtype=F64)
    import sdeflow
    from sdeflow.transport import euler_grid

    res = sdeflow.sample(model, linear, x1, prediction="velocity", solver="euler", grid=euler_grid(32), return_trajectory=True)
    ref = straightness(model, x1, steps=32)["straightness"]
    mine = float(path_straightness(res.trajectory, [float(t) for t in res.ts]))
    assert abs(mine - ref) < 1e-9 * max(1.0, ref), f"ring, 32 Euler steps: {mine:.6f}; sdeflow.transport.straightness {ref:.6f}"
    return f"0 on lines, {got:.5f} on the quarter circle (pi^2/4 - 2 = {want:.5f}), equals transport.straightness ({ref:.4f})"
