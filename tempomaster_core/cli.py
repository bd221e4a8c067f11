"""Command-line tool: ``python -m tempomaster_core generate --prompt "..." --out video.mp4``.

Runs the whole next-frame-rate tree (blueprint, then every refinement level) on
the built-in TempoMaster-Tiny model (or another bundle directory with the same
layout), or on the released 14B set (``--model-dir`` or ``--dit``/``--text-encoder``/
``--vae``/``--tokenizer``, :mod:`tempomaster_core.cli_models`), and writes a video at the
final level's fps; ``--save-levels`` also writes every level at its own fps. Defaults
come from the model's recommended settings (``TinyBundle.defaults``; for the 14B the
reference's); every flag overrides them.

Everything the arguments alone can show is checked before any model is loaded:
numbers, the device, the model files (kinds and shapes from their headers), the plan, the output files (allowed
suffix, not a directory, writable folder, not an input, no existing file without
``--overwrite``) and the condition images (readable, one per blueprint frame, index
inside the blueprint). Output files are written to hidden temporary files and
renamed only when every one is complete (:func:`tempomaster_core.video_io.atomic_output`).

Several devices: ``torchrun --nproc-per-node N -m tempomaster_core generate ...`` runs one process per
device (``--device cuda``: rank ``LOCAL_RANK`` takes ``cuda:LOCAL_RANK``, NCCL; ``--device cpu``: gloo);
each level's chunks (or the blueprint's guidance passes) are shared over the ranks
(:mod:`tempomaster_core.distributed`) and the video is the one a single process makes. At start the ranks
compare the model files, the code and the arguments (a hash from every rank; a difference is exit code 2);
rank 0 prints and writes the files, the others write nothing; a rank that fails stops every rank with its
error (exit code 1 on every rank); a rank that hangs makes the others fail after ``--dist-timeout`` seconds.

Exit codes: 0 done; 1 a failure while loading or generating (``error: ...``);
2 a usage mistake (``error: ...``, nothing loaded, nothing written); 130 interrupted
(Ctrl-C; no partial file, existing files untouched -- with ``--seconds``/``--extend`` the finished
segments are kept as ``<out stem>.partial<suffix>``, :mod:`tempomaster_core.cli_long`). Tracebacks only
with ``--debug``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, Optional, Sequence

import torch

from .cli_models import ModelChoice, add_model_flags, choose_models, encode_prompts, load_models
from .anti_drift import ANTI_DRIFT_MODES
from .anchor_correction import ANCHOR_CORRECTION, model_default as anchor_correction_default
from .known_latents import REPLACE_KNOWN_LATENTS, model_default as replace_known_default
from .defaults import ANTI_DRIFT, CFG, GUIDANCE, JOIN_FADE_SECONDS, SEED, default_schedule
from .guidance import GUIDANCE_KINDS
from .dit_options import configure_dit, parse_lora_spec
from .fp8 import require_fp8_matmul
from .distributed import DEFAULT_TIMEOUT_S
from .level_settings import per_level
from .loading import STORAGE_DTYPES
from .pipeline import check_level_settings, generate
from .plan import BOUNDARY_ALIASES, BOUNDARY_MODES, PlanError, TreePlan
from .validation import (
    MAX_CFG,
    MAX_SAMPLER_STEPS,
    InputError,
    require_cfg,
    require_int,
    require_number,
    require_output_path,
    require_seed,
    require_shift,
    require_steps,
    resolve_frame_index,
)
from .video_io import VIDEO_SUFFIXES

EXIT_OK = 0
EXIT_FAILURE = 1
"""Loading the model or generating failed."""
EXIT_USAGE = 2
"""A bad flag, value or path, or a refused overwrite; nothing was loaded or written."""
EXIT_INTERRUPTED = 130
"""Ctrl-C (128 + SIGINT, the shell convention)."""

MAX_STEPS = MAX_SAMPLER_STEPS
"""Most sampling steps per level on the command line (:data:`tempomaster_core.validation.MAX_SAMPLER_STEPS`).
The guidance bound is :data:`tempomaster_core.validation.MAX_CFG`."""


class UsageError(Exception):
    """A user mistake found before any compute: printed as ``error: <message>``, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """``ArgumentParser`` whose errors raise :class:`UsageError` (so :func:`main` returns 2)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise UsageError(message)


def _number_list(text: str, kind: type, noun: str) -> tuple:
    """Comma-separated numbers read with ``kind`` (``int`` or ``float``); ``noun`` names them in the message."""
    try:
        values = tuple(kind(p) for p in text.replace(" ", "").split(",") if p)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated {noun}s, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected at least one {noun}, got {text!r}")
    return values


def _int_list(text: str) -> tuple[int, ...]:
    return _number_list(text, int, "integer")


def _float_list(text: str) -> tuple[float, ...]:
    return _number_list(text, float, "number")


def _boundary(text: str) -> str:
    """``--boundary``: a former mode name (:data:`~tempomaster_core.plan.BOUNDARY_ALIASES`) becomes the
    mode's name; argparse's ``choices`` refuse anything else."""
    return BOUNDARY_ALIASES.get(text, text)


def _keyframe(text: str) -> tuple[int, str]:
    index, sep, path = text.partition("=")
    try:
        if not sep or not path:
            raise ValueError
        return int(index), path
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected INDEX=PATH (pixel frame on the blueprint, negative from the end), got {text!r}"
        ) from None


_NEGATIVE_KEYFRAME = re.compile(r"^-\d+=")


def _join_negative_keyframes(argv: Sequence[str]) -> list[str]:
    """``--keyframe -1=IMG`` -> ``--keyframe=-1=IMG``.

    argparse reads a value starting with ``-`` that is not a plain number as an option, so the
    documented negative-index form would fail with "expected one argument"; joining it to the
    flag (also for an unambiguous abbreviation such as ``--key``) makes it a value.
    """
    out: list[str] = []
    items = list(argv)
    i = 0
    while i < len(items):
        item = items[i]
        if item == "--":
            out.extend(items[i:])
            break
        if (len(item) >= 3 and "--keyframe".startswith(item) and i + 1 < len(items)
                and _NEGATIVE_KEYFRAME.match(items[i + 1])):
            out.append(f"--keyframe={items[i + 1]}")
            i += 2
            continue
        out.append(item)
        i += 1
    return out


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m tempomaster_core`` argument parser (sub-command ``generate``).

    Its ``parse_args`` raises :class:`UsageError` on bad arguments (after printing the usage
    line) instead of exiting; ``--help`` still exits with ``SystemExit(0)``. Use :func:`main`
    for the ``--keyframe -1=IMG`` form.
    """
    parser = _Parser(prog="python -m tempomaster_core",
                     description="TempoMaster next-frame-rate long-video generation.")
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="generate a video (blueprint + refinement levels)",
                       description="Generate a video with the built-in TempoMaster-Tiny model, "
                                   "a TempoMaster-Tiny bundle (--model-dir) or the released 14B set (--model-dir "
                                   "or --dit/--text-encoder/--vae). Unset options take the model's recommended "
                                   "values (for the 14B: the reference's). "
                                   "Exit codes: 0 done, 1 failure while loading/generating, 2 bad usage "
                                   "(nothing written), 130 interrupted.")
    g.add_argument("--prompt", required=True, help="what the video shows")
    g.add_argument("--negative-prompt", help="what to steer away from (default: the model's; empty for the tiny "
                   "model, the reference's negative prompt for the 14B)")
    g.add_argument("--image", help="condition image for the first frame (image-to-video)")
    g.add_argument("--last-image", help="condition image for the last blueprint frame")
    g.add_argument("--keyframe", action="append", type=_keyframe, default=[], metavar="INDEX=PATH",
                   help="condition image at a blueprint pixel frame (negative counts from the end, e.g. "
                        "--keyframe -1=last.png); repeatable, one image per frame")
    g.add_argument("--frames", type=int, help="blueprint pixel frames (4n+1)")
    g.add_argument("--intervals", type=_int_list, help="frame intervals per level, e.g. 4,2,1 (6->12->24 fps at 24 fps)")
    g.add_argument("--chunks", type=_int_list,
                   help="chunks per refinement level, e.g. 2,4 (default: the model's for its own intervals, "
                        "else the reference's chunk rule)")
    g.add_argument("--boundary", type=_boundary, choices=BOUNDARY_MODES,
                   help="chunk-boundary condition frames: 'repeat_anchor' (copy the previous anchor, as the "
                        "authors ran it; the former name 'reference' is accepted) or 'anchors' (only true frames "
                        "of the level above); default: the model's")
    g.add_argument("--anchor-correction", action=argparse.BooleanOptionalAction, default=None,
                   help="after decoding each refinement level, remove the smooth part of the error each chunk "
                        "leaves on the frames of the level above, interpolated in time (no tint step at chunk "
                        "seams; not in the reference); "
                        "default: the model's (on for the built-in model, off for the 14B)")
    g.add_argument("--replace-known-latents", action=argparse.BooleanOptionalAction, default=None,
                   help="keep every latent frame whose frames are all known (a continuation's context) on its "
                        "path to the known frames' latent at each step, so it ends on it (smoother joins; not in "
                        "the reference); default: the model's (on for the built-in model, off for the 14B)")
    g.add_argument("--steps", type=_int_list, help=f"sampling steps per level (1..{MAX_STEPS}), e.g. 50,32,32")
    g.add_argument("--shift", type=_float_list, help="sigma shift per level (> 0), e.g. 5,3,3")
    g.add_argument("--cfg", type=_float_list, help=f"guidance scale in (0, {MAX_CFG:g}] (one, or one per level)")
    g.add_argument("--guidance", choices=GUIDANCE_KINDS, help="guidance kind (default: the model's)")
    g.add_argument("--seed", type=int, default=SEED, help="noise seed (same seed -> same video)")
    g.add_argument("--height", type=int, help="frame height in pixels (multiple of 16)")
    g.add_argument("--width", type=int, help="frame width in pixels (multiple of 16)")
    g.add_argument("--fps", type=float, help="fps of the finest level (frame interval 1)")
    g.add_argument("--max-batch", type=int, help="at most this many chunks per forward (lower memory, same result)")
    g.add_argument("--weight-dtype", choices=STORAGE_DTYPES,
                   help="DiT weight dtype (default: fp32 for the tiny model, bf16 for the 14B); fp8_e4m3fn/fp8_e5m2 "
                        "keep the block weights in one byte and compute in bf16")
    g.add_argument("--lora", action="append", default=[], metavar="FILE[:STRENGTH]",
                   help="apply a LoRA .safetensors to the DiT at a strength (default 1), or one strength per level "
                        "(FILE:1,0,0 = the blueprint only); repeatable, in order")
    g.add_argument("--blocks-to-swap", type=int, default=0, metavar="N",
                   help="keep the first N DiT blocks in CPU memory and stream them to the device per forward")
    g.add_argument("--fp8-matmul", action="store_true",
                   help="multiply the fp8 block weights in fp8 (torch._scaled_mm; needs --weight-dtype fp8_e4m3fn and "
                        "a GPU with fp8 tensor cores, compute capability 8.9+, or the CPU)")
    g.add_argument("--compile", action="store_true",
                   help="torch.compile each DiT block (dynamic=False; compilations and recompiles are printed; "
                        "the first forward of each shape is slow; needs a C++ compiler on the CPU)")
    g.add_argument("--model-dir", help="a TempoMaster-Tiny bundle directory (default: the built-in one), or a folder "
                   "holding the 14B set by its usual file names (ComfyUI's models folder, the reference's "
                   "checkpoints folder, or all in one folder)")
    g.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="torch device: cpu, cuda, cuda:N or mps (default: cuda when available)")
    g.add_argument("--out", required=True,
                   help=f"output video file, one of {', '.join(VIDEO_SUFFIXES)} (an existing file needs --overwrite)")
    g.add_argument("--save-levels", action="store_true",
                   help="also write every level at its own fps (<out>_level<i>_<fps>fps.<suffix>)")
    g.add_argument("--overwrite", action="store_true", help="replace existing output files")
    g.add_argument("--debug", action="store_true", help="print the traceback of an error")
    g.add_argument("--dist-timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                   help="under torchrun: seconds a rank waits for the others at a sync point before it fails "
                        f"(default {DEFAULT_TIMEOUT_S:g}; longer than the longest chunk share of a level)")
    add_model_flags(g.add_argument_group(
        "the released 14B set (pip install \"tempomaster[wan]\")",
        "Each flag names one file and wins over what --model-dir holds; with a folder, files are found by their "
        "usual names."))
    lg = g.add_argument_group(
        "long video (multi-mask continuation)",
        "With --seconds or --extend the video is made in segments: each segment is a tree in which the last "
        "--context-seconds of the video so far are known frames at every level. The file is written segment by "
        "segment; Ctrl-C keeps the finished frames in <out stem>.partial<suffix>.")
    lg.add_argument("--seconds", type=float,
                    help="length to make in seconds (with --extend: seconds to add), e.g. 60")
    lg.add_argument("--extend", metavar="VIDEO",
                    help="continue this video file (the plan's fps and size; --out gets the video plus the new part)")
    lg.add_argument("--context-seconds", type=float,
                    help="seconds of the video so far each segment knows (default: the model's; paper: 5)")
    lg.add_argument("--segment-frames", type=int,
                    help="new frames per segment at the output fps (default: the model's; paper: 480)")
    lg.add_argument("--segment-prompt", action="append", default=[], metavar="TEXT",
                    help="prompt of the next segment (repeatable: segments 2, 3, ...; --prompt is segment 1's, "
                         "the last one holds for the remaining segments)")
    lg.add_argument("--anti-drift", choices=ANTI_DRIFT_MODES, default=None,
                    help=f"what later segments take from the start of the video against drift: none (the paper's "
                         f"setting), anchor (the first frame in the oldest context slot of each blueprint), "
                         f"colour_match (new frames get the first segment's colour statistics), or both "
                         f"(default: the model's, else {ANTI_DRIFT})")
    lg.add_argument("--join-fade", type=float, default=None, metavar="SECONDS",
                    help=f"seconds over which each segment's new frames go from the video's last frame to the "
                         f"segment's own rendering, so no join jumps; 0 = a plain cut (default: the model's, else "
                         f"{JOIN_FADE_SECONDS:g})")
    return parser


