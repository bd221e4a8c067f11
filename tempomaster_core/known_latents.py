"""Known-latent replacement: latent frames whose pixel frames are all known follow their condition latent.

Multi-mask conditioning tells the DiT the known frames only through ``y`` (paper Sec. 3); the sampler then
denoises every latent frame from noise, so a fully known latent frame comes out close to, but not equal to,
its condition latent. Where a continuation segment's context ends (:mod:`tempomaster_core.continuation`), that
small error is what the join shows.

With replacement, after every Euler step to ``sigma_next`` each latent frame ``t >= 1`` whose
``temporal_factor`` mask channels are all 1 (its ``temporal_factor`` pixel frames are all known) is set to
``(1 - sigma_next) * latent + sigma_next * noise`` -- the point of the straight flow-matching path from its own
start noise to its condition latent, which is where the DiT was trained to see a clean latent at that sigma --
and the last step (``sigma_next = 0``) leaves it equal to the condition
latent. This is the latent inpainting of ComfyUI's noise mask (the known region re-noised to the current sigma
each step) applied per latent frame; it is not in the reference, off by default
(:data:`REPLACE_KNOWN_LATENTS`), and a model turns it on in its recommended settings (the built-in model's
``defaults.json``).

Latent frame 0 is left out: in the ``1 + temporal_factor * n`` layout it stands for a single pixel frame (the
reference repeats its mask on every channel), which is an anchor of every refinement chunk and the image of an
image-to-video run; replacing it changes ordinary generation, and measured on TempoMaster-Tiny it made the chunk
seams worse (seam ratio 3.15 -> 3.44, ``benchmarks/long_video.py``, 24 s, 4 prompts) without helping the joins
(1.25 vs 1.23). So in practice replacement acts where a run of known frames fills whole latent frames: the
context of a continuation segment (:mod:`tempomaster_core.continuation`) and consecutive user keyframes.

It is exact only when a known latent frame's condition latent is the encoding of those frames alone: true for
TempoMaster-Tiny's codec (each latent frame encodes its own group of pixel frames), approximate for a causal
VAE such as Wan's (a latent frame also sees the zero frames the clip has before it).
"""

from __future__ import annotations

import torch

from .validation import require_flag

REPLACE_KNOWN_LATENTS = False
"""Default of the option everywhere (the reference's behaviour: every latent frame denoised freely)."""

SETTINGS_KEY = "replace_known_latents"
"""Key of the option in a model's recommended settings (a bundle's ``defaults.json``)."""


def model_default(defaults: dict) -> bool:
    """Whether a model samples with known-latent replacement: its recommended settings' ``replace_known_latents``
    (a bundle's ``defaults.json``), else :data:`REPLACE_KNOWN_LATENTS`.

    Raises:
        InputError: the setting is there but not ``true``/``false``.
    """
    return require_flag(defaults.get(SETTINGS_KEY, REPLACE_KNOWN_LATENTS), f"defaults.json {SETTINGS_KEY}")


def known_latent_frames(y: torch.Tensor, latent_channels: int) -> torch.Tensor:
    """Which latent frames of a multi-mask condition are fully known.

    Args:
        y: ``[B, mask_ch + C, T, h, w]`` condition (:func:`~tempomaster_core.conditioning.build_condition`):
            ``mask_ch`` mask channels (1 = known pixel frame, broadcast over ``h, w``), then ``C`` latents.
        latent_channels: ``C``.

    Returns:
        bool ``[B, 1, T, 1, 1]``: True where ``t >= 1`` and every mask channel of the latent frame is 1 at every
        pixel (latent frame 0, one pixel frame, is never counted: see the module doc).

    Raises:
        ValueError: ``y`` is not 5-D or has no mask channels in front of ``latent_channels``.
    """
    if y.dim() != 5 or y.shape[1] <= latent_channels:
        raise ValueError(f"y must be [B, mask_ch + {latent_channels}, T, h, w] with mask_ch >= 1, "
                         f"got shape {tuple(y.shape)}")
    mask = y[:, : y.shape[1] - latent_channels]
    known = (mask == 1).all(dim=4, keepdim=True).all(dim=3, keepdim=True).all(dim=1, keepdim=True)
    known[:, :, 0] = False
    return known


def replace_known(x: torch.Tensor, known: torch.Tensor, latents: torch.Tensor, noise: torch.Tensor,
                  sigma: float) -> torch.Tensor:
    """``x`` with its known latent frames put on their flow path at ``sigma``.

    Args:
        x: float32 ``[B, C, T, h, w]`` latents after a step to ``sigma``.
        known: bool ``[B, 1, T, 1, 1]`` (:func:`known_latent_frames`).
        latents: ``[B, C, T, h, w]`` condition latents (the last ``C`` channels of ``y``).
        noise: ``[B, C, T, h, w]`` the start noise of ``x`` (sigma = 1).
        sigma: noise level in ``[0, 1]``; 0 gives the condition latents exactly.

    Returns:
        a new float32 tensor like ``x``; the frames not known are ``x``'s.
    """
    on_path = (1.0 - sigma) * latents.to(x.dtype) + sigma * noise.to(x.dtype)
    return torch.where(known, on_path, x)


__all__ = ["REPLACE_KNOWN_LATENTS", "SETTINGS_KEY", "known_latent_frames", "model_default",
           "replace_known"]
