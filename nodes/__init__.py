"""ComfyUI layer of TempoMaster: V1 nodes over ``tempomaster_core``.

Nothing here imports ComfyUI at import time (``comfy``, ``folder_paths`` and
``server`` are imported inside functions, see ``nodes/comfy_env.py``), so the
nodes can be unit-tested in plain Python.

Modules of the six nodes: ``model_loader`` (LoadTempoModel), ``scheduler_node``
(TreeScheduler), ``condition_node`` (MultiMaskCondition), ``sampler_nodes`` (BlueprintSampler,
FrameRateRefiner), ``builtin_nodes`` (LoadTinyEncoders: the built-in model's text encoder and
codec); the web view's HTTP route ``plan_route``; adapters ``vae_adapter``, ``text_adapter``,
``progress``/``preview``, ``comfy_env``; the names the UI shows in ``display_names``; pure helpers
``parsing`` (image resizing lives in ``tempomaster_core.images``); socket types in ``types``.
"""

from .builtin_nodes import LoadTinyEncoders
from .condition_node import MultiMaskCondition
from .display_names import DISPLAY_NAMES
from .model_loader import LoadTempoModel
from .sampler_nodes import BlueprintSampler, FrameRateRefiner
from .scheduler_node import TreeScheduler

#: Node class ids (prefixed so they cannot collide with other packs) -> classes.
NODE_CLASS_MAPPINGS = {
    "TempoMasterLoadModel": LoadTempoModel,
    "TempoMasterTreeScheduler": TreeScheduler,
    "TempoMasterMultiMaskCondition": MultiMaskCondition,
    "TempoMasterBlueprintSampler": BlueprintSampler,
    "TempoMasterFrameRateRefiner": FrameRateRefiner,
    "TempoMasterLoadTinyEncoders": LoadTinyEncoders,
}

#: Node class ids -> names shown in ComfyUI's menus and search (``nodes/display_names.py``).
NODE_DISPLAY_NAME_MAPPINGS = dict(DISPLAY_NAMES)

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
