"""Entries of the library's public API: sample, sdeint, odeint, processes, targets, metrics, likelihood,
finance, training. Each draws a small valid call and lists one-argument mutations (see entries.py)."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from hypothesis import strategies as st

import sdeflow
from sdeflow import finance, likelihood, metrics, processes, targets, training
from sdeflow.sdes import SDE

from .entries import DROP, OPEN, Entry, Mutation, fmt, number_mutations, seeded_randn, tensor_mutations

__all__ = ["ENTRIES"]

PROCESSES = ("vp", "subvp", "ve", "edm", "cosine", "linear")


@lru_cache(maxsize=None)
def _process(name: str):
    return processes.get(name)


@lru_cache(maxsize=None)
def _ring():
    return targets.ring2d()


@lru_cache(maxsize=None)
def _model(process: str, prediction: str):
    return _ring().model(_process(process), prediction)


# ---------------------------------------------------------------------------------------------- sample
SAMPLE_SOLVERS = (None, "euler", "heun", "ipndm", "dpm_solver_pp", "ddim", "unipc", "euler_maruyama", "euler_ancestral")
STOCHASTIC = {"euler_maruyama", "euler_ancestral"}
LINEAR_EM = "valid: euler_maruyama on Linear with the default grid"


class _Fake:
    """A model as a plain callable that declares its prediction (as sdeflow's models do)."""

    prediction = "eps"

    def __init__(self, fn) -> None:
        self.fn = fn

    def __call__(self, x, t):
        return self.fn(x, t)


def _sample_build(draw) -> dict:
    process = draw(st.sampled_from(PROCESSES))
    # Where alpha(T) = 0 (linear) an eps or score model cannot start at T; the library refuses that
    # with a clear message (not drawn as valid input).
    prediction = draw(st.sampled_from(("eps", "x0", "v", "score") if process != "linear" else ("x0", "v")))
    batch = draw(st.integers(1, 6))
    dtype = draw(st.sampled_from((torch.float32, torch.float64)))
    solver = draw(st.sampled_from(SAMPLE_SOLVERS))
    kw = {
        "model": _model(process, prediction),
        "process": _process(process),
        "x": _process(process).prior_sample((batch, 2), seeds=draw(st.integers(0, 10**6)), dtype=dtype),
        "steps": draw(st.integers(1, 6)),
        "seed": draw(st.integers(0, 10**6)),
    }
    if solver is not None:
        kw["solver"] = solver
    if process == "linear" and solver == "euler_maruyama":
        kw["_label"] = LINEAR_EM  # was refused on its default grid (it started at T); now starts at T - t_min
    if draw(st.booleans()):
        # On linear, karras and logsnr start where sigma/alpha and the log-SNR are infinite, and every named
        # grid starts at T where the reverse SDE's coefficients are: refused with clear messages (the issue's
        # report lists these grid defaults), so not drawn as valid input.
        grids = ("karras", "uniform", "logsnr", "polynomial") if process != "linear" else ("uniform", "polynomial")
        if process != "linear" or solver not in STOCHASTIC:
            kw["grid"] = draw(st.sampled_from(grids))
    return kw


def _sample_call(kw: dict):
    kw = dict(kw)
    return sdeflow.sample(kw.pop("model"), kw.pop("process"), kw.pop("x"), **kw)


def _raw_model(kw):
    """The target's model as a plain function (so that ``prediction`` must be given)."""
    m = kw["model"]
    return lambda x, t: m(x, t)


SAMPLE_MUTATIONS = (
    *tensor_mutations("x"),
    Mutation("x", "x has the wrong event shape", lambda kw: torch.zeros(kw["x"].shape[0], 3, dtype=kw["x"].dtype), ("x", "model")),
    Mutation("x", "x is 1-d", lambda kw: kw["x"][:, 0], ("x",)),
    Mutation("x", "x is a list", lambda kw: kw["x"].tolist(), ("x",)),
    *number_mutations("steps", integer=True),
    Mutation("steps", "steps is 10**12", lambda kw: 10**12, ("steps",)),
    Mutation("nfe", "nfe is zero (with steps)", lambda kw: 0, ("nfe", "steps")),
    Mutation("solver", "solver name unknown", lambda kw: "no_such_solver", ("solver",)),
    Mutation("solver", "solver is a number", lambda kw: 3, ("solver",)),
    Mutation("bogus_option", "unknown solver option", lambda kw: 1.0, ("bogus_option",)),
    Mutation("grid", "grid name unknown", lambda kw: "no_such_grid", ("grid",)),
    Mutation("grid", "grid increasing", lambda kw: [0.0, 0.5, 1.0], ("grid",)),
    Mutation("grid", "grid holds NaN", lambda kw: [1.0, float("nan"), 0.0], ("grid",)),
    Mutation("grid", "grid of one time", lambda kw: [1.0], ("grid",)),
    Mutation("grid", "grid is 2-d", lambda kw: torch.tensor([[1.0, 0.5], [0.5, 0.0]]), ("grid",)),
    Mutation("grid", "grid beyond T", lambda kw: [1e9, 0.5, 0.0], ("grid",)),
    Mutation("seed", "seed is a string", lambda kw: "a", ("seed",)),
    Mutation("seed", "seed is a float", lambda kw: 2.5, ("seed",)),
    Mutation("seed", "seed list of the wrong length", lambda kw: list(range(kw["x"].shape[0] + 1)), ("seed",)),
    Mutation("generator", "generator is a number", lambda kw: 3, ("generator",)),
    Mutation("process", "process is a string", lambda kw: 3.0, ("process",)),
    Mutation("model", "model is not callable", lambda kw: 3, ("model",)),
    Mutation("model", "model returns the wrong shape", lambda kw: _Fake(lambda x, t: x[:, :1]), ("model",)),
    Mutation("model", "model returns NaN", lambda kw: _Fake(lambda x, t: x * float("nan")), ("model",)),
    Mutation("prediction", "prediction unknown", lambda kw: "no_such_prediction", ("prediction",)),
    Mutation("callback", "callback is not callable", lambda kw: 3, ("callback",)),
)


# ------------------------------------------------------------------------------------------ sdeint/odeint
class _OU(SDE):
    """dx = -theta x dt + s dW, diagonal noise (a small SDE with an exact mean)."""

    noise_type = "diagonal"

    def drift(self, t, x):
        return -0.7 * x

    def diffusion(self, t, x):
        return 0.3 * torch.ones_like(x)


class _Scalar(SDE):
    noise_type = "scalar"

    def drift(self, t, x):
        return -x

    def diffusion(self, t, x):
        return 0.2 * torch.ones_like(x[..., :1]).expand_as(x)


def _times(draw, lo: float = 0.0, hi: float = 1.0) -> list[float]:
    n = draw(st.integers(2, 4))
    pts = sorted(set(round(lo + (hi - lo) * v, 3) for v in draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n))))
    if len(pts) < 2:
        pts = [lo, hi]
    return pts


