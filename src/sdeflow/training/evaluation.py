"""Sampling a trained model and measuring it: 2-D/vector metrics, the digits feature space, figures.

* :func:`draw_samples`: ``n`` samples of a model with any registered solver, from per-sample seeds.
* :class:`VectorEvaluator`: exact Wasserstein-2 (POT), sliced W2 and MMD against held-out data,
  and a scatter plot for 2-D data.
* :class:`DigitsEvaluator`: the Frechet distance in the feature space of the shipped digits
  classifier (:mod:`sdeflow.data.digits`) against the held-out digits, with its floor (training
  digits vs held-out), the fraction of samples the classifier labels with confidence above 0.5,
  and an image grid.

Both are :class:`~sdeflow.training.Trainer` evaluators: ``evaluator(model, step, out_dir) -> dict``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .. import plots
from .._utils import check_int
from ..data.sources import transform_to_data

__all__ = ["draw_samples", "VectorEvaluator", "DigitsEvaluator", "digits_scores"]


def draw_samples(
    model,
    process,
    event_shape: Sequence[int],
    n: int,
    *,
    solver: str | None = "heun",
    steps: int | None = None,
    nfe: int | None = None,
    seed: int = 0,
    label: int | torch.Tensor | None = None,
    guidance: float = 1.0,
    batch_size: int = 4096,
    return_trajectory: bool = False,
    device: str | torch.device = "cpu",
    stats: dict[str, Any] | None = None,
    distributed: bool = False,
    **solver_options: Any,
):
    """``n`` model-space samples ``(n, *event_shape)`` from ``model`` with ``solver`` (``None``:
    :func:`sdeflow.sample`'s default configuration).

    Sample ``i`` starts from the prior noise of seed ``seed + i`` (and its Brownian path for a
    stochastic solver), so it does not depend on ``batch_size``. With ``label`` the model is the
    class-conditional :meth:`~sdeflow.training.DiffusionModel.guided` one. With
    ``return_trajectory`` it returns ``(samples, trajectory (steps + 1, n, *event_shape), ts (steps + 1,))``.
    A ``stats`` dict receives ``nfe``, the model calls per sample (the most of any batch for adaptive
    solvers), and ``steps``.

    With ``distributed`` (call it on every process of a ``torch.distributed`` run) the batches of
    ``batch_size`` seeds are shared out over the processes and gathered in seed order on every process
    (:func:`sdeflow.distributed.sample_seed_range`): the same samples, bit for bit, as one process.
    """
    from ..sample import sample

    check_int(n, "n")
    check_sample_memory(n, event_shape)
    if distributed:
        if return_trajectory:
            raise ValueError("return_trajectory is not available with distributed=True (only the samples are gathered)")
        from .. import distributed as dist_utils

        def chunk_of(first: int, m: int):
            info: dict[str, Any] = {}
            x = draw_samples(model, process, event_shape, m, solver=solver, steps=steps, nfe=nfe, seed=first,
                             label=label if label is None or isinstance(label, int) else label[first - seed : first - seed + m],
                             guidance=guidance, batch_size=m, device=device, stats=info, **solver_options)
            return x, info

        out, infos = dist_utils.sample_seed_range(chunk_of, seed, n, batch_size)
        if stats is not None and infos:
            stats["nfe"] = max([int(stats.get("nfe", 0))] + [i["nfe"] for i in infos])
            stats["steps"] = infos[-1]["steps"]
        return out
    grid = solver_options.pop("grid", None)
    if solver is None and not solver_options and grid is None:
        # The default configuration: chosen once for every batch (one pilot for the model, or for the guided
        # model with the labels repeated over the pilot's samples), else the fixed rule.
        solver, grid = _default_configuration(model, process, event_shape, steps, nfe, label, guidance, device)
    chunks, trajs = [], []
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        x = process.prior_sample((m, *event_shape), seeds=seed + start, device=device)
        fn = model
        if label is not None:
            lab = label if isinstance(label, int) else label[start : start + m]
            fn = model.guided(lab, guidance)
        with torch.no_grad():
            res = sample(
                fn, process, x, prediction=getattr(fn, "prediction", None), solver=solver, steps=steps, nfe=nfe,
                grid=grid, seed=seed + start, return_trajectory=return_trajectory, **solver_options,
            )
        chunks.append(res.samples)
        if stats is not None:
            stats["nfe"] = max(int(stats.get("nfe", 0)), int(res.nfe))
            stats["steps"] = len(res.ts) - 1
        if return_trajectory:
            trajs.append(res.trajectory)
    out = torch.cat(chunks)
    if return_trajectory:
        return out, torch.cat(trajs, dim=1), res.ts
    return out


def _default_configuration(model, process, event_shape, steps, nfe, label, guidance, device):
    """``(solver, grid)`` of :func:`sdeflow.sample`'s default configuration for ``draw_samples``: the pilot's
    choice (:mod:`sdeflow.pilot`) up to ``PILOT_MAX_NFE`` calls, else (or where the pilot cannot run, with a
    warning) the fixed rule of the budget."""
    from ..pilot import PILOT_MAX_NFE, choose_or_warn, pilot_size
    from ..sample import DEFAULT_STEPS, default_configuration_grid, default_solver

    budget = steps if steps is not None else (nfe if nfe is not None else DEFAULT_STEPS)
    if budget <= PILOT_MAX_NFE:
        fn = model
        if label is not None:
            k = pilot_size(event_shape)
            lab = label if isinstance(label, int) else torch.as_tensor(label)[torch.arange(k) % len(label)]
            fn = model.guided(lab, guidance)
        choice = choose_or_warn(fn, process, event_shape, nfe=budget, prediction=getattr(fn, "prediction", None), device=device)
        if choice is not None:
            return choice.candidate.solver_object(), choice.candidate.grid
    return default_solver(budget), default_configuration_grid(process, budget)


def physical_memory() -> int | None:
    """This machine's physical memory in bytes (``None`` where the system does not say)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


def check_sample_memory(n: int, event_shape: Sequence[int], bytes_per_value: int = 4, name: str = "n") -> None:
    """Refuse ``n`` samples of ``event_shape`` whose result alone would not fit in this machine's memory.

    The bound is the physical memory (:func:`physical_memory`): a request beyond it can only end in an
    allocation failure after minutes of sampling (or swap), so it is refused before any work.
    """
    total = physical_memory()
    need = n * int(np.prod(tuple(event_shape), dtype=np.int64)) * bytes_per_value
    if total is not None and need > total:
        raise ValueError(
            f"{name} = {n} samples of shape {tuple(event_shape)} need {need / 2**30:.3g} GiB for the result alone, "
            f"more than this machine's memory ({total / 2**30:.3g} GiB); ask for fewer samples ({name})"
        )


# ------------------------------------------------------------------------------------ evaluators
class VectorEvaluator:
    """Exact W2, sliced W2 and MMD of model samples (data space) against held-out data.

    Args:
        heldout: held-out data in data space ``(m, *event_shape)``.
        transform: the ``{"shift", "scale"}`` map from model space to data space (or ``None``).
        n: samples drawn per evaluation (exact W2 uses at most ``w2_points`` of each set).
        solver, steps: how to sample.
        seed: seeds ``seed .. seed + n - 1``.
        w2_points: points per set for the exact W2 (the cost is cubic).
        plot: write ``samples/step_<8-digit step>.png`` (e.g. ``step_00001500.png``) (2-D data only).
        chunk: seeds per sampling batch, the unit shared out over the processes of a distributed run
            (the samples, hence the metrics, are those of one process with the same ``chunk``).

    ``sharded = True``: under ``torch.distributed`` the trainer calls it on every process; the samples
    are drawn on shards and gathered in seed order, the metrics computed on rank 0 and shared.
    """

    sharded = True

    def __init__(
        self,
        heldout: torch.Tensor,
        transform: dict[str, Any] | None = None,
        *,
        n: int = 2000,
        solver: str | None = "heun",
        steps: int = 50,
        seed: int = 0,
        w2_points: int = 2000,
        plot: bool = True,
        chunk: int = 250,
    ) -> None:
        self.heldout = heldout
        self.chunk = check_int(chunk, "chunk")
        self.transform = transform
        self.n = check_int(n, "n")
        self.solver = solver
        self.steps = steps
        self.seed = seed
        self.w2_points = check_int(w2_points, "w2_points")
        self.plot = plot

    def __call__(self, model, step: int, out_dir: Path | None) -> dict[str, Any]:
        from .. import distributed as dist_utils

        event_shape = tuple(self.heldout.shape[1:])
        x = draw_samples(model, model.process, event_shape, self.n, solver=self.solver, steps=self.steps, seed=self.seed,
                         batch_size=self.chunk, distributed=True)
        x = transform_to_data(x, self.transform)
        return dist_utils.on_main(lambda: self._metrics(x, step, out_dir), share=True)

    def _metrics(self, x: torch.Tensor, step: int, out_dir: Path | None) -> dict[str, Any]:
        from ..metrics import mmd, sliced_wasserstein2, wasserstein2

        k = min(self.w2_points, x.shape[0], self.heldout.shape[0])
        out = {
            "w2": wasserstein2(x[:k], self.heldout[:k]),
            "sliced_w2": sliced_wasserstein2(x, self.heldout[: self.n]),
            "mmd": mmd(x[:k], self.heldout[:k]),
            "w2_points": k,
            "solver": self.solver,
            "steps": self.steps,
        }
        if self.plot and out_dir is not None and tuple(x.shape[1:]) == (2,):
            plots.scatter(Path(out_dir) / "samples" / f"step_{step:08d}.png", x, reference=self.heldout[: self.n],
                          labels=("samples", "held-out data"), title=f"step {step}")
        return out


def digits_scores(samples: torch.Tensor, classifier=None, reference: torch.Tensor | None = None,
                  chunk: int | None = None) -> dict[str, Any]:
    """Frechet distance of digit ``samples`` (data space, ``(n, 1, 8, 8)`` in ``[-1, 1]``) and their recognizability.

    Features are the shipped classifier's penultimate layer. Returns ``frechet_distance`` (to
    ``reference``, default the held-out digits), ``frechet_floor`` (the training digits to the same
    reference: what real data scores), ``confident_fraction`` (share of samples whose top class
    probability exceeds 0.5), ``mean_confidence`` and ``class_counts``.

    With ``chunk`` the features are computed ``chunk`` images at a time, the chunks shared out over the
    processes of a distributed run and gathered in order (:func:`sdeflow.distributed.map_chunks`; call it
    on every process): the same figures as one process with the same ``chunk``.
    """
    from .. import distributed as dist_utils
    from ..data.digits import digits_classifier, load_digits
    from ..metrics import frechet_distance

    classifier = classifier or digits_classifier()
    reference = load_digits("test").images if reference is None else reference
    train = load_digits("train").images

    def features(images: torch.Tensor) -> torch.Tensor:
        if chunk is None:
            return classifier.features(images).double()
        return dist_utils.map_chunks(lambda part: classifier.features(part).double(), images, chunk)

    with torch.no_grad():
        f_ref = features(reference)
        f_gen = features(samples.clamp(-1, 1))
        f_train = features(train)
        probs = torch.softmax(classifier.head(f_gen.float()), dim=-1)
    conf, label = probs.max(dim=-1)
    return {
        "frechet_distance": frechet_distance(f_gen, f_ref),
        "frechet_floor": frechet_distance(f_train, f_ref),
        "confident_fraction": float((conf > 0.5).float().mean()),
        "mean_confidence": float(conf.mean()),
        "class_counts": torch.bincount(label, minlength=10).tolist(),
    }


class DigitsEvaluator:
    """Frechet distance (with floor) and classifier confidence of generated digits, and an image grid.

    Draws ``n`` samples (default 1438, the size of the training split, so that the model and the
    floor are measured at the same sample sizes). ``chunk`` seeds (and images) per batch are the unit
    shared out over the processes of a distributed run (``sharded = True``: the trainer calls it on
    every process); every figure equals one process's with the same ``chunk``.
    """

    sharded = True

    def __init__(self, *, n: int = 1438, solver: str = "heun", steps: int = 30, seed: int = 0, grid: int = 100,
                 chunk: int = 256) -> None:
        self.n = check_int(n, "n")
        self.chunk = check_int(chunk, "chunk")
        self.solver = solver
        self.steps = steps
        self.seed = seed
        self.grid = grid

    def __call__(self, model, step: int, out_dir: Path | None) -> dict[str, Any]:
        from .. import distributed as dist_utils

        x = draw_samples(model, model.process, (1, 8, 8), self.n, solver=self.solver, steps=self.steps, seed=self.seed,
                         batch_size=self.chunk, distributed=True)
        out = digits_scores(x, chunk=self.chunk)
        out.update(solver=self.solver, steps=self.steps, n=self.n)
        if out_dir is not None and self.grid:
            dist_utils.on_main(lambda: plots.image_grid(Path(out_dir) / "samples" / f"step_{step:08d}.png", x[: self.grid],
                                                        nrow=10, title=f"step {step}"))
        return out
