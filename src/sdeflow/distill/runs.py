"""Checkpoints of few-step models: load a consistency model, the teacher's data, the students' runs."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from ..training.checkpoint import load_checkpoint_model, read_checkpoint
from .consistency import ConsistencyFunction

__all__ = ["CONSISTENCY_OBJECTIVES", "load_consistency_model", "teacher_data", "student_from_teacher"]

CONSISTENCY_OBJECTIVES = ("cd", "ct", "ect")
"""Objective names whose checkpoints hold a consistency function's backbone."""


def load_consistency_model(path: str | Path, *, ema: bool = True, device: str | torch.device = "cpu"):
    """A checkpoint of ``sdeflow distill --method cd`` or ``sdeflow train --objective ct|ect`` as a model.

    Returns ``(f, process, config)``: ``f`` the :class:`ConsistencyFunction` on the checkpoint's
    backbone, with the boundary (``t_min``, ``sigma_data``) it was trained with; sample it with
    ``sdeflow.sample(f, process, x, solver="consistency", nfe=...)``. Model space: map samples back with
    ``sdeflow.data.sources.transform_to_data(x, config["data"]["transform"])``.
    """
    ckpt = read_checkpoint(path)
    objective = ckpt.config.get("objective", {})
    if objective.get("name") not in CONSISTENCY_OBJECTIVES:
        raise ValueError(
            f"{ckpt.path} was trained with objective {objective.get('name')!r}, not a consistency objective "
            f"{list(CONSISTENCY_OBJECTIVES)}; load it with sdeflow.training.load_checkpoint_model"
        )
    backbone, process, prediction, config = load_checkpoint_model(path, ema=ema, device=device)
    f = ConsistencyFunction(backbone, process, prediction=prediction, sigma_data=objective["sigma_data"], t_min=objective["t_min"])
    return f.eval(), process, config


def teacher_data(config: dict[str, Any], *, n: int | None = None, seed: int = 0, data: str | None = None):
    """The teacher's training data in its model space: ``(DataSource, x_model)``.

    The data are read without normalization and mapped with the teacher's stored transform
    (``x_model = (x - shift) / scale``), so the student sees exactly the teacher's model space.
    """
    from ..data import get_data

    name = data or config.get("data", {}).get("name")
    if name is None:
        raise ValueError("the teacher's checkpoint does not name its data; pass --data NAME_OR_PATH")
    source = get_data(name, n=n, seed=seed, normalize="none")
    transform = config.get("data", {}).get("transform") or {"shift": 0.0, "scale": 1.0}
    x = source.to_data_space(source.x) if hasattr(source, "to_data_space") else source.x
    shift = torch.as_tensor(transform["shift"], dtype=x.dtype)
    scale = torch.as_tensor(transform["scale"], dtype=x.dtype)
    return source, (x - shift) / scale


def student_from_teacher(teacher):
    """A trainable copy of a teacher :class:`~sdeflow.training.DiffusionModel` (students start from the teacher's weights)."""
    return copy.deepcopy(teacher).train().requires_grad_(True)


def consistency_objective(args, process, model):
    """``sdeflow train --objective ct|ect``: the objective and the model to train (thin CLI support).

    ``ct``: :class:`ConsistencyTraining` with the improved-CT recipe (curriculum over ``--steps``,
    log-normal levels, pseudo-Huber, no EMA target) on the network ``train`` built. ``ect``:
    :class:`EasyConsistencyTuning` from the diffusion checkpoint ``--init`` (its network, process and
    prediction; ``d = --steps // 8``).
    """
    from ..training.checkpoint import load_checkpoint_model
    from .objectives import ConsistencyTraining, EasyConsistencyTuning

    init = getattr(args, "init", None)
    sigma_data = getattr(args, "sigma_data", 0.5)
    if args.objective == "ct":
        if init is not None:
            raise ValueError("--init applies to --objective ect (tuning starts from a trained model); ct trains from scratch")
        return ConsistencyTraining(process, model.prediction, total_steps=args.steps, sigma_data=sigma_data), model
    if init is None:
        raise ValueError("--objective ect needs --init CKPT, the trained diffusion model to start from")
    teacher, tprocess, prediction, _ = load_checkpoint_model(init)
    if getattr(args, "process", None) and args.process != tprocess.name:
        raise ValueError(f"--process {args.process} differs from the --init checkpoint's process {tprocess.name}; omit --process")
    return EasyConsistencyTuning(tprocess, prediction, total_steps=args.steps, sigma_data=sigma_data), student_from_teacher(teacher)