def _sdeint_build(draw) -> dict:
    which = draw(st.sampled_from(("ou", "scalar", "vp", "gbm")))
    batch, dim = draw(st.integers(1, 5)), draw(st.integers(1, 3))
    dtype = draw(st.sampled_from((torch.float32, torch.float64)))
    seed = draw(st.integers(0, 10**6))
    if which == "gbm":
        sde, y0 = finance.GBM(), torch.full((batch, 1), 100.0, dtype=dtype)
    elif which == "vp":
        sde, y0 = _process("vp").forward_sde(), seeded_randn(seed, batch, dim, dtype=dtype)
    else:
        sde, y0 = (_OU() if which == "ou" else _Scalar()), seeded_randn(seed, batch, dim, dtype=dtype)
    methods = (None, "euler", "milstein", "srk", "euler_maruyama") if which != "scalar" else (None, "euler", "srk")
    kw = {"sde": sde, "y0": y0, "ts": _times(draw), "dt": draw(st.sampled_from((0.05, 0.1, 0.25))), "seed": seed}
    method = draw(st.sampled_from(methods))
    if method is not None:
        kw["method"] = method
    return kw


def _sdeint_call(kw: dict):
    kw = dict(kw)
    return sdeflow.sdeint(kw.pop("sde"), kw.pop("y0"), kw.pop("ts"), **kw)


def _grid_mutations(arg: str) -> list[Mutation]:
    return [
        Mutation(arg, f"{arg} decreasing", lambda kw: list(reversed(kw[arg])), (arg,)),
        Mutation(arg, f"{arg} repeats a time", lambda kw: [kw[arg][0], kw[arg][0], kw[arg][-1]], (arg,)),
        Mutation(arg, f"{arg} holds NaN", lambda kw: [kw[arg][0], float("nan")], (arg,)),
        Mutation(arg, f"{arg} holds inf", lambda kw: [kw[arg][0], float("inf")], (arg,)),
        Mutation(arg, f"{arg} is 2-d", lambda kw: torch.tensor([kw[arg][:2], kw[arg][:2]]), (arg,)),
        Mutation(arg, f"{arg} of one time", lambda kw: [kw[arg][0]], (arg,)),
        Mutation(arg, f"{arg} empty", lambda kw: [], (arg,)),
        Mutation(arg, f"{arg} is a string", lambda kw: "0,1", (arg,)),
    ]


SDEINT_MUTATIONS = (
    *tensor_mutations("y0"),
    *_grid_mutations("ts"),
    *number_mutations("dt"),
    Mutation("dt", "dt is 1e-12 (too many steps)", lambda kw: 1e-12, ("dt", "max_steps")),
    Mutation("method", "method unknown", lambda kw: "no_such_method", ("method",)),
    Mutation("method", "method is a number", lambda kw: 3, ("method",)),
    Mutation("seed", "seed is a string", lambda kw: "a", ("seed",)),
    Mutation("seed", "seed is a float", lambda kw: 2.5, ("seed",)),
    # (no seed, generator or bm is valid input: the seed comes from torch's global generator, as in torchsde)
    Mutation("generator", "generator is a number", lambda kw: 3, ("generator",)),
    Mutation("bm", "bm is a number", lambda kw: 3, ("bm",)),
    Mutation("sde", "sde is a number", lambda kw: 3, ("sde",)),
    Mutation("error_norm", "error_norm unknown", lambda kw: "nope", ("error_norm",)),
    Mutation("max_steps", "max_steps is zero", lambda kw: 0, ("max_steps",)),
    Mutation("max_steps", "max_steps negative", lambda kw: -1, ("max_steps",)),
    Mutation("chunk_size", "chunk_size is zero", lambda kw: 0, ("chunk_size",)),
    Mutation("chunk_size", "chunk_size is a float", lambda kw: 2.5, ("chunk_size",)),
    Mutation("names", "names has an unknown key", lambda kw: {"bogus": "f"}, ("names",)),
    Mutation("rtol", "adaptive with negative rtol", lambda kw: -1.0, ("rtol",)),
    Mutation("atol", "atol is NaN", lambda kw: float("nan"), ("atol",)),
    Mutation("dt_min", "dt_min negative", lambda kw: -1.0, ("dt_min",)),
)


def _sdeint_call_any(kw: dict):
    kw = dict(kw)
    if any(k in kw for k in ("rtol", "atol", "dt_min")):
        kw["adaptive"] = True
        kw["method"] = "milstein"
    return _sdeint_call(kw)


def _odeint_build(draw) -> dict:
    batch, dim = draw(st.integers(1, 5)), draw(st.integers(1, 3))
    dtype = draw(st.sampled_from((torch.float32, torch.float64)))
    rate = draw(st.floats(0.1, 3.0))
    kw = {"func": (lambda t, y, rate=rate: -rate * y), "y0": seeded_randn(draw(st.integers(0, 10**6)), batch, dim, dtype=dtype),
          "t": _times(draw), "rtol": 1e-5, "atol": 1e-7}
    method = draw(st.sampled_from((None, "dopri5", "euler", "rk4", "midpoint")))
    if method is not None:
        kw["method"] = method
        if method != "dopri5":
            kw["options"] = {"step_size": 0.05}
    return kw


def _odeint_call(kw: dict):
    kw = dict(kw)
    return sdeflow.odeint(kw.pop("func"), kw.pop("y0"), kw.pop("t"), **kw)