class LevelProgress:
    """Progress callback printing one updating line per level to a text stream.

    Matches the core's ``progress(level_index, step, total_steps, preview_latents)``.
    """

    def __init__(self, plan: TreePlan, stream=None) -> None:
        self.plan = plan
        self.stream = stream if stream is not None else sys.stderr  # looked up now, so redirection works
        self._started: dict[int, float] = {}

    def __call__(self, level_index: int, step: int, total_steps: int, preview_latents=None) -> None:
        now = time.perf_counter()
        start = self._started.setdefault(level_index, now)
        level = self.plan.levels[level_index]
        width = 24
        filled = int(width * step / max(total_steps, 1))
        line = (f"\rlevel {level_index + 1}/{self.plan.num_levels} {level.fps:g} fps "
                f"({level.num_chunks} chunk{'s' if level.num_chunks > 1 else ''} x {level.frames_per_chunk} frames) "
                f"[{'#' * filled}{'.' * (width - filled)}] {step}/{total_steps} {now - start:5.1f}s")
        self.stream.write(line + ("\n" if step == total_steps else ""))
        self.stream.flush()


def _flag_per_level(values: Optional[Sequence], default: Any, levels: int, name: str) -> list:
    """A ``--name a,b,c`` flag per level: ``default`` when absent, one value repeated, or one per level
    (:func:`~tempomaster_core.level_settings.per_level`), always as a list of ``levels`` entries.

    Raises:
        UsageError: a list of another length.
    """
    try:
        if values is None:
            return per_level(default, f"the model's {name}", levels)
        return per_level(values[0] if len(values) == 1 else list(values), f"--{name}", levels)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _model_default(plan: TreePlan, defaults: dict, key: str, fallback: Any) -> Any:
    """The bundle's recommended ``key`` (``defaults.json``) for this plan's levels.

    A single value or a list with one entry per level is used as is; a list written for another
    number of levels gives its first entry (the blueprint's) to the blueprint and its last entry
    (the refinement levels') to every refinement level; ``fallback`` when the bundle has none.
    """
    value = defaults.get(key)
    if value is None:
        return fallback
    if not isinstance(value, (list, tuple)) or len(value) == plan.num_levels:
        return value
    return [value[0]] + [value[-1]] * (plan.num_levels - 1)


