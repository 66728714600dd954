"""A small pitch-class classifier on log-mel spectrograms: the feature space of the audio Frechet distance.

:class:`PitchClassifier` is a 1-D convolutional network over time with the mel bins as channels:
``Conv1d(n_mels, 64, 3) -> SiLU -> Conv1d(64, 64, 3, stride 2) -> SiLU -> mean over time ->
Linear(64, 64) -> SiLU`` (the 64 features) ``-> Linear(64, n_pitches)``. Its input is a log-mel
spectrogram in dB mapped by ``(dB + 50) / 15`` (about zero mean and unit spread on the notes).

It is trained once by :func:`train_pitch_classifier` on synthesized notes (seed 10_000 onwards, a
range no default training run draws) of the default :class:`~sdeflow.applications.audio.NoteConfig`
and :class:`~sdeflow.applications.audio.LogMel`, and shipped beside this module as
``pitch_classifier.safetensors`` (about 120 KB), as the digits classifier is
(:mod:`sdeflow.data.digits`); ``scripts/train_audio_classifier.py`` regenerates it and prints its
held-out accuracy. The Frechet distance of :func:`audio_frechet` is the FID convention
(:func:`sdeflow.metrics.frechet_distance`) on these features.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..._utils import check_int
from ...nn.embeddings import seeded_init

__all__ = ["PitchClassifier", "train_pitch_classifier", "pitch_classifier", "CLASSIFIER_FILE", "TRAIN_SEED"]

CLASSIFIER_FILE = "pitch_classifier.safetensors"
TRAIN_SEED = 10_000
"""The first note seed of the classifier's training notes."""


class PitchClassifier(nn.Module):
    """``(n, n_mels, frames)`` log-mel in dB -> logits ``(n, n_pitches)``; :meth:`features` the 64-wide penultimate layer."""

    def __init__(self, n_mels: int = 80, n_pitches: int = 12, seed: int = 0) -> None:
        super().__init__()
        self.n_mels = check_int(n_mels, "n_mels")
        self.n_pitches = check_int(n_pitches, "n_pitches")
        with seeded_init(seed):
            self.conv = nn.Sequential(
                nn.Conv1d(n_mels, 64, 3, padding=1), nn.SiLU(), nn.Conv1d(64, 64, 3, stride=2, padding=1), nn.SiLU()
            )
            self.body = nn.Sequential(nn.Linear(64, 64), nn.SiLU())
            self.head = nn.Linear(64, n_pitches)

    def features(self, logmel: torch.Tensor) -> torch.Tensor:
        """The penultimate-layer features ``(n, 64)`` of log-mel spectrograms in dB ``(n, n_mels, frames)``."""
        if not isinstance(logmel, torch.Tensor) or logmel.ndim != 3 or logmel.shape[1] != self.n_mels:
            shape = tuple(logmel.shape) if isinstance(logmel, torch.Tensor) else type(logmel).__name__
            raise ValueError(f"the classifier takes log-mel spectrograms (n, {self.n_mels}, frames) in dB; got {shape}")
        h = self.conv((logmel.float() + 50.0) / 15.0)
        return self.body(h.mean(-1))

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(logmel))


def train_pitch_classifier(n: int = 3000, *, epochs: int = 30, batch_size: int = 64, lr: float = 2e-3, seed: int = 0):
    """Train :class:`PitchClassifier` on ``n`` notes of seeds ``TRAIN_SEED ...`` (default configuration).

    AdamW (weight decay 1e-4), cross-entropy, inputs jittered by ``N(0, 1 dB^2)`` so that the features
    are smooth around the data; shuffling and jitter from ``torch.Generator().manual_seed(seed)``.
    Returns ``(model in eval mode, held-out accuracy on 600 notes of seeds 20_000 ...)``.
    """
    from .notes import NoteConfig, notes
    from .spectrogram import LogMel

    rep = LogMel()
    cfg = NoteConfig(n_samples=rep.n_samples)
    data = notes(check_int(n, "n"), cfg, seed=TRAIN_SEED)
    x, y = rep.encode(data.audio), data.labels
    model = PitchClassifier(rep.n_mels, cfg.n_pitches, seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(check_int(epochs, "epochs")):
        perm = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), batch_size):
            idx = perm[start : start + batch_size]
            xb = x[idx] + torch.randn(x[idx].shape, generator=gen)
            loss = nn.functional.cross_entropy(model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    test = notes(600, cfg, seed=2 * TRAIN_SEED)
    with torch.no_grad():
        acc = float((model(rep.encode(test.audio)).argmax(-1) == test.labels).double().mean())
    return model, acc


def pitch_classifier(path: str | Path | None = None) -> PitchClassifier:
    """The shipped classifier (or the one saved at ``path``), in eval mode, on the CPU."""
    from ...data.digits import shipped_weights

    state = shipped_weights(__package__, CLASSIFIER_FILE, path, "scripts/train_audio_classifier.py")
    model = PitchClassifier(state["conv.0.weight"].shape[1], state["head.weight"].shape[0])
    model.load_state_dict(state)
    return model.eval().requires_grad_(False)
