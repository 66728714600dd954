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

With ``fsdp=True`` the model is sharded by torch's FSDP2 (``torch.distributed.fsdp.fully_shard``;
Zhao et al. 2023, "PyTorch FSDP") instead of replicated: every parameter, its gradient and its
AdamW moments are split along their first dimension over the ``N`` processes, each block of the
network (every item of a ``ModuleList``: MLP blocks, U-Net levels) is all-gathered just before its
forward and backward and freed after, and gradients are reduce-scattered, averaged over ``N`` as
DDP does, so the same ``N / B`` scaling gives the single-process gradient. The EMA copy is sharded
the same way. Checkpoints and evaluation see full tensors (:meth:`ShardPlan.full_state`, gathered on
every process), so a checkpoint written under FSDP is an ordinary one.
"""

from __future__ import annotations

import warnings
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

    def __init__(self, batch_size: int, micro_batch: int = 0, fsdp: bool = False) -> None:
        self.world = dist_utils.world_size()
        self.fsdp = bool(fsdp) and self.world > 1  # one process: FSDP would shard nothing
        self.batch = batch_size
        if batch_size < self.world:
            raise ValueError(
                f"batch_size={batch_size} (the global batch) must be >= the number of processes {self.world}; "
                "every process needs at least one example"
            )
        rows = dist_utils.shard_range(batch_size, dist_utils.rank(), self.world)
        micro = check_int(micro_batch, "micro_batch", minimum=0) or len(rows)
        self.pieces = [range(a, min(a + micro, rows.stop)) for a in range(rows.start, rows.stop, micro)]
        if self.fsdp:
            # FSDP all-gathers in every forward: every process must run the same number of micro-batches,
            # so the largest share's count is used by all (pieces of at most micro_batch rows each).
            largest = len(dist_utils.shard_range(batch_size, 0, self.world))
            count = -(-largest // (micro_batch or largest))
            self.pieces = [range(rows.start + r.start, rows.start + r.stop) for r in
                           (dist_utils.shard_range(len(rows), j, count) for j in range(count))]

    @property
    def needed(self) -> bool:
        """Whether the step differs from a plain single-process step (several processes or micro-batches)."""
        return self.world > 1 or len(self.pieces) > 1

    def wrap(self, model: nn.Module, device: torch.device, shadow: nn.Module | None = None) -> nn.Module:
        """``model`` in DistributedDataParallel when there are several processes (itself otherwise).

        With FSDP, ``model`` (and ``shadow``, the EMA copy) are sharded in place and returned; build the
        optimizer on ``model.parameters()`` afterwards (they are the sharded parameters).
        """
        if self.world == 1:
            return model
        if self.fsdp:
            for module in (model, shadow):
                if module is not None:
                    _fully_shard(module)
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
            if self.fsdp:  # FSDP reduce-scatters the gradients on the last micro-batch only
                net.set_requires_gradient_sync(sync)
            with net.no_sync() if (self.world > 1 and not sync and not self.fsdp) else nullcontext():
                out = loss_of(_RowsOf(net, rows), rows)
                part = out.per_sample[rows.start : rows.stop].sum()
                (part * (self.world / self.batch)).backward()
            total += float(part.detach().to(torch.float64))
        # The ranks' partial sums in rank order: every process logs the same loss.
        return sum(dist_utils.gather_objects([total])) / self.batch

    # ------------------------------------------------------------------ full tensors of sharded state
    def full_state(self, module: nn.Module) -> dict[str, torch.Tensor]:
        """``module``'s state dict with full tensors (FSDP shards all-gathered: call on every process)."""
        return {name: _full(value).detach() for name, value in module.state_dict().items()}

    def full_optimizer_state(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """The optimizer's state dict with full tensors: the one a single-process run would hold."""
        sd = optimizer.state_dict()
        state = {idx: {k: _full(v) for k, v in entry.items()} for idx, entry in sd["state"].items()}
        return {"state": state, "param_groups": sd["param_groups"]}

    def local_optimizer_state(self, sd: dict[str, Any], optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """A full optimizer state dict (a checkpoint's) cut to this process's shards of ``optimizer``'s parameters."""
        if not self.fsdp:
            return sd
        from torch.distributed.tensor import DTensor, distribute_tensor

        params = [p for group in optimizer.param_groups for p in group["params"]]
        state = {}
        for idx, entry in sd["state"].items():
            p = params[int(idx)]
            state[idx] = {
                # Every process holds the full tensor (it read the checkpoint): each keeps its own shard, no communication.
                k: distribute_tensor(v.to(p.device), p.device_mesh, p.placements, src_data_rank=None)
                if isinstance(p, DTensor) and isinstance(v, torch.Tensor) and tuple(v.shape) == tuple(p.shape) else v
                for k, v in entry.items()
            }
        return {"state": state, "param_groups": sd["param_groups"]}

    def full_copy(self, model: nn.Module) -> nn.Module:
        """``model`` itself, or under FSDP an unsharded copy with its full weights (for sampling and evaluation).

        Every process gets the same copy, so evaluation can be shared out by chunks of seeds (each
        process samples its own chunks with the whole network: no collective inside the sampling loop).
        """
        if not self.fsdp:
            return model
        full = self.full_state(model.net)
        device = next(iter(full.values())).device if full else torch.device("cpu")
        from torch.distributed.fsdp import FSDPModule

        cls = next(c for c in type(model).__mro__ if not issubclass(c, FSDPModule))  # fully_shard's class is a subclass
        copy = cls.from_config(model.config(), model.process)
        copy.net.load_state_dict(full)
        return copy.to(device).train(model.training)


def _full(value: Any) -> Any:
    from torch.distributed.tensor import DTensor

    return value.full_tensor() if isinstance(value, DTensor) else value


def _fully_shard(model: nn.Module) -> None:
    """Shard ``model`` with FSDP2: each item of a ``ModuleList`` (the outermost ones; the items of an item that is
    itself a list) as its own unit, then the rest.

    A unit's parameters are all-gathered only while it runs, so the peak is one block's full weights
    plus the shards, not the whole model (the usual per-block policy of transformers and U-Nets).
    """
    from torch.distributed.fsdp import FSDPModule, fully_shard

    if isinstance(model, FSDPModule):  # sharded by an earlier fit()
        return
    # The model returns a reshaped view; the trainer only concatenates it out of place (_RowsOf), the case
    # this warning of torch's is not about.
    warnings.filterwarnings("ignore", message=r"FSDP2-wrapped module .* returned a view tensor", category=UserWarning)
    units = shard_units(model)
    for unit in units:
        fully_shard(unit)
    fully_shard(model)


def shard_units(model: nn.Module) -> list[nn.Module]:
    """The modules FSDP shards as units of their own (before the root): every item of a ``ModuleList`` that
    holds parameters and is not inside an earlier unit; an item that is itself a list (a U-Net level: a
    ``ModuleList`` of blocks, with no forward of its own) gives its items instead."""
    units: list[nn.Module] = []
    for module in model.modules():  # pre-order: outer lists before the lists inside them
        if isinstance(module, nn.ModuleList):
            units.extend(m for m in module if not isinstance(m, (nn.ModuleList, nn.ModuleDict))
                         and any(True for _ in m.parameters()) and not any(_inside(m, u) for u in units))
    return units


def _inside(module: nn.Module, unit: nn.Module) -> bool:
    return any(module is sub for sub in unit.modules())