def check_device(text: str) -> torch.device:
    """Parse ``--device`` and check that this PyTorch can use it, without allocating anything
    (:func:`tempomaster_core.device_threads.require_device`).

    Args:
        text: ``cpu``, ``cuda``, ``cuda:N``, ``mps`` (or another backend with ``is_available``).

    Returns:
        The :class:`torch.device`.

    Raises:
        UsageError: not a device name, or the device is not available here.
    """
    from .device_threads import require_device

    try:
        return require_device(text, "--device")
    except InputError as exc:
        raise UsageError(str(exc)) from None


def read_bundle_settings(model_dir: Optional[str]) -> tuple[Optional[Path], dict, int]:
    """A bundle's recommended settings and temporal factor, read from its JSON files without loading weights.

    Args:
        model_dir: ``--model-dir`` (``None`` = the built-in bundle).

    Returns:
        ``(directory or None for the built-in one, defaults, temporal_factor)``: ``defaults`` as
        :attr:`~tempomaster_core.tiny.builtin.TinyBundle.defaults` (``FALLBACK_DEFAULTS`` updated
        by ``defaults.json``), ``temporal_factor`` from ``codec.json`` (pixel frames per latent frame).

    Raises:
        UsageError: ``model_dir`` is missing, not a directory, lacks a bundle file, or holds
            unreadable JSON.
        FileNotFoundError: the built-in bundle is not installed.
    """
    from .tiny.builtin import REQUIRED_FILES, builtin_dir, bundle_defaults
    from .tiny.codec import CodecConfig
    from .trained_limits import TrainedLimits

    root = Path(model_dir) if model_dir is not None else builtin_dir()
    where = f"--model-dir {model_dir}" if model_dir is not None else f"the built-in model ({root})"
    if model_dir is not None and not root.exists():
        raise UsageError(f"--model-dir {model_dir}: no such directory")
    if model_dir is not None and not root.is_dir():
        raise UsageError(f"--model-dir {model_dir}: not a directory")
    missing = [name for name in REQUIRED_FILES if not (root / name).is_file()]
    if missing:
        message = f"{where} is not a complete TempoMaster-Tiny bundle: missing {', '.join(missing)}"
        if model_dir is None:
            raise FileNotFoundError(message + "; reinstall the package")
        raise UsageError(message)
    try:
        defaults = bundle_defaults(root)
        TrainedLimits.from_settings(defaults)  # checked here, before anything is loaded (used by untrained_warnings)
        temporal_factor = CodecConfig.from_dict(json.loads((root / "codec.json").read_text())).temporal_factor
    except (OSError, ValueError, TypeError) as exc:
        raise UsageError(f"{where}: cannot read the bundle settings ({exc})") from None
    return (root if model_dir is not None else None), defaults, int(temporal_factor)


