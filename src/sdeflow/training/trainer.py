"""The training loop: AdamW, warm-up + cosine learning rate, clipping, EMA, checkpoints, exact resume.

Every random draw of step ``k`` (the minibatch, ``t``, the noise, the coupling, label dropout,
dropout layers) comes from a generator seeded by ``(seed, k)`` alone, and the learning rate is a
pure function of ``k``. The optimizer, the EMA and the weights are saved in every checkpoint. A
run interrupted after step ``k`` and resumed therefore performs exactly the steps an uninterrupted
run performs, and ends with the same weights (bit for bit on the same machine and thread count;
``tests/training/test_trainer.py`` checks it).

Minibatches walk through the data in epochs: epoch ``e`` is a permutation drawn from ``(seed, e)``,
and step ``k`` takes positions ``k B .. (k+1) B - 1`` of the concatenated epochs.
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .. import __version__
from .._threads import num_threads, parse_threads
from .._utils import check_int, check_nonnegative, check_positive
from ..noise.rng import derive_keys, mix64
from .. import distributed as dist_utils
from ._sharded import ShardPlan
from .checkpoint import check_run_dir, clear_run, read_checkpoint, save_checkpoint
from .ema import EMA
from .model import DiffusionModel
from .objectives import Objective

__all__ = ["TrainConfig", "Trainer", "TrainResult", "lr_at", "check_device"]

Evaluator = Callable[[DiffusionModel, int, "Path | None"], dict[str, Any]]

DEFAULT_CKPT_EVERY = 500
"""Steps between checkpoints when :class:`TrainConfig` leaves ``ckpt_every`` at ``None`` and there is an out_dir (as ``sdeflow train``)."""
_TAG_STEP = 0x5354_4550  # streams of the per-step generators
_TAG_EPOCH = 0x4550_4f43


_DEVICE_TYPES = ("cpu", "cuda", "mps")


def check_device(device: str | torch.device, name: str = "device", *, available: bool = True) -> torch.device:
    """``device`` as a :class:`torch.device`: ``cpu``, ``cuda``, ``cuda:<index>`` or ``mps``.

    With ``available`` (the default) the device must also exist on this machine, so that a run fails
    before it loads data or trains rather than at its first tensor.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a device such as 'cpu', 'cuda' or 'cuda:1'; got {device!r}") from err
    if dev.type not in _DEVICE_TYPES:
        raise ValueError(f"{name} must be a cpu, cuda or mps device; got {device!r}")
    if not available:
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{name} {device!r}: CUDA is not available on this machine (torch {torch.__version__}); use 'cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"{name} {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s), numbered from 0")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{name} {device!r}: MPS is not available on this machine; use 'cpu'")
    return dev


