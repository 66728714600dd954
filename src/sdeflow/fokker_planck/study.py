"""A Gaussian-mixture target under a diffusion, three ways: Fokker-Planck, exact marginals, simulated SDE.

:func:`study_target` evolves a 2-D (or 1-D) :class:`sdeflow.targets.GaussianMixture` forward under a
process's noising SDE (from the data density at ``t = 0``) or backward under the reverse-time SDE
with the exact score (from the prior ``N(0, sigma(T)^2 I)`` at ``T``), and puts side by side at each
requested time

* the Fokker-Planck density (:func:`sdeflow.fokker_planck.solve`),
* the exact density (the noised mixture ``p_t``), and
* histograms of SDE samples simulated by Euler-Maruyama (:func:`sdeflow.sdes.integrate.sdeint`
  forward, :func:`sdeflow.sample` with ``euler_maruyama`` backward),

with Jensen-Shannon divergences between them and the floor of the histograms: the divergence
between the histogram of ``n`` exact samples of ``p_t`` and ``p_t`` itself, i.e. what sampling noise
alone gives at that ``n`` and grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._utils import check_int
from ..metrics import jensen_shannon_density
from .grid import Grid
from .solver import FokkerPlanckSolution, solve

__all__ = ["DensityStudy", "study_target"]


@dataclass(frozen=True)
class DensityStudy:
    """Densities of one target over time, three ways (see the module docstring).

    Attributes:
        direction: ``forward`` or ``backward``; times: ``(m,)``.
        grid: the grid; solution: the Fokker-Planck solution.
        fokker_planck, exact, simulated: ``(m, *grid.shape)`` densities (``simulated`` is the
            histogram of the SDE samples).
        samples: ``(m, n, d)`` the simulated samples at each time.
        jsd_fp_exact, jsd_fp_simulated, jsd_floor: ``(m,)`` Jensen-Shannon divergences (nats) of the
            Fokker-Planck density to the exact one, to the simulated histogram, and of an exact-sample
            histogram to the exact density (the sampling floor at ``n`` samples).
    """

    direction: str
    times: torch.Tensor
    grid: Grid
    solution: FokkerPlanckSolution
    fokker_planck: torch.Tensor
    exact: torch.Tensor
    simulated: torch.Tensor
    samples: torch.Tensor
    jsd_fp_exact: torch.Tensor
    jsd_fp_simulated: torch.Tensor
    jsd_floor: torch.Tensor


def study_target(
    target,
    process,
    grid: Grid,
    times,
    *,
    direction: str = "forward",
    n_samples: int = 5000,
    sde_steps: int = 1000,
    seed: int = 0,
    cfl: float = 0.9,
    progress: bool = False,
) -> DensityStudy:
    """Evolve ``target`` forward (noising) or backward (reverse SDE, exact score) three ways.

    Args:
        target: a :class:`sdeflow.targets.GaussianMixture` of dimension ``grid.ndim``.
        process: a :class:`sdeflow.processes.DiffusionProcess`.
        grid: the :class:`Grid` (it must hold the mass at every time: the prior's ``+- 4 sigma(T)``).
        times: increasing times from 0 (forward) or decreasing times from ``T`` to ``t_end > 0``
            (backward: the score model is not evaluated at ``t = 0``).
        direction: ``forward`` or ``backward``.
        n_samples: simulated SDE samples.
        sde_steps: Euler-Maruyama steps over the whole time span (merged with ``times``).
        seed: seeds of the samples and their Brownian paths.
        cfl: the Fokker-Planck solver's safety factor.
        progress: progress bars.
    """
    from .. import sample
    from ..sdes.integrate import sdeint

    if direction not in ("forward", "backward"):
        raise ValueError(f"direction must be 'forward' or 'backward'; got {direction!r}")
    if target.dim != grid.ndim:
        raise ValueError(f"the target has dimension {target.dim} but the grid has {grid.ndim}; they must match")
    n_samples = check_int(n_samples, "n_samples", minimum=2)
    sde_steps = check_int(sde_steps, "sde_steps")
    ts = torch.as_tensor(times, dtype=torch.float64).reshape(-1)
    t0, t1 = float(ts[0]), float(ts[-1])
    if direction == "forward":
        if t0 != 0.0 or not bool((ts.diff() > 0).all()):
            raise ValueError(f"forward times must increase from 0; got {ts.tolist()}")
        sol = solve(process.forward_sde(), target.log_prob, grid, ts, cfl=cfl, progress=progress)
        x0 = target.sample(n_samples, seeds=seed, dtype=torch.float64)
        path = sdeint(process.forward_sde(), x0, ts, method="euler", dt=(t1 - t0) / sde_steps, seed=seed + 1)
    else:
        if abs(t0 - float(process.T)) > 1e-12 or not bool((ts.diff() < 0).all()) or t1 <= 0:
            raise ValueError(f"backward times must decrease from T = {process.T} to a time > 0; got {ts.tolist()}")
        model = target.model(process, "score")
        sde = process.reverse_sde(model, "score", stochasticity=1.0)
        sol = solve(sde, process.prior_log_prob, grid, ts, cfl=cfl, progress=progress)
        fine = torch.linspace(t0, t1, sde_steps + 1, dtype=torch.float64)
        merged = torch.unique(torch.cat([fine, ts])).flip(0)
        x_T = process.prior_sample((n_samples, target.dim), seeds=seed, dtype=torch.float64)
        res = sample(model, process, x_T, prediction="score", solver="euler_maruyama", grid=merged,
                     seed=seed + 1, return_trajectory=True, progress=progress)
        idx = [int(torch.argmin((merged - t).abs())) for t in ts.tolist()]
        path = res.trajectory[idx]
    exact = torch.stack([grid.density(lambda x, t=t: target.marginal_log_prob(x, t, process), normalize=False)
                         for t in ts.tolist()])
    if direction == "backward":
        exact[0] = grid.density(process.prior_log_prob, normalize=False)
    sim = torch.stack([grid.histogram(path[i]) for i in range(len(ts))])
    floor_samples = [target.noised_sample(n_samples, t, process, seeds=seed + 7 * n_samples, dtype=torch.float64)
                     for t in ts.tolist()]
    if direction == "backward":
        floor_samples[0] = process.prior_sample((n_samples, target.dim), seeds=seed + 7 * n_samples, dtype=torch.float64)
    floor_hist = [grid.histogram(s) for s in floor_samples]
    vol = grid.cell_volume
    fp = sol.densities

    def jsd(a: torch.Tensor, b: torch.Tensor) -> float:
        return jensen_shannon_density(a, b, vol)

    return DensityStudy(
        direction=direction,
        times=ts,
        grid=grid,
        solution=sol,
        fokker_planck=fp,
        exact=exact,
        simulated=sim,
        samples=path.detach().reshape(len(ts), n_samples, -1),
        jsd_fp_exact=torch.tensor([jsd(fp[i], exact[i]) for i in range(len(ts))], dtype=torch.float64),
        jsd_fp_simulated=torch.tensor([jsd(fp[i], sim[i]) for i in range(len(ts))], dtype=torch.float64),
        jsd_floor=torch.tensor([jsd(floor_hist[i], exact[i]) for i in range(len(ts))], dtype=torch.float64),
    )
