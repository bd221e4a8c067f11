"""Planning for the artist: output length -> blueprint, and an automatic tree.

Artists think in seconds. :func:`blueprint_for_length` turns an output length
(seconds or frames at the output frame rate) into the blueprint frame count of
a :class:`~tempomaster_core.plan.TreePlan` (the smallest valid blueprint whose
final level is at least that long). :func:`reference_plan_for_length` builds the
reference tree (chunks ``max(4 // interval, 1)``) for that length.

:func:`auto_plan` chooses the chunks per refinement level (and, optionally, the
levels) that minimise the estimated cost (:mod:`tempomaster_core.cost`) under
three limits:

1. **trained length**: no chunk (the blueprint included) longer than the clips
   the model was trained on (``trained_chunk_frames``, 109 pixel frames = 28
   latent frames for the released model);
2. **memory**: the estimated peak (weights + activations of the chunks batched in
   one forward) within ``memory_budget_bytes``; when all chunks of a level do not
   fit in one batch, a smaller ``max_parallel_chunks`` is recommended, and a
   chunk count is refused only when even one chunk per forward does not fit;
3. **temporal context**: no chunk shorter than ``min_chunk_frames`` or the
   reference rule's chunk length for that level, whichever is shorter. Fewer
   frames per chunk are cheaper (attention is quadratic) but give each chunk
   less context; without this floor the cheapest plan would cut a 24 fps level
   into a few-frame chunks. The default (no explicit floor) keeps at least the
   reference's context, so the reference plan is always a candidate and auto is
   never more expensive than the reference rule when the reference fits.

The cost of a level depends only on its own chunking, so each level is chosen
independently; the result lists every candidate considered and why the chosen
one won (:class:`AutoPlan`).

Levels: with ``intervals=None`` the ladder of frame rates is chosen from
:data:`DEFAULT_LADDERS` (ratio 2 per level, as the reference default): the
cheapest ladder whose blueprint fits the trained length. Ratio-4 trees such as
``(4, 1)`` are cheaper on the cost model but make every refinement invent three
of four frames; pass them in ``ladders`` explicitly if wanted.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence

from .config import DiTConfig
from .defaults import CFG, FPS, FRAME_INTERVALS, TEXT_LEN, TRAINED_CHUNK_FRAMES, default_schedule
from .validation import require_number
from .cost import (
    GIB,
    PFLOP,
    CostError,
    LevelWork,
    PlanCost,
    default_memory_budget,
    estimate_plan_cost,
    level_cost,
)
from .plan import (
    MAX_CHUNKS,
    MAX_FPS,
    MAX_OUTPUT_FRAMES,
    PlanError,
    TreePlan,
    _as_int,
    chunk_length,
    chunks_fit,
    default_chunks,
)

#: Frame-interval ladders tried when the levels are chosen automatically (ratio 2 per level).
DEFAULT_LADDERS: tuple[tuple[int, ...], ...] = ((2, 1), (4, 2, 1), (8, 4, 2, 1), (16, 8, 4, 2, 1))

#: Marker for "use the free memory of the current GPU" (:func:`~tempomaster_core.cost.default_memory_budget`).
AUTO = "auto"


def _valid_frames_at_least(frames: int, temporal_factor: int) -> int:
    """Smallest ``tf*n+1 >= frames`` (at least 1)."""
    if frames <= 1:
        return 1
    return -(-(frames - 1) // temporal_factor) * temporal_factor + 1


def output_frames_for_seconds(seconds: float, output_fps: float) -> int:
    """Pixel frames of ``seconds`` of video at ``output_fps`` (rounded to the nearest frame, >= 1).

    Raises:
        PlanError: non-positive, non-finite or non-numeric seconds / fps, fps above
            :data:`~tempomaster_core.plan.MAX_FPS`, or more than
            :data:`~tempomaster_core.plan.MAX_OUTPUT_FRAMES` frames.
    """
    try:
        if isinstance(seconds, bool) or isinstance(output_fps, bool):
            raise TypeError
        seconds, output_fps = float(seconds), float(output_fps)
    except (TypeError, ValueError, OverflowError):
        raise PlanError(f"seconds and fps must be numbers, got {seconds!r} and {output_fps!r}") from None
    if not (seconds > 0 and math.isfinite(seconds)):
        raise PlanError(f"the output length must be > 0 seconds, got {seconds!r}")
    if not (output_fps > 0 and math.isfinite(output_fps)):
        raise PlanError(f"the output fps must be > 0, got {output_fps!r}")
    if output_fps > MAX_FPS:
        raise PlanError(f"the output fps must be at most {MAX_FPS:g}, got {output_fps!r}")
    frames = seconds * output_fps
    if frames > MAX_OUTPUT_FRAMES:
        raise PlanError(f"{seconds:g} s at {output_fps:g} fps is {frames:.0f} frames, more than the maximum "
                        f"{MAX_OUTPUT_FRAMES} output frames; plan a shorter video or generate it in parts")
    return max(1, round(frames))


def _check_output_frames(output_frames: Any) -> int:
    """``output_frames`` as an int in ``1..MAX_OUTPUT_FRAMES`` (PlanError otherwise)."""
    if isinstance(output_frames, bool) or not hasattr(output_frames, "__index__") or int(output_frames) < 1:
        raise PlanError(f"the output length must be a whole number of frames >= 1, got {output_frames!r}")
    frames = int(output_frames.__index__())
    if frames > MAX_OUTPUT_FRAMES:
        raise PlanError(f"the output length must be at most {MAX_OUTPUT_FRAMES} pixel frames "
                        f"({MAX_OUTPUT_FRAMES / 24 / 60:.1f} min at 24 fps), got {frames}; plan a shorter video or "
                        "generate it in parts")
    return frames


def blueprint_for_length(output_frames: int, intervals: Sequence[int], temporal_factor: int = 4) -> int:
    """Smallest valid blueprint (``tf*n+1`` frames) whose final level has ``>= output_frames`` frames.

    The final level has ``blueprint * intervals[0] // intervals[-1]`` frames
    (:class:`TreePlan` multiplies the frame count by each level's ratio). Example:
    20 s at 24 fps = 480 frames with (4, 2, 1): 480 / 4 = 120 -> 121 blueprint
    frames at 6 fps -> 484 output frames (20.17 s).

    Raises:
        PlanError: ``output_frames`` not in ``1..MAX_OUTPUT_FRAMES``, bad intervals or temporal factor.
    """
    frames = _check_output_frames(output_frames)
    intervals = TreePlan.check_intervals(intervals)
    tf = _as_int(temporal_factor, "temporal_factor")
    if tf < 1:
        raise PlanError(f"temporal_factor must be >= 1, got {tf}")
    ratio = intervals[0] // intervals[-1]
    return _valid_frames_at_least(-(-frames // ratio), tf)


def reference_plan_for_length(output_frames: int, intervals: Sequence[int] = FRAME_INTERVALS, *, height: int,
                              width: int, fps: float = FPS, temporal_factor: int = 4) -> TreePlan:
    """The reference tree (chunks ``max(4 // interval, 1)``) for an output length in frames.

    Raises:
        PlanError: as :class:`TreePlan` (e.g. a reference chunk count too large for a short level).
    """
    blueprint = blueprint_for_length(output_frames, intervals, temporal_factor)
    return TreePlan(blueprint, tuple(intervals), None, height=height, width=width, fps=fps,
                    temporal_factor=temporal_factor)


@dataclass(frozen=True)
class LevelChoice:
    """How one refinement level's chunk count was chosen.

    Attributes:
        index: level index (1 = first refinement).
        num_frames: pixel frames of the level.
        chunks: the chosen chunk count.
        frames_per_chunk: its chunk length in pixel frames.
        max_parallel_chunks: recommended chunks per forward (``None`` = all fit in one batch).
        reference_chunks: the reference rule's count for this level.
        candidates: every chunk count considered, as dicts (chunks, frames_per_chunk,
            pflops, peak_gib, parallel, status: "chosen"/"ok"/the reason it was refused).
        reason: one sentence on why the choice won.
        fixed: True when the chunk count was given, not chosen.
        brief: a few words for the drawing ("cheapest of 3 within limits", "= reference", ...).
    """

    index: int
    num_frames: int
    chunks: int
    frames_per_chunk: int
    max_parallel_chunks: Optional[int]
    reference_chunks: int
    candidates: tuple
    reason: str
    fixed: bool = False
    brief: str = ""

    def to_dict(self) -> dict:
        """Plain-JSON form."""
        return {
            "index": self.index, "num_frames": self.num_frames, "chunks": self.chunks,
            "frames_per_chunk": self.frames_per_chunk, "max_parallel_chunks": self.max_parallel_chunks,
            "reference_chunks": self.reference_chunks, "candidates": list(self.candidates),
            "reason": self.reason, "brief": self.brief, "fixed": self.fixed,
        }


@dataclass(frozen=True)
class AutoPlan:
    """Result of :func:`auto_plan`.

    Attributes:
        plan: the chosen :class:`TreePlan`.
        cost: its :class:`~tempomaster_core.cost.PlanCost` (at the recommended parallel chunks).
        levels: one :class:`LevelChoice` per refinement level.
        max_parallel_chunks: per level (blueprint first) the recommended chunks per
            forward, ``None`` = all (set it on the FrameRateRefiner).
        reasons: human-readable lines explaining the choice.
        warnings: limits that could not be met (empty when the plan fits).
        ladders: the frame-interval ladders considered (dicts with intervals,
            blueprint frames, pflops, status), when the levels were chosen.
        limits: the limits used (trained_chunk_frames, min_chunk_frames, memory_budget_bytes).
    """

    plan: TreePlan
    cost: PlanCost
    levels: tuple[LevelChoice, ...]
    max_parallel_chunks: tuple[Optional[int], ...]
    reasons: tuple[str, ...]
    warnings: tuple[str, ...]
    ladders: tuple = ()
    limits: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Plain-JSON form (the plan itself is not repeated; see ``plan.to_dict()``)."""
        return {
            "chunks": list(self.plan.chunks),
            "frame_intervals": list(self.plan.frame_intervals),
            "max_parallel_chunks": list(self.max_parallel_chunks),
            "levels": [lv.to_dict() for lv in self.levels],
            "reasons": list(self.reasons),
            "warnings": list(self.warnings),
            "ladders": list(self.ladders),
            "limits": dict(self.limits),
        }


def _budget(memory_budget_bytes: Any) -> Optional[int]:
    if isinstance(memory_budget_bytes, str):
        if memory_budget_bytes != AUTO:
            raise PlanError(f"memory_budget_bytes must be a number of bytes, None or {AUTO!r}, got {memory_budget_bytes!r}")
        return default_memory_budget()
    if memory_budget_bytes is None:
        return None
    try:
        if isinstance(memory_budget_bytes, bool):
            raise TypeError
        value = float(memory_budget_bytes)
    except (TypeError, ValueError, OverflowError):
        raise PlanError(f"memory_budget_bytes must be a finite number of bytes, got {memory_budget_bytes!r}") from None
    if not value > 0:
        raise PlanError(f"memory_budget_bytes must be > 0 (or None for no limit), got {memory_budget_bytes!r}")
    if not math.isfinite(value):
        raise PlanError(f"memory_budget_bytes must be finite (None = no limit), got {memory_budget_bytes!r}")
    return int(value)


def _fits(peak: int, budget: Optional[int]) -> bool:
    return budget is None or peak <= budget


def _parallel_for(work: LevelWork, config: DiTConfig, budget: Optional[int], common: dict,
                  user_max: Optional[int]) -> tuple[Optional[int], Any]:
    """Largest chunks-per-forward that fits ``budget`` (None = all) and its LevelCost, or (0, cost at 1)."""
    top = work.chunks if user_max is None else min(work.chunks, user_max)
    # the peak grows with the batch: binary search the largest batch that fits
    full = level_cost(work, config, max_batch=top, **common)
    if _fits(full.peak_bytes, budget):
        return (None if top == work.chunks else top), full
    lo, hi, best = 1, top - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        priced = level_cost(work, config, max_batch=mid, **common)
        if _fits(priced.peak_bytes, budget):
            best, lo = (mid, priced), mid + 1
        else:
            hi = mid - 1
    if best is None:
        return 0, level_cost(work, config, max_batch=1, **common)
    return best


def _gib(value: Optional[int]) -> str:
    return "unbounded" if value is None else f"{value / GIB:.1f} GiB"


def _chunk_word(n: int) -> str:
    return f"{n} chunk" if n == 1 else f"{n} chunks"


def _choose_level(index: int, frames: int, interval: int, steps: int, *, config: DiTConfig, budget: Optional[int],
                  trained: int, min_chunk: Optional[int], tf: int, common: dict, fixed: Optional[int],
                  user_max: Optional[int]) -> LevelChoice:
    """Pick the chunk count of one refinement level (see module doc).

    Every valid chunk count is priced; a count is admissible when its chunks are
    within the trained length, at least the context floor long, and fit the memory
    budget at some chunks-per-forward. The cheapest admissible count wins (ties: fewer
    chunks). When the reference's chunks break a hard limit, the floor drops to the
    longest chunks that fit; when no count fits the memory budget even one chunk per
    forward (e.g. the weights alone exceed it), memory is ignored for the choice, one
    chunk per forward is recommended and the plan carries a warning.
    """
    reference = default_chunks(interval)
    ref_len = chunk_length(frames, reference, tf)[0] if chunks_fit(frames, reference, tf) else None
    # the context floor before memory is known: never shorter than the reference's chunks (or min_chunk)
    floor = ref_len if ref_len is not None else 1
    if min_chunk is not None:
        floor = min(floor, min_chunk)
    def price(c: int) -> dict:
        length = chunk_length(frames, c, tf)[0]
        parallel, priced = _parallel_for(LevelWork(c, length, steps, num_frames=frames), config, budget, common,
                                         user_max)
        return {"chunks": c, "frames_per_chunk": length, "flops": priced.dit_flops, "peak": priced.peak_bytes,
                "parallel": parallel}

    if fixed is not None:
        if not chunks_fit(frames, fixed, tf):
            raise PlanError(f"level {index} ({frames} frames) cannot be split into {fixed} chunks")
        rows = [price(fixed)]
        memory_blind = False
    else:
        # Valid counts: chunks are >= tf+1 frames and the last one is not empty (at most frames // (tf+1) + 1);
        # chunk lengths do not grow with the count. Of the counts whose chunks are too long only the three
        # closest to fitting are listed (not priced); counts with chunks shorter than the floor are priced
        # only as far as needed to find the longest chunks that fit the memory budget.
        # (frames is at most MAX_OUTPUT_FRAMES, checked by _plan_ladder, so this scan is bounded)
        valid = [c for c in range(1, min(frames // (tf + 1) + 2, MAX_CHUNKS + 1)) if chunks_fit(frames, c, tf)]
        lengths = {c: chunk_length(frames, c, tf)[0] for c in valid}
        rows = [{"chunks": c, "frames_per_chunk": lengths[c], "flops": None, "peak": None, "parallel": None}
                for c in valid if lengths[c] > trained][-3:]
        short = [c for c in valid if lengths[c] <= trained]
        shortest = price(short[-1]) if short else None
        memory_blind = shortest is not None and shortest["parallel"] == 0  # not even the shortest fit, one at a time
        if memory_blind:  # memory is ignored: the floor may only drop to the longest chunks within the trained length
            floor = min(floor, lengths[short[0]])
        fit_length = None
        for c in short:
            if lengths[c] < floor and (memory_blind or (fit_length is not None and lengths[c] < fit_length)):
                break
            row = shortest if c == short[-1] else price(c)
            if row["parallel"] != 0 and fit_length is None:
                fit_length = row["frames_per_chunk"]
            if memory_blind:
                row["parallel"] = 1
            rows.append(row)
    short_enough = [r for r in rows if r["flops"] is not None and r["frames_per_chunk"] <= trained]
    # the context floor drops when the reference's chunks break a hard limit: the longest chunks that fit
    fitting = [r["frames_per_chunk"] for r in short_enough if r["parallel"] != 0]
    lowered = bool(fitting) and floor > max(fitting)
    if lowered:
        floor = max(fitting)
    for r in rows:
        if r["frames_per_chunk"] > trained:
            r["status"] = f"chunks of {r['frames_per_chunk']} frames exceed the trained {trained}"
        elif r["parallel"] == 0:
            r["status"] = f"peak {_gib(r['peak'])} exceeds the budget {_gib(budget)} even one chunk at a time"
        elif r["frames_per_chunk"] < floor:
            r["status"] = f"chunks of {r['frames_per_chunk']} frames are shorter than the context floor {floor}"
        else:
            r["status"] = "ok"
    ok = [r for r in rows if r["status"] == "ok"]
    head = lambda r: f"{_chunk_word(r['chunks'])} of {r['frames_per_chunk']} frames"  # noqa: E731
    limits = f"the trained length {trained}, the context floor {floor}" + (
        "" if memory_blind else f" and the memory budget {_gib(budget)}")
    if fixed is not None:
        best = rows[0]
        reason = f"{head(best)}: given" + ("" if best["status"] == "ok" else f" ({best['status']})")
        brief = "given"
    elif ok:
        best = min(ok, key=lambda r: (r["flops"], r["chunks"]))
        if lowered:
            reason = (f"{head(best)}: the reference's {_chunk_word(reference)} of {ref_len} frames break the "
                      f"trained length {trained} or the memory budget {_gib(budget)}; these are the longest chunks "
                      f"that fit ({best['flops'] / PFLOP:.2f} PFLOPs)")
            brief = "longest chunks that fit"
        elif len(ok) == 1:
            reason = f"{head(best)}: the only count within {limits}"
            brief = "only count within limits"
        else:
            reason = f"{head(best)}: the cheapest ({best['flops'] / PFLOP:.2f} PFLOPs) of {len(ok)} counts within {limits}"
            brief = f"cheapest of {len(ok)} within limits"
        if best["chunks"] == reference:
            reason += " (= the reference rule)"
            brief += ", = reference"
    else:  # unreachable with a valid trained length, kept for safety: the shortest chunks
        best = min(rows, key=lambda r: r["frames_per_chunk"])
        reason = f"{head(best)}: no count meets every limit; these are the shortest chunks"
        brief = "no count meets the limits"
    if memory_blind:
        reason += (f"; no chunk count fits the memory budget {_gib(budget)} even one chunk per forward, "
                   "so memory was ignored for this choice")
        brief += ", over memory"
    best["status"] = "chosen" if best["status"] == "ok" else f"chosen ({best['status']})"
    candidates = tuple(
        {"chunks": r["chunks"], "frames_per_chunk": r["frames_per_chunk"],
         "pflops": None if r["flops"] is None else r["flops"] / PFLOP,
         "peak_gib": None if r["peak"] is None else r["peak"] / GIB, "parallel": r["parallel"], "status": r["status"]}
        for r in rows
    )
    return LevelChoice(index=index, num_frames=frames, chunks=best["chunks"], frames_per_chunk=best["frames_per_chunk"],
                       max_parallel_chunks=best["parallel"] or None, reference_chunks=reference,
                       candidates=candidates, reason=reason, fixed=fixed is not None, brief=brief)


def _fixed_chunks(chunks: Any, refinements: int) -> list[Optional[int]]:
    if chunks is None:
        return [None] * refinements
    if isinstance(chunks, (int, str, bytes)) or not isinstance(chunks, Iterable):
        raise PlanError(f"chunks must be None or one count (or None) per refinement level, got {chunks!r}")
    values = list(itertools.islice(iter(chunks), refinements + 2))
    if len(values) == refinements + 1:
        if values[0] not in (None, 1):
            raise PlanError(f"the blueprint is always one chunk; chunks[0] must be 1, got {values[0]}")
        values = values[1:]
    if len(values) != refinements:
        raise PlanError(f"chunks has {len(values)} entries for {refinements} refinement levels; "
                        "give one count (or None = choose) per refinement level")
    out = []
    for value in values:
        if value is not None:
            value = _as_int(value, "chunks")
            if not 1 <= value <= MAX_CHUNKS:
                raise PlanError(f"chunk counts must be between 1 and {MAX_CHUNKS}, got {value}")
        out.append(value)
    return out


def _plan_ladder(intervals: tuple[int, ...], output_frames: int, *, config, height, width, fps, steps, cfg, budget,
                 trained, min_chunk, tf, common, fixed, user_max) -> tuple[TreePlan, list, PlanCost, list, list]:
    blueprint = blueprint_for_length(output_frames, intervals, tf)
    TreePlan.check_frames(blueprint, intervals, tf)  # size limits before any per-level search
    per_level_steps = default_schedule(len(intervals)).steps if steps is None else _level_steps(steps, len(intervals))
    fixed_counts = _fixed_chunks(fixed, len(intervals) - 1)
    choices = []
    frames = blueprint
    for index in range(1, len(intervals)):
        frames *= intervals[index - 1] // intervals[index]
        choices.append(_choose_level(index, frames, intervals[index], per_level_steps[index], config=config,
                                     budget=budget, trained=trained, min_chunk=min_chunk, tf=tf, common=common,
                                     fixed=fixed_counts[index - 1], user_max=user_max))
    plan = TreePlan(blueprint, intervals, tuple(c.chunks for c in choices), height=height, width=width, fps=fps,
                    temporal_factor=tf)
    parallel = [None] + [c.max_parallel_chunks for c in choices]
    cost = estimate_plan_cost(plan, config, per_level_steps, cfg, max_batch=parallel,
                              **{k: common[k] for k in ("text_len", "dtype", "attention", "spatial_factor")})
    problems = []
    if blueprint > trained:
        problems.append(f"the blueprint has {blueprint} frames, more than the trained {trained}")
    if not _fits(cost.levels[0].peak_bytes, budget):
        problems.append(f"the blueprint's peak {_gib(cost.levels[0].peak_bytes)} exceeds the budget {_gib(budget)}")
    for c in choices:
        if c.frames_per_chunk > trained:
            problems.append(f"level {c.index} chunks have {c.frames_per_chunk} frames, more than the trained {trained}")
        if not _fits(cost.levels[c.index].peak_bytes, budget):
            problems.append(f"level {c.index} peak {_gib(cost.levels[c.index].peak_bytes)} exceeds the budget "
                            f"{_gib(budget)}")
    return plan, choices, cost, parallel, problems


def _level_steps(steps: Any, levels: int) -> tuple[int, ...]:
    if hasattr(steps, "__index__") and not isinstance(steps, bool):
        return (_as_int(steps, "steps"),) * levels
    if isinstance(steps, (str, bytes)) or not isinstance(steps, Iterable):
        raise PlanError(f"steps must be None, an int or one int per level, got {steps!r}")
    values = tuple(_as_int(s, "steps") for s in itertools.islice(iter(steps), levels + 1))
    if len(values) != levels:
        raise PlanError(f"steps has {len(values)} entries but there are {levels} levels; give one per level")
    return values


def auto_plan(
    output_frames: int,
    *,
    height: int,
    width: int,
    fps: float = FPS,
    intervals: Optional[Sequence[int]] = FRAME_INTERVALS,
    chunks: Optional[Sequence[Optional[int]]] = None,
    config: Optional[DiTConfig] = None,
    steps: Any = None,
    cfg: float = CFG,
    trained_chunk_frames: int = TRAINED_CHUNK_FRAMES,
    min_chunk_frames: Optional[int] = None,
    memory_budget_bytes: Any = AUTO,
    max_parallel_chunks: Optional[int] = None,
    dtype: str = "bf16",
    attention: str = "flash",
    text_len: int = TEXT_LEN,
    ladders: Sequence[Sequence[int]] = DEFAULT_LADDERS,
    temporal_factor: int = 4,
    spatial_factor: int = 8,
) -> AutoPlan:
    """Choose the tree for an output length: chunks per level (and optionally levels) at minimum cost.

    Args:
        output_frames: wanted pixel frames at the output frame rate (see
            :func:`output_frames_for_seconds`); the blueprint is
            :func:`blueprint_for_length` (the final video is at least this long).
        height, width: pixel size (multiples of 16).
        fps: base frame rate (frame rate of interval 1, 24).
        intervals: frame intervals, blueprint first; ``None`` = choose among ``ladders``.
        chunks: per refinement level a fixed count or ``None`` (= choose); ``None`` = choose all.
            Only with fixed ``intervals``.
        config: DiT shape for the cost model (default: 14B).
        steps: ``None`` (reference 50/32/...), an int, or one per level.
        cfg: guidance scale (``!= 1``: two passes per step and a doubled batch).
        trained_chunk_frames: longest chunk the model was trained on, pixel frames (109).
        min_chunk_frames: shortest chunk allowed, pixel frames; the reference rule's chunk
            length is always allowed. ``None`` = the reference's length (see module doc).
        memory_budget_bytes: bytes available on the device; ``"auto"`` = free memory of
            the current CUDA device (none without CUDA), ``None`` = unbounded.
        max_parallel_chunks: chunks per forward the user already set (``None`` = all).
        dtype, attention, text_len: memory/FLOP settings of :func:`~tempomaster_core.cost.level_cost`.
        ladders: interval ladders tried when ``intervals`` is None.
        temporal_factor, spatial_factor: codec factors (4, 8).

    Returns:
        :class:`AutoPlan`: the plan, its cost, per-level choices with every candidate,
        reasons and warnings (a limit that no candidate can meet gives a warning and the
        closest plan, never an exception).

    Raises:
        PlanError: bad length (above :data:`~tempomaster_core.plan.MAX_OUTPUT_FRAMES` included),
            intervals, chunk counts, budget, limits or cost settings (the cost model's
            :class:`~tempomaster_core.cost.CostError` is raised as PlanError). Every size is checked
            before a level's chunk counts are searched, so any input is answered well under a second.
    """
    config = config or DiTConfig()
    if not isinstance(config, DiTConfig):
        raise PlanError(f"config must be a DiTConfig, got {type(config).__name__}")
    tf = _as_int(temporal_factor, "temporal_factor")
    trained = _as_int(trained_chunk_frames, "trained_chunk_frames")
    if trained < tf + 1:
        raise PlanError(f"trained_chunk_frames must be at least {tf + 1} pixel frames, got {trained_chunk_frames!r}")
    min_chunk = None if min_chunk_frames is None else _as_int(min_chunk_frames, "min_chunk_frames")
    if min_chunk is not None and min_chunk < 1:
        raise PlanError(f"min_chunk_frames must be >= 1 or None, got {min_chunk_frames!r}")
    user_max = None if max_parallel_chunks is None else _as_int(max_parallel_chunks, "max_parallel_chunks")
    if user_max is not None and user_max < 1:
        raise PlanError(f"max_parallel_chunks must be >= 1 or None, got {max_parallel_chunks!r}")
    _check_output_frames(output_frames)
    TreePlan(1, (1,), height=height, width=width, fps=fps, temporal_factor=tf)  # size/fps errors of the plan
    budget = _budget(memory_budget_bytes)
    require_number(cfg, "cfg (1 = no guidance)", parse_text=True, error=PlanError)
    common = dict(height=height, width=width, cfg=cfg, text_len=text_len, dtype=dtype, attention=attention,
                  spatial_factor=spatial_factor, temporal_factor=tf)
    settings = dict(config=config, height=height, width=width, fps=float(fps), steps=steps, cfg=cfg, budget=budget,
                    trained=trained, min_chunk=min_chunk, tf=tf, common=common, user_max=user_max)
    try:
        if intervals is not None:
            candidates = [(TreePlan.check_intervals(intervals), chunks)]
        else:
            if chunks is not None:
                raise PlanError("fixed chunk counts need fixed frame intervals; give intervals or leave chunks None")
            candidates = [(TreePlan.check_intervals(lad), None) for lad in ladders]
            if not candidates:
                raise PlanError("ladders is empty; give at least one frame-interval ladder such as (4, 2, 1)")
        results, ladder_rows = [], []
        for ladder, fixed in candidates:
            try:
                result = _plan_ladder(ladder, output_frames, fixed=fixed, **settings)
            except PlanError as err:
                if intervals is not None:
                    raise
                ladder_rows.append({"intervals": list(ladder), "status": str(err)})
                continue
            plan, _, cost, _, problems = result
            results.append(result)
            ladder_rows.append({"intervals": list(ladder), "blueprint_frames": plan.blueprint_frames,
                                "pflops": cost.dit_flops / PFLOP, "peak_gib": cost.peak_bytes / GIB,
                                "status": "; ".join(problems) or "ok"})
    except CostError as err:
        raise PlanError(str(err)) from None
    if not results:
        raise PlanError("no frame-interval ladder gives a valid plan for this length: "
                        + "; ".join(f"{r['intervals']}: {r['status']}" for r in ladder_rows))
    best = min(results, key=lambda r: (len(r[4]), r[2].dit_flops))
    plan, choices, cost, parallel, problems = best
    reasons = []
    if intervals is None:
        chosen = ladder_rows[[r.get("intervals") for r in ladder_rows].index(list(plan.frame_intervals))]
        chosen["status"] = "chosen" if chosen["status"] == "ok" else chosen["status"]
        fitting = [r for r in ladder_rows if r["status"] in ("ok", "chosen")]
        reasons.append(
            f"levels {plan.frame_intervals} ({' -> '.join(f'{lv.fps:g}' for lv in plan.levels)} fps): "
            + (f"the cheapest of {len(fitting)} ladders that fit the limits" if len(fitting) > 1
               else "the only ladder that fits the limits" if fitting
               else "no ladder fits every limit; this one breaks the fewest")
        )
    reasons.append(f"blueprint {plan.blueprint_frames} frames at {plan.levels[0].fps:g} fps for "
                   f"{output_frames} output frames ({plan.final.num_frames} made, {plan.final.duration_s:.2f} s)")
    reasons.extend(f"level {c.index} ({plan.levels[c.index].fps:g} fps): {c.reason}" for c in choices)
    for c in choices:
        if c.max_parallel_chunks is not None:
            goal = (f"to stay within {_gib(budget)}" if _fits(cost.levels[c.index].peak_bytes, budget)
                    else "to use the least memory (still over the budget)")
            reasons.append(f"level {c.index}: run at most {_chunk_word(c.max_parallel_chunks)} per forward "
                           f"(FrameRateRefiner max_parallel_chunks) {goal}")
    limits = {"trained_chunk_frames": trained, "min_chunk_frames": settings["min_chunk"],
              "memory_budget_bytes": budget}
    return AutoPlan(plan=plan, cost=cost, levels=tuple(choices), max_parallel_chunks=tuple(parallel),
                    reasons=tuple(reasons), warnings=tuple(problems), ladders=tuple(ladder_rows), limits=limits)


def plan_warnings(plan: TreePlan, cost: PlanCost, *, trained_chunk_frames: int = TRAINED_CHUNK_FRAMES,
                  memory_budget_bytes: Optional[int] = None) -> list[str]:
    """Limits a given plan breaks (for manual plans; :func:`auto_plan` reports its own).

    Returns sentences naming the level, the value and the limit, e.g.
    ``"level 2 (24 fps): chunks of 121 frames exceed the trained 109"``; empty when all fit.
    """
    out = []
    for level, priced in zip(plan.levels, cost.levels):
        name = "blueprint" if level.is_blueprint else f"level {level.index}"
        if level.frames_per_chunk > trained_chunk_frames:
            what = "has" if level.is_blueprint else "chunks of"
            out.append(f"{name} ({level.fps:g} fps): {what} {level.frames_per_chunk} frames, more than the trained "
                       f"{trained_chunk_frames}")
        if memory_budget_bytes is not None and priced.peak_bytes > memory_budget_bytes:
            out.append(f"{name} ({level.fps:g} fps): estimated peak {_gib(priced.peak_bytes)} exceeds the budget "
                       f"{_gib(memory_budget_bytes)}")
    return out