@dataclass
class TrainConfig:
    """Options of :class:`Trainer` (all JSON-ready; stored in checkpoints).

    Attributes:
        steps: optimizer steps in all.
        batch_size: minibatch size.
        lr: peak learning rate of AdamW.
        weight_decay, betas: AdamW's (decoupled weight decay, Loshchilov & Hutter 2019).
        warmup_steps: linear warm-up from 0 to ``lr``.
        schedule: ``"cosine"`` (decay to ``min_lr_ratio * lr`` at the last step) or ``"constant"``.
        grad_clip: clip the global gradient norm to this value (``0``: no clipping).
        ema_decay, ema_warmup: the weight average used for sampling (:class:`~sdeflow.training.EMA`).
        label_dropout: probability of replacing a class label by the null label (classifier-free
            guidance training, Ho & Salimans 2022); only for class-conditional networks.
        seed: the seed of every random draw.
        log_every: steps between history entries (mean loss over the interval).
        eval_every: steps between evaluations (0: only at the end, if an evaluator is given).
        ckpt_every: steps between checkpoints (0: only at the end; needs an output folder). ``None``
            (the default): every 500 steps when the Trainer has an ``out_dir`` (as ``sdeflow train``), so a
            killed run loses at most 500 steps, and none without one.
        keep: checkpoints kept.
        progress: show a tqdm progress bar.
        device: where the model and data live.
        micro_batch: examples per forward pass on each process (0: its whole share of
            ``batch_size`` at once); a smaller value accumulates the gradient over micro-batches.
        threads: torch CPU threads during :meth:`Trainer.fit` (``None``: ``SDEFLOW_THREADS`` or 1; an
            integer, ``"auto"`` or ``"torch"``: :mod:`sdeflow._threads`, docs/threads.md).
        fsdp: under several processes, shard the model, its gradients, AdamW's moments and the EMA
            copy over the processes with torch's FSDP2 (``fully_shard``) instead of replicating them
            with DistributedDataParallel (for models too large to hold N times); the same global-batch
            gradient, checkpoints with full tensors (resumable by DDP or one process). No effect on one process.
    """

    steps: int = 2000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 100
    schedule: str = "cosine"
    min_lr_ratio: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    ema_warmup: bool = True
    label_dropout: float = 0.1
    seed: int = 0
    log_every: int = 50
    eval_every: int = 0
    ckpt_every: int | None = None
    keep: int = 2
    progress: bool = True
    device: str = "cpu"
    micro_batch: int = 0
    threads: int | str | None = None
    fsdp: bool = False

    def __post_init__(self) -> None:
        check_int(self.steps, "steps")
        check_int(self.batch_size, "batch_size")
        check_positive(self.lr, "lr")
        check_nonnegative(self.weight_decay, "weight_decay")
        check_int(self.warmup_steps, "warmup_steps", minimum=0)
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be 'cosine' or 'constant'; got {self.schedule!r}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must lie in [0, 1]; got {self.min_lr_ratio}")
        check_nonnegative(self.grad_clip, "grad_clip")
        if not 0.0 <= self.label_dropout < 1.0:
            raise ValueError(f"label_dropout must lie in [0, 1); got {self.label_dropout}")
        check_int(self.seed, "seed", minimum=0)
        for name in ("log_every", "eval_every", "ckpt_every", "keep", "micro_batch"):
            if getattr(self, name) is not None or name != "ckpt_every":
                check_int(getattr(self, name), name, minimum=0)
        if self.threads is not None:
            self.threads = parse_threads(self.threads, "threads")
        betas = tuple(self.betas) if isinstance(self.betas, (tuple, list)) else ()
        if len(betas) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= v < 1.0 for v in betas):
            raise ValueError(f"betas must be two numbers in [0, 1) (AdamW's, e.g. (0.9, 0.999)); got {self.betas!r}")
        self.betas = tuple(float(b) for b in betas)  # type: ignore[assignment]
        if not isinstance(self.ema_decay, (int, float)) or isinstance(self.ema_decay, bool) or not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be a number in [0, 1) (e.g. 0.999); got {self.ema_decay!r}")
        check_device(self.device, "device", available=False)  # availability is checked when training starts
        if not isinstance(self.fsdp, bool):
            raise TypeError(f"fsdp must be True or False; got {self.fsdp!r}")

    # Options that may change between an interrupted run and its resumption.
    _RESUMABLE = ("steps", "log_every", "eval_every", "ckpt_every", "keep", "progress", "device", "threads", "micro_batch", "fsdp")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """Rebuild from :func:`dataclasses.asdict` output (unknown keys are an error)."""
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown training options {sorted(unknown)}; expected some of {sorted(names)}")
        return cls(**data)


def lr_at(step: int, config: TrainConfig) -> float:
    """The learning rate of step ``step`` (0-based): linear warm-up, then cosine or constant.

    ``lr * (step + 1) / warmup_steps`` during warm-up; then with ``u`` the fraction of the
    remaining steps done, ``lr * (m + (1 - m) (1 + cos(pi u)) / 2)``, ``m = min_lr_ratio``.
    """
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return config.lr
    span = max(1, config.steps - config.warmup_steps - 1)
    u = min(1.0, (step - config.warmup_steps) / span)
    m = config.min_lr_ratio
    return config.lr * (m + (1.0 - m) * 0.5 * (1.0 + math.cos(math.pi * u)))


