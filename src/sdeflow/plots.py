"""Pictures of what a diffusion does: the shared plotting module (matplotlib, Agg backend, PNG/GIF).

Every function takes the output ``path`` first, writes one file and returns its :class:`Path`.
Tensors may be torch or numpy, on any device; nothing is shown on screen.

==============================  ==============================================================
function                        picture
==============================  ==============================================================
:func:`scatter`                 2-D samples (first two coordinates), beside reference samples
:func:`trajectories`            2-D paths (noising or sampling) in the plane, one panel per run
:func:`coordinate_paths`        one coordinate against time for several runs (1-D or any D)
:func:`density_grid`            densities on a 2-D grid over time, rows of panels (e.g. FP vs exact)
:func:`density_animation`       the same as an animated GIF, with samples overlaid
:func:`log_likelihood_map`      a 2-D map of ``log p`` with optional points
:func:`error_vs_nfe`            error against model calls for several solvers, log-log, slope guides
:func:`metric_over_time`        a distance against time (e.g. JSD), with a floor band
:func:`image_grid`              a grid of images ``(n, C, H, W)``
==============================  ==============================================================
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

__all__ = [
    "coordinate_paths",
    "density_animation",
    "density_grid",
    "error_vs_nfe",
    "image_grid",
    "log_likelihood_map",
    "metric_over_time",
    "scatter",
    "trajectories",
]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _np(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().to(device="cpu", dtype=torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def _flat2(x: Any) -> np.ndarray:
    """``(n, *event)`` -> ``(n, 2)``: the first two coordinates (a zero second one for 1-D data)."""
    a = _np(x)
    a = a.reshape(a.shape[0], -1)
    return a[:, :2] if a.shape[1] >= 2 else np.concatenate([a, np.zeros_like(a)], axis=1)


def _save(fig, path: str | Path, dpi: int = 110) -> Path:
    plt = _plt()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def _square(ax, lim: float, label: str) -> None:
    """Square axes ``[-lim, lim]^2`` with a title."""
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_title(label)


def _finish(fig, path: str | Path, title: str, dpi: int = 110) -> Path:
    """Title, tight layout, save and close."""
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path, dpi)


def _limits(arrays: Sequence[np.ndarray], quantile: float = 0.995) -> float:
    return max(float(np.quantile(np.abs(a), quantile)) for a in arrays if a.size) * 1.15 or 1.0


def scatter(
    path: str | Path,
    samples: Any,
    *,
    reference: Any | None = None,
    title: str = "",
    labels: tuple[str, str] = ("samples", "reference"),
    max_points: int = 5000,
) -> Path:
    """Scatter of ``samples`` ``(n, *event)`` (first two coordinates), beside ``reference`` if given.

    Both panels share square axes; at most ``max_points`` points per panel are drawn.
    """
    plt = _plt()
    sets = [(_flat2(samples)[:max_points], labels[0], "C0")]
    if reference is not None:
        sets.append((_flat2(reference)[:max_points], labels[1], "C1"))
    lim = _limits([s for s, _, _ in sets])
    fig, axes = plt.subplots(1, len(sets), figsize=(4.4 * len(sets), 4.4), squeeze=False)
    for ax, (pts, label, color) in zip(axes[0], sets):
        ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.5, color=color)
        _square(ax, lim, label)
    return _finish(fig, path, title)


def trajectories(
    path: str | Path,
    runs: Sequence[tuple[str, Any, Any]],
    *,
    n_paths: int = 150,
    title: str = "",
) -> Path:
    """2-D trajectories in the plane, one panel per run, coloured by time.

    Args:
        runs: ``(label, ts (steps+1,), trajectory (steps+1, batch, *event))`` per panel: a forward
            noising run (ts increasing) or a reverse sampling run (ts decreasing) alike. The start
            points are grey, the end points black; segments are coloured by ``t``.
        n_paths: paths drawn per panel.
    """
    plt = _plt()
    from matplotlib.collections import LineCollection

    fig, axes = plt.subplots(1, len(runs), figsize=(4.4 * len(runs), 4.6), squeeze=False)
    for ax, (label, ts, traj) in zip(axes[0], runs):
        tr = _np(traj)
        tr = tr.reshape(tr.shape[0], tr.shape[1], -1)
        if tr.shape[2] < 2:
            raise ValueError(f"trajectories draws paths in a plane and needs >= 2 dimensions; run {label!r} has 1 "
                             "(use plots.coordinate_paths for 1-D paths against time)")
        tr = tr[:, :n_paths, :2]
        t = _np(ts)
        segs = np.stack([tr[:-1], tr[1:]], axis=2)  # (steps, paths, 2, 2)
        tmid = np.repeat(0.5 * (t[:-1] + t[1:])[:, None], tr.shape[1], axis=1)
        lc = LineCollection(segs.reshape(-1, 2, 2), array=tmid.reshape(-1), cmap="viridis", linewidths=0.5, alpha=0.6)
        ax.add_collection(lc)
        ax.scatter(tr[0, :, 0], tr[0, :, 1], s=5, color="0.5", zorder=3, label=f"start, t = {t[0]:.3g}")
        ax.scatter(tr[-1, :, 0], tr[-1, :, 1], s=5, color="k", zorder=4, label=f"end, t = {t[-1]:.3g}")
        _square(ax, _limits([tr[0], tr[-1]], 1.0), label)
        ax.legend(loc="upper right", fontsize=7)
        fig.colorbar(lc, ax=ax, label="t", shrink=0.8)
    return _finish(fig, path, title)


def coordinate_paths(
    path: str | Path,
    runs: Sequence[tuple[str, Any, Any]],
    *,
    coordinate: int = 0,
    n_paths: int = 60,
    title: str = "",
) -> Path:
    """One coordinate of many paths against time, one panel per run (forward noising, reverse sampling).

    Args:
        runs: ``(label, ts (steps+1,), trajectory (steps+1, batch, *event))``.
        coordinate: which flattened coordinate to draw.
    """
    plt = _plt()
    fig, axes = plt.subplots(1, len(runs), figsize=(5.0 * len(runs), 3.6), squeeze=False)
    for ax, (label, ts, traj) in zip(axes[0], runs):
        tr = _np(traj)
        tr = tr.reshape(tr.shape[0], tr.shape[1], -1)[:, :n_paths, coordinate]
        ax.plot(_np(ts), tr, lw=0.6, alpha=0.6)
        ax.set_xlabel("t")
        ax.set_ylabel(f"x[{coordinate}]")
        ax.set_title(label)
    return _finish(fig, path, title)


def _extent(grid) -> list[float]:
    return [grid.lows[0], grid.highs[0], grid.lows[1], grid.highs[1]]


def density_grid(
    path: str | Path,
    grid,
    times: Sequence[float],
    rows: Mapping[str, Any],
    *,
    title: str = "",
    cmap: str = "magma",
) -> Path:
    """Rows of 2-D density panels over time (e.g. ``{"Fokker-Planck": p, "exact": q}``).

    Args:
        grid: a :class:`sdeflow.fokker_planck.Grid` in 2-D.
        times: ``m`` times (column titles).
        rows: label -> densities ``(m, *grid.shape)``; each column shares one colour scale.
    """
    plt = _plt()
    if grid.ndim != 2:
        raise ValueError(f"density_grid draws 2-D grids; got a {grid.ndim}-D grid")
    data = {k: _np(v) for k, v in rows.items()}
    m = len(times)
    fig, axes = plt.subplots(len(data), m, figsize=(2.4 * m, 2.4 * len(data) + 0.4), squeeze=False)
    for j in range(m):
        vmax = max(float(v[j].max()) for v in data.values())
        for i, (label, v) in enumerate(data.items()):
            ax = axes[i, j]
            ax.imshow(v[j].T, origin="lower", extent=_extent(grid), cmap=cmap, vmin=0, vmax=vmax, aspect="equal")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"t = {float(times[j]):.3g}", fontsize=9)
            if j == 0:
                ax.set_ylabel(label, fontsize=9)
    return _finish(fig, path, title)


def density_animation(
    path: str | Path,
    grid,
    times: Sequence[float],
    panels: Mapping[str, Any],
    *,
    samples: Sequence[Any] | None = None,
    fps: int = 8,
    title: str = "",
    cmap: str = "magma",
) -> Path:
    """An animated GIF of 2-D densities over time, side by side, optionally with samples overlaid.

    Args:
        grid: a 2-D :class:`sdeflow.fokker_planck.Grid`.
        times: ``m`` frame times.
        panels: label -> densities ``(m, *grid.shape)`` (e.g. Fokker-Planck and exact).
        samples: ``m`` sample sets ``(n, 2)`` drawn over the first panel (e.g. simulated SDE samples).
        fps: frames per second.
    """
    plt = _plt()
    from matplotlib.animation import FuncAnimation, PillowWriter

    data = {k: _np(v) for k, v in panels.items()}
    k = len(data)
    fig, axes = plt.subplots(1, k, figsize=(3.8 * k, 4.0), squeeze=False)
    images, scat = [], None
    vmax = [float(v.max()) for v in data.values()]
    for ax, (label, v), vm in zip(axes[0], data.items(), vmax):
        images.append(ax.imshow(v[0].T, origin="lower", extent=_extent(grid), cmap=cmap, vmin=0, vmax=vm))
        ax.set_title(label, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    if samples is not None:
        s0 = _flat2(samples[0])
        scat = axes[0, 0].scatter(s0[:, 0], s0[:, 1], s=1, color="cyan", alpha=0.4)
    heading = fig.suptitle(f"{title} t = {float(times[0]):.3g}")

    def frame(i: int):
        for im, v in zip(images, data.values()):
            im.set_data(v[i].T)
        if scat is not None:
            scat.set_offsets(_flat2(samples[i]))
        heading.set_text(f"{title} t = {float(times[i]):.3g}")
        return images

    anim = FuncAnimation(fig, frame, frames=len(times), blit=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    anim.save(path, writer=PillowWriter(fps=fps), dpi=80)
    plt.close(fig)
    return path


def log_likelihood_map(
    path: str | Path,
    log_prob: Callable[[torch.Tensor], torch.Tensor] | Any,
    bounds: Sequence[Sequence[float]],
    *,
    resolution: int = 128,
    points: Any | None = None,
    title: str = "log-likelihood",
    floor: float | None = None,
) -> Path:
    """A 2-D map of ``log p(x)`` over a box, optionally with points on top.

    Args:
        log_prob: a callable ``(N, 2) float64 -> (N,)`` (evaluated on a ``resolution^2`` grid of
            cell centres), or an array of values ``(resolution, resolution)`` (``ij`` indexing).
        bounds: ``((x_low, x_high), (y_low, y_high))``.
        points: ``(n, 2)`` to overlay (e.g. data whose likelihood was measured).
        floor: lower clip of the colour scale (default: the 1% quantile).
    """
    plt = _plt()
    (x0, x1), (y0, y1) = bounds
    if callable(log_prob):
        hx, hy = (x1 - x0) / resolution, (y1 - y0) / resolution
        xs = torch.linspace(x0 + hx / 2, x1 - hx / 2, resolution, dtype=torch.float64)
        ys = torch.linspace(y0 + hy / 2, y1 - hy / 2, resolution, dtype=torch.float64)
        gx, gy = torch.meshgrid(xs, ys, indexing="ij")
        values = _np(log_prob(torch.stack([gx.reshape(-1), gy.reshape(-1)], 1))).reshape(resolution, resolution)
    else:
        values = _np(log_prob)
    lo = float(np.quantile(values, 0.01)) if floor is None else floor
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    im = ax.imshow(np.clip(values, lo, None).T, origin="lower", extent=[x0, x1, y0, y1], cmap="viridis", aspect="equal")
    fig.colorbar(im, ax=ax, label="log p (nats)")
    if points is not None:
        pts = _flat2(points)
        ax.scatter(pts[:, 0], pts[:, 1], s=3, color="white", edgecolor="k", linewidth=0.2)
    return _finish(fig, path, title)


def error_vs_nfe(
    path: str | Path,
    results: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    ylabel: str = "error",
    title: str = "",
    slopes: Sequence[int] = (1, 2),
    floor: float | None = None,
) -> Path:
    """Error against the number of model calls, log-log, one line per solver.

    Args:
        results: label -> ``(nfes, errors)``.
        slopes: reference lines ``error ~ NFE^-k`` drawn through the first point of the first series.
        floor: a horizontal line (e.g. the two-sample floor of the metric).
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    first = None
    for label, (nfes, errs) in results.items():
        x, y = _np(nfes), _np(errs)
        ax.loglog(x, y, "o-", label=label, ms=4)
        if first is None and len(x):
            first = (x[0], y[0], x[-1])
    if first is not None:
        x0, y0, x1 = first
        xs = np.array([x0, x1])
        for k in slopes:
            ax.loglog(xs, y0 * (xs / x0) ** (-k), ":", color="0.5", lw=1)
            ax.annotate(f"slope -{k}", (x1, y0 * (x1 / x0) ** (-k)), fontsize=7, color="0.4")
    if floor is not None:
        ax.axhline(floor, color="k", ls="--", lw=0.8, label="floor")
    ax.set_xlabel("model calls (NFE)")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    return _finish(fig, path, title)


