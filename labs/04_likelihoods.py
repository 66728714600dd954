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
# # Lab 4: the Fokker-Planck equation, likelihoods, the ELBO and the Jensen-Shannon divergence
#
# **Fokker-Planck.** The density $p_t$ of $dx = b(t, x)\,dt + g(t)\,dW$ (one dimension) obeys
#
# $$ \partial_t p = -\partial_x (b\, p) + \tfrac12 g^2\, \partial_x^2 p . $$
#
# For a diffusion's forward process $b = f(t)\,x$, and Gaussian data $\mathcal N(0, v)$ stay Gaussian with
# variance $v_t = \alpha^2 v + \sigma^2$, so $\partial_t p = \tfrac12 \dot v_t\,(x^2/v_t^2 - 1/v_t)\,p$: a closed form
# to test a discretization against.
#
# **Likelihood by the probability-flow ODE.** Along $dx/dt = u(t, x) = f x - \tfrac12 g^2 \nabla\log p_t$ the
# log-density changes by $d \log p_t(x_t)/dt = -\nabla\cdot u$ (instantaneous change of variables, Chen et
# al. 2018), hence (Song et al. 2021, eq. 39)
#
# $$ \log p_0(x_0) = \log p_T(x_T) + \int_0^T \nabla\cdot u(t, x_t)\, dt . $$
#
# **The ELBO** (Kingma et al. 2021) bounds $\log p_0$ from below by a sum over the steps of an $N$-step
# ancestral sampler; the bound tightens as $N$ grows, and its continuous-time limit is the likelihood-weighted
# denoising loss.
#
# **Jensen-Shannon divergence** of two distributions $P, Q$ with mixture $M = (P + Q)/2$:
#
# $$ \mathrm{JS}(P, Q) = \tfrac12 \mathrm{KL}(P \,\|\, M) + \tfrac12 \mathrm{KL}(Q \,\|\, M) \in [0, \log 2]. $$

# %%
import math

import matplotlib.pyplot as plt
import torch

from sdeflow import fokker_planck as fp
from sdeflow import processes, targets
from sdeflow.likelihood import elbo, log_likelihood

from labkit import Lab

lab = Lab("04_likelihoods")
F64 = torch.float64
process = processes.VP()

# %% [markdown]
# ## Exercise 4.1: the right-hand side of the Fokker-Planck equation
#
# Complete `fokker_planck_rhs(p, x, drift, g2)`: `p` and `drift` are the density and the drift $b$ at the
# equally spaced points `x` (1-D tensors), `g2` a number. Return $-\partial_x(b p) + \frac12 g^2 \partial_x^2 p$ at the
# *interior* points `x[1:-1]` with central differences:
# $\partial_x u \approx (u_{i+1} - u_{i-1})/(2\,dx)$, $\partial_x^2 u \approx (u_{i+1} - 2u_i + u_{i-1})/dx^2$.
#
# The check compares it with the closed form above and verifies second-order convergence (halving $dx$
# divides the error by ~4).

# %%
def fokker_planck_rhs(p, x, drift, g2):
    """-(d/dx)(drift p) + g2/2 (d^2/dx^2) p at x[1:-1], central differences."""
    # EXERCISE 4.1
    return torch.zeros_like(p[1:-1])


fokker_planck_rhs = lab.check(fokker_planck_rhs)

# %% [markdown]
# ## sdeflow's Fokker-Planck solver against the exact noised density
#
# `fokker_planck.solve` evolves a density with a finite-volume scheme (positivity and mass preserved). We
# start from a 1-D two-component mixture and compare with the exact $p_t$ that `sdeflow.targets` gives.

# %%
mix = targets.GaussianMixture([0.3, 0.7], [[-1.5], [1.0]], stds=[0.3, 0.5])
grid = fp.Grid((-4.0, 4.0), lab.size(400, 160))
times = [0.0, 0.05, 0.2, 0.5]
solution = fp.solve(process.forward_sde(), mix.log_prob, grid, times)
centres = grid.points()
fig, ax = plt.subplots(figsize=(6, 3.5))
for k, t in enumerate(times):
    exact = grid.density(lambda z, t=t: mix.marginal_log_prob(z, t, process))
    l1 = float((solution.densities[k] - exact).abs().sum() * grid.cell_volume)
    print(f"t = {t:.2f}: L1 distance between the Fokker-Planck density and the exact p_t: {l1:.2e}")
    ax.plot(centres[:, 0], solution.densities[k], label=f"t = {t}")
    ax.plot(centres[:, 0], exact, "k:", lw=1)
ax.legend()
ax.set_title("Fokker-Planck (lines) and exact p_t (dotted)")
lab.show(fig, "fokker_planck")

