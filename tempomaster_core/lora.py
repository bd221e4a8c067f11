"""LoRA for the TempoMaster DiT: Wan 2.1 14B LoRA files in their common key layouts.

A LoRA adds a low-rank update to a layer's weight::

    W' = W + strength * (alpha / rank) * up @ down        (up: [out, rank], down: [rank, in])

(``alpha`` from the file's ``<layer>.alpha``; without it ``alpha = rank``). Full differences
``<layer>.diff`` (weight) and ``<layer>.diff_b`` (bias) add ``strength * diff``; some Wan LoRAs carry
them for norms, biases and the adaLN modulation.

Key layouts read (:func:`lora_key_map`), for every layer the DiT has:

* module names: Wan's own (``blocks.0.self_attn.q``, as the checkpoint) or diffusers'
  ``WanTransformer3DModel`` (``blocks.0.attn1.to_q``, ``ffn.net.0.proj``, ``norm2`` for Wan's
  ``norm3``, ``condition_embedder.time_proj``, ``proj_out``, ``scale_shift_table`` ...);
* dotted with a prefix: none, ``diffusion_model.`` (ComfyUI, musubi-tuner), ``model.diffusion_model.``,
  ``transformer.`` (diffusers), ``base_model.model.`` (peft); or underscored (kohya):
  ``lora_unet_blocks_0_self_attn_q`` (also ``lora_unet__``, as in Wan-Fun LoRAs, and
  ``lora_transformer_``, ``lycoris_``);
* weights: ``lora_down.weight``/``lora_up.weight`` (kohya, ComfyUI) or ``lora_A.weight``/
  ``lora_B.weight`` (peft, diffusers; A = down, B = up), optional ``alpha``; ``diff``, ``diff_b``.

Keys that match no layer are listed in one warning (and in :attr:`LoraReport.unknown`), never
dropped silently; a LoRA whose layers have other shapes (another Wan size, e.g. a 1.3B LoRA on
the 14B) or of which no key matches is refused with :class:`LoraError` before any weight
changes. ``dora_scale`` (DoRA) and LoHa/LoKr keys are not supported and are listed as unknown.

How the update is applied (:func:`apply_lora`):

* weights stored in bf16/fp16/fp32 are **merged**: ``W' `` computed in float32 and stored in
  the weight's dtype (no cost per forward);
* fp8-stored weights (:mod:`tempomaster_core.fp8`) get the update **at every forward** on the
  dequantised compute-dtype weight (a :class:`LoraDelta` in the layer's ``weight_functions``),
  because re-quantising ``W'`` to fp8 rounds most of a LoRA's change away: for a rank-16 update of
  3 % of ``|W|`` (``N(0, 0.013**2)`` weights), quantise(W + delta) - quantise(W) misses the delta by
  63 % of its norm in e4m3fn (measured). The cost is one ``[out, rank] @ [rank, in]`` product per
  layer and forward (under 0.1 % of a 14B forward's FLOPs at rank 32) and the factors' memory.

Inside ComfyUI the nodes apply LoRAs through ComfyUI's own machinery (``comfy.lora.load_lora``
with :func:`lora_key_map`, then ``ModelPatcher.add_patches``) instead.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

import torch
import torch.nn as nn

from .fp8 import is_fp8_dtype

# -- key layouts -----------------------------------------------------------------------------

_BLOCK_ALIASES = {  # Wan name inside a block -> diffusers WanTransformer3DModel name
    "self_attn.q": "attn1.to_q", "self_attn.k": "attn1.to_k", "self_attn.v": "attn1.to_v",
    "self_attn.o": "attn1.to_out.0", "self_attn.norm_q": "attn1.norm_q", "self_attn.norm_k": "attn1.norm_k",
    "cross_attn.q": "attn2.to_q", "cross_attn.k": "attn2.to_k", "cross_attn.v": "attn2.to_v",
    "cross_attn.o": "attn2.to_out.0", "cross_attn.norm_q": "attn2.norm_q", "cross_attn.norm_k": "attn2.norm_k",
    "ffn.0": "ffn.net.0.proj", "ffn.2": "ffn.net.2", "norm3": "norm2", "modulation": "scale_shift_table",
}
_TOP_ALIASES = {
    "time_embedding.0": "condition_embedder.time_embedder.linear_1",
    "time_embedding.2": "condition_embedder.time_embedder.linear_2",
    "text_embedding.0": "condition_embedder.text_embedder.linear_1",
    "text_embedding.2": "condition_embedder.text_embedder.linear_2",
    "time_projection.1": "condition_embedder.time_proj",
    "head.head": "proj_out",
    "head.modulation": "scale_shift_table",
}

DOTTED_PREFIXES = ("", "diffusion_model.", "model.diffusion_model.", "transformer.", "base_model.model.")
"""Prefixes of dotted LoRA layer names."""

UNDERSCORE_PREFIXES = ("lora_unet_", "lora_unet__", "lora_transformer_", "lycoris_")
"""Prefixes of kohya-style LoRA layer names (dots replaced by underscores)."""

_UP = (".lora_up.weight", ".lora_B.weight", ".lora_B.default.weight")
_DOWN = (".lora_down.weight", ".lora_A.weight", ".lora_A.default.weight")
_OTHER = (".alpha", ".diff_b", ".diff")
_SUFFIXES = _UP + _DOWN + _OTHER

_KNOWN_WIDTHS = {1536: "Wan 2.1 1.3B", 3072: "Wan 2.2 5B", 5120: "Wan 2.x 14B"}


class LoraError(ValueError):
    """A LoRA that cannot be applied to this DiT (the message says why and what to do)."""


def _aliases(name: str) -> list[str]:
    """Wan and diffusers names of a layer or parameter (reference name without ``.weight``)."""
    names = [name]
    if name in _TOP_ALIASES:
        names.append(_TOP_ALIASES[name])
    parts = name.split(".", 2)
    if len(parts) == 3 and parts[0] == "blocks" and parts[2] in _BLOCK_ALIASES:
        names.append(f"blocks.{parts[1]}.{_BLOCK_ALIASES[parts[2]]}")
    return names


def lora_key_map(model_or_names) -> dict[str, str]:
    """``{LoRA layer name: model parameter name}`` for every layout of the module doc.

    Args:
        model_or_names: a DiT (its ``state_dict`` names are used) or an iterable of parameter names.

    Returns:
        e.g. ``"diffusion_model.blocks.0.self_attn.q" -> "blocks.0.self_attn.q.weight"``,
        ``"lora_unet_blocks_0_attn1_to_q" -> "blocks.0.self_attn.q.weight"``,
        ``"transformer.blocks.0.scale_shift_table" -> "blocks.0.modulation"``. Names of weights map
        to ``<layer>.weight`` (a ``diff_b`` applies to ``<layer>.bias``), other parameters to
        themselves. This is the ``key_map`` ComfyUI's ``comfy.lora.load_lora`` takes.
    """
    names = model_or_names.state_dict().keys() if isinstance(model_or_names, nn.Module) else model_or_names
    out: dict[str, str] = {}
    for param in names:
        if param.endswith(".bias") or param.endswith(".scale_weight"):
            continue
        layer = param[: -len(".weight")] if param.endswith(".weight") else param
        for alias in _aliases(layer):
            for prefix in DOTTED_PREFIXES:
                out[prefix + alias] = param
            flat = alias.replace(".", "_")
            for prefix in UNDERSCORE_PREFIXES:
                out[prefix + flat] = param
    return out


# -- parsing ---------------------------------------------------------------------------------


@dataclass
class LoraPatch:
    """The update of one parameter: low-rank factors and/or full differences (float tensors).

    Attributes:
        target: model parameter name (``blocks.0.self_attn.q.weight``, ``blocks.0.modulation``).
        up: ``[out, rank, ...]`` or ``None``; down: ``[rank, in, ...]`` or ``None``.
        alpha: the file's alpha, or ``None`` (= rank).
        diff: a full difference shaped like the parameter (``diff``; ``diff_b`` for a bias), or ``None``.
        keys: the file's keys this patch was read from.
    """

    target: str
    up: Optional[torch.Tensor] = None
    down: Optional[torch.Tensor] = None
    alpha: Optional[float] = None
    diff: Optional[torch.Tensor] = None
    keys: tuple = ()

    @property
    def scale(self) -> float:
        """``alpha / rank`` (1 without alpha or factors)."""
        if self.down is None or self.alpha is None:
            return 1.0
        return float(self.alpha) / self.down.shape[0]

    def delta(self, dtype=torch.float32) -> torch.Tensor:
        """``scale * up @ down`` (+ ``diff``) shaped ``[out, in, ...]`` like the weight, in ``dtype``."""
        delta = None
        if self.up is not None:
            delta = (self.up.flatten(1).float() @ self.down.flatten(1).float()) * self.scale
        if self.diff is not None:
            delta = self.diff.float() if delta is None else delta.reshape(self.diff.shape) + self.diff.float()
        return delta.to(dtype)


@dataclass(frozen=True)
class LoraReport:
    """What :func:`apply_lora` did.

    Attributes:
        name: the LoRA's name (file name or ``"LoRA"``).
        strength: the strength used (a float, or one per level as a tuple).
        patched: model parameters changed (sorted).
        unknown: keys of the file that match no layer of the DiT (sorted).
        on_the_fly: parameters whose update runs at every forward (fp8-stored weights).
    """

    name: str
    strength: object
    patched: tuple
    unknown: tuple
    on_the_fly: tuple = ()


def _few(names, n: int = 6) -> str:
    names = list(names)
    shown = ", ".join(names[:n])
    return shown + (f" (+{len(names) - n} more)" if len(names) > n else "")


def _width_hint(size: int) -> str:
    return f" (width {size}: {_KNOWN_WIDTHS[size]}?)" if size in _KNOWN_WIDTHS else ""


def _check_shapes(patch: LoraPatch, shape: torch.Size, name: str) -> None:
    """Raises :class:`LoraError` when the patch cannot update a parameter of ``shape``."""
    problem = None
    if (patch.up is None) != (patch.down is None):
        problem = "has only one of the two LoRA factors (up/B and down/A)"
    elif patch.up is not None:
        up, down = patch.up.flatten(1), patch.down.flatten(1)
        if up.shape[1] != down.shape[0]:
            problem = f"has factors of ranks {up.shape[1]} and {down.shape[0]}"
        elif len(shape) < 2 or up.shape[0] != shape[0] or down.shape[1] != math.prod(shape[1:]):
            problem = (f"updates a [{up.shape[0]} x {down.shape[1]}] weight, the model's is {list(shape)}"
                       + _width_hint(up.shape[0]))
    if problem is None and patch.diff is not None and tuple(patch.diff.shape) != tuple(shape):
        problem = f"has a diff of shape {list(patch.diff.shape)}, the model's weight is {list(shape)}"
    if problem is not None:
        raise LoraError(f"{name}: layer {patch.target!r} {problem}; this LoRA is for another model. "
                        "TempoMaster takes LoRAs trained for the Wan 2.1 14B DiT.")


def parse_lora(lora: Mapping[str, torch.Tensor], model: nn.Module, name: str = "LoRA") -> tuple[dict, list]:
    """Match a LoRA state dict to the DiT's parameters and check every shape.

    Args:
        lora: ``{key: tensor}`` of a LoRA file (any layout of the module doc).
        model: the DiT it is for.
        name: for messages.

    Returns:
        ``(patches, unknown)``: ``{parameter name: LoraPatch}`` and the sorted keys that match nothing.

    Raises:
        LoraError: a shape that does not fit (another model), a lone factor, a non-tensor entry, or
            no key matching any layer.
    """
    key_map = lora_key_map(model)
    params = dict(model.named_parameters())
    patches: dict[str, LoraPatch] = {}
    unknown = []
    for key, value in lora.items():
        if not torch.is_tensor(value):
            raise LoraError(f"{name}: entry {key!r} is a {type(value).__name__}, not a tensor; not a LoRA file")
        suffix = next((s for s in _SUFFIXES if key.endswith(s)), None)
        target = key_map.get(key[: -len(suffix)]) if suffix else None
        if suffix == ".diff_b" and target is not None:
            target = target[: -len(".weight")] + ".bias" if target.endswith(".weight") else None
        if target is None or target not in params:
            unknown.append(key)
            continue
        patch = patches.setdefault(target, LoraPatch(target))
        patch.keys += (key,)
        if suffix in _UP:
            patch.up = value
        elif suffix in _DOWN:
            patch.down = value
        elif suffix == ".alpha":
            patch.alpha = float(value.float().reshape(-1)[0])
        else:  # diff, or diff_b (its target is the bias)
            patch.diff = value
    alpha_only = [t for t, p in patches.items() if p.up is None and p.diff is None]
    for target in alpha_only:  # an alpha without factors updates nothing
        unknown.extend(patches.pop(target).keys)
    if not patches:
        raise LoraError(
            f"{name}: none of its {len(lora)} keys matches a layer of the TempoMaster DiT (keys look like "
            f"{_few(sorted(lora), 3)}); it is not a LoRA for a Wan 2.1 14B DiT, or its layout is unknown"
        )
    for target, patch in patches.items():
        _check_shapes(patch, params[target].shape, name)
    return patches, sorted(unknown)


# -- applying --------------------------------------------------------------------------------


class LoraDelta:
    """A weight function ``W -> W + strength * scale * up @ down`` (+ ``strength * diff``) for layers
    with ``weight_functions`` (:class:`tempomaster_core.ops.CastLinear`): the LoRA update of an
    fp8-stored weight, or of any weight whose strength changes per level, computed at every forward
    on the cast weight (in its dtype and device). At strength 0 the weight is returned unchanged.

    Args:
        patch: the :class:`LoraPatch`; its factors (or diff) are kept in float32 on ``device``.
        strength: multiplies the update (:attr:`strength` may be changed between forwards).
        device: where the factors live (the weight's device).
    """

    def __init__(self, patch: LoraPatch, strength: float, device):
        self.strength = float(strength)
        self.scale = patch.scale
        self.up = None if patch.up is None else patch.up.flatten(1).float().to(device)
        self.down = None if patch.down is None else patch.down.flatten(1).float().to(device)
        self.diff = None if patch.diff is None else patch.diff.float().to(device)

    def __call__(self, weight: torch.Tensor) -> torch.Tensor:
        if self.strength == 0:
            return weight
        delta = 0
        if self.up is not None:
            up, down = self.up.to(weight.device), self.down.to(weight.device)
            delta = ((up * (self.strength * self.scale)) @ down).reshape(weight.shape)
        if self.diff is not None:
            delta = delta + self.strength * self.diff.to(weight.device)
        return weight + delta.to(weight.dtype)


class LevelStrengths:
    """A LoRA's strength per level of the tree, set when a level starts (a DiT level hook,
    :meth:`tempomaster_core.model.TempoMasterDiT.register_level_hook`).

    Weights with ``weight_functions`` get a :class:`LoraDelta` whose strength is switched; any
    other patched parameter (a bias, an adaLN ``modulation`` table: vectors) keeps its original
    value and is set to ``original + strength * delta`` at each level, so strength 0 gives the
    original exactly.

    Args:
        name: the LoRA's name (for messages).
        strengths: one strength per level, blueprint first, or one for all levels (finite floats).
        deltas: the :class:`LoraDelta` of the on-the-fly weights.
        merged: ``[(parameter, original value, float32 delta)]`` of the other parameters.
    """

    def __init__(self, name: str, strengths, deltas: list, merged: list):
        self.name = name
        self.strengths = strengths
        self.deltas = deltas
        self.merged = merged

    def __call__(self, level_index: int, num_levels: int) -> None:
        """Set the strengths of level ``level_index`` of a ``num_levels``-level tree.

        Raises:
            InputError: the strengths list has another length than ``num_levels``.
        """
        from .level_settings import per_level
        from .validation import InputError

        strength = float(per_level(self.strengths, f"the strengths of the LoRA {self.name}", num_levels,
                                   error=InputError)[level_index])
        for delta in self.deltas:
            delta.strength = strength
        with torch.no_grad():
            for param, original, delta in self.merged:
                param.copy_((original.float() + strength * delta.to(param.device)).to(param.dtype))


def unknown_keys_message(name: str, unknown) -> str:
    """The one warning about a LoRA's keys that match no layer (listing the first few)."""
    return f"{name}: {len(unknown)} keys match no layer of the TempoMaster DiT and were not applied: {_few(unknown)}"


