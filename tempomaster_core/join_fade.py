"""Join fade: a continuation segment's new frames start exactly where the video so far ends.

A continuation segment (:mod:`tempomaster_core.continuation`) knows the last frames of the video at every
level and regenerates them (the *overlap*), but only approximately: its last overlap frame differs from the
video's last frame by the segment's own error (a tint, an object drawn a little darker or rounder), and its
new frames continue *its* overlap, not the video. Cutting from the video to the new frames therefore shows
that error as a jump at every join (issue 20; on the built-in model 5x the frame-to-frame change inside a
segment, visible as an object changing colour and shape from one frame to the next).

The fade removes it: with ``e = overlap[-1] - video[-1]`` (every pixel and channel, in 8-bit levels), new
frame ``t`` (0 = the first after the context) becomes ``new[t] - w(t) * e`` with ``w(t) = 1 - t / n``
(``n`` = :func:`fade_frames`; ``w = 0`` from frame ``n`` on). So the first new frame is the video's last
frame plus the segment's own first step (``video[-1] + (new[0] - overlap[-1])``), and the segment's own
rendering takes over linearly within ``n`` frames -- a cross-fade of the difference, the way context-window
samplers blend overlapping windows, without touching a known frame. Where the segment draws an object a
few pixels from where the video has it, the fade moves it there within the ``n`` frames.

Not in the paper, whose code has no continuation: off (:data:`~tempomaster_core.defaults.JOIN_FADE_SECONDS`)
for models that name no setting of their own; the built-in model names
:data:`~tempomaster_core.defaults.BUILTIN_JOIN_FADE_SECONDS` (measured by ``benchmarks/long_video.py``).
"""

from __future__ import annotations

from typing import Any

import torch

from .validation import require_number

__all__ = ["JOIN_FADE_KEY", "MAX_JOIN_FADE_SECONDS", "check_join_fade", "fade_frames", "fade_join", "fade_weights"]

JOIN_FADE_KEY = "join_fade_seconds"
"""Settings key (a bundle's ``defaults.json``) of a model's join fade, seconds."""

MAX_JOIN_FADE_SECONDS = 60.0
"""Longest join fade accepted, seconds (a fade longer than a segment just ends with the segment)."""


def check_join_fade(seconds: Any, name: str = "join_fade") -> float:
    """A join fade length as a float in seconds, ``0 <= seconds <= MAX_JOIN_FADE_SECONDS`` (0 = a plain cut).

    Raises:
        InputError: not a finite number (text such as ``"1.0"`` is read as a number), negative or above
            :data:`MAX_JOIN_FADE_SECONDS`.
    """
    return require_number(seconds, name, minimum=0.0, maximum=MAX_JOIN_FADE_SECONDS, parse_text=True)


def fade_frames(seconds: float, fps: float) -> int:
    """Frames of a fade of ``seconds`` at ``fps`` (nearest frame; 0 = no fade, a positive length at least 1)."""
    if seconds <= 0:
        return 0
    return max(1, round(float(seconds) * float(fps)))


def fade_weights(frames: int, length: int) -> torch.Tensor:
    """float32 ``[frames]``: ``1 - t / length`` for ``t < length``, then 0 (all 0 when ``length`` is 0)."""
    if length <= 0:
        return torch.zeros(frames)
    return (1.0 - torch.arange(frames, dtype=torch.float32) / length).clamp_(min=0.0)


def fade_join(new: torch.Tensor, overlap_last: torch.Tensor, video_last: torch.Tensor, length: int) -> torch.Tensor:
    """A segment's new frames with its join error faded out over ``length`` frames (see the module doc).

    Args:
        new: the new frames after the context, ``uint8 [F, H, W, 3]`` (after colour matching, if any).
        overlap_last: the segment's own last context frame ``uint8 [H, W, 3]``, in the same colours as ``new``
            (the same colour-match transform).
        video_last: the video's last frame ``uint8 [H, W, 3]`` (the last known context frame).
        length: fade frames (:func:`fade_frames`); 0 returns ``new`` unchanged.

    Returns:
        ``uint8 [F, H, W, 3]`` (rounded, clipped to 0..255).

    Raises:
        ValueError: the frames do not share one ``H x W x 3`` size.
    """
    if length <= 0 or new.shape[0] == 0:
        return new
    if overlap_last.shape != new.shape[1:] or video_last.shape != new.shape[1:]:
        raise ValueError(f"overlap_last {list(overlap_last.shape)} and video_last {list(video_last.shape)} must be "
                         f"one frame of the new frames' size {list(new.shape[1:])}")
    error = overlap_last.to(torch.float32) - video_last.to(torch.float32)
    weights = fade_weights(new.shape[0], length).view(-1, 1, 1, 1)
    return (new.to(torch.float32) - weights * error).round_().clamp_(0, 255).to(torch.uint8)
