"""Options applied to a loaded DiT outside ComfyUI (CLI, scripts): LoRAs, then block swap.

Inside ComfyUI the nodes use ComfyUI's own machinery instead (``nodes/comfy_model.py``): its
LoRA patches and its model management.

* ``--lora FILE[:STRENGTH]`` (:func:`parse_lora_spec`): a LoRA file and its strength (default 1),
  applied with :func:`tempomaster_core.lora.apply_lora`, in the order given.
* ``--blocks-to-swap N``: :class:`tempomaster_core.block_swap.BlockSwap` with the first ``N`` blocks
  in host memory.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

import torch

from .validation import InputError, require_int


def parse_lora_spec(spec: str) -> tuple[Path, float]:
    """``"style.safetensors:0.8"`` -> ``(Path("style.safetensors"), 0.8)``; no ``:STRENGTH`` -> 1.0.

    The text after the last ``:`` is a strength only when it is a number, so ``C:\\loras\\x.safetensors``
    is a path.

    Raises:
        InputError: an empty path, a non-finite strength, or a file that does not exist.
    """
    text = str(spec)
    path, strength = text, 1.0
    head, sep, tail = text.rpartition(":")
    if sep:
        try:
            strength = float(tail)
            path = head
        except ValueError:
            pass
    if not math.isfinite(strength):
        raise InputError(f"--lora {spec}: the strength must be a finite number")
    if not path:
        raise InputError(f"--lora {spec}: give a LoRA file, e.g. --lora style.safetensors:0.8")
    if not Path(path).is_file():
        raise InputError(f"--lora {spec}: no such file {path!r}")
    return Path(path), strength


def configure_dit(model, *, loras: Sequence[tuple[Path, float]] = (), blocks_to_swap: int = 0,
                  device=None, log=None) -> Optional[object]:
    """Apply LoRAs (in order) to a loaded DiT, then install block swap.

    Args:
        model: a :class:`~tempomaster_core.model.TempoMasterDiT`.
        loras: ``[(path, strength)]`` from :func:`parse_lora_spec`.
        blocks_to_swap: blocks kept in host memory (0 = none).
        device: the compute device for block swap (default: the model's).
        log: a callable taking one line per LoRA (e.g. ``print``); ``None`` = silent.

    Returns:
        The :class:`~tempomaster_core.block_swap.BlockSwap`, or ``None`` without block swap.

    Raises:
        InputError: ``blocks_to_swap`` not an integer in ``0 .. num_layers``.
        tempomaster_core.lora.LoraError: a LoRA for another model (nothing applied from that file).
    """
    from .block_swap import BlockSwap
    from .lora import apply_lora

    swapped = require_int(blocks_to_swap, "blocks_to_swap", minimum=0)
    if swapped:
        require_int(swapped, f"blocks_to_swap (the DiT has {len(model.blocks)} blocks)", maximum=len(model.blocks))
    for path, strength in loras:
        report = apply_lora(model, path, strength)
        if log is not None:
            log(f"LoRA {report.name} at strength {strength:g}: {len(report.patched)} weights"
                + (f", {len(report.unknown)} keys unused" if report.unknown else ""))
    if not swapped:
        return None
    return BlockSwap(model, swapped, torch.device(device) if device is not None else model.device)
