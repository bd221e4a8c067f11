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
from typing import Callable, Mapping

import torch

from .config import DiTConfig
from .model import TempoMasterDiT
from .validation import is_integer

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

STORAGE_DTYPES = ("bf16", "fp16", "fp32")
"""Short names of the weight storage dtypes offered to users (node widget, converter); :func:`parse_dtype`
also takes the long names (``"bfloat16"``, ...) and ``torch.dtype`` objects."""

_DTYPES = {
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
    "fp16": torch.float16, "float16": torch.float16, "half": torch.float16,
    "fp32": torch.float32, "float32": torch.float32, "float": torch.float32,
}


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded as a TempoMaster DiT; the message says why and what to do."""


def parse_dtype(dtype) -> torch.dtype:
    """``torch.dtype`` or name (``"bf16"``, ``"fp16"``, ``"fp32"``, long names) -> a float ``torch.dtype``.

    Raises:
        ValueError: unsupported dtype.
    """
    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.bfloat16, torch.float16, torch.float32, torch.float64):
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


def _truncated(path: Path, err: Exception) -> CheckpointError:
    return CheckpointError(
        f"cannot read {path}: the file is truncated or corrupt ({type(err).__name__}: {str(err)[:200]}). "
        f"Re-download it. {DOWNLOAD_HINT}"
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


def _open_safetensors(path: Path) -> _Source:
    from safetensors import safe_open

    try:
        handle = safe_open(str(path), framework="pt", device="cpu")
        shapes = {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}
        metadata = handle.metadata() or {}
    except Exception as err:  # SafetensorError, OSError
        raise _truncated(path, err) from err

    def get(key: str) -> torch.Tensor:
        try:
            return handle.get_tensor(key)
        except Exception as err:
            raise _truncated(path, err) from err

    return _Source(shapes, get, metadata, close=lambda: None)


def _open_torch(path: Path) -> _Source:
    use_mmap = zipfile.is_zipfile(path)  # truncated zips and legacy files: no mmap
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=use_mmap)
    except pickle.UnpicklingError as err:
        if "weights only" in str(err).lower():
            raise CheckpointError(
                f"{path} contains pickled Python objects other than tensors; refusing to unpickle them "
                "(weights_only=True). Save a plain state dict, or convert a trusted file to safetensors."
            ) from err
        raise _truncated(path, err) from err
    except (RuntimeError, OSError, EOFError, ValueError) as err:
        raise _truncated(path, err) from err
    state = _unwrap(obj, path)
    shapes = _shapes_of(state)
    return _Source(shapes, state.__getitem__)


def open_checkpoint(source) -> _Source:
    """Open a checkpoint path or state dict for lazy, tensor-by-tensor reading (used by the converter).

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
        raise FileNotFoundError(f"checkpoint file not found: {path}. {DOWNLOAD_HINT}")
    kind = sniff_checkpoint_format(path)  # the content decides; the suffix only where it cannot
    suffix = path.suffix.lower()
    if kind == "safetensors" or (kind is None and suffix in SUFFIXES_SAFETENSORS):
        return _open_safetensors(path)
    if kind == "torch" and os.fspath(path).endswith(".safetensors"):
        raise CheckpointError(
            f"{path.name} is a torch.save file, not safetensors, despite its name (torch.load reads every "
            "file named .safetensors as safetensors); rename it to .bin, or convert it with "
            "`python -m tempomaster_core.convert`"
        )
    if kind == "torch" or (kind is None and suffix in SUFFIXES_TORCH):
        return _open_torch(path)
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
        try:
            num_heads = int(metadata["num_heads"])
        except ValueError as err:
            raise CheckpointError(f"bad num_heads {metadata['num_heads']!r} in the safetensors metadata") from err
        if num_heads < 1:
            raise CheckpointError(f"bad num_heads {metadata['num_heads']!r} in the safetensors metadata: must be >= 1")
    if eps is None and "eps" in metadata:
        try:
            eps = float(metadata["eps"])
        except ValueError as err:
            raise CheckpointError(f"bad eps {metadata['eps']!r} in the safetensors metadata") from err
        if not (math.isfinite(eps) and eps > 0):
            raise CheckpointError(
                f"bad eps {metadata['eps']!r} in the safetensors metadata: must be a finite number > 0 "
                "(Wan uses 1e-06); the file's metadata is corrupt -- re-save it with tempomaster_core.convert"
            )
    return num_heads, eps


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
    value = recorded.get("rope_theta", default)
    try:
        theta = float(value)
    except (TypeError, ValueError):
        theta = float("nan")
    if not (math.isfinite(theta) and theta > 0):
        raise CheckpointError(f"bad rope_theta {value!r} in the safetensors metadata; it must be a positive number")
    return theta


def _metadata_text_len(recorded: Mapping) -> int | None:
    """The text length recorded in a checkpoint's ``tempomaster_config`` metadata (``None`` if absent,
    see :attr:`DiTConfig.text_len`).

    Raises:
        CheckpointError: a recorded value that is not null or an integer >= 1.
    """
    value = recorded.get("text_len")
    if value is not None and not (is_integer(value) and value >= 1):
        raise CheckpointError(f"bad text_len {value!r} in the safetensors metadata; it must be an integer >= 1")
    return value


