"""Shared test settings: float64 reference computations, no global RNG use in the library."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _guard_global_rng():
    """The library must never draw from torch's global generator (DESIGN.md, Randomness).

    Every test checks that the global generator's state is unchanged by what it ran.
    """
    before = torch.random.get_rng_state()
    yield
    after = torch.random.get_rng_state()
    assert torch.equal(before, after), "the global torch RNG was used"


@pytest.fixture(autouse=True)
def _one_thread_per_test():
    """Run each test on one thread (the suite runs on 2 xdist workers over 2 cores; small-tensor
    work is much slower with 2 threads per worker on a loaded machine). Restores the count after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
