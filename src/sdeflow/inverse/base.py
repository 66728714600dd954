"""What every posterior method shares: the problem it sees, its step contract and the registry.

A posterior method is a small frozen dataclass of its hyperparameters (``eta``, ``scale``, ...) whose
class attributes declare what it needs (an SVD, a linear operator, model gradients) and how many
model calls a step costs. It never loops: :func:`sdeflow.inverse.posterior_sample` owns the one loop,
the budget of model calls, the progress bar and the trajectory. A method implements

* ``schedule(n)``: the index pairs ``(i, j)`` into the grid ``ts`` that the loop visits, by default
  ``(0, 1), (1, 2), ..., (n-1, n)`` (RePaint's resampling jumps go back up),
* ``init(problem, x)``: its state (particle weights, for instance),
* ``step(problem, t0, t1, x, state)``: ``(x_new, state)``, from time ``t0`` to ``t1`` (``t1 < t0``;
  ``t1 > t0`` is a forward re-noising step that makes no model call),
* ``finalize(problem, x, state)``: the samples (a particle method resamples here).

The shared formula of the ancestral (DDPM / DDIM) kernel on a Gaussian path ``x_t = a_t x0 + s_t eps``
is written once, in :func:`ancestral_std`: from ``t0`` to ``t1 < t0`` the DDPM posterior
``q(x_t1 | x_t0, x0)`` (Ho et al. 2020, eq. 7, for any ``(a, s)``) has standard deviation

    c_ddpm = (s_1 / s_0) * sqrt(s_0^2 - (a_0 / a_1)^2 s_1^2)

and DDIM (Song et al. 2021, eq. 12) writes its mean as ``a_1 x0 + sqrt(s_1^2 - c^2) eps`` with
``c = eta * c_ddpm`` (``eta = 0``: deterministic DDIM, ``eta = 1``: ancestral DDPM).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch

from ..models.denoiser import Denoiser
from ..processes.base import DiffusionProcess
from .operators import Operator

__all__ = ["PosteriorMethod", "InverseProblem", "register", "get_method", "available_methods", "ancestral_std"]


def ancestral_std(a0: float, s0: float, a1: float, s1: float) -> float:
    """``c_ddpm``, the std of ``q(x_t1 | x_t0, x0)`` for ``t1 < t0`` (0 where ``s1 = 0``)."""
    if s1 <= 0:
        return 0.0
    return (s1 / s0) * math.sqrt(max(s0 * s0 - (a0 / a1) ** 2 * s1 * s1, 0.0))


class InverseProblem:
    """Everything a method step sees: the counted model, the process, the operator and the measurements.

    Attributes:
        denoiser: the :class:`~sdeflow.models.Denoiser` (counts model calls).
        process: the forward process.
        operator: the operator, bound to the event shape.
        y: ``(B, *measurement_shape)``, each measurement repeated for the ``n`` members of its
            population (``B = m n``, member ``p`` of measurement ``j`` at row ``j n + p``).
        m, n: measurements and members per measurement.
        generator: the ``torch.Generator`` of every random draw.
    """

    def __init__(self, denoiser: Denoiser, process: DiffusionProcess, operator: Operator, y: torch.Tensor,
                 m: int, n: int, generator: torch.Generator) -> None:
        self.denoiser = denoiser
        self.process = process
        self.operator = operator
        self.y = y
        self.m, self.n = m, n
        self.generator = generator
        self._spectral: tuple[torch.Tensor, ...] | None = None

    @property
    def noise_std(self) -> float:
        return self.operator.noise_std

    def coefs(self, t: float) -> tuple[float, float]:
        """``(alpha(t), sigma(t))`` as Python floats (float64)."""
        return float(self.process.alpha(t)), float(self.process.sigma(t))

    def randn_like(self, x: torch.Tensor) -> torch.Tensor:
        return torch.randn(x.shape, generator=self.generator, dtype=x.dtype, device=self.generator.device).to(x.device)

    def rand(self, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.rand(shape, generator=self.generator, dtype=torch.float64, device=self.generator.device)

    # ------------------------------------------------------------------ spectral view (SVD operators)
    def spectral(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(s, obs, uy)``: singular values ``(D,)`` and the mask ``s > 0`` in ``like``'s real dtype,
        and ``Ut(y)`` ``(B, D)`` (``s_i Vt(x)_i + noise_std n_i`` on observed coordinates)."""
        if self._spectral is None:
            real = {torch.complex64: torch.float32, torch.complex128: torch.float64}.get(like.dtype, like.dtype)
            s = self.operator.singulars.to(device=like.device, dtype=real)
            self._spectral = (s, s > 0, self.operator.Ut(self.y.to(like.dtype)))
        return self._spectral  # type: ignore[return-value]

    def ybar(self, like: torch.Tensor) -> torch.Tensor:
        """``Ut(y) / s`` on observed coordinates (0 elsewhere): the measurement as a noisy view of ``Vt(x)``."""
        s, obs, uy = self.spectral(like)
        return torch.where(obs, uy / torch.where(obs, s, 1.0), torch.zeros_like(uy))

    def spectral_noise(self, x: torch.Tensor) -> torch.Tensor:
        """Standard normal spectral coefficients ``Vt(z)``, ``z ~ N(0, I)`` in state space (``(B, D)``)."""
        return self.operator.Vt(self.randn_like(x))

    # ------------------------------------------------------------------ model calls
    def denoise(self, x: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x0_hat, eps_hat)`` at ``(x, t)``; one model call."""
        d = self.denoiser(x, t)
        return d.x0, d.eps

    def denoise_vjp(self, x: torch.Tensor, t: float, loss) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(x0_hat, eps_hat, grad, value)``: one model call and the gradient of ``sum(loss(x0_hat))``
        with respect to ``x`` (a vector-Jacobian product through the model). The graph lives for this
        call only: nothing of the trajectory is kept. ``loss`` maps ``x0_hat`` to a ``(B,)`` tensor."""
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            d = self.denoiser(xg, t)
            value = loss(d.x0)
            (grad,) = torch.autograd.grad(value.sum(), xg)
        return d.x0.detach(), d.eps.detach(), grad.detach(), value.detach()

    def x0_variance(self, eps: torch.Tensor, a: float, s: float, groups: int | None = None) -> torch.Tensor:
        """An estimate of ``Var(x0 | x_t)`` per coordinate, ``(m,)`` float64, one per measurement's population
        (``(groups,)``, one per equal slice of the rows, if ``groups`` is given).

        Analytic-DPM's identity (Bao, Li, Zhu & Zhang, ICLR 2022, eq. 7 in its variance-per-coordinate
        form): ``E Var(x0 | x_t) = (s / a)^2 (1 - E ||eps_hat||^2 / D)``, with the expectation taken as the
        mean of ``eps_hat^2`` over the population and the coordinates; no extra model call, and exact for
        Gaussian data whose coordinates share one variance. ``a`` must be > 0.
        """
        e2 = eps.to(torch.float64).reshape(self.m if groups is None else groups, -1).pow(2).mean(dim=1)
        return (s / a) ** 2 * torch.clamp(1.0 - e2, min=0.0)

    def residual(self, x0: torch.Tensor) -> torch.Tensor:
        """``y - A(x0)``, ``(B, *measurement_shape)``."""
        return self.y.to(x0.dtype) - self.operator.forward(x0)


