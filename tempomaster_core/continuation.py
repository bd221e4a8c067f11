"""Multi-mask continuation: the next segment of a video, as a tree whose every level knows the context.

Paper (key findings): "Using the Multi-Mask continuation strategy (5 s context, generating 480 frames
per step), the model maintains temporal coherence for over 1500 frames". The public reference code has
no continuation; this module is the method as the paper states it, built from the existing pieces:

* a **segment** is one next-frame-rate tree (:class:`~tempomaster_core.plan.TreePlan`) of
  ``context_frames + new_frames`` pixel frames at the output frame rate. Its frame intervals, boundary
  mode, size and fps are the template tree's (the tree the model runs); each refinement level takes the
  fewest chunks that are no longer than the template's chunks at that level (:func:`segment_plan`);
* the **context** is the last ``context_frames`` frames of the video so far. Output frame ``f`` of the
  segment is level-``k`` frame ``f / step_k`` with ``step_k = interval_k / interval_last`` (4, 2, 1 for
  the (4, 2, 1) tree), so level ``k`` knows its frames ``p = 0 .. ceil(context_frames / step_k) - 1``:
  context frame ``p * step_k`` at its true position ``p`` (:meth:`SegmentPlan.known_positions`).
  They are multi-mask condition frames (mask 1, VAE-encoded, exactly like user keyframes and anchors):
  on the blueprint through its ``conditions``; on every refinement level in addition to the anchors of
  the level above, whose frames inside the context are replaced by the true context frames first.
  The overlap is therefore reproduced at every frame rate and the new part continues it;
* the **joined** video is the video so far followed by the segment's ``new_frames`` frames after the
  context (the regenerated overlap is returned separately, never written over the known frames).

Frames of a video cross this module as ``uint8 [F, H, W, 3]`` (0..255, channels last: what video files
hold and the long loop keeps on the CPU) or as a float ComfyUI IMAGE ``[F, H, W, 3]`` in ``[0, 1]``
(:func:`video_frames`); outputs are always ``uint8 [F, H, W, 3]``. Inside, the levels work on float32
``[3, F, H, W]`` in ``[-1, 1]`` as everywhere in the runtime.

The same call extends any video of the right size and frame rate: one made here, or one the user brings
(video-to-video extension). Sampling is the pipeline's own (:func:`tempomaster_core.pipeline.run_level`);
this module only says which frames are known where.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch

from .anti_drift import DriftReference, check_anti_drift, drift_reference
from .conditioning import blueprint_clip, refinement_clips
from .defaults import ANTI_DRIFT, JOIN_FADE_SECONDS
from .join_fade import SHARP_FADE_SECONDS, check_join_fade, fade_frames, fade_join
from .images import check_image_batch
from .pipeline import (
    LevelResult, LevelSettings, ProgressCallback, check_level_inputs, guided_cfg, run_level,
)
from .plan import LevelPlan, PlanError, TreePlan, chunk_length, chunks_fit, max_chunks
from .validation import InputError, require_int, require_number
from .video_io import to_uint8

__all__ = [
    "FPS_TOLERANCE", "Continuation", "SegmentPlan", "check_context", "check_fps", "context_frame_count",
    "continue_video", "joined_new_frames", "run_segment", "segment_plan", "video_frames",
]


# -- frames ------------------------------------------------------------------------------------


def video_frames(video: Any, name: str = "video") -> torch.Tensor:
    """A video as ``uint8 [F, H, W, 3]`` on the CPU, checked.

    Args:
        video: ``uint8 [F, H, W, 3]`` (0..255, taken as is) or a float ComfyUI IMAGE
            ``[F, H, W, 3]`` in ``[0, 1]`` (checked by :func:`~tempomaster_core.images.check_image_batch`,
            then rounded to 8 bits).
        name: how messages call it.

    Raises:
        InputError: not a tensor ``[F, H, W, 3]`` with ``F, H, W >= 1``; a float video outside
            ``[0, 1]`` (a ``[-1, 1]`` video: ``(x + 1) / 2``; 0..255 floats: divide by 255) or with
            NaN/inf; another dtype.
    """
    if not isinstance(video, torch.Tensor) or video.ndim != 4 or video.shape[-1] != 3:
        shape = tuple(video.shape) if isinstance(video, torch.Tensor) else type(video).__name__
        raise InputError(f"{name} must be frames [F, H, W, 3] (uint8 0..255 or float in [0, 1]), got {shape}")
    if video.dtype == torch.uint8:
        if min(video.shape[:3]) == 0:
            raise InputError(f"{name} must hold at least one frame of at least 1x1 pixels, got {tuple(video.shape)}")
        return video.detach().to("cpu").contiguous()
    return to_uint8(check_image_batch(video, name))


def _core_frames(frames: torch.Tensor) -> torch.Tensor:
    """``uint8 [F, H, W, 3]`` -> float32 ``[3, F, H, W]`` in ``[-1, 1]`` (the level layout)."""
    return frames.permute(3, 0, 1, 2).to(torch.float32) / 127.5 - 1.0


# -- the segment tree --------------------------------------------------------------------------


def context_frame_count(context_seconds: Any, fps: float, name: str = "context_seconds") -> int:
    """Pixel frames of ``context_seconds`` at ``fps`` (nearest frame), at least 1.

    Raises:
        InputError: not a finite number > 0, or less than half a frame at ``fps``.
    """
    seconds = require_number(context_seconds, name, minimum=0.0, exclusive_minimum=True)
    frames = round(seconds * float(fps))
    if frames < 1:
        raise InputError(f"{name} must be at least one frame ({1 / fps:.3g} s at {fps:g} fps), got {seconds:g}")
    return frames


@dataclass(frozen=True)
class SegmentPlan:
    """One continuation segment: its tree and which of its frames are the known context.

    Attributes:
        plan: the segment's :class:`TreePlan`; its final level has at least ``frames`` pixel frames
            (the tail beyond is generated and dropped: fewer than ``temporal_factor * step(0)`` frames,
            from rounding the blueprint up to ``temporal_factor * n + 1`` frames).
        context_frames: pixel frames at the start of the segment that are the known context (output fps);
            0 = a segment without context (the first one of a video).
        new_frames: pixel frames kept after the context.
    """

    plan: TreePlan
    context_frames: int
    new_frames: int

    @property
    def frames(self) -> int:
        """Pixel frames of the segment at the output fps (context + new)."""
        return self.context_frames + self.new_frames

    @property
    def fps(self) -> float:
        """Output frame rate (the final level's)."""
        return self.plan.final.fps

    def step(self, level_index: int) -> int:
        """Output frames per frame of level ``level_index`` (``interval_k / interval_last``: 4, 2, 1)."""
        intervals = self.plan.frame_intervals
        return intervals[level_index] // intervals[-1]

    def known_frames(self, level_index: int) -> int:
        """How many of level ``level_index``'s first frames are context frames: ``ceil(context / step)``."""
        return -(-self.context_frames // self.step(level_index))

    def known_positions(self, level_index: int) -> list[tuple[int, int]]:
        """``(level frame, context frame)`` pairs of level ``level_index``: ``(p, p * step)``."""
        step = self.step(level_index)
        return [(p, p * step) for p in range(self.known_frames(level_index))]

    def describe(self) -> str:
        """One line plus the tree: context and new frames, the known frames per level."""
        known = ", ".join(f"{self.known_frames(k)} at {lv.fps:g} fps" for k, lv in enumerate(self.plan.levels))
        return (f"segment: {self.context_frames} context + {self.new_frames} new frames at {self.fps:g} fps "
                f"(known frames per level: {known})\n{self.plan.describe()}")


def _segment_chunks(frames: int, longest: int, tf: int) -> int:
    """Fewest chunks of a ``frames``-frame level whose chunks are at most ``longest`` frames
    (:func:`~tempomaster_core.plan.chunk_length`); the most chunks that fit when none is short enough."""
    top = max_chunks(frames, tf)
    for chunks in range(max(1, -(-frames // longest)), top + 1):
        if chunks_fit(frames, chunks, tf) and chunk_length(frames, chunks, tf)[0] <= longest:
            return chunks
    return top


def segment_plan(template: TreePlan, context_frames: Any, new_frames: Any) -> SegmentPlan:
    """The tree of a segment of ``context_frames + new_frames`` output frames, shaped like ``template``.

    The blueprint is the smallest valid one covering the segment
    (:meth:`TreePlan.smallest_blueprint`); the intervals, boundary mode, size, fps and temporal factor
    are the template's; refinement level ``k`` gets the fewest chunks no longer than the template's
    chunks at level ``k``, so a segment of the template's length is the template's tree.

    Args:
        template: the tree the model runs (e.g. its recommended plan, or the TreeScheduler's).
        context_frames: known frames at the start, pixel frames at the output fps, ``>= 0``.
        new_frames: frames to add, ``>= 1``.

    Raises:
        InputError: counts that are not ints, a negative context or ``new_frames < 1``.
        PlanError: ``template`` is not a TreePlan, or the segment is too long for the plan limits
            (:data:`~tempomaster_core.plan.MAX_OUTPUT_FRAMES`, :data:`~tempomaster_core.plan.MAX_BLUEPRINT_FRAMES`).
    """
    if not isinstance(template, TreePlan):
        raise PlanError(f"template must be a TreePlan, got {type(template).__name__}")
    context = require_int(context_frames, "context_frames", minimum=0)
    new = require_int(new_frames, "new_frames", minimum=1)
    intervals, tf = template.frame_intervals, template.temporal_factor
    blueprint = TreePlan.smallest_blueprint(context + new, intervals, tf)
    counts = TreePlan.level_frames(blueprint, intervals, tf)
    chunks = tuple(_segment_chunks(counts[k], template.levels[k].frames_per_chunk, tf)
                   for k in range(1, len(intervals)))
    plan = TreePlan(blueprint, intervals, chunks, height=template.height, width=template.width, fps=template.fps,
                    temporal_factor=tf, size_multiple=template.size_multiple, boundary=template.boundary)
    return SegmentPlan(plan=plan, context_frames=context, new_frames=new)


# -- checks ----------------------------------------------------------------------------------


def check_context(frames: int, height: int, width: int, segment: SegmentPlan, name: str = "video") -> None:
    """Check that a video of ``frames`` frames of ``width`` x ``height`` pixels can give ``segment`` its context.

    Raises:
        InputError: another frame size than the plan's (resize the video, or plan its size), or fewer frames
            than the context (the message gives the longest context that fits, in seconds).
    """
    plan = segment.plan
    if (height, width) != (plan.height, plan.width):
        raise InputError(
            f"{name} is {width}x{height} but the segments are planned at {plan.width}x{plan.height}; resize the "
            f"video to {plan.width}x{plan.height} (e.g. ffmpeg -i in.mp4 -vf scale={plan.width}:{plan.height} "
            f"out.mp4), or plan the segments at the video's size ({width}x{height})"
        )
    if segment.context_frames > frames:
        raise InputError(
            f"the context is {segment.context_frames} frames ({segment.context_frames / segment.fps:g} s at "
            f"{segment.fps:g} fps) but {name} has only {frames}; use a context of at most {frames} frames "
            f"({frames / segment.fps:g} s)"
        )


FPS_TOLERANCE = 0.005
"""Relative difference up to which two frame rates count as the same (23.976 and 24 fps, or a GIF's
centisecond frame durations, are the same video rate)."""


def check_fps(video_fps: Any, segment_fps: float, name: str = "video") -> None:
    """Check that frames at ``video_fps`` can be continued by segments at ``segment_fps``.

    Raises:
        InputError: not a finite number > 0, or a rate more than :data:`FPS_TOLERANCE` away (the message
            names both fixes: resample the video, or plan the tree at the video's rate).
    """
    fps = require_number(video_fps, f"{name}'s fps", minimum=0.0, exclusive_minimum=True)
    if abs(fps - segment_fps) > FPS_TOLERANCE * segment_fps:
        raise InputError(
            f"{name} is {fps:g} fps but the segments are made at {segment_fps:g} fps; resample the video to "
            f"{segment_fps:g} fps (e.g. ffmpeg -i in.mp4 -vf fps={segment_fps:g} out.mp4), or plan the tree at "
            f"{fps:g} fps"
        )


def _check_settings(settings: Sequence[LevelSettings], plan: TreePlan) -> list[LevelSettings]:
    settings = list(settings)
    if len(settings) != plan.num_levels or not all(isinstance(s, LevelSettings) for s in settings):
        raise InputError(f"settings must be one LevelSettings per level ({plan.num_levels} levels; "
                         "tempomaster_core.pipeline.tree_settings makes them), got "
                         f"{[type(s).__name__ for s in settings]}")
    return settings


# -- running a segment -----------------------------------------------------------------------


def _context_refinement_clips(segment: SegmentPlan, previous: LevelResult, context: torch.Tensor):
    """A refinement level's :data:`~tempomaster_core.pipeline.ClipMaker` with the context known.

    The frames of the level above inside the context are replaced by the true context frames (the
    anchors of the context are then exact), the anchors are placed as usual
    (:func:`~tempomaster_core.conditioning.refinement_clips`), and the level's own context frames are
    added as known frames at their true positions.
    """
    def make(level: LevelPlan) -> tuple[torch.Tensor, torch.Tensor]:
        above = previous.frames.clone()
        for p, f in segment.known_positions(level.index - 1):
            above[:, p] = context[:, f]
        clips, masks = refinement_clips(level, above)
        for p, f in segment.known_positions(level.index):
            chunk, offset = divmod(p, level.frames_per_chunk)
            clips[chunk, :, offset] = context[:, f]
            masks[chunk, offset] = 1.0
        return clips, masks

    return make


def run_segment(model: Any, codec: Any, positive: torch.Tensor, negative: Optional[torch.Tensor],
                segment: SegmentPlan, context: Optional[torch.Tensor], settings: Sequence[LevelSettings], *,
                conditions: Optional[dict] = None, anchor: Optional[torch.Tensor] = None,
                progress: Optional[ProgressCallback] = None) -> list[LevelResult]:
    """Run every level of a segment with the context known (no input checks beyond the pipeline's).

    Args:
        model, codec, positive, negative: as :func:`tempomaster_core.pipeline.run_blueprint`.
        segment: the :class:`SegmentPlan`.
        context: ``uint8 [context_frames, H, W, 3]`` (``None`` when ``segment.context_frames == 0``).
        settings: one :class:`~tempomaster_core.pipeline.LevelSettings` per level.
        conditions: extra blueprint condition frames ``{blueprint frame: [3, H, W] in [-1, 1]}`` (a first
            segment's image-to-video frame); positions inside the context are taken by the context.
        anchor: a global anchor frame ``uint8 [H, W, 3]`` put at blueprint position 0 in place of the oldest
            context frame (:mod:`~tempomaster_core.anti_drift`, option ``"anchor"``); the refinement levels
            still know the true context frame there. Ignored without context.
        progress: :data:`~tempomaster_core.pipeline.ProgressCallback`.

    Returns:
        The :class:`~tempomaster_core.pipeline.LevelResult` of every level, blueprint first.
    """
    plan = segment.plan
    ctx = _core_frames(context) if segment.context_frames else None
    known = dict(conditions or {})
    if ctx is not None:
        known.update({p: ctx[:, f] for p, f in segment.known_positions(0)})
        if anchor is not None:
            known[0] = _core_frames(anchor[None])[:, 0]
    blueprint = run_level(model, codec, plan, 0, positive, negative,
                          lambda level: blueprint_clip(level, known, plan.height, plan.width), settings[0], progress)
    results = [blueprint]
    for index in range(1, plan.num_levels):
        previous = results[-1]
        make = (_context_refinement_clips(segment, previous, ctx) if ctx is not None
                else (lambda level, prev=previous: refinement_clips(level, prev.frames)))
        results.append(run_level(model, codec, plan, index, positive, negative, make, settings[index], progress))
    return results


def joined_new_frames(made: torch.Tensor, segment: SegmentPlan, reference: DriftReference,
                      video_last: Optional[torch.Tensor], fade_length: int = 0) -> torch.Tensor:
    """A segment's new frames as they join the video: colour-matched by ``reference`` (anti-drift), then with
    the join error faded out, its smooth part over ``fade_length`` frames and its sharp part over at most
    :data:`~tempomaster_core.join_fade.SHARP_FADE_SECONDS` (:func:`~tempomaster_core.join_fade.fade_join`; the
    segment's last overlap frame gets the new frames' colour transform first).

    Args:
        made: the segment's frames ``uint8 [context + new, H, W, 3]`` (its final level, regenerated overlap first).
        segment: its :class:`SegmentPlan`.
        reference: the video's :class:`~tempomaster_core.anti_drift.DriftReference`.
        video_last: the video's last frame ``uint8 [H, W, 3]`` before the new ones (``None`` without context:
            nothing to join).
        fade_length: fade frames (:func:`~tempomaster_core.join_fade.fade_frames`); 0 = a plain cut.

    Returns:
        ``uint8 [new, H, W, 3]``.
    """
    new = made[segment.context_frames:]
    corrected = reference.correct(new)
    if fade_length and video_last is not None and segment.context_frames:
        last = reference.correct(made[segment.context_frames - 1: segment.context_frames], like=new)[0]
        sharp = min(fade_length, fade_frames(SHARP_FADE_SECONDS, segment.fps))
        corrected = fade_join(corrected, last, video_last, fade_length, sharp)
    return corrected


@dataclass(frozen=True)
class Continuation:
    """What :func:`continue_video` made.

    Attributes:
        segment: the :class:`SegmentPlan` it ran.
        frames: the whole segment, ``uint8 [context + new, H, W, 3]``: the regenerated context first
            (:attr:`overlap`), then the :attr:`new_frames`.
        joined: the video so far followed by the new frames, ``uint8 [F + new, H, W, 3]``
            (``None`` when not asked for).
        levels: every level's :class:`~tempomaster_core.pipeline.LevelResult` (empty unless asked for).
    """

    segment: SegmentPlan
    frames: torch.Tensor
    joined: Optional[torch.Tensor] = None
    levels: tuple = ()

    @property
    def new_frames(self) -> torch.Tensor:
        """The new part, ``uint8 [new, H, W, 3]`` (frames after the context)."""
        return self.frames[self.segment.context_frames:]

    @property
    def overlap(self) -> torch.Tensor:
        """The context as the segment regenerated it, ``uint8 [context, H, W, 3]`` (close to the known frames)."""
        return self.frames[: self.segment.context_frames]


def continue_video(model: Any, codec: Any, positive: torch.Tensor, negative: Optional[torch.Tensor], video: Any,
                   segment: SegmentPlan, settings: Sequence[LevelSettings], *,
                   anti_drift: str = ANTI_DRIFT, join_fade: Any = JOIN_FADE_SECONDS,
                   progress: Optional[ProgressCallback] = None, join: bool = True,
                   return_levels: bool = False) -> Continuation:
    """Generate the next segment of ``video``: its last ``segment.context_frames`` frames are known at
    every level, and ``segment.new_frames`` frames continue them.

    Args:
        model, codec: the TempoMaster DiT and its VAE (as :func:`tempomaster_core.pipeline.run_blueprint`).
        positive, negative: text embeddings ``[1, L, text_dim]`` (``negative`` may be None when no level is
            guided).
        video: the frames so far at the segment's output fps, ``uint8 [F, H, W, 3]`` or float
            ``[F, H, W, 3]`` in ``[0, 1]`` (:func:`video_frames`); made here or brought by the user.
        segment: from :func:`segment_plan` (``context_frames >= 1``).
        settings: one :class:`~tempomaster_core.pipeline.LevelSettings` per level of ``segment.plan``
            (:func:`~tempomaster_core.pipeline.tree_settings`); the seed inside is used at every level.
        anti_drift: one of :data:`~tempomaster_core.anti_drift.ANTI_DRIFT_MODES`, taken from the start of
            ``video``: the anchor is its frame 0, the colour reference its first ``segment.frames`` frames
            (in a chain of Continue nodes: the first tree's output). The new frames are colour-matched, the
            regenerated overlap is not.
        join_fade: seconds over which the new frames go from the video's last frame to the segment's own
            rendering (:mod:`~tempomaster_core.join_fade`; 0 = a plain cut, :data:`~tempomaster_core.defaults.JOIN_FADE_SECONDS`).
        progress: :data:`~tempomaster_core.pipeline.ProgressCallback`.
        join: also return the joined video (a copy of ``video`` plus the new frames).
        return_levels: keep every level's result in :attr:`Continuation.levels`.

    Returns:
        :class:`Continuation`.

    Raises:
        InputError: a bad video (:func:`video_frames`), a context of 0 frames, a context longer than the
            video or another size (:func:`check_context`), settings that are not one per level, a bad
            ``anti_drift`` (:func:`~tempomaster_core.anti_drift.check_anti_drift`), a bad ``join_fade``
            (:func:`~tempomaster_core.join_fade.check_join_fade`); plus the
            pipeline's checks of model, codec, plan and text embeddings -- all before any compute.
        NonFiniteError: see :func:`tempomaster_core.pipeline.run_blueprint`.
    """
    if not isinstance(segment, SegmentPlan):
        raise TypeError(f"segment must be a SegmentPlan (segment_plan), got {type(segment).__name__}")
    if segment.context_frames < 1:
        raise InputError("a continuation needs at least one context frame; for a video without context use "
                         "tempomaster_core.pipeline.generate")
    mode = check_anti_drift(anti_drift, segment.known_frames(0))
    fade_length = fade_frames(check_join_fade(join_fade), segment.fps)
    frames = video_frames(video)
    check_context(*frames.shape[:3], segment)
    settings = _check_settings(settings, segment.plan)
    positive, negative = check_level_inputs(model, codec, segment.plan, positive, negative, guided_cfg(settings))
    reference = drift_reference(mode, frames[: segment.frames])
    context = frames[frames.shape[0] - segment.context_frames:]
    levels = run_segment(model, codec, positive, negative, segment, context, settings, anchor=reference.anchor,
                         progress=progress)
    made = to_uint8(levels[-1].to_images()[: segment.frames])
    made = torch.cat([made[: segment.context_frames],
                      joined_new_frames(made, segment, reference, context[-1], fade_length)])
    joined = torch.cat([frames, made[segment.context_frames:]]) if join else None
    return Continuation(segment=segment, frames=made, joined=joined, levels=tuple(levels) if return_levels else ())
