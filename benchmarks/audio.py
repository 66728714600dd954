"""Pitch-conditional notes (issue 18, audio): training time and metrics beside their floors.

Trains the audio application's 1-D U-Net (`sdeflow.applications.audio.train_audio`, flow matching,
``--channels`` base width, levels x1 x2 x2) on ``--n-train`` synthesized notes for ``--steps`` steps
(batch 64, one thread), then draws ``--n`` notes (every pitch equally often) with Heun at
``--sample-steps`` steps for each guidance weight of ``--guidance``, inverts them by Griffin-Lim and
measures them with `audio_metrics`:

- pitch accuracy by YIN, against real notes and their log-mel round trip;
- the Frechet distance in the shipped pitch classifier's features, against its floor (two held-out
  sets of ``--n`` real notes);
- the classifier's agreement with the asked pitch.

It reports the training wall time and process CPU time, and the load average of the machine.
Writes BENCHMARKS-audio.md and benchmarks/results/audio.json.

    OMP_NUM_THREADS=1 python benchmarks/audio.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from sdeflow.applications.audio import AudioTrainConfig, audio_metrics, balanced_labels, generate, load_audio_model, train_audio

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a smoke run: 150 steps, 16 channels, 400 notes, 48 samples")
    p.add_argument("--steps", type=int, default=1500, help="optimizer steps")
    p.add_argument("--n-train", type=int, default=2000, help="synthesized training notes")
    p.add_argument("--channels", type=int, default=32, help="base width of the U-Net")
    p.add_argument("--n", type=int, default=240, help="samples (and held-out notes per set) for the metrics")
    p.add_argument("--sample-steps", type=int, default=24, help="Heun steps")
    p.add_argument("--guidance", type=float, nargs="+", default=[1.0, 2.0], help="guidance weights")
    p.add_argument("--report", type=Path, default=ROOT / "BENCHMARKS-audio.md")
    p.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "audio.json")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.channels, args.n_train, args.n = 150, 16, 400, 48
    torch.set_num_threads(1)
    out: dict = {"load_average_1min_start": round(os.getloadavg()[0], 2), "steps": args.steps, "n_train": args.n_train,
                 "channels": args.channels, "n": args.n, "sample_steps": args.sample_steps}
    with tempfile.TemporaryDirectory() as tmp:
        summary = train_audio(Path(tmp) / "run", AudioTrainConfig(steps=args.steps, channels=args.channels), n_train=args.n_train)
        out.update({k: summary[k] for k in ("final_loss", "train_seconds", "train_cpu_seconds")})
        model, process, rep, ncfg, transform = load_audio_model(Path(tmp) / "run")
    labels = balanced_labels(args.n, ncfg.n_pitches)
    out["guidance"] = {}
    for g in args.guidance:
        tic = time.process_time()
        logmel = generate(model, process, rep, transform, labels, steps=args.sample_steps, guidance=g)
        m = audio_metrics(logmel, rep.decode(logmel), labels, rep, ncfg)
        m["cpu_seconds"] = time.process_time() - tic
        out["guidance"][str(g)] = m
        print(g, json.dumps(m), flush=True)
    out["load_average_1min_end"] = round(os.getloadavg()[0], 2)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    args.report.write_text(render(out, argv))
    print(f"wrote {args.report} and {args.json}")
    return 0


def render(out: dict, argv) -> str:
    cmd = "OMP_NUM_THREADS=1 python benchmarks/audio.py" + ("" if not argv else " " + " ".join(argv))
    first = next(iter(out["guidance"].values()))
    lines = [
        "## Audio: pitch-conditional notes",
        "",
        f"`{cmd}`. Machine: 2 shared CPU cores, one torch thread; 1-minute load average "
        f"{out['load_average_1min_start']} at the start and {out['load_average_1min_end']} at the end.",
        "",
        f"**Training.** {out['steps']} steps on {out['n_train']} synthesized notes with a {out['channels']}-channel "
        f"1-D U-Net: {out['train_seconds']:.0f} s of wall time and {out['train_cpu_seconds']:.0f} s of process CPU. "
        f"The final loss was {out['final_loss']:.3f}.",
        "",
        f"**Metrics.** {out['n']} samples by Heun with {out['sample_steps']} steps, measured against {out['n']} held-out "
        f"notes. The floor is a second held-out set of the same size.",
        "",
        "| guidance | pitch accuracy | median cents | Frechet | classifier agreement | CPU s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for g, m in out["guidance"].items():
        lines.append(f"| {g} | {m['pitch_accuracy']:.3f} | {m['median_abs_cents']:.1f} | {m['frechet']:.1f} | "
                     f"{m['classifier_agreement']:.3f} | {m['cpu_seconds']:.0f} |")
    lines.append(f"| real notes (floor) | {first['pitch_accuracy_real']:.3f} (round trip {first['pitch_accuracy_roundtrip']:.3f}) | "
                 f"{first['median_abs_cents_real']:.1f} | {first['frechet_floor']:.1f} | {first['classifier_agreement_real']:.3f} | |")
    lines += ["", "Real notes are detuned by up to ±10 cents, so their median distance to the nominal pitch is about 5 cents. "
              "Guide and discussion: [docs/audio.md](docs/audio.md).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
