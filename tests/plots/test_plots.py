"""Every plotting function writes a readable image of the expected kind and returns its path."""

from __future__ import annotations

import torch
from PIL import Image

from sdeflow import plots
from sdeflow.fokker_planck import Grid


def _check(path, kind: str, frames: int = 1) -> None:
    # The file opens as the declared format with a sensible size (and frame count for GIFs).
    with Image.open(path) as im:
        assert im.format == kind and im.size[0] > 50 and im.size[1] > 50
        assert getattr(im, "n_frames", 1) == frames


def test_static_plots(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 2, generator=g)
    ts = torch.linspace(1.0, 0.0, 11)
    traj = torch.cumsum(torch.randn(11, 20, 2, generator=g) * 0.1, 0)
    assert plots.scatter(tmp_path / "s.png", x, reference=x + 1, title="t") == tmp_path / "s.png"
    _check(tmp_path / "s.png", "PNG")
    _check(plots.trajectories(tmp_path / "tr.png", [("fwd", ts.flip(0), traj), ("rev", ts, traj)]), "PNG")
    _check(plots.coordinate_paths(tmp_path / "cp.png", [("rev", ts, traj)]), "PNG")
    grid = Grid(((-2, 2), (-2, 2)), 16)
    dens = torch.rand(3, 16, 16, generator=g)
    _check(plots.density_grid(tmp_path / "dg.png", grid, [0, 0.5, 1], {"a": dens, "b": dens}), "PNG")
    _check(plots.log_likelihood_map(tmp_path / "ll.png", lambda p: -p.pow(2).sum(1), ((-2, 2), (-2, 2)),
                                    resolution=32, points=x), "PNG")
    _check(plots.error_vs_nfe(tmp_path / "e.png", {"euler": ([10, 20, 40], [0.4, 0.2, 0.1]),
                                                   "heun": ([10, 20, 40], [0.1, 0.025, 0.006])}, floor=0.01), "PNG")
    _check(plots.metric_over_time(tmp_path / "m.png", [0, 0.5, 1], {"jsd": [0.1, 0.01, 0.02]},
                                  floor=([0.005] * 3, [0.02] * 3)), "PNG")
    _check(plots.image_grid(tmp_path / "ig.png", torch.rand(10, 3, 8, 8, generator=g) * 2 - 1, title="x"), "PNG")
    _check(plots.image_grid(tmp_path / "ig1.png", torch.rand(4, 8, 8, generator=g)), "PNG")


def test_density_animation_is_a_gif_with_one_frame_per_time(tmp_path):
    grid = Grid(((-2, 2), (-2, 2)), 12)
    g = torch.Generator().manual_seed(1)
    dens = torch.rand(4, 12, 12, generator=g)
    samples = [torch.randn(50, 2, generator=g) for _ in range(4)]
    path = plots.density_animation(tmp_path / "a.gif", grid, [0, 0.3, 0.6, 1.0], {"FP": dens, "exact": dens},
                                   samples=samples)
    _check(path, "GIF", frames=4)


def test_a_backend_chosen_by_the_user_is_kept():
    # _plt() used to call matplotlib.use("Agg") on every plot, which switched a Jupyter kernel's inline
    # display off for the rest of the session. With pyplot already imported under a backend, that backend
    # stays; in a fresh process (no pyplot yet) the plots draw with Agg.
    import subprocess
    import sys

    code = ("import matplotlib; matplotlib.use('svg'); import matplotlib.pyplot; from sdeflow import plots; "
            "plots._plt(); print(matplotlib.get_backend())")
    kept = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()[-1]
    fresh = subprocess.run([sys.executable, "-c", "import matplotlib; from sdeflow import plots; plots._plt(); "
                            "print(matplotlib.get_backend())"], capture_output=True, text=True, check=True).stdout.split()[-1]
    assert kept == "svg" and fresh.lower() == "agg"
