"""Test-suite settings and fixtures shared by every test file (the shared tiny-DiT fixtures among them).

The tests run tiny models on a shared 2-core machine; one intra-op thread avoids
oversubscription, which made tiny forwards ~50x slower in practice.

imageio's PyAV plugin runs a full ``gc.collect()`` each time a video file is closed (twice per file);
with torch and the collected test modules loaded, one collection scans about a million objects
(0.05-0.15 s). Freezing what exists after collection (``gc.freeze``: those objects are never
collected again) leaves only the objects a test makes to scan.
"""

import gc

import pytest
import torch

torch.set_num_threads(1)


def pytest_collection_finish(session):
    gc.freeze()


@pytest.fixture
def no_model(monkeypatch):
    """Fail loudly if a bad-usage command-line run gets as far as loading the model."""
    def refuse(**kwargs):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr("tempomaster_core.tiny.builtin.load_builtin", refuse)


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
