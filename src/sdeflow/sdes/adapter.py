"""Any SDE or ODE object as a :class:`~sdeflow.sdes.SDE`: torchsde-style objects and plain functions.

torchsde's convention (Li et al. 2020, the ``torchsde`` package): an object with methods
``f(t, y)`` and ``g(t, y)``, attributes ``noise_type`` (diagonal, scalar, additive, general) and
``sde_type`` (ito, stratonovich); ``t`` is a 0-d tensor and ``g`` returns

=========  ========================  ================  ====================================
noise      torchsde ``g(t, y)``      Brownian motion   as an sdeflow SDE
=========  ========================  ================  ====================================
diagonal   ``(batch, d)``            ``(batch, d)``    diagonal, as it is
scalar     ``(batch, d, 1)``         ``(batch, 1)``    scalar, ``g`` squeezed to ``(batch, d)``
additive   ``(batch, d, m)``         ``(batch, m)``    general layout with ``additive = True``
general    ``(batch, d, m)``         ``(batch, m)``    general
=========  ========================  ================  ====================================
"""

from __future__ import annotations

from typing import Callable

import torch

from .base import CALCULI, NOISE_TYPES, SDE

__all__ = ["TorchsdeSDE", "LogqpSDE", "ODEFunction", "as_sde", "torchsde_methods", "RENAMABLE"]


class _TensorTime:
    """Converts float times to 0-d tensors for user functions, caching the recent ones.

    A step evaluates the coefficients at a few stage times, the next step at the same or the next
    ones: a small cache makes the conversion (a few microseconds each) about once per time.
    """

    def __init__(self, like: torch.Tensor) -> None:
        self._dtype, self._device = like.dtype, like.device
        self._cache: dict[float, torch.Tensor] = {}
        self._pinned: dict[float, torch.Tensor] = {}

    def pin(self, times: list[float]) -> None:
        """Convert every time a fixed-step solve will use at once (one tensor, viewed per time)."""
        times = list(dict.fromkeys(times))
        if len(times) > 2**20:  # a huge grid: convert on the fly, memory stays small
            self._pinned = {}
            return
        values = torch.tensor(times, dtype=self._dtype, device=self._device).unbind(0)
        self._pinned = dict(zip(times, values))

    def __call__(self, t) -> torch.Tensor:
        if isinstance(t, torch.Tensor):
            return t
        hit = self._pinned.get(t)
        if hit is None:
            hit = self._cache.get(t)
        if hit is None:
            if len(self._cache) > 16:
                self._cache.clear()
            hit = self._cache[t] = torch.scalar_tensor(t, dtype=self._dtype, device=self._device)
        return hit


RENAMABLE = {
    "drift": "f",
    "diffusion": "g",
    "prior_drift": "h",
    "diffusion_prod": "g_prod",
    "drift_and_diffusion": "f_and_g",
    "drift_and_diffusion_prod": "f_and_g_prod",
}
"""torchsde's ``names=`` keys and the method each renames (its ``RenameMethodsSDE``)."""


def torchsde_methods(sde: object, names: dict[str, str] | None) -> dict[str, Callable]:
    """The callables of a torchsde-style object under torchsde's names (``f``, ``g``, ``h``, ``g_prod``,
    ``f_and_g``, ``f_and_g_prod``), after the renaming ``names`` (keys of :data:`RENAMABLE`)."""
    if names is not None and not isinstance(names, dict):
        raise TypeError(f"names must be a dict such as {{'drift': 'h'}} or None; got {type(names).__name__}")
    names = dict(names or {})
    unknown = set(names) - set(RENAMABLE)
    if unknown:
        raise ValueError(f"names may rename {sorted(RENAMABLE)} (torchsde's keys); got unknown keys {sorted(unknown)}")
    found = {}
    for key, default in RENAMABLE.items():
        attr = names.get(key, default)
        if not isinstance(attr, str):
            raise TypeError(f"names[{key!r}] must be a method name (str); got {attr!r}")
        fn = getattr(sde, attr, None)
        if callable(fn):
            found[default] = fn
        elif key in names:
            raise ValueError(f"names[{key!r}] = {attr!r}, but {type(sde).__name__} has no method {attr!r}")
    found["_names"] = {default: names.get(key, default) for key, default in RENAMABLE.items()}  # type: ignore[assignment]
    return found


