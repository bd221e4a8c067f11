"""Anchor correction: a refinement chunk's decoded frames made to agree with its anchors.

A refinement level is told the frames of the level above at their true positions (the
*anchors*, pixel ``k * ratio`` shows frame ``k`` of the level above; paper Sec. 3, multi-mask
conditioning), but its decoded chunk reproduces them only approximately: the DiT and the VAE
leave an error on every frame, and because each chunk is denoised from its own noise, that error
changes from one chunk to the next -- a tint step at every chunk seam. On TempoMaster-Tiny the
error is coherent in time inside a chunk and follows the chunk's noise (model card, session 16).

The correction, per chunk: measure the error ``decoded - anchor`` at each anchor, keep its low
spatial frequencies (a Gaussian blur of sigma :data:`ERROR_BLUR` x the frame's shorter side:
tints, shading, smooth colour errors), interpolate it linearly in time between the chunk's
anchors (held constant before the first and after the last anchor of the chunk), and subtract it
from every frame of the chunk. The sharp part of the error is left alone on purpose: where the
chunk draws an object somewhere else than its anchor does, removing it would draw a ghost of the
object on the frames in between (measured: with the unblurred error, fewer videos free of objects
popping in and out). Only true anchors count: a ``boundary="repeat_anchor"`` chunk-boundary frame
that shows the previous anchor instead of its own instant (:data:`~tempomaster_core.plan.BOUNDARY_MODES`)
is corrected like an in-between frame.

This is a post-decode step, not part of the reference (which returns the decoded chunks as they
are); it is off by default (:data:`ANCHOR_CORRECTION`) and the built-in model's ``defaults.json``
turns it on.
"""

from __future__ import annotations

import bisect
import math

import torch
import torch.nn.functional as F

from .plan import LevelPlan
from .validation import require_flag

ANCHOR_CORRECTION = False
"""Default of the option everywhere (the reference's behaviour: decoded chunks as they are)."""

ERROR_BLUR = 1.0 / 8.0
"""Gaussian sigma of the error's spatial low-pass, as a fraction of the frame's shorter side (8 px at 64 x 64,
60 px at 832 x 480). Chosen on TempoMaster-Tiny's 24 tuning scenes among 1/32, 1/16, 1/8 and 1/4 (seam ratio
3.0 / 3.1 / 3.2 / 3.3, videos without pops 42 / 46 / 46 / 46 %, median largest single-object step 1.9 / 1.5 / 1.3
/ 1.3 px; unblurred: 3.1, 38 %, 2.5 px; no correction: 4.8, 46 %, 1.3 px): the largest blur that keeps most of the
seam gain. An object drawn 30 px away from its anchor's (64 x 64 frame, 8 px object) leaves a ghost of 14 % of
its contrast (unblurred: 100 %, a full copy)."""


def model_default(defaults: dict) -> bool:
    """Whether a model runs with anchor correction: its recommended settings' ``anchor_correction`` (a bundle's
    ``defaults.json``; the built-in model's says ``true``), else :data:`ANCHOR_CORRECTION`.

    Raises:
        InputError: the setting is there but not ``true``/``false``.
    """
    return require_flag(defaults.get("anchor_correction", ANCHOR_CORRECTION), "defaults.json anchor_correction")


def low_pass(error: torch.Tensor, sigma: float) -> torch.Tensor:
    """``error`` ``[..., H, W]`` blurred over its last two axes by a Gaussian of ``sigma`` pixels
    (separable, truncated at 3 sigma, edges replicated); ``sigma <= 0`` returns it unchanged.
    The mean of a constant error is kept exactly."""
    if sigma <= 0:
        return error
    radius = max(1, int(math.ceil(3.0 * sigma)))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32, device=error.device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(error.dtype)
    shape = error.shape
    x = error.reshape(-1, 1, *shape[-2:])
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
    return x.reshape(shape)


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


def correct_chunk(frames: torch.Tensor, anchors: list[int], anchor_frames: torch.Tensor,
                  blur: float = ERROR_BLUR) -> torch.Tensor:
    """One chunk's frames with the low spatial frequencies of the anchors' error interpolated in time and removed.

    Args:
        frames: decoded chunk ``[3, F, H, W]`` in ``[-1, 1]`` (padding frames excluded).
        anchors: offsets of the true anchors in the chunk (:func:`anchor_offsets`); none = unchanged.
        anchor_frames: ``[3, len(anchors), H, W]`` in ``[-1, 1]``, what the anchors must show.
        blur: sigma of the error's low-pass as a fraction of ``min(H, W)`` (:data:`ERROR_BLUR`; 0 = the
            whole error, so the anchors come out exactly as given).

    Returns:
        float32 ``[3, F, H, W]`` clamped to ``[-1, 1]``.

    Raises:
        ValueError: ``anchor_frames`` does not match ``frames`` and ``anchors`` in shape, or ``blur < 0``
            (plus the errors of :func:`interpolation_weights`).
    """
    if blur < 0:
        raise ValueError(f"blur must be >= 0 (a fraction of the frame's shorter side), got {blur}")
    if not anchors:
        return frames.float().clamp(-1.0, 1.0)
    expected = (frames.shape[0], len(anchors), *frames.shape[2:])
    if tuple(anchor_frames.shape) != expected:
        raise ValueError(f"anchor_frames must be {list(expected)}, got {list(anchor_frames.shape)}")
    frames = frames.float()
    error = low_pass(frames[:, anchors] - anchor_frames.to(frames), blur * min(frames.shape[-2:]))
    weights = interpolation_weights(frames.shape[1], anchors).to(frames)
    return (frames - torch.einsum("ta,cahw->cthw", weights, error)).clamp(-1.0, 1.0)


def correct_level(frames: torch.Tensor, level: LevelPlan, clips: torch.Tensor,
                  blur: float = ERROR_BLUR) -> torch.Tensor:
    """A whole refinement level's frames corrected chunk by chunk (:func:`correct_chunk`).

    Args:
        frames: the level's joined frames ``[3, level.num_frames, H, W]`` in ``[-1, 1]``.
        level: its :class:`LevelPlan` (a refinement level).
        clips: the chunks' condition clips ``[level.num_chunks, 3, level.frames_per_chunk, H, W]`` in
            ``[-1, 1]`` (:func:`~tempomaster_core.conditioning.refinement_clips`, or a continuation's,
            whose known context frames replace the level above's at their instants); the anchors'
            frames are read from them at :func:`anchor_offsets`.
        blur: as :func:`correct_chunk`.

    Returns:
        float32 ``[3, level.num_frames, H, W]``.

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
        out[:, start:stop] = correct_chunk(out[:, start:stop], anchors, clips[chunk][:, anchors], blur)
    return out


__all__ = ["ANCHOR_CORRECTION", "ERROR_BLUR", "anchor_offsets", "correct_chunk", "correct_level",
           "interpolation_weights", "low_pass", "model_default"]
