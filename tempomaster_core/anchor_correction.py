"""Anchor correction: a refinement chunk's decoded frames made to agree with its anchors.

A refinement level is told the frames of the level above at their true positions (the
*anchors*, pixel ``k * ratio`` shows frame ``k`` of the level above; paper Sec. 3, multi-mask
conditioning), but its decoded chunk reproduces them only approximately: the DiT and the VAE
leave an error on every frame, and because each chunk is denoised from its own noise, that error
changes from one chunk to the next -- a visible step at every chunk seam. The error is
coherent in time inside a chunk: on TempoMaster-Tiny, refinements of ground-truth 12 fps frames
had in-between frames at 31.4 dB against the true 24 fps frames, and 45 dB after this correction
(model card, session 16).

The correction, per chunk: measure the error ``decoded - anchor`` at each anchor, interpolate it
linearly in time between the chunk's anchors (held constant before the first and after the last
anchor of the chunk), and subtract it from every frame of the chunk. Anchors come out exactly as
given; frames between them move by the interpolated error. Only true anchors count: a
``boundary="repeat_anchor"`` chunk-boundary frame that shows the previous anchor instead of its own
instant (:data:`~tempomaster_core.plan.BOUNDARY_MODES`) is corrected like an in-between frame.

This is a post-decode step, not part of the reference (which returns the decoded chunks as they
are); it is off by default (:data:`ANCHOR_CORRECTION`) and the built-in model's ``defaults.json``
turns it on.
"""

from __future__ import annotations

import bisect

import torch

from .plan import LevelPlan

ANCHOR_CORRECTION = False
"""Default of the option everywhere (the reference's behaviour: decoded chunks as they are)."""


def anchor_offsets(level: LevelPlan, chunk: int) -> list[int]:
    """Offsets inside ``chunk`` (pixel frames from the chunk's first frame) of its true anchors.

    An anchor is a condition frame at its own instant: chunk pixel ``offset`` with level pixel
    ``start + offset = k * level.ratio`` for a frame ``k`` of the level above; padding frames are
    not included. Sorted ascending; empty for the blueprint (it has no level above).

    Raises:
        PlanError: ``chunk`` is not a chunk of ``level`` (:meth:`LevelPlan.chunk_range`).
    """
    start, stop = level.chunk_range(chunk)
    if level.is_blueprint:
        return []
    known = {offset for offset, _ in level.chunk_conditions(chunk)}
    return [o for o in sorted(known) if o < stop - start and (start + o) % level.ratio == 0]


def interpolation_weights(frames: int, anchors: list[int]) -> torch.Tensor:
    """float32 ``[frames, len(anchors)]``: row ``t`` holds the weights of the anchors' errors at frame
    ``t`` -- linear between the two anchors around ``t``, all weight on the nearest anchor before
    the first or after the last one. Rows sum to 1.

    Raises:
        ValueError: no anchors, or an anchor outside ``[0, frames)`` or not strictly increasing.
    """
    if not anchors:
        raise ValueError("interpolation_weights needs at least one anchor")
    if any(not 0 <= a < frames for a in anchors) or any(b <= a for a, b in zip(anchors, anchors[1:])):
        raise ValueError(f"anchors must be strictly increasing offsets in [0, {frames}), got {anchors}")
    weights = torch.zeros(frames, len(anchors))
    for t in range(frames):
        j = bisect.bisect_right(anchors, t) - 1  # the last anchor at or before t (-1: none)
        if j < 0 or j == len(anchors) - 1 or anchors[j] == t:
            weights[t, max(j, 0)] = 1.0
            continue
        w = (t - anchors[j]) / (anchors[j + 1] - anchors[j])
        weights[t, j], weights[t, j + 1] = 1.0 - w, w
    return weights


def correct_chunk(frames: torch.Tensor, anchors: list[int], anchor_frames: torch.Tensor) -> torch.Tensor:
    """One chunk's frames with the anchors' error interpolated in time and removed.

    Args:
        frames: decoded chunk ``[3, F, H, W]`` in ``[-1, 1]`` (padding frames excluded).
        anchors: offsets of the true anchors in the chunk (:func:`anchor_offsets`); none = unchanged.
        anchor_frames: ``[3, len(anchors), H, W]`` in ``[-1, 1]``, what the anchors must show.

    Returns:
        float32 ``[3, F, H, W]`` clamped to ``[-1, 1]``; equal to ``anchor_frames`` at the anchors.

    Raises:
        ValueError: ``anchor_frames`` does not match ``frames`` and ``anchors`` in shape
            (plus the errors of :func:`interpolation_weights`).
    """
    if not anchors:
        return frames.float().clamp(-1.0, 1.0)
    expected = (frames.shape[0], len(anchors), *frames.shape[2:])
    if tuple(anchor_frames.shape) != expected:
        raise ValueError(f"anchor_frames must be {list(expected)}, got {list(anchor_frames.shape)}")
    frames = frames.float()
    error = frames[:, anchors] - anchor_frames.to(frames)
    weights = interpolation_weights(frames.shape[1], anchors).to(frames)
    return (frames - torch.einsum("ta,cahw->cthw", weights, error)).clamp(-1.0, 1.0)


def correct_level(frames: torch.Tensor, level: LevelPlan, clips: torch.Tensor) -> torch.Tensor:
    """A whole refinement level's frames corrected chunk by chunk (:func:`correct_chunk`).

    Args:
        frames: the level's joined frames ``[3, level.num_frames, H, W]`` in ``[-1, 1]``.
        level: its :class:`LevelPlan` (a refinement level).
        clips: the chunks' condition clips ``[level.num_chunks, 3, level.frames_per_chunk, H, W]`` in
            ``[-1, 1]`` (:func:`~tempomaster_core.conditioning.refinement_clips`, or a continuation's,
            whose known context frames replace the level above's at their instants); the anchors'
            frames are read from them at :func:`anchor_offsets`.

    Returns:
        float32 ``[3, level.num_frames, H, W]``; every true anchor equals its condition frame.

    Raises:
        ValueError: the blueprint, or ``frames`` / ``clips`` of another shape than the level's.
    """
    if level.is_blueprint:
        raise ValueError("anchor correction applies to refinement levels; the blueprint has no anchors")
    if frames.dim() != 4 or frames.shape[1] != level.num_frames:
        raise ValueError(f"frames must be [3, {level.num_frames}, H, W], got {list(frames.shape)}")
    expected = (level.num_chunks, frames.shape[0], level.frames_per_chunk, *frames.shape[2:])
    if tuple(clips.shape) != expected:
        raise ValueError(f"clips must be {list(expected)}, got {list(clips.shape)}")
    out = frames.float().clone()
    for chunk in range(level.num_chunks):
        start, stop = level.chunk_range(chunk)
        anchors = anchor_offsets(level, chunk)
        out[:, start:stop] = correct_chunk(out[:, start:stop], anchors, clips[chunk][:, anchors])
    return out


__all__ = ["ANCHOR_CORRECTION", "anchor_offsets", "correct_chunk", "correct_level", "interpolation_weights"]
