"""Socket type names of the TempoMaster node pack and the condition payload.

ComfyUI matches sockets by type name, so the custom types carry a ``TEMPO_``
prefix that no other pack uses:

- ``TEMPO_MODEL``     a loaded :class:`tempomaster_core.model.TempoMasterDiT` (model sockets also take
  ComfyUI's ``MODEL``: :data:`MODEL_SOCKET_TYPES`).
- ``TEMPO_PLAN``      a :class:`tempomaster_core.plan.TreePlan` (the shape of the tree).
- ``TEMPO_CONDITION`` a :class:`TempoCondition` (blueprint condition frames).
- ``TEMPO_LEVEL``     a :class:`tempomaster_core.pipeline.LevelResult` (one finished
  level: its frames, latents and the plan, so the next refiner knows its level).

The ComfyUI core types used (``CONDITIONING``, ``VAE``, ``IMAGE``, ``FLOAT``) keep
their ComfyUI meaning; ``nodes/vae_adapter.py`` and ``nodes/text_adapter.py`` convert them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

TEMPO_MODEL = "TEMPO_MODEL"
TEMPO_PLAN = "TEMPO_PLAN"
TEMPO_CONDITION = "TEMPO_CONDITION"
TEMPO_LEVEL = "TEMPO_LEVEL"

MODEL_SOCKET_TYPES = f"{TEMPO_MODEL},MODEL"
"""The ``model`` socket of the samplers, Continue and the Tree Scheduler: a ``TEMPO_MODEL`` or ComfyUI's native
``MODEL`` of the TempoMaster checkpoint (a union, as ComfyUI's ``validate_node_input`` reads ``"A,B"``;
:mod:`nodes.native_model`)."""

#: Every custom socket type of the pack (tests check each is produced and consumed).
CUSTOM_TYPES = (TEMPO_MODEL, TEMPO_PLAN, TEMPO_CONDITION, TEMPO_LEVEL)


@dataclass(frozen=True)
class TempoCondition:
    """Condition frames for the blueprint, made by the MultiMaskCondition node.

    Attributes:
        frames: ``{pixel frame index on the blueprint (>= 0): float32 [3, height, width]
            in [-1, 1]}``; empty = text-to-video. Indices are already resolved
            against ``blueprint_frames`` (negative user positions count from the end).
        height, width: pixel size the frames were resized/cropped to (multiples of 16).
        blueprint_frames: the blueprint length the indices were resolved against.
        size_from_image: True when ``height``/``width`` were derived from the first
            image (plan area kept, aspect of the image, as the reference does); the
            BlueprintSampler then samples at this size instead of the plan's and
            says so in the log.
    """

    frames: dict = field(default_factory=dict)
    height: int = 0
    width: int = 0
    blueprint_frames: int = 0
    size_from_image: bool = False

    @property
    def is_empty(self) -> bool:
        """True when there is no condition frame (text-to-video)."""
        return not self.frames

    def as_core_conditions(self) -> dict[int, torch.Tensor]:
        """The ``conditions`` argument of ``tempomaster_core.pipeline.run_blueprint``:
        ``{pixel index: [3, H, W] in [-1, 1]}`` (a shallow copy)."""
        return dict(self.frames)
