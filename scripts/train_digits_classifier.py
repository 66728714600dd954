"""Regenerate the shipped digits feature classifier ``src/sdeflow/data/digits_classifier.safetensors``.

Usage: ``python scripts/train_digits_classifier.py [--seed 0]``. Training is deterministic from the
seed (single thread); it prints the held-out accuracy and the file's size.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from safetensors.torch import save_file

from sdeflow.data.digits import CLASSIFIER_FILE, load_digits, train_digits_classifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "src" / "sdeflow" / "data" / CLASSIFIER_FILE)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = train_digits_classifier(args.seed)
    test = load_digits("test")
    with torch.no_grad():
        acc = (model(test.images).argmax(-1) == test.labels).float().mean().item()
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(args.out), metadata={"seed": str(args.seed), "heldout_accuracy": f"{acc:.4f}"})
    print(f"held-out accuracy {acc:.4f}; wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
