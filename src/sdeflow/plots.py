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
    import sys

    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        # Nobody chose a backend yet: draw off-screen (files only, no display needed). A backend the user
        # (or Jupyter's inline display) already set up is kept.
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
    """Title (wrapped to the figure's width), tight layout, save and close."""
    if title:
        import textwrap

        fig.suptitle(textwrap.fill(title, max(40, int(fig.get_figwidth() * 12))))
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
    others: Mapping[str, Any] | None = None,
    coords: tuple[int, int] = (0, 1),
) -> Path:
    """Scatter of ``samples`` ``(n, *event)`` beside ``others`` (label -> samples) and ``reference``.

    One panel per set, all on the same data-driven axes (the 99.5% quantile of every set, so no set
    is cut off and none is lost in an empty square). ``coords`` are the two flattened coordinates
    drawn; the axes name them, and the title says how many there are when the data has more than
    two. At most ``max_points`` points per panel are drawn.
    """
    plt = _plt()
    pick = list(coords)

    def two(x: Any) -> np.ndarray:
        a = _np(x)
        a = a.reshape(a.shape[0], -1)
        return a[:, pick] if a.shape[1] > max(pick) else _flat2(a)

    dim = int(np.prod(_np(samples).shape[1:]))
    sets = [(two(samples)[:max_points], labels[0], "C0")]
    for k, (label, other) in enumerate((others or {}).items()):
        sets.append((two(other)[:max_points], label, f"C{k + 2}"))
    if reference is not None:
        sets.append((two(reference)[:max_points], labels[1], "C1"))
    every = np.concatenate([q for q, _, _ in sets])
    lo, hi = np.quantile(every, 0.0025, axis=0), np.quantile(every, 0.9975, axis=0)
    pad = 0.08 * (hi - lo) + 1e-9
    fig, axes = plt.subplots(1, len(sets), figsize=(4.2 * len(sets), 4.4), squeeze=False)
    for ax, (pts, label, color) in zip(axes[0], sets):
        ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.5, color=color)
        ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
        ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
        ax.set_aspect("equal" if dim == 2 else "auto")
        ax.set_title(f"{label} ({len(pts)} points)", fontsize=9)
        ax.set_xlabel(f"x[{pick[0]}]")
        ax.set_ylabel(f"x[{pick[1]}]")
    if dim > 2:
        title = f"{title} (coordinates {pick[0]} and {pick[1]} of {dim})".strip()
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
            im = ax.imshow(v[j].T, origin="lower", extent=_extent(grid), cmap=cmap, vmin=0, vmax=vmax, aspect="equal")
            ax.tick_params(labelsize=7)
            if i < len(data) - 1:
                ax.set_xticklabels([])
            else:
                ax.set_xlabel("x[0]", fontsize=8)
            if i == 0:
                ax.set_title(f"t = {float(times[j]):.3g}", fontsize=9)
            if j == 0:
                ax.set_ylabel(f"{label}\nx[1]", fontsize=9)
            else:
                ax.set_yticklabels([])
        fig.colorbar(im, ax=list(axes[:, j]), orientation="horizontal", fraction=0.05, pad=0.12, label="density")
    if title:
        import textwrap

        fig.suptitle(textwrap.fill(title, max(40, int(fig.get_figwidth() * 12))))
    return _save(fig, path)


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
    # One colour scale per frame, shared by the panels (a scale fixed over all frames turns the late,
    # spread-out densities black); the colour bars follow it.
    frame_max = [max(float(v[i].max()) for v in data.values()) or 1.0 for i in range(len(times))]
    bars = []
    for ax, (label, v) in zip(axes[0], data.items()):
        images.append(ax.imshow(v[0].T, origin="lower", extent=_extent(grid), cmap=cmap, vmin=0, vmax=frame_max[0]))
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("x[0]")
        ax.set_ylabel("x[1]")
        bars.append(fig.colorbar(images[-1], ax=ax, shrink=0.8, label="density"))
    if samples is not None:
        s0 = _flat2(samples[0])
        scat = axes[0, 0].scatter(s0[:, 0], s0[:, 1], s=1, color="cyan", alpha=0.4, label="simulated samples")
        axes[0, 0].legend(loc="upper right", fontsize=7, markerscale=4)
    import textwrap

    width = max(40, int(fig.get_figwidth() * 12))
    heading = fig.suptitle(textwrap.fill(f"{title} t = {float(times[0]):.3g}", width), fontsize=10)

    def frame(i: int):
        for im, v in zip(images, data.values()):
            im.set_data(v[i].T)
            im.set_clim(0, frame_max[i])
        if scat is not None:
            scat.set_offsets(_flat2(samples[i]))
        heading.set_text(textwrap.fill(f"{title} t = {float(times[i]):.3g}", width))
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
    # Distinct markers and dashes, drawn over one another with some transparency: equal series stay visible.
    styles = [("o", "-"), ("s", "--"), ("^", "-."), ("v", ":"), ("D", "-"), ("x", "--")]
    if floor is not None:
        ax.fill_between(t, _np(floor[0]), _np(floor[1]), color="tab:orange", alpha=0.25, lw=0, zorder=1)
        ax.plot(t, _np(floor[0]), color="tab:orange", lw=0.8, zorder=1)
        ax.plot(t, _np(floor[1]), color="tab:orange", lw=0.8, zorder=1, label="two-sample floor (band)")
    for k, (label, values) in enumerate(series.items()):
        marker, dash = styles[k % len(styles)]
        ax.plot(t, _np(values), marker=marker, ls=dash, ms=4, lw=1.2, alpha=0.8, mfc="none", label=label, zorder=2 + k)
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


