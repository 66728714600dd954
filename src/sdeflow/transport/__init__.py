"""Transport between two distributions: paired flow matching, rectified flow with reflow and distillation.

* :class:`PairedFlowMatching`: velocity regression between paired samples (rectified flow, OT-CFM,
  SB-CFM's flow with ``bridge_sigma > 0``), models that sample with every deterministic solver.
* :func:`run_reflow`: 1-RF, couplings from an ODE solver of the suite, k-RF, one-step distillation,
  with straightness and normalized path energy at every stage (:func:`straightness`).

The closed-form Schrodinger bridge between Gaussians is :class:`sdeflow.targets.GaussianBridge`.
"""

from .objectives import TIMES, PairedFlowMatching, pack_pairs, unpack_pairs
from .reflow import ReflowConfig, ReflowResult, euler_grid, generate_coupling, load_stage, run_reflow, straightness

__all__ = [
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
