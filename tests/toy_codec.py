"""A small deterministic video codec satisfying ``tempomaster_core.protocols.VideoCodec``.

Encode: pixel frame 0 alone, then consecutive groups of ``temporal_factor`` pixel
frames are averaged in time; ``spatial_factor`` x ``spatial_factor`` cells are
averaged in space; the 3 colour channels are projected to ``latent_channels``
with a fixed seeded matrix ``M`` ``[latent_channels, 3]``.
Decode: the pseudo-inverse of ``M`` back to 3 channels, each latent frame
repeated (frame 0 once, then ``temporal_factor`` times) and each cell repeated
spatially, clamped to ``[-1, 1]``. Decoding an encoding therefore recovers the
time/space block averages exactly (for ``latent_channels >= 3``).
"""

from __future__ import annotations

import torch
from einops import rearrange, repeat
import torch.nn.functional as F


class ToyCodec:
    """Deterministic linear codec (see module docstring).

    Args:
        latent_channels: ``C`` (16 like Wan by default).
        temporal_factor: pixel frames per latent frame after the first (4).
        spatial_factor: pixels per latent cell side (8).
        seed: seed of the projection matrix.

    Attributes:
        encode_batches, decode_batches: batch size of every ``encode``/``decode`` call, in order.
    """

    def __init__(self, latent_channels: int = 16, temporal_factor: int = 4, spatial_factor: int = 8, seed: int = 0):
        self.latent_channels = latent_channels
        self.temporal_factor = temporal_factor
        self.spatial_factor = spatial_factor
        gen = torch.Generator().manual_seed(seed)
        self.matrix = torch.randn(latent_channels, 3, generator=gen, dtype=torch.float64)
        self.inverse = torch.linalg.pinv(self.matrix)
        self.encode_batches: list[int] = []
        self.decode_batches: list[int] = []

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """``[B, 3, F, H, W]`` in [-1, 1], ``F = tf*n + 1`` -> float32 ``[B, C, n+1, H/sf, W/sf]``."""
        b, c, f, h, w = video.shape
        tf, sf = self.temporal_factor, self.spatial_factor
        if c != 3 or (f - 1) % tf or h % sf or w % sf:
            raise ValueError(f"ToyCodec.encode: bad video shape {tuple(video.shape)}")
        self.encode_batches.append(b)
        v = video.to(torch.float64)
        first = v[:, :, :1]
        rest = rearrange(v[:, :, 1:], "b c (t k) h w -> b c t k h w", k=tf).mean(dim=3)
        frames = torch.cat([first, rest], dim=2)
        pooled = F.avg_pool3d(frames, kernel_size=(1, sf, sf))
        latents = torch.einsum("lc,bcthw->blthw", self.matrix, pooled)
        return latents.to(torch.float32)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """float ``[B, C, T, h, w]`` -> float32 ``[B, 3, tf*(T-1)+1, h*sf, w*sf]`` in [-1, 1]."""
        b, c, t, h, w = latents.shape
        if c != self.latent_channels:
            raise ValueError(f"ToyCodec.decode: expected {self.latent_channels} channels, got {c}")
        self.decode_batches.append(b)
        rgb = torch.einsum("cl,blthw->bcthw", self.inverse, latents.to(torch.float64))
        tf, sf = self.temporal_factor, self.spatial_factor
        first = rgb[:, :, :1]
        rest = repeat(rgb[:, :, 1:], "b c t h w -> b c (t k) h w", k=tf)
        video = torch.cat([first, rest], dim=2)
        video = repeat(video, "b c f h w -> b c f (h p) (w q)", p=sf, q=sf)
        return video.clamp(-1, 1).to(torch.float32)
