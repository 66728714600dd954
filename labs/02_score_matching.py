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
# # Lab 2: the forward process, Tweedie's formula and denoising score matching
#
# A diffusion model destroys data with a Gaussian path (data at $t = 0$, noise at $t = T$):
#
# $$ x_t = \alpha(t)\, x_0 + \sigma(t)\, \varepsilon, \qquad \varepsilon \sim \mathcal N(0, I), $$
#
# so $q(x_t \mid x_0) = \mathcal N(\alpha x_0, \sigma^2 I)$. For the variance-preserving process (DDPM,
# Ho et al. 2020; Song et al. 2021) $\alpha(t) = e^{-B(t)/2}$, $\sigma^2 = 1 - \alpha^2$, with
# $B(t) = \int_0^t \beta$: data of covariance $\Sigma$ reach covariance $\alpha^2 \Sigma + \sigma^2 I \to I$.
#
# **Tweedie's formula** (Robbins 1956; Efron 2011): the best estimate of the clean data is read off the
# score of the noised density $p_t$,
#
# $$ \mathbb E[x_0 \mid x_t] = \frac{x_t + \sigma^2 \nabla \log p_t(x_t)}{\alpha}, \qquad
#    \mathbb E[\varepsilon \mid x_t] = -\sigma \nabla \log p_t(x_t). $$
#
# **Denoising score matching** (Vincent 2011) learns it without knowing $p_t$: the regression
#
# $$ L(\theta) = \mathbb E_{t, x_0, \varepsilon} \, \| \hat\varepsilon_\theta(\alpha x_0 + \sigma \varepsilon, t) - \varepsilon \|^2 $$
#
# is minimized by $\hat\varepsilon = \mathbb E[\varepsilon \mid x_t]$, i.e. by the scaled score.
# On a Gaussian mixture sdeflow knows this minimizer exactly (`sdeflow.targets`), so we can check every step.

# %%
import matplotlib.pyplot as plt
import torch

import sdeflow
from sdeflow import processes, targets
from sdeflow.metrics import sliced_wasserstein2
from sdeflow.nn import MLP

from labkit import Lab

lab = Lab("02_score_matching")
F64 = torch.float64
process = processes.VP()                  # beta linear from 0.1 to 20, T = 1
ring = targets.ring2d()                   # 8 Gaussians on the unit circle, std 0.05

# %% [markdown]
# ## The forward process
#
# `process.sample_marginal(x0, t, seeds=...)` draws $x_t$. The ring has covariance $\Sigma = \tfrac12 I + 0.05^2 I$;
# the noised covariance must be $\alpha^2 \Sigma + \sigma^2 I$.

# %%
n = lab.size(20_000, 4_000)
x0 = ring.sample(n, seeds=0, dtype=F64)
data_var = float(ring.covariance[0, 0])
for t in (0.1, 0.3, 0.6, 1.0):
    xt, _ = process.sample_marginal(x0, t, seeds=10_000)
    a, s = float(process.alpha(t)), float(process.sigma(t))
    print(f"t = {t:.1f}: alpha = {a:.3f}, sigma = {s:.3f}, Var x_t[0] = {float(xt[:, 0].var()):.3f}, "
          f"closed form {a * a * data_var + s * s:.3f}")

fig, axes = plt.subplots(1, 4, figsize=(12, 3))
for ax, t in zip(axes, (0.0, 0.2, 0.4, 1.0)):
    xt = process.sample_marginal(x0[:2000], t, seeds=1)[0] if t > 0 else x0[:2000]
    ax.scatter(xt[:, 0], xt[:, 1], s=1)
    ax.set_title(f"t = {t}")
    ax.set_xlim(-3, 3)
    ax.set_ylim(-3, 3)
lab.show(fig, "forward")

# %% [markdown]
# ## Exercise 2.1: Tweedie's formula
#
# Complete `tweedie_x0(x, score, alpha, sigma)`: the posterior mean $\mathbb E[x_0 \mid x_t = x]$ from the
# score at `x`. The check compares it, at several times, with sdeflow's exact denoiser of the ring.

# %%
def tweedie_x0(x, score, alpha, sigma):
    """E[x0 | x_t = x] = (x + sigma^2 score) / alpha."""
    # EXERCISE 2.1
    return x


tweedie_x0 = lab.check(tweedie_x0)

# %% [markdown]
# ## Exercise 2.2: the denoising score matching loss
#
# Complete `dsm_loss(eps_model, x0, t, eps, process)`: noise `x0` to $x_t = \alpha(t) x_0 + \sigma(t) \varepsilon$
# (`t` is a `(batch,)` tensor of times), call `eps_model(x_t, t)` and return the mean over the batch of
# $\|\hat\varepsilon - \varepsilon\|^2$ (summed over coordinates), as a differentiable scalar.
#
# The check uses Gaussian data $\mathcal N(0, s^2 I_D)$, where the minimum is known in closed form:
# $\mathbb E[\varepsilon \mid x_t] = \sigma x_t / (\alpha^2 s^2 + \sigma^2)$ and the loss of this exact model is
# $D\, \alpha^2 s^2 / (\alpha^2 s^2 + \sigma^2)$.

