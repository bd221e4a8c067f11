"""The samplers' ``devices`` option: one level on several devices, one model replica per device, in threads.

``devices = "cuda:0,cuda:1"`` runs the level as ``torchrun`` ranks would
(:mod:`tempomaster_core.distributed`): each device denoises its share of the level's chunks,
or of each forward's guidance passes (the blueprint), and every device gets the whole
level back, through :func:`tempomaster_core.device_threads.run_in_threads` (one thread per
device in the ComfyUI process, the way ComfyUI's own multi-GPU work units run per-device
model clones in threads). The frames are those of one device (bit-identical on CPU).

Replicas: the DiT ComfyUI loaded on its compute device (with its LoRA patches) serves the
listed device it is on; every other GPU gets a copy of it for the duration of the level
(``copy.deepcopy(...).to(device)``: the weights cross the bus once per level). ``cpu`` may
be listed several times (the threads share one CPU model: a test setup). The VAE stays
where ComfyUI keeps it; its encode and decode calls are serialised (ComfyUI's VAE and model
management are not thread-safe), the denoising runs in parallel.
"""

from __future__ import annotations

import copy
import logging
import threading
from typing import Any, Callable

import torch

log = logging.getLogger("TempoMaster")

DEVICES_INPUT = ("STRING", {
    "default": "",
    "tooltip": "Devices to share this level over, e.g. cuda:0,cuda:1 (one model replica each; the level's chunks, "
               "or the blueprint's positive and negative passes, are split between them; same frames as one "
               "device). Empty = ComfyUI's device. For several machines use torchrun on the command line.",
})
"""The ``devices`` widget of both sampler nodes (optional, so workflows without it load unchanged)."""


def parse_devices(text: Any) -> list[torch.device]:
    """The ``devices`` widget as devices (``[]`` = ComfyUI's one device), checked before any compute.

    Raises:
        tempomaster_core.validation.InputError: an unknown or unavailable device, a GPU listed twice,
            an empty entry (:func:`tempomaster_core.device_threads.parse_device_list`).
    """
    from tempomaster_core.device_threads import parse_device_list

    return parse_device_list("" if text is None else text, "devices")


class _SerialCodec:
    """A codec whose ``encode``/``decode`` run one at a time (one lock shared by every thread)."""

    def __init__(self, codec: Any) -> None:
        self._codec = codec
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._codec, name)

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        with self._lock:
            return self._codec.encode(video)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        with self._lock:
            return self._codec.decode(latents)


def _device_of(dit: Any) -> torch.device:
    device = getattr(dit, "device", None)
    if isinstance(device, torch.device):
        return device
    first = next(iter(dit.parameters()), None)
    return first.device if first is not None else torch.device("cpu")


def _same(a: torch.device, b: torch.device) -> bool:
    return a.type == b.type and (a.index or 0) == (b.index or 0)


def replicas(dit: Any, devices: list[torch.device]) -> list[Any]:
    """One DiT per device: ``dit`` itself where it already is, else a copy moved there."""
    home = _device_of(dit)
    out = []
    for device in devices:
        if _same(device, home):
            out.append(dit)
        else:
            log.info("TempoMaster: copying the DiT to %s for this level", device)
            out.append(copy.deepcopy(dit).to(device))
    return out


def run_on_devices(dit: Any, codec: Any, devices: list[torch.device],
                   run: Callable[[Any, Any, bool], Any]) -> Any:
    """``run(dit replica, codec, is_first)`` on every device at once; the first device's result.

    ``run`` is the core level runner (its levels are shared, see the module doc); ``is_first``
    marks the device whose thread is the caller's (it reports progress and may be cancelled).

    Raises:
        The failing device's own exception (e.g. ComfyUI's interrupt, an out-of-memory error);
        the other devices stop at their next sync point.
    """
    from tempomaster_core.device_threads import run_in_threads

    models = replicas(dit, devices)
    shared = _SerialCodec(codec)
    names = ", ".join(str(d) for d in devices)
    log.info("TempoMaster: this level runs on %d devices (%s)", len(devices), names)
    results = run_in_threads(lambda rank, ranks: run(models[rank], shared, rank == 0), len(devices),
                             log=lambda line: log.info("TempoMaster: %s", line))
    return results[0]
