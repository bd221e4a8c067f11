"""``torch.compile`` of the DiT's blocks, with every compilation counted and logged.

:func:`compile_blocks` compiles the ``forward`` of each of the DiT's blocks with ``torch.compile``
(``dynamic=False``: one graph per input shape, the fastest kernels), the way ComfyUI's and
WanVideoWrapper's compile options do, rather than the whole model: the 40 blocks of the 14B share
one code object, so dynamo traces the block once and every block reuses the graph (their weights
are graph inputs). The embeddings, the RoPE table and the head stay eager.

Each graph the backend compiles is counted (:class:`CompileStats`): the first one per input shape
is expected; every later one is a **recompile** (a new shape -- another level's batch or token
count --, a new dtype or device), logged with the input shapes so a user sees why a level was slow.
``torch._dynamo.config.recompile_limit`` (8 by default) still bounds the recompiles per code object;
past it dynamo runs the block eagerly (torch logs that).

The outputs are those of the eager model up to float rounding of fused kernels
(``tests/test_compiling.py``: within 1e-5 of eager on a tiny DiT in float32). Inductor on the CPU
needs a C++ compiler; the first forward of each shape pays the compilation (tens of seconds).
Undo with :func:`uncompile_blocks`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
import torch.nn as nn


@dataclass
class CompileStats:
    """The compilations :func:`compile_blocks`' backend has done.

    Attributes:
        graphs: graphs compiled so far (the first one included).
        shapes: the tensor input shapes of each compiled graph, in order.
        log: where a line per compilation goes (``None`` = nowhere).
    """

    graphs: int = 0
    shapes: list = field(default_factory=list)
    log: Optional[Callable[[str], None]] = None

    @property
    def recompiles(self) -> int:
        """Graphs compiled after the first one."""
        return max(0, self.graphs - 1)

    def backend(self, inner: Callable) -> Callable:
        """A ``torch.compile`` backend that counts and logs each graph, then compiles it with ``inner``."""
        def count(graph_module, example_inputs):
            shapes = [tuple(t.shape) for t in example_inputs if isinstance(t, torch.Tensor)]
            self.graphs += 1
            self.shapes.append(shapes)
            if self.log is not None:
                what = "compiling the DiT block" if self.graphs == 1 else f"recompile {self.recompiles} of the DiT block"
                self.log(f"torch.compile: {what} for inputs {shapes[:4]}{' ...' if len(shapes) > 4 else ''}")
            return inner(graph_module, example_inputs)
        return count


def compile_blocks(model: nn.Module, *, backend: str = "inductor",
                   log: Optional[Callable[[str], None]] = None) -> CompileStats:
    """Compile the ``forward`` of every block of ``model.blocks`` in place (``dynamic=False``).

    Args:
        model: a :class:`~tempomaster_core.model.TempoMasterDiT` (any dtype and device; block swap
            and LoRAs may be installed before or after).
        backend: the ``torch.compile`` backend the counted graphs go to (``"inductor"``; ``"eager"``
            traces without code generation, for checks).
        log: a callable taking one line per compilation (e.g. ``logging.info`` or ``print``).

    Returns:
        the :class:`CompileStats` its backend fills as forwards run.

    Raises:
        TypeError: ``model`` has no ``blocks``.
        ValueError: an unknown backend (``torch.compiler.list_backends``).
    """
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, nn.ModuleList):
        raise TypeError(f"compile_blocks needs a DiT with .blocks, got {type(model).__name__}")
    import torch._dynamo as dynamo

    try:
        inner = dynamo.lookup_backend(backend)
    except Exception:  # torch's InvalidBackend
        raise ValueError(f"unknown torch.compile backend {backend!r}; choose one of "
                         f"{sorted(set(torch.compiler.list_backends(exclude_tags=())) | {'eager'})}") from None
    stats = CompileStats(log=log)
    counted = stats.backend(inner)
    uncompile_blocks(model)
    for block in blocks:
        # the class's forward, bound to this block, shadowed by an instance attribute (undone by uncompile)
        block.forward = torch.compile(type(block).forward.__get__(block), dynamic=False, backend=counted)
    return stats


def uncompile_blocks(model: nn.Module) -> None:
    """Undo :func:`compile_blocks`: every block runs its eager ``forward`` again."""
    for block in getattr(model, "blocks", ()):
        block.__dict__.pop("forward", None)


def is_compiled(model: nn.Module) -> bool:
    """True when :func:`compile_blocks` was applied (and not undone)."""
    return any("forward" in block.__dict__ for block in getattr(model, "blocks", ()))


__all__ = ["CompileStats", "compile_blocks", "is_compiled", "uncompile_blocks"]
