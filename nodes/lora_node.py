"""TempoLoraLoader: a Wan 2.1 14B LoRA from ComfyUI's ``loras`` folder applied to a ``TEMPO_MODEL``.

Chains like ComfyUI's ``LoraLoaderModelOnly``: ``TEMPO_MODEL`` in, ``TEMPO_MODEL`` out, the input
unchanged (several loaders chain). ``strength_per_level`` (optional, e.g. ``"1, 0, 0"``) gives one
strength per level of the plan instead (:func:`nodes.comfy_model.for_level`). The file is read with the core's
:func:`tempomaster_core.lora.load_lora_file` and applied by :func:`nodes.comfy_model.with_lora`:
inside ComfyUI as ModelPatcher patches (ComfyUI's LoRA machinery), outside it on a copy of the
DiT. Key layouts, unknown keys and refusals: :mod:`tempomaster_core.lora`.
"""

from __future__ import annotations

import os
from typing import Optional

from tempomaster_core.lora import load_lora_file
from tempomaster_core.validation import require_number

from . import comfy_env
from .comfy_model import with_lora
from .parsing import parse_number_list
from .types import TEMPO_MODEL

#: ComfyUI model folder the LoRA files live in.
LORA_FOLDER = "loras"
#: Range of the node's strength widgets (the core takes any finite strength).
STRENGTH_RANGE = (-10.0, 10.0)


def resolve_lora_path(name: str) -> str:
    """Full path of a LoRA name from ComfyUI's ``loras`` folder (or an existing file path).

    Raises:
        FileNotFoundError: neither; the message says where LoRA files belong.
    """
    path = comfy_env.model_folder_path(LORA_FOLDER, name)
    if path is None and os.path.isfile(name):
        path = name
    if path is None or not os.path.isfile(path):
        raise FileNotFoundError(f"LoRA {name!r} not found. Put Wan 2.1 14B LoRA .safetensors files into "
                                "ComfyUI/models/loras/ and refresh.")
    return path


class TempoLoraLoader:
    """ComfyUI node: apply a LoRA to the TempoMaster DiT (see module doc)."""

    CATEGORY = "TempoMaster"
    FUNCTION = "load"
    RETURN_TYPES = (TEMPO_MODEL,)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The TempoMaster DiT with the LoRA added (the input model is unchanged; chain several loaders).",)
    DESCRIPTION = (
        "Applies a LoRA trained for the Wan 2.1 14B DiT (ComfyUI, kohya/musubi or diffusers key layouts) to the "
        "TempoMaster model at a strength, on every level or with one strength per level (e.g. a style LoRA on "
        "the blueprint only); keys that match no layer are listed in one warning, and a LoRA for another model "
        "size is refused."
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (TEMPO_MODEL, {"tooltip": "The TempoMaster model from Load TempoMaster Model (or another LoRA loader)."}),
                "lora_name": (comfy_env.model_folder_files(LORA_FOLDER), {
                    "tooltip": "LoRA .safetensors in ComfyUI/models/loras/, trained for Wan 2.1 14B (T2V or I2V; "
                               "I2V-only layers are skipped with a warning).",
                }),
                "strength": ("FLOAT", {
                    "default": 1.0, "min": STRENGTH_RANGE[0], "max": STRENGTH_RANGE[1], "step": 0.01,
                    "tooltip": "Multiplies the LoRA's change of the weights: 1 as trained, 0 off, negative inverts it.",
                }),
            },
            "optional": {
                "strength_per_level": ("STRING", {
                    "default": "", "multiline": False,
                    "tooltip": "Empty: 'strength' at every level. Else one strength per level of the plan, "
                               "blueprint first, e.g. '1, 0, 0' for a style LoRA on the blueprint only (the "
                               "refinements then keep the original weights; ComfyUI re-patches the weights "
                               "between levels). The count must match the plan's levels.",
                }),
            },
        }

    def load(self, model, lora_name: str, strength: float = 1.0, strength_per_level: Optional[str] = None):
        """Return ``(model,)`` with the LoRA added (``strength_per_level`` left out or empty: ``strength``).

        Raises:
            FileNotFoundError: no such LoRA file.
            ValueError / tempomaster_core.validation.InputError: a strength that is not a finite number
                in the widget's range, or a per-level list that does not parse. (A per-level count that
                does not match the plan is refused by the sampler nodes, before any compute.)
            tempomaster_core.lora.LoraError: not a LoRA for this DiT (another model size, no matching key).
        """
        low, high = STRENGTH_RANGE
        strength = require_number(strength, "strength", minimum=low, maximum=high)
        if strength_per_level is not None and str(strength_per_level).strip():
            values = parse_number_list(strength_per_level, "strength_per_level")
            strength = tuple(require_number(v, "strength_per_level", minimum=low, maximum=high) for v in values)
        path = resolve_lora_path(lora_name)
        if strength == 0 or (isinstance(strength, tuple) and not any(strength)):
            return (model,)
        return (with_lora(model, load_lora_file(path), strength, os.path.basename(path)),)
