"""Multi-mask conditioning: the DiT's ``y`` input (paper method section, multi-mask conditioning).

One DiT serves every level. What a level knows is given as pixel frames placed
at their positions in an otherwise zero clip of the chunk's length, VAE-encoded,
plus a per-pixel-frame mask (1 = known frame). The mask of the ``P = tf*(T-1)+1``
pixel frames is packed to ``tf`` channels per latent frame exactly as the
reference (``sequential_ppl.py``): the first pixel frame's mask is repeated
``tf`` times (latent frame 0 holds pixel frame 0 alone), then consecutive groups
of ``tf`` pixel frames form latent frames 1..T-1. Hence channel ``k`` of latent
frame ``t`` is the mask of pixel frame ``0`` for ``t = 0`` and of pixel frame
``tf*(t-1) + 1 + k`` otherwise. ``y = cat(mask [B, tf, T, h, w], latents [B, C, T, h, w])``.

The blueprint uses the same mechanism for user condition frames (I2V: frame 0;
first+last frame; any keyframes). With none (text-to-video) ``y`` is an all-zero
mask plus the encoding of the all-zero clip; the reference code cannot run T2V
(its ``y`` is missing), this is the consistent extension.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import torch
from einops import rearrange, repeat

from .plan import LevelPlan
from .protocols import check_vae_result, codec_device
from .validation import InputError, require_int, resolve_frame_index


def pack_masks(masks: torch.Tensor, temporal_factor: int, latent_size: tuple[int, int]) -> torch.Tensor:
    """Pack per-pixel-frame masks to ``temporal_factor`` channels per latent frame.

    Args:
        masks: ``[B, F]`` with values 0/1, ``F = temporal_factor*(T-1) + 1`` pixel frames.
        temporal_factor: pixel frames per latent frame (4 for Wan) = mask channels.
        latent_size: ``(h, w)`` latent height and width; the mask is broadcast over them.

    Returns:
        float32 ``[B, temporal_factor, T, h, w]``: channel ``k`` of latent frame 0 is
        ``masks[:, 0]``; channel ``k`` of latent frame ``t >= 1`` is
        ``masks[:, temporal_factor*(t-1) + 1 + k]`` (reference packing).

    Raises:
        ValueError: ``masks`` is not 2-D or ``F`` is not ``temporal_factor*n + 1``.
    """
    if masks.dim() != 2:
        raise ValueError(f"masks must be [B, F] (one value per pixel frame), got shape {tuple(masks.shape)}")
    frames = masks.shape[1]
    if frames < 1 or (frames - 1) % temporal_factor:
        raise ValueError(
            f"masks cover {frames} pixel frames; need {temporal_factor}*n+1 frames to pack per latent frame"
        )
    h, w = latent_size
    masks = masks.to(torch.float32)
    padded = torch.cat([repeat(masks[:, :1], "b 1 -> b k", k=temporal_factor), masks[:, 1:]], dim=1)
    packed = rearrange(padded, "b (t k) -> b k t", k=temporal_factor)
    return repeat(packed, "b k t -> b k t h w", h=h, w=w).contiguous()


def place_frames(
    source: torch.Tensor, conditions: Sequence[tuple[int, int]], length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Place condition frames in a zero clip.

    Args:
        source: pixel frames ``[3, N, H, W]`` in ``[-1, 1]`` (e.g. the level above).
        conditions: ``(pixel index in the clip, frame index in source)`` pairs.
        length: clip length in pixel frames.

    Returns:
        ``(clip, mask)``: float32 ``[3, length, H, W]`` (zeros except the placed
        frames) and float32 ``[length]`` (1 at placed frames).

    Raises:
        IndexError: a pixel index outside ``[0, length)`` or a source index outside ``[0, N)``.
    """
    _, n, h, w = source.shape
    clip = torch.zeros(3, length, h, w, dtype=torch.float32)
    mask = torch.zeros(length, dtype=torch.float32)
    for pixel, src in conditions:
        if not 0 <= pixel < length:
            raise IndexError(f"condition pixel index {pixel} outside a clip of {length} frames")
        if not 0 <= src < n:
            raise IndexError(f"condition source frame {src} outside a source of {n} frames")
        clip[:, pixel] = source[:, src].to(torch.float32)
        mask[pixel] = 1.0
    return clip, mask


