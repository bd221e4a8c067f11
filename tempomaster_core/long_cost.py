"""Cost of a long video three ways: continuation segments, one big tree, one full-sequence pass.

For a video longer than one trained tree (:func:`trained_tree`: 436 frames, 18.2 s, for the released
model), :func:`long_video_cost` prices

* **continuation** (paper: Multi-Mask continuation, 5 s of context, 480 new frames per step): the
  segments of :func:`~tempomaster_core.long_video.plan_segments` (a first tree without context, then
  segments of ``context + new`` frames shaped like the template tree), each priced with
  :func:`~tempomaster_core.cost.estimate_plan_cost` and summed;
* **one tree**: the auto planner's tree for the whole length (:func:`~tempomaster_core.autoplan.auto_plan`
  with the levels chosen too, no memory budget), whatever frame intervals it picks; for a minute that is a
  1.5 fps blueprint the model never saw;
* **full sequence**: all frames at the output fps as one bidirectional chunk with full attention, at the
  template blueprint's steps (:func:`~tempomaster_core.cost.full_sequence_work`).

Each is an :class:`Approach`: DiT PFLOPs, DiT + VAE FLOPs, the estimated time on one device at an assumed
throughput (:data:`~tempomaster_core.cost_devices.ASSUMED_FLOPS_PER_S`, :func:`~tempomaster_core.cost_devices.
level_seconds`; an assumption, not a measurement), the peak memory with every chunk of a level in one forward,
and the limits of the model's training it breaks (:class:`~tempomaster_core.autoplan.LimitBreach`: chunks
longer than the trained length, frame intervals coarser than the trained ones). Nothing runs.

One function for every reader: ``docs/planning.md``'s minute table, the TreeScheduler's summary and the
plan route (the tree view's continuation lines, worded in ``nodes/plan_text.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Optional, Sequence

from .autoplan import (
    AutoRequest, CostSettings, Limit, LimitBreach, PlanLimits, auto_plan, interval_breaches, limit_breaches,
)
from .config import DiTConfig
from .continuation import SegmentPlan, context_frame_count
from .cost import (
    CFG, PFLOP, CostError, PlanCost, RunSettings, estimate_plan_cost, full_sequence_work, level_cost, run_settings,
    steps_per_level,
)
from .cost_devices import ASSUMED_FLOPS_PER_S, level_seconds
from .defaults import CONTEXT_SECONDS, FPS, SEGMENT_NEW_FRAMES, TRAINED_CHUNK_FRAMES, TRAINED_FRAME_INTERVALS
from .long_video import plan_segments
from .plan import PlanError, TreePlan, round_clip_length
from .validation import require_cfg, require_int, require_number

__all__ = ["Approach", "LongCost", "long_video_cost", "trained_tree"]


def trained_tree(*, height: int, width: int, fps: float = FPS, trained_chunk_frames: int = TRAINED_CHUNK_FRAMES,
                 intervals: Sequence[int] = TRAINED_FRAME_INTERVALS, boundary: Optional[str] = None) -> TreePlan:
    """The longest tree inside the model's training: a blueprint of the longest valid clip within
    ``trained_chunk_frames`` (109) at the trained ``intervals`` (4, 2, 1), the reference's chunk rule.

    For the released model at 24 fps: 109 -> 218 -> 436 frames (18.2 s), the reference's default tree. A
    longer video is made in continuation segments of this tree (:func:`long_video_cost`).

    Raises:
        PlanError: a bad size, fps, intervals or boundary mode (:class:`~tempomaster_core.plan.TreePlan`),
            ``trained_chunk_frames`` not an int >= 1.
    """
    trained = require_int(trained_chunk_frames, "trained_chunk_frames", minimum=1, error=PlanError)
    extra = {} if boundary is None else {"boundary": boundary}
    return TreePlan(round_clip_length(trained, up=False), tuple(intervals), None, height=height, width=width,
                    fps=fps, **extra)


@dataclass(frozen=True)
class Approach:
    """One way to make the whole video, priced (:func:`long_video_cost`).

    Attributes:
        name: ``"continuation"``, ``"one tree"`` or ``"full sequence"``.
        dit_flops: DiT FLOPs (all steps and passes).
        total_flops: DiT + VAE FLOPs.
        seconds: estimated time on one device, ``total_flops`` at the assumed throughput.
        peak_bytes: the largest level peak (weights included), every chunk of a level in one forward.
        breaches: limits of the model's training it breaks (trained chunk length, trained frame intervals);
            empty when every level is inside training.
    """

    name: str
    dit_flops: float
    total_flops: float
    seconds: float
    peak_bytes: int
    breaches: tuple[LimitBreach, ...] = ()

    @property
    def dit_pflops(self) -> float:
        """DiT work in PFLOPs."""
        return self.dit_flops / PFLOP

    @property
    def trained(self) -> bool:
        """True when no level breaks the model's training."""
        return not self.breaches

    def to_dict(self) -> dict:
        """Plain-JSON form (breaches as ``{"level", "limit", "value", "bound"}``)."""
        return {"name": self.name, "dit_flops": self.dit_flops, "dit_pflops": self.dit_pflops,
                "total_flops": self.total_flops, "seconds": self.seconds, "peak_bytes": self.peak_bytes,
                "trained": self.trained,
                "breaches": [{"level": b.level, "limit": b.limit.value, "value": b.value, "bound": b.bound}
                             for b in self.breaches]}


