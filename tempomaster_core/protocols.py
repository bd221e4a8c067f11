"""Protocols the runtime relies on: the video codec (VAE) and the denoising model.

The core never imports a concrete VAE or DiT class. It duck-types:

- a **codec** (:class:`VideoCodec`) that turns pixel clips into *normalized*
  latents and back (adapters for ComfyUI's Wan 2.1 VAE live in ``nodes/``; the
  tests use ``tests/toy_codec.py``);
- a **denoising model** (:class:`DenoisingModel`), e.g.
  :class:`tempomaster_core.model.TempoMasterDiT`, that predicts the flow-matching
  velocity.

:func:`check_compatible` verifies that a codec and a model agree on the latent
layout, so that a wrong VAE for a model is reported before any compute.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch


class NonFiniteError(RuntimeError):
    """A model or codec output holds NaN or infinite values (nothing silently wrong is returned).

    Raised by the runtime (:mod:`tempomaster_core.pipeline`, :mod:`tempomaster_core.conditioning`)
    after a denoising step, a VAE encode or a VAE decode whose result is not finite, once the
    inputs were checked to be finite. The message names the level and the likely causes:
    non-finite model weights (NaN in the checkpoint, an fp16 overflow), a non-finite text
    embedding, an extreme cfg, or a broken VAE.
    """


def check_vae_result(values, what: str) -> None:
    """Raise :class:`NonFiniteError` if a VAE result holds NaN or infinity.

    Args:
        values: the encode (latents) or decode (pixels) result, any shape.
        what: what was coded, for the message (e.g. ``"encode of condition clips 0..3"``).
    """
    if not bool(values.isfinite().all()):
        raise NonFiniteError(
            f"the VAE {what} returned NaN or infinite values from finite inputs; likely causes: NaN in the VAE "
            "weights (a corrupt file) or an fp16 overflow in the VAE (load it in bf16/fp32, or try the tiled VAE)"
        )


@runtime_checkable
class VideoCodec(Protocol):
    """A video VAE seen through normalized latents (Wan 2.1 VAE: 16 / 4 / 8).

    Attributes:
        latent_channels: channels ``C`` of a latent frame (16 for Wan 2.1).
        temporal_factor: pixel frames per latent frame after the first one
            (4 for Wan). A clip of ``F = temporal_factor * n + 1`` pixel frames
            has ``n + 1`` latent frames: the first latent frame holds pixel
            frame 0 alone, latent frame ``t >= 1`` holds pixel frames
            ``temporal_factor*(t-1)+1 .. temporal_factor*t``.
        spatial_factor: pixels per latent cell along height and width (8 for Wan).

    Optional attribute ``device`` (``torch.device``): where ``encode``/``decode``
    want their inputs. Without it the runtime hands CPU tensors to the codec.
    """

    latent_channels: int
    temporal_factor: int
    spatial_factor: int

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """Encode pixels to normalized latents.

        Args:
            video: float ``[B, 3, F, H, W]`` in ``[-1, 1]``,
                ``F = temporal_factor*n + 1``, ``H, W`` multiples of ``spatial_factor``.

        Returns:
            float ``[B, latent_channels, (F-1)//temporal_factor + 1, H/sf, W/sf]``,
            normalized (for Wan 2.1: ``(raw - mean) / std`` per channel).
        """
        ...

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Decode normalized latents ``[B, C, T, h, w]`` to pixels
        ``[B, 3, temporal_factor*(T-1)+1, h*sf, w*sf]`` in ``[-1, 1]``."""
        ...


@runtime_checkable
class DenoisingModel(Protocol):
    """A TempoMaster DiT: predicts the flow-matching velocity ``v = noise - x0``.

    Attributes:
        config: a :class:`tempomaster_core.config.DiTConfig` (``latent_channels``,
            ``mask_channels``, ``condition_channels``, ``patch_size``, ``text_dim``).

    Call ``model(x, timestep, context, y, temporal_positions)``:
        x: noisy latents ``[B, C, T, h, w]`` in the model dtype.
        timestep: ``[B]`` = sigma * 1000 in the model dtype.
        context: text embeddings ``[B or 1, L, text_dim]``.
        y: condition ``[B, mask_channels + C, T, h, w]`` (mask, then condition latent).
        temporal_positions: ``[B, T]`` RoPE temporal positions of the latent frames.
    Returns the velocity ``[B, C, T, h, w]``.

    Optional: ``model.start_level(level_index, num_levels)``, called by the level runners before
    a level's first compute (:meth:`tempomaster_core.model.TempoMasterDiT.start_level`).
    """

    config: Any

    def __call__(self, x, timestep, context, y, temporal_positions) -> torch.Tensor: ...


@dataclass
class ModelBundle:
    """What a generate run needs of a loaded model set: the DiT, its codec and its text encoder.

    Subclassed by :class:`~tempomaster_core.tiny.builtin.TinyBundle` (the built-in model) and
    :class:`~tempomaster_core.wan.bundle.WanBundle` (the released 14B set), which add where the files
    came from, the model's recommended settings (``defaults``) and ``encode_prompt(text) -> [1, L,
    text_dim]`` float32 on the DiT's device.

    Attributes:
        model: a :class:`DenoisingModel` (a :class:`~tempomaster_core.model.TempoMasterDiT`).
        codec: a :class:`VideoCodec` that fits the model (:func:`check_compatible`).
        text_encoder: the prompt encoder the model was trained with.
    """

    model: Any
    codec: Any
    text_encoder: Any


def codec_device(codec: Any) -> torch.device:
    """Device the codec wants its inputs on: ``codec.device`` if present, else CPU."""
    device = getattr(codec, "device", None)
    return torch.device(device) if device is not None else torch.device("cpu")


def check_compatible(codec: Any, config: Any) -> None:
    """Check that ``codec`` (a :class:`VideoCodec`) matches a model's ``DiTConfig``.

    Raises:
        TypeError: the codec lacks ``latent_channels``/``temporal_factor``/
            ``spatial_factor``/``encode``/``decode``.
        ValueError: latent channels differ from ``config.latent_channels`` or the
            temporal factor differs from ``config.mask_channels`` (the model packs
            one mask channel per pixel frame of a latent frame) -- usually the
            wrong VAE for this model.
    """
    missing = [
        name
        for name in ("latent_channels", "temporal_factor", "spatial_factor", "encode", "decode")
        if not hasattr(codec, name)
    ]
    if missing:
        raise TypeError(
            f"{type(codec).__name__} is not a video codec: it lacks {', '.join(missing)}. "
            "Pass a VAE adapter with encode/decode of normalized latents "
            "(see tempomaster_core.protocols.VideoCodec)."
        )
    if int(codec.latent_channels) != int(config.latent_channels):
        raise ValueError(
            f"VAE/model mismatch: the VAE has {codec.latent_channels} latent channels but the "
            f"model expects {config.latent_channels}. Load the VAE that belongs to this model "
            "(the Wan 2.1 VAE for TempoMaster 14B)."
        )
    if int(codec.temporal_factor) != int(config.mask_channels):
        raise ValueError(
            f"VAE/model mismatch: the VAE packs {codec.temporal_factor} pixel frames per latent "
            f"frame but the model has {config.mask_channels} mask channels (one per pixel frame). "
            "Load the VAE that belongs to this model (the Wan 2.1 VAE for TempoMaster 14B)."
        )
