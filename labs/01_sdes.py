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
# # Lab 1: SDEs, Brownian motion and Euler-Maruyama
#
# A diffusion model is an SDE run backwards, so the course starts with SDEs themselves.
# An Ito SDE
#
# $$ dX_t = f(t, X_t)\,dt + g(t, X_t)\,dW_t $$
#
# is driven by a Brownian motion $W$: $W_0 = 0$, independent increments, and
# $W_t - W_s \sim \mathcal N(0, (t - s) I)$, so $\operatorname{Var} W_t = t$ and
# $\operatorname{Cov}(W_s, W_t) = \min(s, t)$.
#
# **Euler-Maruyama** freezes $f$ and $g$ over a step of size $h$:
#
# $$ X_{k+1} = X_k + f(t_k, X_k)\, h + g(t_k, X_k)\, \Delta W_k, \qquad \Delta W_k = W_{t_{k+1}} - W_{t_k}. $$
#
# Two ways to measure its error at a final time $T$ (Kloeden & Platen 1992):
#
# * **strong** (pathwise): $\mathbb E\,|X^h_T - X_T| \le C h^{\gamma}$, the numerical and the exact solution
#   driven by the *same* Brownian path; Euler-Maruyama has $\gamma = 1/2$ (1 on additive noise),
#   Milstein $\gamma = 1$;
# * **weak** (in law): $|\mathbb E\,\phi(X^h_T) - \mathbb E\,\phi(X_T)| \le C h^{\beta}$; Euler-Maruyama has $\beta = 1$.
#
# Our test SDE is geometric Brownian motion, $dX = \mu X\,dt + s X\,dW$, whose solution is known on each path:
#
# $$ X_T = X_0 \exp\big((\mu - s^2/2) T + s W_T\big), \qquad \mathbb E X_T = X_0 e^{\mu T}. $$

# %%
import math

import matplotlib.pyplot as plt
import torch

import sdeflow
from sdeflow.noise import BrownianPath, BrownianTree
from sdeflow.sdes import SDE

from labkit import Lab

lab = Lab("01_sdes")
F64 = torch.float64

# %% [markdown]
# ## Brownian motion in sdeflow
#
# sdeflow never uses torch's global random generator: noise comes from seeds. A `BrownianTree` is a
# Brownian path that you can query at any time, in any order, and that is the *same path* whatever
# times you ask for. Below: 4,000 paths with per-sample seeds, and the two moments that define them.

# %%
n_paths = lab.size(20_000, 4_000)
tree = BrownianTree(0.0, 1.0, (n_paths, 1), seeds=0, dtype=F64)
w_half = tree(0.0, 0.5)[:, 0]
w_one = tree(0.0, 1.0)[:, 0]
print(f"Var W(1/2) = {w_half.var():.3f} (exact 0.5),  Var W(1) = {w_one.var():.3f} (exact 1)")
print(f"Cov(W(1/2), W(1)) = {(w_half * w_one).mean():.3f} (exact min(1/2, 1) = 0.5)")
# The same path at any resolution: the increments over [0, 1/2] and [1/2, 1] add up to W(1).
print("W(0,1/2) + W(1/2,1) == W(0,1):", bool(torch.allclose(tree(0.0, 0.5) + tree(0.5, 1.0), tree(0.0, 1.0))))

# %% [markdown]
# ## Exercise 1.1: refining a Brownian path (Levy's construction)
#
# A tree of Brownian values is built by filling in midpoints: given $W_s = a$ and $W_t = b$, the value at
# $s < u < t$ is Gaussian (a Brownian bridge),
#
# $$ W_u \mid (W_s = a, W_t = b) \sim \mathcal N\Big( \frac{(t - u)\, a + (u - s)\, b}{t - s},\; \frac{(u - s)(t - u)}{t - s} \Big). $$
#
# Complete `refine(a, b, s, u, t, z)`: return the value at $u$ from the standard normal draws `z` (same shape as
# `a`). The check verifies the conditional mean and variance, and that refining $W_1 \sim \mathcal N(0, 1)$ at
# $u = 0.3$ gives $\operatorname{Var} W_{0.3} = 0.3$ and $\operatorname{Cov}(W_{0.3}, W_1) = 0.3$: a Brownian motion again.

