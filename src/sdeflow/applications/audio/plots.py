"""Spectrogram pictures: log-mel spectrograms in dB, one panel each, grouped in labelled rows."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch

__all__ = ["spectrogram_rows"]

_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def note_name(midi: int) -> str:
    """``60 -> 'C4'`` (scientific pitch notation)."""
    return f"{_NAMES[midi % 12]}{midi // 12 - 1}"


def spectrogram_rows(
    path: str | Path,
    rows: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
    *,
    midi_low: int,
    hop_seconds: float,
    fmax: float,
    ncol: int = 6,
    db_range: tuple[float, float] = (-90.0, 0.0),
    title: str = "",
) -> Path:
    """One row of ``ncol`` spectrograms per entry of ``rows`` (``label -> (logmel (n, n_mels, frames) dB, pitch classes (n,))``).

    Each panel is titled with its note name (``midi_low + class``); the vertical axis is the mel
    bin (low frequencies at the bottom), the horizontal one time in ms.
    """
    from ...plots import _plt, _save

    plt = _plt()
    fig, axes = plt.subplots(len(rows), ncol, figsize=(1.7 * ncol + 0.8, 1.9 * len(rows)), squeeze=False)
    image = None
    for r, (label, (logmel, labels)) in enumerate(rows.items()):
        for c in range(ncol):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= logmel.shape[0]:
                ax.axis("off")
                continue
            z = logmel[c].detach().double().cpu().numpy()
            extent = [0.0, 1000.0 * hop_seconds * (z.shape[1] - 1), 0.0, fmax]
            image = ax.imshow(z, origin="lower", aspect="auto", cmap="magma", vmin=db_range[0], vmax=db_range[1], extent=extent)
            ax.set_title(note_name(midi_low + int(labels[c])), fontsize=8)
            if c == 0:
                ax.set_ylabel(label, fontsize=9)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label="dB (mel power)")
    fig.text(0.01, 0.01, "mel bins (low at the bottom) over time", fontsize=7)

    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)
