"""A model's continuation settings: the seconds of context a segment knows and the new frames it adds.

A model declares them in its settings, under :data:`CONTEXT_SECONDS_KEY` and :data:`NEW_FRAMES_KEY`, next to
what it was trained on (:mod:`tempomaster_core.trained_limits`): a TempoMaster-Tiny bundle in its
``defaults.json`` (:func:`tempomaster_core.tiny.builtin.bundle_defaults`; the built-in model: 1.54 s and 63
frames, :data:`tempomaster_core.tiny.builtin.CONTINUATION_DEFAULTS`, so every segment is its own 100-frame
tree), the released 14B in :func:`tempomaster_core.wan.bundle.reference_settings` (the paper's 5 s and 480
frames, :data:`~tempomaster_core.defaults.CONTEXT_SECONDS`, :data:`~tempomaster_core.defaults.SEGMENT_NEW_FRAMES`).

Readers: the command line's long video (``--seconds``, :func:`tempomaster_core.cli_long.prepare_long`, for the
flags not given), and the Tree Scheduler's continuation proposal (``nodes/plan_limits.py``; a loaded DiT carries
them as :attr:`tempomaster_core.model.TempoMasterDiT.continuation_settings`, set by Load TempoMaster Model).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

from .continuation import context_frame_count
from .defaults import CONTEXT_SECONDS, SEGMENT_NEW_FRAMES
from .validation import require_int, require_number

CONTEXT_SECONDS_KEY = "context_seconds"
"""Settings key of the seconds of context a continuation segment knows (a number > 0)."""

NEW_FRAMES_KEY = "segment_new_frames"
"""Settings key of the new frames a continuation segment adds (an int >= 1, pixel frames at the output fps)."""


@dataclass(frozen=True)
class ContinuationSettings:
    """How a model continues a video, segment by segment (default: the paper's).

    Attributes:
        context_seconds: seconds at the end of the video so far that each segment knows at every level
            (> 0; the paper's 5, the built-in model's 1.54).
        new_frames: pixel frames at the output fps each segment adds after its context (>= 1; the paper's
            480, the built-in model's 63).

    Raises:
        ValueError: a value out of range or of the wrong type; the message names the settings key.
    """

    context_seconds: float = CONTEXT_SECONDS
    new_frames: int = SEGMENT_NEW_FRAMES

    def __post_init__(self) -> None:
        object.__setattr__(self, "context_seconds", require_number(
            self.context_seconds, CONTEXT_SECONDS_KEY, minimum=0.0, exclusive_minimum=True, error=ValueError))
        object.__setattr__(self, "new_frames", require_int(self.new_frames, NEW_FRAMES_KEY, minimum=1,
                                                           error=ValueError))

    @classmethod
    def from_settings(cls, settings: Optional[Mapping[str, Any]], where: str = "the model's settings"
                      ) -> "ContinuationSettings":
        """The settings a model declares; a key they lack (or ``settings`` ``None``) is the paper's.

        Raises:
            ValueError: a declared value :class:`ContinuationSettings` refuses; the message starts with ``where``
                (e.g. the bundle's ``defaults.json``).
        """
        settings = settings or {}
        try:
            return cls(settings.get(CONTEXT_SECONDS_KEY, CONTEXT_SECONDS), settings.get(NEW_FRAMES_KEY,
                                                                                         SEGMENT_NEW_FRAMES))
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None

    def context_frames(self, fps: float) -> int:
        """Pixel frames of the context at the output ``fps`` (37 for 1.54 s at 24 fps), at least 1.

        Raises:
            tempomaster_core.validation.InputError: less than half a frame at ``fps``
                (:func:`~tempomaster_core.continuation.context_frame_count`).
        """
        return context_frame_count(self.context_seconds, fps, CONTEXT_SECONDS_KEY)


def model_continuation(model: Any) -> Optional[ContinuationSettings]:
    """What a loaded DiT declares (:attr:`~tempomaster_core.model.TempoMasterDiT.continuation_settings`), or
    ``None`` when it declares nothing (a model built or loaded without its settings)."""
    settings = getattr(model, "continuation_settings", None)
    return settings if isinstance(settings, ContinuationSettings) else None


__all__ = ["CONTEXT_SECONDS_KEY", "ContinuationSettings", "NEW_FRAMES_KEY", "model_continuation"]
