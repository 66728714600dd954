"""Samplers on real networks: the digits U-Net and the moons flow that ``sdeflow demo`` trains.

Networks (:func:`load_networks`): trained once with the demo's full settings
(:data:`sdeflow.training.demo.DEMO_SETTINGS`, through the demo's own training functions, so the
same data, objective, network, seeds and trainer), their EMA weights cached as sdeflow checkpoint
folders under ``benchmarks/results/networks`` and loaded from there afterwards:

* ``digits``: denoising score matching on the VP process, eps-predicting U-Net (8x8 images);
* ``moons``: conditional flow matching on the Linear process (alpha = 1 - t, sigma = t), velocity MLP.

Both networks are cast to float64 for the benchmark, so that the errors measured are the
solvers' and not float32 round-off.

Problems (:func:`make_problems`): fixed standard-normal noise ``z`` (512 digits, 2000 moons points,
float64, per-sample seeds 0..n-1) and the reference: the probability-flow ODE solution from the same
noise with sdeflow's ``adaptive_ode`` (Dormand-Prince 5(4) in log noise level) at rtol = atol = 1e-7
down to the process's ``t_min``, then the exact final (denoising) step; checked once against
rtol = atol = 1e-8 (:func:`reference_check`). A sampler that starts elsewhere (a diffusers
schedule's first noise level, k-diffusion's cut of the flow at t = 0.999) is compared with the
reference from its own start, computed the same way.

Metrics (:func:`evaluate`): RMS and median over samples of the per-sample Euclidean distance to the
reference, and the distribution quality: the Frechet distance in the shipped digits classifier's
features against the 359 held-out digits (``digits_scores``), or the exact W2 against 2000
held-out moons points. NFE budgets 5, 6, 8, 10, 15, 20, 35, 50; a run that makes more model
calls than its budget is an error row, never a result.

Peers (benchmark extras, loaded and driven by ``benchmarks/samplers.py``'s code): k-diffusion's
samplers through the EDM-form denoiser ``D(y, s) = x0_hat(alpha(t) y, t)``, ``t = t_from_noise_level(s)``,
on their Karras grid over the process's noise range (digits: the noise levels at T and at t_min;
moons: at t = 0.999, where the flow's noise level is 999, down to t_min); diffusers' schedulers on
their 1000-step linear-beta table through the discrete-time map (table index -> its noise level ->
``t_from_noise_level``; a diffusers VP state is the model's state rescaled by
``alpha(t) sqrt(1 + s^2)``, exactly sdeflow's VP state for the digits net); for the flow also
``FlowMatchEulerDiscreteScheduler`` (its sigma is the Linear process's t, its model output the velocity).

Cost. The trained networks are far from smooth ODEs: the reference takes
about 3,000 model calls at rtol 1e-7 (digits, from T) and 5,000 at 1e-8, and the float64 U-Net costs
about 1 ms per sample per call on one core (float64 convolutions have no oneDNN path; channels-last
halves their cost). References are therefore cached beside the checkpoints
(``references.safetensors``, keyed by the weights' hash, dtype, tolerance and start; a stored
reference of more samples serves fewer) and the digits check runs on the first 32 samples.

Run: ``python benchmarks/networks.py [--quick] [--write FILE]`` (one torch thread); ``--digits-n``,
``--moons-n``, ``--w2-n``, ``--check-n`` and ``--dtype`` change the sizes and precision, ``--json``
writes the raw rows. ``--quick`` (16 digits, 500 moons points, NFE 5 and 10) reads the cached
references. From another script: ``evaluate(configs, budgets)`` with configurations made by
:func:`ours` / :func:`default_config` or any ``run(problem, budget)``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import inspect
import math
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

import samplers as S  # noqa: E402  (benchmarks/samplers.py: Config, peer loading and driving)
import sdeflow  # noqa: E402
from sdeflow.grids import UniformLogSNR  # noqa: E402
from sdeflow.noise import randn  # noqa: E402

BUDGETS = (5, 6, 8, 10, 15, 20, 35, 50)
QUICK_BUDGETS = (5, 10)
CACHE_DIR = ROOT / "benchmarks" / "results" / "networks"
REF_TOL, CHECK_TOL = 1e-7, 1e-8
FLOW_T_CUT = 0.999  # k-diffusion and the log-SNR grids start the flow here (noise level 999), not at T = 1
Config = S.Config


class NotApplicable(Exception):
    """Raised by a configuration's ``run`` for a problem it does not serve (no row is written)."""


# ------------------------------------------------------------------------------------------ networks
def load_networks(cache_dir: str | Path = CACHE_DIR, progress: bool = False) -> dict:
    """The two demo networks, ``{"digits": (model, process), "moons": (model, process)}`` (float32, eval mode).

    The first call trains them with the demo's full settings (``_train_digits`` / ``_train_toy`` of
    :mod:`sdeflow.training.demo`, which also sample and score them once, as the demo does) in a
    temporary folder and stores each EMA network as a checkpoint folder ``cache_dir/<name>/`` in
    sdeflow's format (``config.json``, ``ema.safetensors``, ...; ``model.safetensors`` is left empty
    and there is no optimizer state, to keep the cache small). Later calls only load
    (:func:`sdeflow.training.load_checkpoint_model`). Training is deterministic (seed 0, per-step
    generators); run it with one torch thread to reproduce the cached weights bit for bit.
    """
    from sdeflow.training import load_checkpoint_model

    cache = Path(cache_dir)
    names = ("digits", "moons")
    if not all((cache / name / "config.json").is_file() for name in names):
        _train_and_cache(cache, progress)
    out = {}
    for name in names:
        model, process, _, _ = load_checkpoint_model(cache / name)
        out[name] = (model, process)
    return out


