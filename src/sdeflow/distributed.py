"""Scale-out on ``torch.distributed``: results that do not depend on the number of processes.

sdeflow's randomness is per sample (:mod:`sdeflow.noise`: sample ``i`` of seed ``s`` is a function of
``s + i`` alone), so the core is unaware of ranks and distributed code lives at the edges:

* **environment** -- :func:`environment` reads the variables ``torchrun`` (and any launcher that
  follows its contract: ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) sets;
  a plain ``python`` run is one process and needs no set-up at all.
* **set-up** -- :func:`init` / :func:`teardown` (or the :func:`session` context manager) start the
  process group: ``nccl`` for CUDA devices, ``gloo`` on CPUs.
* **work units** -- the work is cut into *chunks* of a fixed size that does not depend on the number
  of processes (:func:`chunk_bounds`), and each rank takes a contiguous run of whole chunks
  (:func:`shard_range`, :func:`my_chunks`). Every function call therefore sees the same batch, with the
  same rows, as in a single-process run with the same chunk size: a result is bit for bit the
  single-process one even where an operation's rounding depends on the batch (matrix products).
* **gathering and reducing** -- :func:`gather_rows` concatenates the ranks' rows in global order;
  :func:`gather_objects` concatenates per-chunk results (partial sums, counts) in chunk order, so a
  reduction folds the same numbers in the same order as a single process does: exact, not merely
  close. :func:`map_chunks`, :func:`sample_seed_range` and :func:`sdeint` are the patterns built on
  these (a function of data rows, e.g. classifier features; samples of a seed range; Monte Carlo
  paths of an SDE with per-path seeds). Posterior sampling has its own:
  :func:`sdeflow.inverse.posterior_sample_sharded`.

Only training's gradient all-reduce (DistributedDataParallel, in :class:`~sdeflow.training.Trainer`)
sums in an order that depends on the number of processes; its results agree to rounding (~1e-7
relative in float32), not bit for bit. See ``docs/distributed.md``.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.distributed as dist

from ._utils import check_int

__all__ = [
    "DistEnv",
    "environment",
    "init",
    "teardown",
    "session",
    "active",
    "rank",
    "world_size",
    "is_main",
    "barrier",
    "broadcast_object",
    "on_main",
    "any_rank",
    "shard_range",
    "chunk_bounds",
    "my_chunks",
    "gather_rows",
    "gather_objects",
    "map_chunks",
    "sample_seed_range",
    "sdeint",
    "parse_seed_range",
]

_ENV_INT = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands: ``rank`` of ``world_size`` processes, ``local_rank`` on its node.

    ``launched`` is True when the variables of a launcher (``torchrun``) are set.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launched: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def environment(env: dict[str, str] | None = None) -> DistEnv:
    """The process's place from torchrun's variables (``os.environ`` by default).

    No ``WORLD_SIZE``: a single process. Otherwise ``RANK`` and ``WORLD_SIZE`` are required and
    must satisfy ``0 <= RANK < WORLD_SIZE``; ``LOCAL_RANK`` defaults to 0.
    """
    env = os.environ if env is None else env
    if "WORLD_SIZE" not in env:
        return DistEnv()
    values = {}
    for name in _ENV_INT:
        raw = env.get(name, "0" if name == "LOCAL_RANK" else None)
        if raw is None:
            raise ValueError(f"the environment sets WORLD_SIZE={env['WORLD_SIZE']} but not {name}; launch with torchrun (it sets both)")
        try:
            values[name] = int(raw)
        except ValueError:
            raise ValueError(f"environment variable {name} must be an integer; got {raw!r}") from None
    if values["WORLD_SIZE"] < 1 or not 0 <= values["RANK"] < values["WORLD_SIZE"]:
        raise ValueError(
            f"environment variables need WORLD_SIZE >= 1 and 0 <= RANK < WORLD_SIZE; got RANK={values['RANK']}, "
            f"WORLD_SIZE={values['WORLD_SIZE']}"
        )
    if values["LOCAL_RANK"] < 0:
        raise ValueError(f"environment variable LOCAL_RANK must be >= 0; got {values['LOCAL_RANK']}")
    return DistEnv(values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"], True)


_OWNED = [False]  # whether init() created the process group (teardown() destroys only that one)


def init(device: str | torch.device = "cpu", *, backend: str | None = None, timeout_s: float = 600.0) -> DistEnv:
    """Join the process group of a launched run; a single process does nothing.

    Args:
        device: ``cpu`` or ``cuda``: picks the backend (``gloo`` for CPUs, ``nccl`` for CUDA) and, on
            CUDA, binds this process to GPU ``LOCAL_RANK``.
        backend: force ``gloo`` or ``nccl``.
        timeout_s: how long a collective waits for the slowest rank before failing.

    Returns the :class:`DistEnv`. A group that already exists (made by the caller) is used as it is.
    """
    env = environment()
    dev = torch.device(device)
    if backend is not None and backend not in ("gloo", "nccl"):
        raise ValueError(f"backend must be 'gloo' (CPUs) or 'nccl' (CUDA GPUs); got {backend!r}")
    if dev.type == "cuda" and env.launched:
        torch.cuda.set_device(env.local_rank)
    if env.world_size == 1 or dist.is_initialized():
        return env
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise ValueError(f"WORLD_SIZE={env.world_size} but {name} is not set; launch with torchrun (it sets it)")
    chosen = backend or ("nccl" if dev.type == "cuda" else "gloo")
    dist.init_process_group(chosen, rank=env.rank, world_size=env.world_size, timeout=timedelta(seconds=timeout_s))
    _OWNED[0] = True
    return env


def teardown() -> None:
    """Leave the process group that :func:`init` created (nothing otherwise)."""
    if _OWNED[0] and dist.is_initialized():
        dist.destroy_process_group()
    _OWNED[0] = False


@contextmanager
def session(device: str | torch.device = "cpu", *, backend: str | None = None) -> Iterator[DistEnv]:
    """``with session() as env:`` -- :func:`init` on entry and :func:`teardown` on exit.

    A session inside a running process group (a command run by code that already joined one) uses that
    group and leaves it running.
    """
    joined = dist.is_available() and dist.is_initialized()
    env = init(device, backend=backend)
    try:
        yield env
    finally:
        if not joined:
            teardown()


def active() -> bool:
    """Whether a process group of more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if active() else 0


