"""``sdeflow finance train|sample``: a generative model of return paths, checked by stylized facts and pricing.

Thin: ``train`` simulates Heston return paths (or reads a user's file) and calls
:func:`sdeflow.applications.finance_paths.train_path_model`; ``sample`` calls
:func:`~sdeflow.applications.finance_paths.sample_paths` and
:func:`~sdeflow.applications.finance_paths.compare` against fresh simulator paths (or a reference file)
and a held-out floor sample, and draws the pictures.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from .train import _positive_int  # the one integer-flag parser of the training commands

__all__ = ["register", "run_finance"]

# Seeds of the simulated reference and floor samples of ``sample``: far from any training seed.
_REFERENCE_SEED, _FLOOR_SEED = 1_000_003, 2_000_003
_TRAIN_ONLY = ("data", "kind", "paths", "length", "substeps", "heston", "steps", "batch_size", "lr", "width", "depth",
               "resume")
_SAMPLE_ONLY = ("ckpt", "n", "solver", "sample_steps", "strikes", "lags", "reference", "floor")


def register(subparsers) -> None:
    """Add the ``finance`` command (``--threads`` and ``--quiet`` are the shared options)."""
    from ._common import add_json_option

    p = subparsers.add_parser(
        "finance",
        help="train a flow model on stochastic-volatility return paths and check samples by stylized facts and pricing",
        description=(
            "finance train: simulate --paths Heston paths of --length daily log-returns (or read --data FILE, .npy/.csv "
            "of shape (n_paths, n_steps)) and train a flow-matching MLP on them (run folder --out). finance sample: draw "
            "--n synthetic paths from --ckpt with sdeflow.sample, compare kurtosis, autocorrelation of |r| and r, "
            "leverage corr(r_t, |r_t+k|) and call prices at --strikes with the simulator (Heston semi-closed form) and "
            "a held-out floor sample; writes paths.npy, report.json and four pictures to --out."
        ),
    )
    p.add_argument("action", choices=("train", "sample"), help="train a model, or sample and evaluate one")
    g = p.add_argument_group("train")
    g.add_argument("--data", default=None, help="train: a .npy/.csv file of paths (n_paths, n_steps) instead of simulating")
    g.add_argument("--kind", choices=("returns", "prices"), default=None,
                   help="train: what --data rows hold: log-returns (default) or prices (turned into log-returns)")
    g.add_argument("--paths", type=_positive_int, default=None, help="train: simulated training paths (default 20000)")
    g.add_argument("--length", type=_positive_int, default=None, help="train: daily returns per simulated path (default 64)")
    g.add_argument("--substeps", type=_positive_int, default=None, help="train: Euler steps per day of the simulator (default 8)")
    g.add_argument("--heston", action="append", default=None, metavar="NAME=VALUE",
                   help="train: a Heston parameter of the simulator, repeatable (s0, v0, r, kappa, theta, xi, rho)")
    g.add_argument("--steps", type=_positive_int, default=None, help="train: optimizer steps (default 8000, the documented run)")
    g.add_argument("--batch-size", type=_positive_int, default=None, help="train: minibatch size (default 256)")
    g.add_argument("--lr", type=float, default=None, help="train: peak learning rate (default 1e-3)")
    g.add_argument("--width", type=_positive_int, default=None, help="train: MLP width (default 256)")
    g.add_argument("--depth", type=_positive_int, default=None, help="train: MLP residual blocks (default 3)")
    g.add_argument("--resume", action="store_const", const=True, default=None,
                   help="train: continue the interrupted run in --out (same data, seed and options)")
    g = p.add_argument_group("sample")
    g.add_argument("--ckpt", default=None, help="sample: a run folder or checkpoint written by 'sdeflow finance train'")
    g.add_argument("--n", "--num-samples", dest="n", type=_positive_int, default=None, help="sample: synthetic paths (and simulated reference/floor paths) (default 10000)")
    g.add_argument("--solver", default=None, help="sample: ODE solver of sdeflow.sample (default heun)")
    g.add_argument("--sample-steps", type=_positive_int, default=None, help="sample: solver steps (default 32)")
    g.add_argument("--strikes", default=None, help="sample: comma-separated call strikes (default 80,90,100,110,120)")
    g.add_argument("--lags", type=_positive_int, default=None, help="sample: autocorrelation lags 1..LAGS (default 10)")
    g.add_argument("--reference", default=None,
                   help="sample: a .npy/.csv file of reference return paths (for a model trained on --data)")
    g.add_argument("--floor", default=None, help="sample: a second held-out .npy/.csv file of return paths (the floor)")
    p.add_argument("--seed", type=int, default=0, help="train: seed of the simulation and training; sample: first per-sample seed")
    p.add_argument("--out", type=Path, default=None,
                   help="train: the run folder; sample: the folder of paths.npy, report.json and the pictures "
                        "(default: a fresh ./sdeflow-finance-N)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run or earlier results in --out")
    add_json_option(p)
    p.set_defaults(func=run_finance)


def _check_flags(args: argparse.Namespace) -> None:
    """Each action's flags only with it; a seed >= 0."""
    from ._common import check_action_flags

    check_action_flags(args, "finance", {"train": _TRAIN_ONLY, "sample": _SAMPLE_ONLY})
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0; got {args.seed}")


