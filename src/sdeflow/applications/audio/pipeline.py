"""Pitch-conditional generation of short notes, end to end: data, model, training, sampling, metrics.

* **Representation**: log-mel spectrograms in dB (:class:`~sdeflow.applications.audio.LogMel`,
  default ``(80 mels, 32 frames)`` for 0.248 s at 8 kHz), normalized for the model by the training
  set's scalar mean and standard deviation (stored in the checkpoint as its ``transform``), inverted
  to waveforms by NNLS + Griffin-Lim.
* **Model**: the library's U-Net in its 1-D form (:class:`sdeflow.nn.UNet` with
  ``image_size=(frames,)``): mel bins are channels, convolutions run over time; class labels are the
  pitch classes and label dropout (10%) trains the null label of classifier-free guidance
  (Ho & Salimans 2022).
* **Training**: :class:`sdeflow.training.Trainer` with conditional flow matching on the linear path
  (velocity prediction; Lipman et al. 2023) by default, or denoising score matching on VP.
* **Sampling**: :func:`sdeflow.sample` through :func:`sdeflow.training.draw_samples` (any registered
  solver), the model guided by :meth:`~sdeflow.training.DiffusionModel.guided` (per-sample pitch).
* **Metrics**: pitch accuracy (YIN on the Griffin-Lim waveforms against the asked pitch), the Frechet
  distance in the shipped pitch classifier's features against held-out notes, each beside its floor
  (a second held-out sample of real notes; for pitch, real notes and their own log-mel round trip).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..._utils import check_int
from .notes import NoteConfig, Notes, notes, read_wav_folder
from .spectrogram import LogMel

__all__ = [
    "AudioTrainConfig",
    "load_audio_data",
    "build_audio_model",
    "train_audio",
    "load_audio_model",
    "generate",
    "audio_metrics",
    "balanced_labels",
    "HELDOUT_SEED",
]

HELDOUT_SEED = 1_000_000
"""Synthesized held-out notes use seeds from here on (two disjoint sets: ``HELDOUT_SEED`` and ``HELDOUT_SEED + 500_000``)."""

OBJECTIVES = ("fm", "dsm")


@dataclass
class AudioTrainConfig:
    """What :func:`train_audio` needs beyond the data: network width, objective and the trainer's options.

    ``channels``/``channel_mults``: the 1-D U-Net's widths (levels halve the frames);
    ``objective``: ``"fm"`` (flow matching on the linear path, velocity) or ``"dsm"`` (VP, eps);
    the rest are :class:`sdeflow.training.TrainConfig`'s.
    """

    channels: int = 64
    channel_mults: tuple[int, ...] = (1, 2, 2)
    objective: str = "fm"
    steps: int = 3000
    batch_size: int = 64
    lr: float = 1e-3
    warmup_steps: int = 100
    ema_decay: float = 0.999
    label_dropout: float = 0.1
    seed: int = 0
    ckpt_every: int | None = None
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_int(self.channels, "channels", minimum=8)
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {list(OBJECTIVES)}; got {self.objective!r}")


def load_audio_data(
    source: str | Path, n: int, *, seed: int = 0, representation: LogMel | None = None, notes_config: NoteConfig | None = None
) -> tuple[Notes, torch.Tensor]:
    """``(notes, logmel dB (n, n_mels, frames))`` from ``"notes"`` (``n`` synthesized, seeds ``seed...``) or a WAV folder (all of it).

    The clip length is the representation's ``n_samples``; a ``notes_config`` with another length is refused.
    """
    rep = representation or LogMel()
    cfg = notes_config or NoteConfig(sample_rate=rep.sample_rate, n_samples=rep.n_samples)
    if cfg.n_samples != rep.n_samples or cfg.sample_rate != rep.sample_rate:
        raise ValueError(
            f"notes_config ({cfg.n_samples} samples at {cfg.sample_rate} Hz) must match the representation's clips "
            f"({rep.n_samples} samples at {rep.sample_rate} Hz)"
        )
    if str(source) == "notes":
        data = notes(check_int(n, "n"), cfg, seed=seed)
    else:
        data = read_wav_folder(source, cfg)
    return data, rep.encode(data.audio)


def build_audio_model(representation: LogMel, n_pitches: int, config: AudioTrainConfig):
    """The 1-D U-Net :class:`~sdeflow.training.DiffusionModel` and its objective for ``config.objective``."""
    from ...nn import UNet
    from ...training import DenoisingScoreMatching, DiffusionModel, FlowMatching

    objective = FlowMatching() if config.objective == "fm" else DenoisingScoreMatching("vp", "eps")
    net = UNet(
        representation.n_mels, (representation.frames,), config.channels, tuple(config.channel_mults), 1,
        num_classes=n_pitches, seed=config.seed,
    )
    return DiffusionModel(net, objective.process, objective.prediction), objective


def train_audio(
    out_dir: str | Path | None,
    config: AudioTrainConfig | None = None,
    *,
    data: str | Path = "notes",
    n_train: int = 2000,
    representation: LogMel | None = None,
    notes_config: NoteConfig | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train a pitch-conditional model; returns a summary (loss, seconds, process CPU seconds, checkpoint, result).

    The checkpoint's ``data`` section records the representation, the note configuration and the
    normalization, so :func:`load_audio_model` and ``sdeflow audio sample`` need nothing else.
    """
    from ...training import TrainConfig, Trainer

    cfg = config or AudioTrainConfig()
    rep = representation or LogMel()
    ncfg = notes_config or NoteConfig(sample_rate=rep.sample_rate, n_samples=rep.n_samples)
    clips, logmel = load_audio_data(data, n_train, seed=cfg.seed, representation=rep, notes_config=ncfg)
    shift, scale = float(logmel.double().mean()), float(logmel.double().std())
    x = ((logmel - shift) / scale).float()
    model, objective = build_audio_model(rep, ncfg.n_pitches, cfg)
    tcfg = TrainConfig(
        steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, warmup_steps=min(cfg.warmup_steps, cfg.steps),
        ema_decay=cfg.ema_decay, label_dropout=cfg.label_dropout, seed=cfg.seed, ckpt_every=cfg.ckpt_every,
        progress=cfg.progress, log_every=max(1, min(50, cfg.steps)), **cfg.extra,
    )
    info = {
        "name": "audio:" + (str(data) if str(data) == "notes" else Path(data).name),
        "kind": "audio",
        "transform": {"shift": shift, "scale": scale},
        "num_classes": ncfg.n_pitches,
        "audio": {"logmel": rep.to_dict(), "notes": ncfg.to_dict(), "n_train": int(x.shape[0])},
    }
    trainer = Trainer(model, objective, x, labels=clips.labels, config=tcfg, out_dir=out_dir, data_info=info)
    tic, cpu = time.perf_counter(), time.process_time()
    result = trainer.fit(resume=resume, overwrite=overwrite)
    return {
        "steps": result.step,
        "final_loss": result.history[-1]["loss"] if result.history else None,
        "train_seconds": time.perf_counter() - tic,
        "train_cpu_seconds": time.process_time() - cpu,
        "n_train": int(x.shape[0]),
        "checkpoint": str(result.checkpoint) if result.checkpoint is not None else None,
        "result": result,
        "representation": rep,
        "notes_config": ncfg,
        "transform": info["transform"],
    }


