"""The names ComfyUI shows for the pack's nodes, in one place.

``NODE_DISPLAY_NAME_MAPPINGS`` (``nodes/__init__.py``) is made from :data:`DISPLAY_NAMES`, and
tooltips, descriptions and messages that point the artist to another node use the same names
(:func:`shown`), so a text never names a Python class the UI does not show.
"""

from __future__ import annotations

#: Node class ids (prefixed so they cannot collide with other packs): the ``class_type`` of saved
#: workflows, the keys of ``NODE_CLASS_MAPPINGS``; the web view gets them in ``web/scheduler_schema.js``.
LOAD_MODEL_ID = "TempoMasterLoadModel"
TREE_SCHEDULER_ID = "TempoMasterTreeScheduler"
MULTI_MASK_CONDITION_ID = "TempoMasterMultiMaskCondition"
BLUEPRINT_SAMPLER_ID = "TempoMasterBlueprintSampler"
FRAME_RATE_REFINER_ID = "TempoMasterFrameRateRefiner"
LOAD_TINY_ENCODERS_ID = "TempoMasterLoadTinyEncoders"
CONTINUE_ID = "TempoMasterContinue"
LORA_LOADER_ID = "TempoMasterLoraLoader"

#: Node class ids -> names shown in menus and search.
DISPLAY_NAMES = {
    LOAD_MODEL_ID: "Load TempoMaster Model",
    TREE_SCHEDULER_ID: "TempoMaster Tree Scheduler",
    MULTI_MASK_CONDITION_ID: "TempoMaster Multi-Mask Condition",
    BLUEPRINT_SAMPLER_ID: "TempoMaster Blueprint Sampler",
    FRAME_RATE_REFINER_ID: "TempoMaster Frame-Rate Refiner",
    LOAD_TINY_ENCODERS_ID: "Load TempoMaster-Tiny Text Encoder & Codec",
    CONTINUE_ID: "TempoMaster Continue",
    LORA_LOADER_ID: "TempoMaster LoRA",
}

LOAD_MODEL = DISPLAY_NAMES[LOAD_MODEL_ID]
TREE_SCHEDULER = DISPLAY_NAMES[TREE_SCHEDULER_ID]
MULTI_MASK_CONDITION = DISPLAY_NAMES[MULTI_MASK_CONDITION_ID]
BLUEPRINT_SAMPLER = DISPLAY_NAMES[BLUEPRINT_SAMPLER_ID]
FRAME_RATE_REFINER = DISPLAY_NAMES[FRAME_RATE_REFINER_ID]
LOAD_TINY_ENCODERS = DISPLAY_NAMES[LOAD_TINY_ENCODERS_ID]

__all__ = ["BLUEPRINT_SAMPLER", "BLUEPRINT_SAMPLER_ID", "CONTINUE_ID", "DISPLAY_NAMES", "FRAME_RATE_REFINER",
           "FRAME_RATE_REFINER_ID", "LOAD_MODEL", "LOAD_MODEL_ID", "LOAD_TINY_ENCODERS", "LOAD_TINY_ENCODERS_ID",
           "LORA_LOADER_ID", "MULTI_MASK_CONDITION", "MULTI_MASK_CONDITION_ID", "TREE_SCHEDULER", "TREE_SCHEDULER_ID"]
