"""``sdeflow train-autoencoder``: a convolutional autoencoder (or VAE) for latent diffusion, with its latent statistics.

Thin: parses, validates and calls :func:`sdeflow.latent.train_autoencoder`. Train a latent model on
it with ``sdeflow train --data DATA --latent OUT --objective dsm``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["register", "run_train_autoencoder"]


def register(subparsers) -> None:
    """Add the ``train-autoencoder`` command."""
    from ._common import add_json_option
    from .train import _int_list, _positive_int

    p = subparsers.add_parser(
        "train-autoencoder",
        help="train a convolutional autoencoder (or VAE) for latent diffusion; its latent statistics go into the checkpoint",
        description=(
            "Train a convolutional autoencoder on image data (digits, a .npy/.npz/.pt file or a folder of images). After training "
            "the per-channel mean and standard deviation of the training latents are computed and stored in the checkpoint; "
            "`sdeflow train --latent OUT` normalizes with them (never with a hand-typed scaling factor)."
        ),
    )
    p.add_argument("--data", required=True, help="image data name or path")
    p.add_argument("--data-key", default=None, help="array name inside an .npz/.pt file")
    p.add_argument("--latent-channels", type=_positive_int, default=2, help="channels of the latent")
    p.add_argument("--channels", type=_positive_int, default=32, help="base width of the encoder and decoder")
    p.add_argument("--channel-mults", type=_int_list, default=[1, 2], help="widths of the stages; each stage after the first halves H and W")
    p.add_argument("--kl-weight", type=float, default=0.0, help="> 0: a variational autoencoder with this KL weight (e.g. 1e-4)")
    p.add_argument("--steps", type=_positive_int, default=2000, help="optimizer steps")
    p.add_argument("--batch-size", type=_positive_int, default=128, help="minibatch size")
    p.add_argument("--lr", type=float, default=2e-3, help="learning rate (AdamW)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and of every random draw")
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoints)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    p.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    p.add_argument("--ckpt-every", type=int, default=500, help="steps between checkpoints (0: only at the end)")
    add_json_option(p)
    p.set_defaults(func=run_train_autoencoder)


def run_train_autoencoder(args: argparse.Namespace) -> int:
    """``sdeflow train-autoencoder``."""
    from ..data import get_data
    from ..latent import AutoencoderConfig, ConvAutoencoder, train_autoencoder
    from ..training import check_run_dir
    from ._common import check_writable, emit, reading

    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0; got {args.seed}")
    if args.kl_weight < 0:
        raise ValueError(f"--kl-weight must be >= 0 (0: a plain autoencoder); got {args.kl_weight}")
    if args.resume and args.overwrite:
        raise ValueError("--resume continues the run in --out and --overwrite replaces it; give one of them")
    check_run_dir(args.out, resume=args.resume, overwrite=args.overwrite, name="--out")
    check_writable(args.out, "--out")
    with reading(args.data, "--data"):
        source = get_data(args.data, seed=args.seed, key=args.data_key)
    if source.kind != "image" or len(source.event_shape) != 3:
        raise ValueError(f"--data {args.data!r} holds items of shape {source.event_shape}; the autoencoder needs images (C, H, W)")
    c, h, w = source.event_shape
    ae = ConvAutoencoder(c, (h, w), latent_channels=args.latent_channels, channels=args.channels, channel_mults=args.channel_mults,
                         variational=args.kl_weight > 0, seed=args.seed)
    config = AutoencoderConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, kl_weight=args.kl_weight, seed=args.seed,
                               ckpt_every=args.ckpt_every, progress=not args.quiet)
    summary = train_autoencoder(ae, source.x, config, out_dir=args.out, resume=args.resume, overwrite=args.overwrite,
                                data_info=source.checkpoint_info(0))
    emit(args, summary, f"reconstruction MSE {summary['reconstruction_mse']:.4g} (model units); latent {summary['latent_shape']}, "
                        f"per-channel mean {[round(v, 4) for v in summary['latent_mean']]}, std {[round(v, 4) for v in summary['latent_std']]}\n"
                        f"checkpoint {summary['checkpoint']}\ntrain a latent model with: sdeflow train --data {args.data} --latent {args.out} --objective dsm")
    return 0
