"""Results that do not depend on the number of processes: 1, 2 and 3 gloo processes on this CPU.

Each launch runs every check of ``_work.invariance`` at once (a process start costs seconds): the
samples of seeds 0..999 for a deterministic (heun), a stochastic (Euler-Maruyama on per-sample
Brownian paths) and an adaptive (per-sample step sizes) solver, a Monte Carlo price with its
standard error and a pathwise Greek, and a Frechet distance whose classifier features are computed on
shards. The work is cut into chunks fixed by global index (never by rank), each sample's noise comes
from its own seed, and reductions fold per-chunk partial results in chunk order, so every figure is
expected to be *bit for bit* the single-process one: ``torch.equal`` and ``==`` on floats, no tolerance.
"""

from __future__ import annotations

import pytest
import torch

from . import _work
from ._launch import launch


@pytest.fixture(scope="module")
def single():
    return _work.invariance()


@pytest.mark.slow
@pytest.mark.parametrize("world", [2, 3])
def test_every_result_is_bit_identical_to_one_process(single, world):
    many = launch(world, "tests.distributed._work:invariance")
    assert many["world"] == world and single["world"] == 1
    for solver in _work.SOLVERS:
        samples, nfe = many[solver]
        # Expected: the gathered samples equal the single-process ones bit for bit, in seed order, and
        # every chunk made the same number of model calls (the adaptive solver's too).
        assert samples.shape == (1000, 2)
        assert torch.equal(samples, single[solver][0]), solver
        assert nfe == single[solver][1], solver
    # Expected: price, standard error, interval and delta identical to the last bit (== on floats).
    assert many["price"] == single["price"]
    feats, fd = many["frechet"]
    assert torch.equal(feats, single["frechet"][0])
    assert fd == single["frechet"][1]


def test_chunks_are_real_work_units():
    # The checks above are only meaningful if the work is shared: with 1000 seeds in chunks of 128
    # there are 8 chunks, so 2 ranks run 4 each and 3 ranks run 3, 3 and 2 (shard_range of the chunks).
    from sdeflow.distributed import chunk_bounds, shard_range

    bounds = chunk_bounds(1000, 128)
    assert len(bounds) == 8 and bounds[-1] == (896, 1000)
    assert [len(shard_range(8, r, 3)) for r in range(3)] == [3, 3, 2]
    # The Monte Carlo check has 7 chunks of 300 paths (2000 paths, the last chunk 200).
    assert len(chunk_bounds(2000, 300)) == 7
