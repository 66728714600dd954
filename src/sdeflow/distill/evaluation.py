"""Few-step samples measured as every sdeflow model is: W2 with its floor for vectors, Frechet distance for digits."""

from __future__ import annotations

from typing import Any

import torch

from ..data.sources import transform_to_data

__all__ = ["evaluate_few_step"]


@torch.no_grad()
def evaluate_few_step(runs, process, source, data_config: dict[str, Any], *, n: int = 1000, seed: int = 0) -> list[dict[str, Any]]:
    """Sample each ``(solver, model, ts, nfe)`` of ``runs`` ``n`` times and measure it.

    Sample ``i`` starts from ``process.prior_sample`` with seed ``seed + i``; the consistency sampler's
    injected noise comes from seeds ``seed + 10^6 + i``. ``ts`` is an explicit grid (progressive
    distillation's students) or ``None`` (``nfe`` model calls on the solver's default grid).
    Digits: :func:`sdeflow.training.digits_scores` (Frechet distance in the shipped classifier's
    features against the held-out digits, with its floor, and the classifier's confidence). Vectors
    with held-out data: exact W2 (POT) against ``n`` held-out points.
    """
    import sdeflow

    shape = (n, *data_config["event_shape"])
    x = process.prior_sample(shape, seeds=seed)
    rows = []
    for solver, model, ts, nfe in runs:
        kwargs = {"grid": ts} if ts is not None else {"nfe": nfe}
        if solver == "consistency":
            kwargs["seed"] = seed + 10**6
        res = sdeflow.sample(model, process, x, solver=solver, **kwargs)
        samples = transform_to_data(res.samples, data_config.get("transform"))
        row: dict[str, Any] = {"solver": solver, "nfe": res.nfe}
        if data_config.get("name") == "digits":
            from ..training import digits_scores

            row.update(digits_scores(samples))
        elif getattr(source, "heldout", None) is not None and source.kind == "vector":
            from ..metrics import wasserstein2

            k = min(n, source.heldout.shape[0])
            row["wasserstein2"] = wasserstein2(samples[:k], source.heldout[:k])
        rows.append(row)
    return rows
