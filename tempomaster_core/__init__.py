"""TempoMaster runtime: next-frame-rate long-video generation, independent of ComfyUI.

Modules (one concept each):

- ``defaults``      reference defaults (steps, shifts, cfg, guidance, trained chunk length, ...).
- ``config``        DiT shape configuration (:class:`DiTConfig`).
- ``rope``          frame-rate-aware 3-D RoPE tables (float32 cos/sin).
- ``attention``     attention backends (SDPA, flash-attn, SageAttention).
- ``model``         the Wan DiT (:class:`TempoMasterDiT`).
- ``ops``           the layer classes the DiT is built from (the ``operations`` hook).
- ``fp8``           fp8 weight storage: which weights, per-tensor scaled quantisation.
- ``loading``       checkpoint loading / config inference (:func:`load_dit`).
- ``convert``       ``.bin`` -> ``.safetensors`` converter CLI (also writes scaled fp8).
- ``lora``          LoRA key layouts, merging / per-forward updates (:func:`apply_lora`).
- ``block_swap``    blocks in host memory, streamed to the GPU per forward (:class:`BlockSwap`).
- ``dit_options``   LoRAs and block swap applied to a loaded DiT (CLI).
- ``plan``          the level plan (:class:`TreePlan`), the one source of truth for the tree.
- ``conditioning``  multi-mask conditioning (``y`` = mask + condition latents).
- ``sampling``      flow-matching schedule, Euler step, seeded noise.
- ``guidance``      CFG and APG guidance in x0 space.
- ``pipeline``      blueprint / refinement level runners and :func:`generate`.
- ``distributed``   a level's chunks (or guidance passes) shared over ranks: ``torchrun`` or one thread
                    per device (``device_threads``); the split rule in ``sharing``, its cost in ``cost_devices``.
- ``protocols``     the VAE (codec) protocol the runtime expects.

This package never imports ComfyUI.
"""

from .config import DiTConfig

__all__ = ["DiTConfig"]

from .plan import LevelPlan, PlanError, TreePlan
from .protocols import VideoCodec, check_compatible
from .guidance import APG, CFG
from .sampling import flow_sigmas, seeded_noise
from .conditioning import build_condition, pack_masks
from .defaults import default_schedule
from .pipeline import LevelResult, LevelSettings, generate, run_blueprint, run_refinement

__all__ += [
    "LevelPlan", "PlanError", "TreePlan", "VideoCodec", "check_compatible", "APG", "CFG",
    "flow_sigmas", "seeded_noise", "build_condition", "pack_masks",
    "LevelResult", "LevelSettings", "default_schedule", "generate", "run_blueprint", "run_refinement",
]
