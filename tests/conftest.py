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
