"""Distances and divergences between sample sets and densities, each with its two-sample floor.

Inputs are torch tensors or numpy arrays of shape ``(n, *event_shape)`` (flattened to ``(n, d)``)
or ``(n,)``; everything is computed in float64 and returned as Python floats or small dataclasses.

=====================================  ==========================================================
function                               what
=====================================  ==========================================================
:func:`sliced_wasserstein2`            SW2 over random directions, exact 1-D transport per slice
:func:`wasserstein2`                   exact W2 (POT network simplex), up to ~10,000 points
:func:`mmd`                            unbiased MMD^2, average of RBF kernels at several bandwidths
:func:`energy_distance`                Szekely-Rizzo energy distance D^2 (V-statistic, >= 0)
:func:`frechet_distance`               W2^2 between Gaussian fits (FID convention)
:func:`kl_gaussian`, :func:`w2_gaussian`  closed forms between Gaussians
:func:`jensen_shannon`, :func:`kl_divergence`  histogram divergences, 1-D/2-D samples, nats
:func:`jensen_shannon_density`, :func:`kl_density`  divergences between densities on a grid
:func:`two_sample_floor`               the distance between two draws of the reference (+ interval)
:func:`compare`                        all of the above, each with its floor
=====================================  ==========================================================
"""

from .divergence import (
    histogram_edges,
    histograms,
    jensen_shannon,
    jensen_shannon_density,
    jensen_shannon_masses,
    kl_density,
    kl_divergence,
    kl_masses,
)
from .floor import METRIC_NAMES, Floor, MetricResult, compare, two_sample_floor
from .gaussian import frechet_distance, gaussian_fit, kl_gaussian, w2_gaussian
from .kernel import energy_distance, median_bandwidth, mmd
from .transport import sliced_wasserstein2, wasserstein2, wasserstein2_1d_squared

__all__ = [
    "METRIC_NAMES",
    "Floor",
    "MetricResult",
    "compare",
    "energy_distance",
    "frechet_distance",
    "gaussian_fit",
    "histogram_edges",
    "histograms",
    "jensen_shannon",
    "jensen_shannon_density",
    "jensen_shannon_masses",
    "kl_density",
    "kl_divergence",
    "kl_gaussian",
    "kl_masses",
    "median_bandwidth",
    "mmd",
    "sliced_wasserstein2",
    "two_sample_floor",
    "w2_gaussian",
    "wasserstein2",
    "wasserstein2_1d_squared",
]
