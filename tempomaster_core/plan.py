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

from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

import torch


class PlanError(ValueError):
    """An impossible or inconsistent level plan (the message says how to fix it)."""


def _nearest_valid_frames(frames: int, temporal_factor: int) -> tuple[int, int]:
    """The two valid pixel-frame counts ``tf*n+1`` around ``frames`` (lower, upper)."""
    lower = max((frames - 1) // temporal_factor, 0) * temporal_factor + 1
    if lower > frames:
        lower = 1
    upper = lower + temporal_factor
    return lower, upper


def reference_chunk_length(frames: int, chunks: int, temporal_factor: int = 4) -> int:
    """Pixel frames per chunk by the reference rule ``(frames // chunks + 2) // tf * tf + 1``.

    This rounds ``frames / chunks`` to a nearby valid clip length ``tf*n+1``
    (reference ``preparer_condition_video``; ``tf`` is 4 there). It may leave
    tail frames uncovered (``chunks * length < frames``); see :func:`chunk_length`.
    """
    return (frames // chunks + 2) // temporal_factor * temporal_factor + 1


def chunk_length(frames: int, chunks: int, temporal_factor: int = 4) -> tuple[int, bool]:
    """Pixel frames per chunk of a level, covering every frame.

    Uses :func:`reference_chunk_length`. Where that would leave tail frames
    uncovered (e.g. 214 frames in 4 chunks -> 4 x 53 = 212, the reference then
    silently drops frames 212 and 213), the next valid length ``tf*n+1`` that
    covers all frames is chosen instead (here 57; the last chunk is padded).

    Returns:
        ``(length, extended)``: the chunk length in pixel frames and whether it was
        increased over the reference formula.
    """
    length = reference_chunk_length(frames, chunks, temporal_factor)
    if chunks * length >= frames:
        return length, False
    needed = -(-frames // chunks)  # ceil
    length = -(-(needed - 1) // temporal_factor) * temporal_factor + 1
    return length, True


def chunks_fit(frames: int, chunks: int, temporal_factor: int) -> bool:
    """True when ``frames`` pixel frames can be cut into ``chunks`` chunks of :func:`chunk_length`:
    every chunk (the last one included) holds at least one real frame and chunks are at least
    two latent frames long (``temporal_factor + 1`` pixel frames)."""
    length, _ = chunk_length(frames, chunks, temporal_factor)
    return (chunks - 1) * length < frames and length >= temporal_factor + 1


def max_chunks(frames: int, temporal_factor: int = 4) -> int:
    """Largest valid chunk count of a ``frames``-frame level (no empty chunk, chunks of at
    least two latent frames)."""
    best = 1
    for chunks in range(1, frames + 1):
        if chunks_fit(frames, chunks, temporal_factor):
            best = chunks
    return best


def default_chunks(interval: int) -> int:
    """Reference default chunks of a refinement level: ``max(4 // interval, 1)`` (1/2/4 for 4/2/1)."""
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
            chunk ``c``, latent frame ``j`` -> ``(c*T + j) * interval`` (reference
            ``denoise_chunk``: chunk start ``c*T*interval``, stride ``interval``).
        conditions: per chunk, the condition frames as ``(pixel index within the
            chunk, frame index on the level above)`` pairs, sorted by pixel index.
            Empty for the blueprint (its user condition frames are not part of the plan).
        temporal_factor: pixel frames per latent frame after the first (4 for Wan).
        extended_tail: True when the chunk length was increased over the reference
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
    """Reference RoPE positions: chunk ``c`` starts at ``c*T*interval``, stride ``interval``."""
    return tuple(
        tuple((c * latent_frames + j) * interval for j in range(latent_frames)) for c in range(chunks)
    )


BOUNDARY_MODES = ("reference", "anchors")
"""How chunk-boundary frames are conditioned (:class:`TreePlan` ``boundary``).

``"reference"`` (default, what the authors ran): the first and last pixel frame of every chunk
is a condition frame taken from frame ``index // ratio`` of the level above, so a boundary that
falls between two anchors repeats the previous anchor (a duplicated instant, then a double step).
``"anchors"``: only the true frames of the level above (at pixels ``k * ratio``) are conditions;
boundary frames between anchors are generated like every other in-between frame.
"""


def _refinement_conditions(
    frames: int, previous_frames: int, ratio: int, chunks: int, length: int, boundary: str = "reference"
) -> tuple[tuple[tuple[int, int], ...], ...]:
    """Condition frames per chunk.

    Every frame ``k`` of the level above is placed at pixel ``k*ratio``. With
    ``boundary="reference"`` (reference ``preparer_condition_video``) the first and
    last pixel frame of every chunk is a condition frame too, taken from frame
    ``index // ratio`` of the level above (the last chunk ends at the last real
    frame); with ``"anchors"`` only the anchors are conditions (see :data:`BOUNDARY_MODES`).
    """
    sources: dict[int, int] = {}
    for c in range(chunks if boundary == "reference" else 0):
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
    """``int(value)`` for ints (numpy ints too); PlanError for bools, floats and others."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise PlanError(f"{name} must be an integer, got {value!r}")
    return int(value.__index__())


@dataclass(frozen=True)
class TreePlan:
    """The full generation tree: blueprint + refinement levels (frozen, validated).

    Args:
        blueprint_frames: pixel frames of the blueprint, ``tf*n+1`` (109 in the paper).
        frame_intervals: frame interval per level, blueprint first, strictly
            decreasing, each divisible by the next (``(4, 2, 1)`` = 6/12/24 fps).
        chunks: chunks per refinement level, one entry per refinement level
            (``None`` = reference rule ``max(4 // interval, 1)``, i.e. 2 and 4 for
            (4,2,1)). A tuple with one entry per level including the blueprint is
            accepted too; the blueprint's entry must then be 1. Stored normalized:
            one resolved int per refinement level.
        height, width: pixel size (keyword-only), multiples of ``size_multiple``.
        fps: base frame rate in frames per second (24), the rate of interval 1.
        temporal_factor: pixel frames per latent frame of the codec (4 for Wan).
        size_multiple: height/width granularity = VAE spatial factor x DiT patch
            size (8 x 2 = 16 for Wan).
        boundary: how chunk-boundary frames of refinement levels are conditioned,
            one of :data:`BOUNDARY_MODES`: ``"reference"`` (default; boundary frames
            copy frame ``index // ratio`` of the level above, as the authors ran it)
            or ``"anchors"`` (only the true frames of the level above are conditions).

    Attributes:
        levels: tuple of :class:`LevelPlan`, ``levels[0]`` is the blueprint.

    Raises:
        PlanError: frames not ``tf*n+1`` (the message gives the two nearest
            valid values), intervals not strictly decreasing or not dividing,
            a chunk count that would leave a chunk empty or make chunks shorter
            than ``tf + 1`` frames (the message gives the maximum), bad chunk tuple length, size not a multiple of ``size_multiple``,
            an unknown ``boundary`` mode.

    Example: ``TreePlan(109, (4, 2, 1), height=480, width=832)`` gives 109 frames
    at 6 fps -> 218 frames at 12 fps in 2 chunks of 109 -> 436 frames at 24 fps
    in 4 chunks of 109 (28 latent frames per chunk).
    """

    blueprint_frames: int
    frame_intervals: tuple[int, ...]
    chunks: Optional[tuple[int, ...]] = None
    height: int = field(kw_only=True)
    width: int = field(kw_only=True)
    fps: float = field(default=24.0, kw_only=True)
    temporal_factor: int = field(default=4, kw_only=True)
    size_multiple: int = field(default=16, kw_only=True)
    boundary: str = field(default="reference", kw_only=True)
    levels: tuple[LevelPlan, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tf = _as_int(self.temporal_factor, "temporal_factor")
        if tf < 1:
            raise PlanError(f"temporal_factor must be >= 1, got {tf}")
        frames = _as_int(self.blueprint_frames, "blueprint_frames")
        if frames < 1 or (frames - 1) % tf:
            lower, upper = _nearest_valid_frames(frames, tf)
            raise PlanError(
                f"blueprint_frames must be {tf}*n+1 pixel frames, got {frames}; "
                f"nearest valid values: {lower} or {upper}"
            )
        intervals = self.check_intervals(self.frame_intervals)
        chunks = self._resolve_chunks(self.chunks, intervals)
        multiple = _as_int(self.size_multiple, "size_multiple")
        if multiple < 1:
            raise PlanError(f"size_multiple must be >= 1, got {multiple}")
        size = {}
        for name in ("height", "width"):
            value = _as_int(getattr(self, name), name)
            if value < multiple or value % multiple:
                lower = value // multiple * multiple
                upper = lower + multiple
                hint = f"{lower} or {upper}" if lower >= multiple else f"{upper}"
                raise PlanError(f"{name} must be a positive multiple of {multiple}, got {value}; nearest valid: {hint}")
            size[name] = value
        try:
            fps = float(self.fps)
        except (TypeError, ValueError):
            raise PlanError(f"fps must be a number, got {self.fps!r}") from None
        if not fps > 0:
            raise PlanError(f"fps must be > 0, got {self.fps!r}")

        if self.boundary not in BOUNDARY_MODES:
            raise PlanError(f"boundary must be one of {BOUNDARY_MODES}, got {self.boundary!r}")

        levels = [self._blueprint_level(frames, intervals[0], fps, tf)]
        for index in range(1, len(intervals)):
            levels.append(self._refinement_level(levels[-1], index, intervals[index], chunks[index - 1], fps, tf,
                                                 self.boundary))

        set_ = object.__setattr__
        set_(self, "blueprint_frames", frames)
        set_(self, "frame_intervals", intervals)
        set_(self, "chunks", chunks)
        set_(self, "height", size["height"])
        set_(self, "width", size["width"])
        set_(self, "fps", fps)
        set_(self, "temporal_factor", tf)
        set_(self, "size_multiple", multiple)
        set_(self, "levels", tuple(levels))

    # -- validation -------------------------------------------------------------------

    @staticmethod
    def check_intervals(frame_intervals: Any) -> tuple[int, ...]:
        """Validated frame intervals as a tuple of ints, coarsest first (e.g. ``(4, 2, 1)``).

        Raises:
            PlanError: not a sequence of positive ints, not strictly decreasing, or an
                interval not divisible by the next one.
        """
        if isinstance(frame_intervals, (int, str, bytes)) or not isinstance(frame_intervals, Iterable):
            raise PlanError(f"frame_intervals must be a sequence of ints such as (4, 2, 1), got {frame_intervals!r}")
        intervals = tuple(_as_int(i, "frame interval") for i in frame_intervals)
        if not intervals:
            raise PlanError("frame_intervals is empty; give at least the blueprint interval, e.g. (4, 2, 1)")
        if any(i < 1 for i in intervals):
            raise PlanError(f"frame intervals must be >= 1, got {intervals}")
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
    def _resolve_chunks(chunks: Any, intervals: tuple[int, ...]) -> tuple[int, ...]:
        refinements = len(intervals) - 1
        if chunks is None:
            return tuple(default_chunks(i) for i in intervals[1:])
        if isinstance(chunks, (int, str, bytes)) or not isinstance(chunks, Iterable):
            raise PlanError(f"chunks must be None or a tuple with one int per refinement level, got {chunks!r}")
        values = tuple(chunks)
        if len(values) == refinements + 1:
            first = values[0]
            if first is not None and _as_int(first, "blueprint chunks") != 1:
                raise PlanError(f"the blueprint is always one chunk; chunks[0] must be 1, got {first}")
            values = values[1:]
        if len(values) != refinements:
            raise PlanError(
                f"chunks has {len(values)} entries but the plan has {refinements} refinement levels "
                f"(intervals {intervals}); give one chunk count per refinement level or None"
            )
        out = []
        for interval, value in zip(intervals[1:], values):
            if value is None:
                out.append(default_chunks(interval))
                continue
            value = _as_int(value, "chunks")
            if value < 1:
                raise PlanError(f"chunk counts must be >= 1, got {value}")
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
        previous: LevelPlan, index: int, interval: int, chunks: int, fps: float, tf: int, boundary: str
    ) -> LevelPlan:
        ratio = previous.interval // interval
        frames = previous.num_frames * ratio
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
                f"boundary='reference'"
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
        """Latent ``(h, w)`` for a codec with ``spatial_factor`` (8 for Wan: 480x832 -> 60x104)."""
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
        """Rebuild a plan from :meth:`to_dict` output (the ``levels`` entry is ignored and recomputed)."""
        try:
            return cls(
                data["blueprint_frames"],
                tuple(data["frame_intervals"]),
                None if data.get("chunks") is None else tuple(data["chunks"]),
                height=data["height"],
                width=data["width"],
                fps=data.get("fps", 24.0),
                temporal_factor=data.get("temporal_factor", 4),
                size_multiple=data.get("size_multiple", 16),
                boundary=data.get("boundary", "reference"),
            )
        except KeyError as err:
            raise PlanError(f"plan dict lacks {err.args[0]!r}") from None

    def describe(self) -> str:
        """Human-readable multi-line summary of the tree."""
        lines = [
            f"TreePlan {self.width}x{self.height}, intervals {self.frame_intervals} on a {self.fps:g} fps base"
            + ("" if self.boundary == "reference" else f", boundary frames: {self.boundary}")
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
