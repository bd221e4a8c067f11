"""ComfyUI layer of TempoMaster: V1 nodes over ``tempomaster_core``.

Nothing here imports ComfyUI at import time (``comfy``, ``folder_paths`` and
``server`` are imported inside functions, see ``nodes/comfy_env.py``), so the
nodes can be unit-tested in plain Python.

Modules of the eight nodes: ``model_loader`` (LoadTempoModel), ``lora_node`` (TempoLoraLoader),
``scheduler_node`` (TreeScheduler), ``condition_node`` (MultiMaskCondition), ``sampler_nodes``
(BlueprintSampler, FrameRateRefiner), ``continue_node`` (TempoContinue: multi-mask continuation of a video),
``builtin_nodes`` (LoadTinyEncoders: the built-in model's text encoder and codec); the web view's HTTP route
``plan_route``; adapters ``vae_adapter``, ``text_adapter``, ``progress``/``preview``, ``comfy_env``,
``comfy_model`` (the DiT as a ComfyUI ModelPatcher: comfy.ops layers, model management, LoRA patches);
the names the UI shows in ``display_names``;
pure helpers ``parsing`` (image resizing lives in
``tempomaster_core.images``); socket types in ``types``.
"""

from .builtin_nodes import LoadTinyEncoders
from .condition_node import MultiMaskCondition
from .continue_node import TempoContinue
from .lora_node import TempoLoraLoader
from .display_names import (BLUEPRINT_SAMPLER_ID, CONTINUE_ID, DISPLAY_NAMES, FRAME_RATE_REFINER_ID, LOAD_MODEL_ID,
                            LOAD_TINY_ENCODERS_ID, LORA_LOADER_ID, MULTI_MASK_CONDITION_ID, TREE_SCHEDULER_ID)
from .model_loader import LoadTempoModel
from .sampler_nodes import BlueprintSampler, FrameRateRefiner
from .scheduler_node import TreeScheduler

#: Node class ids (prefixed so they cannot collide with other packs) -> classes.
NODE_CLASS_MAPPINGS = {
    LOAD_MODEL_ID: LoadTempoModel,
    TREE_SCHEDULER_ID: TreeScheduler,
    MULTI_MASK_CONDITION_ID: MultiMaskCondition,
    BLUEPRINT_SAMPLER_ID: BlueprintSampler,
    FRAME_RATE_REFINER_ID: FrameRateRefiner,
    LOAD_TINY_ENCODERS_ID: LoadTinyEncoders,
    CONTINUE_ID: TempoContinue,
    LORA_LOADER_ID: TempoLoraLoader,
}

#: Node class ids -> names shown in ComfyUI's menus and search (``nodes/display_names.py``).
NODE_DISPLAY_NAME_MAPPINGS = dict(DISPLAY_NAMES)

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
