"""Log-mel spectrograms of short clips and their inversion to waveforms (Griffin-Lim), in torch.

Forward (:meth:`LogMel.encode`), for a clip ``x`` of ``n_samples = hop (frames - 1)`` samples:

1. STFT with a periodic Hann window of ``n_fft`` samples, hop ``hop``, centred frames (the clip is
   reflect-padded by ``n_fft / 2``), scaled by ``2 / sum(window)`` so that a sine of amplitude
   ``A`` has a peak magnitude ``A``: ``S (n_fft/2 + 1, frames)``;
2. mel power ``P = M |S|^2`` with ``n_mels`` triangular filters ``M`` equally spaced on the HTK mel
   scale ``mel(f) = 2595 log10(1 + f / 700)`` between ``fmin`` and ``fmax`` (peak 1, no area
   normalization);
3. decibels ``10 log10(P + 1e-10)`` (floor -100 dB).

Inverse (:meth:`LogMel.decode`): the power ``P`` back from decibels; the linear power spectrogram
as the non-negative least-squares solution of ``M Q = P`` by Lee & Seung's multiplicative updates
``Q <- Q * (M^T P) / (M^T M Q)`` (NMF with a fixed dictionary; 50 iterations from
``Q = M^T P``); then the phase by the fast Griffin-Lim algorithm (Griffin & Lim 1984, IEEE TASSP
32(2); with the momentum ``0.99`` of Perraudin, Balazs & Sondergaard 2013): alternate projections
between spectrograms of magnitude ``sqrt(Q)`` and consistent STFTs, ``gl_iter`` (32) times, from a zero
phase (deterministic). The result is the waveform whose STFT magnitude is closest to the target in
that alternation; the mel filters' loss of detail above a few hundred Hz is not recovered.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from ..._utils import check_int

__all__ = ["LogMel", "mel_filterbank", "griffin_lim"]

_DB_FLOOR = 1e-10


def _hz_to_mel(f):
    return 2595.0 * torch.log10(1.0 + torch.as_tensor(f, dtype=torch.float64) / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (torch.as_tensor(m, dtype=torch.float64) / 2595.0) - 1.0)


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int, fmin: float, fmax: float) -> torch.Tensor:
    """Triangular filters ``(n_mels, n_fft/2 + 1)`` float64, centres equally spaced in HTK mels, peak 1.

    Filter ``m`` rises linearly from centre ``m - 1`` to centre ``m`` and falls to centre ``m + 1``
    (``n_mels + 2`` points from ``fmin`` to ``fmax``).
    """
    freqs = torch.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1, dtype=torch.float64)
    pts = _mel_to_hz(torch.linspace(float(_hz_to_mel(fmin)), float(_hz_to_mel(fmax)), n_mels + 2, dtype=torch.float64))
    lo, mid, hi = pts[:-2, None], pts[1:-1, None], pts[2:, None]
    up = (freqs[None, :] - lo) / (mid - lo)
    down = (hi - freqs[None, :]) / (hi - mid)
    return torch.minimum(up, down).clamp_min(0.0)


def _stft(x: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor) -> torch.Tensor:
    return torch.stft(x, n_fft, hop, window=window, center=True, pad_mode="reflect", return_complex=True)


def _istft(spec: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor, length: int) -> torch.Tensor:
    return torch.istft(spec, n_fft, hop, window=window, center=True, length=length)


def griffin_lim(
    magnitude: torch.Tensor, n_fft: int, hop: int, length: int, *, n_iter: int = 64, momentum: float = 0.99
) -> torch.Tensor:
    """Waveforms ``(n, length)`` whose STFT magnitude approximates ``magnitude`` ``(n, n_fft/2 + 1, frames)``.

    Fast Griffin-Lim (see the module docstring): ``c_k = P_C(P_A(t_{k-1}))``, ``t_k = c_k + momentum (c_k - c_{k-1})``,
    with ``P_A`` setting the magnitude and ``P_C`` = STFT(ISTFT(.)); a zero initial phase.
    The STFT is unscaled here (``magnitude`` in the units of ``torch.stft`` with a Hann window).
    """
    check_int(n_iter, "n_iter", minimum=1)
    mag = magnitude.float()  # float32: the phase search gains nothing from float64 and runs 3-4x faster
    window = torch.hann_window(n_fft, dtype=mag.dtype, device=mag.device)
    spec = mag.to(torch.complex64)
    prev = torch.zeros_like(spec)
    for _ in range(n_iter):
        proj = _stft(_istft(spec, n_fft, hop, window, length), n_fft, hop, window)
        nxt = proj + momentum * (proj - prev)
        prev = proj
        spec = mag * (nxt / nxt.abs().clamp_min(1e-20))  # the magnitude set, the phase kept
    return _istft(spec, n_fft, hop, window, length)


@dataclass(frozen=True)
class LogMel:
    """The representation: ``(n, n_samples)`` waveforms <-> ``(n, n_mels, frames)`` log-mel spectrograms in dB.

    ``n_samples = hop * (frames - 1)``: centred frames give exactly ``frames`` columns. The default
    (8 kHz, ``n_fft = 512``, hop 64, 32 frames, 80 mels from 40 Hz to 4 kHz) covers 0.248 s.
    """

    sample_rate: int = 8000
    n_fft: int = 512
    hop: int = 64
    frames: int = 32
    n_mels: int = 80
    fmin: float = 40.0
    fmax: float | None = None
    gl_iter: int = 32

    def __post_init__(self) -> None:
        check_int(self.sample_rate, "sample_rate", minimum=1000)
        check_int(self.n_fft, "n_fft", minimum=16)
        check_int(self.hop, "hop")
        check_int(self.frames, "frames", minimum=2)
        check_int(self.n_mels, "n_mels", minimum=2)
        check_int(self.gl_iter, "gl_iter")
        if self.hop > self.n_fft // 2:
            raise ValueError(f"hop must be at most n_fft / 2 = {self.n_fft // 2} for an invertible STFT; got {self.hop}")
        top = self.fmax if self.fmax is not None else self.sample_rate / 2
        if not 0 <= self.fmin < top <= self.sample_rate / 2:
            raise ValueError(f"need 0 <= fmin < fmax <= sample_rate / 2; got fmin={self.fmin}, fmax={self.fmax}, sample_rate={self.sample_rate}")
        if self.n_samples <= self.n_fft // 2:
            raise ValueError(f"clips of hop * (frames - 1) = {self.n_samples} samples are shorter than n_fft / 2; use more frames")
        empty = int((self.filters.sum(1) == 0).sum())
        if empty:
            raise ValueError(f"{empty} of the {self.n_mels} mel filters hold no STFT bin; use fewer mels or a larger n_fft")

    @property
    def n_samples(self) -> int:
        """Samples per clip, ``hop * (frames - 1)``."""
        return self.hop * (self.frames - 1)

    @property
    def event_shape(self) -> tuple[int, int]:
        """``(n_mels, frames)``: what the model sees."""
        return (self.n_mels, self.frames)

    @property
    def filters(self) -> torch.Tensor:
        top = self.fmax if self.fmax is not None else self.sample_rate / 2
        return mel_filterbank(self.n_mels, self.n_fft, self.sample_rate, self.fmin, top)

    def to_dict(self) -> dict:
        return asdict(self)

    def _scale(self) -> float:
        return 2.0 / (self.n_fft / 2.0)  # 2 / sum(periodic Hann window)

    def _check(self, x: torch.Tensor, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 1 + len(shape) or tuple(x.shape[1:]) != shape or not x.is_floating_point():
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{name} must be a floating (n, {', '.join(map(str, shape))}) tensor; got {got}")
        return x

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """Waveforms ``(n, n_samples)`` -> log-mel spectrograms in dB ``(n, n_mels, frames)`` (float32)."""
        x = self._check(audio, "audio", (self.n_samples,)).double()
        window = torch.hann_window(self.n_fft, dtype=torch.float64, device=x.device)
        mag = _stft(x, self.n_fft, self.hop, window).abs() * self._scale()
        power = torch.einsum("mf,nft->nmt", self.filters.to(x.device), mag * mag)
        return (10.0 * torch.log10(power + _DB_FLOOR)).float()

    def decode(self, logmel: torch.Tensor, *, n_iter: int | None = None, nnls_iter: int = 50) -> torch.Tensor:
        """Log-mel spectrograms in dB ``(n, n_mels, frames)`` -> waveforms ``(n, n_samples)`` (float32); see the module docstring."""
        db = self._check(logmel, "logmel", self.event_shape).double()
        power = (10.0 ** (db.clamp(max=60.0) / 10.0) - _DB_FLOOR).clamp_min(0.0)
        m = self.filters.to(device=db.device, dtype=torch.float32)
        target = (power.float().transpose(1, 2) @ m).clamp_min(0.0)  # M^T P, laid out (n, frames, freqs)
        q = target.clone()
        gram = m.T @ m
        for _ in range(check_int(nnls_iter, "nnls_iter", minimum=0)):
            q = q * target / (q @ gram).clamp_min(1e-30)
        q = q.transpose(1, 2)
        mag = q.sqrt() / self._scale()
        return griffin_lim(mag, self.n_fft, self.hop, self.n_samples, n_iter=n_iter or self.gl_iter).float()