# %%
def refine(a, b, s, u, t, z):
    """W_u given W_s = a and W_t = b, from standard normals z."""
    # EXERCISE 1.1
    return (a + b) / 2 + z


refine = lab.check(refine)

# %% [markdown]
# With `refine` we can build Brownian paths from the top down (what a Brownian tree does): start from $W_0 = 0$
# and $W_1 \sim \mathcal N(0, 1)$ and fill in midpoints level by level. A Brownian path is rough: over a grid of
# step $h$, its **quadratic variation** $\sum_k (\Delta W_k)^2$ tends to $T = 1$ as $h \to 0$ (standard deviation
# $\sqrt{2h}$), while a smooth path's tends to 0. This is why Ito calculus needs a second-order term.

# %%
gen = torch.Generator().manual_seed(5)
paths = torch.stack([torch.zeros(8, dtype=F64), torch.randn(8, generator=gen, dtype=F64)])  # (2, 8): t = 0, 1
for level in range(lab.size(14, 10)):
    h = 1.0 / (paths.shape[0] - 1)
    mids = refine(paths[:-1], paths[1:], 0.0, h / 2, h, torch.randn(paths.shape[0] - 1, 8, generator=gen, dtype=F64))
    finer = torch.empty(2 * paths.shape[0] - 1, 8, dtype=F64)
    finer[0::2], finer[1::2] = paths, mids
    paths = finer
quadratic_variation = paths.diff(dim=0).pow(2).sum(0)
print(f"{paths.shape[0] - 1} steps: quadratic variation of 8 paths {[round(float(q), 3) for q in quadratic_variation]} "
      f"(theory 1 +- {math.sqrt(2 / (paths.shape[0] - 1)):.3f})")

# %% [markdown]
# ## Exercise 1.2: your own Euler-Maruyama loop
#
# Complete `euler_maruyama(drift, diffusion, x0, ts, dws)`: `drift(t, x)` and `diffusion(t, x)` return
# tensors of the shape of `x` (diagonal noise), `ts` is the grid $t_0 < \dots < t_N$ and `dws[k]` is the
# Brownian increment over $[t_k, t_{k+1}]$, of the shape of `x0`. Return the state at $t_N$.
#
# The check runs your loop and sdeflow's `sdeint(method="euler")` on the same Brownian path (they must
# agree to round-off), then measures your strong order on geometric Brownian motion: the fitted slope of
# $\log \mathbb E|X^h_T - X_T|$ against $\log h$ must be $1/2 \pm 0.2$.

# %%
def euler_maruyama(drift, diffusion, x0, ts, dws):
    """Euler-Maruyama from ts[0] to ts[-1]: x <- x + drift(t, x) h + diffusion(t, x) dW."""
    x = x0
    # EXERCISE 1.2: loop over the steps k = 0 .. len(ts) - 2 and apply the update above.
    return x


euler_maruyama = lab.check(euler_maruyama)

# %% [markdown]
# ## Exercise 1.3: reading an order off a log-log plot
#
# If $e(h) = C h^p$ then $\log e = \log C + p \log h$. Complete `fitted_order(hs, errors)`: the
# least-squares slope of $\log e$ against $\log h$.

# %%
def fitted_order(hs, errors):
    """The least-squares slope of log(errors) against log(hs)."""
    # EXERCISE 1.3
    return 0.0


fitted_order = lab.check(fitted_order)

# %% [markdown]
# ## Strong orders with sdeflow's `sdeint`
#
# An SDE for sdeflow is a `drift` and a `diffusion` with a declared noise type and calculus. We
# integrate geometric Brownian motion with Euler-Maruyama and with Milstein on *one* Brownian path per
# sample (a `BrownianPath` on the finest grid: a coarse step's increment is the exact sum of the fine
# ones), and compare with the exact solution on that path.

