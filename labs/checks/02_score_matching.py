"""Checks of lab 2 against the mathematics."""

from __future__ import annotations

import torch

from sdeflow import processes, targets

F64 = torch.float64


def check_tweedie_x0(tweedie_x0) -> str:
    process = processes.VP()
    ring = targets.ring2d()
    worst = 0.0
    for t in (0.05, 0.3, 0.7, 0.95):
        x = ring.noised_sample(500, t, process, seeds=int(t * 1000), dtype=F64)
        score = ring.score(x, t, process)
        mine = tweedie_x0(x, score, process.alpha(t), process.sigma(t))
        assert isinstance(mine, torch.Tensor) and mine.shape == x.shape, f"expected a tensor of shape {tuple(x.shape)}"
        # The exact posterior mean of the mixture, computed without the score: equal to round-off.
        gap = float((mine - ring.x0(x, t, process)).abs().max())
        assert gap < 1e-8, f"at t = {t}: max |x0_hat - E[x0 | x_t]| = {gap:.3g} (expected < 1e-8)"
        worst = max(worst, gap)
    return f"equals the ring's exact posterior mean at 4 times (max gap {worst:.1e})"


def check_dsm_loss(dsm_loss) -> str:
    process = processes.VP()
    s, D, n = 0.7, 3, 50_000
    gauss = targets.gaussian([0.0] * D, [s] * D)
    exact = gauss.model(process, prediction="eps")
    gen = torch.Generator().manual_seed(0)
    x0 = s * torch.randn(n, D, generator=gen, dtype=F64)
    eps = torch.randn(n, D, generator=gen, dtype=F64)
    t = torch.full((n,), 0.3, dtype=F64)
    loss = dsm_loss(exact, x0, t, eps, process)
    assert isinstance(loss, torch.Tensor) and loss.ndim == 0, "dsm_loss must return a 0-d tensor"
    a2, s2 = float(process.alpha(0.3)) ** 2, float(process.sigma(0.3)) ** 2
    expected = D * a2 * s**2 / (a2 * s**2 + s2)
    # Per-sample loss is c times a chi-square with D degrees (c = a^2 s^2/(a^2 s^2 + sigma^2) = 0.24): sd 0.6,
    # so 5 standard errors at n = 50,000 are 0.013 < 0.02. The zero model's ||eps||^2 has sd 2.45: 5 SE = 0.055.
    assert abs(float(loss) - expected) < 0.02, (
        f"loss of the exact model on N(0, {s}^2 I_{D}) at t = 0.3 is {float(loss):.4f}; "
        f"closed form D a^2 s^2/(a^2 s^2 + sigma^2) = {expected:.4f}"
    )
    # The zero model's loss is E||eps||^2 = D, and the loss must carry gradients to a model's parameters.
    w = torch.zeros((), dtype=F64, requires_grad=True)
    zero = dsm_loss(lambda x, tt: w * x, x0, t, eps, process)
    assert abs(float(zero.detach()) - D) < 0.07, f"loss of the zero model is {zero.item():.4f}; expected E||eps||^2 = {D}"
    zero.backward()
    assert w.grad is not None and float(w.grad.abs()) > 0, "the loss must be differentiable in the model's parameters"
    # Per-sample times: half the batch at t = 0.3, half at t = 0.8, must give the average of the two closed forms.
    t2 = torch.where(torch.arange(n) % 2 == 0, 0.3, 0.8).to(F64)
    a2b, s2b = float(process.alpha(0.8)) ** 2, float(process.sigma(0.8)) ** 2
    expected2 = 0.5 * expected + 0.5 * D * a2b * s**2 / (a2b * s**2 + s2b)
    loss2 = float(dsm_loss(exact, x0, t2, eps, process))
    assert abs(loss2 - expected2) < 0.02, f"with per-sample times the loss is {loss2:.4f}; closed form {expected2:.4f}"
    return f"exact-model loss {float(loss):.4f} vs closed form {expected:.4f}; zero model {float(zero.detach()):.3f} vs {D}"