def untrained_warnings(plan: TreePlan, defaults: Optional[dict] = None) -> list[str]:
    """One line per level outside what the model was trained on, pointing to ``--seconds``: a frame interval
    coarser than its trained ones (:func:`tempomaster_core.autoplan.interval_breaches`) or chunks longer than its
    trained clips (pixel frames).

    Args:
        defaults: the model's settings (``GenerateJob.defaults``, read before loading); it declares ``trained_frame_intervals`` and
            ``trained_chunk_frames`` (the built-in model: (4, 2, 1) and 25; the 14B: (4, 2, 1) and 109), read by
            :meth:`~tempomaster_core.trained_limits.TrainedLimits.from_settings` (absent keys: the released model's).

    Raises:
        ValueError: the settings declare limits that are not valid.
    """
    from .autoplan import interval_breaches
    from .trained_limits import TrainedLimits

    trained = TrainedLimits.from_settings(defaults)
    longest = trained.chunk_frames
    lines = [f"level {b.level} ({plan.levels[b.level].fps:g} fps, interval {b.value}) is coarser than the model was "
             f"trained on (interval {b.bound}); for a long video use --seconds (segments at trained frame rates)"
             for b in interval_breaches(plan, trained.frame_intervals)]
    lines += [f"level {level.index} ({level.fps:g} fps) has chunks of {level.frames_per_chunk} frames, longer than the "
              f"model's training clips ({longest} frames); use fewer frames per chunk (--frames, --chunks) "
              "or --seconds (segments of a trained tree)"
              for level in plan.levels if level.frames_per_chunk > longest]
    return lines


