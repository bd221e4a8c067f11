"""What a model was trained on: its frame intervals and the length of its training clips.

A model declares these two facts in its settings, under :data:`INTERVALS_KEY` and
:data:`CHUNK_FRAMES_KEY`: a TempoMaster-Tiny bundle in its ``defaults.json`` (written by
``tempomaster_core.training.train_dit`` from the run's own configuration, read through
:func:`tempomaster_core.tiny.builtin.bundle_defaults`), the released 14B in
:func:`tempomaster_core.wan.bundle.reference_settings` (the paper's trees f(6,12,24), f(6,24), f(12,24):
intervals 4, 2, 1, and the reference's 109-frame chunks). A loaded DiT carries them as
:attr:`tempomaster_core.model.TempoMasterDiT.trained_limits`.

The planner uses them: the auto planner keeps every chunk within :attr:`TrainedLimits.chunk_frames`
(:class:`tempomaster_core.autoplan.PlanLimits`), and a level at an interval coarser than
:attr:`TrainedLimits.frame_intervals`, or chunks longer than the clips, are warned about
(:func:`tempomaster_core.autoplan.interval_breaches`, :func:`tempomaster_core.cli.untrained_warnings`,
the Tree Scheduler node).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

from .defaults import TRAINED_CHUNK_FRAMES, TRAINED_FRAME_INTERVALS
from .validation import require_int

INTERVALS_KEY = "trained_frame_intervals"
"""Settings key of the frame intervals a model was trained on (a list of ints, base-fps frames)."""

CHUNK_FRAMES_KEY = "trained_chunk_frames"
"""Settings key of the length of a model's training clips (an int, pixel frames)."""


@dataclass(frozen=True)
class TrainedLimits:
    """The frame intervals and the clip length a model was trained on (default: the released 14B's).

    Attributes:
        frame_intervals: the intervals of its training clips in base-fps frames (one frame every
            ``i`` frames at the base fps: 4 = 6 fps at 24), distinct, stored coarsest first, e.g. ``(4, 2, 1)``.
        chunk_frames: pixel frames of its training clips (109 for the 14B = 28 latent frames at
            temporal factor 4; 25 for TempoMaster-Tiny): the longest chunk it was trained on.

    Raises:
        ValueError: an empty interval list, an interval or a clip length that is not an int >= 1;
            the message names the settings key.
    """

    frame_intervals: tuple[int, ...] = TRAINED_FRAME_INTERVALS
    chunk_frames: int = TRAINED_CHUNK_FRAMES

    def __post_init__(self) -> None:
        values = self.frame_intervals
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise ValueError(f"{INTERVALS_KEY} must be a list of frame intervals such as [4, 2, 1], got {values!r}")
        intervals = {require_int(i, f"a value of {INTERVALS_KEY}", minimum=1, error=ValueError) for i in values}
        if not intervals:
            raise ValueError(f"{INTERVALS_KEY} is empty; give the frame intervals the model was trained on, "
                             "e.g. [4, 2, 1]")
        object.__setattr__(self, "frame_intervals", tuple(sorted(intervals, reverse=True)))
        object.__setattr__(self, "chunk_frames",
                           require_int(self.chunk_frames, CHUNK_FRAMES_KEY, minimum=1, error=ValueError))

    @classmethod
    def from_settings(cls, settings: Optional[Mapping[str, Any]], where: str = "the model's settings"
                      ) -> "TrainedLimits":
        """The limits a model's settings declare; a key they lack (or ``settings`` ``None``) is the released
        model's (:data:`~tempomaster_core.defaults.TRAINED_FRAME_INTERVALS`,
        :data:`~tempomaster_core.defaults.TRAINED_CHUNK_FRAMES`).

        Raises:
            ValueError: a declared value :class:`TrainedLimits` refuses; the message starts with ``where``
                (e.g. the bundle's ``defaults.json``).
        """
        settings = settings or {}
        try:
            return cls(settings.get(INTERVALS_KEY, TRAINED_FRAME_INTERVALS),
                       settings.get(CHUNK_FRAMES_KEY, TRAINED_CHUNK_FRAMES))
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None

    def to_settings(self) -> dict:
        """The two settings entries (plain JSON): ``{INTERVALS_KEY: [4, 2, 1], CHUNK_FRAMES_KEY: 25}``."""
        return {INTERVALS_KEY: list(self.frame_intervals), CHUNK_FRAMES_KEY: self.chunk_frames}

    def describe(self) -> str:
        """``"frame intervals 4, 2, 1, chunks up to 25 frames"`` (pixel frames)."""
        return (f"frame intervals {', '.join(map(str, self.frame_intervals))}, "
                f"chunks up to {self.chunk_frames} frames")


def model_limits(model: Any) -> Optional[TrainedLimits]:
    """What a loaded DiT declares (:attr:`~tempomaster_core.model.TempoMasterDiT.trained_limits`), or ``None``
    when it declares nothing (a model built or loaded without its settings)."""
    limits = getattr(model, "trained_limits", None)
    return limits if isinstance(limits, TrainedLimits) else None


__all__ = ["CHUNK_FRAMES_KEY", "INTERVALS_KEY", "TrainedLimits", "model_limits"]