def metric_over_time(
    path: str | Path,
    times: Sequence[float],
    series: Mapping[str, Sequence[float]],
    *,
    ylabel: str = "Jensen-Shannon divergence (nats)",
    title: str = "",
    floor: tuple[Sequence[float], Sequence[float]] | None = None,
    log: bool = True,
) -> Path:
    """A distance against time for several series, with an optional floor band ``(low, high)`` per time."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.8, 3.8))
    t = _np(times)
    for label, values in series.items():
        ax.plot(t, _np(values), "o-", ms=3, label=label)
    if floor is not None:
        ax.fill_between(t, _np(floor[0]), _np(floor[1]), color="0.8", alpha=0.7, label="two-sample floor")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("t")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    return _finish(fig, path, title)


def image_grid(
    path: str | Path,
    images: Any,
    *,
    nrow: int | None = None,
    value_range: tuple[float, float] = (-1.0, 1.0),
    title: str = "",
) -> Path:
    """A grid of images: ``(n, C, H, W)`` with ``C`` in 1, 3, 4, or ``(n, H, W)``; values in ``value_range``.

    ``nrow`` images per row (default ``ceil(sqrt(n))``); written as one PNG at native resolution
    (scaled up for small images).
    """
    plt = _plt()
    a = _np(images)
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4 or a.shape[1] not in (1, 3, 4):
        raise ValueError(f"images must have shape (n, C, H, W) with C in 1, 3, 4, or (n, H, W); got {a.shape}")
    lo, hi = value_range
    a = np.clip((a - lo) / (hi - lo), 0.0, 1.0)
    n, c, h, w = a.shape
    ncol = nrow or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncol)
    pad = 1
    canvas = np.ones((nrows * (h + pad) + pad, ncol * (w + pad) + pad, c))
    for k in range(n):
        r, q = divmod(k, ncol)
        canvas[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + q * (w + pad) : pad + q * (w + pad) + w] = a[k].transpose(1, 2, 0)
    scale = max(1.0, 256 / max(canvas.shape[:2]))
    fig = plt.figure(figsize=(canvas.shape[1] * scale / 100, canvas.shape[0] * scale / 100 + (0.3 if title else 0)))
    ax = fig.add_axes([0, 0, 1, 1 if not title else canvas.shape[0] / (canvas.shape[0] + 30 / scale)])
    ax.imshow(canvas[..., 0] if c == 1 else canvas, cmap="gray" if c == 1 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=8)
    return _save(fig, path, dpi=100)
