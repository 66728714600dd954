"""``sdeflow simulate`` (paths of a built-in model) and ``sdeflow price`` (Monte Carlo option prices).

Thin: both parse, validate and call :func:`sdeflow.sdes.integrate.sdeint` and
:func:`sdeflow.finance.price`; closed forms are printed or plotted where they exist.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time

import numpy as np
import torch

from ._common import add_json_option, emit, parse_options, prepare_out_dir, save_array, write_json

__all__ = ["register", "run_simulate", "run_price", "MODELS"]

MODELS = ("gbm", "multigbm", "heston", "cir", "ou")


def _model(name: str, params: list[str] | None):
    from .. import finance

    classes = {"gbm": finance.GBM, "multigbm": finance.MultiGBM, "heston": finance.Heston, "cir": finance.CIR,
               "ou": finance.OrnsteinUhlenbeck}
    if name not in classes:
        raise ValueError(f"--model must be one of {list(classes)}; got {name!r}")
    cls = classes[name]
    options = parse_options(params, "--param", "sigma=0.3")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(options) - known
    if unknown:
        raise ValueError(f"--param {sorted(unknown)} unknown for model {name!r}; it takes {sorted(known)}")
    for key, value in options.items():  # tuples for MultiGBM, given as 100,80
        if isinstance(value, list):
            options[key] = tuple(float(v) for v in value)
        elif isinstance(value, str) and "," in value:
            options[key] = _floats(value, f"--param {key}")
    if name == "multigbm" and "corr" in options and not isinstance(options["corr"], tuple):
        rho = float(options["corr"])
        options["corr"] = ((1.0, rho), (rho, 1.0))
    return cls(**options)


def _floats(text: str, flag: str) -> tuple[float, ...]:
    """``"0.5,0.5"`` -> ``(0.5, 0.5)``; the error names ``flag``."""
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError as err:
        raise ValueError(f"{flag} must be comma-separated numbers such as 0.5,0.5; got {text!r}") from err


def _n_assets(model) -> int:
    """How many asset prices the model's state carries (a basket needs as many weights)."""
    asset = model.asset(model.initial(1, torch.float64))
    return 1 if asset.ndim == 1 else int(asset.shape[1])


def _terminal_density(model, t: float, x: np.ndarray) -> np.ndarray | None:
    """The closed-form density of the first coordinate at ``t`` (GBM: log-normal; OU: normal), else None."""
    from .. import finance

    if isinstance(model, finance.GBM):
        m = math.log(model.s0) + (model.r - model.q - 0.5 * model.sigma**2) * t
        s = model.sigma * math.sqrt(t)
        xp = np.clip(x, 1e-300, None)
        return np.exp(-0.5 * ((np.log(xp) - m) / s) ** 2) / (xp * s * math.sqrt(2 * math.pi)) * (x > 0)
    if isinstance(model, finance.OrnsteinUhlenbeck):
        mean, var = finance.ou_moments(model.x0, model.theta, model.mu, model.sigma, t)
        return np.exp(-0.5 * (x - float(mean)) ** 2 / float(var)) / math.sqrt(2 * math.pi * float(var))
    return None


