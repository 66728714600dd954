"""Convolutional autoencoders (plain and variational) for latent diffusion, and their training.

:class:`ConvAutoencoder` maps images ``(batch, C, H, W)`` to latents ``(batch, c, H / 2^L, W / 2^L)``
with ``L`` stride-2 stages, and back. With ``variational=True`` the encoder gives a diagonal Gaussian
``q(z | x) = N(m(x), diag(exp(logvar(x))))`` and training adds ``kl_weight * KL(q(z | x) || N(0, I))``
(Kingma & Welling 2014; the small KL weight of Rombach et al. 2022, section 3, keeps the latent
close to a standard scale without blurring). The latent the diffusion model sees is the posterior
mean ``m(x)``.

The latent statistics (per-channel mean and standard deviation over the training latents) are
computed by :func:`latent_statistics` after training and stored in the checkpoint by
:func:`train_autoencoder`; :class:`~sdeflow.latent.LatentModel` normalizes with them. Nobody types
a scaling factor by hand (the pitfall of the 0.18215 hard-coded for Stable Diffusion's VAE).

Training (:func:`train_autoencoder`): AdamW, mean squared reconstruction error (+ the KL term),
step ``k``'s minibatch and noise drawn from a generator seeded by ``(seed, k)`` as in
:class:`~sdeflow.training.Trainer`, checkpoints through :func:`~sdeflow.training.save_checkpoint`
(atomic, with the optimizer state), exact resume from the newest one.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from .._utils import check_int, check_nonnegative, check_positive
from ..nn.embeddings import seeded_init

__all__ = ["ConvAutoencoder", "AutoencoderConfig", "latent_statistics", "train_autoencoder", "AUTOENCODER_KIND"]

AUTOENCODER_KIND = "conv_autoencoder"


def _groups(c: int) -> int:
    return math.gcd(c, 8)


class ConvAutoencoder(nn.Module):
    """A small convolutional autoencoder (optionally variational).

    Args:
        in_channels: image channels ``C``.
        image_size: ``(H, W)``, each divisible by ``2 ** len(channel_mults)``.
        latent_channels: ``c``.
        channels: base width.
        channel_mults: width multipliers of the stride-2 stages (one per halving).
        variational: a VAE (encoder predicts a mean and a log-variance).
        seed: the initial weights are a function of this seed.

    Shapes: ``encode``: ``(batch, C, H, W) -> (batch, c, h, w)``; ``decode`` the reverse.
    """

    kind = AUTOENCODER_KIND

    def __init__(self, in_channels: int, image_size: Sequence[int], latent_channels: int = 2, channels: int = 32,
                 channel_mults: Sequence[int] = (1, 2), variational: bool = False, seed: int = 0) -> None:
        super().__init__()
        check_int(in_channels, "in_channels")
        check_int(latent_channels, "latent_channels")
        check_int(channels, "channels")
        size = tuple(int(v) for v in image_size)
        mults = tuple(int(m) for m in channel_mults)
        if len(size) != 2 or any(v < 1 for v in size):
            raise ValueError(f"image_size must be (H, W); got {image_size!r}")
        if not mults or any(m < 1 for m in mults):
            raise ValueError(f"channel_mults must be positive integers, one per halving; got {channel_mults!r}")
        down = 2 ** (len(mults) - 1)
        if size[0] % down or size[1] % down:
            raise ValueError(f"image_size {size} must be divisible by 2^(len(channel_mults) - 1) = {down}")
        self._config = {"in_channels": in_channels, "image_size": list(size), "latent_channels": latent_channels,
                        "channels": channels, "channel_mults": list(mults), "variational": bool(variational), "seed": seed}
        self.variational = bool(variational)
        self.latent_shape = (latent_channels, size[0] // down, size[1] // down)
        self.event_shape = (in_channels, *size)
        widths = [channels * m for m in mults]
        with seeded_init(seed):
            enc: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, padding=1)]
            for i, w in enumerate(widths):
                enc += [nn.GroupNorm(_groups(w), w), nn.SiLU(), nn.Conv2d(w, w, 3, padding=1)]
                if i + 1 < len(widths):
                    enc += [nn.GroupNorm(_groups(w), w), nn.SiLU(), nn.Conv2d(w, widths[i + 1], 3, stride=2, padding=1)]
            enc += [nn.GroupNorm(_groups(widths[-1]), widths[-1]), nn.SiLU(),
                    nn.Conv2d(widths[-1], latent_channels * (2 if variational else 1), 1)]
            self.encoder = nn.Sequential(*enc)
            dec: list[nn.Module] = [nn.Conv2d(latent_channels, widths[-1], 3, padding=1)]
            for i in reversed(range(len(widths))):
                w = widths[i]
                dec += [nn.GroupNorm(_groups(w), w), nn.SiLU(), nn.Conv2d(w, w, 3, padding=1)]
                if i > 0:
                    dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(w, widths[i - 1], 3, padding=1)]
            dec += [nn.GroupNorm(_groups(widths[0]), widths[0]), nn.SiLU(), nn.Conv2d(widths[0], in_channels, 3, padding=1)]
            self.decoder = nn.Sequential(*dec)

    def config(self) -> dict[str, Any]:
        """Constructor arguments (JSON-ready)."""
        return dict(self._config)

    def _check(self, x: torch.Tensor, shape: tuple[int, ...], what: str) -> None:
        if not isinstance(x, torch.Tensor) or tuple(x.shape[1:]) != shape or x.ndim != len(shape) + 1:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{what} must have shape (batch, {', '.join(map(str, shape))}); got {got}")

    def encode_dist(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(mean, logvar)`` of ``q(z | x)`` (``logvar`` is ``None`` for a plain autoencoder)."""
        self._check(x, self.event_shape, "x")
        h = self.encoder(x)
        if not self.variational:
            return h, None
        mean, logvar = h.chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The latent ``(batch, c, h, w)``: the posterior mean for a VAE."""
        return self.encode_dist(x)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images ``(batch, C, H, W)`` from latents ``(batch, c, h, w)``."""
        self._check(z, self.latent_shape, "z")
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


