"""The shipped TempoMaster-Tiny bundle: DiT + tiny codec + tiny text encoder + recommended settings.

Files in :func:`builtin_dir` (``tempomaster_core/builtin/``), all written by the
training scripts:

* ``dit.safetensors`` -- the DiT (EMA weights; config in the safetensors metadata,
  loaded with :func:`tempomaster_core.loading.load_dit`), ``dit.json`` its config;
* ``codec.safetensors`` / ``codec.json`` -- :class:`~tempomaster_core.tiny.codec.TinyVideoCodec`;
* ``text_encoder.safetensors`` / ``text_encoder.json`` -- :class:`~tempomaster_core.tiny.text_encoder.TinyTextEncoder`;
* ``defaults.json`` -- recommended inference settings (plan, steps, shifts, guidance) and what the
  model was trained on (``trained_frame_intervals``, ``trained_chunk_frames``, written by the training
  run: :mod:`tempomaster_core.trained_limits`); the shipped bundle's file is the one copy of the
  built-in model's settings (:data:`FALLBACK_DEFAULTS`);
* ``MODEL_CARD.md`` -- data, recipe and measured quality.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import torch

from ..defaults import BUILTIN_ANTI_DRIFT, BUILTIN_JOIN_FADE_SECONDS
from ..join_fade import JOIN_FADE_KEY
from ..loading import load_dit, parse_dtype
from ..plan import TreePlan
from ..protocols import ModelBundle, check_compatible
from ..trained_limits import TrainedLimits
from .codec import TinyVideoCodec
from .text_encoder import TinyTextEncoder

BUILTIN_MODEL_NAME = "TempoMaster-Tiny (built-in)"
"""Display name of the built-in model (ComfyUI model list, CLI messages)."""

REQUIRED_FILES = (
    "dit.safetensors", "codec.safetensors", "codec.json", "text_encoder.safetensors", "text_encoder.json",
)
"""Files a bundle directory must hold (``defaults.json`` is optional)."""

DEFAULTS_FILE = "defaults.json"
"""Name of a bundle's recommended-settings file (optional in a bundle directory)."""


def builtin_dir() -> Path:
    """Directory of the shipped bundle (``tempomaster_core/builtin``)."""
    return Path(__file__).resolve().parents[1] / "builtin"


def read_defaults_file(directory: Union[str, Path]) -> dict:
    """The JSON object in ``directory/defaults.json``, or ``{}`` when there is no such file.

    Raises:
        OSError: the file cannot be read.
        ValueError: it is not JSON, or not a JSON object.
    """
    path = Path(directory) / DEFAULTS_FILE
    if not path.is_file():
        return {}
    settings = json.loads(path.read_text())
    if not isinstance(settings, dict):
        raise ValueError(f"{path} must hold a JSON object")
    return settings


CONTINUATION_DEFAULTS: dict = {"context_seconds": 1.54, "segment_new_frames": 63, "anti_drift": BUILTIN_ANTI_DRIFT,
                               JOIN_FADE_KEY: BUILTIN_JOIN_FADE_SECONDS}
"""The built-in model's continuation settings (:mod:`tempomaster_core.continuation`), for bundles whose
``defaults.json`` has none: 1.54 s of context (37 frames at 24 fps) and 63 new frames, so every segment is the
model's own 100-frame tree (25-frame blueprint at 6 fps). The 37 frames were chosen by a sweep of the context
(33 to 44 frames, ``benchmarks/long_video.py``; benchmarks/README.md): 37 = 4 * 9 + 1 frames end on the last
pixel frame of a latent frame of the 24 fps level (its chunks start 24 frames apart), so its latent frames are
either known or new. Over 60 s and 8 prompts the join ratio is 2.02 with the former 36 frames (1.5 s), 1.41 with
37, and 1.31 with 37 plus known-latent replacement (:mod:`tempomaster_core.known_latents`, on in this model's
``defaults.json``); 41 frames, also whole latent frames, measured 2.86, so the latent grid alone does not
explain it. The paper's 5 s + 480 frames (:data:`tempomaster_core.defaults.CONTEXT_SECONDS`,
:data:`~tempomaster_core.defaults.SEGMENT_NEW_FRAMES`) would give this model a 129-frame blueprint, five times
the 25-frame clips it was trained on. Anti-drift: :data:`tempomaster_core.defaults.BUILTIN_ANTI_DRIFT`, and the
join fade :data:`~tempomaster_core.defaults.BUILTIN_JOIN_FADE_SECONDS` (:mod:`tempomaster_core.join_fade`), both
measured best on this model."""