def refinement_clips(level: LevelPlan, previous_frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Condition clips and masks of every chunk of a refinement level.

    Args:
        level: a refinement :class:`LevelPlan` (``level.index >= 1``).
        previous_frames: the level above's frames ``[3, F_prev, H, W]`` in ``[-1, 1]``,
            exactly ``F_prev = level.num_frames // level.ratio`` frames.

    Returns:
        ``(clips, masks)``: float32 ``[num_chunks, 3, frames_per_chunk, H, W]`` and
        float32 ``[num_chunks, frames_per_chunk]``; the padding frames of the last
        chunk are zero with mask 0 (reference ``preparer_condition_video``).

    Raises:
        ValueError: ``level`` is the blueprint or ``previous_frames`` has the wrong shape,
            or holds NaN/inf (:class:`~tempomaster_core.validation.InputError`).
    """
    if level.is_blueprint:
        raise ValueError("refinement_clips needs a refinement level; the blueprint uses blueprint_clip")
    expected = level.num_frames // level.ratio
    if previous_frames.dim() != 4 or previous_frames.shape[0] != 3 or previous_frames.shape[1] != expected:
        raise ValueError(
            f"previous level frames must be [3, {expected}, H, W] for level {level.index}, "
            f"got shape {tuple(previous_frames.shape)}"
        )
    if not bool(torch.isfinite(previous_frames).all()):
        raise InputError(f"previous level frames must be finite for level {level.index}, got NaN or infinite values")
    clips, masks = [], []
    for c in range(level.num_chunks):
        clip, mask = place_frames(previous_frames, level.chunk_conditions(c), level.frames_per_chunk)
        clips.append(clip)
        masks.append(mask)
    return torch.stack(clips), torch.stack(masks)


def normalize_condition_frames(
    conditions: Optional[Mapping[int, torch.Tensor]], num_frames: int, height: int, width: int
) -> dict[int, torch.Tensor]:
    """Validate user condition frames and resolve negative indices.

    Args:
        conditions: ``{pixel frame index on the blueprint: image [3, H, W] in [-1, 1]}``;
            negative indices count from the end (-1 = last frame). ``None`` or empty = T2V.
        num_frames: blueprint pixel frames.
        height, width: plan pixel size.

    Returns:
        ``{non-negative index: float32 [3, H, W]}`` (CPU).

    Range: checked before any clamping. Values up to 1e-3 outside ``[-1, 1]`` are
    rounding noise and are clamped; anything further out, NaN/inf, and integer dtypes
    (e.g. a ``uint8`` 0..255 image) are refused -- the core never guesses a range.

    Raises:
        IndexError: an index outside ``[-num_frames, num_frames)``.
        ValueError: a key that is not an integer; two keys name the same frame; an image that
            is not a floating ``[3, height, width]`` tensor; values outside ``[-1, 1]`` or not finite
            (ComfyUI IMAGE is ``[0, 1]`` channels-last: use ``x.movedim(-1, 0) * 2 - 1``;
            0..255 pixels: ``x / 127.5 - 1``). Key, range, dtype and NaN/inf errors are
            :class:`~tempomaster_core.validation.InputError`.
    """
    out: dict[int, torch.Tensor] = {}
    for key, image in (conditions or {}).items():
        index = require_int(key, "condition frame index")
        resolved = resolve_frame_index(index, num_frames, "condition frame index", error=IndexError)
        if resolved in out:
            raise ValueError(f"condition frame {index} names frame {resolved} twice")
        if not isinstance(image, torch.Tensor) or image.shape != (3, height, width):
            shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise ValueError(
                f"condition frame {index} must be a tensor [3, {height}, {width}] in [-1, 1], got {shape}; "
                "resize/crop the image to the plan size first"
            )
        if not image.is_floating_point():
            raise InputError(
                f"condition frame {index} must be a float tensor in [-1, 1], got dtype {image.dtype}; "
                "convert 0..255 pixels with x.float() / 127.5 - 1"
            )
        image = image.detach().to("cpu", torch.float32)
        if not torch.isfinite(image).all():
            raise InputError(f"condition frame {index} must have finite values, got NaN or infinite values")
        low, high = float(image.min()), float(image.max())
        if low < -1.0 - 1e-3 or high > 1.0 + 1e-3:
            hint = "convert 0..255 pixels with x / 127.5 - 1" if high > 1.5 else "convert [0, 1] images with x * 2 - 1"
            raise InputError(
                f"condition frame {index} has values in [{low:.3f}, {high:.3f}]; expected [-1, 1] ({hint})"
            )
        out[resolved] = image.clamp(-1.0, 1.0)
    return out


def blueprint_clip(
    level: LevelPlan, conditions: Optional[Mapping[int, torch.Tensor]], height: int, width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Condition clip and mask of the blueprint from user condition frames.

    Args:
        level: the blueprint :class:`LevelPlan` (``levels[0]``).
        conditions: see :func:`normalize_condition_frames` (``None``/empty = T2V).
        height, width: plan pixel size.

    Returns:
        ``(clip, mask)``: float32 ``[1, 3, F, H, W]`` (zeros except the condition
        frames) and float32 ``[1, F]`` with ``F = level.num_frames``.
    """
    frames = normalize_condition_frames(conditions, level.num_frames, height, width)
    clip = torch.zeros(1, 3, level.num_frames, height, width, dtype=torch.float32)
    mask = torch.zeros(1, level.num_frames, dtype=torch.float32)
    for index, image in frames.items():
        clip[0, :, index] = image
        mask[0, index] = 1.0
    return clip, mask


def encode_clips(codec, clips: torch.Tensor, *, batch_size: Optional[int] = None) -> torch.Tensor:
    """VAE-encode condition clips to normalized latents.

    Args:
        codec: a :class:`~tempomaster_core.protocols.VideoCodec`.
        clips: ``[B, 3, F, H, W]`` in ``[-1, 1]``.
        batch_size: encode at most this many clips per call (``None`` = all at
            once, as the reference). The codec is per-sample, so results match.

    Returns:
        float32 CPU ``[B, C, T, H/sf, W/sf]``, ``T = (F-1)//tf + 1``.

    Raises:
        ValueError: the codec returned an unexpected shape.
        NonFiniteError: the codec returned NaN/inf latents (the clips were finite): NaN in
            the VAE weights, or an fp16 VAE overflow.
    """
    b, _, f, h, w = clips.shape
    tf, sf = int(codec.temporal_factor), int(codec.spatial_factor)
    expected = (int(codec.latent_channels), (f - 1) // tf + 1, h // sf, w // sf)
    device = codec_device(codec)
    step = b if batch_size is None else max(int(batch_size), 1)
    parts = []
    for start in range(0, b, step):
        part = codec.encode(clips[start : start + step].to(device))
        if tuple(part.shape[1:]) != expected or part.shape[0] != min(step, b - start):
            raise ValueError(
                f"VAE encode returned shape {tuple(part.shape)} for clips {tuple(clips[start:start + step].shape)}; "
                f"expected [{min(step, b - start)}, {expected[0]}, {expected[1]}, {expected[2]}, {expected[3]}]"
            )
        part = part.detach().to("cpu", torch.float32)
        check_vae_result(part, f"encode of condition clips {start}..{start + part.shape[0] - 1}")
        parts.append(part)
    return torch.cat(parts, dim=0)


def build_condition(
    codec, clips: torch.Tensor, masks: torch.Tensor, *, batch_size: Optional[int] = None
) -> torch.Tensor:
    """Build the DiT condition ``y = cat(packed mask, condition latents)``.

    Args:
        codec: a :class:`~tempomaster_core.protocols.VideoCodec` (temporal factor
            ``tf``, spatial factor ``sf``, ``C`` latent channels).
        clips: ``[B, 3, F, H, W]`` in ``[-1, 1]``, zero except condition frames,
            ``F = tf*(T-1) + 1``.
        masks: ``[B, F]``, 1 at condition frames.
        batch_size: passed to :func:`encode_clips`.

    Returns:
        float32 CPU ``[B, tf + C, T, H/sf, W/sf]``: channels ``0..tf-1`` the packed
        mask (:func:`pack_masks`), then the ``C`` latent channels.

    Raises:
        ValueError: shapes of ``clips``/``masks`` disagree or do not fit the codec.
    """
    if clips.dim() != 5 or clips.shape[1] != 3:
        raise ValueError(f"clips must be [B, 3, F, H, W], got shape {tuple(clips.shape)}")
    b, _, f, h, w = clips.shape
    if tuple(masks.shape) != (b, f):
        raise ValueError(f"masks must be [B, F] = [{b}, {f}] to match clips, got {tuple(masks.shape)}")
    tf, sf = int(codec.temporal_factor), int(codec.spatial_factor)
    if (f - 1) % tf:
        raise ValueError(f"clips have {f} pixel frames; the VAE needs {tf}*n+1")
    if h % sf or w % sf:
        raise ValueError(f"clip size {h}x{w} is not divisible by the VAE spatial factor {sf}")
    latents = encode_clips(codec, clips, batch_size=batch_size)
    mask = pack_masks(masks, tf, (h // sf, w // sf))
    return torch.cat([mask, latents], dim=1)
