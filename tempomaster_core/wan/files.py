"""The files of the 14B model set: their usual names and folders, and what kind a checkpoint is.

Users hold the set in one of three layouts, all found by :func:`find_model_files`:

* ComfyUI's ``models`` folder: ``diffusion_models/<DiT>``, ``text_encoders/umt5_xxl_fp16.safetensors``
  (or ``umt5_xxl_fp8_e4m3fn_scaled.safetensors``; the tokenizer is inside that file),
  ``vae/wan_2.1_vae.safetensors``;
* the reference's ``checkpoints`` folder (``benchmarks/inference_configs.json``): ``wan_video_dit_bf16.bin``,
  ``encoders/models_t5_umt5-xxl-enc-bf16.pth``, ``encoders/Wan2.1_VAE.pth`` and the tokenizer folder
  ``encoders/google/umt5-xxl``;
* everything in one folder (the Wan 2.1 release's layout for the encoder, VAE and ``google/umt5-xxl``).

Files are matched by exact name (:data:`DIT_NAMES`, :data:`TEXT_ENCODER_NAMES`, :data:`VAE_NAMES`, first
match in :data:`SEARCH_FOLDERS` order); a file with another name is passed on its own flag. Which kind a
checkpoint is comes from its key names (:func:`checkpoint_kind`), read from the safetensors header or the
memory-mapped pickle, never from the weights. Torch only (no ``wan`` extra needed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from ..loading import RELEASE_FILE, CheckpointError, normalize_state_dict_keys, open_checkpoint

REPACKAGED_REPO = "Comfy-Org/Wan_2.1_ComfyUI_repackaged"
"""Hugging Face repository of ComfyUI's repackaged Wan 2.1 files (``split_files/text_encoders``, ``split_files/vae``)."""

UMT5_FILE = "umt5_xxl_fp16.safetensors"
"""ComfyUI's umT5-XXL encoder file (fp16, with the tokenizer inside)."""

UMT5_FP8_FILE = "umt5_xxl_fp8_e4m3fn_scaled.safetensors"
"""ComfyUI's scaled fp8 umT5-XXL encoder file."""

REFERENCE_UMT5_FILE = "models_t5_umt5-xxl-enc-bf16.pth"
"""The Wan 2.1 release's umT5-XXL encoder file (bf16), which the reference loads."""

VAE_FILE = "wan_2.1_vae.safetensors"
"""ComfyUI's Wan 2.1 VAE file."""

REFERENCE_VAE_FILE = "Wan2.1_VAE.pth"
"""The Wan 2.1 release's VAE file, which the reference loads."""

TOKENIZER_DIR = "google/umt5-xxl"
"""The umT5 tokenizer folder of the Wan 2.1 release (beside its encoder file)."""

TOKENIZER_JSON = "tokenizer.json"
"""transformers' tokenizer file in a tokenizer folder."""

TOKENIZER_SPIECE = "spiece.model"
"""SentencePiece model file in a tokenizer folder."""

DIT_NAMES = ("tempomaster_dit_bf16.safetensors", "wan_video_dit_bf16.safetensors",
             "tempomaster_dit_fp8_e4m3fn_scaled.safetensors", RELEASE_FILE)
"""DiT file names looked for, in order: converted safetensors first (memory-mapped, faster), the release last."""

TEXT_ENCODER_NAMES = (UMT5_FILE, REFERENCE_UMT5_FILE, UMT5_FP8_FILE)
"""Text encoder file names looked for, in order."""

VAE_NAMES = (VAE_FILE, REFERENCE_VAE_FILE)
"""VAE file names looked for, in order."""

SEARCH_FOLDERS = {
    "dit": ("", "diffusion_models", "checkpoints"),
    "text_encoder": ("", "text_encoders", "encoders", "checkpoints/encoders"),
    "vae": ("", "vae", "encoders", "checkpoints/encoders"),
}
"""Sub-folders of ``--model-dir`` searched for each file, in order (``""``: the folder itself)."""

ROLE_NAMES = {"dit": "the TempoMaster DiT", "text_encoder": "the umT5-XXL text encoder",
              "vae": "the Wan 2.1 VAE", "tokenizer": "the umT5 tokenizer"}
"""What each file of the set is, for messages."""

TEXT_ENCODER_HINT = (f"Download {UMT5_FILE} from the Hugging Face repo {REPACKAGED_REPO} (split_files/text_encoders), "
                     f"or use the Wan 2.1 release's {REFERENCE_UMT5_FILE} with its {TOKENIZER_DIR} folder.")
VAE_HINT = (f"Download {VAE_FILE} from the Hugging Face repo {REPACKAGED_REPO} (split_files/vae), or use the Wan 2.1 "
            f"release's {REFERENCE_VAE_FILE}.")


class ModelFileError(ValueError):
    """A file of the model set that is missing, of the wrong kind or broken; the message says what to do."""


@dataclass(frozen=True)
class ModelFiles:
    """The files of one 14B model set.

    Attributes:
        dit: TempoMaster DiT checkpoint (:func:`tempomaster_core.loading.load_dit` reads it).
        text_encoder: umT5 encoder checkpoint (ComfyUI's or the reference's layout).
        vae: Wan 2.1 VAE checkpoint.
        tokenizer: tokenizer folder (``google/umt5-xxl``), or ``None`` to use the one inside ComfyUI's
            text encoder file.
    """

    dit: Path
    text_encoder: Path
    vae: Path
    tokenizer: Optional[Path] = None