def load_audio_model(ckpt: str | Path):
    """``(model, process, representation, notes_config, transform)`` of an audio checkpoint (run folder or checkpoint)."""
    from ...training import load_checkpoint_model

    model, process, _, config = load_checkpoint_model(ckpt)
    audio = config.get("data", {}).get("audio")
    if config.get("data", {}).get("kind") != "audio" or not isinstance(audio, dict):
        raise ValueError(f"{ckpt} is not an audio checkpoint (written by `sdeflow audio train` / train_audio); its data is {config.get('data', {}).get('name')!r}")
    stored = dict(audio["notes"])
    ncfg = NoteConfig(**{**stored, "snr_db": tuple(stored.get("snr_db", (20.0, 40.0)))})
    return model, process, LogMel(**audio["logmel"]), ncfg, config["data"]["transform"]


def generate(
    model, process, representation: LogMel, transform: dict, labels: torch.Tensor, *,
    solver: str | None = "heun", steps: int | None = 32, guidance: float = 2.0, seed: int = 0, batch_size: int = 256,
) -> torch.Tensor:
    """Log-mel spectrograms in dB ``(n, n_mels, frames)`` of the pitch classes ``labels`` ``(n,)``.

    Sample ``i`` starts from the prior noise of seed ``seed + i``; classifier-free guidance ``guidance``
    (1: the plain conditional model).
    """
    from ...data.sources import transform_to_data
    from ...training import draw_samples

    if not isinstance(labels, torch.Tensor) or labels.ndim != 1 or labels.is_floating_point():
        raise ValueError(f"labels must be an integer (n,) tensor of pitch classes; got {labels!r:.80}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= model.num_classes):
        raise ValueError(f"labels must be pitch classes in [0, {model.num_classes - 1}]; got values in [{int(labels.min())}, {int(labels.max())}]")
    z = draw_samples(
        model, process, representation.event_shape, labels.numel(), solver=solver, steps=steps, seed=seed,
        label=labels, guidance=guidance, batch_size=batch_size,
    )
    return transform_to_data(z, transform).float()


def audio_metrics(
    logmel: torch.Tensor,
    audio: torch.Tensor,
    labels: torch.Tensor,
    representation: LogMel,
    notes_config: NoteConfig,
    *,
    reference: tuple[Notes, torch.Tensor] | None = None,
    floor: tuple[Notes, torch.Tensor] | None = None,
    classifier=None,
) -> dict[str, Any]:
    """The metrics of generated notes (``logmel`` dB, their waveforms ``audio``, asked pitch classes ``labels``), each with its floor.

    ``reference`` and ``floor`` are two disjoint sets of real notes (default: ``len(labels)``
    synthesized notes each, seeds ``HELDOUT_SEED`` and ``HELDOUT_SEED + 500_000``):

    * ``pitch_accuracy``: the fraction of samples within 50 cents of the asked pitch (YIN on the
      waveforms); ``pitch_accuracy_real``: the same for the reference notes themselves, and
      ``pitch_accuracy_roundtrip``: for their log-mel -> Griffin-Lim reconstructions (the ceiling of
      the representation); ``median_abs_cents`` likewise;
    * ``frechet``: Frechet distance between the classifier features of the samples and of the
      reference; ``frechet_floor``: between the floor set and the reference (same sizes);
    * ``classifier_agreement``: the fraction of samples the classifier labels with the asked pitch
      (``..._real`` for the reference).
    """
    from ...metrics import frechet_distance
    from .classifier import pitch_classifier
    from .pitch import pitch_accuracy

    n = labels.numel()
    if n < 2:
        raise ValueError(f"metrics need at least 2 samples; got {n}")
    if reference is None:
        reference = load_audio_data("notes", n, seed=HELDOUT_SEED, representation=representation, notes_config=notes_config)
    if floor is None:
        floor = load_audio_data("notes", n, seed=HELDOUT_SEED + 500_000, representation=representation, notes_config=notes_config)
    clf = classifier or pitch_classifier()
    sr, low = representation.sample_rate, notes_config.midi_low
    gen = pitch_accuracy(audio, labels, sr, low)
    real = pitch_accuracy(reference[0].audio, reference[0].labels, sr, low)
    trip = pitch_accuracy(representation.decode(reference[1]), reference[0].labels, sr, low)
    with torch.no_grad():
        f_gen, f_ref, f_floor = (clf.features(z).double() for z in (logmel, reference[1], floor[1]))
        agree = float((clf.head(f_gen.float()).argmax(-1) == labels).double().mean())
        agree_real = float((clf.head(f_ref.float()).argmax(-1) == reference[0].labels).double().mean())
    return {
        "n": n,
        "pitch_accuracy": gen["accuracy"],
        "median_abs_cents": gen["median_abs_cents"],
        "unvoiced": gen["unvoiced"],
        "pitch_accuracy_real": real["accuracy"],
        "median_abs_cents_real": real["median_abs_cents"],
        "pitch_accuracy_roundtrip": trip["accuracy"],
        "median_abs_cents_roundtrip": trip["median_abs_cents"],
        "frechet": frechet_distance(f_gen, f_ref),
        "frechet_floor": frechet_distance(f_floor, f_ref),
        "classifier_agreement": agree,
        "classifier_agreement_real": agree_real,
    }


def balanced_labels(n: int, n_pitches: int, pitch: int | None = None) -> torch.Tensor:
    """``(n,)`` pitch classes: all ``pitch``, or ``0, 1, ..., n_pitches - 1, 0, 1, ...`` (every pitch equally often)."""
    check_int(n, "n")
    if pitch is not None:
        if not 0 <= int(pitch) < n_pitches:
            raise ValueError(f"pitch must be a pitch class in [0, {n_pitches - 1}]; got {pitch}")
        return torch.full((n,), int(pitch), dtype=torch.int64)
    return torch.arange(n, dtype=torch.int64) % n_pitches


def nan_to_none(report: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready: NaN floats become ``None``."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in report.items()}
