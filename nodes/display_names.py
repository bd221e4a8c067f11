"""The names ComfyUI shows for the pack's nodes, in one place.

``NODE_DISPLAY_NAME_MAPPINGS`` (``nodes/__init__.py``) is made from :data:`DISPLAY_NAMES`, and
tooltips, descriptions and messages that point the artist to another node use the same names
(:func:`shown`), so a text never names a Python class the UI does not show.
"""

from __future__ import annotations

#: Node class ids (prefixed so they cannot collide with other packs) -> names shown in menus and search.
DISPLAY_NAMES = {
    "TempoMasterLoadModel": "Load TempoMaster Model",
    "TempoMasterTreeScheduler": "TempoMaster Tree Scheduler",
    "TempoMasterMultiMaskCondition": "TempoMaster Multi-Mask Condition",
    "TempoMasterBlueprintSampler": "TempoMaster Blueprint Sampler",
    "TempoMasterFrameRateRefiner": "TempoMaster Frame-Rate Refiner",
    "TempoMasterLoadTinyEncoders": "Load TempoMaster-Tiny Text Encoder & Codec",
    "TempoMasterContinue": "TempoMaster Continue",
    "TempoMasterLoraLoader": "TempoMaster LoRA",
}

LOAD_MODEL = DISPLAY_NAMES["TempoMasterLoadModel"]
TREE_SCHEDULER = DISPLAY_NAMES["TempoMasterTreeScheduler"]
MULTI_MASK_CONDITION = DISPLAY_NAMES["TempoMasterMultiMaskCondition"]
BLUEPRINT_SAMPLER = DISPLAY_NAMES["TempoMasterBlueprintSampler"]
FRAME_RATE_REFINER = DISPLAY_NAMES["TempoMasterFrameRateRefiner"]
LOAD_TINY_ENCODERS = DISPLAY_NAMES["TempoMasterLoadTinyEncoders"]

__all__ = ["BLUEPRINT_SAMPLER", "DISPLAY_NAMES", "FRAME_RATE_REFINER", "LOAD_MODEL", "LOAD_TINY_ENCODERS",
           "MULTI_MASK_CONDITION", "TREE_SCHEDULER"]