# %% [markdown]
# ## Exercise 4.2: the Jensen-Shannon divergence
#
# Complete `jensen_shannon(p, q)` for two arrays of probability masses (non-negative, summing to 1; cells
# where a mass is 0 contribute 0, as $0 \log 0 = 0$). Then we measure the JSD between the Fokker-Planck
# cell masses and the exact ones.

# %%
def jensen_shannon(p, q):
    """JS(P, Q) = KL(P||M)/2 + KL(Q||M)/2 with M = (P + Q)/2, in nats."""
    # EXERCISE 4.2
    return 0.0


jensen_shannon = lab.check(jensen_shannon)

# %%
for k, t in enumerate(times[1:], start=1):
    exact = grid.density(lambda z, t=t: mix.marginal_log_prob(z, t, process))
    p = (solution.densities[k] * grid.cell_volume).numpy()
    q = (exact * grid.cell_volume).numpy()
    print(f"t = {t:.2f}: JSD(Fokker-Planck, exact) = {jensen_shannon(p / p.sum(), q / q.sum()):.2e} nats (max log 2 = {math.log(2):.3f})")

# %% [markdown]
# ## Exercise 4.3: the divergence, and the instantaneous change of variables
#
# Complete `divergence(fn, x)`: for a map `fn` from `(batch, D)` to `(batch, D)` that treats samples
# independently, return the `(batch,)` exact divergence $\nabla\cdot u = \sum_i \partial u_i / \partial x_i$ with
# `torch.autograd.grad` ($D$ backward passes, one per coordinate). The check uses linear fields
# ($\nabla\cdot(Mx) = \operatorname{tr} M$), the Gaussian probability-flow field
# ($\nabla\cdot u = D\,(f + \tfrac12 g^2 / v_t)$) and `sdeflow.likelihood.divergence_exact`.
#
# Then we verify the law the likelihood rests on with exact quantities only: moving a point along the
# probability-flow ODE, $\frac{d}{dt} \log p_t(x_t) = -\nabla\cdot u(t, x_t)$.

# %%
def divergence(fn, x):
    """(batch,) exact divergence of fn at x by autograd."""
    # EXERCISE 4.3
    return torch.zeros(x.shape[0], dtype=x.dtype)


divergence = lab.check(divergence)

# %%
ring2 = targets.ring2d(std=0.2)
flow = process.probability_flow_ode(ring2.model(process, "score"), "score")
t0, dt = 0.3, 1e-4
x_t = ring2.noised_sample(200, t0, process, seeds=7, dtype=F64)
tt = torch.full((200,), t0, dtype=F64)
u = flow.drift(tt, x_t)
div_u = divergence(lambda z: flow.drift(tt, z), x_t)
# Centred difference of log p along the flow: x_t -/+ u dt at t0 -/+ dt (error O(dt^2)).
ahead = ring2.marginal_log_prob(x_t + u * dt, t0 + dt, process)
behind = ring2.marginal_log_prob(x_t - u * dt, t0 - dt, process)
rate = (ahead - behind) / (2 * dt)
gap = float((rate + div_u).abs().max() / div_u.abs().max())
print(f"d/dt log p_t(x_t) + div u: max relative gap {gap:.1e} over 200 points (0 in exact arithmetic)")
assert gap < 1e-4, "the instantaneous change of variables: d log p_t(x_t)/dt = -div u"

# %% [markdown]
# ## Likelihoods of the exact model, and the ELBO below them
#
# With the exact score of the ring, the probability-flow ODE must give back the ring's own log-density
# (up to the ODE tolerance and the tiny start time $t_{\text{start}} = 10^{-5}$); the ELBO lies below it and rises
# towards it as the number of steps grows.

# %%
ring = targets.ring2d(std=0.1)
x = ring.sample(lab.size(64, 8), seeds=0, dtype=F64)
model = ring.model(process, "eps")
ll = log_likelihood(model, process, x, prediction="eps")
truth = ring.log_prob(x)
print(f"log p by the ODE {float(ll.log_prob.mean()):.4f}, exact {float(truth.mean()):.4f} "
      f"(max error {float((ll.log_prob - truth).abs().max()):.1e} nats, {ll.nfe} model calls)")
for n_steps in lab.size((16, 64, 256), (16, 64)):
    bound = elbo(model, process, x, prediction="eps", steps=n_steps, n_samples=4)
    print(f"ELBO with {n_steps:4d} steps: {float(bound.elbo.mean()):.3f} (gap to log p {float((truth - bound.elbo).mean()):.3f} nats)")

# %%
lab.done()
