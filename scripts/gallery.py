"""Regenerate docs/gallery.md and its pictures (docs/gallery/): every figure the sdeflow commands draw.

    python scripts/gallery.py            # the commands at the sizes below (minutes on 2 cores)
    python scripts/gallery.py --quick    # smaller runs (a smoke test of the script)

Each picture is made by the command printed above it on the page, run here in-process with
``--threads 1``; the page is rewritten from the list below, so a new figure is one more entry.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "gallery"
PAGE = ROOT / "docs" / "gallery.md"

# (heading, command (words after `sdeflow`), extra words for --quick, figures: (file in the command's
# output folder, caption)). {out} is the command's output folder.
ENTRIES = [
    ("The demo: trained models", ["demo", "--out", "{out}", "--n", "1000"], ["--quick", "--n", "300"], [
        ("digits_grid.png", "Real held-out digits above the red line, then the U-Net's samples by a deterministic (ODE) and "
                            "a stochastic (SDE) solver, with their Frechet distances."),
        ("toy_samples.png", "Moons: samples of the trained flow by the ODE and the SDE solver beside held-out data, on the "
                            "same data-driven axes, with W2 and its floor."),
        ("toy_trajectories.png", "Moons: probability-flow paths of the trained flow, coloured by time."),
        ("exact_score_ring/trajectories.png", "The exact-score ring: deterministic paths fan from noise into the 8 modes; "
                                              "for the stochastic samplers, five paths over the density of all samples."),
        ("exact_score_ring/samples.png", "The exact-score ring: the best sampler's samples beside true samples."),
    ]),
    ("Sampling a 64-D mixture", ["sample", "--target", "mixture64d", "--nfe", "10", "--out", "{out}"], ["--n", "500"], [
        ("samples.png", "Two coordinates of the 64-D mixture: samples beside true samples; the title names the coordinates."),
    ]),
    ("Fokker-Planck", ["fokker-planck", "--out", "{out}"], ["--cells", "32", "--frames", "6", "--samples", "1000"], [
        ("densities.png", "The density by the Fokker-Planck solver (top) and the exact marginal (bottom) over time, "
                          "with axes and a colour bar per time."),
        ("jsd.png", "Jensen-Shannon divergence over time: solver against exact and against simulated samples, "
                    "with the two-sample floor band of the simulation."),
        ("forward.gif", "Forward evolution: both densities with a colour scale per frame, simulated samples overlaid."),
    ]),
    ("SDE paths", ["simulate", "--model", "gbm", "--paths", "5000", "--out", "{out}"], ["--paths", "500"], [
        ("paths.png", "Sample paths of geometric Brownian motion."),
        ("terminal.png", "The terminal distribution: histogram of the simulation and the closed-form log-normal density."),
    ]),
    ("SDE paths without a closed form", ["simulate", "--model", "heston", "--paths", "5000", "--out", "{out}"],
     ["--paths", "500"], [
        ("terminal.png", "Heston: the terminal histogram says that no closed-form density is drawn."),
    ]),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (a smoke test of the script)")
    parser.add_argument("--out", type=Path, default=OUT, help="folder of the pictures (default docs/gallery)")
    parser.add_argument("--page", type=Path, default=PAGE, help="the Markdown page to write (default docs/gallery.md)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "src"))
    from sdeflow.cli import main as sdeflow

    args.out.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Gallery",
        "",
        "Every figure the `sdeflow` commands draw, each made by the command above it. Regenerate all of them",
        "(pictures and this page) with one command:",
        "",
        "<!-- docs-test: skip it regenerates every picture (minutes); the pictures below are its output -->",
        "```bash",
        "python scripts/gallery.py",
        "```",
        "",
        ("These were made with `python scripts/gallery.py --quick` (smaller runs: the demo's models are barely trained, so "
         "its digits are not yet digits) on 2 shared CPU cores; `python scripts/gallery.py` makes them at the sizes shown."
         if args.quick else "These were made with `python scripts/gallery.py` on 2 shared CPU cores."),
        "",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for k, (heading, command, quick, figures) in enumerate(ENTRIES):
            folder = Path(tmp) / f"run{k}"
            words = [w.format(out=folder) for w in command] + (quick if args.quick else []) + ["--quiet", "--threads", "1"]
            shown = " ".join(w.format(out="out/") for w in command + (quick if args.quick else []))
            start = time.perf_counter()
            code = sdeflow(words)
            if code != 0:
                raise SystemExit(f"sdeflow {shown} exited with {code}")
            print(f"sdeflow {shown}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
            lines += [f"## {heading}", "", "<!-- docs-test: skip scripts/gallery.py runs it (this page is that script's output) -->",
                      "```bash", f"sdeflow {shown}", "```", ""]
            for name, caption in figures:
                target = f"{k}-{name.replace('/', '-')}"
                shutil.copyfile(folder / name, args.out / target)
                lines += [f"![{caption}](gallery/{target})", "", caption, ""]
    args.page.write_text("\n".join(lines).rstrip() + "\n")
    print(f"wrote {args.page} and {len(list(args.out.iterdir()))} pictures in {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
