"""torch.compile of the DiT's blocks (tempomaster_core.compiling): the same outputs, every compilation counted."""

import shutil

import pytest
import torch

from tempomaster_core.compiling import compile_blocks, is_compiled, uncompile_blocks
from tiny_models import forward, make_tiny_dit, tiny_inputs


def test_the_backend_counts_and_logs_every_graph_it_compiles():
    """The counting backend, called as torch.compile calls it: graph 1 is the compile, later ones recompiles."""
    from tempomaster_core.compiling import CompileStats

    lines, compiled = [], []
    stats = CompileStats(log=lines.append)
    backend = stats.backend(lambda graph, example: compiled.append(graph) or graph)
    assert backend("g1", [torch.zeros(2, 8, 64), 3]) == "g1" and stats.recompiles == 0
    backend("g2", [torch.zeros(4, 8, 64)])
    assert compiled == ["g1", "g2"] and (stats.graphs, stats.recompiles) == (2, 1)
    assert stats.shapes == [[(2, 8, 64)], [(4, 8, 64)]]
    assert lines == ["torch.compile: compiling the DiT block for inputs [(2, 8, 64)]",
                     "torch.compile: recompile 1 of the DiT block for inputs [(4, 8, 64)]"]


@pytest.mark.slow
def test_blocks_share_one_graph_and_a_new_shape_is_a_counted_recompile():
    """With the tracing-only backend (dynamo's tracing still takes ~10 s here): one graph for both
    blocks, one recompile for a new batch size, outputs equal to eager; uncompile restores eager forwards."""
    torch._dynamo.reset()
    model = make_tiny_dit(seed=0).eval()
    small, large = tiny_inputs(model.config, batch=1, frames=1, height=2, width=2), tiny_inputs(
        model.config, batch=2, frames=1, height=2, width=2)
    eager = forward(model, small), forward(model, large)
    lines = []
    stats = compile_blocks(model, backend="eager", log=lines.append)
    assert is_compiled(model)
    assert torch.equal(forward(model, small), eager[0]) and (stats.graphs, stats.recompiles) == (1, 0)
    assert torch.equal(forward(model, small), eager[0]) and stats.graphs == 1  # the same shape: no recompile
    assert torch.equal(forward(model, large), eager[1]) and (stats.graphs, stats.recompiles) == (2, 1)
    assert lines[0].startswith("torch.compile: compiling the DiT block") and "recompile 1" in lines[1]
    uncompile_blocks(model)
    assert not is_compiled(model)
    with pytest.raises(ValueError, match="unknown torch.compile backend"):
        compile_blocks(model, backend="no-such-backend")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                    reason="torch.compile (inductor) needs a C++ compiler on CPU")
def test_inductor_compiled_forward_is_within_1e5_of_eager():
    """The real backend (inductor, C++ on the CPU; ~30-60 s to compile here): within 1e-5 of eager in float32."""
    torch._dynamo.reset()
    model = make_tiny_dit(seed=0).eval()
    inputs = tiny_inputs(model.config, batch=2, frames=2, height=2, width=2)
    eager = forward(model, inputs)
    stats = compile_blocks(model)
    compiled = forward(model, inputs)
    assert stats.graphs == 1 and (compiled - eager).abs().max() < 1e-5
