"""Gaussian-mixture data with exact scores, denoisers and probability-flow solutions.

A mixture ``p_0 = sum_k w_k N(mu_k, Sigma_k)`` pushed through a Gaussian path
``x_t = alpha(t) x0 + sigma(t) eps`` stays a mixture with closed-form components:

    p_t(x) = sum_k w_k N(x; alpha mu_k, C_k),        C_k = alpha^2 Sigma_k + sigma^2 I.

With responsibilities ``r_k(x) = w_k N(x; alpha mu_k, C_k) / p_t(x)`` (a softmax of log-joints,
i.e. a logsumexp) everything a model predicts is known exactly:

    score    = grad_x log p_t(x) = -sum_k r_k C_k^{-1} (x - alpha mu_k)
    x0       = E[x0 | x_t = x]   =  sum_k r_k [mu_k + alpha Sigma_k C_k^{-1} (x - alpha mu_k)]
    eps      = E[eps | x_t = x]  = -sigma * score
    v        = alpha eps - sigma x0                       (Salimans & Ho 2022)
    velocity = d_alpha x0 + d_sigma eps                   (probability-flow ODE, dx/dt)

and ``x = alpha x0 + sigma eps`` holds exactly (Tweedie's formula). The ``x0`` form has no
division by ``alpha`` or ``sigma``: it is finite at ``alpha = 0`` (the linear path at ``t = 1``,
where it is the mixture mean) and at ``sigma = 0`` (``t = 0``, where it returns ``x``).

Costs. Diagonal (and isotropic) covariances never form a ``D x D`` matrix: with one time for the
whole batch the quadratic forms are matrix products, ``O(batch K D)``; with one time per sample they
are ``(batch, K, D)`` broadcasts, processed in chunks. Full covariances are diagonalized once at
construction, ``Sigma_k = U_k diag(l_k) U_k^T``, so that ``C_k^{-1} = U_k diag(1/(alpha^2 l_k +
sigma^2)) U_k^T`` at any time (``O(batch K D^2)`` per call, no solve, no factorization per call).

All arithmetic is float64 whatever the state's dtype; outputs come back in the state's dtype and
device, log-densities in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from .._utils import Time, as_time, check_int, check_state
from ..noise.rng import as_seeds, derive_keys, mix64, normal_from_keys, uniform_from_keys
from ..processes.base import DiffusionProcess

__all__ = ["GaussianMixture", "MixtureModel", "PREDICTIONS"]

PREDICTIONS: tuple[str, ...] = ("eps", "x0", "v", "score", "velocity")
"""The quantities :meth:`GaussianMixture.predict` knows (the model parameterizations of sdeflow)."""

# Streams of the per-sample counter RNG. They are far from the small stream numbers (0, 1, ...) that
# ``sdeflow.noise.randn(..., stream=)`` uses for sampling noise, so data drawn with seed s is
# independent of the prior noise or Brownian increments drawn with the same seed s.
_STREAM_COMPONENT = 0x6D69_7800_0001  # the uniform that picks the component
_STREAM_DATA = 0x6D69_7800_0002  # the standard normals of the component's Gaussian
_STREAM_MARGINAL = 0x6D69_7800_0003  # the forward noise eps of noised_sample

# Per-sample times need (batch, K, D) intermediates: at most this many elements per chunk.
_CHUNK_ELEMENTS = 1 << 17  # ~1 MiB of float64: measured fastest on CPU (cache-resident chunks)

_LOG_2PI = math.log(2.0 * math.pi)

ArrayLike = Any  # numpy array, torch tensor, nested sequence of numbers


# ---------------------------------------------------------------------------------------- helpers
def _as_float64(value: ArrayLike, name: str) -> torch.Tensor:
    """``value`` as a float64 CPU tensor (a copy), or a TypeError naming the argument."""
    if isinstance(value, torch.Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{name} must hold real numbers; got a tensor of dtype {value.dtype}")
        return value.detach().to(device="cpu", dtype=torch.float64).clone()
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a numeric array (numpy array, tensor or sequence); got {type(value).__name__}")
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"{name} must be a numeric array (numpy array, tensor or sequence of numbers); got {type(value).__name__}"
        ) from err
    return torch.from_numpy(array.copy())


def _check_finite(value: torch.Tensor, name: str) -> None:
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name} must be finite; it contains NaN or infinite entries")


def _col(coef: torch.Tensor) -> torch.Tensor:
    """A coefficient of shape ``()`` or ``(batch,)`` against a flat ``(batch, D)`` array."""
    return coef if coef.ndim == 0 else coef[:, None]


def _cube(coef: torch.Tensor) -> torch.Tensor:
    """A coefficient of shape ``()`` or ``(batch,)`` against a ``(batch, K, D)`` array."""
    return coef if coef.ndim == 0 else coef[:, None, None]


def _times(big: torch.Tensor, small: torch.Tensor) -> torch.Tensor:
    """``big * small``, in place unless autograd needs ``big`` (the predictions stay differentiable)."""
    if big.requires_grad:
        return big * small
    return big.mul_(small)


def _responsibilities(log_joint: torch.Tensor) -> torch.Tensor:
    """Posterior component probabilities ``r_k = softmax_k(log_joint)``, ``(batch, K)``.

    Written out (max-shifted, as in logsumexp) because torch.softmax is several times slower on a
    short last axis.
    """
    e = torch.exp(log_joint - log_joint.amax(dim=-1, keepdim=True))
    return e / e.sum(dim=-1, keepdim=True)


def _check_process(process: object) -> DiffusionProcess:
    if not isinstance(process, DiffusionProcess):
        raise TypeError(
            f"process must be a sdeflow.processes.DiffusionProcess (e.g. VP(), Linear()); got {type(process).__name__}"
        )
    return process


def _check_kind(kind: object, name: str = "kind") -> str:
    if not isinstance(kind, str) or kind not in PREDICTIONS:
        raise ValueError(f"{name} must be one of {list(PREDICTIONS)}; got {kind!r}")
    return kind


def _sigma_d_sigma(process: DiffusionProcess, t: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``sigma * d_sigma = (1/2) d(sigma^2)/dt``, finite also where ``sigma = 0``.

    At ``t = 0`` many processes have ``sigma = 0`` and ``d_sigma = inf`` (``sigma ~ sqrt(t)``) while
    their product is finite. There ``f sigma^2 = 0``, so the product is ``g^2 / 2``; a process whose
    ``g2`` is not finite there either (its default formula is ``0 * inf``) gets the one-sided
    difference quotient ``(sigma(t + h)^2 - sigma(t)^2) / (2 h)`` with ``h = 1e-8 T`` (relative
    error ``O(h)``, far below float32 resolution).
    """
    out = process.d_sigma(t) * sigma
    bad = (sigma == 0) & ~torch.isfinite(out)
    if bool(bad.any()):
        limit = 0.5 * process.g2(t)
        still = ~torch.isfinite(limit)
        if bool(still.any()):
            h = 1e-8 * float(process.T)
            quotient = (process.sigma(t + h) ** 2 - sigma**2) / (2.0 * h)
            limit = torch.where(still, quotient, limit)
        out = torch.where(bad, limit, out)
    return out


