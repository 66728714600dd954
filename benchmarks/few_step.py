"""Few-step generation where the answer is known: consistency distillation (CD) and consistency training (CT).

Usage (from the repository root; one thread per process on a shared machine)::

    OMP_NUM_THREADS=1 python benchmarks/few_step.py             # the full run: BENCHMARKS-few-step.md
    OMP_NUM_THREADS=1 python benchmarks/few_step.py --quick     # a smoke run (small budgets)
    sdeflow bench few_step --quick

Problems: the exact-score ring of 8 Gaussians (``sdeflow.targets.ring2d``) and a 16-D mixture of 8
Gaussians (``sdeflow.targets.random_mixture(16, 16, 8)``), on the EDM process. The teacher is the
mixture's exact denoiser; its probability-flow ODE is integrated with Heun at 35 model calls
(18 steps). Students: an MLP with EDM preconditioning (the consistency function's backbone) trained by

* CD: consistency distillation of the exact teacher (Heun teacher step, N = 18 levels, EMA target
  mu = 0.95, squared L2), from a random initialization;
* CT: consistency training from data samples alone (improved-CT recipe: curriculum, log-normal
  levels, pseudo-Huber, no EMA target), same network and budget.

Metric: the exact W2 (POT network simplex) between ``--n`` generated samples and ``--n`` fresh true
samples, for ``--seeds`` seeds (mean and standard deviation); the two-sample floor is the W2
between two fresh true sample sets of the same size. Every row reports the training steps, the
training CPU time and the model calls per sample. Goals (issue 14): CD 1 step within 1.2x of the
teacher's W2, 2 steps within 1.05x; CT 2 steps within 1.5x.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

import sdeflow
from sdeflow.distill import ConsistencyDistillation, ConsistencyTraining
from sdeflow.metrics import wasserstein2
from sdeflow.nn import MLP
from sdeflow.processes import EDM
from sdeflow.targets import random_mixture, ring2d
from sdeflow.training import DiffusionModel, TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]
PROBLEMS = {"ring2d": lambda: ring2d(), "mixture16d": lambda: random_mixture(16, 16, 8)}


def _env() -> dict:
    return {"threads": torch.get_num_threads(), "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(), "load_average_1min": round(os.getloadavg()[0], 2)}


def _train(objective, dim: int, data: torch.Tensor, steps: int, ema: float, seed: int, progress: bool):
    model = DiffusionModel(MLP((dim,), 256 if dim > 2 else 128, 3, seed=seed), objective.process, precond="edm")
    cfg = TrainConfig(steps=steps, batch_size=256, lr=1e-3, warmup_steps=100, ema_decay=ema, seed=seed,
                      progress=progress, log_every=max(1, steps // 20))
    tic = time.process_time()
    result = Trainer(model, objective, data, config=cfg).fit()
    return objective.wrap(result.ema_model), time.process_time() - tic, [h["loss"] for h in result.history]


def _w2_rows(target, sampler, n: int, seeds: int) -> list[float]:
    """W2 of ``sampler(x_T, seed)`` against fresh true samples, one value per seed."""
    out = []
    for k in range(seeds):
        ref = target.sample(n, seeds=10**7 * (k + 1))
        out.append(wasserstein2(sampler(k), ref))
    return out


def run(args) -> dict:
    torch.set_num_threads(1)
    p = EDM()
    report: dict = {"env": _env(), "args": vars(args), "problems": {}}
    for name in args.problems:
        target = PROBLEMS[name]()
        dim = target.dim
        n = args.n
        rows = []

        def noise(k):
            return p.prior_sample((n, dim), seeds=10**6 * (k + 1), dtype=torch.float64)

        def record(label, w2s, **info):
            row = {"method": label, "w2_mean": statistics.mean(w2s), "w2_sd": statistics.stdev(w2s) if len(w2s) > 1 else 0.0,
                   "w2": w2s, **info}
            rows.append(row)
            print(f"[{name}] {label}: W2 {row['w2_mean']:.4f} +- {row['w2_sd']:.4f} {info}", file=sys.stderr, flush=True)

        record("two-sample floor", _w2_rows(target, lambda k: target.sample(n, seeds=3 * 10**7 + 10**6 * k), n, args.seeds),
               train_steps=0, cpu_seconds=0.0, nfe=0)
        teacher = target.model(p, "x0")
        with torch.no_grad():
            record("teacher (exact score, Heun)", _w2_rows(
                target, lambda k: sdeflow.sample(teacher, p, noise(k), solver="heun", nfe=35).samples, n, args.seeds),
                train_steps=0, cpu_seconds=0.0, nfe=35)
        data = target.sample(args.n_data, seeds=0)
        students = {}
        cd = ConsistencyDistillation(teacher, p, "x0", levels=18)
        students["CD"] = _train(cd, dim, data, args.steps, 0.95, 0, args.progress)
        ct_steps = args.ct_steps or args.steps
        ct = ConsistencyTraining(p, "x0", total_steps=ct_steps, s1=args.ct_s1)
        students["CT"] = _train(ct, dim, data, ct_steps, 0.999, 0, args.progress)
        samples_for_plot = {}
        for label, (f, cpu, losses) in students.items():
            for nfe, eta in ((1, None), (2, 1.0)):
                def draw(k, f=f, nfe=nfe, eta=eta):
                    with torch.no_grad():
                        return sdeflow.sample(f, p, noise(k).float(), solver="consistency", nfe=nfe, eta=eta or 0.0,
                                              seed=10**8 * (k + 1)).samples
                row = f"{label} {nfe}-step" + ("" if eta in (None, 1.0) else f" (eta {eta:g})")
                record(row, _w2_rows(target, draw, n, args.seeds), train_steps=ct_steps if label == "CT" else args.steps,
                       cpu_seconds=round(cpu, 1), nfe=nfe, eta=eta, loss_first=losses[0] if losses else None,
                       loss_last=losses[-1] if losses else None)
                if name == "ring2d" and eta in (None, 1.0):
                    samples_for_plot[f"{label} {nfe}-step"] = draw(0)
        if name == "ring2d":
            with torch.no_grad():
                samples_for_plot = {"teacher 35 calls": sdeflow.sample(teacher, p, noise(0), solver="heun", nfe=35).samples,
                                    **samples_for_plot}
            report["ring_samples"] = {k: v[:2000].tolist() for k, v in samples_for_plot.items()}
        teacher_w2 = rows[1]["w2_mean"]
        for row in rows:
            row["ratio_to_teacher"] = row["w2_mean"] / teacher_w2
        report["problems"][name] = rows
    return report


DIGITS_CKPT = ROOT / "benchmarks" / "results" / "networks" / "digits"


def run_digits(args) -> dict:
    """CD, ECT and progressive distillation from the cached digits diffusion model (benchmarks/networks.py's).

    ``args.digits_methods`` chooses among ``cd``, ``ect`` and ``pd``; the rows of an earlier run of the
    other methods (same samples, same noise) are kept from ``args.digits_json`` when it exists, so the
    methods can be trained in separate processes side by side.
    """
    from sdeflow.distill import EasyConsistencyTuning, progressive_distillation
    from sdeflow.distill.runs import student_from_teacher, teacher_data
    from sdeflow.grids import UniformLogSNR
    from sdeflow.data.digits import load_digits
    from sdeflow.training import digits_scores, load_checkpoint_model

    torch.set_num_threads(1)
    teacher, p, prediction, config = load_checkpoint_model(DIGITS_CKPT)
    _, data = teacher_data(config)
    n, steps, lr, methods = args.digits_n, args.digits_steps, args.digits_lr, args.digits_methods
    x = p.prior_sample((n, 1, 8, 8), seeds=0)
    rows = []

    def record(label, samples, nfe, train_steps=0, cpu=0.0, eta=None):
        scores = digits_scores(samples.clamp(-1, 1))
        row = {"method": label, "nfe": nfe, "train_steps": train_steps, "cpu_seconds": round(cpu, 1), "eta": eta,
               "frechet_distance": scores["frechet_distance"], "frechet_floor": scores["frechet_floor"],
               "confident_fraction": scores["confident_fraction"]}
        rows.append(row)
        print(f"[digits] {label}: FD {row['frechet_distance']:.3f} conf {row['confident_fraction']:.3f}", file=sys.stderr, flush=True)

    with torch.no_grad():
        for nfe in (10, 35):
            record(f"teacher (UniPC default) {nfe} calls", sdeflow.sample(teacher, p, x, nfe=nfe).samples, nfe)
    cfg = TrainConfig(steps=steps, batch_size=64, lr=lr, warmup_steps=100, ema_decay=0.95, progress=args.progress,
                      log_every=max(1, steps // 10), eval_every=max(1, steps // 10))
    train = load_digits("train").images
    selection = {}
    consistency = {"cd": ("CD", lambda: ConsistencyDistillation(teacher, p, prediction, levels=18)),
                   "ect": ("ECT", lambda: EasyConsistencyTuning(p, prediction, total_steps=steps))}
    for key in ("cd", "ect"):
        if key not in methods:
            continue
        label, make = consistency[key]
        objective = make()
        best = {"fd": math.inf, "step": None, "state": None, "curve": []}

        def select(ema_model, step, out_dir, objective=objective, best=best):
            # Checkpoint selection on the training digits only (the held-out digits score the rows): the 2-step
            # Algorithm-1 samples' Frechet distance to the training set, every steps/10.
            with torch.no_grad():
                s2 = sdeflow.sample(objective.wrap(ema_model), p, x, solver="consistency", nfe=2, eta=1.0, seed=1).samples
            fd = digits_scores(s2.clamp(-1, 1), reference=train)["frechet_distance"]
            best["curve"].append([step, round(fd, 3)])
            if fd < best["fd"]:
                best.update(fd=fd, step=step, state=copy.deepcopy(ema_model.state_dict()))
            return {"fd_train_2step": fd}

        tic = time.process_time()
        result = Trainer(student_from_teacher(teacher), objective, data, config=cfg, evaluator=select).fit()
        cpu = time.process_time() - tic
        chosen = result.ema_model
        chosen.load_state_dict(best["state"])
        selection[label] = {"step": best["step"], "fd_train_2step": round(best["fd"], 3), "curve": best["curve"]}
        f = objective.wrap(chosen)
        with torch.no_grad():
            for nfe, eta in ((1, None), (2, 1.0), (2, 0.0), (4, 1.0), (4, 0.0)):
                name = f"{label} {nfe}-step" + ("" if eta in (None, 1.0) else f" (eta {eta:g})")
                record(name, sdeflow.sample(f, p, x, solver="consistency", nfe=nfe, eta=eta or 0.0, seed=1).samples,
                       nfe, best["step"], cpu, eta)
    if "pd" in methods:
        tic = time.process_time()
        rounds = progressive_distillation(teacher, data, UniformLogSNR()(p, 16), rounds=4,
                                          config=TrainConfig(steps=max(1, steps // 4), batch_size=64, lr=lr, warmup_steps=20,
                                                             progress=args.progress, log_every=10))
        cpu = time.process_time() - tic
        with torch.no_grad():
            for r in rounds:
                if r.steps in (1, 2, 4):
                    record(f"PD {r.steps}-step", sdeflow.sample(r.model, p, x, solver="ddim", grid=r.ts).samples, r.steps,
                           sum(q.train_steps for q in rounds if q.steps >= r.steps), cpu)
    # Rows and checkpoint choices of the methods not run here come from an earlier run with the same settings.
    path = getattr(args, "digits_json", None)
    old = json.loads(Path(path).read_text()) if path is not None and Path(path).exists() else {}
    if (old.get("n"), old.get("steps"), old.get("lr", lr)) == (n, steps, lr):
        others = {"CD": "cd", "ECT": "ect", "PD": "pd"}
        rows = rows[:2] + [r for r in old["rows"] if others.get(r["method"].split()[0]) not in (None, *methods)] + rows[2:]
        selection = {**{k: v for k, v in old.get("selection", {}).items() if others.get(k) not in methods}, **selection}
    order = {"CD": 0, "ECT": 1, "PD": 2}
    rows = rows[:2] + sorted(rows[2:], key=lambda r: order.get(r["method"].split()[0], 3))
    return {"env": _env(), "n": n, "steps": steps, "lr": lr, "rows": rows, "selection": selection}


def _figures(report: dict, folder: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    if "ring_samples" in report:
        items = list(report["ring_samples"].items())
        fig, axes = plt.subplots(1, len(items), figsize=(3 * len(items), 3.1), sharex=True, sharey=True)
        for ax, (label, pts) in zip(axes, items):
            t = torch.tensor(pts)
            ax.scatter(t[:, 0], t[:, 1], s=1, alpha=0.4)
            ax.set_title(label, fontsize=9)
            ax.set_aspect("equal")
        fig.tight_layout()
        path = folder / "few_step_ring2d.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        out.append(str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path))
    fig, axes = plt.subplots(1, len(report["problems"]), figsize=(5.5 * len(report["problems"]), 3.6))
    axes = axes if hasattr(axes, "__len__") else [axes]
    for ax, (name, rows) in zip(axes, report["problems"].items()):
        labels = [r["method"] for r in rows]
        ax.bar(range(len(rows)), [r["w2_mean"] for r in rows], yerr=[r["w2_sd"] for r in rows], color="tab:blue")
        ax.axhline(rows[1]["w2_mean"], color="k", ls="--", lw=0.8, label="teacher, 35 calls")
        ax.set_xticks(range(len(rows)), labels, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("W2 to fresh true samples")
        ax.set_title(name)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = folder / "few_step_w2.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    out.append(str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path))
    return out


def _markdown(report: dict, figures: list[str], command: str) -> str:
    a = report["args"]
    lines = [
        "## Few-step generation: consistency distillation and training on exact targets",
        "",
        (f"Commands: one per problem, below (torch {report['env']['torch']}, {report['env']['threads']} thread each, 2 shared "
         f"CPU cores, load average {report['env']['load_average_1min']} at the start of the last)." if report.get("commands") else
         f"Command: `{command}` (torch {report['env']['torch']}, {report['env']['threads']} thread, "
         f"2 shared CPU cores, load average {report['env']['load_average_1min']} at the start)."),
        "",
        f"Protocol: EDM process; W2 = exact Wasserstein-2 (POT) between {a['n']} generated and {a['n']} fresh true "
        f"samples, {a['seeds']} seeds (mean +- sd); floor = W2 between two fresh true sample sets. Teacher: the exact "
        "denoiser, Heun on the probability-flow ODE at 35 calls. Students: MLP (width 128 in 2-D, 256 in 16-D, "
        f"3 blocks) with EDM preconditioning, batch 256, lr 1e-3; CD ({a['steps']} steps) from the exact teacher "
        f"(Heun step, N = 18, EMA target 0.95, squared L2; samples from the EMA); CT ({a.get('ct_steps') or a['steps']} steps) "
        f"from {a['n_data']} data samples (improved CT: curriculum s0 = 10 to s1 = {a['ct_s1']} over the run, log-normal "
        "levels, pseudo-Huber, no EMA target; samples from the 0.999 EMA). 2-step sampling: the default ConsistencyGrid "
        "(Karras midpoint, sigma = 2.52) with fresh noise at the second level (eta = 1: Song et al.'s Algorithm 1, the "
        "one that is exact for an exact consistency function, since only fresh noise puts the state on the marginal of "
        "its level; the solver's deterministic default, eta = 0, re-uses the noise the model implies, see the digits rows).",
        "",
        "Goals (issue 14): CD 1 step <= 1.2x the teacher's W2, CD 2 steps <= 1.05x, CT 2 steps <= 1.5x.",
        "",
    ]
    for name, rows in report["problems"].items():
        floor = rows[0]["w2_mean"]
        run_command = report.get("commands", {}).get(name)
        lines += [f"### {name}", ""] + ([f"Command: `{run_command}`", ""] if run_command else [])
        lines += ["| method | model calls / sample | W2 (mean +- sd) | x teacher | x floor | training steps | training CPU s |",
                  "|---|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['method']} | {r['nfe']} | {r['w2_mean']:.4f} +- {r['w2_sd']:.4f} | {r['ratio_to_teacher']:.2f} | "
                         f"{r['w2_mean'] / floor:.2f} | {r['train_steps']} | {r['cpu_seconds']} |")
        ratio = {r["method"]: r["ratio_to_teacher"] for r in rows}
        checks = [("CD 1-step", 1.2), ("CD 2-step", 1.05), ("CT 2-step", 1.5)]
        met = ", ".join(f"{m} {ratio[m]:.2f}x {'<=' if ratio[m] <= g else '>'} {g}x ({'met' if ratio[m] <= g else 'NOT met'})" for m, g in checks)
        lines += ["", f"Goals: {met}. The W2 of {a['n']} samples carries sampling noise of the size of these gaps (the "
                  f"teacher's sd over seeds is {rows[1]['w2_sd']:.3f}; a teacher below the floor is that noise): the 'x floor' "
                  "column compares with the two-sample floor instead, the W2 a perfect sampler would score.", ""]
    if any("ring2d" in f for f in figures):
        lines += ["The ring's scatter (first figure) shows what W2 weighs lightly: the one-step students put a thin "
                  "bridge of mass between neighbouring modes that the teacher does not have; two steps thin it out.", ""]
    lines += [f"![{Path(f).stem}]({f})" for f in figures]
    digits = report.get("digits")
    if digits:
        t35 = next(r["frechet_distance"] for r in digits["rows"] if r["method"].startswith("teacher") and r["nfe"] == 35)
        lines += ["", "### digits", "",
                  f"Command: `python benchmarks/few_step.py --problems digits --digits-steps {digits['steps']} "
                  f"--digits-n {digits['n']}`, as two processes side by side, `--digits-methods ect` and `--digits-methods cd pd`, "
                  f"whose rows merge (load average {digits['env']['load_average_1min']} at the start of the last). Teacher: the "
                  "cached digits U-Net of benchmarks/networks.py (VP, eps), sampled with sdeflow's default (UniPC). "
                  f"Students start from the teacher's weights: CD (Heun step, N = 18, EMA target 0.95), ECT "
                  f"(d = steps/8), {digits['steps']} steps of batch 64, lr {digits.get('lr', 2e-5):g}, samples from the 0.95 EMA; "
                  f"PD: 4 rounds of {max(1, digits['steps'] // 4)} steps from a 16-step DDIM grid uniform in log-SNR. "
                  "Multistep consistency rows use fresh noise (eta = 1, Song et al.'s Algorithm 1) at the default levels "
                  "unless marked eta 0 (the implied noise re-used). Protocol: Frechet distance in the shipped classifier's "
                  f"features of {digits['n']} samples (same starting noise for every row) against the 359 held-out digits "
                  "(floor: the training digits' distance), and the share of samples classified with confidence above 0.5.", "",
                  "| method | model calls / sample | Frechet distance | x teacher-35 | confident share | training steps | training CPU s |",
                  "|---|---|---|---|---|---|---|"]
        for r in digits["rows"]:
            lines.append(f"| {r['method']} | {r['nfe']} | {r['frechet_distance']:.3f} | {r['frechet_distance'] / t35:.2f} | "
                         f"{r['confident_fraction']:.3f} | {r['train_steps']} | {r['cpu_seconds']} |")
        floor = digits["rows"][0]["frechet_floor"]
        best2 = min((r for r in digits["rows"] if r["nfe"] == 2 and not r["method"].startswith("PD") and "eta 0" not in r["method"]),
                    key=lambda r: r["frechet_distance"])
        ok = best2["frechet_distance"] <= 1.5 * t35
        for label, sel in digits.get("selection", {}).items():
            curve = ", ".join(f"{st}: {fd:.1f}" for st, fd in sel["curve"])
            lines += ["", f"{label}: the weights of step {sel['step']} of {digits['steps']} (the EMA's), chosen by the 2-step "
                      f"samples' Frechet distance to the *training* digits, evaluated every {max(1, digits['steps'] // 10)} "
                      f"steps ({curve}); the held-out digits score the rows. The CPU column is the whole run's, the "
                      "evaluations included."]
        lines += ["", f"Floor (training digits): {floor:.3f}. Goal (2-step consistency samples <= 1.5x the teacher's 35-call "
                  f"Frechet distance; Algorithm 1 rows): best 2-step consistency row {best2['method']} at {best2['frechet_distance'] / t35:.2f}x, "
                  f"{'met' if ok else 'NOT met'}.", ""]
    else:
        lines += ["", "The digits rows (issue 14, benchmark 2) are not in this report: run "
                  "`python benchmarks/few_step.py --problems digits` and then `--render`.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small budgets: 300 steps, 2000 samples, 2 seeds, ring only")
    parser.add_argument("--problems", nargs="+", choices=sorted(PROBLEMS) + ["digits"], default=None,
                        help="default: ring2d and mixture16d (quick: ring2d); digits runs apart (its JSON is merged into the report)")
    parser.add_argument("--digits-steps", type=int, default=600, help="digits: training steps of CD and ECT (PD: a quarter per round)")
    parser.add_argument("--digits-n", type=int, default=1000, help="digits: samples per row")
    parser.add_argument("--digits-lr", type=float, default=1e-4, help="digits: peak learning rate of CD, ECT and PD")
    parser.add_argument("--digits-methods", nargs="+", choices=["cd", "ect", "pd"], default=["cd", "ect", "pd"],
                        help="digits: which students to train (the other methods' rows of an earlier run with the same "
                             "settings are kept)")
    parser.add_argument("--render", action="store_true", help="only rewrite the report from the saved JSON files")
    parser.add_argument("--steps", type=int, default=None, help="training steps per student (default 6000; quick 300)")
    parser.add_argument("--n", type=int, default=None, help="samples per W2 (default 10000; quick 2000)")
    parser.add_argument("--seeds", type=int, default=None, help="W2 seeds (default 5; quick 2)")
    parser.add_argument("--n-data", type=int, default=50_000, help="training samples of the data (CT) and of the CD noising")
    parser.add_argument("--ct-s1", type=int, default=160, help="improved CT's final discretization s1")
    parser.add_argument("--ct-steps", type=int, default=None, help="training steps of CT (default: --steps)")
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS-few-step.md")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "few_step.json")
    parser.add_argument("--figures", type=Path, default=ROOT / "benchmarks" / "figures")
    parser.add_argument("--progress", action="store_true", help="show the training progress bars")
    args = parser.parse_args(argv)
    q = args.quick
    args.problems = args.problems or (["ring2d"] if q else ["ring2d", "mixture16d"])
    args.steps = args.steps or (300 if q else 6000)
    args.n = args.n or (2000 if q else 10_000)
    args.seeds = args.seeds or (2 if q else 5)
    command = "python benchmarks/few_step.py " + " ".join(argv if argv is not None else sys.argv[1:])
    digits_json = args.json.with_name(args.json.stem + "_digits.json")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.digits_json = digits_json
    if "digits" in args.problems and not args.render:
        digits_json.write_text(json.dumps(run_digits(args), indent=2, default=float))
        args.problems = [p for p in args.problems if p != "digits"]
        if not args.problems:
            args.render = True
    if args.render:
        if not args.json.exists():
            raise SystemExit(f"--render needs {args.json} from an earlier run")
        report = json.loads(args.json.read_text())
        command = report.get("command", command)
        # The bar chart is redrawn from the JSON (all problems); the ring's scatter needs the samples of a run.
        figures = [f for f in ("benchmarks/figures/few_step_ring2d.png",) if (ROOT / f).exists()] + _figures(report, args.figures)
    else:
        report = run(args)
        earlier = {}
        if args.json.exists():  # problems not re-run keep their rows (e.g. ring2d and mixture16d run side by side)
            earlier = json.loads(args.json.read_text())
            merged = {**earlier.get("problems", {}), **report["problems"]}
            report["problems"] = {k: merged[k] for k in sorted(merged, key=lambda k: list(PROBLEMS).index(k) if k in PROBLEMS else 99)}
        report["commands"] = {**earlier.get("commands", {}),
                              **{name: command.strip() for name in args.problems}}
        figures = _figures(report, args.figures)
        if "ring_samples" not in report and (ROOT / "benchmarks/figures/few_step_ring2d.png").exists():
            figures = ["benchmarks/figures/few_step_ring2d.png"] + figures
        report = {k: v for k, v in report.items() if k != "ring_samples"}
        report["args"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        report["command"] = command.strip()
        args.json.write_text(json.dumps(report, indent=2, default=float))
    if digits_json.exists():
        report["digits"] = json.loads(digits_json.read_text())
    args.out.write_text(_markdown(report, figures, command.strip()))
    print(f"wrote {args.out} and {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
