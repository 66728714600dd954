"""Likelihoods of diffusion models: exact through the probability-flow ODE, and the variational bound.

* :func:`log_likelihood` -- ``log p(x)`` (nats per point) by the instantaneous change of variables
  along the probability-flow ODE, exact or Hutchinson divergence, adaptive Dormand-Prince.
* :func:`elbo` -- the ELBO of the reverse diffusion (VDM form, discrete or continuous time; the
  continuous one is Song et al.'s likelihood-weighted bound), to set beside the ODE likelihood.
* :func:`bits_per_dim`, :func:`dequantize` -- discrete data.
"""

from .discrete import bits_per_dim, dequantize
from .divergence import PROBES, divergence_exact, divergence_hutchinson
from .elbo import TIMES, ElboResult, elbo
from .ode import METHODS, LikelihoodResult, log_likelihood

__all__ = [
    "METHODS",
    "PROBES",
    "TIMES",
    "ElboResult",
    "LikelihoodResult",
    "bits_per_dim",
    "dequantize",
    "divergence_exact",
    "divergence_hutchinson",
    "elbo",
    "log_likelihood",
]
