"""Which model set ``python -m tempomaster_core generate`` runs, checked before loading, and loading it.

* Without model flags: the built-in TempoMaster-Tiny bundle.
* ``--model-dir DIR`` holding a TempoMaster-Tiny bundle (``dit.safetensors``, ``codec.json`` ...): that bundle.
* ``--model-dir DIR`` holding the released 14B set, or any of ``--dit F``, ``--text-encoder F``, ``--vae F``,
  ``--tokenizer DIR`` (they win over what ``--model-dir`` holds): the 14B set
  (:mod:`tempomaster_core.wan`), with the reference's settings as defaults
  (:func:`~tempomaster_core.wan.bundle.reference_settings`, the reference negative prompt among them).

Everything that can be checked without loading weights is checked here (the ``wan`` extra, every file's
kind, shapes and tokenizer, that the files fit together); a mistake is a :class:`~tempomaster_core.cli.UsageError`
(exit code 2, nothing loaded).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

WAN_FLAGS = ("dit", "text_encoder", "vae", "tokenizer")
"""``generate`` flags that name files of the 14B set."""

TINY_MARKERS = ("codec.json", "codec.safetensors", "text_encoder.json", "text_encoder.safetensors", "dit.safetensors")
"""Files that make a ``--model-dir`` a TempoMaster-Tiny bundle (complete or not)."""

ROLE_LABELS = {"dit": "the file found for the DiT", "text_encoder": "the file found for the text encoder",
               "vae": "the file found for the VAE"}
"""How messages name a file that ``--model-dir`` supplied."""


@dataclass(frozen=True)
class ModelChoice:
    """The model set a ``generate`` run uses, checked.

    Attributes:
        tiny_dir: the TempoMaster-Tiny bundle directory (``None``: the built-in one); unused with ``wan``.
        wan: the checked 14B files (:class:`~tempomaster_core.wan.bundle.CheckedFiles`), or ``None``.
        defaults: the model's recommended settings (bundle ``defaults`` keys).
        temporal_factor: pixel frames per latent frame of its codec.
    """

    tiny_dir: Optional[Path]
    wan: Any
    defaults: dict
    temporal_factor: int


def add_model_flags(group: argparse._ArgumentGroup) -> None:
    """The 14B set's file flags (``--dit``, ``--text-encoder``, ``--vae``, ``--tokenizer``) on ``group``."""
    from .wan.files import (RELEASE_FILE, REFERENCE_UMT5_FILE, REFERENCE_VAE_FILE, TOKENIZER_DIR, UMT5_FILE,
                            VAE_FILE)

    group.add_argument("--dit", metavar="FILE", help=f"TempoMaster DiT checkpoint ({RELEASE_FILE}, a converted "
                       ".safetensors, or a scaled fp8 file)")
    group.add_argument("--text-encoder", metavar="FILE", help=f"umT5-XXL encoder: {UMT5_FILE} (ComfyUI; the tokenizer "
                       f"is inside) or {REFERENCE_UMT5_FILE} (the Wan 2.1 release)")
    group.add_argument("--vae", metavar="FILE", help=f"Wan 2.1 VAE: {VAE_FILE} or {REFERENCE_VAE_FILE}")
    group.add_argument("--tokenizer", metavar="DIR", help=f"umT5 tokenizer folder (the release's {TOKENIZER_DIR}; "
                       "default: beside the text encoder, or the one inside ComfyUI's file)")


def _looks_tiny(root: Path) -> bool:
    return any((root / name).is_file() for name in TINY_MARKERS)


def choose_models(args: argparse.Namespace, usage_error) -> ModelChoice:
    """The model set the arguments name, checked without loading weights.

    Args:
        args: parsed ``generate`` arguments (``model_dir`` and :data:`WAN_FLAGS`).
        usage_error: the exception class for mistakes (:class:`~tempomaster_core.cli.UsageError`).

    Raises:
        usage_error: a missing or wrong file, a folder holding neither set, the ``wan`` extra missing.
        FileNotFoundError: the built-in bundle is not installed.
    """
    from .cli import read_bundle_settings

    wan_flags = [name for name in WAN_FLAGS if getattr(args, name, None) is not None]
    root = Path(args.model_dir) if args.model_dir is not None else None
    if not wan_flags and (root is None or not root.is_dir() or _looks_tiny(root)):
        tiny_dir, defaults, temporal_factor = read_bundle_settings(args.model_dir)
        return ModelChoice(tiny_dir, None, defaults, temporal_factor)

    from .wan.extra import MissingExtraError
    from .wan.files import ModelFileError, find_model_files

    try:
        files = find_model_files(args.model_dir, dit=args.dit, text_encoder=args.text_encoder, vae=args.vae,
                                 tokenizer=args.tokenizer)
    except ModelFileError as err:
        if wan_flags:
            raise usage_error(str(err)) from None
        from .tiny.builtin import REQUIRED_FILES

        raise usage_error(f"--model-dir {args.model_dir} holds neither a TempoMaster-Tiny bundle (missing "
                          f"{', '.join(REQUIRED_FILES)}) nor the TempoMaster 14B set ({err})") from None
    from .wan.bundle import check_model_set, reference_settings
    from .wan.latents import WAN21_TEMPORAL_FACTOR

    labels = {role: (f"--{role.replace('_', '-')}" if role in wan_flags else ROLE_LABELS[role])
              for role in ("dit", "text_encoder", "vae")}
    try:
        checked = check_model_set(files, labels)
    except (ModelFileError, MissingExtraError, FileNotFoundError) as err:
        raise usage_error(str(err)) from None
    return ModelChoice(None, checked, reference_settings(), WAN21_TEMPORAL_FACTOR)


def load_models(choice: ModelChoice, *, device: torch.device, weight_dtype: Optional[str]):
    """Load the chosen set: a :class:`~tempomaster_core.tiny.builtin.TinyBundle` (DiT default fp32) or a
    :class:`~tempomaster_core.wan.bundle.WanBundle` (DiT default bf16)."""
    if choice.wan is None:
        from .tiny import builtin  # looked up at call time (the tests replace load_builtin)

        return builtin.load_builtin(device=device, dtype=weight_dtype or "fp32", directory=choice.tiny_dir)
    from .wan.bundle import load_wan

    return load_wan(choice.wan, device=device, dtype=weight_dtype or "bf16")


def encode_prompts(bundle, texts: Sequence[str]) -> list:
    """Every prompt's text context (``bundle.encode_prompt``), then the text encoder released where the
    bundle can release it (the 14B set's umT5-XXL: about 11 GB) before the DiT runs."""
    contexts = [bundle.encode_prompt(text) for text in texts]
    release = getattr(bundle, "release_text_encoder", None)
    if callable(release):
        release()
    return contexts


__all__ = ["ModelChoice", "TINY_MARKERS", "WAN_FLAGS", "add_model_flags", "choose_models", "encode_prompts",
           "load_models"]
