"""``sdeflow tune-grid``: tune a solver's time grid for a trained checkpoint (or an exact-score target)."""

from __future__ import annotations

import argparse
import dataclasses

import torch

from ._common import add_json_option, check_output_file, emit, parse_options

__all__ = ["register", "run_tune_grid", "load_model"]


def load_model(args: argparse.Namespace):
    """``(model, process, prediction, event_shape, dtype, source)`` from ``--ckpt`` or ``--target``."""
    if args.ckpt is not None:
        from ..training import load_checkpoint_model

        model, process, prediction, config = load_checkpoint_model(args.ckpt)
        return model, process, prediction, tuple(config["data"]["event_shape"]), torch.float32, f"checkpoint {args.ckpt}"
    from .. import processes, targets
    from ..models import check_prediction

    options = parse_options(args.target_option, "--target-option", "std=0.1")
    if args.target.lower() in targets.available():
        target = targets.get(args.target, **options)
    else:
        if options:
            raise ValueError(f"--target-option applies to the presets {targets.available()}, not to the family problem {args.target!r}")
        try:
            target = targets.family_problem(args.target).target
        except ValueError as err:
            raise ValueError(
                f"--target {args.target!r} is neither a preset {targets.available()} nor a family problem "
                f"(tuning: {targets.family_names('tuning')}; validation: {targets.family_names('validation')})"
            ) from err
    process = processes.get(args.process)
    prediction = check_prediction(args.prediction, "--prediction")
    # An exact-score model is float64 throughout; float64 states keep its reference far below the sampler's error.
    return target.model(process, prediction), process, prediction, tuple(target.event_shape), torch.float64, f"target {args.target}"


def _figure_lines(tuned) -> list[str]:
    def row(name: str, before, after) -> str:
        return (f"{name:<11} objective {before.objective:8.4f} -> {after.objective:8.4f}   "
                f"RMS {before.rms:.4g} -> {after.rms:.4g}   median {before.median:.4g} -> {after.median:.4g}")

    s = tuned.settings
    return [
        f"{'':<11} (default grid -> tuned grid; distances to the probability-flow ODE solution from the same noise)",
        row("tuning", tuned.tuning_before, tuned.tuning_after) + f"   [{s['n_pilot']} pilot draws]",
        row("validation", tuned.validation_before, tuned.validation_after) + f"   [{s['n_validation']} held-out draws]",
    ]


def run_tune_grid(args: argparse.Namespace) -> int:
    from ..grids import tune_grid
    from ..grids.tuning import DEFAULT_MAX_ITER

    if (args.ckpt is None) == (args.target is None):
        raise ValueError("give exactly one of --ckpt CKPT (a trained model) and --target NAME (an exact-score target)")
    if args.ckpt is not None and args.process_given:
        raise ValueError("--process applies to --target; a checkpoint brings its own process")
    out = check_output_file(args.out, "--out", overwrite=args.overwrite, inputs=[args.ckpt])
    if out.suffix != ".json":
        raise ValueError(f"--out {args.out}: a tuned grid is a JSON file; name it e.g. {out.with_suffix('.json')}")
    options = parse_options(args.option)
    for flag, value, minimum in (("--nfe", args.nfe, 1), ("--pilot", args.pilot, 2), ("--validation", args.validation, 2),
                                 ("--max-iter", args.max_iter, 1), ("--seed", args.seed, 0)):
        if value is not None and value < minimum:
            raise ValueError(f"{flag} must be >= {minimum}; got {value}")
    model, process, prediction, event_shape, dtype, source = load_model(args)
    tuned = tune_grid(
        model, process, prediction, args.solver, args.nfe, event_shape=event_shape, n_pilot=args.pilot,
        n_validation=args.validation, seed=args.seed, max_iter=args.max_iter or DEFAULT_MAX_ITER,
        progress=not args.quiet, dtype=dtype, **options,
    )
    tuned = dataclasses.replace(tuned, settings={**tuned.settings, "source": source})
    tuned.save(out, overwrite=True)  # --out was checked (and --overwrite honoured) before any work
    if args.json is not None:  # the grid file's content (solver, times, pilot and validation figures) and where it is
        import json

        emit(args, {**json.loads(out.read_text()), "out": str(out)})
    print(f"tuned grid for {tuned.solver} {tuned.solver_options} at nfe {tuned.nfe} ({tuned.steps} steps) on {source}")
    for line in _figure_lines(tuned):
        print(line)
    if tuned.validation_after.objective > tuned.validation_before.objective:
        print("note: the tuned grid is worse than the default on the held-out draws; it overfits the pilot draws: "
              "raise --pilot, or keep the default grid")
    print(f"times: {', '.join(f'{t:.6g}' for t in tuned.ts)}")
    print(f"wrote {out}; sample with it: sdeflow sample {'--ckpt ' + str(args.ckpt) if args.ckpt else '--target ' + args.target} --grid {out}")
    return 0


class _Given(argparse.Action):
    """Store the value and remember that the flag was given (``--process`` only applies to ``--target``)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        namespace.process_given = True


def register(sub) -> None:
    from ..grids.tuning import DEFAULT_MAX_ITER

    p = sub.add_parser(
        "tune-grid",
        help="tune a solver's time grid for a checkpoint (or an exact-score target) and store it for sample --grid",
        description="Tune the interior noise levels of a deterministic solver's grid at a budget of model calls for "
                    "one model: Nelder-Mead on log RMS + 0.3 log median of the distances to the model's own "
                    "probability-flow ODE solution from the same pilot noise, reported on held-out validation noise. "
                    "Use the result with `sdeflow sample --grid FILE`.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--ckpt", default=None, help="a checkpoint (or run) folder written by `sdeflow train`")
    src.add_argument("--target", default=None,
                     help="an exact-score target instead: a preset (ring2d, mixture64d, gaussian) or a family problem name "
                          "(sdeflow.targets.family_names)")
    p.add_argument("--target-option", action="append", metavar="NAME=VALUE", help="with a preset --target: its options")
    p.add_argument("--process", default="edm", action=_Given, help="with --target: the process (default edm)")
    p.add_argument("--prediction", default="eps", help="with --target: the prediction kind of its exact model (default eps)")
    p.add_argument("--solver", required=True, help="a deterministic solver from `sdeflow solvers` (e.g. ipndm, dpm_solver_pp_2m)")
    p.add_argument("-o", "--option", action="append", metavar="NAME=VALUE", help="a solver option, repeatable (e.g. -o order=3)")
    p.add_argument("--nfe", type=int, required=True, help="budget of model calls the grid is tuned for")
    p.add_argument("--pilot", type=int, default=64, help="pilot noise draws the objective is minimized on (default 64)")
    p.add_argument("--validation", type=int, default=64, help="held-out noise draws for the validation figures (default 64)")
    p.add_argument("--seed", type=int, default=0, help="first pilot seed; validation seeds start at seed + 10**6 (default 0)")
    p.add_argument("--max-iter", type=int, default=None, help=f"Nelder-Mead iterations (default {DEFAULT_MAX_ITER})")
    p.add_argument("--out", required=True, help="the grid's JSON file")
    p.add_argument("--overwrite", action="store_true", help="allow replacing --out")
    add_json_option(p)
    p.set_defaults(func=run_tune_grid, process_given=False)
