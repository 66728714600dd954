"""Transport benchmarks: reflow's goal, the [SF]2M 2-D table, DSBM's Gaussian bridge benchmark.

Usage (from the repository root; one thread per process on a shared machine)::

    OMP_NUM_THREADS=1 python benchmarks/transport.py --quick          # small budgets, 2,000 points, 2 seeds
    OMP_NUM_THREADS=1 python benchmarks/transport.py                  # the protocol: 10,000 points, 5 seeds
    sdeflow bench transport --quick                                   # the same through the CLI

Parts (``--parts``, default all):

* ``reflow``: the whole pipeline ``run_reflow(rounds=2, distill=True)`` from N(0, I) to 8 gaussians,
  timed (wall and process CPU seconds), with straightness and normalized path energy per stage, and the
  exact W2 (POT) of 1-RF, 2-RF and the distilled model at ONE model call (one Euler step) and of 1-RF
  with heun (40 calls). Goal (issue 13): 2-RF at one call W2 <= 0.42, straightness 5x lower, < 15 min.
* ``table``: Tong et al. 2024 ([SF]2M, Table 2) 2-D protocol on N -> 8 gaussians, N -> moons and
  moons -> 8 gaussians: OT-CFM, SB-CFM (ODE and SDE), DSBM-IMF, rectified flow (1-RF, 2-RF, distilled) and
  stochastic-interpolant (ODE and SDE) rows, each with the model calls used; exact W2 between generated and fresh
  target points, mean +- std over seeds.
* ``dsbm``: DSBM's Gaussian benchmark (Shi et al. 2023): pi_0 = N(-0.1 1, I), pi_1 = N(0.1 1, I),
  sigma = 1, 20 Euler-Maruyama steps; mean and variance of X_0 and the diagonal of Cov(X_0, X_1)
  against the closed form (sdeflow.targets.GaussianBridge), and the KL of the learned forward
  marginals (Gaussian fits) to the exact ones at t = 0.25, 0.5, 0.75.
* ``interpolant``: stochastic interpolants (Albergo et al. 2023) from a 2-Gaussian source to 8 Gaussians on a
  circle, both exact mixtures (sdeflow.targets.MixtureInterpolant), linear (gamma = sqrt(t (1 - t))) and
  encoder-decoder (gamma = sin^2(pi t)) interpolants: one velocity and one denoiser network each; the RMS errors
  of the learned fields against the exact ones, exact W2 of the ODE and of SDEs with eps = 0.1, 0.5, 1, 2
  chosen after training (learned and exact fields, same solver and steps) beside the two-sample floor, and the
  ODE generator's log-likelihood of fresh data points against the exact log-density.

Results are appended as JSON lines to ``benchmarks/results/transport*.jsonl`` as they come (a partial
run is kept); the report ``BENCHMARKS-transport.md`` and ``benchmarks/figures/transport_*.png`` are
written from them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
PROBLEMS = {"N->8gaussians": ("noise", "8gaussians"), "N->moons": ("noise", "moons"), "moons->8gaussians": ("moons", "8gaussians")}
PUBLISHED = {  # Tong et al. 2024, Table 2 (W2, mean +- std over 5 seeds), the rows we have counterparts of
    ("N->8gaussians", "OT-CFM"): "1.262 +- 0.348", ("N->8gaussians", "SB-CFM"): "1.067 +- 0.107",
    ("N->8gaussians", "RF (multi-step)"): "0.421 +- 0.071", ("N->moons", "OT-CFM"): "0.148 +- 0.013",
    ("moons->8gaussians", "OT-CFM"): "1.385 +- 0.081", ("moons->8gaussians", "SB-CFM"): "1.255 +- 0.069",
}
DSBM_PUBLISHED_KL_D50 = 9.76e-3  # Shi et al. 2023, DSBM-IMF at d = 50


def _env() -> dict:
    return {"threads": torch.get_num_threads(), "torch": torch.__version__, "machine": platform.machine(),
            "load_average_1min": round(os.getloadavg()[0], 2)}


def _side(name: str, n: int, seed: int) -> torch.Tensor | str:
    from sdeflow.data import sample_toy

    return "noise" if name == "noise" else sample_toy(name, n, seed)


def _source_draw(name: str, n: int, seed: int) -> torch.Tensor:
    from sdeflow.noise.rng import randn

    return randn((n, 2), seeds=seed * 1_000_003) if name == "noise" else _side(name, n, 50_000 + seed)


def _w2(x: torch.Tensor, target: str, seed: int, n: int) -> float:
    from sdeflow.metrics import wasserstein2

    return wasserstein2(x[:n], _side(target, n, 90_000 + seed))


def _ode(model, x1: torch.Tensor, solver: str, steps: int) -> torch.Tensor:
    from sdeflow.processes import Linear
    from sdeflow.sample import sample
    from sdeflow.transport import euler_grid

    return sample(model, Linear(), x1, prediction="velocity", solver=solver, grid=euler_grid(steps)).samples


def _append(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")
    print(json.dumps(record), flush=True)


def run_reflow_part(args, path: Path) -> None:
    from sdeflow.transport import ReflowConfig, run_reflow

    b = args.budget
    cfg = ReflowConfig(rounds=2, distill=True, steps=b["rf"], reflow_steps=b["rf"], distill_steps=b["rf"] // 2,
                       n_pairs=b["pairs"], progress=False)
    target = _side("8gaussians", 100_000, 0)
    if args.reflow_dir is not None:
        # Evaluate a finished run folder (e.g. of `sdeflow reflow --data 8gaussians --distill`): its report.json
        # gives the configuration, stages and timings; the EMA models are loaded from the stages' checkpoints.
        from sdeflow.transport import load_stage

        saved = json.loads((args.reflow_dir / "report.json").read_text())
        models = {st["stage"]: load_stage(args.reflow_dir, st["stage"]) for st in saved["stages"]}
        wall = sum(st["seconds"] for st in saved["stages"])
        cpu = args.reflow_cpu if args.reflow_cpu is not None else sum(st.get("cpu_seconds", float("nan")) for st in saved["stages"])
        _append(path, {"part": "reflow", "config": saved["config"], "wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1),
                       "stages": saved["stages"], "env": _env(), "run": str(args.reflow_dir)})
    else:
        wall, cpu = time.perf_counter(), time.process_time()
        result = run_reflow(target, config=cfg)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        models = result.models
        _append(path, {"part": "reflow", "config": {k: v for k, v in vars(cfg).items()}, "wall_seconds": round(wall, 1),
                       "cpu_seconds": round(cpu, 1), "stages": result.stages, "env": _env()})
    # The goal's row (2-RF, one call) on n_goal points (10,000: the protocol) for every seed first (a run cut short
    # still has it); then the others on n points.
    rows = {"2-RF": (models.get("rf2"), "euler", 1, args.n_goal), "1-RF": (models.get("rf1"), "euler", 1, args.n),
            "2-RF distilled": (models.get("distill"), "euler", 1, args.n), "1-RF heun": (models.get("rf1"), "heun", 20, args.n)}
    rows = {name: row for name, row in rows.items() if row[0] is not None}  # a run folder may lack the distilled stage
    for name, (model, solver, steps, n) in rows.items():
        for seed in range(args.seeds):
            x = _ode(model, _source_draw("noise", n, 1000 + seed), solver, steps)
            calls = steps * (2 if solver == "heun" else 1)
            t0 = time.process_time()
            w2 = _w2(x, "8gaussians", seed, n)
            _append(path, {"part": "reflow-w2", "method": name, "nfe": calls, "seed": seed, "n": n, "w2": w2,
                           "w2_cpu_seconds": round(time.process_time() - t0, 1)})
            if seed == 0:
                _scatter(x, f"transport_reflow_{name.replace(' ', '_')}.png", f"{name}, {calls} call(s)")


def run_table_part(args, path: Path) -> None:
    from sdeflow.nn import MLP
    from sdeflow.processes import Linear
    from sdeflow.training import DiffusionModel, TrainConfig, Trainer
    from sdeflow.transport import (PairedFlowMatching, ReflowConfig, StochasticInterpolant, interpolant_sample, pack_pairs,
                                   run_reflow)
    from sdeflow.transport.bridges import BridgeConfig, run_dsbm, simulate_bridge, train_sbcfm

    b = args.budget
    for problem in args.problems:
        src_name, tgt_name = PROBLEMS[problem]
        target = _side(tgt_name, 100_000, 0)
        source = _side(src_name, 100_000, 1) if src_name != "noise" else _source_draw("noise", 100_000, 777)
        models = {}
        t0 = time.process_time()
        # OT-CFM: exact minibatch OT pairs, straight-line regression.
        net = MLP((2,), 256, 3, seed=0)
        model = DiffusionModel(net, Linear(), "velocity")
        tr = Trainer(model, PairedFlowMatching(coupling="exact"), pack_pairs(target, source),
                     config=TrainConfig(steps=b["table"], batch_size=256, progress=False, label_dropout=0.0))
        models["OT-CFM"] = ("ode", tr.fit().ema_model.eval(), process_cpu(t0))
        t0 = time.process_time()
        sb = train_sbcfm(target, source, BridgeConfig(sigma=args.sigma, steps=b["table"], progress=False))
        models["SB-CFM"] = ("sbcfm", sb, process_cpu(t0))
        t0 = time.process_time()
        dsbm = run_dsbm(target, source, BridgeConfig(sigma=args.sigma, steps=b["table"] // 2, iterations=2,
                                                     n_pairs=b["pairs"], progress=False))
        models["DSBM-IMF"] = ("dsbm", dsbm, process_cpu(t0))
        t0 = time.process_time()
        rf = run_reflow(target, source if src_name != "noise" else "noise",
                        config=ReflowConfig(rounds=2, distill=True, steps=b["table"], reflow_steps=b["table"],
                                            distill_steps=b["table"] // 2, n_pairs=b["pairs"], progress=False))
        models["reflow"] = ("rf", rf, process_cpu(t0))
        # Stochastic interpolant (Albergo et al. 2023): linear path with gamma = sqrt(t (1 - t)), one velocity and one
        # denoiser network on independent pairs; the ODE is sampled like the other flows, the SDE with eps = 0.5.
        t0 = time.process_time()
        si_source = source if src_name != "noise" else _source_draw("noise", 100_000, 778)
        si = {}
        for field, prediction in (("velocity", "velocity"), ("denoiser", "eps")):
            objective = StochasticInterpolant(interpolant="linear", gamma="sqrt", field=field, source="pairs")
            si_model = DiffusionModel(MLP((2,), 256, 3, seed=0), Linear(), prediction)
            cfg = TrainConfig(steps=b["table"], batch_size=256, progress=False, label_dropout=0.0, ckpt_every=0)
            si[field] = Trainer(si_model, objective, pack_pairs(target, si_source), config=cfg).fit().ema_model.eval()
        models["SI"] = ("si", si, process_cpu(t0))
        for seed in range(args.seeds):
            _append(path, _table_floor(problem, seed, args.n))
            x1 = _source_draw(src_name, args.n, 2000 + seed)
            rows = []
            for name, (kind, obj, cpu) in models.items():
                if kind == "ode":
                    rows.append((name + " (heun)", _ode(obj, x1, "heun", 20), 40, cpu))
                elif kind == "sbcfm":
                    rows.append(("SB-CFM ODE (heun)", _ode(obj.velocity_model, x1, "heun", 20), 40, cpu))
                    rows.append(("SB-CFM SDE (Euler-Maruyama)", simulate_bridge(obj.sde("backward"), x1, steps=100, seed=seed), 200, cpu))
                elif kind == "dsbm":
                    rows.append(("DSBM-IMF SDE (Euler-Maruyama)", simulate_bridge(obj.sde("backward"), x1, steps=100, seed=seed), 100, cpu))
                elif kind == "si":
                    rows.append(("SI ODE (heun)", _ode(obj["velocity"], x1, "heun", 20), 40, cpu))
                    sched = StochasticInterpolant(interpolant="linear", gamma="sqrt").schedule
                    rows.append(("SI SDE eps=0.5 (Euler-Maruyama)", interpolant_sample(
                        obj["velocity"], x1, sched, denoiser=obj["denoiser"], eps=0.5, steps=100, seed=seed), 200, cpu))
                else:
                    rows.append(("1-RF (heun)", _ode(obj.models["rf1"], x1, "heun", 20), 40, cpu))
                    rows.append(("2-RF (one step)", _ode(obj.models["rf2"], x1, "euler", 1), 1, cpu))
                    rows.append(("2-RF distilled (one step)", _ode(obj.models["distill"], x1, "euler", 1), 1, cpu))
            for name, x, nfe, cpu in rows:
                _append(path, {"part": "table", "problem": problem, "method": name, "nfe": nfe, "seed": seed, "n": args.n,
                               "train_steps": b["table"], "train_cpu_seconds": round(cpu, 1), "w2": _w2(x, tgt_name, seed, args.n)})
                if seed == 0:
                    _scatter(x, f"transport_{problem.replace('->', '_to_')}_{name.split(' ')[0]}.png", f"{problem}: {name}")


def _table_floor(problem: str, seed: int, n: int) -> dict:
    """The table's two-sample floor: exact W2 between a fresh draw of the target and the rows' reference draw."""
    target = PROBLEMS[problem][1]
    return {"part": "table", "problem": problem, "method": "two-sample floor", "nfe": 0, "seed": seed, "n": n, "train_steps": "",
            "train_cpu_seconds": 0.0, "w2": _w2(_side(target, n, 70_000 + seed), target, seed, n)}


def process_cpu(t0: float) -> float:
    return time.process_time() - t0


def _gauss_kl(m_a, c_a, m_b, c_b) -> float:
    """KL(N(m_a, c_a) || N(m_b, c_b)) in float64."""
    d = m_a.shape[0]
    inv_b = torch.linalg.inv(c_b)
    diff = (m_b - m_a).reshape(-1, 1)
    return 0.5 * float(torch.trace(inv_b @ c_a) + (diff.T @ inv_b @ diff).squeeze() - d
                       + torch.logdet(c_b) - torch.logdet(c_a))


def run_dsbm_part(args, path: Path) -> None:
    """DSBM's Gaussian benchmark. Every learned bridge is evaluated with the protocol's integrator (20 Euler-Maruyama
    steps) and with SRA1 (Roessler's additive-noise scheme, weak order 2) at the same 20 steps; the closed form's
    own drifts (GaussianBridge.drift / backward_drift) with both integrators give the integrators' floor, and the
    KL of Gaussian fits of 10,000 exact i.i.d. draws gives the KL estimator's floor (about d (d + 3) / (4 n))."""
    from sdeflow.sdes import sdeint
    from sdeflow.targets import GaussianBridge
    from sdeflow.transport.bridges import BridgeConfig, BridgeSDE, run_dsbm, simulate_bridge

    b = args.budget
    times = (0.25, 0.5, 0.75)
    for d in args.dims:
        br = GaussianBridge(-0.1 * torch.ones(d), 1.0, 0.1 * torch.ones(d), 1.0, sigma=1.0)
        x0, _ = br.sample(b["pairs"], seeds=0)
        _, x1 = br.sample(b["pairs"], seeds=10**7)
        wall, cpu = time.perf_counter(), time.process_time()
        cfg = BridgeConfig(steps=b["dsbm"], iterations=b["dsbm_iterations"], n_pairs=b["pairs"], width=b["dsbm_width"],
                           depth=2, progress=False)
        res = run_dsbm(x0, x1, cfg)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        a0, a1 = br.sample(10_000, seeds=5 * 10**7)

        def exact(fn):
            return lambda x, t: fn(float(t[0]), x.double()).to(x.dtype)

        drifts = {"learned": (res.sde("backward"), res.sde("forward")),
                  "exact drift": (BridgeSDE(1.0, "backward", drift_model=exact(br.backward_drift)),
                                  BridgeSDE(1.0, "forward", drift_model=exact(br.drift)))}
        for drift, (backward, forward) in drifts.items():
            for method in ("euler_maruyama", "sra1"):
                x0_hat = simulate_bridge(backward, a1, steps=20, seed=1, method=method).double()
                cov = ((x0_hat - x0_hat.mean(0)) * (a1 - a1.mean(0))).mean(0)
                with torch.no_grad():
                    traj = sdeint(forward, a0, [0.0, *times, 1.0], method=method, dt=1 / 20, seed=2)
                kls = {}
                for k, t in enumerate(times, start=1):
                    xt = traj[k].double()
                    m, c = br.marginal(t)
                    kls[str(t)] = _gauss_kl(xt.mean(0), torch.cov(xt.T), m, c)
                record = {"part": "dsbm", "d": d, "drift": drift, "integrator": method, "mean_x0": float(x0_hat.mean()),
                          "var_x0": float(x0_hat.var(0).mean()), "cov_diag": float(cov.mean()),
                          "cov_diag_exact": float(br.cross_covariance()[0, 0]), "kl": kls}
                if drift == "learned":
                    record.update(config={k: v for k, v in vars(cfg).items() if k != "progress"},
                                  train_wall_seconds=round(wall, 1), train_cpu_seconds=round(cpu, 1), env=_env())
                _append(path, record)
        floor = {}
        for k, t in enumerate(times, start=1):
            m, c = br.marginal(t)
            xt = m + torch.randn(10_000, d, dtype=torch.float64, generator=torch.Generator().manual_seed(7 + k)) @ torch.linalg.cholesky(c).T
            floor[str(t)] = _gauss_kl(xt.mean(0), torch.cov(xt.T), m, c)
        _append(path, {"part": "dsbm-kl-floor", "d": d, "n": 10_000, "kl": floor})


def _si_problem():
    """Part 3's Gaussian-mixture pair: 8 Gaussians on a circle of radius 3 (data, t = 0) from 2 Gaussians (source, t = 1)."""
    from sdeflow.targets import GaussianMixture

    angles = [2 * math.pi * k / 8 for k in range(8)]
    data = GaussianMixture([1 / 8] * 8, [[3 * math.cos(a), 3 * math.sin(a)] for a in angles], stds=[[0.3, 0.3]] * 8)
    source = GaussianMixture([0.5, 0.5], [[0.0, 1.5], [0.0, -1.5]], stds=[[0.8, 0.4], [0.8, 0.4]])
    return data, source


def run_interpolant_part(args, path: Path) -> None:
    """Part 3: one velocity and one denoiser network per interpolant on a mixture-to-mixture problem with exact
    fields (sdeflow.targets.MixtureInterpolant); the fields' RMS errors, exact W2 of the ODE and of SDEs with
    eps chosen after training, and the ODE's log-likelihood against the exact log-density."""
    from sdeflow.metrics import wasserstein2
    from sdeflow.nn import MLP
    from sdeflow.processes import Linear
    from sdeflow.targets import MixtureInterpolant
    from sdeflow.training import DiffusionModel, TrainConfig, Trainer
    from sdeflow.transport import StochasticInterpolant, interpolant_log_likelihood, interpolant_sample, pack_pairs

    b = args.budget
    data, source = _si_problem()
    x0 = data.sample(100_000, seeds=0)
    x1 = source.sample(100_000, seeds=10**8)
    pairs = pack_pairs(x0, x1)
    for interpolant, gamma in (("linear", "sqrt"), ("encoder_decoder", "sin2")):
        oracle = MixtureInterpolant(data, source, interpolant=interpolant, gamma_scale=1.0, gamma=gamma)
        sched = oracle.schedule
        models, cpu = {}, {}
        for field, prediction in (("velocity", "velocity"), ("denoiser", "eps")):
            t0 = time.process_time()
            objective = StochasticInterpolant(interpolant=interpolant, gamma=gamma, gamma_scale=1.0, field=field, source="pairs")
            model = DiffusionModel(MLP((2,), 256, 3, seed=0), Linear(), prediction)
            cfg = TrainConfig(steps=b["si"], batch_size=256, lr=1e-3, ema_decay=0.999, seed=0, progress=False, ckpt_every=0,
                              label_dropout=0.0)
            models[field] = Trainer(model, objective, pairs, config=cfg).fit().ema_model.eval().requires_grad_(False)
            cpu[field] = round(time.process_time() - t0, 1)
        gen = torch.Generator().manual_seed(5)
        errors = {}
        for t in (0.1, 0.25, 0.5, 0.75, 0.9):
            c = sched.coefficients(t)
            xt = (float(c.a) * data.sample(5000, seeds=10**9) + float(c.b) * source.sample(5000, seeds=2 * 10**9)
                  + float(c.gamma) * torch.randn(5000, 2, generator=gen))
            tt = torch.full((5000,), t)
            for field in ("velocity", "denoiser"):
                exact = oracle.model(field)(xt.double(), t)
                err = (models[field](xt, tt).double() - exact).pow(2).sum(1).mean().sqrt()
                errors[f"{field}@{t}"] = {"rms_error": float(err), "rms_field": float(exact.pow(2).sum(1).mean().sqrt())}
        _append(path, {"part": "interpolant-fields", "interpolant": interpolant, "gamma": gamma, "steps": b["si"],
                       "train_cpu_seconds": cpu, "errors": errors, "env": _env()})
        for seed in range(args.seeds):
            start = source.sample(args.n, seeds=3 * 10**9 + seed * args.n)
            floor = wasserstein2(data.sample(args.n, seeds=4 * 10**9 + seed * args.n), _si_reference(data, args.n, seed))
            _append(path, {"part": "interpolant", "interpolant": interpolant, "gamma": gamma, "method": "two-sample floor",
                           "eps": None, "nfe": 0, "seed": seed, "n": args.n, "w2": floor})
            # gamma = sin^2(pi t) vanishes like t^2 at the ends, where s = -eta / gamma multiplies a learned denoiser's error
            # by eps / gamma: its SDEs use eps(t) = eps gamma(t) / max gamma (InterpolantSDE's docstring), and one row keeps
            # a constant eps to show the divergence that InterpolantSDE warns about.
            shaped = gamma == "sin2"
            runs = [(eps, "gamma-shaped" if shaped and eps else "constant") for eps in (0.0, 0.1, 0.5, 1.0, 2.0)]
            runs += [(0.5, "constant")] if shaped else []
            for eps, profile in runs:
                eps_arg = (lambda t, c=eps: c * float(sched.coefficients(t).gamma)) if profile == "gamma-shaped" else eps
                for which, (vel, den) in (("learned", (models["velocity"], models["denoiser"])),
                                          ("exact fields", (oracle.model("velocity"), oracle.model("denoiser")))):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)  # the constant-eps row is the warned-about case
                        x = interpolant_sample(vel, start, sched, denoiser=den, eps=eps_arg, steps=b["si_steps"], seed=seed)
                    name = ("ODE" if eps == 0 else "SDE") + f" ({which})"
                    calls = b["si_steps"] * (1 if eps == 0 else 2)
                    _append(path, {"part": "interpolant", "interpolant": interpolant, "gamma": gamma, "method": name, "eps": eps,
                                   "eps_profile": profile, "nfe": calls, "seed": seed, "n": args.n,
                                   "w2": wasserstein2(x, _si_reference(data, args.n, seed))})
                    if seed == 0 and which == "learned" and eps in (0.0, 1.0):
                        _scatter(x, f"transport_si_{interpolant}_eps{eps:g}.png", f"{interpolant} interpolant, eps = {eps:g}")
        # The ODE generator's likelihood (exact divergence, dopri5) of fresh data points against the exact log-density.
        pts = data.sample(b["si_ll"], seeds=5 * 10**9)
        t0 = time.process_time()
        ll = interpolant_log_likelihood(models["velocity"], pts, source_log_prob=source.log_prob, rtol=1e-4, atol=1e-4)
        exact = data.log_prob(pts.double())
        _append(path, {"part": "interpolant-ll", "interpolant": interpolant, "gamma": gamma, "n": b["si_ll"],
                       "mean_log_prob": float(ll.log_prob.mean()), "exact_mean_log_prob": float(exact.mean()),
                       "mean_abs_error": float((ll.log_prob - exact).abs().mean()), "nfe": ll.nfe,
                       "cpu_seconds": round(time.process_time() - t0, 1)})