@dataclass(frozen=True)
class _Params:
    """The mixture's float64 parameters on one device."""

    log_w: torch.Tensor  # (K,)
    cdf: torch.Tensor  # (K,) cumulative weights, for inverse-CDF component choice
    mu: torch.Tensor  # (K, D)
    var: torch.Tensor | None  # (K, D) diagonal variances (None for full covariances)
    eig: torch.Tensor | None  # (K, D) eigenvalues l_k of Sigma_k (full only)
    U: torch.Tensor | None  # (K, D, D) eigenvectors, Sigma_k = U_k diag(l_k) U_k^T (full only)
    nu: torch.Tensor | None  # (K, D) U_k^T mu_k (full only)
    U_in: torch.Tensor | None  # (D, K D): x @ U_in = (U_k^T x)_k side by side
    U_out: torch.Tensor | None  # (K D, D): g @ U_out = sum_k U_k g_k


class MixtureModel:
    """A mixture used as a model with a known answer: ``model(x, t) -> prediction``.

    Calls :meth:`GaussianMixture.predict` with the stored ``prediction`` and ``process``; ``x`` has
    shape ``(batch, *event_shape)``, ``t`` is a ``(batch,)`` tensor (or a float / 0-d tensor), and
    the result has ``x``'s shape, dtype and device.
    """

    def __init__(self, target: "GaussianMixture", process: DiffusionProcess, prediction: str) -> None:
        self.target = target
        self.process = _check_process(process)
        self.prediction = _check_kind(prediction, "prediction")

    def __call__(self, x: torch.Tensor, t: Time) -> torch.Tensor:
        return self.target.predict(self.prediction, x, t, self.process)

    def __repr__(self) -> str:
        return f"MixtureModel({self.target!r}, process={self.process!r}, prediction={self.prediction!r})"


