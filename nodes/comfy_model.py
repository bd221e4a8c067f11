"""The DiT as a ComfyUI-managed model: ``comfy.ops`` layers, ModelPatcher, model management, LoRA patches.

Inside ComfyUI (``comfy.model_patcher`` importable) a ``TEMPO_MODEL`` is a
``comfy.model_patcher.ModelPatcher`` around the :class:`~tempomaster_core.model.TempoMasterDiT`
(load device = ComfyUI's compute device, offload device = its UNet offload device); outside it
(unit tests, scripts) it is the bare DiT. :func:`dit_of` gives the DiT in both cases.

With the patcher, ComfyUI treats the DiT like one of its own models:

* the DiT is built from ``comfy.ops`` layers (:func:`operations_for`: ``manual_cast``, or
  ``scaled_fp8_ops()`` for fp8 weights), which ComfyUI's partial loading can leave on the offload
  device and stream per layer (``comfy_cast_weights``), and whose fp8 scale ComfyUI's LoRA
  patching respects (``convert_weight``/``set_weight``);
* before a level, :func:`load_for_level` calls ``comfy.model_management.load_models_gpu([patcher],
  memory_required=...)`` with the level's activation and state bytes from the cost model: ComfyUI
  unloads the text encoder, the VAE or other models as needed and loads the DiT fully or partially;
  after the run (finished or interrupted) the DiT stays registered with ComfyUI, which offloads
  it when another model needs the room;
* LoRAs (:func:`with_lora`) become ModelPatcher patches: ``comfy.lora.load_lora`` with the core's
  :func:`tempomaster_core.lora.lora_key_map`, then ``clone().add_patches(...)``, so ComfyUI applies
  them when it loads the weights (and on the fly for partially loaded layers). A LoRA with one
  strength per level is added per level instead (:func:`for_level`: each sampler node loads a clone
  with that level's strength).

Block swap (:mod:`tempomaster_core.block_swap`) is not used inside ComfyUI: ComfyUI's partial
loading is its own way of keeping part of the weights off the GPU, and two memory managers on one
model would fight.

Not run here (no ComfyUI checkout on the test machine): the real ``comfy.ops``, ``ModelPatcher``,
``load_models_gpu`` and ``comfy.lora``; ``tests/comfy_fakes.py`` stands in for the calls made.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Optional

from tempomaster_core.fp8 import is_fp8_dtype
from tempomaster_core.lora import apply_lora, lora_key_map, parse_lora, unknown_keys_message

from . import comfy_env
from .native_model import NativeWanDiT, is_native_model

log = logging.getLogger("TempoMaster")


def operations_for(weight_dtype, *, fp8_matmul: bool = False) -> Optional[Any]:
    """``comfy.ops`` layer classes for a DiT with ``weight_dtype`` weights, or ``None`` outside ComfyUI
    (the core's default :data:`tempomaster_core.ops.CastOps`).

    fp8: ``comfy.ops.scaled_fp8_ops(fp8_matrix_mult=fp8_matmul)`` (a Linear with a ``scale_weight``,
    cast to the compute dtype per layer, or multiplied in fp8 with ``fp8_matmul``); otherwise
    ``comfy.ops.manual_cast`` (weights cast to the input's dtype).
    A ComfyUI without ``scaled_fp8_ops`` gets the core's layers for fp8 (ComfyUI then cannot stream
    them, a warning says so).
    """
    ops = comfy_env._module("comfy.ops")
    if ops is None:
        return None
    if not is_fp8_dtype(weight_dtype):
        return ops.manual_cast
    scaled = getattr(ops, "scaled_fp8_ops", None)
    if scaled is None:
        log.warning("TempoMaster: this ComfyUI has no comfy.ops.scaled_fp8_ops; fp8 weights use TempoMaster's own "
                    "layers, which ComfyUI cannot partially load or LoRA-patch")
        return None
    return scaled(fp8_matrix_mult=bool(fp8_matmul), scale_input=False, override_dtype=None)


def is_patcher(model: Any) -> bool:
    """True for a ComfyUI ``ModelPatcher`` (what :func:`managed` returns inside ComfyUI)."""
    return all(hasattr(model, name) for name in ("model", "clone", "add_patches", "patch_model"))


def dit_of(model: Any) -> Any:
    """The denoising model the core runs for a sampler's ``model`` input: the
    :class:`~tempomaster_core.model.TempoMasterDiT` of a ``TEMPO_MODEL`` (patcher or bare DiT), or, for ComfyUI's
    native Wan ``MODEL``, a :class:`~nodes.native_model.NativeWanDiT` around its patcher.

    Raises:
        tempomaster_core.validation.InputError: a native ``MODEL`` that is not a TempoMaster-shaped Wan 2.1 DiT
            (:func:`~nodes.native_model.native_config`).
    """
    if is_native_model(model):
        return NativeWanDiT(model)
    return model.model if is_patcher(model) else model


def managed(dit: Any) -> Any:
    """The ``TEMPO_MODEL`` for a loaded DiT: a ``ModelPatcher(dit, load_device, offload_device)``
    inside ComfyUI, the DiT itself outside."""
    patcher_module = comfy_env._module("comfy.model_patcher")
    if patcher_module is None:
        return dit
    return patcher_module.ModelPatcher(dit, load_device=comfy_env.compute_device(),
                                       offload_device=comfy_env.offload_device())


def load_for_level(patcher: Any, inference_bytes: int) -> None:
    """Have ComfyUI load the DiT for a level: ``load_models_gpu([patcher], memory_required=inference_bytes)``.

    Args:
        patcher: the ``ModelPatcher`` of :func:`managed`.
        inference_bytes: memory the level needs besides the weights (activations, latents and
            guidance state, or the VAE's working set: the cost model's peak minus the weights).
    """
    mm = comfy_env._module("comfy.model_management")
    mm.load_models_gpu([patcher], memory_required=int(max(0, inference_bytes)))


LEVEL_LORAS = "tempomaster_level_loras"
"""Attribute of a ``ModelPatcher`` made by :func:`with_lora`: ``((patches, strengths, name), ...)``, the
LoRAs whose strength changes per level (ComfyUI's loaded patches, one strength per level), added
to a clone per level by :func:`for_level`; the other LoRAs are the patcher's own patches."""


def with_lora(model: Any, lora: dict, strength, name: str) -> Any:
    """A ``TEMPO_MODEL`` with a LoRA added (the input model is not changed).

    The LoRA is checked first with the core's :func:`tempomaster_core.lora.parse_lora` (a LoRA for
    another model is refused; keys matching no layer are listed in one warning). Inside ComfyUI
    it becomes patches of a clone of the ModelPatcher (``comfy.lora.load_lora`` +
    ``add_patches``) -- or, with one strength per level (a tuple), is kept in :data:`LEVEL_LORAS`
    for :func:`for_level`; outside ComfyUI a copy of the DiT gets it from
    :func:`tempomaster_core.lora.apply_lora` (per-level strengths there are the core's level hooks).

    Args:
        strength: a float, or a tuple with one strength per level of the plan, blueprint first.

    Raises:
        tempomaster_core.lora.LoraError: see :func:`~tempomaster_core.lora.parse_lora`.
    """
    dit = dit_of(model)
    _patches, unknown = parse_lora(lora, dit, name)
    if unknown:
        log.warning("TempoMaster: %s", unknown_keys_message(name, unknown))
    if is_patcher(model):
        comfy_lora = comfy_env._module("comfy.lora")
        loaded = comfy_lora.load_lora(lora, lora_key_map(dit))
        patched = model.clone()
        level_loras = tuple(getattr(model, LEVEL_LORAS, ()))
        if isinstance(strength, tuple):
            level_loras += ((loaded, strength, name),)
        else:
            patched.add_patches(loaded, float(strength))
        setattr(patched, LEVEL_LORAS, level_loras)  # carried by every clone this module makes
        return patched
    patched = copy.deepcopy(dit)
    apply_lora(patched, lora, strength, name=name, warn=False)
    return patched


def for_level(model: Any, level_index: int, num_levels: int) -> Any:
    """The ``TEMPO_MODEL`` to run level ``level_index`` of a ``num_levels``-level plan with, checked
    before any compute.

    A patcher with per-level LoRAs (:data:`LEVEL_LORAS`) gives a clone with each of them added at
    this level's strength (ComfyUI re-patches the weights when it loads the clone); a bare DiT runs
    its level hooks (:meth:`tempomaster_core.model.TempoMasterDiT.start_level`: the core's per-level
    strengths); anything else is returned as it is.

    Raises:
        tempomaster_core.validation.InputError: a list of per-level strengths of another length than
            the plan's levels.
    """
    from tempomaster_core.level_settings import per_level
    from tempomaster_core.validation import InputError

    if not is_patcher(model):
        start_level = getattr(model, "start_level", None)
        if callable(start_level):
            start_level(level_index, num_levels)
        return model
    level_loras = getattr(model, LEVEL_LORAS, ())
    if not level_loras:
        return model
    clone = model.clone()
    for loaded, strengths, name in level_loras:
        strength = per_level(strengths, f"the strengths of the LoRA {name}", num_levels, error=InputError)[level_index]
        clone.add_patches(loaded, float(strength))
    return clone