# %%
def dsm_loss(eps_model, x0, t, eps, process):
    """mean_batch || eps_model(alpha(t) x0 + sigma(t) eps, t) - eps ||^2."""
    # EXERCISE 2.2
    return torch.zeros((), dtype=x0.dtype)


dsm_loss = lab.check(dsm_loss)

# %% [markdown]
# ## Training a score network from scratch
#
# A small residual MLP (`sdeflow.nn.MLP`, time-conditioned) trained with *your* loss on the ring, with
# times uniform on $[t_{\min}, 1]$. The noise and times come from a `torch.Generator` (never the global one).

# %%
steps = lab.size(4000, 150)
net = MLP((2,), width=lab.size(128, 64), depth=lab.size(3, 2), seed=0)
opt = torch.optim.Adam(net.parameters(), lr=3e-3)
gen = torch.Generator().manual_seed(0)
data = ring.sample(lab.size(50_000, 5_000), seeds=100)
for step in range(steps):
    idx = torch.randint(0, data.shape[0], (256,), generator=gen)
    t = process.t_min + (1 - process.t_min) * torch.rand(256, generator=gen)
    eps = torch.randn(256, 2, generator=gen)
    loss = dsm_loss(net, data[idx], t, eps, process)
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step % max(1, steps // 5) == 0:
        print(f"step {step:5d}  loss {loss.item():.4f}")

# %% [markdown]
# The exact model is the minimizer, so on the same evaluation batch its loss is the floor that training
# approaches (up to Monte Carlo noise). We also compare the learned $\hat\varepsilon$ with the exact one at $t = 0.5$.

# %%
exact = ring.model(process, prediction="eps")
gen_eval = torch.Generator().manual_seed(1)
n_eval = lab.size(4000, 2000)
x_eval = ring.sample(n_eval, seeds=200_000)
t_eval = process.t_min + (1 - process.t_min) * torch.rand(n_eval, generator=gen_eval)
e_eval = torch.randn(n_eval, 2, generator=gen_eval)
with torch.no_grad():
    floor = float(dsm_loss(exact, x_eval, t_eval, e_eval, process))
    learned = float(dsm_loss(net, x_eval, t_eval, e_eval, process))
    xt = process.marginal(x_eval, 0.5, e_eval)
    half = torch.full((n_eval,), 0.5)
    rel = float((net(xt, half) - exact(xt, half)).norm() / exact(xt, half).norm())
print(f"DSM loss: trained {learned:.4f}, exact minimizer {floor:.4f}; relative error of eps_hat at t = 0.5: {rel:.3f}")

# %% [markdown]
# ## Sampling with the learned and the exact model
#
# `sdeflow.sample` runs any solver on any model. Here Euler-Maruyama on the reverse SDE (lab 3), with
# per-sample seeds for its Brownian path. The sliced Wasserstein-2 distance to fresh data measures how
# close each set of samples is; two fresh data sets give the floor of the measurement.
#
# *A caution measured in sdeflow's docs (docs/training.md):* a deterministic solver started at $t = 1$ on
# VP reads $x_0 = (x - \sigma \hat\varepsilon)/\alpha$ with $\alpha(1) = 0.0067$, so an undertrained
# $\varepsilon$-network's errors are multiplied by ~150 there; try `solver="heun"` below and compare.

# %%
noise = process.prior_sample((n_eval, 2), seeds=5)
with torch.no_grad():
    ours = sdeflow.sample(net, process, noise, prediction="eps", solver="euler_maruyama", steps=lab.size(200, 40), seed=0).samples
    ref = sdeflow.sample(exact, process, noise, prediction="eps", solver="euler_maruyama", steps=lab.size(200, 40), seed=0).samples
fresh = ring.sample(n_eval, seeds=300_000)
print(f"sliced W2 to fresh data: trained {sliced_wasserstein2(ours, fresh):.3f}, exact score {sliced_wasserstein2(ref, fresh):.3f}, "
      f"two fresh data sets {sliced_wasserstein2(ring.sample(n_eval, seeds=400_000), fresh):.3f}")
fig, axes = plt.subplots(1, 2, figsize=(7, 3.5))
for ax, pts, title in ((axes[0], ours, "trained network"), (axes[1], ref, "exact score")):
    ax.scatter(pts[:, 0], pts[:, 1], s=1)
    ax.set_title(title)
    ax.set_aspect("equal")
lab.show(fig, "samples")

# %%
lab.done()
