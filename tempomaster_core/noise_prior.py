"""The source distribution of a DiT's flow: i.i.d. Gaussian noise, or noise correlated over latent frames.

Flow matching learns a velocity field that carries samples of a *source* distribution to the
data; sampling must start from the same source the model was trained from. Wan 2.x and the
released TempoMaster 14B use i.i.d. unit Gaussian noise (correlation 0, the default
everywhere). A model may instead be trained from the *progressive* noise prior of PYoCo
(Ge et al., "Preserve Your Own Correlation: A Noise Prior for Video Diffusion Models",
ICCV 2023): along the latent frame axis the noise is a stationary AR(1) process

    n_0 = e_0,    n_t = rho * n_{t-1} + sqrt(1 - rho^2) * e_t    (e_t i.i.d. N(0, 1)),

so every element stays N(0, 1) and two latent frames ``k`` apart have correlation ``rho**k``.
Neighbouring latent frames then start from similar noise, and what the DiT has to learn across
time is how a frame *differs* from its neighbours, not where to put each frame's content from
scratch. The correlation is a property of the trained model, recorded with its weights
(:attr:`tempomaster_core.config.DiTConfig.noise_frame_correlation`), never a sampler knob. The shipped
TempoMaster-Tiny uses i.i.d. noise: a run trained from this prior (rho 0.9) did not move more smoothly,
see its model card (session 11); ``train_dit --noise-frame-correlation`` repeats it.
"""

from __future__ import annotations

import math

import torch

from .validation import require_number

FRAME_AXIS = 2
"""Latent frame axis of a ``[B, C, T, h, w]`` latent (Wan's layout)."""


def check_frame_correlation(value, name: str = "noise_frame_correlation", error: type = ValueError) -> float:
    """A latent-frame noise correlation as a float in ``[0, 1)``.

    Raises:
        ``error`` (default ValueError): not a number, negative, or ``>= 1`` (1 would give every
            latent frame the same noise: no sample could differ from frame to frame).
    """
    value = require_number(value, name, minimum=0.0, parse_text=True, error=error)
    if value >= 1.0:
        raise error(f"{name} must be below 1 (a correlation of 1 gives every latent frame the same noise), "
                    f"got {value}")
    return value


def correlate_frames(noise: torch.Tensor, frame_correlation: float) -> torch.Tensor:
    """Turn i.i.d. noise into the progressive (AR(1)) noise prior over latent frames.

    Args:
        noise: i.i.d. unit Gaussian ``[B, C, T, h, w]`` (any float dtype, any device).
        frame_correlation: ``rho`` in ``[0, 1)``; 0 returns ``noise`` itself (bit-identical:
            the reference's noise).

    Returns:
        A new tensor of the same shape and dtype (or ``noise`` when ``rho == 0``): frame 0 equals
        ``noise[:, :, 0]``; frame ``t`` is ``rho * out[:, :, t-1] + sqrt(1 - rho^2) * noise[:, :, t]``.
        Each element is N(0, 1); frames ``k`` apart have correlation ``rho**k``.

    Raises:
        ValueError: ``frame_correlation`` is outside ``[0, 1)``, or it is > 0 and ``noise`` is not 5-D.
    """
    rho = check_frame_correlation(frame_correlation)
    if rho == 0.0:
        return noise
    if noise.dim() != 5:
        raise ValueError(f"noise must be [B, C, T, h, w], got shape {list(noise.shape)}")
    innovation = math.sqrt(1.0 - rho * rho)
    frames = [noise.select(FRAME_AXIS, 0)]
    for t in range(1, noise.shape[FRAME_AXIS]):
        frames.append(rho * frames[-1] + innovation * noise.select(FRAME_AXIS, t))
    return torch.stack(frames, dim=FRAME_AXIS)


def model_frame_correlation(model) -> float:
    """The latent-frame noise correlation a DiT was trained with: ``model.config.noise_frame_correlation``
    (0.0, i.i.d. noise, for a config without the field, e.g. a ComfyUI-side shape object)."""
    config = getattr(model, "config", None)
    return float(getattr(config, "noise_frame_correlation", 0.0) or 0.0)