ODEINT_MUTATIONS = (
    # odeint takes a state of any shape (torchdiffeq's convention), so a 0-d y0 is valid: not a mutation.
    *[m for m in tensor_mutations("y0") if m.label != "y0 is 0-d"],
    *_grid_mutations("t"),
    *number_mutations("rtol", zero_ok=True),  # rtol = 0: a pure absolute tolerance
    Mutation("atol", "atol negative", lambda kw: -1.0, ("atol",)),
    Mutation("atol", "atol is NaN", lambda kw: float("nan"), ("atol",)),
    Mutation("method", "method unknown", lambda kw: "no_such_method", ("method",)),
    Mutation("options", "options has an unknown key", lambda kw: {"bogus": 1}, ("options", "bogus")),
    Mutation("options", "options is a string", lambda kw: "step_size=0.1", ("options",)),
    Mutation("options", "step_size is zero", lambda kw: {"step_size": 0.0}, ("step_size", "options")),
    Mutation("options", "step_size is 1e-12", lambda kw: {"step_size": 1e-12}, ("step_size", "options", "max_steps")),
    Mutation("func", "func is not callable", lambda kw: 3, ("func",)),
    Mutation("func", "func returns the wrong shape", lambda kw: (lambda t, y: torch.cat([y, y], dim=-1)), ("func",)),
    Mutation("func", "func returns NaN", lambda kw: (lambda t, y: y * float("nan")), ("func",)),
)


# ------------------------------------------------------------------------------------------ processes
PROCESS_CTORS = {
    "vp": (processes.VP, {"beta_min": 0.1, "beta_max": 20.0, "T": 1.0, "t_min": 1e-3}),
    "subvp": (processes.SubVP, {"beta_min": 0.1, "beta_max": 20.0}),
    "ve": (processes.VE, {"sigma_min": 0.01, "sigma_max": 50.0, "T": 1.0}),
    "edm": (processes.EDM, {"sigma_min": 0.002, "sigma_max": 80.0}),
    "cosine": (processes.Cosine, {"s": 0.008, "T": 0.9946, "t_min": 1e-3}),
    "linear": (processes.Linear, {"T": 1.0, "t_min": 1e-3}),
}
PROCESS_METHODS = ("alpha", "sigma", "log_snr", "noise_level", "f", "g2", "d_alpha", "d_sigma", "prior_sample", "marginal", "t_from_log_snr")


def _process_build(draw) -> dict:
    name = draw(st.sampled_from(sorted(PROCESS_CTORS)))
    cls, params = PROCESS_CTORS[name]
    p = cls(**params)
    method = draw(st.sampled_from(PROCESS_METHODS))
    # Valid times lie in [t_min, T] (log_snr and noise_level are +-inf at t = 0 by definition).
    u = draw(st.floats(0.0, 1.0))
    t = p.t_min + u * (p.T - p.t_min)
    batch = draw(st.integers(1, 4))
    return {"cls": name, "params": dict(params), "method": method, "t": t, "batch": batch, "seed": draw(st.integers(0, 1000))}


def _process_call(kw: dict):
    cls, _ = PROCESS_CTORS[kw["cls"]]
    p = cls(**kw["params"])
    t, method = kw["t"], kw["method"]
    if method == "prior_sample":
        return p.prior_sample((kw["batch"], 2), seeds=kw["seed"])
    if method == "marginal":
        return p.sample_marginal(seeded_randn(kw["seed"], kw["batch"], 2), t, seeds=kw["seed"])
    if method == "t_from_log_snr":
        return p.t_from_log_snr(t if not isinstance(t, float) else p.log_snr(t))
    return getattr(p, method)(t)


def _process_param_mutations() -> list[Mutation]:
    out = []
    for arg in ("beta_min", "beta_max", "sigma_min", "sigma_max", "T", "t_min", "s"):
        for label, value in (("NaN", float("nan")), ("negative", -1.0), ("inf", float("inf")), ("a string", "1")):
            out.append(Mutation(f"params.{arg}", f"process {arg} is {label}", lambda kw, v=value: v, (arg,)))
    out.append(Mutation("params.beta_max", "process beta_max below beta_min", lambda kw: 0.01, ("beta_max", "beta_min")))
    out.append(Mutation("params.sigma_max", "process sigma_max below sigma_min", lambda kw: 1e-4, ("sigma_max", "sigma_min")))
    out.append(Mutation("params.t_min", "process t_min above T", lambda kw: 5.0, ("t_min", "T")))
    out.append(Mutation("params.bogus", "process unknown keyword", lambda kw: 1.0, ("bogus",)))
    return out


def _process_applies(m: Mutation, kw: dict) -> bool:
    if m.arg.startswith("params."):
        key = m.arg.split(".", 1)[1]
        return key == "bogus" or key in kw["params"]
    if m.arg in ("batch", "seed"):
        return kw["method"] == "prior_sample"
    # Coefficient methods (alpha, sigma, log_snr, ...) are elementwise math on the solvers' hot path,
    # like torch.exp: NaN in, NaN out, and any real t is in their domain. Times are checked where a
    # user hands them in: the drivers (sample, sdeint) and marginal sampling, drawn here.
    return kw["method"] == "marginal"


PROCESS_MUTATIONS = (
    *_process_param_mutations(),
    Mutation("t", "t is NaN", lambda kw: float("nan"), ("t",)),
    Mutation("t", "t beyond T", lambda kw: 1e6, ("t",)),
    Mutation("t", "t negative", lambda kw: -0.5, ("t",)),
    Mutation("t", "t is a string", lambda kw: "0.5", ("t",)),
    Mutation("t", "t is 2-d", lambda kw: torch.full((2, 2), 0.5), ("t",)),
    Mutation("batch", "prior_sample batch negative", lambda kw: -2, ("shape", "batch")),
    Mutation("seed", "prior_sample seeds a float", lambda kw: 2.5, ("seeds", "seed")),
)


# ------------------------------------------------------------------------------------------ targets
def _targets_build(draw) -> dict:
    which = draw(st.sampled_from(("ring2d", "gaussian", "mixture", "get")))
    n = draw(st.integers(1, 16))
    seed = draw(st.integers(0, 1000))
    if which == "ring2d":
        args = {"n_modes": draw(st.integers(1, 10)), "radius": draw(st.floats(0.1, 5.0)), "std": draw(st.floats(0.01, 1.0))}
    elif which == "gaussian":
        d = draw(st.integers(1, 4))
        args = {"mean": [0.5] * d, "std": draw(st.floats(0.01, 3.0))}
    elif which == "mixture":
        k, d = draw(st.integers(1, 4)), draw(st.integers(1, 3))
        args = {"weights": [1.0] * k, "means": seeded_randn(seed, k, d).tolist(), "stds": [0.3] * k}
    else:
        args = {"name": draw(st.sampled_from(("ring2d", "mixture64d")))}
    method = draw(st.sampled_from(("sample", "log_prob", "score", "model")))
    return {"which": which, "args": args, "method": method, "n": n, "seed": seed, "t": draw(st.floats(0.01, 0.99))}