@dataclass(frozen=True)
class LongCost:
    """A long video priced three ways (:func:`long_video_cost`).

    Attributes:
        total_frames: new pixel frames at the output fps; fps: the output frame rate.
        context_frames, new_frames: per continuation segment (pixel frames at the output fps).
        template: the tree the segments are shaped like.
        segments: every segment's :class:`~tempomaster_core.continuation.SegmentPlan`, the first without context.
        segment_costs: the :class:`~tempomaster_core.cost.PlanCost` of each segment.
        continuation, one_tree, full_sequence: the three :class:`Approach` es (``one_tree`` None when no
            frame-interval ladder makes one tree this long within the plan's size limits).
        one_tree_plan: the auto planner's tree for the whole length (None likewise).
        one_tree_error: why there is no one tree (the planner's message), else None.
        flops_per_second: the throughput assumed for the times.
    """

    total_frames: int
    fps: float
    context_frames: int
    new_frames: int
    template: TreePlan
    segments: tuple[SegmentPlan, ...]
    segment_costs: tuple[PlanCost, ...]
    continuation: Approach
    one_tree: Optional[Approach]
    one_tree_plan: Optional[TreePlan]
    one_tree_error: Optional[str]
    full_sequence: Approach
    flops_per_second: float

    @property
    def seconds_of_video(self) -> float:
        """Length of the video, seconds."""
        return self.total_frames / self.fps

    @property
    def segment_frames(self) -> tuple[int, ...]:
        """Pixel frames each segment generates at the output fps (context + new; the first has no context)."""
        return tuple(s.frames for s in self.segments)

    def to_dict(self) -> dict:
        """Plain-JSON form for the plan route and the tree view."""
        return {
            "total_frames": self.total_frames, "fps": self.fps, "seconds_of_video": self.seconds_of_video,
            "context_frames": self.context_frames, "new_frames": self.new_frames,
            "segments": [{"context_frames": s.context_frames, "new_frames": s.new_frames, "frames": s.frames,
                          "blueprint_frames": s.plan.blueprint_frames, "chunks": list(s.plan.chunks),
                          "dit_pflops": c.dit_flops / PFLOP} for s, c in zip(self.segments, self.segment_costs)],
            "continuation": self.continuation.to_dict(),
            "one_tree": None if self.one_tree is None else self.one_tree.to_dict(),
            "one_tree_intervals": None if self.one_tree_plan is None else list(self.one_tree_plan.frame_intervals),
            "one_tree_blueprint_frames": None if self.one_tree_plan is None else self.one_tree_plan.blueprint_frames,
            "one_tree_error": self.one_tree_error,
            "full_sequence": self.full_sequence.to_dict(), "flops_per_second": self.flops_per_second,
        }


def _plan_seconds(cost: PlanCost, rate: float) -> float:
    return sum(level_seconds(lv, rate) for lv in cost.levels)


def _breaches(plan: TreePlan, cost: PlanCost, trained: int, intervals: Sequence[int]) -> tuple[LimitBreach, ...]:
    return limit_breaches(plan, cost, trained_chunk_frames=trained) + interval_breaches(plan, intervals)


