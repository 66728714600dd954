"""The work units of the sharded paths in one process: what each unit computes, its seed, and the refusals.

Two-process runs of the same functions are compared with these in ``test_launches.py``; here the units are
checked against the unsharded library calls they stand for.
"""

from __future__ import annotations

import math

import pytest
import torch

from sdeflow import distributed as D
from sdeflow.finance import GBM
from sdeflow.inverse import posterior_sample, posterior_sample_sharded
from sdeflow.inverse.sharded import posterior_units
from sdeflow.processes import VP
from sdeflow.sdes import sdeint

from . import _work


def test_sharded_sdeint_is_the_chunked_sdeint_with_per_path_seeds():
    # Path i has seed seed + i in both: chunks of 16 solved separately and gathered equal one chunked call, bit for bit.
    sde = GBM(s0=100.0, r=0.05, sigma=0.2)
    y0 = sde.initial(50).double()
    ts = torch.linspace(0, 1, 3, dtype=torch.float64)
    whole = sdeint(sde, y0, ts, method="euler", dt=0.05, seed=4, chunk_size=16)
    assert torch.equal(D.sdeint(sde, y0, ts, seed=4, chunk_size=16, method="euler", dt=0.05), whole)
    last = D.sdeint(sde, y0, ts, seed=4, chunk_size=16, method="euler", dt=0.05, per_path=lambda ys: ys[-1, :, 0])
    assert torch.equal(last, whole[-1, :, 0])
    for bad in ({"bm": None}, {"generator": torch.Generator()}, {"extra": True}):
        with pytest.raises(ValueError, match="own seed"):
            D.sdeint(sde, y0, ts, seed=0, chunk_size=16, **bad)
    with pytest.raises(ValueError, match="seed"):
        D.sdeint(sde, y0, ts, seed=-1, chunk_size=16)
    with pytest.raises(ValueError, match="chunk_size"):
        D.sdeint(sde, y0, ts, seed=0, chunk_size=0)


def test_sharded_monte_carlo_matches_the_closed_form_mean():
    # E[S_1] = 100 e^0.05 = 105.127 (Euler's weak bias at 16 steps: 100 (1 + 0.05/16)^16 = 105.119, far below the
    # standard error 0.68 of 1000 paths). Measured: 106.31, 1.75 standard errors away; we assert 3.
    out = _work.sde_paths()
    assert out["terminal"].shape == (1000,)
    assert abs(out["mean"] - 100 * math.exp(0.05)) < 3 * out["stderr"]


def test_posterior_units_tile_the_sample_grid_in_flat_order():
    assert posterior_units(3, 8) == [(0, 1, 0, 8), (1, 2, 0, 8), (2, 3, 0, 8)]
    assert posterior_units(5, 2, observations=2) == [(0, 2, 0, 2), (2, 4, 0, 2), (4, 5, 0, 2)]
    assert posterior_units(2, 8, samples_per_unit=3) == [(0, 1, 0, 3), (0, 1, 3, 6), (0, 1, 6, 8), (1, 2, 0, 3),
                                                         (1, 2, 3, 6), (1, 2, 6, 8)]
    with pytest.raises(ValueError, match="observations must be 1"):
        posterior_units(2, 8, observations=2, samples_per_unit=3)


