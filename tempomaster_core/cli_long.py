"""Long video on the command line: ``generate --seconds S`` and ``generate --extend video.mp4``.

The ``generate`` sub-command (:mod:`tempomaster_core.cli`) makes one tree; with ``--seconds`` it makes a
video of that length segment by segment (:func:`tempomaster_core.long_video.generate_long`: every segment
knows the last ``--context-seconds`` of the video at every level), and with ``--extend VIDEO`` it
continues a video file (``--seconds`` is then the length to add; without it one segment is added).

Checked before the model loads (exit code 2 on a mistake): the long-video flags, the segment trees, the
extension video (readable, the plan's frame rate and size, at least the context long), and the flags
that do not mix with segments (``--save-levels``, ``--last-image``, ``--keyframe``; ``--image`` with
``--extend``). The output is streamed (:class:`~tempomaster_core.video_io.VideoStream`) into the hidden
temporary file of :func:`~tempomaster_core.video_io.atomic_output`, so memory holds the context and one
segment, not the video; the file is renamed onto ``--out`` when complete. On Ctrl-C or an error after at
least one segment, the finished frames are kept as a playable ``<out stem>.partial<suffix>`` (if that
name is free, or with ``--overwrite``); ``--out`` itself is never left truncated.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from .cli import LevelProgress, UsageError, say
from .anti_drift import check_anti_drift, model_default as anti_drift_default
from .continuation import SegmentPlan, check_context, check_fps, context_frame_count
from .continuation_settings import ContinuationSettings
from .defaults import ANTI_DRIFT, JOIN_FADE_SECONDS
from .join_fade import check_join_fade, model_default as join_fade_default
from .long_video import plan_segments
from .plan import PlanError, TreePlan
from .validation import InputError, require_int, require_number

LONG_FLAGS = ("context_seconds", "segment_frames", "segment_prompt", "anti_drift", "join_fade")
"""``generate`` flags that only mean something with ``--seconds`` or ``--extend``."""


@dataclass(frozen=True)
class LongJob:
    """The long-video part of a ``generate`` run, checked before the model loads.

    Attributes:
        segments: every segment's :class:`~tempomaster_core.continuation.SegmentPlan`.
        total: new frames to make (output fps).
        context_frames, new_frames: per continuation segment.
        extend: the video to continue, or ``None``.
        extend_frames: its frame count (0 without ``extend``).
        partial: where the finished frames go on Ctrl-C or an error.
        anti_drift: the checked ``--anti-drift`` option (:mod:`~tempomaster_core.anti_drift`).
        join_fade: the checked ``--join-fade``, seconds (:mod:`~tempomaster_core.join_fade`).
    """

    segments: tuple
    total: int
    context_frames: int
    new_frames: int
    extend: Optional[Path]
    extend_frames: int
    partial: Path
    anti_drift: str = ANTI_DRIFT
    join_fade: float = JOIN_FADE_SECONDS


def is_long(args: argparse.Namespace) -> bool:
    """True when the arguments ask for segments (``--seconds`` or ``--extend``)."""
    return args.seconds is not None or args.extend is not None


def partial_path(out: Path) -> Path:
    """``<out stem>.partial<suffix>`` next to ``out``: the finished frames of an interrupted run."""
    return out.with_name(f"{out.stem}.partial{out.suffix}")


def check_long_flags(args: argparse.Namespace) -> None:
    """Refuse long-video flags without segments, and flags that do not mix with segments.

    Raises:
        UsageError: the first such flag.
    """
    if not is_long(args):
        for name in LONG_FLAGS:
            if getattr(args, name) not in (None, []):
                raise UsageError(f"--{name.replace('_', '-')} needs --seconds or --extend (a video in segments)")
        return
    if args.save_levels:
        raise UsageError("--save-levels writes one tree's levels; it does not work with --seconds/--extend")
    if args.last_image is not None or args.keyframe:
        raise UsageError("--last-image and --keyframe name frames of one blueprint; with --seconds/--extend only "
                         "--image (the first frame) is available")
    if args.extend is not None and args.image is not None:
        raise UsageError("--image conditions a video made from scratch; --extend continues the video's last frames")


def _extension(args: argparse.Namespace, plan: TreePlan, context: int) -> int:
    """Frame count of ``--extend``'s video after checking it against the plan (fps, size, context)."""
    from .video_io import video_properties

    label = f"--extend {args.extend}"
    try:
        frames, height, width, fps = video_properties(args.extend)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{label}: {exc}") from None
    fixes = {"fps": f" (command line: --fps {fps:g})", "size": f" (command line: --width {width} --height {height})"}
    try:
        check_fps(fps, plan.final.fps, label)
    except InputError as exc:
        raise UsageError(f"{exc}{fixes['fps']}") from None
    try:
        check_context(frames, height, width, _probe_segment(plan, context), label)
    except InputError as exc:
        hint = fixes["size"] if (height, width) != (plan.height, plan.width) else " (command line: --context-seconds)"
        raise UsageError(f"{exc}{hint}") from None
    return frames