def level_paths(out: Path, plan: TreePlan) -> list[Path]:
    """``--save-levels`` file names: ``<out stem>_level<i>_<fps>fps<out suffix>`` next to ``out``, one per level."""
    return [out.with_name(f"{out.stem}_level{i}_{level.fps:g}fps{out.suffix}") for i, level in enumerate(plan.levels)]


@dataclass
class GenerateJob:
    """Everything ``generate`` needs, checked before any model is loaded (:func:`prepare_generate`).

    Attributes:
        plan: the tree.
        steps, shifts, cfg: one entry per level (ints, floats > 0, floats in ``(0, MAX_CFG]``).
        guidance: ``"apg"``/``"cfg"``.
        conditions: ``{non-negative blueprint frame: image float32 [3, H, W] in [-1, 1]}``.
        outputs: ``[(path, level index or None for the final video)]``.
        device: where the model runs.
        model_dir: bundle directory (``None`` = built-in, or the 14B set: see ``models``).
        temporal_factor: pixel frames per latent frame, from the bundle's ``codec.json`` (4 for the 14B).
        defaults: the bundle's recommended settings (as ``TinyBundle.defaults``).
        long: the segments of ``--seconds``/``--extend`` (:class:`~tempomaster_core.cli_long.LongJob`;
            ``None`` = one tree, ``plan``). With segments, ``plan`` is the template tree and
            ``conditions`` belong to the first segment's blueprint.
        loras: ``[(path, strength or one per level)]`` from ``--lora`` (files checked to exist, per-level
            counts checked against the plan).
        models: the checked model set (:class:`~tempomaster_core.cli_models.ModelChoice`).
        negative_prompt: ``--negative-prompt``, else the model's default.
        anchor_correction: ``--anchor-correction``/``--no-anchor-correction``, else the model's
            ``defaults.json`` (:mod:`tempomaster_core.anchor_correction`).
        replace_known_latents: ``--replace-known-latents``/``--no-replace-known-latents``, else the model's
            ``defaults.json`` (:mod:`tempomaster_core.known_latents`).
    """

    plan: TreePlan
    steps: list
    shifts: list
    cfg: list
    guidance: str
    conditions: dict
    outputs: list
    device: torch.device
    model_dir: Optional[Path]
    temporal_factor: int
    defaults: dict = field(default_factory=dict)
    long: Any = None
    loras: list = field(default_factory=list)
    models: Optional[ModelChoice] = None
    negative_prompt: str = ""
    anchor_correction: bool = ANCHOR_CORRECTION
    replace_known_latents: bool = REPLACE_KNOWN_LATENTS


def _level_setting(values: Optional[Sequence], default: Any, levels: int, name: str, check) -> list:
    """A per-level sampler flag, checked and expanded: each value given on the command line passes
    ``check(value, label)`` (label ``--name``, or ``--name (level i)`` for a list), then is expanded to
    one per level; the model's default is checked the same way (it may come from a user's bundle).

    Raises:
        UsageError: a list of another length than the plan's levels.
        InputError: a value ``check`` refuses.
    """
    if values is not None:
        labels = [f"--{name}"] if len(values) == 1 else [f"--{name} (level {i})" for i in range(len(values))]
        return _flag_per_level(tuple(check(v, label) for v, label in zip(values, labels)), None, levels, name)
    expanded = _flag_per_level(None, default, levels, name)
    return [check(v, f"the model's {name} (level {i})") for i, v in enumerate(expanded)]


