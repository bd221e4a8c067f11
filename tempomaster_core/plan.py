"""The level plan of next-frame-rate generation: one source of truth for the tree.

TempoMaster (paper, method section) first generates a low-frame-rate *blueprint* with full
bidirectional attention, then each *refinement level* multiplies the frame rate
by ``ratio = previous interval // interval``, conditioned on every frame of the
level above. A refinement level is split into ``num_chunks`` chunks of equal
length that are denoised in parallel as one batch.

:class:`TreePlan` takes the user's choices (blueprint frame count, frame
intervals, chunks per level, size, base fps) and derives, for every level, the
numbers the runtime, the nodes and the web view need (:class:`LevelPlan`):
frame counts, chunk lengths, condition frames ("anchors"), masks and the RoPE
temporal positions. It reproduces the reference code
(``pipelines/sequential_ppl.py``: ``preparer_condition_video``, ``denoise_chunk``).

Units: *pixel frames* are decoded video frames; a chunk of ``P = tf*(T-1)+1``
pixel frames has ``T`` *latent frames* (``tf`` = codec temporal factor, 4 for
Wan). A *frame interval* ``i`` means one frame every ``i`` frames of the base
frame rate (24 fps): interval 4 -> 6 fps, 2 -> 12 fps, 1 -> 24 fps.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional

from .defaults import FPS
from .validation import require_choice, require_int, require_number

if TYPE_CHECKING:  # torch is imported where a tensor is made: the limits and rules stay torch-free
    import torch


class PlanError(ValueError):
    """An impossible or inconsistent level plan (the message says how to fix it)."""


# -- size limits ---------------------------------------------------------------------------
# Every plan is bounded so that no input can make planning (or the runtime it drives) hang or
# allocate without limit. Each limit is defined here once; the nodes, the web route, the auto
# planner and the cost model import them. They are far beyond what a real run uses: the paper
# targets > 1500 output frames, TempoMaster's chunks are 109 frames at 480x832.

MAX_FPS = 240.0
"""Highest base frame rate (frames per second of interval 1) a plan accepts; ``fps`` must be finite
and in ``[MIN_FPS, MAX_FPS]``. 240 fps is the fastest consumer video mode; the TreeScheduler's ``fps``
widget uses it as its maximum."""

MIN_FPS = 0.01
"""Lowest base frame rate a plan accepts (one frame every 100 s; the TreeScheduler's widget starts at
1). A positive floor, not just ``> 0``: a subnormal rate such as 5e-324 would make every level's
frame rate (``fps / interval``) round to 0 and its duration infinite."""

MAX_FRAME_INTERVAL = 1024
"""Largest frame interval (in base-fps frames) of any level: one blueprint frame every 1024 base
frames (43 s at 24 fps). The widest tree the auto planner tries is (16, 8, 4, 2, 1); an interval
this coarse gives the blueprint no motion to plan. Keeps RoPE positions below 2**24 (exact in
float32) and the level count bounded (:data:`MAX_LEVELS`)."""

MAX_LEVELS = MAX_FRAME_INTERVAL.bit_length()
"""Most levels a plan can have, blueprint included (11): each level at least halves the interval
(strictly decreasing, each divisible by the next), starting at most at :data:`MAX_FRAME_INTERVAL`."""

MAX_TEMPORAL_FACTOR = 16
"""Largest codec temporal factor (pixel frames per latent frame after the first) a plan accepts.
Wan compresses time by 4; video VAEs in use compress by 4 to 8."""

MAX_BLUEPRINT_FRAMES = 4097
"""Most pixel frames of the blueprint (1025 latent frames with Wan's factor 4). The blueprint is one
chunk of full attention; TempoMaster was trained on 109 frames, and 4097 frames at 480x832 are
1.6 M tokens per DiT pass. Longer videos use more refinement levels, not a longer blueprint. The
TreeScheduler's ``blueprint_frames`` widget uses it as its maximum."""

MAX_OUTPUT_FRAMES = 24_000
"""Most pixel frames of the final level (every level has at most this many): 16 min 40 s at 24 fps,
100 s at 240 fps; the TreeScheduler's longest length (600 s) fits at up to 39 fps, with room for
the rounding up to whole blueprint frames (given enough levels, e.g. the auto ladders, to keep the
blueprint within :data:`MAX_BLUEPRINT_FRAMES`). That is 16 times the > 1500 frames the paper targets and
about 220 chunks of 109 frames at 24 fps. The planning work (chunks, conditions, RoPE positions)
and what the runtime allocates grow with it."""

MAX_CHUNK_FRAMES = MAX_OUTPUT_FRAMES + MAX_TEMPORAL_FACTOR
"""Longest chunk, pixel frames, of any valid plan: a level of :data:`MAX_OUTPUT_FRAMES` frames in one
chunk, rounded up to whole latent frames (derived; the cost model bounds its inputs by it)."""

MAX_CHUNKS = (MAX_OUTPUT_FRAMES - 1) // 2 + 1
"""Most chunks of one level (12000, derived): no chunk may be empty and chunks hold at least
``temporal_factor + 1 >= 2`` pixel frames, so a level of :data:`MAX_OUTPUT_FRAMES` frames has at
most this many. Larger counts are refused before any per-chunk work."""

MAX_SIDE = 4096
"""Largest height or width in pixels: DCI 4K width (Wan is trained at 480p to 720p). The
TreeScheduler's width/height widgets use it as their maximum."""

MAX_FRAME_PIXELS = 4096 * 2304
"""Most pixels per frame (``height * width``, 9.4 M): a 16:9 frame 4096 wide, covering UHD
3840x2160 and DCI 4K 4096x2160. A square 4096x4096 (16.8 M) is refused: at that size one
109-frame chunk is 1.8 M tokens and a decoded 24 fps minute is ~290 GB of float32 frames."""


def round_clip_length(frames: float, temporal_factor: int = 4, *, up: bool = True) -> int:
    """The valid clip length ``tf*n+1`` (pixel frames) next to ``frames``, at least 1: the one 4n+1 rule.

    ``up=True``: the smallest ``tf*n+1 >= frames`` (98 -> 101, 97 -> 97); ``up=False``: the largest
    ``tf*n+1 <= frames`` (31 -> 29, 30.25 -> 29, 7.6 -> 5). ``frames`` is a pixel-frame count (a float
    is accepted); ``frames <= 1`` gives 1. Used by the plan (chunk lengths, the nearest valid blueprint),
    the auto planner (blueprint for a length) and the cost model (the paper's chunk sizes, the
    full-sequence baseline).

    Callers validate their inputs: ``temporal_factor`` must be a positive int (nothing is raised here).
    """
    if frames <= 1:
        return 1
    latent_steps = -(-(frames - 1) // temporal_factor) if up else (frames - 1) // temporal_factor
    return int(latent_steps) * temporal_factor + 1


def _nearest_valid_frames(frames: int, temporal_factor: int) -> tuple[int, int]:
    """The two valid pixel-frame counts ``tf*n+1`` around an invalid ``frames`` (lower, upper)."""
    lower = round_clip_length(frames, temporal_factor, up=False)
    return lower, lower + temporal_factor


def reference_chunk_length(frames: int, chunks: int, temporal_factor: int = 4) -> int:
    """Pixel frames per chunk by the reference's rule ``(frames // chunks + 2) // tf * tf + 1``.

    This rounds ``frames / chunks`` to a nearby valid clip length ``tf*n+1``
    (the reference's ``preparer_condition_video``; ``tf`` is 4 there). It may leave
    tail frames uncovered (``chunks * length < frames``); see :func:`chunk_length`.

    Raises:
        PlanError: ``chunks`` or ``temporal_factor`` below 1.
    """
    if chunks < 1 or temporal_factor < 1:
        raise PlanError(f"chunks and temporal_factor must be >= 1, got {chunks} and {temporal_factor}")
    return (frames // chunks + 2) // temporal_factor * temporal_factor + 1


def chunk_length(frames: int, chunks: int, temporal_factor: int = 4) -> tuple[int, bool]:
    """Pixel frames per chunk of a level, covering every frame.

    Uses :func:`reference_chunk_length`. Where that would leave tail frames
    uncovered (e.g. 214 frames in 4 chunks -> 4 x 53 = 212, the reference then
    silently drops frames 212 and 213), the next valid length ``tf*n+1`` that
    covers all frames is chosen instead (here 57; the last chunk is padded).

    Returns:
        ``(length, extended)``: the chunk length in pixel frames and whether it was
        increased over the reference's formula.
    """
    length = reference_chunk_length(frames, chunks, temporal_factor)
    if chunks * length >= frames:
        return length, False
    return round_clip_length(-(-frames // chunks), temporal_factor), True  # ceil(frames / chunks), rounded up


def chunks_fit(frames: int, chunks: int, temporal_factor: int) -> bool:
    """True when ``frames`` pixel frames can be cut into ``chunks`` chunks of :func:`chunk_length`:
    every chunk (the last one included) holds at least one real frame and chunks are at least
    two latent frames long (``temporal_factor + 1`` pixel frames)."""
    length, _ = chunk_length(frames, chunks, temporal_factor)
    return (chunks - 1) * length < frames and length >= temporal_factor + 1


def max_chunks(frames: int, temporal_factor: int = 4) -> int:
    """Largest valid chunk count of a ``frames``-frame level (no empty chunk, chunks of at
    least two latent frames); 1 when none fits.

    Raises:
        PlanError: ``frames`` not an int in ``1..MAX_OUTPUT_FRAMES`` or a bad ``temporal_factor``
            (the search is linear in the frames, so it is bounded by :data:`MAX_OUTPUT_FRAMES`).
    """
    frames = _as_int(frames, "frames")
    tf = TreePlan.check_temporal_factor(temporal_factor)
    if not 1 <= frames <= MAX_OUTPUT_FRAMES:
        raise PlanError(f"frames must be between 1 and {MAX_OUTPUT_FRAMES} pixel frames, got {frames}")
    # chunks of >= tf+1 frames with a non-empty last chunk: (chunks - 1) * (tf + 1) < frames
    for chunks in range(min((frames - 1) // (tf + 1) + 1, MAX_CHUNKS), 0, -1):
        if chunks_fit(frames, chunks, tf):
            return chunks
    return 1


def default_chunks(interval: int) -> int:
    """The reference's default chunks of a refinement level: ``max(4 // interval, 1)`` (1/2/4 for 4/2/1)."""
    return max(4 // interval, 1)


@dataclass(frozen=True)
class LevelPlan:
    """One level of the tree (level 0 = blueprint).

    Attributes:
        index: level index, 0 for the blueprint.
        interval: frame interval in base-fps frames (4 -> 6 fps on a 24 fps base).
        fps: frame rate of this level = base fps / interval.
        ratio: frame-rate multiplier over the level above (previous interval //
            interval); 1 for the blueprint.
        num_frames: pixel frames this level returns (blueprint: the requested
            count; refinement: previous level's frames x ratio).
        num_chunks: chunks denoised in parallel (1 for the blueprint).
        frames_per_chunk: pixel frames ``P`` of every chunk (``tf*n+1``); the last
            chunk is zero-padded to ``P`` and its padding frames are dropped.
        latent_frames_per_chunk: latent frames ``T = (P-1)//tf + 1`` of every chunk.
        positions: RoPE temporal positions, one tuple of ``T`` ints per chunk:
            chunk ``c``, latent frame ``j`` -> ``(c*T + j) * interval`` (the reference's
            ``denoise_chunk``: chunk start ``c*T*interval``, stride ``interval``).
        conditions: per chunk, the condition frames as ``(pixel index within the
            chunk, frame index on the level above)`` pairs, sorted by pixel index.
            Empty for the blueprint (its user condition frames are not part of the plan).
        temporal_factor: pixel frames per latent frame after the first (4 for Wan).
        extended_tail: True when the chunk length was increased over the reference's
            formula so that no tail frame is dropped (see :func:`chunk_length`).
    """

    index: int
    interval: int
    fps: float
    ratio: int
    num_frames: int
    num_chunks: int
    frames_per_chunk: int
    latent_frames_per_chunk: int
    positions: tuple[tuple[int, ...], ...]
    conditions: tuple[tuple[tuple[int, int], ...], ...]
    temporal_factor: int = 4
    extended_tail: bool = False

    @property
    def is_blueprint(self) -> bool:
        """True for level 0."""
        return self.index == 0

    @property
    def padding_frames(self) -> int:
        """Zero-padding pixel frames at the end of the last chunk (dropped from the output)."""
        return self.num_chunks * self.frames_per_chunk - self.num_frames

    @property
    def duration_s(self) -> float:
        """Duration of the level's frames in seconds (``num_frames / fps``)."""
        return self.num_frames / self.fps

    @property
    def temporal_positions(self) -> torch.Tensor:
        """RoPE temporal positions, float32 ``[num_chunks, latent_frames_per_chunk]``.

        Integers (stored exactly in float32): ``(c*T + j) * interval``.
        """
        import torch

        return torch.tensor(self.positions, dtype=torch.float32)

    def chunk_range(self, chunk: int) -> tuple[int, int]:
        """``(start, stop)`` pixel-frame indices of this level covered by ``chunk``
        (``stop`` exclusive, clipped to ``num_frames``; padding not included)."""
        self._check_chunk(chunk)
        start = chunk * self.frames_per_chunk
        return start, min(start + self.frames_per_chunk, self.num_frames)

    def valid_frames(self, chunk: int) -> int:
        """Real (non-padding) pixel frames of ``chunk``."""
        start, stop = self.chunk_range(chunk)
        return stop - start

    def chunk_conditions(self, chunk: int) -> list[tuple[int, int]]:
        """Condition frames of ``chunk``: list of ``(pixel index within the chunk,
        frame index on the level above)``, sorted by pixel index."""
        self._check_chunk(chunk)
        return list(self.conditions[chunk])

    def masks(self) -> torch.Tensor:
        """Per-pixel-frame masks, float32 ``[num_chunks, frames_per_chunk]``: 1 where
        the frame is a known condition frame, else 0 (padding frames are 0)."""
        import torch

        out = torch.zeros(self.num_chunks, self.frames_per_chunk, dtype=torch.float32)
        for c, conds in enumerate(self.conditions):
            for pixel, _ in conds:
                out[c, pixel] = 1.0
        return out

    def _check_chunk(self, chunk: int) -> None:
        if not 0 <= chunk < self.num_chunks:
            raise IndexError(f"chunk {chunk} out of range: level {self.index} has {self.num_chunks} chunks")

    def to_dict(self) -> dict:
        """Plain-JSON description of the level (used by the web view)."""
        chunks = []
        for c in range(self.num_chunks):
            start, stop = self.chunk_range(c)
            chunks.append(
                {
                    "index": c,
                    "start": start,
                    "stop": stop,
                    "valid_frames": stop - start,
                    "temporal_positions": list(self.positions[c]),
                    "conditions": [list(pair) for pair in self.conditions[c]],
                }
            )
        return {
            "index": self.index,
            "kind": "blueprint" if self.is_blueprint else "refinement",
            "interval": self.interval,
            "fps": self.fps,
            "ratio": self.ratio,
            "num_frames": self.num_frames,
            "duration_s": self.duration_s,
            "num_chunks": self.num_chunks,
            "frames_per_chunk": self.frames_per_chunk,
            "latent_frames_per_chunk": self.latent_frames_per_chunk,
            "padding_frames": self.padding_frames,
            "extended_tail": self.extended_tail,
            "chunks": chunks,
        }


def _positions(chunks: int, latent_frames: int, interval: int) -> tuple[tuple[int, ...], ...]:
    """RoPE positions as the reference computes them: chunk ``c`` starts at ``c*T*interval``, stride ``interval``."""
    return tuple(
        tuple((c * latent_frames + j) * interval for j in range(latent_frames)) for c in range(chunks)
    )


def _level_frames(blueprint_frames: int, intervals: tuple[int, ...]) -> tuple[int, ...]:
    """Pixel frames per level for validated inputs: level ``k`` has ``blueprint * intervals[0] // intervals[k]``."""
    return tuple(blueprint_frames * (intervals[0] // interval) for interval in intervals)


BOUNDARY_MODES = ("repeat_anchor", "anchors")
"""How chunk-boundary frames are conditioned (:class:`TreePlan` ``boundary``).

``"repeat_anchor"`` (default, what the authors ran): the first and last pixel frame of every chunk
is a condition frame taken from frame ``index // ratio`` of the level above, so a boundary that
falls between two anchors repeats the previous anchor (a duplicated instant, then a double step).
``"anchors"``: only the true frames of the level above (at pixels ``k * ratio``) are conditions;
boundary frames between anchors are generated like every other in-between frame.
"""

BOUNDARY_ALIASES = {"reference": "repeat_anchor"}
"""Former names of boundary modes, still accepted everywhere a mode is read (plans, plan dicts, the
command line, workflows saved before the rename) and stored as the mode they name."""


def boundary_mode(value: Any, name: str = "boundary") -> str:
    """The boundary mode ``value`` names: one of :data:`BOUNDARY_MODES`, or the mode of an alias
    (:data:`BOUNDARY_ALIASES`, e.g. ``"reference"`` -> ``"repeat_anchor"``).

    Raises:
        PlanError: neither a mode nor an alias (the message calls the value ``name``).
    """
    if isinstance(value, str) and value in BOUNDARY_ALIASES:
        return BOUNDARY_ALIASES[value]
    return require_choice(value, name, BOUNDARY_MODES, error=PlanError)


def _refinement_conditions(
    frames: int, previous_frames: int, ratio: int, chunks: int, length: int, boundary: str = "repeat_anchor"
) -> tuple[tuple[tuple[int, int], ...], ...]:
    """Condition frames per chunk.

    Every frame ``k`` of the level above is placed at pixel ``k*ratio``. With
    ``boundary="repeat_anchor"`` (the reference's ``preparer_condition_video``) the first and
    last pixel frame of every chunk is a condition frame too, taken from frame
    ``index // ratio`` of the level above (the last chunk ends at the last real
    frame); with ``"anchors"`` only the anchors are conditions (see :data:`BOUNDARY_MODES`).
    """
    sources: dict[int, int] = {}
    for c in range(chunks if boundary == "repeat_anchor" else 0):
        start = c * length
        end = (c + 1) * length - 1 if c < chunks - 1 else min(chunks * length - 1, frames - 1)
        sources[start] = start // ratio
        sources[end] = end // ratio
    for k in range(previous_frames):
        sources[k * ratio] = k
    per_chunk: list[list[tuple[int, int]]] = [[] for _ in range(chunks)]
    for p in sorted(sources):
        if p < frames:  # chunks * length >= frames, so p // length is a chunk index
            chunk, offset = divmod(p, length)
            per_chunk[chunk].append((offset, sources[p]))
    return tuple(tuple(conds) for conds in per_chunk)


def _as_int(value: Any, name: str) -> int:
    """``int(value)`` for ints (numpy ints too); PlanError for bools, floats and others
    (:func:`~tempomaster_core.validation.require_int`'s rule)."""
    return require_int(value, name, error=PlanError)


@dataclass(frozen=True)
class TreePlan:
    """The full generation tree: blueprint + refinement levels (frozen, validated).

    Args:
        blueprint_frames: pixel frames of the blueprint, ``tf*n+1`` (109 in the paper).
        frame_intervals: frame interval per level, blueprint first, strictly
            decreasing, each divisible by the next (``(4, 2, 1)`` = 6/12/24 fps).
        chunks: chunks per refinement level, one entry per refinement level
            (``None`` = the reference's rule ``max(4 // interval, 1)``, i.e. 2 and 4 for
            (4,2,1)). A tuple with one entry per level including the blueprint is
            accepted too; the blueprint's entry must then be 1. Stored normalized:
            one resolved int per refinement level.
        height, width: pixel size (keyword-only), multiples of ``size_multiple``.
        fps: base frame rate in frames per second (24), the rate of interval 1.
        temporal_factor: pixel frames per latent frame of the codec (4 for Wan).
        size_multiple: height/width granularity = VAE spatial factor x DiT patch
            size (8 x 2 = 16 for Wan).
        boundary: how chunk-boundary frames of refinement levels are conditioned,
            one of :data:`BOUNDARY_MODES`: ``"repeat_anchor"`` (default; boundary frames
            copy frame ``index // ratio`` of the level above, as the authors ran it)
            or ``"anchors"`` (only the true frames of the level above are conditions);
            an alias of :data:`BOUNDARY_ALIASES` (``"reference"``) is stored as its mode.

    Attributes:
        levels: tuple of :class:`LevelPlan`, ``levels[0]`` is the blueprint.

    Raises:
        PlanError: frames not ``tf*n+1`` (the message gives the two nearest
            valid values), intervals not strictly decreasing or not dividing,
            a chunk count that would leave a chunk empty or make chunks shorter
            than ``tf + 1`` frames (the message gives the maximum), bad chunk tuple length, size not a multiple of ``size_multiple``,
            an unknown ``boundary`` mode, fps not finite in ``[MIN_FPS, MAX_FPS]``, or a size limit of this
            module exceeded (:data:`MAX_BLUEPRINT_FRAMES`, :data:`MAX_OUTPUT_FRAMES`,
            :data:`MAX_FRAME_INTERVAL`, :data:`MAX_LEVELS`, :data:`MAX_CHUNKS`, :data:`MAX_SIDE`,
            :data:`MAX_FRAME_PIXELS`, :data:`MAX_TEMPORAL_FACTOR`). All checks run before any per-frame
            work, so every input is answered at once.

    Example: ``TreePlan(109, (4, 2, 1), height=480, width=832)`` gives 109 frames
    at 6 fps -> 218 frames at 12 fps in 2 chunks of 109 -> 436 frames at 24 fps
    in 4 chunks of 109 (28 latent frames per chunk).
    """

    blueprint_frames: int
    frame_intervals: tuple[int, ...]
    chunks: Optional[tuple[int, ...]] = None
    height: int = field(kw_only=True)
    width: int = field(kw_only=True)
    fps: float = field(default=FPS, kw_only=True)
    temporal_factor: int = field(default=4, kw_only=True)
    size_multiple: int = field(default=16, kw_only=True)
    boundary: str = field(default="repeat_anchor", kw_only=True)
    levels: tuple[LevelPlan, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # every check below is O(levels); none does per-frame work, so any input is answered at once
        tf = self.check_temporal_factor(self.temporal_factor)
        frames = self._check_blueprint(self.blueprint_frames, tf)
        intervals = self.check_intervals(self.frame_intervals)
        counts = self._check_output(frames, intervals)
        chunks = tuple(default_chunks(i) if c is None else c
                       for i, c in zip(intervals[1:], self.check_chunks(self.chunks, intervals)))
        multiple = _as_int(self.size_multiple, "size_multiple")
        if not 1 <= multiple <= MAX_SIDE:
            raise PlanError(f"size_multiple must be between 1 and {MAX_SIDE}, got {multiple}")
        height, width = self.check_size(self.height, self.width, multiple)
        fps = self.check_fps(self.fps)

        boundary = boundary_mode(self.boundary)

        levels = [self._blueprint_level(frames, intervals[0], fps, tf)]
        for index in range(1, len(intervals)):
            levels.append(self._refinement_level(levels[-1], index, intervals[index], counts[index],
                                                 chunks[index - 1], fps, tf, boundary))

        set_ = object.__setattr__
        set_(self, "blueprint_frames", frames)
        set_(self, "frame_intervals", intervals)
        set_(self, "chunks", chunks)
        set_(self, "height", height)
        set_(self, "width", width)
        set_(self, "fps", fps)
        set_(self, "temporal_factor", tf)
        set_(self, "size_multiple", multiple)
        set_(self, "boundary", boundary)
        set_(self, "levels", tuple(levels))

    # -- validation -------------------------------------------------------------------

    @staticmethod
    def check_intervals(frame_intervals: Any) -> tuple[int, ...]:
        """Validated frame intervals as a tuple of ints, coarsest first (e.g. ``(4, 2, 1)``).

        Raises:
            PlanError: not a sequence of positive ints, more than :data:`MAX_LEVELS` entries, an
                interval above :data:`MAX_FRAME_INTERVAL`, not strictly decreasing, or an interval
                not divisible by the next one.
        """
        if isinstance(frame_intervals, (int, str, bytes)) or not isinstance(frame_intervals, Iterable):
            raise PlanError(f"frame_intervals must be a sequence of ints such as (4, 2, 1), got {frame_intervals!r}")
        values = list(itertools.islice(iter(frame_intervals), MAX_LEVELS + 1))
        if len(values) > MAX_LEVELS:
            raise PlanError(
                f"frame_intervals has more than {MAX_LEVELS} levels; each level must at least halve the interval, "
                f"so at most {MAX_LEVELS} fit below the largest interval {MAX_FRAME_INTERVAL} (e.g. 16,8,4,2,1)"
            )
        intervals = tuple(_as_int(i, "frame interval") for i in values)
        if not intervals:
            raise PlanError("frame_intervals is empty; give at least the blueprint interval, e.g. (4, 2, 1)")
        if any(i < 1 for i in intervals):
            raise PlanError(f"frame intervals must be >= 1, got {intervals}")
        if intervals[0] > MAX_FRAME_INTERVAL:
            raise PlanError(
                f"frame intervals must be at most {MAX_FRAME_INTERVAL} (one blueprint frame every "
                f"{MAX_FRAME_INTERVAL} base frames), got {intervals}; use a finer blueprint, e.g. (16, 8, 4, 2, 1)"
            )
        for prev, cur in zip(intervals, intervals[1:]):
            if cur >= prev:
                raise PlanError(
                    f"frame intervals must be strictly decreasing (blueprint first, e.g. (4, 2, 1)), got {intervals}"
                )
            if prev % cur:
                raise PlanError(
                    f"frame interval {prev} is not divisible by the next interval {cur} in {intervals}; "
                    "each level must multiply the frame rate by an integer"
                )
        return intervals

    @staticmethod
    def check_fps(fps: Any) -> float:
        """The base frame rate (frames per second of interval 1) as a float in ``[MIN_FPS, MAX_FPS]``.

        Raises:
            PlanError: not a number, NaN, infinite, ``<= 0``, below :data:`MIN_FPS` or above :data:`MAX_FPS`.
        """
        value = require_number(fps, "fps", parse_text=True, error=PlanError)
        if not value > 0:
            raise PlanError(f"fps must be > 0, got {fps!r}")
        if value < MIN_FPS:
            raise PlanError(f"fps must be at least {MIN_FPS:g} frames per second, got {fps!r}")
        if value > MAX_FPS:
            raise PlanError(f"fps must be at most {MAX_FPS:g} frames per second, got {fps!r}")
        return value

    @staticmethod
    def check_size(height: Any, width: Any, size_multiple: int = 16) -> tuple[int, int]:
        """``(height, width)`` in pixels as ints, validated.

        Raises:
            PlanError: not ints, not positive multiples of ``size_multiple`` (the message gives the
                nearest valid values), a side above :data:`MAX_SIDE` or more than
                :data:`MAX_FRAME_PIXELS` pixels per frame.
        """
        multiple = _as_int(size_multiple, "size_multiple")
        if multiple < 1:
            raise PlanError(f"size_multiple must be >= 1, got {multiple}")
        size = {}
        for name, raw in (("height", height), ("width", width)):
            value = _as_int(raw, name)
            if value > MAX_SIDE:
                raise PlanError(f"{name} must be at most {MAX_SIDE} pixels, got {value}")
            if value < multiple or value % multiple:
                lower = value // multiple * multiple
                upper = lower + multiple
                hint = f"{lower} or {upper}" if lower >= multiple else f"{upper}"
                raise PlanError(f"{name} must be a positive multiple of {multiple}, got {value}; nearest valid: {hint}")
            size[name] = value
        if size["height"] * size["width"] > MAX_FRAME_PIXELS:
            raise PlanError(
                f"{size['width']}x{size['height']} is {size['width'] * size['height'] / 1e6:.1f} M pixels per frame, "
                f"more than the maximum {MAX_FRAME_PIXELS / 1e6:.1f} M (e.g. 4096x2304 or 3840x2160); use a smaller "
                "size (TempoMaster is trained at 480x832)"
            )
        return size["height"], size["width"]

    @staticmethod
    def check_temporal_factor(temporal_factor: Any) -> int:
        """The codec's temporal factor (pixel frames per latent frame after the first, 4 for Wan) as an int.

        Raises:
            PlanError: not an int, or outside ``1..MAX_TEMPORAL_FACTOR``.
        """
        tf = _as_int(temporal_factor, "temporal_factor")
        if not 1 <= tf <= MAX_TEMPORAL_FACTOR:
            raise PlanError(f"temporal_factor must be between 1 and {MAX_TEMPORAL_FACTOR} pixel frames per latent "
                            f"frame (4 for Wan), got {tf}")
        return tf

    @staticmethod
    def level_frames(blueprint_frames: Any, frame_intervals: Any, temporal_factor: int = 4) -> tuple[int, ...]:
        """Pixel frames of every level, blueprint first, for a blueprint and intervals, after checking both.

        Level ``k`` has ``blueprint_frames * intervals[0] // intervals[k]`` pixel frames (each level
        multiplies the frame count by its ratio): 109 with (4, 2, 1) -> (109, 218, 436). The last
        entry is the final (output) length. The cheap size check of a plan (no level is built): the
        auto planner and the TreeScheduler call it before any per-level work.

        Raises:
            PlanError: a bad temporal factor (:meth:`check_temporal_factor`), a blueprint not ``tf*n+1``
                or above :data:`MAX_BLUEPRINT_FRAMES`, bad intervals (:meth:`check_intervals`), or a final
                level above :data:`MAX_OUTPUT_FRAMES`.
        """
        tf = TreePlan.check_temporal_factor(temporal_factor)
        frames = TreePlan._check_blueprint(blueprint_frames, tf)
        return TreePlan._check_output(frames, TreePlan.check_intervals(frame_intervals))

    @staticmethod
    def smallest_blueprint(final_frames: int, frame_intervals: tuple[int, ...], temporal_factor: int = 4) -> int:
        """Smallest valid blueprint (``tf*n+1`` pixel frames) whose final level has ``>= final_frames`` frames.

        The inverse of :meth:`level_frames`: 480 output frames with (4, 2, 1) -> 480 / 4 = 120 ->
        121 blueprint frames (484 output frames). Takes validated inputs (``frame_intervals`` from
        :meth:`check_intervals`, a positive ``temporal_factor``); the result is not checked against
        :data:`MAX_BLUEPRINT_FRAMES` (see :meth:`level_frames`).
        """
        per_blueprint_frame = _level_frames(1, frame_intervals)[-1]
        return round_clip_length(-(-final_frames // per_blueprint_frame), temporal_factor)

    @staticmethod
    def _check_blueprint(blueprint_frames: Any, tf: int) -> int:
        frames = _as_int(blueprint_frames, "blueprint_frames")
        if frames < 1 or (frames - 1) % tf:
            lower, upper = _nearest_valid_frames(frames, tf)
            raise PlanError(
                f"blueprint_frames must be {tf}*n+1 pixel frames, got {frames}; "
                f"nearest valid values: {lower} or {upper}"
            )
        if frames > MAX_BLUEPRINT_FRAMES:
            raise PlanError(
                f"blueprint_frames must be at most {MAX_BLUEPRINT_FRAMES} pixel frames (the blueprint is one chunk of "
                f"full attention), got {frames}; use a shorter blueprint and more refinement levels, e.g. intervals "
                "(8, 4, 2, 1)"
            )
        return frames

    @staticmethod
    def _check_output(frames: int, intervals: tuple[int, ...]) -> tuple[int, ...]:
        counts = _level_frames(frames, intervals)
        if counts[-1] > MAX_OUTPUT_FRAMES:
            raise PlanError(
                f"the final level would have {counts[-1]} pixel frames ({frames} blueprint frames x "
                f"{counts[-1] // frames}), more than the maximum {MAX_OUTPUT_FRAMES} "
                f"({MAX_OUTPUT_FRAMES / 24 / 60:.1f} min at 24 fps); use a shorter blueprint or length, or generate "
                "the video in parts"
            )
        return counts

    @staticmethod
    def check_chunks(chunks: Any, frame_intervals: tuple[int, ...]) -> tuple[Optional[int], ...]:
        """Chunk counts per refinement level, validated, with ``None`` entries kept.

        ``chunks`` is ``None`` (every entry ``None``) or one count or ``None`` per refinement level; a
        tuple with one more entry (the blueprint first) is accepted when that entry is 1 or ``None``:
        the blueprint is always one chunk. A ``None`` entry is the reference's rule
        (:func:`default_chunks`) in :class:`TreePlan` and "choose" in the auto planner.
        ``frame_intervals`` must be validated (:meth:`check_intervals`).

        Raises:
            PlanError: not a sequence, the wrong number of entries, a blueprint entry other than 1,
                or a count that is not an int in ``1..MAX_CHUNKS``.
        """
        refinements = len(frame_intervals) - 1
        if chunks is None:
            return (None,) * refinements
        if isinstance(chunks, (int, str, bytes)) or not isinstance(chunks, Iterable):
            raise PlanError(f"chunks must be None or a tuple with one count (or None) per refinement level, "
                            f"got {chunks!r}")
        values = tuple(itertools.islice(iter(chunks), refinements + 2))
        if len(values) == refinements + 1:
            first = values[0]
            if first is not None and _as_int(first, "blueprint chunks") != 1:
                raise PlanError(f"the blueprint is always one chunk; chunks[0] must be 1, got {first}")
            values = values[1:]
        if len(values) != refinements:
            count = f"{len(values)}" if len(values) <= refinements + 1 else f"more than {refinements + 1}"
            raise PlanError(
                f"chunks has {count} entries but the plan has {refinements} refinement levels "
                f"(intervals {frame_intervals}); give one chunk count per refinement level or None"
            )
        out = []
        for value in values:
            if value is not None:
                value = _as_int(value, "chunks")
                if value < 1:
                    raise PlanError(f"chunk counts must be >= 1, got {value}")
                if value > MAX_CHUNKS:
                    raise PlanError(f"chunk counts must be at most {MAX_CHUNKS} per level, got {value}")
            out.append(value)
        return tuple(out)

    # -- level construction -----------------------------------------------------------

    @staticmethod
    def _blueprint_level(frames: int, interval: int, fps: float, tf: int) -> LevelPlan:
        latent = (frames - 1) // tf + 1
        return LevelPlan(
            index=0,
            interval=interval,
            fps=fps / interval,
            ratio=1,
            num_frames=frames,
            num_chunks=1,
            frames_per_chunk=frames,
            latent_frames_per_chunk=latent,
            positions=_positions(1, latent, interval),
            conditions=((),),
            temporal_factor=tf,
        )

    @staticmethod
    def _refinement_level(
        previous: LevelPlan, index: int, interval: int, frames: int, chunks: int, fps: float, tf: int, boundary: str
    ) -> LevelPlan:
        ratio = previous.interval // interval
        if not chunks_fit(frames, chunks, tf):
            raise PlanError(
                f"level {index} ({fps / interval:g} fps, {frames} frames) cannot be split into {chunks} chunks: "
                f"the last chunk would be empty or chunks shorter than {tf + 1} frames; "
                f"use at most {max_chunks(frames, tf)} chunks for this level"
            )
        length, extended = chunk_length(frames, chunks, tf)
        latent = (length - 1) // tf + 1
        conditions = _refinement_conditions(frames, previous.num_frames, ratio, chunks, length, boundary)
        empty = [c for c, conds in enumerate(conditions) if not conds]
        if empty:
            raise PlanError(
                f"level {index} ({fps / interval:g} fps): chunk {empty[0]} holds no frame of the level above with "
                f"boundary={boundary!r} ({length}-frame chunks, ratio {ratio}); use fewer chunks or "
                f"boundary='repeat_anchor'"
            )
        return LevelPlan(
            index=index,
            interval=interval,
            fps=fps / interval,
            ratio=ratio,
            num_frames=frames,
            num_chunks=chunks,
            frames_per_chunk=length,
            latent_frames_per_chunk=latent,
            positions=_positions(chunks, latent, interval),
            conditions=conditions,
            temporal_factor=tf,
            extended_tail=extended,
        )

    # -- views ------------------------------------------------------------------------

    @property
    def num_levels(self) -> int:
        """Number of levels, blueprint included."""
        return len(self.levels)

    @property
    def final(self) -> LevelPlan:
        """The last (highest frame rate) level."""
        return self.levels[-1]

    def latent_size(self, spatial_factor: int) -> tuple[int, int]:
        """Latent ``(h, w)`` for a codec with ``spatial_factor`` (8 for Wan: 480x832 -> 60x104).

        Raises:
            PlanError: ``spatial_factor`` not a positive int, or the size not divisible by it.
        """
        spatial_factor = _as_int(spatial_factor, "spatial_factor")
        if spatial_factor < 1:
            raise PlanError(f"spatial_factor must be >= 1, got {spatial_factor}")
        if self.height % spatial_factor or self.width % spatial_factor:
            raise PlanError(
                f"plan size {self.height}x{self.width} is not divisible by the VAE spatial factor {spatial_factor}"
            )
        return self.height // spatial_factor, self.width // spatial_factor

    def to_dict(self) -> dict:
        """Plain-JSON form: the inputs (resolved) plus every level's :meth:`LevelPlan.to_dict`."""
        return {
            "blueprint_frames": self.blueprint_frames,
            "frame_intervals": list(self.frame_intervals),
            "chunks": list(self.chunks),
            "height": self.height,
            "width": self.width,
            "fps": self.fps,
            "temporal_factor": self.temporal_factor,
            "size_multiple": self.size_multiple,
            "boundary": self.boundary,
            "levels": [level.to_dict() for level in self.levels],
        }

    @classmethod
    def from_dict(cls, data: dict) -> "TreePlan":
        """Rebuild a plan from :meth:`to_dict` output (the ``levels`` entry is ignored and recomputed).

        Raises:
            PlanError: not a mapping, a missing key, or any error of :class:`TreePlan`.
        """
        if not isinstance(data, Mapping):
            raise PlanError(f"a plan dict must be a mapping such as TreePlan.to_dict() returns, got {type(data).__name__}")
        try:
            return cls(
                data["blueprint_frames"],
                data["frame_intervals"],
                data.get("chunks"),
                height=data["height"],
                width=data["width"],
                fps=data.get("fps", FPS),
                temporal_factor=data.get("temporal_factor", 4),
                size_multiple=data.get("size_multiple", 16),
                boundary=data.get("boundary", "repeat_anchor"),
            )
        except KeyError as err:
            raise PlanError(f"plan dict lacks {err.args[0]!r}") from None

    def describe(self) -> str:
        """Human-readable multi-line summary of the tree."""
        lines = [
            f"TreePlan {self.width}x{self.height}, intervals {self.frame_intervals} on a {self.fps:g} fps base"
            + ("" if self.boundary == "repeat_anchor" else f", boundary frames: {self.boundary}")
        ]
        for level in self.levels:
            kind = "blueprint" if level.is_blueprint else f"refine x{level.ratio}"
            chunk_word = "chunk" if level.num_chunks == 1 else "chunks"
            text = (
                f"  level {level.index} ({kind}): {level.fps:g} fps, {level.num_frames} frames "
                f"({level.duration_s:.2f} s), {level.num_chunks} {chunk_word} x {level.frames_per_chunk} frames "
                f"({level.latent_frames_per_chunk} latent)"
            )
            if not level.is_blueprint:
                anchors = sum(len(c) for c in level.conditions)
                text += f", {anchors} condition frames"
            if level.padding_frames:
                text += f", last chunk padded by {level.padding_frames}"
            if level.extended_tail:
                text += " (chunk length raised to cover the tail)"
            lines.append(text)
        return "\n".join(lines)
