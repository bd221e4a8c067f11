"""Join fade: a continuation segment's new frames start exactly where the video so far ends.

A continuation segment (:mod:`tempomaster_core.continuation`) knows the last frames of the video at every
level and regenerates them (the *overlap*), but only approximately: its last overlap frame differs from the
video's last frame by the segment's own error (a tint, an object drawn a little darker or rounder), and its
new frames continue *its* overlap, not the video. Cutting from the video to the new frames therefore shows
that error as a jump at every join (issue 20; on the built-in model 5x the frame-to-frame change inside a
segment, visible as an object changing colour and shape from one frame to the next).

The fade removes it: with ``e = overlap[-1] - video[-1]`` (every pixel and channel, in 8-bit levels), split
into its smooth part ``e_s`` (a Gaussian blur of sigma :data:`~tempomaster_core.anchor_correction.ERROR_BLUR` x
the frame's shorter side, as the anchor correction's: tints, shading) and its sharp rest ``e - e_s`` (an object's
outline drawn a little elsewhere), new frame ``t`` (0 = the first after the context) becomes
``new[t] - w_n(t) e_s - w_m(t) (e - e_s)`` with ``w_n(t) = max(0, 1 - t / n)``: ``n`` frames of the fade
(:func:`fade_frames` of the ``join_fade`` seconds) for the smooth part, ``m = min(n, SHARP_FADE_SECONDS at the
fps)`` for the sharp part. So the first new frame is the video's last frame plus the segment's own first step
(``video[-1] + (new[0] - overlap[-1])``), a tint hands over slowly, and where the segment draws an object a
few pixels from where the video has it the object moves there within ``m`` frames: faded over as long as the
tint, that difference showed as a ghost outline of the object for the whole fade (seen on contact sheets).
No known frame is touched.

Not in the paper, whose code has no continuation: off (:data:`~tempomaster_core.defaults.JOIN_FADE_SECONDS`)
for models that name no setting of their own; the built-in model names
:data:`~tempomaster_core.defaults.BUILTIN_JOIN_FADE_SECONDS` (measured by ``benchmarks/long_video.py``).
"""

from __future__ import annotations

from typing import Any

import torch

from .anchor_correction import ERROR_BLUR, low_pass
from .defaults import JOIN_FADE_SECONDS
from .validation import require_number

__all__ = ["JOIN_FADE_KEY", "MAX_JOIN_FADE_SECONDS", "SHARP_FADE_SECONDS", "check_join_fade", "fade_frames",
           "fade_join", "fade_weights", "model_default"]

JOIN_FADE_KEY = "join_fade_seconds"
"""Settings key (a bundle's ``defaults.json``) of a model's join fade, seconds."""

MAX_JOIN_FADE_SECONDS = 60.0
"""Longest join fade accepted, seconds (a fade longer than a segment just ends with the segment)."""


SHARP_FADE_SECONDS = 0.125
"""Longest fade of the sharp part of a join error, seconds (3 frames at 24 fps). Chosen on contact sheets of
the built-in model's joins: fading it over the whole second left a ghost outline of a displaced object for that
second; over 1 frame it is a jump one frame later; over 3 frames the object moves to the segment's place quickly
and no outline stays (the frame-difference ratio at the join is the same for all three)."""


def check_join_fade(seconds: Any, name: str = "join_fade") -> float:
    """A join fade length as a float in seconds, ``0 <= seconds <= MAX_JOIN_FADE_SECONDS`` (0 = a plain cut).

    Raises:
        InputError: not a finite number (text such as ``"1.0"`` is read as a number), negative or above
            :data:`MAX_JOIN_FADE_SECONDS`.
    """
    return require_number(seconds, name, minimum=0.0, maximum=MAX_JOIN_FADE_SECONDS, parse_text=True)


def model_default(defaults: dict) -> float:
    """A model's join fade, seconds: its recommended settings' :data:`JOIN_FADE_KEY` (a bundle's ``defaults.json``;
    the built-in model's: :data:`~tempomaster_core.defaults.BUILTIN_JOIN_FADE_SECONDS`), else
    :data:`~tempomaster_core.defaults.JOIN_FADE_SECONDS`.

    Raises:
        InputError: the setting is there but not a valid fade (:func:`check_join_fade`).
    """
    return check_join_fade(defaults.get(JOIN_FADE_KEY, JOIN_FADE_SECONDS), f"defaults.json {JOIN_FADE_KEY}")


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


def fade_join(new: torch.Tensor, overlap_last: torch.Tensor, video_last: torch.Tensor, length: int,
              sharp_length: int | None = None) -> torch.Tensor:
    """A segment's new frames with its join error faded out (see the module doc).

    Args:
        new: the new frames after the context, ``uint8 [F, H, W, 3]`` (after colour matching, if any).
        overlap_last: the segment's own last context frame ``uint8 [H, W, 3]``, in the same colours as ``new``
            (the same colour-match transform).
        video_last: the video's last frame ``uint8 [H, W, 3]`` (the last known context frame).
        length: fade frames of the smooth part (:func:`fade_frames`); 0 returns ``new`` unchanged.
        sharp_length: fade frames of the sharp part (default ``length``; the continuation passes
            ``min(length, fade_frames(SHARP_FADE_SECONDS, fps))``).

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
    error = (overlap_last.to(torch.float32) - video_last.to(torch.float32)).permute(2, 0, 1)  # [3, H, W]
    smooth = low_pass(error, ERROR_BLUR * min(error.shape[-2:]))
    frames = new.shape[0]
    slow = fade_weights(frames, length).view(-1, 1, 1, 1)
    fast = fade_weights(frames, length if sharp_length is None else sharp_length).view(-1, 1, 1, 1)
    correction = (slow * smooth + fast * (error - smooth)).permute(0, 2, 3, 1)  # [F, H, W, 3]
    return (new.to(torch.float32) - correction).round_().clamp_(0, 255).to(torch.uint8)
