"""Launch ``world`` gloo processes on this machine as torchrun would (its environment variables) and
collect what rank 0 returns.

``launch(world, "module:function", *args)`` forks ``world`` processes from the test's (the ``fork``
start method: torch is already imported, so a launch costs ~2 s instead of ~40 s of fresh imports on
the loaded 2-core machine; no process group exists before the fork; ``SDEFLOW_TEST_START=spawn``
starts fresh interpreters instead), each with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT`` set, one thread each. Every worker calls
``sdeflow.distributed.init()`` (the code path of a torchrun launch), runs the function and tears the
group down; rank 0's return value (torch-saveable) comes back to the test.
"""

from __future__ import annotations

import importlib
import os
import socket
import tempfile
from pathlib import Path

import torch
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, target: str, args: tuple, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from sdeflow import distributed

    module, name = target.split(":")
    fn = getattr(importlib.import_module(module), name)
    with distributed.session():
        result = fn(*args)
        if rank == 0:
            torch.save(result, out)


def launch(world: int, target: str, *args):
    """Rank 0's result of ``target(*args)`` run by ``world`` gloo processes."""
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "result.pt")
        mp.start_processes(_worker, args=(world, free_port(), target, args, out), nprocs=world, join=True,
                           start_method=os.environ.get("SDEFLOW_TEST_START", "fork"))
        return torch.load(out, weights_only=False)
