"""LoadTempoModel: a TempoMaster DiT from ComfyUI's ``diffusion_models`` folder.

The list comes from :func:`available_models`: the built-in TempoMaster-Tiny
model first (when its files are installed, see ``nodes/builtin_nodes.py``),
then the files of ComfyUI's ``diffusion_models`` folder. Loading goes through
``tempomaster_core.loading.load_dit`` (safetensors / .bin / .pt, any common key
prefix, meta-device construction so a 14B checkpoint never needs two copies in
RAM). The loaded model is parked on ComfyUI's offload device (the CPU normally).
Inside ComfyUI the DiT is built from ``comfy.ops`` layers and returned wrapped in a
ModelPatcher, so ComfyUI's model management loads it (fully or partially) and
offloads it like its own models (``nodes/comfy_model.py``); outside ComfyUI the
sampler nodes move the bare DiT themselves.

Weight dtypes: bf16 / fp16 / fp32, or fp8_e4m3fn / fp8_e5m2 (the blocks' linear
weights in one byte with a per-tensor scale, computed in bf16; ComfyUI's
``*_fp8_e4m3fn_scaled`` files load too; ``tempomaster_core.fp8``).

Options: ``fp8_matmul`` (fp8_e4m3fn weights multiplied on fp8 tensor cores,
``tempomaster_core.fp8``; refused before loading where the device has none) and
``torch_compile`` (torch.compile per block, ``tempomaster_core.compiling``; compilations and
recompiles logged).

Caching: ComfyUI already re-uses a node's output while its inputs do not
change. In addition the last loaded model is kept in a one-entry cache keyed
by (file path, size, modification time, dtype, fp8 matmul), so a duplicated loader node or
a re-queued graph does not load 28.6 GB twice; loading a different file drops
the previous model first. A changed attention backend or compile switch is applied to the
cached model without reloading.
"""

from __future__ import annotations

import logging
import os
from typing import Any, NamedTuple, Optional

import torch
from tempomaster_core.attention import BACKENDS, DEFAULT_BACKEND
from tempomaster_core.config import DiTConfig
from tempomaster_core.continuation_settings import ContinuationSettings
from tempomaster_core.defaults import WEIGHT_DTYPE
from tempomaster_core.loading import (RELEASE_FILE, RELEASE_REPO, RELEASE_URL, STORAGE_DTYPES, load_dit, parse_dtype,
                                      read_config)
from tempomaster_core.trained_limits import TrainedLimits
from tempomaster_core.validation import require_choice

from . import comfy_env
from .builtin_nodes import BUILTIN_MODEL_NAME, tiny_available, tiny_directory, tiny_dit_path, tiny_text_length
from .comfy_model import managed, operations_for
from .display_names import LOAD_MODEL, LOAD_TINY_ENCODERS
from .types import TEMPO_MODEL

log = logging.getLogger("TempoMaster")

#: ComfyUI model folder the checkpoints live in.
MODEL_FOLDER = "diffusion_models"

_cache: dict[tuple, Any] = {}
_config_cache: dict[tuple, DiTConfig] = {}
_CONFIG_CACHE_SIZE = 8


def available_models() -> list[str]:
    """Names offered by LoadTempoModel: :data:`BUILTIN_MODEL_NAME` first when the built-in
    TempoMaster-Tiny bundle is installed (``nodes.builtin_nodes.tiny_available``), then the
    files of ComfyUI's ``models/diffusion_models/`` (none outside ComfyUI)."""
    builtin = [BUILTIN_MODEL_NAME] if tiny_available() else []
    return builtin + comfy_env.model_folder_files(MODEL_FOLDER)


def resolve_model_path(name: str) -> str:
    """Full path of a model name from :func:`available_models` (or an existing file path).

    :data:`BUILTIN_MODEL_NAME` resolves to the built-in bundle's ``dit.safetensors``.

    Raises:
        FileNotFoundError: the name is neither in ComfyUI's folder nor a file (or the
            built-in bundle is not installed); the message says where the checkpoint belongs.
    """
    if name == BUILTIN_MODEL_NAME:
        return str(tiny_dit_path())
    path = comfy_env.model_folder_path(MODEL_FOLDER, name)
    if path is None and os.path.isfile(name):
        path = name
    if path is None or not os.path.isfile(path):
        raise FileNotFoundError(missing_model_message(name))
    return path


