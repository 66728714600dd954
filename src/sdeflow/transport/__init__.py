"""Transport between two distributions: paired flow matching, rectified flow with reflow and distillation.

* :class:`PairedFlowMatching`: velocity regression between paired samples (rectified flow, OT-CFM,
  SB-CFM's flow with ``bridge_sigma > 0``), models that sample with every deterministic solver.
* :func:`run_reflow`: 1-RF, couplings from an ODE solver of the suite, k-RF, one-step distillation,
  with straightness and normalized path energy at every stage (:func:`straightness`).
* :mod:`sdeflow.transport.bridges`: SB-CFM / [SF]2M (:func:`train_sbcfm`) and DSBM-IMF
  (:func:`run_dsbm`), sampled by the suite's SDE solvers (:func:`simulate_bridge`).
* :class:`StochasticInterpolant`: the velocity and the denoiser of Albergo et al.'s stochastic interpolants
  (linear, trigonometric, encoder-decoder; a choice of gamma), noise-to-data or data-to-data, sampled by the
  probability-flow ODE or an SDE whose diffusion is chosen after training (:func:`interpolant_sample`), with
  the ODE's likelihood (:func:`interpolant_log_likelihood`).

The closed-form Schrodinger bridge between Gaussians is :class:`sdeflow.targets.GaussianBridge`.
"""

from .bridges import BridgeConfig, BridgeSDE, run_dsbm, simulate_bridge, train_sbcfm
from .interpolants import InterpolantSDE, StochasticInterpolant, interpolant_log_likelihood, interpolant_sample
from .objectives import FIELDS, INTERPOLANTS, TIMES, PairedFlowMatching, pack_pairs, unpack_pairs
from .reflow import ReflowConfig, ReflowResult, euler_grid, generate_coupling, load_stage, run_reflow, straightness

__all__ = [
    "BridgeConfig",
    "BridgeSDE",
    "run_dsbm",
    "simulate_bridge",
    "train_sbcfm",
    "InterpolantSDE",
    "StochasticInterpolant",
    "interpolant_log_likelihood",
    "interpolant_sample",
    "FIELDS",
    "INTERPOLANTS",
    "TIMES",
    "PairedFlowMatching",
    "pack_pairs",
    "unpack_pairs",
    "ReflowConfig",
    "ReflowResult",
    "euler_grid",
    "generate_coupling",
    "load_stage",
    "run_reflow",
    "straightness",
]
