"""ComfyUI ``VAE`` -> the core's video codec (``tempomaster_core.protocols.VideoCodec``).

ComfyUI's Wan 2.1 VAE speaks ComfyUI's layouts:

- ``encode(pixels [F, H, W, 3] in 0..1)`` -> **raw** latents
  ``[1, 16, (F-1)//4+1, H/8, W/8]`` (a 5-D batch is not safe: ComfyUI crops every
  axis but the last to a multiple of 8, the frame axis included);
- ``decode(raw latents [B, 16, T, h, w])`` -> ``[B, 4*(T-1)+1, H, W, 3]`` in 0..1;
- ``encode_tiled`` / ``decode_tiled`` do the same by tiles (less memory).

The core wants ``[B, 3, F, H, W]`` in ``[-1, 1]`` and *normalized* latents
(``(raw - mean) / std`` per channel, Wan 2.1 statistics:
:mod:`tempomaster_core.wan.latents`). :class:`ComfyVAECodec`
converts both ways. :func:`as_codec` is what the sampler nodes call: an object
that already satisfies the core protocol (e.g. a built-in tiny codec offered
through a VAE socket) is passed through unchanged.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, Optional

import torch
from einops import rearrange

from tempomaster_core.wan import latents as wan_latents
from tempomaster_core.wan.latents import WAN21_LATENT_CHANNELS, WAN21_SPATIAL_FACTOR, WAN21_TEMPORAL_FACTOR

log = logging.getLogger("TempoMaster")


_CODEC_ATTRS = ("latent_channels", "temporal_factor", "spatial_factor", "encode", "decode")


CODEC_HOLDER_ATTR = "tempomaster_codec"
"""Attribute of a ``VAE``-socket object that holds a core codec for the TempoMaster nodes only
(:class:`nodes.builtin_nodes.TinyVAE`); :func:`as_codec` unwraps it."""


def is_core_codec(obj: Any) -> bool:
    """True when ``obj`` already satisfies the core codec protocol
    (``latent_channels``, ``temporal_factor``, ``spatial_factor``, ``encode``, ``decode``)."""
    return all(hasattr(obj, name) for name in _CODEC_ATTRS)


def _looks_like_comfy_vae(obj: Any) -> bool:
    return all(hasattr(obj, name) for name in ("encode", "decode", "latent_channels"))


class ComfyVAECodec:
    """A ComfyUI Wan 2.1 ``VAE`` seen as a core codec (normalized latents, [-1, 1] pixels).

    Args:
        vae: ComfyUI ``comfy.sd.VAE`` holding the Wan 2.1 VAE (``wan_2.1_vae.safetensors``).
        tiled: use ``encode_tiled``/``decode_tiled`` (less memory, slower, may show
            faint tile seams).
        tile_size, tile_overlap: spatial tile and overlap in pixels (ComfyUI's
            VAE Decode (Tiled) defaults: 512 / 64).
        temporal_size, temporal_overlap: temporal tile and overlap in pixel frames
            (64 / 8).

    Attributes:
        latent_channels (16), temporal_factor (4), spatial_factor (8): read from the VAE.
        latent_rgb_factors: ``[16][3]`` Latent->RGB preview projection of normalized
            Wan 2.1 latents, taken from ComfyUI's ``latent_formats.Wan21`` when
            available (``None`` otherwise).

    Raises:
        ValueError: the VAE is not a Wan 2.1-shaped video VAE (latent channels 16,
            temporal factor 4, spatial factor 8); the message says which file to load.
    """

    def __init__(self, vae: Any, *, tiled: bool = False, tile_size: int = 512, tile_overlap: int = 64,
                 temporal_size: int = 64, temporal_overlap: int = 8):
        self.vae = vae
        self.tiled = bool(tiled)
        self.tile_size = int(tile_size)
        self.tile_overlap = int(tile_overlap)
        self.temporal_size = int(temporal_size)
        self.temporal_overlap = int(temporal_overlap)
        self.latent_channels = int(getattr(vae, "latent_channels", 0))
        self.temporal_factor = self._vae_temporal_factor(vae)
        self.spatial_factor = self._vae_spatial_factor(vae)
        found = (self.latent_channels, self.temporal_factor, self.spatial_factor)
        wanted = (WAN21_LATENT_CHANNELS, WAN21_TEMPORAL_FACTOR, WAN21_SPATIAL_FACTOR)
        if getattr(vae, "latent_dim", 3) != 3 or found != wanted:
            raise ValueError(
                "this VAE is not the Wan 2.1 video VAE TempoMaster needs: it has "
                f"{self.latent_channels} latent channels, temporal factor {self.temporal_factor} and "
                f"spatial factor {self.spatial_factor} (Wan 2.1: 16, 4, 8). Load wan_2.1_vae.safetensors "
                "from models/vae/ with the Load VAE node (the Wan 2.2 VAE has 48 channels and does not fit)."
            )

    @staticmethod
    def _vae_temporal_factor(vae: Any) -> int:
        fn = getattr(vae, "temporal_compression_decode", None)
        value = fn() if callable(fn) else None
        return int(value) if value else 1

    @staticmethod
    def _vae_spatial_factor(vae: Any) -> int:
        fn = getattr(vae, "spacial_compression_encode", None)
        value = fn() if callable(fn) else None
        return int(value) if value else 0

    @staticmethod
    def _wan21_format() -> Optional[Any]:
        """ComfyUI's ``comfy.latent_formats.Wan21()``, or ``None`` outside ComfyUI."""
        try:
            formats = importlib.import_module("comfy.latent_formats")
        except ImportError:
            return None
        return formats.Wan21()

    @property
    def latent_rgb_factors(self) -> Optional[list]:
        """ComfyUI's Wan 2.1 latent->RGB preview factors ``[16][3]``, or ``None`` outside ComfyUI."""
        fmt = self._wan21_format()
        return None if fmt is None else fmt.latent_rgb_factors

    @property
    def latent_rgb_factors_bias(self) -> Optional[list]:
        """Bias ``[3]`` of :attr:`latent_rgb_factors`, or ``None``."""
        return getattr(self._wan21_format(), "latent_rgb_factors_bias", None)

    def normalize(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw Wan 2.1 latents ``[B, 16, T, h, w]`` -> normalized ``(raw - mean) / std`` (float32)."""
        return wan_latents.normalize(raw)

    def denormalize(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalized latents ``[B, 16, T, h, w]`` -> raw ``latents * std + mean`` (float32)."""
        return wan_latents.denormalize(latents)

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """Pixels -> normalized latents.

        Args:
            video: float ``[B, 3, F, H, W]`` in ``[-1, 1]``, ``F = 4n+1``, ``H, W``
                multiples of 8.

        Returns:
            float32 ``[B, 16, (F-1)//4+1, H/8, W/8]`` on the CPU, normalized.

        Raises:
            ValueError: wrong shape, or the VAE returned an unexpected latent shape.
        """
        tf, sf = self.temporal_factor, self.spatial_factor
        wan_latents.check_pixels(video, tf, sf)
        b, _, f, h, w = video.shape
        pixels = rearrange(((video.to(torch.float32) + 1.0) * 0.5).clamp(0.0, 1.0), "b c f h w -> b f h w c")
        # One clip [F, H, W, 3] per call: ComfyUI's VAE.encode crops every axis of
        # pixels.shape[1:-1] to a multiple of 8, which for a [B, F, H, W, 3] batch
        # would include the frame axis (109 -> 104 frames).
        encode = self._encode_tiled_one if self.tiled else self.vae.encode
        raw = torch.cat([encode(pixels[i]).to(torch.float32) for i in range(b)], dim=0)
        expected = (b, self.latent_channels, (f - 1) // tf + 1, h // sf, w // sf)
        if tuple(raw.shape) != expected:
            raise ValueError(f"the VAE returned latents of shape {tuple(raw.shape)}, expected {expected}")
        return self.normalize(raw.cpu())

    def _encode_tiled_one(self, pixels: torch.Tensor) -> torch.Tensor:
        """One clip ``[F, H, W, 3]`` in 0..1 -> raw latents ``[1, 16, T, h, w]`` by tiles."""
        overlap = min(self.tile_overlap, self.tile_size // 4)
        return self.vae.encode_tiled(
            pixels, tile_x=self.tile_size, tile_y=self.tile_size, overlap=overlap,
            tile_t=self.temporal_size, overlap_t=self.temporal_overlap,
        )

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalized latents -> pixels.

        Args:
            latents: float ``[B, 16, T, h, w]``, normalized.

        Returns:
            float32 ``[B, 3, 4*(T-1)+1, 8h, 8w]`` in ``[-1, 1]`` on the CPU.

        Raises:
            ValueError: wrong shape, or the VAE returned an unexpected frame count/size.
        """
        wan_latents.check_latents(latents, self.latent_channels)
        b, _, t, h, w = latents.shape
        raw = self.denormalize(latents)
        if self.tiled:
            images = self._decode_tiled(raw)
        else:
            images = self.vae.decode(raw)
        tf, sf = self.temporal_factor, self.spatial_factor
        expected = (b, tf * (t - 1) + 1, h * sf, w * sf, 3)
        if images.ndim == 4 and b == 1:
            images = images.unsqueeze(0)
        if tuple(images.shape[:4]) != expected[:4] or images.shape[-1] < 3:
            raise ValueError(f"the VAE decoded images of shape {tuple(images.shape)}, expected {expected}")
        video = rearrange(images[..., :3].to(torch.float32).cpu(), "b f h w c -> b c f h w")
        return (video * 2.0 - 1.0).clamp(-1.0, 1.0)

    def _decode_tiled(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw latents -> ``[B, F, H, W, 3]`` in 0..1 with ``decode_tiled``; tile sizes
        converted to latent units as ComfyUI's VAE Decode (Tiled) node does."""
        sf, tf = self.spatial_factor, self.temporal_factor
        overlap = min(self.tile_overlap, self.tile_size // 4)
        tile_t = max(2, self.temporal_size // tf)
        overlap_t = max(1, min(tile_t // 2, self.temporal_overlap // tf))
        return self.vae.decode_tiled(
            raw, tile_x=self.tile_size // sf, tile_y=self.tile_size // sf, overlap=overlap // sf,
            tile_t=tile_t, overlap_t=overlap_t,
        )


def as_codec(vae: Any, *, tiled: bool = False) -> Any:
    """The core codec for whatever came through a ``VAE`` socket.

    Args:
        vae: a ComfyUI ``VAE`` (Wan 2.1), an object that already satisfies the
            core codec protocol (returned unchanged; ``tiled`` does not apply to it), or
            a holder of one in its :data:`CODEC_HOLDER_ATTR` attribute (that codec is returned).
        tiled: tiled encode/decode for a ComfyUI VAE.

    Raises:
        TypeError: ``vae`` is neither (e.g. a CLIP or a model plugged into the socket).
        ValueError: a ComfyUI VAE of the wrong kind (see :class:`ComfyVAECodec`).
    """
    if vae is None:
        raise TypeError("no VAE connected: load wan_2.1_vae.safetensors with the Load VAE node")
    held = getattr(vae, CODEC_HOLDER_ATTR, None)
    if held is not None:  # e.g. the built-in tiny codec's VAE socket object (nodes/builtin_nodes.TinyVAE)
        vae = held
    if is_core_codec(vae):
        if tiled:
            log.info("TempoMaster: tiled VAE is ignored for %s (a core codec)", type(vae).__name__)
        return vae
    if _looks_like_comfy_vae(vae):
        return ComfyVAECodec(vae, tiled=tiled)
    raise TypeError(
        f"{type(vae).__name__} is not a VAE: connect the Wan 2.1 VAE (Load VAE node, wan_2.1_vae.safetensors)"
    )