def missing_model_message(name: str) -> str:
    """What to download and where to put it, for a ``model_name`` that is not there.

    Names the released file (:data:`tempomaster_core.loading.RELEASE_FILE`, its URL and size),
    the folder ComfyUI reads (its first ``diffusion_models`` directory), the optional conversion,
    the refresh, and what is there now (or the built-in model, when the folder is empty).
    """
    from tempomaster_core.config import DiTConfig
    from tempomaster_core.cost import dit_weight_bytes

    dirs = comfy_env.model_folder_dirs(MODEL_FOLDER)  # ComfyUI lists the legacy models/unet first
    named = [d for d in dirs if os.path.basename(os.path.normpath(d)) == MODEL_FOLDER]
    where = (named or dirs or [f"ComfyUI/models/{MODEL_FOLDER}/"])[0]
    size = dit_weight_bytes(DiTConfig(), WEIGHT_DTYPE) / 1e9
    text = (f"TempoMaster model {name!r} is not in {where}. Download the TempoMaster DiT {RELEASE_FILE} "
            f"({size:.1f} GB, {WEIGHT_DTYPE}) from {RELEASE_URL} into {where}: it loads as it is (or convert it once to "
            f"safetensors with `python -m tempomaster_core.convert {RELEASE_FILE} tempomaster_dit_bf16.safetensors`). "
            f"Then press R (refresh) and pick it in {LOAD_MODEL}.")
    present = comfy_env.model_folder_files(MODEL_FOLDER)
    if present:
        text += f" Files there now: {', '.join(present[:8])}{' ...' if len(present) > 8 else ''}."
    elif tiny_available():
        text += f" To try the pack without a download, pick {BUILTIN_MODEL_NAME!r}."
    return text


def load_model_cached(path: str, dtype: torch.dtype, attention_backend: str, device: Any = None, *,
                      text_len: Optional[int] = None, fp8_matmul: bool = False, torch_compile: bool = False) -> Any:
    """Load (or re-use) a TempoMaster DiT.

    Args:
        path: checkpoint file.
        dtype: weight dtype (``torch.bfloat16`` for the released model).
        attention_backend: one of :data:`tempomaster_core.attention.BACKENDS`.
        device: where to place the weights (default: ComfyUI's offload device / CPU).
        text_len: token slots of the text context (``DiTConfig.text_len``, see ``load_dit``);
            ``None`` = as the checkpoint records it.
        fp8_matmul: fp8 layers multiply in fp8 (ComfyUI's ``scaled_fp8_ops(fp8_matrix_mult=True)``
            inside ComfyUI, :func:`tempomaster_core.fp8.enable_fp8_matmul` outside); checked by the
            caller (:func:`tempomaster_core.fp8.require_fp8_matmul`). Part of the cache key.
        torch_compile: compile each block (:func:`tempomaster_core.compiling.compile_blocks`, every
            compilation logged); switched on the cached model without reloading, like the backend.

    Returns:
        a ``TempoMasterDiT`` in eval mode.

    Raises:
        tempomaster_core.loading.CheckpointError: not a (complete) TempoMaster checkpoint.
    """
    from tempomaster_core.compiling import compile_blocks, is_compiled, uncompile_blocks
    from tempomaster_core.fp8 import enable_fp8_matmul

    key = _file_key(path) + (str(dtype), text_len, bool(fp8_matmul))
    entry = _cache.get(key)
    if entry is None:
        _cache.clear()  # drop the previous model before loading another one
        comfy_env.soft_empty_cache()
        target = torch.device(device) if device is not None else comfy_env.offload_device()
        log.info("TempoMaster: loading %s as %s on %s", path, dtype, target)
        operations = operations_for(dtype, fp8_matmul=fp8_matmul)
        model = load_dit(path, dtype=dtype, device=target, attention_backend=attention_backend, text_len=text_len,
                         operations=operations)
        if fp8_matmul and operations is None:  # the core's layers (outside ComfyUI)
            enable_fp8_matmul(model, comfy_env.compute_device())
        model.eval()
        entry = _cache[key] = (model, attention_backend)
    model, requested = entry
    if requested != attention_backend:
        model.set_attention_backend(attention_backend)
        _cache[key] = (model, attention_backend)
    if torch_compile and not is_compiled(model):
        compile_blocks(model, log=lambda line: log.info("TempoMaster: %s", line))
    elif not torch_compile and is_compiled(model):
        uncompile_blocks(model)
    return model


def clear_cache() -> None:
    """Forget the cached model (frees its memory once no graph output holds it)."""
    _cache.clear()


def cached_models() -> list[torch.nn.Module]:
    """The DiTs this loader keeps loaded (at most one), wherever their weights are."""
    return [model for model, _backend in list(_cache.values())]


def _file_key(path: str) -> tuple:
    stat = os.stat(path)
    return os.path.realpath(path), stat.st_size, stat.st_mtime_ns


