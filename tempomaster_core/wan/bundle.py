"""The released 14B model set loaded outside ComfyUI, with the built-in bundle's interface.

:class:`WanBundle` offers what the command line and :func:`tempomaster_core.pipeline.generate` /
:func:`tempomaster_core.long_video.generate_long` use from :class:`~tempomaster_core.tiny.builtin.TinyBundle`:
``model`` (the DiT), ``codec`` (a :class:`~tempomaster_core.protocols.VideoCodec`), ``encode_prompt(text)``
and ``defaults`` (the reference's settings, :func:`reference_settings`). :func:`check_model_set` checks the
files (kinds, shapes, the tokenizer, that they fit together) from their headers before anything is loaded;
:func:`load_wan` loads them.

Dtypes: the DiT in the weight dtype asked for (bf16 as the authors ran it; fp8 stores the block weights in
one byte); the text encoder and the VAE in bf16, or fp32 when the DiT computes in fp32 (CPU tests). Memory:
the text encoder (about 11 GB in bf16) is freed by :meth:`WanBundle.release_text_encoder` once the prompts are
encoded (the command line does so before the first level).
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import torch

from ..defaults import (
    BLUEPRINT_FRAMES, CFG, CONTEXT_SECONDS, FPS, FRAME_INTERVALS, GUIDANCE, HEIGHT, NEGATIVE_PROMPT,
    SEGMENT_NEW_FRAMES, TEXT_LEN, WIDTH,
)
from ..loading import CheckpointError, load_dit, parse_dtype, read_config
from ..plan import BOUNDARY_MODES
from ..protocols import ModelBundle, check_compatible
from ..trained_limits import TrainedLimits
from .extra import require_wan_extra
from .files import ROLE_NAMES, ModelFileError, ModelFiles, checkpoint_kind

WAN_MODEL_NAME = "TempoMaster 14B (Wan 2.1)"
"""Display name of the released model set."""

KIND_NAMES = {"dit": "a TempoMaster/Wan DiT", "text_encoder": "a umT5 text encoder", "vae": "a Wan VAE",
              "vae_diffusers": "a Wan VAE in diffusers' key layout"}
"""What :func:`~tempomaster_core.wan.files.checkpoint_kind` found, for messages."""


def reference_settings() -> dict:
    """The reference's inference settings as a bundle's ``defaults`` (the keys of
    :attr:`TinyBundle.defaults <tempomaster_core.tiny.builtin.TinyBundle>`), from
    :mod:`tempomaster_core.defaults`: 480x832, 24 fps, a 109-frame blueprint, intervals (4, 2, 1) with the
    reference's chunk rule (``chunks`` ``None``), ``repeat_anchor`` boundaries, cfg 8 with APG, the reference
    negative prompt, the paper's continuation (5 s context, 480 new frames) and what the model was trained on
    (intervals (4, 2, 1), 109-frame chunks). ``steps``/``shifts`` are
    absent: the caller takes :func:`~tempomaster_core.defaults.default_schedule` for its plan."""
    return {"height": HEIGHT, "width": WIDTH, "fps": FPS, "blueprint_frames": BLUEPRINT_FRAMES,
            "frame_intervals": list(FRAME_INTERVALS), "chunks": None, "boundary": BOUNDARY_MODES[0], "cfg": CFG,
            "guidance": GUIDANCE, "negative_prompt": NEGATIVE_PROMPT, "context_seconds": CONTEXT_SECONDS,
            "segment_new_frames": SEGMENT_NEW_FRAMES, **TrainedLimits().to_settings()}


@dataclass(frozen=True)
class CheckedFiles:
    """What :func:`check_model_set` read from the headers.

    Attributes:
        files: the :class:`~tempomaster_core.wan.files.ModelFiles`.
        dit_config: the DiT's :class:`~tempomaster_core.config.DiTConfig`.
        text_config: ``UMT5Config`` arguments of the text encoder.
        vae_config: ``AutoencoderKLWan`` arguments of the VAE.
        embedded_tokenizer: SentencePiece model bytes from ComfyUI's text encoder file (``None`` if absent).
    """

    files: ModelFiles
    dit_config: Any
    text_config: dict
    vae_config: dict
    embedded_tokenizer: Optional[bytes] = None


_FLAGS = {"dit": "--dit", "text_encoder": "--text-encoder", "vae": "--vae"}


def _check_kind(path: Path, role: str, label: str) -> None:
    kind = checkpoint_kind(path)
    if kind == role or (role == "vae" and kind == "vae_diffusers"):  # read_vae_file explains the latter
        return
    if kind is None:
        raise ModelFileError(f"{label} {path} is not {ROLE_NAMES[role]} (its keys match no file of the model set)")
    move = f"; pass it as {_FLAGS[kind]}" if kind in _FLAGS else ""
    raise ModelFileError(f"{label} {path} is {KIND_NAMES[kind]}, not {ROLE_NAMES[role]}{move}")


def check_model_set(files: ModelFiles, labels: Optional[dict] = None) -> CheckedFiles:
    """Check the model set before anything is loaded: the ``wan`` extra, each file's kind and shapes (headers
    only), the tokenizer, and that the three fit together.

    Args:
        files: from :func:`~tempomaster_core.wan.files.find_model_files`.
        labels: ``{role: how the user named the file}`` for messages (default ``"--dit"``, ``"--text-encoder"``,
            ``"--vae"``).

    Raises:
        MissingExtraError: the ``wan`` extra is not installed (the message says how to install it).
        ModelFileError: the first problem found, naming the file, what it is and what to do.
    """
    from .text_encoder import read_text_encoder_file, tokenizer_kind
    from .vae import read_vae_file

    require_wan_extra()
    labels = {**_FLAGS, **(labels or {})}
    for role in ("dit", "text_encoder", "vae"):
        _check_kind(getattr(files, role), role, labels[role])
    try:
        dit_config = read_config(files.dit, text_len=TEXT_LEN)
    except CheckpointError as err:
        raise ModelFileError(f"{labels['dit']} {files.dit}: {err}") from None
    text_config, embedded = read_text_encoder_file(files.text_encoder)
    if files.tokenizer is not None and tokenizer_kind(files.tokenizer) is None:
        raise ModelFileError(f"--tokenizer {files.tokenizer} holds neither tokenizer.json nor spiece.model "
                             "(the google/umt5-xxl folder of the Wan 2.1 release)")
    if files.tokenizer is None and embedded is None:
        raise ModelFileError(f"{labels['text_encoder']} {files.text_encoder} holds no tokenizer (the release's file "
                             "comes with a google/umt5-xxl folder): pass --tokenizer DIR")
    vae_config = read_vae_file(files.vae)
    if text_config["d_model"] != dit_config.text_dim:
        raise ModelFileError(f"the text encoder's width {text_config['d_model']} differs from the DiT's text_dim "
                             f"{dit_config.text_dim}: the files belong to different models (TempoMaster 14B takes "
                             "umT5-XXL, width 4096)")
    if vae_config["z_dim"] != dit_config.latent_channels:
        raise ModelFileError(f"the VAE's {vae_config['z_dim']} latent channels differ from the DiT's "
                             f"{dit_config.latent_channels}")
    return CheckedFiles(files, dit_config, text_config, vae_config, embedded)


@dataclass
class WanBundle(ModelBundle):
    """The loaded 14B set (same interface as :class:`~tempomaster_core.tiny.builtin.TinyBundle`).

    Attributes:
        model: :class:`~tempomaster_core.model.TempoMasterDiT` (eval, no grad; ``config.text_len`` 512).
        codec: :class:`~tempomaster_core.wan.vae.WanVAECodec`.
        text_encoder: :class:`~tempomaster_core.wan.text_encoder.UMT5TextEncoder`, ``None`` once released.
        defaults: :func:`reference_settings`.
        files: where the weights came from.
        name: display name.
    """

    defaults: dict = field(default_factory=reference_settings)
    files: Optional[ModelFiles] = None
    name: str = WAN_MODEL_NAME

    def encode_prompt(self, text: str) -> torch.Tensor:
        """Text context float32 ``[1, 512, 4096]`` on the DiT's device (the prompt's rows, then zeros).

        Raises:
            TypeError: ``text`` is not a string.
            RuntimeError: the text encoder was released.
        """
        if self.text_encoder is None:
            raise RuntimeError("the text encoder was released (release_text_encoder); encode prompts before")
        device = next(self.model.parameters()).device
        return self.text_encoder.encode(text).to(device)

    def release_text_encoder(self) -> None:
        """Drop the text encoder and return its memory (GPU caches emptied) before the DiT runs."""
        self.text_encoder = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def companion_dtype(weight_dtype) -> torch.dtype:
    """The text encoder's and the VAE's dtype for a DiT weight dtype: fp32 for an fp32 DiT, else bf16 (the
    reference's; umT5 overflows in fp16)."""
    return torch.float32 if parse_dtype(weight_dtype) == torch.float32 else torch.bfloat16


def load_wan(checked: Union[CheckedFiles, ModelFiles], *, device: Union[str, torch.device] = "cpu",
             dtype="bf16", attention_backend: str = "sdpa") -> WanBundle:
    """Load the 14B set: text encoder and VAE first (smaller, so a bad file shows before the DiT's 28 GB), then
    the DiT.

    Args:
        checked: :func:`check_model_set`'s result (or the files, checked here).
        device: where all three live.
        dtype: the DiT's weight dtype (:data:`~tempomaster_core.loading.STORAGE_DTYPES`; bf16 default);
            the others follow :func:`companion_dtype`.
        attention_backend: the DiT's attention (``"sdpa"``, ``"flash_attn"``, ``"sageattention"``).

    Raises:
        MissingExtraError, ModelFileError: see :func:`check_model_set` and the loaders.
        tempomaster_core.loading.CheckpointError: a broken DiT file.
        ValueError: the VAE and the DiT do not fit (:func:`~tempomaster_core.protocols.check_compatible`).
    """
    from .text_encoder import UMT5TextEncoder, load_tokenizer, load_umt5_encoder
    from .vae import WanVAECodec, load_wan_vae

    if isinstance(checked, ModelFiles):
        checked = check_model_set(checked)
    files = checked.files
    device = torch.device(device)
    other = companion_dtype(dtype)
    tokenizer = load_tokenizer(files.tokenizer, checked.embedded_tokenizer)
    text_encoder = UMT5TextEncoder(load_umt5_encoder(files.text_encoder, dtype=other, device=device), tokenizer,
                                   TEXT_LEN)
    codec = WanVAECodec(load_wan_vae(files.vae, dtype=other, device=device))
    model = load_dit(files.dit, dtype=parse_dtype(dtype), device=device, attention_backend=attention_backend,
                     text_len=TEXT_LEN)
    check_compatible(codec, model.config)
    defaults = reference_settings()
    model.trained_limits = TrainedLimits.from_settings(defaults)
    return WanBundle(model=model, codec=codec, text_encoder=text_encoder, defaults=defaults, files=files)


__all__ = ["CheckedFiles", "KIND_NAMES", "WAN_MODEL_NAME", "WanBundle", "check_model_set", "companion_dtype",
           "load_wan", "reference_settings"]
