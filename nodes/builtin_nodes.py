"""The built-in TempoMaster-Tiny model in ComfyUI graphs: text encoder and codec on ComfyUI sockets.

The real TempoMaster graph is ``LoadTempoModel`` + ComfyUI's ``CLIPLoader`` (umT5)
-> ``CLIPTextEncode`` and ``VAELoader`` (Wan 2.1) -> the TempoMaster samplers. The
built-in tiny model (``tempomaster_core/builtin/``, see
``tempomaster_core.tiny.builtin``) keeps that shape: ``LoadTempoModel`` lists it
first (its DiT), and the node :class:`LoadTinyEncoders` ("Load TempoMaster-Tiny
Text Encoder & Codec") returns

- a ``CLIP`` (:class:`TinyCLIP`) that ComfyUI's own ``CLIPTextEncode`` accepts: it
  calls ``clip.tokenize(text)`` then ``clip.encode_from_tokens_scheduled(tokens)``
  and gets ``[[tensor [1, L, text_dim], {"pooled_output": None}]]`` (float32, CPU,
  padding rows zero, the empty prompt all zeros -- the unconditional embedding
  the model was trained with); ``L`` (16 for the shipped model) reaches the DiT
  unchanged because ``LoadTempoModel`` loads the built-in DiT with
  ``DiTConfig.text_len = L`` (see ``nodes/text_adapter.py``);
- a ``VAE`` (:class:`TinyVAE`), a holder of the tiny video codec. The samplers'
  ``vae`` input unwraps it (``nodes.vae_adapter.as_codec`` reads
  :attr:`TinyVAE.tempomaster_codec`). **It works only with TempoMaster nodes**:
  ComfyUI's VAE Encode / VAE Decode (and the Wan conditioning nodes) speak
  ComfyUI's layouts and raw latents, so every ComfyUI VAE method on it
  (``encode``, ``decode``, the tiled ones, anything else) raises an error that
  says so instead of producing garbage.

Bundle directory: ``tempomaster_core/builtin`` by default; the environment
variable ``TEMPOMASTER_TINY_DIR`` points the pack at another directory with the
same files (e.g. a model you trained with ``tempomaster_core.training``; the
tests use a throw-away bundle this way).
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Optional

import torch

from tempomaster_core.tiny.builtin import BUILTIN_MODEL_NAME, builtin_dir, is_available

log = logging.getLogger("TempoMaster")

#: Environment variable naming another TempoMaster-Tiny bundle directory.
TINY_DIR_ENV = "TEMPOMASTER_TINY_DIR"
#: Key of :meth:`TinyCLIP.tokenize`'s result (ComfyUI token dicts are keyed by encoder name).
TOKENS_KEY = "tempomaster_tiny"

_ONLY_TEMPOMASTER = (
    "The VAE from 'Load TempoMaster-Tiny Text Encoder & Codec' is the built-in tiny video codec: it works only "
    "with the TempoMaster nodes (connect it to the Blueprint Sampler / Frame-Rate Refiner 'vae' input; they "
    "return decoded frames as IMAGE). ComfyUI's own VAE nodes ({caller}) cannot use it. For ComfyUI's VAE nodes "
    "load a real VAE with Load VAE."
)
_CLIP_ONLY_ENCODE = (
    "The CLIP from 'Load TempoMaster-Tiny Text Encoder & Codec' is the built-in tiny text encoder: it only "
    "supports CLIP Text Encode (tokenize + encode), not {name!r}. Its prompts are short captions such as "
    "'a red ball bouncing from left to right'."
)

_encoder_cache: dict[tuple, tuple] = {}


def tiny_directory() -> Path:
    """The TempoMaster-Tiny bundle directory: ``$TEMPOMASTER_TINY_DIR`` if set, else
    ``tempomaster_core/builtin`` (:func:`tempomaster_core.tiny.builtin.builtin_dir`)."""
    override = os.environ.get(TINY_DIR_ENV)
    return Path(override).expanduser() if override else builtin_dir()


def tiny_available() -> bool:
    """True when :func:`tiny_directory` holds a complete bundle (DiT, codec, text encoder)."""
    return is_available(tiny_directory())


def _require_bundle(root: Path) -> None:
    if not is_available(root):
        raise FileNotFoundError(
            f"the built-in TempoMaster-Tiny model is not installed in {root} (dit.safetensors, codec.*, "
            "text_encoder.* missing). Update the node pack (the files ship in tempomaster_core/builtin/), or "
            "train one with `python -m tempomaster_core.training.train_codec --out DIR` and "
            f"`python -m tempomaster_core.training.train_dit --out DIR`, then set {TINY_DIR_ENV}=DIR."
        )


def tiny_dit_path() -> Path:
    """Path of the bundle's DiT (``dit.safetensors``).

    Raises:
        FileNotFoundError: the bundle is incomplete; the message says how to get it.
    """
    root = tiny_directory()
    _require_bundle(root)
    return root / "dit.safetensors"


def tiny_text_length(directory: Optional[Path] = None) -> int:
    """Token slots ``L`` of the bundle's text encoder (``max_length`` in ``text_encoder.json``).

    The DiT must see the encoder's ``[1, L, text_dim]`` unchanged (no padding to
    umT5's 512); :class:`nodes.model_loader.LoadTempoModel` loads the built-in DiT with
    this as its ``config.text_len``.

    Raises:
        FileNotFoundError: no ``text_encoder.json``. ValueError: an unreadable config.
    """
    from tempomaster_core.tiny.text_encoder import TextEncoderConfig

    path = Path(directory or tiny_directory()) / "text_encoder.json"
    if not path.is_file():
        raise FileNotFoundError(f"text encoder config {path} not found")
    try:
        return TextEncoderConfig.from_dict(json.loads(path.read_text())).max_length
    except (ValueError, TypeError) as err:
        raise ValueError(f"cannot read the text encoder config {path}: {err}") from err


class TinyVAE:
    """The tiny codec on a ComfyUI ``VAE`` socket, for TempoMaster nodes only.

    It is a holder, not a ComfyUI VAE: the TempoMaster samplers take the core codec
    from :attr:`tempomaster_codec` (``nodes.vae_adapter.as_codec``), a
    :class:`tempomaster_core.tiny.codec.TinyVideoCodec` with the core codec protocol
    (``encode(video [B, 3, 4n+1, H, W] in [-1, 1]) -> normalized latents
    [B, C, n+1, H/sf, W/sf]`` and ``decode`` back, float32). ComfyUI's VAE nodes call
    ``encode``/``decode``/``encode_tiled``/``decode_tiled`` with their own layouts:
    those raise ``TypeError``, and any other ComfyUI VAE attribute ``AttributeError``,
    with an explanation.

    Attributes:
        tempomaster_codec: the wrapped ``TinyVideoCodec``.
    """

    def __init__(self, codec: Any):
        self.tempomaster_codec = codec

    def _refuse(self, what: str):
        raise TypeError(_ONLY_TEMPOMASTER.format(caller=what))

    def encode(self, *args, **kwargs):
        """Always raises ``TypeError``: ComfyUI's VAE Encode (and Wan image nodes) cannot use this codec."""
        self._refuse("VAE Encode and the image-to-video nodes call vae.encode")

    def decode(self, *args, **kwargs):
        """Always raises ``TypeError``: ComfyUI's VAE Decode cannot use this codec."""
        self._refuse("VAE Decode calls vae.decode")

    def encode_tiled(self, *args, **kwargs):
        """Always raises ``TypeError``: ComfyUI's tiled VAE nodes cannot use this codec."""
        self._refuse("tiled encode")

    def decode_tiled(self, *args, **kwargs):
        """Always raises ``TypeError``: ComfyUI's tiled VAE nodes cannot use this codec."""
        self._refuse("tiled decode")

    def __getattr__(self, name: str):
        # only called for attributes that do not exist: ComfyUI VAE API such as
        # spacial_compression_encode(), vae_encode_crop_pixels(), memory_used_decode ...
        if name.startswith("__") or name == "tempomaster_codec":
            raise AttributeError(name)
        raise AttributeError(_ONLY_TEMPOMASTER.format(caller=f"it asked for {name!r}"))

    def __repr__(self) -> str:
        c = self.tempomaster_codec
        return (f"TinyVAE(latent_channels={c.latent_channels}, temporal_factor={c.temporal_factor}, "
                f"spatial_factor={c.spatial_factor})")


