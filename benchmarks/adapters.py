"""The cost of the adapters: sdeflow's solvers inside a diffusers loop, against diffusers' own scheduler.

Usage (from the repository root; one thread per process on a shared machine)::

    OMP_NUM_THREADS=1 python benchmarks/adapters.py            # the full run: BENCHMARKS-adapters.md
    OMP_NUM_THREADS=1 python benchmarks/adapters.py --quick    # a smoke run (fewer repeats, smaller batch)
    sdeflow bench adapters --quick

What is timed: a whole 25-step DPM-Solver++(2M) (midpoint) sampling loop with the network replaced by
a stored tensor (its cost excluded), on latent-like states ``(batch, 4, 64, 64)`` float32, batch 1
and 16, three ways on the same table (DDPM linear betas, 1000 entries):

* diffusers' ``DPMSolverMultistepScheduler`` driven by the usual pipeline loop;
* sdeflow's :class:`~sdeflow.adapters.DiffusersScheduler` (``dpmpp_2m``) driven by the same loop
  (each ``step`` hands the output to a paused ``sdeflow.sample`` in a worker thread);
* ``sdeflow.sample(..., solver="dpmpp_2m")`` with the stored model (no adapter).

Reported: the median over ``--repeats`` runs of the time per step (after one warm-up run), and the
ratios to diffusers' scheduler, side by side in one run. ``set_timesteps`` is inside the timing for
both schedulers (it is part of every pipeline call). A bar plot goes to benchmarks/figures/adapters_overhead.png.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch

import sdeflow
from sdeflow.adapters import DiffusersScheduler, from_diffusers

ROOT = Path(__file__).resolve().parents[1]
STEPS = 25


def _env() -> dict:
    return {"threads": torch.get_num_threads(), "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(), "load_average_1min": round(os.getloadavg()[0], 2)}


def _median_per_step(fn, repeats: int) -> float:
    fn()  # warm-up (first-call allocations, the plan cache of sdeflow's solvers)
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tic)
    return statistics.median(times) / STEPS


def measure(batch: int, repeats: int) -> dict:
    """Seconds per step of the three loops at one batch size."""
    import diffusers

    diffusers.utils.logging.set_verbosity_error()
    x = torch.randn(batch, 4, 64, 64, generator=torch.Generator().manual_seed(0))
    stored = 0.1 * torch.randn(batch, 4, 64, 64, generator=torch.Generator().manual_seed(1))

    def pipeline_loop(scheduler):
        scheduler.set_timesteps(STEPS)
        sample = x * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            sample = scheduler.step(stored, t, scheduler.scale_model_input(sample, t)).prev_sample
        return sample

    theirs = diffusers.DPMSolverMultistepScheduler()  # solver_order=2, dpmsolver++, midpoint: the defaults
    ours = DiffusersScheduler.from_scheduler(theirs, "dpmpp_2m")
    _, process = from_diffusers(lambda xx, tt: stored, theirs)  # the table as a DiscreteVP
    grid = torch.cat([process.time_from_index(torch.linspace(999, 0, STEPS).round()), torch.zeros(1, dtype=torch.float64)])

    def direct():
        return sdeflow.sample(lambda xx, tt: stored, process, x, prediction="eps", solver="dpmpp_2m", grid=grid).samples

    return {
        "diffusers DPMSolverMultistepScheduler": _median_per_step(lambda: pipeline_loop(theirs), repeats),
        "sdeflow DiffusersScheduler('dpmpp_2m')": _median_per_step(lambda: pipeline_loop(ours), repeats),
        "sdeflow.sample(solver='dpmpp_2m')": _median_per_step(direct, repeats),
    }


def plot(rows: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    labels = list(next(iter(rows.values())))
    width = 0.8 / len(rows)
    for k, (batch, res) in enumerate(rows.items()):
        ax.bar([i + k * width for i in range(len(labels))], [1e3 * res[l] for l in labels], width, label=f"batch {batch}")
    ax.set_xticks([i + width * (len(rows) - 1) / 2 for i in range(len(labels))])
    ax.set_xticklabels([l.replace(" ", "\n", 1) for l in labels], fontsize=7)
    ax.set_ylabel("ms per step (model excluded)")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(rows: dict, command: str, env: dict) -> str:
    labels = list(next(iter(rows.values())))
    base = labels[0]
    lines = ["## Adapters: sdeflow's solvers inside diffusers loops", "",
             f"Command: `{command}`. Machine: {env['machine']}, {env['threads']} thread, torch {env['torch']}, "
             f"load average {env['load_average_1min']} (2 cores shared with other work).", "",
             f"A {STEPS}-step DPM-Solver++(2M) (midpoint) loop with a stored network output (the network's cost "
             "excluded), states (batch, 4, 64, 64) float32; median time per step, and the ratio to diffusers' "
             "own scheduler measured in the same run.", "",
             "| loop | " + " | ".join(f"batch {b}: ms/step (ratio)" for b in rows) + " |",
             "|---|" + "---|" * len(rows)]
    for label in labels:
        cells = [f"{1e3 * res[label]:.3f} ({res[label] / res[base]:.2f}x)" for res in rows.values()]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "![overhead](benchmarks/figures/adapters_overhead.png)", "",
              "The adapter's own cost is the difference between its row and `sdeflow.sample`'s: here "
              + ", ".join(f"{1e3 * (res[labels[1]] - res[labels[2]]):+.2f} ms per step at batch {b}" for b, res in rows.items())
              + ". It is the hand-over between the pipeline's thread and the paused sampling loop (two queue "
              "operations per model call, so it depends on how fast the OS schedules the worker thread: on a loaded "
              "machine it varies from run to run) and the schedule's dry run in `set_timesteps`. A real network "
              "call (milliseconds to seconds) dwarfs every row. Equality "
              "with diffusers' and k-diffusion's samplers is not measured here but tested (tests/adapters; "
              "figures in docs/peers.md).", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: batch 1 and 4, 3 repeats")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per loop (default 15, quick 3)")
    parser.add_argument("--out", default=str(ROOT / "BENCHMARKS-adapters.md"),
                        help="the report to write (default: the repository's; elsewhere its plot goes beside it)")
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    torch.set_num_threads(1)
    repeats = args.repeats or (3 if args.quick else 15)
    batches = (1, 4) if args.quick else (1, 16)
    rows = {}
    for batch in batches:
        rows[batch] = measure(batch, repeats)
        print(f"batch {batch}: " + ", ".join(f"{k} {1e3 * v:.3f} ms/step" for k, v in rows[batch].items()), flush=True)
    out = Path(args.out)
    default_out = out.resolve() == (ROOT / "BENCHMARKS-adapters.md").resolve()
    # The repository's report keeps its plot under benchmarks/figures; a report elsewhere gets its own beside it.
    plot(rows, ROOT / "benchmarks" / "figures" / "adapters_overhead.png" if default_out else out.with_suffix(".png"))
    command = "python benchmarks/adapters.py" + (" --quick" if args.quick else "") + (f" --repeats {args.repeats}" if args.repeats else "")
    text = report(rows, command, _env())
    if not default_out:
        text = text.replace("benchmarks/figures/adapters_overhead.png", out.with_suffix(".png").name)
    out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
