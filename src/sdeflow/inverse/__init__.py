"""Inverse problems with diffusion priors: measurement operators and posterior samplers."""

from . import operators
from .operators import Blur, Denoising, Inpainting, Linear, Nonlinear, Operator, SuperResolution, gaussian_kernel

__all__ = [
    "Blur",
    "Denoising",
    "Inpainting",
    "Linear",
    "Nonlinear",
    "Operator",
    "SuperResolution",
    "gaussian_kernel",
    "operators",
]