def _stable_division(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """``a / b`` with ``|b|`` raised to at least ``eps`` (sign kept): the diagonal ``u = (f - h) / g``."""
    b = torch.where(b.abs() > eps, b, torch.full_like(b, eps) * b.sign())
    return a / b


class LogqpSDE:
    r"""torchsde's ``logqp=True`` augmentation as a torchsde-style object (Li et al. 2020, "Scalable
    Gradients for Stochastic Differential Equations", eq. 8-9).

    The state gains one last coordinate ``L`` with ``dL = |u|^2 / 2 dt`` and no noise, where ``u`` solves
    ``G u = f - h`` (``f`` the posterior drift, ``h`` the prior drift ``prior_drift``, ``G`` the diffusion):
    ``u = (f - h) / g`` elementwise for diagonal noise (``|g|`` kept above 1e-7), ``u = G^+ (f - h)``
    (the pseudo-inverse) otherwise. ``L(t_{i+1}) - L(t_i)`` is the log-ratio ``log dP/dQ`` of the path
    measures over ``[t_i, t_{i+1}]`` up to the martingale term (the KL divergence in expectation, by
    Girsanov's theorem).
    """

    def __init__(self, methods: dict[str, Callable], noise_type: str, sde_type: str) -> None:
        missing = [n for n in ("f", "g", "h") if n not in methods]
        if missing:
            names = methods["_names"]
            raise ValueError(
                "logqp=True needs the drift, diffusion and prior drift as separate methods (torchsde's requirement); "
                f"missing {[names[n] for n in missing]} (rename them with names={{'prior_drift': ...}})"
            )
        self._f, self._g, self._h = methods["f"], methods["g"], methods["h"]
        self.noise_type, self.sde_type = noise_type, sde_type

    def _u(self, t, y: torch.Tensor, f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        h = self._h(t, y)
        if self.noise_type == "diagonal":
            return _stable_division(f - h, g)
        return torch.matmul(torch.linalg.pinv(g), (f - h).unsqueeze(-1)).squeeze(-1)

    def f_and_g(self, t, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = y[:, :-1]
        f, g = self._f(t, x), self._g(t, x)
        u = self._u(t, x, f, g)
        drift = torch.cat((f, 0.5 * u.square().sum(dim=1, keepdim=True)), dim=1)
        if self.noise_type == "diagonal":
            return drift, torch.cat((g, g.new_zeros(g.shape[0], 1)), dim=1)
        return drift, torch.cat((g, g.new_zeros(g.shape[0], 1, g.shape[2])), dim=1)

    def f(self, t, y: torch.Tensor) -> torch.Tensor:
        return self.f_and_g(t, y)[0]

    def g(self, t, y: torch.Tensor) -> torch.Tensor:
        x = y[:, :-1]
        g = self._g(t, x)
        if self.noise_type == "diagonal":
            return torch.cat((g, g.new_zeros(g.shape[0], 1)), dim=1)
        return torch.cat((g, g.new_zeros(g.shape[0], 1, g.shape[2])), dim=1)


class TorchsdeSDE(SDE):
    """A torchsde-style SDE object seen as a sdeflow :class:`SDE` (the table in the module docstring).

    The drift and diffusion come from whichever of torchsde's methods the object defines: ``f`` and
    ``g``, ``f_and_g(t, y) -> (f, g)``, ``g_prod(t, y, v) -> G v`` or ``f_and_g_prod(t, y, v)``. Where only
    a product ``G v`` is defined, the steps that need ``G dW`` call it directly and ``G`` itself is
    assembled column by column as ``G e_j`` (exact: ``G v`` is linear in ``v``); with ``f_and_g`` the pair
    is computed once for a drift and diffusion call at the same ``(t, y)``.

    Args:
        sde: an object with ``noise_type``, ``sde_type`` and the methods above.
        y0: the initial state ``(batch, d)`` (gives the time tensors' dtype and device, and ``m``).
        t0: the initial time (``g(t0, y0)`` is evaluated once for general and additive noise).
        names: torchsde's renaming of the methods (keys of :data:`RENAMABLE`: ``drift``, ``diffusion``,
            ``prior_drift``, ``diffusion_prod``, ``drift_and_diffusion``, ``drift_and_diffusion_prod``).
        noise_size: the number ``m`` of Brownian motions where no method gives ``G`` itself (only
            ``g_prod``): torchsde reads it from ``bm``.
    """

    def __init__(self, sde: object, y0: torch.Tensor, t0: float, names: dict[str, str] | None = None,
                 noise_size: int | None = None) -> None:
        methods = torchsde_methods(sde, names)
        shown = methods.pop("_names")
        f, g = methods.get("f"), methods.get("g")
        fg, gp, fgp = methods.get("f_and_g"), methods.get("g_prod"), methods.get("f_and_g_prod")
        if f is None and fg is None and fgp is None:
            raise TypeError(
                f"sde must be a sdeflow SDE or a torchsde-style object with methods {shown['f']}(t, y) and "
                f"{shown['g']}(t, y) (or f_and_g, or f with g_prod); {type(sde).__name__} lacks {shown['f']}"
            )
        if g is None and fg is None and gp is None and fgp is None:
            raise TypeError(
                f"sde must be a sdeflow SDE or a torchsde-style object with methods {shown['f']}(t, y) and "
                f"{shown['g']}(t, y) (or f_and_g, g_prod or f_and_g_prod); {type(sde).__name__} lacks {shown['g']}"
            )
        noise = getattr(sde, "noise_type", None)
        calc = getattr(sde, "sde_type", None)
        if noise not in NOISE_TYPES:
            raise ValueError(f"sde.noise_type must be one of {NOISE_TYPES}; got {noise!r}")
        if calc not in CALCULI:
            raise ValueError(f"sde.sde_type must be one of {CALCULI}; got {calc!r}")
        if y0.ndim != 2:
            raise ValueError(f"a torchsde-style SDE needs y0 of shape (batch, d); got shape {tuple(y0.shape)}")
        self.wrapped = sde
        self.names = (shown["f"] if f is not None or fg is None else shown["f_and_g"],
                      shown["g"] if g is not None or fg is None else shown["f_and_g"])
        self.calculus = calc
        self.torchsde_noise_type = noise
        time_of = self._time = _TensorTime(y0)
        self.noise_type = {"additive": "general"}.get(noise, noise)
        self.additive = noise == "additive"

        # The pair (f, g) at one (t, y), kept for the next call where only f_and_g exists.
        last: list = [None, None, None]

        def pair(t, x):
            if last[0] is t and last[1] is x:
                return last[2]
            out = last[2] = fg(t, x)
            last[0], last[1] = t, x
            return out

        if g is not None:
            raw_g = g
        elif fg is not None:
            raw_g = lambda t, x: pair(t, x)[1]  # noqa: E731
        else:
            raw_g = None  # assembled from the product below, once m is known
        self._m = None
        if noise in ("additive", "general"):
            if raw_g is not None:
                g0 = raw_g(time_of(float(t0)), y0)
                if not isinstance(g0, torch.Tensor) or g0.ndim != 3 or g0.shape[:2] != y0.shape:
                    raise ValueError(
                        f"sde.{self.names[1]} must return (batch, d, m) = ({y0.shape[0]}, {y0.shape[1]}, m) for {noise} "
                        f"noise; got shape {tuple(getattr(g0, 'shape', ()))}"
                    )
                self._m = int(g0.shape[-1])
                last[0] = None  # g0 was computed at y0 itself: do not reuse it as a later step's pair
            elif noise_size is None:
                raise ValueError(
                    f"cannot infer the number of Brownian motions of {type(sde).__name__}: it defines only a product "
                    "g_prod(t, y, v); pass bm= (its shape gives m), or define g or f_and_g (torchsde's rule)"
                )
            else:
                self._m = int(noise_size)
        m = {"diagonal": y0.shape[1], "scalar": 1}.get(noise, self._m)
        prod = gp if gp is not None else (lambda t, x, v: fgp(t, x, v)[1]) if fgp is not None else None
        if raw_g is None:
            def raw_g(t, x):  # G e_j column by column (exact: the product is linear in v)
                eye = torch.eye(m, dtype=x.dtype, device=x.device)
                cols = [prod(t, x, eye[j].expand(x.shape[0], m)) for j in range(m)]
                if noise == "diagonal":  # G e_j is g_j in place j, zeros elsewhere: their sum is g
                    return torch.stack(cols).sum(dim=0)
                return torch.stack(cols, dim=-1)
        if f is None:
            if fg is not None:
                f = lambda t, x: pair(t, x)[0]  # noqa: E731
            else:
                f = lambda t, x: fgp(t, x, x.new_zeros(x.shape[0], m))[0]  # noqa: E731
        self._f, self._g, self._prod = f, raw_g, prod
        # Per-step hot path: closures that convert the time once and call the user's functions
        # directly (no method layers); they shadow the methods below.
        self.drift = lambda t, x: f(time_of(t), x)
        if noise == "scalar":
            self.diffusion = lambda t, x: raw_g(time_of(t), x).squeeze(-1)
        else:
            self.diffusion = lambda t, x: raw_g(time_of(t), x)
        if prod is not None:
            if noise == "diagonal":
                self.diffusion_times = lambda t, x, dw: prod(time_of(t), x, dw)
            else:
                self.diffusion_times = lambda t, x, dw: prod(time_of(t), x, dw.reshape(dw.shape[0], -1))
        elif noise in ("additive", "general"):
            self.diffusion_times = lambda t, x, dw: torch.matmul(raw_g(time_of(t), x), dw.unsqueeze(-1)).squeeze(-1)

    def prepare_times(self, times: list[float]) -> None:
        """The times a fixed-step solve will evaluate at, given before it starts (see :meth:`SDEMethod.init`):
        their 0-d tensors are made in one operation instead of one per step."""
        self._time.pin(times)

    def drift(self, t, x: torch.Tensor) -> torch.Tensor:
        return self._f(self._time(t), x)

    def diffusion(self, t, x: torch.Tensor) -> torch.Tensor:
        return self._g(self._time(t), x)

    def brownian_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        if self._m is not None:
            return (x.shape[0], self._m)
        return super().brownian_shape(x)


class ODEFunction(SDE):
    """An ODE ``dy/dt = func(t, y)`` (torchdiffeq's convention: ``t`` a 0-d tensor) as an :class:`SDE`."""

    noise_type = "additive"
    calculus = "ito"

    def __init__(self, func: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], y0: torch.Tensor) -> None:
        if not callable(func):
            raise TypeError(f"func must be a callable func(t, y) -> dy/dt; got {type(func).__name__}")
        self.func = func
        self._time = _TensorTime(y0)

    @property
    def is_ode(self) -> bool:
        return True

    def drift(self, t, x: torch.Tensor) -> torch.Tensor:
        return self.func(self._time(t), x)

    def diffusion(self, t, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def as_sde(sde: object, y0: torch.Tensor, t0: float, names: dict[str, str] | None = None,
           noise_size: int | None = None) -> SDE:
    """A sdeflow SDE as it is, or a torchsde-style object wrapped in :class:`TorchsdeSDE`."""
    if isinstance(sde, SDE):
        if names:
            raise ValueError("names= renames the methods of a torchsde-style object; a sdeflow SDE has drift/diffusion")
        return sde
    return TorchsdeSDE(sde, y0, t0, names, noise_size)
