"""Command-line tool: ``python -m tempomaster_core generate --prompt "..." --out video.mp4``.

Runs the whole next-frame-rate tree (blueprint, then every refinement level) on
the built-in TempoMaster-Tiny model (or another bundle directory with the same
layout) and writes an MP4 at the final level's fps; ``--save-levels`` also
writes every level at its own fps. Defaults come from the bundle's recommended
settings (``TinyBundle.defaults``); every flag overrides them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from .level_settings import per_level
from .pipeline import default_schedule, generate
from .plan import BOUNDARY_MODES, PlanError, TreePlan


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.replace(" ", "").split(",") if p)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _float_list(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(p) for p in text.replace(" ", "").split(",") if p)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _keyframe(text: str) -> tuple[int, str]:
    index, sep, path = text.partition("=")
    try:
        if not sep:
            raise ValueError
        return int(index), path
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected INDEX=PATH (pixel frame on the blueprint, negative from the end), got {text!r}"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m tempomaster_core`` argument parser (sub-command ``generate``)."""
    parser = argparse.ArgumentParser(prog="python -m tempomaster_core",
                                     description="TempoMaster next-frame-rate long-video generation.")
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="generate a video (blueprint + refinement levels)",
                       description="Generate a video with the built-in TempoMaster-Tiny model "
                                   "(or --model-dir). Unset options take the model's recommended values.")
    g.add_argument("--prompt", required=True, help="what the video shows")
    g.add_argument("--negative-prompt", default="", help="what to steer away from (default: empty)")
    g.add_argument("--image", help="condition image for the first frame (image-to-video)")
    g.add_argument("--last-image", help="condition image for the last blueprint frame")
    g.add_argument("--keyframe", action="append", type=_keyframe, default=[], metavar="INDEX=PATH",
                   help="condition image at a blueprint pixel frame (negative counts from the end); repeatable")
    g.add_argument("--frames", type=int, help="blueprint pixel frames (4n+1)")
    g.add_argument("--intervals", type=_int_list, help="frame intervals per level, e.g. 4,2,1 (6->12->24 fps at 24 fps)")
    g.add_argument("--chunks", type=_int_list,
                   help="chunks per refinement level, e.g. 2,4 (default: the model's for its own intervals, "
                        "else the reference rule)")
    g.add_argument("--boundary", choices=BOUNDARY_MODES,
                   help="chunk-boundary condition frames: 'reference' (copy the previous anchor, as the authors "
                        "ran it) or 'anchors' (only true frames of the level above); default: the model's")
    g.add_argument("--steps", type=_int_list, help="sampling steps per level, e.g. 50,32,32")
    g.add_argument("--shift", type=_float_list, help="sigma shift per level, e.g. 5,3,3")
    g.add_argument("--cfg", type=_float_list, help="guidance scale (one, or one per level)")
    g.add_argument("--guidance", choices=("apg", "cfg"), help="guidance kind (default: the model's)")
    g.add_argument("--seed", type=int, default=0, help="noise seed (same seed -> same video)")
    g.add_argument("--height", type=int, help="frame height in pixels (multiple of 16)")
    g.add_argument("--width", type=int, help="frame width in pixels (multiple of 16)")
    g.add_argument("--fps", type=float, help="fps of the finest level (frame interval 1)")
    g.add_argument("--max-batch", type=int, help="at most this many chunks per forward (lower memory, same result)")
    g.add_argument("--model-dir", help="bundle directory (default: the built-in TempoMaster-Tiny)")
    g.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device")
    g.add_argument("--out", required=True, help="output video file (.mp4)")
    g.add_argument("--save-levels", action="store_true",
                   help="also write every level at its own fps (<out>_level<i>_<fps>fps.mp4)")
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


def _flag_per_level(values: Optional[Sequence], default: Any, levels: int, name: str) -> Any:
    """A ``--name a,b,c`` flag per level: ``default`` when absent, one value repeated, or one per level
    (:func:`~tempomaster_core.level_settings.per_level`); exits with a message otherwise."""
    if values is None:
        return default
    try:
        return per_level(values[0] if len(values) == 1 else list(values), f"--{name}", levels)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None


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


def run_generate(args: argparse.Namespace) -> list[Path]:
    """Run the ``generate`` sub-command; returns the files written."""
    from .images import resize_center_crop
    from .tiny.builtin import load_builtin
    from .video_io import read_image, write_video

    bundle = load_builtin(device=args.device, dtype=torch.float32, directory=args.model_dir)
    d = bundle.defaults
    intervals = args.intervals if args.intervals is not None else tuple(d["frame_intervals"])
    chunks = args.chunks
    if chunks is None and tuple(intervals) == tuple(d["frame_intervals"]):
        chunks = d.get("chunks")  # the model's chunking belongs to its own tree; other trees: reference rule
    try:
        plan = TreePlan(
            args.frames if args.frames is not None else d["blueprint_frames"],
            intervals,
            chunks,
            height=args.height if args.height is not None else d["height"],
            width=args.width if args.width is not None else d["width"],
            fps=args.fps if args.fps is not None else d["fps"],
            temporal_factor=bundle.codec.temporal_factor,
            boundary=args.boundary or d.get("boundary", "reference"),
        )
    except PlanError as exc:
        raise SystemExit(f"error: {exc}") from None

    ref_steps, ref_shifts = default_schedule(plan)
    steps = _flag_per_level(args.steps, _model_default(plan, d, "steps", list(ref_steps)), plan.num_levels, "steps")
    shifts = _flag_per_level(args.shift, _model_default(plan, d, "shifts", list(ref_shifts)), plan.num_levels,
                             "shift")
    cfg = _flag_per_level(args.cfg, _model_default(plan, d, "cfg", 8.0), plan.num_levels, "cfg")

    keyframes = list(args.keyframe)
    if args.image:
        keyframes.append((0, args.image))
    if args.last_image:
        keyframes.append((-1, args.last_image))
    conditions = {}
    for index, path in keyframes:
        image = read_image(path)
        conditions[index] = resize_center_crop(image, plan.height, plan.width)[0]

    positive = bundle.encode_prompt(args.prompt)
    negative = bundle.encode_prompt(args.negative_prompt)
    print(plan.describe(), file=sys.stderr)
    mode = "text-to-video" if not conditions else f"conditioned on blueprint frames {sorted(conditions)}"
    print(f"prompt: {args.prompt!r} ({mode}), seed {args.seed}", file=sys.stderr)

    started = time.perf_counter()
    final, levels = generate(
        bundle.model, bundle.codec, positive, negative, plan,
        conditions=conditions or None, steps=steps, shifts=shifts, cfg=cfg,
        guidance=args.guidance or _model_default(plan, d, "guidance", "apg"), seed=args.seed,
        max_batch=args.max_batch, progress=LevelProgress(plan), return_levels=True,
    )
    elapsed = time.perf_counter() - started

    out = Path(args.out)
    written = [write_video(out, final, plan.final.fps)]
    if args.save_levels:
        for result in levels:
            name = f"{out.stem}_level{result.level_index}_{result.fps:g}fps{out.suffix or '.mp4'}"
            written.append(write_video(out.with_name(name), result.to_images(), result.fps))
    print(f"done in {elapsed:.1f}s: {final.shape[0]} frames at {plan.final.fps:g} fps "
          f"({final.shape[0] / plan.final.fps:.2f} s) -> {', '.join(str(p) for p in written)}", file=sys.stderr)
    return written


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m tempomaster_core``; returns the process exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "generate":
        run_generate(args)
    return 0