def checkpoint_layout(ckpt, num_heads: int | None = None) -> tuple[dict, dict, DiTConfig]:
    """Key names, shapes and config of an opened checkpoint, from its shapes and metadata.

    Args:
        ckpt: from :func:`open_checkpoint`.
        num_heads: override; otherwise from the metadata or ``dim // 128``.

    Returns:
        ``(rename, shapes, config)``: ``{normalized name: stored name}``, ``{normalized name: shape
        tuple}`` and the :class:`DiTConfig` (``num_heads``, ``eps``, ``rope_theta`` and ``text_len``
        from the metadata where recorded).

    Raises:
        CheckpointError: see :func:`infer_config_from_shapes` and :func:`_metadata_overrides`.
    """
    rename = normalize_state_dict_keys({k: k for k in ckpt.shapes})  # new name -> stored name
    shapes = {new: tuple(ckpt.shapes[old]) for new, old in rename.items()}
    heads, eps = _metadata_overrides(ckpt.metadata, num_heads, None)
    config = infer_config_from_shapes(shapes, num_heads=heads, eps=eps)
    recorded = _recorded_config(ckpt.metadata)
    config = dataclasses.replace(config, rope_theta=_metadata_rope_theta(recorded, config.rope_theta),
                                 text_len=_metadata_text_len(recorded))
    return rename, shapes, config


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
        _rename, _shapes, config = checkpoint_layout(ckpt)
    finally:
        ckpt.close()
    return config if text_len is None else dataclasses.replace(config, text_len=text_len)


def check_keys(expected: Mapping[str, tuple], found: Mapping[str, tuple]) -> None:
    """Compare checkpoint names/shapes with a model's.

    Raises:
        CheckpointError: naming up to five missing, unexpected or wrongly shaped tensors.
    """
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
    if problems:
        raise CheckpointError(
            "checkpoint does not match a TempoMaster Wan DiT: " + "; ".join(problems)
            + f". The file may be a different model variant or incomplete. {DOWNLOAD_HINT}"
        )


def load_dit(
    source,
    *,
    dtype=torch.bfloat16,
    device="cpu",
    attention_backend: str = "sdpa",
    num_heads: int | None = None,
    text_len: int | None = None,
) -> TempoMasterDiT:
    """Load a TempoMaster DiT from a checkpoint file or state dict.

    Args:
        source: path (``str``/``Path``) to ``.safetensors``/``.bin``/``.pt``/``.pth``, or a
            ``{name: tensor}`` state dict (its tensors may be reused as parameters when
            dtype/device already match).
        dtype: storage dtype of all parameters (``torch.bfloat16`` default, fp16, fp32 or a
            name like ``"bf16"``); norms/modulation are computed in fp32 regardless.
        device: where the parameters live (``"cpu"``, ``"cuda"``, ...). Tensors are moved one
            at a time, so CPU RAM holds at most one extra tensor when loading to a GPU
            from safetensors.
        attention_backend: see :class:`TempoMasterDiT`.
        num_heads: override; otherwise from safetensors metadata or ``dim // 128``.
        text_len: token slots of the text context (:attr:`DiTConfig.text_len`); overrides the
            recorded value (the built-in bundle passes its text encoder's length). ``None``: as
            recorded, else 512 for an umT5-width model, else the text encoder's own length.

    Returns:
        The model in eval mode with ``requires_grad`` off (call ``.train()`` and
        ``.requires_grad_(True)`` to fine-tune).

    Raises:
        FileNotFoundError: missing file.
        CheckpointError: any bad checkpoint (see :func:`infer_config_from_shapes` and
            :func:`check_keys`; truncated/corrupt files; pickled objects).
    """
    dtype = parse_dtype(dtype)
    device = torch.device(device)
    ckpt = open_checkpoint(source)
    try:
        rename, shapes, config = checkpoint_layout(ckpt, num_heads)
        if text_len is not None:
            config = dataclasses.replace(config, text_len=text_len)
        with torch.device("meta"):
            model = TempoMasterDiT(config, attention_backend=attention_backend)
        check_keys({k: tuple(v.shape) for k, v in model.state_dict().items()}, shapes)
        tensors = {}
        for new, old in rename.items():
            tensor = ckpt.get(old)
            if not tensor.is_floating_point():
                raise CheckpointError(f"tensor {old!r} has dtype {tensor.dtype}; a DiT checkpoint holds floats")
            tensors[new] = tensor.to(device=device, dtype=dtype)
            del tensor
        model.load_state_dict(tensors, strict=True, assign=True)
        del tensors
    finally:
        ckpt.close()
    model.requires_grad_(False)
    return model.eval()


def save_dit(model_or_state_dict, path, *, config: DiTConfig | None = None, dtype=None) -> Path:
    """Save a DiT as ``.safetensors`` with its config in the metadata (so it reloads without arguments).

    Args:
        model_or_state_dict: a :class:`TempoMasterDiT` or a state dict in reference layout.
        path: destination ``.safetensors`` path.
        config: required with a state dict whose num_heads is not ``dim // 128``; default:
            the model's config, or inferred.
        dtype: optional storage dtype to convert to.

    Returns:
        The path written.
    """
    from safetensors.torch import save_file

    if isinstance(model_or_state_dict, TempoMasterDiT):
        config = config or model_or_state_dict.config
        state = model_or_state_dict.state_dict()
    else:
        state = normalize_state_dict_keys(model_or_state_dict)
        config = config or infer_config(state)
    if dtype is not None:
        dtype = parse_dtype(dtype)
        state = {k: v.to(dtype) for k, v in state.items()}
    state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    path = Path(path)
    save_file(state, str(path), metadata=config_metadata(config))
    return path