def _si_reference(data, n: int, seed: int) -> torch.Tensor:
    return data.sample(n, seeds=6 * 10**9 + seed * n)


def _scatter(x: torch.Tensor, name: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = ROOT / "benchmarks" / "figures"
    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(3.2, 3.2))
    pts = x[:3000].double().numpy()
    ax.scatter(pts[:, 0], pts[:, 1], s=1, alpha=0.4)
    ax.set_title(title, fontsize=8)
    ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(out / name, dpi=100)
    plt.close(fig)


def _ms(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} +- {statistics.stdev(values):.3f}"


def write_report(path: Path, report: Path, command: str) -> None:
    records = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    lines = ["## Transport: reflow, Schrodinger bridges (sdeflow.transport)", "",
             f"Commands: {command} (results: `{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}`). Machine: 2 CPU cores shared with other "
             "work (the records keep the 1-minute load average when they were written); one torch thread per process. Wall "
             "seconds on a loaded machine are several times the process CPU seconds, which are what a dedicated core would "
             "take.", ""]
    runs = [r for r in records if r["part"] == "reflow"]
    if runs:
        run = runs[-1]
        lines += ["### Rectified flow with reflow: N(0, I) -> 8 gaussians", "",
                  f"Whole pipeline (1-RF {run['config']['steps']} steps, coupling of {run['config']['n_pairs']} pairs by "
                  f"{run['config']['solver']} with {run['config']['solver_steps']} steps, 2-RF {run['config']['reflow_steps']} steps, "
                  f"distillation {run['config']['distill_steps']} steps): **{run['wall_seconds']} s wall, {run['cpu_seconds']} s "
                  f"CPU** (load average {run['env']['load_average_1min']} when the record was written).", "",
                  "| stage | straightness S | normalized path energy | CPU s |", "| --- | --- | --- | --- |"]
        for st in run["stages"]:
            lines.append(f"| {st['stage']} | {st['straightness']:.4g} | {st['normalized_path_energy']:.4g} | {st.get('cpu_seconds', '')} |")
        s = {st["stage"]: st["straightness"] for st in run["stages"]}
        if "rf1" in s and "rf2" in s:
            lines += ["", f"Straightness falls {s['rf1'] / max(s['rf2'], 1e-300):.0f}-fold from 1-RF to 2-RF (goal: >= 5)."]
        w = {}
        for r in records:
            if r["part"] == "reflow-w2":
                w.setdefault((r["method"], r["nfe"], r["n"]), []).append(r["w2"])
        lines += ["", "| model | model calls | exact W2 (mean +- std over seeds) | seeds | points |", "| --- | --- | --- | --- | --- |"]
        for (m, nfe, n), v in w.items():
            lines.append(f"| {m} | {nfe} | {_ms(v)} | {len(v)} | {n} |")
        lines += ["", "Goal: 2-RF at one call W2 <= 0.42 (Tong et al.'s multi-step rectified-flow row: 0.421 +- 0.071).",
                  "Figures: `benchmarks/figures/transport_reflow_*.png`.", ""]
    table = {}
    for r in records:
        if r["part"] == "table":
            table.setdefault((r["problem"], r["method"], r["nfe"], r["n"], r.get("train_steps", "")), []).append(r["w2"])
    if table:
        lines += ["### The [SF]2M 2-D protocol (Tong et al. 2024, Table 2)", "",
                  "Training steps: of each network (DSBM: half per fit, 2 IMF iterations; reflow: 1-RF and 2-RF each, half "
                  "for the distillation).", "",
                  "| problem | method | model calls | exact W2 | seeds | points | training steps | published |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        order = list(PROBLEMS)
        ranked = sorted(table.items(), key=lambda kv: (order.index(kv[0][0]) if kv[0][0] in order else len(order),
                                                       kv[0][1] != "two-sample floor"))
        for (p, m, nfe, n, steps), v in ranked:
            pub = PUBLISHED.get((p, m.split(" (")[0].split(" ODE")[0].split(" SDE")[0]), "")
            lines.append(f"| {p} | {m} | {nfe} | {_ms(v)} | {len(v)} | {n} | {steps} | {pub} |")
        lines.append("")
    ds = {}
    for r in records:  # the newest record of each (d, drift, integrator, fit steps x iterations) wins
        if r["part"] == "dsbm":
            drift = r.get("drift", "learned")
            budget = f"{r['config']['steps']} x {r['config']['iterations']}" if drift == "learned" and "config" in r else ""
            ds[(r["d"], drift, r.get("integrator", "euler_maruyama"), budget)] = r
    floors = {r["d"]: r for r in records if r["part"] == "dsbm-kl-floor"}
    if ds:
        lines += ["### DSBM's Gaussian bridge benchmark (Shi et al. 2023)", "",
                  "pi_0 = N(-0.1 1, I), pi_1 = N(0.1 1, I), sigma = 1, 10,000 test samples, 20 steps; exact: mean "
                  "-0.1, variance 1, Cov diagonal (sqrt(5) - 1)/2 = 0.618. KL of Gaussian fits of the forward marginals "
                  f"to the exact ones; DSBM-IMF's published d = 50 figure: {DSBM_PUBLISHED_KL_D50}. Rows: the learned bridge and "
                  "the closed form's own drift (`exact drift`), each with the protocol's 20 Euler-Maruyama steps and with "
                  "SRA1 (weak order 2) at 20 steps; `i.i.d. exact draws` is the KL estimator's own floor at this sample "
                  "size (Gaussian fits of 10,000 exact draws, about d (d + 3) / (4 n)).", "",
                  "| d | drift | fit steps x IMF iterations | integrator (20 steps) | mean X0 | var X0 | Cov diag | KL t=0.25 | KL t=0.5 | KL t=0.75 | train CPU s | train wall s |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for d in sorted({key[0] for key in ds}):
            order = lambda key: (key[1] != "learned", key[3], key[2] != "euler_maruyama")  # noqa: E731
            for key in sorted((key for key in ds if key[0] == d), key=order):
                r, k = ds[key], ds[key]["kl"]
                lines.append(f"| {d} | {key[1]} | {key[3]} | {key[2]} | {r['mean_x0']:.4f} | {r['var_x0']:.4f} | {r['cov_diag']:.4f} | "
                             f"{k['0.25']:.3g} | {k['0.5']:.3g} | {k['0.75']:.3g} | {r.get('train_cpu_seconds', '')} | "
                             f"{r.get('train_wall_seconds', '')} |")
            if d in floors:
                k = floors[d]["kl"]
                lines.append(f"| {d} | i.i.d. exact draws | | | | | | {k['0.25']:.3g} | {k['0.5']:.3g} | {k['0.75']:.3g} | | |")
        lines.append("")
        exact_cov = (5**0.5 - 1) / 2
        for (d, drift, method, budget), r in sorted(ds.items()):
            if drift != "learned":
                continue
            errs = {"mean": abs(r["mean_x0"] + 0.1), "variance": abs(r["var_x0"] - 1.0), "Cov diagonal": abs(r["cov_diag"] - exact_cov)}
            bad = [f"{name} off by {e:.4f}" for name, e in errs.items() if e > 0.01]
            lines.append(f"- d = {d}, learned bridge ({budget}), {method}: " + ("mean, variance and Cov diagonal all within 0.01 of the closed form"
                                                                     if not bad else "NOT within 0.01: " + ", ".join(bad)))
        lines.append("")
    si = [r for r in records if r["part"] == "interpolant"]
    if si:
        lines += ["### Stochastic interpolants between Gaussian mixtures (exact fields)", "",
                  "Source (t = 1): two Gaussians at (0, +-1.5); data (t = 0): 8 Gaussians of std 0.3 on a circle of radius 3; "
                  "gamma scale 1; one velocity network and one denoiser network (MLP 256 x 3) per interpolant trained on "
                  "independent pairs; the SDE's eps is chosen after training; Euler-Maruyama (Euler for the ODE). "
                  "`eps(t)`: `constant` is eps itself, `gamma-shaped` is eps gamma(t) / max gamma (it vanishes where "
                  "gamma does, so the score -eta / gamma never multiplies the denoiser's error by more than eps). "
                  "Exact W2 (POT) to fresh exact data samples, mean +- std over seeds.", "",
                  "| interpolant | sampler | eps | eps(t) | model calls | exact W2 | seeds | points |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        cells = {}
        for r in si:
            key = (f"{r['interpolant']} ({r['gamma']})", r["method"], r["eps"], r.get("eps_profile", "constant" if r["eps"] else ""),
                   r["nfe"], r["n"])
            cells.setdefault(key, []).append(r["w2"])
        for (interp, m, eps, profile, nfe, n), v in cells.items():
            lines.append(f"| {interp} | {m} | {'' if eps is None else eps} | {profile if eps else ''} | {nfe} | {_ms(v)} | {len(v)} | {n} |")
        fields = [r for r in records if r["part"] == "interpolant-fields"]
        if fields:
            lines += ["", "RMS error of the learned fields against the exact ones on 5,000 samples of x_t (the exact field's RMS "
                      "in brackets):", "", "| interpolant | training steps | field | " + " | ".join(f"t = {t}" for t in (0.1, 0.25, 0.5, 0.75, 0.9))
                      + " | train CPU s |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
            for r in fields:
                for f in ("velocity", "denoiser"):
                    errs = " | ".join(f"{r['errors'][f'{f}@{t}']['rms_error']:.3f} ({r['errors'][f'{f}@{t}']['rms_field']:.2f})"
                                      for t in (0.1, 0.25, 0.5, 0.75, 0.9))
                    lines.append(f"| {r['interpolant']} ({r['gamma']}) | {r['steps']} | {f} | {errs} | {r['train_cpu_seconds'][f]} |")
        lls = [r for r in records if r["part"] == "interpolant-ll"]
        if lls:
            lines += ["", "Log-likelihood of the ODE generator (exact divergence, dopri5 at 1e-4) on fresh data points:", "",
                      "| interpolant | points | mean log p (model) | mean log p (exact) | mean abs error | model calls |",
                      "| --- | --- | --- | --- | --- | --- |"]
            for r in lls:
                lines.append(f"| {r['interpolant']} ({r['gamma']}) | {r['n']} | {r['mean_log_prob']:.3f} | {r['exact_mean_log_prob']:.3f} | "
                             f"{r['mean_abs_error']:.3f} | {r['nfe']} |")
        lines.append("")
    report.write_text("\n".join(lines) + "\n")
    print(f"wrote {report}")


BUDGETS = {
    "quick": {"rf": 1500, "pairs": 10_000, "table": 1000, "dsbm": 300, "dsbm_iterations": 2, "dsbm_width": 128,
              "si": 1000, "si_steps": 50, "si_ll": 100},
    "full": {"rf": 3000, "pairs": 20_000, "table": 3000, "dsbm": 2000, "dsbm_iterations": 3, "dsbm_width": 256,
             "si": 4000, "si_steps": 100, "si_ll": 300},
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small budgets, 2,000 evaluation points, 2 seeds")
    p.add_argument("--parts", nargs="+", choices=("reflow", "table", "dsbm", "interpolant"),
                   default=["reflow", "table", "dsbm", "interpolant"])
    p.add_argument("--problems", nargs="+", choices=sorted(PROBLEMS), default=None)
    p.add_argument("--dims", nargs="+", type=int, default=None, help="DSBM benchmark dimensions (default 5 20 50; quick: 5)")
    p.add_argument("--dsbm-steps", type=int, default=None, help="optimizer steps of each DSBM fit (default: the budget's, 2000; quick 300)")
    p.add_argument("--dsbm-iterations", type=int, default=None, help="DSBM's IMF iterations (default: the budget's, 3; quick 2)")
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--n", type=int, default=None, help="evaluation points (exact W2 is cubic in it)")
    p.add_argument("--n-goal", type=int, default=10_000, help="evaluation points of the goal's row (2-RF at one call)")
    p.add_argument("--sigma", type=float, default=1.0, help="SB-CFM / DSBM reference diffusion on the 2-D problems")
    p.add_argument("--results", type=Path, default=None, help="JSON lines file (default benchmarks/results/transport[-quick].jsonl)")
    p.add_argument("--report", type=Path, default=ROOT / "BENCHMARKS-transport.md")
    p.add_argument("--report-only", action="store_true", help="rewrite the report from the results file")
    p.add_argument("--commands", default=None, help="with --report-only: the commands that produced the results, for the report")
    p.add_argument("--reflow-dir", type=Path, default=None,
                   help="evaluate this finished reflow run folder (rf1, rf2, distill) instead of training one in the reflow part")
    p.add_argument("--reflow-cpu", type=float, default=None,
                   help="the process CPU seconds of that run, when its report.json has no cpu_seconds (measured outside, e.g. by ps)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    args.budget = dict(BUDGETS["quick" if args.quick else "full"])
    for key, flag, value in (("dsbm", "--dsbm-steps", args.dsbm_steps), ("dsbm_iterations", "--dsbm-iterations", args.dsbm_iterations)):
        if value is not None:
            if value < 1:
                p.error(f"{flag} must be >= 1; got {value}")
            args.budget[key] = value
    args.seeds = args.seeds or (2 if args.quick else 5)
    args.n = args.n or (2000 if args.quick else 10_000)
    args.problems = args.problems or (["N->8gaussians"] if args.quick else sorted(PROBLEMS))
    args.dims = args.dims or ([5] if args.quick else [5, 20, 50])
    path = args.results or ROOT / "benchmarks" / "results" / ("transport-quick.jsonl" if args.quick else "transport.jsonl")
    command = "OMP_NUM_THREADS=1 python benchmarks/transport.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if not args.report_only:
        for part in args.parts:
            {"reflow": run_reflow_part, "table": run_table_part, "dsbm": run_dsbm_part,
             "interpolant": run_interpolant_part}[part](args, path)
    write_report(path, args.report, args.commands or command.strip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
