"""MCGdiff: sequential Monte Carlo with Gaussian potentials in the SVD basis (Cardoso et al., ICLR 2024).

The prior is the diffusion model's ancestral (DDPM) chain on the grid ``T = t_K > ... > t_0 = 0``,
``p(x_K) prod_k p_k(x_k | x_{k+1})`` with ``p_k = N(mu_k(x_{k+1}), c_k^2 I)``,
``mu_k = a_k x0_hat + sqrt(s_k^2 - c_k^2) eps_hat = k0 x0_hat + k1 x_{k+1}``.

Kernel mean (option ``order``). With ``order=1`` it is DDPM's; that chain is a first-order (weak) discretization of
the reverse SDE, and its ``x_0`` law is not the prior: on Cardoso et al.'s 25-mode mixture (d = 8, exact score,
100 steps) it gives the centre mode 0.312 for 0.294 (total variation 0.03 over the mode weights, made where the
modes separate, log-SNR -6 to -3; exact reverse transitions on the same grid give the prior's weights), and on a
Gaussian it loses 9 % of every variance. The particles target the chain's posterior, so they inherit that bias
whatever their number. ``order=2`` (default) replaces ``x0_hat`` by the multistep value
``x0_hat_k + rho_k (x0_hat_k - x0_hat_{k+1})``, ``rho_k = h_k / (2 h_{k+1})`` with ``h`` the step in
``lambda = log(a / s)``: the midpoint rule of DPM-Solver++(2M) and its SDE form (Lu et al. 2022), which needs no
extra model call (each particle keeps its last ``x0_hat``, resampled with it). The chain is then second order: its
variances miss by 0.3 % at 100 steps (:func:`chain_moments`) and the mode weights above match the prior to Monte Carlo
error. The chain is Markov in ``(x_k, x0_hat_{k+1})``, so the particle filter below stays exact for it.

The kernel variance (option ``kernel``) is ``c_ddpm^2`` by default (``"ddpm"``), or
``c_k^2 = c_ddpm^2 + k0^2 r_k^2``, with ``k0`` the coefficient of ``x0_hat`` in ``mu_k`` and ``r_k^2`` Analytic-DPM's
isotropic estimate of ``Var(x0 | x_t)`` (Bao et al., ICLR 2022), ``(s/a)^2 (1 - mean eps_hat^2)``: with
``"analytic"`` the mean is over the particles of the measurement, which are conditioned on ``y``;
with ``"marginal"`` it is over a companion population of unweighted draws of the same chain that ride
in the same model calls, as Bao et al.'s expectation is over the prior marginal. For an isotropic
Gaussian prior ``"marginal"`` with ``order=1`` is the exact reverse transition, so its chain is exact at any step count,
while ``"analytic"`` makes the prior chain depend on ``y`` (posterior variances 13 % too wide at 20
steps); on mixtures, where ``Var(x0 | x_t)`` varies with ``x_t``, neither is exact and the benchmark
shows no consistent winner (BENCHMARKS-inverse.md). ``kernel="ddpm"`` (``c_ddpm`` alone,
:mod:`sdeflow.inverse.base`) is a fixed chain whose posterior has a closed form on Gaussian priors
(:func:`chain_moments`); with ``order=1`` it loses about 9 % of every variance at 100 steps. The last kernel, to
``t_0 = 0``, is centred at ``x0_hat`` with at least a quarter of ``n_1^2`` (``n_1 = s_1 / a_1`` the noise
level of the last positive time; ``kernel="ddpm"``: ``n_1^2``): DDPM's deterministic last step would
make a noiseless measurement a point mass that no particle hits. In the SVD basis (``xbar = V^T x``, ``ubar = U^T y``,
``ubar_i = s_i xbar0_i + noise_std n_i``) each particle carries the Gaussian potential

    g_k(x_k) = prod_{i: s_i > 0} N(a_k ubar_i ; s_i xbar_{k,i}, a_k^2 noise_std^2 + s_i^2 s_k^2)

(the likelihood of ``y`` if ``x_k / a_k`` were ``x0`` plus noise of level ``s_k / a_k``: Cardoso et
al.'s potentials, here with the measurement noise carried in the variance rather than by their
time shift), and ``g_0(x_0) = p(y | x_0)`` exactly. Because ``p_k`` and ``g_k`` are Gaussian, the
*optimal* proposal ``p_k g_k / Z_k`` and its normalizer are closed forms, coordinate by coordinate
(Kalman's update):

    Z_k(x_{k+1}) = prod_i N(a_k ubar_i ; s_i mubar_i, v_i + s_i^2 c_k^2),   v_i = a_k^2 noise_std^2 + s_i^2 s_k^2
    gain G_i = c_k^2 s_i / (s_i^2 c_k^2 + v_i),  mean mubar_i + G_i (a_k ubar_i - s_i mubar_i),
    variance c_k^2 v_i / (s_i^2 c_k^2 + v_i)     (unobserved coordinates: N(mubar_i, c_k^2)).

A fully adapted auxiliary particle filter (Pitt & Shephard 1999) then weights each particle by
``Z_k(x_{k+1}) / g_{k+1}(x_{k+1})`` *before* it moves, resamples (systematic) when the effective sample
size ``(sum w)^2 / sum w^2`` falls below ``ess_threshold`` times the population, and proposes. The
weighted population targets ``p(x_{0:K}) p(y | x_0)`` exactly, whatever the potentials: as the number
of particles grows its ``x_0`` marginal converges to the posterior of the model's chain, which is the
posterior of the data prior up to the chain's discretization error (Del Moral 2004, ch. 7). One model
call per step (on the whole population).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from .base import InverseProblem, PosteriorMethod, ancestral_std, check_range, register

__all__ = ["MCGdiff", "chain_moments", "ddpm_kernel", "resample_members", "resample_where_low", "systematic_resample"]


def systematic_resample(logw: torch.Tensor, n_out: int, generator: torch.Generator) -> torch.Tensor:
    """Systematic resampling of each row of ``logw`` ``(m, n)``: ``(m, n_out)`` int64 indices into the row.

    One uniform ``u`` per row, points ``(u + k) / n_out``, inverted through the cumulative weights
    (Kitagawa 1996): unbiased, with the least resampling noise of the classical schemes.
    """
    w = torch.softmax(logw.to(torch.float64), dim=1)
    cdf = torch.cumsum(w, dim=1)
    cdf[:, -1] = 1.0
    u = torch.rand((logw.shape[0], 1), generator=generator, dtype=torch.float64, device=generator.device).to(logw.device)
    points = (u + torch.arange(n_out, dtype=torch.float64, device=logw.device)) / n_out
    return torch.searchsorted(cdf, points, right=True).clamp_(max=logw.shape[1] - 1)


def resample_where_low(logw: torch.Tensor, state: Any, ess_threshold: float,
                       generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The ESS test and systematic resampling of the populations whose ESS fell below ``ess_threshold`` times their size.

    ``logw`` is ``(m, n)``; the effective sample size ``(sum w)^2 / sum w^2`` of each row is appended to ``state.ess``
    and ``state.resampled`` counts the rows resampled. Returns the new log-weights (0 on resampled rows) and the flat
    row indices ``(m n,)`` that reorder the particles (``None`` when no row was resampled).
    """
    m, n = logw.shape
    w = torch.softmax(logw, dim=1)
    ess = 1.0 / (w * w).sum(1)
    state.ess.append(ess)
    if ess_threshold <= 0:
        return logw, None
    low = ess < ess_threshold * n
    if not bool(low.any()):
        return logw, None
    idx = systematic_resample(logw, n, generator)
    keep = torch.arange(n, device=idx.device).expand(m, n)
    idx = torch.where(low[:, None], idx, keep)
    flat = (idx + n * torch.arange(m, device=idx.device)[:, None]).reshape(-1)
    state.resampled += int(low.sum())
    return torch.where(low[:, None], torch.zeros_like(logw), logw), flat


