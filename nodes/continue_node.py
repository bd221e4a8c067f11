"""TempoMaster Continue: the next segment of a video, every level knowing the last seconds (multi-mask continuation).

Takes the frames so far (ComfyUI ``IMAGE``, made by the samplers or loaded from a video file) and
returns the joined video, the new part and the fps, so Continue nodes chain (``joined`` -> the next
node's ``images``) to a minute and more. The segment's tree is shaped like the connected plan (its
frame intervals, chunk lengths, boundary mode, size, fps): ``tempomaster_core.continuation``.

Order of work: every input is checked first (per-level settings, context and new length, the frames'
size, fps and count against the context, VAE / text / plan against the model), then memory is freed
and checked for every level of the segment, the DiT is moved, the levels run, and the DiT goes back to
the offload device.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

from tempomaster_core.anchor_correction import ANCHOR_CORRECTION
from tempomaster_core.anti_drift import ANTI_DRIFT_MODES
from tempomaster_core.defaults import (
    ANTI_DRIFT, BUILTIN_JOIN_FADE_SECONDS, CFG, CONTEXT_SECONDS, FPS, GUIDANCE, JOIN_FADE_SECONDS, SEED, SEGMENT_NEW_FRAMES,
    default_schedule,
)
from tempomaster_core.join_fade import MAX_JOIN_FADE_SECONDS
from tempomaster_core.known_latents import REPLACE_KNOWN_LATENTS
from tempomaster_core.tiny.builtin import BUILTIN_MODEL_NAME
from tempomaster_core.guidance import GUIDANCE_KINDS
from tempomaster_core.plan import MAX_OUTPUT_FRAMES
from tempomaster_core.validation import MAX_SEED

from .comfy_model import LEVEL_LORAS, dit_of
from .parsing import optional_input, parse_int_list, parse_number_list
from .progress import NodeProgress
from .sampler_nodes import (
    ANCHOR_CORRECTION_IN, _MODEL_IN, _NEGATIVE_IN, _POSITIVE_IN, _VAE_IN, _VAE_TILED, _checked_contexts, _release,
    _to_compute_device,
)
from .types import TEMPO_PLAN
from .vae_adapter import as_codec

log = logging.getLogger("TempoMaster")


def _per_level(text: str, default: list, levels: int, name: str, parse) -> list:
    """A per-level text widget: empty = ``default``; one value for every level; or one per level."""
    from tempomaster_core.level_settings import per_level

    values = parse(text, name) if str(text).strip() else default
    return per_level(values[0] if len(values) == 1 else list(values), name, levels)


JOIN_FADE_IN = ("FLOAT", {
    "default": JOIN_FADE_SECONDS, "min": 0.0, "max": MAX_JOIN_FADE_SECONDS, "step": 0.05,
    "tooltip": "Seconds over which the new frames go from the last frame of images to the segment's own rendering, "
               "so the join does not jump (the segment redraws its context a little differently: a tint, an object's "
               f"colour). 0 = a plain cut (the paper's setting); {BUILTIN_JOIN_FADE_SECONDS:g} is recommended for "
               f"{BUILTIN_MODEL_NAME} (benchmarks/README.md).",
})
"""The Continue node's ``join_fade`` input (:mod:`tempomaster_core.join_fade`); optional, so a workflow saved before
it existed loads with a plain cut."""

REPLACE_KNOWN_LATENTS_IN = ("BOOLEAN", {
    "default": REPLACE_KNOWN_LATENTS,
    "tooltip": "At every step, keep the latent frames whose frames are all known (the context) on their path to the "
               "context's own latents, so the segment ends exactly on its context and the join is smoother. Not in "
               f"the reference (off = its behaviour); on is recommended for {BUILTIN_MODEL_NAME} (its defaults.json, "
               "benchmarks/README.md).",
})
"""The Continue node's ``replace_known_latents`` input (:mod:`tempomaster_core.known_latents`); optional, so a
workflow saved before it existed loads with the reference's behaviour."""