def _train_and_cache(cache: Path, progress: bool) -> None:
    from sdeflow.training import demo, read_checkpoint, save_checkpoint
    from sdeflow.training.checkpoint import load_checkpoint_model

    settings = demo.DEMO_SETTINGS["full"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print("training the demo networks (once; cached in", cache, ")", file=sys.stderr)
        trained = {}
        tic = time.perf_counter()
        metrics, files = demo._train_digits(work, settings, progress, False)
        trained["digits"] = (files["digits_checkpoint"], {k: metrics[k] for k in ("fast", "train_seconds")})
        metrics, files = demo._train_toy(work, settings, progress, False)
        trained["moons"] = (files["toy_checkpoint"], {k: metrics[k] for k in ("fast", "w2_floor", "train_seconds")})
        for name, (path, demo_metrics) in trained.items():
            ckpt = read_checkpoint(path)
            model, _, _, _ = load_checkpoint_model(path)  # the EMA network
            state = {k: v for k, v in ckpt.state.items() if k not in ("optimizer", "step")}
            card = {**ckpt.metrics, "demo_settings": "full", "demo_metrics": demo_metrics,
                    "note": "EMA weights only (model.safetensors empty, no optimizer state): benchmarks/networks.py"}
            folder = save_checkpoint(cache / name, step=ckpt.step, model=torch.nn.Module(), ema_model=model.net,
                                     optimizer=None, config=ckpt.config, metrics=card, state=state, keep=1)
            # A flat folder per network: <cache>/<name>/ is the checkpoint itself.
            for file in folder.iterdir():
                file.rename(cache / name / file.name)
            folder.rmdir()
            (cache / name / "checkpoints").rmdir()
        print(f"trained in {time.perf_counter() - tic:.0f} s", file=sys.stderr)


def _weights_id(cache_dir: Path, name: str) -> str:
    import hashlib

    return hashlib.sha256((Path(cache_dir) / name / "ema.safetensors").read_bytes()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------ problems
class EDMDenoiser:
    """The network in k-diffusion's (EDM) convention: ``D(y, s) = x0_hat(alpha(t) y, t)`` with
    ``t = process.t_from_noise_level(s)`` and ``y = x / alpha`` the scaled state.

    ``x0(y, s, proc)`` is the interface ``benchmarks/samplers.py``'s peer drivers call on a target
    (``proc`` is ignored: the network's own process defines the map). Noise levels beyond the
    process's range (a diffusers table's first level, 157.4, against the VP process's 152.0 at T)
    map to times past ``T`` by the same closed form; the network is evaluated there as given.
    """

    def __init__(self, model, process, prediction: str) -> None:
        from sdeflow.models import Denoiser

        self.process = process
        self.denoiser = Denoiser(model, process, prediction, check_finite=False)

    _skip: dict | None = None

    @contextlib.contextmanager
    def skipping(self, k: int):
        """Within the block, the first ``k`` calls of :meth:`x0` return zeros without calling the network
        (for runs a driver will discard); yields ``{"skipped", "real"}`` call counts."""
        self._skip = {"left": k, "skipped": 0, "real": 0}
        try:
            yield self._skip
        finally:
            self._skip = None

    def x0(self, y: torch.Tensor, noise_level: float, proc=None) -> torch.Tensor:
        if self._skip is not None:
            if self._skip["left"] > 0:
                self._skip["left"] -= 1
                self._skip["skipped"] += 1
                return torch.zeros_like(y)
            self._skip["real"] += 1
        t = self.process.t_from_noise_level(torch.tensor(float(noise_level), dtype=torch.float64))
        alpha = float(self.process.alpha(t))
        return self.denoiser(alpha * y, float(t)).x0

    def velocity(self, x: torch.Tensor, t: float) -> torch.Tensor:
        """The process-time velocity ``dx/dt`` of the probability-flow ODE at state ``x`` (one call)."""
        return self.denoiser.predict("velocity", x, t)


@dataclass
class NetworkProblem:
    """One network with fixed noise and its references.

    ``z`` is ``(n, *event_shape)`` standard normal noise (seeds 0..n-1); a sampler starting at ``t0``
    starts from ``sigma(t0) z`` (the prior at ``T``; at ``t0 < T`` the same noise, scaled). A start is
    described as ``(rho0, y0)``: the noise level and the scaled state ``y0 = x / alpha(t0)``; where
    ``alpha(t0) = 0`` (the flow at ``T = 1``) ``rho0 = inf`` and ``y0`` is the state ``x`` itself.
    """

    name: str
    model: Callable  # the float64 (or --dtype) DiffusionModel: model(x, t) -> prediction
    process: object
    prediction: str
    z: torch.Tensor
    heldout: torch.Tensor  # data space
    transform: dict | None
    sigma_min: float  # k-diffusion's noise range
    sigma_max: float
    t_cut: float  # where k-diffusion and the log-SNR grid start (T, or 0.999 for the flow)
    metric: str  # "fd" or "w2"
    weights_id: str
    w2_points: int = 2000  # points per set of the exact W2 (moons)
    target: EDMDenoiser = None
    refs: dict = field(default_factory=dict)  # key -> reference samples
    ref_info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.target = EDMDenoiser(self.model, self.process, self.prediction)

    @property
    def dtype(self) -> torch.dtype:
        return self.z.dtype

    def state_at(self, t0: float) -> torch.Tensor:
        return float(self.process.sigma(t0)) * self.z

    def start(self, t0: float) -> tuple[float, torch.Tensor]:
        alpha = float(self.process.alpha(t0))
        x = self.state_at(t0)
        if alpha <= 0.0:
            return math.inf, x
        return float(self.process.noise_level(t0)), x / alpha


_PROBLEMS: dict = {}


def make_problems(n_digits: int = 512, n_moons: int = 2000, dtype: torch.dtype = torch.float64,
                  cache_dir: str | Path = CACHE_DIR, w2_points: int = 2000) -> list[NetworkProblem]:
    """The digits and moons problems: networks (cast to ``dtype``), noise ``z`` (seeds 0..n-1) and held-out data.

    Digits: the 359 held-out digits (the Frechet distance's reference). Moons: the demo's held-out
    points (``get_data("moons", n=20000, n_heldout=4000, seed=0)``), the first ``n_moons`` for W2.
    The k-diffusion noise range: digits (VP) from the noise level at ``T`` (152.0) to that at ``t_min``
    (0.0105); moons (Linear, infinite noise level at ``T``) from ``t = 0.999`` (999) to ``t_min`` (0.001).
    """
    from sdeflow.data import get_data
    from sdeflow.data.digits import load_digits

    key = (n_digits, n_moons, dtype, str(cache_dir), w2_points)
    if key in _PROBLEMS:
        return _PROBLEMS[key]
    nets = load_networks(cache_dir)
    out = []
    for name, n, shape in (("digits", n_digits, (1, 8, 8)), ("moons", n_moons, (2,))):
        model, process = nets[name]
        model = model.to(dtype)
        if name == "digits":
            model = model.to(memory_format=torch.channels_last)  # 1.7x faster float64 convolutions, same numbers to round-off
            heldout, t_cut = load_digits("test").images, process.T
        else:
            heldout, t_cut = get_data("moons", n=20_000, n_heldout=4000, seed=0).heldout, FLOW_T_CUT
        z = randn((n, *shape), seeds=0, dtype=dtype)
        if name == "digits":
            z = z.contiguous(memory_format=torch.channels_last)
        from sdeflow.training import read_checkpoint

        transform = read_checkpoint(Path(cache_dir) / name).config["data"].get("transform")
        out.append(NetworkProblem(
            name=name, model=model, process=process, prediction=model.prediction, z=z, heldout=heldout,
            transform=transform, sigma_min=float(process.noise_level(process.t_min)),
            sigma_max=float(process.noise_level(t_cut)), t_cut=t_cut, metric="fd" if name == "digits" else "w2",
            weights_id=_weights_id(Path(cache_dir), name), w2_points=w2_points,
        ))
    _PROBLEMS[key] = out
    return out


# ------------------------------------------------------------------------------------------ references
REF_FILE = CACHE_DIR / "references.safetensors"
_REF_STORE: dict = {}  # name -> tensor, loaded lazily from REF_FILE, with "__meta__" -> dict


def _store() -> dict:
    import json

    if not _REF_STORE:
        _REF_STORE["__meta__"] = {}
        if REF_FILE.is_file():
            from safetensors import safe_open

            with safe_open(str(REF_FILE), framework="pt") as fh:
                meta = fh.metadata() or {}
                for k in fh.keys():
                    _REF_STORE[k] = fh.get_tensor(k)
            _REF_STORE["__meta__"] = json.loads(meta.get("info", "{}"))
    return _REF_STORE


def _save_store() -> None:
    import json

    from safetensors.torch import save_file

    store = _store()
    tensors = {k: v.contiguous() for k, v in store.items() if k != "__meta__"}
    REF_FILE.parent.mkdir(parents=True, exist_ok=True)
    tmp = REF_FILE.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"info": json.dumps(store["__meta__"], sort_keys=True)})
    tmp.replace(REF_FILE)


