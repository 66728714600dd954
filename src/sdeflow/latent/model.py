"""Latent diffusion: an autoencoder with stored latent statistics, and :class:`LatentModel`.

A latent model diffuses normalized latents ``u = (z - mean_c) / std_c`` (per channel ``c``), with
``z = E(x)`` the autoencoder's latent, and maps samples back with ``x = D(mean_c + std_c u)``
(Rombach et al. 2022, section 4.3.2: unit-variance latents, the same noise schedules work as in
pixel space). ``mean_c`` and ``std_c`` come from the checkpoint (:func:`load_autoencoder`), computed
from the training latents (:func:`~sdeflow.latent.latent_statistics`); for a diffusers
``AutoencoderKL`` they come from its own ``config.scaling_factor`` (and ``shift_factor`` where it has
one): ``u = (z - shift) * scaling_factor``, read from the model, never assumed.

:class:`LatentModel` is a model in the sense of :func:`sdeflow.sample` (``model(u, t)`` with a
``prediction``) whose state is the latent: every solver, grid, guidance wrapper and posterior
method runs on it unchanged, and :meth:`LatentModel.decode` gives images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

__all__ = ["LatentAutoencoder", "LatentModel", "load_autoencoder", "load_latent_model", "from_diffusers"]


class LatentAutoencoder(nn.Module):
    """An encoder/decoder pair with the per-channel statistics of its latents.

    Args:
        encode: ``x (batch, *event_shape) -> z (batch, c, ...)``.
        decode: ``z -> x``.
        mean, std: ``(c,)`` per-channel statistics of ``z`` (``std > 0``).
        event_shape, latent_shape: shapes of one image and one latent.
        source: where it came from (a checkpoint path, "diffusers", ...), for messages and reports.
    """

    def __init__(self, encode: Callable, decode: Callable, mean: torch.Tensor, std: torch.Tensor, event_shape, latent_shape,
                 *, source: str = "", module: nn.Module | None = None) -> None:
        super().__init__()
        mean = torch.as_tensor(mean, dtype=torch.float64).reshape(-1)
        std = torch.as_tensor(std, dtype=torch.float64).reshape(-1)
        latent_shape = tuple(int(v) for v in latent_shape)
        if mean.shape != std.shape or mean.shape[0] != latent_shape[0]:
            raise ValueError(f"mean and std must have one entry per latent channel ({latent_shape[0]}); got {tuple(mean.shape)} and {tuple(std.shape)}")
        if not bool(torch.isfinite(mean).all()) or not bool(torch.isfinite(std).all()) or not bool((std > 0).all()):
            raise ValueError(f"latent statistics must be finite with std > 0; got mean {mean.tolist()}, std {std.tolist()}")
        self._encode, self._decode = encode, decode
        self.module = module
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.event_shape = tuple(int(v) for v in event_shape)
        self.latent_shape = latent_shape
        self.source = source

    def _stat(self, v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return v.to(like.dtype).reshape((1, -1) + (1,) * (like.ndim - 2))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized latents ``(z - mean) / std``, shape ``(batch, *latent_shape)``."""
        z = self._encode(x)
        return (z - self._stat(self.mean, z)) / self._stat(self.std, z)

    def decode(self, u: torch.Tensor) -> torch.Tensor:
        """Images from normalized latents: ``D(mean + std u)``."""
        if not isinstance(u, torch.Tensor) or tuple(u.shape[1:]) != self.latent_shape:
            raise ValueError(f"latents must have shape (batch, {', '.join(map(str, self.latent_shape))}); got {getattr(u, 'shape', None)}")
        return self._decode(self._stat(self.mean, u) + self._stat(self.std, u) * u)