# ---------------------------------------------------------------------------------------- the target
class GaussianMixture:
    """A Gaussian mixture ``sum_k w_k N(mu_k, Sigma_k)`` with exact noised scores and denoisers.

    Args:
        weights: ``(K,)`` positive, finite mixture weights (normalized internally).
        means: ``(K, D)`` component means.
        stds: ``(K, D)`` per-dimension standard deviations (diagonal ``Sigma_k``) or ``(K,)``
            isotropic ones (``Sigma_k = std_k^2 I``). Exactly one of ``stds`` and ``covs``.
        covs: ``(K, D, D)`` symmetric positive definite covariances.
        event_shape: the shape of one state, ``prod(event_shape) = D`` (default ``(D,)``); states are
            ``(batch, *event_shape)`` and are flattened internally, so a mixture can live on images.

    Arrays may be numpy arrays, tensors or nested sequences; everything is stored in float64.

    Every method that takes a time takes ``t`` as a float, a 0-d tensor or a ``(batch,)`` tensor
    (one time per sample), and a :class:`~sdeflow.processes.DiffusionProcess` giving ``alpha(t)``
    and ``sigma(t)``.
    """

    def __init__(
        self,
        weights: ArrayLike,
        means: ArrayLike,
        *,
        stds: ArrayLike | None = None,
        covs: ArrayLike | None = None,
        event_shape: Sequence[int] | None = None,
    ) -> None:
        w = _as_float64(weights, "weights")
        if w.ndim != 1 or w.shape[0] < 1:
            raise ValueError(f"weights must have shape (K,) with K >= 1; got shape {tuple(w.shape)}")
        if not bool(torch.isfinite(w).all()) or not bool((w > 0).all()):
            raise ValueError(
                f"weights must be finite and > 0 (they are normalized internally); got {w.tolist()[:8]}"
                + (" ..." if w.shape[0] > 8 else "")
            )
        K = int(w.shape[0])
        mu = _as_float64(means, "means")
        if mu.ndim != 2 or mu.shape[0] != K or mu.shape[1] < 1:
            raise ValueError(
                f"means must have shape (K, D) = ({K}, D) with D >= 1 to match weights of shape ({K},); "
                f"got shape {tuple(mu.shape)}"
            )
        _check_finite(mu, "means")
        D = int(mu.shape[1])
        if (stds is None) == (covs is None):
            raise ValueError(
                "pass exactly one of stds= ((K, D) per-dimension or (K,) isotropic standard deviations) "
                "and covs= ((K, D, D) covariance matrices)"
            )

        self._weights = w / w.sum()
        self._means = mu
        self._var: torch.Tensor | None = None
        self._eig: torch.Tensor | None = None
        self._U: torch.Tensor | None = None
        if stds is not None:
            sd = _as_float64(stds, "stds")
            if tuple(sd.shape) == (K,):
                self._kind = "isotropic"
                sd = sd[:, None].expand(K, D)
            elif tuple(sd.shape) == (K, D):
                self._kind = "diagonal"
            else:
                raise ValueError(
                    f"stds must have shape (K, D) = ({K}, {D}) or (K,) = ({K},) to match means of shape "
                    f"({K}, {D}); got shape {tuple(sd.shape)}"
                )
            if not bool(torch.isfinite(sd).all()) or not bool((sd > 0).all()):
                raise ValueError("stds must be finite and > 0")
            self._var = (sd * sd).contiguous()
        else:
            cov = _as_float64(covs, "covs")
            if tuple(cov.shape) != (K, D, D):
                raise ValueError(
                    f"covs must have shape (K, D, D) = ({K}, {D}, {D}) to match means of shape ({K}, {D}); "
                    f"got shape {tuple(cov.shape)}"
                )
            _check_finite(cov, "covs")
            asym = float((cov - cov.mT).abs().amax())
            scale = float(cov.abs().amax())
            if asym > 1e-10 * scale:
                raise ValueError(f"covs must be symmetric; got max |Sigma_k - Sigma_k^T| = {asym:.3g}")
            cov = 0.5 * (cov + cov.mT)
            eig, U = torch.linalg.eigh(cov)
            lmin, lmax = eig.amin(dim=-1), eig.amax(dim=-1)
            singular = lmin <= 1e-12 * lmax
            if bool(singular.any()):
                k = int(torch.nonzero(singular)[0, 0])
                raise ValueError(
                    f"covs must be positive definite; covs[{k}] has eigenvalues in "
                    f"[{float(lmin[k]):.3g}, {float(lmax[k]):.3g}]"
                )
            self._kind = "full"
            self._eig, self._U = eig.contiguous(), U.contiguous()

        if event_shape is None:
            self._event_shape: tuple[int, ...] = (D,)
        else:
            try:
                shape = tuple(int(s) for s in event_shape)
            except (TypeError, ValueError) as err:
                raise TypeError(f"event_shape must be a sequence of ints; got {event_shape!r}") from err
            if any(s < 1 for s in shape) or math.prod(shape) != D:
                raise ValueError(
                    f"event_shape must be positive ints whose product is D = {D} (the width of means); "
                    f"got {shape} (product {math.prod(shape)})"
                )
            self._event_shape = shape
        self._cache: dict[torch.device, _Params] = {}

    # ------------------------------------------------------------------ description
    @property
    def dim(self) -> int:
        """``D``, the number of entries of one state."""
        return int(self._means.shape[1])

    @property
    def n_components(self) -> int:
        """``K``, the number of components."""
        return int(self._means.shape[0])

    @property
    def event_shape(self) -> tuple[int, ...]:
        """The shape of one state (states are ``(batch, *event_shape)``)."""
        return self._event_shape

    @property
    def covariance_type(self) -> str:
        """``"isotropic"``, ``"diagonal"`` or ``"full"``."""
        return self._kind

    @property
    def weights(self) -> torch.Tensor:
        """``(K,)`` normalized weights, float64."""
        return self._weights.clone()

    @property
    def means(self) -> torch.Tensor:
        """``(K, D)`` component means, float64."""
        return self._means.clone()

    @property
    def covs(self) -> torch.Tensor:
        """``(K, D, D)`` component covariances, float64 (formed on request)."""
        if self._var is not None:
            return torch.diag_embed(self._var)
        return (self._U * self._eig[:, None, :]) @ self._U.mT

    @property
    def mean(self) -> torch.Tensor:
        """``(D,)`` mean of the mixture, ``sum_k w_k mu_k``."""
        return self._weights @ self._means

    @property
    def covariance(self) -> torch.Tensor:
        """``(D, D)`` covariance of the mixture, ``sum_k w_k (Sigma_k + mu_k mu_k^T) - m m^T``."""
        m = self.mean
        centred = self._means - m
        between = (centred.T * self._weights) @ centred
        if self._var is not None:
            return between + torch.diag(self._weights @ self._var)
        return between + torch.einsum("k,kij->ij", self._weights, self.covs)

    def posterior(self, operator: Any, y: torch.Tensor) -> "GaussianMixture":
        """The exact posterior ``p(x | y)`` of this mixture prior under ``y = A x + noise_std * n``, ``n ~ N(0, I)``.

        Conjugacy component by component (Bishop 2006, eqs. 2.113-2.117, in Woodbury form): with
        ``S_k = A Sigma_k A^T + s^2 I`` (``s = operator.noise_std``) and the gain ``G_k = Sigma_k A^T S_k^{-1}``,

            mu_k'    = mu_k + G_k (y - A mu_k)
            Sigma_k' = Sigma_k - G_k A Sigma_k
            w_k'     proportional to  w_k N(y; A mu_k, S_k)      (the evidence of component k)

        and ``p(x | y) = sum_k w_k' N(x; mu_k', Sigma_k')``, again a :class:`GaussianMixture` (full
        covariances, this mixture's event shape), so sampling, ``log_prob``, ``mean``, ``covariance``
        and the exact noised scores all apply to it. Weights are normalized in log space; a weight that
        underflows float64 is kept at the smallest normal float64 (``2.2e-308``) instead of 0.

        Args:
            operator: a linear :mod:`sdeflow.inverse.operators` operator (its dense ``matrix()`` is
                formed, ``(M, D)``) with ``noise_std > 0`` (a noiseless posterior is singular).
            y: one measurement, shape ``(1, *measurement_shape)``.

        Returns:
            The posterior as a ``GaussianMixture``.
        """
        from ..inverse.operators import Operator

        if not isinstance(operator, Operator):
            raise TypeError(f"operator must be a sdeflow.inverse.operators.Operator; got {type(operator).__name__}")
        if not operator.linear:
            raise TypeError(f"operator must be linear for a closed-form posterior; got {type(operator).__name__}")
        if not operator.noise_std > 0:
            raise ValueError(
                "operator.noise_std must be > 0: the exact posterior of a noiseless measurement is a singular Gaussian "
                "mixture (no density); give the operator a small noise_std"
            )
        op = operator.bind(self._event_shape)
        y = op.check_y(y, "y")
        if y.shape[0] != 1:
            raise ValueError(f"y must hold one measurement, shape (1, *measurement_shape); got shape {tuple(y.shape)}")
        yv = y.detach().reshape(-1).to(device="cpu", dtype=torch.float64)
        A = op.matrix(torch.float64)  # (M, D)
        M = A.shape[0]
        cov = self.covs  # (K, D, D)
        mu = self._means
        AS = A @ cov  # (K, M, D): A Sigma_k
        S = AS @ A.T + op.noise_std**2 * torch.eye(M, dtype=torch.float64)  # (K, M, M)
        L = torch.linalg.cholesky(S)
        resid = yv - mu @ A.T  # (K, M)
        z = torch.linalg.solve_triangular(L, resid[..., None], upper=False)[..., 0]  # L^{-1} r
        W = torch.linalg.solve_triangular(L, AS, upper=False)  # L^{-1} A Sigma_k, (K, M, D)
        post_mu = mu + (W.mT @ z[..., None])[..., 0]  # mu + Sigma A^T S^{-1} r
        post_cov = cov - W.mT @ W
        post_cov = 0.5 * (post_cov + post_cov.mT)
        logdet = 2.0 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
        log_ev = -0.5 * ((z * z).sum(-1) + logdet + M * _LOG_2PI)
        log_w = torch.log(self._weights) + log_ev
        w = torch.exp(log_w - torch.logsumexp(log_w, 0)).clamp_min(torch.finfo(torch.float64).tiny)
        return GaussianMixture(w, post_mu, covs=post_cov, event_shape=self._event_shape)

    def __repr__(self) -> str:
        shape = "" if self._event_shape == (self.dim,) else f", event_shape={self._event_shape}"
        return (
            f"GaussianMixture(n_components={self.n_components}, dim={self.dim}, "
            f"covariance_type={self._kind!r}{shape})"
        )

    # ------------------------------------------------------------------ internals
    def _params(self, device: torch.device) -> _Params:
        cached = self._cache.get(device)
        if cached is not None:
            return cached
        to = dict(device=device, dtype=torch.float64)
        w = self._weights.to(**to)
        full = self._U is not None
        K, D = self.n_components, self.dim
        params = _Params(
            log_w=torch.log(w),
            cdf=torch.cumsum(w, 0),
            mu=self._means.to(**to),
            var=None if full else self._var.to(**to),
            eig=self._eig.to(**to) if full else None,
            U=self._U.to(**to) if full else None,
            nu=torch.einsum("kde,kd->ke", self._U, self._means).to(**to) if full else None,
            U_in=self._U.permute(1, 0, 2).reshape(D, K * D).contiguous().to(**to) if full else None,
            U_out=self._U.permute(0, 2, 1).reshape(K * D, D).contiguous().to(**to) if full else None,
        )
        self._cache[device] = params
        return params

    @staticmethod
    def _compute_device(device: torch.device) -> torch.device:
        # MPS has no float64: compute on the CPU and move the result back.
        return torch.device("cpu") if device.type == "mps" else device

    def _flat(self, x: object, name: str = "x") -> torch.Tensor:
        """Check a state ``(batch, *event_shape)`` and return it as float64 ``(batch, D)``."""
        x = check_state(x, name)
        if tuple(x.shape[1:]) != self._event_shape:
            raise ValueError(
                f"{name} must have shape (batch, *event_shape) = (batch, {', '.join(map(str, self._event_shape))}); "
                f"got shape {tuple(x.shape)}"
            )
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} holds NaN or infinite values; the exact target is evaluated at finite points only")
        device = self._compute_device(x.device)
        return x.reshape(x.shape[0], self.dim).to(device=device, dtype=torch.float64)

    def _out(self, flat: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return flat.reshape(like.shape).to(device=like.device, dtype=like.dtype)

    @staticmethod
    def _time(t: Time, batch: int, device: torch.device, name: str = "t") -> torch.Tensor:
        """``t`` as float64 ``()`` or ``(batch,)``; a per-sample time with equal entries becomes ``()``."""
        if not isinstance(t, (int, float, torch.Tensor)) or isinstance(t, bool):
            raise TypeError(f"{name} must be a float, a 0-d tensor or a (batch,) tensor; got {type(t).__name__}")
        tt = as_time(t).to(device)
        if not bool(torch.isfinite(tt).all()):
            raise ValueError(f"{name} must be finite; got {t!r}")
        if tt.ndim == 1:
            if tt.shape[0] != batch:
                raise ValueError(
                    f"{name} must be a float, a 0-d tensor or a (batch,) = ({batch},) tensor; "
                    f"got shape {tuple(tt.shape)}"
                )
            # One time for the whole batch takes the fast path of matrix products.
            if batch > 0 and bool((tt == tt[0]).all()):
                tt = tt[0]
        elif tt.ndim != 0:
            raise ValueError(
                f"{name} must be a float, a 0-d tensor or a (batch,) = ({batch},) tensor; got shape {tuple(tt.shape)}"
            )
        return tt

    def _chunk_rows(self) -> int:
        """Rows per chunk of the (batch, K, D) path."""
        return max(1, _CHUNK_ELEMENTS // (self.n_components * self.dim))

    def _core(
        self, xf: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor, level: int
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """The log-joints ``log w_k + log N(x; alpha mu_k, C_k)`` ``(batch, K)``; with ``level >= 1``
        also ``m1 = sum_k r_k C_k^{-1} (x - alpha mu_k)`` and with ``level == 2`` also ``x0`` (both
        ``(batch, D)``; ``None`` when not asked).

        ``alpha``, ``sigma``: float64, ``()`` (one time) or ``(batch,)`` (per-sample times).
        """
        p = self._params(xf.device)
        if alpha.ndim == 0 and p.var is not None:
            return self._core_diag_shared(p, xf, alpha, sigma, level)
        step = self._chunk_rows()
        if xf.shape[0] <= step:
            return self._core_broadcast(p, xf, alpha, sigma, level)
        parts = []
        for start in range(0, xf.shape[0], step):
            sl = slice(start, start + step)
            a = alpha if alpha.ndim == 0 else alpha[sl]
            s = sigma if sigma.ndim == 0 else sigma[sl]
            parts.append(self._core_broadcast(p, xf[sl], a, s, level))
        return tuple(None if q[0] is None else torch.cat(q) for q in zip(*parts))  # type: ignore[return-value]

    def _core_diag_shared(self, p: _Params, xf, alpha, sigma, level):
        # One time, diagonal Sigma_k = diag(var_k): C_k = alpha^2 var_k + sigma^2 is (K, D) and every
        # sum over d is a matrix product; no (batch, K, D) array is formed.
        c = alpha * alpha * p.var + sigma * sigma  # (K, D)
        prec = 1.0 / c
        mu_prec = p.mu * prec
        # (x - a mu)^T C^{-1} (x - a mu) = x^2 . P - 2 a x . (mu P) + a^2 mu^2 . P
        quad = (xf * xf) @ prec.T - (2.0 * alpha) * (xf @ mu_prec.T) + (alpha * alpha) * (p.mu * mu_prec).sum(-1)
        log_joint = p.log_w - 0.5 * (quad + torch.log(c).sum(-1) + self.dim * _LOG_2PI)
        if level == 0:
            return log_joint, None, None
        r = _responsibilities(log_joint)
        m1 = xf * (r @ prec) - alpha * (r @ mu_prec)
        if level == 1:
            return log_joint, m1, None
        var_prec = p.var * prec
        x0 = r @ p.mu + alpha * (xf * (r @ var_prec) - alpha * (r @ (mu_prec * p.var)))
        return log_joint, m1, x0

    def _core_broadcast(self, p: _Params, xf, alpha, sigma, level):
        # Per-sample times (any covariance) or full covariances: (batch, K, D) arrays, in the
        # eigenbasis of each Sigma_k for full covariances (identity basis for diagonal ones).
        a3, s3 = _cube(alpha), _cube(sigma)
        batch, K, D = xf.shape[0], self.n_components, self.dim
        lam = p.var if p.U is None else p.eig  # (K, D) variances in the eigenbasis
        if p.U is None:
            z = torch.addcmul(xf[:, None, :], -a3, p.mu)  # x - a mu_k, (batch, K, D)
        else:
            z = torch.addcmul((xf @ p.U_in).reshape(batch, K, D), -a3, p.nu)  # U_k^T (x - a mu_k)
        c = torch.addcmul(s3 * s3, a3 * a3, lam)  # eigenvalues of C_k = a^2 Sigma_k + s^2 I
        wz = z / c  # C_k^{-1} (x - a mu_k), in the eigenbasis
        quad = torch.linalg.vecdot(z, wz)
        logdet = torch.log(c).sum(-1)
        log_joint = p.log_w - 0.5 * (quad + logdet + D * _LOG_2PI)
        if level == 0:
            return log_joint, None, None
        r = _responsibilities(log_joint)
        if p.U is None:
            # sum_k r_k (...)_k as one batched product (batch, 1, K) @ (batch, K, D).
            m1 = torch.bmm(r[:, None, :], wz).squeeze(1)
            if level == 1:
                return log_joint, m1, None
            x0 = r @ p.mu + _col(alpha) * torch.bmm(r[:, None, :], _times(wz, lam)).squeeze(1)
        else:
            g = r[:, :, None] * wz
            m1 = g.reshape(batch, K * D) @ p.U_out
            if level == 1:
                return log_joint, m1, None
            x0 = r @ p.mu + _col(alpha) * (_times(g, lam).reshape(batch, K * D) @ p.U_out)
        return log_joint, m1, x0

    # ------------------------------------------------------------------ densities
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact data log-density ``log p_0(x)``; ``x`` ``(batch, *event_shape)`` -> ``(batch,)`` float64."""
        xf = self._flat(x)
        one = torch.ones((), dtype=torch.float64, device=xf.device)
        log_joint, _, _ = self._core(xf, one, torch.zeros_like(one), level=0)
        return torch.logsumexp(log_joint, dim=-1).to(x.device)

    def marginal_log_prob(self, x: torch.Tensor, t: Time, process: DiffusionProcess) -> torch.Tensor:
        """Exact log-density of the noised marginal ``p_t = sum_k w_k N(alpha mu_k, alpha^2 Sigma_k + sigma^2 I)``.

        Args:
            x: ``(batch, *event_shape)``.
            t: float, 0-d or ``(batch,)`` tensor.
            process: the forward process.

        Returns:
            ``(batch,)`` float64. Differentiable in ``x`` (its gradient is :meth:`score`).
        """
        process = _check_process(process)
        xf = self._flat(x)
        tt = self._time(t, xf.shape[0], xf.device)
        log_joint, _, _ = self._core(xf, process.alpha(tt), process.sigma(tt), level=0)
        return torch.logsumexp(log_joint, dim=-1).to(x.device)

    # ------------------------------------------------------------------ predictions
    def predict(self, kind: str, x: torch.Tensor, t: Time, process: DiffusionProcess) -> torch.Tensor:
        """The exact ``kind`` prediction at ``(x, t)``: one of ``eps``, ``x0``, ``v``, ``score``, ``velocity``.

        Args:
            kind: the quantity (see the module docstring for the formulas).
            x: ``(batch, *event_shape)``, float32 or float64.
            t: float, 0-d or ``(batch,)`` tensor.
            process: the forward process giving ``alpha``, ``sigma`` and their derivatives.

        Returns:
            ``(batch, *event_shape)`` in ``x``'s dtype and device (computed in float64).
        """
        kind = _check_kind(kind)
        process = _check_process(process)
        xf = self._flat(x)
        tt = self._time(t, xf.shape[0], xf.device)
        alpha, sigma = process.alpha(tt), process.sigma(tt)
        _, m1, x0 = self._core(xf, alpha, sigma, level=1 if kind in ("score", "eps") else 2)
        a, s = _col(alpha), _col(sigma)
        if x0 is not None:
            # At sigma = 0 the posterior is a point mass: return x itself, not x up to round-off.
            x0 = torch.where(s == 0, xf, x0)
        if kind == "x0":
            out = x0
        elif kind == "score":
            out = -m1
        elif kind == "eps":
            out = s * m1
        elif kind == "v":
            out = a * (s * m1) - s * x0
        else:  # velocity = d_alpha x0 + d_sigma eps, with d_sigma eps = (sigma d_sigma) m1
            out = _col(process.d_alpha(tt)) * x0 + _col(_sigma_d_sigma(process, tt, sigma)) * m1
        return self._out(out, x)

    def score(self, x: torch.Tensor, t: Time, process: DiffusionProcess) -> torch.Tensor:
        """``grad_x log p_t(x) = -sum_k r_k (alpha^2 Sigma_k + sigma^2 I)^{-1} (x - alpha mu_k)``; shape of ``x``."""
        return self.predict("score", x, t, process)

    def x0(self, x: torch.Tensor, t: Time, process: DiffusionProcess) -> torch.Tensor:
        """Posterior mean ``E[x0 | x_t = x]`` (finite at ``alpha = 0`` and ``sigma = 0``); shape of ``x``."""
        return self.predict("x0", x, t, process)

    def eps(self, x: torch.Tensor, t: Time, process: DiffusionProcess) -> torch.Tensor:
        """``E[eps | x_t = x] = -sigma * score`` (0 at ``sigma = 0``); ``x = alpha x0 + sigma eps``."""
        return self.predict("eps", x, t, process)

    def v(self, x: torch.Tensor, t: Time, process: DiffusionProcess) -> torch.Tensor:
        """``v = alpha eps - sigma x0`` (Salimans & Ho 2022), for any process; shape of ``x``."""
        return self.predict("v", x, t, process)

    def velocity(self, x: torch.Tensor, t: Time, process: DiffusionProcess) -> torch.Tensor:
        """Probability-flow ODE velocity ``dx/dt = d_alpha x0 + d_sigma eps``; shape of ``x``."""
        return self.predict("velocity", x, t, process)

    def model(self, process: DiffusionProcess, prediction: str) -> MixtureModel:
        """This mixture as a model ``(x, t) -> predict(prediction, x, t, process)`` (exact answer).

        The callable has attributes ``prediction``, ``process`` and ``target``.
        """
        return MixtureModel(self, process, prediction)

    # ------------------------------------------------------------------ probability-flow ODE of one Gaussian
    def pf_ode_solution(self, x_t: torch.Tensor, t: Time, s: Time, process: DiffusionProcess) -> torch.Tensor:
        """Exact probability-flow ODE solution from time ``t`` to time ``s`` for a single Gaussian (K = 1).

        For data ``N(mu, Sigma)`` the probability-flow ODE is linear: in the eigenbasis of ``Sigma``
        (per dimension for a diagonal ``Sigma`` with variances ``v``)

            x_s = alpha_s mu + sqrt(alpha_s^2 v + sigma_s^2) / sqrt(alpha_t^2 v + sigma_t^2) (x_t - alpha_t mu).

        Args:
            x_t: ``(batch, *event_shape)``.
            t, s: float, 0-d or ``(batch,)`` tensors (``s`` may be before or after ``t``).
            process: the forward process.

        Returns:
            ``x_s``, shape, dtype and device of ``x_t`` (computed in float64).
        """
        if self.n_components != 1:
            raise ValueError(
                f"pf_ode_solution needs a single Gaussian (n_components == 1, e.g. targets.gaussian); "
                f"this mixture has n_components = {self.n_components}"
            )
        process = _check_process(process)
        xf = self._flat(x_t, "x_t")
        p = self._params(xf.device)
        tt = self._time(t, xf.shape[0], xf.device, "t")
        ss = self._time(s, xf.shape[0], xf.device, "s")
        a_t, s_t = _col(process.alpha(tt)), _col(process.sigma(tt))
        a_s, s_s = _col(process.alpha(ss)), _col(process.sigma(ss))
        mu = p.mu[0]
        lam = p.var[0] if p.U is None else p.eig[0]
        ratio = torch.sqrt((a_s * a_s * lam + s_s * s_s) / (a_t * a_t * lam + s_t * s_t))
        centred = xf - a_t * mu
        if p.U is None:
            out = a_s * mu + ratio * centred
        else:
            U = p.U[0]
            out = a_s * mu + ((centred @ U) * ratio) @ U.T
        return self._out(out, x_t)

    # ------------------------------------------------------------------ sampling
    def _draw(
        self, n: int, seeds: Any, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(x0 (n, D) float64, components (n,) int64, per-sample keys or None)``."""
        n = check_int(n, "n", minimum=0)
        if (seeds is None) == (generator is None):
            raise ValueError(
                "pass exactly one source of randomness: seeds=(int or one per sample) or "
                "generator=torch.Generator (sdeflow never uses the global random generator)"
            )
        D = self.dim
        if seeds is not None:
            # Sample i depends on seeds[i] only: its component uniform and its normals are counters of
            # its own key, in two independent streams.
            keys = mix64(as_seeds(seeds, n))
            u = uniform_from_keys(derive_keys(keys, _STREAM_COMPONENT), 1)[:, 0]
            z = normal_from_keys(derive_keys(keys, _STREAM_DATA), D, torch.float64)
        else:
            if not isinstance(generator, torch.Generator):
                raise TypeError(f"generator must be a torch.Generator; got {type(generator).__name__}")
            keys = None
            u = torch.rand(n, generator=generator, dtype=torch.float64, device=generator.device)
            z = torch.randn((n, D), generator=generator, dtype=torch.float64, device=generator.device)
        p = self._params(z.device)
        # Inverse CDF: the first component whose cumulative weight exceeds u.
        comp = torch.searchsorted(p.cdf, u, right=True).clamp_(max=self.n_components - 1)
        if p.U is None:
            x0 = p.mu[comp] + torch.sqrt(p.var[comp]) * z
        else:
            # Sigma_k^{1/2} z = U_k diag(sqrt(l_k)) z, component by component (no (n, D, D) gather).
            x0 = p.mu[comp].clone()
            for k in range(self.n_components):
                idx = torch.nonzero(comp == k).flatten()
                if idx.numel():
                    x0[idx] += (z[idx] * torch.sqrt(p.eig[k])) @ p.U[k].T
        return x0, comp, keys

    def sample(
        self,
        n: int,
        *,
        seeds: int | Sequence[int] | torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        return_components: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Exact samples of the mixture, shape ``(n, *event_shape)``.

        Args:
            n: number of samples.
            seeds: per-sample seeds (see :func:`sdeflow.noise.as_seeds`): sample ``i`` depends on
                ``seeds[i]`` alone (component by inverse CDF of a counter-RNG uniform, then normals
                from an independent stream), so it does not change with the batch it is drawn in.
            generator: a ``torch.Generator`` instead (one stream for the batch). Exactly one of the two.
            dtype, device: of the result (default float32; the generator's device or the CPU).
            return_components: also return the ``(n,)`` int64 component indices.
        """
        x0, comp, _ = self._draw(n, seeds, generator)
        out = x0.reshape((x0.shape[0],) + self._event_shape).to(device=device, dtype=dtype)
        if return_components:
            return out, comp.to(device=out.device)
        return out

    def noised_sample(
        self,
        n: int,
        t: Time,
        process: DiffusionProcess,
        *,
        seeds: int | Sequence[int] | torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        return_x0: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Exact samples of the marginal ``p_t``: ``x_t = alpha(t) x0 + sigma(t) eps``, ``x0`` from :meth:`sample`.

        With ``seeds``, ``x0`` is exactly ``sample(n, seeds=seeds)`` and ``eps`` comes from a third
        per-sample stream. ``t`` is a float, a 0-d or an ``(n,)`` tensor. Returns ``x_t`` of shape
        ``(n, *event_shape)``, or ``(x_t, x0)`` with ``return_x0=True``.
        """
        process = _check_process(process)
        x0, _, keys = self._draw(n, seeds, generator)
        if keys is not None:
            eps = normal_from_keys(derive_keys(keys, _STREAM_MARGINAL), self.dim, torch.float64)
        else:
            eps = torch.randn(x0.shape, generator=generator, dtype=torch.float64, device=generator.device)
        tt = self._time(t, x0.shape[0], x0.device)
        x_t = _col(process.alpha(tt)) * x0 + _col(process.sigma(tt)) * eps
        shape = (x0.shape[0],) + self._event_shape
        x_t = x_t.reshape(shape).to(device=device, dtype=dtype)
        if return_x0:
            return x_t, x0.reshape(shape).to(device=device, dtype=dtype)
        return x_t
