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
# # Lab 5: fast samplers and their error against the number of model calls
#
# Sampling by the probability-flow ODE costs one network evaluation (a *model call*, NFE) per solver
# stage. A method of order $p$ with $N$ steps has global error $O(N^{-p})$, so on a log-log plot of error
# against NFE its line has slope $-p$; what counts in practice is the error at a *given* budget.
#
# On the EDM process ($\alpha = 1$, $\sigma = t$) the ODE reads $dx/dt = (x - \hat x_0(x, t))/t$ (Karras et al.
# 2022, eqs. 1 and 3 with $\sigma(t) = t$). Two classical steps from $t_0$ to $t_1$, $h = t_1 - t_0$ (negative), with
# $u(t, x)$ the ODE's right-hand side:
#
# * **Euler**: $x_1 = x_0 + h\, u(t_0, x_0)$, order 1, one call.
# * **Heun** (Karras et al. 2022, Alg. 1): $\tilde x = x_0 + h\, u(t_0, x_0)$, then
#   $x_1 = x_0 + \tfrac h2 [u(t_0, x_0) + u(t_1, \tilde x)]$, order 2, two calls.
#
# **DDIM** (Song et al. 2021) is the first exponential integrator: it treats the linear part exactly and
# holds $\hat x_0$ fixed over the step. For any process,
#
# $$ x_1 = \alpha_1 \hat x_0 + \sigma_1 \hat\varepsilon, \qquad \hat\varepsilon = \frac{x_0 - \alpha_0 \hat x_0}{\sigma_0} . $$
#
# DPM-Solver++ (Lu et al. 2022) and UniPC (Zhao et al. 2023) add multistep corrections in $\log$-SNR, keeping
# one call per step at orders 2 and 3. Gaussian data have a linear ODE with a closed-form flow
# (`targets.gaussian(...).pf_ode_solution`), so we can measure every error exactly.

# %%
import torch

import sdeflow
from sdeflow import plots, processes, targets
from sdeflow.grids import Karras

from labkit import Lab

lab = Lab("05_fast_samplers")
F64 = torch.float64
edm = processes.EDM()
gauss = targets.gaussian([0.3, -0.2], [0.5, 0.2])
x0_model = gauss.model(edm, "x0")
x_start = edm.prior_sample((lab.size(64, 16), 2), seeds=0, dtype=F64)
grid = Karras(to_zero=False, t_min=0.05)       # stop at t = 0.05: the error of the method itself

# %% [markdown]
# ## Exercise 5.1: one DDIM step
#
# Complete `ddim_step(x, x0_hat, alpha0, sigma0, alpha1, sigma1)`. The check runs your step along a Karras
# grid on the Gaussian, compares it with sdeflow's `ddim` solver on the same grid, and measures its order
# against the exact flow (expected 1).

# %%
def ddim_step(x, x0_hat, alpha0, sigma0, alpha1, sigma1):
    """x1 = alpha1 x0_hat + sigma1 (x - alpha0 x0_hat) / sigma0."""
    # EXERCISE 5.1
    return x0_hat


ddim_step = lab.check(ddim_step)

# %% [markdown]
# ## Exercise 5.2: one Heun step
#
# Complete `heun_step(u, t0, t1, x)` for an ODE $dx/dt = u(t, x)$ (`t0`, `t1` floats). The check integrates
# the EDM probability-flow ODE of the Gaussian with your step, compares with sdeflow's `heun` solver on the
# same grid and measures order 2.

# %%
def heun_step(u, t0, t1, x):
    """Heun: Euler predictor, trapezoidal corrector."""
    # EXERCISE 5.2
    return x + (t1 - t0) * u(t0, x)


heun_step = lab.check(heun_step)

# %% [markdown]
# ## Exercise 5.3: where to spend the steps (the Karras grid)
#
# The time grid is the fourth choice of a sampler. Karras et al. (2022, eq. 5) space the noise levels as
#
# $$ s_i = \Big( s_{\max}^{1/\rho} + \tfrac{i}{N}\,\big(s_{\min}^{1/\rho} - s_{\max}^{1/\rho}\big) \Big)^{\rho}, \qquad i = 0, \dots, N, $$
#
# with $\rho = 7$: dense at low noise, where the trajectories bend. Complete `karras_levels(s_max, s_min, steps, rho)`
# (a float64 tensor of `steps + 1` levels, decreasing). The check compares it with `sdeflow.grids.Karras` on EDM
# (where the time is the noise level), and we measure what it buys Heun against a grid uniform in $t$.

# %%
def karras_levels(s_max, s_min, steps, rho=7.0):
    """Karras et al.'s noise levels, s_max down to s_min, steps + 1 of them."""
    # EXERCISE 5.3
    return torch.linspace(s_max, s_min, steps + 1, dtype=torch.float64)


karras_levels = lab.check(karras_levels)

# %%
for name, ts in (("Karras rho = 7", karras_levels(80.0, 0.05, 16)), ("uniform in t", torch.linspace(80.0, 0.05, 17, dtype=F64))):
    r = sdeflow.sample(x0_model, edm, x_start, prediction="x0", solver="heun", grid=ts)
    err = float((r.samples - gauss.pf_ode_solution(x_start, 80.0, 0.05, edm)).pow(2).mean().sqrt())
    print(f"Heun, 16 steps ({r.nfe} calls) on the {name} grid: RMS error to the exact flow {err:.2e}")

# %% [markdown]
# ## Error against model calls, solver by solver
#
# `sdeflow.sample(..., nfe=budget)` never exceeds the budget (two-call methods take half as many steps).
# The error is the RMS distance to the exact flow at $t = 0.05$.

# %%
solvers = {"euler": {}, "heun": {}, "ddim": {}, "dpm_solver_pp_2m": {}, "unipc": {"order": 3}}
budgets = lab.size((8, 16, 32, 64, 128), (8, 16, 32, 64))
curves = {}
for name, options in solvers.items():
    nfes, errors = [], []
    for budget in budgets:
        result = sdeflow.sample(x0_model, edm, x_start, prediction="x0", solver=name, nfe=budget, grid=grid, **options)
        exact = gauss.pf_ode_solution(x_start, result.ts[0], result.ts[-1], edm)
        nfes.append(result.nfe)
        errors.append(float((result.samples - exact).pow(2).mean().sqrt()))
    slope = -float(torch.tensor(errors[-2:]).log().diff() / torch.tensor(nfes[-2:], dtype=F64).log().diff())
    curves[name] = (nfes, errors)
    print(f"{name:17s} NFE {nfes}  error {['%.1e' % e for e in errors]}  last slope {slope:.2f}")
lab.show_file(plots.error_vs_nfe(lab.figure_path("error_vs_nfe"), curves, ylabel="RMS error to the exact flow", slopes=(1, 2, 3)))

# %% [markdown]
# **What to read off.** On EDM ($\alpha = 1$) DDIM *is* Euler in the noise level: the two lines coincide.
# Heun's slope is 2 but each step costs two calls. The one-call multistep methods gain the most per call:
# in the quick run (16 points, 64 calls) DPM-Solver++(2M) was ~3x more accurate than Heun and UniPC (order 3
# plus its corrector: slope ~4) ~100x. On trained models the shape is the same; `sdeflow tune-grid` goes
# further by tuning the grid itself for your model at a fixed budget.

# %%
lab.done()
