"""Measurement operators ``y = A(x) + noise_std * n``, ``n ~ N(0, I)``, with matrix-free SVD pieces.

Every linear operator here is a map from states of shape ``(batch, *event_shape)`` to measurements
of shape ``(batch, *measurement_shape)`` and carries its singular value decomposition
``A = U diag(s) V^T`` as functions, never as matrices (except :class:`Linear`, which *is* a matrix):

* ``Vt(x)``: ``(batch, *event_shape) -> (batch, D)``, the coefficients of ``x`` in the orthonormal
  basis ``V`` of the state space (``D = prod(event_shape)``);
* ``V(c)``: the inverse, ``(batch, D) -> (batch, *event_shape)``;
* ``singulars``: ``(D,)`` float64, aligned with ``Vt``'s coefficients and **zero** on the directions
  that ``A`` does not see (so ``A x = U(singulars * Vt(x))`` for every operator);
* ``Ut(y)``: ``(batch, *measurement_shape) -> (batch, D)``, the coordinates of ``y`` on the left
  singular vectors, aligned with ``Vt`` (zero where ``singulars`` is zero: a component of ``y``
  outside the range of ``A`` is pure noise and carries no information about ``x``);
* ``U(c)``: ``(batch, D) -> (batch, *measurement_shape)``, which reads only the coefficients with a
  non-zero singular value.

Then ``A x = U(s * Vt(x))`` and ``A^T y = V(s * Ut(y))``, and a measurement in spectral coordinates
is ``Ut(y)_i = s_i Vt(x)_i + noise_std * n_i`` with independent standard normals ``n_i``: the form in
which DDRM (Kawar et al. 2022), DDNM (Wang et al. 2023), PiGDM's linear case (Song et al. 2023) and
MCGdiff (Cardoso et al. 2024) are written. :class:`Blur`'s basis is the unitary discrete Fourier basis,
so its coefficients are complex (conjugate-symmetric for a real ``x``); every coefficient-wise
operation with weights that depend on ``s`` alone keeps that symmetry, and ``V`` returns the real
part.

``noise_std`` is the standard deviation of the Gaussian measurement noise in the units of ``y``,
stated once on the operator; :meth:`Operator.measure` draws ``y`` with it.

Operators built without ``event_shape`` learn it from the first measurement they are given
(:meth:`Operator.event_shape_for`, :meth:`Operator.bind`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Callable, ClassVar, Sequence

import torch

__all__ = [
    "Operator",
    "Denoising",
    "Inpainting",
    "SuperResolution",
    "Blur",
    "Linear",
    "Nonlinear",
    "gaussian_kernel",
]


def _check_noise_std(noise_std: object) -> float:
    if isinstance(noise_std, bool) or not isinstance(noise_std, (int, float)) or not math.isfinite(noise_std) or noise_std < 0:
        raise ValueError(f"noise_std must be a finite number >= 0 (the std of y's Gaussian noise); got {noise_std!r}")
    return float(noise_std)


def _check_shape(shape: object, name: str) -> tuple[int, ...] | None:
    if shape is None:
        return None
    try:
        out = tuple(int(s) for s in shape)  # type: ignore[union-attr]
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a sequence of positive ints such as (1, 28, 28); got {shape!r}") from err
    if not out or any(s < 1 for s in out):
        raise ValueError(f"{name} must be a non-empty sequence of positive ints; got {shape!r}")
    return out


def _check_tensor(x: object, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (batch, ...); got {type(x).__name__}")
    if not x.is_floating_point() and not x.is_complex():
        raise TypeError(f"{name} must be a floating-point tensor; got dtype {x.dtype}")
    if x.ndim < 2:
        raise ValueError(f"{name} must have shape (batch, ...) with at least 2 dimensions; got shape {tuple(x.shape)}")
    return x


class Operator(ABC):
    """Base class of measurement operators ``y = A(x) + noise_std * n``.

    Class attributes say what a method may use: ``linear`` (``adjoint`` exists) and ``has_svd``
    (``V``, ``Vt``, ``U``, ``Ut``, ``singulars`` exist); ``complex_svd`` says the spectral
    coefficients are complex (Fourier).
    """

    linear: ClassVar[bool] = True
    has_svd: ClassVar[bool] = True
    complex_svd: ClassVar[bool] = False

    def __init__(self, noise_std: float = 0.0, event_shape: Sequence[int] | None = None) -> None:
        self.noise_std = _check_noise_std(noise_std)
        self._event_shape = _check_shape(event_shape, "event_shape")
        if self._event_shape is not None:
            self._validate_event_shape(self._event_shape)

    # ------------------------------------------------------------------ shapes
    @property
    def event_shape(self) -> tuple[int, ...]:
        """The shape of one state (set at construction, by :meth:`bind`, or from a measurement)."""
        if self._event_shape is None:
            raise ValueError(
                f"{type(self).__name__} does not know its event shape yet: pass event_shape= at construction "
                "or call bind(event_shape)"
            )
        return self._event_shape

    @property
    def dim(self) -> int:
        """``D = prod(event_shape)``."""
        return math.prod(self.event_shape)

    def _validate_event_shape(self, shape: tuple[int, ...]) -> None:
        """Raise ValueError if the operator cannot act on states of this event shape."""

    @abstractmethod
    def measurement_shape_for(self, event_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of one measurement of a state of ``event_shape``."""

    def event_shape_for(self, measurement_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The event shape whose measurements have ``measurement_shape`` (the bound one if any)."""
        if self._event_shape is not None:
            return self._event_shape
        raise ValueError(f"{type(self).__name__} needs event_shape= to know the shape of the states")

    @property
    def measurement_shape(self) -> tuple[int, ...]:
        return self.measurement_shape_for(self.event_shape)

    def bind(self, event_shape: Sequence[int]) -> "Operator":
        """This operator for states of ``event_shape`` (itself if already bound to that shape)."""
        shape = _check_shape(event_shape, "event_shape")
        if self._event_shape is not None:
            if shape != self._event_shape:
                raise ValueError(
                    f"{type(self).__name__} acts on states of event shape {self._event_shape}; got event shape {shape}"
                )
            return self
        self._validate_event_shape(shape)
        out = object.__new__(type(self))
        out.__dict__.update(self.__dict__)
        out._event_shape = shape
        out._cache = {}
        return out

    def check_x(self, x: object, name: str = "x") -> torch.Tensor:
        """``x`` as a state of shape ``(batch, *event_shape)``, or an error naming ``name``."""
        x = _check_tensor(x, name)
        shape = tuple(x.shape[1:])
        if self._event_shape is None:
            self._validate_event_shape(shape)
        elif shape != self._event_shape:
            raise ValueError(
                f"{name} must have shape (batch, *event_shape) = (batch, {', '.join(map(str, self._event_shape))}) "
                f"for {type(self).__name__}; got shape {tuple(x.shape)}"
            )
        return x

    def check_y(self, y: object, name: str = "y") -> torch.Tensor:
        """``y`` as a batch of measurements ``(batch, *measurement_shape)``, or an error naming ``name``."""
        y = _check_tensor(y, name)
        expected = self.measurement_shape_for(self.event_shape_for(tuple(y.shape[1:])))
        if tuple(y.shape[1:]) != expected:
            raise ValueError(
                f"{name} must have shape (batch, *measurement_shape) = (batch, {', '.join(map(str, expected))}) "
                f"for {type(self)!s:.0}{type(self).__name__}; got shape {tuple(y.shape)}"
            )
        return y

    # ------------------------------------------------------------------ the map
    @abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``A x``: ``(batch, *event_shape) -> (batch, *measurement_shape)``."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``A^T y``: ``(batch, *measurement_shape) -> (batch, *event_shape)``."""
        y = self.check_y(y)
        return self.V(self.singulars.to(device=y.device, dtype=_real(y.dtype)) * self.Ut(y))

    def measure(self, x: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
        """A noisy measurement ``y = A x + noise_std * n`` of each state; noise from ``generator``."""
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator; got {type(generator).__name__}")
        y = self.forward(x)
        if self.noise_std == 0:
            return y
        n = torch.randn(y.shape, generator=generator, dtype=y.dtype, device=generator.device).to(y.device)
        return y + self.noise_std * n

    def matrix(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """The dense matrix of a linear operator, ``(prod(measurement_shape), D)`` (for small problems)."""
        if not self.linear:
            raise TypeError(f"{type(self).__name__} is not linear: it has no matrix")
        eye = torch.eye(self.dim, dtype=dtype).reshape((self.dim,) + self.event_shape)
        return self.forward(eye).reshape(self.dim, -1).T.contiguous()

    # ------------------------------------------------------------------ SVD pieces
    def _no_svd(self, what: str):
        raise TypeError(f"{type(self).__name__} has no SVD ({what}); use a linear operator such as Linear(A)")

    def Vt(self, x: torch.Tensor) -> torch.Tensor:
        """Coefficients of ``x`` in the right singular basis: ``(batch, *event_shape) -> (batch, D)``."""
        self._no_svd("Vt")

    def V(self, c: torch.Tensor) -> torch.Tensor:
        """``(batch, D) -> (batch, *event_shape)``, the inverse of :meth:`Vt`."""
        self._no_svd("V")

    def Ut(self, y: torch.Tensor) -> torch.Tensor:
        """Coordinates of ``y`` on the left singular vectors, aligned with :meth:`Vt`: ``(batch, D)``."""
        self._no_svd("Ut")

    def U(self, c: torch.Tensor) -> torch.Tensor:
        """``(batch, D) -> (batch, *measurement_shape)``: ``sum_i c_i u_i`` over non-zero singular values."""
        self._no_svd("U")

    @property
    def singulars(self) -> torch.Tensor:
        """``(D,)`` float64 singular values aligned with :meth:`Vt` (zero where ``A`` sees nothing)."""
        self._no_svd("singulars")

    def _flat(self, x: torch.Tensor, name: str = "x") -> torch.Tensor:
        return self.check_x(x, name).reshape(x.shape[0], -1)

    def _check_c(self, c: object, name: str = "c") -> torch.Tensor:
        c = _check_tensor(c, name)
        if c.ndim != 2 or c.shape[1] != self.dim:
            raise ValueError(f"{name} must have shape (batch, D) = (batch, {self.dim}); got shape {tuple(c.shape)}")
        return c

    def __repr__(self) -> str:
        shape = f", event_shape={self._event_shape}" if self._event_shape is not None else ""
        return f"{type(self).__name__}(noise_std={self.noise_std}{shape})"


def _real(dtype: torch.dtype) -> torch.dtype:
    return {torch.complex64: torch.float32, torch.complex128: torch.float64}.get(dtype, dtype)


class Denoising(Operator):
    """``A = I``: ``y = x + noise_std * n``. ``V = U = I``, singular values 1. Any event shape."""

    def __init__(self, noise_std: float = 0.1, event_shape: Sequence[int] | None = None) -> None:
        super().__init__(noise_std, event_shape)

    def measurement_shape_for(self, event_shape):
        return tuple(event_shape)

    def event_shape_for(self, measurement_shape):
        return self._event_shape if self._event_shape is not None else tuple(measurement_shape)

    def forward(self, x):
        return self.check_x(x).clone()

    def adjoint(self, y):
        return self.check_y(y).clone()

    def Vt(self, x):
        return self._flat(x).clone()

    def V(self, c):
        c = self._check_c(c)
        return c.reshape((c.shape[0],) + self.event_shape).clone()

    def Ut(self, y):
        y = self.check_y(y)
        return y.reshape(y.shape[0], -1).clone()

    def U(self, c):
        return self.V(c)

    @property
    def singulars(self):
        return torch.ones(self.dim, dtype=torch.float64)


class Inpainting(Operator):
    """Keep the entries where ``mask`` is True: ``y = x[:, mask]``, shape ``(batch, m)``, ``m = mask.sum()``.

    ``mask`` is a boolean tensor of the event shape (e.g. ``(1, 28, 28)``). The SVD is a permutation:
    ``Vt`` lists the observed entries first (singular value 1), then the missing ones (0); ``U = I``.
    :meth:`adjoint` puts ``y`` back in place with zeros at the missing entries (for pictures).
    """

    def __init__(self, mask: torch.Tensor, noise_std: float = 0.0) -> None:
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            got = f"a tensor of dtype {mask.dtype}" if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise TypeError(f"mask must be a boolean torch.Tensor of the event shape (True = observed); got {got}")
        if mask.ndim < 1 or mask.numel() < 1:
            raise ValueError(f"mask must have the event shape (at least one entry); got shape {tuple(mask.shape)}")
        if not bool(mask.any()):
            raise ValueError("mask must observe at least one entry (it is all False)")
        self.mask = mask.detach().cpu().clone()
        flat = self.mask.reshape(-1)
        self._obs = torch.nonzero(flat).flatten()
        self._miss = torch.nonzero(~flat).flatten()
        self._perm = torch.cat([self._obs, self._miss])
        super().__init__(noise_std, tuple(mask.shape))

    @property
    def n_observed(self) -> int:
        return int(self._obs.numel())

    def measurement_shape_for(self, event_shape):
        return (self.n_observed,)

    def forward(self, x):
        xf = self._flat(x)
        return xf[:, self._obs.to(xf.device)]

    def adjoint(self, y):
        y = self.check_y(y)
        out = torch.zeros((y.shape[0], self.dim), dtype=y.dtype, device=y.device)
        out[:, self._obs.to(y.device)] = y
        return out.reshape((y.shape[0],) + self.event_shape)

    def Vt(self, x):
        xf = self._flat(x)
        return xf[:, self._perm.to(xf.device)]

    def V(self, c):
        c = self._check_c(c)
        out = torch.empty_like(c)
        out[:, self._perm.to(c.device)] = c
        return out.reshape((c.shape[0],) + self.event_shape)

    def Ut(self, y):
        y = self.check_y(y)
        pad = torch.zeros((y.shape[0], self.dim - self.n_observed), dtype=y.dtype, device=y.device)
        return torch.cat([y, pad], dim=1)

    def U(self, c):
        c = self._check_c(c)
        return c[:, : self.n_observed].clone()

    @property
    def singulars(self):
        s = torch.zeros(self.dim, dtype=torch.float64)
        s[: self.n_observed] = 1.0
        return s

    def __repr__(self) -> str:
        return f"Inpainting(mask of shape {tuple(self.mask.shape)} observing {self.n_observed}, noise_std={self.noise_std})"


def _block_basis(n: int) -> torch.Tensor:
    """An orthogonal ``(n, n)`` float64 matrix whose first column is ``1 / sqrt(n)`` (Householder QR)."""
    a = torch.eye(n, dtype=torch.float64)
    a[:, 0] = 1.0
    q, _ = torch.linalg.qr(a)
    return q * torch.sign(q[0, 0])


class SuperResolution(Operator):
    """Average pooling by ``factor`` over the spatial axes: the last two of an image ``(..., H, W)``,
    the only one of a vector ``(L,)``: ``y = mean of each factor x factor block``.

    Each block of ``n = factor^k`` entries (``k`` spatial axes) is one row ``(1/n) 1^T`` of ``A``, of norm
    ``n^{-1/2}``: the singular value of every block is ``1 / factor^{k/2}``, its right singular vector
    the constant ``1/sqrt(n)`` on the block, completed by a fixed orthonormal basis of the block
    (Householder QR). ``Vt`` lists the block means' directions first (in the order of ``y``), then the
    rest; ``U = I``.
    """

    def __init__(self, factor: int, noise_std: float = 0.0, event_shape: Sequence[int] | None = None) -> None:
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
            raise ValueError(f"factor must be an integer >= 1 (the pooling size); got {factor!r}")
        self.factor = factor
        super().__init__(noise_std, event_shape)
        self._cache: dict = {}

    def _k(self, shape) -> int:
        return 2 if len(shape) >= 2 else 1

    def _validate_event_shape(self, shape):
        k = self._k(shape)
        if any(s % self.factor for s in shape[-k:]):
            raise ValueError(
                f"SuperResolution(factor={self.factor}) needs spatial sizes divisible by {self.factor}; got event shape {shape}"
            )

    def measurement_shape_for(self, event_shape):
        k = self._k(event_shape)
        return tuple(event_shape[:-k]) + tuple(s // self.factor for s in event_shape[-k:])

    def event_shape_for(self, measurement_shape):
        if self._event_shape is not None:
            return self._event_shape
        k = self._k(measurement_shape)
        return tuple(measurement_shape[:-k]) + tuple(s * self.factor for s in measurement_shape[-k:])

    def _blocks(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, *event) -> (batch, M, factor^k)``, blocks in the order of the measurement."""
        f, b, shape = self.factor, x.shape[0], tuple(x.shape[1:])
        if self._k(shape) == 2:
            *lead, H, W = shape
            z = x.reshape(b, -1, H // f, f, W // f, f).permute(0, 1, 2, 4, 3, 5)
            return z.reshape(b, -1, f * f)
        return x.reshape(b, -1, f)

    def _unblocks(self, z: torch.Tensor) -> torch.Tensor:
        f, b, shape = self.factor, z.shape[0], self.event_shape
        if self._k(shape) == 2:
            *lead, H, W = shape
            z = z.reshape(b, -1, H // f, W // f, f, f).permute(0, 1, 2, 4, 3, 5)
        return z.reshape((b,) + shape)

    def _q(self, x: torch.Tensor) -> torch.Tensor:
        key = (x.dtype, x.device)
        if key not in self._cache:
            self._cache[key] = _block_basis(self.factor ** self._k(self.event_shape)).to(dtype=x.dtype, device=x.device)
        return self._cache[key]

    def forward(self, x):
        x = self.check_x(x)
        if self._event_shape is None:
            return self.bind(tuple(x.shape[1:])).forward(x)
        return self._blocks(x).mean(-1).reshape((x.shape[0],) + self.measurement_shape)

    def Vt(self, x):
        x = self.check_x(x)
        c = self._blocks(x) @ self._q(x)  # (batch, M, n)
        return torch.cat([c[..., 0], c[..., 1:].reshape(x.shape[0], -1)], dim=1)

    def V(self, c):
        c = self._check_c(c)
        n = self.factor ** self._k(self.event_shape)
        M = self.dim // n
        blocks = torch.cat([c[:, :M, None], c[:, M:].reshape(c.shape[0], M, n - 1)], dim=2)
        return self._unblocks(blocks @ self._q(c).T)

    def Ut(self, y):
        y = self.check_y(y)
        yf = y.reshape(y.shape[0], -1)
        return torch.cat([yf, torch.zeros((y.shape[0], self.dim - yf.shape[1]), dtype=y.dtype, device=y.device)], dim=1)

    def U(self, c):
        c = self._check_c(c)
        M = self.dim // self.factor ** self._k(self.event_shape)
        return c[:, :M].reshape((c.shape[0],) + self.measurement_shape).clone()

    @property
    def singulars(self):
        n = self.factor ** self._k(self.event_shape)
        s = torch.zeros(self.dim, dtype=torch.float64)
        s[: self.dim // n] = n**-0.5
        return s


def gaussian_kernel(size: int, std: float, ndim: int = 2) -> torch.Tensor:
    """A normalized Gaussian blur kernel ``exp(-r^2 / (2 std^2))`` of ``size`` taps per axis (float64)."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be an integer >= 1; got {size!r}")
    if not isinstance(std, (int, float)) or not std > 0 or not math.isfinite(std):
        raise ValueError(f"std must be a finite number > 0; got {std!r}")
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * std**2))
    k = g if ndim == 1 else g[:, None] * g[None, :]
    return k / k.sum()


class Blur(Operator):
    """Circular convolution with ``kernel`` over the last ``kernel.ndim`` axes (1 or 2) of the state.

    The kernel's centre (index ``size // 2`` on each axis) is the origin. A circular convolution is
    diagonal in the unitary Fourier basis: ``A = F^* diag(k_hat) F`` with ``k_hat`` the DFT of the
    kernel padded to the state's size. Its SVD is ``V = F^*``, ``singulars = |k_hat|``,
    ``U = F^* diag(k_hat / |k_hat|)``: the coefficients ``Vt(x) = F x`` are complex (``complex_svd``).
    """

    complex_svd = True

    def __init__(self, kernel: torch.Tensor, noise_std: float = 0.0, event_shape: Sequence[int] | None = None) -> None:
        if not isinstance(kernel, torch.Tensor) or not kernel.is_floating_point():
            raise TypeError(f"kernel must be a real floating-point torch.Tensor of 1 or 2 dimensions; got {kernel!r:.60}")
        if kernel.ndim not in (1, 2):
            raise ValueError(f"kernel must have 1 or 2 dimensions; got shape {tuple(kernel.shape)}")
        if not bool(torch.isfinite(kernel).all()):
            raise ValueError("kernel must be finite")
        self.kernel = kernel.detach().to(torch.float64).cpu().clone()
        super().__init__(noise_std, event_shape)
        self._cache: dict = {}

    @property
    def _axes(self) -> tuple[int, ...]:
        return tuple(range(-self.kernel.ndim, 0))

    def _validate_event_shape(self, shape):
        k = self.kernel.ndim
        if len(shape) < k or any(s < n for s, n in zip(shape[-k:], self.kernel.shape)):
            raise ValueError(
                f"Blur with a kernel of shape {tuple(self.kernel.shape)} needs states whose last {k} axes are at least "
                f"that large; got event shape {shape}"
            )

    def measurement_shape_for(self, event_shape):
        return tuple(event_shape)

    def event_shape_for(self, measurement_shape):
        return self._event_shape if self._event_shape is not None else tuple(measurement_shape)

    def _khat(self, shape: tuple[int, ...], device) -> torch.Tensor:
        """The DFT of the centred kernel on the spatial grid, complex128, spatial shape."""
        key = (shape, device)
        if key not in self._cache:
            k = self.kernel.ndim
            size = shape[-k:]
            pad = torch.zeros(size, dtype=torch.float64)
            pad[tuple(slice(0, n) for n in self.kernel.shape)] = self.kernel
            pad = torch.roll(pad, shifts=tuple(-(n // 2) for n in self.kernel.shape), dims=tuple(range(k)))
            self._cache[key] = torch.fft.fftn(pad).to(device)
        return self._cache[key]

    def _apply(self, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        X = torch.fft.fftn(x, dim=self._axes)
        return torch.fft.ifftn(X * factor.to(X.dtype), dim=self._axes).real.to(x.dtype)

    def forward(self, x):
        x = self.check_x(x)
        return self._apply(x, self._khat(tuple(x.shape[1:]), x.device))

    def adjoint(self, y):
        y = self.check_y(y)
        return self._apply(y, self._khat(tuple(y.shape[1:]), y.device).conj())

    def _phase(self, device) -> torch.Tensor:
        kh = self._khat(self.event_shape, device)
        mag = kh.abs()
        return torch.where(mag > 0, kh / torch.where(mag > 0, mag, 1.0), torch.ones_like(kh))

    def _full(self, spatial: torch.Tensor) -> torch.Tensor:
        """A spatial-shape array broadcast to the event shape and flattened, ``(D,)``."""
        return spatial.expand(self.event_shape).reshape(-1)

    def Vt(self, x):
        x = self.check_x(x)
        return torch.fft.fftn(x, dim=self._axes, norm="ortho").reshape(x.shape[0], -1)

    def V(self, c):
        c = self._check_c(c)
        z = torch.fft.ifftn(c.reshape((c.shape[0],) + self.event_shape), dim=self._axes, norm="ortho")
        return z.real if z.is_complex() else z

    def Ut(self, y):
        y = self.check_y(y)
        Y = torch.fft.fftn(y, dim=self._axes, norm="ortho")
        return (Y * self._phase(y.device).conj().to(Y.dtype)).reshape(y.shape[0], -1)

    def U(self, c):
        c = self._check_c(c)
        ph = self._full(self._phase(c.device))
        z = torch.fft.ifftn((c * ph.to(c.dtype if c.is_complex() else torch.complex128)).reshape((c.shape[0],) + self.event_shape), dim=self._axes, norm="ortho")
        return z.real.to(_real(c.dtype))

    @property
    def singulars(self):
        return self._full(self._khat(self.event_shape, torch.device("cpu")).abs())


class Linear(Operator):
    """A dense matrix ``A`` of shape ``(M, D)``: ``y = A x_flat``, shape ``(batch, M)``.

    The SVD ``A = U diag(s) V^T`` is computed once (float64, ``torch.linalg.svd`` with full ``V``).
    ``singulars`` holds the ``min(M, D)`` singular values, then zeros up to ``D``.
    """

    def __init__(self, A: torch.Tensor, noise_std: float = 0.0, event_shape: Sequence[int] | None = None) -> None:
        if not isinstance(A, torch.Tensor) or not A.is_floating_point():
            raise TypeError(f"A must be a real floating-point torch.Tensor of shape (M, D); got {type(A).__name__}")
        if A.ndim != 2 or A.shape[0] < 1 or A.shape[1] < 1:
            raise ValueError(f"A must have shape (M, D); got shape {tuple(A.shape)}")
        if not bool(torch.isfinite(A).all()):
            raise ValueError("A must be finite")
        self.A = A.detach().to(torch.float64).cpu().clone()
        M, D = self.A.shape
        U, s, Vh = torch.linalg.svd(self.A, full_matrices=True)
        r = min(M, D)
        self._U, self._V = U[:, :r].contiguous(), Vh.T.contiguous()
        self._s = torch.zeros(D, dtype=torch.float64)
        self._s[:r] = s
        self._cache: dict = {}
        super().__init__(noise_std, (D,) if event_shape is None else event_shape)

    def _validate_event_shape(self, shape):
        if math.prod(shape) != self.A.shape[1]:
            raise ValueError(f"event_shape {shape} has {math.prod(shape)} entries; A has D = {self.A.shape[1]} columns")

    def measurement_shape_for(self, event_shape):
        return (int(self.A.shape[0]),)

    def _mats(self, t: torch.Tensor):
        key = (_real(t.dtype), t.device)
        if key not in self._cache:
            self._cache[key] = tuple(m.to(dtype=key[0], device=t.device) for m in (self.A, self._U, self._V))
        return self._cache[key]

    def forward(self, x):
        xf = self._flat(x)
        return xf @ self._mats(xf)[0].T

    def adjoint(self, y):
        y = self.check_y(y)
        return (y @ self._mats(y)[0]).reshape((y.shape[0],) + self.event_shape)

    def Vt(self, x):
        xf = self._flat(x)
        return xf @ self._mats(xf)[2]

    def V(self, c):
        c = self._check_c(c)
        return (c @ self._mats(c)[2].T).reshape((c.shape[0],) + self.event_shape)

    def Ut(self, y):
        y = self.check_y(y)
        u = y @ self._mats(y)[1]
        return torch.cat([u, torch.zeros((y.shape[0], self.dim - u.shape[1]), dtype=y.dtype, device=y.device)], dim=1)

    def U(self, c):
        c = self._check_c(c)
        Um = self._mats(c)[1]
        return c[:, : Um.shape[1]] @ Um.T

    @property
    def singulars(self):
        return self._s.clone()


class Nonlinear(Operator):
    """Any differentiable measurement ``y = fn(x) + noise_std * n``; ``fn`` maps ``(batch, *event_shape)``
    to ``(batch, *measurement_shape)``. It has no adjoint and no SVD: only methods that need a gradient
    of ``||y - A(x0_hat)||`` (``dps``, ``daps``) accept it."""

    linear = False
    has_svd = False

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], noise_std: float = 0.0, event_shape: Sequence[int] | None = None) -> None:
        if not callable(fn):
            raise TypeError(f"fn must be a callable x -> A(x); got {type(fn).__name__}")
        self.fn = fn
        super().__init__(noise_std, event_shape)

    def measurement_shape_for(self, event_shape):
        out = self.fn(torch.zeros((1,) + tuple(event_shape), dtype=torch.float64))
        if not isinstance(out, torch.Tensor) or out.ndim < 2 or out.shape[0] != 1:
            raise ValueError("fn must map (batch, *event_shape) to a tensor of shape (batch, *measurement_shape)")
        return tuple(out.shape[1:])

    def check_y(self, y, name="y"):
        return _check_tensor(y, name)

    def forward(self, x):
        x = self.check_x(x)
        return self.fn(x)

    def adjoint(self, y):
        raise TypeError("Nonlinear has no adjoint; methods that need one (pigdm, ddrm, ddnm, repaint, mcgdiff) need a linear operator")
