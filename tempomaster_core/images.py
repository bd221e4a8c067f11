"""Image preparation for condition frames: input check, size choice, resize and centre crop (torch only).

No torchvision: resizing is ``torch.nn.functional.interpolate`` (bilinear with
antialias, so downscaling a large photo does not alias), cropping is slicing.

Input range (checked by :func:`check_image_batch` *before* any resampling or
clamping, so a wrong range is reported instead of silently clamped away):

- float images must be in ``[0, 1]`` (ComfyUI IMAGE). Values up to
  :data:`IMAGE_RANGE_TOLERANCE` outside are rounding noise and are clamped;
- ``uint8`` images are unambiguous 8-bit pixels: they are converted with
  ``x / 255`` and a ``UserWarning`` says so;
- float values above 1 (e.g. a 0..255 float image), negative values (e.g. a
  ``[-1, 1]`` image), NaN/inf, other dtypes and empty (0-pixel) images are
  refused with :class:`~tempomaster_core.validation.InputError` (a
  ``ValueError``) saying how to convert.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange

from .validation import InputError

IMAGE_RANGE_TOLERANCE = 1e-3
"""How far outside ``[0, 1]`` a float image may stray (rounding noise) before it is refused."""


def check_image_batch(images: Any, name: str = "images") -> torch.Tensor:
    """Check a ComfyUI IMAGE batch before any resampling; return it as float32 in ``[0, 1]``.

    Args:
        images: ``[N, H, W, 3]`` (or 4 channels: alpha, ignored by the range check), float in
            ``[0, 1]`` or ``uint8`` in ``0..255``.
        name: used in messages.

    Returns:
        float32 ``[N, H, W, C]`` in ``[0, 1]``, same device; ``uint8`` input divided by 255
        (with a ``UserWarning``), values within :data:`IMAGE_RANGE_TOLERANCE` outside
        ``[0, 1]`` clamped.

    Raises:
        InputError (a ValueError): not a tensor; not ``[N, H, W, 3|4]``; an empty batch or a
            0-pixel image; a dtype other than float or ``uint8``; NaN/inf values; values
            above ``1 + tolerance`` (a 0..255 float image: divide by 255) or below
            ``-tolerance`` (a ``[-1, 1]`` image: use ``(x + 1) / 2``).
    """
    if not isinstance(images, torch.Tensor):
        raise InputError(f"{name} must be a ComfyUI IMAGE tensor [N, H, W, 3] in [0, 1], got {type(images).__name__}")
    if images.ndim != 4 or images.shape[-1] not in (3, 4):
        raise InputError(
            f"{name} must be a ComfyUI IMAGE [N, H, W, 3] in [0, 1], got shape {tuple(images.shape)}"
        )
    n, h, w, _ = images.shape
    if n == 0 or h == 0 or w == 0:
        raise InputError(f"{name} must hold at least one image of at least 1x1 pixels, got shape {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        warnings.warn(
            f"{name}: uint8 image converted to [0, 1] with x / 255 (ComfyUI IMAGE is float in [0, 1])",
            UserWarning, stacklevel=2,
        )
        return images.to(torch.float32) / 255.0
    if not images.is_floating_point():
        raise InputError(
            f"{name} must be float in [0, 1] (or uint8 0..255), got dtype {images.dtype}; "
            "convert with x.float() / 255 for 8-bit values"
        )
    x = images.to(torch.float32)
    rgb = x[..., :3]
    if not bool(torch.isfinite(rgb).all()):
        bad = int((~torch.isfinite(rgb)).sum())
        raise InputError(f"{name} must have finite values, got {bad} NaN or infinite value(s)")
    low, high = float(rgb.min()), float(rgb.max())
    if high > 1.0 + IMAGE_RANGE_TOLERANCE:
        hint = "it looks like a 0..255 image: divide it by 255 first" if high <= 255.0 + IMAGE_RANGE_TOLERANCE \
            else "expected a ComfyUI IMAGE in [0, 1]"
        raise InputError(f"{name} must be in [0, 1], got values up to {high:g}; {hint}")
    if low < -IMAGE_RANGE_TOLERANCE:
        hint = "it looks like a [-1, 1] image: convert it with (x + 1) / 2 first" if low >= -1.0 - IMAGE_RANGE_TOLERANCE \
            else "expected a ComfyUI IMAGE in [0, 1]"
        raise InputError(f"{name} must be in [0, 1], got values down to {low:g}; {hint}")
    return x.clamp(0.0, 1.0)


def area_preserving_size(image_height: int, image_width: int, area_height: int, area_width: int,
                         multiple: int = 16) -> tuple[int, int]:
    """Size with the area of ``area_height x area_width`` and the aspect of the image.

    The reference (``SequentialPipeline.__call__``) does this with the first
    condition image: ``ratio = h/w``, ``new_w = sqrt(area/ratio)``,
    ``new_h = sqrt(area*ratio)``, each side rounded to the nearest multiple of
    16. E.g. a 1080x1920 (16:9) image with the default 480x832 area gives
    ``(480, 848)``.

    Args:
        image_height, image_width: size of the first condition image in pixels.
        area_height, area_width: the plan's size whose area is kept.
        multiple: granularity of each side (16 = VAE spatial factor 8 x patch 2).

    Returns:
        ``(height, width)``, both multiples of ``multiple`` and at least ``multiple``.

    Raises:
        ValueError: a non-positive size.
    """
    if min(image_height, image_width, area_height, area_width, multiple) <= 0:
        raise ValueError(
            f"sizes must be positive, got image {image_height}x{image_width}, "
            f"area {area_height}x{area_width}, multiple {multiple}"
        )
    area = area_height * area_width
    ratio = image_height / image_width
    new_w = math.sqrt(area / ratio)
    new_h = math.sqrt(area * ratio)
    height = max(multiple, int(round(new_h / multiple)) * multiple)
    width = max(multiple, int(round(new_w / multiple)) * multiple)
    return height, width


def resize_center_crop(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Scale images to cover ``height x width`` (aspect kept), then crop the centre.

    Args:
        images: ComfyUI IMAGE, float ``[N, H, W, 3]`` in ``[0, 1]`` (an alpha
            channel, if present, is dropped; ``uint8`` 0..255 is converted with a
            warning, see :func:`check_image_batch`).
        height, width: target size in pixels.

    Returns:
        float32 ``[N, 3, height, width]`` in ``[-1, 1]`` (the core's pixel range).

    Behaviour: the input is checked first (:func:`check_image_batch`: range, dtype,
    NaN/inf, empty images); scale = ``max(width/W, height/H)`` (the reference's rule),
    resized with bilinear + antialias, then the centre ``height x width`` window is
    kept (offset ``round((size - target) / 2)``, like torchvision's ``center_crop``).
    Only the resampling's own rounding is clamped to ``[-1, 1]``.

    Raises:
        InputError (a ValueError): see :func:`check_image_batch`; a non-positive target.
    """
    if height <= 0 or width <= 0:
        raise InputError(f"target size must be positive, got {height}x{width}")
    images = check_image_batch(images)
    x = rearrange(images[..., :3], "n h w c -> n c h w")
    src_h, src_w = x.shape[-2:]
    scale = max(width / src_w, height / src_h)
    new_h = max(height, int(round(src_h * scale)))
    new_w = max(width, int(round(src_w * scale)))
    if (new_h, new_w) != (src_h, src_w):
        antialias = new_h < src_h or new_w < src_w
        x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=antialias)
    top = int(round((new_h - height) / 2.0))
    left = int(round((new_w - width) / 2.0))
    x = x[:, :, top:top + height, left:left + width]
    return (x * 2.0 - 1.0).clamp(-1.0, 1.0).contiguous()