def _condition_entries(args: argparse.Namespace) -> list[tuple[str, int, str]]:
    """The condition images the arguments name: ``(label naming the flag and file, blueprint frame as
    given, path)`` for ``--image`` (frame 0), every ``--keyframe`` and ``--last-image`` (frame -1)."""
    entries = []
    if args.image is not None:
        entries.append((f"--image {args.image}", 0, args.image))
    entries += [(f"--keyframe {i}={p}", i, p) for i, p in args.keyframe]
    if args.last_image is not None:
        entries.append((f"--last-image {args.last_image}", -1, args.last_image))
    return entries


def _condition_images(args: argparse.Namespace, plan: TreePlan) -> dict:
    """Resolve, de-duplicate and read the condition images (``--image``, ``--last-image``, ``--keyframe``).

    Returns:
        ``{non-negative blueprint frame: float32 [3, H, W] in [-1, 1]}`` at the plan's size.

    Raises:
        UsageError: an index outside the blueprint, two images for one frame, an unreadable image.
    """
    from .images import resize_center_crop
    from .video_io import read_image

    entries = _condition_entries(args)
    frames = plan.levels[0].num_frames
    taken: dict[int, str] = {}
    for label, index, _ in entries:
        resolved = resolve_frame_index(index, frames, f"{label}: blueprint frame", error=UsageError)
        if resolved in taken:
            raise UsageError(f"{taken[resolved]} and {label} both condition blueprint frame {resolved}; "
                             "give one image per frame")
        taken[resolved] = label
    conditions = {}
    for label, index, path in entries:
        if not path:
            raise UsageError(f"{label.split()[0]} needs an image file path, got ''")
        try:
            image = read_image(path)
            conditions[index % frames] = resize_center_crop(image, plan.height, plan.width)[0]
        except (OSError, ValueError) as exc:
            raise UsageError(f"{label}: {exc}") from None
    return conditions


def prepare_generate(args: argparse.Namespace) -> GenerateJob:
    """Check every ``generate`` argument that can be checked without the model, in this order: seed and
    batch size, device, model files (bundle JSON, or the 14B set's headers: no weights), plan, sampler
    settings per level, output files, condition images (read and resized here).

    Args:
        args: parsed ``generate`` arguments.

    Returns:
        A :class:`GenerateJob`.

    Raises:
        UsageError: the first mistake found (nothing has been loaded or written).
        FileNotFoundError: the built-in bundle is not installed.
    """
    try:
        return _prepare(args)
    except (InputError, PlanError) as exc:
        raise UsageError(str(exc)) from None


