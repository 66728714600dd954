"""Assemble BENCHMARKS.md from the per-area reports the benchmark scripts write (``make benchmarks-md``).

Each benchmark script writes its own report (``BENCHMARKS-<area>.md``, with its command, machine and
medians); BENCHMARKS.md gathers them in one file under a common header, in a fixed order.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["samplers", "family", "named", "networks", "adapters", "sde", "adjoint", "training", "corrupted", "latent", "distributed", "few-step", "transport", "analysis", "inverse", "audio", "finance", "reliability"]
TITLES = {
    "samplers": "Samplers: accuracy per model call against k-diffusion and diffusers",
    "family": "Samplers on the problem family: tuning and validation halves",
    "named": "Named solvers on their default grids against the peers' same methods",
    "networks": "Samplers on real trained networks: the digits U-Net and the moons flow",
    "adapters": "Adapters: sdeflow's solvers inside diffusers loops",
    "sde": "The general SDE engine against torchsde, NumPy and hand-written loops",
    "adjoint": "sdeint_adjoint: exact gradients in memory independent of the steps, against torchsde's adjoint",
    "training": "Training: quality and throughput",
    "corrupted": "Corrupted data: clean priors from noisy and masked observations",
    "latent": "Latent diffusion: digits in an autoencoder's latent space",
    "few-step": "Few-step generation: consistency models and distillation against exact teachers",
    "distributed": "Distributed training and sampling: 1 and 2 processes, communication on N GPUs",
    "transport": "Transport: rectified flow with reflow, Schrodinger bridges, stochastic interpolants",
    "analysis": "Likelihood and Fokker-Planck",
    "inverse": "Inverse problems: posterior methods against exact posteriors",
    "audio": "Audio: pitch-conditional notes (pitch accuracy, Frechet distance, training time)",
    "finance": "Finance: synthetic stochastic-volatility return paths (stylized facts, option prices)",
    "reliability": "Reliability: fuzzing every public entry point",
}

HEADER = """# Benchmarks

Every figure here comes from a script in `benchmarks/`, run on this project's machines (2 CPU cores,
shared with other work: timings are medians of several runs and the ratios that matter are taken
side by side in one run). Each section names its exact command. The sections are the per-area
reports `BENCHMARKS-<area>.md` the scripts write, gathered by `python scripts/update_benchmarks.py`.

"""


def render() -> str:
    parts = [HEADER]
    present = [a for a in ORDER if (ROOT / f"BENCHMARKS-{a}.md").exists()]
    parts.append("## Contents\n\n" + "\n".join(f"- [{TITLES[a]}](#{a})" for a in present) + "\n")
    for area in present:
        body = (ROOT / f"BENCHMARKS-{area}.md").read_text().strip()
        # Demote the report's headings by one level under our section heading.
        lines = [("#" + line) if line.startswith("#") else line for line in body.splitlines()]
        parts.append(f'\n<a id="{area}"></a>\n\n## {TITLES[area]}\n\n' + "\n".join(lines[1:] if lines and lines[0].startswith("##") else lines) + "\n")
    return "".join(parts)


if __name__ == "__main__":
    (ROOT / "BENCHMARKS.md").write_text(render())
    print(f"wrote {ROOT / 'BENCHMARKS.md'}")
