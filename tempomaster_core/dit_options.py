"""Options applied to a loaded DiT outside ComfyUI (CLI, scripts): LoRAs, fp8 matmul, block swap,
torch.compile, in that order (:func:`configure_dit`).

Inside ComfyUI the nodes use ComfyUI's own machinery for LoRAs and memory instead
(``nodes/comfy_model.py``: its LoRA patches and its model management); fp8 matmul and
torch.compile are options of the Load TempoMaster Model node there too.

* ``--lora FILE[:STRENGTH]`` (:func:`parse_lora_spec`): a LoRA file and its strength (default 1), or
  one strength per level (``style.safetensors:1,0,0``: the blueprint only), applied with
  :func:`tempomaster_core.lora.apply_lora`, in the order given.
* ``--fp8-matmul``: :func:`tempomaster_core.fp8.enable_fp8_matmul` (fp8_e4m3fn weights, a device
  with fp8 matmul; refused before loading otherwise, :func:`tempomaster_core.fp8.require_fp8_matmul`).
* ``--blocks-to-swap N``: :class:`tempomaster_core.block_swap.BlockSwap` with the first ``N`` blocks
  in host memory.
* ``--compile``: :func:`tempomaster_core.compiling.compile_blocks` (each block, ``dynamic=False``;
  every compilation and recompile logged).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch

from .validation import InputError, require_int


def parse_lora_spec(spec: str) -> tuple[Path, object]:
    """``"style.safetensors:0.8"`` -> ``(Path("style.safetensors"), 0.8)``; no ``:STRENGTH`` -> 1.0;
    ``"style.safetensors:1,0,0"`` -> ``(Path(...), (1.0, 0.0, 0.0))``: one strength per level,
    blueprint first (the count is checked against the plan by the caller).

    The text after the last ``:`` is a strength only when it is a number or a comma-separated list
    of numbers, so ``C:\\loras\\x.safetensors`` is a path.

    Raises:
        InputError: an empty path, a non-finite strength, or a file that does not exist.
    """
    text = str(spec)
    path, strength = text, 1.0
    head, sep, tail = text.rpartition(":")
    if sep:
        try:
            values = tuple(float(part) for part in tail.split(","))
            path, strength = head, values if "," in tail else values[0]
        except ValueError:
            pass
    if not all(math.isfinite(v) for v in (strength if isinstance(strength, tuple) else (strength,))):
        raise InputError(f"--lora {spec}: the strength must be a finite number (or one per level, e.g. 1,0,0)")
    if not path:
        raise InputError(f"--lora {spec}: give a LoRA file, e.g. --lora style.safetensors:0.8")
    if not Path(path).is_file():
        raise InputError(f"--lora {spec}: no such file {path!r}")
    return Path(path), strength


def _strength_text(strength) -> str:
    return ",".join(f"{s:g}" for s in strength) + " per level" if isinstance(strength, tuple) else f"{strength:g}"


def configure_dit(model, *, loras: Sequence[tuple[Path, object]] = (), blocks_to_swap: int = 0,
                  fp8_matmul: bool = False, torch_compile: bool = False, device=None,
                  log: Optional[Callable[[str], None]] = None) -> DitOptions:
    """Apply LoRAs (in order) to a loaded DiT, then fp8 matmul, block swap and torch.compile.

    Args:
        model: a :class:`~tempomaster_core.model.TempoMasterDiT`.
        loras: ``[(path, strength or per-level strengths)]`` from :func:`parse_lora_spec`.
        blocks_to_swap: blocks kept in host memory (0 = none).
        fp8_matmul: multiply the fp8-stored layers in fp8 (:func:`tempomaster_core.fp8.enable_fp8_matmul`).
        torch_compile: compile each block (:func:`tempomaster_core.compiling.compile_blocks`).
        device: the compute device for block swap and fp8 matmul (default: the model's).
        log: a callable taking one line per LoRA and per compilation (e.g. ``print``); ``None`` = silent.

    Returns:
        the :class:`DitOptions` installed.

    Raises:
        InputError: ``blocks_to_swap`` not an integer in ``0 .. num_layers``; fp8 matmul that cannot
            run (weights not fp8_e4m3fn, a device without fp8 matmul) -- both checked before any
            LoRA is applied.
        tempomaster_core.lora.LoraError: a LoRA for another model (nothing applied from that file).
    """
    from .block_swap import BlockSwap
    from .compiling import compile_blocks
    from .fp8 import enable_fp8_matmul, require_fp8_matmul
    from .lora import apply_lora

    device = torch.device(device) if device is not None else model.device
    swapped = require_int(blocks_to_swap, "blocks_to_swap", minimum=0)
    if swapped:
        require_int(swapped, f"blocks_to_swap (the DiT has {len(model.blocks)} blocks)", maximum=len(model.blocks))
    if fp8_matmul:
        require_fp8_matmul(device, model.weight_dtype)
    for path, strength in loras:
        report = apply_lora(model, path, strength)
        if log is not None:
            log(f"LoRA {report.name} at strength {_strength_text(strength)}: {len(report.patched)} weights"
                + (f", {len(report.unknown)} keys unused" if report.unknown else ""))
    options = DitOptions()
    if fp8_matmul:
        options.fp8_matmul_layers = enable_fp8_matmul(model, device)
    if swapped:
        options.block_swap = BlockSwap(model, swapped, device)
    if torch_compile:
        options.compile_stats = compile_blocks(model, log=log)
    return options


@dataclass
class DitOptions:
    """What :func:`configure_dit` installed.

    Attributes:
        block_swap: the :class:`~tempomaster_core.block_swap.BlockSwap`, or ``None``.
        compile_stats: the :class:`~tempomaster_core.compiling.CompileStats` (graphs and recompiles
            so far), or ``None`` without torch.compile.
        fp8_matmul_layers: layers switched to fp8 matmul (0 = off).
    """

    block_swap: Optional[object] = None
    compile_stats: Optional[object] = None
    fp8_matmul_layers: int = 0
