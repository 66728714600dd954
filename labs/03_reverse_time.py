# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab 3: the reverse SDE, the probability-flow ODE, and DDPM and SMLD as one model
#
# Every forward process of sdeflow is a linear SDE $dx = f(t)\,x\,dt + g(t)\,dW$ with
# $f = \dot\alpha/\alpha$ and $g^2 = \frac{d\sigma^2}{dt} - 2 f \sigma^2$ (so that its marginals are
# $\mathcal N(\alpha x_0, \sigma^2 I)$). Run backwards in time (Anderson 1982; Song et al. 2021, eq. 6), it is
#
# $$ dx = \big[f x - g^2 \nabla \log p_t(x)\big]\,dt + g\, d\bar W, $$
#
# and the **probability-flow ODE** (Song et al. 2021, eq. 13) has the same marginals $p_t$:
#
# $$ \frac{dx}{dt} = f x - \tfrac12 g^2 \nabla \log p_t(x). $$
#
# sdeflow's `process.reverse_sde(model, prediction, stochasticity=eta)` interpolates the two:
# $dx = [f x - \tfrac{1 + \eta^2}{2} g^2 \nabla\log p_t]\,dt + \eta g\, d\bar W$ ($\eta = 0$: the ODE, $\eta = 1$: Anderson's SDE).
#
# **DDPM and SMLD are one model.** DDPM (Ho et al. 2020) is the variance-preserving process, SMLD / NCSN
# (Song & Ermon 2019) the variance-exploding one ($\alpha = 1$). Divide a VP state by $\alpha$:
# $x/\alpha = x_0 + (\sigma/\alpha)\,\varepsilon$ is a VE state at the same *noise level* $\sigma/\alpha$.
# So one denoiser $D(\tilde x; \text{noise level})$ serves both, and the probability-flow ODEs of the two are
# the same ODE $d\tilde x / d s = (\tilde x - D(\tilde x; s))/s$ in the noise level $s$ (Karras et al. 2022, sec. 4).

# %%
import matplotlib.pyplot as plt
import torch

import sdeflow
from sdeflow import processes, targets
from sdeflow.metrics import sliced_wasserstein2

from labkit import Lab

lab = Lab("03_reverse_time")
F64 = torch.float64
vp, ve = processes.VP(), processes.VE()
ring = targets.ring2d()

# %% [markdown]
# ## Exercise 3.1: the reverse drift
#
# Complete `reverse_drift(x, t, score, process, eta)`: the drift $f(t) x - \frac{1 + \eta^2}{2} g^2(t)\, \text{score}$
# (use `process.f(t)` and `process.g2(t)`, float64 scalars). The check compares it with sdeflow's reverse SDE
# on VP and VE, and with the closed form on Gaussian data $\mathcal N(0, v I)$, where
# $\nabla \log p_t(x) = -x / (\alpha^2 v + \sigma^2)$.

# %%
def reverse_drift(x, t, score, process, eta):
    """f(t) x - (1 + eta^2)/2 g(t)^2 score."""
    # EXERCISE 3.1
    return process.f(t) * x


reverse_drift = lab.check(reverse_drift)

# %% [markdown]
# ## Exercise 3.2: from VP to VE
#
# Complete `vp_to_ve(x, t, vp, ve)`: return `(x_ve, t_ve)`, the VE state $x/\alpha_{VP}(t)$ and the VE time with
# the same noise level (`vp.noise_level(t)`, `ve.t_from_noise_level(...)`). The check verifies that the exact
# denoiser of the ring gives the same clean estimate on both sides, and that the densities agree:
# $\log p^{VE}_{t'}(x/\alpha) = \log p^{VP}_t(x) + D \log \alpha$ (change of variables).

# %%
def vp_to_ve(x, t, vp, ve):
    """(x / alpha_vp(t), the VE time of noise level sigma_vp(t) / alpha_vp(t))."""
    # EXERCISE 3.2
    return x, torch.as_tensor(t, dtype=torch.float64)


vp_to_ve = lab.check(vp_to_ve)

# %% [markdown]
# ## Exercise 3.3: the DDPM step, a posterior of the forward process
#
# DDPM's ancestral sampler (Ho et al. 2020, eqs. 6-7) steps from $t$ to $s < t$ by drawing from the forward
# process's posterior $q(x_s \mid x_t, x_0)$ with $x_0$ replaced by the model's $\hat x_0$. With
# $\alpha_{t|s} = \alpha_t / \alpha_s$ and $\sigma_{t|s}^2 = \sigma_t^2 - \alpha_{t|s}^2 \sigma_s^2$ (the noise added between $s$ and $t$),
#
# $$ q(x_s \mid x_t, x_0) = \mathcal N\Big( \frac{\alpha_{t|s} \sigma_s^2}{\sigma_t^2} x_t + \frac{\alpha_s \sigma_{t|s}^2}{\sigma_t^2} x_0,\;
#    \frac{\sigma_{t|s}^2 \sigma_s^2}{\sigma_t^2} I \Big). $$
#
# Complete `ddpm_posterior(x_t, x0, t, s, process)` returning `(mean, variance)` (the variance a float64
# scalar tensor). The check conditions the joint Gaussian of $(x_s, x_t)$ given $x_0$ directly and compares.
# Then your step, iterated with the exact $\hat x_0$, is a DDPM sampler.