def _start_scale(problem: NetworkProblem, y0: torch.Tensor) -> float:
    """``c`` with ``y0 = c z`` (every start in this benchmark is a multiple of the fixed noise)."""
    z = problem.z
    c = float((y0.double() * z.double()).sum() / z.double().pow(2).sum())
    if not torch.allclose(y0.double(), c * z.double(), rtol=1e-9, atol=1e-12 * max(1.0, abs(c))):
        raise ValueError(f"{problem.name}: a start state that is not a multiple of the benchmark's noise z")
    return c


def reference(problem: NetworkProblem, rho0: float, y0: torch.Tensor, tol: float = REF_TOL, n: int | None = None) -> torch.Tensor:
    """The probability-flow ODE solution from the start ``(rho0, y0)`` (see :class:`NetworkProblem`):
    ``adaptive_ode`` at ``rtol = atol = tol`` down to ``t_min``, then the exact final (denoising) step.

    Cached in memory and on disk (``references.safetensors`` beside the checkpoints, keyed by network
    weights, dtype, tolerance and start; starts within 1e-6 relative share a reference). A stored
    reference of more samples serves fewer: the adaptive solver's per-sample steps make sample ``i``'s
    solution independent of its batch. ``n`` limits the samples solved (the first ``n``).
    """
    n = problem.z.shape[0] if n is None else n
    c = _start_scale(problem, y0)
    store = _store()
    prefix = f"{problem.name}|{problem.weights_id}|{str(problem.dtype).replace('torch.', '')}|{tol:g}|"
    for k, v in store.items():
        if not k.startswith(prefix) or v.shape[0] < n:
            continue
        r, cc = (float(s) for s in k[len(prefix):].split("|"))
        same_rho = (math.isinf(r) and math.isinf(rho0)) or (math.isfinite(r) and math.isfinite(rho0) and abs(r - rho0) <= 1e-6 * r)
        if same_rho and abs(cc - c) <= 1e-6 * abs(c):
            return v[:n].to(problem.dtype)
    proc = problem.process
    t0 = proc.T if math.isinf(rho0) else float(proc.t_from_noise_level(torch.tensor(rho0, dtype=torch.float64)))
    x = (c * problem.z[:n]) * (1.0 if math.isinf(rho0) else float(proc.alpha(t0)))
    if t0 > proc.T:  # a diffusers table starting beyond T: the same process formulas, a longer horizon
        proc = type(proc)(**{**proc.config(), "T": t0})
    tic = time.perf_counter()
    with torch.no_grad():
        res = sdeflow.sample(problem.model, proc, x, prediction=problem.prediction, solver="adaptive_ode",
                             grid=torch.tensor([t0, proc.t_min, 0.0], dtype=torch.float64), rtol=tol, atol=tol)
    key = f"{prefix}{rho0!r}|{c!r}"
    store[key] = res.samples.detach().to(torch.float64).contiguous()
    store["__meta__"][key] = {"nfe": res.nfe, "seconds": round(time.perf_counter() - tic, 1), "t0": t0, "n": n}
    _save_store()
    return store[key].to(problem.dtype)


