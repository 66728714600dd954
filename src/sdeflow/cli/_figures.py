"""Figures the foundation's commands write (matplotlib, Agg backend, PNG)."""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["scatter_samples", "trajectory_fan"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def scatter_samples(path: Path, samples: torch.Tensor, truth: torch.Tensor | None = None, title: str = "") -> Path:
    """Scatter of the first two coordinates of ``samples`` (and of true samples beside them)."""
    plt = _plt()
    s = samples.detach().reshape(samples.shape[0], -1).double().cpu()
    fig, axes = plt.subplots(1, 2 if truth is not None else 1, figsize=(9 if truth is not None else 4.5, 4.5), squeeze=False)
    panels = [(axes[0, 0], s, "samples", "C0")]
    if truth is not None:
        panels.append((axes[0, 1], truth.detach().reshape(truth.shape[0], -1).double().cpu(), "true samples", "C1"))
    lim = max(float(p[1][:, :2].abs().quantile(0.995)) for p in panels) * 1.1
    for ax, data, label, color in panels:
        y = data[:, 1] if data.shape[1] > 1 else torch.zeros_like(data[:, 0])
        ax.scatter(data[:, 0], y, s=2, alpha=0.5, color=color)
        ax.set_title(label if data.shape[1] <= 2 else f"{label} (coordinates 1-2 of {data.shape[1]})")
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def trajectory_fan(
    path: Path,
    runs: list[tuple[str, torch.Tensor, torch.Tensor]],
    scale: "callable | None" = None,
    n_paths: int = 200,
    title: str = "",
) -> Path:
    """One panel per run: 2-D reverse trajectories fanning from noise to samples.

    ``runs`` holds ``(label, ts (steps+1,), trajectory (steps+1, batch, 2))``. ``scale(t)`` (a float64
    tensor of times -> a tensor) divides the state at each time so that noise and data share one
    picture (e.g. the marginal's standard deviation relative to the data's). Each path is coloured by
    the angle of its end point, so the fan into the modes is visible.
    """
    plt = _plt()
    fig, axes = plt.subplots(1, len(runs), figsize=(4.2 * len(runs), 4.5), squeeze=False)
    cmap = plt.get_cmap("hsv")
    for ax, (label, ts, traj) in zip(axes[0], runs):
        tr = traj[:, :n_paths].detach().double().cpu()
        if scale is not None:
            tr = tr / scale(ts.double()).reshape(-1, 1, 1)
        angle = (torch.atan2(tr[-1, :, 1], tr[-1, :, 0]) / (2 * torch.pi)) % 1.0
        for j in range(tr.shape[1]):
            ax.plot(tr[:, j, 0], tr[:, j, 1], color=cmap(float(angle[j])), lw=0.5, alpha=0.45)
        ax.scatter(tr[0, :, 0], tr[0, :, 1], s=4, color="0.35", zorder=3, label="start (noise, t = T)")
        ax.scatter(tr[-1, :, 0], tr[-1, :, 1], s=7, color="k", zorder=4, label="end (sample, t = 0)")
        lim = max(float(tr[0].abs().quantile(0.98)), float(tr[-1].abs().max())) * 1.15
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_title(label, fontsize=9)
    axes[0, 0].legend(loc="lower left", fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