class TinyCLIP:
    """The tiny text encoder on a ComfyUI ``CLIP`` socket (works with CLIP Text Encode).

    Wraps a :class:`tempomaster_core.tiny.text_encoder.TinyTextEncoder`.
    ``tokenize(text)`` -> ``{"tempomaster_tiny": (ids [1, L] int64, lengths [1] int64)}``;
    ``encode_from_tokens_scheduled(tokens)`` -> ``[[cond [1, L, text_dim] float32 CPU,
    {"pooled_output": None}]]`` -- the CONDITIONING ComfyUI's ``CLIPTextEncode``
    returns. Words the encoder does not know become ``<unk>`` (logged as a
    warning); prompts longer than L words are truncated (warning).

    Attributes:
        encoder: the wrapped ``TinyTextEncoder``.
    """

    def __init__(self, encoder: Any):
        self.encoder = encoder

    @property
    def text_dim(self) -> int:
        """Width of every token embedding (the DiT's ``text_dim``)."""
        return int(self.encoder.text_dim)

    @property
    def max_length(self) -> int:
        """Token slots L of every output."""
        return int(self.encoder.max_length)

    def tokenize(self, text: str, return_word_ids: bool = False, **kwargs) -> dict:
        """Token ids of one prompt (see class doc); ComfyUI's keyword options are accepted and ignored.

        Raises:
            TypeError: ``text`` is not a string.
        """
        if not isinstance(text, str):
            raise TypeError(f"the prompt must be a string, got {type(text).__name__}")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ids, lengths = self.encoder.tokenize([text])
        for warning in caught:
            log.warning("TempoMaster-Tiny text encoder: %s", warning.message)
        return {TOKENS_KEY: (ids, lengths)}

    def _embed(self, tokens: dict) -> torch.Tensor:
        if not isinstance(tokens, dict) or TOKENS_KEY not in tokens:
            raise TypeError("these tokens do not come from the TempoMaster-Tiny text encoder's tokenize()")
        ids, lengths = tokens[TOKENS_KEY]
        with torch.no_grad():
            return self.encoder(ids, lengths).detach().to(device="cpu", dtype=torch.float32)

    def encode_from_tokens_scheduled(self, tokens: dict, unprojected: bool = False,
                                     add_dict: Optional[dict] = None, show_pbar: bool = True) -> list:
        """CONDITIONING ``[[cond [1, L, text_dim], {"pooled_output": None, **add_dict}]]`` (what
        ``CLIPTextEncode`` returns). Raises ``TypeError`` for tokens from another tokenizer."""
        extra = {"pooled_output": None}
        extra.update(add_dict or {})
        return [[self._embed(tokens), extra]]

    def encode_from_tokens(self, tokens: dict, return_pooled: bool = False, return_dict: bool = False):
        """``cond [1, L, text_dim]`` (ComfyUI's ``CLIP.encode_from_tokens`` shapes: ``(cond, None)``
        with ``return_pooled``, ``{"cond": cond, "pooled_output": None}`` with ``return_dict``)."""
        cond = self._embed(tokens)
        if return_dict:
            return {"cond": cond, "pooled_output": None}
        return (cond, None) if return_pooled else cond

    def encode(self, text: str) -> torch.Tensor:
        """``[1, L, text_dim]`` embeddings of ``text`` (float32, CPU)."""
        return self.encode_from_tokens(self.tokenize(text))

    def __getattr__(self, name: str):
        if name.startswith("__") or name == "encoder":
            raise AttributeError(name)
        raise AttributeError(_CLIP_ONLY_ENCODE.format(name=name))

    def __repr__(self) -> str:
        return f"TinyCLIP(max_length={self.max_length}, text_dim={self.text_dim})"