FALLBACK_DEFAULTS: dict = {**CONTINUATION_DEFAULTS, **read_defaults_file(builtin_dir())}
"""The recommended inference settings of the shipped model, read from the shipped bundle's
``defaults.json`` (the one copy; chosen on held-out tuning scenes, see MODEL_CARD.md): ``height``,
``width`` (pixels), ``fps`` (of interval 1), ``blueprint_frames`` (pixel frames, 4n+1),
``frame_intervals``, ``chunks`` (per refinement level), ``boundary``, ``steps`` and ``shifts``
(per level), ``cfg``, ``guidance``, ``negative_prompt``; plus ``context_seconds``,
``segment_new_frames``, ``anti_drift`` and ``join_fade_seconds`` (:data:`CONTINUATION_DEFAULTS`) where ``defaults.json`` lacks them;
``trained_frame_intervals`` and ``trained_chunk_frames``, what the shipped run trained on (written by
``train_dit`` from its configuration: 25-frame clips at intervals 4, 2, 1). Used for any key missing from another
bundle's ``defaults.json`` (so a bundle written before the training run recorded its limits declares the shipped
model's), and written to ``defaults.json`` by ``train_dit`` so a model retrained
from scratch runs with the settings its quality was measured with (its own training limits replacing the
shipped ones). Empty only when the package
lacks its ``builtin/defaults.json`` (a broken install): then :func:`bundle_defaults`,
:func:`default_plan` and :func:`shipped_defaults` raise an error naming that file."""

SETTING_KEYS = (
    "height", "width", "fps", "blueprint_frames", "frame_intervals", "chunks", "boundary", "steps", "shifts", "cfg",
    "guidance", "negative_prompt",
)
"""Keys every bundle's recommended settings have once :data:`FALLBACK_DEFAULTS` fills the gaps
(:attr:`TinyBundle.defaults`; another bundle's ``defaults.json`` may leave any of them out)."""


def _complete(settings: dict, where: str) -> dict:
    """``settings`` if it has every key of :data:`SETTING_KEYS`.

    Raises:
        FileNotFoundError: keys missing because the shipped ``builtin/defaults.json`` is absent
            (the message names it and says to reinstall).
        ValueError: keys missing although the shipped file exists (it lacks them: a damaged file).
    """
    missing = [key for key in SETTING_KEYS if key not in settings]
    if not missing:
        return settings
    shipped = builtin_dir() / DEFAULTS_FILE
    if not shipped.is_file():
        raise FileNotFoundError(
            f"{where} lack {', '.join(missing)}, which come from the built-in model's settings file {shipped}; "
            "that file is missing: reinstall the package (or give every setting in the bundle's own defaults.json)"
        )
    raise ValueError(f"{where} lack {', '.join(missing)}; {shipped} should hold them: it is damaged, reinstall "
                     "the package")


def shipped_defaults() -> dict:
    """A copy of :data:`FALLBACK_DEFAULTS`, checked to hold every key of :data:`SETTING_KEYS`.

    Raises:
        FileNotFoundError: the shipped ``builtin/defaults.json`` is missing (the message names it).
        ValueError: it lacks keys.
    """
    return _complete(dict(FALLBACK_DEFAULTS), "the built-in model's recommended settings")


def is_available(directory: Union[str, Path, None] = None) -> bool:
    """True when every file of :data:`REQUIRED_FILES` exists in ``directory`` (default :func:`builtin_dir`)."""
    root = Path(directory) if directory is not None else builtin_dir()
    return all((root / name).is_file() for name in REQUIRED_FILES)


@dataclass
class TinyBundle(ModelBundle):
    """A loaded TempoMaster-Tiny model.

    Attributes:
        model: :class:`TempoMasterDiT` (eval mode, no grad), ``in_dim = 2*C + tf``;
            ``model.config.text_len`` is the text encoder's ``max_length``.
        codec: :class:`TinyVideoCodec` (pixels ``[B, 3, 4n+1, H, W]`` in [-1, 1] <-> normalised
            latents ``[B, C, n+1, H/sf, W/sf]``).
        text_encoder: :class:`TinyTextEncoder` (prompt -> ``[1, L, text_dim]``, padding zeroed).
        defaults: recommended settings: ``height``, ``width`` (pixels), ``fps`` (of interval 1),
            ``blueprint_frames`` (pixel frames, 4n+1), ``frame_intervals``, ``chunks`` (per
            refinement level), ``boundary`` (chunk-boundary conditions, see
            :data:`tempomaster_core.plan.BOUNDARY_MODES`), ``steps`` and ``shifts`` (per level),
            ``cfg``, ``guidance`` (``"cfg"``/``"apg"``), ``negative_prompt``; and what it was trained on,
            ``trained_frame_intervals`` and ``trained_chunk_frames`` (also ``model.trained_limits``).
        directory: where the files were read from.
        name: display name.
    """

    defaults: dict = field(default_factory=dict)
    directory: Optional[Path] = None
    name: str = BUILTIN_MODEL_NAME

    @torch.no_grad()
    def encode_prompt(self, text: str) -> torch.Tensor:
        """Text embeddings float32 ``[1, L, text_dim]`` on the model's device; padding rows are 0
        and the empty prompt gives all zeros (the unconditional embedding seen in training).

        Raises:
            TypeError: ``text`` is not a string.
        """
        if not isinstance(text, str):
            raise TypeError(f"prompt must be a string, got {type(text).__name__}")
        device = next(self.model.parameters()).device
        return self.text_encoder.encode([text]).to(device=device, dtype=torch.float32)


