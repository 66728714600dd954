"""Rectified flow with reflow and one-step distillation (Liu, Gong and Liu 2023, "Flow straight and fast").

The pipeline, between a source distribution (``x1``, at ``t = 1``; Gaussian noise or any samples)
and a target (``x0``, at ``t = 0``):

1. **1-rectified flow**: velocity regression (:class:`~sdeflow.transport.PairedFlowMatching`) on
   independent pairs ``(x0, x1)``.
2. **Coupling**: fresh source samples ``x1`` are carried to ``x0_hat`` by the learned ODE
   ``dx/dt = v(x, t)`` from ``t = 1`` to ``0`` with a solver of the suite (:func:`sdeflow.sample`),
   giving the deterministic coupling ``(x0_hat, x1)`` (:func:`generate_coupling`).
3. **k-rectified flow**: the same regression on that coupling, initialized from the previous
   round's weights (Liu et al., section 2.3); steps 2-3 repeat for ``rounds``.
4. **Distillation** (optional): on the last coupling, the regression at ``t = 1`` only, so that one
   Euler step ``x0 = x1 - v(x1, 1)`` reproduces the coupling.

Each stage reports the straightness of its flow (Liu et al. 2023, eq. (5); 0 for straight paths)
and the normalized path energy, measured on Euler trajectories of ``K`` steps
(:func:`straightness`):

    S = int_0^1 E |(x1 - x0) - v(x_t, t)|^2 dt,       NPE = E int_0^1 |v(x_t, t)|^2 dt / E |x1 - x0|^2 - 1,

with ``x0`` the trajectory's end; ``NPE >= 0`` with equality for straight paths of constant speed.
Every stage is written under the run folder (``rf1/``, ``coupling1.pt``, ``rf2/``, ..., ``distill/``,
``report.json``) and a rerun with ``resume=True`` continues the stage that was interrupted and skips
the finished ones.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from .._utils import atomic_write_bytes, check_int
from ..noise.rng import randn
from ..processes import Linear
from ..sample import sample
from ..training.checkpoint import _checkpoint_dirs, load_checkpoint_model
from ..training.model import DiffusionModel
from ..training.trainer import TrainConfig, Trainer
from .objectives import PairedFlowMatching, pack_pairs

__all__ = ["ReflowConfig", "ReflowResult", "generate_coupling", "straightness", "run_reflow", "euler_grid", "load_stage"]


def euler_grid(steps: int) -> torch.Tensor:
    """The uniform grid ``1, 1 - 1/steps, ..., 0`` (``steps + 1`` times)."""
    check_int(steps, "steps")
    return torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)


@torch.no_grad()
def generate_coupling(
    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x1: torch.Tensor,
    *,
    solver: str = "heun",
    steps: int = 32,
    batch_size: int = 10_000,
    progress: bool = False,
) -> torch.Tensor:
    """``x0_hat (n, *event_shape)``: source samples ``x1 (n, *event_shape)`` carried from ``t = 1`` to ``0``.

    The velocity model's ODE is integrated with ``solver`` (a deterministic solver of the suite) on
    the uniform grid of ``steps`` steps, in chunks of ``batch_size``.
    """
    check_int(batch_size, "batch_size")
    process = Linear()
    chunks = []
    starts = range(0, x1.shape[0], batch_size)
    if progress:
        from .._utils import progress_bar

        starts = progress_bar(starts, desc="coupling", unit="batch", dynamic_ncols=True)
    for k in starts:
        out = sample(model, process, x1[k:k + batch_size], prediction="velocity", solver=solver, grid=euler_grid(steps))
        chunks.append(out.samples)
    return torch.cat(chunks)


@torch.no_grad()
def straightness(model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x1: torch.Tensor, *, steps: int = 64) -> dict[str, float]:
    """Straightness ``S`` and normalized path energy of the flow from ``x1 (n, *event_shape)`` (module docstring).

    Measured on the Euler trajectory of ``steps`` uniform steps: the velocity of step ``i`` is
    ``(x_{t_i} - x_{t_{i+1}}) / (t_i - t_{i+1})`` and the integrals are means over the steps.
    """
    res = sample(model, Linear(), x1, prediction="velocity", solver="euler", grid=euler_grid(steps), return_trajectory=True)
    traj = res.trajectory.to(torch.float64).reshape(steps + 1, x1.shape[0], -1)
    ts = euler_grid(steps)
    v = (traj[:-1] - traj[1:]) / (ts[:-1] - ts[1:]).reshape(-1, 1, 1)  # (steps, n, D): the Euler velocities
    chord = traj[0] - traj[-1]  # x1 - x0
    s_value = float((chord.unsqueeze(0) - v).pow(2).sum(-1).mean())
    energy = float(v.pow(2).sum(-1).mean())
    npe = energy / float(chord.pow(2).sum(-1).mean()) - 1.0
    return {"straightness": s_value, "path_energy": energy, "normalized_path_energy": npe}


@dataclass
class ReflowConfig:
    """Options of :func:`run_reflow` (JSON-ready; stored in ``report.json``).

    Attributes:
        rounds: rectified flows trained (1: 1-RF only; 2: 1-RF then 2-RF; ...).
        distill: also distill the last round into a one-step model.
        steps, reflow_steps, distill_steps: optimizer steps of 1-RF, of each later round, of distillation.
        batch_size, lr, warmup_steps, ema_decay: the trainer's (:class:`~sdeflow.training.TrainConfig`).
        width, depth: the MLP's.
        n_pairs: size of each generated coupling.
        solver, solver_steps: the ODE solver and steps that generate the couplings.
        straightness_steps, n_eval: Euler steps and source samples of the straightness measurement.
        seed: every random draw derives from it.
        progress: tqdm bars.

    Each stage's report holds its wall and process CPU seconds (coupling generation included), the first and last logged training loss, ``straightness``,
    ``path_energy`` and ``normalized_path_energy``.
    """

    rounds: int = 2
    distill: bool = False
    steps: int = 4000
    reflow_steps: int = 4000
    distill_steps: int = 2000
    batch_size: int = 512
    lr: float = 1e-3
    warmup_steps: int = 100
    ema_decay: float = 0.999
    width: int = 256
    depth: int = 3
    n_pairs: int = 20_000
    solver: str = "heun"
    solver_steps: int = 32
    straightness_steps: int = 64
    n_eval: int = 2000
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("rounds", "steps", "reflow_steps", "distill_steps", "batch_size", "width", "depth",
                     "n_pairs", "solver_steps", "straightness_steps", "n_eval"):
            check_int(getattr(self, name), name)
        check_int(self.seed, "seed", minimum=0)
        self.train_config(self.steps)  # the trainer's own checks (lr, ema_decay, ...) before any work
        from ..solvers import get as get_solver

        if bool(get_solver(self.solver).stochastic):
            raise ValueError(f"solver must be deterministic (the coupling is the ODE's map); {self.solver!r} is stochastic")


    def train_config(self, steps: int, checkpoints: bool = False) -> TrainConfig:
        """The :class:`~sdeflow.training.TrainConfig` of a stage of ``steps`` optimizer steps."""
        return TrainConfig(steps=steps, batch_size=self.batch_size, lr=self.lr, warmup_steps=min(self.warmup_steps, steps - 1),
                           ema_decay=self.ema_decay, seed=self.seed, ckpt_every=max(steps // 4, 1) if checkpoints else 0,
                           progress=self.progress, label_dropout=0.0)


@dataclass
class ReflowResult:
    """What :func:`run_reflow` returns: the stages' models and reports."""

    models: dict[str, DiffusionModel]
    stages: list[dict[str, Any]] = field(default_factory=list)
    out_dir: Path | None = None


