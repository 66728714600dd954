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
# # Lab 8: Schrodinger bridges and consistency models
#
# ## Schrodinger bridges
#
# Among all processes that start from $\pi_0$ at $t = 0$ and end at $\pi_1$ at $t = 1$, the **Schrodinger bridge**
# is the one closest in KL to a reference Brownian motion $dX = \sigma\, dW$ (Schrodinger 1931; Leonard 2014).
# Its coupling of the two ends solves entropic optimal transport with cost $|x - y|^2/2$ and regularization
# $\sigma^2$; between those ends it moves along Brownian bridges. For Gaussian ends
# $\mathcal N(m_0, \Sigma_0)$, $\mathcal N(m_1, \Sigma_1)$ it is known in closed form (Bunne et al. 2023):
# with $S_0 = \Sigma_0^{1/2}$ and $D = (4 S_0 \Sigma_1 S_0 + \sigma^4 I)^{1/2}$ the ends have cross-covariance
#
# $$ C = \operatorname{Cov}(X_0, X_1) = \tfrac12 (S_0 D S_0^{-1} - \sigma^2 I), $$
#
# and the marginal at time $t$ is Gaussian with mean $(1 - t) m_0 + t m_1$ and covariance
#
# $$ \Sigma_t = (1 - t)^2 \Sigma_0 + t^2 \Sigma_1 + t (1 - t) (C + C^\top + \sigma^2 I) . $$
#
# As $\sigma \to 0$ it becomes the optimal-transport map (in 1-D, $C \to \sqrt{v_0 v_1}$); as $\sigma \to \infty$ the ends
# decouple ($C \to 0$). `sdeflow.targets.GaussianBridge` implements it and is the oracle of the learned bridges
# of `sdeflow.transport` (SB-CFM, DSBM).
#
# ## Consistency models
#
# A **consistency function** (Song et al. 2023) maps every point of a probability-flow ODE trajectory to the
# trajectory's end: $f(x_t, t) = x_{t_{\min}}$. Then one call turns noise into a sample. It is parameterized so
# that the boundary condition $f(x, t_{\min}) = x$ holds by construction: with the noise level $s$ and
# $\sigma_d$ the data scale,
#
# $$ f(x, s) = c_{\text{skip}}(s)\, x + c_{\text{out}}(s)\, F(x, s), \quad
#    c_{\text{skip}} = \frac{\sigma_d^2}{(s - s_{\min})^2 + \sigma_d^2}, \quad
#    c_{\text{out}} = \frac{\sigma_d (s - s_{\min})}{\sqrt{\sigma_d^2 + s^2}} . $$

# %%

import torch

import sdeflow
from sdeflow import processes, targets
from sdeflow.distill import ConsistencyFunction
from sdeflow.metrics import sliced_wasserstein2, w2_gaussian
from sdeflow.sdes import SDE
from sdeflow.targets import GaussianBridge

from labkit import Lab

lab = Lab("08_bridges_and_consistency")
F64 = torch.float64

# %% [markdown]
# ## Exercise 8.1: the entropic coupling of two 1-D Gaussians
#
# Complete `sb_cross_covariance_1d(v0, v1, sigma)` from the formula above with scalars
# ($S_0 D S_0^{-1} = D$ in 1-D). The check compares it with `GaussianBridge` and with its two limits.

# %%
def sb_cross_covariance_1d(v0, v1, sigma):
    """Cov(X0, X1) of the Schrodinger bridge between N(., v0) and N(., v1) with reference sigma dW."""
    # EXERCISE 8.1
    return 0.0


sb_cross_covariance_1d = lab.check(sb_cross_covariance_1d)

# %% [markdown]
# ## Exercise 8.2: the bridge's marginal covariance
#
# Complete `sb_marginal_cov(cov0, cov1, C, sigma, t)` (`(d, d)` tensors, floats). The check compares it with
# `GaussianBridge.marginal` and with the covariance of simulated bridge paths.

# %%
def sb_marginal_cov(cov0, cov1, C, sigma, t):
    """(1 - t)^2 cov0 + t^2 cov1 + t (1 - t) (C + C^T + sigma^2 I)."""
    # EXERCISE 8.2
    return (1 - t) * cov0 + t * cov1


sb_marginal_cov = lab.check(sb_marginal_cov)

# %% [markdown]
# ## Simulating the bridge as an SDE
#
# The bridge is also an SDE, $dX = b(t, X)\,dt + \sigma\, dW$ with the drift $b = (\mathbb E[X_1 \mid X_t] - X_t)/(1 - t)$
# (`GaussianBridge.drift`). Integrated with Euler-Maruyama from samples of $\pi_0$, it must end at $\pi_1$ with the
# cross-covariance $C$ of exercise 8.1, up to Monte Carlo error (a covariance entry $c$ estimated from $n$ paths
# has standard error about $\sqrt{2/n}\,c$) and Euler-Maruyama's $O(h)$ bias, largest near $t = 1$ where the
# drift's $1/(1 - t)$ makes the SDE stiff (halve `dt` and watch the end covariance approach $\Sigma_1$).

