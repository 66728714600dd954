"""Latent diffusion: convolutional autoencoders with stored latent statistics, and :class:`LatentModel`.

    from sdeflow.latent import ConvAutoencoder, AutoencoderConfig, train_autoencoder, load_autoencoder, LatentModel

    ae = ConvAutoencoder(1, (8, 8), latent_channels=2)
    train_autoencoder(ae, images, AutoencoderConfig(steps=2000), out_dir="runs/ae")   # statistics stored
    latent = LatentModel(None, load_autoencoder("runs/ae"))
    u = latent.encode(images)            # train any diffusion model on u, then LatentModel(model, ...)
"""

from .autoencoder import AUTOENCODER_KIND, AutoencoderConfig, ConvAutoencoder, latent_statistics, train_autoencoder
from .model import LatentAutoencoder, LatentModel, from_diffusers, load_autoencoder, load_latent_model

__all__ = [
    "AUTOENCODER_KIND",
    "AutoencoderConfig",
    "ConvAutoencoder",
    "latent_statistics",
    "train_autoencoder",
    "LatentAutoencoder",
    "LatentModel",
    "from_diffusers",
    "load_autoencoder",
    "load_latent_model",
]
