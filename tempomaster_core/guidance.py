"""Classifier-free guidance (CFG) and adaptive projected guidance (APG) in x0 space.

Reproduces the reference ``pipelines/guidance.py`` (``FlowMatchingGuidance``):
both guidances work on the denoised estimates ``D = z - sigma * v`` of the
conditional (positive prompt) and unconditional (negative prompt) velocity, then
return a velocity ``(z - D_guided) / (sigma + 1e-8)``.

- CFG: ``D = D_uncond + scale * (D_cond - D_uncond)``.
- APG (Sadat et al., "Eliminating oversaturation and artifacts of high guidance
  scales in diffusion models", 2024), with the reference's default settings
  (:mod:`tempomaster_core.defaults`): ``dD = D_cond - D_uncond``; momentum ``-0.5``
  (running average ``r = dD + momentum * r``, first ``r = dD``);
  rescale ``r`` so that its L2 norm over channels and space (dims 1, 3, 4:
  one norm per batch item and latent frame) is at most ``norm_threshold = 27``;
  split ``r`` into the part parallel to ``D_cond`` and the orthogonal part,
  per batch item in float64; ``D = D_cond + (scale - 1) * (r_orth + eta * r_par)``
  with ``eta = 0``.

A guidance object keeps the APG momentum buffer between the steps of *one*
level run (one object per denoised batch; the reference builds a fresh one per
level). The momentum is elementwise and the rescale/projection act per batch
item, so running the chunks of a level in slices (``max_batch``) with one
object per slice gives exactly the same numbers as one object for the batch.
"""

from __future__ import annotations

from typing import Any, Optional, Union

import torch
import torch.nn.functional as F

from .defaults import APG_ETA, APG_MOMENTUM, APG_NORM_THRESHOLD
from .validation import require_cfg, require_choice

EPSILON = 1e-8
"""Added to sigma when converting x0 back to a velocity (reference value)."""

GUIDANCE_KINDS = ("apg", "cfg")
"""Guidance kinds, lower case: adaptive projected guidance and classifier-free guidance."""


def guidance_kind(kind: Any, name: str = "guidance") -> str:
    """The entry of :data:`GUIDANCE_KINDS` that ``kind`` names, case-insensitively (``"APG"`` -> ``"apg"``).

    Raises:
        InputError: (a ``ValueError``) any other value; the message lists the kinds.
    """
    return require_choice(kind, name, GUIDANCE_KINDS, fold_case=True)