def load_tiny_encoders(directory: Optional[Path] = None) -> tuple[TinyCLIP, TinyVAE]:
    """The bundle's text encoder and codec as ``(TinyCLIP, TinyVAE)``, on the CPU, eval mode.

    Cached (one entry, keyed by directory and file modification times), so
    re-queued graphs do not reload them.

    Raises:
        FileNotFoundError: the bundle is incomplete (the message says how to get it).
        ValueError: broken config/weights files.
    """
    from tempomaster_core.tiny.codec import TinyVideoCodec
    from tempomaster_core.tiny.text_encoder import TinyTextEncoder

    root = Path(directory) if directory is not None else tiny_directory()
    _require_bundle(root)
    files = ("codec.safetensors", "codec.json", "text_encoder.safetensors", "text_encoder.json")
    key = (str(root.resolve()),) + tuple((root / f).stat().st_mtime_ns for f in files)
    cached = _encoder_cache.get(key)
    if cached is None:
        _encoder_cache.clear()
        log.info("TempoMaster: loading the TempoMaster-Tiny text encoder and codec from %s", root)
        encoder = TinyTextEncoder.load(root, device="cpu").eval()
        codec = TinyVideoCodec.load(root, device="cpu").eval()
        for module in (encoder, codec):
            module.requires_grad_(False)
        cached = (TinyCLIP(encoder), TinyVAE(codec))
        _encoder_cache[key] = cached
    return cached


