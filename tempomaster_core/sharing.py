"""How a level is shared over devices: the split rule of :mod:`tempomaster_core.distributed`, torch-free.

The runtime (``distributed``) and the cost model (:func:`tempomaster_core.cost.plan_on_devices`) read
the same rule from here. A level of ``num_chunks`` chunks whose DiT forward holds ``passes`` items per
chunk (2 when the positive and negative passes run as one forward) is split by chunks (every device
denoises a contiguous share of the chunks, no communication between steps) or by batch (every device
runs every chunk's sampling loop and computes a share of each forward's items; the outputs are
gathered after every forward), whichever puts fewer items on the busiest device.
"""

from __future__ import annotations

import math

__all__ = ["busiest_items", "shares", "split_mode"]


def shares(total: int, world_size: int) -> list[tuple[int, int]]:
    """Contiguous balanced ``(start, stop)`` shares of ``total`` items over ``world_size`` ranks:
    the first ``total % world_size`` ranks get one item more; ranks beyond ``total`` get none
    (``start == stop``). Rank 0 always starts at 0."""
    base, extra = divmod(int(total), int(world_size))
    out, start = [], 0
    for r in range(int(world_size)):
        stop = start + base + (1 if r < extra else 0)
        out.append((start, stop))
        start = stop
    return out


def split_mode(num_chunks: int, world_size: int, passes: int) -> str:
    """``"chunks"`` or ``"batch"`` for a level (see the module doc).

    Args:
        num_chunks: the level's chunks.
        world_size: ranks.
        passes: DiT batch items per chunk and forward: 2 when the positive and negative
            passes run as one forward, else 1.

    Returns:
        ``"batch"`` when splitting each forward's ``passes * num_chunks`` items puts fewer
        on the busiest rank than splitting the chunks does (e.g. the blueprint with
        guidance on 2 ranks, or 3 guided chunks on 2 ranks), else ``"chunks"``.
    """
    return "batch" if passes > 1 and busiest_items(num_chunks, world_size, passes, "batch") < \
        busiest_items(num_chunks, world_size, passes, "chunks") else "chunks"


def busiest_items(num_chunks: int, world_size: int, passes: int, mode: str) -> int:
    """DiT batch items (chunk passes) the busiest rank computes per step in ``mode``."""
    if mode == "batch":
        return math.ceil(num_chunks * passes / world_size)
    return math.ceil(num_chunks / world_size) * passes
