"""Inverse problems with diffusion priors: measurement operators and posterior samplers.

``posterior_sample(model, process, operator, y, method=...)`` draws samples of ``p(x | y)`` for
``y = A(x) + noise``, with the prior given by any sdeflow diffusion model; methods ``dps``, ``pigdm``,
``ddrm``, ``ddnm``, ``repaint``, ``daps`` and the particle methods ``tds`` and ``mcgdiff`` (asymptotically exact).
``sdeflow.targets.GaussianMixture.posterior`` is the exact answer for mixture priors.
"""

from . import operators
from .base import InverseProblem, PosteriorMethod, available_methods, get_method
from .daps import DAPS
from .ddnm import DDNM
from .ddrm import DDRM
from .dps import DPS
from .mcgdiff import MCGdiff
from .operators import Blur, Denoising, Inpainting, Linear, Nonlinear, Operator, SuperResolution, gaussian_kernel
from .pigdm import PiGDM
from .posterior import PosteriorResult, posterior_sample
from .repaint import RePaint
from .sharded import posterior_sample_sharded
from .tds import TDS

__all__ = [
    "Blur",
    "DAPS",
    "DDNM",
    "DDRM",
    "DPS",
    "Denoising",
    "Inpainting",
    "InverseProblem",
    "Linear",
    "MCGdiff",
    "Nonlinear",
    "Operator",
    "PiGDM",
    "PosteriorMethod",
    "PosteriorResult",
    "RePaint",
    "SuperResolution",
    "TDS",
    "available_methods",
    "gaussian_kernel",
    "get_method",
    "operators",
    "posterior_sample",
    "posterior_sample_sharded",
]