class LoadTinyEncoders:
    """ComfyUI node: the built-in TempoMaster-Tiny text encoder (CLIP) and codec (VAE)."""

    CATEGORY = "TempoMaster"
    FUNCTION = "load"
    RETURN_TYPES = ("CLIP", "VAE")
    RETURN_NAMES = ("CLIP", "VAE")
    OUTPUT_TOOLTIPS = (
        "Text encoder of the built-in model: connect it to ComfyUI's CLIP Text Encode (prompt and negative "
        "prompt). It knows short captions: counts, colours, shapes (ball, square, triangle) and motions.",
        "Video codec of the built-in model, ONLY for the TempoMaster samplers' vae input. ComfyUI's VAE "
        "Encode/Decode cannot use it (they refuse it with an explanation); the samplers output decoded frames.",
    )
    DESCRIPTION = (
        "Loads the text encoder and video codec of the built-in TempoMaster-Tiny model (ships with the pack, "
        "no downloads; 64x64 videos of moving shapes). Use with 'Load TempoMaster Model' set to "
        f"'{BUILTIN_MODEL_NAME}'. The VAE output works only with TempoMaster nodes."
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model_name": ([BUILTIN_MODEL_NAME], {
                    "default": BUILTIN_MODEL_NAME,
                    "tooltip": "The built-in TempoMaster-Tiny bundle (tempomaster_core/builtin/, or the "
                               f"directory in the {TINY_DIR_ENV} environment variable). Pick the same model in "
                               "Load TempoMaster Model.",
                }),
            }
        }

    def load(self, model_name: str = BUILTIN_MODEL_NAME):
        """Return ``(TinyCLIP, TinyVAE)``; see :func:`load_tiny_encoders`.

        Raises:
            ValueError: an unknown model name. FileNotFoundError: the bundle is not installed.
        """
        if model_name != BUILTIN_MODEL_NAME:
            raise ValueError(f"unknown built-in model {model_name!r}; choose {BUILTIN_MODEL_NAME!r}")
        return load_tiny_encoders()


__all__ = ["TINY_DIR_ENV", "LoadTinyEncoders", "TinyCLIP", "TinyVAE", "load_tiny_encoders", "tiny_available",
           "tiny_directory", "tiny_dit_path", "tiny_text_length"]