# %%
bridge = GaussianBridge([1.0, -1.0], [[1.0, 0.3], [0.3, 0.5]], [-1.0, 2.0], [[0.4, 0.0], [0.0, 2.0]], sigma=0.8)


class BridgeSDE(SDE):
    noise_type = "additive"
    calculus = "ito"

    def drift(self, t, x):
        return bridge.drift(float(t), x)

    def diffusion(self, t, x):
        return torch.full_like(x, bridge.sigma)


n = lab.size(20_000, 4_000)
x0, _ = bridge.sample(n, seeds=0)
x0 = x0.to(F64)
ys = sdeflow.sdeint(BridgeSDE(), x0, [0.0, 0.5, 1.0], method="euler", dt=lab.size(1 / 400, 1 / 100), seed=1)
x_half, x_end = ys[1], ys[2]
print(f"end mean {x_end.mean(0).tolist()} (target {bridge.mean1.tolist()})")
print("end covariance\n", torch.cov(x_end.T), "\n target\n", bridge.cov1)
cross = ((x0 - x0.mean(0)).T @ (x_end - x_end.mean(0))) / (n - 1)
print("Cov(X0, X1) simulated\n", cross, "\n closed form C\n", bridge.cross_covariance())
mean_half, cov_half = bridge.marginal(0.5)
print(f"W2 between the simulated X_0.5 (Gaussian fit) and the closed-form marginal: "
      f"{w2_gaussian(x_half.mean(0), torch.cov(x_half.T), mean_half, cov_half):.3f}")

# %% [markdown]
# ## Exercise 8.3: the consistency boundary coefficients
#
# Complete `consistency_skip_out(s, s_min, sigma_data)` returning `(c_skip, c_out)` (float64 tensors of the shape
# of `s`). The check verifies the boundary condition and compares with sdeflow's `ConsistencyFunction`.

# %%
def consistency_skip_out(s, s_min, sigma_data):
    """c_skip = sd^2 / ((s - s_min)^2 + sd^2), c_out = sd (s - s_min) / sqrt(sd^2 + s^2)."""
    # EXERCISE 8.3
    return torch.ones_like(s), torch.zeros_like(s)


consistency_skip_out = lab.check(consistency_skip_out)

# %% [markdown]
# ## One call with an exact consistency function
#
# For Gaussian data the probability-flow ODE has a closed-form flow, so the *exact* consistency function is
# known: $f(x, t) = \Phi_{t \to t_{\min}}(x)$. sdeflow's `consistency` solver samples any model that declares
# `consistency_t_min`; with the exact $f$ a single call gives exact samples of $p_{t_{\min}}$. A
# `ConsistencyFunction` wrapped around the exact *denoiser* instead is not consistent (it returns the posterior
# mean $\mathbb E[x_0 \mid x_t]$, not the trajectory's end): its one-call samples collapse to the mean. Consistency
# distillation (`sdeflow.distill.ConsistencyDistillation`) trains a network from the second to behave like the first.

# %%
edm = processes.EDM()
gauss = targets.gaussian([0.5, -0.5], [0.6, 0.3])


class ExactConsistency:
    """f(x, t) = the probability-flow ODE's solution at t_min from (x, t), in closed form (EDM: alpha = 1)."""

    prediction = "x0"
    consistency_t_min = edm.t_min

    def __call__(self, x, t):
        return gauss.pf_ode_solution(x, t, edm.t_min, edm)


noise = edm.prior_sample((n, 2), seeds=3, dtype=F64)
exact_one = sdeflow.sample(ExactConsistency(), edm, noise, solver="consistency", nfe=1)
naive_one = sdeflow.sample(ConsistencyFunction(gauss.model(edm, "x0"), edm), edm, noise, solver="consistency", nfe=1)
data = gauss.sample(n, seeds=100_000, dtype=F64)   # seeds s, s+1, ...: keep the sets apart
for name, r in (("exact consistency function", exact_one), ("denoiser as consistency function", naive_one)):
    print(f"{name:33s} {r.nfe} call: sliced W2 to data {sliced_wasserstein2(r.samples, data):.3f}, "
          f"std {[round(float(v), 3) for v in r.samples.std(0)]} (data std [0.6, 0.3])")
print(f"two-sample floor {sliced_wasserstein2(gauss.sample(n, seeds=200_000, dtype=F64), data):.3f}")

# %%
lab.done()
