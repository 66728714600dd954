"""sdeflow.distributed in one process: environment, shares, chunks, seed ranges, and the no-op paths."""

from __future__ import annotations

import pytest
import torch

from sdeflow import distributed as D


def test_environment_reads_torchrun_variables():
    # No WORLD_SIZE: a plain single process (no set-up needed).
    assert D.environment({}) == D.DistEnv(0, 1, 0, False)
    env = D.environment({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1"})
    assert (env.rank, env.world_size, env.local_rank, env.launched, env.is_main) == (3, 8, 1, True, False)
    assert D.environment({"RANK": "0", "WORLD_SIZE": "2"}).local_rank == 0


@pytest.mark.parametrize(
    "env, word",
    [
        ({"WORLD_SIZE": "2"}, "RANK"),
        ({"RANK": "x", "WORLD_SIZE": "2"}, "RANK must be an integer"),
        ({"RANK": "2", "WORLD_SIZE": "2"}, "0 <= RANK < WORLD_SIZE"),
        ({"RANK": "0", "WORLD_SIZE": "0"}, "WORLD_SIZE >= 1"),
        ({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "-1"}, "LOCAL_RANK"),
    ],
)
def test_environment_refuses_broken_variables_by_name(env, word):
    with pytest.raises(ValueError, match=word):
        D.environment(env)


def test_init_needs_no_setup_for_one_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with D.session() as env:
        assert env.world_size == 1 and not D.active()
        assert (D.rank(), D.world_size(), D.is_main()) == (0, 1, True)
    with pytest.raises(ValueError, match="backend"):
        D.init(backend="mpi")


def test_launched_without_master_address_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(ValueError, match="MASTER_ADDR"):
        D.init()


@pytest.mark.parametrize("n, world", [(0, 3), (7, 1), (7, 3), (256, 4), (5, 8), (1000, 3)])
def test_shares_tile_the_range_in_rank_order_and_differ_by_at_most_one(n, world):
    shares = [D.shard_range(n, r, world) for r in range(world)]
    assert [i for s in shares for i in s] == list(range(n))
    assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_shard_range_and_chunks_check_their_arguments():
    with pytest.raises(ValueError, match="rank"):
        D.shard_range(10, 2, 2)
    with pytest.raises(ValueError, match="world_size"):
        D.shard_range(10, 0, 0)
    with pytest.raises(ValueError, match="chunk"):
        D.chunk_bounds(10, 0)
    assert D.chunk_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert D.my_chunks(10, 4) == D.chunk_bounds(10, 4)  # one process runs every chunk


def test_seed_ranges():
    assert D.parse_seed_range("0-9999") == range(0, 10000)
    assert D.parse_seed_range(" 17 ") == range(17, 18)
    for bad in ("5-3", "a-b", "-3", "1-2-3", ""):
        with pytest.raises(ValueError, match="--seeds"):
            D.parse_seed_range(bad)


def test_single_process_collectives_are_identities():
    x = torch.arange(12.0).reshape(6, 2)
    assert D.gather_rows(x, 6) is x
    with pytest.raises(ValueError, match="expected 7 rows"):
        D.gather_rows(x, 7)
    assert D.gather_objects([1, (2, 3)]) == [1, (2, 3)]
    assert D.broadcast_object({"a": 1}) == {"a": 1}
    assert D.any_rank(True) and not D.any_rank(False)
    # map_chunks is the chunked map: chunks of 4 rows of 6 give the same result as the whole.
    assert torch.equal(D.map_chunks(lambda b: b * 2, x, 4), x * 2)
    samples, infos = D.sample_seed_range(lambda s, m: (torch.arange(s, s + m), (s, m)), 10, 7, 3)
    assert torch.equal(samples, torch.arange(10, 17)) and infos == [(10, 3), (13, 3), (16, 1)]


def test_on_main_runs_once_and_raises_its_error():
    assert D.on_main(lambda: 5) == 5
    with pytest.raises(OSError, match="disk"):
        D.on_main(lambda: (_ for _ in ()).throw(OSError("disk full")))