def reference_check(problem: NetworkProblem, n: int | None = None) -> dict:
    """The reference (rtol = atol = 1e-7) against rtol = atol = 1e-8 from the main start (``T``, or the
    flow's ``T = 1``), on the first ``n`` samples: max, median and RMS per-sample distance, and the NFE of each."""
    rho0, y0 = problem.start(problem.process.T)
    n = problem.z.shape[0] if n is None else min(n, problem.z.shape[0])
    ref = reference(problem, rho0, y0)[:n]
    tight = reference(problem, rho0, y0, tol=CHECK_TOL, n=n)
    d = (ref.double() - tight.double()).flatten(1).norm(dim=1)
    meta = _store()["__meta__"]
    nfe = {tol: next((v["nfe"] for k, v in meta.items() if k.startswith(f"{problem.name}|{problem.weights_id}|")
                      and f"|{tol:g}|" in k and v.get("t0") == (problem.process.T if math.isinf(rho0) else
                      float(problem.process.t_from_noise_level(torch.tensor(rho0, dtype=torch.float64))))), None)
           for tol in (REF_TOL, CHECK_TOL)}
    return {"n": n, "max": float(d.max()), "median": float(d.median()), "rms": float(d.pow(2).mean().sqrt()),
            "nfe_ref": nfe[REF_TOL], "nfe_check": nfe[CHECK_TOL]}


# ------------------------------------------------------------------------------------------ metrics
def to_data(problem: NetworkProblem, x: torch.Tensor) -> torch.Tensor:
    from sdeflow.data.sources import transform_to_data

    return transform_to_data(x.contiguous(), problem.transform)


def quality(problem: NetworkProblem, x: torch.Tensor) -> float:
    """Frechet distance (digits, against the held-out digits) or exact W2 (moons, against held-out points)."""
    if not bool(torch.isfinite(x).all()):
        return math.inf
    data = to_data(problem, x)
    if problem.metric == "fd":
        return _frechet(data)
    from sdeflow.metrics import wasserstein2

    k = min(problem.w2_points, x.shape[0])
    return float(wasserstein2(data[:k].double(), problem.heldout[:k].double()))


_FD_REF: dict = {}


def _frechet(images: torch.Tensor) -> float:
    """``digits_scores(images)["frechet_distance"]`` (the same features, clamp and distance) with the held-out
    digits' features computed once instead of per call."""
    from sdeflow.data.digits import digits_classifier, load_digits
    from sdeflow.metrics import frechet_distance

    if not _FD_REF:
        _FD_REF["clf"] = digits_classifier()
        with torch.no_grad():
            _FD_REF["ref"] = _FD_REF["clf"].features(load_digits("test").images).double()
    with torch.no_grad():
        feats = _FD_REF["clf"].features(images.float().clamp(-1, 1)).double()
    return float(frechet_distance(feats, _FD_REF["ref"]))