def _probe_segment(plan: TreePlan, context: int) -> SegmentPlan:
    """A segment of the template tree with ``context`` known frames: what :func:`check_context` reads
    (the size, the context, the fps) before the real segments are planned."""
    return SegmentPlan(plan=plan, context_frames=context, new_frames=1)


def prepare_long(args: argparse.Namespace, plan: TreePlan, defaults: dict) -> LongJob:
    """Check the long-video arguments against the template tree ``plan`` (before the model loads).

    ``defaults``: the model's recommended settings; its continuation settings (``context_seconds``,
    ``segment_new_frames``: :meth:`~tempomaster_core.continuation_settings.ContinuationSettings.from_settings`) and
    ``anti_drift`` and ``join_fade_seconds`` (when present) replace the paper's for flags not given.

    Raises:
        UsageError: a bad flag value, continuation settings in ``defaults`` that are not valid, a segment tree
            outside the plan limits, or a bad ``--extend`` video.
    """
    fps = plan.final.fps
    try:
        declared = ContinuationSettings.from_settings(defaults, "the model's recommended settings")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        context = context_frame_count(args.context_seconds if args.context_seconds is not None
                                      else declared.context_seconds, fps, "--context-seconds")
        new = require_int(args.segment_frames if args.segment_frames is not None else declared.new_frames,
                          "--segment-frames", minimum=1)
        if args.seconds is not None:
            seconds = require_number(args.seconds, "--seconds", minimum=0.0, exclusive_minimum=True)
            total = round(seconds * fps)
            if total < 1:
                raise UsageError(f"--seconds {seconds:g} is less than one frame at {fps:g} fps")
        else:
            total = new  # --extend alone: one segment
        extend_frames = _extension(args, plan, context) if args.extend is not None else 0
        segments = plan_segments(plan, total, context, new, extend=args.extend is not None)
        continuing = [segment.known_frames(0) for segment in segments if segment.context_frames]
        anti_drift = check_anti_drift(args.anti_drift if args.anti_drift is not None
                                      else anti_drift_default(defaults),
                                      min(continuing, default=None), "--anti-drift")
        join_fade = (check_join_fade(args.join_fade, "--join-fade") if args.join_fade is not None
                     else join_fade_default(defaults))
    except (InputError, PlanError) as exc:
        raise UsageError(str(exc)) from None
    return LongJob(segments=tuple(segments), total=total, context_frames=context, new_frames=new,
                   extend=Path(args.extend) if args.extend is not None else None, extend_frames=extend_frames,
                   partial=partial_path(Path(args.out)), anti_drift=anti_drift, join_fade=join_fade)


class SegmentProgress:
    """``generate_long``'s progress callback: a header line per segment, then :class:`~tempomaster_core.cli.LevelProgress`."""

    def __init__(self, segments, stream=None) -> None:
        self.segments = segments
        self.stream = stream if stream is not None else sys.stderr
        self._segment = None
        self._levels = None
        self._started = time.perf_counter()

    def __call__(self, segment: int, segments: int, level_index: int, step: int, total_steps: int,
                 preview=None) -> None:
        if segment != self._segment:
            plan = self.segments[segment]
            self._segment = segment
            self._levels = LevelProgress(plan.plan, self.stream)
            self.stream.write(f"segment {segment + 1}/{segments}: {plan.context_frames} context + {plan.new_frames} "
                              f"new frames (blueprint {plan.plan.blueprint_frames} frames), "
                              f"{time.perf_counter() - self._started:.0f}s so far\n")
        self._levels(level_index, step, total_steps, preview)