def load_autoencoder(path: str | Path, *, device: str | torch.device = "cpu") -> LatentAutoencoder:
    """The autoencoder of a ``sdeflow train-autoencoder`` run or checkpoint folder, with its stored statistics.

    Raises:
        ValueError: the checkpoint is not an autoencoder's, or holds no latent statistics (an
            intermediate checkpoint of an unfinished run, or a file edited by hand).
    """
    from ..training.checkpoint import read_checkpoint
    from .autoencoder import AUTOENCODER_KIND, ConvAutoencoder

    ckpt = read_checkpoint(path)
    net = ckpt.config["model"]["net"]
    if ckpt.config.get("kind") != "autoencoder" or net.get("kind") != AUTOENCODER_KIND:
        raise ValueError(f"{ckpt.path} is not an autoencoder checkpoint (model kind {net.get('kind')!r}); train one with `sdeflow train-autoencoder`")
    stats = ckpt.config.get("latent")
    if not isinstance(stats, dict) or "mean" not in stats or "std" not in stats:
        raise ValueError(
            f"{ckpt.path} holds no latent statistics (config.json has no 'latent' mean/std): it is an intermediate checkpoint "
            "of an unfinished run, or was written by hand. Finish the run (`sdeflow train-autoencoder --resume`), which computes "
            "them from the training latents; they are never typed by hand"
        )
    try:
        ae = ConvAutoencoder(**net["config"])
    except TypeError as err:
        raise ValueError(f"{ckpt.path}: bad autoencoder configuration {net['config']}: {err}") from err
    ae.load_state_dict(ckpt.weights(ema=False))
    ae.to(device).eval()
    for p in ae.parameters():
        p.requires_grad_(False)
    return LatentAutoencoder(ae.encode, ae.decode, torch.tensor(stats["mean"], dtype=torch.float64),
                             torch.tensor(stats["std"], dtype=torch.float64), ae.event_shape,
                             ae.latent_shape, source=str(ckpt.path), module=ae)