def _prepare(args: argparse.Namespace) -> GenerateJob:
    from . import cli_long

    cli_long.check_long_flags(args)
    require_seed(args.seed, "--seed")
    if args.max_batch is not None:  # (require_optional_batch's message would mention None)
        require_int(args.max_batch, "--max-batch", minimum=1)
    require_int(args.blocks_to_swap, "--blocks-to-swap", minimum=0)
    require_number(args.dist_timeout, "--dist-timeout", minimum=0.0, exclusive_minimum=True)
    loras = [parse_lora_spec(spec) for spec in args.lora]
    device = check_device(args.device)
    if args.fp8_matmul:
        require_fp8_matmul(device, args.weight_dtype)
    models = choose_models(args, UsageError)
    model_dir, d, temporal_factor = models.tiny_dir, models.defaults, models.temporal_factor

    intervals = args.intervals if args.intervals is not None else tuple(d["frame_intervals"])
    chunks = args.chunks
    if chunks is None and tuple(intervals) == tuple(d["frame_intervals"]):
        chunks = d.get("chunks")  # the model's chunking belongs to its own tree; other trees: the reference's rule
    plan = TreePlan(
        args.frames if args.frames is not None else d["blueprint_frames"],
        tuple(intervals),
        tuple(chunks) if chunks is not None else None,
        height=args.height if args.height is not None else d["height"],
        width=args.width if args.width is not None else d["width"],
        fps=args.fps if args.fps is not None else d["fps"],
        temporal_factor=temporal_factor,
        boundary=args.boundary or d["boundary"],
    )

    levels = plan.num_levels
    for path, strength in loras:  # one strength, or one per level of this tree
        per_level(strength, f"--lora {path.name}'s strengths", levels, error=UsageError)
    ref_steps, ref_shifts = default_schedule(plan)
    steps = _level_setting(args.steps, _model_default(plan, d, "steps", list(ref_steps)), levels, "steps",
                           lambda v, n: require_int(require_steps(v, n), n, maximum=MAX_STEPS))
    shifts = _level_setting(args.shift, _model_default(plan, d, "shifts", list(ref_shifts)), levels, "shift",
                            require_shift)
    cfg = _level_setting(args.cfg, _model_default(plan, d, "cfg", CFG), levels, "cfg", require_cfg)
    guidance = args.guidance or _model_default(plan, d, "guidance", GUIDANCE)
    try:
        anchor_correction = (anchor_correction_default(d) if args.anchor_correction is None
                             else args.anchor_correction)
        replace_known_latents = (replace_known_default(d) if args.replace_known_latents is None
                                 else args.replace_known_latents)
    except InputError as exc:
        raise UsageError(f"the model's defaults.json: {exc}") from None
    for i in range(levels):  # what the core checks per level too (e.g. a float32 schedule that overflows)
        try:
            check_level_settings(steps=steps[i], shift=shifts[i], cfg=cfg[i], guidance=guidance, seed=args.seed,
                                 max_batch=args.max_batch)
        except InputError as exc:
            raise UsageError(f"level {i}: {exc}") from None

    inputs = [(label, path) for label, _, path in _condition_entries(args) if path]  # empty names fail when read
    if args.extend:
        inputs.append(("--extend", args.extend))
    out = require_output_path(args.out, "--out", suffixes=VIDEO_SUFFIXES, overwrite=args.overwrite, inputs=inputs)
    outputs: list = [(out, None)]
    if args.save_levels:
        for index, path in enumerate(level_paths(out, plan)):
            require_output_path(path, "--save-levels file", suffixes=VIDEO_SUFFIXES, overwrite=args.overwrite,
                                inputs=inputs)
            outputs.append((path, index))

    long = cli_long.prepare_long(args, plan, d) if cli_long.is_long(args) else None  # reads --extend's header
    conditions = _condition_images(args, long.segments[0].plan if long is not None else plan)
    return GenerateJob(plan=plan, steps=steps, shifts=shifts, cfg=cfg, guidance=guidance, conditions=conditions,
                       outputs=outputs, device=device, model_dir=model_dir, temporal_factor=temporal_factor,
                       defaults=d, long=long, loras=loras, models=models,
                       negative_prompt=args.negative_prompt if args.negative_prompt is not None
                       else str(d.get("negative_prompt") or ""), anchor_correction=anchor_correction,
                       replace_known_latents=replace_known_latents)


def say(line: str) -> None:
    """Print one line to stderr, from rank 0 only when several ranks run (:mod:`tempomaster_core.distributed`)."""
    from .distributed import active

    ranks = active()
    if ranks is None or ranks.is_main:
        print(line, file=sys.stderr, flush=True)


def _start_ranks(args: argparse.Namespace, job: GenerateJob):
    """Under ``torchrun``: join the process group, take this rank's device and check that every rank has
    the same model files, code and arguments. ``None`` when not launched by torchrun.

    Raises:
        UsageError: ``--device cuda:N`` with several ranks, more ranks than GPUs, ranks that differ.
    """
    from .distributed import (
        RankMismatch, code_fingerprint, file_fingerprints, init_from_environment, launched_by_torchrun,
        settings_fingerprint,
    )
    from .tiny.builtin import REQUIRED_FILES, builtin_dir

    if not launched_by_torchrun():
        return None
    try:
        ranks, job.device = init_from_environment(job.device, timeout=args.dist_timeout)
    except InputError as exc:
        raise UsageError(str(exc)) from None
    items = {**code_fingerprint(), **settings_fingerprint(vars(args))}
    if job.models.wan is not None:
        files = job.models.wan.files
        paths = [files.dit, files.text_encoder, files.vae]
    else:
        root = job.model_dir if job.model_dir is not None else builtin_dir()
        paths = [root / name for name in (*REQUIRED_FILES, "defaults.json")]
    items.update(file_fingerprints(paths, "model file"))
    items.update(file_fingerprints([path for path, _ in job.loras], "LoRA file"))
    try:
        ranks.check_same(items)
    except RankMismatch as exc:
        ranks.close()
        raise UsageError(str(exc)) from None
    say(f"{ranks.world_size} ranks on {job.device.type} ({'NCCL' if job.device.type == 'cuda' else 'gloo'}): "
        "every level's chunks, or the blueprint's guidance passes, are shared")
    return ranks


def run_generate(args: argparse.Namespace) -> list[Path]:
    """Run the ``generate`` sub-command; returns the files written (by rank 0; other ranks return ``[]``).

    Raises:
        UsageError: a mistake in the arguments (see :func:`prepare_generate`), before any loading; under
            torchrun also ranks that differ (see :func:`_start_ranks`).
        Exception: loading or generation failed (no output file is written or changed); under torchrun a
            :class:`~tempomaster_core.distributed.RankFailure` when any rank failed.
        KeyboardInterrupt: Ctrl-C (temporary files are removed; no output file is written or changed).
    """
    from .distributed import use_ranks

    job = prepare_generate(args)
    ranks = _start_ranks(args, job)
    try:
        with use_ranks(ranks):
            return _generate_job(args, job)
    finally:
        if ranks is not None:
            ranks.close()


