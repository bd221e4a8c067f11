"""Image preparation for condition frames: size choice, resize and centre crop (torch only).

No torchvision: resizing is ``torch.nn.functional.interpolate`` (bilinear with
antialias, so downscaling a large photo does not alias), cropping is slicing.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange


def area_preserving_size(image_height: int, image_width: int, area_height: int, area_width: int,
                         multiple: int = 16) -> tuple[int, int]:
    """Size with the area of ``area_height x area_width`` and the aspect of the image.

    The reference (``SequentialPipeline.__call__``) does this with the first
    reference image: ``ratio = h/w``, ``new_w = sqrt(area/ratio)``,
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
            channel, if present, is dropped).
        height, width: target size in pixels.

    Returns:
        float32 ``[N, 3, height, width]`` in ``[-1, 1]`` (the core's pixel range).

    Behaviour: scale = ``max(width/W, height/H)`` (the reference's rule), resized
    with bilinear + antialias, then the centre ``height x width`` window is kept
    (offset ``round((size - target) / 2)``, like torchvision's ``center_crop``).

    Raises:
        ValueError: not a ``[N, H, W, C>=3]`` tensor, or a non-positive target.
    """
    if images.ndim != 4 or images.shape[-1] not in (3, 4):
        raise ValueError(
            f"expected a ComfyUI IMAGE [N, H, W, 3] in [0, 1], got shape {tuple(images.shape)}"
        )
    if height <= 0 or width <= 0:
        raise ValueError(f"target size must be positive, got {height}x{width}")
    x = rearrange(images[..., :3].to(torch.float32), "n h w c -> n c h w")
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