def image_rows(
    path: str | Path,
    groups: Mapping[str, Any],
    *,
    ncol: int = 10,
    value_range: tuple[float, float] = (-1.0, 1.0),
    title: str = "",
    pixels: int = 36,
) -> Path:
    """Groups of images, one block of rows per group, each labelled and divided from the next by a line.

    For comparisons such as real data / ODE samples / SDE samples. ``groups`` maps a label to images
    ``(n, C, H, W)`` or ``(n, H, W)`` (``C`` = 1 or 3) in ``value_range``; ``ncol`` images per row;
    each image is drawn ``pixels`` screen pixels wide (an 8x8 digit becomes readable).
    """
    plt = _plt()
    blocks, labels = [], []
    for label, images in groups.items():
        a = _np(images)
        a = a[:, None] if a.ndim == 3 else a
        if a.ndim != 4 or a.shape[1] not in (1, 3):
            raise ValueError(f"images of group {label!r} must have shape (n, C, H, W) with C in 1, 3, or (n, H, W); got {a.shape}")
        lo, hi = value_range
        a = np.clip((a - lo) / (hi - lo), 0.0, 1.0)
        n, c, h, w = a.shape
        rows = max(1, math.ceil(n / ncol))
        block = np.ones((rows * (h + 1), ncol * (w + 1), 3))
        for k in range(n):
            r, q = divmod(k, ncol)
            tile = a[k].transpose(1, 2, 0)
            block[r * (h + 1) : r * (h + 1) + h, q * (w + 1) : q * (w + 1) + w] = tile if c == 3 else np.repeat(tile, 3, axis=2)
        blocks.append(block)
        labels.append(label)
    width = max(b.shape[1] for b in blocks)
    blocks = [np.pad(b, ((0, 0), (0, width - b.shape[1]), (0, 0)), constant_values=1.0) for b in blocks]
    canvas = np.concatenate(blocks, axis=0)
    cell = pixels / (_np(next(iter(groups.values()))).shape[-1] + 1)
    fig_w = canvas.shape[1] * cell / 100 + 2.2
    fig_h = canvas.shape[0] * cell / 100 + (0.6 if title else 0.2)
    fig, ax = plt.subplots(figsize=(fig_w, fig_h))
    ax.imshow(canvas, interpolation="nearest", aspect="equal")
    edges = np.cumsum([0] + [b.shape[0] for b in blocks])
    for y in edges[1:-1]:
        ax.axhline(y - 0.5, color="tab:red", lw=2)
    ax.set_yticks(0.5 * (edges[:-1] + edges[1:]) - 0.5)
    ax.set_yticklabels(labels, fontsize=9)
    ax.set_xticks([])
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    if title:
        import textwrap

        ax.set_title(textwrap.fill(title, max(30, int(fig_w * 11))), fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight", pad_inches=0.1)  # the labels on the left are kept whole
    plt.close(fig)
    return path
