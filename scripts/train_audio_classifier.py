"""Regenerate the shipped pitch classifier ``src/sdeflow/applications/audio/pitch_classifier.safetensors``.

Usage: ``python scripts/train_audio_classifier.py [--seed 0] [--n 3000]``. Training is deterministic
from the seed (single thread); it prints the held-out accuracy (600 notes of other seeds) and the
file's size.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from safetensors.torch import save_file

from sdeflow.applications.audio.classifier import CLASSIFIER_FILE, train_pitch_classifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=3000, help="training notes")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument(
        "--out", type=Path,
        default=Path(__file__).resolve().parents[1] / "src" / "sdeflow" / "applications" / "audio" / CLASSIFIER_FILE,
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, acc = train_pitch_classifier(args.n, epochs=args.epochs, seed=args.seed)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(args.out), metadata={"seed": str(args.seed), "heldout_accuracy": f"{acc:.4f}"})
    print(f"held-out accuracy {acc:.4f}; wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
