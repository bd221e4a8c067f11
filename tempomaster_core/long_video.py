"""Long video: a loop of continuation segments (:mod:`tempomaster_core.continuation`) with bounded memory.

A video of ``total`` new frames at the output fps is made segment by segment
(:func:`segment_lengths`):

* from scratch, segment 0 is a tree of ``min(total, context + new)`` frames with no known frame (the
  template's tree when ``context + new`` is the template's length); every later segment knows the
  last ``context`` frames made so far and adds ``min(new, frames still missing)`` frames;
* extending a video (``video=``), every segment is a continuation, the first one of the given video.

Seeds (:func:`segment_seed`): segment ``s`` uses ``(seed + s) mod 2**64`` at every level (the reference
uses one seed per tree), so segment 0 from scratch is exactly ``pipeline.generate`` with ``seed``.
Prompts: one for every segment, or a sequence where segment ``s`` takes entry ``min(s, len - 1)`` (the
last prompt holds for the remaining segments).

Memory: the loop keeps the last ``context`` frames as ``uint8`` on the CPU and one segment's levels;
every finished segment's new frames go to ``sink`` (e.g. :class:`~tempomaster_core.video_io.VideoStream`'s
``write``: the file grows segment by segment) or, without a sink, are collected as ``uint8`` on the CPU
(``F * H * W * 3`` bytes: 17.7 MB for a minute at 64x64, 1.7 GB at 480x832).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Union

import torch

from .anti_drift import check_anti_drift, drift_reference
from .conditioning import normalize_condition_frames
from .continuation import SegmentPlan, check_context, joined_new_frames, run_segment, segment_plan, video_frames
from .defaults import ANTI_DRIFT, JOIN_FADE_SECONDS
from .join_fade import check_join_fade, fade_frames
from .pipeline import LevelSettings, check_level_inputs, guided_cfg
from .plan import MAX_OUTPUT_FRAMES, PlanError, TreePlan
from .validation import MAX_SEED, InputError, require_int, require_number
from .video_io import to_uint8

__all__ = ["LongVideo", "LongProgress", "generate_long", "plan_segments", "segment_lengths", "segment_seed"]

LongProgress = Callable[[int, int, int, int, int, Optional[torch.Tensor]], None]
"""``progress(segment, segments, level_index, step, total_steps, preview_latents)``: the pipeline's
:data:`~tempomaster_core.pipeline.ProgressCallback` with the segment index (0-based) and the number of
segments in front. Raise inside it to cancel (the frames already given to the sink stay there)."""


def segment_seed(seed: int, segment: int) -> int:
    """Noise seed of segment ``segment``: ``(seed + segment) mod 2**64`` (segment 0 uses ``seed``)."""
    return (int(seed) + int(segment)) % (MAX_SEED + 1)


def segment_lengths(total: int, context_frames: int, new_frames: int, *, extend: bool) -> list[int]:
    """New frames of every segment (see the module doc); they sum to ``total``.

    Example: 1440 frames from scratch with 120 context and 480 new frames per segment ->
    ``[600, 480, 360]``; extending a video by 1000 frames -> ``[480, 480, 40]``.
    """
    lengths = []
    left = total
    if not extend:
        lengths.append(min(total, context_frames + new_frames))
        left -= lengths[0]
    while left > 0:
        lengths.append(min(new_frames, left))
        left -= lengths[-1]
    return lengths


def plan_segments(template: TreePlan, total: Any, context_frames: Any, new_frames: Any, *,
                  extend: bool = False) -> list[SegmentPlan]:
    """Every segment's :class:`~tempomaster_core.continuation.SegmentPlan` for ``total`` new frames.

    Args:
        template: the tree the model runs (its intervals, chunk lengths, boundary, size, fps).
        total: new pixel frames at the output fps, in ``1..MAX_OUTPUT_FRAMES``.
        context_frames: known frames per continuation segment, ``>= 1``.
        new_frames: new frames per continuation segment, ``>= 1``.
        extend: the first segment continues a given video (else it is made from scratch).

    Raises:
        InputError: counts that are not ints or out of range (``total`` above
            :data:`~tempomaster_core.plan.MAX_OUTPUT_FRAMES` included).
        PlanError: a segment tree outside the plan limits.
    """
    total = require_int(total, "the length in frames", minimum=1, maximum=MAX_OUTPUT_FRAMES)
    context = require_int(context_frames, "context_frames", minimum=1)
    new = require_int(new_frames, "new_frames", minimum=1)
    plans: dict[tuple[int, int], SegmentPlan] = {}
    out = []
    for s, length in enumerate(segment_lengths(total, context, new, extend=extend)):
        key = (0, length) if s == 0 and not extend else (context, length)
        if key not in plans:
            plans[key] = segment_plan(template, *key)
        out.append(plans[key])
    return out


@dataclass(frozen=True)
class LongVideo:
    """What :func:`generate_long` made.

    Attributes:
        frames: the generated frames ``uint8 [total, H, W, 3]`` (without the extended video), or ``None``
            when they went to a sink.
        num_frames: generated frames (``total``).
        fps: their frame rate (the template's output fps).
        segments: every segment's :class:`~tempomaster_core.continuation.SegmentPlan`.
        seeds: every segment's seed (:func:`segment_seed`).
        overlap_psnr: per segment, how closely its regenerated context matches the known frames, dB on
            8-bit frames (``None`` for a segment without context): the check that the context was kept.
    """

    frames: Optional[torch.Tensor]
    num_frames: int
    fps: float
    segments: tuple
    seeds: tuple
    overlap_psnr: tuple = ()


def _psnr8(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two ``uint8`` videos (peak 255; ``inf`` when equal)."""
    mse = float(((a.double() - b.double()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def _prompts(positive: Any) -> list:
    if isinstance(positive, torch.Tensor):
        return [positive]
    prompts = list(positive)
    if not prompts:
        raise InputError("positive must be text embeddings [1, L, text_dim] or a non-empty sequence of them")
    return prompts


def generate_long(model: Any, codec: Any, positive: Union[torch.Tensor, Sequence[torch.Tensor]],
                  negative: Optional[torch.Tensor], template: TreePlan, settings: Sequence[LevelSettings], *,
                  seconds: Any, context_frames: Any, new_frames: Any, video: Any = None,
                  conditions: Optional[dict] = None, anti_drift: str = ANTI_DRIFT,
                  join_fade: Any = JOIN_FADE_SECONDS, sink: Optional[Callable[[torch.Tensor], Any]] = None,
                  progress: Optional[LongProgress] = None) -> LongVideo:
    """Generate ``seconds`` of video segment by segment (see the module doc), or extend ``video`` by that much.

    Args:
        model, codec: the TempoMaster DiT and its VAE.
        positive: text embeddings ``[1, L, text_dim]`` for every segment, or a sequence of them (segment
            ``s`` takes entry ``min(s, len - 1)``).
        negative: negative text embeddings (``None`` when no level is guided).
        template: the tree the model runs; its output fps converts ``seconds`` to frames.
        settings: one :class:`~tempomaster_core.pipeline.LevelSettings` per level of ``template``
            (:func:`~tempomaster_core.pipeline.tree_settings`); their seed is the base seed of
            :func:`segment_seed`. Every segment has the template's number of levels.
        seconds: new video to make, ``> 0``: ``round(seconds * fps)`` frames at the output fps.
        context_frames: known frames per continuation segment (e.g. 5 s = 120 frames at 24 fps).
        new_frames: new frames per continuation segment (e.g. 480).
        video: frames to extend, ``uint8 [F, H, W, 3]`` or float in ``[0, 1]``, at the output fps and
            the template's size, with at least ``context_frames`` frames; only its last
            ``context_frames`` frames are used. ``None`` = from scratch.
        conditions: blueprint condition frames of segment 0 from scratch (``{blueprint frame: [3, H, W]
            in [-1, 1]}``, e.g. ``{0: first frame}``); not with ``video``.
        anti_drift: one of :data:`~tempomaster_core.anti_drift.ANTI_DRIFT_MODES`: what every continuation
            segment takes from the start (from scratch: segment 0's frames; extending: the first
            ``segments[0].frames`` frames of ``video`` as given -- the command line passes its last context
            frames). Segment 0 from scratch is never changed.
        join_fade: seconds over which every continuation segment's new frames go from the last frame so far to
            the segment's own rendering (:mod:`~tempomaster_core.join_fade`; 0 = a plain cut).
        sink: called with every segment's new frames ``uint8 [n, H, W, 3]`` in order; ``None`` = collect.
        progress: :data:`LongProgress`.

    Returns:
        :class:`LongVideo`.

    Raises:
        InputError: ``seconds`` not > 0 or more than :data:`~tempomaster_core.plan.MAX_OUTPUT_FRAMES`
            frames, bad counts, a bad ``video`` (:func:`~tempomaster_core.continuation.video_frames`,
            shorter than the context, another size), ``conditions`` with ``video``, settings not one per
            level, an empty prompt list, a bad ``anti_drift`` (:func:`~tempomaster_core.anti_drift.check_anti_drift`
            against the continuation segments) or ``join_fade`` (:func:`~tempomaster_core.join_fade.check_join_fade`); plus the pipeline's checks of model, codec, plans, text
            embeddings and condition frames -- all before the first segment's compute.
        PlanError: a segment tree outside the plan limits.
        NonFiniteError: see :func:`tempomaster_core.pipeline.run_blueprint`.
    """
    if not isinstance(template, TreePlan):
        raise PlanError(f"template must be a TreePlan, got {type(template).__name__}")
    fps = template.final.fps
    seconds = require_number(seconds, "seconds", minimum=0.0, exclusive_minimum=True)
    total = round(seconds * fps)
    if not 1 <= total <= MAX_OUTPUT_FRAMES:
        raise InputError(f"seconds must give 1..{MAX_OUTPUT_FRAMES} frames at {fps:g} fps, got {seconds:g} s "
                         f"({seconds * fps:.1f} frames)")
    extend = video is not None
    segments = plan_segments(template, total, context_frames, new_frames, extend=extend)
    continuing = [segment for segment in segments if segment.context_frames]
    mode = check_anti_drift(anti_drift, min((seg.known_frames(0) for seg in continuing), default=None))
    fade_length = fade_frames(check_join_fade(join_fade), fps)
    settings = list(settings)
    if len(settings) != template.num_levels or not all(isinstance(s, LevelSettings) for s in settings):
        raise InputError(f"settings must be one LevelSettings per level of the template ({template.num_levels})")
    prompts = _prompts(positive)
    seeds = tuple(segment_seed(settings[0].seed, s) for s in range(len(segments)))
    cfg = guided_cfg(settings)
    for prompt in prompts:  # every prompt against the first segment's tree (all share size and codec)
        check_level_inputs(model, codec, segments[0].plan, prompt, negative, cfg)
    context = reference = None  # from scratch, the reference is taken from segment 0 once it is made
    if extend:
        if conditions:
            raise InputError("conditions are blueprint frames of a video made from scratch; a continuation's "
                             "known frames are the video's last frames")
        frames = video_frames(video)
        check_context(*frames.shape[:3], segments[0])
        context = frames[frames.shape[0] - segments[0].context_frames:].clone()
        reference = drift_reference(mode, frames[: segments[0].frames])
        del frames
    elif conditions:
        first = segments[0].plan
        conditions = normalize_condition_frames(conditions, first.levels[0].num_frames, first.height, first.width)

    collected = [] if sink is None else None
    overlaps: list = []
    for s, segment in enumerate(segments):
        level_settings = [dataclasses.replace(level, seed=seeds[s]) for level in settings]
        report = None
        if progress is not None:
            report = (lambda level, step, steps, preview, s=s: progress(s, len(segments), level, step, steps, preview))
        levels = run_segment(model, codec, prompts[min(s, len(prompts) - 1)], negative, segment,
                             context if segment.context_frames else None, level_settings,
                             conditions=conditions if s == 0 and not extend else None,
                             anchor=reference.anchor if segment.context_frames else None, progress=report)
        made = to_uint8(levels[-1].to_images()[: segment.frames])
        del levels
        if reference is None:  # segment 0 from scratch: the reference of the later segments, itself unchanged
            new = made[segment.context_frames:]
            reference = drift_reference(mode, new)
        else:
            new = joined_new_frames(made, segment, reference, context[-1], fade_length)
        overlaps.append(_psnr8(made[: segment.context_frames], context) if segment.context_frames else None)
        if s + 1 < len(segments):  # the next context: the last frames of (context so far + new frames)
            history = new if context is None else torch.cat([context, new])
            context = history[history.shape[0] - segments[s + 1].context_frames:].clone()
        if sink is None:
            collected.append(new)
        else:
            sink(new)
    out = torch.cat(collected) if collected is not None else None
    return LongVideo(frames=out, num_frames=total, fps=fps, segments=tuple(segments), seeds=seeds,
                     overlap_psnr=tuple(overlaps))