def _plots(out, ts: torch.Tensor, paths: torch.Tensor, model, show: int, label: str) -> None:
    from .. import finance
    from ..plots import _plt, _save

    plt = _plt()
    arr = paths.detach().to(torch.float64).numpy()
    fig, ax = plt.subplots(figsize=(7, 4))
    for i in range(min(show, arr.shape[1])):
        ax.plot(ts.numpy(), arr[:, i, 0], lw=0.8)
    ax.set_xlabel("t (years)" if not isinstance(model, finance.OrnsteinUhlenbeck) else "t")
    ax.set_ylabel(label)
    ax.set_title(f"{min(show, arr.shape[1])} of {arr.shape[1]} sample paths of {type(model).__name__}")
    _save(fig, out / "paths.png")
    fig, ax = plt.subplots(figsize=(7, 4))
    final = arr[-1, :, 0]
    ax.hist(final, bins=min(80, max(10, len(final) // 20)), density=True, alpha=0.6, label=f"simulated ({len(final)} paths)")
    grid = np.linspace(final.min(), final.max(), 400)
    density = _terminal_density(model, float(ts[-1]), grid)
    if density is not None:
        ax.plot(grid, density, "k-", lw=1.5, label="closed-form density")
    reference = "closed form beside it" if density is not None else "no closed-form density for this model"
    ax.set_title(f"{type(model).__name__}: distribution of {label} at T = {float(ts[-1]):g} ({reference})", fontsize=10)
    ax.set_xlabel(f"{label} at T = {float(ts[-1]):g}")
    ax.set_ylabel("probability density")
    ax.legend()
    _save(fig, out / "terminal.png")


def run_simulate(args: argparse.Namespace) -> dict:
    """Simulate, write the paths, the two figures and a summary; return the summary."""
    from ..finance import Heston
    from ..sdes.integrate import sdeint

    if args.paths < 1 or args.steps < 1 or not 0 < args.T < math.inf:
        raise ValueError(f"--paths and --steps must be >= 1 and --T a finite number > 0; got {args.paths}, {args.steps}, {args.T}")
    if args.plot_paths < 0:
        raise ValueError(f"--plot-paths must be >= 0 (paths drawn in paths.png); got {args.plot_paths}")
    from ..sdes.integrate import MAX_FIXED_STEPS

    if args.steps > MAX_FIXED_STEPS:  # refused before the time grid and the paths are allocated
        raise ValueError(f"--steps must be <= {MAX_FIXED_STEPS} (sdeint's bound on fixed steps); got {args.steps}")
    model = _model(args.model, args.param)
    out = prepare_out_dir(args.out, "sdeflow-simulate", [f"paths.{args.format}", "paths.png", "terminal.png",
                                                         "summary.json"], args.overwrite)
    dtype = torch.float64 if args.float64 else torch.float32
    ts = torch.linspace(0.0, args.T, args.steps + 1, dtype=torch.float64)
    start = time.perf_counter()
    y = sdeint(model, model.initial(args.paths, dtype), ts, method=args.method, dt=args.T / args.steps, seed=args.seed)
    seconds = time.perf_counter() - start
    if isinstance(model, Heston):  # report prices, not log-prices
        y = torch.cat((torch.exp(y[..., :1]), y[..., 1:]), dim=-1)
    save_array(out / f"paths.{args.format}", y, ts=ts.numpy())
    label = {"cir": "short rate r", "ou": "X"}.get(args.model, "price S")
    _plots(out, ts, y, model, args.plot_paths, label)
    final = y[-1, :, 0].to(torch.float64)
    summary = {"model": args.model, "params": dataclasses.asdict(model),
               "method": args.method, "paths": args.paths, "steps": args.steps, "T": args.T, "seconds": seconds,
               # The spread of one path is undefined: null in the JSON rather than NaN.
               "terminal_mean": float(final.mean()), "terminal_std": float(final.std()) if args.paths > 1 else None,
               "out": str(out)}
    write_json(out / "summary.json", summary)
    std = "undefined (one path)" if summary["terminal_std"] is None else f"{summary['terminal_std']:.6g}"
    emit(args, summary, f"{args.paths} paths of {args.model} x {args.steps} steps ({args.method}) in {seconds:.2f} s; "
                        f"terminal {label}: mean {summary['terminal_mean']:.6g}, std {std}\n"
                        f"wrote {out / f'paths.{args.format}'}, {out / 'paths.png'}, {out / 'terminal.png'}, {out / 'summary.json'}")
    return summary


def _closed_form(model, option, maturity: float) -> float | None:
    from .. import finance

    if isinstance(option, finance.European) and option.weights is None:
        if isinstance(model, finance.GBM):
            return float(finance.black_scholes(model.s0, option.strike, maturity, model.r, model.sigma, model.q,
                                               option.kind))
        if isinstance(model, finance.Heston):
            return finance.heston_price(model.s0, option.strike, maturity, model.r, model.kappa, model.theta,
                                        model.xi, model.rho, model.v0, option.kind)
    if isinstance(option, finance.ZeroCouponBond) and isinstance(model, finance.CIR):
        return float(finance.cir_bond(model.r0, model.kappa, model.theta, model.sigma, maturity))
    return None


def run_price(args: argparse.Namespace) -> dict:
    """Price an option by Monte Carlo, print the estimate and the closed form if there is one."""
    from .. import finance

    if not 0 < args.T < math.inf:
        raise ValueError(f"--T (the maturity) must be a finite number > 0; got {args.T}")
    if args.option != "barrier" and (args.barrier is not None or args.style is not None):
        given = " and ".join(f for f, v in (("--barrier", args.barrier), ("--style", args.style)) if v is not None)
        verb = "apply" if " and " in given else "applies"
        raise ValueError(f"{given} only {verb} to --option barrier; got --option {args.option}: drop {given} or use --option barrier")
    model = _model(args.model, args.param)
    weights = _floats(args.weights, "--weights") if args.weights else None
    n_assets = _n_assets(model)
    if weights is not None and len(weights) != n_assets:
        hint = "it has one asset: drop --weights" if n_assets == 1 else f"give {n_assets} weights, e.g. {','.join(['0.5'] * n_assets)}"
        raise ValueError(f"--weights needs one weight per asset; model {args.model} has {n_assets} and --weights {args.weights!r} gives {len(weights)}: {hint}")
    if args.option == "bond" and not isinstance(model, finance.CIR):
        raise ValueError(f"--option bond is discounted by the short rate's path, which only --model cir simulates; got --model {args.model}")
    if args.option == "european":
        option = finance.European(args.strike, args.kind, weights)
    elif args.option == "asian":
        option = finance.Asian(args.strike, args.kind, weights)
    elif args.option == "barrier":
        option = finance.Barrier(args.strike, args.kind, weights,
                                 barrier=120.0 if args.barrier is None else args.barrier,
                                 style="up-and-out" if args.style is None else args.style)
    else:
        option = finance.ZeroCouponBond()
    method = args.method or ("exact" if hasattr(model, "exact_step") else "euler")
    from ..finance.montecarlo import steps_taken

    steps = steps_taken(option, method, args.steps)
    greeks = [g for g in (args.greeks or "").split(",") if g]
    start = time.perf_counter()
    res = finance.price(model, option, args.T, paths=args.paths, steps=args.steps, method=method, seed=args.seed,
                        chunk=args.chunk, antithetic=args.antithetic, greeks=greeks, confidence=args.confidence,
                        dtype=torch.float64 if args.float64 else torch.float32, progress=not args.quiet)
    seconds = time.perf_counter() - start
    exact = _closed_form(model, option, args.T)
    report = {"option": args.option, "kind": option.kind if args.option != "bond" else None, "model": args.model,
              "T": args.T, "paths": res.paths, "steps": steps, "method": method, "price": res.price,
              "stderr": res.stderr, "ci": list(res.ci), "confidence": args.confidence, "closed_form": exact,
              "greeks": res.greeks, "seconds": seconds}
    if args.json == "-":
        emit(args, report)
        return report
    if args.json is not None:
        emit(args, report)
    print(f"{args.option} {option.kind if args.option != 'bond' else ''} on {args.model}, T = {args.T}, "
          f"{res.paths} paths x {steps} step{'s' if steps > 1 else ''} ({method}"
          f"{', exact in one step' if steps < args.steps else ''}), {seconds:.2f} s")
    print(res)
    if exact is not None:
        diff = res.price - exact
        # A zero standard error (every path paid the same, e.g. 0 far out of the money) has no z-score.
        z = f" = {diff / res.stderr:+.2f} standard errors" if res.stderr > 0 else " (standard error 0)"
        print(f"closed form {exact:.8f}  (difference {diff:+.6f}{z})")
    return report


def register(subparsers) -> None:
    """Add ``simulate`` and ``price``."""
    p = subparsers.add_parser("simulate", help="simulate paths of a built-in SDE model (GBM, Heston, CIR, OU, ...)")
    p.add_argument("--model", choices=MODELS, default="gbm", help="the SDE model")
    p.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="model parameter, repeatable (e.g. --param sigma=0.3 --param s0=100)")
    p.add_argument("--paths", type=int, default=1000, help="number of simulated paths")
    p.add_argument("--steps", type=int, default=252, help="time steps (uniform) from 0 to --T")
    p.add_argument("--T", type=float, default=1.0, help="horizon, in years for the finance models")
    p.add_argument("--method", default="euler", help="any sdeint method (euler, milstein, srk, sri2, ...)")
    p.add_argument("--seed", type=int, default=0, help="seed of the Brownian paths (per-path seeds seed, seed+1, ...)")
    p.add_argument("--float64", action="store_true", help="simulate in float64 (default float32)")
    p.add_argument("--plot-paths", type=int, default=20, help="paths drawn in paths.png")
    p.add_argument("--format", choices=("npz", "pt"), default="npz", help="file format of the paths")
    p.add_argument("--out", default=None, help="output folder (default: a fresh ./sdeflow-simulate-N)")
    p.add_argument("--overwrite", action="store_true", help="allow replacing files in --out")
    add_json_option(p)
    p.set_defaults(func=lambda a: (run_simulate(a), 0)[1])

    p = subparsers.add_parser("price", help="Monte Carlo option price with standard error and confidence interval")
    p.add_argument("--option", choices=("european", "asian", "barrier", "bond"), default="european",
                   help="the contract (bond: a zero-coupon bond under --model cir)")
    p.add_argument("--kind", choices=("call", "put"), default="call", help="call or put payoff")
    p.add_argument("--strike", type=float, default=100.0, help="strike price")
    p.add_argument("--barrier", type=float, default=None, help="with --option barrier: the barrier level (default 120)")
    p.add_argument("--style", default=None,
                   help="with --option barrier: up-and-out (default), down-and-out, up-and-in, down-and-in")
    p.add_argument("--weights", default=None, help="basket weights for multigbm, e.g. 0.5,0.5")
    p.add_argument("--model", choices=MODELS, default="gbm", help="the model of the underlying")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", help="a model parameter, repeatable (e.g. --param sigma=0.3)")
    p.add_argument("--T", type=float, default=1.0, help="maturity in years")
    p.add_argument("--paths", type=int, default=100_000, help="Monte Carlo paths")
    p.add_argument("--steps", type=int, default=100,
                   help="time steps of a path (a European option on an exact model needs one: it is taken, whatever --steps says)")
    p.add_argument("--method", default=None, help="exact (default where available) or any sdeint method")
    p.add_argument("--seed", type=int, default=0, help="seed of the Brownian paths")
    p.add_argument("--chunk", type=int, default=100_000, help="paths per chunk (bounds the memory)")
    p.add_argument("--antithetic", action="store_true", help="antithetic paths (each Brownian path and its negative)")
    p.add_argument("--greeks", default=None, help="pathwise Greeks, e.g. delta,vega,rho (default: none)")
    p.add_argument("--confidence", type=float, default=0.95, help="level of the confidence interval")
    p.add_argument("--float64", action="store_true", help="simulate in float64 (sums are always float64)")
    add_json_option(p)
    p.set_defaults(func=lambda a: (run_price(a), 0)[1])
