"""TDS: twisted sequential Monte Carlo on the model's chain (Wu, Trippe, Naesseth, Blei & Cunningham, NeurIPS 2023).

The prior is the same chain as :mod:`sdeflow.inverse.mcgdiff`'s (the ancestral DDPM kernel with the second-order
multistep mean by default, ``order=2``): ``p(x_K) prod_k p_k(x_k | x_{k+1})``, ``p_k = N(mu_k, c_k^2 I)``. The
particles target the twisted sequence

    pi_k(x_{k:K}) ∝ p(x_{k:K}) g_k(x_k),   g_k(x_k) = N(ubar ; s * Vt(x0_hat(x_k)), noise_std^2 + s^2 r_k^2),

written in the SVD basis of the operator (``ubar = Ut(y)``, ``s`` its singular values, observed coordinates only),
with ``r_k = s_k / a_k`` the noise level of ``t_k`` and ``g_0(x_0) = p(y | x_0)`` exactly. This is Wu et al.'s
twisting function: the likelihood of ``y`` if ``x0`` were the model's denoised estimate ``x0_hat(x_k)`` with an
error of variance ``r_k^2``. (``r_k^2`` is the mean squared error of the trivial estimate ``x_k / a_k``, so it
bounds the denoiser's on average: a conservative width. The population's Analytic-DPM estimate of
``Var(x0 | x_k)`` was tried and collapses to 0 when the particles, conditioned on ``y``, have ``mean eps_hat^2 > 1``,
which made all weight fall on one particle; the estimate over unweighted prior draws was stable but gave larger
errors on Cardoso et al.'s mixtures than ``r_k^2``: mean sliced-W2 ratio to the floor 1.70 against 1.16 (d = 8,
d_y = 2, 20 problems, 100 steps, without start weights; docs/inverse.md).)

Where :mod:`~sdeflow.inverse.mcgdiff` centres its potentials on the noisy state (``x_k / a_k`` as a noisy ``x0``),
the twist here is centred on the *denoised* state, which knows which mode of the prior ``x_k`` is heading to; the
particles are therefore allocated among the posterior's modes in nearly the right proportions as soon as the modes
separate, instead of in the prior's proportions corrected later by weights (the Monte Carlo error that kept
``mcgdiff`` above the benchmark's goal; docs/inverse.md).

Proposal (option ``proposal``):

* ``"linear"`` (default, no gradient): the twist at ``t_{k}`` linearized around the kernel mean,
  ``x0_hat(x_k) ≈ D_k + (x_k - mu_k) / a_k`` (``D_k`` the chain's own estimate of ``x0`` in ``mu_k``; the slope
  ``Cov(x0 | x_k) a_k / s_k^2`` of Tweedie's formula with ``Cov = r_k^2 I``), is Gaussian in ``x_k``; its product with
  ``p_k`` is a closed-form Gaussian, coordinate by coordinate in the SVD basis (Kalman's update, as in ``mcgdiff``).
* ``"gradient"`` (Wu et al.'s): ``N(mu_k + c_k^2 grad_{x_{k+1}} log g_{k+1}(x_{k+1}), c_k^2 I)``, the gradient a
  vector-Jacobian product through the model in the step's one call (the graph lives for that call only).

On the last step, to ``t_0 = 0``, both use the exact likelihood in closed form (kernel centred at ``x0_hat`` with
variance ``r_1^2``, as ``mcgdiff``'s), so noiseless measurements are met exactly. The weight of a particle is

    w_k = p_k(x_k | x_{k+1}) g_k(x_k) / (q_k(x_k | x_{k+1}) g_{k+1}(x_{k+1})),

and since ``g_k(x_k)`` needs ``x0_hat(x_k)``, it is completed with the next step's model call, before that step's
resampling decision (systematic resampling when the effective sample size falls below ``ess_threshold`` times the
population). Whatever the twist and the proposal, the weighted population targets ``p(x_{0:K}) p(y | x_0)``
exactly (``p(x_K)`` the chain's start, weighted or not, below): as the particles grow its ``x_0`` marginal converges to the posterior of the model's chain (Del Moral 2004;
Wu et al. 2023, Theorem 1), i.e. to the data posterior up to the chain's discretization error
(:func:`~sdeflow.inverse.mcgdiff.chain_moments`). One model call per step.

The start (option ``start``). The chain starts from ``N(0, sigma(T)^2 I)``, but the data's marginal at ``T`` has the
means ``alpha(T) mu``; on wide data (VP's ``alpha(1) = 0.0066`` and Cardoso et al.'s means up to 143 at d = 80) that
offset is a standard deviation, and the reverse chain then gives far modes too little weight (two modes at 0 and 150:
0.40 for 0.5). With ``start="model"`` (default) the first draws carry the weights of :func:`start_log_weights`, the
model's own estimate of ``p_T / N(0, sigma(T)^2 I)`` by Tweedie's formula, computed from the first step's model call
(no extra call); the weighted start then is the data's marginal at ``T`` (exactly for Gaussian data).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from .base import InverseProblem, PosteriorMethod, check_range, register
from .mcgdiff import _multistep, ddpm_kernel, resample_members, resample_where_low

__all__ = ["TDS", "start_log_weights"]


def start_log_weights(x: torch.Tensor, x0: torch.Tensor, a: float, s: float, m: int, n: int) -> torch.Tensor:
    """``log p_t(x) - log N(x; 0, s^2 I)`` up to a constant per population, ``(m, n)`` float64, from the denoiser.

    Tweedie's formula gives the gradient ``grad log p_t(x) = (a x0_hat(x) - x) / s^2``, so the log-ratio to the chain's
    start ``N(0, s^2 I)`` has gradient ``(a / s^2) x0_hat(x)``. Integrated along the segment from 0 to ``x`` with the
    trapezoid rule, ``x0_hat(0)`` taken as the population's mean of ``x0_hat`` (the population is symmetric about 0):

        log w(x) = (a / s^2) * (x0_hat(x) + mean x0_hat) / 2 . x

    exact for Gaussian data (a linear denoiser), and close wherever ``x0_hat`` is nearly linear at ``t``, as at the end
    of a process whose signal ``a(T)`` is small.
    """
    x0f, xf = x0.reshape(m, n, -1).to(torch.float64), x.reshape(m, n, -1).to(torch.float64)
    mid = 0.5 * (x0f + x0f.mean(1, keepdim=True))
    return (a / (s * s)) * (mid * xf).sum(-1)


@dataclass
class _State:
    logw: torch.Tensor  # (m, n) float64: the weights of pi_k, less the twist g_k(x_k) that the next call completes
    ess: list = field(default_factory=list)
    resampled: int = 0
    prev_x0: torch.Tensor | None = None  # each particle's x0_hat at the previous grid time (order 2)
    prev_h: float | None = None


@register
@dataclass(frozen=True)
class TDS(PosteriorMethod):
    """The twisted diffusion sampler (module docstring). Asymptotically exact as particles grow.

    Args:
        ess_threshold: resample when the effective sample size falls below this fraction of the population
            (0.5; 1.0 resamples at every step, 0 never).
        order: the chain's kernel mean, 1 (DDPM) or 2 (default: the second-order multistep mean, as ``mcgdiff``).
        proposal: ``"linear"`` (default: the twist linearized, a closed-form Gaussian, no gradient) or ``"gradient"``
            (Wu et al.'s: the kernel mean moved by ``c^2`` times the twist's gradient, one vector-Jacobian product
            through the model per step).
        start: ``"model"`` (default): the first draws ``N(0, sigma(T)^2 I)`` are weighted by the model's estimate of
            the data's marginal at ``T`` over that density (:func:`start_log_weights`), so the chain starts where the
            data's forward process ends; ``"prior"``: no start weights (the chain starts from ``N(0, sigma(T)^2 I)``).
    """

    name: ClassVar[str] = "tds"
    particle: ClassVar[bool] = True
    needs_real_svd: ClassVar[bool] = True
    ess_threshold: float = 0.5
    order: int = 2
    proposal: str = "linear"
    start: str = "model"

    def __post_init__(self) -> None:
        check_range(self.ess_threshold, "ess_threshold", 0.0, 1.0)
        if self.order not in (1, 2) or isinstance(self.order, bool):
            raise ValueError(f"order must be 1 (the DDPM kernel mean) or 2 (the multistep mean); got {self.order!r}")
        if self.proposal not in ("linear", "gradient"):
            raise ValueError(f"proposal must be 'linear' or 'gradient'; got {self.proposal!r}")
        if self.start not in ("model", "prior"):
            raise ValueError(f"start must be 'model' or 'prior'; got {self.start!r}")

    def init(self, problem: InverseProblem, x: torch.Tensor) -> _State:
        return _State(logw=torch.zeros((problem.m, problem.n), dtype=torch.float64, device=x.device))

    @staticmethod
    def _loglik(problem: InverseProblem, resid: torch.Tensor, var) -> torch.Tensor:
        """``sum_i log N(resid_i ; 0, var_i)`` over the observed coordinates, ``(m, n)`` float64."""
        _, obs, _ = problem.spectral(resid)
        var = torch.as_tensor(var, dtype=resid.dtype, device=resid.device).expand_as(resid)
        safe = torch.where(obs, var, torch.ones_like(var))
        q = torch.where(obs, resid * resid / safe + torch.log(safe), torch.zeros_like(resid))
        return -0.5 * q.to(torch.float64).sum(1).reshape(problem.m, problem.n)

    def step(self, problem: InverseProblem, t0: float, t1: float, x: torch.Tensor, state: _State):
        op = problem.operator
        a0, s0 = problem.coefs(t0)
        a1, s1 = problem.coefs(t1)
        r0 = (s0 / a0) ** 2 if a0 > 0 else math.inf  # the twist's variance r^2 at t0 (module docstring)
        s, obs, uy = problem.spectral(x)  # (x gives only the dtype and device)
        tvar0 = problem.noise_std**2 + s * s * r0
        grad = None
        if self.proposal == "gradient" and s1 > 0:
            def neg_log_twist(x0: torch.Tensor) -> torch.Tensor:
                r = uy - s * op.Vt(x0)
                return 0.5 * torch.where(obs, r * r / torch.where(obs, tvar0, 1.0), torch.zeros_like(r)).sum(1)

            x0, _, grad, _ = problem.denoise_vjp(x, t0, neg_log_twist)
            grad = -grad  # grad_{x_t0} log g(x_t0)
        else:
            x0, _ = problem.denoise(x, t0)
        # 1. complete the weights with the twist at x_t0, then the ESS test and resampling (per measurement)
        if math.isfinite(r0):
            log_twist = self._loglik(problem, uy - s * op.Vt(x0), tvar0)
        else:  # pure noise (alpha = 0): the twist is flat
            log_twist = torch.zeros_like(state.logw)
        if not state.ess and self.start == "model":
            state.logw = state.logw + start_log_weights(x, x0, a0, s0, problem.m, problem.n)
        logw, flat = resample_where_low(state.logw + log_twist, state, self.ess_threshold, problem.generator)
        if flat is not None:
            x, x0, log_twist = x[flat], x0[flat], log_twist.reshape(-1)[flat].reshape(problem.m, problem.n)
            if grad is not None:
                grad = grad[flat]
            if state.prev_x0 is not None:
                state.prev_x0 = state.prev_x0[flat]
        # 2. the chain's kernel N(mu, cc): DDPM's, with the multistep estimate D of x0 (order 2); the last one to t = 0
        # is centred at x0_hat with variance r_1^2 (mcgdiff's)
        c, k0, k1, h = ddpm_kernel(a0, s0, a1, s1)
        rho = _multistep(self.order, h, state.prev_h)
        d_est = x0 + rho * (x0 - state.prev_x0) if rho else x0
        mu = k0 * d_est + k1 * x
        cc = c * c if s1 > 0 else r0
        if grad is not None:  # 3a. Wu et al.'s proposal: the kernel moved along the twist's gradient
            shift = cc * grad
            x_new = mu + shift + c * problem.randn_like(x)
            dev, dev_q = (x_new - mu).reshape(x.shape[0], -1), (x_new - mu - shift).reshape(x.shape[0], -1)
            log_pq = (-0.5 / cc * (dev.pow(2).sum(1) - dev_q.pow(2).sum(1))).to(torch.float64)
            logw = logw + log_pq.reshape(problem.m, problem.n) - log_twist
        else:  # 3b. the closed-form proposal: p_k times the twist linearized at mu (exact likelihood on the last step)
            mubar = op.Vt(mu)
            if s1 > 0:
                r1 = (s1 / a1) ** 2
                gain_x0 = s / a1  # the observed coordinates of s * x0_hat(x_t1), linearized: s D + (s / a1) (x_t1 - mu)
                target = uy - s * (op.Vt(d_est) - mubar / a1)
                noise_var = problem.noise_std**2 + s * s * r1
            else:
                gain_x0, target = s, uy
                noise_var = torch.full_like(s, problem.noise_std**2)
            pred_var = noise_var + gain_x0 * gain_x0 * cc
            safe = torch.where(obs, pred_var, torch.ones_like(pred_var))
            gain = torch.where(obs, cc * gain_x0 / safe, torch.zeros_like(pred_var))
            var = torch.where(obs, cc * noise_var / safe, torch.full_like(pred_var, cc))
            xbar = mubar + gain * (target - gain_x0 * mubar) + torch.sqrt(var) * problem.spectral_noise(x)
            # p / q = Z / g_lin(x_t1): the normalizer of the product over the linearized twist at the new point (on the
            # last step g_lin is g_0 = p(y | x_0) itself, the target's final potential, and cancels)
            logw = logw + self._loglik(problem, target - gain_x0 * mubar, pred_var) - log_twist
            if s1 > 0:
                logw = logw - self._loglik(problem, target - gain_x0 * xbar, noise_var)
            x_new = op.V(xbar)
        state.logw = logw
        state.prev_x0, state.prev_h = x0, h
        return x_new, state

    def finalize(self, problem: InverseProblem, x: torch.Tensor, state: _State, n_samples: int) -> torch.Tensor:
        """``n_samples`` members per measurement drawn from the final weighted population (systematic)."""
        return resample_members(problem, x, state.logw, n_samples)