def from_diffusers(vae: Any, image_size: tuple[int, int]) -> LatentAutoencoder:
    """A diffusers ``AutoencoderKL`` (or any model with its interface) as a :class:`LatentAutoencoder`.

    The normalization is the model's own: ``u = (z - shift_factor) * scaling_factor`` with both read from
    ``vae.config`` (``shift_factor`` absent or ``None`` is 0); a model without ``scaling_factor`` is refused.
    ``image_size`` is ``(H, W)``; the latent shape follows from the model's downsampling.
    """
    cfg = getattr(vae, "config", None)
    scale = getattr(cfg, "scaling_factor", None) if cfg is not None else None
    if scale is None and isinstance(cfg, dict):
        scale = cfg.get("scaling_factor")
    if scale is None:
        raise ValueError("the diffusers autoencoder has no config.scaling_factor; sdeflow reads it from the model and does not assume 0.18215")
    shift = getattr(cfg, "shift_factor", None) if not isinstance(cfg, dict) else cfg.get("shift_factor")
    shift = 0.0 if shift is None else float(shift)
    channels = getattr(cfg, "latent_channels", None) if not isinstance(cfg, dict) else cfg.get("latent_channels")
    in_channels = getattr(cfg, "in_channels", None) if not isinstance(cfg, dict) else cfg.get("in_channels")
    blocks = getattr(cfg, "block_out_channels", None) if not isinstance(cfg, dict) else cfg.get("block_out_channels")
    if channels is None or in_channels is None or blocks is None:
        raise ValueError("the diffusers autoencoder's config needs latent_channels, in_channels and block_out_channels")
    down = 2 ** (len(blocks) - 1)
    h, w = (int(v) for v in image_size)
    if h % down or w % down:
        raise ValueError(f"image_size {(h, w)} must be divisible by the autoencoder's downsampling {down}")

    def encode(x: torch.Tensor) -> torch.Tensor:
        return vae.encode(x).latent_dist.mean

    def decode(z: torch.Tensor) -> torch.Tensor:
        return vae.decode(z).sample

    c = int(channels)
    mean = torch.full((c,), shift, dtype=torch.float64)
    std = torch.full((c,), 1.0 / float(scale), dtype=torch.float64)
    return LatentAutoencoder(encode, decode, mean, std, (int(in_channels), h, w), (c, h // down, w // down), source="diffusers",
                             module=vae if isinstance(vae, nn.Module) else None)


class LatentModel:
    """A diffusion model on normalized latents and the autoencoder that maps them to images.

    ``LatentModel(model, autoencoder)(u, t)`` is ``model(u, t)``: pass it to :func:`sdeflow.sample` (or any
    solver, guidance wrapper, posterior method) with states of shape ``(batch, *latent_shape)``.

    Args:
        model: a model on latents ``model(u, t)`` with a ``prediction`` attribute (e.g. a
            :class:`~sdeflow.training.DiffusionModel`) — or ``None`` while it is being trained.
        autoencoder: a :class:`LatentAutoencoder`.
        process: the model's process (default ``model.process``).
    """

    def __init__(self, model, autoencoder: LatentAutoencoder, process=None) -> None:
        if not isinstance(autoencoder, LatentAutoencoder):
            raise TypeError(f"autoencoder must be a LatentAutoencoder (load_autoencoder, from_diffusers); got {type(autoencoder).__name__}")
        self.model = model
        self.autoencoder = autoencoder
        self.process = process if process is not None else getattr(model, "process", None)
        self.prediction = getattr(model, "prediction", None)

    @property
    def event_shape(self) -> tuple[int, ...]:
        """The shape of one state (a latent)."""
        return self.autoencoder.latent_shape

    def __call__(self, u: torch.Tensor, t, *args):
        return self.model(u, t, *args)

    def guided(self, y, scale: float = 1.0) -> "LatentModel":
        """Classifier-free guidance of the latent model (see :meth:`~sdeflow.training.DiffusionModel.guided`)."""
        return LatentModel(self.model.guided(y, scale), self.autoencoder, self.process)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Training data for the latent model: normalized latents of images ``x``."""
        with torch.no_grad():
            return self.autoencoder.encode(x)

    def decode(self, u: torch.Tensor) -> torch.Tensor:
        """Images from latent samples."""
        with torch.no_grad():
            return self.autoencoder.decode(u)

    def sample(self, n: int, *, solver: str | None = None, steps: int | None = None, nfe: int | None = None, seed: int = 0,
               batch_size: int = 4096, decode: bool = True, **options) -> torch.Tensor:
        """``n`` samples (decoded images, or latents with ``decode=False``); sample ``i`` from seed ``seed + i``."""
        from ..training.evaluation import draw_samples

        if self.process is None:
            raise ValueError("the latent model needs a process (pass process= or a model with .process)")
        u = draw_samples(self, self.process, self.event_shape, n, solver=solver, steps=steps, nfe=nfe, seed=seed,
                         batch_size=batch_size, **options)
        return self.decode(u) if decode else u


def load_latent_model(path: str | Path, *, ema: bool = True, device: str | torch.device = "cpu") -> LatentModel:
    """The :class:`LatentModel` of a ``sdeflow train --latent AE`` run: its diffusion model and its autoencoder.

    The autoencoder is loaded from the path the run recorded (``config.json``'s ``data.latent.autoencoder``),
    and its statistics must be those the run trained with (a retrained autoencoder is refused).
    """
    from ..training.checkpoint import load_checkpoint_model, read_checkpoint

    ckpt = read_checkpoint(path)
    info = ckpt.config["data"].get("latent")
    if not isinstance(info, dict) or "autoencoder" not in info:
        raise ValueError(f"{ckpt.path} is not a latent run (no data.latent in config.json); train one with `sdeflow train --latent AE`")
    ae = load_autoencoder(info["autoencoder"], device=device)
    if ae.mean.tolist() != info["mean"] or ae.std.tolist() != info["std"]:
        raise ValueError(
            f"the autoencoder at {info['autoencoder']} has latent statistics {ae.mean.tolist()} / {ae.std.tolist()}, not the "
            f"{info['mean']} / {info['std']} this model was trained with (was it retrained?)"
        )
    loaded = load_checkpoint_model(ckpt.path, ema=ema, device=device)
    model = loaded[0] if isinstance(loaded, tuple) else loaded
    return LatentModel(model, ae)