def _targets_call(kw: dict):
    which, args = kw["which"], dict(kw["args"])
    if which == "ring2d":
        tg = targets.ring2d(**args)
    elif which == "gaussian":
        tg = targets.gaussian(**args)
    elif which == "mixture":
        tg = targets.GaussianMixture(args.pop("weights"), args.pop("means"), **args)
    else:
        tg = targets.get(args.pop("name"), **args)
    method, n = kw["method"], kw["n"]
    x = kw.get("x")
    if x is None:
        x = tg.sample(n, seeds=kw["seed"]) if n > 0 else torch.zeros(0, *tg.event_shape)
    if method == "sample":
        return tg.sample(n, seeds=kw["seed"])
    if method == "log_prob":
        return tg.log_prob(x)
    if method == "score":
        return tg.score(x, kw["t"], _process("vp"))
    model = tg.model(_process("vp"), kw.get("prediction", "eps"))
    return model(x, kw["t"])


TARGETS_MUTATIONS = (
    Mutation("args.std", "target std negative", lambda kw: -1.0, ("std", "stds")),
    Mutation("args.std", "target std NaN", lambda kw: float("nan"), ("std", "stds")),
    Mutation("args.std", "target std missing", lambda kw: DROP, ("std",)),
    Mutation("args.radius", "ring radius inf", lambda kw: float("inf"), ("radius",)),
    Mutation("args.n_modes", "ring n_modes zero", lambda kw: 0, ("n_modes",)),
    Mutation("args.n_modes", "ring n_modes float", lambda kw: 2.5, ("n_modes",)),
    Mutation("args.mean", "gaussian mean holds NaN", lambda kw: [float("nan")], ("mean",)),
    Mutation("args.mean", "gaussian mean empty", lambda kw: [], ("mean",)),
    Mutation("args.mean", "gaussian mean missing", lambda kw: DROP, ("mean",)),
    Mutation("args.weights", "mixture weights negative", lambda kw: [-1.0] * len(kw["args"].get("weights", [1])), ("weights",)),
    Mutation("args.weights", "mixture weights of the wrong length", lambda kw: [1.0] * (len(kw["args"].get("weights", [1])) + 1), ("weights", "means")),
    Mutation("args.weights", "mixture weights all zero", lambda kw: [0.0] * len(kw["args"].get("weights", [1])), ("weights",)),
    Mutation("args.means", "mixture means hold inf", lambda kw: [[float("inf")] * 2] * len(kw["args"].get("weights", [1])), ("means",)),
    Mutation("args.stds", "mixture stds zero", lambda kw: [0.0] * len(kw["args"].get("weights", [1])), ("stds",)),
    Mutation("args.name", "target name unknown", lambda kw: "no_such_target", ("name", "target")),
    Mutation("args.bogus", "target unknown keyword", lambda kw: 1.0, ("bogus",)),
    Mutation("n", "sample n negative", lambda kw: -3, ("n",)),
    Mutation("n", "sample n is a float", lambda kw: 2.5, ("n",)),
    Mutation("seed", "sample seeds of the wrong length", lambda kw: [0, 1] * (kw["n"] + 1), ("seeds",)),
    Mutation("seed", "sample seeds a float", lambda kw: 0.5, ("seeds",)),
    Mutation("x", "x holds NaN", lambda kw: torch.full((3, 2), float("nan")), ("x",)),
    Mutation("x", "x of the wrong dimension", lambda kw: torch.zeros(3, 7), ("x",)),
    Mutation("x", "x is a string", lambda kw: "x", ("x",)),
    Mutation("t", "t is NaN", lambda kw: float("nan"), ("t",)),
    Mutation("prediction", "model prediction unknown", lambda kw: "nope", ("prediction",)),
)


def _targets_applicable(kw: dict, m: Mutation) -> bool:
    if m.arg.startswith("args."):
        key = m.arg.split(".", 1)[1]
        if m.label.endswith("missing"):  # only gaussian's mean and std have no default
            return kw["which"] == "gaussian" and key in kw["args"]
        return key == "bogus" or key in kw["args"]
    if m.arg == "x":
        return kw["method"] in ("log_prob", "score", "model")
    if m.arg in ("n", "seed"):
        return kw["method"] == "sample"
    if m.arg == "t":
        return kw["method"] in ("score", "model")
    if m.arg == "prediction":
        return kw["method"] == "model"
    return True


# ------------------------------------------------------------------------------------------ metrics
METRIC_FUNCS = ("sliced_wasserstein2", "wasserstein2", "mmd", "energy_distance", "frechet_distance", "jensen_shannon",
                "kl_divergence", "compare")


def _metrics_build(draw) -> dict:
    fn = draw(st.sampled_from(METRIC_FUNCS))
    d = draw(st.integers(1, 3)) if fn not in ("jensen_shannon", "kl_divergence") else draw(st.integers(1, 2))
    n, m = draw(st.integers(4, 40)), draw(st.integers(4, 40))
    seed = draw(st.integers(0, 10**6))
    rng = np.random.default_rng(seed)
    dtype = draw(st.sampled_from(("float32", "float64", "tensor")))
    x, y = rng.normal(size=(n, d)), rng.normal(size=(m, d)) + 0.3
    if dtype == "tensor":
        x, y = torch.from_numpy(x), torch.from_numpy(y)
    else:
        x, y = x.astype(dtype), y.astype(dtype)
    kw = {"fn": fn, "x": x, "y": y, "dim": d}
    if fn == "compare":
        kw.update(metrics=["sliced_wasserstein2", "mmd"], n_boot=2, reference=draw(st.sampled_from((None, "y"))))
    return kw


def _metrics_call(kw: dict):
    kw = dict(kw)
    fn = getattr(metrics, kw.pop("fn"))
    dim = kw.pop("dim")
    if isinstance(kw.get("reference"), str) and kw["reference"] == "y":
        # A reference sample large enough for the floor's two disjoint draws.
        kw["reference"] = np.random.default_rng(7).normal(size=(200, dim))
    return fn(kw.pop("x"), kw.pop("y"), **kw)


