"""The Wan 2.1 VAE's latent layout and normalisation, stated once for the core and the ComfyUI adapter.

The DiT works on *normalized* latents: ``normalized = (raw - mean) / std`` per latent channel, with the
statistics of the Wan 2.1 VAE release (the values of the Wan VAE code, of the reference's
``WanVideoVAE`` and of ComfyUI's ``latent_formats.Wan21``). A latent frame has 16 channels; pixel frame 0
has a latent frame of its own and every further latent frame holds 4 pixel frames; a latent cell covers
8 x 8 pixels. Torch only: :mod:`nodes.vae_adapter` imports this without the ``wan`` extra.
"""

from __future__ import annotations

import torch

WAN21_LATENT_MEAN = (
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
    0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
)
"""Per-channel mean of raw Wan 2.1 latents (16 values)."""

WAN21_LATENT_STD = (
    2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
    3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
)
"""Per-channel standard deviation of raw Wan 2.1 latents (16 values)."""

WAN21_LATENT_CHANNELS = 16
"""Channels of a Wan 2.1 latent frame."""

WAN21_TEMPORAL_FACTOR = 4
"""Pixel frames per Wan 2.1 latent frame after the first (``F = 4n + 1`` pixel frames -> ``n + 1`` latent frames)."""

WAN21_SPATIAL_FACTOR = 8
"""Pixels per Wan 2.1 latent cell along height and width."""


def _stats(like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std as float32 ``[1, 16, 1, 1, 1]`` on ``like``'s device."""
    mean = torch.tensor(WAN21_LATENT_MEAN, dtype=torch.float32, device=like.device).view(1, -1, 1, 1, 1)
    std = torch.tensor(WAN21_LATENT_STD, dtype=torch.float32, device=like.device).view(1, -1, 1, 1, 1)
    return mean, std


def normalize(raw: torch.Tensor) -> torch.Tensor:
    """Raw Wan 2.1 latents ``[B, 16, T, h, w]`` -> normalized ``(raw - mean) / std``, float32, same device."""
    mean, std = _stats(raw)
    return (raw.to(torch.float32) - mean) / std


def denormalize(latents: torch.Tensor) -> torch.Tensor:
    """Normalized latents ``[B, 16, T, h, w]`` -> raw ``latents * std + mean``, float32, same device."""
    mean, std = _stats(latents)
    return latents.to(torch.float32) * std + mean


def check_pixels(video: torch.Tensor, temporal_factor: int = WAN21_TEMPORAL_FACTOR,
                 spatial_factor: int = WAN21_SPATIAL_FACTOR) -> None:
    """Raise ``ValueError`` unless ``video`` is a clip batch a Wan-layout VAE encodes:
    ``[B, 3, F, H, W]`` with ``F = temporal_factor*n + 1`` and ``H, W`` multiples of ``spatial_factor``."""
    if video.ndim != 5 or video.shape[1] != 3:
        raise ValueError(f"expected video [B, 3, F, H, W] in [-1, 1], got shape {tuple(video.shape)}")
    f, h, w = video.shape[2:]
    if (f - 1) % temporal_factor or h % spatial_factor or w % spatial_factor:
        raise ValueError(
            f"video of {f} frames at {h}x{w} cannot be encoded: frames must be {temporal_factor}*n+1 and the "
            f"size a multiple of {spatial_factor}"
        )


def check_latents(latents: torch.Tensor, channels: int = WAN21_LATENT_CHANNELS) -> None:
    """Raise ``ValueError`` unless ``latents`` is ``[B, channels, T, h, w]``."""
    if latents.ndim != 5 or latents.shape[1] != channels:
        raise ValueError(f"expected latents [B, {channels}, T, h, w], got shape {tuple(latents.shape)}")


__all__ = ["WAN21_LATENT_CHANNELS", "WAN21_LATENT_MEAN", "WAN21_LATENT_STD", "WAN21_SPATIAL_FACTOR",
           "WAN21_TEMPORAL_FACTOR", "check_latents", "check_pixels", "denormalize", "normalize"]
