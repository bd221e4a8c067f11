"""Lazy access to ComfyUI's runtime services, with fallbacks when ComfyUI is absent.

The node pack must import, and its node functions must run, without ComfyUI
(unit tests, the CLI). Every ComfyUI module (``comfy.model_management``,
``comfy.utils``, ``comfy.cli_args``, ``folder_paths``) is imported inside the
function that needs it, at call time, so:

- inside ComfyUI the real services are used (devices, memory, interrupts,
  progress bars, model folders);
- outside ComfyUI: compute and offload device are the CPU, memory calls and
  interrupt checks do nothing, progress bars are ``None``, and the model list
  is empty.
"""

from __future__ import annotations

import importlib
import logging
from types import ModuleType
from typing import Any, Optional

import torch

log = logging.getLogger("TempoMaster")


def _module(name: str) -> Optional[ModuleType]:
    """Import ``name`` if ComfyUI provides it, else ``None`` (never raises ImportError)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def comfy_available() -> bool:
    """True when running inside ComfyUI (``comfy.model_management`` importable)."""
    return _module("comfy.model_management") is not None


def compute_device() -> torch.device:
    """Where the DiT runs: ComfyUI's ``get_torch_device()``, else the CPU."""
    mm = _module("comfy.model_management")
    return torch.device(mm.get_torch_device()) if mm is not None else torch.device("cpu")


def offload_device() -> torch.device:
    """Where an idle DiT is parked: ComfyUI's ``unet_offload_device()`` (the CPU
    normally, the GPU with ``--highvram``/``--gpu-only``), else the CPU."""
    mm = _module("comfy.model_management")
    return torch.device(mm.unet_offload_device()) if mm is not None else torch.device("cpu")


def free_memory(bytes_needed: int, device: torch.device) -> None:
    """Ask ComfyUI to unload its own models (text encoder, VAE, other UNets) until
    ``bytes_needed`` bytes are free on ``device``; no-op outside ComfyUI or on CPU."""
    mm = _module("comfy.model_management")
    if mm is None or torch.device(device).type == "cpu":
        return
    mm.free_memory(int(bytes_needed), device)
    mm.soft_empty_cache()


def soft_empty_cache() -> None:
    """Release cached allocator blocks (ComfyUI's ``soft_empty_cache``); no-op outside ComfyUI."""
    mm = _module("comfy.model_management")
    if mm is not None:
        mm.soft_empty_cache()


def throw_if_interrupted() -> None:
    """Raise ComfyUI's ``InterruptProcessingException`` if the user pressed Cancel;
    no-op outside ComfyUI."""
    mm = _module("comfy.model_management")
    if mm is not None:
        mm.throw_exception_if_processing_interrupted()


def progress_bar(total: int) -> Any:
    """A ``comfy.utils.ProgressBar(total)`` (one per sampler node), or ``None`` outside ComfyUI."""
    utils = _module("comfy.utils")
    return utils.ProgressBar(total) if utils is not None else None


def preview_settings() -> tuple[bool, int]:
    """``(enabled, max_size)`` for step previews, from ComfyUI's command line.

    Previews follow ``--preview-method`` like ComfyUI's own samplers: ``none``
    (ComfyUI's default) disables them; any other method enables our
    latent-to-RGB preview. ``max_size`` is ``--preview-size`` (512 by default).
    Outside ComfyUI previews are enabled (they go to the caller's callback only).
    """
    cli = _module("comfy.cli_args")
    if cli is None:
        return True, 512
    args = cli.args
    method = getattr(args, "preview_method", None)
    enabled = str(getattr(method, "value", method)).lower() not in ("none", "latentpreviewmethod.nopreviews")
    return enabled, int(getattr(args, "preview_size", 512) or 512)


def model_folder_files(folder: str) -> list[str]:
    """``folder_paths.get_filename_list(folder)`` (e.g. ``"diffusion_models"``), or ``[]`` outside ComfyUI."""
    fp = _module("folder_paths")
    return list(fp.get_filename_list(folder)) if fp is not None else []


def model_folder_path(folder: str, name: str) -> Optional[str]:
    """Full path of ``name`` in a ComfyUI model folder, or ``None`` (absent / outside ComfyUI)."""
    fp = _module("folder_paths")
    return fp.get_full_path(folder, name) if fp is not None else None


def model_folder_dirs(folder: str) -> list[str]:
    """The directories of a ComfyUI model folder (``folder_paths.get_folder_paths``), or ``[]`` outside ComfyUI."""
    fp = _module("folder_paths")
    if fp is None:
        return []
    try:
        return list(fp.get_folder_paths(folder))
    except (AttributeError, KeyError):  # an unknown folder (or a folder_paths without the call)
        return []


def executing_node() -> tuple[Optional[str], Optional[str]]:
    """``(prompt_id, node_id)`` of the node ComfyUI is running now (``comfy_execution.utils``),
    or ``(None, None)`` outside ComfyUI and outside a node's execution."""
    utils = _module("comfy_execution.utils")
    context = utils.get_executing_context() if utils is not None else None
    if context is None:
        return None, None
    return str(context.prompt_id), str(context.node_id)
