"""``sdeflow likelihood``, ``sdeflow fokker-planck``, ``sdeflow compare``: measure and see a diffusion.

Thin: each command parses, validates, calls :mod:`sdeflow.likelihood`, :mod:`sdeflow.fokker_planck`
or :mod:`sdeflow.metrics`, prints a summary and writes its files.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

from ._common import (add_json_option, check_output_file, deprecated_alias, emit, json_file, parse_options, prepare_out_dir,
                      reading, write_json)

__all__ = ["register", "run_compare", "run_fokker_planck", "run_likelihood"]


# ---------------------------------------------------------------------------------------- helpers
def _target(name: str, options: list[str] | None):
    from .. import targets

    return targets.get(name, **parse_options(options, "--target-option", "std=0.1"))


def _load_samples(path: str, key: str | None, what: str) -> torch.Tensor:
    from ..data.files import load_file_data

    if not Path(path).exists():
        raise FileNotFoundError(f"{what} {path} does not exist")
    with reading(path, what):
        return load_file_data(path, key=key).x


def _check_positive_int(value: int, flag: str) -> int:
    if value < 1:
        raise ValueError(f"{flag} must be >= 1; got {value}")
    return value


# ---------------------------------------------------------------------------------------- likelihood
def run_likelihood(args: argparse.Namespace) -> dict:
    """Log-likelihood (and optionally the ELBO) of data under a checkpoint or an exact-score target."""
    from .. import processes
    from ..likelihood import elbo, log_likelihood
    from ..models import check_prediction

    if (args.ckpt is None) == (args.target is None):
        raise ValueError("give exactly one model: --ckpt PATH or --target NAME (an exact-score target)")
    n = _check_positive_int(args.n, "--n")
    _check_positive_int(args.probes, "--probes")
    if not 0.0 < args.level < 1.0:  # checked before the ODE solves, not after them
        raise ValueError(f"--level must lie in (0, 1) (the interval's coverage, e.g. 0.95); got {args.level}")
    check_output_file(json_file(args), "--json", overwrite=args.overwrite, inputs=[args.data])
    dtype = torch.float64 if args.float64 else torch.float32
    target = None
    log_scale = 0.0  # log |d data / d model| summed over dimensions (checkpoint normalization)
    if args.ckpt is not None:
        from ..training.checkpoint import load_checkpoint_model

        model, process, prediction, config = load_checkpoint_model(args.ckpt)
        if args.data is None:
            raise ValueError("--data FILE is required with --ckpt (the points whose likelihood is measured)")
        x = _load_samples(args.data, args.data_key, "--data")[:n]
        event_shape = tuple(config["data"]["event_shape"])
        if tuple(x.shape[1:]) != event_shape:
            raise ValueError(
                f"--data {args.data} holds items of shape {tuple(x.shape[1:])}; the checkpoint's model takes {event_shape}: "
                "pass data of the kind it was trained on"
            )
        transform = config.get("data", {}).get("transform")
        if transform:
            shift = torch.as_tensor(transform["shift"], dtype=x.dtype)
            scale = torch.as_tensor(transform["scale"], dtype=x.dtype)
            x = (x - shift) / scale
            log_scale = float(torch.log(scale.abs()).expand(x.shape[1:]).sum()) if scale.ndim else x[0].numel() * math.log(abs(float(scale)))
        label = f"checkpoint {args.ckpt}"
    else:
        target = _target(args.target, args.target_option)
        process = processes.get(args.process)
        prediction = check_prediction(args.prediction, "--prediction")
        model = target.model(process, prediction)
        if args.data is not None:
            x = _load_samples(args.data, args.data_key, "--data")[:n]
        else:
            x = target.sample(n, seeds=args.seed, dtype=dtype)
        label = f"target {args.target} ({process!r}, {prediction} model)"
    x = x.to(dtype)
    res = log_likelihood(
        model, process, x, prediction=prediction, method=args.method, n_probes=args.probes, probe=args.probe,
        rtol=args.rtol, atol=args.atol, t_start=args.t_start, bin_width=args.bin_width, seed=args.seed,
        batch_size=args.batch_size, progress=not args.quiet,
    )
    # Back to data units: log p_data = log p_model - log|scale| (the normalization's Jacobian).
    logp = res.log_prob - log_scale
    summary = res.summary(args.level)
    summary["nats"] -= log_scale
    summary["nats_low"] -= log_scale
    summary["nats_high"] -= log_scale
    summary["nats_per_dim"] = summary["nats"] / res.dim
    shift_bpd = log_scale / (res.dim * math.log(2.0))
    for k in ("bits_per_dim", "bpd_low", "bpd_high"):
        summary[k] += shift_bpd
    report = {"model": label, "method": args.method, "n": int(x.shape[0]), "dim": res.dim, "likelihood": summary,
              # One probe has no spread: its standard error is undefined (null), not NaN.
              "mean_probe_stderr": (float(res.stderr.mean()) if res.n_probes > 1 else None) if args.method == "hutchinson" else 0.0}
    if target is not None and args.data is None:
        exact = target.log_prob(x).to(torch.float64)
        report["exact_log_prob"] = float(exact.mean())
        report["mean_abs_error"] = float((logp - exact).abs().mean())
    if args.elbo_steps:
        eb = elbo(model, process, x, prediction=prediction, steps=args.elbo_steps, n_samples=args.elbo_samples,
                  t_start=args.t_start, bin_width=args.bin_width, seed=args.seed, progress=not args.quiet)
        es = eb.summary(args.level)
        for k in ("elbo", "elbo_low", "elbo_high"):
            es[k] -= log_scale
        for k in ("bits_per_dim", "bpd_low", "bpd_high"):
            es[k] += shift_bpd
        report["elbo"] = es
    if not args.quiet:
        s = summary
        print(f"{label}: {report['n']} points, D = {res.dim}, {args.method} divergence, {res.nfe} model calls")
        print(f"log-likelihood  {s['nats']:.4f} nats/point  [{s['nats_low']:.4f}, {s['nats_high']:.4f}] "
              f"({100 * args.level:.0f}%), {s['nats_per_dim']:.4f} nats/dim, "
              f"{s['bits_per_dim']:.4f} bits/dim [{s['bpd_low']:.4f}, {s['bpd_high']:.4f}]")
        if args.method == "hutchinson":
            se = report["mean_probe_stderr"]
            shown = f"{se:.4f} nats" if se is not None else "undefined (one probe has no spread; use --probes 2 or more)"
            print(f"Hutchinson ({res.n_probes} {args.probe} probes): mean standard error per point {shown}")
        if "elbo" in report:
            e = report["elbo"]
            print(f"ELBO ({args.elbo_steps} steps) {e['elbo']:.4f} nats/point  [{e['elbo_low']:.4f}, {e['elbo_high']:.4f}], "
                  f"{e['bits_per_dim']:.4f} bits/dim")
        if "exact_log_prob" in report:
            print(f"exact           {report['exact_log_prob']:.4f} nats/point (mean |error| {report['mean_abs_error']:.2e})")
    emit(args, _finite_or_none(report))
    return report


def _finite_or_none(obj):
    """The report with undefined figures (NaN/inf, e.g. the standard error of one point from one probe) as null."""
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# ---------------------------------------------------------------------------------------- fokker-planck
def run_fokker_planck(args: argparse.Namespace) -> dict:
    """Evolve a 2-D target forward and backward; write animations, density panels and JSD over time."""
    from .. import plots, processes
    from ..fokker_planck import Grid, study_target

    target = _target(args.target, args.target_option)
    if target.dim != 2:
        raise ValueError(f"--target must be 2-dimensional for the Fokker-Planck pictures; {args.target} has dimension {target.dim}")
    process = processes.get(args.process, **parse_options(args.process_option, "--process-option", "beta_max=10"))
    frames = _check_positive_int(args.frames, "--frames")
    if args.samples < 2:
        raise ValueError(f"--samples must be >= 2 (simulated SDE samples); got {args.samples}")
    if args.box is not None and not 0 < args.box < math.inf:
        raise ValueError(f"--box must be a finite half-width > 0; got {args.box}")
    if args.t_end is not None and not 0 < args.t_end < float(process.T):
        raise ValueError(f"--t-end must lie in (0, T) = (0, {process.T}) (the last time of the backward run); got {args.t_end}")
    names = ["forward.gif", "backward.gif", "densities.png", "jsd.png", "fokker_planck.json"]
    out = prepare_out_dir(args.out, "sdeflow-fokker-planck", names, args.overwrite)
    box = args.box if args.box is not None else 4.0 * process.prior_std()
    grid = Grid(((-box, box), (-box, box)), args.cells)
    T = float(process.T)
    t_end = args.t_end if args.t_end is not None else 1e-3 * T
    # Frames uniform in log-SNR (from 5, where sigma/alpha = 0.08, down to log-SNR(T)), where the
    # density changes; uniform t would spend most frames on near-Gaussian densities.
    # A --t-end above that first frame's noise level moves the frames up: uniform in log-SNR from one
    # spacing above t_end, so the backward run still ends at t_end after the last frame.
    lam_end = float(process.log_snr(t_end))
    lam_lo = max(float(process.log_snr(T)), -20.0)
    if lam_end > 5.0:
        lam = torch.linspace(5.0, lam_lo, frames, dtype=torch.float64)
    else:
        lam = torch.linspace(lam_end, lam_lo, frames + 1, dtype=torch.float64)[1:]
    inner = process.t_from_log_snr(lam)
    inner[-1] = T
    fwd_times = torch.cat([torch.zeros(1, dtype=torch.float64), inner])
    bwd_times = torch.cat([inner.flip(0), torch.tensor([t_end], dtype=torch.float64)])
    if not bool((bwd_times.diff() < 0).all()):
        raise ValueError(f"--t-end {t_end} leaves no room for {frames} frame times between it and T; lower --t-end or --frames")
    studies = {}
    for direction, ts in (("forward", fwd_times), ("backward", bwd_times)):
        if not args.quiet:
            print(f"{direction}: {grid}, {frames} frames, {args.samples} simulated samples")
        studies[direction] = study_target(target, process, grid, ts, direction=direction, n_samples=args.samples,
                                          sde_steps=args.sde_steps, seed=args.seed, progress=not args.quiet)
    name = getattr(args, "target_label", None) or (args.target + "".join(f" {o}" for o in args.target_option or []))
    narrowest = float(torch.linalg.eigvalsh(target.covs).min().sqrt())  # the smallest standard deviation of a mode
    if 2 * box / args.cells > narrowest:
        print(f"sdeflow fokker-planck: warning: cells of width {2 * box / args.cells:.3g} are wider than the narrowest mode of "
              f"{name} (std {narrowest:.3g}): the densities are not resolved; raise --cells", file=sys.stderr)
    report: dict = {"target": name, "process": repr(process), "grid": repr(grid), "samples": args.samples}
    for direction, st in studies.items():
        plots.density_animation(out / f"{direction}.gif", grid, st.times.tolist(),
                                {"Fokker-Planck": st.fokker_planck, "exact p_t": st.exact},
                                samples=[s[:2000] for s in st.samples], title=f"{name}, {direction}:")
        report[direction] = {
            "times": st.times.tolist(),
            "jsd_fp_exact": st.jsd_fp_exact.tolist(),
            "jsd_fp_simulated": st.jsd_fp_simulated.tolist(),
            "jsd_floor": st.jsd_floor.tolist(),
            "mass_drift": float((st.solution.mass - st.solution.mass[0]).abs().max()),
            "steps": st.solution.n_steps,
        }
    f, b = studies["forward"], studies["backward"]
    pick = sorted({0, frames // 8, frames // 4, frames // 2, frames})
    plots.density_grid(out / "densities.png", grid, [float(f.times[i]) for i in pick],
                       {"FP forward": f.fokker_planck[pick], "exact": f.exact[pick]}, title=f"{name} under {process!r}")
    series = {
        "forward: FP vs simulated": f.jsd_fp_simulated.tolist(),
        "forward: FP vs exact": f.jsd_fp_exact.clamp_min(1e-12).tolist(),
        "backward: FP vs simulated": b.jsd_fp_simulated.flip(0).tolist(),
        "backward: FP vs exact": b.jsd_fp_exact.clamp_min(1e-12).flip(0).tolist(),
    }
    # One time axis (t) for both directions; the floor band spans the two directions' floors.
    lo = torch.minimum(f.jsd_floor, b.jsd_floor.flip(0)) * 0.8
    hi = torch.maximum(f.jsd_floor, b.jsd_floor.flip(0)) * 1.2
    plots.metric_over_time(out / "jsd.png", f.times.tolist(), series, floor=(lo.tolist(), hi.tolist()),
                           title=f"{name}: Jensen-Shannon divergence over time ({args.samples} samples)")
    write_json(out / "fokker_planck.json", report)
    if args.json is not None:
        emit(args, report)
    if not args.quiet:
        for direction in ("forward", "backward"):
            r = report[direction]
            print(f"{direction}: max JSD(FP, exact) = {max(r['jsd_fp_exact']):.2e}, max JSD(FP, simulated) = "
                  f"{max(r['jsd_fp_simulated']):.3e} (sampling floor up to {max(r['jsd_floor']):.3e}), "
                  f"mass drift {r['mass_drift']:.1e}, {r['steps']} steps")
        print(f"wrote {', '.join(str(out / n) for n in names)}")
    return report


# ---------------------------------------------------------------------------------------- compare
def run_compare(args: argparse.Namespace) -> dict:
    """Every distance between two sample files, each with its two-sample floor."""
    from .. import metrics

    check_output_file(json_file(args), "--json", overwrite=args.overwrite, inputs=[args.a, args.b, args.reference])
    x = _load_samples(args.a, args.key, "sample file A")
    y = _load_samples(args.b, args.key, "sample file B")
    shape_a, shape_b = tuple(x.shape), tuple(y.shape)  # as in the files, before any split
    if args.boot < 2:
        raise ValueError(f"--boot must be >= 2 (pairs for each floor); got {args.boot}")
    if tuple(x.shape[1:]) != tuple(y.shape[1:]):
        raise ValueError(
            f"sample file A {args.a} holds items of shape {tuple(x.shape[1:])} but sample file B {args.b} of shape "
            f"{tuple(y.shape[1:])}; compare samples of the same space"
        )
    if args.reference is not None and args.target is not None:
        raise ValueError("give at most one of --reference FILE and --target NAME")
    reference = None
    note = "no floor"
    if args.target is not None:
        reference = _target(args.target, args.target_option)
        note = f"floor from exact samples of {args.target}"
    elif args.reference is not None:
        reference = _load_samples(args.reference, args.key, "--reference")
        note = f"floor from {args.reference}"
    elif not args.no_floor:
        # Split B: A (truncated) is compared with B's first half; the floor pairs disjoint halves of B.
        k = min(x.shape[0], y.shape[0] // 2)
        if k < 2:
            raise ValueError(f"B holds {y.shape[0]} samples: too few to split for a floor; pass --reference or --target")
        x, reference, y = x[:k], y, y[:k]
        note = f"floor from disjoint halves of B ({k} points each; A truncated to {k})"
    res = metrics.compare(x, y, reference=reference, n_boot=args.boot, seed=args.seed, max_points=args.max_points,
                          progress=not args.quiet and reference is not None)
    report = {"a": args.a, "b": args.b, "shape_a": list(shape_a), "shape_b": list(shape_b),
              "compared": [int(x.shape[0]), int(y.shape[0])], "floor": note, "metrics": {}}
    for name, r in res.items():
        entry = {"value": r.value, "n": r.n, "m": r.m}
        if r.floor is not None:
            entry.update(floor=r.floor.value, floor_low=r.floor.low, floor_high=r.floor.high, within_floor=r.within_floor)
        report["metrics"][name] = entry
    if not args.quiet:
        print(f"A = {args.a} ({shape_a[0]} points of shape {shape_a[1:]}), B = {args.b} ({shape_b[0]} points); "
              f"compared on {x.shape[0]} and {y.shape[0]} points; {note}")
        print(f"{'distance':22s} {'value':>11s}   {'floor [95% interval]':>32s}")
        for name, r in res.items():
            fl = "" if r.floor is None else f"{r.floor.value:11.4g} [{r.floor.low:.4g}, {r.floor.high:.4g}]"
            mark = "" if r.floor is None else ("  ok" if r.within_floor else "  above floor")
            print(f"{name:22s} {r.value:11.4g}   {fl:>32s}{mark}")
    emit(args, report)
    return report


# ---------------------------------------------------------------------------------------- parsers
def register(sub) -> None:
    """Add the ``likelihood``, ``fokker-planck`` and ``compare`` commands."""
    p = sub.add_parser("likelihood", help="log-likelihood (nats, bits/dim) by the probability-flow ODE, and the ELBO")
    src = p.add_argument_group("model")
    src.add_argument("--ckpt", default=None, help="a checkpoint or run folder (from `sdeflow train`)")
    deprecated_alias(src, "--checkpoint", "--ckpt", "ckpt")
    src.add_argument("--target", default=None, help="or an exact-score target: ring2d, mixture64d, gaussian")
    src.add_argument("--target-option", action="append", metavar="NAME=VALUE", help="target option, repeatable (e.g. std=0.1)")
    src.add_argument("--process", default="vp", help="process of the target model: vp, subvp, ve, edm, cosine, linear (default vp)")
    src.add_argument("--prediction", default="eps", help="prediction kind of the target model (default eps)")
    p.add_argument("--data", default=None, help="data file (.npy/.npz/.pt); default with --target: --n exact samples")
    p.add_argument("--data-key", default=None, help="array name inside an .npz/.pt file")
    p.add_argument("--n", "--num-points", dest="n", type=int, default=256, help="number of points (default 256; --num-points under torchrun)")
    p.add_argument("--method", choices=["exact", "hutchinson"], default="exact", help="divergence (default exact)")
    p.add_argument("--probes", type=int, default=4, help="Hutchinson probes per point (default 4)")
    p.add_argument("--probe", choices=["rademacher", "gaussian"], default="rademacher", help="probe distribution")
    p.add_argument("--rtol", type=float, default=1e-5, help="ODE relative tolerance (default 1e-5)")
    p.add_argument("--atol", type=float, default=1e-5, help="ODE absolute tolerance (default 1e-5)")
    p.add_argument("--t-start", type=float, default=None, help="start time of the ODE (default 1e-5 T)")
    p.add_argument("--bin-width", type=float, default=None, help="lattice spacing of discrete data in model units (2/255 for 8-bit images in [-1, 1]): dequantize and report bits/dim of the cells")
    p.add_argument("--elbo-steps", type=int, default=0, help="also the ELBO with this many steps (0: skip)")
    p.add_argument("--elbo-samples", type=int, default=16, help="noise draws per point and step for the ELBO (even)")
    p.add_argument("--batch-size", type=int, default=None, help="points per ODE solve (default all)")
    p.add_argument("--level", type=float, default=0.95, help="interval level (default 0.95)")
    p.add_argument("--seed", type=int, default=0, help="seed of probes, dequantization and target samples")
    p.add_argument("--float64", action="store_true", help="compute in float64 (default float32)")
    add_json_option(p)
    p.add_argument("--overwrite", action="store_true", help="allow replacing an existing --json file")
    p.set_defaults(func=lambda a: (run_likelihood(a), 0)[1])

    q = sub.add_parser("fokker-planck", help="evolve a 2-D target by Fokker-Planck forward and backward; GIFs and JSD over time")
    q.add_argument("--target", default=None,
                   help=f"2-D exact-score target, e.g. ring2d (8 modes of std 0.05, as everywhere; give --cells 320 to resolve it) "
                        f"(default: {FP_DEFAULT_LABEL}, which the default 72-cell grid resolves)")
    q.add_argument("--target-option", action="append", metavar="NAME=VALUE", help="target option, repeatable (e.g. std=0.1)")
    q.add_argument("--process", default="vp", help="process (default vp)")
    q.add_argument("--process-option", action="append", metavar="NAME=VALUE", help="process option (e.g. beta_max=10)")
    q.add_argument("--cells", type=int, default=72, help="cells per axis (default 72)")
    q.add_argument("--box", type=float, default=None, help="half-width of the square domain (default 4 sigma(T))")
    q.add_argument("--frames", type=int, default=24, help="frames per direction (default 24)")
    q.add_argument("--t-end", type=float, default=None, help="last time of the backward run (default 1e-3 T)")
    q.add_argument("--samples", type=int, default=5000, help="simulated SDE samples (default 5000)")
    q.add_argument("--sde-steps", type=int, default=500, help="Euler-Maruyama steps of the simulation (default 500)")
    q.add_argument("--seed", type=int, default=0, help="seed of the simulated samples")
    q.add_argument("--out", default=None, help="output folder (default: a fresh ./sdeflow-fokker-planck-N)")
    q.add_argument("--overwrite", action="store_true", help="allow replacing files in --out")
    add_json_option(q)
    q.set_defaults(func=_fokker_planck_entry)

    c = sub.add_parser("compare", help="every distance between two sample files, each with its two-sample floor")
    c.add_argument("a", help="sample file A (.npy/.npz/.pt), e.g. model samples")
    c.add_argument("b", help="sample file B, e.g. data")
    c.add_argument("--key", default=None, help="array name inside .npz/.pt files")
    c.add_argument("--reference", default=None, help="reference samples for the floor (default: split B in halves)")
    c.add_argument("--target", default=None, help="or an exact target whose samples give the floor")
    c.add_argument("--target-option", action="append", metavar="NAME=VALUE", help="target option, repeatable")
    c.add_argument("--no-floor", action="store_true", help="skip the floor when no reference is given")
    c.add_argument("--boot", type=int, default=20, help="pairs for each floor (default 20)")
    c.add_argument("--max-points", type=int, default=2000, help="subset size of the quadratic-cost distances (default 2000)")
    c.add_argument("--seed", type=int, default=0, help="seed of projections, subsets and floors")
    add_json_option(c)
    c.add_argument("--overwrite", action="store_true", help="allow replacing an existing --json file")
    c.set_defaults(func=lambda a: (run_compare(a), 0)[1])


# The default target of fokker-planck: a ring wider than the ring2d preset (8 modes of std 0.05), whose
# modes a 72-cell grid over 4 sigma(T) (cells of 0.11) cannot resolve. It is named as what it is, so
# that `--target ring2d` means the preset here as in every other command.
FP_DEFAULT_TARGET = ("ring2d", ["n_modes=6", "radius=1.5", "std=0.2"])
FP_DEFAULT_LABEL = "ring of 6 Gaussians of std 0.2 on radius 1.5 (ring2d with n_modes=6, radius=1.5, std=0.2)"


def _fokker_planck_entry(args: argparse.Namespace) -> int:
    if args.target is None:
        if args.target_option:
            raise ValueError("--target-option needs --target NAME (the default target has its options fixed)")
        args.target, args.target_option = FP_DEFAULT_TARGET
        args.target_label = FP_DEFAULT_LABEL
    run_fokker_planck(args)
    return 0