def floor(problem: NetworkProblem) -> float:
    """What real data scores: the training digits' Frechet distance, or W2 between two held-out halves."""
    if problem.metric == "fd":
        from sdeflow.data.digits import load_digits
        from sdeflow.training import digits_scores

        return float(digits_scores(load_digits("train").images)["frechet_distance"])
    from sdeflow.metrics import wasserstein2

    n = min(problem.w2_points, problem.z.shape[0], problem.heldout.shape[0] // 2)
    return float(wasserstein2(problem.heldout[:n].double(), problem.heldout[n : 2 * n].double()))


# ------------------------------------------------------------------------------------------ our configurations
DEFAULT_LABEL = "sdeflow default"


def ours(label: str, solver: str | None, grid=None, **opts) -> Config:
    """``sdeflow.sample`` with ``nfe=budget`` from ``sigma(t0) z``; ``grid``: ``None`` (the solver's default grid),
    a grid, or ``problem -> grid``. ``solver=None`` and no grid: the documented default configuration."""

    def run(problem: NetworkProblem, budget: int):
        g = grid(problem) if callable(grid) and not hasattr(grid, "t_max") else grid
        t0 = problem.process.T if g is None or getattr(g, "t_max", None) is None else float(g.t_max)
        x = problem.state_at(t0)
        with torch.no_grad():
            res = sdeflow.sample(problem.model, problem.process, x, prediction=problem.prediction, solver=solver,
                                 nfe=budget, grid=g, **opts)
        if abs(float(res.ts[0]) - t0) > 1e-12:
            raise RuntimeError(f"the grid starts at {float(res.ts[0])}, not at {t0}")
        rho0, y0 = problem.start(t0)
        return res.samples, res.nfe, rho0, y0

    return Config(label, "sdeflow", run)


def default_config() -> Config:
    """``sdeflow.sample(model, process, x_T, nfe=budget)``: no solver, no grid (whatever the default is now)."""
    return ours(DEFAULT_LABEL, None)


def log_snr_grid(problem: NetworkProblem) -> UniformLogSNR:
    """Uniform in log-SNR from ``T`` (digits), or from ``t = 0.999`` for the flow (infinite log-SNR at ``T``)."""
    return UniformLogSNR() if problem.t_cut >= problem.process.T else UniformLogSNR(t_max=problem.t_cut)


def our_configs() -> list[Config]:
    return [
        default_config(),
        ours("sdeflow dpm_solver_pp_2m", "dpm_solver_pp_2m"),
        ours("sdeflow dpm_solver_pp_3m", "dpm_solver_pp_3m"),
        ours("sdeflow unipc-3", "unipc", order=3),
        ours("sdeflow deis-3", "deis", order=3),
        ours("sdeflow ipndm", "ipndm"),
        ours("sdeflow heun", "heun"),
        ours("sdeflow dpm_solver_pp_2m logSNR", "dpm_solver_pp_2m", grid=log_snr_grid),
    ]


# ------------------------------------------------------------------------------------------ peers
@contextlib.contextmanager
def _noise_range(sigma_min: float, sigma_max: float):
    """samplers.py's k-diffusion configurations read its module constants SIGMA_MIN / SIGMA_MAX (the EDM
    range) when they run: point them at this problem's range for the duration of one run."""
    saved = S.SIGMA_MIN, S.SIGMA_MAX
    S.SIGMA_MIN, S.SIGMA_MAX = sigma_min, sigma_max
    try:
        yield
    finally:
        S.SIGMA_MIN, S.SIGMA_MAX = saved


def kdiff_configs(K=None) -> list[Config]:
    """samplers.py's k-diffusion samplers (euler, heun, dpm_2, lms, dpmpp_2s eta 0, dpmpp_2m, dpmpp_2m_sde heun
    eta 0, dpmpp_3m_sde eta 0, dpm_fast) on the Karras grid of the problem's noise range, through
    ``problem.target`` (the EDM-form denoiser)."""
    K = S.load_k_diffusion() if K is None else K
    out = []
    for cfg in S.kdiff_configs(K):
        def run(problem: NetworkProblem, budget: int, inner=cfg.run):
            with _noise_range(problem.sigma_min, problem.sigma_max), torch.no_grad():
                return inner(problem, budget)

        out.append(Config(cfg.label, cfg.source, run))
    return out


def diffusers_configs(flow: bool = True) -> list[Config]:
    """samplers.py's diffusers schedulers (1000-step linear-beta table, with and without Karras sigmas), driven
    through ``problem.target`` by its discrete-time map (table index -> noise level -> the network's time);
    with ``flow``, also the flow-matching schedulers (:func:`flow_configs`, used on the flow only).

    samplers.py's driver tries step counts from the budget down until a run's model calls fit (free with an
    exact score, up to 26 wasted runs of a 2-call-per-step scheduler at 50 NFE with a network): the runs it
    will reject are known in advance (one call per scheduler timestep), so here they get a zero denoiser
    instead of the network (:meth:`EDMDenoiser.skipping`); the accepted run is unchanged. DDIM runs with
    ``clip_sample=False`` (its default clips ``x0_hat`` to [-1, 1], which is not the ODE and cuts the moons)."""
    out = []
    for cfg in S.diffusers_configs():
        def run(problem: NetworkProblem, budget: int, inner=cfg.run):
            cls, kw = inner.__defaults__  # samplers.py binds the scheduler class and options as defaults
            if "clip_sample" in inspect.signature(cls.__init__).parameters:
                kw = {**kw, "clip_sample": False}  # DDIM clips x0_hat to [-1, 1] by default: not the ODE (moons leave [-1, 1])
            skip = 0
            for steps in range(budget, 0, -1):
                calls = _diffusers_calls(cls, tuple(sorted(kw.items())), steps)
                if calls <= budget:
                    break
                skip += calls
            with torch.no_grad(), problem.target.skipping(skip) as calls:
                x, used, rho0, y0 = S.run_diffusers(problem, budget, cls, kw)
            if calls["skipped"] != skip or calls["real"] != used:
                raise RuntimeError(f"diffusers call accounting: skipped {calls['skipped']} of {skip}, {calls['real']} real calls "
                                   f"for {used} reported")
            return x, used, rho0, y0

        out.append(Config(cfg.label, cfg.source, run))
    return out + (flow_configs() if flow and out else [])


@functools.lru_cache(maxsize=None)
def _diffusers_calls(cls, kw: tuple, steps: int) -> int:
    """Model calls of one diffusers run of ``steps`` steps: one per scheduler timestep."""
    sched = cls(**dict(kw))
    sched.set_timesteps(steps)
    return len(sched.timesteps)


def flow_configs() -> list[Config]:
    """diffusers' flow-matching schedulers, for the Linear process only: ``FlowMatchEulerDiscreteScheduler``
    (sigma = the Linear time t, from 1 to 0.001, then 0; shift 1) and, where this diffusers has them,
    DPM-Solver++ 2M/3M and UniPC 2/3 with ``use_flow_sigmas`` (``flow_prediction``, shift 1: sigmas from 0.999).
    The model output is the process-time velocity ``dx/dt = eps - x0`` (flow matching's ``noise - x0``),
    evaluated at the sigma the scheduler integrates with."""
    try:
        import diffusers
        from diffusers import FlowMatchEulerDiscreteScheduler
    except ImportError:
        return []

    table = [("FlowMatchEuler", FlowMatchEulerDiscreteScheduler, {})]
    from diffusers import DPMSolverMultistepScheduler, UniPCMultistepScheduler

    for label, cls, opts in (("DPMSolverMultistep 2M flow", DPMSolverMultistepScheduler, {"solver_order": 2}),
                             ("DPMSolverMultistep 3M flow", DPMSolverMultistepScheduler, {"solver_order": 3}),
                             ("UniPC 2 flow", UniPCMultistepScheduler, {"solver_order": 2}),
                             ("UniPC 3 flow", UniPCMultistepScheduler, {"solver_order": 3})):
        if "use_flow_sigmas" in inspect.signature(cls.__init__).parameters:
            table.append((label, cls, dict(opts, use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=1.0)))
    diffusers.utils.logging.set_verbosity_error()
    out = []
    for label, cls, kw in table:
        def run(problem: NetworkProblem, budget: int, cls=cls, kw=kw):
            if problem.process.name != "linear":
                raise NotApplicable("flow-matching schedulers serve the Linear process only")
            with torch.no_grad():
                return run_flow_scheduler(problem, budget, cls, kw)

        out.append(Config(f"diffusers {label}", "diffusers", run))
    return out


def run_flow_scheduler(problem: NetworkProblem, budget: int, cls, kw):
    """One flow-matching scheduler run with the largest step count whose model calls fit ``budget``."""
    for steps in range(budget, 0, -1):
        sched = cls(num_train_timesteps=1000, **kw)
        sched.set_timesteps(steps)
        sigmas = [float(s) for s in sched.sigmas]
        t0 = sigmas[0]
        x = problem.z.clone()  # the scheduler's start: unit noise at sigma_0 (<= 1)
        count = 0
        for i, t in enumerate(sched.timesteps):
            count += 1
            v = problem.target.velocity(x, sigmas[i])
            x = sched.step(v, t, x).prev_sample
        if count <= budget:
            alpha = 1.0 - t0
            if alpha <= 0.0:
                return x, count, math.inf, problem.z.clone()
            return x, count, t0 / alpha, problem.z / alpha
    raise RuntimeError("no step count fits the budget")


def peer_configs() -> list[Config]:
    K = S.load_k_diffusion()
    if K is None:
        print("k-diffusion not installed: no k-diffusion peers (pip install --no-deps k-diffusion)", file=sys.stderr)
    cfgs = kdiff_configs(K) + diffusers_configs()
    if not any(c.source == "diffusers" for c in cfgs):
        print("diffusers not installed: no diffusers peers (pip install diffusers)", file=sys.stderr)
    return cfgs


# ------------------------------------------------------------------------------------------ evaluation
def evaluate(configs: Sequence[Config], budgets: Sequence[int] = BUDGETS, problems: Sequence[NetworkProblem] | None = None,
             progress: bool = True) -> list[dict]:
    """Run every configuration at every budget on every problem (default: :func:`make_problems`'s full sizes).

    ``configs``: :class:`Config` objects (``benchmarks/samplers.py``'s type: a label, a source and
    ``run(problem, budget) -> (samples, nfe_used, start_noise_level, start_scaled_state)``); make ours with
    :func:`ours` / :func:`default_config` or write ``run`` directly (see :class:`NetworkProblem` for the start).

    Returns one dict per (problem, config, budget): ``problem``, ``config``, ``source``, ``budget``, ``nfe``,
    ``rms`` and ``median`` (per-sample Euclidean distance to the reference from the run's own start),
    ``fd`` (digits) or ``w2`` (moons), ``start`` (the start's noise level); or ``error`` (a failed run, or a
    run over its budget: the budget is never exceeded in a result).
    """
    problems = list(problems) if problems is not None else make_problems()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    bar = tqdm(total=len(problems) * len(configs) * len(budgets), desc="networks", disable=not progress) if tqdm else None
    rows = []
    for problem in problems:
        for cfg in configs:
            for budget in budgets:
                row = {"problem": problem.name, "config": cfg.label, "source": cfg.source, "budget": budget}
                try:
                    x, used, rho0, y0 = cfg.run(problem, budget)
                    if used > budget:
                        raise RuntimeError(f"{used} model calls, over the budget {budget}")
                    ref = reference(problem, rho0, y0)
                    rms, med = S.errors(x.to(torch.float64), ref.to(torch.float64))
                    row.update(nfe=used, start=rho0, rms=rms, median=med)
                    row[problem.metric] = quality(problem, x)
                except NotApplicable:
                    row = None
                except Exception as err:  # a run that fails at a budget is reported, not fatal
                    row["error"] = f"{type(err).__name__}: {err}"[:200]
                if row is not None:
                    rows.append(row)
                if bar:
                    bar.update(1)
    if bar:
        bar.close()
    return rows


def _best(rows, problem: str, budget: int, source: str | None = None, label: str | None = None, key: str = "rms"):
    cand = [r for r in rows if r["problem"] == problem and r["budget"] == budget and "error" not in r
            and (source is None or (r["source"] != "sdeflow" if source == "peer" else r["source"] == source))
            and (label is None or r["config"] == label) and math.isfinite(r.get(key, math.inf))]
    return min(cand, key=lambda r: r[key]) if cand else None


def _fmt(v) -> str:
    if v is None:
        return "-"
    if not math.isfinite(v):
        return "diverged"
    return f"{v:.3g}"


def write_report(rows: list[dict], info: dict, budgets: Sequence[int]) -> str:
    """The Markdown report: per network a summary against the best peer, every configuration's RMS [median],
    and the Frechet distance / W2 table."""
    lines = ["# Samplers on real networks", "",
             "Generated by `python benchmarks/networks.py`. The digits U-Net (DSM, VP, eps) and the moons flow (flow "
             "matching, Linear path, velocity) that `sdeflow demo` trains with its full settings, cached in "
             "`benchmarks/results/networks`. " + info["dtype_note"],
             "",
             "Errors: per-sample Euclidean distance to the probability-flow ODE solution from the same noise and the "
             f"same start (sdeflow `adaptive_ode`, rtol = atol = {REF_TOL:g}, down to t_min, then the exact final "
             "step): RMS over samples and, in brackets, the median. Quality: Frechet distance in the shipped digits "
             "classifier's features against the 359 held-out digits (digits), exact W2 against held-out points (moons). "
             "No run exceeds its NFE budget. Peers: k-diffusion through the EDM-form denoiser on its Karras grid "
             "(digits: noise 152 -> 0.0105; moons: 999 (t = 0.999) -> 0.001), diffusers on its 1000-step linear-beta "
             "table through the discrete-time map (first noise level 157.4; with and without Karras sigmas), and for the "
             "flow diffusers' flow-matching schedulers. A run is compared with the reference from its own start.", ""]
    for prob in dict.fromkeys(r["problem"] for r in rows):
        pi = info["problems"][prob]
        metric = "FD" if pi["metric"] == "fd" else "W2"
        mkey = pi["metric"]
        chk = pi.get("check")
        lines += [f"## {prob}", "",
                  f"{pi['description']}; n = {pi['n']} samples, {pi['dtype']}. {metric} of the reference (exact ODE) "
                  f"samples: {_fmt(pi.get('reference_quality'))}; floor (real data): {_fmt(pi.get('floor'))}.", ""]
        if chk:
            lines += [f"Reference check (first {chk['n']} samples, from T): rtol = atol = {REF_TOL:g} ({chk['nfe_ref']} NFE) "
                      f"against {CHECK_TOL:g} ({chk['nfe_check']} NFE): max distance {chk['max']:.2g}, median "
                      f"{chk['median']:.2g}, RMS {chk['rms']:.2g}.", ""]
        lines += ["| NFE | sdeflow default | best sdeflow | best peer | default / best peer (RMS, median) | "
                  f"{metric}: default | {metric}: best peer by {metric} |", "|---|---|---|---|---|---|---|"]
        for b in budgets:
            d = _best(rows, prob, b, label=DEFAULT_LABEL)
            ob, obm = _best(rows, prob, b, "sdeflow"), _best(rows, prob, b, "sdeflow", key="median")
            pb, pbm = _best(rows, prob, b, "peer"), _best(rows, prob, b, "peer", key="median")
            pq = _best(rows, prob, b, "peer", key=mkey)
            cell = lambda r, rm: f"{_fmt(r['rms'])} [{_fmt(rm['median'])}] {r['config'].replace('sdeflow ', '')}" if r else "-"
            ratio = f"{d['rms'] / pb['rms']:.2f}, {d['median'] / pbm['median']:.2f}" if d and pb and pb["rms"] > 0 else "-"
            lines.append(f"| {b} | {_fmt(d['rms']) + ' [' + _fmt(d['median']) + ']' if d else '-'} | {cell(ob, obm)} | "
                         f"{cell(pb, pbm)} | {ratio} | {_fmt(d.get(mkey)) if d else '-'} | "
                         f"{_fmt(pq[mkey]) + ' ' + pq['config'] if pq else '-'} |")
        lines += ["", "(best sdeflow / best peer: the configuration with the lowest RMS; the bracket is the lowest median, "
                  "which may be another configuration's)", ""]
        for title, fmt_cell in (("RMS [median] distance to the reference", lambda r: f"{_fmt(r['rms'])} [{_fmt(r['median'])}]"),
                                (f"{metric}", lambda r: _fmt(r.get(mkey)))):
            lines += [f"### {prob}: {title}", "", "| sampler | " + " | ".join(str(b) for b in budgets) + " |",
                      "|---" * (len(budgets) + 1) + "|"]
            for label in dict.fromkeys(r["config"] for r in rows if r["problem"] == prob):
                cells = []
                for b in budgets:
                    r = next((r for r in rows if r["problem"] == prob and r["config"] == label and r["budget"] == b), None)
                    cells.append("-" if r is None else "error" if "error" in r else fmt_cell(r))
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
            lines.append("")
        errs = [r for r in rows if r["problem"] == prob and "error" in r]
        if errs:
            lines += [f"Errors on {prob}:", ""] + [f"- {r['config']} at NFE {r['budget']}: {r['error']}" for r in errs[:40]] + [""]
    lines += [f"Run time: {info['seconds']:.0f} s, {info['threads']} torch thread(s)" + (" (--quick)" if info["quick"] else "") + ".", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 16 digits and 500 moons samples, NFE 5 and 10 (under 2 minutes with cached references)")
    parser.add_argument("--write", metavar="FILE", help="also write the Markdown report to FILE")
    parser.add_argument("--json", metavar="FILE", help="also write the raw rows as JSON")
    parser.add_argument("--no-peers", action="store_true", help="only sdeflow's configurations")
    parser.add_argument("--digits-n", type=int, default=None, help="digits samples (default 512; --quick 16)")
    parser.add_argument("--moons-n", type=int, default=None, help="moons samples (default 2000; --quick 500)")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64", help="network and state precision")
    parser.add_argument("--check-n", type=int, default=None, help="digits samples of the reference check (default 32; the moons check uses every sample)")
    parser.add_argument("--w2-n", type=int, default=None, help="points per set of the moons' exact W2 (default: all samples)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--budgets", nargs="+", type=int, metavar="NFE", help="budgets of model calls (default: the full list)")
    parser.add_argument("--problems", nargs="+", choices=("digits", "moons"), help="networks to run (default both)")
    parser.add_argument("--only", nargs="+", metavar="LABEL", help="run only these of sdeflow's configurations (with --no-peers: a re-run of some rows)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    tic = time.perf_counter()
    dtype = getattr(torch, args.dtype)
    n_digits = args.digits_n or (16 if args.quick else 512)
    n_moons = args.moons_n or (500 if args.quick else 2000)
    budgets = tuple(args.budgets) if args.budgets else (QUICK_BUDGETS if args.quick else BUDGETS)
    problems = make_problems(n_digits, n_moons, dtype, w2_points=args.w2_n or n_moons)
    if args.problems:
        problems = [p for p in problems if p.name in args.problems]
    ours_ = our_configs()
    if args.only:
        unknown = sorted(set(args.only) - {c.label for c in ours_})
        if unknown:
            raise SystemExit(f"--only: unknown configuration(s) {unknown}; ours are {[c.label for c in ours_]}")
        ours_ = [c for c in ours_ if c.label in args.only]
    configs = ours_ + ([] if args.no_peers else peer_configs())
    info = {"quick": args.quick, "threads": args.threads, "problems": {},
            "dtype_note": f"Networks and states in {args.dtype}" + (" (the networks are cast from their float32 weights), so that "
                                                                  "the errors are the solvers', not float32 round-off." if args.dtype == "float64" else ".")}
    for p in problems:
        pi = {"n": p.z.shape[0], "dtype": args.dtype, "metric": p.metric,
              "description": "digits U-Net (DSM, VP, eps), 8x8" if p.name == "digits" else
              f"moons flow (flow matching, Linear, velocity MLP); W2 on the first {min(p.w2_points, p.z.shape[0])} samples "
              f"against as many held-out points"}
        n_check = (args.check_n or 32) if p.name == "digits" else p.z.shape[0]
        pi["check"] = reference_check(p, min(n_check, p.z.shape[0]))
        rho0, y0 = p.start(p.process.T)
        pi["reference_quality"] = quality(p, reference(p, rho0, y0))
        pi["floor"] = floor(p)
        info["problems"][p.name] = pi
        print(f"{p.name}: reference check {pi['check']}", file=sys.stderr)
    rows = evaluate(configs, budgets, problems)
    info["seconds"] = time.perf_counter() - tic
    text = write_report(rows, info, budgets)
    print(text)
    if args.write:
        Path(args.write).parent.mkdir(parents=True, exist_ok=True)
        Path(args.write).write_text(text + "\n")
    if args.json:
        import json

        Path(args.json).write_text(json.dumps({"rows": rows, "info": info}, indent=1, default=str))
    print(f"done in {info['seconds']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
