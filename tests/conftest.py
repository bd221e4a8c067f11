"""Test-suite settings shared by every test file, and the shared tiny-DiT fixtures.

The tests run tiny models on a shared 2-core machine; one intra-op thread avoids
oversubscription, which made tiny forwards ~50x slower in practice.
"""

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny():
    """A tiny random TempoMaster DiT (``tiny_models.make_tiny_dit(seed=0)``), one per test module."""
    from tiny_models import make_tiny_dit

    return make_tiny_dit(seed=0)


@pytest.fixture(scope="module")
def inputs(tiny):
    """Seeded forward inputs for the module's ``tiny`` DiT (``tiny_models.tiny_inputs``)."""
    from tiny_models import tiny_inputs

    return tiny_inputs(tiny.config)
