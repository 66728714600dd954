"""The counter-based generator of sdeflow.noise.rng: exact bits, batch invariance, normality, errors."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from sdeflow.noise.rng import as_seeds, derive_keys, mix64, normal_from_keys, randn, uniform_from_keys

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def splitmix64_finalizer(x: int) -> int:
    """Pure-Python SplitMix64 finalizer on unsigned 64-bit ints (Steele, Lea & Flood 2014)."""
    z = x & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def to_int64(x: int) -> int:
    x &= MASK
    return x - (1 << 64) if x >= 1 << 63 else x


INPUTS = [0, 1, -1, 2, 12345, -987654321, 2**31, 2**62 + 17, 2**63 - 1, -(2**63), to_int64(GOLDEN), -(2**40) - 3]


def test_mix64_bits_equal_pure_python_reference():
    # Expected: the int64 tensor bits, read mod 2**64, equal the unsigned Python reference exactly,
    # for negative, large and boundary inputs (two's-complement wrap-around must be right).
    got = mix64(torch.tensor(INPUTS, dtype=torch.int64)).tolist()
    assert [g & MASK for g in got] == [splitmix64_finalizer(x) for x in INPUTS]


def test_mix64_reproduces_published_splitmix64_stream():
    # Expected: SplitMix64 seeded with state 0 outputs mix64(k * golden) for k = 1, 2, 3, whose
    # published values (Vigna's splitmix64.c) are 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4,
    # 0x06c45d188009454f.
    states = torch.tensor([to_int64(k * GOLDEN) for k in (1, 2, 3)], dtype=torch.int64)
    got = [g & MASK for g in mix64(states).tolist()]
    assert got == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]


def test_derive_keys_int_and_tensor_tags_agree():
    # Expected: an int tag and a tensor tag give the same keys bit for bit (the Brownian tree uses
    # int tags for scalar times and tensor tags for per-sample times), including tags past 2**62.
    keys = mix64(torch.arange(-3, 3, dtype=torch.int64))
    for tag in (0, 1, 7, 2**40 + 5, 2**62 + 1):
        assert torch.equal(derive_keys(keys, tag), derive_keys(keys, torch.full_like(keys, tag)))
        # And they match the formula mix64(key + golden * (tag + 1)) computed in Python.
        want = [to_int64(splitmix64_finalizer(k + GOLDEN * (tag + 1))) for k in keys.tolist()]
        assert derive_keys(keys, tag).tolist() == want


def test_uniforms_are_open_interval_and_counter_addressed():
    # Expected: values strictly inside (0, 1); out[..., j] depends only on (key, offset + j), so a
    # slice drawn with an offset equals the same columns of a longer draw.
    keys = mix64(torch.arange(50, dtype=torch.int64))
    u = uniform_from_keys(keys, 40)
    assert bool(((u > 0) & (u < 1)).all())
    assert torch.equal(uniform_from_keys(keys, 10, offset=25), u[:, 25:35])


def test_randn_batch_invariance():
    # Expected: sample i of a batch drawn with seeds=s equals, bit for bit, the single sample drawn
    # with seeds=s+i (noise must not depend on the batch a sample is in).
    batch = randn((6, 3, 2), seeds=40)
    for i in range(6):
        assert torch.equal(batch[i], randn((1, 3, 2), seeds=40 + i)[0])
    # Explicit per-sample seeds: a reordered batch reorders the samples.
    a = randn((3, 4), seeds=[7, 8, 9])
    b = randn((3, 4), seeds=torch.tensor([9, 7, 8]))
    assert torch.equal(a[[2, 0, 1]], b)


def test_normal_from_keys_is_standard_normal():
    # Expected: 200k draws (1000 keys x 200 counters) pass a KS test against N(0, 1) (p > 1e-3),
    # and the mean and variance are within 5 standard errors: 5/sqrt(n) and 5*sqrt(2/n).
    keys = derive_keys(mix64(torch.arange(1000, dtype=torch.int64)), 3)
    z = normal_from_keys(keys, 200, torch.float64).reshape(-1)
    n = z.numel()
    assert stats.kstest(z.numpy(), "norm").pvalue > 1e-3
    assert abs(float(z.mean())) < 5 / math.sqrt(n)
    assert abs(float(z.var()) - 1) < 5 * math.sqrt(2 / n)
    # Odd n: the sine half of the last pair is dropped, the rest unchanged.
    assert torch.equal(normal_from_keys(keys[:5], 7, torch.float64), normal_from_keys(keys[:5], 8, torch.float64)[:, :7])


def test_streams_and_counters_are_uncorrelated():
    # Expected: two streams of the same seeds, neighbouring counters of one key and neighbouring
    # seeds are independent: |sample correlation| < 4/sqrt(n) (4 standard errors) for n = 100k.
    n = 100_000
    s0 = randn((n,), seeds=0, stream=0, dtype=torch.float64)
    s1 = randn((n,), seeds=0, stream=1, dtype=torch.float64)
    pair = randn((n, 2), seeds=0, dtype=torch.float64)
    bound = 4 / math.sqrt(n)
    for x, y in ((s0, s1), (pair[:, 0], pair[:, 1]), (s0[:-1], s0[1:])):
        r = float(torch.corrcoef(torch.stack((x, y)))[0, 1])
        assert abs(r) < bound, r


def test_randn_generator_source_and_dtype():
    # Expected: the generator path is reproducible for the same manual seed and honours dtype.
    a = randn((3, 2), generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    b = randn((3, 2), generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    assert a.dtype == torch.float64 and torch.equal(a, b)


def test_as_seeds():
    # Expected: an int s means s, s+1, ..., s+batch-1; a sequence or tensor is taken as given.
    assert as_seeds(5, 3).tolist() == [5, 6, 7]
    assert as_seeds([3, 1], 2).tolist() == [3, 1]
    assert as_seeds(torch.tensor([[1], [2]], dtype=torch.int32), 2).tolist() == [1, 2]


def test_randn_and_as_seeds_errors():
    # Expected: every bad input is a ValueError/TypeError that names the argument.
    with pytest.raises(ValueError, match="exactly one source"):
        randn((2, 3))
    with pytest.raises(ValueError, match="exactly one source"):
        randn((2, 3), seeds=0, generator=torch.Generator())
    with pytest.raises(ValueError, match="shape"):
        randn((), seeds=0)
    with pytest.raises(ValueError, match="seeds must give one seed per sample: expected 3 seeds, got 2"):
        randn((3, 2), seeds=[1, 2])
    with pytest.raises(TypeError, match="seeds must be an integer tensor"):
        as_seeds(torch.tensor([1.0, 2.0]), 2)
    with pytest.raises(TypeError, match="seeds must be an int"):
        as_seeds(1.5, 1)
    with pytest.raises(TypeError, match="seeds must be an int.*got a bool"):
        as_seeds(True, 1)
    with pytest.raises(TypeError, match="seeds must be an int"):
        as_seeds(["a", "b"], 2)
    with pytest.raises(ValueError, match="my_seeds"):
        as_seeds([1, 2, 3], 2, name="my_seeds")


def test_as_seeds_rejects_float_sequence():
    # Expected: a list of non-integer floats is a TypeError, as a float tensor is (today int(1.5) = 1
    # silently merges seeds 1.5 and 1.0; operator.index would reject it).
    with pytest.raises(TypeError, match="seeds"):
        as_seeds([1.5, 2.5], 2)
