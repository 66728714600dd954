"""One optimizer step's gradient over a global batch shared by processes and micro-batches.

The global batch of ``B`` examples of step ``k`` is the same whatever the number of processes
``N``: its data indices, training times, noise, coupling and label dropout are all drawn on every
process from the step's generator ``(seed, k)`` (:class:`~sdeflow.training.Trainer`), and example
``g`` of the batch gets the draws of position ``g``. Process ``r`` evaluates the network only on its
rows ``shard_range(B, r, N)`` (in micro-batches of ``micro_batch`` rows when its share does not fit
at once: gradient accumulation) and back-propagates ``sum_{g in rows} l_g * N / B``;
DistributedDataParallel averages the gradients over the ``N`` processes, so every process holds

    grad (1/B) sum_{g=1}^{B} l_g,

the gradient of the single-process loss, up to the order of the floating-point sums (the
all-reduce and the accumulation add the rows' contributions in an order that depends on ``N``).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Callable

import torch
from torch import nn

from .. import distributed as dist_utils
from .._utils import check_int


class _RowsOf:
    """The model evaluated on rows ``rows`` of the batch only (zeros elsewhere, carrying no gradient).

    The objective computes its per-example losses on the whole global batch (so that every draw is
    the one of its global position); only this process's rows are used for the gradient.
    """

    def __init__(self, net: nn.Module, rows: range) -> None:
        self.net = net
        self.rows = rows
        self.module = net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net

    def __getattr__(self, name: str) -> Any:  # prediction, process, num_classes, ... of the model
        return getattr(self.module, name)

    def __call__(self, x: torch.Tensor, t: torch.Tensor, *labels: torch.Tensor) -> torch.Tensor:
        a, b = self.rows.start, self.rows.stop
        t_rows = t[a:b] if t.ndim else t
        part = self.net(x[a:b], t_rows, *(y[a:b] for y in labels))
        before = part.new_zeros((a, *part.shape[1:]))
        after = part.new_zeros((x.shape[0] - b, *part.shape[1:]))
        return torch.cat((before, part, after))


class ShardPlan:
    """This process's rows of a global batch of ``batch_size``, in micro-batches of ``micro_batch`` (0: all at once)."""

    def __init__(self, batch_size: int, micro_batch: int = 0) -> None:
        self.world = dist_utils.world_size()
        self.batch = batch_size
        if batch_size < self.world:
            raise ValueError(
                f"batch_size={batch_size} (the global batch) must be >= the number of processes {self.world}; "
                "every process needs at least one example"
            )
        rows = dist_utils.shard_range(batch_size, dist_utils.rank(), self.world)
        micro = check_int(micro_batch, "micro_batch", minimum=0) or len(rows)
        self.pieces = [range(a, min(a + micro, rows.stop)) for a in range(rows.start, rows.stop, micro)]

    @property
    def needed(self) -> bool:
        """Whether the step differs from a plain single-process step (several processes or micro-batches)."""
        return self.world > 1 or len(self.pieces) > 1

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """``model`` in DistributedDataParallel when there are several processes (itself otherwise)."""
        if self.world == 1:
            return model
        ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def backward(self, net: nn.Module, loss_of: Callable[[Callable, range], Any]) -> float:
        """Accumulate the gradient of the global mean loss into ``net``'s parameters; returns that mean loss.

        ``loss_of(model, rows)`` draws the step's global batch afresh and returns the objective's
        :class:`~sdeflow.training.LossOutput` for ``model`` (which evaluates the network on ``rows``).
        """
        total = 0.0
        for j, rows in enumerate(self.pieces):
            sync = j == len(self.pieces) - 1  # DDP all-reduces on the last micro-batch only
            with net.no_sync() if (self.world > 1 and not sync) else nullcontext():
                out = loss_of(_RowsOf(net, rows), rows)
                part = out.per_sample[rows.start : rows.stop].sum()
                (part * (self.world / self.batch)).backward()
            total += float(part.detach().to(torch.float64))
        # The ranks' partial sums in rank order: every process logs the same loss.
        return sum(dist_utils.gather_objects([total])) / self.batch
