"""Fundamental-frequency estimation by YIN (de Cheveigne & Kawahara 2002, J. Acoust. Soc. Am. 111(4)).

For a frame starting at sample ``s`` with window ``W``, YIN's steps are:

1. the difference function ``d(tau) = sum_{j<W} (x_{s+j} - x_{s+j+tau})^2`` (eq. 6), computed here as
   ``E_0 + E_tau - 2 r(tau)`` with the cross-correlation ``r`` by FFT and the energies ``E`` by a
   cumulative sum, on the lag grid ``tau = k / u`` (``u = oversample``; ``r`` interpolated exactly
   for band-limited signals by zero-padding its spectrum, ``E`` linearly);
2. the cumulative mean normalized difference ``d'(tau) = d(tau) tau / integral_0^tau d``,
   ``d'(0) = 1`` (eq. 8);
3. the absolute threshold: the first local minimum ``tau`` of ``d'`` in ``[sr/fmax, sr/fmin]``
   whose parabolic vertex through ``tau - 1, tau, tau + 1`` lies below ``threshold`` (the paper's
   step 5 uses the interpolated ordinate in the selection: at a period between two integer lags the
   dip is shallower on the grid, and the dip of twice the period could win); else the global
   minimum of ``d'``. ``d'(tau)`` is the frame's aperiodicity;
4. parabolic interpolation of ``d`` through ``tau - 1, tau, tau + 1`` (step 5 of the paper): near a
   period ``P``, ``d(tau) ~ (tau - P)^2 sum x'^2`` is a parabola, so the vertex gives ``P`` to
   sub-sample precision; ``f0 = sr / P``.

A clip's pitch (:func:`estimate_f0`) is the median of its voiced frames' ``f0``: frames with
aperiodicity below ``voiced`` and at least 10% of the clip's largest frame energy; a clip without a
voiced frame gets NaN.
"""

from __future__ import annotations

import math

import torch

from ..._utils import check_positive
from .notes import hz_to_midi

__all__ = ["yin", "estimate_f0", "cents", "pitch_accuracy"]


def _check_audio(audio: torch.Tensor) -> torch.Tensor:
    if not isinstance(audio, torch.Tensor) or audio.ndim != 2 or not audio.is_floating_point():
        shape = tuple(audio.shape) if isinstance(audio, torch.Tensor) else type(audio).__name__
        raise ValueError(f"audio must be a floating (n, n_samples) tensor of waveforms; got {shape}")
    return audio.double()