def _array_mutations(arg: str) -> list[Mutation]:
    def nan(kw):
        a = np.array(kw[arg], dtype=float, copy=True)
        a.flat[0] = np.nan
        return a

    def inf(kw):
        a = np.array(kw[arg], dtype=float, copy=True)
        a.flat[-1] = -np.inf
        return a

    return [
        Mutation(arg, f"{arg} holds NaN", nan, (arg,)),
        Mutation(arg, f"{arg} holds inf", inf, (arg,)),
        Mutation(arg, f"{arg} is empty", lambda kw: np.asarray(kw[arg])[:0], (arg,)),
        Mutation(arg, f"{arg} of one point (frechet)", lambda kw: np.asarray(kw[arg])[:1], (arg,)),
        Mutation(arg, f"{arg} of another dimension", lambda kw: np.zeros((5, np.asarray(kw[arg]).shape[1] + 1)), (arg, "x", "y")),
        Mutation(arg, f"{arg} is 3-d", lambda kw: np.zeros((5, 2, 2)), (arg,)),
        Mutation(arg, f"{arg} is complex", lambda kw: np.asarray(kw[arg]).astype(complex), (arg,)),
        Mutation(arg, f"{arg} is boolean", lambda kw: np.asarray(kw[arg]) > 0, (arg,)),
        Mutation(arg, f"{arg} is a string", lambda kw: "abc", (arg,)),
        Mutation(arg, f"{arg} is None", lambda kw: None, (arg,)),
        Mutation(arg, f"{arg} is ragged", lambda kw: [[1.0, 2.0], [3.0]], (arg,)),
    ]


METRICS_MUTATIONS = (
    *_array_mutations("x"),
    *_array_mutations("y"),
    Mutation("n_projections", "sliced n_projections zero", lambda kw: 0, ("n_projections",)),
    Mutation("seed", "seed negative", lambda kw: -1, ("seed",)),
    Mutation("bandwidths", "mmd bandwidth negative", lambda kw: -1.0, ("bandwidths",)),
    Mutation("bandwidths", "mmd bandwidth NaN", lambda kw: [float("nan")], ("bandwidths",)),
    Mutation("max_points", "max_points zero", lambda kw: 0, ("max_points",)),
    Mutation("bins", "histogram bins zero", lambda kw: 0, ("bins",)),
    Mutation("bins", "histogram bins negative", lambda kw: -4, ("bins",)),
    Mutation("range", "histogram range reversed", lambda kw: [(1.0, -1.0)] * np.asarray(kw["x"]).shape[1], ("range",)),
    Mutation("metrics", "compare metric unknown", lambda kw: ["no_such_metric"], ("metrics",)),
    Mutation("n_boot", "compare n_boot zero", lambda kw: 0, ("n_boot",)),
    Mutation("level", "compare level above 1", lambda kw: 1.5, ("level",)),
    Mutation("reference", "compare reference holds NaN", lambda kw: np.full((5, np.asarray(kw["x"]).shape[1]), np.nan), ("reference",)),
)

_METRIC_ARGS = {
    "sliced_wasserstein2": {"n_projections", "seed"},
    "wasserstein2": {"max_points"},
    "mmd": {"bandwidths"},
    "jensen_shannon": {"bins", "range"},
    "kl_divergence": {"bins", "range"},
    "compare": {"metrics", "n_boot", "level", "reference", "seed", "max_points"},
}