def _generate_job(args: argparse.Namespace, job: GenerateJob) -> list[Path]:
    from . import video_io
    from .distributed import active

    ranks = active()
    plan = job.plan

    def load():
        bundle = load_models(job.models, device=job.device, weight_dtype=args.weight_dtype)
        options = configure_dit(bundle.model, loras=job.loras, blocks_to_swap=args.blocks_to_swap,
                                fp8_matmul=args.fp8_matmul, torch_compile=args.compile, device=job.device, log=say)
        if int(bundle.codec.temporal_factor) != job.temporal_factor:
            raise RuntimeError(f"the bundle's codec has temporal factor {bundle.codec.temporal_factor}, its codec.json "
                               f"says {job.temporal_factor}")
        return bundle, options

    # a rank that cannot load stops every rank
    bundle, options = load() if ranks is None else ranks.guarded(load)
    for warning in untrained_warnings(plan, job.defaults):
        say(f"warning: {warning}")
    prompts = [args.prompt] + (list(args.segment_prompt) if job.long is not None else [])
    negative, *contexts = encode_prompts(bundle, [job.negative_prompt] + prompts)
    if job.long is not None:
        from .cli_long import run_long

        return run_long(args, job, bundle, negative, contexts)
    positive = contexts[0]
    say(plan.describe())
    conditions = job.conditions
    mode = "text-to-video" if not conditions else f"conditioned on blueprint frames {sorted(conditions)}"
    say(f"prompt: {args.prompt!r} ({mode}), seed {args.seed}")

    started = time.perf_counter()
    final, levels = generate(
        bundle.model, bundle.codec, positive, negative, plan,
        conditions=conditions or None, steps=job.steps, shifts=job.shifts, cfg=job.cfg,
        guidance=job.guidance, seed=args.seed, anchor_correction=job.anchor_correction,
        replace_known_latents=job.replace_known_latents, max_batch=args.max_batch, progress=LevelProgress(plan),
        return_levels=True,
    )
    elapsed = time.perf_counter() - started
    if options.compile_stats is not None:
        say(f"torch.compile: {options.compile_stats.graphs} graph(s) compiled, "
            f"{options.compile_stats.recompiles} recompile(s)")

    by_level = {result.level_index: result for result in levels}

    def write() -> list[Path]:
        written = []
        with contextlib.ExitStack() as stack:  # every file complete, then all renamed; on any error none is
            for path, level_index in job.outputs:
                tmp = stack.enter_context(video_io.atomic_output(path, overwrite=args.overwrite))
                if level_index is None:
                    video_io.write_video(tmp, final, plan.final.fps, atomic=False)
                else:
                    result = by_level[level_index]
                    video_io.write_video(tmp, result.to_images(), result.fps, atomic=False)
                written.append(path)
        return written

    if ranks is None:
        written = write()
    else:  # rank 0 writes; a failed write fails every rank
        written = ranks.guarded(lambda: write() if ranks.is_main else [])
    say(f"done in {elapsed:.1f}s: {final.shape[0]} frames at {plan.final.fps:g} fps "
        f"({final.shape[0] / plan.final.fps:.2f} s) -> {', '.join(str(p) for p in written)}")
    return written


def _error_line(exc: BaseException, debug: bool) -> str:
    """``error: ...`` for an exception of a loading or generating run; a rank's own failure under torchrun
    is named by its cause, prefixed with the rank."""
    from .distributed import RankFailure

    prefix = ""
    if isinstance(exc, RankFailure) and exc.__cause__ is not None:
        prefix, exc = f"rank {exc.rank} of {exc.world_size}: ", exc.__cause__
    message = str(exc) if isinstance(exc, (ValueError, OSError)) and str(exc) else f"{type(exc).__name__}: {exc}"
    hint = "" if debug else " (run with --debug for the traceback)"
    return f"error: {prefix}{message}{hint}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m tempomaster_core``; returns the process exit code.

    Args:
        argv: arguments without the program name (default ``sys.argv[1:]``).

    Returns:
        :data:`EXIT_OK`, :data:`EXIT_FAILURE` (loading/generation failed), :data:`EXIT_USAGE`
        (bad arguments; nothing loaded or written) or :data:`EXIT_INTERRUPTED` (Ctrl-C). Errors
        are printed as ``error: <message>`` on stderr; the traceback only with ``--debug``.
    """
    argv = _join_negative_keyframes(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        if args.command == "generate":
            run_generate(args)
        return EXIT_OK
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except UsageError as exc:
        if debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if debug:
            traceback.print_exc()
        print(_error_line(exc, debug), file=sys.stderr)
        return EXIT_FAILURE
