"""Loading TempoMaster DiT checkpoints: formats, key layouts, config inference, checks.

Supported sources (:func:`load_dit`):

* ``.safetensors`` (preferred): opened memory-mapped, tensors read one at a time.
* ``.bin`` / ``.pt`` / ``.pth``: ``torch.load(weights_only=True, mmap=True)``; arbitrary
  pickled objects are never executed. Pre-1.6 (non-zip) files load without mmap.
* an in-memory state dict ``{name: tensor}``.

Key layouts: the reference's plain Wan/DiffSynth names (``patch_embedding.weight``,
``blocks.0.self_attn.q.weight`` ...), optionally prefixed by ``model.diffusion_model.``
(ComfyUI), ``diffusion_model.`` or ``module.`` (DDP). Checkpoints wrapped in
``{"state_dict": ...}``, ``{"model": ...}`` or ``{"module": ...}`` are unwrapped.
ComfyUI's scaled fp8 files (``*_fp8_e4m3fn_scaled``: fp8 weights, a ``scale_weight`` per
linear layer, a ``scaled_fp8`` marker) and plain fp8 files load too; their ``scale_input``
entries (for fp8 matmuls) are not used.

Weight dtypes (``dtype=``): bf16, fp16, fp32 (every tensor), or ``fp8_e4m3fn``/``fp8_e5m2``:
the blocks' linear weights in one byte with a per-tensor scale, the rest in ``compute_dtype``
(:mod:`tempomaster_core.fp8` says which and why).

The module is built on the meta device and the checkpoint tensors are assigned
to it (``load_state_dict(assign=True)``), converted tensor by tensor to the
storage dtype and device, so a 14B checkpoint never exists twice in RAM.

The shape configuration is inferred from tensor shapes (:func:`infer_config`).
``num_heads`` cannot be seen in the shapes: it comes from the caller, from the
``num_heads`` entry of a safetensors file's metadata (written by
:func:`save_dit` and :mod:`tempomaster_core.convert`), or from Wan's
convention of 128 channels per head (every released Wan 2.x model).

Every problem with the checkpoint itself raises :class:`CheckpointError`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Callable, Mapping, NamedTuple

import torch

from .attention import DEFAULT_BACKEND
from .config import DiTConfig
from .noise_prior import check_frame_correlation
from .fp8 import FP8_DTYPES, INPUT_SCALE_SUFFIX, SCALE_SUFFIX, SCALED_FP8_MARKER, is_fp8_dtype, is_fp8_weight, storage_tensor
from .model import TempoMasterDiT
from .ops import CastOps, supports_weight_scale
from .validation import InputError, require_int, require_number, require_whole_number

KEY_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "module.")
"""Key prefixes stripped by :func:`normalize_state_dict_keys` (when every key has one)."""

WAN_HEAD_DIM = 128
"""Channels per attention head of every released Wan 2.x DiT (used to infer num_heads)."""

TEMPOMASTER_MASK_CHANNELS = 4
"""Mask channels of the TempoMaster DiT (pixel frames per Wan latent frame): in_dim = 16 + 4 + 16 = 36."""

RELEASE_REPO = "Scottttttyy/TempoMaster"
"""Hugging Face repository of the released TempoMaster DiT (the authors' upload)."""
RELEASE_FILE = "wan_video_dit_bf16.bin"
"""File name of the released 14B DiT there (a ``torch.save`` state dict in bf16; LoadTempoModel loads it as it is)."""
RELEASE_URL = f"https://huggingface.co/{RELEASE_REPO}/resolve/main/{RELEASE_FILE}"
"""Direct download address of :data:`RELEASE_FILE` (the repository's top level)."""

DOWNLOAD_HINT = (
    f"Download the TempoMaster DiT '{RELEASE_FILE}' from the Hugging Face repo "
    f"{RELEASE_REPO} (https://huggingface.co/{RELEASE_REPO})."
)

SUFFIXES_SAFETENSORS = (".safetensors", ".sft")
SUFFIXES_TORCH = (".bin", ".pt", ".pth", ".ckpt")

COMPUTE_DTYPES = ("bf16", "fp16", "fp32")
"""Dtypes a DiT computes in (and stores every tensor in, unless its weights are fp8)."""

STORAGE_DTYPES = COMPUTE_DTYPES + tuple(FP8_DTYPES)
"""Short names of the weight storage dtypes offered to users (node widget, converter, CLI);
:func:`parse_dtype` also takes the long names (``"bfloat16"``, ``"float8_e4m3fn"`` ...) and
``torch.dtype`` objects."""

_DTYPES = {
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
    "fp16": torch.float16, "float16": torch.float16, "half": torch.float16,
    "fp32": torch.float32, "float32": torch.float32, "float": torch.float32,
    **FP8_DTYPES, **{str(v).replace("torch.", ""): v for v in FP8_DTYPES.values()},
}


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded as a TempoMaster DiT; the message says why and what to do."""


def parse_dtype(dtype) -> torch.dtype:
    """``torch.dtype`` or name (:data:`STORAGE_DTYPES`, long names) -> a float ``torch.dtype``.

    Raises:
        ValueError: unsupported dtype.
    """
    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.bfloat16, torch.float16, torch.float32, torch.float64, *FP8_DTYPES.values()):
            raise ValueError(f"unsupported storage dtype {dtype}; use {', '.join(STORAGE_DTYPES)}")
        return dtype
    key = str(dtype).lower().replace("torch.", "")
    if key not in _DTYPES:
        raise ValueError(f"unsupported storage dtype {dtype!r}; use {', '.join(STORAGE_DTYPES)}")
    return _DTYPES[key]


def dtype_name(dtype) -> str:
    """The short name (:data:`STORAGE_DTYPES`, ``"fp64"``) of a dtype :func:`parse_dtype` accepts:
    ``torch.bfloat16`` / ``"bfloat16"`` -> ``"bf16"``.

    Raises:
        ValueError: unsupported dtype.
    """
    dtype = parse_dtype(dtype)
    return {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}.get(dtype, "fp64")


def _few(names, n: int = 5) -> str:
    names = list(names)
    shown = ", ".join(repr(k) for k in names[:n])
    return shown + (f" (+{len(names) - n} more)" if len(names) > n else "")


def normalize_state_dict_keys(state_dict: Mapping) -> dict:
    """Strip the known key prefixes so names match the reference layout.

    A prefix from :data:`KEY_PREFIXES` is removed only when every key carries it
    (repeatedly, so ``module.model.diffusion_model.`` also works); mixed layouts
    are left as they are and show up as unexpected/missing keys.

    Args:
        state_dict: ``{name: value}`` (tensors, shapes or anything).

    Returns:
        A new dict with the same values under the normalised names.
    """
    items = dict(state_dict)
    changed = True
    while changed and items:
        changed = False
        for prefix in KEY_PREFIXES:
            if all(k.startswith(prefix) for k in items):
                items = {k[len(prefix):]: v for k, v in items.items()}
                changed = True
                break
    return items


def _shapes_of(state_dict: Mapping) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise CheckpointError(f"checkpoint key {key!r} is not a string; this is not a model state dict")
        if not torch.is_tensor(value):
            raise CheckpointError(
                f"checkpoint entry {key!r} is a {type(value).__name__}, not a tensor; expected a flat "
                "state dict {name: tensor} of a Wan DiT"
            )
        shapes[key] = tuple(value.shape)
    return shapes


def _require(shapes: Mapping[str, tuple], key: str, ndim: int) -> tuple[int, ...]:
    if key not in shapes:
        raise CheckpointError(
            f"checkpoint is missing {key!r}, which every Wan DiT has; it is incomplete or not a "
            f"Wan DiT. {DOWNLOAD_HINT}"
        )
    shape = shapes[key]
    if len(shape) != ndim:
        raise CheckpointError(f"{key!r} has shape {list(shape)}, expected {ndim} dimensions for a Wan DiT")
    return shape


def infer_config_from_shapes(
    shapes: Mapping[str, tuple], *, num_heads: int | None = None, eps: float | None = None
) -> DiTConfig:
    """Infer a :class:`DiTConfig` from ``{normalised name: shape}``.

    Read from the shapes: ``dim``, ``in_dim``, ``patch_size`` (``patch_embedding.weight``
    ``[dim, in_dim, pt, ph, pw]``), ``text_dim`` (``text_embedding.0.weight``), ``freq_dim``
    (``time_embedding.0.weight``), ``ffn_dim`` (``blocks.0.ffn.0.weight``), ``num_layers``
    (block indices), ``out_dim`` (``head.head.weight`` rows / prod(patch)).

    Args:
        shapes: tensor shapes under reference names (see :func:`normalize_state_dict_keys`).
        num_heads: heads per attention layer; default ``dim // 128`` (Wan convention).
        eps: norm epsilon; default 1e-6 (Wan).

    Raises:
        CheckpointError: not a Wan DiT; a Wan I2V (CLIP image branch) or T2V checkpoint
            (``in_dim == out_dim``), or, for Wan's 16 latent channels, any ``in_dim`` other than 36
            (test models with other latent widths need ``in_dim > 2*out_dim``): not TempoMaster;
            broken block numbering; num_heads not inferable.
    """
    if not shapes:
        raise CheckpointError(f"checkpoint holds no tensors. {DOWNLOAD_HINT}")
    if "patch_embedding.weight" not in shapes:
        prefixed = [k for k in shapes if k.endswith("patch_embedding.weight")]
        if prefixed:
            prefix = prefixed[0][: -len("patch_embedding.weight")]
            raise CheckpointError(
                f"checkpoint keys carry the prefix {prefix!r}, which is not a known layout "
                f"(supported: none, {', '.join(KEY_PREFIXES)}); e.g. {_few(shapes, 3)}. Strip the prefix "
                "or convert the file with `python -m tempomaster_core.convert`."
            )
        raise CheckpointError(
            f"this is not a Wan DiT checkpoint (no 'patch_embedding.weight'; keys look like "
            f"{_few(sorted(shapes), 4)}). Is it a VAE or text encoder? {DOWNLOAD_HINT}"
        )
    image_keys = [k for k in shapes if k.startswith("img_emb.") or ".k_img." in k or ".v_img." in k]
    if image_keys:
        raise CheckpointError(
            "this is a Wan image-to-video (I2V) checkpoint with a CLIP image branch "
            f"(keys such as {_few(sorted(image_keys), 2)}), not a TempoMaster checkpoint; TempoMaster "
            f"conditions on frames through its 36-channel multi-mask input instead. {DOWNLOAD_HINT}"
        )
    dim, in_dim, pt, ph, pw = _require(shapes, "patch_embedding.weight", 5)
    patch = (pt, ph, pw)
    text_dim = _require(shapes, "text_embedding.0.weight", 2)[1]
    freq_dim = _require(shapes, "time_embedding.0.weight", 2)[1]
    ffn_dim = _require(shapes, "blocks.0.ffn.0.weight", 2)[0]
    head_rows = _require(shapes, "head.head.weight", 2)[0]
    if head_rows % (pt * ph * pw):
        raise CheckpointError(f"head.head.weight has {head_rows} rows, not a multiple of the patch volume {patch}")
    out_dim = head_rows // (pt * ph * pw)
    expected_in = 2 * out_dim + TEMPOMASTER_MASK_CHANNELS
    wan_latent = out_dim == 16  # Wan 2.1 VAE latent: TempoMaster takes exactly 16 + 4 + 16 = 36
    if in_dim == out_dim or in_dim - 2 * out_dim < 1 or (wan_latent and in_dim != expected_in):
        kind = "a plain Wan text-to-video (T2V) checkpoint" if in_dim == out_dim else "not a TempoMaster checkpoint"
        raise CheckpointError(
            f"the DiT takes in_dim={in_dim} input channels for out_dim={out_dim}: this is {kind}. "
            f"TempoMaster takes in_dim={expected_in} (noisy latent {out_dim} + mask "
            f"{TEMPOMASTER_MASK_CHANNELS} + condition latent {out_dim}). {DOWNLOAD_HINT}"
        )
    indices = {int(m.group(1)) for k in shapes if (m := re.match(r"blocks\.(\d+)\.", k))}
    num_layers = len(indices)
    if indices != set(range(num_layers)):
        gaps = sorted(set(range(max(indices) + 1)) - indices)
        raise CheckpointError(f"checkpoint blocks are not numbered 0..N-1 (missing blocks {gaps[:5]}); the file is incomplete")
    if num_heads is None:
        if dim % WAN_HEAD_DIM:
            raise CheckpointError(
                f"cannot infer num_heads for dim={dim} (not a multiple of Wan's head size {WAN_HEAD_DIM}); "
                "pass num_heads=..., or save the model with tempomaster_core.loading.save_dit, which "
                "records it in the safetensors metadata"
            )
        num_heads = dim // WAN_HEAD_DIM
    try:
        return DiTConfig(
            dim=dim, ffn_dim=ffn_dim, num_heads=int(num_heads), num_layers=num_layers, in_dim=in_dim,
            out_dim=out_dim, text_dim=text_dim, freq_dim=freq_dim, eps=1e-6 if eps is None else float(eps),
            patch_size=patch, has_image_input=False,
        )
    except ValueError as err:
        raise CheckpointError(f"checkpoint shapes give an invalid configuration: {err}") from err


def infer_config(state_dict: Mapping, *, num_heads: int | None = None, eps: float | None = None) -> DiTConfig:
    """Infer the :class:`DiTConfig` of a DiT state dict (any supported key layout).

    Args:
        state_dict: ``{name: tensor}``; names may carry a :data:`KEY_PREFIXES` prefix.
        num_heads, eps: see :func:`infer_config_from_shapes`.

    Raises:
        CheckpointError: see :func:`infer_config_from_shapes`; non-tensor entries.
    """
    return infer_config_from_shapes(normalize_state_dict_keys(_shapes_of(state_dict)), num_heads=num_heads, eps=eps)


def config_metadata(config: DiTConfig) -> dict[str, str]:
    """Safetensors metadata recording what shapes cannot tell (``num_heads``, ``eps``) and the full config."""
    return {
        "format": "pt",
        "num_heads": str(config.num_heads),
        "eps": repr(config.eps),
        "tempomaster_config": json.dumps(config.to_dict()),
    }


class _Source:
    """Uniform read access to a checkpoint: names, shapes, metadata and one tensor at a time."""

    def __init__(self, shapes: dict, get: Callable[[str], torch.Tensor], metadata: dict | None = None,
                 close: Callable[[], None] | None = None):
        self.shapes = shapes
        self.get = get
        self.metadata = metadata or {}
        self.close = close or (lambda: None)


def _truncated(path: Path, err: Exception, hint: str = DOWNLOAD_HINT) -> CheckpointError:
    return CheckpointError(
        f"cannot read {path}: the file is truncated or corrupt ({type(err).__name__}: {str(err)[:200]}). "
        f"Re-download it. {hint}".rstrip()
    )


def _unwrap(obj, path) -> dict:
    if isinstance(obj, Mapping) and obj and not all(torch.is_tensor(v) for v in obj.values()):
        for key in ("state_dict", "model", "module", "dit"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(torch.is_tensor(v) for v in inner.values()):
                return dict(inner)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict of tensors; not a Wan DiT checkpoint")
    return dict(obj)


def _open_safetensors(path: Path, hint: str = DOWNLOAD_HINT) -> _Source:
    from safetensors import safe_open

    try:
        handle = safe_open(str(path), framework="pt", device="cpu")
        shapes = {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}
        metadata = handle.metadata() or {}
    except Exception as err:  # SafetensorError, OSError
        raise _truncated(path, err, hint) from err

    def get(key: str) -> torch.Tensor:
        try:
            return handle.get_tensor(key)
        except Exception as err:
            raise _truncated(path, err, hint) from err

    return _Source(shapes, get, metadata, close=lambda: None)


def _open_torch(path: Path, hint: str = DOWNLOAD_HINT) -> _Source:
    use_mmap = zipfile.is_zipfile(path)  # truncated zips and legacy files: no mmap
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=use_mmap)
    except pickle.UnpicklingError as err:
        if "weights only" in str(err).lower():
            raise CheckpointError(
                f"{path} contains pickled Python objects other than tensors; refusing to unpickle them "
                "(weights_only=True). Save a plain state dict, or convert a trusted file to safetensors."
            ) from err
        raise _truncated(path, err, hint) from err
    except (RuntimeError, OSError, EOFError, ValueError) as err:
        raise _truncated(path, err, hint) from err
    state = _unwrap(obj, path)
    shapes = _shapes_of(state)
    return _Source(shapes, state.__getitem__)


def open_checkpoint(source, *, hint: str = DOWNLOAD_HINT) -> _Source:
    """Open a checkpoint path or state dict for lazy, tensor-by-tensor reading (used by the converter).

    Args:
        source: a path (``.safetensors`` or a ``torch.save`` file, judged by content) or a state dict.
        hint: what to do about a missing or broken file, appended to the messages (default: where the
            TempoMaster DiT comes from; the text encoder and VAE loaders name their own files).

    Raises:
        FileNotFoundError: missing path.
        CheckpointError: unknown file type, truncated/corrupt file, non-tensor content.
    """
    if isinstance(source, Mapping):
        state = dict(source)
        return _Source(_shapes_of(state), state.__getitem__)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"checkpoint source must be a path or a state dict, got {type(source).__name__}")
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}. {hint}".rstrip())
    kind = sniff_checkpoint_format(path)  # the content decides; the suffix only where it cannot
    suffix = path.suffix.lower()
    if kind == "safetensors" or (kind is None and suffix in SUFFIXES_SAFETENSORS):
        return _open_safetensors(path, hint)
    if kind == "torch" and os.fspath(path).endswith(".safetensors"):
        raise CheckpointError(
            f"{path.name} is a torch.save file, not safetensors, despite its name (torch.load reads every "
            "file named .safetensors as safetensors); rename it to .bin, or convert it with "
            "`python -m tempomaster_core.convert`"
        )
    if kind == "torch" or (kind is None and suffix in SUFFIXES_TORCH):
        return _open_torch(path, hint)
    raise CheckpointError(
        f"unsupported checkpoint file type {suffix!r} ({path.name}): the content is neither safetensors "
        "nor a torch.save file; use .safetensors, .bin, .pt or .pth"
    )


_SAFETENSORS_MAX_HEADER = 100_000_000
"""Largest safetensors JSON header in bytes (the safetensors library's own limit)."""


def sniff_checkpoint_format(path) -> str | None:
    """Which loader a checkpoint file needs, judged by its first bytes rather than its name.

    * ``"safetensors"``: 8 bytes little-endian header length (1 ..
      :data:`_SAFETENSORS_MAX_HEADER`), then the JSON header starting with ``{``;
    * ``"torch"``: a zip archive (``PK\\x03\\x04``, every ``torch.save`` since PyTorch 1.6)
      or a pickle stream (protocol 2+ opcode ``\\x80``, legacy ``torch.save``);
    * ``None``: neither (too short, empty, another format); the caller falls back to the suffix.

    Args:
        path: a file path.

    Raises:
        OSError: the file cannot be opened.
    """
    with open(path, "rb") as handle:
        head = handle.read(9)
    if len(head) == 9 and head[8:9] == b"{" and 1 <= int.from_bytes(head[:8], "little") <= _SAFETENSORS_MAX_HEADER:
        return "safetensors"
    if head.startswith(b"PK\x03\x04") or (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5):
        return "torch"
    return None


def _metadata_overrides(metadata: Mapping[str, str], num_heads, eps):
    """``(num_heads, eps)`` from the safetensors metadata where not given by the caller.

    The values are checked here, before the model is built: ``num_heads`` must be an
    integer >= 1 and ``eps`` a finite number > 0 (a ``nan``/``inf``/``0``/negative eps makes
    every norm non-finite: the model would return all-NaN frames without an error).

    Raises:
        CheckpointError: an unparsable or out-of-range value.
    """
    if num_heads is None and "num_heads" in metadata:
        num_heads = _metadata_number(metadata["num_heads"], "num_heads", integer=True)
    if eps is None and "eps" in metadata:
        eps = _metadata_number(metadata["eps"], "eps", advice=" (Wan uses 1e-06); the file's metadata is corrupt -- "
                               "re-save it with tempomaster_core.convert")
    return num_heads, eps


def _metadata_number(value, name: str, *, integer: bool = False, advice: str = ""):
    """A number read from a checkpoint's metadata (text, or a JSON value): a finite float > 0, or with
    ``integer`` a whole number >= 1 as an int (rules of :mod:`tempomaster_core.validation`).

    Raises:
        CheckpointError: ``"bad <name> <value> in the safetensors metadata: <rule>"`` plus ``advice``.
    """
    try:
        if integer:
            return require_int(require_whole_number(value, name), name, minimum=1)
        return require_number(value, name, minimum=0.0, exclusive_minimum=True, parse_text=True)
    except InputError as err:
        raise CheckpointError(f"bad {name} {value!r} in the safetensors metadata: {err}{advice}") from None


def _recorded_config(metadata: Mapping[str, str]) -> dict:
    """The ``tempomaster_config`` entry of a checkpoint's metadata as a dict (empty if absent or unreadable)."""
    try:
        recorded = json.loads(metadata["tempomaster_config"])
    except (KeyError, ValueError, TypeError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def _metadata_rope_theta(recorded: Mapping, default: float) -> float:
    """The RoPE base recorded in a checkpoint's ``tempomaster_config`` metadata (``default`` if absent).

    Raises:
        CheckpointError: a recorded value that is not a positive finite number.
    """
    return _metadata_number(recorded.get("rope_theta", default), "rope_theta")


def _metadata_text_len(recorded: Mapping) -> int | None:
    """The text length recorded in a checkpoint's ``tempomaster_config`` metadata (``None`` if absent,
    see :attr:`DiTConfig.text_len`).

    Raises:
        CheckpointError: a recorded value that is not null or an integer >= 1.
    """
    value = recorded.get("text_len")
    return None if value is None else _metadata_number(value, "text_len", integer=True)


def _metadata_frame_correlation(recorded: Mapping) -> float:
    """The latent-frame noise correlation recorded in a checkpoint's ``tempomaster_config`` metadata
    (0.0, i.i.d. noise, if absent; see :attr:`DiTConfig.noise_frame_correlation`).

    Raises:
        CheckpointError: a recorded value that is not a number in ``[0, 1)``.
    """
    value = recorded.get("noise_frame_correlation", 0.0)
    try:
        return check_frame_correlation(value, "noise_frame_correlation")
    except ValueError as err:
        raise CheckpointError(f"bad noise_frame_correlation {value!r} in the safetensors metadata: {err}") from None


class CheckpointLayout(NamedTuple):
    """What :func:`checkpoint_layout` reads from an opened checkpoint.

    Attributes:
        rename: ``{normalised name: stored name}`` of the model tensors.
        shapes: ``{normalised name: shape tuple}`` of the model tensors.
        config: the :class:`DiTConfig`.
        scales: ``{normalised layer name: stored name of its scale_weight}`` (scaled fp8 files).
    """

    rename: dict
    shapes: dict
    config: DiTConfig
    scales: dict


def _split_fp8_keys(stored: Mapping[str, tuple]) -> tuple[dict, dict]:
    """``(model keys, scale keys)``: stored names without the scaled-fp8 marker and the unused input
    scales, and the ``scale_weight`` entries (both ``{stored name: shape}``).

    Raises:
        CheckpointError: a scale that is not one number.
    """
    model, scales = {}, {}
    for key, shape in stored.items():
        if key == SCALED_FP8_MARKER or key.endswith("." + SCALED_FP8_MARKER) or key.endswith(INPUT_SCALE_SUFFIX):
            continue
        if key.endswith(SCALE_SUFFIX):
            if math.prod(shape) != 1:
                raise CheckpointError(f"{key!r} has shape {list(shape)}; a scaled fp8 checkpoint has one scale per weight")
            scales[key] = shape
        else:
            model[key] = shape
    return model, scales


def checkpoint_layout(ckpt, num_heads: int | None = None) -> CheckpointLayout:
    """Key names, shapes, scales and config of an opened checkpoint, from its shapes and metadata.

    Args:
        ckpt: from :func:`open_checkpoint`.
        num_heads: override; otherwise from the metadata or ``dim // 128``.

    Returns:
        a :class:`CheckpointLayout` (``num_heads``, ``eps``, ``rope_theta``, ``text_len`` and ``noise_frame_correlation`` of the
        config from the metadata where recorded).

    Raises:
        CheckpointError: see :func:`infer_config_from_shapes` and :func:`_metadata_overrides`; a
            ``scale_weight`` without its weight.
    """
    model_keys, scale_keys = _split_fp8_keys(ckpt.shapes)
    rename = normalize_state_dict_keys({k: k for k in {**model_keys, **scale_keys}})  # new name -> stored name
    scales = {new[: -len(SCALE_SUFFIX)]: old for new, old in rename.items() if old in scale_keys}
    rename = {new: old for new, old in rename.items() if old in model_keys}
    shapes = {new: tuple(ckpt.shapes[old]) for new, old in rename.items()}
    orphans = sorted(layer for layer in scales if layer + ".weight" not in shapes)
    if orphans:
        raise CheckpointError(f"the checkpoint has scale_weight entries without their weights: {_few(orphans)}")
    heads, eps = _metadata_overrides(ckpt.metadata, num_heads, None)
    config = infer_config_from_shapes(shapes, num_heads=heads, eps=eps)
    recorded = _recorded_config(ckpt.metadata)
    config = dataclasses.replace(config, rope_theta=_metadata_rope_theta(recorded, config.rope_theta),
                                 text_len=_metadata_text_len(recorded),
                                 noise_frame_correlation=_metadata_frame_correlation(recorded))
    return CheckpointLayout(rename, shapes, config, scales)


def read_config(source, *, text_len: int | None = None) -> DiTConfig:
    """The :class:`DiTConfig` of a checkpoint file, read from its tensor shapes and metadata only.

    No weight is read: a safetensors file gives its JSON header; a zip ``torch.save`` file is
    opened memory-mapped (its pickle is read, the storages stay on disk). Used to price a plan
    for the model a workflow names before it is loaded (the tree view's estimate).

    Args:
        source: path to a checkpoint (see :func:`open_checkpoint`) or a state dict.
        text_len: token slots of the text context, overriding the recorded value (as :func:`load_dit`).

    Raises:
        FileNotFoundError: missing file.
        CheckpointError: not a TempoMaster DiT checkpoint (see :func:`checkpoint_layout`), or a
            pre-1.6 (non-zip) ``torch.save`` file, which cannot be read without loading every weight.
    """
    if (isinstance(source, (str, os.PathLike)) and sniff_checkpoint_format(source) == "torch"
            and not zipfile.is_zipfile(source)):
        raise CheckpointError(f"{Path(source).name} is a legacy (non-zip) torch file: its shapes cannot be read "
                              "without loading it; convert it with `python -m tempomaster_core.convert`")
    ckpt = open_checkpoint(source)
    try:
        config = checkpoint_layout(ckpt).config
    finally:
        ckpt.close()
    return config if text_len is None else dataclasses.replace(config, text_len=text_len)


def key_problems(expected: Mapping[str, tuple], found: Mapping[str, tuple]) -> list[str]:
    """What differs between a model's tensor names/shapes and a checkpoint's, one phrase per kind of
    difference naming up to five tensors (missing, unexpected, wrong shapes); empty when they match.
    Shared by the DiT (:func:`check_keys`) and the text encoder and VAE loaders (:mod:`tempomaster_core.wan`)."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(k for k in expected if k in found and tuple(found[k]) != tuple(expected[k]))
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing tensors: {_few(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensors: {_few(unexpected)}")
    if wrong:
        problems.append(
            f"{len(wrong)} tensors with wrong shapes: "
            + ", ".join(f"{k!r} {list(found[k])} != {list(expected[k])}" for k in wrong[:3])
        )
    return problems


def check_keys(expected: Mapping[str, tuple], found: Mapping[str, tuple]) -> None:
    """Compare checkpoint names/shapes with a model's (:func:`key_problems`).

    Raises:
        CheckpointError: naming up to five missing, unexpected or wrongly shaped tensors.
    """
    problems = key_problems(expected, found)
    if problems:
        raise CheckpointError(
            "checkpoint does not match a TempoMaster Wan DiT: " + "; ".join(problems)
            + f". The file may be a different model variant or incomplete. {DOWNLOAD_HINT}"
        )


def _model_keys(model: TempoMasterDiT) -> dict[str, tuple]:
    """``{name: shape}`` of the model's tensors a checkpoint must hold (weight scales excluded)."""
    return {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith(SCALE_SUFFIX)}


def _prepare_scales(model: TempoMasterDiT, weight_dtype: torch.dtype) -> set[str]:
    """Give every layer that will hold fp8 weights a ``scale_weight`` parameter (meta, to be assigned);
    return the names of all layers with one (ComfyUI's scaled fp8 ops give every Linear one).

    Raises:
        TypeError: fp8 weights for layers of an ``operations`` class without a weight scale.
    """
    layers = set()
    for name, module in model.named_modules():
        fp8 = is_fp8_dtype(weight_dtype) and is_fp8_weight(name + ".weight")
        if fp8 and not supports_weight_scale(module):
            raise TypeError(
                f"fp8 weights need layers with a weight scale (tempomaster_core.ops.CastOps or ComfyUI's "
                f"comfy.ops.scaled_fp8_ops()); {name} is a {type(module).__name__}"
            )
        if fp8 and module.scale_weight is None:
            module.scale_weight = torch.nn.Parameter(torch.empty((), device="meta"), requires_grad=False)
        if supports_weight_scale(module) and module.scale_weight is not None:
            layers.add(name)
    return layers


def load_dit(
    source,
    *,
    dtype=torch.bfloat16,
    device="cpu",
    attention_backend: str = DEFAULT_BACKEND,
    num_heads: int | None = None,
    text_len: int | None = None,
    compute_dtype=None,
    operations=None,
) -> TempoMasterDiT:
    """Load a TempoMaster DiT from a checkpoint file or state dict.

    Args:
        source: path (``str``/``Path``) to ``.safetensors``/``.bin``/``.pt``/``.pth``, or a
            ``{name: tensor}`` state dict (its tensors may be reused as parameters when
            dtype/device already match). Scaled fp8 checkpoints are dequantised unless kept in fp8.
        dtype: weight storage dtype: ``torch.bfloat16`` (default), fp16, fp32 (every tensor), or
            ``"fp8_e4m3fn"``/``"fp8_e5m2"`` (block linear weights in fp8 with a per-tensor scale,
            the rest in ``compute_dtype``; :mod:`tempomaster_core.fp8`); a name or a ``torch.dtype``.
            Norms/modulation are computed in fp32 regardless.
        device: where the parameters live (``"cpu"``, ``"cuda"``, ...). Tensors are moved one
            at a time, so CPU RAM holds at most one extra tensor when loading to a GPU
            from safetensors (fp8 quantisation happens on ``device``).
        attention_backend: see :class:`TempoMasterDiT`.
        num_heads: override; otherwise from safetensors metadata or ``dim // 128``.
        text_len: token slots of the text context (:attr:`DiTConfig.text_len`); overrides the
            recorded value (the built-in bundle passes its text encoder's length). ``None``: as
            recorded, else 512 for an umT5-width model, else the text encoder's own length.
        compute_dtype: with fp8 weights, the dtype of everything else and of the matmuls
            (default bf16; fp16 or fp32); ignored (the storage dtype) otherwise.
        operations: layer classes (:mod:`tempomaster_core.ops`; default ``CastOps``); fp8
            weights need a ``Linear`` with a weight scale.

    Returns:
        The model in eval mode with ``requires_grad`` off (call ``.train()`` and
        ``.requires_grad_(True)`` to fine-tune).

    Raises:
        FileNotFoundError: missing file.
        ValueError: an unknown dtype or compute dtype; fp8 on Apple MPS.
        TypeError: fp8 weights with ``operations`` whose Linear has no weight scale.
        CheckpointError: any bad checkpoint (see :func:`infer_config_from_shapes` and
            :func:`check_keys`; truncated/corrupt files; pickled objects).
    """
    dtype = parse_dtype(dtype)
    compute = dtype
    if is_fp8_dtype(dtype):
        compute = parse_dtype(compute_dtype or torch.bfloat16)
        if is_fp8_dtype(compute):
            raise ValueError(f"compute_dtype must be one of {', '.join(COMPUTE_DTYPES)}, got {compute_dtype!r}")
    device = torch.device(device)
    if is_fp8_dtype(dtype) and device.type == "mps":
        raise ValueError("fp8 weights cannot be stored on Apple MPS (torch has no float8 there); use bf16 or fp16")
    ckpt = open_checkpoint(source)
    try:
        rename, shapes, config, scales = checkpoint_layout(ckpt, num_heads)
        if text_len is not None:
            config = dataclasses.replace(config, text_len=text_len)
        with torch.device("meta"):
            model = TempoMasterDiT(config, attention_backend=attention_backend, operations=operations or CastOps)
        check_keys(_model_keys(model), shapes)
        scaled_layers = _prepare_scales(model, dtype)
        tensors = {}
        for new, old in rename.items():
            tensor = ckpt.get(old)
            if not tensor.is_floating_point():
                raise CheckpointError(f"tensor {old!r} has dtype {tensor.dtype}; a DiT checkpoint holds floats")
            layer = new.rsplit(".", 1)[0]
            scale = ckpt.get(scales[layer]) if new.endswith(".weight") and layer in scales else None
            if is_fp8_dtype(dtype) or scale is not None:
                tensor = tensor.to(device)
            value, new_scale = storage_tensor(new, tensor, scale, dtype, compute)
            tensors[new] = value.to(device=device)
            if layer in scaled_layers and new.endswith(".weight"):
                one = torch.ones((), dtype=torch.float32)
                tensors[layer + SCALE_SUFFIX] = (one if new_scale is None else new_scale).to(device)
            del tensor, value
        model.load_state_dict(tensors, strict=True, assign=True)
        del tensors
    finally:
        ckpt.close()
    model.requires_grad_(False)
    return model.eval()


def convert_state_dict(state_dict: Mapping, dtype, compute_dtype=None) -> dict:
    """A DiT state dict (reference names; scaled fp8 entries allowed) in another weight dtype.

    Args:
        state_dict: ``{name: tensor}``, e.g. ``model.state_dict()``; ``<layer>.scale_weight``
            entries are the scales of fp8 weights.
        dtype: target weight dtype (:data:`STORAGE_DTYPES` name or torch dtype).
        compute_dtype: with an fp8 ``dtype``, the dtype of the other tensors (default bf16).

    Returns:
        A new dict: for fp8, block linear weights quantised (:func:`tempomaster_core.fp8.quantize`)
        with their ``scale_weight``, the rest in ``compute_dtype``; otherwise every tensor in
        ``dtype`` (fp8 ones dequantised, scales dropped). No marker entry.

    Raises:
        ValueError: unknown dtype.
    """
    dtype = parse_dtype(dtype)
    compute = parse_dtype(compute_dtype or torch.bfloat16) if is_fp8_dtype(dtype) else dtype
    out = {}
    for name, tensor in state_dict.items():
        if name.endswith(SCALE_SUFFIX) or name == SCALED_FP8_MARKER:
            continue
        layer = name.rsplit(".", 1)[0]
        scale = state_dict.get(layer + SCALE_SUFFIX) if name.endswith(".weight") else None
        value, new_scale = storage_tensor(name, tensor, scale, dtype, compute)
        out[name] = value
        if new_scale is not None:
            out[layer + SCALE_SUFFIX] = new_scale
    return out


def fp8_marker(state_dict: Mapping) -> dict:
    """``{"scaled_fp8": empty tensor of the fp8 dtype}`` when ``state_dict`` holds fp8 tensors (the
    entry ComfyUI uses to recognise a scaled fp8 checkpoint), else ``{}``."""
    for value in state_dict.values():
        if torch.is_tensor(value) and is_fp8_dtype(value.dtype):
            return {SCALED_FP8_MARKER: torch.empty(0, dtype=value.dtype)}
    return {}


def save_dit(model_or_state_dict, path, *, config: DiTConfig | None = None, dtype=None) -> Path:
    """Save a DiT as ``.safetensors`` with its config in the metadata (so it reloads without arguments).

    Args:
        model_or_state_dict: a :class:`TempoMasterDiT` or a state dict in reference layout.
        path: destination ``.safetensors`` path.
        config: required with a state dict whose num_heads is not ``dim // 128``; default:
            the model's config, or inferred.
        dtype: optional storage dtype to convert to (:func:`convert_state_dict`; fp8 names give a
            scaled fp8 file).

    Returns:
        The path written. A file with fp8 tensors carries ComfyUI's ``scaled_fp8`` marker.
    """
    from safetensors.torch import save_file

    if isinstance(model_or_state_dict, TempoMasterDiT):
        config = config or model_or_state_dict.config
        state = model_or_state_dict.state_dict()
    else:
        state = normalize_state_dict_keys(model_or_state_dict)
        config = config or infer_config(state)
    if dtype is not None:
        state = convert_state_dict(state, dtype)
    state = {k: v.detach().cpu().contiguous() for k, v in {**state, **fp8_marker(state)}.items()}
    path = Path(path)
    save_file(state, str(path), metadata=config_metadata(config))
    return path
