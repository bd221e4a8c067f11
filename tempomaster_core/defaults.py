"""Reference defaults: the settings the TempoMaster authors ran, each written once.

Every layer (the level runners, the cost model and planner, the command line, the
ComfyUI nodes) takes its default sampling and planning numbers from here. Source:
the public reference code (scottykma/TempoMaster: ``inference_configs.json``,
``infer.py``, ``SequentialPipeline``) and the paper (stage-1 training clips).

The built-in TempoMaster-Tiny model has its own recommended settings (other steps,
shifts, cfg and a 64x64 plan); they live in the bundle's ``defaults.json`` and are
read through :func:`tempomaster_core.tiny.builtin.bundle_defaults`, not here.

Torch-free (the cost model and the planner import it).
"""

from __future__ import annotations

from typing import Any, NamedTuple

# -- sampling --------------------------------------------------------------------------

BLUEPRINT_STEPS = 50
"""Euler steps of the blueprint (level 0), count (reference ``inference_configs.json``)."""

BLUEPRINT_SHIFT = 5.0
"""Flow-matching schedule shift of the blueprint, dimensionless
(``sigma' = shift*sigma / (1 + (shift-1)*sigma)``; reference ``inference_configs.json``)."""

REFINEMENT_STEPS = 32
"""Euler steps of every refinement level of a tree of three or more levels, count
(reference ``inference_configs.json``)."""

REFINEMENT_SHIFT = 3.0
"""Schedule shift of every refinement level, dimensionless (reference ``inference_configs.json``)."""

TWO_LEVEL_REFINEMENT_STEPS = 30
"""Euler steps of the refinement level of a two-level tree, count (the reference code's
two-level default; used to size the paper's ablation table, :func:`tempomaster_core.cost.paper_ablation_levels`)."""

CFG = 8.0
"""Guidance scale, dimensionless; 1 disables guidance (reference ``inference_configs.json``,
the same at every level)."""

NEGATIVE_PROMPT = (
    "jittery, shaky, fliker, unstable, static, ultra slow motion, distorted, blurry details, many people in the "
    "background worst quality, low quality, ugly, poorly drawn legs, poorly drawn face, three arms, deformed, "
    "mutilated, disfigured, malformed limbs, fused fingers, three legs"
)
"""Negative prompt of the reference's benchmark settings (``inference_configs.json``, spelling as there): the
default for the 14B model on the command line and in the 14B templates."""

GUIDANCE = "apg"
"""Guidance kind, one of :data:`tempomaster_core.guidance.GUIDANCE_KINDS` (reference: adaptive
projected guidance)."""

SEED = 0
"""Noise seed, the same at every level (reference ``infer.py`` default)."""

APG_MOMENTUM = -0.5
"""Momentum of APG's running average of the guidance, dimensionless; 0 disables (reference APG)."""

APG_NORM_THRESHOLD = 27.0
"""Largest L2 norm of APG's guidance per batch item and latent frame (over channels and space), in
normalised latent units; <= 0 disables the rescale (reference APG)."""

APG_ETA = 0.0
"""Weight of the guidance component parallel to the conditional x0, dimensionless; 0 removes it
(reference APG)."""

# -- model and plan ----------------------------------------------------------------------

TRAINED_CHUNK_FRAMES = 109
"""Longest clip the released model was trained on, pixel frames (28 latent frames at temporal
factor 4; the reference chunk length): the planner's limit and warning threshold."""

BLUEPRINT_FRAMES = 109
"""Pixel frames of the blueprint, ``4n+1`` (reference ``num_frames``: 109 frames at 6 fps ->
436 frames at 24 fps with :data:`FRAME_INTERVALS`)."""

FRAME_INTERVALS = (4, 2, 1)
"""Frame interval of each level, blueprint first, in base-fps frames (6 -> 12 -> 24 fps at
:data:`FPS`; reference default tree)."""

FPS = 24.0
"""Base frame rate, frames per second: the rate of frame interval 1 (reference output)."""

HEIGHT = 480
"""Frame height, pixels (reference 480p)."""

WIDTH = 832
"""Frame width, pixels (reference 480x832)."""

TRAINED_FRAME_INTERVALS = (4, 2, 1)
"""Frame intervals the released model was trained on, in base-fps frames (6, 12 and 24 fps at
:data:`FPS`; paper: trees f(6,12,24), f(6,24) and f(12,24)). A level at a coarser interval (e.g. a
1.5 fps blueprint, interval 16) is outside training: the planner warns and points to continuation."""