def default_plan(defaults: dict, temporal_factor: int = 4) -> TreePlan:
    """The :class:`~tempomaster_core.plan.TreePlan` of a bundle's recommended settings
    (``defaults`` as :attr:`TinyBundle.defaults`; missing keys from :data:`FALLBACK_DEFAULTS`).

    Raises:
        tempomaster_core.plan.PlanError: settings that make no valid plan.
        FileNotFoundError, ValueError: a key missing from both ``defaults`` and the shipped
            ``defaults.json`` (see :func:`shipped_defaults`).
    """
    d = _complete({**FALLBACK_DEFAULTS, **defaults}, "the recommended settings")
    return TreePlan(int(d["blueprint_frames"]), tuple(d["frame_intervals"]), tuple(d["chunks"]),
                    height=int(d["height"]), width=int(d["width"]), fps=float(d["fps"]),
                    temporal_factor=int(temporal_factor), boundary=d["boundary"])


def _missing_message(root: Path, missing: list) -> str:
    return (
        f"the TempoMaster-Tiny bundle in {root} is incomplete: missing {', '.join(missing)}. "
        "Reinstall the package, or train it: `python -m tempomaster_core.training.train_codec --out DIR "
        "--minutes 10` then `python -m tempomaster_core.training.train_dit --out DIR --seed 0 --minutes 58 --threads 2`."
    )


def bundle_defaults(directory: Union[str, Path]) -> dict:
    """A bundle's recommended settings: :data:`FALLBACK_DEFAULTS` updated by its ``defaults.json``
    (if present); read without loading any weights (:attr:`TinyBundle.defaults`).

    Raises:
        OSError: the file cannot be read.
        ValueError: it is not JSON, or not a JSON object.
        FileNotFoundError, ValueError: a key of :data:`SETTING_KEYS` missing from both files
            (see :func:`shipped_defaults`; the message names the shipped file).
    """
    return _complete({**FALLBACK_DEFAULTS, **read_defaults_file(directory)},
                     f"the recommended settings of {Path(directory)}")


def bundle_limits(directory: Union[str, Path], defaults: Optional[dict] = None) -> TrainedLimits:
    """What the bundle in ``directory`` was trained on: the ``trained_frame_intervals`` and
    ``trained_chunk_frames`` of :func:`bundle_defaults` (read without loading any weights), or of ``defaults``
    when the caller has already read them with :func:`bundle_defaults`.

    Raises:
        OSError, ValueError, FileNotFoundError: as :func:`bundle_defaults`; ValueError also for values
            :class:`~tempomaster_core.trained_limits.TrainedLimits` refuses (the message names the file).
    """
    settings = bundle_defaults(directory) if defaults is None else defaults
    return TrainedLimits.from_settings(settings, f"{Path(directory) / DEFAULTS_FILE}")


def load_builtin(
    *, device: Union[str, torch.device] = "cpu", dtype=torch.float32, directory: Union[str, Path, None] = None,
) -> TinyBundle:
    """Load the shipped TempoMaster-Tiny bundle (or another directory with the same files).

    Args:
        device: where all three modules live.
        dtype: storage dtype of the DiT (float32 default; the codec and text encoder stay float32).
        directory: bundle directory; ``None`` = :func:`builtin_dir`.

    Returns:
        :class:`TinyBundle`.

    Raises:
        FileNotFoundError: a required file is missing (the message says how to get it).
        ValueError: the codec and the DiT do not fit together (latent channels / temporal
            factor), the text encoder's width differs from the DiT's ``text_dim``, or the bundle's settings
            declare training limits that are not valid (:func:`bundle_limits`).
        tempomaster_core.loading.CheckpointError: a broken DiT file.
    """
    root = Path(directory) if directory is not None else builtin_dir()
    missing = [name for name in REQUIRED_FILES if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(_missing_message(root, missing))
    device = torch.device(device)
    text_encoder = TinyTextEncoder.load(root, device=device)
    model = load_dit(root / "dit.safetensors", dtype=parse_dtype(dtype), device=device,
                     text_len=text_encoder.max_length)  # the DiT sees the encoder's [1, L, text_dim] as is
    codec = TinyVideoCodec.load(root, device=device)
    check_compatible(codec, model.config)
    if text_encoder.text_dim != model.config.text_dim:
        raise ValueError(
            f"text encoder width {text_encoder.text_dim} differs from the DiT's text_dim "
            f"{model.config.text_dim} in {root}: the files come from different training runs"
        )
    defaults = bundle_defaults(root)
    model.trained_limits = bundle_limits(root, defaults)
    return TinyBundle(model=model, codec=codec, text_encoder=text_encoder, defaults=defaults, directory=root)


__all__ = ["BUILTIN_MODEL_NAME", "CONTINUATION_DEFAULTS", "DEFAULTS_FILE", "REQUIRED_FILES", "FALLBACK_DEFAULTS",
           "SETTING_KEYS", "TinyBundle", "builtin_dir", "bundle_defaults", "bundle_limits", "default_plan",
           "is_available", "load_builtin", "read_defaults_file", "shipped_defaults"]
