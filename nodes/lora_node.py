"""TempoLoraLoader: a Wan 2.1 14B LoRA from ComfyUI's ``loras`` folder applied to a ``TEMPO_MODEL``.

Chains like ComfyUI's ``LoraLoaderModelOnly``: ``TEMPO_MODEL`` in, ``TEMPO_MODEL`` out, the input
unchanged (several loaders chain). The file is read with the core's
:func:`tempomaster_core.lora.load_lora_file` and applied by :func:`nodes.comfy_model.with_lora`:
inside ComfyUI as ModelPatcher patches (ComfyUI's LoRA machinery), outside it on a copy of the
DiT. Key layouts, unknown keys and refusals: :mod:`tempomaster_core.lora`.
"""

from __future__ import annotations

import os

from tempomaster_core.lora import load_lora_file
from tempomaster_core.validation import require_number

from . import comfy_env
from .comfy_model import with_lora
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
        "TempoMaster model at a strength. It acts on every level; keys that match no layer are listed in one "
        "warning, and a LoRA for another model size is refused."
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
            }
        }

    def load(self, model, lora_name: str, strength: float = 1.0):
        """Return ``(model,)`` with the LoRA added.

        Raises:
            FileNotFoundError: no such LoRA file.
            tempomaster_core.validation.InputError: a strength that is not a finite number.
            tempomaster_core.lora.LoraError: not a LoRA for this DiT (another model size, no matching key).
        """
        strength = require_number(strength, "strength", minimum=STRENGTH_RANGE[0], maximum=STRENGTH_RANGE[1])
        path = resolve_lora_path(lora_name)
        if strength == 0:
            return (model,)
        return (with_lora(model, load_lora_file(path), strength, os.path.basename(path)),)
