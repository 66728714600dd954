"""Progressive distillation rounds (Salimans & Ho 2022): each round halves the steps of a DDIM sampler."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .._utils import check_int
from ..training.model import DiffusionModel
from ..training.trainer import TrainConfig, Trainer
from .objectives import ProgressiveDistillation, check_teacher

__all__ = ["PDRound", "progressive_distillation"]


@dataclass
class PDRound:
    """One round's student: sample it with ``sdeflow.sample(model, process, x, solver="ddim", grid=ts)``.

    Attributes:
        steps: the student's DDIM steps (= model calls per sample).
        ts: its grid, float64 ``(steps + 1,)``.
        model: the student (EMA weights).
        train_steps: optimizer steps of the round.
        cpu_seconds: the round's process CPU time.
        final_loss: the last logged loss.
        checkpoint: the round's last checkpoint (with ``out_dir``).
    """

    steps: int
    ts: torch.Tensor
    model: DiffusionModel
    train_steps: int
    cpu_seconds: float
    final_loss: float | None
    checkpoint: Path | None = None


def progressive_distillation(teacher: DiffusionModel, data: torch.Tensor, ts, *, rounds: int,
                             config: TrainConfig | None = None, out_dir: str | Path | None = None,
                             weighting: str = "truncated_snr", resume: bool = False, overwrite: bool = False,
                             data_info: dict | None = None) -> list[PDRound]:
    """Run ``rounds`` rounds of progressive distillation from ``teacher`` on the grid ``ts``.

    Round ``r`` starts its student from the previous round's (EMA) weights (round 1 from the
    teacher's) and trains it with :class:`ProgressiveDistillation` on the grid of ``N / 2^(r-1)``
    steps, so the student of round ``r`` samples with ``N / 2^r`` DDIM steps. ``ts`` must have
    ``N = 2^rounds * m`` steps.

    Args:
        teacher: a :class:`~sdeflow.training.DiffusionModel` (any prediction kind).
        data: training data ``(n, *event_shape)``.
        ts: the teacher's grid (``N + 1`` decreasing times).
        rounds: the number of halvings (``>= 1``).
        config: the training options of every round (``steps`` per round).
        out_dir: a folder for the rounds' run folders ``round1``, ``round2``, ... (checkpoints, resume).
        resume: continue an interrupted run in ``out_dir``: finished rounds are read back from their
            final checkpoints (not retrained), the interrupted one resumes exactly.
        overwrite: replace the rounds' run folders of an earlier run in ``out_dir``.
        data_info: what the checkpoints record about the data (as for :class:`~sdeflow.training.Trainer`).

    Returns:
        One :class:`PDRound` per round.
    """
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be a positive integer (each round halves the steps); got {rounds!r}")
    if not isinstance(teacher, DiffusionModel):
        raise TypeError(f"teacher must be a sdeflow.training.DiffusionModel (the student starts from its weights); got {type(teacher).__name__}")
    check_teacher(teacher, teacher.process)
    from ..grids import validate_ts

    ts = validate_ts(ts, teacher.process, name="ts")
    n = ts.numel() - 1
    if n % (2**rounds):
        raise ValueError(f"ts has {n} steps; {rounds} rounds of halving need a multiple of 2^{rounds} = {2**rounds}")
    config = config or TrainConfig()
    out = []
    current = teacher
    for r in range(1, rounds + 1):
        objective = ProgressiveDistillation(current, teacher.process, teacher.prediction, ts, weighting=weighting)
        student = copy.deepcopy(current).train().requires_grad_(True)
        tic = time.process_time()
        run_dir = None if out_dir is None else Path(out_dir) / f"round{r}"
        started = run_dir is not None and (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").iterdir())
        result = Trainer(student, objective, data, config=config, out_dir=run_dir,
                         data_info=data_info).fit(resume=resume and started, overwrite=overwrite and not resume)
        ts = objective.student_ts
        final = result.history[-1]["loss"] if result.history else None
        out.append(PDRound(ts.numel() - 1, ts, result.ema_model, result.step, time.process_time() - tic, final, result.checkpoint))
        current = result.ema_model
    return out