def test_each_posterior_unit_is_a_posterior_sample_call_with_the_seed_of_its_first_sample():
    # Unit (measurement 2, samples 3..5) of an (m=3, n=8) grid with seed 7 is posterior_sample on y[2:3] with
    # 3 samples and seed 7 + 2 * 8 + 3 = 26: the same bits.
    prior, op, y = _work.gaussian_problem()
    model = prior.model(VP(), "eps")
    res = posterior_sample_sharded(model, VP(), op, y, method="dps", n_samples=8, samples_per_unit=3, steps=20,
                                   dtype=torch.float64, seed=7)
    unit = posterior_sample(model, VP(), op, y[2:3], method="dps", n_samples=3, steps=20, dtype=torch.float64, seed=26)
    assert res.samples.shape == (3, 8, 3)
    assert torch.equal(res.samples[2, 3:6], unit.samples[0])
    assert res.nfe == 9 * unit.nfe  # 9 units of 20 model calls
    # The particle methods by measurement: measurement 1 is posterior_sample on y[1:2] with seed 7 + 1 * 16.
    for method in ("mcgdiff", "tds"):
        smc = posterior_sample_sharded(model, VP(), op, y, method=method, n_samples=16, particles=32, steps=20,
                                       dtype=torch.float64, seed=7)
        one = posterior_sample(model, VP(), op, y[1:2], method=method, n_samples=16, particles=32, steps=20,
                               dtype=torch.float64, seed=23)
        assert torch.equal(smc.samples[1], one.samples[0]) and torch.equal(smc.ess[:, 1], one.ess[:, 0])


def test_posterior_sharding_refusals():
    prior, op, y = _work.gaussian_problem()
    model = prior.model(VP(), "eps")
    with pytest.raises(ValueError, match="particle method"):
        posterior_sample_sharded(model, VP(), op, y, method="mcgdiff", n_samples=4, samples_per_unit=2, steps=5)
    with pytest.raises(ValueError, match="return_trajectory"):
        posterior_sample_sharded(model, VP(), op, y, method="dps", steps=5, return_trajectory=True)
    with pytest.raises(ValueError, match="seed"):
        posterior_sample_sharded(model, VP(), op, y, method="dps", steps=5, seed=-2)


def test_distributed_draw_samples_equals_the_chunked_loop():
    # One process: the seed chunks of sample_seed_range are draw_samples' own batches, so the samples are equal.
    from sdeflow import targets
    from sdeflow.training import draw_samples

    process = VP()
    model = targets.get("ring2d").model(process, "eps")
    stats_a, stats_b = {}, {}
    a = draw_samples(model, process, (2,), 70, steps=5, seed=3, batch_size=32, stats=stats_a)
    b = draw_samples(model, process, (2,), 70, steps=5, seed=3, batch_size=32, stats=stats_b, distributed=True)
    assert torch.equal(a, b) and stats_a == stats_b
    with pytest.raises(ValueError, match="return_trajectory"):
        draw_samples(model, process, (2,), 4, steps=5, return_trajectory=True, distributed=True)


def test_fsdp_option():
    from sdeflow.training import TrainConfig
    from sdeflow.training._sharded import ShardPlan

    with pytest.raises(TypeError, match="fsdp"):
        TrainConfig(fsdp="yes")
    assert not ShardPlan(8, 0, fsdp=True).fsdp  # one process: nothing to shard, a plain step


def test_fsdp_units_are_the_blocks_of_the_shipped_networks():
    # fully_shard refuses modules without a forward (a ModuleList): the U-Net's levels are lists of blocks, so its
    # units must be those blocks: 8 for this U-Net (6 residual blocks, the downsampling convolution and the
    # upsampling block), each with a forward, none inside another; the MLP's units are its 3 residual blocks.
    from torch import nn

    from sdeflow.nn import MLP, UNet
    from sdeflow.training._sharded import shard_units

    mlp = MLP((2,), 16, 3)
    assert shard_units(mlp) == list(mlp.blocks)
    unet = UNet(1, (8, 8), 8, (1, 2), 1)
    units = shard_units(unet)
    assert len(units) == 8 and not any(isinstance(u, (nn.ModuleList, nn.ModuleDict)) for u in units)
    assert all(type(u).forward is not nn.Module.forward for u in units)
    assert not any(a is not b and any(a is m for m in b.modules()) for a in units for b in units)
    # Every parameter of a list lies in exactly one unit: the per-block policy covers the lists entirely.
    listed = {id(p) for mod in unet.modules() if isinstance(mod, nn.ModuleList) for p in mod.parameters()}
    in_units = [id(p) for u in units for p in u.parameters()]
    assert len(in_units) == len(set(in_units)) and set(in_units) == listed