def yin(
    audio: torch.Tensor,
    sample_rate: int,
    *,
    fmin: float = 60.0,
    fmax: float = 1000.0,
    window: int | None = None,
    hop: int | None = None,
    threshold: float = 0.1,
    oversample: int = 4,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Frame-wise YIN: ``(f0, aperiodicity, energy)``, each ``(n, frames)`` float64.

    Args:
        audio: waveforms ``(n, n_samples)``.
        sample_rate: Hz.
        fmin, fmax: the pitch range searched (lags ``sr/fmax .. sr/fmin``).
        window: ``W``, the integration window (default: ``2 sr / fmin`` rounded, two longest periods).
        hop: frame hop (default ``W``: frames side by side).
        threshold: YIN's absolute threshold on ``d'``.
        oversample: ``u``, lags on the grid ``k / u`` (band-limited interpolation of the correlation;
            a bright tone's dip is narrower than one sample, so on the integer grid twice the period
            can look more periodic than the period).
    """
    x = _check_audio(audio)
    check_positive(sample_rate, "sample_rate")
    if not 0 < fmin < fmax < sample_rate / 2:
        raise ValueError(f"need 0 < fmin < fmax < sample_rate / 2; got fmin={fmin}, fmax={fmax}, sample_rate={sample_rate}")
    tau_max = int(math.ceil(sample_rate / fmin)) + 1
    tau_min = max(2, int(math.floor(sample_rate / fmax)))
    w = int(window) if window is not None else int(round(2 * sample_rate / fmin))
    span = w + tau_max + 2
    if x.shape[1] < span:
        raise ValueError(
            f"clips of {x.shape[1]} samples are too short for YIN with fmin={fmin} Hz at {sample_rate} Hz (need "
            f">= {span} samples: window {w} + longest lag {tau_max}); raise fmin or pass a shorter window"
        )
    hop = int(hop) if hop is not None else w
    frames = x.unfold(1, span, hop)  # (n, F, span)
    a = frames[..., :w]
    nfft = 1 << (2 * span - 1).bit_length()
    u = int(oversample)
    # Cross-correlation r(tau) on the lag grid tau = k / u: the cross-spectrum zero-padded u-fold is
    # the band-limited interpolation of r (x is band-limited, so r is).
    cross = torch.fft.rfft(frames, nfft).mul(torch.fft.rfft(a, nfft).conj())
    r = torch.fft.irfft(cross, u * nfft)[..., : u * (tau_max + 2)] * u
    c = torch.nn.functional.pad((frames * frames).cumsum(-1), (1, 0))
    taus = torch.arange(tau_max + 3)
    e_int = c[..., taus + w] - c[..., taus]  # E_tau at integer lags, linearly interpolated between them
    fine = torch.arange(u * (tau_max + 2), dtype=torch.float64) / u
    lo = fine.floor().long()
    frac = fine - lo
    e_tau = e_int[..., lo] * (1.0 - frac) + e_int[..., lo + 1] * frac
    d = (e_tau[..., :1] + e_tau - 2.0 * r).clamp_min(0.0)  # (n, F, u (tau_max + 2)) at lags k / u
    cum = d[..., 1:].cumsum(-1) / u  # the integral of d over (0, tau]
    dn = torch.ones_like(d)
    dn[..., 1:] = d[..., 1:] * fine[1:] / cum.clamp_min(1e-300)
    # Step 3: the first local minimum of d' whose parabolic vertex (step 5's ordinate) lies under the
    # threshold; else the global minimum.
    lags = torch.arange(u * tau_min, u * tau_max + 1)
    y0, y1, y2 = dn[..., lags - 1], dn[..., lags], dn[..., lags + 1]
    curv = (y0 - 2.0 * y1 + y2).clamp_min(1e-300)
    vertex = y1 - (y0 - y2) ** 2 / (8.0 * curv)
    dip = (y1 <= y0) & (y1 <= y2) & (vertex < threshold)
    k = torch.where(dip.any(-1), dip.float().argmax(-1), y1.argmin(-1)) + u * tau_min
    aper = dn.gather(-1, k[..., None])[..., 0]
    # Step 4: parabolic interpolation of d around the chosen lag.
    y0, y1, y2 = (d.gather(-1, (k + j)[..., None])[..., 0] for j in (-1, 0, 1))
    denom = y0 - 2.0 * y1 + y2
    shift = torch.where(denom > 0, 0.5 * (y0 - y2) / denom.clamp_min(1e-300), torch.zeros_like(denom)).clamp(-1.0, 1.0)
    period = (k.double() + shift) / u
    energy = a.pow(2).mean(-1)
    return sample_rate / period, aper, energy


def estimate_f0(audio: torch.Tensor, sample_rate: int, *, voiced: float = 0.2, **options) -> torch.Tensor:
    """Each clip's pitch in Hz ``(n,)`` float64: the median ``f0`` of its voiced frames (NaN if none); see the module docstring."""
    f0, aper, energy = yin(audio, sample_rate, **options)
    ok = (aper < voiced) & (energy >= 0.1 * energy.amax(-1, keepdim=True)) & (energy > 0)
    masked = torch.where(ok, f0, torch.full_like(f0, float("nan")))
    return masked.nanmedian(-1).values


def cents(f0: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``1200 log2(f0 / reference)``: the pitch error in cents (100 cents = 1 semitone)."""
    return 1200.0 * torch.log2(torch.as_tensor(f0, dtype=torch.float64) / torch.as_tensor(reference, dtype=torch.float64))


def pitch_accuracy(audio: torch.Tensor, labels: torch.Tensor, sample_rate: int, midi_low: int, *, tolerance: float = 50.0) -> dict:
    """How well clips sound the pitch they were asked for.

    ``accuracy``: the fraction of clips whose YIN pitch lies within ``tolerance`` cents (default 50,
    a quarter tone either way: the nearest semitone is the asked one) of the nominal frequency of
    MIDI note ``midi_low + label``; a clip without a detected pitch counts as wrong.
    ``median_abs_cents``: the median absolute error over the clips with a pitch; ``unvoiced``: the
    fraction without one.
    """
    f0 = estimate_f0(audio, sample_rate)
    target = 440.0 * 2.0 ** ((midi_low + labels.double() - 69.0) / 12.0)
    err = cents(f0, target)
    good = err.abs() <= tolerance
    voiced = torch.isfinite(f0)
    return {
        "accuracy": float(good.double().mean()),
        "median_abs_cents": float(err[voiced].abs().median()) if bool(voiced.any()) else float("nan"),
        "unvoiced": float((~voiced).double().mean()),
        "midi_estimates": hz_to_midi(f0),
    }