class _Discard:
    """The output stream of a rank other than 0 under torchrun: counts frames, writes nothing."""

    frames_written = 0

    def write(self, frames) -> None:
        self.frames_written += len(frames)

    def close(self) -> None:
        pass


def _copy_video(path: Path, stream, context: int) -> torch.Tensor:
    """Write every frame of ``path`` to ``stream``; return its last ``context`` frames ``uint8 [C, H, W, 3]``."""
    from .video_io import iter_video

    tail: collections.deque = collections.deque(maxlen=context)
    for frame in iter_video(path):
        stream.write(frame[None])
        tail.append(frame)
    return torch.stack(list(tail))


def _keep_partial(tmp: Path, job: LongJob, written: int, overwrite: bool) -> None:
    """After an interruption: move the finished frames to ``job.partial`` (if free, or with ``overwrite``)."""
    made = written - job.extend_frames
    if made <= 0:
        return
    if os.path.lexists(job.partial) and not overwrite:
        print(f"note: {made} finished frames were not kept: {job.partial} exists (use --overwrite)", file=sys.stderr)
        return
    os.replace(tmp, job.partial)
    print(f"note: the {made} frames finished before the stop are in {job.partial}", file=sys.stderr)


def run_long(args: argparse.Namespace, job, bundle, negative: torch.Tensor, prompts: Optional[list] = None) -> list[Path]:
    """Make the segments of ``job.long`` with ``bundle`` and stream them into ``--out``; returns ``[out]``.

    ``prompts``: the text contexts of ``--prompt`` and every ``--segment-prompt``, in order (default: encoded
    here with ``bundle.encode_prompt``).
    Under torchrun only rank 0 writes (the other ranks make the same segments and discard them).

    Raises:
        Exception / KeyboardInterrupt: generation failed or was stopped (``--out`` untouched; finished frames
            kept, see the module doc).
    """
    from .distributed import active
    from .long_video import generate_long
    from .pipeline import tree_settings
    from .video_io import VideoStream, atomic_output

    long = job.long
    plan = job.plan
    if prompts is None:
        prompts = [bundle.encode_prompt(text) for text in [args.prompt, *args.segment_prompt]]
    settings = tree_settings(plan.num_levels, steps=job.steps, shifts=job.shifts, cfg=job.cfg, guidance=job.guidance,
                             seed=args.seed, max_batch=args.max_batch, anchor_correction=job.anchor_correction,
                             replace_known_latents=job.replace_known_latents)
    out = job.outputs[0][0]
    fps = plan.final.fps
    source = f"extending {long.extend} ({long.extend_frames} frames)" if long.extend else "from scratch"
    say(f"{len(long.segments)} segment(s), {long.total} new frames ({long.total / fps:.2f} s at {fps:g} fps) "
        f"{source}; context {long.context_frames} frames, {long.new_frames} new frames per segment, anti-drift "
        f"{long.anti_drift}, join fade {long.join_fade:g} s, known-latent replacement "
        f"{'on' if job.replace_known_latents else 'off'}, seed "
        f"{args.seed} + segment index\n{long.segments[-1].describe()}")
    started = time.perf_counter()
    ranks = active()
    writes = ranks is None or ranks.is_main
    with atomic_output(out, overwrite=args.overwrite) if writes else contextlib.nullcontext() as tmp:
        stream = VideoStream(tmp, fps) if writes else _Discard()
        try:
            video = _copy_video(long.extend, stream, long.context_frames) if long.extend else None
            generate_long(bundle.model, bundle.codec, prompts, negative, plan, settings,
                          seconds=long.total / fps, context_frames=long.context_frames, new_frames=long.new_frames,
                          video=video, conditions=job.conditions or None, anti_drift=long.anti_drift,
                          join_fade=long.join_fade, sink=stream.write,
                          progress=SegmentProgress(long.segments))
        except BaseException:
            if writes:
                with contextlib.suppress(Exception):
                    stream.close()
                _keep_partial(tmp, long, stream.frames_written, args.overwrite)
            raise
        stream.close()
    elapsed = time.perf_counter() - started
    say(f"done in {elapsed:.1f}s: {stream.frames_written} frames at {fps:g} fps "
        f"({stream.frames_written / fps:.2f} s) -> {out}")
    return [out] if writes else []
