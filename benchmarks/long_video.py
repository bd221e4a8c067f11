"""Long video on the built-in TempoMaster-Tiny model: time, joins, overlap and drift of multi-mask continuation.

Usage::

    python benchmarks/long_video.py [--seconds 24] [--prompts 4] [--context-seconds 1.5] [--segment-frames 63]
                                    [--threads 1] [--sheet DIR] [--json out.json] [--ar]
                                    [--anti-drift none|anchor|colour_match|anchor+colour_match]
                                    [--anchor-correction | --no-anchor-correction] [--join-fade SECONDS]
                                    [--replace-known-latents | --no-replace-known-latents]

For each held-out scene caption (``eval_tiny.EVAL_SEED_BASE + k``) a video of ``--seconds`` is made by
:func:`tempomaster_core.long_video.generate_long` with the bundle's settings (frames collected as uint8)
and ``--anti-drift`` (:mod:`tempomaster_core.anti_drift`; default: the bundle's ``defaults.json``, the built-in model's
``BUILTIN_ANTI_DRIFT``);
the refinement levels' anchor correction (:mod:`tempomaster_core.anchor_correction`) is the bundle's
``defaults.json`` setting unless ``--anchor-correction`` / ``--no-anchor-correction`` says otherwise, and so is
the join fade (:mod:`tempomaster_core.join_fade`) unless ``--join-fade`` gives one, and the known-latent
replacement (:mod:`tempomaster_core.known_latents`) unless ``--(no-)replace-known-latents`` says otherwise -- what
the command line's ``--seconds`` runs. The context is counted as the command line counts it
(:func:`tempomaster_core.continuation.context_frame_count`).
Measured, frames in [0, 1]:

* **time**: wall-clock and process CPU seconds per video, peak RSS of the process;
* **joins**: mean absolute frame difference of the pairs across a segment join (last context frame ->
  first new frame) divided by the mean over the pairs inside segments that are neither joins nor chunk
  seams of a segment's 24 fps level; the same over the join pair and the next three (``join_region_ratio``:
  a jump spread over a few frames); the same ratio for the chunk seams (the model's own seams), and for
  the model's own largest jumps inside segments (the mean of the largest pair per 16 pairs);
* **overlap**: PSNR of every segment's regenerated context against the known frames (8-bit);
* **drift**: first vs last ``--window`` seconds (default 10 s, at most a third of the video): median area
  ratio and mean RGB shift of the prompt's colour, mean RGB shift of the background (pixels whose
  brightest channel is below ``eval_tiny.OBJECT_MIN_BRIGHTNESS``), object count kept;
* ``--ar``: the same for chunk-by-chunk autoregressive generation (``eval_tiny.autoregressive``: 25-frame
  chunks at 24 fps, each knowing the previous chunk's last 5 frames) with about the same denoising work.

``--sheet DIR`` writes ``join_<k>.png``: the 12 frames around the first join of video ``k`` (the first new
frame is the 7th), 2x scaled.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "benchmarks"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from tempomaster_core.anchor_correction import model_default as anchor_correction_default  # noqa: E402
from tempomaster_core.known_latents import model_default as replace_known_default  # noqa: E402
from tempomaster_core.anti_drift import ANTI_DRIFT_MODES, model_default as anti_drift_default  # noqa: E402
from tempomaster_core.continuation import context_frame_count  # noqa: E402
from tempomaster_core.continuation_settings import ContinuationSettings  # noqa: E402
from tempomaster_core.join_fade import model_default as join_fade_default  # noqa: E402
from tempomaster_core.long_video import generate_long  # noqa: E402
from tempomaster_core.pipeline import tree_settings  # noqa: E402
from tempomaster_core.tiny.builtin import default_plan, load_builtin  # noqa: E402
from tempomaster_core.tiny.captions import caption  # noqa: E402
from tempomaster_core.tiny.scenes import sample_scene  # noqa: E402

from eval_tiny import (  # noqa: E402
    EVAL_SEED_BASE, OBJECT_MIN_BRIGHTNESS, analyse, autoregressive, mean_frame_diff, mode, to01,
)


def pair_sets(video, frames: int) -> tuple[list[int], list[int]]:
    """``(join pairs, chunk-seam pairs)`` of a :class:`~tempomaster_core.long_video.LongVideo` of ``frames``
    frames: pair ``t`` is frames ``(t, t + 1)``."""
    joins, seams, start = [], [], 0
    for s, segment in enumerate(video.segments):
        origin = start - segment.context_frames  # output frame of the segment's frame 0
        final = segment.plan.final
        for c in range(1, final.num_chunks):
            t = origin + c * final.frames_per_chunk - 1
            if start <= t < start + segment.new_frames - 1:
                seams.append(t)
        if s:
            joins.append(start - 1)
        start += segment.new_frames
    return [t for t in joins if t < frames - 1], seams


def ratio(diffs: torch.Tensor, pairs: list[int], exclude: set) -> float:
    """Mean of ``diffs`` at ``pairs`` over the mean at every pair outside ``exclude``."""
    rest = [t for t in range(diffs.numel()) if t not in exclude]
    return float(diffs[pairs].mean() / diffs[rest].mean()) if pairs else float("nan")


JOIN_REGION = 4
"""Pairs from a join on that the join-region ratio averages (the join pair and the next three: a jump spread
over a few frames by a fade shows there)."""


def largest_inside(diffs: torch.Tensor, exclude: set, every: int = 16) -> float:
    """The model's own jumps: mean of the largest pair differences inside segments, one per ``every`` pairs
    (the built-in model jumps about every 16 frames, issue 16), over the mean of the pairs outside ``exclude``."""
    rest = torch.tensor([float(diffs[t]) for t in range(diffs.numel()) if t not in exclude])
    top = rest.topk(max(1, rest.numel() // every)).values
    return float(top.mean() / rest.mean())


def drift_figures(frames: torch.Tensor, colour: str, window: int) -> dict:
    """First vs last ``window`` frames of ``[F, H, W, 3]`` in [0, 1] (see module doc)."""
    det = analyse(frames, colour)
    areas = torch.tensor(det["areas"])
    first, last = slice(0, window), slice(-window, None)
    a_first, a_last = float(areas[first].median()), float(areas[last].median())
    rgb = det["mean_rgb"]

    def colour_mean(sl):
        keep = areas[sl] > 0
        return rgb[sl][keep].mean(0) if keep.any() else torch.full((3,), float("nan"))

    background = frames.max(dim=-1).values < OBJECT_MIN_BRIGHTNESS
    bg = [(frames[sl] * background[sl][..., None]).flatten(0, 2).sum(0) / background[sl].sum().clamp_min(1)
          for sl in (first, last)]
    return {
        "area_ratio": a_last / a_first if a_first > 0 else float("nan"),
        "colour_shift": float((colour_mean(last) - colour_mean(first)).norm()),
        "background_shift": float((bg[1] - bg[0]).norm()),
        "count_first": mode(det["counts"][first]), "count_last": mode(det["counts"][last]),
    }


def sheet(path: Path, rows: list[torch.Tensor], scale: int = 2) -> None:
    """Write rows of ``uint8 [n, H, W, 3]`` frames as one PNG grid (pillow), 2 px gaps."""
    from PIL import Image

    n, h, w = max(r.shape[0] for r in rows), rows[0].shape[1] * scale, rows[0].shape[2] * scale
    grid = Image.new("RGB", (n * (w + 2), len(rows) * (h + 2)), (255, 255, 255))
    for i, row in enumerate(rows):
        for j, frame in enumerate(row):
            image = Image.fromarray(frame.numpy()).resize((w, h), Image.NEAREST)
            grid.paste(image, (j * (w + 2), i * (h + 2)))
    grid.save(path)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=24.0)
    p.add_argument("--prompts", type=int, default=4)
    p.add_argument("--context-seconds", type=float)
    p.add_argument("--segment-frames", type=int)
    p.add_argument("--window", type=float, default=10.0, help="drift window, seconds")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--sheet", help="directory for join contact sheets")
    p.add_argument("--json")
    p.add_argument("--ar", action="store_true", help="also measure chunk-by-chunk autoregressive generation")
    p.add_argument("--anti-drift", default=None, choices=ANTI_DRIFT_MODES,
                   help="anti-drift mode (default: the bundle's defaults.json)")
    p.add_argument("--anchor-correction", action=argparse.BooleanOptionalAction, default=None,
                   help="anchor correction of the refinement levels (default: the bundle's defaults.json)")
    p.add_argument("--replace-known-latents", action=argparse.BooleanOptionalAction, default=None,
                   help="known-latent replacement (default: the bundle's defaults.json)")
    p.add_argument("--join-fade", type=float, default=None,
                   help="join fade, seconds (default: the bundle's defaults.json; 0 = a plain cut)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    bundle = load_builtin()
    d = bundle.defaults
    template = default_plan(d, int(bundle.codec.temporal_factor))
    fps = template.final.fps
    continuation = ContinuationSettings.from_settings(d)
    context = context_frame_count(args.context_seconds or continuation.context_seconds, fps)
    new = args.segment_frames or continuation.new_frames
    anchor_correction = anchor_correction_default(d) if args.anchor_correction is None else args.anchor_correction
    join_fade = join_fade_default(d) if args.join_fade is None else args.join_fade
    anti_drift = anti_drift_default(d) if args.anti_drift is None else args.anti_drift
    replace_known_latents = (replace_known_default(d) if args.replace_known_latents is None
                             else args.replace_known_latents)
    settings = tree_settings(template.num_levels, steps=d["steps"], shifts=d["shifts"], cfg=d["cfg"],
                             guidance=d["guidance"], seed=0, anchor_correction=anchor_correction,
                             replace_known_latents=replace_known_latents)
    negative = bundle.encode_prompt(d.get("negative_prompt", ""))
    results = []
    for k in range(args.prompts):
        spec = sample_scene(EVAL_SEED_BASE + k, height=template.height, width=template.width)
        prompt = caption(spec)
        positive = bundle.encode_prompt(prompt)
        wall, cpu = time.perf_counter(), time.process_time()
        video = generate_long(bundle.model, bundle.codec, positive, negative, template,
                              [dataclasses.replace(s, seed=k * 1000) for s in settings],
                              seconds=args.seconds, context_frames=context, new_frames=new,
                              anti_drift=anti_drift, join_fade=join_fade)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        frames = video.frames.float() / 255
        diffs = mean_frame_diff(frames)
        joins, seams = pair_sets(video, frames.shape[0])
        window = min(round(args.window * fps), frames.shape[0] // 3)
        row = {"prompt": prompt, "count": spec.count, "frames": frames.shape[0], "segments": len(video.segments),
               "wall_s": wall, "cpu_s": cpu, "join_ratio": ratio(diffs, joins, set(joins) | set(seams)),
               "join_region_ratio": ratio(diffs, [t + i for t in joins for i in range(JOIN_REGION)
                                                  if t + i < diffs.numel()], set(joins) | set(seams)),
               "seam_ratio": ratio(diffs, seams, set(joins) | set(seams)),
               "own_jump_ratio": largest_inside(diffs, set(joins)),
               "overlap_psnr_min": min(v for v in video.overlap_psnr if v is not None),
               "drift": drift_figures(frames, spec.colour, window)}
        if args.ar:
            ar = autoregressive(bundle, positive, negative, total=frames.shape[0], chunk=25, overlap=5,
                                steps=d["steps"][-1], shift=d["shifts"][-1], cfg=d["cfg"][-1], guidance=d["guidance"],
                                seed=k * 1000, height=template.height, width=template.width)
            ar01 = to01(ar)
            ar_diffs = mean_frame_diff(ar01)
            ar_joins = list(range(24, ar01.shape[0] - 1, 20))
            row["ar"] = {"join_ratio": ratio(ar_diffs, ar_joins, set(ar_joins)),
                         "drift": drift_figures(ar01, spec.colour, window)}
        results.append(row)
        print(json.dumps(row), flush=True)
        if args.sheet and joins:
            out = Path(args.sheet)
            out.mkdir(parents=True, exist_ok=True)
            j = joins[0] + 1  # first new frame of segment 1
            sheet(out / f"join_{k}.png", [video.frames[j - 6: j + 6]])
    drifts = [r["drift"] for r in results]
    summary = {
        "seconds": args.seconds, "context_frames": context, "new_frames": new, "anti_drift": anti_drift,
        "anchor_correction": anchor_correction, "join_fade": join_fade,
        "replace_known_latents": replace_known_latents,
        "mean_wall_s": sum(r["wall_s"] for r in results) / len(results),
        "mean_cpu_s": sum(r["cpu_s"] for r in results) / len(results),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "join_ratio": sum(r["join_ratio"] for r in results) / len(results),
        "join_region_ratio": sum(r["join_region_ratio"] for r in results) / len(results),
        "seam_ratio": sum(r["seam_ratio"] for r in results) / len(results),
        "own_jump_ratio": sum(r["own_jump_ratio"] for r in results) / len(results),
        "overlap_psnr_min": min(r["overlap_psnr_min"] for r in results),
        "area_ratios": [round(d["area_ratio"], 3) for d in drifts],
        "colour_shift": sum(d["colour_shift"] for d in drifts) / len(drifts),
        "background_shift": sum(d["background_shift"] for d in drifts) / len(drifts),
        "background_shifts": [round(d["background_shift"], 3) for d in drifts],
        "count_kept": sum(d["count_first"] == d["count_last"] for d in drifts),
    }
    print(json.dumps(summary))
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "videos": results}, indent=1))
    return summary


if __name__ == "__main__":
    main()