def load_lora_file(path) -> dict[str, torch.Tensor]:
    """Read a LoRA ``.safetensors`` file (on the CPU).

    Raises:
        FileNotFoundError: no such file.
        LoraError: not a safetensors file, or unreadable.
    """
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LoRA file not found: {path}")
    try:
        return load_file(os.fspath(path), device="cpu")
    except Exception as err:  # SafetensorError, OSError
        raise LoraError(f"cannot read the LoRA {path.name}: {str(err)[:200]}; LoRAs must be .safetensors files") from err


def _strengths(strength, name: str):
    """A finite float, or a tuple of finite floats (one per level); LoraError otherwise."""
    values = strength if isinstance(strength, (list, tuple)) else [strength]
    out = []
    for value in values:
        try:
            value = float(value)
        except (TypeError, ValueError):
            value = float("nan")
        if not math.isfinite(value):
            raise LoraError(f"{name}: strength must be a finite number (or one per level), got {strength!r}")
        out.append(value)
    if not out:
        raise LoraError(f"{name}: give at least one strength")
    return tuple(out) if isinstance(strength, (list, tuple)) else out[0]


def apply_lora(model: nn.Module, lora, strength=1.0, *, name: Optional[str] = None,
               warn: bool = True) -> LoraReport:
    """Apply a LoRA to a DiT in place (see the module doc for merged vs on-the-fly).

    Args:
        model: a :class:`~tempomaster_core.model.TempoMasterDiT` (any device, dtype, fp8 included).
        lora: a LoRA state dict or a path to a ``.safetensors`` LoRA.
        strength: multiplies the update (1 = as trained; 0 changes nothing; negative inverts it); or
            a list with one strength per level of the tree, blueprint first (e.g. ``[1, 0, 0]``: a
            style LoRA on the blueprint only). Per-level strengths are applied at every forward
            (:class:`LevelStrengths`, set by the level runners when a level starts); the list must
            have one entry per level of the plan it runs (checked when the first level starts).
        name: for messages (default: the file name).
        warn: issue one ``UserWarning`` listing the keys that match no layer.

    Returns:
        a :class:`LoraReport` (``strength`` as given: a float or a tuple).

    Raises:
        LoraError: see :func:`parse_lora`; a non-finite strength; fp8 weights (or per-level strengths)
            in layers that cannot take an update per forward (no ``weight_functions``); per-level
            strengths on a model without level hooks. Raised before any weight changes.
        FileNotFoundError: a missing file.
    """
    if isinstance(lora, (str, os.PathLike)):
        name = name or Path(lora).name
        lora = load_lora_file(lora)
    name = name or "LoRA"
    strength = _strengths(strength, name)
    per_level = isinstance(strength, tuple)
    if per_level and not callable(getattr(model, "register_level_hook", None)):
        raise LoraError(f"{name}: per-level strengths need a TempoMaster DiT (level hooks); "
                        f"{type(model).__name__} has none")
    patches, unknown = parse_lora(lora, model, name)
    modules = dict(model.named_modules())
    params = dict(model.named_parameters())

    def functions(target):
        layer = modules[target.rsplit(".", 1)[0]] if "." in target else model
        hooks = getattr(layer, "weight_functions", None)
        return hooks if target.endswith(".weight") and isinstance(hooks, list) else None

    on_the_fly = []
    for target in patches:
        if is_fp8_dtype(params[target].dtype) or (per_level and functions(target) is not None):
            if functions(target) is None:
                layer = modules[target.rsplit(".", 1)[0]]
                raise LoraError(f"{name}: {target} is stored in fp8 in a {type(layer).__name__}, which cannot add "
                                "a LoRA per forward; load the DiT with tempomaster_core.ops.CastOps")
            on_the_fly.append(target)
    deltas, merged = [], []
    first = strength[0] if per_level else strength
    with torch.no_grad():
        for target, patch in patches.items():
            param = params[target]
            if target in on_the_fly:
                delta = LoraDelta(patch, first, param.device)
                functions(target).append(delta)
                deltas.append(delta)
                continue
            change = patch.delta().to(param.device).reshape(param.shape)
            if per_level:
                merged.append((param, param.detach().clone(), change))
            param.copy_((param.float() + first * change).to(param.dtype))
    if per_level:
        model.register_level_hook(LevelStrengths(name, strength, deltas, merged))
    if unknown and warn:
        warnings.warn(unknown_keys_message(name, unknown), UserWarning, stacklevel=2)
    return LoraReport(name, strength, tuple(sorted(patches)), tuple(unknown), tuple(sorted(on_the_fly)))