def world_size() -> int:
    """The number of processes (1 without a process group)."""
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Whether this is rank 0 (the process that writes files)."""
    return rank() == 0


def barrier() -> None:
    """Wait for every rank (nothing for one process)."""
    if active():
        dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (a picklable object; ``obj`` itself for one process)."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def on_main(fn: Callable[[], Any], *, share: bool = False) -> Any:
    """Run ``fn()`` on rank 0 alone: its result there, ``None`` on the other ranks (or, with
    ``share``, rank 0's result on every rank).

    An exception on rank 0 is sent to every rank and raised there too, so that no rank goes on to
    a collective that rank 0 will never join (the pattern for making output folders and writing files).
    """
    result, error = None, None
    if is_main():
        try:
            result = fn()
        except Exception as err:  # noqa: BLE001 -- re-raised on every rank just below
            error = err
    if share:
        result, error = broadcast_object((result, error))
    else:
        error = broadcast_object(error)
    if error is not None:
        raise error
    return result


def any_rank(flag: bool) -> bool:
    """Whether ``flag`` is true on at least one rank (the same answer on every rank)."""
    if not active():
        return bool(flag)
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    box = torch.tensor([int(bool(flag))], device=device)
    dist.all_reduce(box, op=dist.ReduceOp.MAX)
    return bool(box.item())


def shard_range(n: int, rank: int, world_size: int) -> range:
    """The contiguous share of ``range(n)`` that rank ``rank`` of ``world_size`` takes.

    The first ``n % world_size`` ranks take ``n // world_size + 1`` items, the others one fewer, so
    the shares tile ``range(n)`` in rank order (ranks beyond ``n`` get an empty range).
    """
    check_int(n, "n", minimum=0)
    check_int(world_size, "world_size")
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
        raise ValueError(f"rank must be an integer in [0, world_size={world_size}); got {rank!r}")
    q, r = divmod(n, world_size)
    start = rank * q + min(rank, r)
    return range(start, start + q + (rank < r))


def chunk_bounds(n: int, chunk: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` cutting ``range(n)`` into chunks of ``chunk`` items (the last one shorter)."""
    check_int(n, "n", minimum=0)
    check_int(chunk, "chunk")
    return [(s, min(s + chunk, n)) for s in range(0, n, chunk)]


def my_chunks(n: int, chunk: int) -> list[tuple[int, int]]:
    """This rank's chunks of ``range(n)``: a contiguous run of :func:`chunk_bounds` (:func:`shard_range` of them)."""
    bounds = chunk_bounds(n, chunk)
    return [bounds[i] for i in shard_range(len(bounds), rank(), world_size())]


def gather_rows(local: torch.Tensor, n: int | None = None) -> torch.Tensor:
    """Every rank's rows concatenated in rank order, on every rank: ``(sum of rows, *rest)``.

    The ranks' tensors must agree in dtype and trailing shape; their row counts may differ (each
    is padded to the largest for the all-gather and cut back). ``n`` checks the total. With NCCL the
    tensors travel through this rank's GPU and come back on ``local``'s device.
    """
    if not isinstance(local, torch.Tensor):
        raise TypeError(f"local must be a tensor; got {type(local).__name__}")
    if not active():
        out = local
    else:
        comm_device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
        meta = gather_objects([(int(local.shape[0]), tuple(local.shape[1:]), str(local.dtype))])
        if len({(m[1], m[2]) for m in meta}) != 1:
            raise ValueError(f"gather_rows: the ranks' tensors differ in trailing shape or dtype: {meta}")
        counts = [m[0] for m in meta]
        width = max(counts)
        padded = local.new_zeros((width, *local.shape[1:]), device=comm_device)
        padded[: local.shape[0]] = local.to(comm_device)
        parts = [torch.empty_like(padded) for _ in counts]
        dist.all_gather(parts, padded)
        out = torch.cat([p[:c] for p, c in zip(parts, counts)]).to(local.device)
    if n is not None and out.shape[0] != n:
        raise ValueError(f"gather_rows: expected {n} rows in all, got {out.shape[0]}")
    return out


def gather_objects(local: Sequence[Any]) -> list[Any]:
    """Every rank's list of picklable items concatenated in rank order, on every rank.

    With chunks assigned by :func:`my_chunks`, a list of per-chunk results gathers into the list of
    all chunks' results in chunk order: fold it as a single process would, for an exact reduction.
    """
    local = list(local)
    if not active():
        return local
    boxes: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(boxes, local)
    return [item for box in boxes for item in box]


def map_chunks(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """``cat([fn(x[a:b]) for (a, b) in chunk_bounds(len(x), chunk)])``, the chunks shared out over ranks.

    Each rank applies ``fn`` to its own chunks (the same chunks as a single process with the same
    ``chunk``) and the results are gathered in order, on every rank: bit for bit the single-process
    result. The pattern of sharded evaluation (e.g. classifier features for the Frechet distance).
    """
    if not isinstance(x, torch.Tensor) or x.ndim < 1:
        raise TypeError(f"x must be a tensor with a batch dimension; got {type(x).__name__}")
    outs = [fn(x[a:b]) for a, b in my_chunks(x.shape[0], chunk)]
    if not outs:  # a rank without chunks still joins the gather, with zero rows of the right shape
        probe = fn(x[:1])
        outs = [probe[:0]]
    return gather_rows(torch.cat(outs), x.shape[0])


def sample_seed_range(
    draw: Callable[[int, int], torch.Tensor], first: int, count: int, chunk: int = 4096
) -> tuple[torch.Tensor, list[Any]]:
    """Samples for seeds ``first .. first + count - 1``, in seed order, on every rank.

    ``draw(seed, m)`` returns ``(samples (m, *event_shape), info)`` for the ``m`` seeds
    ``seed .. seed + m - 1`` (sample ``i`` from seed ``seed + i``); it is called once per chunk of
    ``chunk`` seeds, for this rank's chunks only. Returns the gathered samples and the list of every
    chunk's ``info`` in chunk order. Since each sample depends on its seed alone and every chunk is
    the one a single process draws, the result does not depend on the number of processes.
    """
    check_int(count, "count")
    outs, infos = [], []
    for a, b in my_chunks(count, chunk):
        samples, info = draw(first + a, b - a)
        outs.append(samples)
        infos.append(info)
    if not outs:
        probe, _ = draw(first, 1)
        outs = [probe[:0]]
    return gather_rows(torch.cat(outs), count), gather_objects(infos)


_SDEINT_REFUSED = ("bm", "generator", "logqp", "extra", "extra_solver_state")


def sdeint(
    sde: Any,
    y0: torch.Tensor,
    ts: Sequence[float] | torch.Tensor,
    *,
    seed: int,
    chunk_size: int,
    per_path: Callable[[torch.Tensor], torch.Tensor] | None = None,
    **kwargs: Any,
) -> torch.Tensor:
    """Monte Carlo paths of :func:`sdeflow.sdeint` shared out over the processes, path ``i`` from seed ``seed + i``.

    The ``batch`` paths of ``y0`` are cut into chunks of ``chunk_size``; each process solves its own
    chunks (:func:`my_chunks`) with the per-path seeded Brownian motion of ``sdeint(..., seed=,
    chunk_size=)`` (path ``i`` has its own counter-based Brownian path of seed ``seed + i``) and the
    results are gathered in path order on every process. Since a chunk is the computation a single
    process makes for it (adaptive steps too: every chunk takes its own steps), the result is bit for
    bit ``sdeflow.sdeint(sde, y0, ts, seed=seed, chunk_size=chunk_size, ...)`` in one process, and so are
    the Monte Carlo estimates made from it.

    Args:
        sde, y0, ts: as :func:`sdeflow.sdeint`; ``y0`` is ``(batch, *event_shape)``.
        seed: the seed of path 0.
        chunk_size: paths per chunk, the unit of work (fix it when comparing runs).
        per_path: optional ``fn(ys) -> (m, ...)`` applied to each chunk's solution ``ys``
            ``(len(ts), m, *event_shape)`` before gathering (a payoff, the terminal value): only its result
            travels and is kept.
        **kwargs: ``method``, ``dt``, ``adaptive``, ``rtol``, ``atol``, ... of :func:`sdeflow.sdeint`
            (not ``bm``, ``generator``, ``logqp``, ``extra``: the noise must be the per-path seeded one).

    Returns:
        ``ys`` ``(len(ts), batch, *event_shape)``, or with ``per_path`` the gathered ``(batch, ...)``.
    """
    from .sdes import sdeint as _sdeint

    refused = sorted(set(kwargs) & set(_SDEINT_REFUSED))
    if refused:
        raise ValueError(f"distributed.sdeint draws each path's noise from its own seed; {refused} cannot be given")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0 (path i uses seed + i); got {seed!r}")
    check_int(chunk_size, "chunk_size")
    if not isinstance(y0, torch.Tensor) or y0.ndim < 1 or y0.shape[0] < 1:
        raise ValueError(f"y0 must be a tensor (batch, *event_shape) with batch >= 1; got {getattr(y0, 'shape', type(y0).__name__)}")

    def solve(a: int, b: int) -> torch.Tensor:
        ys = _sdeint(sde, y0[a:b], ts, seed=seed + a, chunk_size=chunk_size, **kwargs)
        return per_path(ys) if per_path is not None else ys.movedim(1, 0)

    outs = [solve(a, b) for a, b in my_chunks(y0.shape[0], chunk_size)]
    if not outs:  # a process without chunks joins the gather with zero rows of the right shape
        outs = [solve(0, 1)[:0]]
    gathered = gather_rows(torch.cat(outs), y0.shape[0])
    return gathered if per_path is not None else gathered.movedim(0, 1)


_SEED_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def parse_seed_range(text: str, name: str = "--seeds") -> range:
    """``"A-B"`` (inclusive) or ``"A"`` as ``range(A, B + 1)``; refuses anything else by name."""
    match = _SEED_RANGE.match(str(text))
    if match is None:
        raise ValueError(f"{name} must be A-B (seeds A to B inclusive, e.g. 0-9999) or one seed A; got {text!r}")
    a = int(match.group(1))
    b = int(match.group(2)) if match.group(2) is not None else a
    if b < a:
        raise ValueError(f"{name} {text!r}: the last seed {b} is below the first {a}; write A-B with A <= B")
    return range(a, b + 1)