class DeclaredSettings(NamedTuple):
    """What a model declares in its settings for planning (:func:`declared_settings`).

    Attributes:
        limits: what it was trained on (:class:`~tempomaster_core.trained_limits.TrainedLimits`: frame
            intervals, clip length in pixel frames).
        continuation: how it continues a video
            (:class:`~tempomaster_core.continuation_settings.ContinuationSettings`: seconds of context, new
            frames per segment).
    """

    limits: TrainedLimits
    continuation: ContinuationSettings


def declared_settings(model_name: str) -> Optional[DeclaredSettings]:
    """What the model ``model_name`` (a LoadTempoModel choice) declares in its settings, read without loading
    weights: for :data:`BUILTIN_MODEL_NAME` the bundle's ``defaults.json``
    (:func:`tempomaster_core.tiny.builtin.bundle_defaults` of :func:`~nodes.builtin_nodes.tiny_directory`): its
    training limits (``trained_frame_intervals`` / ``trained_chunk_frames``,
    :func:`tempomaster_core.tiny.builtin.bundle_limits`) and continuation settings (``context_seconds`` /
    ``segment_new_frames``; the built-in model's 1.54 s and 63 frames where the file has none); ``None`` for a
    checkpoint file, which declares none (the planner then uses the released TempoMaster's: its limits and the
    paper's continuation). The loader gives its output these
    (:attr:`tempomaster_core.model.TempoMasterDiT.trained_limits`,
    :attr:`~tempomaster_core.model.TempoMasterDiT.continuation_settings`); the tree view's route reads the same.

    Raises:
        FileNotFoundError, OSError, ValueError: the built-in bundle's settings are missing, unreadable or not
            valid (the message names the file).
    """
    if model_name != BUILTIN_MODEL_NAME:
        return None
    from tempomaster_core.tiny.builtin import DEFAULTS_FILE, bundle_defaults, bundle_limits

    directory = tiny_directory()
    defaults = bundle_defaults(directory)
    continuation = ContinuationSettings.from_settings(defaults, str(directory / DEFAULTS_FILE))
    return DeclaredSettings(bundle_limits(directory, defaults), continuation)


def model_config(model_name: str) -> DiTConfig:
    """The shape of the DiT that ``model_name`` (a LoadTempoModel choice) names, without loading it.

    The config of the model this loader holds for that file if it is loaded (the loader's
    output), else the checkpoint's own shapes and metadata
    (:func:`tempomaster_core.loading.read_config`: a header read, cached per file version).
    :data:`BUILTIN_MODEL_NAME` gets the text length its loader gives it (:func:`tiny_text_length`).
    Used by the tree view's route to price a plan for the model the workflow uses.

    Raises:
        FileNotFoundError: unknown name (see :func:`resolve_model_path`).
        tempomaster_core.loading.CheckpointError: not a readable TempoMaster checkpoint.
    """
    path = resolve_model_path(model_name)
    text_len = tiny_text_length() if model_name == BUILTIN_MODEL_NAME else None
    file_key = _file_key(path)
    for key, (model, _backend) in list(_cache.items()):
        if key[:3] == file_key and key[4] == text_len:
            return model.config
    key = file_key + (text_len,)
    if key not in _config_cache:
        if len(_config_cache) >= _CONFIG_CACHE_SIZE:
            _config_cache.clear()
        _config_cache[key] = read_config(path, text_len=text_len)
    return _config_cache[key]