@torch.no_grad()
def latent_statistics(encode, data: torch.Tensor, *, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation of ``encode(data)`` over the batch and spatial positions.

    ``encode`` maps ``(b, *event_shape) -> (b, c, ...)``; returns float64 ``(c,)`` tensors (the standard
    deviation is the population one, ``sqrt(E[(z - mean)^2])``, accumulated in float64).
    """
    check_int(batch_size, "batch_size")
    total, sq, count = None, None, 0
    for start in range(0, data.shape[0], batch_size):
        z = encode(data[start : start + batch_size]).to(torch.float64)
        dims = [0] + list(range(2, z.ndim))
        s1, s2 = z.sum(dim=dims), (z * z).sum(dim=dims)
        total = s1 if total is None else total + s1
        sq = s2 if sq is None else sq + s2
        count += z.numel() // z.shape[1]
    if total is None:
        raise ValueError("data is empty: latent statistics need at least one item")
    mean = total / count
    var = (sq / count - mean * mean).clamp_min(0.0)
    std = var.sqrt()
    if bool((std <= 0).any()):
        raise ValueError(f"a latent channel is constant over the data (std {std.tolist()}); the autoencoder collapsed, train it longer")
    return mean, std


@dataclass
class AutoencoderConfig:
    """Training options of :func:`train_autoencoder` (stored in the checkpoint)."""

    steps: int = 2000
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.0
    kl_weight: float = 1e-4
    seed: int = 0
    ckpt_every: int = 500
    keep: int = 2
    progress: bool = True

    def __post_init__(self) -> None:
        check_int(self.steps, "steps")
        check_int(self.batch_size, "batch_size")
        check_positive(self.lr, "lr")
        check_nonnegative(self.weight_decay, "weight_decay")
        check_nonnegative(self.kl_weight, "kl_weight")
        check_int(self.seed, "seed", minimum=0)
        check_int(self.ckpt_every, "ckpt_every", minimum=0)
        check_int(self.keep, "keep")


def _step_generator(seed: int, step: int) -> torch.Generator:
    from ..training.trainer import _derived_seed

    return torch.Generator().manual_seed(_derived_seed(seed, 0x4145_0000, step))


def train_autoencoder(ae: ConvAutoencoder, data: torch.Tensor, config: AutoencoderConfig | None = None, *, out_dir: str | Path | None = None,
                      resume: bool = False, overwrite: bool = False, data_info: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train ``ae`` on ``data (n, C, H, W)``, compute the latent statistics, checkpoint both.

    Returns a summary: final reconstruction MSE (on ``data``, in data units), latent mean/std, the
    checkpoint folder. The last checkpoint's ``config.json`` holds ``latent = {"mean", "std", "shape"}``;
    intermediate checkpoints (for resume) hold none and are refused by :func:`load_autoencoder`.
    """
    from ..training.checkpoint import check_run_dir, clear_run, read_checkpoint, save_checkpoint

    cfg = config or AutoencoderConfig()
    if not isinstance(ae, ConvAutoencoder):
        raise TypeError(f"ae must be a ConvAutoencoder; got {type(ae).__name__}")
    if not isinstance(data, torch.Tensor) or tuple(data.shape[1:]) != ae.event_shape or data.shape[0] < 1:
        raise ValueError(f"data must have shape (n, {', '.join(map(str, ae.event_shape))}); got {getattr(data, 'shape', None)}")
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        check_run_dir(out, resume=resume, overwrite=overwrite)
    opt = torch.optim.AdamW(ae.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    run_config = {
        "kind": "autoencoder",
        "process": {},
        "model": {"net": {"kind": ae.kind, "config": ae.config()}},
        "data": {**(data_info or {}), "event_shape": list(ae.event_shape)},
        "train": asdict(cfg),
    }
    start, history = 0, []
    if resume:
        if out is None:
            raise ValueError("resume=True needs the out_dir of the run to resume")
        ckpt = read_checkpoint(out)
        if ckpt.config.get("model") != run_config["model"]:
            raise ValueError(f"cannot resume {ckpt.path}: its autoencoder {ckpt.config.get('model')} differs from {run_config['model']}")
        ae.load_state_dict(ckpt.weights(ema=False))
        opt.load_state_dict(ckpt.optimizer_state())
        start, history = ckpt.step, list(ckpt.state.get("history", []))
    elif out is not None and overwrite:
        clear_run(out)
    n = data.shape[0]
    bar = None
    if cfg.progress:
        from .._utils import progress_bar

        bar = progress_bar(total=cfg.steps, initial=start, desc="autoencoder", unit="step", dynamic_ncols=True)
    ae.train()
    tic = time.perf_counter()
    try:
        for step in range(start, cfg.steps):
            gen = _step_generator(cfg.seed, step)
            idx = torch.randint(0, n, (min(cfg.batch_size, n),), generator=gen)
            x = data[idx]
            mean, logvar = ae.encode_dist(x)
            if logvar is not None:
                z = mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=gen, dtype=mean.dtype)
                kl = 0.5 * (mean * mean + logvar.exp() - 1.0 - logvar).reshape(x.shape[0], -1).sum(1).mean() / x[0].numel()
            else:
                z, kl = mean, torch.zeros((), dtype=x.dtype)
            rec = (ae.decode(z) - x).pow(2).mean()
            loss = rec + cfg.kl_weight * kl
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if (step + 1) % 50 == 0:
                history.append({"step": step + 1, "reconstruction": float(rec.detach()), "kl": float(kl.detach())})
            if bar is not None:
                bar.update(1)
                if (step + 1) % 10 == 0:
                    bar.set_postfix(rec=f"{float(rec.detach()):.4g}")
            if out is not None and cfg.ckpt_every and (step + 1) % cfg.ckpt_every == 0 and step + 1 < cfg.steps:
                save_checkpoint(out, step=step + 1, model=ae, ema_model=None, optimizer=opt, config=run_config,
                                metrics={"step": step + 1}, state={"history": history}, keep=cfg.keep)
    finally:
        if bar is not None:
            bar.close()
    ae.eval()
    mean, std = latent_statistics(ae.encode, data)
    with torch.no_grad():
        mse = float(sum(float((ae(data[i : i + 512]) - data[i : i + 512]).pow(2).sum()) for i in range(0, n, 512)) / data.numel())
    run_config["latent"] = {"mean": mean.tolist(), "std": std.tolist(), "shape": list(ae.latent_shape),
                            "computed_from": f"{n} training items (posterior means)"}
    summary = {"steps": cfg.steps, "reconstruction_mse": mse, "latent_mean": mean.tolist(), "latent_std": std.tolist(),
               "latent_shape": list(ae.latent_shape), "train_seconds": time.perf_counter() - tic, "checkpoint": None}
    if out is not None:
        path = save_checkpoint(out, step=cfg.steps, model=ae, ema_model=None, optimizer=opt, config=run_config,
                               metrics={k: v for k, v in summary.items() if k != "checkpoint"}, state={"history": history}, keep=cfg.keep)
        summary["checkpoint"] = str(path)
    return summary
