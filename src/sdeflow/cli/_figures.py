"""Figures the foundation's commands write (matplotlib, Agg backend, PNG)."""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["trajectory_fan"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def trajectory_fan(
    path: Path,
    runs: list[tuple[str, torch.Tensor, torch.Tensor]],
    scale: "callable | None" = None,
    n_paths: int = 200,
    title: str = "",
) -> Path:
    """One panel per run: 2-D reverse trajectories fanning from noise to samples.

    ``runs`` holds ``(label, ts (steps+1,), trajectory (steps+1, batch, 2))``, optionally with a fourth
    item: samples ``(n, 2)`` at ``t = 0`` drawn as a grey density behind the paths (for stochastic
    samplers, whose few jagged paths read best over the distribution they end in). ``scale(t)`` (a float64
    tensor of times -> a tensor) divides the state at each time so that noise and data share one
    picture (e.g. the marginal's standard deviation relative to the data's). Each path is coloured by
    the angle of its end point, so the fan into the modes is visible.
    """
    plt = _plt()
    fig, axes = plt.subplots(1, len(runs), figsize=(4.2 * len(runs), 4.5), squeeze=False)
    cmap = plt.get_cmap("hsv")
    for ax, (label, ts, traj, *background) in zip(axes[0], runs):
        tr = traj[:, :n_paths].detach().double().cpu()
        if scale is not None:
            tr = tr / scale(ts.double()).reshape(-1, 1, 1)
        angle = (torch.atan2(tr[-1, :, 1], tr[-1, :, 0]) / (2 * torch.pi)) % 1.0
        for j in range(tr.shape[1]):
            few = bool(background and background[0] is not None)  # a few paths over a density: drawn boldly
            ax.plot(tr[:, j, 0], tr[:, j, 1], color=cmap(float(angle[j])), lw=0.9 if few else 0.5, alpha=0.85 if few else 0.45)
        ax.scatter(tr[0, :, 0], tr[0, :, 1], s=4, color="0.35", zorder=3, label="start (noise, t = T)")
        ax.scatter(tr[-1, :, 0], tr[-1, :, 1], s=7, color="k", zorder=4, label="end (sample, t = 0)")
        lim = max(float(tr[0].abs().quantile(0.98)), float(tr[-1].abs().max())) * 1.15
        if background and background[0] is not None:
            final = background[0].detach().double().cpu() / (scale(ts.double()[-1:]).reshape(()) if scale is not None else 1.0)
            ax.hist2d(final[:, 0].numpy(), final[:, 1].numpy(), bins=48, range=[[-lim, lim], [-lim, lim]], cmap="Greys",
                      cmin=1, zorder=0)
            ax.plot([], [], "s", color="0.6", label=f"all {final.shape[0]} samples (density)")
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_xlabel("x[0] (rescaled)")
        ax.set_ylabel("x[1] (rescaled)")
        ax.set_title(label, fontsize=9)
        ax.legend(loc="lower left", fontsize=6)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
