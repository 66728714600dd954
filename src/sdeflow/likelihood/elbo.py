"""The variational bound (ELBO) of the reverse-time diffusion, in discrete and continuous time.

For a Gaussian path ``z_t = alpha_t x + sigma_t eps`` with ``SNR(t) = alpha_t^2 / sigma_t^2`` and a
model ``x_hat(z_t, t)`` (any parameterization, seen through :class:`sdeflow.models.Denoiser`), the
generative model ancestral-samples ``z_T ~ N(0, sigma(T)^2 I)``, then
``p(z_s | z_t) = q(z_s | z_t, x = x_hat(z_t, t))`` down a grid ``t_start = u_0 < ... < u_N = T``, and
decodes ``x ~ N(z_{u_0} / alpha_{u_0}, (sigma_{u_0} / alpha_{u_0})^2 I)``. Its evidence lower bound is
(Kingma et al. 2021, VDM, eqs. 11-13, written for any alpha, sigma)

    ELBO_N(x) = - KL(q(z_T | x) || N(0, sigma_T^2 I))                       prior term
                + E_q[log N(x; z_{u_0} / alpha_{u_0}, s_0^2 I)]              reconstruction
                - sum_{i=1}^{N} 1/2 (SNR(u_{i-1}) - SNR(u_i)) E||x - x_hat(z_{u_i}, u_i)||^2     diffusion

with closed forms ``KL = alpha_T^2 |x|^2 / (2 sigma_T^2)`` and ``E[log N] = -D/2 (log(2 pi s_0^2) + 1)``,
``s_0 = sigma_{u_0} / alpha_{u_0}``. As ``N`` grows the bound rises to the continuous-time bound

    ELBO_inf(x) = prior + reconstruction - 1/2 int_{lambda_T}^{lambda_0} E||eps - eps_hat(z_lambda)||^2 d lambda

(VDM eq. 17 in the log-SNR ``lambda``), which is the bound of Song et al. (2021, "Maximum likelihood
training of score-based diffusion models", Theorem 1) with the likelihood weighting
``lambda(t) = g(t)^2``: ``g^2 / sigma^2 = -d lambda / dt``. For the exact model the gap to
``log p_0(x)`` vanishes as ``N -> inf`` and ``t_start -> 0``.

Estimation. The expectations over ``eps`` are Monte Carlo with ``n_samples / 2`` independent
replicate chains per point, each drawing a fresh antithetic pair ``(eps, -eps)`` at every step from
per-point seeds (the terms of ``|x - x_hat|^2`` odd in ``eps`` cancel within a pair). At high SNR
the error is dominated by ``|eps|^2``, whose mean ``D`` is known; we subtract the control variate
``beta (|eps|^2 - D)`` (mean zero for any ``beta``) with ``beta`` regressed on the other chains of
the same point in a window of nearby steps (never on the term's own noise, so the estimate stays
unbiased). The standard error is the spread of the chains' totals. The grid is uniform in log-SNR; ``time='continuous'`` draws one
``lambda`` uniformly inside each of the ``N`` strata per replicate (stratified, unbiased for
``ELBO_inf``). Where ``log-SNR(T) = -inf`` (``alpha_T = 0``, the linear path) the grid ends at
``lambda = -20``: the discrete bound's last step still goes to ``T`` exactly (its weight is
``SNR(u_{N-1}) / 2``), the continuous one omits ``int_{-inf}^{-20}``, at most ``~1e-9 |x|^2`` nats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from .._threads import with_threads
from .._utils import check_int, progress_bar
from ..models.denoiser import Denoiser
from ..models.parameterization import check_prediction
from ..noise.rng import as_seeds, derive_keys, mix64, randn, uniform_from_keys
from ..processes.base import DiffusionProcess
from .discrete import bits_per_dim, check_data, dequantize, summarize
from .ode import resolve_t_start

__all__ = ["ElboResult", "TIMES", "elbo"]

TIMES: tuple[str, ...] = ("discrete", "continuous")

_ELBO_STREAM = 0x656C626F00
_JITTER_STREAM = 0x656C626F01
_LAMBDA_FLOOR = -20.0  # grid end where log-SNR(T) = -inf (alpha_T = 0); SNR = 2e-9 there
_CV_WINDOW = 8  # steps on each side pooled for the control-variate coefficient


@dataclass(frozen=True)
class ElboResult:
    """ELBO per data point (nats) from :func:`elbo`, with its parts.

    Attributes:
        elbo: ``(n,)`` float64, the bound on ``log p(x)`` (on the dequantized point's density when
            ``bin_width`` is set).
        stderr: ``(n,)`` Monte Carlo standard error (over the ``n_samples / 2`` replicate chains; NaN with
            ``n_samples = 2``, where one chain has no spread).
        prior: ``(n,)`` ``-KL(q(z_T|x) || prior)``; reconstruction: ``(n,)``; diffusion: ``(n,)``
            the (positive) diffusion loss; ``elbo = prior + reconstruction - diffusion``.
        dim: ``D``; steps: ``N``; n_samples; time: ``discrete`` or ``continuous``; t_start;
        nfe: model calls; bin_width.
    """

    elbo: torch.Tensor
    stderr: torch.Tensor
    prior: torch.Tensor
    reconstruction: torch.Tensor
    diffusion: torch.Tensor
    dim: int
    steps: int
    n_samples: int
    time: str
    t_start: float
    nfe: int
    bin_width: float | None

    @property
    def bits_per_dim(self) -> torch.Tensor:
        """``(n,)`` the bound in bits per dimension (an upper bound on the true bpd)."""
        return bits_per_dim(self.elbo, self.dim, self.bin_width)

    def summary(self, level: float = 0.95) -> dict[str, float]:
        """Mean ELBO (nats) and bits per dimension over points with a normal interval at ``level``."""
        out = summarize(self.elbo, self.stderr, self.dim, self.bin_width, level, "elbo")
        out["nfe"] = self.nfe
        return out


def _window_sum(a: torch.Tensor, k: int) -> torch.Tensor:
    """``out[..., i] = sum_{|j - i| <= k} a[..., j]`` along the last axis (clipped at the ends)."""
    c = torch.nn.functional.pad(torch.cumsum(a, dim=-1), (1, 0))
    n = a.shape[-1]
    idx = torch.arange(n, device=a.device)
    hi = torch.clamp(idx + k + 1, max=n)
    lo = torch.clamp(idx - k, min=0)
    return c[..., hi] - c[..., lo]


def _controlled(err: torch.Tensor, cv: torch.Tensor) -> torch.Tensor:
    """``err - beta cv`` with ``beta`` fitted on the other replicates in a window of steps.

    ``err``, ``cv``: ``(batch, R, N)``; ``beta[b, r, i] = sum err cv / sum cv^2`` over replicates
    ``r' != r`` and steps ``|i' - i| <= _CV_WINDOW`` of the same point (``E[cv] = 0``, and ``beta``
    is independent of the term's own noise, so every term stays unbiased).
    """
    if err.shape[1] < 2:
        return err
    s_ec = _window_sum(err * cv, _CV_WINDOW)
    s_cc = _window_sum(cv * cv, _CV_WINDOW)
    num = s_ec.sum(1, keepdim=True) - s_ec
    den = s_cc.sum(1, keepdim=True) - s_cc
    beta = torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(den))
    return err - beta * cv


@with_threads
def elbo(
    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    process: DiffusionProcess,
    x: torch.Tensor,
    *,
    prediction: str,
    steps: int = 256,
    time: str = "discrete",
    n_samples: int = 16,
    t_start: float | None = None,
    bin_width: float | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    progress: bool = False,
) -> ElboResult:
    """The evidence lower bound on ``log p(x)`` of the reverse diffusion (nats per point).

    Args:
        model: callable ``(x, t) -> prediction``.
        process: the forward process.
        x: data ``(n, *event_shape)``.
        prediction: ``eps``, ``x0``, ``v``, ``score`` or ``velocity``.
        steps: ``N``, the number of steps of the grid uniform in log-SNR from ``t_start`` to ``T``
            (the discrete-time model), or of strata (continuous time).
        time: ``discrete`` (the bound of the ``N``-step ancestral sampler, rising with ``N``) or
            ``continuous`` (an unbiased stratified estimate of the continuous-time bound).
        n_samples: noise draws per point and step, an even number: ``n_samples / 2`` antithetic pairs
            ``(eps, -eps)``, the replicate chains (>= 2 pairs for a standard error and the control
            variate). Cost: ``steps * n_samples`` model calls per point.
        t_start: first grid time (default ``1e-5 T``).
        bin_width: lattice spacing of discrete data (dequantization as in :func:`log_likelihood`).
        seed: point ``i`` uses seed ``seed + i`` (independent of ``batch_size``).
        batch_size: points per pass; each model call sees ``batch_size * n_samples`` inputs
            (default ``max(1, 1024 // n_samples)`` points).
        progress: tqdm bar over grid steps.
        threads: torch CPU threads for this call (``None``: ``SDEFLOW_THREADS`` or 1, or the setting of an
            enclosing sdeflow call; an integer, ``"auto"`` or ``"torch"``; docs/threads.md).

    Returns:
        :class:`ElboResult`.
    """
    x = check_data(x, "x")
    if not isinstance(process, DiffusionProcess):
        raise TypeError(f"process must be a sdeflow.processes.DiffusionProcess; got {type(process).__name__}")
    prediction = check_prediction(prediction)
    steps = check_int(steps, "steps")
    n_samples = check_int(n_samples, "n_samples")
    if n_samples % 2:
        raise ValueError(f"n_samples must be even (antithetic pairs eps, -eps); got {n_samples}; use {n_samples + 1}")
    if time not in TIMES:
        raise ValueError(f"time must be one of {list(TIMES)}; got {time!r}")
    t0 = resolve_t_start(process, t_start)
    T = float(process.T)
    seed = check_int(seed, "seed", minimum=0)
    n = x.shape[0]
    batch_size = max(1, 1024 // n_samples) if batch_size is None else check_int(batch_size, "batch_size")
    event = tuple(x.shape[1:])
    D = math.prod(event)
    seeds_all = torch.arange(seed, seed + n, dtype=torch.int64)
    if bin_width is not None:
        x = dequantize(x, bin_width, seeds_all)

    lam0 = float(process.log_snr(t0))
    lamT = max(float(process.log_snr(T)), _LAMBDA_FLOOR)
    # Grid uniform in log-SNR, u_0 = t_start, u_N = T exactly; lam[i] = log-SNR(u_i).
    lam = torch.linspace(lam0, lamT, steps + 1, dtype=torch.float64)
    lam[-1] = float(process.log_snr(T))
    ts = process.t_from_log_snr(lam)
    ts[0], ts[-1] = t0, T
    if prediction in ("eps", "score") and not float(process.alpha(T)) > 0:
        raise ValueError(
            f"alpha(T) = 0 for {process!r}: an {prediction!r} model cannot predict x0 at t = T; end the "
            f"process below 1 (e.g. {type(process).__name__}(T=0.999)) or use a 'velocity', 'x0' or 'v' model"
        )
    denoiser = Denoiser(model, process, prediction)

    a_T, s_T = float(process.alpha(T)), float(process.sigma(T))
    s0 = float(process.sigma(t0)) / float(process.alpha(t0))
    recon_value = -0.5 * D * (math.log(2.0 * math.pi * s0**2) + 1.0)  # E log N(x; z_0/alpha_0, s0^2 I)
    R = n_samples // 2  # antithetic pairs: the replicate chains of the estimate
    chunks: dict[str, list[torch.Tensor]] = {key: [] for key in ("elbo", "se", "prior", "diff")}
    bar = progress_bar(total=n * steps, desc=f"ELBO ({time}, {steps} steps)", unit="pt-step", disable=not progress)
    for start in range(0, n, batch_size):
        xb = x[start : start + batch_size]
        b = xb.shape[0]
        x64 = xb.reshape(b, D).to(torch.float64)
        # Replicate r of point j uses seeds derived from (seed_j, r): independent chains.
        pkeys = mix64(as_seeds(seeds_all[start : start + b], b))
        rkeys = derive_keys(pkeys[:, None], torch.arange(R, dtype=torch.int64)[None, :] + _ELBO_STREAM).reshape(-1)
        err = torch.empty((b, R, steps), dtype=torch.float64)
        cv = torch.empty((b, R, steps), dtype=torch.float64)
        weight = torch.empty((b, R, steps), dtype=torch.float64)
        if time == "continuous":
            jitter = uniform_from_keys(derive_keys(rkeys, _JITTER_STREAM), steps).reshape(b, R, steps)
        xr = xb.repeat_interleave(2 * R, dim=0)  # (2 b R, *event): row (j R + r) 2 + {0, 1}
        for i in range(1, steps + 1):
            # Antithetic pairs (eps, -eps): odd terms of |x - x_hat|^2 in eps cancel within a pair.
            half = randn((b * R,) + event, seeds=rkeys, stream=i, dtype=xb.dtype, device=xb.device)
            eps = torch.stack([half, -half], dim=1).reshape(xr.shape)
            if time == "discrete":
                t = ts[i].expand(2 * b * R)
                # (1/2)(SNR(u_{i-1}) - SNR(u_i)) in the x-form of the KL (VDM eq. 13).
                w = 0.5 * (torch.exp(lam[i - 1]) - torch.exp(lam[i])) * torch.ones(b * R, dtype=torch.float64)
                xform = True
            else:
                lam_end = max(float(lam[i]), _LAMBDA_FLOOR)
                lam_i = lam[i - 1] + (lam_end - lam[i - 1]) * jitter[:, :, i - 1].reshape(-1)
                t = process.t_from_log_snr(lam_i).repeat_interleave(2)
                # (1/2) |d lambda| |eps - eps_hat|^2 per stratum (VDM eq. 17).
                w = 0.5 * (lam[i - 1] - lam_end) * torch.ones(b * R, dtype=torch.float64)
                xform = False
            tx = t.to(xb.dtype)
            a = process.alpha(t).to(xb.dtype).reshape((-1,) + (1,) * len(event))
            s = process.sigma(t).to(xb.dtype).reshape((-1,) + (1,) * len(event))
            with torch.no_grad():
                d = denoiser(a * xr + s * eps, tx)
            diff = (xr - d.x0) if xform else (eps - d.eps)
            e2 = diff.reshape(b * R, 2, D).to(torch.float64).pow(2).sum(2).mean(1)  # pair mean
            u = half.reshape(b * R, D).to(torch.float64).pow(2).sum(1) - D
            if xform:
                # |x - x_hat|^2 = (sigma/alpha)^2 |eps - eps_hat|^2: the control variate in x-units.
                ratio = (process.sigma(t[::2]) / process.alpha(t[::2])) ** 2 if float(process.alpha(ts[i])) > 0 else torch.zeros(b * R, dtype=torch.float64)
                u = u * ratio
            err[:, :, i - 1] = e2.reshape(b, R)
            cv[:, :, i - 1] = u.reshape(b, R)
            weight[:, :, i - 1] = w.reshape(b, R)
            bar.update(b)
        denoiser.raise_if_nonfinite()
        terms = weight * _controlled(err, cv)
        diff_r = terms.sum(2)  # (b, R): the diffusion loss of each replicate chain
        prior = -(a_T**2) * x64.pow(2).sum(1) / (2.0 * s_T**2)
        diffusion = diff_r.mean(1)
        chunks["elbo"].append(prior + recon_value - diffusion)
        chunks["se"].append(diff_r.std(1, unbiased=True) / math.sqrt(R) if R > 1 else torch.full((b,), float("nan")))
        chunks["prior"].append(prior)
        chunks["diff"].append(diffusion)
    bar.close()
    out = {key: torch.cat(v) for key, v in chunks.items()}
    if not bool(torch.isfinite(out["elbo"]).all()):
        raise FloatingPointError(
            f"the ELBO is not finite for some points; check the model at small and large t and the prediction kind {prediction!r}"
        )
    return ElboResult(
        elbo=out["elbo"],
        stderr=out["se"],
        prior=out["prior"],
        reconstruction=torch.full((n,), recon_value, dtype=torch.float64),
        diffusion=out["diff"],
        dim=D,
        steps=steps,
        n_samples=2 * R,
        time=time,
        t_start=t0,
        nfe=denoiser.nfe,
        bin_width=bin_width,
    )