def level_settings_from_widgets(plan: Any, *, steps: str, shift: str, cfg: str, guidance: str, seed: int,
                                max_batch: Any, anchor_correction: Any = ANCHOR_CORRECTION,
                                replace_known_latents: Any = REPLACE_KNOWN_LATENTS) -> list:
    """One ``LevelSettings`` per level of ``plan`` from the node's text widgets (empty = the reference's:
    steps 50 / 32, shifts 5 / 3, cfg 8).

    Raises:
        ValueError: unparsable text, a list of another length than the plan's levels, or a value the
            core refuses (``tempomaster_core.validation.InputError``).
    """
    from tempomaster_core.pipeline import tree_settings

    levels = plan.num_levels
    ref_steps, ref_shifts = default_schedule(plan)
    return tree_settings(levels, steps=_per_level(steps, list(ref_steps), levels, "steps", parse_int_list),
                         shifts=_per_level(shift, list(ref_shifts), levels, "shift", parse_number_list),
                         cfg=_per_level(cfg, [CFG], levels, "cfg", parse_number_list), guidance=guidance,
                         seed=seed, max_batch=max_batch, anchor_correction=anchor_correction,
                         replace_known_latents=replace_known_latents)


class TempoContinue:
    """ComfyUI node: continue a video by one segment whose every level knows its last seconds."""

    CATEGORY = "TempoMaster"
    FUNCTION = "extend"
    RETURN_TYPES = ("IMAGE", "IMAGE", "FLOAT")
    RETURN_NAMES = ("joined", "new_frames", "fps")
    OUTPUT_TOOLTIPS = (
        "The frames so far followed by the new frames [frames, height, width, 3] in 0..1 (connect to the next "
        "Continue node's images to go on, or to Create Video).",
        "Only the new frames of this segment (after the context).",
        "Frame rate of both outputs (the plan's output fps).",
    )
    DESCRIPTION = (
        "Multi-mask continuation (paper: 5 s of context, 480 new frames per step, minute-long video): generates "
        "the next segment as a tree shaped like the plan, in which the last context seconds of the frames so far "
        "are known frames at their true positions at every frame rate, so the overlap is reproduced and the new "
        "part continues it. Works on frames made here or on any video of the plan's size and fps."
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": _MODEL_IN,
            "plan": (TEMPO_PLAN, {"tooltip": "The tree the model runs (TreeScheduler): the segment takes its frame "
                                             "intervals, chunk lengths, boundary frames, size and fps."}),
            "images": ("IMAGE", {"tooltip": "The frames so far at the plan's output fps and size (e.g. a sampler's "
                                            "or a Continue node's output, or a loaded video)."}),
            "fps": ("FLOAT", {"default": FPS, "min": 0.01, "max": 240.0, "step": 0.001,
                              "tooltip": "Frame rate of images; must be the plan's output fps."}),
            "positive": _POSITIVE_IN,
            "negative": _NEGATIVE_IN,
            "vae": _VAE_IN,
            "context_seconds": ("FLOAT", {
                "default": CONTEXT_SECONDS, "min": 0.01, "max": 600.0, "step": 0.01,
                "tooltip": f"Seconds at the end of images that the segment knows at every level (paper: "
                           f"{CONTEXT_SECONDS:g}). At most the length of images.",
            }),
            "new_frames": ("INT", {
                "default": SEGMENT_NEW_FRAMES, "min": 1, "max": MAX_OUTPUT_FRAMES,
                "tooltip": f"Frames this segment adds at the output fps (paper: {SEGMENT_NEW_FRAMES}).",
            }),
            "seed": ("INT", {"default": SEED, "min": 0, "max": MAX_SEED, "control_after_generate": True,
                             "tooltip": "Noise seed of every level of this segment (use another seed per segment)."}),
            "steps": ("STRING", {"default": "", "tooltip": "Steps per level, blueprint first, e.g. 50,32,32 (one "
                                                           "value = every level; empty = the reference's)."}),
            "shift": ("STRING", {"default": "", "tooltip": "Schedule shift per level, e.g. 5,3,3 (empty = the "
                                                           "reference's)."}),
            "cfg": ("STRING", {"default": "", "tooltip": f"Guidance scale per level, e.g. 8 or 5,1,1 (1 = no "
                                                         f"negative pass; empty = {CFG:g})."}),
            "guidance": (list(GUIDANCE_KINDS), {"default": GUIDANCE, "tooltip": "apg (reference) or cfg."}),
            "max_parallel_chunks": ("INT", {"default": 0, "min": 0, "max": 1024,
                                            "tooltip": "Chunks per forward pass of every refinement level "
                                                       "(0 = all; same frames, less memory when lower)."}),
            "tiled_vae": _VAE_TILED,
            "anti_drift": (list(ANTI_DRIFT_MODES), {
                "default": ANTI_DRIFT,
                "tooltip": "What this segment takes from the start of images against drift over a minute: none "
                           "(the paper's setting); anchor (images' first frame in the slot of the oldest context "
                           "frame of the blueprint); colour_match (the new frames get the colour statistics of "
                           "the first segment of images: stops tints adding up, but also undoes wanted colour "
                           "changes); or both. benchmarks/README.md has the measurements.",
            }),
        }, "optional": {"anchor_correction": ANCHOR_CORRECTION_IN, "join_fade": JOIN_FADE_IN,
                         "replace_known_latents": REPLACE_KNOWN_LATENTS_IN}}

    def extend(self, model, plan, images, fps, positive, negative, vae, context_seconds: float = CONTEXT_SECONDS,
               new_frames: int = SEGMENT_NEW_FRAMES, seed: int = SEED, steps: str = "", shift: str = "",
               cfg: str = "", guidance: str = GUIDANCE, max_parallel_chunks: int = 0, tiled_vae: bool = False,
               anti_drift: str = ANTI_DRIFT, anchor_correction: Optional[bool] = None,
               join_fade: Optional[float] = None, replace_known_latents: Optional[bool] = None):
        """Return ``(joined [F+N, H, W, 3], new [N, H, W, 3], fps)``, float32 in ``[0, 1]``.

        Raises:
            TypeError: ``plan`` is not a TEMPO_PLAN.
            ValueError: a model with per-level LoRA strengths (one strength only: a segment runs its levels in
                one call), bad widget text or values (an ``anti_drift`` anchor with a context shorter than two
                blueprint frames included, a ``join_fade`` outside 0..60 s), ``images`` of another size or fps than
                the plan's,
                fewer frames than the context, a wrong VAE / text encoder for the model
                (``tempomaster_core.validation.InputError`` for value errors) -- all before any compute.
            NotEnoughMemoryError: a level's estimate exceeds the GPU's free memory.
        """
        from tempomaster_core.anti_drift import check_anti_drift
        from tempomaster_core.join_fade import check_join_fade
        from tempomaster_core.continuation import (
            check_context, check_fps, context_frame_count, continue_video, segment_plan, video_frames,
        )
        from tempomaster_core.pipeline import guided_cfg
        from tempomaster_core.plan import TreePlan
        from tempomaster_core.validation import require_int

        if not isinstance(plan, TreePlan):
            raise TypeError(f"plan must be a TEMPO_PLAN from TreeScheduler, got {type(plan).__name__}")
        max_batch = require_int(max_parallel_chunks, "max_parallel_chunks", minimum=0) or None
        segment = segment_plan(plan, context_frame_count(context_seconds, plan.final.fps), new_frames)
        mode = check_anti_drift(anti_drift, segment.known_frames(0))
        fade = check_join_fade(optional_input(join_fade, JOIN_FADE_IN))
        settings = level_settings_from_widgets(segment.plan, steps=steps, shift=shift, cfg=cfg, guidance=guidance,
                                               seed=seed, max_batch=max_batch,
                                               anchor_correction=optional_input(anchor_correction, ANCHOR_CORRECTION_IN),
                                               replace_known_latents=optional_input(replace_known_latents,
                                                                                    REPLACE_KNOWN_LATENTS_IN))
        frames = video_frames(images, "images")
        check_fps(fps, segment.fps, "images")
        check_context(*frames.shape[:3], segment, "images")
        codec = as_codec(vae, tiled=tiled_vae)
        if getattr(model, LEVEL_LORAS, ()):
            raise ValueError("TempoMaster Continue runs all levels of a segment in one call and cannot change LoRA "
                             "strengths between levels; give the TempoMaster LoRA node one strength for every level "
                             "(e.g. 0.8) when its model feeds a Continue node")
        dit = dit_of(model)  # the core runs the DiT; ComfyUI's patcher (model) loads and releases it
        pos, neg = _checked_contexts(dit, codec, segment.plan, positive, negative, guided_cfg(settings))
        for index, level in enumerate(settings):
            _to_compute_device(model, codec, segment.plan, index, level.cfg, max_batch)
        log.info("TempoMaster: %s", segment.describe())
        bar = NodeProgress(sum(level.steps for level in settings), codec)
        total = bar.total_steps
        try:
            result = continue_video(dit, codec, pos, neg, frames, segment, settings, anti_drift=mode, join_fade=fade,
                                    progress=lambda level, step, steps_, preview: bar(level, step, total, preview))
        finally:
            _release(model)
        return (result.joined.float() / 255.0, result.new_frames.float() / 255.0, float(segment.fps))