def _heston(items: list[str] | None):
    import dataclasses

    from ..applications.finance_paths import DEFAULT_HESTON
    from ._common import parse_options

    options = parse_options(items, "--heston", "xi=0.5")
    known = ("s0", "v0", "r", "kappa", "theta", "xi", "rho")
    for key, value in options.items():
        if key not in known:
            raise ValueError(f"--heston {key!r} is not a Heston parameter; expected some of {list(known)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"--heston {key} must be a number; got {value!r}")
    try:
        return dataclasses.replace(DEFAULT_HESTON, **{k: float(v) for k, v in options.items()})
    except ValueError as err:
        raise ValueError(f"--heston: {err}") from err


def _strikes(text: str | None) -> list[float]:
    import math

    if text is None:
        return [80.0, 90.0, 100.0, 110.0, 120.0]
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise ValueError(f"--strikes must be comma-separated numbers such as 90,100,110; got {text!r}") from err
    if not values or any(not (math.isfinite(v) and v > 0) for v in values):
        raise ValueError(f"--strikes must be finite numbers > 0; got {text!r}")
    return values


def run_finance(args: argparse.Namespace) -> int:
    """``sdeflow finance train|sample``."""
    _check_flags(args)
    return _train(args) if args.action == "train" else _sample(args)


def _train(args: argparse.Namespace) -> int:
    import dataclasses

    from ..applications import finance_paths as fp
    from ..training.checkpoint import check_run_dir
    from ._common import emit, fresh_dir, reading

    quiet = bool(getattr(args, "quiet", False))
    if args.lr is not None and not (args.lr > 0):
        raise ValueError(f"--lr must be > 0; got {args.lr}")
    model = None
    if args.data is None:
        model = _heston(args.heston)
    elif args.heston is not None or args.paths is not None or args.length is not None or args.substeps is not None:
        raise ValueError("--heston, --paths, --length and --substeps describe the simulator; with --data the paths come from the file")
    if args.resume and args.out is None:
        raise ValueError("--resume needs --out, the run folder to continue")
    out = fresh_dir("sdeflow-finance") if args.out is None else check_run_dir(
        args.out, resume=bool(args.resume), overwrite=args.overwrite, name="--out")
    length, substeps = args.length or 64, args.substeps or 8
    start = time.perf_counter()
    if model is not None:
        returns = fp.simulate_returns(model, args.paths or 20_000, length, substeps=substeps, seed=args.seed)
        info = {"name": "heston", "dt": 1.0 / fp.TRADING_DAYS, "substeps": substeps,
                "simulator": {"model": "heston", **{k: float(v) for k, v in dataclasses.asdict(model).items()}}}
    else:
        with reading(args.data, "--data"):
            returns = fp.load_paths(args.data, kind=args.kind or "returns")
        info = {"name": str(args.data), "dt": 1.0 / fp.TRADING_DAYS}
    simulated = time.perf_counter() - start
    start = time.perf_counter()
    result = fp.train_path_model(
        returns, steps=args.steps or 8000, batch_size=args.batch_size or 256, lr=args.lr or 1e-3, width=args.width or 256,
        depth=args.depth or 3, seed=args.seed, out_dir=out, overwrite=args.overwrite, resume=bool(args.resume),
        progress=not quiet, data_info=info,
    )
    trained = time.perf_counter() - start
    facts = fp.stylized_facts(returns, min(10, returns.shape[1] - 1))
    report = {
        "run": str(out), "checkpoint": str(result.checkpoint), "steps": result.step,
        "final_loss": result.history[-1]["loss"] if result.history else None,
        "data": info["name"], "paths": int(returns.shape[0]), "length": int(returns.shape[1]),
        "normalization": fp.return_statistics(returns), "seconds": {"data": simulated, "training": trained},
        "training_facts": facts,
    }
    text = (f"trained {result.step} steps on {returns.shape[0]} paths of {returns.shape[1]} returns in {trained:.1f} s "
            f"(final loss {report['final_loss']}); run folder {out}\n"
            f"data: daily sd {facts['std']:.5f}, kurtosis {facts['kurtosis']:.2f}, ACF|r| lag 1 {facts['acf_abs'][0]:.3f}, "
            f"leverage lag 1 {facts['leverage'][0]:.3f}\nnext: sdeflow finance sample --ckpt {out}")
    emit(args, report, text)
    return 0


def _sample(args: argparse.Namespace) -> int:
    from ..applications import finance_paths as fp
    from ..finance import Heston
    from ..training.checkpoint import read_checkpoint
    from .._utils import atomic_write_bytes
    from ._common import emit, prepare_out_dir, reading, write_json

    if args.ckpt is None:
        raise ValueError("sdeflow finance sample needs --ckpt (a run folder written by 'sdeflow finance train')")
    strikes = _strikes(args.strikes)
    out = prepare_out_dir(args.out, "sdeflow-finance", ["paths.npy", "report.json", "paths.png", "acf.png",
                                                        "histogram.png", "smile.png"], args.overwrite)
    config = read_checkpoint(args.ckpt).config
    data = config["data"]
    if data.get("kind") != "finance-paths":
        raise ValueError(f"--ckpt {args.ckpt} holds a model of {data.get('kind')!r} data; expected a run of "
                         "'sdeflow finance train'")
    n = args.n or 10_000
    length = int(data["event_shape"][0])
    # The comparison samples first: a missing or misshapen reference fails before any sampling work.
    model, reference, floor = None, None, None
    if args.reference is not None:
        with reading(args.reference, "--reference"):
            reference = fp.load_paths(args.reference, n_steps=length)
        if args.floor is not None:
            with reading(args.floor, "--floor"):
                floor = fp.load_paths(args.floor, n_steps=length)
    elif args.floor is not None:
        raise ValueError("--floor needs --reference (the floor is a second held-out sample of the reference's data)")
    elif isinstance(data.get("simulator"), dict):
        params = {k: v for k, v in data["simulator"].items() if k != "model"}
        model = Heston(**params)
        substeps = int(data.get("substeps", 8))
        reference = fp.simulate_returns(model, n, length, substeps=substeps, seed=_REFERENCE_SEED)
        floor = fp.simulate_returns(model, n, length, substeps=substeps, seed=_FLOOR_SEED)
    else:
        raise ValueError(f"--ckpt {args.ckpt} was trained on {data.get('name')!r} paths, not on the simulator: "
                         "pass --reference FILE (held-out paths of that data) to compare with")
    start = time.perf_counter()
    synthetic = fp.sample_paths(args.ckpt, n, solver=args.solver or "heun", steps=args.sample_steps or 32, seed=args.seed)
    sampled = time.perf_counter() - start
    lags = min(args.lags or 10, length - 1)
    report = fp.compare(synthetic, reference, floor, model=model, strikes=strikes, lags=lags,
                        dt=float(data.get("dt", 1.0 / fp.TRADING_DAYS)))
    report["seconds_sampling"] = sampled
    report["solver"] = {"name": args.solver or "heun", "steps": args.sample_steps or 32}
    import io

    import numpy as np

    buf = io.BytesIO()
    np.save(buf, synthetic.numpy())
    atomic_write_bytes(out / "paths.npy", buf.getvalue())
    report["pictures"] = [str(p) for p in fp.plot_report(synthetic, reference, report, out, s0=report["pricing"]["s0"])]
    write_json(out / "report.json", report)
    emit(args, report, _summary(report, out))
    return 0


def _summary(report: dict, out: Path) -> str:
    """The text report: each stylized fact for the synthetic, reference and floor samples; prices and z-scores."""
    facts = report["facts"]
    names = [k for k in ("synthetic", "reference", "floor") if k in facts]
    lines = [f"{'':24s}" + "".join(f"{k:>12s}" for k in names)]
    rows = (("daily sd", lambda f: f["std"]), ("kurtosis", lambda f: f["kurtosis"]),
            ("ACF |r| lag 1", lambda f: f["acf_abs"][0]), ("ACF |r| lag max", lambda f: f["acf_abs"][-1]),
            ("ACF r lag 1", lambda f: f["acf_raw"][0]), ("leverage lag 1", lambda f: f["leverage"][0]))
    for label, get in rows:
        lines.append(f"{label:24s}" + "".join(f"{get(facts[k]):12.4f}" for k in names))
    pricing = report["pricing"]
    lines.append(f"calls at T = {pricing['maturity']:.4f} y, strikes {pricing['strikes']}")
    if "exact" in pricing:
        lines.append("  exact (Heston)       " + " ".join(f"{p:9.4f}" for p in pricing["exact"]))
    for key in ("synthetic", "synthetic_martingale", "floor"):
        if key in pricing:
            entry = pricing[key]
            z = "  z " + " ".join(f"{v:6.2f}" for v in entry["z"]) if "z" in entry else ""
            lines.append(f"  {key:20s} " + " ".join(f"{p:9.4f}" for p in entry["price"]) + z)
    lines.append(f"wrote {out}/paths.npy, report.json, paths.png, acf.png, histogram.png, smile.png")
    return "\n".join(lines) + "\n" + json.dumps(report["distance"], indent=None)