def _metrics_warmup() -> None:
    """Import the optional libraries behind the metrics (POT, scipy) before the timed calls."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 2)), rng.normal(size=(6, 2))
    for name in METRIC_FUNCS[:-1]:
        getattr(metrics, name)(x, y)


def _metrics_applicable(kw: dict, m: Mutation) -> bool:
    if m.label.endswith("(frechet)"):  # a covariance needs two points; the sample distances do not
        return kw["fn"] == "frechet_distance"
    return m.arg in ("x", "y") or m.arg in _METRIC_ARGS.get(kw["fn"], set())


# ------------------------------------------------------------------------------------------ likelihood
def _likelihood_build(draw) -> dict:
    fn = draw(st.sampled_from(("log_likelihood", "elbo", "bits_per_dim", "dequantize")))
    process = draw(st.sampled_from(("vp", "edm", "linear")))
    # An eps model cannot give the velocity where alpha(T) = 0 (Linear); the library says so.
    prediction = draw(st.sampled_from(("eps", "x0"))) if process != "linear" else "x0"
    seed = draw(st.integers(0, 1000))
    x = _ring().sample(draw(st.integers(1, 4)), seeds=seed)
    kw: dict = {"fn": fn}
    if fn == "log_likelihood":
        kw.update(model=_model(process, prediction), process=_process(process), x=x, prediction=prediction,
                  method=draw(st.sampled_from(("exact", "hutchinson"))), rtol=1e-3, atol=1e-3, seed=seed)
    elif fn == "elbo":
        # n_samples: antithetic pairs, at least two of them (one chain has no spread: its stderr is NaN).
        kw.update(model=_model(process, prediction), process=_process(process), x=x, prediction=prediction,
                  steps=draw(st.integers(2, 16)), n_samples=draw(st.sampled_from((4, 6, 8))), seed=seed)
    elif fn == "bits_per_dim":
        kw.update(log_prob=torch.tensor([-3.0, -1.0]), dim=draw(st.integers(1, 8)))
    else:
        kw.update(x=x, bin_width=draw(st.sampled_from((1 / 128, 1 / 256, 0.1))), seeds=seed)
    return kw


def _likelihood_call(kw: dict):
    kw = dict(kw)
    fn = getattr(likelihood, kw.pop("fn"))
    if fn is likelihood.bits_per_dim:
        return fn(kw.pop("log_prob"), **kw)
    if fn is likelihood.dequantize:
        return fn(kw.pop("x"), **kw)
    return fn(kw.pop("model"), kw.pop("process"), kw.pop("x"), **kw)


LIKELIHOOD_MUTATIONS = (
    *tensor_mutations("x"),
    Mutation("x", "x of the wrong event shape", lambda kw: torch.zeros(3, 5), ("x", "model")),
    Mutation("prediction", "prediction unknown", lambda kw: "nope", ("prediction",)),
    Mutation("method", "method unknown", lambda kw: "nope", ("method",)),
    Mutation("probe", "probe unknown", lambda kw: "nope", ("probe",)),
    Mutation("n_probes", "n_probes zero", lambda kw: 0, ("n_probes",)),
    Mutation("rtol", "rtol negative", lambda kw: -1.0, ("rtol",)),
    Mutation("atol", "atol NaN", lambda kw: float("nan"), ("atol",)),
    Mutation("t_start", "t_start negative", lambda kw: -0.1, ("t_start",)),
    Mutation("t_start", "t_start beyond T", lambda kw: 1e9, ("t_start",)),
    Mutation("bin_width", "bin_width zero", lambda kw: 0.0, ("bin_width",)),
    Mutation("bin_width", "bin_width negative", lambda kw: -0.1, ("bin_width",)),
    Mutation("seed", "seed negative", lambda kw: -1, ("seed",)),
    Mutation("seeds", "seeds a float", lambda kw: 0.5, ("seeds",)),
    Mutation("batch_size", "batch_size zero", lambda kw: 0, ("batch_size",)),
    Mutation("max_steps", "max_steps zero", lambda kw: 0, ("max_steps",)),
    Mutation("steps", "elbo steps zero", lambda kw: 0, ("steps",)),
    Mutation("n_samples", "elbo n_samples zero", lambda kw: 0, ("n_samples",)),
    Mutation("n_samples", "elbo n_samples odd", lambda kw: 3, ("n_samples",)),
    Mutation("time", "elbo time unknown", lambda kw: "nope", ("time",)),
    Mutation("model", "model not callable", lambda kw: 3, ("model",)),
    Mutation("model", "model returns NaN", lambda kw: (lambda x, t: x * float("nan")), ("model",)),
    Mutation("process", "process is a string", lambda kw: "vp", ("process",)),
    Mutation("dim", "bits_per_dim dim zero", lambda kw: 0, ("dim",)),
    # bits_per_dim is a unit conversion: log_prob = -inf is a valid value (bpd = +inf), NaN stays NaN.
)

_LIKELIHOOD_ARGS = {
    "log_likelihood": {"x", "prediction", "method", "probe", "n_probes", "rtol", "atol", "t_start", "bin_width", "seed",
                       "batch_size", "max_steps", "model", "process"},
    "elbo": {"x", "prediction", "steps", "n_samples", "time", "t_start", "bin_width", "seed", "batch_size", "model", "process"},
    "bits_per_dim": {"dim", "log_prob", "bin_width"},
    "dequantize": {"x", "bin_width", "seeds"},  # any event shape: no model to match
}


def _likelihood_applicable(kw: dict, m: Mutation) -> bool:
    if m.label == "x of the wrong event shape":
        return kw["fn"] in ("log_likelihood", "elbo")
    return m.arg in _LIKELIHOOD_ARGS[kw["fn"]]


# ------------------------------------------------------------------------------------------ finance
FIN_MODELS = {
    "gbm": (finance.GBM, {"s0": 100.0, "r": 0.05, "sigma": 0.2}),
    "heston": (finance.Heston, {}),
    "cir": (finance.CIR, {}),
    "ou": (finance.OrnsteinUhlenbeck, {}),
    "multigbm": (finance.MultiGBM, {}),
}


def _finance_build(draw) -> dict:
    fn = draw(st.sampled_from(("price", "price", "black_scholes", "heston_price", "cir_bond", "ou_moments")))
    kw: dict = {"fn": fn}
    if fn == "price":
        model = draw(st.sampled_from(sorted(FIN_MODELS)))
        payoff = "bond" if model == "cir" else draw(st.sampled_from(("european", "asian", "barrier")))
        kw.update(model=model, params=dict(FIN_MODELS[model][1]), payoff=payoff,
                  payoff_args={"strike": draw(st.floats(50.0, 150.0)), "kind": draw(st.sampled_from(("call", "put")))}
                  if payoff != "bond" else {},
                  maturity=draw(st.floats(0.1, 2.0)), paths=draw(st.integers(2, 300)), steps=draw(st.integers(1, 8)),
                  seed=draw(st.integers(0, 1000)), antithetic=draw(st.booleans()))
        if model == "multigbm" and payoff != "bond":
            kw["payoff_args"]["weights"] = (0.5, 0.5)
        if model in ("heston", "multigbm") or draw(st.booleans()):
            kw["method"] = "euler" if model in ("heston", "cir", "ou") and model != "ou" else draw(st.sampled_from(("exact", "euler")))
        if model == "cir":
            kw["method"] = "euler"
        if model == "gbm" and payoff == "european" and draw(st.booleans()):
            kw["greeks"] = ("delta", "vega")
    elif fn == "black_scholes":
        kw.update(s0=draw(st.floats(10.0, 200.0)), strike=draw(st.floats(10.0, 200.0)), maturity=draw(st.floats(0.01, 3.0)),
                  r=draw(st.floats(-0.02, 0.1)), sigma=draw(st.floats(0.05, 1.0)), kind=draw(st.sampled_from(("call", "put"))))
    elif fn == "heston_price":
        kw.update(s0=100.0, strike=draw(st.floats(60.0, 140.0)), maturity=draw(st.floats(0.1, 2.0)), r=0.01, kappa=1.5,
                  theta=0.04, xi=0.5, rho=-0.5, v0=0.04, panels=50)
    elif fn == "cir_bond":
        kw.update(r0=0.03, kappa=0.5, theta=0.04, sigma=0.1, maturity=draw(st.floats(0.1, 10.0)))
    else:
        kw.update(x0=1.0, theta=1.0, mu=0.0, sigma=0.3, t=draw(st.floats(0.0, 5.0)))
    return kw


_PAYOFFS = {"european": finance.European, "asian": finance.Asian, "barrier": finance.Barrier, "bond": finance.ZeroCouponBond}


def _finance_call(kw: dict):
    kw = dict(kw)
    fn = kw.pop("fn")
    if fn != "price":
        return getattr(finance, fn)(**kw)
    cls, _ = FIN_MODELS[kw.pop("model")]
    model = cls(**kw.pop("params"))
    payoff = _PAYOFFS[kw.pop("payoff")](**kw.pop("payoff_args"))
    return finance.price(model, payoff, kw.pop("maturity"), **kw)


FINANCE_MUTATIONS = (
    *number_mutations("paths", integer=True),
    Mutation("paths", "paths is 10**13", lambda kw: 10**13, ("paths", "chunk")),
    *number_mutations("steps", integer=True),
    Mutation("steps", "steps is 10**12", lambda kw: 10**12, ("steps",)),
    # maturity = 0 is valid: the price is the discounted payoff at the start (no mutation).
    *[m for m in number_mutations("maturity", zero_ok=True) if m.label != "maturity is a list"],
    Mutation("maturity", "price maturity is a list", lambda kw: [1.0, 2.0], ("maturity",)),
    # Negative seeds are valid: seeds are counter-based keys (any int64), as everywhere in sdeflow.
    Mutation("seed", "seed a string", lambda kw: "a", ("seed",)),
    Mutation("seed", "seed a float", lambda kw: 2.5, ("seed",)),
    Mutation("chunk", "chunk zero", lambda kw: 0, ("chunk",)),
    Mutation("method", "method unknown", lambda kw: "nope", ("method",)),
    Mutation("greeks", "greek unknown", lambda kw: ("nope",), ("greeks",)),
    Mutation("greeks", "greeks a string", lambda kw: "delta,vega", ("greeks",)),
    Mutation("confidence", "confidence 1.5", lambda kw: 1.5, ("confidence",)),
    Mutation("confidence", "confidence NaN", lambda kw: float("nan"), ("confidence",)),
    Mutation("dtype", "dtype int", lambda kw: torch.int64, ("dtype",)),
    Mutation("monitoring", "monitoring zero", lambda kw: 0, ("monitoring",)),
    Mutation("payoff_args.strike", "strike negative", lambda kw: -5.0, ("strike",)),
    Mutation("payoff_args.strike", "strike NaN", lambda kw: float("nan"), ("strike",)),
    Mutation("payoff_args.kind", "kind unknown", lambda kw: "straddle", ("kind",)),
    Mutation("payoff_args.weights", "weights of the wrong length", lambda kw: (1.0, 1.0, 1.0), ("weights",)),
    Mutation("payoff_args.weights", "weights hold NaN", lambda kw: (float("nan"), 1.0), ("weights",)),
    Mutation("params.sigma", "model sigma negative", lambda kw: -0.2, ("sigma",)),
    Mutation("params.sigma", "model sigma NaN", lambda kw: float("nan"), ("sigma",)),
    Mutation("params.s0", "model s0 zero", lambda kw: 0.0, ("s0",)),
    Mutation("params.r", "model r inf", lambda kw: float("inf"), ("r",)),
    Mutation("params.rho", "heston rho above 1", lambda kw: 1.5, ("rho",)),
    Mutation("params.corr", "multigbm corr not a correlation", lambda kw: ((1.0, 2.0), (2.0, 1.0)), ("corr",)),
    Mutation("params.bogus", "model unknown keyword", lambda kw: 1.0, ("bogus",)),
    Mutation("s0", "black_scholes s0 negative", lambda kw: -1.0, ("s0",)),
    Mutation("sigma", "sigma NaN", lambda kw: float("nan"), ("sigma",)),
    Mutation("sigma", "sigma negative", lambda kw: -0.1, ("sigma",)),
    Mutation("strike", "strike zero", lambda kw: 0.0, ("strike",)),
    Mutation("kind", "kind unknown", lambda kw: "nope", ("kind",)),
    Mutation("panels", "heston panels zero", lambda kw: 0, ("panels",)),
    Mutation("rho", "heston rho -2", lambda kw: -2.0, ("rho",)),
    Mutation("t", "ou t negative", lambda kw: -1.0, ("t",)),
    Mutation("t", "ou t NaN", lambda kw: float("nan"), ("t",)),
    Mutation("r0", "cir r0 negative", lambda kw: -0.1, ("r0",)),
    Mutation("kappa", "kappa NaN", lambda kw: float("nan"), ("kappa",)),
)


def _finance_applicable(kw: dict, m: Mutation) -> bool:
    if m.label == "strike zero":  # Black-Scholes has a limit at strike 0 (the forward); Heston's formula refuses it
        return kw["fn"] == "heston_price"
    if m.label.startswith("price ") and kw["fn"] != "price":
        return False  # the analytic formulas broadcast over arrays of maturities
    group, _, key = m.arg.partition(".")
    if key:
        if group not in kw:
            return False
        if group == "params":
            cls = FIN_MODELS[kw["model"]][0]
            return key == "bogus" or key in cls.__dataclass_fields__
        if group == "payoff_args":
            return key in _PAYOFFS[kw["payoff"]].__dataclass_fields__ and (key != "weights" or kw["model"] == "multigbm")
    if kw["fn"] == "price":
        return m.arg in ("paths", "steps", "maturity", "seed", "chunk", "method", "greeks", "confidence", "dtype", "monitoring")
    return m.arg in kw or (m.arg == "kind" and kw["fn"] == "black_scholes")


# ------------------------------------------------------------------------------------------ training
def _trainer_build(draw) -> dict:
    process = draw(st.sampled_from(("linear", "vp", "edm")))
    objective = "fm" if process == "linear" else draw(st.sampled_from(("dsm",)))
    prediction = "velocity" if objective == "fm" else draw(st.sampled_from(("eps", "x0", "v")))
    n, d = draw(st.integers(8, 48)), draw(st.integers(1, 3))
    seed = draw(st.integers(0, 1000))
    conditional = draw(st.booleans())
    return {
        "num_classes": 3 if conditional else 0,
        "labels": torch.arange(n) % 3 if conditional else None,
        "process": process, "objective": {"name": objective, "prediction": prediction}, "prediction": prediction,
        "data": seeded_randn(seed, n, d),
        "config": {"steps": draw(st.integers(1, 3)), "batch_size": draw(st.integers(1, 16)), "lr": 1e-3, "warmup_steps": 1,
                   "progress": False, "seed": seed},
        "weighting": draw(st.sampled_from((None, "uniform", "snr", "min_snr"))) if objective == "dsm" else None,
        "time_sampler": draw(st.sampled_from((None, "uniform", "lognormal"))),
    }


def _trainer_call(kw: dict):
    from sdeflow.nn import MLP

    process = _process(kw["process"]) if isinstance(kw["process"], str) else kw["process"]
    spec = dict(kw["objective"])
    if kw.get("weighting") is not None:
        spec["weighting"] = kw["weighting"]
    if kw.get("time_sampler") is not None:
        spec["time_sampler"] = kw["time_sampler"]
    objective = training.build_objective(spec, process)
    data = kw["data"]
    shape = tuple(data.shape[1:]) if isinstance(data, torch.Tensor) and data.ndim >= 2 else (2,)
    model = training.DiffusionModel(MLP(shape, 8, 1, num_classes=kw["num_classes"]), process, kw["prediction"])
    config = training.TrainConfig(**kw["config"])
    result = training.Trainer(model, objective, data, labels=kw.get("labels"), config=config).fit()
    return result


TRAINER_MUTATIONS = (
    *tensor_mutations("data", extra=False),
    Mutation("data", "data is 1-d", lambda kw: kw["data"][:, 0], ("data",)),
    Mutation("labels", "labels of the wrong length", lambda kw: torch.zeros(kw["data"].shape[0] + 1, dtype=torch.int64), ("labels",)),
    Mutation("labels", "labels negative", lambda kw: -torch.ones(kw["data"].shape[0], dtype=torch.int64), ("labels",)),
    Mutation("labels", "labels beyond num_classes", lambda kw: torch.full((kw["data"].shape[0],), 7), ("labels",)),
    Mutation("labels", "labels are floats", lambda kw: torch.zeros(kw["data"].shape[0]), ("labels",)),
    Mutation("prediction", "prediction unknown", lambda kw: "nope", ("prediction",)),
    Mutation("objective.name", "objective unknown", lambda kw: "nope", ("objective",)),
    Mutation("objective.bogus", "objective option unknown", lambda kw: 1, ("bogus",)),
    Mutation("objective.prediction", "objective prediction missing", lambda kw: DROP, ("prediction",)),
    Mutation("objective.prediction", "objective prediction unknown", lambda kw: "nope", ("prediction",)),
    Mutation("weighting", "weighting unknown", lambda kw: "nope", ("weighting",)),
    Mutation("time_sampler", "time sampler unknown", lambda kw: "nope", ("time_sampler", "time sampler")),
    Mutation("config.steps", "steps zero", lambda kw: 0, ("steps",)),
    Mutation("config.steps", "steps a float", lambda kw: 2.5, ("steps",)),
    Mutation("config.batch_size", "batch_size negative", lambda kw: -4, ("batch_size",)),
    Mutation("config.lr", "lr NaN", lambda kw: float("nan"), ("lr",)),
    Mutation("config.lr", "lr negative", lambda kw: -1.0, ("lr",)),
    Mutation("config.lr", "lr inf", lambda kw: float("inf"), ("lr",)),
    Mutation("config.weight_decay", "weight_decay NaN", lambda kw: float("nan"), ("weight_decay",)),
    Mutation("config.betas", "betas above 1", lambda kw: (0.9, 1.5), ("betas",)),
    Mutation("config.betas", "betas of one number", lambda kw: (0.9,), ("betas",)),
    Mutation("config.grad_clip", "grad_clip NaN", lambda kw: float("nan"), ("grad_clip",)),
    Mutation("config.ema_decay", "ema_decay above 1", lambda kw: 1.5, ("ema_decay",)),
    Mutation("config.ema_decay", "ema_decay NaN", lambda kw: float("nan"), ("ema_decay",)),
    Mutation("config.min_lr_ratio", "min_lr_ratio NaN", lambda kw: float("nan"), ("min_lr_ratio",)),
    Mutation("config.label_dropout", "label_dropout NaN", lambda kw: float("nan"), ("label_dropout",)),
    Mutation("config.schedule", "schedule unknown", lambda kw: "nope", ("schedule",)),
    Mutation("config.seed", "seed negative", lambda kw: -1, ("seed",)),
    Mutation("config.device", "device unknown", lambda kw: "tpu9", ("device",)),
    Mutation("config.bogus", "config option unknown", lambda kw: 1, ("bogus",)),
    Mutation("process", "process is a string", lambda kw: 3.0, ("process",)),
)


def _trainer_applicable(kw: dict, m: Mutation) -> bool:
    if m.arg == "weighting":
        return kw["objective"]["name"] == "dsm"
    if m.arg == "labels" and m.label != "labels of the wrong length":
        return kw["num_classes"] > 0  # unconditional models ignore labels by design (labelled data trains both)
    return True


# ------------------------------------------------------------------------------------------ the table
# sample.py is another developer's (issue 10's report lists these with reproducers).
OPEN["sample"] = set()  # the findings of the first run (empty x, bad seed/generator/callback/model, 10**12 steps,
# Euler-Maruyama on Linear's default grid) are fixed in sample.py and now asserted

ENTRIES: dict[str, Entry] = {e.name: e for e in (
    Entry("sample", _sample_build, _sample_call, SAMPLE_MUTATIONS,
                     repro=lambda kw: f"sdeflow.sample({fmt(kw)})"),
    Entry("sdeint", _sdeint_build, _sdeint_call_any, SDEINT_MUTATIONS,
                     repro=lambda kw: f"sdeflow.sdeint({fmt(kw)})"),
    Entry("odeint", _odeint_build, _odeint_call, ODEINT_MUTATIONS,
                     repro=lambda kw: f"sdeflow.odeint({fmt(kw)})"),
    Entry("processes", _process_build, _process_call, PROCESS_MUTATIONS,
                        repro=lambda kw: f"processes ({fmt(kw)})", applicable=lambda kw, m: _process_applies(m, kw)),
    Entry("targets", _targets_build, _targets_call, TARGETS_MUTATIONS,
                      repro=lambda kw: f"targets ({fmt(kw)})", applicable=_targets_applicable),
    Entry("metrics", _metrics_build, _metrics_call, METRICS_MUTATIONS,
                      repro=lambda kw: f"metrics.{kw['fn']}({fmt({k: v for k, v in kw.items() if k != 'fn'})})", applicable=_metrics_applicable,
          warmup=_metrics_warmup),
    Entry("likelihood", _likelihood_build, _likelihood_call, LIKELIHOOD_MUTATIONS,
                         repro=lambda kw: f"likelihood.{kw['fn']}({fmt({k: v for k, v in kw.items() if k != 'fn'})})", applicable=_likelihood_applicable),
    Entry("finance", _finance_build, _finance_call, FINANCE_MUTATIONS,
                      repro=lambda kw: f"finance.{kw['fn']}({fmt({k: v for k, v in kw.items() if k != 'fn'})})", applicable=_finance_applicable),
    Entry("trainer", _trainer_build, _trainer_call, TRAINER_MUTATIONS,
                      repro=lambda kw: f"Trainer ({fmt(kw)})", applicable=_trainer_applicable),
)}
