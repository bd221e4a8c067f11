"""Planning for the artist: output length -> blueprint, and an automatic tree.

Artists think in seconds. :func:`blueprint_for_length` turns an output length
(seconds or frames at the output frame rate) into the blueprint frame count of
a :class:`~tempomaster_core.plan.TreePlan` (the smallest valid blueprint whose
final level is at least that long). :func:`reference_plan_for_length` builds the
tree with the reference's chunk rule (chunks ``max(4 // interval, 1)``) for that length.

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
3. **temporal context**: no chunk shorter than ``min_chunk_frames`` or the chunk
   length of the reference's rule for that level, whichever is shorter. Fewer
   frames per chunk are cheaper (attention is quadratic) but give each chunk
   less context; without this floor the cheapest plan would cut a 24 fps level
   into a few-frame chunks. The default (no explicit floor) keeps at least the
   reference's context, so the reference's chunking is always a candidate and auto is
   never more expensive than the reference's rule when its chunks fit.

The cost of a level depends only on its own chunking, so each level is chosen
independently; the result lists every candidate considered and how the chosen
one won (:class:`AutoPlan`): typed values, no sentences. The sentences shown to
the artist (reasons, candidate statuses, warnings) are written from them by the
ComfyUI layer (``nodes/plan_text.py``).

The planner's inputs are one frozen value, :class:`AutoRequest` (the length, size,
frame rate and levels), with its :class:`PlanLimits` (the three limits above) and
its :class:`CostSettings` (how a level is priced).

Levels: with ``intervals=None`` the ladder of frame rates is chosen from
:data:`DEFAULT_LADDERS` (ratio 2 per level, as in the reference's default tree): the
cheapest ladder whose blueprint fits the trained length. Ratio-4 trees such as
``(4, 1)`` are cheaper on the cost model but make every refinement invent three
of four frames; pass them in ``ladders`` explicitly if wanted.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Callable, Optional, Sequence

from .config import DiTConfig
from .cost import (
    CostError,
    LevelCost,
    LevelWork,
    PlanCost,
    SWAP_SLOTS,
    RunSettings,
    default_memory_budget,
    estimate_plan_cost,
    level_cost,
    steps_per_level,
)
from .plan import (
    MAX_FPS,
    MAX_OUTPUT_FRAMES,
    MAX_CHUNKS,
    PlanError,
    TreePlan,
    chunk_length,
    chunks_fit,
    default_chunks,
)
from .defaults import CFG, FPS, FRAME_INTERVALS, TRAINED_CHUNK_FRAMES, TRAINED_FRAME_INTERVALS
from .validation import require_cfg, require_int, require_number

#: Frame-interval ladders tried when the levels are chosen automatically (ratio 2 per level).
DEFAULT_LADDERS: tuple[tuple[int, ...], ...] = ((2, 1), (4, 2, 1), (8, 4, 2, 1), (16, 8, 4, 2, 1))

#: Marker for "use the free memory of the current GPU" (:func:`~tempomaster_core.cost.default_memory_budget`).
AUTO = "auto"


def output_frames_for_seconds(seconds: float, output_fps: float) -> int:
    """Pixel frames of ``seconds`` of video at ``output_fps`` frames per second (nearest frame, >= 1).

    Raises:
        PlanError: non-positive, non-finite or non-numeric seconds / fps, fps above
            :data:`~tempomaster_core.plan.MAX_FPS`, or more than
            :data:`~tempomaster_core.plan.MAX_OUTPUT_FRAMES` frames.
    """
    seconds = require_number(seconds, "the output length in seconds", minimum=0.0, exclusive_minimum=True,
                             parse_text=True, error=PlanError)
    output_fps = require_number(output_fps, "the output fps", minimum=0.0, exclusive_minimum=True, maximum=MAX_FPS,
                                parse_text=True, error=PlanError)
    frames = seconds * output_fps
    if frames > MAX_OUTPUT_FRAMES:
        raise PlanError(f"{seconds:g} s at {output_fps:g} fps is {frames:.0f} frames, more than the maximum "
                        f"{MAX_OUTPUT_FRAMES} output frames; plan a shorter video or generate it in parts")
    return max(1, round(frames))


def _check_output_frames(output_frames: Any) -> int:
    """``output_frames`` (pixel frames) as an int in ``1..MAX_OUTPUT_FRAMES`` (PlanError otherwise)."""
    frames = require_int(output_frames, "the output length in frames", minimum=1, error=PlanError)
    if frames > MAX_OUTPUT_FRAMES:
        raise PlanError(f"the output length must be at most {MAX_OUTPUT_FRAMES} pixel frames "
                        f"({MAX_OUTPUT_FRAMES / 24 / 60:.1f} min at 24 fps), got {frames}; plan a shorter video or "
                        "generate it in parts")
    return frames


def blueprint_for_length(output_frames: int, intervals: Sequence[int], temporal_factor: int = 4) -> int:
    """Smallest valid blueprint (``tf*n+1`` pixel frames) whose final level has ``>= output_frames`` frames.

    The rule is the plan's (:meth:`TreePlan.smallest_blueprint`, the inverse of
    :meth:`TreePlan.level_frames`). Example: 20 s at 24 fps = 480 frames with (4, 2, 1):
    480 / 4 = 120 -> 121 blueprint frames at 6 fps -> 484 output frames (20.17 s).

    Raises:
        PlanError: ``output_frames`` not in ``1..MAX_OUTPUT_FRAMES``, bad intervals or temporal factor.
    """
    frames = _check_output_frames(output_frames)
    return TreePlan.smallest_blueprint(frames, TreePlan.check_intervals(intervals),
                                       TreePlan.check_temporal_factor(temporal_factor))


def reference_plan_for_length(output_frames: int, intervals: Sequence[int] = FRAME_INTERVALS, *, height: int,
                              width: int, fps: float = FPS, temporal_factor: int = 4) -> TreePlan:
    """The tree with the reference's chunk rule (chunks ``max(4 // interval, 1)``) for an output length in pixel frames.

    Raises:
        PlanError: as :class:`TreePlan` (e.g. a chunk count of the reference's rule too large for a short level).
    """
    blueprint = blueprint_for_length(output_frames, intervals, temporal_factor)
    return TreePlan(blueprint, tuple(intervals), None, height=height, width=width, fps=fps,
                    temporal_factor=temporal_factor)


# -- the request -------------------------------------------------------------------------


def _budget(memory_budget_bytes: Any) -> Optional[int]:
    """Bytes of the budget: ``"auto"`` = free CUDA memory (None without CUDA), None = unbounded."""
    if isinstance(memory_budget_bytes, str):
        if memory_budget_bytes != AUTO:
            raise PlanError(f"memory_budget_bytes must be a number of bytes, None or {AUTO!r}, got {memory_budget_bytes!r}")
        return default_memory_budget()
    if memory_budget_bytes is None:
        return None
    return int(require_number(memory_budget_bytes, "memory_budget_bytes", minimum=0.0, exclusive_minimum=True,
                              error=PlanError))


def _optional_count(value: Any, name: str) -> Optional[int]:
    return None if value is None else require_int(value, name, minimum=1, error=PlanError)


@dataclass(frozen=True)
class PlanLimits:
    """The limits the auto planner keeps (module doc), validated.

    Attributes:
        trained_chunk_frames: longest chunk the model was trained on, pixel frames (109); at least
            ``temporal_factor + 1`` (checked by :class:`AutoRequest`, which knows the factor).
        min_chunk_frames: shortest chunk allowed, pixel frames; the chunk length of the reference's rule
            is always allowed. ``None`` = that length (see module doc).
        memory_budget_bytes: bytes available on the device; ``"auto"`` (the default) is resolved when
            the limits are made, to the free memory of the current CUDA device (``None`` without CUDA);
            ``None`` = unbounded. Stored as an int or ``None``.
        max_parallel_chunks: chunks per forward the user already set (``None`` = all).

    Raises:
        PlanError: a count that is not an int >= 1 (``None`` allowed where documented), or a budget that
            is not ``None``, ``"auto"`` or a finite number of bytes > 0.
    """

    trained_chunk_frames: int = TRAINED_CHUNK_FRAMES
    min_chunk_frames: Optional[int] = None
    memory_budget_bytes: Any = AUTO
    max_parallel_chunks: Optional[int] = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "trained_chunk_frames",
             require_int(self.trained_chunk_frames, "trained_chunk_frames", minimum=1, error=PlanError))
        set_(self, "min_chunk_frames", _optional_count(self.min_chunk_frames, "min_chunk_frames"))
        set_(self, "max_parallel_chunks", _optional_count(self.max_parallel_chunks, "max_parallel_chunks"))
        set_(self, "memory_budget_bytes", _budget(self.memory_budget_bytes))

    def fits_memory(self, peak_bytes: int) -> bool:
        """True when ``peak_bytes`` is within the memory budget (always, without a budget)."""
        return self.memory_budget_bytes is None or peak_bytes <= self.memory_budget_bytes


@dataclass(frozen=True, kw_only=True)
class CostSettings(RunSettings):
    """How the auto planner prices a level (:func:`~tempomaster_core.cost.level_cost`): the
    :class:`~tempomaster_core.cost.RunSettings` (``dtype``, ``attention``, ``text_len``,
    ``spatial_factor``, ``blocks_to_swap``; ``dtype="fp8"`` and ``blocks_to_swap`` price fp8
    weights and block swap) plus the model and the sampler settings.

    Attributes:
        config: DiT shape (default, or ``None``: the 14B model).
        steps: ``None`` (the reference's defaults 50/32/...), an int, or one per level; resolved per ladder.
        cfg: guidance scale (``!= 1``: two passes per step and a doubled batch), stored as a float;
            the samplers' range (:func:`~tempomaster_core.validation.require_cfg`).

    Raises:
        PlanError: ``config`` not a :class:`DiTConfig`, ``cfg`` not a finite number in ``(0, MAX_CFG]``.
        CostError: bad run settings (:class:`~tempomaster_core.cost.RunSettings`).
    """

    config: Optional[DiTConfig] = None
    steps: Any = None
    cfg: float = CFG

    def __post_init__(self) -> None:
        super().__post_init__()
        config = self.config or DiTConfig()
        if not isinstance(config, DiTConfig):
            raise PlanError(f"config must be a DiTConfig, got {type(config).__name__}")
        object.__setattr__(self, "config", config)
        object.__setattr__(self, "cfg", require_cfg(self.cfg, parse_text=True, error=PlanError))


@dataclass(frozen=True)
class AutoRequest:
    """What :func:`auto_plan` is asked for, validated when made.

    Attributes:
        output_frames: wanted pixel frames at the output frame rate (see
            :func:`output_frames_for_seconds`); the blueprint is :func:`blueprint_for_length`
            (the final video is at least this long).
        height, width: pixel size (keyword-only, multiples of 16).
        fps: base frame rate (frames per second of interval 1, 24), stored as a float.
        intervals: frame intervals, blueprint first; ``None`` = choose among ``ladders``.
        chunks: per refinement level a fixed count or ``None`` (= choose); ``None`` = choose all
            (:meth:`TreePlan.check_chunks`). Only with fixed ``intervals``.
        limits: the :class:`PlanLimits` (default: 109 trained frames, the free GPU memory).
        costing: the :class:`CostSettings` (default: the 14B model, the reference's steps and cfg 8).
        ladders: interval ladders tried when ``intervals`` is None.
        temporal_factor: pixel frames per latent frame of the codec (4); the spatial factor is
            ``costing.spatial_factor``.

    Raises:
        PlanError: a bad length (above :data:`~tempomaster_core.plan.MAX_OUTPUT_FRAMES` included),
            size, fps, temporal factor, intervals, ladders or chunk counts, fixed chunks without fixed
            intervals, or ``limits.trained_chunk_frames`` below ``temporal_factor + 1``.
    """

    output_frames: int
    height: int = field(kw_only=True)
    width: int = field(kw_only=True)
    fps: float = field(default=FPS, kw_only=True)
    intervals: Optional[Sequence[int]] = field(default=FRAME_INTERVALS, kw_only=True)
    chunks: Optional[Sequence[Optional[int]]] = field(default=None, kw_only=True)
    limits: PlanLimits = field(default_factory=PlanLimits, kw_only=True)
    costing: CostSettings = field(default_factory=CostSettings, kw_only=True)
    ladders: Sequence[Sequence[int]] = field(default=DEFAULT_LADDERS, kw_only=True)
    temporal_factor: int = field(default=4, kw_only=True)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if not isinstance(self.limits, PlanLimits):
            raise PlanError(f"limits must be a PlanLimits, got {type(self.limits).__name__}")
        if not isinstance(self.costing, CostSettings):
            raise PlanError(f"costing must be a CostSettings, got {type(self.costing).__name__}")
        tf = TreePlan.check_temporal_factor(self.temporal_factor)
        if self.limits.trained_chunk_frames < tf + 1:
            raise PlanError(f"trained_chunk_frames must be at least {tf + 1} pixel frames, got "
                            f"{self.limits.trained_chunk_frames}")
        set_(self, "temporal_factor", tf)
        set_(self, "output_frames", _check_output_frames(self.output_frames))
        height, width = TreePlan.check_size(self.height, self.width)
        set_(self, "height", height)
        set_(self, "width", width)
        set_(self, "fps", TreePlan.check_fps(self.fps))
        if self.intervals is not None:
            intervals = TreePlan.check_intervals(self.intervals)
            set_(self, "intervals", intervals)
            set_(self, "chunks", TreePlan.check_chunks(self.chunks, intervals))
        else:
            if self.chunks is not None:
                raise PlanError("fixed chunk counts need fixed frame intervals; give intervals or leave chunks None")
            ladders = tuple(TreePlan.check_intervals(ladder) for ladder in self.ladders)
            if not ladders:
                raise PlanError("ladders is empty; give at least one frame-interval ladder such as (4, 2, 1)")
            set_(self, "ladders", ladders)

    def level_cost(self, work: LevelWork, max_batch: Optional[int]) -> LevelCost:
        """:func:`~tempomaster_core.cost.level_cost` of ``work`` at this size and these cost settings.

        Raises:
            CostError: as :func:`~tempomaster_core.cost.level_cost`.
        """
        c = self.costing
        return level_cost(work, c.config, height=self.height, width=self.width, cfg=c.cfg, max_batch=max_batch,
                          temporal_factor=self.temporal_factor, runtime=c)


def least_blocks_to_swap(fits: Callable[[int], bool], num_layers: int) -> Optional[int]:
    """The fewest DiT blocks to keep off the device (block swap, or ComfyUI's partial loading) for
    which ``fits(count)`` holds: 0 when ``fits(0)``, None when even ``num_layers`` does not.

    Swapping up to :data:`~tempomaster_core.cost.SWAP_SLOTS` blocks frees nothing (they all sit in
    the device slots), so the counts tried are 0, then ``SWAP_SLOTS + 1 .. num_layers``; a plan's peak
    falls with every further block, so a binary search asks ``fits`` about ``log2(num_layers)`` times.

    Args:
        fits: ``count -> bool``, e.g. "the plan priced with ``count`` blocks swapped is within the budget".
        num_layers: the DiT's blocks (40 for the 14B).
    """
    if fits(0):
        return 0
    low, high = SWAP_SLOTS + 1, int(num_layers)
    if low > high or not fits(high):
        return None
    while low < high:
        middle = (low + high) // 2
        if fits(middle):
            high = middle
        else:
            low = middle + 1
    return low


# -- the result --------------------------------------------------------------------------


class Verdict(Enum):
    """What a chunk count considered for a level met: every limit, or the first one it broke."""

    OK = "ok"
    TOO_LONG = "chunks longer than the trained length"
    OVER_MEMORY = "over the memory budget even one chunk per forward"
    TOO_SHORT = "chunks shorter than the context floor"


class Rule(Enum):
    """How a level's chunk count was chosen (the wording is the ComfyUI layer's)."""

    GIVEN = "given"  # fixed by the user
    CHEAPEST = "cheapest"  # the cheapest of several counts within every limit
    ONLY = "only"  # the only count within every limit
    LONGEST_FIT = "longest fit"  # the reference's chunks break a hard limit: the longest chunks that fit
    NONE_FIT = "none fit"  # no count meets every limit: the shortest chunks (unreachable, kept for safety)


class Limit(Enum):
    """A limit a level can break (:class:`LimitBreach`)."""

    TRAINED_LENGTH = "trained length"  # pixel frames per chunk above trained_chunk_frames
    MEMORY = "memory"  # estimated peak bytes above the memory budget
    TRAINED_INTERVAL = "trained interval"  # a frame interval coarser than any the model was trained on


@dataclass(frozen=True)
class LimitBreach:
    """One limit one level of a plan breaks.

    Attributes:
        level: level index (0 = blueprint).
        limit: which one (:class:`Limit`).
        value: the level's value: pixel frames per chunk, estimated peak bytes, or its frame interval.
        bound: the limit: trained pixel frames per chunk, the memory budget in bytes, or the coarsest
            trained frame interval.
    """

    level: int
    limit: Limit
    value: int
    bound: int


def limit_breaches(plan: TreePlan, cost: PlanCost, *, trained_chunk_frames: int = TRAINED_CHUNK_FRAMES,
                   memory_budget_bytes: Optional[int] = None) -> tuple[LimitBreach, ...]:
    """Limits a plan breaks at its estimated cost, level by level (blueprint first, length before memory).

    Args:
        plan: the tree; cost: its :class:`~tempomaster_core.cost.PlanCost` (one entry per level).
        trained_chunk_frames: longest chunk in pixel frames (109); memory_budget_bytes: bytes, None = unbounded.

    Returns:
        an empty tuple when every level fits.
    """
    out = []
    for level, priced in zip(plan.levels, cost.levels):
        if level.frames_per_chunk > trained_chunk_frames:
            out.append(LimitBreach(level.index, Limit.TRAINED_LENGTH, level.frames_per_chunk, trained_chunk_frames))
        if memory_budget_bytes is not None and priced.peak_bytes > memory_budget_bytes:
            out.append(LimitBreach(level.index, Limit.MEMORY, priced.peak_bytes, memory_budget_bytes))
    return tuple(out)


def interval_breaches(plan: TreePlan, trained_intervals: Sequence[int] = TRAINED_FRAME_INTERVALS
                      ) -> tuple[LimitBreach, ...]:
    """Levels whose frame interval is coarser than every interval the model was trained on.

    The released model was trained on intervals (4, 2, 1) (6, 12, 24 fps at 24 fps); a 62.5 s auto tree
    with intervals (16, 8, 4, 2, 1) has a 1.5 fps blueprint and a 3 fps level the model never saw. Such
    levels are reported (:attr:`Limit.TRAINED_INTERVAL`, value = the interval, bound = the coarsest
    trained one), not refused: for a video longer than one trained tree, continuation in segments
    (:mod:`tempomaster_core.long_video`) keeps every level at a trained frame rate. The auto planner's
    choice does not count these breaches.

    Raises:
        PlanError: ``trained_intervals`` is empty or holds something other than ints >= 1.
    """
    trained = [require_int(i, "a trained frame interval", minimum=1, error=PlanError) for i in trained_intervals]
    if not trained:
        raise PlanError("trained_intervals is empty; give the frame intervals the model was trained on, e.g. (4, 2, 1)")
    coarsest = max(trained)
    return tuple(LimitBreach(level.index, Limit.TRAINED_INTERVAL, level.interval, coarsest)
                 for level in plan.levels if level.interval > coarsest)


@dataclass(frozen=True)
class ChunkOption:
    """One chunk count the planner considered for a refinement level.

    Attributes:
        chunks: the count; frames_per_chunk: its chunk length in pixel frames.
        dit_flops: DiT FLOPs of the level at ``parallel`` chunks per forward; ``None`` = not priced
            (chunks over the trained length are listed, not priced).
        peak_bytes: estimated peak memory at ``parallel`` chunks per forward (``None``: not priced).
        parallel: chunks per forward that fit the budget: ``None`` = all (or not priced), 0 = not even
            one (then priced at one per forward).
        verdict: the first limit it breaks, or :attr:`Verdict.OK`.
    """

    chunks: int
    frames_per_chunk: int
    dit_flops: Optional[float] = None
    peak_bytes: Optional[int] = None
    parallel: Optional[int] = None
    verdict: Verdict = Verdict.OK


@dataclass(frozen=True)
class LevelChoice:
    """How one refinement level's chunk count was chosen.

    Attributes:
        index: level index (1 = first refinement).
        num_frames: pixel frames of the level.
        chunks: the chosen chunk count; frames_per_chunk: its chunk length in pixel frames.
        max_parallel_chunks: recommended chunks per forward (``None`` = all fit in one batch).
        reference_chunks: the count of the reference's rule for this level.
        reference_frames_per_chunk: its chunk length in pixel frames (``None``: that count
            does not fit the level).
        candidates: every chunk count considered (:class:`ChunkOption`), the chosen one among them.
        rule: how the choice won (:class:`Rule`).
        context_floor: the shortest chunk length (pixel frames) that counted as enough context.
        memory_ignored: no count fit the memory budget even one chunk per forward, so memory was
            ignored for the choice (one chunk per forward is recommended).
        fixed: True when the chunk count was given, not chosen.
    """

    index: int
    num_frames: int
    chunks: int
    frames_per_chunk: int
    max_parallel_chunks: Optional[int]
    reference_chunks: int
    reference_frames_per_chunk: Optional[int]
    candidates: tuple[ChunkOption, ...]
    rule: Rule
    context_floor: int
    memory_ignored: bool = False
    fixed: bool = False

    @property
    def chosen(self) -> ChunkOption:
        """The candidate that was chosen."""
        return next(c for c in self.candidates if c.chunks == self.chunks)


@dataclass(frozen=True)
class LadderOption:
    """One frame-interval ladder the planner tried.

    Attributes:
        intervals: the ladder, blueprint first.
        blueprint_frames: its blueprint, pixel frames (``None`` when no plan was made).
        dit_flops, peak_bytes: DiT FLOPs and peak memory of its best plan.
        breaches: the limits that plan breaks.
        error: why no plan was made (a :class:`PlanError` message), else ``None``.
    """

    intervals: tuple[int, ...]
    blueprint_frames: Optional[int] = None
    dit_flops: Optional[float] = None
    peak_bytes: Optional[int] = None
    breaches: tuple[LimitBreach, ...] = ()
    error: Optional[str] = None

    @property
    def fits(self) -> bool:
        """True when the ladder gave a plan within every limit."""
        return self.error is None and not self.breaches


@dataclass(frozen=True)
class AutoPlan:
    """Result of :func:`auto_plan`.

    Attributes:
        plan: the chosen :class:`TreePlan`.
        cost: its :class:`~tempomaster_core.cost.PlanCost` (at the recommended parallel chunks).
        levels: one :class:`LevelChoice` per refinement level.
        max_parallel_chunks: per level (blueprint first) the recommended chunks per
            forward, ``None`` = all (set it on the FrameRateRefiner).
        breaches: limits that could not be met (empty when the plan fits).
        limits: the :class:`PlanLimits` used (the budget resolved to bytes).
        output_frames: the pixel frames asked for (the plan makes at least as many).
        levels_chosen: True when the levels were chosen among the request's ladders.
        ladders: every ladder tried (:class:`LadderOption`; the one ladder given when the levels were fixed).
    """

    plan: TreePlan
    cost: PlanCost
    levels: tuple[LevelChoice, ...]
    max_parallel_chunks: tuple[Optional[int], ...]
    breaches: tuple[LimitBreach, ...]
    limits: PlanLimits
    output_frames: int
    levels_chosen: bool = False
    ladders: tuple[LadderOption, ...] = ()


# -- the search ----------------------------------------------------------------------------


def _parallel_for(request: AutoRequest, work: LevelWork) -> tuple[Optional[int], LevelCost]:
    """Largest chunks-per-forward that fits the budget (None = all) and its LevelCost, or (0, cost at 1)."""
    limits = request.limits
    user_max = limits.max_parallel_chunks
    top = work.chunks if user_max is None else min(work.chunks, user_max)
    # the peak grows with the batch: binary search the largest batch that fits
    full = request.level_cost(work, top)
    if limits.fits_memory(full.peak_bytes):
        return (None if top == work.chunks else top), full
    lo, hi, best = 1, top - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        priced = request.level_cost(work, mid)
        if limits.fits_memory(priced.peak_bytes):
            best, lo = (mid, priced), mid + 1
        else:
            hi = mid - 1
    if best is None:
        return 0, request.level_cost(work, 1)
    return best


def _verdict(option: ChunkOption, trained: int, floor: int) -> Verdict:
    if option.frames_per_chunk > trained:
        return Verdict.TOO_LONG
    if option.parallel == 0:
        return Verdict.OVER_MEMORY
    if option.frames_per_chunk < floor:
        return Verdict.TOO_SHORT
    return Verdict.OK


def _choose_level(request: AutoRequest, index: int, frames: int, interval: int, steps: int,
                  fixed: Optional[int]) -> LevelChoice:
    """Pick the chunk count of refinement level ``index`` (``frames`` pixel frames; see module doc).

    Every valid chunk count is priced; a count is admissible when its chunks are
    within the trained length, at least the context floor long, and fit the memory
    budget at some chunks-per-forward. The cheapest admissible count wins (ties: fewer
    chunks). When the reference's chunks break a hard limit, the floor drops to the
    longest chunks that fit; when no count fits the memory budget even one chunk per
    forward (e.g. the weights alone exceed it), memory is ignored for the choice, one
    chunk per forward is recommended and the plan carries a breach.
    """
    tf, trained = request.temporal_factor, request.limits.trained_chunk_frames
    reference = default_chunks(interval)
    ref_len = chunk_length(frames, reference, tf)[0] if chunks_fit(frames, reference, tf) else None
    # the context floor before memory is known: never shorter than the reference's chunks (or min_chunk)
    floor = ref_len if ref_len is not None else 1
    if request.limits.min_chunk_frames is not None:
        floor = min(floor, request.limits.min_chunk_frames)

    def price(c: int) -> ChunkOption:
        length = chunk_length(frames, c, tf)[0]
        parallel, priced = _parallel_for(request, LevelWork(c, length, steps, num_frames=frames))
        return ChunkOption(c, length, priced.dit_flops, priced.peak_bytes, parallel)

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
        rows = [ChunkOption(c, lengths[c]) for c in valid if lengths[c] > trained][-3:]
        short = [c for c in valid if lengths[c] <= trained]
        shortest = price(short[-1]) if short else None
        memory_blind = shortest is not None and shortest.parallel == 0  # not even the shortest fit, one at a time
        if memory_blind:  # memory is ignored: the floor may only drop to the longest chunks within the trained length
            floor = min(floor, lengths[short[0]])
        fit_length = None
        for c in short:
            if lengths[c] < floor and (memory_blind or (fit_length is not None and lengths[c] < fit_length)):
                break
            row = shortest if c == short[-1] else price(c)
            if row.parallel != 0 and fit_length is None:
                fit_length = row.frames_per_chunk
            rows.append(replace(row, parallel=1) if memory_blind else row)
    # the context floor drops when the reference's chunks break a hard limit: the longest chunks that fit
    fitting = [r.frames_per_chunk for r in rows
               if r.dit_flops is not None and r.frames_per_chunk <= trained and r.parallel != 0]
    lowered = bool(fitting) and floor > max(fitting)
    if lowered:
        floor = max(fitting)
    rows = [replace(r, verdict=_verdict(r, trained, floor)) for r in rows]
    ok = [r for r in rows if r.verdict is Verdict.OK]
    if fixed is not None:
        best, rule = rows[0], Rule.GIVEN
    elif ok:
        best = min(ok, key=lambda r: (r.dit_flops, r.chunks))
        rule = Rule.LONGEST_FIT if lowered else Rule.ONLY if len(ok) == 1 else Rule.CHEAPEST
    else:  # unreachable with a valid trained length, kept for safety: the shortest chunks
        best, rule = min(rows, key=lambda r: r.frames_per_chunk), Rule.NONE_FIT
    return LevelChoice(index=index, num_frames=frames, chunks=best.chunks, frames_per_chunk=best.frames_per_chunk,
                       max_parallel_chunks=best.parallel or None, reference_chunks=reference,
                       reference_frames_per_chunk=ref_len, candidates=tuple(rows), rule=rule, context_floor=floor,
                       memory_ignored=memory_blind, fixed=fixed is not None)


def _plan_ladder(request: AutoRequest, intervals: tuple[int, ...], fixed: tuple[Optional[int], ...]) -> AutoPlan:
    """The cheapest chunks of every refinement level of one ladder (``ladders`` left empty)."""
    tf = request.temporal_factor
    blueprint = TreePlan.smallest_blueprint(request.output_frames, intervals, tf)
    frames = TreePlan.level_frames(blueprint, intervals, tf)  # size limits before any per-level search
    try:
        steps = steps_per_level(request.costing.steps, len(intervals))
    except CostError as err:
        raise PlanError(str(err)) from None
    choices = tuple(_choose_level(request, index, frames[index], intervals[index], steps[index], fixed[index - 1])
                    for index in range(1, len(intervals)))
    plan = TreePlan(blueprint, intervals, tuple(c.chunks for c in choices), height=request.height,
                    width=request.width, fps=request.fps, temporal_factor=tf)
    parallel = (None,) + tuple(c.max_parallel_chunks for c in choices)
    c = request.costing
    cost = estimate_plan_cost(plan, c.config, steps, c.cfg, max_batch=list(parallel), runtime=c)
    limits = request.limits
    breaches = limit_breaches(plan, cost, trained_chunk_frames=limits.trained_chunk_frames,
                              memory_budget_bytes=limits.memory_budget_bytes)
    return AutoPlan(plan=plan, cost=cost, levels=choices, max_parallel_chunks=parallel, breaches=breaches,
                    limits=limits, output_frames=request.output_frames, levels_chosen=request.intervals is None)


def auto_plan(request: AutoRequest) -> AutoPlan:
    """Choose the tree for an output length: chunks per level (and optionally levels) at minimum cost.

    With ``request.intervals`` given, the chunks of each refinement level are chosen (or kept, where
    ``request.chunks`` fixes them); with ``None`` every ladder of ``request.ladders`` is planned so
    and the one with the fewest broken limits, then the fewest DiT FLOPs, wins.

    Returns:
        :class:`AutoPlan`: the plan, its cost, per-level choices with every candidate, the
        ladders tried and the limits broken (a limit that no candidate can meet gives a
        breach and the closest plan, never an exception).

    Raises:
        PlanError: a ladder too long for the size limits, a fixed chunk count the level cannot take,
            bad steps or cost settings (the cost model's :class:`~tempomaster_core.cost.CostError` is
            raised as PlanError); the request's own checks run when it is made (:class:`AutoRequest`).
            Every size is checked before a level's chunk counts are searched, so any request is
            answered well under a second.
    """
    if not isinstance(request, AutoRequest):
        raise PlanError(f"auto_plan takes an AutoRequest, got {type(request).__name__}")
    if request.intervals is not None:
        candidates = [(request.intervals, request.chunks)]
    else:
        candidates = [(ladder, (None,) * (len(ladder) - 1)) for ladder in request.ladders]
    results, rows = [], []
    try:
        for ladder, fixed in candidates:
            try:
                result = _plan_ladder(request, ladder, fixed)
            except PlanError as err:
                if request.intervals is not None:
                    raise
                rows.append(LadderOption(ladder, error=str(err)))
                continue
            results.append(result)
            rows.append(LadderOption(ladder, result.plan.blueprint_frames, result.cost.dit_flops,
                                     result.cost.peak_bytes, result.breaches))
    except CostError as err:
        raise PlanError(str(err)) from None
    if not results:
        raise PlanError("no frame-interval ladder gives a valid plan for this length: "
                        + "; ".join(f"{list(r.intervals)}: {r.error}" for r in rows))
    best = min(results, key=lambda r: (len(r.breaches), r.cost.dit_flops))
    return replace(best, ladders=tuple(rows))
