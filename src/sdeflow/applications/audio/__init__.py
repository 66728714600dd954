"""Audio: pitch-conditional generation of short musical notes (``sdeflow audio train|sample``).

=======================================  ===============================================================
:mod:`~.notes`                           the note synthesizer (harmonic tones, timbre, ADSR, noise) and the WAV-folder reader
:mod:`~.spectrogram`                     log-mel spectrograms and their inversion (NNLS + fast Griffin-Lim)
:mod:`~.pitch`                           YIN fundamental-frequency estimation, cents, pitch accuracy
:mod:`~.classifier`                      the shipped pitch classifier (Frechet-distance features)
:mod:`~.pipeline`                        data -> 1-D U-Net -> Trainer -> sample -> metrics with their floors
:mod:`~.plots`                           spectrogram pictures
=======================================  ===============================================================

The page ``docs/audio.md`` walks through it with the measured figures.
"""

from .classifier import PitchClassifier, pitch_classifier, train_pitch_classifier
from .notes import NoteConfig, Notes, hz_to_midi, midi_to_hz, notes, read_wav_folder, write_wav
from .pipeline import (
    AudioTrainConfig,
    audio_metrics,
    balanced_labels,
    build_audio_model,
    generate,
    load_audio_data,
    load_audio_model,
    train_audio,
)
from .pitch import cents, estimate_f0, pitch_accuracy, yin
from .plots import spectrogram_rows
from .spectrogram import LogMel, griffin_lim, mel_filterbank

__all__ = [
    "NoteConfig",
    "Notes",
    "notes",
    "read_wav_folder",
    "write_wav",
    "midi_to_hz",
    "hz_to_midi",
    "LogMel",
    "mel_filterbank",
    "griffin_lim",
    "yin",
    "estimate_f0",
    "cents",
    "pitch_accuracy",
    "PitchClassifier",
    "pitch_classifier",
    "train_pitch_classifier",
    "AudioTrainConfig",
    "load_audio_data",
    "build_audio_model",
    "train_audio",
    "load_audio_model",
    "generate",
    "audio_metrics",
    "balanced_labels",
    "spectrogram_rows",
]