# %%
class GBM(SDE):
    """dX = mu X dt + s X dW (Ito, diagonal noise)."""

    noise_type = "diagonal"
    calculus = "ito"

    def __init__(self, mu: float, s: float) -> None:
        self.mu, self.s = mu, s

    def drift(self, t, x):
        return self.mu * x

    def diffusion(self, t, x):
        return self.s * x

    def exact(self, x0, T, w_T):
        return x0 * torch.exp((self.mu - self.s**2 / 2) * T + self.s * w_T)


gbm = GBM(mu=1.0, s=0.8)
n = lab.size(10_000, 2_000)
levels = [3, 4, 5, 6, 7] if not lab.quick else [3, 4, 5, 6]
fine = 2 ** max(levels)
x0 = torch.ones(n, 1, dtype=F64)
bm = BrownianPath([k / fine for k in range(fine + 1)], (n, 1), seed=1, dtype=F64)
exact = gbm.exact(x0, 1.0, bm(0.0, 1.0))
hs = [2.0**-k for k in levels]
strong = {}
for method in ("euler", "milstein"):
    strong[method] = [
        float((sdeflow.sdeint(gbm, x0, [0.0, 1.0], bm, method=method, dt=h)[-1] - exact).abs().mean()) for h in hs
    ]
    print(f"{method:9s} strong errors {['%.4f' % e for e in strong[method]]}  order {fitted_order(hs, strong[method]):.2f}")
assert abs(fitted_order(hs, strong["euler"]) - 0.5) < 0.2, "Euler-Maruyama's strong order is 1/2"
assert abs(fitted_order(hs, strong["milstein"]) - 1.0) < 0.2, "Milstein's strong order is 1"

# %% [markdown]
# ## Weak order
#
# For the weak error we only need the law of $X_T$: $\mathbb E X_T = X_0 e^{\mu T}$. The Monte Carlo
# average has a statistical error $\approx \operatorname{sd}(X_T)/\sqrt n$, so we choose a drift-dominated
# GBM whose bias (order $h$) stands well above it at every step size.

# %%
drifty = GBM(mu=1.5, s=0.2)
n_weak = lab.size(40_000, 8_000)
x0w = torch.ones(n_weak, 1, dtype=F64)
weak_levels = [3, 4, 5, 6]
fine_w = 2 ** max(weak_levels)
bm_w = BrownianPath([k / fine_w for k in range(fine_w + 1)], (n_weak, 1), seed=2, dtype=F64)
hs_w = [2.0**-k for k in weak_levels]
weak = [
    abs(float(sdeflow.sdeint(drifty, x0w, [0.0, 1.0], bm_w, method="euler", dt=h)[-1].mean()) - math.exp(1.5))
    for h in hs_w
]
print(f"weak errors {['%.4f' % e for e in weak]}  order {fitted_order(hs_w, weak):.2f} (expected 1)")
# Euler's mean is exactly X0 (1 + mu h)^(1/h) here: bias 0.52 at h = 1/8, 0.078 at h = 1/64; Monte Carlo error ~0.01.
assert abs(fitted_order(hs_w, weak) - 1.0) < 0.25, "Euler-Maruyama's weak order is 1"

# %%
fig, ax = plt.subplots(figsize=(5, 3.5))
ax.loglog(hs, strong["euler"], "o-", label="Euler-Maruyama, strong")
ax.loglog(hs, strong["milstein"], "s-", label="Milstein, strong")
ax.loglog(hs_w, weak, "^-", label="Euler-Maruyama, weak")
ax.loglog(hs, [strong["euler"][0] * (h / hs[0]) ** 0.5 for h in hs], "k:", label="slope 1/2")
ax.loglog(hs, [strong["milstein"][0] * (h / hs[0]) for h in hs], "k--", label="slope 1")
ax.set_xlabel("step h")
ax.set_ylabel("error at T = 1")
ax.legend(fontsize=8)
lab.show(fig, "orders")

# %% [markdown]
# **Going further.** `sdeflow solvers` lists every method with its declared strong and weak orders;
# try `method="srk"` (strong order 1.5) in the loop above. Lab 3 runs these solvers backwards in time on a
# diffusion's reverse SDE.

# %%
lab.done()