# %%
def ddpm_posterior(x_t, x0, t, s, process):
    """Mean and variance of q(x_s | x_t, x0) for s < t."""
    # EXERCISE 3.3
    return x_t, torch.zeros((), dtype=torch.float64)


ddpm_posterior = lab.check(ddpm_posterior)

# %%
steps = lab.size(200, 60)
ts = torch.linspace(vp.T, 0.0, steps + 1, dtype=F64)
gen = torch.Generator().manual_seed(0)
x = vp.prior_sample((lab.size(4000, 1000), 2), generator=gen, dtype=F64)
for t, s in zip(ts[:-1], ts[1:]):
    mean, var = ddpm_posterior(x, ring.x0(x, t, vp), t, s, vp)
    x = mean + var.sqrt() * torch.randn(x.shape, generator=gen, dtype=F64)
fresh_ddpm = ring.sample(x.shape[0], seeds=500_000)
print(f"your DDPM sampler, {steps} steps: sliced W2 to data {sliced_wasserstein2(x, fresh_ddpm):.3f} "
      f"(two data sets: {sliced_wasserstein2(ring.sample(x.shape[0], seeds=600_000), fresh_ddpm):.3f})")

# %% [markdown]
# ## Sampling by the reverse SDE and by the probability-flow ODE
#
# With the exact score of the ring, both samplers must reproduce the data distribution on both processes;
# their distance to fresh data should sit near the two-sample floor (two independent data sets). The
# stochastic sampler needs many more steps: Euler-Maruyama has weak order 1, Heun on the ODE order 2.

# %%
n = lab.size(4000, 1000)
fresh = ring.sample(n, seeds=10_000)
floor = sliced_wasserstein2(ring.sample(n, seeds=20_000), fresh)
print(f"two-sample floor: {floor:.3f}")
results = {}
for name, process in (("VP (DDPM)", vp), ("VE (SMLD)", ve)):
    model = ring.model(process, prediction="x0")
    noise = process.prior_sample((n, 2), seeds=0)
    sde = sdeflow.sample(model, process, noise, prediction="x0", solver="euler_maruyama", steps=lab.size(500, 150), seed=1)
    ode = sdeflow.sample(model, process, noise, prediction="x0", solver="heun", steps=lab.size(40, 20))
    results[name] = (sde.samples, ode.samples)
    print(f"{name}: reverse SDE ({sde.nfe} calls) sliced W2 {sliced_wasserstein2(sde.samples, fresh):.3f}; "
          f"probability-flow ODE ({ode.nfe} calls) {sliced_wasserstein2(ode.samples, fresh):.3f}")

fig, axes = plt.subplots(1, 4, figsize=(13, 3.2))
for ax, (title, pts) in zip(axes, [(f"{k}, {kind}", v[i]) for k, v in results.items() for i, kind in enumerate(("SDE", "ODE"))]):
    ax.scatter(pts[:, 0], pts[:, 1], s=1)
    ax.set_title(title, fontsize=9)
    ax.set_xlim(-1.6, 1.6)
    ax.set_ylim(-1.6, 1.6)
lab.show(fig, "samplers")

# %% [markdown]
# ## One ODE: DDIM on VP equals DDIM on VE
#
# DDIM (Song et al. 2021) is Euler's method on $\tilde x$ against the noise level, so on grids with the
# same noise levels it gives the *same* samples on VP (started from $x$) and on VE (started from $x/\alpha$),
# up to round-off. We start both at noise level 40 (inside both processes' ranges) and use your `vp_to_ve`.

# %%
levels = torch.logspace(torch.log10(torch.tensor(40.0)), torch.log10(torch.tensor(0.02)), lab.size(30, 12), dtype=F64)
ts_vp = torch.cat([vp.t_from_noise_level(levels), torch.zeros(1, dtype=F64)])
ts_ve = torch.cat([ve.t_from_noise_level(levels), torch.zeros(1, dtype=F64)])
x_vp = ring.noised_sample(n, ts_vp[0], vp, seeds=0, dtype=F64)           # a VP state at noise level 40
x_ve, t_ve = vp_to_ve(x_vp, ts_vp[0], vp, ve)
print(f"start: VP t = {float(ts_vp[0]):.4f}, VE t = {float(t_ve):.4f} (grid: {float(ts_ve[0]):.4f})")
out_vp = sdeflow.sample(ring.model(vp, "x0"), vp, x_vp, prediction="x0", solver="ddim", grid=ts_vp).samples
out_ve = sdeflow.sample(ring.model(ve, "x0"), ve, x_ve, prediction="x0", solver="ddim", grid=ts_ve).samples
gap = float((out_vp - out_ve).abs().max())
print(f"max |DDIM on VP - DDIM on VE| = {gap:.2e}")
# The two computations differ only in round-off (float64): 1e-9 leaves room for the time maps' bisection.
assert gap < 1e-9, "DDIM is the same ODE step on VP and VE at equal noise levels"

# %%
lab.done()
