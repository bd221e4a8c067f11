"""Test-suite settings and fixtures shared by every test file.

The tests run tiny models on a shared 2-core machine; one intra-op thread avoids
oversubscription, which made tiny forwards ~50x slower in practice.
"""

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def no_model(monkeypatch):
    """Fail loudly if a bad-usage command-line run gets as far as loading the model."""
    def refuse(**kwargs):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr("tempomaster_core.tiny.builtin.load_builtin", refuse)
