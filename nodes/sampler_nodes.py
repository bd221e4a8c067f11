"""BlueprintSampler and FrameRateRefiner: one node per level of the tree.

The BlueprintSampler makes level 0 (the low-frame-rate blueprint); each
FrameRateRefiner takes the ``TEMPO_LEVEL`` of the level above and makes the next
one (it reads its level index and the plan from that input). Chaining one
refiner per planned level composes the hierarchy; a refiner past the last
planned level is refused with a clear message. Both return the level's frames
as ComfyUI ``IMAGE`` plus its fps, ready for ``CreateVideo`` -> ``SaveVideo``.

The heavy lifting is ``tempomaster_core.pipeline.run_blueprint`` /
``run_refinement``; this module adapts ComfyUI objects (``nodes/vae_adapter.py``,
``nodes/text_adapter.py``), reports progress (``nodes/progress.py``) and manages
devices (``nodes/comfy_env.py``).

Order of work in a sampler node (nothing is computed or moved for a run that is
refused):

1. every input that can be checked without compute: seed, steps, shift, cfg
   (at most 100), guidance, max_parallel_chunks
   (``tempomaster_core.pipeline.check_level_settings``), the VAE / text encoder /
   plan against the model and NaN/inf in the text embeddings
   (``check_level_inputs``), the condition frames;
2. the level's peak memory on the cost model (weights + activations,
   :func:`estimate_level_bytes`): ComfyUI is asked to free that much, then the
   estimate is compared with the compute device's free memory
   (:func:`check_device_memory`; a clear :class:`NotEnoughMemoryError` instead of an
   out-of-memory crash half-way; skipped on the CPU, which has no reliable figure);
3. the DiT is moved to ComfyUI's compute device, the level runs (VAE encode,
   denoising, decode), and after the last level the DiT goes back to ComfyUI's
   offload device. Inside ComfyUI the ``TEMPO_MODEL`` is a ModelPatcher
   (``nodes/comfy_model.py``): steps 2-3 are then ComfyUI's ``load_models_gpu`` with the
   level's activation bytes as ``memory_required`` (full or partial loading, other models
   unloaded), and ComfyUI keeps or offloads the DiT afterwards.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import time
from typing import Any, Callable, Optional

import torch

from tempomaster_core.anchor_correction import ANCHOR_CORRECTION
from tempomaster_core.cost import GIB
from tempomaster_core.defaults import (
    APG_MOMENTUM,
    APG_NORM_THRESHOLD,
    BLUEPRINT_FRAMES,
    BLUEPRINT_SHIFT,
    BLUEPRINT_STEPS,
    CFG,
    FPS,
    FRAME_INTERVALS,
    GUIDANCE,
    REFINEMENT_SHIFT,
    REFINEMENT_STEPS,
    SEED,
    WEIGHT_DTYPE,
)
from tempomaster_core.guidance import GUIDANCE_KINDS
from tempomaster_core.tiny.builtin import BUILTIN_MODEL_NAME
from tempomaster_core.validation import MAX_CFG, MAX_SAMPLER_STEPS, MAX_SEED, InputError

from . import comfy_env
from .comfy_model import dit_of, for_level, is_patcher, load_for_level
from .native_model import is_native_model
from .multi_device import DEVICES_INPUT, parse_devices, replicas, run_on_devices
from .display_names import (BLUEPRINT_SAMPLER, FRAME_RATE_REFINER, LOAD_MODEL, LOAD_TINY_ENCODERS,
                            MULTI_MASK_CONDITION, TREE_SCHEDULER)
from .parsing import optional_input
from .plan_route import report_level_time
from .progress import NodeProgress
from .text_adapter import conditioning_to_context
from .types import MODEL_SOCKET_TYPES, TEMPO_CONDITION, TEMPO_LEVEL, TEMPO_MODEL, TEMPO_PLAN, TempoCondition
from .vae_adapter import as_codec

log = logging.getLogger("TempoMaster")

SKIP_MEMORY_CHECK_ENV = "TEMPOMASTER_SKIP_MEMORY_CHECK"
"""Set this environment variable to ``1`` to run a level even when its memory estimate exceeds
the free memory (the estimate is a model, not a measurement)."""


class NotEnoughMemoryError(RuntimeError):
    """The level's estimated peak memory exceeds the compute device's free memory (raised
    before the DiT is moved or anything is encoded); the message says what to change."""


def _model_bytes(model: Any) -> int:
    params = getattr(model, "parameters", None)
    if not callable(params):
        return 0
    return sum(p.numel() * p.element_size() for p in params())


def estimate_level_bytes(model: Any, plan: Any, level_index: int, cfg: float, max_batch: Optional[int],
                         spatial_factor: int = 8) -> int:
    """Bytes a level needs on the compute device: the cost model's peak (weights + activations).

    One source of truth with the TreeScheduler's estimate: ``tempomaster_core.cost.level_cost``
    for this level's chunks, chunk length, ``cfg`` (two passes when != 1) and ``max_batch``
    (chunks per forward), with the model's own weight dtype and text length. Only used to ask
    ComfyUI to unload other models before a level. A model without a ``config`` (not a
    TempoMaster DiT) counts its parameter bytes only.
    """
    config = getattr(model, "config", None)
    if config is None:
        return _model_bytes(model)
    from tempomaster_core.cost import model_text_len, plan_level_cost

    dtype = str(getattr(model, "weight_dtype", None) or getattr(model, "dtype", WEIGHT_DTYPE))  # fp8: priced as stored
    priced = plan_level_cost(plan, level_index, config, steps=1, cfg=float(cfg), max_batch=max_batch or None,
                             dtype=dtype, text_len=model_text_len(config), spatial_factor=spatial_factor)
    return int(priced.peak_bytes)


def device_free_bytes(device: Any) -> Optional[int]:
    """Free bytes on ``device`` for a new allocation, or ``None`` when there is no reliable figure.

    Inside ComfyUI: ``comfy.model_management.get_free_memory(device)`` (device free memory plus
    what torch's allocator holds unused). Outside ComfyUI on CUDA: ``torch.cuda.mem_get_info``
    plus reserved-but-unallocated bytes. The CPU (and other devices outside ComfyUI) gives
    ``None``: the OS figure for free RAM ignores reclaimable caches and swap, so a check against
    it would refuse runs that work.
    """
    device = torch.device(device)
    if device.type == "cpu":
        return None
    try:
        mm = importlib.import_module("comfy.model_management")
    except ImportError:
        mm = None
    try:
        if mm is not None and callable(getattr(mm, "get_free_memory", None)):
            return int(mm.get_free_memory(device))
        if device.type == "cuda" and torch.cuda.is_available():
            free, _ = torch.cuda.mem_get_info(device)
            return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    except Exception as exc:  # a broken driver query must not block a run; the check is a courtesy
        log.warning("TempoMaster: could not read the free memory of %s (%s); memory check skipped", device, exc)
    return None


def _same_device(a: torch.device, b: torch.device) -> bool:
    """``cuda`` and ``cuda:0`` name the same device when one of them has no index."""
    return a.type == b.type and (a.index == b.index or a.index is None or b.index is None)


def _bytes_on(model: Any, device: torch.device) -> int:
    """Bytes of the model's parameters already on ``device`` (they need no new memory)."""
    params = getattr(model, "parameters", None)
    if not callable(params):
        return 0
    return sum(p.numel() * p.element_size() for p in params() if _same_device(p.device, device))


def check_device_memory(model: Any, codec: Any, plan: Any, level_index: int, cfg: float,
                        max_batch: Optional[int], device: Any, needed: Optional[int] = None) -> None:
    """Refuse a level whose cost-model peak exceeds the free memory of ``device``.

    Args:
        model, codec, plan, level_index, cfg, max_batch: as :func:`estimate_level_bytes`.
        device: the compute device.
        needed: the estimate, if already computed.

    Available memory = :func:`device_free_bytes` + the DiT's weights already on ``device``.
    Skipped when the figure is unknown (CPU) or ``TEMPOMASTER_SKIP_MEMORY_CHECK=1``.

    Raises:
        NotEnoughMemoryError: "level N needs ~X GiB on DEVICE, Y GiB are free", with what to
            change (``max_parallel_chunks=1`` and its estimate, tiled VAE, a smaller plan).
    """
    if os.environ.get(SKIP_MEMORY_CHECK_ENV, "").strip() not in ("", "0"):
        return
    device = torch.device(device)
    free = device_free_bytes(device)
    if free is None:
        return
    spatial = int(getattr(codec, "spatial_factor", 8))
    if needed is None:
        needed = estimate_level_bytes(model, plan, level_index, cfg, max_batch, spatial)
    available = free + _bytes_on(model, device)
    if needed <= available:
        return
    hints = []
    chunks = plan.levels[level_index].num_chunks
    if chunks > 1 and (max_batch is None or max_batch > 1):
        single = estimate_level_bytes(model, plan, level_index, cfg, 1, spatial)
        hints.append(f"max_parallel_chunks=1 (~{single / GIB:.1f} GiB)")
    if not getattr(codec, "tiled", False):
        hints.append("tiled_vae=true (less VAE memory)")
    hints.append("a smaller plan (fewer frames per chunk, more chunks, or a lower resolution)")
    raise NotEnoughMemoryError(
        f"TempoMaster level {level_index} needs ~{needed / GIB:.1f} GiB on {device} (cost-model estimate: "
        f"weights + activations) but only {available / GIB:.1f} GiB are available after unloading other "
        f"models; try {'; or '.join(hints)}. Set {SKIP_MEMORY_CHECK_ENV}=1 to run anyway."
    )


def _to_compute_device(model: Any, codec: Any, plan: Any, level_index: int, cfg: float,
                       max_batch: Optional[int]) -> None:
    """Free memory for the level, check that it fits (:func:`check_device_memory`), move the DiT;
    a ModelPatcher is loaded by ComfyUI instead (:func:`nodes.comfy_model.load_for_level`)."""
    device = comfy_env.compute_device()
    patcher, model = model, dit_of(model)
    needed = estimate_level_bytes(model, plan, level_index, cfg, max_batch, int(getattr(codec, "spatial_factor", 8)))
    if is_patcher(patcher):
        load_for_level(patcher, needed - _model_bytes(model))
        return
    comfy_env.free_memory(needed, device)
    check_device_memory(model, codec, plan, level_index, cfg, max_batch, device, needed)
    current = next(iter(model.parameters())).device if _model_bytes(model) else device
    if current != device:
        log.info("TempoMaster: moving the DiT to %s", device)
        model.to(device)


def _release(model: Any) -> None:
    if is_patcher(model):  # ComfyUI's model management keeps or offloads it
        return
    device = comfy_env.offload_device()
    current = next(iter(model.parameters())).device if _model_bytes(model) else device
    if current != device:
        model.to(device)
    comfy_env.soft_empty_cache()


def plan_for_condition(plan: Any, condition: Optional[TempoCondition]) -> Any:
    """The plan to sample with, given the blueprint condition.

    If the condition was made with "plan area, first image's aspect" and its size
    differs from the plan's, a copy of the plan at the condition's size is returned
    (logged). A condition made for another plan (other size or blueprint length) is refused.

    Raises:
        ValueError: the condition does not belong to this plan.
    """
    if condition is None:
        return plan
    if condition.blueprint_frames and condition.blueprint_frames != plan.blueprint_frames:
        raise ValueError(
            f"the condition was made for a {condition.blueprint_frames}-frame blueprint but the plan has "
            f"{plan.blueprint_frames}; connect the same {TREE_SCHEDULER} to {MULTI_MASK_CONDITION} and {BLUEPRINT_SAMPLER}"
        )
    size = (condition.height, condition.width)
    if condition.is_empty or size == (plan.height, plan.width):
        return plan
    if not condition.size_from_image:
        raise ValueError(
            f"the condition frames are {condition.width}x{condition.height} but the plan is "
            f"{plan.width}x{plan.height}; connect the same {TREE_SCHEDULER} to {MULTI_MASK_CONDITION} and {BLUEPRINT_SAMPLER}"
        )
    log.info(
        "TempoMaster: sampling at %dx%d (from the first condition image's aspect) instead of the plan's %dx%d",
        condition.width, condition.height, plan.width, plan.height,
    )
    return dataclasses.replace(plan, height=condition.height, width=condition.width)


def _contexts(model: Any, positive: Any, negative: Any, cfg: float) -> tuple:
    """Positive and negative text embeddings for the core; no negative pass when ``cfg == 1``."""
    pos = conditioning_to_context(positive, model, "positive")
    neg = conditioning_to_context(negative, model, "negative") if float(cfg) != 1.0 else None
    return pos, neg


def _check_settings(seed: Any, steps: Any, shift: Any, cfg: Any, guidance: Any, max_batch: Optional[int] = None,
                    anchor_correction: Any = ANCHOR_CORRECTION):
    """The core's :func:`~tempomaster_core.pipeline.check_level_settings` (one rule set for every layer).

    Raises:
        tempomaster_core.validation.InputError: a bad seed, steps, shift, cfg, guidance, max_batch or
            anchor_correction (not a bool).
    """
    from tempomaster_core.pipeline import check_level_settings

    return check_level_settings(steps=steps, shift=shift, cfg=cfg, guidance=guidance, seed=seed, max_batch=max_batch,
                                anchor_correction=anchor_correction)


def _checked_contexts(model: Any, codec: Any, plan: Any, positive: Any, negative: Any, cfg: float) -> tuple:
    """Text contexts from the CONDITIONINGs, checked with the model, VAE and plan
    (:func:`~tempomaster_core.pipeline.check_level_inputs`: shapes, widths, NaN/inf) before any compute."""
    from tempomaster_core.pipeline import check_level_inputs

    pos, neg = _contexts(model, positive, negative, cfg)
    return check_level_inputs(model, codec, plan, pos, neg, cfg)


def _check_devices(model: Any, codec: Any, plan: Any, level_index: int, cfg: float, max_batch: Optional[int],
                   devices: list) -> None:
    """Free memory and check the level's share on every listed GPU (:func:`check_device_memory`, priced
    with the chunks one device denoises at once)."""
    chunks = plan.levels[level_index].num_chunks
    share = -(-chunks // len(devices))
    per_device = min(max_batch or share, share)
    dit = dit_of(model)
    needed = estimate_level_bytes(dit, plan, level_index, cfg, per_device, int(getattr(codec, "spatial_factor", 8)))
    for device in devices:
        if device.type != "cpu":
            comfy_env.free_memory(needed, device)
            check_device_memory(dit, codec, plan, level_index, cfg, per_device, device, needed)


def _run_level(model: Any, codec: Any, plan: Any, level_index: int, settings: Any, devices: list,
               run: Callable[[Any, Any, Optional[NodeProgress]], Any]) -> tuple:
    """Run one level as a sampler node does and return the node outputs.

    Frees memory and moves the DiT to the compute device, calls ``run(dit, codec, progress)`` (the
    core level runner with a :class:`NodeProgress`) -- with two or more ``devices`` once per device
    in threads, each with its model replica (:mod:`nodes.multi_device`) --, logs and reports the
    measured time to the tree view, and parks the DiT on the offload device after the plan's last level.
    ``settings`` is the level's :class:`~tempomaster_core.pipeline.LevelSettings`. A model with
    per-level LoRA strengths runs as this level's clone (:func:`~nodes.comfy_model.for_level`; a
    strengths list that does not match the plan is refused here, before anything moves).
    """
    if devices and is_native_model(model):
        raise InputError(f"the devices input runs replicas of a {TEMPO_MODEL}; with ComfyUI's native MODEL leave it "
                         f"empty (ComfyUI's device), or load the checkpoint with {LOAD_MODEL}")
    model = for_level(model, level_index, plan.num_levels)
    _to_compute_device(model, codec, plan, level_index, settings.cfg, settings.max_batch)
    if devices:
        _check_devices(model, codec, plan, level_index, settings.cfg, settings.max_batch, devices)
    started = time.perf_counter()
    progress = NodeProgress(settings.steps, codec)
    if len(devices) > 1:
        result = run_on_devices(dit_of(model), codec, devices,
                                lambda dit, shared, first: run(dit, shared, progress if first else None))
    else:
        result = run(replicas(dit_of(model), devices)[0] if devices else dit_of(model), codec, progress)
    elapsed = time.perf_counter() - started
    log.info("TempoMaster: level %d done in %.1f s", level_index, elapsed)
    report_level_time(plan, level_index, elapsed, model=dit_of(model), steps=settings.steps, cfg=settings.cfg,
                      max_batch=settings.max_batch)
    if result.is_last:
        _release(model)
    return _outputs(result)


def _outputs(result: Any) -> tuple:
    return (result, result.to_images(), float(result.fps))


def _common_inputs(steps: int, shift: float) -> dict:
    """The widgets every sampler node has: seed, steps, shift, cfg, guidance (the reference's defaults)."""
    return {
        "seed": ("INT", {
            "default": SEED, "min": 0, "max": MAX_SEED, "control_after_generate": True,
            "tooltip": f"Noise seed. The reference code uses the same seed at every level ({SEED} by default).",
        }),
        "steps": ("INT", {
            "default": steps, "min": 1, "max": MAX_SAMPLER_STEPS,
            "tooltip": f"Denoising steps of this level (the reference code's default: {steps}).",
        }),
        "shift": ("FLOAT", {
            "default": shift, "min": 0.01, "max": 100.0, "step": 0.1, "round": 0.01,
            "tooltip": f"Flow-matching schedule shift sigma' = shift*sigma/(1+(shift-1)*sigma); higher spends more "
                       f"steps at high noise (the reference code's default: {shift:g}).",
        }),
        "cfg": ("FLOAT", {
            "default": CFG, "min": 1.0, "max": 30.0, "step": 0.1, "round": 0.01,
            "tooltip": f"Guidance scale (the reference code's default: {CFG:g}). 1 disables guidance and skips the "
                       f"negative prompt. The core refuses values above {MAX_CFG:g}.",
        }),
        "guidance": (list(GUIDANCE_KINDS), {
            "default": GUIDANCE,
            "tooltip": f"apg: adaptive projected guidance (the reference code's default; momentum "
                       f"{APG_MOMENTUM:g}, norm threshold {APG_NORM_THRESHOLD:g}, parallel component removed) - "
                       "fewer oversaturated frames at high cfg. cfg: classic classifier-free guidance.",
        }),
    }


_VAE_TILED = ("BOOLEAN", {
    "default": False,
    "tooltip": "Encode/decode with ComfyUI's tiled VAE (512 px tiles, 64 frames): much less VRAM for long "
               "high-resolution levels, slower, may show faint seams.",
})
ANCHOR_CORRECTION_IN = ("BOOLEAN", {
    "default": ANCHOR_CORRECTION,
    "tooltip": "After decoding, remove from each chunk the smooth part (tint, shading) of the error it leaves on "
               "the frames of the level above, interpolated in time: the background's tint no longer steps at the "
               "chunk seams. Not in the reference (off = its behaviour); on is recommended for "
               f"{BUILTIN_MODEL_NAME} (its defaults.json; measured in its model card).",
})
"""The refinement nodes' ``anchor_correction`` input (:mod:`tempomaster_core.anchor_correction`); optional, so a
workflow saved before it existed loads with the reference's behaviour (:func:`nodes.parsing.optional_input`)."""
_MODEL_IN = (MODEL_SOCKET_TYPES, {
    "tooltip": f"The TempoMaster DiT from {LOAD_MODEL}, or ComfyUI's MODEL of the TempoMaster checkpoint from Load "
               "Diffusion Model (then LoRA, fp8, GGUF and TorchCompile nodes chain on it as on any Wan model)."})
_VAE_IN = ("VAE", {"tooltip": "The video VAE of the model: for the 14B model the Wan 2.1 VAE from Load VAE "
                              f"(wan_2.1_vae.safetensors); for {BUILTIN_MODEL_NAME} the codec from "
                              f"{LOAD_TINY_ENCODERS}."})
_POSITIVE_IN = ("CONDITIONING", {"tooltip": "Prompt from CLIP Text Encode: for the 14B model with the umT5-XXL "
                                           f"CLIP of Load CLIP (type wan); for {BUILTIN_MODEL_NAME} with the CLIP "
                                           f"of {LOAD_TINY_ENCODERS}."})
_NEGATIVE_IN = ("CONDITIONING", {"tooltip": "Negative prompt (used when cfg > 1)."})
_OUTPUT_TOOLTIPS = (
    f"This level's result (frames, latents, plan). Connect it to a {FRAME_RATE_REFINER} to make the next level.",
    "This level's frames as an image batch [frames, height, width, 3] (e.g. to Create Video).",
    "Frame rate of this level in fps (e.g. to Create Video's fps).",
)


class _LevelNode:
    """What both sampler nodes share: their outputs (a level, its images, its fps) and their inputs
    (the model, the level's source, the prompts, the VAE, the sampler widgets, tiled VAE)."""

    CATEGORY = "TempoMaster"
    RETURN_TYPES = (TEMPO_LEVEL, "IMAGE", "FLOAT")
    RETURN_NAMES = ("level", "images", "fps")
    OUTPUT_TOOLTIPS = _OUTPUT_TOOLTIPS

    @staticmethod
    def _required(source: str, source_input: tuple, steps: int, shift: float, **extra: tuple) -> dict:
        """``INPUT_TYPES["required"]``: model, ``source`` (the plan or the level above), positive,
        negative, vae, the sampler widgets at these defaults, ``extra``, tiled_vae."""
        required = {"model": _MODEL_IN, source: source_input, "positive": _POSITIVE_IN, "negative": _NEGATIVE_IN,
                    "vae": _VAE_IN}
        required.update(_common_inputs(steps, shift))
        required.update(extra)
        required["tiled_vae"] = _VAE_TILED
        return required


class BlueprintSampler(_LevelNode):
    """ComfyUI node: generate the blueprint (level 0) of the plan."""

    FUNCTION = "sample"
    DESCRIPTION = (
        "Generates the low-frame-rate blueprint of the whole video in one pass with full bidirectional "
        f"attention (the reference code's defaults: {BLUEPRINT_FRAMES} frames at {FPS / FRAME_INTERVALS[0]:g} fps, {BLUEPRINT_STEPS} "
        f"steps, shift {BLUEPRINT_SHIFT:g}, cfg {CFG:g}, {GUIDANCE.upper()}), conditioned on the "
        f"{MULTI_MASK_CONDITION} frames if connected (else text-to-video)."
    )

    @classmethod
    def INPUT_TYPES(cls):
        plan = (TEMPO_PLAN, {"tooltip": f"The tree from the {TREE_SCHEDULER}."})
        return {
            "required": cls._required("plan", plan, BLUEPRINT_STEPS, BLUEPRINT_SHIFT),
            "optional": {
                "condition": (TEMPO_CONDITION, {
                    "tooltip": f"Known frames from {MULTI_MASK_CONDITION} (first frame, first+last, keyframes). "
                               "Leave unconnected for text-to-video.",
                }),
                "devices": DEVICES_INPUT,
            },
        }

    def sample(self, model, plan, positive, negative, vae, seed: int = SEED, steps: int = BLUEPRINT_STEPS,
               shift: float = BLUEPRINT_SHIFT, cfg: float = CFG, guidance: str = GUIDANCE, tiled_vae: bool = False,
               condition: Optional[TempoCondition] = None, devices: Optional[str] = None):
        """Return ``(level, images [F, H, W, 3] in [0, 1], fps)`` for the blueprint.

        Every input is checked before the VAE encode and before the DiT is moved
        (see the module doc).

        Raises:
            ValueError/TypeError: wrong VAE/text encoder for the model, condition from
                another plan, bad settings (seed, steps, shift, cfg <= 100, guidance), NaN/inf
                text embeddings or condition frames, an unknown or repeated GPU in ``devices``
                (messages from the adapters and the core; value errors are
                ``tempomaster_core.validation.InputError``).
            NotEnoughMemoryError: the level's estimate exceeds the GPU's free memory.
            tempomaster_core.pipeline.NonFiniteError: the run produced NaN/inf (non-finite
                weights, fp16 overflow, extreme cfg).
        """
        from tempomaster_core.conditioning import normalize_condition_frames
        from tempomaster_core.pipeline import run_blueprint

        if condition is not None and not isinstance(condition, TempoCondition):
            raise TypeError(f"condition must come from {MULTI_MASK_CONDITION}, got {type(condition).__name__}")
        settings = _check_settings(seed, steps, shift, cfg, guidance)
        device_list = parse_devices(devices)
        plan = plan_for_condition(plan, condition)
        codec = as_codec(vae, tiled=tiled_vae)
        dit = dit_of(model)
        pos, neg = _checked_contexts(dit, codec, plan, positive, negative, settings.cfg)
        level = plan.levels[0]
        conditions = condition.as_core_conditions() if condition is not None and not condition.is_empty else None
        normalize_condition_frames(conditions, level.num_frames, plan.height, plan.width)
        log.info("TempoMaster: blueprint, %d frames at %g fps, %dx%d, %d steps",
                 level.num_frames, level.fps, plan.width, plan.height, settings.steps)
        return _run_level(model, codec, plan, 0, settings, device_list, lambda dit, codec, progress: run_blueprint(
            dit, codec, pos, neg, plan, settings, conditions=conditions, progress=progress))


class FrameRateRefiner(_LevelNode):
    """ComfyUI node: refine the incoming level to the next frame rate of its plan."""

    FUNCTION = "refine"
    DESCRIPTION = (
        "Multiplies the frame rate of the incoming level (e.g. 6 -> 12 fps): every frame of the level above "
        "is kept as a condition frame, the in-between frames are generated in chunks denoised in parallel "
        f"(the reference code's defaults: {REFINEMENT_STEPS} steps, shift {REFINEMENT_SHIFT:g}, cfg {CFG:g}, "
        f"{GUIDANCE.upper()}). "
        "Chain one refiner per level of the plan."
    )

    @classmethod
    def INPUT_TYPES(cls):
        level = (TEMPO_LEVEL, {
            "tooltip": f"The level above (from the {BLUEPRINT_SAMPLER} or the previous {FRAME_RATE_REFINER}); "
                       "this node makes the next level of its plan.",
        })
        max_parallel_chunks = ("INT", {
            "default": 0, "min": 0, "max": 1024,
            "tooltip": "Chunks denoised per forward pass: 0 = all chunks of the level in one batch (fastest, "
                       "most memory); 1 = one chunk at a time (least memory). The frames are the same for every "
                       "value (bit-identical on CPU; on a GPU, matrix kernels chosen per batch size may change "
                       "the last bits).",
        })
        return {"required": cls._required("level", level, REFINEMENT_STEPS, REFINEMENT_SHIFT,
                                          max_parallel_chunks=max_parallel_chunks),
                "optional": {"devices": DEVICES_INPUT, "anchor_correction": ANCHOR_CORRECTION_IN}}

    def refine(self, model, level, positive, negative, vae, seed: int = SEED, steps: int = REFINEMENT_STEPS,
               shift: float = REFINEMENT_SHIFT, cfg: float = CFG, guidance: str = GUIDANCE,
               max_parallel_chunks: int = 0, tiled_vae: bool = False, devices: Optional[str] = None,
               anchor_correction: Optional[bool] = None):
        """Return ``(level, images [F, H, W, 3] in [0, 1], fps)`` for the next level.

        Every input is checked before the VAE encode and before the DiT is moved
        (see the module doc).

        Raises:
            TypeError: ``level`` is not a TEMPO_LEVEL.
            ValueError: ``level`` is already the plan's last level, bad settings (as the
                BlueprintSampler, plus ``max_parallel_chunks`` an int >= 0, and ``devices``), or the
                adapters/core refuse.
            NotEnoughMemoryError: the level's estimate exceeds the GPU's free memory.
            tempomaster_core.pipeline.NonFiniteError: the run produced NaN/inf.
        """
        from tempomaster_core.pipeline import LevelResult, run_refinement
        from tempomaster_core.validation import require_int

        if not isinstance(level, LevelResult):
            raise TypeError(
                f"level must be a TEMPO_LEVEL from {BLUEPRINT_SAMPLER} or {FRAME_RATE_REFINER}, got {type(level).__name__}"
            )
        plan = level.plan
        index = level.level_index + 1
        if index >= plan.num_levels:
            fps_list = ", ".join(f"{lv.fps:g}" for lv in plan.levels)
            raise ValueError(
                f"this {FRAME_RATE_REFINER} would make level {index}, but the plan has only {plan.num_levels} levels "
                f"({fps_list} fps) and the incoming level ({level.fps:g} fps) is the last one. Remove this "
                f"refiner, or add a frame interval in the {TREE_SCHEDULER} (e.g. 4,2,1 instead of 4,2)."
            )
        max_batch = require_int(max_parallel_chunks, "max_parallel_chunks", minimum=0) or None
        settings = _check_settings(seed, steps, shift, cfg, guidance, max_batch,
                                   optional_input(anchor_correction, ANCHOR_CORRECTION_IN))
        device_list = parse_devices(devices)
        if not bool(torch.isfinite(level.frames).all()):
            raise InputError(f"the incoming level {level.level_index} has NaN or infinite frames; re-run it")
        codec = as_codec(vae, tiled=tiled_vae)
        dit = dit_of(model)
        pos, neg = _checked_contexts(dit, codec, plan, positive, negative, settings.cfg)
        target = plan.levels[index]
        log.info("TempoMaster: level %d of %d, %g -> %g fps, %d frames in %d chunk(s), %d steps",
                 index, plan.num_levels - 1, level.fps, target.fps, target.num_frames, target.num_chunks,
                 settings.steps)
        return _run_level(model, codec, plan, index, settings, device_list, lambda dit, codec, progress: run_refinement(
            dit, codec, level, pos, neg, settings, progress=progress))