def _search(root: Path, role: str) -> Optional[Path]:
    names = {"dit": DIT_NAMES, "text_encoder": TEXT_ENCODER_NAMES, "vae": VAE_NAMES}[role]
    for name in names:
        for folder in SEARCH_FOLDERS[role]:
            path = root / folder / name
            if path.is_file():
                return path
    return None


def _search_tokenizer(root: Optional[Path], text_encoder: Optional[Path]) -> Optional[Path]:
    bases = ([text_encoder.parent] if text_encoder is not None else []) + (
        [root, root / "encoders", root / "checkpoints" / "encoders"] if root is not None else [])
    for base in bases:
        if (base / TOKENIZER_DIR).is_dir():
            return base / TOKENIZER_DIR
    return None


def expected_names(role: str) -> str:
    """How a missing file of ``role`` is named and where it is looked for, for messages."""
    if role == "tokenizer":
        return f"a {TOKENIZER_DIR} folder beside the text encoder or in the folder"
    names = {"dit": DIT_NAMES, "text_encoder": TEXT_ENCODER_NAMES, "vae": VAE_NAMES}[role]
    folders = ", ".join(f"{f}/" if f else "the folder itself" for f in SEARCH_FOLDERS[role])
    return f"{' or '.join(names)} (in {folders})"


def find_model_files(model_dir: Union[str, Path, None] = None, *, dit=None, text_encoder=None, vae=None,
                     tokenizer=None) -> ModelFiles:
    """The set's files: the paths given, the rest found in ``model_dir`` by their usual names.

    Args:
        model_dir: folder holding the set in one of the layouts of the module doc (``None``: every file given).
        dit, text_encoder, vae: paths that win over what ``model_dir`` holds.
        tokenizer: tokenizer folder; default: ``google/umt5-xxl`` beside the text encoder or in ``model_dir``,
            else ``None`` (the tokenizer inside ComfyUI's text encoder file).

    Returns:
        :class:`ModelFiles` (existence only; :func:`checkpoint_kind` and the loaders check the content).

    Raises:
        ModelFileError: ``model_dir`` is not a folder; a given path does not exist; files missing (the message
            lists each with its expected names and folders, and the flag that gives it directly).
    """
    given = {"dit": dit, "text_encoder": text_encoder, "vae": vae}
    root = Path(model_dir) if model_dir is not None else None
    if root is not None and not root.is_dir():
        raise ModelFileError(f"--model-dir {model_dir}: {'not a directory' if root.exists() else 'no such directory'}")
    found: dict = {}
    for role, path in given.items():
        if path is not None:
            path = Path(path)
            if not path.is_file():
                raise ModelFileError(f"--{role.replace('_', '-')} {path}: "
                                     f"{'not a file' if path.exists() else 'no such file'}")
            found[role] = path
        elif root is not None:
            found[role] = _search(root, role)
    missing = [role for role in given if found.get(role) is None]
    if missing:
        where = f"{model_dir} lacks" if root is not None else "missing"
        listed = "; ".join(f"{ROLE_NAMES[r]}: {expected_names(r)}, or --{r.replace('_', '-')} FILE" for r in missing)
        raise ModelFileError(f"{where} {', '.join(ROLE_NAMES[r] for r in missing)} -- {listed}")
    if tokenizer is not None:
        tokenizer = Path(tokenizer)
        if not tokenizer.is_dir():
            raise ModelFileError(f"--tokenizer {tokenizer}: {'not a directory' if tokenizer.exists() else 'no such directory'}"
                                 f" (the {TOKENIZER_DIR} folder of the Wan 2.1 release)")
    else:
        tokenizer = _search_tokenizer(root, found["text_encoder"])
    return ModelFiles(dit=found["dit"], text_encoder=found["text_encoder"], vae=found["vae"], tokenizer=tokenizer)


def checkpoint_kind(path: Union[str, Path]) -> Optional[str]:
    """Which file of the set a checkpoint is, from its key names: ``"dit"``, ``"text_encoder"``, ``"vae"``,
    ``"vae_diffusers"`` (a Wan VAE in diffusers' key layout), or ``None`` (something else).

    Raises:
        FileNotFoundError: no such file.
        ModelFileError: not a readable safetensors / torch file.
    """
    from .text_encoder import text_encoder_layout
    from .vae import vae_layout

    try:
        ckpt = open_checkpoint(path, hint="")
    except CheckpointError as err:
        raise ModelFileError(str(err)) from None
    try:
        names = set(ckpt.shapes)
    finally:
        ckpt.close()
    if "patch_embedding.weight" in normalize_state_dict_keys({k: k for k in names}):
        return "dit"
    if text_encoder_layout(names) is not None:
        return "text_encoder"
    layout = vae_layout(names)
    if layout is not None:
        return "vae" if layout == "wan" else "vae_diffusers"
    return None


__all__ = ["DIT_NAMES", "ModelFileError", "ModelFiles", "REFERENCE_UMT5_FILE", "REFERENCE_VAE_FILE",
           "REPACKAGED_REPO", "ROLE_NAMES", "SEARCH_FOLDERS", "TEXT_ENCODER_HINT", "TEXT_ENCODER_NAMES",
           "TOKENIZER_DIR", "TOKENIZER_JSON", "TOKENIZER_SPIECE", "UMT5_FILE", "UMT5_FP8_FILE", "VAE_FILE",
           "VAE_HINT", "VAE_NAMES", "checkpoint_kind", "expected_names", "find_model_files"]