CONTEXT_SECONDS = 5.0
"""Seconds of the video so far that a continuation segment knows at its start, at every level (paper:
Multi-Mask continuation with 5 s of context)."""

SEGMENT_NEW_FRAMES = 480
"""New pixel frames at the output frame rate each continuation segment adds (paper: 480 frames per step,
20 s at 24 fps)."""

ANTI_DRIFT = "none"
"""Anti-drift option of long video (:data:`tempomaster_core.anti_drift.ANTI_DRIFT_MODES`) for a model that
names none of its own: ``"none"``, the paper's multi-mask continuation as it is (the 14B: no other option has
been measured on it). The built-in model names its measured best, ``"anchor+colour_match"``
(:data:`tempomaster_core.tiny.builtin.CONTINUATION_DEFAULTS`; ``benchmarks/README.md``)."""

BUILTIN_ANTI_DRIFT = "anchor+colour_match"
"""The built-in model's anti-drift option, chosen by ``benchmarks/long_video.py --seconds 60 --prompts 4``
(``benchmarks/README.md``): the video's first frame as a blueprint anchor of every later segment, and every
later segment colour-matched to the first one -- the only option meeting issue 20's drift targets over a
minute on that model (object area 1.00-1.11 of the first 10 s, background shift 0.002 against the paper
setting's 0.137, count kept 4 of 4), at joins 6 % above the paper setting's."""

JOIN_FADE_SECONDS = 0.0
"""Join fade of long video (:mod:`tempomaster_core.join_fade`), seconds, for a model that names none of its own:
0, a plain cut from the video to a continuation segment's new frames (the paper's continuation as it is; nothing
else has been measured on the 14B)."""

BUILTIN_JOIN_FADE_SECONDS = 1.0
"""The built-in model's join fade, seconds (24 frames at 24 fps), chosen by ``benchmarks/long_video.py``
(``benchmarks/README.md``)."""

TEXT_LEN = 512
"""Text tokens of the context, count (umT5-XXL pads every prompt to 512)."""

WEIGHT_DTYPE = "bf16"
"""Weight dtype of the released checkpoint (``wan_video_dit_bf16.bin``) and of the authors' runs: the
model loader's default and the dtype the cost model prices unless told otherwise."""


class DefaultSchedule(NamedTuple):
    """Per-level ``steps`` and ``shifts`` of a tree, blueprint first (unpacks as a pair)."""

    steps: tuple[int, ...]
    shifts: tuple[float, ...]


def default_schedule(levels: Any) -> DefaultSchedule:
    """Reference ``(steps, shifts)`` per level: 50 / 5.0 for the blueprint, 32 / 3.0 per refinement.

    Args:
        levels: number of levels (blueprint included), or a plan (anything with ``num_levels``,
            e.g. a :class:`~tempomaster_core.plan.TreePlan`).

    Raises:
        ValueError: fewer than one level.
    """
    count = int(getattr(levels, "num_levels", levels))
    if count < 1:
        raise ValueError(f"a tree has at least one level (the blueprint), got {levels!r}")
    refinements = count - 1
    return DefaultSchedule((BLUEPRINT_STEPS,) + (REFINEMENT_STEPS,) * refinements,
                           (BLUEPRINT_SHIFT,) + (REFINEMENT_SHIFT,) * refinements)


__all__ = [
    "ANTI_DRIFT", "APG_ETA", "BUILTIN_ANTI_DRIFT", "BUILTIN_JOIN_FADE_SECONDS", "JOIN_FADE_SECONDS", "APG_MOMENTUM", "APG_NORM_THRESHOLD", "BLUEPRINT_FRAMES", "BLUEPRINT_SHIFT", "BLUEPRINT_STEPS",
    "CFG", "CONTEXT_SECONDS", "DefaultSchedule", "FPS", "FRAME_INTERVALS", "GUIDANCE", "HEIGHT", "NEGATIVE_PROMPT",
    "REFINEMENT_SHIFT",
    "REFINEMENT_STEPS", "SEED", "SEGMENT_NEW_FRAMES", "TEXT_LEN", "TRAINED_CHUNK_FRAMES", "TRAINED_FRAME_INTERVALS",
    "TWO_LEVEL_REFINEMENT_STEPS", "WEIGHT_DTYPE", "WIDTH",
    "default_schedule",
]