def resample_members(problem: InverseProblem, x: torch.Tensor, logw: torch.Tensor, n_samples: int) -> torch.Tensor:
    """``n_samples`` members per measurement drawn from the weighted populations ``(x, logw)`` (systematic)."""
    idx = systematic_resample(logw, n_samples, problem.generator)
    return x[(idx + problem.n * torch.arange(problem.m, device=idx.device)[:, None]).reshape(-1)]


def ddpm_kernel(a0: float, s0: float, a1: float, s1: float) -> tuple[float, float, float, float]:
    """``(c, k0, k1, h)`` of the ancestral kernel from ``t0`` to ``t1``: its std ``c`` (:func:`ancestral_std`), its mean
    ``k0 x0_hat + k1 x_t0`` and the step ``h`` in ``log(alpha / sigma)`` (infinite on the last step, to ``sigma = 0``)."""
    c = ancestral_std(a0, s0, a1, s1)
    k1 = math.sqrt(max(s1 * s1 - c * c, 0.0)) / s0
    h = math.log(a1 / s1) - math.log(a0 / s0) if s1 > 0 and a0 > 0 else math.inf
    return c, a1 - k1 * a0, k1, h


def chain_moments(ts, process, *, mean: torch.Tensor, var: torch.Tensor, kernel: str = "ddpm",
                  order: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``x_0`` marginal of MCGdiff's prior chain for a Gaussian prior with an exact denoiser.

    For the prior ``N(mean, diag(var))`` the denoiser is linear, ``x0_hat = mean + G (x_t - a_t mean)`` with
    ``G = a_t var / (a_t^2 var + s_t^2)``, so each kernel ``x_t1 = k0 D + k1 x_t0 + c xi`` (module docstring;
    ``D = x0_hat(x_t0)`` for ``order=1``, ``D = x0_hat(x_t0) + rho (x0_hat(x_t0) - x0_hat(x_tprev))`` for ``order=2``)
    is linear in the last two states, and the chain's marginals follow in closed form from the start
    ``x ~ N(0, s_0^2)`` at ``ts[0]`` (per coordinate, tracking the variances of ``x_t0``, ``x_tprev`` and their
    covariance). The weighted particles target this chain's posterior, i.e. the prior ``N(m_0, diag(v_0))`` returned
    here conditioned on ``y``; its distance to the data prior is the chain's discretization error: with ``order=1``
    (DDPM) first order in the step, about 9 % of each variance at 100 steps of the default log-SNR grid of VP and 1 %
    at 1000; with ``order=2`` second order (0.2 % at 100 steps). ``kernel="marginal"`` gives the chain of infinitely
    many companion draws: each kernel adds ``k0^2`` times the mean over coordinates of
    ``Var(x0_i | x_t) = var_i s^2 / (a^2 var_i + s^2)``, which with ``order=1`` is the exact reverse transition when
    ``var`` is isotropic (no bias at any step count).

    Args:
        ts: the grid that the sampler visits (``posterior_sample(...).ts``).
        process: the forward process.
        mean, var: ``(D,)`` the prior's mean and per-coordinate variances.
        kernel: ``"ddpm"`` or ``"marginal"`` (:class:`MCGdiff`).
        order: 1 or 2, the kernel mean (:class:`MCGdiff`).

    Returns:
        ``(m_0, v_0)``, each ``(D,)`` float64.
    """
    mean = torch.as_tensor(mean, dtype=torch.float64)
    var = torch.as_tensor(var, dtype=torch.float64)
    if mean.shape != var.shape or mean.ndim != 1:
        raise ValueError(f"mean and var must both have shape (D,); got {tuple(mean.shape)} and {tuple(var.shape)}")
    if not bool((var > 0).all()):
        raise ValueError("var must be > 0 in every coordinate")
    if kernel not in ("ddpm", "marginal"):
        raise ValueError(f"kernel must be 'ddpm' or 'marginal' (the 'analytic' chain depends on the population); got {kernel!r}")
    if order not in (1, 2) or isinstance(order, bool):
        raise ValueError(f"order must be 1 or 2; got {order!r}")
    tlist = [float(t) for t in ts]
    s_start = float(process.sigma(tlist[0]))
    # per coordinate: x = x_t0 ~ N(m, v), xp = x_tprev ~ N(mp, vp), Cov(x, xp) = cxp; x0_hat(x) = b + G x
    m, v = torch.zeros_like(mean), torch.full_like(var, s_start * s_start)
    mp, vp, cxp = m, v, torch.zeros_like(var)
    gp = bp = None
    h_prev = None
    for t0, t1 in zip(tlist[:-1], tlist[1:]):
        a0, s0 = float(process.alpha(t0)), float(process.sigma(t0))
        a1, s1 = float(process.alpha(t1)), float(process.sigma(t1))
        gain = a0 * var / (a0 * a0 * var + s0 * s0)
        b = mean - gain * a0 * mean
        c, k0, k1, h = ddpm_kernel(a0, s0, a1, s1)
        rho = _multistep(order, h, h_prev)
        # x_t1 = lin x + lin_p xp + const + sqrt(q) xi
        lin = k0 * (1 + rho) * gain + k1
        lin_p = -k0 * rho * gp if rho else torch.zeros_like(var)
        const = k0 * ((1 + rho) * b - rho * bp) if rho else k0 * b
        if kernel == "ddpm":
            q = c * c if s1 > 0 else (s0 / a0) ** 2
        else:  # MCGdiff.step: c^2 + k0^2 r2, r2 the isotropic Var(x0 | x_t), at least a quarter of n_1^2 on the last kernel
            r2 = float((var * s0 * s0 / (a0 * a0 * var + s0 * s0)).mean())
            q = c * c + k0 * k0 * (r2 if s1 > 0 else max(r2, 0.25 * (s0 / a0) ** 2))
        m_new = lin * m + lin_p * mp + const
        v_new = lin * lin * v + lin_p * lin_p * vp + 2 * lin * lin_p * cxp + q
        c_new = lin * v + lin_p * cxp  # Cov(x_t1, x_t0)
        mp, vp, cxp, m, v = m, v, c_new, m_new, v_new
        gp, bp, h_prev = gain, b, h
    return m, v


def _multistep(order: int, h: float, h_prev: float | None) -> float:
    """``rho`` of the second-order multistep mean ``x0_hat_k + rho (x0_hat_k - x0_hat_{k+1})``, 0 for a first-order step.

    ``rho = h / (2 h_prev)``, ``h`` the step in ``lambda = log(alpha / sigma)`` (Lu et al. 2022, DPM-Solver++(2M) and its
    SDE form, the midpoint rule); 0 on the first step (no history), on the last one (``h`` infinite, to ``t_0 = 0``) and
    for ``order = 1``.
    """
    if order == 1 or h_prev is None or not math.isfinite(h) or not math.isfinite(h_prev) or h_prev <= 0:
        return 0.0
    return h / (2.0 * h_prev)


@dataclass
class _State:
    logw: torch.Tensor  # (m, n) float64
    ess: list = field(default_factory=list)
    resampled: int = 0
    last_noise_level: float = 0.0
    companion: torch.Tensor | None = None  # (companion, *event): unweighted draws of the prior chain (kernel "marginal")
    prev_x0: torch.Tensor | None = None  # each particle's x0_hat at the previous grid time (order 2)
    prev_h: float | None = None  # the previous step in log(alpha / sigma)
    companion_x0: torch.Tensor | None = None


@register
@dataclass(frozen=True)
class MCGdiff(PosteriorMethod):
    """MCGdiff particle filter (see the module docstring). Asymptotically exact as particles grow.

    Args:
        ess_threshold: resample when the effective sample size falls below this fraction of the
            population (0.5, a common choice; 1.0 resamples at every step, 0 never).
        kernel: the variance of the prior chain's Gaussian kernels. ``"ddpm"`` (default): ``c_ddpm^2``, a fixed
            chain whose posterior the particles target exactly (:func:`chain_moments`); with ``order=1`` its variances
            are first-order low in the step (9 % at 100 steps of the default grid), with ``order=2`` 0.3 % off. ``"analytic"``:
            ``c_ddpm^2 + k0^2 Var(x0 | x_t)`` with Analytic-DPM's isotropic estimate taken over the
            (y-conditioned) population. ``"marginal"``: the same estimate over ``companion`` unweighted
            draws of the prior chain that move with the particles in the same model call, so the chain
            does not depend on ``y`` (exact on isotropic Gaussian priors; module docstring).
        companion: draws of the prior chain for ``kernel="marginal"``, shared by all measurements (default:
            enough for 20,000 coordinate values in the isotropic average, ``min(1000, max(32, 20000 / D))``
            for states of ``D`` coordinates).
        order: the kernel mean: 1 for DDPM's ``k0 x0_hat + k1 x_t``, 2 (default) for the multistep mean (module
            docstring), which removes the chain's first-order bias at no extra model call.
    """

    name: ClassVar[str] = "mcgdiff"
    particle: ClassVar[bool] = True
    needs_real_svd: ClassVar[bool] = True
    ess_threshold: float = 0.5
    kernel: str = "ddpm"
    companion: int | None = None
    order: int = 2

    def __post_init__(self) -> None:
        check_range(self.ess_threshold, "ess_threshold", 0.0, 1.0)
        if self.order not in (1, 2) or isinstance(self.order, bool):
            raise ValueError(f"order must be 1 (the DDPM kernel mean) or 2 (the multistep mean); got {self.order!r}")
        if self.kernel not in ("analytic", "ddpm", "marginal"):
            raise ValueError(f"kernel must be 'analytic', 'ddpm' or 'marginal'; got {self.kernel!r}")
        if self.companion is not None:
            check_range(self.companion, "companion", 1, None, integer=True)

    def _log_potential(self, problem, xbar, a: float, s_t: float) -> torch.Tensor:
        s, obs, uy = problem.spectral(xbar)
        var = a * a * problem.noise_std**2 + s * s * s_t * s_t
        r = a * uy - s * xbar
        q = torch.where(obs, r * r / torch.where(obs, var, 1.0), torch.zeros_like(r))
        return -0.5 * q.to(torch.float64).sum(1).reshape(problem.m, problem.n)

    def init(self, problem: InverseProblem, x: torch.Tensor) -> _State:
        return _State(logw=torch.zeros((problem.m, problem.n), dtype=torch.float64, device=x.device))

    def step(self, problem: InverseProblem, t0: float, t1: float, x: torch.Tensor, state: _State):
        op, m, n = problem.operator, problem.m, problem.n
        a0, s0 = problem.coefs(t0)
        a1, s1 = problem.coefs(t1)
        if self.kernel == "marginal" and not state.ess:  # the companion starts where the particles do: sigma(ts[0]) z
            size = self.companion or min(1000, max(32, math.ceil(20_000 / x[0].numel())))
            state.companion = s0 * problem.randn_like(x[:1].expand((size,) + tuple(x.shape[1:])))
        comp = state.companion
        if comp is not None:  # one model call on the particles and the companion draws together
            x0, eps = problem.denoise(torch.cat([x, comp]), t0)
            x0, eps, x0c, epsc = x0[: x.shape[0]], eps[: x.shape[0]], x0[x.shape[0]:], eps[x.shape[0]:]
        else:
            x0, eps = problem.denoise(x, t0)
        c, k0, k1, h = ddpm_kernel(a0, s0, a1, s1)  # the DDPM mean is k0 x0_hat + k1 x_t0; h the step in log(alpha / sigma)
        rho = _multistep(self.order, h, state.prev_h)
        mu = k0 * (x0 + rho * (x0 - state.prev_x0)) + k1 * x if rho else k0 * x0 + k1 * x
        var_k = torch.full((m, 1), c * c, dtype=torch.float64, device=x.device)
        if self.kernel != "ddpm" and a0 > 0:
            # the kernel adds what x0_hat's uncertainty brings into x_t1: k0^2 Var(x0 | x_t0) (Analytic-DPM), estimated
            # over the population (analytic) or over the prior chain's own draws (marginal)
            r2 = problem.x0_variance(epsc, a0, s0, groups=1) if comp is not None else problem.x0_variance(eps, a0, s0)
            if s1 == 0:  # the last kernel: at least a quarter of the noise level's variance (module docstring)
                r2 = torch.clamp(r2, min=0.25 * (s0 / a0) ** 2)
            var_k = var_k + k0 * k0 * r2[:, None]
        elif s1 == 0:
            var_k = torch.full((m, 1), (s0 / a0) ** 2, dtype=torch.float64, device=x.device)
        if comp is not None:  # the companion draws move by the same kernel, without potentials
            vc = float(var_k[0, 0])
            muc = k0 * (x0c + rho * (x0c - state.companion_x0)) + k1 * comp if rho else k0 * x0c + k1 * comp
            state.companion, state.companion_x0 = muc + math.sqrt(vc) * problem.randn_like(comp), x0c
        cc = var_k.to(x.dtype).repeat_interleave(n, dim=0)  # (B, 1) the kernel's variance c_k^2
        xbar, mubar = op.Vt(x), op.Vt(mu)
        s, obs, uy = problem.spectral(xbar)
        # 1. weights Z_k(x_{k+1}) / g_{k+1}(x_{k+1}) (the first step's g_K(x_K) is the initial weight, which cancels)
        v = a1 * a1 * problem.noise_std**2 + s * s * s1 * s1
        pred_var = v + s * s * cc
        r = a1 * uy - s * mubar
        q = torch.where(obs, r * r / torch.where(obs, pred_var, 1.0), torch.zeros_like(r))
        log_z = -0.5 * q.to(torch.float64).sum(1).reshape(m, n)
        logw = state.logw + log_z
        if len(state.ess) > 0:
            logw = logw - self._log_potential(problem, xbar, a0, s0)
        # 2. effective sample size and resampling (per measurement)
        logw, flat = resample_where_low(logw, state, self.ess_threshold, problem.generator)
        if flat is not None:
            mubar, x, x0 = mubar[flat], x[flat], x0[flat]
        # 3. the optimal proposal p_k g_k / Z_k, coordinate by coordinate
        denom = s * s * cc + v
        safe = torch.where(obs, denom, 1.0)
        gain = torch.where(obs, cc * s / safe, torch.zeros_like(denom))
        var = torch.where(obs, cc * v / safe, cc.expand_as(denom))
        mean = mubar + gain * (a1 * uy - s * mubar)
        z = problem.spectral_noise(x)
        x_new = op.V(mean + torch.sqrt(var) * z)
        state.logw = logw
        state.prev_x0, state.prev_h = x0, h  # each particle's own x0_hat (resampled with it) for the next multistep mean
        return x_new, state

    def finalize(self, problem: InverseProblem, x: torch.Tensor, state: _State, n_samples: int) -> torch.Tensor:
        """``n_samples`` members per measurement drawn from the final weighted population (systematic)."""
        return resample_members(problem, x, state.logw, n_samples)
