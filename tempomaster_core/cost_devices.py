"""A tree's levels shared over N devices: each device's share and the level time (cost model, torch-free).

Prices what :mod:`tempomaster_core.distributed` does (its split rule is
:mod:`tempomaster_core.sharing`) from a :class:`~tempomaster_core.cost.PlanCost`:

- **share**: DiT batch items (chunk passes) per device and step, DiT and VAE FLOPs per device.
  Chunks mode: a device denoises, encodes and decodes its chunks. Batch mode (fewer chunks than
  devices, guidance): every device encodes every chunk and runs a share of each forward's items;
  the decode is shared by chunks.
- **communication** (bytes every device receives over the level, an all-gather receives the other
  ``N - 1`` shares, padded to the largest): chunks mode gathers the float32 latents and decoded
  frames (``3 x frames x H x W`` float32 per chunk) once; batch mode gathers the float32 velocity
  of every forward's items at every step, plus the decoded frames.
- **time**: ``max over devices (DiT + VAE FLOPs) / flops_per_second + bytes / link_bytes_per_second``
  (the slowest device plus the communication, not overlapped); one device: all FLOPs / throughput.

Assumptions, not measurements: every device equally fast, a sustained throughput for every FLOP
(DiT and VAE alike), the positive and negative passes batched (umT5 embeddings have one length),
``max_batch`` not limiting the forward (as the runtime's default).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .cost import CostError, PlanCost
from .sharing import shares, split_mode
from .validation import require_int, require_number

__all__ = ["ASSUMED_FLOPS_PER_S", "ASSUMED_LINK_BYTES_PER_S", "LevelOnDevices", "level_seconds", "plan_on_devices"]

MAX_DEVICES = 4096
"""Most devices the model prices."""

ASSUMED_FLOPS_PER_S = 4e14
"""Sustained FLOP/s of one device when nothing better is known: an H100 at ~40 % of its bf16 peak (an
assumption, not a measurement; the tree view and ``docs/planning.md``'s table use it)."""

ASSUMED_LINK_BYTES_PER_S = 1e11
"""All-gather bandwidth each device receives at when nothing better is known: NVLink (PCIe 4 is ~2e10)."""


def level_seconds(level: Any, flops_per_second: float = ASSUMED_FLOPS_PER_S) -> float:
    """Time of one priced level (:class:`~tempomaster_core.cost.LevelCost`) on one device: its DiT and VAE
    FLOPs at ``flops_per_second`` (default :data:`ASSUMED_FLOPS_PER_S`, an assumption), seconds."""
    return (level.dit_flops + level.vae_encode_flops + level.vae_decode_flops) / flops_per_second


@dataclass(frozen=True)
class LevelOnDevices:
    """One level on ``devices`` devices (:func:`plan_on_devices`).

    Attributes:
        devices: device count.
        mode: ``"single"`` (one device), ``"chunks"`` or ``"batch"`` (:func:`~tempomaster_core.sharing.split_mode`).
        chunks: chunks each device denoises and decodes (``"batch"``: decodes; it runs every chunk's loop).
        passes: DiT batch items per chunk and step (2 with guidance: the positive and negative pass).
        items: DiT batch items each device computes per step.
        dit_flops: DiT FLOPs of each device over the level.
        vae_flops: VAE FLOPs of each device over the level.
        comm_bytes: bytes each device receives over the level.
        comm_seconds: their time at the link bandwidth (part of ``seconds``).
        seconds: level time, slowest device plus communication.
        single_seconds: the same level on one device.
    """

    devices: int
    mode: str
    chunks: tuple[int, ...]
    passes: int
    items: tuple[int, ...]
    dit_flops: tuple[float, ...]
    vae_flops: tuple[float, ...]
    comm_bytes: int
    comm_seconds: float
    seconds: float
    single_seconds: float

    @property
    def speedup(self) -> float:
        """``single_seconds / seconds``."""
        return self.single_seconds / self.seconds

    @property
    def compute_seconds(self) -> float:
        """The slowest device's compute time (``seconds`` less the communication)."""
        return self.seconds - self.comm_seconds

    def to_dict(self) -> dict:
        """Plain-JSON form (also ``speedup``, ``compute_seconds`` and ``comm_seconds``)."""
        return {"devices": self.devices, "mode": self.mode, "chunks": list(self.chunks), "passes": self.passes,
                "items": list(self.items),
                "dit_flops": list(self.dit_flops), "vae_flops": list(self.vae_flops), "comm_bytes": self.comm_bytes,
                "seconds": self.seconds, "single_seconds": self.single_seconds, "speedup": self.speedup,
                "compute_seconds": self.compute_seconds, "comm_seconds": self.comm_seconds}


def plan_on_devices(cost: PlanCost, devices: Any, *, flops_per_second: Any = ASSUMED_FLOPS_PER_S,
                    link_bytes_per_second: Any = ASSUMED_LINK_BYTES_PER_S) -> tuple[LevelOnDevices, ...]:
    """Each level of ``cost`` shared over ``devices`` devices (see the module doc), blueprint first.

    Args:
        cost: :func:`~tempomaster_core.cost.estimate_plan_cost` of the tree.
        devices: device count, 1..:data:`MAX_DEVICES`, or one count per level (blueprint first: each
            sampler of a ComfyUI chain has its own device list).
        flops_per_second: sustained FLOP/s of one device (default :data:`ASSUMED_FLOPS_PER_S`, an H100 at
            ~40 % of its bf16 peak).
        link_bytes_per_second: all-gather bandwidth each device receives at (default
            :data:`ASSUMED_LINK_BYTES_PER_S`, NVLink; 2e10 for PCIe 4).

    Raises:
        CostError: a count not an int in range, a list not one count per level, a rate not finite > 0,
            a cost without its sizes.
    """
    if not isinstance(cost, PlanCost):
        raise CostError(f"cost must be a PlanCost (estimate_plan_cost), got {type(cost).__name__}")
    counts = list(devices) if isinstance(devices, Sequence) and not isinstance(devices, str) else \
        [devices] * len(cost.levels)
    if len(counts) != len(cost.levels):
        raise CostError(f"devices must be one count or one per level ({len(cost.levels)}), got {len(counts)} counts")
    worlds = [require_int(n, "devices", minimum=1, maximum=MAX_DEVICES, error=CostError) for n in counts]
    rate = require_number(flops_per_second, "flops_per_second", minimum=0.0, exclusive_minimum=True, error=CostError)
    link = require_number(link_bytes_per_second, "link_bytes_per_second", minimum=0.0, exclusive_minimum=True,
                          error=CostError)
    settings = cost.settings
    try:
        height, width, sf = int(settings["height"]), int(settings["width"]), int(settings["spatial_factor"])
        out_dim = int(settings["config"]["out_dim"])
    except (KeyError, TypeError) as exc:
        raise CostError(f"cost.settings lacks the size or model shape ({exc})") from None
    return tuple(_level(lv, world, rate, link, height, width, sf, out_dim) for lv, world in zip(cost.levels, worlds))


def _level(lv: Any, world: int, rate: float, link: float, height: int, width: int, sf: int,
           out_dim: int) -> LevelOnDevices:
    n, passes, steps = lv.work.chunks, lv.passes_per_step, lv.work.steps
    per_item = lv.flops_per_pass / n  # one chunk, one pass
    encode, decode = lv.vae_encode_flops / n, lv.vae_decode_flops / n
    single = level_seconds(lv, rate)
    latent_bytes = 4 * out_dim * lv.latent_frames_per_chunk * (height // sf) * (width // sf)
    video_bytes = 4 * 3 * lv.work.frames_per_chunk * height * width
    if world == 1:
        return LevelOnDevices(1, "single", (n,), passes, (n * passes,), (lv.dit_flops,),
                              (lv.vae_encode_flops + lv.vae_decode_flops,), 0, 0.0, single, single)
    mode = split_mode(n, world, passes)
    chunk_parts = [stop - start for start, stop in shares(n, world)]
    if mode == "chunks":
        items = [c * passes for c in chunk_parts]
        vae = [c * (encode + decode) for c in chunk_parts]
        comm = (world - 1) * max(chunk_parts) * (latent_bytes + video_bytes)
    else:
        items = [stop - start for start, stop in shares(n * passes, world)]
        vae = [n * encode + c * decode for c in chunk_parts]
        comm = (world - 1) * (steps * max(items) * latent_bytes + max(chunk_parts) * video_bytes)
    dit = [i * per_item * steps for i in items]
    comm_seconds = comm / link
    seconds = max(d + v for d, v in zip(dit, vae)) / rate + comm_seconds
    return LevelOnDevices(world, mode, tuple(chunk_parts), passes, tuple(items), tuple(dit), tuple(vae), int(comm),
                          comm_seconds, seconds, single)
