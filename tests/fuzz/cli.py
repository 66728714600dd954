"""Entries of the command line: every ``sdeflow`` command with small valid runs and one bad flag each.

A call is ``sdeflow.cli.main(argv)`` in this process (what the console script runs; argparse's own
errors end in ``SystemExit(2)``, which :func:`~tests.fuzz.harness.run_cli` turns into the exit code),
inside a fresh working folder so that default output folders land there. Invalid input must end with
exit code 2 and one line ``sdeflow COMMAND: error: ...`` naming the flag, before the work (the 2 s bound).
A valid run must exit 0 and write no NaN or inf (its .npz/.npy/.json outputs and its printed figures).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import pickle
import re
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import strategies as st

from .entries import DROP, OPEN, Entry, Mutation
from .harness import CliRun, run_cli

__all__ = ["CLI_ENTRIES", "workspace", "TINY_TRAIN"]

TINY_TRAIN = {"--width": "8", "--depth": "1", "--batch-size": "8", "--warmup": "1", "--quiet": True,
              "--ckpt-every": "2", "--eval-solver": "euler", "--eval-steps": "2"}
_counter = itertools.count()


@lru_cache(maxsize=None)
def workspace() -> Path:
    """A folder of inputs shared by the CLI cases: sample files, a pickle, a text file, a trained run."""
    root = Path(tempfile.mkdtemp(prefix="sdeflow-fuzz-"))
    rng = np.random.default_rng(0)
    np.save(root / "a.npy", rng.normal(size=(60, 2)).astype("float32"))
    np.save(root / "b.npy", rng.normal(size=(60, 2)).astype("float32"))
    bad = rng.normal(size=(60, 2)).astype("float32")
    bad[3, 1] = np.nan
    np.save(root / "nan.npy", bad)
    np.save(root / "three.npy", rng.normal(size=(60, 3)).astype("float32"))
    np.save(root / "empty.npy", np.zeros((0, 2), dtype="float32"))
    np.savez(root / "d.npz", x=rng.normal(size=(64, 2)).astype("float32"))
    (root / "text.txt").write_text("not an array\n")
    (root / "folder").mkdir()
    with open(root / "pickle.pt", "wb") as fh:  # a pickled class: refused by torch.load(weights_only=True)
        pickle.dump({"x": Path}, fh, protocol=2)
    with contextlib.chdir(root):
        argv = ["train", "--data", str(root / "d.npz"), "--steps", "2", "--out", str(root / "run")]
        for k, v in TINY_TRAIN.items():
            argv += [k] if v is True else [k, v]
        done = run_cli(argv)
    if done.code != 0:
        raise RuntimeError(f"the fuzz workspace's training run failed: {done.stderr}")
    return root


def _fresh(name: str) -> str:
    return str(workspace() / "out" / f"{name}-{next(_counter)}")


def _argv(kw: dict) -> list[str]:
    argv = [kw["_cmd"], *kw.get("_pos", [])]
    for flag, value in kw.items():
        if not flag.startswith("-") or value is DROP or value is False:
            continue
        if value is True:
            argv.append(flag)
        elif isinstance(value, list):
            for v in value:
                argv += [flag, str(v)]
        else:
            argv += [flag, str(value)]
    return argv


def _call(kw: dict) -> CliRun:
    work = Path(_fresh("cwd"))
    work.mkdir(parents=True)
    with contextlib.chdir(work):
        return run_cli(_argv(kw))


_WORD = re.compile(r"(?<![\w.])(nan|-?inf)(?![\w])", re.IGNORECASE)


def _finite_outputs(kw: dict, run: CliRun) -> str | None:
    """No NaN/inf in the printed figures nor in the arrays and JSON written under --out/--json."""
    if _WORD.search(run.stdout):
        return f"stdout shows NaN/inf: {_WORD.search(run.stdout).group(0)!r} in {run.stdout.strip()[-200:]!r}"
    paths: list[Path] = []
    for flag in ("--out", "--json"):
        if isinstance(kw.get(flag), str):
            p = Path(kw[flag])
            paths += sorted(p.rglob("*")) if p.is_dir() else [p]
    for p in paths:
        if p.suffix in (".npz", ".npy"):
            data = np.load(p)
            arrays = [data[k] for k in data.files] if hasattr(data, "files") else [data]
            for a in arrays:
                if a.dtype.kind in "fc" and not np.isfinite(a).all():
                    return f"{p.name} holds NaN/inf"
        elif p.suffix == ".json" and p.is_file():
            text = p.read_text()
            if re.search(r"\b(NaN|-?Infinity)\b", text):
                return f"{p.name} holds NaN/inf"
            json.loads(text)
    return None


def _named(m: Mutation) -> Mutation:
    """The words that identify a bad flag in an error line: the flag (``--floor-boot``), its bare name
    (``floor-boot``, ``floor_boot``: the library's argument where the CLI passes the value on), or the bad
    value itself when it is distinctive (a path or a name the user typed, not a bare number)."""
    names = list(m.expected)
    if m.arg.startswith("--"):
        bare = m.arg[2:]
        names += [bare, bare.replace("-", "_")]

    def distinctive(kw):
        value = m.value(kw)
        values = value if isinstance(value, list) else [value]
        return [str(v) for v in values if isinstance(v, str) and len(v) >= 4 and not re.fullmatch(r"[-+0-9.eE]+|nan|inf", v)]

    return Mutation(m.arg, m.label, m.value, tuple(names)), distinctive


def _entry(command: str, build, mutations, valid_share: float = 0.25) -> Entry:
    return Entry(f"cli {command}", build, _call, tuple(mutations), repro=lambda kw: "sdeflow " + " ".join(_argv(kw)[0:]),
                 check=_finite_outputs, valid_share=valid_share, expand=_expand)


def _expand(m: Mutation, kw: dict) -> tuple[str, ...]:
    """Names an error line may use for mutation ``m`` of the valid call ``kw`` (see :func:`_named`)."""
    named, distinctive = _named(m)
    return tuple(dict.fromkeys(named.expected + tuple(distinctive(kw))))


# ------------------------------------------------------------------------------------ bad flag values
def _ints(flag: str, *, zero_ok: bool = False, negative_ok: bool = False) -> list[Mutation]:
    out = [Mutation(flag, f"{flag} not a number", lambda kw: "abc"), Mutation(flag, f"{flag} a float", lambda kw: "1.5")]
    if not negative_ok:
        out.append(Mutation(flag, f"{flag} negative", lambda kw: "-3"))
    if not zero_ok and not negative_ok:
        out.append(Mutation(flag, f"{flag} zero", lambda kw: "0"))
    return out


def _floats(flag: str, *, zero_ok: bool = False, negative_ok: bool = False) -> list[Mutation]:
    out = [Mutation(flag, f"{flag} NaN", lambda kw: "nan"), Mutation(flag, f"{flag} inf", lambda kw: "inf"),
           Mutation(flag, f"{flag} not a number", lambda kw: "abc")]
    if not negative_ok:
        out.append(Mutation(flag, f"{flag} negative", lambda kw: "-0.5"))
    if not zero_ok and not negative_ok:
        out.append(Mutation(flag, f"{flag} zero", lambda kw: "0"))
    return out


def _name(flag: str, *names: str) -> Mutation:
    return Mutation(flag, f"{flag} unknown name", lambda kw: "no_such_name", names or (flag,))


def _option(flag: str, label: str, value: str, *names: str) -> Mutation:
    return Mutation(flag, label, lambda kw: [value], names or (flag,))


def _out_folder(flag: str = "--out") -> list[Mutation]:
    return [
        Mutation(flag, f"{flag} is a file", lambda kw: str(workspace() / "text.txt"), (flag,)),
        Mutation(flag, f"{flag} under a file", lambda kw: str(workspace() / "text.txt" / "sub"), (flag,)),
        Mutation(flag, f"{flag} in /proc", lambda kw: "/proc/sdeflow-fuzz", (flag,)),
    ]


def _input_file(flag: str, *, names: tuple[str, ...] = ()) -> list[Mutation]:
    names = names or (flag,)
    return [
        Mutation(flag, f"{flag} missing file", lambda kw: str(workspace() / "missing.npy"), names),
        Mutation(flag, f"{flag} is a folder", lambda kw: str(workspace() / "folder"), names),
        Mutation(flag, f"{flag} is a text file", lambda kw: str(workspace() / "text.txt"), names),
        Mutation(flag, f"{flag} is a pickle", lambda kw: str(workspace() / "pickle.pt"), names),
        Mutation(flag, f"{flag} holds NaN", lambda kw: str(workspace() / "nan.npy"), names),
        Mutation(flag, f"{flag} is empty", lambda kw: str(workspace() / "empty.npy"), names),
    ]


# ------------------------------------------------------------------------------------ commands
def _sample(draw) -> dict:
    kw = {"_cmd": "sample", "--n": str(draw(st.integers(2, 40))), "--steps": str(draw(st.integers(1, 4))), "--quiet": True,
          "--floor-boot": "2", "--process": draw(st.sampled_from(("vp", "edm", "ve", "cosine", "subvp"))),
          "--seed": str(draw(st.integers(0, 10**6))), "--out": _fresh("sample")}
    solver = draw(st.sampled_from((None, "euler", "heun", "dpm_solver_pp", "euler_maruyama")))
    if solver:
        kw["--solver"] = solver
    if draw(st.booleans()):
        kw["--format"] = "pt"
    return kw


SAMPLE = [
    *_ints("--n"), Mutation("--n", "--n one", lambda kw: "1"),
    *_ints("--steps"), Mutation("--steps", "--steps 10**12", lambda kw: "1000000000000"),
    Mutation("--nfe", "--nfe with --steps", lambda kw: "5", ("--nfe", "--steps")),
    Mutation("--seed", "--seed negative", lambda kw: "-1"), Mutation("--seed", "--seed not a number", lambda kw: "x"),
    _name("--solver"), _name("--process"), _name("--target"), _name("--prediction"), _name("--grid"),
    Mutation("--grid", "--grid missing json file", lambda kw: str(workspace() / "missing.json"), ("--grid",)),
    Mutation("--grid", "--grid is a text file", lambda kw: str(workspace() / "text.txt"), ("--grid",)),
    _option("--option", "-o without =", "eta"), _option("--option", "-o unknown option", "bogus=1", "bogus", "--option", "-o"),
    _option("--option", "-o eta NaN", "eta=nan", "eta"),
    _option("--target-option", "--target-option unknown", "bogus=1", "bogus", "--target-option"),
    Mutation("--target", "gaussian without options", lambda kw: "gaussian", ("mean", "std", "--target-option")),
    *_ints("--floor-boot"),
    Mutation("--label", "--label without --ckpt", lambda kw: "1", ("--label",)),
    Mutation("--guidance", "--guidance without --ckpt", lambda kw: "2.0", ("--guidance",)),
    Mutation("--ckpt", "--ckpt missing", lambda kw: str(workspace() / "missing-run"), ("--ckpt",)),
    Mutation("--ckpt", "--ckpt a text file", lambda kw: str(workspace() / "text.txt"), ("--ckpt",)),
    Mutation("--format", "--format unknown", lambda kw: "csv"),
    *_out_folder(),
]


def _simulate(draw) -> dict:
    model = draw(st.sampled_from(("gbm", "multigbm", "heston", "cir", "ou")))
    kw = {"_cmd": "simulate", "--model": model, "--paths": str(draw(st.integers(1, 20))), "--steps": str(draw(st.integers(1, 6))),
          "--T": str(draw(st.sampled_from((0.5, 1.0, 2.0)))), "--seed": str(draw(st.integers(0, 1000))),
          "--plot-paths": "2", "--out": _fresh("simulate")}
    if model in ("gbm", "ou") and draw(st.booleans()):
        kw["--method"] = draw(st.sampled_from(("euler", "milstein", "srk")))
    return kw


SIMULATE = [
    *_ints("--paths"), Mutation("--paths", "--paths 10**13", lambda kw: "10000000000000"),
    *_ints("--steps"), Mutation("--steps", "--steps 10**12", lambda kw: "1000000000000"),
    *_floats("--T"), Mutation("--model", "--model unknown", lambda kw: "nope"), _name("--method"),
    _option("--param", "--param unknown", "bogus=1", "bogus", "--param"), _option("--param", "--param without =", "sigma", "--param"),
    _option("--param", "--param sigma negative", "sigma=-1", "sigma"), _option("--param", "--param sigma NaN", "sigma=nan", "sigma"),
    Mutation("--seed", "--seed not a number", lambda kw: "x"), *_ints("--plot-paths", zero_ok=True),
    Mutation("--format", "--format unknown", lambda kw: "csv"), *_out_folder(),
]


def _price(draw) -> dict:
    model = draw(st.sampled_from(("gbm", "heston", "multigbm", "cir")))
    option = "bond" if model == "cir" else draw(st.sampled_from(("european", "asian", "barrier")))
    kw = {"_cmd": "price", "--model": model, "--option": option, "--paths": str(draw(st.integers(2, 400))),
          "--steps": str(draw(st.integers(1, 6))), "--T": str(draw(st.sampled_from((0.5, 1.0)))), "--quiet": True,
          "--seed": str(draw(st.integers(0, 1000)))}
    if option != "bond":
        kw["--strike"] = str(draw(st.sampled_from((80, 100, 120))))
        kw["--kind"] = draw(st.sampled_from(("call", "put")))
    if model == "multigbm" and option != "bond":
        kw["--weights"] = "0.5,0.5"
    if model in ("heston",):
        kw["--method"] = "euler"
    if model == "gbm" and option == "european" and draw(st.booleans()):
        kw["--greeks"] = "delta,vega"
    return kw


PRICE = [
    *_ints("--paths"), Mutation("--paths", "--paths 10**13", lambda kw: "10000000000000"),
    *_ints("--steps"), Mutation("--steps", "--steps 10**12", lambda kw: "1000000000000"),
    # --strike 0 is valid: a call then pays the asset itself (Black-Scholes has that limit).
    *_floats("--T"), *_floats("--strike", zero_ok=True), Mutation("--kind", "--kind unknown", lambda kw: "straddle"),
    Mutation("--option", "--option unknown", lambda kw: "lookback"), _name("--method"),
    Mutation("--greeks", "--greeks unknown", lambda kw: "delta,charm", ("--greeks", "greek")),
    Mutation("--weights", "--weights of the wrong length", lambda kw: "0.2,0.3,0.5"),
    Mutation("--weights", "--weights not numbers", lambda kw: "a,b"),
    *_floats("--confidence"), Mutation("--confidence", "--confidence above 1", lambda kw: "1.5"),
    *_ints("--chunk"), Mutation("--style", "--style unknown", lambda kw: "sideways-and-out"),
    *_floats("--barrier"),
    _option("--param", "--param unknown", "bogus=1", "bogus", "--param"), _option("--param", "--param sigma negative", "sigma=-1", "sigma"),
    Mutation("--seed", "--seed not a number", lambda kw: "x"),
]


def _solvers(draw) -> dict:
    kw: dict[str, Any] = {"_cmd": "solvers"}
    fmt = draw(st.sampled_from((None, "--json", "--markdown")))
    if fmt:
        kw[fmt] = True
    return kw


SOLVERS = [Mutation("--bogus", "unknown flag", lambda kw: True, ("--bogus",))]


def _compare(draw) -> dict:
    kw = {"_cmd": "compare", "_pos": [str(workspace() / "a.npy"), str(workspace() / "b.npy")], "--quiet": True,
          "--boot": str(draw(st.integers(2, 3))), "--seed": str(draw(st.integers(0, 100)))}
    if draw(st.booleans()):
        kw["--no-floor"] = True
    if draw(st.booleans()):
        kw["--json"] = _fresh("compare") + ".json"
    return kw


def _pos(index: int, value_fn, label: str) -> Mutation:
    def value(kw):
        pos = list(kw["_pos"])
        pos[index] = value_fn()
        return pos

    return Mutation("_pos", label, value, (("a", "A", "first") if index == 0 else ("b", "B", "second")) + ("file",))


COMPARE = [
    _pos(0, lambda: str(workspace() / "missing.npy"), "A missing"), _pos(1, lambda: str(workspace() / "folder"), "B a folder"),
    _pos(0, lambda: str(workspace() / "nan.npy"), "A holds NaN"), _pos(1, lambda: str(workspace() / "three.npy"), "B of another dimension"),
    _pos(0, lambda: str(workspace() / "pickle.pt"), "A a pickle"), _pos(1, lambda: str(workspace() / "text.txt"), "B a text file"),
    _pos(0, lambda: str(workspace() / "empty.npy"), "A empty"),
    *_ints("--boot"), *_ints("--max-points"), _name("--target"),
    Mutation("--seed", "--seed not a number", lambda kw: "x"), *_input_file("--reference"),
    Mutation("--json", "--json is a folder", lambda kw: str(workspace() / "folder"), ("--json",)),
    Mutation("--json", "--json is an input", lambda kw: str(workspace() / "a.npy"), ("--json",)),
    Mutation("--json", "--json in /proc", lambda kw: "/proc/sdeflow-fuzz.json", ("--json",)),
]


def _likelihood(draw) -> dict:
    kw = {"_cmd": "likelihood", "--target": "ring2d", "--n": str(draw(st.integers(1, 6))), "--quiet": True, "--rtol": "1e-3",
          "--atol": "1e-3", "--process": draw(st.sampled_from(("vp", "edm"))), "--seed": str(draw(st.integers(0, 100)))}
    if draw(st.booleans()):
        kw["--method"] = "hutchinson"
        kw["--probes"] = str(draw(st.integers(1, 3)))
    if draw(st.booleans()):
        kw["--json"] = _fresh("likelihood") + ".json"
    return kw


LIKELIHOOD = [
    *_ints("--n"), *_floats("--rtol"), *_floats("--atol"), *_floats("--t-start"), *_floats("--bin-width"),
    *_ints("--probes"), *_ints("--elbo-steps", zero_ok=True), *_ints("--batch-size"),
    Mutation("--elbo-samples", "--elbo-samples odd", lambda kw: "3"), *_floats("--level"),
    Mutation("--level", "--level above 1", lambda kw: "1.5"), _name("--target"), _name("--process"), _name("--prediction"),
    Mutation("--method", "--method unknown", lambda kw: "nope"), *_input_file("--data"),
    Mutation("--ckpt", "--ckpt missing", lambda kw: str(workspace() / "missing-run"), ("--ckpt",)),
    Mutation("--json", "--json is a folder", lambda kw: str(workspace() / "folder"), ("--json",)),
]


def _fokker_planck(draw) -> dict:
    return {"_cmd": "fokker-planck", "--frames": "2", "--cells": str(draw(st.integers(6, 10))), "--samples": "10", "--sde-steps": "2",
            "--quiet": True, "--out": _fresh("fp")}


FOKKER_PLANCK = [
    *_ints("--cells"), Mutation("--cells", "--cells 10**6", lambda kw: "1000000"), *_ints("--frames"), *_ints("--samples"),
    *_ints("--sde-steps"), *_floats("--box"), *_floats("--t-end"), _name("--target"), _name("--process"),
    _option("--process-option", "--process-option unknown", "bogus=1", "bogus", "--process-option"),
    Mutation("--target", "a target that is not 2-d", lambda kw: "mixture64d", ("--target",)), *_out_folder(),
]


def _train(draw) -> dict:
    kw = {"_cmd": "train", "--data": str(workspace() / "d.npz"), "--steps": str(draw(st.integers(1, 2))), "--out": _fresh("train"),
          **TINY_TRAIN}
    kw["--objective"] = draw(st.sampled_from(("fm", "dsm")))
    if kw["--objective"] == "dsm":
        kw["--process"] = draw(st.sampled_from(("vp", "edm")))
    return kw


TRAIN = [
    *_input_file("--data"), _name("--data"), *_ints("--steps"), *_ints("--batch-size"), *_floats("--lr"), *_ints("--width"),
    *_ints("--depth"), *_floats("--ema-decay", zero_ok=True), Mutation("--ema-decay", "--ema-decay above 1", lambda kw: "1.5"),
    *_floats("--grad-clip", zero_ok=True), *_floats("--weight-decay", zero_ok=True), *_ints("--warmup", zero_ok=True),
    Mutation("--objective", "--objective unknown", lambda kw: "nope"), Mutation("--process", "--process unknown", lambda kw: "nope"),
    Mutation("--device", "--device unknown", lambda kw: "tpu9"), Mutation("--seed", "--seed negative", lambda kw: "-1"),
    *_ints("--n-data"), Mutation("--channel-mults", "--channel-mults not numbers", lambda kw: "a,b"),
    Mutation("--resume", "--resume of a run that does not exist", lambda kw: True, ("--resume", "--out")),
    *_out_folder(),
]


def _evaluate(draw) -> dict:
    return {"_cmd": "evaluate", "--ckpt": str(workspace() / "run"), "--n": str(draw(st.integers(2, 30))),
            "--steps": str(draw(st.integers(1, 3))), "--seed": str(draw(st.integers(0, 100)))}


EVALUATE = [
    *_ints("--n"), Mutation("--n", "--n 10**11", lambda kw: "100000000000"), *_ints("--steps"), _name("--solver"),
    Mutation("--ckpt", "--ckpt missing", lambda kw: str(workspace() / "missing-run")),
    Mutation("--ckpt", "--ckpt a text file", lambda kw: str(workspace() / "text.txt")),
    Mutation("--ckpt", "--ckpt a folder without checkpoints", lambda kw: str(workspace() / "folder")),
    *_input_file("--data"), Mutation("--data", "--data of another dimension", lambda kw: str(workspace() / "three.npy")),
    Mutation("--seed", "--seed negative", lambda kw: "-1"),
    Mutation("--out", "--out is a folder", lambda kw: str(workspace() / "folder")),
    *_ints("--threads"),
]


def _tune_grid(draw) -> dict:
    return {"_cmd": "tune-grid", "--target": "ring2d", "--solver": draw(st.sampled_from(("euler", "heun", "dpm_solver_pp"))),
            # At least two steps for heun (two calls per step), so that there is an interior level to tune.
            "--nfe": str(draw(st.integers(4, 6))), "--pilot": "8", "--validation": "8", "--max-iter": "5", "--quiet": True,
            "--out": _fresh("grid") + ".json"}


TUNE_GRID = [
    *_ints("--nfe"), *_ints("--pilot"), *_ints("--validation"), *_ints("--max-iter"), _name("--solver"), _name("--target"),
    Mutation("--solver", "--solver stochastic", lambda kw: "euler_maruyama"), _name("--process"),
    Mutation("--seed", "--seed not a number", lambda kw: "x"),
    Mutation("--ckpt", "--ckpt missing", lambda kw: str(workspace() / "missing-run"), ("--ckpt",)),
    Mutation("--out", "--out is a folder", lambda kw: str(workspace() / "folder")),
]


def _demo(draw) -> dict:
    return {"_cmd": "demo", "--skip-training": True, "--n": str(draw(st.integers(5, 20))), "--quiet": True, "--out": _fresh("demo")}


DEMO = [*_ints("--n"), *_ints("--threads"), Mutation("--seed", "--seed not a number", lambda kw: "x"), *_out_folder()]


def _bench(draw) -> dict:
    return {"_cmd": "bench", "_pos": ["samplers"], "--quick": True, "--no-peers": True, "--out": _fresh("bench")}


BENCH = [
    Mutation("_pos", "unknown benchmark", lambda kw: ["no_such_bench"], ("COMMAND", "bench", "choose", "invalid choice")),
    *_out_folder(),
]

def _reflow(draw) -> dict:
    return {"_cmd": "reflow", "--data": "moons", "--n-data": "200", "--rounds": str(draw(st.integers(1, 2))), "--steps": "2",
            "--reflow-steps": "2", "--n-pairs": "50", "--width": "8", "--depth": "1", "--batch-size": "16",
            "--solver-steps": "2", "--quiet": True, "--out": _fresh("reflow")}


REFLOW = [
    *_ints("--steps"), *_ints("--rounds"), *_ints("--n-pairs"), *_floats("--lr"), _name("--solver"), _name("--data"),
    _name("--source"), *_input_file("--coupling"), Mutation("--seed", "--seed negative", lambda kw: "-1"),
    Mutation("--eval", "--eval negative", lambda kw: "-2"), *_out_folder(),
]


def _bridge(draw) -> dict:
    return {"_cmd": "bridge", "--method": draw(st.sampled_from(("sbcfm", "dsbm"))), "--source": "noise", "--target": "moons",
            "--n-data": "200", "--steps": "2", "--iterations": "1", "--n-pairs": "50", "--width": "8", "--depth": "1",
            "--batch-size": "16", "--eval": "50", "--sde-steps": "2", "--quiet": True, "--out": _fresh("bridge")}


BRIDGE = [
    Mutation("--method", "--method unknown", lambda kw: "nope"), *_floats("--sigma"), *_ints("--steps"), *_ints("--iterations"),
    *_ints("--eval"), *_floats("--lr"), _name("--target"), _name("--source"), Mutation("--seed", "--seed negative", lambda kw: "-1"),
    *_out_folder(),
]


def _distill(draw) -> dict:
    return {"_cmd": "distill", "--teacher": str(workspace() / "run"), "--method": draw(st.sampled_from(("cd", "pd"))),
            "--steps": "2", "--batch-size": "8", "--rounds": "1", "--start-steps": "4", "--eval-n": "16", "--quiet": True,
            "--out": _fresh("distill")}


DISTILL = [
    Mutation("--method", "--method unknown", lambda kw: "nope"), *_ints("--steps"), *_ints("--batch-size"), *_floats("--lr"),
    *_ints("--rounds"), Mutation("--teacher", "--teacher missing", lambda kw: str(workspace() / "missing-run")),
    Mutation("--teacher", "--teacher a text file", lambda kw: str(workspace() / "text.txt")), *_out_folder(),
]


def _train_autoencoder(draw) -> dict:
    return {"_cmd": "train-autoencoder", "--data": "digits", "--steps": "2", "--batch-size": "8", "--channels": "4",
            "--quiet": True, "--out": _fresh("autoencoder")}


TRAIN_AUTOENCODER = [
    *_ints("--steps"), *_ints("--batch-size"), *_floats("--lr"), *_ints("--channels"),
    Mutation("--kl-weight", "--kl-weight negative", lambda kw: "-0.5"), _name("--data"), *_out_folder(),
]


def _restore(draw) -> dict:
    # The workspace's run is a 2-D vector model: restore refuses it (it restores images); every case is a clear error.
    return {"_cmd": "restore", "--ckpt": str(workspace() / "run"), "--task": draw(st.sampled_from(("inpaint", "denoise"))),
            "--method": "ddrm", "--nfe": "4", "--n": "2", "--samples": "1", "--quiet": True, "--out": _fresh("restore")}


RESTORE = [
    Mutation("--method", "--method unknown", lambda kw: "nope"), *_ints("--nfe"), *_ints("--n"), *_ints("--samples"),
    *_floats("--noise-std", zero_ok=True), Mutation("--ckpt", "--ckpt missing", lambda kw: str(workspace() / "missing-run")),
    Mutation("--input", "--input a text file", lambda kw: str(workspace() / "text.txt")), *_out_folder(),
]



def _audio(draw) -> dict:
    # Valid runs: a 2-step training of an 8-channel U-Net on 8 synthesized notes.
    return {"_cmd": "audio", "_pos": ["train"], "--n-train": "8", "--steps": "2", "--batch-size": "4", "--channels": "8",
            "--quiet": True, "--out": _fresh("audio")}


AUDIO = [
    *_ints("--steps"), *_ints("--n-train"), *_ints("--batch-size"), *_floats("--lr"), _name("--data"),
    Mutation("--channels", "--channels below 8", lambda kw: "4", ("--channels",)),
    Mutation("--ckpt", "--ckpt given to train", lambda kw: str(workspace() / "run"), ("--ckpt",)),
    Mutation("_pos", "unknown action", lambda kw: ["fit"], ("action", "invalid choice")),
    Mutation("--seed", "--seed negative", lambda kw: "-1"), *_out_folder(),
]

def _finance(draw) -> dict:
    # Valid runs: a 2-step training on 64 simulated Heston paths of 8 returns.
    return {"_cmd": "finance", "_pos": ["train"], "--paths": "64", "--length": str(draw(st.integers(4, 8))),
            "--substeps": "1", "--steps": "2", "--width": "8", "--depth": "1", "--batch-size": "16", "--quiet": True,
            "--out": _fresh("finance")}


FINANCE = [
    *_ints("--steps"), *_ints("--paths"), *_ints("--length"), *_ints("--substeps"), *_floats("--lr"),
    *_input_file("--data"), Mutation("--heston", "--heston unknown parameter", lambda kw: ["zeta=1"], ("--heston",)),
    Mutation("--heston", "--heston rho above 1", lambda kw: ["rho=1.5"], ("--heston", "rho")),
    Mutation("--ckpt", "--ckpt given to train", lambda kw: str(workspace() / "run"), ("--ckpt",)),
    Mutation("_pos", "unknown action", lambda kw: ["fit"], ("action", "invalid choice")),
    Mutation("--seed", "--seed negative", lambda kw: "-1"), *_out_folder(),
]


def _molecules(draw) -> dict:
    # Valid runs: a 2-step training of either model on 8 butane or ethylene-glycol conformers (RDKit, cached in the workspace).
    return {"_cmd": "molecules", "_pos": ["train"], "--molecule": draw(st.sampled_from(("butane", "OCCO"))),
            "--model": draw(st.sampled_from(("torsional", "egnn"))),
            "--n-train": "8", "--steps": "2", "--width": "8", "--layers": "1", "--batch-size": "4",
            "--cache": str(workspace() / "molecule-cache"), "--quiet": True, "--out": _fresh("molecules")}


MOLECULES = [
    *_ints("--steps"), *_ints("--n-train"), *_ints("--width"), *_floats("--lr"), _name("--molecule"),
    Mutation("--molecule", "--molecule unparsable SMILES", lambda kw: "C1CC(", ("--molecule", "C1CC(")),
    Mutation("--model", "--model unknown", lambda kw: "schnet", ("--model", "invalid choice")),
    Mutation("--ckpt", "--ckpt given to train", lambda kw: str(workspace() / "run"), ("--ckpt",)),
    Mutation("--seed", "--seed negative", lambda kw: "-1"), *_out_folder(),
]


CLI_ENTRIES: dict[str, Entry] = {e.name: e for e in (
    _entry("sample", _sample, SAMPLE),
    _entry("simulate", _simulate, SIMULATE),
    _entry("price", _price, PRICE),
    _entry("solvers", _solvers, SOLVERS, valid_share=0.5),
    _entry("compare", _compare, COMPARE, valid_share=0.1),
    _entry("likelihood", _likelihood, LIKELIHOOD),
    # Bad input only: a valid Fokker-Planck run (GIFs, two studies) took over its 40 s hard stop in two of four
    # suite runs while the other worker ran subprocess-heavy tests (1.5 s alone); its valid runs are covered by
    # tests/cli/test_analysis.py and tests/cli/test_consistency.py.
    _entry("fokker-planck", _fokker_planck, FOKKER_PLANCK, valid_share=0.0),
    _entry("train", _train, TRAIN, valid_share=0.1),
    _entry("evaluate", _evaluate, EVALUATE),
    _entry("tune-grid", _tune_grid, TUNE_GRID),
    _entry("demo", _demo, DEMO, valid_share=0.0),
    _entry("bench", _bench, BENCH, valid_share=0.0),
    _entry("reflow", _reflow, REFLOW, valid_share=0.1),
    _entry("bridge", _bridge, BRIDGE, valid_share=0.1),
    _entry("distill", _distill, DISTILL, valid_share=0.1),
    _entry("train-autoencoder", _train_autoencoder, TRAIN_AUTOENCODER, valid_share=0.1),
    _entry("restore", _restore, RESTORE, valid_share=0.0),
    _entry("finance", _finance, FINANCE, valid_share=0.1),
    _entry("audio", _audio, AUDIO, valid_share=0.1),
    _entry("molecules", _molecules, MOLECULES, valid_share=0.1),
)}
"""The commands; ``demo`` and ``bench`` only with bad input (their valid runs take tens of seconds)."""