def long_video_cost(template: TreePlan, total_frames: Any, *, context_frames: Any = None,
                    new_frames: Any = SEGMENT_NEW_FRAMES, config: Optional[DiTConfig] = None, steps: Any = None,
                    cfg: Any = CFG, trained_chunk_frames: int = TRAINED_CHUNK_FRAMES,
                    trained_intervals: Sequence[int] = TRAINED_FRAME_INTERVALS,
                    flops_per_second: Any = ASSUMED_FLOPS_PER_S, runtime: Optional[RunSettings] = None,
                    **run: Any) -> LongCost:
    """``total_frames`` new frames from scratch as continuation segments of ``template``, against one big
    tree and a full-sequence pass (module doc).

    Args:
        template: the tree the segments are shaped like (:func:`trained_tree`, or the model's recommended plan).
        total_frames: pixel frames at the template's output fps, ``1..MAX_OUTPUT_FRAMES`` (1440 = 60 s at 24 fps).
        context_frames: known frames per continuation segment (default: :data:`~tempomaster_core.defaults.
            CONTEXT_SECONDS` at the output fps, 120 at 24 fps).
        new_frames: new frames per continuation segment (:data:`~tempomaster_core.defaults.SEGMENT_NEW_FRAMES`, 480).
        config: DiT shape (default: the 14B model).
        steps: ``None`` (the reference's 50/32/...), one int, or one per template level. The one big tree takes
            an int as is and the reference's defaults otherwise (its levels may differ); the full-sequence pass
            takes the blueprint's.
        cfg: guidance scale, one value or one per template level (``!= 1``: two passes per step); the one big
            tree is priced at the largest, the full-sequence pass at the blueprint's.
        trained_chunk_frames, trained_intervals: the model's training (what the breaches are measured against).
        flops_per_second: sustained FLOP/s of one device for the times (default: the assumed H100 rate).
        runtime, run: :class:`~tempomaster_core.cost.RunSettings` (weight dtype, text length ...) of every tree.

    Raises:
        InputError: bad frame counts (:func:`~tempomaster_core.long_video.plan_segments`).
        PlanError: a segment or tree outside the plan limits, a template that is not a TreePlan.
        CostError: bad steps, cfg, run settings or throughput.
    """
    if not isinstance(template, TreePlan):
        raise PlanError(f"template must be a TreePlan, got {type(template).__name__}")
    rate = require_number(flops_per_second, "flops_per_second", minimum=0.0, exclusive_minimum=True, error=CostError)
    config = config or DiTConfig()
    runtime = run_settings(runtime, **run)
    fps = template.final.fps
    context = context_frame_count(CONTEXT_SECONDS, fps) if context_frames is None else context_frames
    segments = tuple(plan_segments(template, total_frames, context, new_frames))
    context, new = int(context), int(new_frames)  # checked by plan_segments
    total = sum(s.new_frames for s in segments)
    priced: dict[int, PlanCost] = {}
    for segment in segments:
        if id(segment) not in priced:
            priced[id(segment)] = estimate_plan_cost(segment.plan, config, steps, cfg, full_sequence=False,
                                                     runtime=runtime)
    costs = tuple(priced[id(s)] for s in segments)
    seg_breaches: list[LimitBreach] = []
    for segment, cost in zip(segments, costs):
        seg_breaches += [b for b in _breaches(segment.plan, cost, trained_chunk_frames, trained_intervals)
                         if b not in seg_breaches]
    continuation = Approach("continuation", sum(c.dit_flops for c in costs), sum(c.total_flops for c in costs),
                            sum(_plan_seconds(c, rate) for c in costs), max(c.peak_bytes for c in costs),
                            tuple(seg_breaches))

    scales = [require_cfg(c, "cfg", parse_text=True, error=CostError)
              for c in (cfg if isinstance(cfg, (list, tuple)) else [cfg] * template.num_levels)]
    costing = CostSettings(**{f.name: getattr(runtime, f.name) for f in fields(RunSettings)}, config=config,
                           steps=steps if steps is None or isinstance(steps, int) else None, cfg=max(scales))
    try:
        big = auto_plan(AutoRequest(total, height=template.height, width=template.width, fps=fps, intervals=None,
                                    limits=PlanLimits(trained_chunk_frames=trained_chunk_frames,
                                                      memory_budget_bytes=None),
                                    costing=costing, temporal_factor=template.temporal_factor))
    except PlanError as err:  # no ladder makes one tree this long (the plan's size limits)
        one_tree, one_tree_plan, one_tree_error = None, None, str(err)
    else:
        big_cost = estimate_plan_cost(big.plan, config, costing.steps, costing.cfg, full_sequence=False,
                                      runtime=runtime)
        one_tree = Approach("one tree", big_cost.dit_flops, big_cost.total_flops, _plan_seconds(big_cost, rate),
                            big_cost.peak_bytes, _breaches(big.plan, big_cost, trained_chunk_frames,
                                                           trained_intervals))
        one_tree_plan, one_tree_error = big.plan, None

    work = full_sequence_work(total, steps_per_level(steps, template.num_levels)[0], template.temporal_factor, fps)
    full = level_cost(work, config, height=template.height, width=template.width, cfg=scales[0],
                      temporal_factor=template.temporal_factor, runtime=runtime)
    full_total = full.dit_flops + full.vae_encode_flops + full.vae_decode_flops
    full_breach = (LimitBreach(0, Limit.TRAINED_LENGTH, work.frames_per_chunk, trained_chunk_frames),) \
        if work.frames_per_chunk > trained_chunk_frames else ()
    full_sequence = Approach("full sequence", full.dit_flops, full_total, level_seconds(full, rate), full.peak_bytes,
                             full_breach)
    return LongCost(total_frames=total, fps=fps, context_frames=context, new_frames=new, template=template,
                    segments=segments, segment_costs=costs, continuation=continuation, one_tree=one_tree,
                    one_tree_plan=one_tree_plan, one_tree_error=one_tree_error, full_sequence=full_sequence,
                    flops_per_second=rate)
