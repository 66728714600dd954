"""Short musical notes: a synthesizer of harmonic tones, and a reader for folders of WAV files.

A synthesized note of pitch class ``k`` (MIDI note ``m = midi_low + k``) is

    x(s) = g * env(s) * sum_h a_h sin(2 pi h f0 s / sr + phi_h) / peak + noise,

with ``f0 = 440 * 2^((m - 69 + c / 100) / 12)`` Hz (a detune of ``c`` cents, uniform in
``[-detune, detune]``), harmonics ``h = 1, 2, ...`` below ``0.95 * sr / 2`` with amplitudes
``a_h = h^(-p) * b^[h even] * exp(0.3 z_h)`` (spectral slope ``p ~ U(0.5, 2)``, even-harmonic balance
``b ~ U(0.2, 1)``, ``z_h ~ N(0, 1)``: the timbre), random phases ``phi_h``, an ADSR envelope ``env``
(attack 5-50 ms, decay 20-100 ms, sustain level 0.3-0.9, release 20-100 ms ending with the clip), a
peak gain ``g ~ U(0.25, 0.9)`` and white Gaussian noise at a signal-to-noise ratio uniform in
``snr_db``. Note ``i`` of ``notes(n, seed=s)`` is drawn from ``numpy.random.default_rng([s, i])``
alone (its pitch too), so it does not depend on ``n`` or on the notes drawn before it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ..._utils import check_int, check_positive

__all__ = ["NoteConfig", "Notes", "notes", "read_wav_folder", "write_wav", "midi_to_hz", "hz_to_midi"]


def midi_to_hz(midi: float | np.ndarray | torch.Tensor):
    """``440 * 2^((midi - 69) / 12)``: the equal-tempered frequency of a MIDI note number."""
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def hz_to_midi(hz: float | np.ndarray | torch.Tensor):
    """``69 + 12 log2(hz / 440)``: the (fractional) MIDI note number of a frequency."""
    if isinstance(hz, torch.Tensor):
        return 69.0 + 12.0 * torch.log2(hz / 440.0)
    return 69.0 + 12.0 * np.log2(np.asarray(hz, dtype=np.float64) / 440.0)


@dataclass(frozen=True)
class NoteConfig:
    """The clips: ``n_samples`` samples at ``sample_rate`` Hz, pitch classes ``midi_low .. midi_low + n_pitches - 1``.

    The synthesizer's ranges (see the module docstring) are ``detune`` (cents) and ``snr_db``.
    """

    sample_rate: int = 8000
    n_samples: int = 1984
    midi_low: int = 60
    n_pitches: int = 12
    detune: float = 10.0
    snr_db: tuple[float, float] = (20.0, 40.0)

    def __post_init__(self) -> None:
        check_int(self.sample_rate, "sample_rate", minimum=1000)
        check_int(self.n_samples, "n_samples", minimum=64)
        check_int(self.midi_low, "midi_low", minimum=0)
        check_int(self.n_pitches, "n_pitches", minimum=1)
        if not 0.0 <= float(self.detune) <= 50.0:
            raise ValueError(f"detune must lie in [0, 50] cents (within half a semitone of the pitch); got {self.detune}")
        lo, hi = (float(v) for v in self.snr_db)
        if not lo <= hi:
            raise ValueError(f"snr_db must be (low, high) with low <= high; got {self.snr_db!r}")
        top = midi_to_hz(self.midi_low + self.n_pitches - 1 + self.detune / 100.0)
        if top >= 0.45 * self.sample_rate:
            raise ValueError(
                f"the highest pitch ({top:.0f} Hz, MIDI {self.midi_low + self.n_pitches - 1}) must lie below 0.45 * "
                f"sample_rate = {0.45 * self.sample_rate:.0f} Hz; lower midi_low/n_pitches or raise sample_rate"
            )

    @property
    def duration(self) -> float:
        """Clip length in seconds."""
        return self.n_samples / self.sample_rate

    def to_dict(self) -> dict:
        d = asdict(self)
        d["snr_db"] = list(self.snr_db)
        return d


class Notes(NamedTuple):
    """Waveforms ``(n, n_samples)`` float32, pitch classes ``(n,)`` int64 and the true ``f0`` ``(n,)`` float64 (Hz)."""

    audio: torch.Tensor
    labels: torch.Tensor
    f0: torch.Tensor


def _one_note(cfg: NoteConfig, rng: np.random.Generator, label: int | None) -> tuple[np.ndarray, int, float]:
    sr, n = cfg.sample_rate, cfg.n_samples
    k = int(rng.integers(cfg.n_pitches)) if label is None else label
    f0 = float(midi_to_hz(cfg.midi_low + k + rng.uniform(-cfg.detune, cfg.detune) / 100.0))
    s = np.arange(n, dtype=np.float64) / sr
    h = np.arange(1, int(0.95 * (sr / 2) / f0) + 1, dtype=np.float64)
    # Timbre: spectral slope, even/odd balance, per-harmonic jitter, random phases.
    amps = h ** (-rng.uniform(0.5, 2.0)) * np.where(h % 2 == 0, rng.uniform(0.2, 1.0), 1.0) * np.exp(0.3 * rng.standard_normal(h.size))
    phases = rng.uniform(0.0, 2.0 * math.pi, h.size)
    tone = (amps[:, None] * np.sin(2.0 * math.pi * f0 * h[:, None] * s[None, :] + phases[:, None])).sum(0)
    # ADSR envelope: linear attack to 1, decay to the sustain level, release to 0 at the clip's end.
    a, d, r = rng.uniform(0.005, 0.05), rng.uniform(0.02, 0.1), rng.uniform(0.02, 0.1)
    level = rng.uniform(0.3, 0.9)
    t_off = s[-1] - r
    env = np.where(s < a, s / a, np.where(s < a + d, 1.0 - (1.0 - level) * (s - a) / d, level))
    env = np.where(s > t_off, level * np.clip((s[-1] - s) / r, 0.0, 1.0), env)
    x = env * tone
    x = rng.uniform(0.25, 0.9) * x / np.abs(x).max()
    snr = rng.uniform(*cfg.snr_db)
    rms = math.sqrt(float(np.mean(x**2)))
    x = x + rms * 10.0 ** (-snr / 20.0) * rng.standard_normal(n)
    return x, k, f0


def notes(n: int, config: NoteConfig | None = None, *, seed: int = 0, labels: torch.Tensor | None = None) -> Notes:
    """``n`` synthesized notes (see the module docstring); ``labels`` ``(n,)`` fixes their pitch classes."""
    cfg = config if config is not None else NoteConfig()
    check_int(n, "n")
    check_int(seed, "seed", minimum=0)
    if labels is not None:
        if not isinstance(labels, torch.Tensor) or tuple(labels.shape) != (n,) or labels.is_floating_point():
            raise ValueError(f"labels must be an integer ({n},) tensor of pitch classes; got {labels!r:.80}")
        if n and (int(labels.min()) < 0 or int(labels.max()) >= cfg.n_pitches):
            raise ValueError(f"labels must lie in [0, {cfg.n_pitches - 1}] (the pitch classes); got {labels.tolist()[:8]}...")
    out = np.empty((n, cfg.n_samples), dtype=np.float64)
    ks = np.empty(n, dtype=np.int64)
    f0s = np.empty(n, dtype=np.float64)
    for i in range(n):
        lab = None if labels is None else int(labels[i])
        out[i], ks[i], f0s[i] = _one_note(cfg, np.random.default_rng([seed, i]), lab)
    return Notes(torch.from_numpy(out.astype(np.float32)), torch.from_numpy(ks), torch.from_numpy(f0s))


def _as_float(data: np.ndarray, file: Path) -> np.ndarray:
    if data.dtype == np.uint8:
        return (data.astype(np.float64) - 128.0) / 128.0
    if np.issubdtype(data.dtype, np.integer):
        return data.astype(np.float64) / float(-np.iinfo(data.dtype).min)
    if np.issubdtype(data.dtype, np.floating):
        return data.astype(np.float64)
    raise ValueError(f"{file}: unsupported WAV sample type {data.dtype}; expected PCM integers or floats")


def read_wav_folder(folder: str | Path, config: NoteConfig | None = None, *, label_by_pitch: bool = True) -> Notes:
    """Every ``*.wav`` of ``folder`` (sorted by name) as clips of ``config.n_samples`` samples.

    Each file must be mono at ``config.sample_rate`` (otherwise a ``ValueError`` names the file, its
    rate or channel count, and how to convert it); a clip is the file's first ``n_samples`` samples,
    zero-padded when shorter. With ``label_by_pitch`` the label of a clip is its pitch class: the
    nearest MIDI note to its YIN estimate (:func:`sdeflow.applications.audio.pitch.estimate_f0`),
    minus ``midi_low``; a file without a detectable pitch, or with one outside the configured range,
    is refused by name. ``f0`` holds the estimates (Hz).
    """
    from scipy.io import wavfile

    from .pitch import estimate_f0

    cfg = config if config is not None else NoteConfig()
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"the WAV folder {str(root)!r} does not exist or is not a folder")
    files = sorted(p for p in root.iterdir() if p.suffix.lower() == ".wav" and p.is_file())
    if not files:
        raise ValueError(f"the folder {str(root)!r} holds no .wav files")
    clips = np.zeros((len(files), cfg.n_samples), dtype=np.float64)
    for i, file in enumerate(files):
        try:
            rate, data = wavfile.read(file)
        except (ValueError, OSError) as err:
            raise ValueError(f"{file}: not a readable WAV file ({err})") from err
        if rate != cfg.sample_rate:
            raise ValueError(
                f"{file}: sample rate {rate} Hz; expected {cfg.sample_rate} Hz (resample it, e.g. "
                f"`sox in.wav -r {cfg.sample_rate} out.wav`, or set the sample rate to {rate})"
            )
        if data.ndim != 1:
            raise ValueError(f"{file}: {data.shape[1]} channels; expected mono (1 channel): mix it down, e.g. `sox in.wav -c 1 out.wav`")
        if data.shape[0] == 0:
            raise ValueError(f"{file}: the WAV file holds no samples")
        x = _as_float(data, file)[: cfg.n_samples]
        clips[i, : x.shape[0]] = x
    audio = torch.from_numpy(clips.astype(np.float32))
    f0 = estimate_f0(audio, cfg.sample_rate)
    labels = torch.zeros(len(files), dtype=torch.int64)
    if label_by_pitch:
        for i, file in enumerate(files):
            if not math.isfinite(float(f0[i])):
                raise ValueError(f"{file}: no pitch detected (silent or unpitched); pitch-conditional training needs pitched notes")
            k = int(round(float(hz_to_midi(float(f0[i]))))) - cfg.midi_low
            if not 0 <= k < cfg.n_pitches:
                raise ValueError(
                    f"{file}: estimated pitch {float(f0[i]):.1f} Hz (MIDI {float(hz_to_midi(float(f0[i]))):.1f}) lies outside "
                    f"the configured MIDI range [{cfg.midi_low}, {cfg.midi_low + cfg.n_pitches - 1}]; widen it (midi_low, n_pitches)"
                )
            labels[i] = k
    return Notes(audio, labels, f0.to(torch.float64))


def write_wav(path: str | Path, audio: torch.Tensor, sample_rate: int) -> None:
    """Write a mono clip ``(n_samples,)`` as 16-bit PCM (values clipped to ``[-1, 1]``)."""
    from scipy.io import wavfile

    check_positive(sample_rate, "sample_rate")
    x = np.clip(audio.detach().cpu().double().numpy(), -1.0, 1.0)
    wavfile.write(str(path), int(sample_rate), np.round(x * 32767.0).astype(np.int16))
