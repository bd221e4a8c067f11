"""TreeScheduler: the shape of the generation tree as a ``TEMPO_PLAN``.

All planning rules live in ``tempomaster_core.plan.TreePlan`` (the one source of
truth); this node only parses its widgets (``nodes/parsing.py``) and builds the
plan. ``VALIDATE_INPUTS`` builds the same plan at queue time, so an impossible
tree is refused before anything runs, with the plan's message (which names the
nearest valid values, e.g. "nearest valid values: 105 or 109").
"""

from __future__ import annotations

from typing import Any

from .parsing import CUSTOM_PRESET, INTERVAL_PRESETS, PRESET_NAMES, parse_chunks, parse_intervals
from .types import TEMPO_PLAN


def build_plan(blueprint_frames: int, frame_intervals: str, custom_intervals: str, chunks: str,
               fps: float, width: int, height: int):
    """The :class:`~tempomaster_core.plan.TreePlan` for the node's widget values.

    Args:
        blueprint_frames: pixel frames of the blueprint (4n+1, e.g. 109).
        frame_intervals: a preset name from :data:`~nodes.parsing.PRESET_NAMES`.
        custom_intervals: intervals text for the ``custom`` preset, e.g. ``"8,4,2,1"``.
        chunks: ``"auto"`` or one count per refinement level, e.g. ``"2,4"``.
        fps: output (base) frame rate of interval 1, e.g. 24.
        width, height: pixel size, multiples of 16.

    Raises:
        ValueError: unparsable text (from ``nodes.parsing``) or an impossible plan
            (``tempomaster_core.plan.PlanError``, a ``ValueError``).
    """
    from tempomaster_core.plan import TreePlan

    intervals = parse_intervals(frame_intervals, custom_intervals)
    chunk_counts = parse_chunks(chunks, len(intervals) - 1)
    return TreePlan(int(blueprint_frames), intervals, chunk_counts,
                    height=int(height), width=int(width), fps=float(fps))


class TreeScheduler:
    """ComfyUI node: blueprint frames, frame intervals, chunks, fps and size -> ``TEMPO_PLAN``."""

    CATEGORY = "TempoMaster"
    FUNCTION = "plan"
    RETURN_TYPES = (TEMPO_PLAN, "STRING")
    RETURN_NAMES = ("plan", "summary")
    OUTPUT_TOOLTIPS = (
        "The tree: levels, frame rates, chunks per level, condition frames and RoPE positions. "
        "Feed it to the BlueprintSampler; the refiners read it from the level they get.",
        "A readable summary of the tree (levels, fps, frames, chunks), e.g. for a text display node.",
    )
    DESCRIPTION = (
        "Plans the TempoMaster hierarchy: a blueprint of N frames at a low frame rate (e.g. 109 frames at "
        "6 fps), then refinement levels that each multiply the frame rate (12, then 24 fps), every level "
        "split into chunks denoised in parallel. Reference default: 109 frames, intervals 4,2,1 -> 436 "
        "frames at 24 fps."
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "blueprint_frames": ("INT", {
                    "default": 109, "min": 1, "max": 4097, "step": 4,
                    "tooltip": "Pixel frames of the low-frame-rate blueprint; must be 4n+1 (e.g. 109). The final "
                               "video has blueprint_frames x (first interval / last interval) frames "
                               "(109 x 4 = 436 for intervals 4,2,1).",
                }),
                "frame_intervals": (list(PRESET_NAMES), {
                    "default": PRESET_NAMES[0],
                    "tooltip": "Frame interval per level, blueprint first: interval i = one frame every i output "
                               "frames (4 at 24 fps = 6 fps). Each level multiplies the frame rate by "
                               "previous/next interval. The fps in the names assume fps = 24. 'custom' reads "
                               "custom_intervals.",
                }),
                "custom_intervals": ("STRING", {
                    "default": "4,2,1", "multiline": False,
                    "tooltip": "Used only when frame_intervals is 'custom': intervals blueprint first, strictly "
                               "decreasing, each divisible by the next (e.g. 8,4,2,1 or 3,1).",
                }),
                "chunks": ("STRING", {
                    "default": "auto", "multiline": False,
                    "tooltip": "Chunks per refinement level, denoised in parallel as one batch: 'auto' = the "
                               "reference rule max(4 / interval, 1) (2 at 12 fps, 4 at 24 fps), or one count per "
                               "refinement level like '2,4'. More chunks = shorter chunks = less attention cost.",
                }),
                "fps": ("FLOAT", {
                    "default": 24.0, "min": 1.0, "max": 240.0, "step": 1.0,
                    "tooltip": "Frame rate of the final level (interval 1). Each level runs at fps / interval.",
                }),
                "width": ("INT", {
                    "default": 832, "min": 16, "max": 4096, "step": 16,
                    "tooltip": "Video width in pixels, multiple of 16 (reference: 832).",
                }),
                "height": ("INT", {
                    "default": 480, "min": 16, "max": 4096, "step": 16,
                    "tooltip": "Video height in pixels, multiple of 16 (reference: 480).",
                }),
            }
        }

    @classmethod
    def VALIDATE_INPUTS(cls, blueprint_frames=None, frame_intervals=None, custom_intervals=None, chunks=None,
                        fps=None, width=None, height=None):
        """``True``, or the reason the plan is impossible (shown by ComfyUI at queue time).

        Inputs that arrive through links are not known at validation time (``None``);
        then only the syntax of the known ones is checked and the node re-checks when it runs.
        """
        values = dict(blueprint_frames=blueprint_frames, frame_intervals=frame_intervals,
                      custom_intervals=custom_intervals, chunks=chunks, fps=fps, width=width, height=height)
        if frame_intervals is not None and frame_intervals not in PRESET_NAMES:
            return f"frame_intervals {frame_intervals!r} is not one of {list(PRESET_NAMES)}"
        if any(v is None for v in values.values()):
            try:
                if frame_intervals is not None and (frame_intervals != CUSTOM_PRESET or custom_intervals is not None):
                    parse_intervals(frame_intervals, custom_intervals or "")
            except ValueError as err:
                return str(err)
            return True
        try:
            build_plan(**values)
        except ValueError as err:
            return str(err)
        return True

    def plan(self, blueprint_frames: int, frame_intervals: str, custom_intervals: str, chunks: str,
             fps: float, width: int, height: int):
        """Return ``(plan, summary)``; see :func:`build_plan` (raises its errors)."""
        plan = build_plan(blueprint_frames, frame_intervals, custom_intervals, chunks, fps, width, height)
        return (plan, plan.describe())


__all__ = ["TreeScheduler", "build_plan", "INTERVAL_PRESETS"]
