"""The Schrodinger bridge between two Gaussians in closed form (Bunne et al. 2023).

The reference is a Brownian motion of diffusion ``sigma`` on ``[0, 1]``, ``dX = sigma dW``. The
Schrodinger bridge from ``N(mean0, cov0)`` to ``N(mean1, cov1)`` is the path measure closest in
KL to the reference with these two marginals. Its static coupling ``pi(x0, x1)`` is the entropic
optimal transport plan for the cost ``|x0 - x1|^2 / 2`` at regularization ``sigma^2``, and, given
its endpoints, a path is the reference's Brownian bridge. For Gaussians (Bunne, Hsieh, Cuturi and
Krause 2023, "The Schrodinger bridge between Gaussian measures has a closed form", Theorem 3 and
Janati et al. 2020 for the static plan), with ``S0 = cov0^{1/2}``:

    D = (4 S0 cov1 S0 + sigma^4 I)^{1/2},      C = Cov(X0, X1) = (S0 D S0^{-1} - sigma^2 I) / 2,

the coupling is jointly Gaussian with cross-covariance ``C``, and the marginal at ``t`` is

    mean_t = (1 - t) mean0 + t mean1,
    cov_t  = (1 - t)^2 cov0 + t^2 cov1 + t (1 - t) (C + C^T + sigma^2 I).

In one dimension with unit variances and ``sigma = 1``: ``C = (sqrt(5) - 1) / 2 = 0.618...``, the
figure DSBM (Shi et al. 2023) uses for its Gaussian benchmark. The bridge is Markov: its forward
drift is the Markovian projection of the Brownian bridges' drift (Shi et al. 2023, eq. (8)),

    b(t, x) = (E[X1 | X_t = x] - x) / (1 - t),
    E[X1 | X_t = x] = mean1 + Cov(X1, X_t) cov_t^{-1} (x - mean_t),  Cov(X_t, X1) = (1 - t) C + t cov1,

and the backward drift (from ``t = 1`` towards ``0``) is ``(E[X0 | X_t = x] - x) / t``. The score
of the marginal is ``-cov_t^{-1} (x - mean_t)``. Everything is float64.

Sampling follows sdeflow's rule: explicit per-sample seeds or a ``torch.Generator``, never the
global generator; with seeds, sample ``i`` depends on ``seeds[i]`` alone.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from .._utils import check_int, check_positive
from ..noise.rng import as_seeds, derive_keys, mix64, normal_from_keys

__all__ = ["GaussianBridge", "MixtureInterpolant"]

_STREAM_COUPLING = 0x5342_0001  # the endpoints' normals
_STREAM_PATH = 0x5342_0002  # the Brownian bridges' normals


def _sym_sqrt(a: torch.Tensor) -> torch.Tensor:
    """The symmetric positive semi-definite square root of a symmetric matrix (eigendecomposition)."""
    w, v = torch.linalg.eigh((a + a.T) / 2)
    return (v * w.clamp_min(0.0).sqrt()) @ v.T


def _as_mean(value, name: str) -> torch.Tensor:
    try:
        out = torch.as_tensor(value, dtype=torch.float64).clone()
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{name} must be a vector of numbers (d,); got {type(value).__name__}") from err
    if out.ndim != 1 or out.shape[0] < 1:
        raise ValueError(f"{name} must be a vector of shape (d,) with d >= 1; got shape {tuple(out.shape)}")
    if not bool(torch.isfinite(out).all()):
        raise ValueError(f"{name} must be finite; got {out.tolist()}")
    return out


def _as_cov(value, name: str, d: int) -> torch.Tensor:
    try:
        out = torch.as_tensor(value, dtype=torch.float64).clone()
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{name} must be a (d, d) covariance matrix or a (d,) variance vector; got {type(value).__name__}") from err
    if out.ndim == 0:
        out = out * torch.eye(d, dtype=torch.float64)
    elif out.ndim == 1:
        out = torch.diag(out)
    if tuple(out.shape) != (d, d):
        raise ValueError(f"{name} must be ({d}, {d}) (or ({d},) variances) to match the means; got shape {tuple(out.shape)}")
    if not bool(torch.isfinite(out).all()):
        raise ValueError(f"{name} must be finite")
    if not torch.allclose(out, out.T, rtol=1e-10, atol=1e-12):
        raise ValueError(f"{name} must be symmetric")
    low = float(torch.linalg.eigvalsh(out).min())
    if low <= 0.0:
        raise ValueError(f"{name} must be positive definite; its smallest eigenvalue is {low:.3g}")
    return out


class GaussianBridge:
    """The Schrodinger bridge between ``N(mean0, cov0)`` and ``N(mean1, cov1)`` for ``dX = sigma dW`` on ``[0, 1]``.

    Args:
        mean0, mean1: means ``(d,)``.
        cov0, cov1: covariances ``(d, d)`` (a ``(d,)`` vector means a diagonal; a number, a multiple of ``I``).
        sigma: the reference's diffusion coefficient (> 0).

    See the module docstring for the formulas (Bunne et al. 2023).
    """

    def __init__(self, mean0, cov0, mean1, cov1, sigma: float = 1.0) -> None:
        self.mean0 = _as_mean(mean0, "mean0")
        self.mean1 = _as_mean(mean1, "mean1")
        if self.mean0.shape != self.mean1.shape:
            raise ValueError(
                f"mean0 and mean1 must have the same dimension (a bridge joins two distributions on one space); "
                f"got {tuple(self.mean0.shape)} and {tuple(self.mean1.shape)}"
            )
        self.dim = int(self.mean0.shape[0])
        self.cov0 = _as_cov(cov0, "cov0", self.dim)
        self.cov1 = _as_cov(cov1, "cov1", self.dim)
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)):
            raise TypeError(f"sigma must be a number (the reference's diffusion coefficient); got {type(sigma).__name__}")
        self.sigma = check_positive(float(sigma), "sigma")
        eye = torch.eye(self.dim, dtype=torch.float64)
        s0 = _sym_sqrt(self.cov0)
        s0_inv = torch.linalg.inv(s0)
        d_mat = _sym_sqrt(4.0 * s0 @ self.cov1 @ s0 + self.sigma**4 * eye)
        self._cross = 0.5 * (s0 @ d_mat @ s0_inv - self.sigma**2 * eye)
        joint = torch.cat((torch.cat((self.cov0, self._cross), 1), torch.cat((self._cross.T, self.cov1), 1)), 0)
        self._joint_chol = torch.linalg.cholesky((joint + joint.T) / 2)

    def __repr__(self) -> str:
        return f"GaussianBridge(dim={self.dim}, sigma={self.sigma})"

    def cross_covariance(self) -> torch.Tensor:
        """``C = Cov(X0, X1)`` of the static coupling, ``(d, d)`` float64 (rows: ``X0``)."""
        return self._cross.clone()

    def joint_covariance(self) -> torch.Tensor:
        """The covariance ``(2d, 2d)`` of ``(X0, X1)``."""
        return self._joint_chol @ self._joint_chol.T

    def _time(self, t, name: str = "t") -> float:
        if isinstance(t, torch.Tensor):
            if t.numel() != 1:
                raise ValueError(f"{name} must be one time in [0, 1]; got a tensor of shape {tuple(t.shape)}")
            t = float(t)
        if isinstance(t, bool) or not isinstance(t, (int, float)):
            raise TypeError(f"{name} must be a number in [0, 1]; got {type(t).__name__}")
        if not 0.0 <= float(t) <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1]; got {t}")
        return float(t)

    def marginal(self, t: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean ``(d,)`` and covariance ``(d, d)`` of ``X_t`` (float64)."""
        t = self._time(t)
        eye = torch.eye(self.dim, dtype=torch.float64)
        mean = (1.0 - t) * self.mean0 + t * self.mean1
        cov = (1.0 - t) ** 2 * self.cov0 + t**2 * self.cov1 + t * (1.0 - t) * (self._cross + self._cross.T + self.sigma**2 * eye)
        return mean, (cov + cov.T) / 2

    def _check_x(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != self.dim:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must be a (batch, {self.dim}) tensor; got {shape}")
        return x.to(torch.float64)

    def _conditional_end(self, t: float, x: torch.Tensor, end: int) -> torch.Tensor:
        """``E[X_end | X_t = x]`` ``(batch, d)`` for ``end`` 0 or 1."""
        mean_t, cov_t = self.marginal(t)
        if end == 1:
            cov_t_end = (1.0 - t) * self._cross + t * self.cov1  # Cov(X_t, X1)
            mean_end = self.mean1
        else:
            cov_t_end = (1.0 - t) * self.cov0 + t * self._cross.T  # Cov(X_t, X0)
            mean_end = self.mean0
        gain = torch.linalg.solve(cov_t, cov_t_end)  # cov_t^{-1} Cov(X_t, X_end)
        return mean_end + (x - mean_t) @ gain

    def drift(self, t: float, x: torch.Tensor) -> torch.Tensor:
        """The bridge's forward drift ``(E[X1 | X_t = x] - x) / (1 - t)`` for ``t`` in ``[0, 1)``; ``x (batch, d)``."""
        t = self._time(t)
        if t >= 1.0:
            raise ValueError("the forward drift is defined for t < 1 (it is singular at the end point)")
        x = self._check_x(x)
        return (self._conditional_end(t, x, 1) - x) / (1.0 - t)

    def backward_drift(self, t: float, x: torch.Tensor) -> torch.Tensor:
        """The drift of the time-reversed bridge, ``(E[X0 | X_t = x] - x) / t`` for ``t`` in ``(0, 1]``."""
        t = self._time(t)
        if t <= 0.0:
            raise ValueError("the backward drift is defined for t > 0 (it is singular at the start point)")
        x = self._check_x(x)
        return (self._conditional_end(t, x, 0) - x) / t

    def score(self, t: float, x: torch.Tensor) -> torch.Tensor:
        """``grad log p_t(x) = -cov_t^{-1} (x - mean_t)``, ``x (batch, d)`` (``t`` in ``[0, 1]``)."""
        mean_t, cov_t = self.marginal(self._time(t))
        x = self._check_x(x)
        return -torch.linalg.solve(cov_t, (x - mean_t).T).T

    def log_prob(self, t: float, x: torch.Tensor) -> torch.Tensor:
        """``log p_t(x)`` ``(batch,)``."""
        mean_t, cov_t = self.marginal(self._time(t))
        x = self._check_x(x)
        return torch.distributions.MultivariateNormal(mean_t, covariance_matrix=cov_t).log_prob(x)

    def _normals(self, n: int, width: int, stream: int, seeds, generator) -> torch.Tensor:
        if (seeds is None) == (generator is None):
            raise ValueError(
                "pass exactly one source of randomness: seeds=(int or one per sample) or "
                "generator=torch.Generator (sdeflow never uses the global random generator)"
            )
        if seeds is not None:
            keys = derive_keys(mix64(as_seeds(seeds, n)), stream)
            return normal_from_keys(keys, width, torch.float64)
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator; got {type(generator).__name__}")
        return torch.randn((n, width), generator=generator, dtype=torch.float64, device=generator.device).cpu()

    def sample(
        self,
        n: int,
        *,
        seeds: int | Sequence[int] | torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        ts: Sequence[float] | torch.Tensor | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> tuple[torch.Tensor, torch.Tensor] | torch.Tensor:
        """Exact samples of the coupling, or of whole paths.

        Args:
            n: number of samples.
            seeds: per-sample seeds (sample ``i`` depends on ``seeds[i]`` alone), or ``generator``.
            ts: optional increasing times in ``[0, 1]`` of length ``m``: then the paths at these
                times are returned, ``(n, m, d)``, drawn as Brownian bridges between the endpoints
                (sequentially: from ``X_s`` at ``s`` to ``X_t``, mean ``X_s + (t - s)/(1 - s) (X1 - X_s)``,
                variance ``sigma^2 (t - s)(1 - t)/(1 - s)``).
            dtype: of the result (computed in float64).

        Returns:
            ``(x0, x1)``, each ``(n, d)``, without ``ts``; the paths ``(n, m, d)`` with it.
        """
        n = check_int(n, "n")
        d = self.dim
        z = self._normals(n, 2 * d, _STREAM_COUPLING, seeds, generator)
        ends = torch.cat((self.mean0, self.mean1)) + z @ self._joint_chol.T
        x0, x1 = ends[:, :d], ends[:, d:]
        if ts is None:
            return x0.to(dtype), x1.to(dtype)
        grid = torch.as_tensor(ts, dtype=torch.float64).reshape(-1)
        if grid.numel() < 1 or bool((grid < 0).any()) or bool((grid > 1).any()) or bool((grid[1:] <= grid[:-1]).any()):
            raise ValueError(f"ts must be strictly increasing times in [0, 1]; got {grid.tolist()}")
        w = self._normals(n, grid.numel() * d, _STREAM_PATH, seeds, generator).reshape(n, grid.numel(), d)
        out = torch.empty((n, grid.numel(), d), dtype=torch.float64)
        s, x_s = 0.0, x0
        for k, t in enumerate(grid.tolist()):
            if t == 0.0:
                x_t = x0
            elif t == 1.0:
                x_t = x1
            else:
                frac = (t - s) / (1.0 - s)
                std = self.sigma * ((t - s) * (1.0 - t) / (1.0 - s)) ** 0.5
                x_t = x_s + frac * (x1 - x_s) + std * w[:, k]
            out[:, k] = x_t
            s, x_s = t, x_t
        return out.to(dtype)


class MixtureInterpolant:
    """Exact fields of a stochastic interpolant between two independent Gaussian mixtures.

    ``x_t = a(t) x0 + b(t) x1 + gamma(t) z`` with ``x0 ~ mixture0`` (``t = 0``), ``x1 ~ mixture1``
    (``t = 1``) and ``z ~ N(0, I)`` independent (Albergo, Boffi and Vanden-Eijnden 2023, "Stochastic
    interpolants", eq. (2.1)); ``a, b, gamma`` come from
    :class:`~sdeflow.processes.interpolant.InterpolantSchedule` (linear, trigonometric or encoder-decoder
    interpolant; ``gamma = gamma_scale * shape(t)`` with the shape ``sqrt(t (1 - t))``, ``t (1 - t)`` or
    ``sin^2(pi t)``). Noise-to-data is the case ``mixture1 = N(0, I)`` (one component).

    The marginal is a mixture over component pairs ``(i, j)`` with weight ``w_i v_j``, mean
    ``mu_ij = a m_i + b n_j`` and covariance ``C_ij = a^2 S_i + b^2 R_j + gamma^2 I``. Within a pair all
    of ``(x0, x1, z, x_t)`` is Gaussian, so the velocity ``b(t, x) = E[a' x0 + b' x1 + gamma' z | x_t = x]``
    (their eq. (2.10)) is

        v(t, x) = sum_ij r_ij(x) [ mu_ij' + (a a' S_i + b b' R_j + gamma gamma' I) C_ij^{-1} (x - mu_ij) ]

    with ``r_ij`` the posterior responsibilities, and the score is ``sum_ij r_ij(x) (-C_ij^{-1} (x - mu_ij))``;
    the denoiser ``E[z | x_t = x]`` is ``-gamma * score`` (their eq. (2.13)). The velocity transports the
    marginals (continuity equation), which the tests check by autograd; ``gamma gamma'`` stays finite at the
    ends, so the velocity is defined on the closed ``[0, 1]`` wherever ``C_ij`` is invertible.

    Args:
        mixture0, mixture1: :class:`~sdeflow.targets.GaussianMixture` objects of one dimension.
        interpolant: ``"linear"``, ``"trigonometric"`` or ``"encoder_decoder"``.
        gamma_scale: the latent noise's scale ``c`` (``0``: a deterministic interpolant).
        gamma: the shape of ``gamma`` (``"sqrt"``, ``"quadratic"``, ``"sin2"``; default ``"sin2"`` for the
            encoder-decoder, ``"sqrt"`` otherwise).
    """

    def __init__(self, mixture0, mixture1, interpolant: str = "linear", gamma_scale: float = 0.0, gamma: str | None = None) -> None:
        from ..processes.interpolant import InterpolantSchedule

        for name, mix in (("mixture0", mixture0), ("mixture1", mixture1)):
            if not all(hasattr(mix, attr) for attr in ("weights", "means", "covs")):
                raise TypeError(f"{name} must be a sdeflow.targets.GaussianMixture; got {type(mix).__name__}")
        if mixture0.means.shape[1] != mixture1.means.shape[1]:
            raise ValueError(
                f"mixture0 and mixture1 must have one dimension; got {mixture0.means.shape[1]} and {mixture1.means.shape[1]}"
            )
        self.schedule = InterpolantSchedule(interpolant, gamma, gamma_scale)
        self.interpolant, self.gamma_scale, self.gamma = interpolant, self.schedule.gamma_scale, self.schedule.gamma
        self.mixture0, self.mixture1 = mixture0, mixture1
        self.dim = int(mixture0.means.shape[1])
        w0, w1 = mixture0.weights, mixture1.weights
        self._log_w = (w0[:, None] * w1[None, :]).reshape(-1).log()
        k0, k1 = w0.shape[0], w1.shape[0]
        self._m0 = mixture0.means.repeat_interleave(k1, 0)
        self._m1 = mixture1.means.repeat(k0, 1)
        self._s0 = mixture0.covs.repeat_interleave(k1, 0)
        self._s1 = mixture1.covs.repeat(k0, 1, 1)

    def __repr__(self) -> str:
        return f"MixtureInterpolant(dim={self.dim}, {self.schedule!r})"

    def coefficients(self, t: float) -> tuple[float, float, float, float, float, float]:
        """``(a, b, gamma, a', b', gamma')`` at ``t`` in ``[0, 1]`` as floats (``gamma'`` of ``sqrt`` is singular at the ends)."""
        c = self.schedule.coefficients(float(t))
        return tuple(float(v) for v in (c.a, c.b, c.gamma, c.d_a, c.d_b, c.d_gamma))

    def _pieces(self, t: torch.Tensor, x: torch.Tensor):
        """Per sample ``i`` (time ``t[i]``) and component pair ``k``: coefficients, ``C^{-1}(x - mu)`` and log joint."""
        c = self.schedule.coefficients(t)  # each (n,)
        a, b, g = c.a[:, None, None, None], c.b[:, None, None, None], c.gamma[:, None, None, None]
        eye = torch.eye(self.dim, dtype=torch.float64)
        mu = c.a[:, None, None] * self._m0[None] + c.b[:, None, None] * self._m1[None]  # (n, K, d)
        cov = a * a * self._s0[None] + b * b * self._s1[None] + g * g * eye  # (n, K, d, d)
        chol, info = torch.linalg.cholesky_ex(cov)
        if bool((info != 0).any()):
            raise ValueError("the marginal covariance is singular at some t (no noise and no spread there); use times inside (0, 1)")
        diff = x.to(torch.float64)[:, None, :] - mu  # (n, K, d)
        sol = torch.cholesky_solve(diff.unsqueeze(-1), chol).squeeze(-1)  # C^{-1}(x - mu)
        logdet = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        log_joint = self._log_w - 0.5 * ((diff * sol).sum(-1) + logdet + self.dim * math.log(2 * math.pi))
        return c, sol, log_joint

    def _check(self, t, x) -> torch.Tensor:
        """``t`` (a number or one time per row of ``x``) as a float64 ``(batch,)`` tensor in ``[0, 1]``."""
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must be a (batch, {self.dim}) tensor; got {getattr(x, 'shape', type(x).__name__)}")
        if isinstance(t, bool) or not isinstance(t, (int, float, torch.Tensor)):
            raise ValueError(f"t must be a number in [0, 1] or a (batch,) tensor of them; got {t!r}")
        tt = torch.as_tensor(t, dtype=torch.float64).reshape(-1)
        if tt.numel() == 1:
            tt = tt.expand(x.shape[0])
        if tt.shape != (x.shape[0],) or not bool(((tt >= 0) & (tt <= 1)).all()):
            raise ValueError(f"t must be a number in [0, 1] or a (batch,) = ({x.shape[0]},) tensor of them; got {t!r}")
        return tt

    def log_prob(self, t, x: torch.Tensor) -> torch.Tensor:
        """``log p_t(x)`` ``(batch,)``, float64 (differentiable in ``x``); ``t`` a number or ``(batch,)``."""
        return torch.logsumexp(self._pieces(self._check(t, x), x)[2], dim=1)

    def score(self, t, x: torch.Tensor) -> torch.Tensor:
        """``grad log p_t(x)`` ``(batch, d)``."""
        _, sol, log_joint = self._pieces(self._check(t, x), x)
        r = torch.softmax(log_joint, dim=1)
        return -(r[..., None] * sol).sum(1)

    def denoiser(self, t, x: torch.Tensor) -> torch.Tensor:
        """``E[z | x_t = x] = -gamma(t) score(t, x)`` ``(batch, d)`` (zero for a deterministic interpolant)."""
        tt = self._check(t, x)
        return -self.schedule.coefficients(tt).gamma[:, None] * self.score(tt, x)

    def velocity(self, t, x: torch.Tensor) -> torch.Tensor:
        """The probability-flow velocity ``E[dx_t/dt | x_t = x]`` ``(batch, d)``."""
        c, sol, log_joint = self._pieces(self._check(t, x), x)
        r = torch.softmax(log_joint, dim=1)
        eye = torch.eye(self.dim, dtype=torch.float64)
        col = lambda v: v[:, None, None, None]  # noqa: E731  (n,) -> (n, 1, 1, 1)
        gain = col(c.a * c.d_a) * self._s0[None] + col(c.b * c.d_b) * self._s1[None] + col(c.gamma_d_gamma) * eye  # C'/2
        mean_dot = c.d_a[:, None, None] * self._m0[None] + c.d_b[:, None, None] * self._m1[None]  # (n, K, d)
        per = mean_dot + torch.einsum("nkij,nkj->nki", gain, sol)
        return (r[..., None] * per).sum(1)

    def model(self, field: str = "velocity"):
        """The exact ``field`` (``"velocity"``, ``"score"`` or ``"denoiser"``) as a model ``(x, t) -> (batch, d)``.

        ``t`` is a number or ``(batch,)`` (one time per sample, evaluated in one batched pass); the
        result has ``x``'s dtype, so it runs in :func:`sdeflow.sample`, :func:`sdeflow.log_likelihood` and
        :func:`sdeflow.transport.interpolant_sample` like a trained network.
        """
        fields = {"velocity": self.velocity, "score": self.score, "denoiser": self.denoiser}
        if field not in fields:
            raise ValueError(f"field must be one of {list(fields)}; got {field!r}")
        fn = fields[field]

        def call(x: torch.Tensor, t) -> torch.Tensor:
            return fn(t, x).to(x.dtype)

        return call
