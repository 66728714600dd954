"""The Fokker-Planck equation on 1-D and 2-D grids: watch a density evolve under an SDE or a flow.

:func:`solve` evolves a density under ``dx = b dt + diag(g) dW`` (finite volumes: MUSCL-minmod
upwind advection, central diffusion, zero-flux boundaries, SSP-RK2 with a positivity-preserving
step), forward or backward in time; with an ODE (``sde.is_ode``) it solves the continuity
equation of the flow. :class:`Grid` holds the cells; :class:`FieldSDE` wraps plain functions;
:func:`study_target` compares a Gaussian mixture's Fokker-Planck density with its exact noised
density and with simulated SDE samples over time.
"""

from .grid import Grid
from .solver import FieldSDE, FokkerPlanckSolution, solve, stable_step
from .study import DensityStudy, study_target

__all__ = ["DensityStudy", "FieldSDE", "FokkerPlanckSolution", "Grid", "solve", "stable_step", "study_target"]