@dataclass(frozen=True)
class PosteriorMethod(ABC):
    """Base of posterior methods (see the module docstring for the contract)."""

    name: ClassVar[str] = "method"
    needs_svd: ClassVar[bool] = True
    needs_real_svd: ClassVar[bool] = False
    calls_per_step: ClassVar[int] = 1
    particle: ClassVar[bool] = False

    # --- budget
    def schedule(self, n: int) -> list[tuple[int, int]]:
        """Index pairs into the grid ``ts`` of ``n`` steps (default: straight down)."""
        return [(i, i + 1) for i in range(n)]

    def model_calls(self, n: int) -> int:
        """Model calls of a run on a grid of ``n`` steps."""
        return self.calls_per_step * sum(1 for i, j in self.schedule(n) if j > i)

    def steps_for_nfe(self, nfe: int) -> int:
        """The most steps whose run costs at most ``nfe`` model calls."""
        n = max(1, nfe // self.calls_per_step)
        while n > 1 and self.model_calls(n) > nfe:
            n -= 1
        if self.model_calls(n) > nfe:
            raise ValueError(f"nfe={nfe} is too small for method {self.name!r}: one step costs {self.model_calls(1)} model calls")
        return n

    # --- the run
    def check(self, problem: InverseProblem) -> None:
        """Refuse an operator the method cannot use (called once, before the loop)."""
        op = problem.operator
        if self.needs_svd and not op.has_svd:
            raise ValueError(
                f"method {self.name!r} needs an operator with an SVD (Denoising, Inpainting, SuperResolution, Blur, Linear); "
                f"got operator={type(op).__name__}: use 'dps' or 'daps' for a nonlinear measurement"
            )
        if self.needs_real_svd and op.complex_svd:
            raise ValueError(
                f"method {self.name!r} needs a real SVD; {type(op).__name__}'s is complex (Fourier): "
                "use Linear(operator.matrix()) for small images"
            )

    def init(self, problem: InverseProblem, x: torch.Tensor) -> Any:
        return None

    @abstractmethod
    def step(self, problem: InverseProblem, t0: float, t1: float, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """One step from ``t0`` to ``t1``; returns ``(x_new, state)``."""

    def finalize(self, problem: InverseProblem, x: torch.Tensor, state: Any, n_samples: int) -> torch.Tensor:
        """The ``(m * n_samples, *event_shape)`` samples from the final state (the state itself by default)."""
        return x

    def options(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_REGISTRY: dict[str, type[PosteriorMethod]] = {}


def register(cls: type[PosteriorMethod]) -> type[PosteriorMethod]:
    """Class decorator: make ``cls`` available as ``method=cls.name``."""
    _REGISTRY[cls.name] = cls
    return cls


def available_methods() -> list[str]:
    """Names accepted by ``posterior_sample(method=...)``."""
    from . import daps, ddnm, ddrm, dps, mcgdiff, pigdm, repaint, tds  # noqa: F401  (registration)

    return sorted(_REGISTRY)


def get_method(method: str | PosteriorMethod, **options: Any) -> PosteriorMethod:
    """A configured method from its name and options (or a method object, without options)."""
    if isinstance(method, PosteriorMethod):
        if options:
            raise ValueError(f"options {sorted(options)} can only be given with a method name; configure the object instead")
        return method
    names = available_methods()
    if not isinstance(method, str) or method.lower() not in _REGISTRY:
        raise ValueError(f"method must be one of {names}; got {method!r}")
    cls = _REGISTRY[method.lower()]
    valid = [f.name for f in fields(cls)]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for method {cls.name!r}; its options are {valid}")
    return cls(**options)


def check_range(value: Any, name: str, lo: float, hi: float | None = None, *, lo_open: bool = False, integer: bool = False) -> None:
    """A method option in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``), or a ValueError naming it."""
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    ok = ok and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > lo if lo_open else value >= lo) and (hi is None or value <= hi)
    if not ok:
        kind = "an integer" if integer else "a number"
        bound = f"{'>' if lo_open else '>='} {lo}" + ("" if hi is None else f" and <= {hi}")
        raise ValueError(f"{name} must be {kind} {bound}; got {value!r}")
