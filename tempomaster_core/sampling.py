"""Flow-matching sampling: sigma schedule with shift, Euler step, seeded noise.

Reproduces the reference ``scheduler.py`` (``FlowMatchScheduler(shift, sigma_min=0,
extra_one_step=True)`` with denoising strength 1) and the reference noise
(``BasePipeline.generate_noise``) so that the same seed gives the same start.

Convention (rectified flow, as Wan): ``x_sigma = (1 - sigma) * x0 + sigma * noise``,
the model predicts the velocity ``v = noise - x0``; sigma runs from 1 (pure
noise) to 0 (data); the DiT timestep is ``sigma * 1000``.
"""

from __future__ import annotations

from typing import Sequence

import torch

from .noise_prior import correlate_frames

from .validation import InputError, require_seed, require_shift, require_steps

NUM_TRAIN_TIMESTEPS = 1000
"""Timestep scale of the DiT: ``timestep = sigma * 1000``."""


def flow_sigmas(steps: int, shift: float) -> torch.Tensor:
    """Shifted flow-matching sigmas, float32 ``[steps]``, decreasing from 1.

    ``s = linspace(1, 0, steps + 1)[:-1]`` then ``shift*s / (1 + (shift-1)*s)``
    (reference ``FlowMatchScheduler.set_timesteps``, computed in float32 like it).
    The final step goes to sigma 0 (see :func:`next_sigmas`).

    Raises:
        InputError (a ValueError): ``steps`` not an integer >= 1; ``shift`` not a finite
            number > 0, or so large that the float32 schedule is not finite (about > 1e38).
    """
    steps = require_steps(steps)
    shift = require_shift(shift)
    sigmas = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float32)[:-1]
    sigmas = shift * sigmas / (1 + (shift - 1) * sigmas)
    if not bool(torch.isfinite(sigmas).all()):
        raise InputError(f"shift {shift:g} gives a non-finite float32 schedule; use a shift between 0.01 and 100")
    return sigmas


def next_sigmas(sigmas: torch.Tensor) -> torch.Tensor:
    """The sigma each Euler step moves to: ``sigmas[1:]`` followed by 0, float32 ``[steps]``."""
    return torch.cat([sigmas[1:], sigmas.new_zeros(1)])


def timesteps_for(sigmas: torch.Tensor) -> torch.Tensor:
    """DiT timesteps ``sigma * 1000`` (float32, same shape as ``sigmas``)."""
    return sigmas * NUM_TRAIN_TIMESTEPS


def euler_step(x: torch.Tensor, velocity: torch.Tensor, sigma: float, sigma_next: float) -> torch.Tensor:
    """One Euler step of the flow ODE: ``x + v * (sigma_next - sigma)``.

    Args:
        x: latents at ``sigma`` (float32 ``[B, C, T, h, w]``).
        velocity: model (guided) velocity, same shape as ``x``.
        sigma, sigma_next: current and next sigma in ``[0, 1]`` (``sigma_next = 0``
            after the last step).

    Returns:
        latents at ``sigma_next``, dtype of ``x``.
    """
    return x + velocity.to(x.dtype) * (float(sigma_next) - float(sigma))


def seeded_noise(shape: Sequence[int], seed: int, frame_correlation: float = 0.0) -> torch.Tensor:
    """Reproducible Gaussian noise from the model's source distribution, float32 CPU.

    With ``frame_correlation`` 0 (every Wan model, the released 14B): exactly
    ``torch.randn(shape, generator=torch.Generator('cpu').manual_seed(seed), dtype=torch.float32)``
    (reference ``generate_noise`` with ``rand_device='cpu'``). Otherwise that same draw turned into
    the progressive prior over latent frames the model was trained from
    (:func:`tempomaster_core.noise_prior.correlate_frames`; ``shape`` is then ``[B, C, T, h, w]``).
    The blueprint draws ``[1, C, T, h, w]``; each refinement level draws its full
    ``[chunks, C, T, h, w]`` from a fresh generator seeded with the same seed, so chunk 0 gets the
    same noise at every level of equal latent shape.

    Args:
        shape: noise shape (``[B, C, T, h, w]`` when ``frame_correlation`` > 0).
        seed: integer in ``[0, 2**64)``.
        frame_correlation: ``rho`` in ``[0, 1)``, the model's
            :attr:`~tempomaster_core.config.DiTConfig.noise_frame_correlation`.

    Raises:
        InputError (a ValueError): ``seed`` is not an integer in ``[0, 2**64)``.
        ValueError: ``frame_correlation`` outside ``[0, 1)`` or, when it is > 0, a shape that is not 5-D.
    """
    seed = require_seed(seed)
    generator = torch.Generator("cpu").manual_seed(seed)
    noise = torch.randn(tuple(int(s) for s in shape), generator=generator, dtype=torch.float32)
    return correlate_frames(noise, frame_correlation)
