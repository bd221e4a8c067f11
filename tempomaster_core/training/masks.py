"""Multi-mask condition patterns drawn for DiT training (paper: multi-mask conditioning).

One TempoMaster DiT serves every level, so training mixes the two situations
it meets at inference:

* **blueprint case**: the clip is generated from the prompt alone (T2V), from
  its first frame (I2V), from first and last frame, from a few random
  keyframes (0-15 % of the frames), or from a known prefix (first 1/5/9 frames:
  the continuation used by chunk-by-chunk autoregressive generation);
* **refinement case**: the anchor pattern of a refinement level, taken from
  :class:`tempomaster_core.plan.TreePlan` itself (``LevelPlan.chunk_conditions``),
  so training and inference use one source of truth. Every frame of the level
  above sits at pixel ``k * ratio`` of the level. With the plan's default
  ``boundary="repeat_anchor"`` the first and last pixel frame of each chunk are
  condition frames too, copied from frame ``index // ratio`` of the level above
  (reference ``preparer_condition_video``), i.e. a boundary may show the
  *previous* anchor instead of its own ground truth; with ``boundary="anchors"``
  only the anchors are known. Both modes are drawn equally often, so the model
  serves either at inference.

A pattern is a :class:`ConditionDraw`: which pixel frames of the clip are known
and *which ground-truth frame* is placed there, as an offset in clip frames
(``source`` may differ from ``pixel`` at chunk boundaries, and may be negative:
the frame before the clip's first frame).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..plan import BOUNDARY_MODES, TreePlan

BLUEPRINT_KINDS = ("t2v", "i2v", "first_last", "keyframes", "prefix")
"""Blueprint-case pattern kinds (no known frame, frame 0, frames 0 and F-1, random keyframes, a prefix)."""

REFINEMENT_TREES = ((4, 2, 1), (4, 1))
"""Trees whose refinement levels give the training anchor patterns: (4,2,1) gives ratio 2 at
intervals 2 and 1, (4,1) ratio 4 at interval 1."""

DEFAULT_KIND_PROBS = {
    "t2v": 0.24,
    "i2v": 0.10,
    "first_last": 0.04,
    "keyframes": 0.06,
    "prefix": 0.06,
    "refine": 0.50,
}
"""Default probability of every pattern kind (blueprint kinds 50 %, refinement 50 %). Text-to-video
gets the largest blueprint share: the object count and layout of a video are decided there."""

BLUEPRINT_INTERVAL_PROBS = {4: 0.6, 2: 0.2, 1: 0.2}
"""Frame interval of a blueprint-case clip (multi-frame-rate training; the blueprint itself is 6 fps)."""

RATIO4_PROB = 0.2
"""Share of refinement patterns with ratio 4 (the (4,1) tree); the rest have ratio 2."""


@dataclass(frozen=True)
class ConditionDraw:
    """One drawn condition pattern for a clip of ``frames`` pixel frames.

    Attributes:
        kind: one of :data:`BLUEPRINT_KINDS` or ``"refine"``.
        interval: frame interval of the clip in 24 fps frames (4, 2 or 1).
        ratio: frame-rate ratio to the level above (2 or 4) for ``"refine"``, 1 otherwise.
        frames: pixel frames of the clip (``tf*n + 1``).
        conditions: ``(pixel, source)`` pairs sorted by pixel: pixel frame ``pixel``
            of the clip is known and shows the ground-truth frame at clip offset
            ``source`` (video time ``t0 + source * interval`` for a clip whose frame
            ``j`` is at ``t0 + j * interval``). ``source == pixel`` except at refinement
            chunk boundaries, where ``source <= pixel``.
        level: ``(tree intervals, level index, chunk, boundary mode)`` for ``"refine"``, else ``None``.
    """

    kind: str
    interval: int
    ratio: int
    frames: int
    conditions: tuple[tuple[int, int], ...]
    level: tuple | None = None

    @property
    def is_blueprint(self) -> bool:
        """True for the blueprint-case kinds (sampled with the blueprint shift)."""
        return self.kind != "refine"

    def mask(self) -> np.ndarray:
        """float32 ``[frames]``: 1 at known pixel frames, else 0."""
        out = np.zeros(self.frames, dtype=np.float32)
        for pixel, _ in self.conditions:
            out[pixel] = 1.0
        return out

    def source_offsets(self) -> list[int]:
        """Sorted distinct clip offsets that must be rendered for the known frames."""
        return sorted({src for _, src in self.conditions})


@lru_cache(maxsize=None)
def refinement_patterns(frames: int = 25, temporal_factor: int = 4) -> tuple[ConditionDraw, ...]:
    """Every chunk anchor pattern of the refinement levels of :data:`REFINEMENT_TREES`,
    for each of the plan's :data:`~tempomaster_core.plan.BOUNDARY_MODES`.

    The trees are built with a blueprint of ``frames`` pixel frames and the
    reference's chunk rule (2 and 4 chunks at intervals 2 and 1), so each chunk
    is ``frames`` pixel frames long, the training clip length. Chunk ``c`` of a
    level starts at level frame ``c*P``; its condition ``(pixel, k)`` (frame ``k``
    of the level above, which sits at level frame ``k*ratio``) becomes
    ``(pixel, k*ratio - c*P)`` in clip offsets.

    Returns:
        A tuple of :class:`ConditionDraw` with ``kind == "refine"``, one per
        (boundary mode, tree, level, chunk), in plan order.

    Raises:
        tempomaster_core.plan.PlanError: ``frames`` is not ``temporal_factor*n + 1``.
    """
    out = []
    for boundary in BOUNDARY_MODES:
        for intervals in REFINEMENT_TREES:
            plan = TreePlan(frames, intervals, height=16, width=16, temporal_factor=temporal_factor, boundary=boundary)
            out.extend(_level_patterns(plan, frames, boundary))
    return tuple(out)


def _level_patterns(plan: TreePlan, frames: int, boundary: str) -> list[ConditionDraw]:
    """The chunk patterns of every refinement level of ``plan`` whose chunks are ``frames`` long."""
    out = []
    for level in plan.levels[1:]:
        if level.frames_per_chunk != frames:
            continue  # only chunks of the training length (always true for these trees)
        for chunk in range(level.num_chunks):
            start = chunk * level.frames_per_chunk
            conds = tuple((pixel, src * level.ratio - start) for pixel, src in level.chunk_conditions(chunk))
            where = (plan.frame_intervals, level.index, chunk, boundary)
            out.append(ConditionDraw("refine", level.interval, level.ratio, frames, conds, where))
    return out


def _pick(rng: np.random.Generator, probs: dict):
    keys = list(probs)
    p = np.asarray([probs[k] for k in keys], dtype=np.float64)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def draw_blueprint_pattern(
    rng: np.random.Generator, kind: str, frames: int, interval: int
) -> ConditionDraw:
    """A blueprint-case pattern of ``kind`` (see :data:`BLUEPRINT_KINDS`).

    ``keyframes`` marks ``round(u * frames)`` random frames with ``u ~ U[0, 0.15]``
    (possibly none), plus first and last frame together with probability 1/3.
    ``prefix`` marks the first 1, 5 or 9 frames (clipped to ``frames``).

    Raises:
        ValueError: unknown ``kind``.
    """
    if kind == "t2v":
        known: set[int] = set()
    elif kind == "i2v":
        known = {0}
    elif kind == "first_last":
        known = {0, frames - 1}
    elif kind == "keyframes":
        count = int(round(rng.uniform(0.0, 0.15) * frames))
        known = {int(k) for k in rng.choice(frames, size=count, replace=False)} if count else set()
        if rng.random() < 1 / 3:
            known |= {0, frames - 1}
    elif kind == "prefix":
        length = min(int(rng.choice([1, 5, 9])), frames)
        known = set(range(length))
    else:
        raise ValueError(f"unknown blueprint pattern kind {kind!r}; choose one of {BLUEPRINT_KINDS}")
    return ConditionDraw(kind, int(interval), 1, frames, tuple((k, k) for k in sorted(known)))


def draw_condition(
    rng: np.random.Generator,
    frames: int = 25,
    temporal_factor: int = 4,
    kind_probs: dict | None = None,
) -> ConditionDraw:
    """Draw one training condition pattern.

    Args:
        rng: numpy generator (the only source of randomness: same state, same draw).
        frames: clip length in pixel frames (``temporal_factor*n + 1``).
        temporal_factor: codec temporal factor.
        kind_probs: ``{kind: weight}`` over :data:`BLUEPRINT_KINDS` and ``"refine"``
            (default :data:`DEFAULT_KIND_PROBS`).

    Returns:
        A :class:`ConditionDraw`. Blueprint kinds get an interval from
        :data:`BLUEPRINT_INTERVAL_PROBS`; ``"refine"`` a chunk pattern of
        :func:`refinement_patterns` (ratio 4 with probability :data:`RATIO4_PROB`).

    Raises:
        ValueError: a kind outside the known ones in ``kind_probs``.
    """
    probs = DEFAULT_KIND_PROBS if kind_probs is None else kind_probs
    unknown = set(probs) - set(BLUEPRINT_KINDS) - {"refine"}
    if unknown:
        raise ValueError(f"unknown pattern kinds {sorted(unknown)}; use {BLUEPRINT_KINDS + ('refine',)}")
    kind = _pick(rng, probs)
    if kind != "refine":
        return draw_blueprint_pattern(rng, kind, frames, _pick(rng, BLUEPRINT_INTERVAL_PROBS))
    patterns = refinement_patterns(frames, temporal_factor)
    want = 4 if rng.random() < RATIO4_PROB else 2
    choices = [p for p in patterns if p.ratio == want] or list(patterns)
    return choices[int(rng.integers(len(choices)))]


__all__ = [
    "BLUEPRINT_KINDS", "REFINEMENT_TREES", "DEFAULT_KIND_PROBS", "BLUEPRINT_INTERVAL_PROBS", "RATIO4_PROB",
    "ConditionDraw", "refinement_patterns", "draw_blueprint_pattern", "draw_condition",
]
