"""Financial models as sdeflow SDEs: GBM (one or several correlated assets), Heston, SABR, CIR, Ornstein-Uhlenbeck.

Every model is a frozen dataclass and an :class:`~sdeflow.sdes.SDE`, so any method of
:func:`sdeflow.sdeint` integrates it; its parameters may be floats or tensors (a ``(batch, 1)``
tensor gives one value per path: that is how the Monte Carlo pricer takes pathwise Greeks by
autograd). Each model also says how to start (:meth:`initial`), which asset prices a state holds
(:meth:`asset`), its risk-free rate ``r`` for discounting, and, where the transition law is known,
an exact step (:meth:`exact_step`, from the same Gaussian increment as the numerical methods).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from ..sdes.base import SDE

__all__ = ["GBM", "MultiGBM", "Heston", "SABR", "CIR", "OrnsteinUhlenbeck"]


def _param(value, x: torch.Tensor):
    """A float as it is; a tensor cast to the state's dtype (per-path ``(batch, 1)`` broadcasts)."""
    return value.to(x.dtype) if isinstance(value, torch.Tensor) else value


def _check(name: str, value, rule: str = "positive") -> None:
    """A model parameter: a finite number (``rule`` ``"real"``), ``> 0`` (``"positive"``) or ``>= 0``
    (``"nonnegative"``); a tensor (one value per path) is checked elementwise, once at construction."""
    if isinstance(value, torch.Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{name} must be a real number or a real tensor; got dtype {value.dtype}")
        v = value.detach()
        bad = ~torch.isfinite(v)
        if rule == "positive":
            bad |= v <= 0
        elif rule == "nonnegative":
            bad |= v < 0
        if bool(bad.any()):
            raise ValueError(f"{name} must be finite{_RULES[rule]} in every element; got {float(v[bad][0])!r}")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number; got {value!r}")
    if (rule == "positive" and value <= 0) or (rule == "nonnegative" and value < 0):
        raise ValueError(f"{name} must be {_RULES[rule][5:]}; got {value!r}")


_RULES = {"positive": " and > 0", "nonnegative": " and >= 0", "real": ""}


def _column(value, n: int, dtype: torch.dtype) -> torch.Tensor:
    """``(n, 1)`` filled with a parameter's value (a per-path ``(n, 1)`` tensor keeps its graph)."""
    one = torch.ones(n, 1, dtype=dtype)
    return one * _param(value, one)


class _Checked:
    """Validates the dataclass fields named in ``_positive`` (> 0), ``_nonnegative`` (>= 0) and
    ``_real`` (finite): a ValueError naming the field at construction."""

    _positive: ClassVar[tuple[str, ...]] = ()
    _nonnegative: ClassVar[tuple[str, ...]] = ()
    _real: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        for names, rule in ((self._positive, "positive"), (self._nonnegative, "nonnegative"), (self._real, "real")):
            for name in names:
                _check(name, getattr(self, name), rule)


@dataclass(frozen=True, eq=False)
class GBM(_Checked, SDE):
    r"""Geometric Brownian motion ``dS = (r - q) S dt + sigma S dW`` (state ``(batch, 1)``: the price).

    Exact solution ``S_t = S_0 exp((r - q - sigma^2/2) t + sigma W_t)``; diagonal noise, Ito.
    """

    s0: float = 100.0
    r: float = 0.05
    sigma: float = 0.2
    q: float = 0.0
    noise_type: ClassVar[str] = "diagonal"
    calculus: ClassVar[str] = "ito"
    _positive = ("s0", "sigma")
    _real = ("r", "q")

    def initial(self, n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        return _column(self.s0, n, dtype)

    def asset(self, y: torch.Tensor) -> torch.Tensor:
        return y[:, 0]

    def drift(self, t, x):
        return (_param(self.r, x) - _param(self.q, x)) * x

    def diffusion(self, t, x):
        return _param(self.sigma, x) * x

    def exact_step(self, t0: float, t1: float, x: torch.Tensor, dw: torch.Tensor) -> torch.Tensor:
        s = _param(self.sigma, x)
        return x * torch.exp((_param(self.r, x) - _param(self.q, x) - 0.5 * s * s) * (t1 - t0) + s * dw)


@dataclass(frozen=True, eq=False)
class MultiGBM(SDE):
    r"""Correlated GBMs ``dS_i = r S_i dt + sigma_i S_i sum_j L_ij dW_j``, ``L L^T = corr`` (Cholesky).

    State ``(batch, k)``; general noise ``G = diag(sigma S) L`` with commuting columns
    (``L^j G_l = sigma_i^2 S_i L_ij L_il`` is symmetric in ``j, l``); exact log-normal step.
    """

    s0: tuple[float, ...] = (100.0, 100.0)
    r: float = 0.05
    sigmas: tuple[float, ...] = (0.2, 0.3)
    corr: tuple[tuple[float, ...], ...] = ((1.0, 0.5), (0.5, 1.0))
    noise_type: ClassVar[str] = "general"
    calculus: ClassVar[str] = "ito"
    commutative: ClassVar[bool] = True

    def __post_init__(self) -> None:
        for name in ("s0", "sigmas"):
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) < 1:
                raise TypeError(f"{name} must be a tuple of numbers, one per asset; got {value!r}")
            for i, v in enumerate(value):
                _check(f"{name}[{i}]", v)
        _check("r", self.r, "real")
        k = len(self.s0)
        c = torch.as_tensor(self.corr, dtype=torch.float64)
        if not bool(torch.isfinite(c).all()):
            raise ValueError(f"corr must hold finite correlations; got {self.corr!r}")
        if len(self.sigmas) != k or c.shape != (k, k):
            raise ValueError(f"s0, sigmas and corr must describe the same k = {k} assets; got sigmas {self.sigmas}, corr {tuple(c.shape)}")
        if not torch.allclose(c, c.T) or not bool((c.diagonal() == 1).all()):
            raise ValueError("corr must be a symmetric correlation matrix with unit diagonal")
        try:
            chol = torch.linalg.cholesky(c)
        except RuntimeError as err:
            raise ValueError("corr must be positive definite") from err
        object.__setattr__(self, "_chol", chol)

    def brownian_shape(self, x):
        return (x.shape[0], len(self.s0))

    def initial(self, n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        return torch.tensor(self.s0, dtype=dtype).expand(n, -1).clone()

    def asset(self, y: torch.Tensor) -> torch.Tensor:
        return y

    def _sig(self, x):
        return torch.as_tensor(self.sigmas, dtype=x.dtype)

    def drift(self, t, x):
        return _param(self.r, x) * x

    def diffusion(self, t, x):
        return (self._sig(x) * x).unsqueeze(-1) * self._chol.to(x.dtype)

    def exact_step(self, t0, t1, x, dw):
        s = self._sig(x)
        return x * torch.exp((_param(self.r, x) - 0.5 * s * s) * (t1 - t0) + s * (dw @ self._chol.to(x.dtype).T))


@dataclass(frozen=True, eq=False)
class Heston(_Checked, SDE):
    r"""Heston (1993) in log-price with full truncation (Lord, Koekkoek & van Dijk 2010):

    ``d ln S = (r - v+/2) dt + sqrt(v+) (rho dW_1 + sqrt(1 - rho^2) dW_2)``,
    ``dv = kappa (theta - v+) dt + xi sqrt(v+) dW_1``, ``v+ = max(v, 0)``.

    Parameters: ``s0, kappa, theta, xi > 0``, ``v0 >= 0`` (a variance), ``rho`` in ``[-1, 1]``, ``r``
    finite; a ValueError names the parameter otherwise.

    Euler-Maruyama on this SDE is the full-truncation scheme: ``v`` may go negative between steps but
    only ``v+`` enters the coefficients, so the scheme stays valid (and converges) when the Feller
    condition ``2 kappa theta >= xi^2`` fails. State ``(batch, 2) = (ln S, v)``, general noise.
    """

    s0: float = 100.0
    v0: float = 0.0175
    r: float = 0.0
    kappa: float = 1.5768
    theta: float = 0.0398
    xi: float = 0.5751
    rho: float = -0.5711
    noise_type: ClassVar[str] = "general"
    calculus: ClassVar[str] = "ito"

    _positive = ("s0", "kappa", "theta", "xi")
    _nonnegative = ("v0",)
    _real = ("r", "rho")

    def __post_init__(self) -> None:
        super().__post_init__()
        rho = self.rho.detach() if isinstance(self.rho, torch.Tensor) else torch.tensor(float(self.rho))
        if bool((rho.abs() > 1).any()):
            raise ValueError(f"rho must lie in [-1, 1] (a correlation); got {self.rho!r}")

    @property
    def feller(self) -> bool:
        """Whether ``2 kappa theta >= xi^2`` (the variance then never reaches 0)."""
        return 2 * float(self.kappa) * float(self.theta) >= float(self.xi) ** 2

    def brownian_shape(self, x):
        return (x.shape[0], 2)

    def initial(self, n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        return torch.cat((torch.log(_column(self.s0, n, dtype)), _column(self.v0, n, dtype)), dim=1)

    def asset(self, y: torch.Tensor) -> torch.Tensor:
        return torch.exp(y[:, 0])

    def drift(self, t, x):
        v = x[:, 1:].clamp(min=0.0)
        return torch.cat((_param(self.r, x) - 0.5 * v, _param(self.kappa, x) * (_param(self.theta, x) - v)), dim=1)

    def diffusion(self, t, x):
        sv = x[:, 1].clamp(min=0.0).sqrt()
        rho = _param(self.rho, x)
        rho = rho[:, 0] if isinstance(rho, torch.Tensor) and rho.ndim == 2 else rho
        xi = _param(self.xi, x)
        xi = xi[:, 0] if isinstance(xi, torch.Tensor) and xi.ndim == 2 else xi
        row_s = torch.stack((rho * sv, (1 - rho * rho) ** 0.5 * sv), dim=-1)
        row_v = torch.stack((xi * sv, torch.zeros_like(sv)), dim=-1)
        return torch.stack((row_s, row_v), dim=1)

    def diffusion_times(self, t, x, dw):
        """``G dW`` without forming ``G`` (the Euler step's hot path): ``sqrt(v+) (rho dW1 + sqrt(1-rho^2) dW2, xi dW1)``."""
        sv = x[:, 1:].clamp(min=0.0).sqrt()
        rho, xi = _param(self.rho, x), _param(self.xi, x)
        d1, d2 = dw[:, :1], dw[:, 1:]
        return sv * torch.cat((rho * d1 + (1 - rho * rho) ** 0.5 * d2, xi * d1), dim=1)


@dataclass(frozen=True, eq=False)
class SABR(_Checked, SDE):
    r"""SABR (Hagan, Kumar, Lesniewski & Woodward 2002, "Managing smile risk", eq. 2.4) on a forward:

    ``dF = a+ F+^beta (rho dW_1 + sqrt(1 - rho^2) dW_2)``, ``da = nu a+ dW_1``, ``a(0) = alpha``,

    with ``F+ = max(F, 0)`` and ``a+ = max(a, 0)``: Euler-Maruyama on this SDE is a truncation scheme
    in which a forward that reaches 0 stays there (0 is absorbing for ``beta < 1``, the convention
    of Hagan's paper). The forward is a martingale, so ``r = 0`` (prices are forward prices:
    multiply by the discount factor of the payment date). State ``(batch, 2) = (F, a)``, general noise;
    :meth:`asset` is ``F``. Parameters: ``f0, alpha > 0``, ``beta`` in ``[0, 1]``, ``nu >= 0``,
    ``rho`` in ``[-1, 1]``. :func:`~sdeflow.finance.sabr_implied_vol` is Hagan's implied-volatility
    approximation for it.
    """

    f0: float = 100.0
    alpha: float = 2.0
    beta: float = 0.5
    nu: float = 0.4
    rho: float = -0.3
    noise_type: ClassVar[str] = "general"
    calculus: ClassVar[str] = "ito"
    r: ClassVar[float] = 0.0

    _positive = ("f0", "alpha")
    _nonnegative = ("nu", "beta")
    _real = ("rho",)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, low, high in (("beta", 0.0, 1.0), ("rho", -1.0, 1.0)):
            value = getattr(self, name)
            v = value.detach() if isinstance(value, torch.Tensor) else torch.tensor(float(value))
            if bool(((v < low) | (v > high)).any()):
                raise ValueError(f"{name} must lie in [{low:g}, {high:g}]; got {value!r}")

    def brownian_shape(self, x):
        return (x.shape[0], 2)

    def initial(self, n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        return torch.cat((_column(self.f0, n, dtype), _column(self.alpha, n, dtype)), dim=1)

    def asset(self, y: torch.Tensor) -> torch.Tensor:
        return y[:, 0]

    def drift(self, t, x):
        return torch.zeros_like(x)

    def _local(self, x):
        """``(a+ F+^beta, nu a+, rho)`` per path, each ``(batch, 1)`` (or a float for ``rho``)."""
        a = x[:, 1:].clamp(min=0.0)
        return a * x[:, :1].clamp(min=0.0) ** _param(self.beta, x), _param(self.nu, x) * a, _param(self.rho, x)

    def diffusion(self, t, x):
        vol_f, vol_a, rho = self._local(x)
        rho = rho * torch.ones_like(vol_f)
        row_f = torch.cat((rho * vol_f, (1 - rho * rho) ** 0.5 * vol_f), dim=1)
        row_a = torch.cat((vol_a, torch.zeros_like(vol_a)), dim=1)
        return torch.stack((row_f, row_a), dim=1)

    def diffusion_times(self, t, x, dw):
        """``G dW`` without forming ``G``: ``(a+ F+^beta (rho dW1 + sqrt(1-rho^2) dW2), nu a+ dW1)``."""
        vol_f, vol_a, rho = self._local(x)
        d1, d2 = dw[:, :1], dw[:, 1:]
        return torch.cat((vol_f * (rho * d1 + (1 - rho * rho) ** 0.5 * d2), vol_a * d1), dim=1)


@dataclass(frozen=True, eq=False)
class CIR(_Checked, SDE):
    r"""Cox-Ingersoll-Ross short rate ``dr = kappa (theta - r+) dt + sigma sqrt(r+) dW`` with its integral.

    State ``(batch, 2) = (r, int_0^t r ds)`` (``d int r = r dt``, no noise: diagonal noise with a zero
    second entry), so that ``exp(-int r)`` is the pathwise discount factor; full truncation ``r+``.
    Parameters: ``r0 >= 0``, ``kappa, theta, sigma > 0``.
    """

    r0: float = 0.03
    kappa: float = 0.5
    theta: float = 0.04
    sigma: float = 0.1
    noise_type: ClassVar[str] = "diagonal"
    calculus: ClassVar[str] = "ito"

    _positive = ("kappa", "theta", "sigma")
    _nonnegative = ("r0",)

    def initial(self, n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        return torch.cat((_column(self.r0, n, dtype), torch.zeros(n, 1, dtype=dtype)), dim=1)

    def asset(self, y: torch.Tensor) -> torch.Tensor:
        return y[:, 0]

    def drift(self, t, x):
        r = x[:, :1].clamp(min=0.0)
        return torch.cat((_param(self.kappa, x) * (_param(self.theta, x) - r), x[:, :1]), dim=1)

    def diffusion(self, t, x):
        r = x[:, :1].clamp(min=0.0)
        return torch.cat((_param(self.sigma, x) * r.sqrt(), torch.zeros_like(r)), dim=1)


@dataclass(frozen=True, eq=False)
class OrnsteinUhlenbeck(_Checked, SDE):
    r"""``dX = theta (mu - X) dt + sigma dW`` (additive noise); exact Gaussian step.

    ``X_{t+h} = mu + (X_t - mu) e^{-theta h} + sigma sqrt((1 - e^{-2 theta h}) / (2 theta h)) dW``.
    """

    x0: float = 1.0
    theta: float = 1.0
    mu: float = 0.0
    sigma: float = 0.3
    noise_type: ClassVar[str] = "additive"
    calculus: ClassVar[str] = "ito"

    _positive = ("theta", "sigma")
    _real = ("x0", "mu")

    def initial(self, n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        return _column(self.x0, n, dtype)

    def asset(self, y: torch.Tensor) -> torch.Tensor:
        return y[:, 0]

    def drift(self, t, x):
        return _param(self.theta, x) * (_param(self.mu, x) - x)

    def diffusion(self, t, x):
        return torch.ones_like(x) * _param(self.sigma, x)

    def exact_step(self, t0, t1, x, dw):
        h = t1 - t0
        th, mu = _param(self.theta, x), _param(self.mu, x)
        decay = math.exp(-th * h) if not isinstance(th, torch.Tensor) else torch.exp(-th * h)
        scale = (-torch.expm1(torch.as_tensor(-2 * th * h, dtype=x.dtype)) / (2 * th * h)).sqrt()
        return mu + (x - mu) * decay + _param(self.sigma, x) * scale * dw