def _save_tensor(path: Path, tensor: torch.Tensor) -> None:
    buf = io.BytesIO()
    torch.save(tensor.contiguous(), buf)
    atomic_write_bytes(path, buf.getvalue())


def _source_samples(source: torch.Tensor | str, n: int, event_shape: tuple[int, ...], seed: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` source samples: Gaussian noise with per-sample seeds, or a random draw (with replacement) of given samples."""
    if isinstance(source, str):
        return randn((n,) + event_shape, seeds=seed, dtype=torch.float32)
    idx = torch.randint(source.shape[0], (n,), generator=generator)
    return source[idx]


def _train_stage(name: str, pairs: torch.Tensor, init: DiffusionModel | None, steps: int, times: str,
                 cfg: ReflowConfig, event_shape: tuple[int, ...], out_dir: Path | None, data_info: dict[str, Any],
                 resume: bool) -> tuple[DiffusionModel, dict[str, Any]]:
    from ..nn import MLP

    net = MLP(event_shape, cfg.width, cfg.depth, seed=cfg.seed)
    model = DiffusionModel(net, Linear(), "velocity")
    if init is not None:
        model.net.load_state_dict(init.net.state_dict())
    objective = PairedFlowMatching(times=times)
    tcfg = cfg.train_config(steps, checkpoints=out_dir is not None)
    stage_dir = None if out_dir is None else out_dir / name
    trainer = Trainer(model, objective, pairs, config=tcfg, out_dir=stage_dir, data_info={**data_info, "stage": name})
    trainer.data_info["event_shape"] = list(event_shape)  # the model's state, not the packed pair
    again = bool(resume and stage_dir is not None and _checkpoint_dirs(stage_dir / "checkpoints"))
    result = trainer.fit(resume=again)
    losses = [h["loss"] for h in result.history]
    return result.ema_model.eval().requires_grad_(False), {"first_loss": losses[0] if losses else None,
                                                           "final_loss": losses[-1] if losses else None}


def run_reflow(
    target: torch.Tensor,
    source: torch.Tensor | str = "noise",
    *,
    coupling: torch.Tensor | None = None,
    config: ReflowConfig | None = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    data_info: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
) -> ReflowResult:
    """Run the rectified-flow pipeline from ``source`` to ``target`` (module docstring).

    Args:
        target: target samples ``x0 (n, *event_shape)`` (data at ``t = 0``).
        source: ``"noise"`` (standard Gaussian) or source samples ``(m, *event_shape)``.
        coupling: optional packed pairs ``(k, 2, *event_shape)`` (:func:`~sdeflow.transport.pack_pairs`,
            target side first) that the first round trains on instead of independent pairs.
        config: :class:`ReflowConfig`.
        out_dir: run folder (stages, couplings, ``report.json``); ``None`` keeps everything in memory.
        resume: continue a run in ``out_dir``: finished stages are loaded, an interrupted one resumes.
        data_info: what the checkpoints record about the data (name, transform).
        log: called with one line per finished stage.

    Returns:
        :class:`ReflowResult` with the EMA models (``rf1``, ``rf2``, ..., ``distill``) and per-stage reports.
    """
    cfg = config if config is not None else ReflowConfig()
    if not isinstance(cfg, ReflowConfig):
        raise TypeError(f"config must be a ReflowConfig; got {type(cfg).__name__}")
    if not isinstance(target, torch.Tensor) or target.ndim < 2 or not target.is_floating_point():
        raise ValueError(f"target must be a floating tensor (n, *event_shape); got {getattr(target, 'shape', type(target).__name__)}")
    event_shape = tuple(target.shape[1:])
    if isinstance(source, str):
        if source != "noise":
            raise ValueError(f"source must be 'noise' or a tensor of source samples; got {source!r}")
    elif not isinstance(source, torch.Tensor) or tuple(source.shape[1:]) != event_shape:
        shape = tuple(source.shape) if isinstance(source, torch.Tensor) else type(source).__name__
        raise ValueError(f"source samples must have the target's item shape {event_shape}, i.e. (m, *{event_shape}); got {shape}")
    if coupling is not None:
        if not isinstance(coupling, torch.Tensor) or tuple(coupling.shape[2:]) != event_shape or coupling.ndim < 3 or coupling.shape[1] != 2:
            shape = tuple(coupling.shape) if isinstance(coupling, torch.Tensor) else type(coupling).__name__
            raise ValueError(
                f"coupling must be packed pairs (k, 2, *{event_shape}) matching the target's items {event_shape} "
                f"(pairs[:, 0] target side, pairs[:, 1] source side); got {shape}"
            )
        if not coupling.is_floating_point() or not bool(torch.isfinite(coupling).all()):
            raise ValueError("coupling must hold finite floating-point values")
    target = target.to(torch.float32)
    source = source if isinstance(source, str) else source.to(torch.float32)
    out = None if out_dir is None else Path(out_dir)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        if not resume and any(out.iterdir()):
            raise FileExistsError(f"out_dir {out} is not empty; continue its run with resume=True or choose a new folder")
    info = {"name": "reflow", "kind": "vector" if len(event_shape) == 1 else "image", **(data_info or {})}
    gen = torch.Generator().manual_seed(cfg.seed)
    say = log or (lambda line: None)
    # Fixed source draws for the straightness measurement (the same for every stage).
    eval_source = _source_samples(source, cfg.n_eval, event_shape, 2_000_000_000 + cfg.seed * 1_000_000, gen)
    models: dict[str, DiffusionModel] = {}
    stages: list[dict[str, Any]] = []

    def finish(name: str, model: DiffusionModel, losses: dict[str, Any], started: tuple[float, float]) -> None:
        report = {"stage": name, "seconds": round(time.perf_counter() - started[0], 2),
                  "cpu_seconds": round(time.process_time() - started[1], 2), **losses,
                  **straightness(model, eval_source, steps=cfg.straightness_steps)}
        stages.append(report)
        models[name] = model
        say(json.dumps(report))

    t0 = (time.perf_counter(), time.process_time())
    if coupling is not None:
        pairs = coupling.to(torch.float32)
    else:
        pairs = pack_pairs(target, _source_samples(source, target.shape[0], event_shape, cfg.seed * 1_000_000, gen))
    model, losses = _train_stage("rf1", pairs, None, cfg.steps, "uniform", cfg, event_shape, out, info, resume)
    finish("rf1", model, losses, t0)
    for k in range(2, cfg.rounds + 1 + (1 if cfg.distill else 0)):
        t0 = (time.perf_counter(), time.process_time())
        file = None if out is None else out / f"coupling{k - 1}.pt"
        if file is not None and resume and file.is_file():
            pairs = torch.load(file, weights_only=True)
        else:
            x1 = _source_samples(source, cfg.n_pairs, event_shape, (cfg.seed + k) * 1_000_000 + 500_000, gen)
            x0_hat = generate_coupling(model, x1, solver=cfg.solver, steps=cfg.solver_steps, progress=cfg.progress)
            pairs = pack_pairs(x0_hat, x1)
            if file is not None:
                _save_tensor(file, pairs)
        distilling = k == cfg.rounds + 1
        name = "distill" if distilling else f"rf{k}"
        steps = cfg.distill_steps if distilling else cfg.reflow_steps
        model, losses = _train_stage(name, pairs, model, steps, "end" if distilling else "uniform", cfg, event_shape, out, info, resume)
        finish(name, model, losses, t0)
    result = ReflowResult(models, stages, out)
    if out is not None:
        atomic_write_bytes(out / "report.json", json.dumps({"config": asdict(cfg), "stages": stages}, indent=2).encode())
    return result


def load_stage(out_dir: str | Path, stage: str) -> DiffusionModel:
    """The EMA model of a finished stage (``rf1``, ``rf2``, ..., ``distill``) of a reflow run folder."""
    model, _, _, _ = load_checkpoint_model(Path(out_dir) / stage)
    return model