def _sigma_like(sigma: Union[float, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
    """Sigma as a tensor broadcastable to ``z`` ``[B, ...]``: scalar, or one per batch item."""
    sigma = torch.as_tensor(sigma, dtype=z.dtype, device=z.device)
    if sigma.numel() == 1:
        return sigma.reshape(())
    if sigma.numel() != z.shape[0]:
        raise ValueError(f"sigma has {sigma.numel()} values for a batch of {z.shape[0]}; give one or one per item")
    return sigma.reshape(-1, *([1] * (z.dim() - 1)))


def x0_from_velocity(z: torch.Tensor, velocity: torch.Tensor, sigma: Union[float, torch.Tensor]) -> torch.Tensor:
    """Denoised estimate ``D = z - sigma * v`` (same shape as ``z``)."""
    return z - _sigma_like(sigma, z) * velocity


def velocity_from_x0(z: torch.Tensor, x0: torch.Tensor, sigma: Union[float, torch.Tensor]) -> torch.Tensor:
    """Velocity from a denoised estimate: ``(z - D) / (sigma + 1e-8)`` (reference)."""
    return (z - x0) / (_sigma_like(sigma, z) + EPSILON)


class CFG:
    """Plain classifier-free guidance in x0 space.

    Args:
        scale: guidance scale (1 = conditional prediction only, in which case the
            pipeline skips the negative pass and never calls this object).

    Call ``guidance(v_cond, v_uncond, z, sigma) -> v``: velocities and latents
    ``[B, C, T, h, w]`` (same dtype), ``sigma`` a float or ``[B]``/``[1]`` tensor
    (the rounded timestep / 1000 in the reference). Stateless.
    """

    def __init__(self, scale: float) -> None:
        self.scale = float(scale)

    def reset(self) -> None:
        """No state to reset."""

    def __call__(self, v_cond, v_uncond, z, sigma):
        d_cond = x0_from_velocity(z, v_cond, sigma)
        d_uncond = x0_from_velocity(z, v_uncond, sigma)
        guided = d_uncond + self.scale * (d_cond - d_uncond)
        return velocity_from_x0(z, guided, sigma)


class APG:
    """Adaptive projected guidance in x0 space (defaults: the reference's settings).

    Args:
        scale: guidance scale (the reference's default: :data:`~tempomaster_core.defaults.CFG`).
        eta: weight of the component of the guidance parallel to ``D_cond``
            (:data:`~tempomaster_core.defaults.APG_ETA`).
        norm_threshold: max L2 norm of the guidance per batch item and latent
            frame, over channels and space (:data:`~tempomaster_core.defaults.APG_NORM_THRESHOLD`;
            <= 0 disables the rescale).
        momentum: momentum of the running average of the guidance
            (:data:`~tempomaster_core.defaults.APG_MOMENTUM`; 0 disables).

    Call ``guidance(v_cond, v_uncond, z, sigma) -> v`` with 5-D ``[B, C, T, h, w]``
    tensors. Keeps the momentum buffer across calls: use one object per level
    run (per batch slice with ``max_batch``), or call :meth:`reset`.
    """

    def __init__(self, scale: float, eta: float = APG_ETA, norm_threshold: float = APG_NORM_THRESHOLD,
                 momentum: float = APG_MOMENTUM) -> None:
        self.scale = float(scale)
        self.eta = float(eta)
        self.norm_threshold = float(norm_threshold)
        self.momentum = float(momentum)
        self.running: Optional[torch.Tensor] = None

    def reset(self) -> None:
        """Forget the momentum buffer (start of a new level run)."""
        self.running = None

    def _update_momentum(self, delta: torch.Tensor) -> torch.Tensor:
        if self.momentum == 0:
            return delta
        if self.running is None:
            self.running = delta.clone()
        elif self.running.shape != delta.shape:
            raise ValueError(
                f"APG momentum buffer has shape {tuple(self.running.shape)} but the guidance has "
                f"{tuple(delta.shape)}; use one APG object per batch (or call reset())"
            )
        else:
            self.running = delta + self.momentum * self.running
        return self.running

    def _rescale(self, delta: torch.Tensor) -> torch.Tensor:
        norm = delta.norm(p=2, dim=(1, 3, 4), keepdim=True)
        factor = torch.minimum(torch.ones_like(norm), self.norm_threshold / (norm + EPSILON))
        return delta * factor

    @staticmethod
    def _project(vector: torch.Tensor, onto: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Split ``vector`` into parts parallel and orthogonal to ``onto``, per batch item, in float64."""
        dtype = vector.dtype
        v0 = vector.double()
        unit = F.normalize(onto.double().flatten(1), dim=1)
        dot = (v0.flatten(1) * unit).sum(dim=1, keepdim=True)
        parallel = (dot * unit).view_as(v0)
        orthogonal = v0 - parallel
        return parallel.to(dtype), orthogonal.to(dtype)

    def __call__(self, v_cond, v_uncond, z, sigma):
        if z.dim() != 5:
            raise ValueError(f"APG expects [B, C, T, h, w] latents, got shape {tuple(z.shape)}")
        d_cond = x0_from_velocity(z, v_cond, sigma)
        d_uncond = x0_from_velocity(z, v_uncond, sigma)
        delta = self._update_momentum(d_cond - d_uncond)
        if self.norm_threshold > 0:
            delta = self._rescale(delta)
        parallel, orthogonal = self._project(delta, d_cond)
        guided = d_cond + (self.scale - 1) * (orthogonal + self.eta * parallel)
        return velocity_from_x0(z, guided, sigma)


def make_guidance(kind: str, scale: float) -> Union[CFG, APG]:
    """A fresh guidance object: ``kind`` is ``"apg"`` (the reference's default) or ``"cfg"``.

    Raises:
        InputError: (a ``ValueError``) ``kind`` not one of :data:`GUIDANCE_KINDS` (any case);
            ``scale`` not a finite number in ``(0, MAX_CFG]`` (:data:`~tempomaster_core.validation.MAX_CFG` = 100).
    """
    scale = require_cfg(scale, "cfg scale")
    return APG(scale) if guidance_kind(kind) == "apg" else CFG(scale)
