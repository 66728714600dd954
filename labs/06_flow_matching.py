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
# # Lab 6: flow matching and rectified flow
#
# **Flow matching** (Lipman et al. 2023; Liu et al. 2023; Albergo & Vanden-Eijnden 2023) learns a velocity
# field instead of a score. sdeflow's `Linear` process is the straight path
#
# $$ x_t = (1 - t)\, x_0 + t\, \varepsilon, \qquad \frac{d x_t}{dt} = \varepsilon - x_0 , $$
#
# with data at $t = 0$ and noise at $t = 1$ (flow-matching papers put data at $t = 1$: their time is $1 - t$ here).
# The *conditional* velocity $\varepsilon - x_0$ is known per pair; the *marginal* velocity
# $v(x, t) = \mathbb E[\varepsilon - x_0 \mid x_t = x]$ moves the whole distribution, and the regression
#
# $$ L(\theta) = \mathbb E_{t, x_0, \varepsilon}\, \| v_\theta(x_t, t) - (\varepsilon - x_0) \|^2 $$
#
# is minimized by it (the conditional flow matching theorem). The ODE $dx/dt = v(x, t)$ run from $t = 1$ to 0
# carries noise to data.
#
# **Rectified flow** (Liu et al. 2023). The ODE's paths are not straight, so few steps are inaccurate. The
# *straightness* $S = \int_0^1 \mathbb E \|(X_1 - X_0) - \dot X_t\|^2 dt$ is 0 only for straight paths. *Reflow*
# retrains on the ODE's own (noise, data) pairs: the new flow has the same marginals at the ends, never
# crosses itself, and its paths are straighter, so one Euler step comes close.

# %%
import matplotlib.pyplot as plt
import torch

import sdeflow
from sdeflow import processes, targets
from sdeflow.metrics import sliced_wasserstein2
from sdeflow.nn import MLP

from labkit import Lab

lab = Lab("06_flow_matching")
F64 = torch.float64
linear = processes.Linear()
ring = targets.ring2d(std=0.1)

# %% [markdown]
# ## Exercise 6.1: the flow matching loss
#
# Complete `fm_loss(velocity_model, x0, eps, t)` (`t` a `(batch,)` tensor): the batch mean of
# $\|v(x_t, t) - (\varepsilon - x_0)\|^2$ summed over coordinates, on the linear path.
# The check uses Gaussian data $\mathcal N(0, s^2 I_D)$ where the minimum has a closed form: with
# $u = \varepsilon - x_0$, the best predictor of $u$ from $x_t$ is linear and the minimal loss is
# $D\,[\,(1 + s^2) - (t - (1 - t)s^2)^2 / ((1 - t)^2 s^2 + t^2)\,]$.

# %%
def fm_loss(velocity_model, x0, eps, t):
    """mean_batch || v(x_t, t) - (eps - x0) ||^2 with x_t = (1 - t) x0 + t eps."""
    # EXERCISE 6.1
    return torch.zeros((), dtype=x0.dtype)


fm_loss = lab.check(fm_loss)

# %% [markdown]
# ## Exercise 6.2: straightness of a discretized path
#
# Complete `path_straightness(traj, ts)`: `traj` is `(N + 1, batch, D)`, the states at the times `ts` (`N + 1`
# floats, from 1 down to 0). With the step velocities $v_k = (x_{k+1} - x_k)/(t_{k+1} - t_k)$ and the chord
# velocity $c = (x_N - x_0)/(t_N - t_0)$, return $\sum_k |t_{k+1} - t_k|\; \text{mean}_{\text{batch}} \|v_k - c\|^2$.
# The check: 0 on straight lines; $\pi^2/4 - 2$ on a quarter circle; and sdeflow's
# `transport.straightness` on Euler paths of the ring's exact velocity.

# %%
def path_straightness(traj, ts):
    """sum_k |dt_k| mean_batch ||v_k - chord||^2 over the steps of a trajectory."""
    # EXERCISE 6.2
    return 0.0


path_straightness = lab.check(path_straightness)

# %% [markdown]
# ## 1-rectified flow is the exact marginal velocity
#
# With independent noise and data, the minimizer of the flow matching loss is the mixture's marginal
# velocity, which `sdeflow.targets` gives exactly: this *is* 1-rectified flow, with no training error.
# Its paths are curved: one Euler step lands every noise point on (nearly) the data mean.

# %%
n = lab.size(4000, 1000)
v1 = ring.model(linear, "velocity")
noise = linear.prior_sample((n, 2), seeds=0, dtype=F64)
fresh = ring.sample(n, seeds=50_000, dtype=F64)
many = sdeflow.sample(v1, linear, noise, prediction="velocity", solver="heun", steps=lab.size(64, 24), return_trajectory=True)
one = sdeflow.sample(v1, linear, noise, prediction="velocity", solver="euler", steps=1)
s1 = path_straightness(many.trajectory, [float(t) for t in many.ts])
print(f"1-RF: straightness {s1:.3g}; sliced W2 to data: {many.nfe} calls {sliced_wasserstein2(many.samples, fresh):.3f}, "
      f"1 call {sliced_wasserstein2(one.samples, fresh):.3f}")

# %% [markdown]
# ## Reflow: 2-rectified flow trained with your loss
#
# The pairs (noise, 1-RF sample) form a new coupling; we fit a small network to it with `fm_loss`. Its
# paths are much straighter, and one Euler step gets far closer to the data than 1-RF's one step.

# %%
pairs_noise = linear.prior_sample((lab.size(20_000, 2000), 2), seeds=100_000, dtype=F64)
pairs_data = sdeflow.sample(v1, linear, pairs_noise, prediction="velocity", solver="heun", steps=lab.size(64, 24)).samples
pairs_noise, pairs_data = pairs_noise.float(), pairs_data.float()
net = MLP((2,), width=lab.size(128, 64), depth=2, seed=0)
opt = torch.optim.Adam(net.parameters(), lr=3e-3)
gen = torch.Generator().manual_seed(0)
for step in range(lab.size(3000, 200)):
    idx = torch.randint(0, pairs_data.shape[0], (256,), generator=gen)
    t = torch.rand(256, generator=gen)
    loss = fm_loss(net, pairs_data[idx], pairs_noise[idx], t)
    opt.zero_grad()
    loss.backward()
    opt.step()
with torch.no_grad():
    x1 = noise.float()
    two_many = sdeflow.sample(net, linear, x1, prediction="velocity", solver="euler", steps=lab.size(64, 24), return_trajectory=True)
    two_one = sdeflow.sample(net, linear, x1, prediction="velocity", solver="euler", steps=1)
s2 = path_straightness(two_many.trajectory.double(), [float(t) for t in two_many.ts])
print(f"2-RF: straightness {s2:.2e} (1-RF: {s1:.3g}); sliced W2 at 1 call {sliced_wasserstein2(two_one.samples, fresh):.3f} "
      f"(1-RF at 1 call: {sliced_wasserstein2(one.samples, fresh):.3f}); floor {sliced_wasserstein2(ring.sample(n, seeds=60_000), fresh):.3f}")

fig, axes = plt.subplots(1, 2, figsize=(8, 4))
for ax, traj, title in ((axes[0], many.trajectory, "1-RF paths"), (axes[1], two_many.trajectory, "2-RF paths")):
    for i in range(40):
        ax.plot(traj[:, i, 0], traj[:, i, 1], lw=0.7)
    ax.set_title(title)
    ax.set_aspect("equal")
lab.show(fig, "paths")

# %%
lab.done()
