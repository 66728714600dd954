"""``sdeflow audio train|sample``: pitch-conditional generation of short musical notes.

Thin: parses, validates and calls :mod:`sdeflow.applications.audio`. ``train`` fits the 1-D U-Net on
log-mel spectrograms of synthesized notes (or a folder of WAV files) and writes a run folder;
``sample`` draws notes of chosen pitches from it with classifier-free guidance, inverts them to
WAV files (Griffin-Lim), draws their spectrograms and measures pitch accuracy and the Frechet
distance, each beside its floor (held-out real notes).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

__all__ = ["register", "run_audio"]

# Flags that belong to one action only, with their defaults (given with the other action: an error).
_TRAIN_ONLY = {"--data": "notes", "--n-train": 2000, "--steps": 3000, "--batch-size": 64, "--lr": 1e-3, "--channels": 32,
               "--objective": "fm", "--resume": False, "--ckpt-every": 500}
_SAMPLE_ONLY = {"--ckpt": None, "--n": 48, "--pitch": None, "--guidance": 2.0, "--solver": "heun", "--sample-steps": 24,
                "--wav": 12, "--no-metrics": False}


def register(subparsers) -> None:
    """Add the ``audio`` command."""
    from ._common import add_json_option
    from .train import _positive_int

    p = subparsers.add_parser(
        "audio",
        help="pitch-conditional generation of short notes: `audio train` a 1-D U-Net on log-mel spectrograms, `audio sample` WAVs + metrics",
        description=(
            "`sdeflow audio train`: train a pitch-conditional 1-D U-Net (classifier-free guidance) on log-mel spectrograms of "
            "synthesized notes (--data notes) or of a folder of mono WAV files at 8 kHz (labels: each file's YIN pitch). "
            "`sdeflow audio sample --ckpt RUN`: draw notes of every pitch (or --pitch K), write WAV files (Griffin-Lim), "
            "a spectrogram picture and the metrics (pitch accuracy, Frechet distance in the shipped pitch classifier's "
            "features) beside their floors. docs/audio.md shows a run."
        ),
    )
    p.add_argument("action", choices=["train", "sample"], help="train a model, or sample one")
    t = p.add_argument_group("train options")
    t.add_argument("--data", default="notes", help="'notes' (synthesized) or a folder of mono 8 kHz WAV files")
    t.add_argument("--n-train", type=_positive_int, default=2000, help="synthesized training notes (with --data notes)")
    t.add_argument("--steps", type=_positive_int, default=3000, help="optimizer steps")
    t.add_argument("--batch-size", type=_positive_int, default=64, help="minibatch size")
    t.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (AdamW, warm-up then cosine)")
    t.add_argument("--channels", type=_positive_int, default=32, help="base width of the 1-D U-Net (levels x1, x2, x2)")
    t.add_argument("--objective", choices=["fm", "dsm"], default="fm", help="flow matching on the linear path, or DSM on VP")
    t.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    t.add_argument("--ckpt-every", type=int, default=500, help="steps between checkpoints (0: only at the end)")
    s = p.add_argument_group("sample options")
    s.add_argument("--ckpt", default=None, help="an audio run folder or checkpoint (from `sdeflow audio train`)")
    s.add_argument("--n", "--num-samples", dest="n", type=_positive_int, default=48, help="notes to draw (pitches in turn, or all --pitch)")
    s.add_argument("--pitch", type=int, default=None, help="draw only this pitch class (0 = the lowest MIDI note of the run)")
    s.add_argument("--guidance", type=float, default=2.0, help="classifier-free guidance weight (1: the conditional model)")
    s.add_argument("--solver", default="heun", help="any registered solver (sdeflow solvers)")
    s.add_argument("--sample-steps", type=_positive_int, default=24, help="solver steps")
    s.add_argument("--wav", type=int, default=12, help="how many of the notes to write as WAV files (at most --n)")
    s.add_argument("--no-metrics", action="store_true", help="skip the metrics (they synthesize 2 n held-out notes)")
    p.add_argument("--seed", type=int, default=0, help="train: seed of the weights, notes and every draw; sample: first per-sample seed")
    p.add_argument("--out", type=Path, default=None, help="run folder (train) or results folder (sample); default ./sdeflow-audio-N")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run or earlier results in --out")
    add_json_option(p)
    p.set_defaults(func=run_audio)


def _given(args: argparse.Namespace, flags: dict) -> list[str]:
    return [f for f, default in flags.items() if getattr(args, f[2:].replace("-", "_")) != default]


def run_audio(args: argparse.Namespace) -> int:
    """``sdeflow audio``."""
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0; got {args.seed}")
    wrong = _given(args, _SAMPLE_ONLY if args.action == "train" else _TRAIN_ONLY)
    if wrong:
        raise ValueError(f"{', '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} not an option of `sdeflow audio {args.action}`")
    return _train(args) if args.action == "train" else _sample(args)


def _train(args: argparse.Namespace) -> int:
    from ..applications.audio import AudioTrainConfig, train_audio
    from ..training import check_run_dir
    from ._common import check_writable, emit, fresh_dir

    if not math.isfinite(args.lr) or args.lr <= 0:
        raise ValueError(f"--lr must be a finite number > 0; got {args.lr}")
    if args.ckpt_every < 0:
        raise ValueError(f"--ckpt-every must be >= 0; got {args.ckpt_every}")
    if args.channels < 8:
        raise ValueError(f"--channels must be >= 8; got {args.channels}")
    if args.resume and args.overwrite:
        raise ValueError("--resume continues the run in --out and --overwrite replaces it; give one of them")
    if args.data != "notes" and not Path(args.data).is_dir():
        raise ValueError(f"--data must be 'notes' or a folder of WAV files; {args.data!r} is neither")
    if args.resume and args.out is None:
        raise ValueError("--resume needs --out, the run folder to continue")
    out = args.out if args.out is not None else fresh_dir("sdeflow-audio")
    check_run_dir(out, resume=args.resume, overwrite=args.overwrite, name="--out")
    check_writable(out, "--out")
    cfg = AudioTrainConfig(channels=args.channels, objective=args.objective, steps=args.steps, batch_size=args.batch_size,
                           lr=args.lr, seed=args.seed, ckpt_every=args.ckpt_every, progress=not args.quiet)
    summary = train_audio(out, cfg, data=args.data, n_train=args.n_train, resume=args.resume, overwrite=args.overwrite)
    report = {k: summary[k] for k in ("steps", "final_loss", "train_seconds", "train_cpu_seconds", "n_train", "checkpoint")}
    report["out"] = str(out)
    emit(args, report, f"trained {report['steps']} steps on {report['n_train']} notes in {report['train_seconds']:.0f} s "
                       f"({report['train_cpu_seconds']:.0f} s CPU); final loss {report['final_loss']:.4g}\n"
                       f"checkpoint {report['checkpoint']}\nsample with: sdeflow audio sample --ckpt {out}")
    return 0


def _sample(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from ..applications.audio import audio_metrics, balanced_labels, generate, load_audio_data, load_audio_model, write_wav
    from ..applications.audio.pipeline import HELDOUT_SEED, nan_to_none
    from ..applications.audio.plots import note_name, spectrogram_rows
    from ..solvers import available as solver_names
    from ._common import emit, prepare_out_dir, write_json

    if args.ckpt is None:
        raise ValueError("`sdeflow audio sample` needs --ckpt, a run folder of `sdeflow audio train`")
    if not Path(args.ckpt).exists():
        raise ValueError(f"--ckpt {args.ckpt} does not exist")
    if args.solver not in solver_names():
        raise ValueError(f"--solver {args.solver!r} is not a registered solver; one of {sorted(solver_names())}")
    if args.wav < 0:
        raise ValueError(f"--wav must be >= 0 (0: no WAV files); got {args.wav}")
    if not np.isfinite(args.guidance):
        raise ValueError(f"--guidance must be a finite number; got {args.guidance}")
    if not args.no_metrics and args.n < 2:
        raise ValueError("the metrics need --n >= 2 (or pass --no-metrics)")
    out = prepare_out_dir(args.out, "sdeflow-audio", ["samples.npz", "report.json", "spectrograms.png", "wav"], args.overwrite)
    try:
        model, process, rep, ncfg, transform = load_audio_model(args.ckpt)
    except FileNotFoundError as err:
        raise ValueError(f"--ckpt {args.ckpt}: {err}") from err
    if args.pitch is not None and not 0 <= args.pitch < ncfg.n_pitches:
        raise ValueError(f"--pitch must be a pitch class in [0, {ncfg.n_pitches - 1}] (MIDI {ncfg.midi_low}..); got {args.pitch}")
    labels = balanced_labels(args.n, ncfg.n_pitches, args.pitch)
    logmel = generate(model, process, rep, transform, labels, solver=args.solver, steps=args.sample_steps,
                      guidance=args.guidance, seed=args.seed)
    audio = rep.decode(logmel)
    wav_dir = out / "wav"
    wav_dir.mkdir(exist_ok=True)
    for i in range(min(args.wav, args.n)):
        write_wav(wav_dir / f"{i:03d}_{note_name(ncfg.midi_low + int(labels[i])).replace('#', 's')}.wav", audio[i], rep.sample_rate)
    np.savez(out / "samples.npz", logmel=logmel.numpy(), labels=labels.numpy(), audio=audio.numpy())
    real = load_audio_data("notes", min(6, args.n), seed=HELDOUT_SEED, representation=rep, notes_config=ncfg)
    order = torch.argsort(real[0].labels)
    spectrogram_rows(out / "spectrograms.png", {"generated": (logmel[:6], labels[:6]), "real": (real[1][order], real[0].labels[order])},
                     midi_low=ncfg.midi_low, hop_seconds=rep.hop / rep.sample_rate, fmax=rep.fmax or rep.sample_rate / 2,
                     title=f"log-mel spectrograms: generated (guidance {args.guidance}) and real notes")
    report = {"n": args.n, "solver": args.solver, "steps": args.sample_steps, "guidance": args.guidance, "out": str(out)}
    text = f"{args.n} notes, WAV files and spectrograms.png in {out}"
    if not args.no_metrics:
        m = nan_to_none(audio_metrics(logmel, audio, labels, rep, ncfg))
        report.update(m)
        text += (f"\npitch accuracy {m['pitch_accuracy']:.3f} (real notes {m['pitch_accuracy_real']:.3f}, their log-mel round trip "
                 f"{m['pitch_accuracy_roundtrip']:.3f}); Frechet distance {m['frechet']:.3g} (floor {m['frechet_floor']:.3g}); "
                 f"classifier agreement {m['classifier_agreement']:.3f} (real {m['classifier_agreement_real']:.3f})")
    write_json(out / "report.json", report)
    emit(args, report, text)
    return 0