def _derived_seed(seed: int, tag: int, index: int) -> int:
    """A 63-bit seed for stream ``(tag, index)`` of ``seed`` (SplitMix64 mixing, never the global generator)."""
    key = derive_keys(mix64(torch.tensor([seed], dtype=torch.int64)), (tag << 32) + index)
    return int(key[0]) & ((1 << 63) - 1)


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns.

    Attributes:
        model: the trained model (raw weights).
        ema_model: its exponential moving average (what to sample with).
        step: the last completed step.
        history: ``[{"step", "loss", "lr"}, ...]`` every ``log_every`` steps.
        evaluations: ``[{"step", **metrics}, ...]``.
        checkpoint: the last checkpoint folder, or ``None`` without an output folder.
        samples_per_second: training throughput (optimizer steps only, no evaluation or saving).
        completed: ``False`` when stopped early by ``stop_at``.
    """

    model: DiffusionModel
    ema_model: DiffusionModel
    step: int
    history: list[dict[str, float]] = field(default_factory=list)
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: Path | None = None
    samples_per_second: float = 0.0
    completed: bool = True


class Trainer:
    """Train a :class:`DiffusionModel` on a data tensor with an :class:`Objective`.

    Args:
        model: the model (its network's weights are updated in place).
        objective: the loss (its process must be the model's).
        data: training data in model space, ``(n, *event_shape)``.
        labels: ``(n,)`` int64 class labels (used when the network is class-conditional).
        config: :class:`TrainConfig`.
        out_dir: the run folder for checkpoints, sample grids and the metrics log (``None``: nothing written).
        evaluator: ``evaluator(ema_model, step, out_dir) -> dict`` of metrics, run every
            ``eval_every`` steps and at the end.
        data_info: what a checkpoint needs to know about the data (name, kind, ``transform`` back
            to data space, ``num_classes``); ``event_shape`` is filled in.
    """

    def __init__(
        self,
        model: DiffusionModel,
        objective: Objective,
        data: torch.Tensor,
        *,
        labels: torch.Tensor | None = None,
        config: TrainConfig | None = None,
        out_dir: str | Path | None = None,
        evaluator: Evaluator | None = None,
        data_info: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(model, DiffusionModel):
            raise TypeError(f"model must be a sdeflow.training.DiffusionModel; got {type(model).__name__}")
        if not isinstance(objective, Objective):
            raise TypeError(f"objective must be a sdeflow.training Objective; got {type(objective).__name__}")
        if objective.process is not model.process and objective.process.config() != model.process.config():
            raise ValueError(f"the objective's process {objective.process!r} differs from the model's {model.process!r}")
        if objective.prediction != model.prediction:
            raise ValueError(
                f"the objective trains a {objective.prediction!r} prediction but the model predicts {model.prediction!r}; "
                "use the same prediction (EDM preconditioning predicts 'x0')"
            )
        if not isinstance(data, torch.Tensor) or data.ndim < 2 or not data.is_floating_point() or data.shape[0] < 1:
            shape = tuple(data.shape) if isinstance(data, torch.Tensor) else type(data).__name__
            raise ValueError(f"data must be a floating tensor (n, *event_shape) with n >= 1; got {shape}")
        if data.numel() == 0:
            raise ValueError(f"data must hold at least one value per item; got shape {tuple(data.shape)}")
        if not bool(torch.isfinite(data).all()):
            bad = (~torch.isfinite(data)).reshape(data.shape[0], -1).any(dim=1).nonzero().reshape(-1)
            raise ValueError(
                f"data holds NaN or infinite values in {bad.numel()} of {data.shape[0]} items (first rows {bad[:5].tolist()}); "
                "training needs finite data: drop or fix those items"
            )
        if labels is not None and (not isinstance(labels, torch.Tensor) or tuple(labels.shape) != (data.shape[0],)):
            shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
            raise ValueError(f"labels must be a (n,) = ({data.shape[0]},) tensor; got {shape}")
        if labels is not None and model.num_classes > 0:
            # Unconditional models ignore labels (a labelled data set trains either kind of model).
            if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
                raise TypeError(f"labels must be an integer tensor of class indices; got dtype {labels.dtype}")
            if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= model.num_classes):
                raise ValueError(
                    f"labels must be class indices in [0, {model.num_classes}) for a model with num_classes="
                    f"{model.num_classes}; got values in [{int(labels.min())}, {int(labels.max())}]"
                )
        self.config = config if config is not None else TrainConfig()
        if self.config.ckpt_every is None:
            self.config = replace(self.config, ckpt_every=DEFAULT_CKPT_EVERY if out_dir is not None else 0)
        if self.config.ckpt_every and out_dir is None:
            raise ValueError("ckpt_every > 0 needs an out_dir to write checkpoints to")
        self.model = model
        self.objective = objective
        self.data = data
        self.labels = labels if model.num_classes > 0 else None
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.evaluator = evaluator
        # Packed data (Ambient Diffusion's observations and masks) declare the model's event shape.
        shape = objective.event_shape_of(data) if hasattr(objective, "event_shape_of") else data.shape[1:]
        self.data_info = {**(data_info or {}), "event_shape": list(shape)}
        self.data_info.setdefault("num_classes", model.num_classes)
        self._perm_cache: tuple[int, torch.Tensor] | None = None

    # ------------------------------------------------------------------ configuration
    def run_config(self) -> dict[str, Any]:
        """The JSON config stored in every checkpoint (enough to rebuild and sample the model)."""
        process = self.model.process
        return {
            "sdeflow_version": __version__,
            "process": {"name": process.name, "config": process.config()},
            "model": self.model.config(),
            "objective": self.objective.config(),
            "stochastic_sampling_valid": self.objective.stochastic_sampling_valid,
            "data": self.data_info,
            "train": asdict(self.config),
        }

    # ------------------------------------------------------------------ randomness
    def _generator(self, step: int, device: torch.device) -> torch.Generator:
        return torch.Generator(device=device).manual_seed(_derived_seed(self.config.seed, _TAG_STEP, step))

    def _epoch_perm(self, epoch: int) -> torch.Tensor:
        if self._perm_cache is None or self._perm_cache[0] != epoch:
            gen = torch.Generator().manual_seed(_derived_seed(self.config.seed, _TAG_EPOCH, epoch))
            self._perm_cache = (epoch, torch.randperm(self.data.shape[0], generator=gen))
        return self._perm_cache[1]

    def batch_indices(self, step: int) -> torch.Tensor:
        """Indices of step ``step``'s minibatch (positions ``k B .. (k+1) B - 1`` of the epoch stream)."""
        n, b = self.data.shape[0], self.config.batch_size
        start = step * b
        out = []
        while b > 0:
            epoch, offset = divmod(start, n)
            take = min(b, n - offset)
            out.append(self._epoch_perm(epoch)[offset : offset + take])
            start += take
            b -= take
        return torch.cat(out)

    # ------------------------------------------------------------------ the loop
    def fit(self, *, resume: bool = False, stop_at: int | None = None, overwrite: bool = False) -> TrainResult:
        """Train to ``config.steps`` (from the newest checkpoint in ``out_dir`` with ``resume=True``).

        A new run (``resume=False``) refuses an ``out_dir`` that already holds a run, since its
        checkpoints would mix with this run's; ``overwrite=True`` deletes the old run's checkpoints,
        samples and metrics log (:func:`~sdeflow.training.checkpoint.clear_run`) once every check has
        passed, just before the first step.

        ``stop_at`` ends the run after that many steps in all, with a checkpoint (as a kill
        would, minus the loss of the steps since the last checkpoint). Ctrl-C (SIGINT) is held
        until the step in progress completes; then a checkpoint is written and
        ``KeyboardInterrupt`` raised, so no work is lost and the run resumes exactly.
        """
        with num_threads(self.config.threads):
            return self._fit(resume, stop_at, overwrite)

    def _fit(self, resume: bool, stop_at: int | None, overwrite: bool) -> TrainResult:
        cfg = self.config
        if self.out_dir is not None:
            check_run_dir(self.out_dir, resume=resume, overwrite=overwrite)
        device = check_device(cfg.device)
        end_check = cfg.steps if stop_at is None else check_int(stop_at, "stop_at")
        model = self.model.to(device).train()
        ema = EMA(model, cfg.ema_decay, cfg.ema_warmup)
        history: list[dict[str, float]] = []
        evaluations: list[dict[str, Any]] = []
        start = 0
        running, count = 0.0, 0
        opt_state = None
        if resume:
            start, history, evaluations, running, count, opt_state = self._restore(model, ema)
        plan = ShardPlan(cfg.batch_size, cfg.micro_batch, cfg.fsdp)  # this process's rows of the global batch
        net = plan.wrap(model, device, ema.shadow)  # DDP, or FSDP shards of the model and the EMA (full weights loaded above)
        # The optimizer on the wrapped model's parameters (FSDP replaces them); its first creation imports
        # torch._dynamo (seconds on a loaded machine), done before the run folder appears.
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay
        )
        if opt_state is not None:
            optimizer.load_state_dict(plan.local_optimizer_state(opt_state, optimizer))
        if not resume and self.out_dir is not None:
            out_dir = self.out_dir  # rank 0 alone clears and makes the run folder
            dist_utils.on_main(lambda: (clear_run(out_dir) if overwrite else None, out_dir.mkdir(parents=True, exist_ok=True)))
        end = min(cfg.steps, end_check)
        data = self.data.to(device)
        labels = self.labels.to(device) if self.labels is not None else None
        num_classes = model.num_classes

        bar = None
        if cfg.progress and dist_utils.is_main():
            from .._utils import progress_bar

            bar = progress_bar(total=cfg.steps, initial=start, desc="training", unit="step", dynamic_ncols=True)
        train_time, trained = 0.0, 0
        done = start
        last_ckpt: Path | None = None
        interrupted: list[bool] = []
        previous_handler = None
        if threading.current_thread() is threading.main_thread():
            previous_handler = signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))
        try:
            for step in range(start, end):
                tic = time.perf_counter()
                lr = lr_at(step, cfg)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                def loss_of(fn, rows=None, step=step):
                    # The step's whole global batch, drawn afresh from its generator: every process and
                    # micro-batch sees the same data, times, noise and label dropout at each position.
                    gen = self._generator(step, device)
                    idx = self.batch_indices(step).to(device)
                    x0 = data[idx]
                    y = None
                    if labels is not None:
                        y = labels[idx]
                        if cfg.label_dropout > 0:
                            drop = torch.rand(y.shape, generator=gen, device=device) < cfg.label_dropout
                            y = torch.where(drop, torch.full_like(y, num_classes), y)
                    # Dropout layers draw from the global generator: fork it, seeded by the step (and the rows).
                    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                        torch.manual_seed(_derived_seed(cfg.seed, _TAG_STEP + 1, step) + (rows.start if rows else 0))
                        # Objectives that need the step or the averaged model (consistency targets) declare it.
                        extra = self.objective.training_inputs(step, ema.shadow) if hasattr(self.objective, "training_inputs") else {}
                        return self.objective.loss(fn, x0, generator=gen, labels=y, **extra)

                optimizer.zero_grad(set_to_none=True)
                if plan.needed:  # several processes or micro-batches
                    loss = plan.backward(net, loss_of)
                else:
                    out = loss_of(model)
                    out.loss.backward()
                    loss = float(out.loss.detach())
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                ema.update(model)
                if not math.isfinite(loss):
                    raise FloatingPointError(
                        f"the training loss became {loss} at step {step}; lower the learning rate, "
                        "clip gradients (grad_clip) or check the weighting at the ends of [t_lo, t_hi]"
                    )
                train_time += time.perf_counter() - tic
                trained += cfg.batch_size
                running += loss
                count += 1
                done = step + 1
                if cfg.log_every and done % cfg.log_every == 0:
                    history.append({"step": done, "loss": running / count, "lr": lr})
                    running, count = 0.0, 0
                if bar is not None:
                    bar.update(1)
                    if done % 10 == 0 or done == end:
                        bar.set_postfix(loss=f"{loss:.4g}", samples_s=f"{trained / max(train_time, 1e-9):.0f}")
                if self.evaluator is not None and cfg.eval_every and done % cfg.eval_every == 0 and done < cfg.steps:
                    evaluations.append(self._evaluate_on_ranks(plan.full_copy(ema.shadow), done))
                save = lambda: self._save(done, plan, model, ema, optimizer, history, evaluations, trained, train_time, (running, count))  # noqa: E731
                if cfg.ckpt_every and done % cfg.ckpt_every == 0 and done < end:
                    last_ckpt = save()  # written once, by rank 0
                if dist_utils.any_rank(bool(interrupted)):
                    if self.out_dir is not None:
                        save()
                    raise KeyboardInterrupt(f"training interrupted after step {done}; resume with resume=True / --resume")
        finally:
            if previous_handler is not None:
                signal.signal(signal.SIGINT, previous_handler)
            if bar is not None:
                bar.close()
        completed = end >= cfg.steps
        ema_model = plan.full_copy(ema.shadow)  # under FSDP: the full weights, gathered
        if completed and self.evaluator is not None:
            evaluations.append(self._evaluate_on_ranks(ema_model, end))
        if self.out_dir is not None:
            last_ckpt = self._save(end, plan, model, ema, optimizer, history, evaluations, trained, train_time, (running, count))
        return TrainResult(
            model=plan.full_copy(model).eval(),
            ema_model=ema_model,
            step=end,
            history=history,
            evaluations=evaluations,
            checkpoint=last_ckpt,
            samples_per_second=trained / train_time if train_time > 0 else 0.0,
            completed=completed,
        )

    def _evaluate_on_ranks(self, ema_model: DiffusionModel, step: int) -> dict[str, Any]:
        """The evaluation, the same entry on every process: an evaluator that declares ``sharded = True``
        (:class:`~sdeflow.training.VectorEvaluator`, :class:`~sdeflow.training.DigitsEvaluator`) runs on
        every process and shares its work out itself; any other runs on rank 0 alone."""
        if getattr(self.evaluator, "sharded", False):
            return self._evaluate(ema_model, step)
        return dist_utils.on_main(lambda: self._evaluate(ema_model, step), share=True)

    def _evaluate(self, ema_model: DiffusionModel, step: int) -> dict[str, Any]:
        with torch.no_grad():
            metrics = dict(self.evaluator(ema_model, step, self.out_dir))
        entry = {"step": step, **metrics}
        if self.out_dir is not None and dist_utils.is_main():
            self.out_dir.mkdir(parents=True, exist_ok=True)
            with open(self.out_dir / "metrics.jsonl", "a") as fh:
                fh.write(json.dumps(entry, default=float) + "\n")
        return entry

    def _save(self, step, plan, model, ema, optimizer, history, evaluations, trained, train_time, running) -> Path:
        """Write a checkpoint on rank 0 (every process calls this; under FSDP all of them gather the full tensors first)."""
        if plan.fsdp:
            weights, ema_weights = plan.full_state(model.net), plan.full_state(ema.shadow.net)
            net, ema_net, opt = _Stateful(weights), _Stateful(ema_weights), _Stateful(plan.full_optimizer_state(optimizer))
        else:
            net, ema_net, opt = model.net, ema.shadow.net, optimizer
        return dist_utils.on_main(lambda: self._write(step, net, ema_net, opt, ema, history, evaluations, trained, train_time, running),
                                  share=True)

    def _write(self, step, net, ema_net, optimizer, ema, history, evaluations, trained, train_time, running) -> Path:
        card = {
            "step": step,
            "loss": history[-1]["loss"] if history else None,
            "samples_per_second": trained / train_time if train_time > 0 else None,
            "evaluation": evaluations[-1] if evaluations else None,
            "sample_with": "ema weights" + ("" if self.objective.stochastic_sampling_valid else "; deterministic solvers only (OT coupling)"),
        }
        # The partial sum of the loss since the last history entry, so that a resumed run logs the same history.
        state = {"ema": ema.state(), "history": history, "evaluations": evaluations, "running_loss": list(running)}
        return save_checkpoint(
            self.out_dir, step=step, model=net, ema_model=ema_net, optimizer=optimizer,
            config=self.run_config(), metrics=card, state=state, keep=self.config.keep,
        )

    def _restore(self, model: DiffusionModel, ema: EMA):
        if self.out_dir is None:
            raise ValueError("resume=True needs the out_dir of the run to resume")
        try:
            ckpt = read_checkpoint(self.out_dir)
        except FileNotFoundError as err:
            raise FileNotFoundError(f"nothing to resume in {self.out_dir}: {err}") from err
        mine = self.run_config()
        for key in ("process", "model", "objective", "data"):
            if ckpt.config.get(key) != mine[key]:
                raise ValueError(
                    f"cannot resume {ckpt.path}: its {key} configuration {ckpt.config.get(key)} differs from this "
                    f"run's {mine[key]}; resume with the same options or use a new output folder"
                )
        theirs = {k: v for k, v in ckpt.config["train"].items() if k not in TrainConfig._RESUMABLE}
        ours = {k: v for k, v in mine["train"].items() if k not in TrainConfig._RESUMABLE}
        if json.loads(json.dumps(theirs)) != json.loads(json.dumps(ours)):
            diff = sorted(k for k in ours if theirs.get(k) != ours[k])
            raise ValueError(f"cannot resume {ckpt.path} exactly: training options {diff} differ; keep them as they were")
        if ckpt.step > self.config.steps:
            raise ValueError(
                f"the checkpoint {ckpt.path} is at step {ckpt.step}, beyond steps={self.config.steps}; "
                f"resume with steps >= {ckpt.step} (--steps)"
            )
        device = next(model.parameters()).device
        model.net.load_state_dict(ckpt.weights(ema=False))
        ema.shadow.net.load_state_dict(ckpt.weights(ema=True))
        ema.shadow.to(device)
        ema.load_state(ckpt.state["ema"])
        running, count = ckpt.state.get("running_loss", [0.0, 0])
        # The optimizer is built after the model is wrapped (FSDP replaces its parameters): its state is loaded then.
        return (ckpt.step, list(ckpt.state.get("history", [])), list(ckpt.state.get("evaluations", [])), float(running), int(count),
                ckpt.optimizer_state())


class _Stateful:
    """A state dict standing in for a module or an optimizer when writing a checkpoint (FSDP's full tensors)."""

    def __init__(self, state: dict[str, Any]) -> None:
        self._state = state

    def state_dict(self) -> dict[str, Any]:
        return self._state