class LoadTempoModel:
    """ComfyUI node: load a TempoMaster DiT checkpoint (see module doc)."""

    CATEGORY = "TempoMaster"
    FUNCTION = "load"
    RETURN_TYPES = (TEMPO_MODEL,)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = (f"The TempoMaster DiT (the 14B release, Wan 2.1 layout, or {BUILTIN_MODEL_NAME}): one model "
                       "serves the blueprint and every refinement level. Inside ComfyUI it is managed like ComfyUI's "
                       "own models (loaded, partially loaded or offloaded as memory requires).",)
    DESCRIPTION = (
        "Loads a TempoMaster DiT checkpoint from models/diffusion_models/ (e.g. the release from the "
        "hub repo Scottttttyy/TempoMaster; 14B in bf16 needs about 28.6 GB for the weights), or the "
        "built-in TempoMaster-Tiny model (listed first, no download, CPU is enough)."
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model_name": (available_models(), {
                    "tooltip": f"Checkpoint file in ComfyUI/models/{MODEL_FOLDER}/ (.safetensors, .bin, .pt; the "
                               f"release is {RELEASE_FILE} from huggingface.co/{RELEASE_REPO}), "
                               f"or '{BUILTIN_MODEL_NAME}': the small model shipped with the pack (64x64 "
                               f"moving shapes, runs on CPU; use it with '{LOAD_TINY_ENCODERS}' and fp32).",
                }),
                "weight_dtype": (list(STORAGE_DTYPES), {
                    "default": WEIGHT_DTYPE,
                    "tooltip": "Dtype the weights are kept in. bf16 is what the authors ran (28.6 GB for 14B); "
                               "fp8_e4m3fn / fp8_e5m2 keep the block weights in one byte (14.5 GB for 14B, for "
                               "24 GB cards; computed in bf16, e4m3fn is the more precise; *_fp8_e4m3fn_scaled "
                               "files keep their own scales); fp16 may overflow; fp32 doubles memory (tests and "
                               "CPU debugging).",
                }),
                "attention": (list(BACKENDS), {
                    "default": DEFAULT_BACKEND,
                    "tooltip": "Attention kernel: sdpa (PyTorch, always available), flash_attn or "
                               "sageattention (faster on supported GPUs; falls back to sdpa with a "
                               "warning when not installed).",
                }),
            },
            "optional": {
                "fp8_matmul": ("BOOLEAN", {
                    "default": False,
                    "tooltip": "With fp8_e4m3fn weights: multiply in fp8 on the GPU's fp8 tensor cores "
                               "(torch._scaled_mm; RTX 40xx / Ada, H100 / Hopper and newer) instead of casting "
                               "each weight to bf16. Refused before loading on a GPU without fp8 tensor cores. "
                               "Slightly less precise (the activations are quantised too); speed not measured yet.",
                }),
                "torch_compile": ("BOOLEAN", {
                    "default": False,
                    "tooltip": "torch.compile each DiT block (dynamic=False): faster steps after a slow first "
                               "step per level shape (compilations and recompiles are logged). Needs Triton on "
                               "the GPU (a C++ compiler on the CPU).",
                }),
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, model_name=None):
        """``True``, or what to download and where (ComfyUI shows it at queue time, on ``model_name``).

        Naming only ``model_name`` makes ComfyUI 0.3.64 skip its own choice check for it (which
        says only "Value not in list") and show this message once, on that input; the other
        widgets keep ComfyUI's checks. A linked value (``None``) is checked when the node runs.
        """
        if model_name is None:
            return True
        if not isinstance(model_name, str):
            return f"model_name must be a file name from models/{MODEL_FOLDER}/, got {model_name!r}"
        if model_name == BUILTIN_MODEL_NAME:
            try:
                tiny_dit_path()
            except FileNotFoundError as err:
                return str(err)
            return True
        if model_name in comfy_env.model_folder_files(MODEL_FOLDER) or os.path.isfile(model_name):
            return True
        return missing_model_message(model_name)

    def load(self, model_name: str, weight_dtype: str = WEIGHT_DTYPE, attention: str = DEFAULT_BACKEND,
             fp8_matmul: Optional[bool] = None, torch_compile: Optional[bool] = None):
        """Return ``(model,)``; see :func:`load_model_cached` (the optional inputs left out, ``None``, are off).

        The model carries what it declares (:func:`declared_settings`: its training limits and continuation
        settings) for the Tree Scheduler.

        Raises:
            tempomaster_core.validation.InputError: unknown dtype or backend name (a ``ValueError``);
                fp8 matmul without fp8_e4m3fn weights or on a device without fp8 matmul
                (:func:`tempomaster_core.fp8.require_fp8_matmul`), before anything is loaded.
            ValueError: the built-in bundle's training limits or continuation settings are not valid (before
                loading).
        """
        from tempomaster_core.fp8 import require_fp8_matmul

        require_choice(weight_dtype, "weight_dtype", STORAGE_DTYPES)
        require_choice(attention, "attention", BACKENDS)
        if fp8_matmul:
            require_fp8_matmul(comfy_env.compute_device(), weight_dtype)
        path = resolve_model_path(model_name)
        declared = declared_settings(model_name)  # before loading: a damaged bundle stops here
        # the tiny text encoder's [1, L, text_dim] reaches the DiT unpadded: its L is the model's text_len
        text_len = tiny_text_length() if model_name == BUILTIN_MODEL_NAME else None
        dit = load_model_cached(path, parse_dtype(weight_dtype), attention, text_len=text_len,
                                fp8_matmul=bool(fp8_matmul), torch_compile=bool(torch_compile))
        # what the Tree Scheduler plans with when this model is connected to it (None: declares none)
        dit.trained_limits, dit.continuation_settings = declared if declared is not None else (None, None)
        return (managed(dit),)
