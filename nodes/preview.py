"""Latent -> RGB step previews (a fixed linear projection, no VAE decode).

A preview must cost next to nothing per step, so it projects the normalized
latents of the first chunk with a fixed matrix instead of decoding them:

- when the codec provides ``latent_rgb_factors`` ``[C][3]`` (and optionally
  ``latent_rgb_factors_bias`` ``[3]``) they are used; the Wan 2.1 adapter takes
  them from ComfyUI's ``latent_formats.Wan21``, the same projection ComfyUI's
  own "latent2rgb" previews use;
- otherwise a generic projection averages three interleaved channel groups
  (channels ``0,3,6,…`` -> R, ``1,4,7,…`` -> G, ``2,5,8,…`` -> B). It shows layout
  and motion, not true colours.

Up to four latent frames, evenly spaced in time, are laid side by side so the
preview shows the clip's motion.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
from einops import rearrange
from PIL import Image


def generic_rgb_factors(channels: int) -> torch.Tensor:
    """Generic ``[channels, 3]`` projection: channel ``c`` feeds colour ``c % 3``, averaged.

    Raises:
        ValueError: ``channels < 1``.
    """
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    factors = torch.zeros(channels, 3)
    for c in range(channels):
        factors[c, c % 3] = 1.0
    counts = factors.sum(dim=0).clamp(min=1.0)
    return factors / counts


def rgb_projection(codec: Any, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(factors [channels, 3], bias [3])`` for ``codec``'s latents (see module doc)."""
    factors = getattr(codec, "latent_rgb_factors", None) if codec is not None else None
    if factors is not None:
        matrix = torch.as_tensor(factors, dtype=torch.float32)
        if tuple(matrix.shape) == (channels, 3):
            bias = getattr(codec, "latent_rgb_factors_bias", None)
            bias_t = torch.as_tensor(bias, dtype=torch.float32) if bias is not None else torch.zeros(3)
            return matrix, bias_t
    return generic_rgb_factors(channels), torch.zeros(3)


def latents_to_preview(latents: torch.Tensor, factors: torch.Tensor, bias: Optional[torch.Tensor] = None,
                       max_frames: int = 4, min_height: int = 64) -> Image.Image:
    """Preview image of one chunk's latents.

    Args:
        latents: float ``[C, T, h, w]`` (normalized latents of the first chunk).
        factors: ``[C, 3]`` projection; ``bias``: ``[3]`` (default zeros).
        max_frames: latent frames shown side by side (evenly spaced, first and last included).
        min_height: small latents are enlarged (nearest neighbour, integer factor)
            to at least this height.

    Returns:
        RGB ``PIL.Image`` of size ``(k*w*s, h*s)`` for ``k`` frames and scale ``s``;
        projected values in ``[-1, 1]`` map to 0..255 (clamped).

    Raises:
        ValueError: ``latents`` is not 4-D or its channels do not match ``factors``.
    """
    if latents.ndim != 4 or latents.shape[0] != factors.shape[0]:
        raise ValueError(
            f"expected latents [C, T, h, w] with C={factors.shape[0]}, got shape {tuple(latents.shape)}"
        )
    t = latents.shape[1]
    count = max(1, min(max_frames, t))
    index = torch.linspace(0, t - 1, count).round().long().unique()
    x = latents.detach()[:, index].to(device="cpu", dtype=torch.float32)
    if bias is None:
        bias = torch.zeros(3)
    rgb = torch.einsum("cthw,ck->thwk", x, factors.to(torch.float32)) + bias.to(torch.float32)
    strip = rearrange(rgb, "t h w k -> h (t w) k")
    pixels = (((strip + 1.0) * 0.5).clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).numpy()
    scale = max(1, -(-min_height // max(1, pixels.shape[0])))
    if scale > 1:
        pixels = np.repeat(np.repeat(pixels, scale, axis=0), scale, axis=1)
    return Image.fromarray(np.ascontiguousarray(pixels))
