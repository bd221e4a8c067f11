"""Quality of the built-in TempoMaster-Tiny model, measured on held-out scene seeds.

Usage::

    python benchmarks/eval_tiny.py [--prompts 40] [--scene-offset 0] [--quick] [--model-dir DIR]
                                   [--json out.json] [--steps 24,16,16 --shifts 5,12,12 --cfg 5,1,1
                                   --guidance apg --boundary repeat_anchor] [--ar-overlap 5] [--no-ar] [--threads 2]
                                   [--blueprint-only]

For every held-out scene (seeds ``EVAL_SEED_BASE + k``, never used in training:
training scenes use seeds below ``HELD_OUT_SEED_BASE``) its canonical caption is
the prompt, and the full TempoMaster tree (blueprint 6 fps -> 12 -> 24 fps with
the bundle's defaults) is generated with :func:`tempomaster_core.pipeline.generate`.
Measured (frames in [0, 1]):

* **codec**: encode -> decode PSNR of held-out clips (17 and 25 frames at intervals 4/2/1).
* **blueprint fidelity**: PSNR of the final 24 fps frames at the blueprint's positions
  (frame ``4k``) against blueprint frame ``k``; same for the 12 fps level (frame ``2k``).
* **continuity**: mean absolute frame-to-frame difference across chunk boundaries of
  the final level (frame pairs ``(25c-1, 25c)``) divided by the mean inside chunks; and,
  because a chunk's first frame can repeat the previous anchor (``boundary="repeat_anchor"``)
  and make the *next* step jump, the same ratio over both pairs around a chunk's first
  frame (``(25c-1, 25c)`` and ``(25c, 25c+1)``, "seam region").
* **motion**: mean frame difference of the video vs a static video (the first frame
  held, coded by the codec chunk by chunk like the output), and the mean speed of the
  target-colour centroid (pixels / 24 fps frame) vs the ground-truth scene's.
* **presence**: pixels of the prompt's colour in every frame of the last second
  (>= half the median area of the first second, and >= ``MIN_AREA``).
* **prompt adherence**: the dominant object colour (pixels classified by their nearest
  palette colour) and the number of objects (connected components of that colour,
  mode over frames) equal the prompt's. The detector is checked on ground-truth renders.
* **shape**: every object of the prompt's colour matched against the ideal ball, square and
  triangle of its area at its centroid (``benchmarks/shapes.py``); a video draws the prompt's
  shape when its most frequent well-fitting shape is the prompt's. Reported for the video, the
  blueprint, the ground-truth render (the detector's check) and the ground truth through the
  codec (what the codec alone keeps).
* **drift vs autoregressive**: the same 100-frame 24 fps video generated chunk by chunk
  (25-frame chunks at interval 1, each conditioned only on the previous chunk's last
  ``--ar-overlap`` frames, through :func:`tempomaster_core.pipeline.run_blueprint` with
  user condition frames), with the same model and the same number of chunk-denoising
  steps in total. For both: colour, count and size consistency between the first and
  the last second, and adherence in the last second.

``--blueprint-only`` generates only each prompt's blueprint (level 0, the bundle's
blueprint steps / shift / guidance) and reports its prompt adherence: the blueprint
decides colour and count (refinement keeps them), so this screens checkpoints and
sampler settings in a fraction of the time (use ``--scene-offset 5000`` for tuning).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Optional
from collections import Counter
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tempomaster_core.anchor_correction import model_default  # noqa: E402
from tempomaster_core.pipeline import generate, run_blueprint  # noqa: E402
from tempomaster_core.plan import BOUNDARY_MODES, TreePlan  # noqa: E402
from tempomaster_core.tiny.builtin import default_plan, load_builtin  # noqa: E402
from tempomaster_core.tiny.codec import psnr  # noqa: E402
from tempomaster_core.tiny.captions import COLOURS, caption  # noqa: E402
from tempomaster_core.tiny.scenes import render, sample_scene  # noqa: E402
from tempomaster_core.conditioning import build_condition, encode_clips  # noqa: E402
from tempomaster_core.tiny.scenes import HELD_OUT_SEED_BASE  # noqa: E402

from coherence import coherence, cross_frame_sensitivity, frame_objects, label_components, progress_along  # noqa: E402
from shapes import shape_adherence  # noqa: E402

EVAL_SEED_BASE = HELD_OUT_SEED_BASE + 20_000_000
"""Scene seeds of the evaluation prompts (held out from training and from the trainer's validation)."""

OBJECT_MIN_BRIGHTNESS = 0.45
"""A pixel is an object pixel when its brightest channel exceeds this ([0, 1]; backgrounds stay <= 0.2)."""

MIN_AREA = 12
"""Smallest connected component (pixels) counted as an object (objects cover about 40+ pixels at 64x64)."""

PALETTE = torch.tensor(list(COLOURS.values()), dtype=torch.float32)
COLOUR_NAMES = list(COLOURS)


# -- detector ------------------------------------------------------------------------------


def classify_pixels(frames: torch.Tensor) -> torch.Tensor:
    """Colour class of every pixel: int64 ``[F, H, W]``, -1 for background, else the index in
    :data:`COLOUR_NAMES` of the nearest palette colour. ``frames``: float ``[F, H, W, 3]`` in [0, 1]."""
    dist = ((frames[..., None, :] - PALETTE) ** 2).sum(-1)
    labels = dist.argmin(-1)
    return torch.where(frames.max(-1).values > OBJECT_MIN_BRIGHTNESS, labels, torch.full_like(labels, -1))


def connected_components(mask: torch.Tensor) -> list[list[int]]:
    """Areas of the 8-connected components of a boolean ``[F, H, W]`` mask, per frame, largest first."""
    out = []
    for frame in label_components(mask):
        values, counts = torch.unique(frame[frame > 0], return_counts=True)
        out.append(sorted(counts.tolist(), reverse=True))
    return out


def analyse(frames: torch.Tensor, colour: str) -> dict:
    """Per-frame detections for a video ``[F, H, W, 3]`` in [0, 1] and the prompt's ``colour``.

    Returns ``{"dominant": colour name or None, "counts": [F] objects of ``colour``,
    "areas": [F] pixels of ``colour``, "centroids": [F, 2] (x, y) or NaN, "mean_rgb": [F, 3]}``.
    """
    labels = classify_pixels(frames)
    target = COLOUR_NAMES.index(colour)
    mask = labels == target
    objects = labels[labels >= 0]
    dominant = COLOUR_NAMES[int(torch.bincount(objects, minlength=len(COLOUR_NAMES)).argmax())] if objects.numel() else None
    comps = connected_components(mask)
    counts = [sum(a >= MIN_AREA for a in c) for c in comps]
    areas = mask.flatten(1).sum(1).float()
    ys, xs = torch.meshgrid(torch.arange(frames.shape[1]), torch.arange(frames.shape[2]), indexing="ij")
    m = mask.float()
    denom = m.flatten(1).sum(1).clamp_min(1)
    cx = (m * xs).flatten(1).sum(1) / denom
    cy = (m * ys).flatten(1).sum(1) / denom
    cent = torch.stack([cx, cy], 1)
    cent[areas == 0] = float("nan")
    rgb = (frames * m[..., None]).flatten(1, 2).sum(1) / denom[:, None]
    return {"dominant": dominant, "counts": counts, "areas": areas.tolist(), "centroids": cent, "mean_rgb": rgb}


SHAPE_FRAME_STEP = 4
"""Every this many frames are read by the shape detector (``shapes.shape_adherence``)."""


def drawn_shape(frames: torch.Tensor, spec) -> dict:
    """``shapes.shape_adherence`` of the prompt's colour in ``frames`` ``[F, H, W, 3]`` in [0, 1] against the
    scene's shape (every :data:`SHAPE_FRAME_STEP`-th frame)."""
    mask = classify_pixels(frames) == COLOUR_NAMES.index(spec.colour)
    return shape_adherence(mask, spec.shape, MIN_AREA, every=SHAPE_FRAME_STEP)


@torch.no_grad()
def codec_shape(codec, spec, frames: int, interval: int) -> dict:
    """:func:`drawn_shape` of the scene's ground truth (``frames`` at ``interval``) after the codec's encode ->
    decode: how well the codec alone keeps the shape (the ceiling of what the DiT's videos can show)."""
    clip = render(spec, frames, start_frame=0, interval=interval)
    return drawn_shape(to01(codec.decode(encode_clips(codec, clip[None]))[0]), spec)


def mode(values) -> int:
    """Most frequent value (smallest on ties)."""
    counts = Counter(values)
    best = max(counts.values())
    return min(v for v, c in counts.items() if c == best)


def adherence(det: dict, colour: str, count: int, frames: slice = slice(None)) -> dict:
    """Colour and count of a detection (restricted to ``frames``) against the prompt's."""
    counts = det["counts"][frames]
    colour_ok = det["dominant"] == colour if frames == slice(None) else None
    found = mode(counts) if counts else 0
    return {"colour_ok": colour_ok, "count": found, "count_ok": found == count}


def mean_frame_diff(frames: torch.Tensor) -> torch.Tensor:
    """``[F-1]`` mean absolute difference between consecutive frames (``[F, H, W, 3]`` in [0, 1])."""
    return (frames[1:] - frames[:-1]).abs().flatten(1).mean(1)


def seam_region_ratio(diffs: torch.Tensor, seams: list) -> float:
    """Mean of the frame differences ``diffs`` (``[F-1]``) at each seam pair ``t`` and the pair after it
    (``t+1``), divided by the mean over every other pair: the "seam region" continuity ratio."""
    region = sorted({t for s in seams for t in (s, s + 1) if t < diffs.numel()})
    rest = [t for t in range(diffs.numel()) if t not in region]
    return float(diffs[region].mean() / diffs[rest].mean())


def psnr01(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two [0, 1] tensors (peak 1)."""
    mse = float(((a.double() - b.double()) ** 2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


def to01(frames_m11: torch.Tensor) -> torch.Tensor:
    """``[3, F, H, W]`` in [-1, 1] -> ``[F, H, W, 3]`` in [0, 1]."""
    return ((frames_m11.permute(1, 2, 3, 0) + 1) / 2).clamp(0, 1)


# -- pieces of the evaluation --------------------------------------------------------------


@torch.no_grad()
def codec_quality(codec, size: int) -> dict:
    """Held-out codec PSNR (dB, peak-to-peak 2 on [-1, 1] = the usual [0, 1] PSNR), 17- and 25-frame clips."""
    out = {}
    for frames in (17, 25):
        values, mses = [], []
        for k in range(12):
            spec = sample_scene(EVAL_SEED_BASE + 5_000_000 + k, height=size, width=size)
            clip = render(spec, frames, start_frame=11 * k, interval=(4, 2, 1)[k % 3])[None]
            rec = codec.decode(codec.encode(clip))
            values.append(psnr(clip, rec))
            mses.append(float(((clip.double() - rec.double()) ** 2).mean()))
        out[f"{frames}_frames"] = {"pooled": 10 * math.log10(4.0 / (sum(mses) / len(mses))),
                                   "mean": float(np.mean(values)), "min": float(np.min(values))}
    return out


@torch.no_grad()
def static_diff(codec, frame_m11: torch.Tensor, chunks: int, frames_per_chunk: int) -> float:
    """Mean frame difference of a static video (one frame held) coded chunk by chunk like the output."""
    clip = frame_m11[None, :, None].expand(1, 3, frames_per_chunk, *frame_m11.shape[1:]).contiguous()
    rec = codec.decode(codec.encode(clip))[0]
    video = to01(torch.cat([rec] * chunks, dim=1))
    return float(mean_frame_diff(video).mean())


@torch.no_grad()
def autoregressive(bundle, positive, negative, *, total: int, chunk: int, overlap: int, steps: int, shift: float,
                   cfg: float, guidance: str, seed: int, height: int, width: int) -> torch.Tensor:
    """Chunk-by-chunk 24 fps generation: ``[3, total, H, W]`` in [-1, 1].

    Chunk 0 is text-to-video; chunk ``k`` gets the previous chunk's last ``overlap`` frames as
    condition frames ``0..overlap-1`` and adds ``chunk - overlap`` new frames. Noise seed ``seed + k``.
    """
    plan = TreePlan(chunk, (1,), height=height, width=width, temporal_factor=int(bundle.codec.temporal_factor))
    video = None
    k = 0
    while video is None or video.shape[1] < total:
        conds = None
        if video is not None:
            conds = {i: video[:, video.shape[1] - overlap + i] for i in range(overlap)}
        res = run_blueprint(bundle.model, bundle.codec, positive, negative, plan, conditions=conds, steps=steps,
                            shift=shift, cfg=cfg, guidance=guidance, seed=seed + k)
        video = res.frames if video is None else torch.cat([video, res.frames[:, overlap:]], dim=1)
        k += 1
    return video[:, :total]


def drift(det: dict, colour: str, count: int, fps: int) -> dict:
    """First-second vs last-second consistency of a detection."""
    first, last = slice(0, fps), slice(-fps, None)
    a_first = float(np.median(det["areas"][first]))
    a_last = float(np.median(det["areas"][last]))
    rgb = det["mean_rgb"]
    area = torch.tensor(det["areas"])
    rgb_first = rgb[first][area[first] > 0].mean(0) if (area[first] > 0).any() else torch.full((3,), float("nan"))
    rgb_last = rgb[last][area[last] > 0].mean(0) if (area[last] > 0).any() else torch.full((3,), float("nan"))
    c_first, c_last = mode(det["counts"][first]), mode(det["counts"][last])
    return {
        "area_ratio": a_last / a_first if a_first > 0 else float("nan"),
        "rgb_shift": float((rgb_last - rgb_first).norm()),
        "count_first": c_first, "count_last": c_last, "count_consistent": c_first == c_last,
        "last_second_count_ok": c_last == count,
        "last_second_colour_present": a_last >= MIN_AREA,
    }


def presence(det: dict, fps: int) -> dict:
    """Object of the prompt's colour present in every frame of the last second."""
    first = np.asarray(det["areas"][:fps])
    last = np.asarray(det["areas"][-fps:])
    need = max(MIN_AREA, 0.5 * float(np.median(first)))
    return {"present_to_end": bool((last >= need).all()), "last_over_first_area": float(last.mean() / max(first.mean(), 1e-9))}


def centroid_speed(det: dict) -> float:
    """Mean per-frame displacement (pixels) of the target-colour centroid, frames where it exists."""
    c = det["centroids"]
    d = (c[1:] - c[:-1]).norm(dim=1)
    d = d[torch.isfinite(d)]
    return float(d.mean()) if d.numel() else float("nan")


CAPTION_DIRECTIONS = {"right": (1.0, 0.0), "left": (-1.0, 0.0), "down": (0.0, 1.0), "up": (0.0, -1.0),
                      "falling": (0.0, 1.0)}
"""The image-space unit direction ``(x, y)``, y down, in which every object of a scene of each caption motion starts
(:func:`tempomaster_core.tiny.scenes.sample_scene`); ``diagonal`` draws its signs at random, so it has none."""

CAPTION_MOTION_SECONDS = 2.0
"""The span over which a video's object must move the caption's way: in the first 2 s no scene of the motions in
:data:`CAPTION_DIRECTIONS` reverses (constant speeds start at most half-way along their axis and travel at most
17 px by then; falls reach the floor after at least 2.4 s)."""


def caption_motion(mask: torch.Tensor, gt_mask: torch.Tensor, motion: str, interval: int) -> Optional[dict]:
    """Does the object move the way the caption says? Progress (pixels) of the prompt colour's centroid along
    the caption's direction over the first :data:`CAPTION_MOTION_SECONDS` of a video whose frame ``j`` shows
    24 fps time ``j * interval``, for the video (``mask``) and the ground-truth render (``gt_mask``), both boolean
    ``[F, H, W]``; ``ok`` when the video gets at least half as far as the ground truth. None for a motion
    without a direction (diagonal). Meant for one-object scenes: a pop moves the centroid of several."""
    if motion not in CAPTION_DIRECTIONS:
        return None
    frames = min(mask.shape[0], int(CAPTION_MOTION_SECONDS * 24 / interval) + 1)
    window = max(1, frames // 8)
    video = progress_along(mask, CAPTION_DIRECTIONS[motion], frames, window)
    truth = progress_along(gt_mask, CAPTION_DIRECTIONS[motion], frames, window)
    return {"progress": video, "gt_progress": truth, "ok": bool(video >= 0.5 * truth)}


def video_coherence(frames: torch.Tensor, spec, interval: int, frames_per_latent: int | None = None) -> dict:
    """Temporal-coherence measures (:func:`coherence.coherence`) of a video of ``spec``'s scene whose
    frame ``j`` shows 24 fps time ``j * interval``, against the ground-truth render of the same frames;
    ``frames_per_latent`` (the codec's temporal factor, for a blueprint: one clip in the codec's layout)
    adds the steps inside and across latent frames. One-object scenes also get ``caption_motion``
    (:func:`caption_motion`, None for diagonal motion)."""
    gt = to01(render(spec, frames.shape[0], start_frame=0, interval=interval))
    target = COLOUR_NAMES.index(spec.colour)
    gt_mask, mask = classify_pixels(gt) == target, classify_pixels(frames) == target
    result = coherence(frames, mask, frame_objects(gt_mask, MIN_AREA), spec.count, MIN_AREA, frames_per_latent)
    if spec.count == 1:
        result["caption_motion"] = caption_motion(mask, gt_mask, spec.motion, interval)
    return result


def coherence_summary(entries: list, prefix: str = "") -> dict:
    """Means of :func:`video_coherence` results (issue targets: single-object step ok, no pops, diff ratio),
    plus the medians of the steps inside / across latent frames when the entries have them."""
    single = [e for e in entries if e["count"] == 1]
    out = {
        f"{prefix}single_object_step_ok": _mean([e["step_ok"] for e in single]),
        f"{prefix}single_object_caption_motion_ok": _mean([e["caption_motion"]["ok"] for e in single
                                                           if e.get("caption_motion")]),
        f"{prefix}largest_step_px_median": float(np.nanmedian([e["largest_step"] for e in entries])),
        f"{prefix}gt_largest_step_px_median": float(np.nanmedian([e["gt_largest_step"] for e in entries])),
        f"{prefix}videos_without_pops": _mean([e["pop_free"] for e in entries]),
        f"{prefix}gt_videos_without_pops": _mean([e["gt_pops"] == 0 for e in entries]),
        f"{prefix}videos_with_empty_frames": _mean([e["empty_frames"] > 0 for e in entries]),
        f"{prefix}frame_count_ok": _mean([e["frame_count_ok"] for e in entries]),
        f"{prefix}frame_diff_ratio_max": float(np.max([e["frame_diff_ratio"] for e in entries])),
        f"{prefix}frame_diff_ratio_ok": _mean([e["frame_diff_ratio"] <= 3 for e in entries]),
    }
    if entries and "step_across_latent" in entries[0]:
        for key in ("step_inside_latent", "step_across_latent", "gt_step_inside_latent", "gt_step_across_latent"):
            out[f"{prefix}{key}_px_median"] = float(np.nanmedian([e[key] for e in entries]))
    return out


SENSITIVITY_CLIPS = 8
"""Held-out ground-truth clips of the cross-frame sensitivity probe."""


@torch.no_grad()
def dit_sensitivity(bundle, frames: int, seed: int = 0) -> dict:
    """Cross-frame sensitivity (:func:`coherence.cross_frame_sensitivity`) of the bundle's DiT on
    :data:`SENSITIVITY_CLIPS` held-out ground-truth clips of ``frames`` pixel frames at interval 4
    (the blueprint's shape, RoPE positions ``4j``), text-to-video condition, canonical captions."""
    specs = [sample_scene(EVAL_SEED_BASE + 10_000_000 + k, height=64, width=64) for k in range(SENSITIVITY_CLIPS)]
    clips = torch.stack([render(spec, frames, start_frame=0, interval=4) for spec in specs])
    x0 = encode_clips(bundle.codec, clips)
    y = build_condition(bundle.codec, torch.zeros_like(clips), torch.zeros(clips.shape[0], frames))
    positions = torch.tensor([[4.0 * j for j in range(x0.shape[2])]] * len(specs))
    context = torch.cat([bundle.encode_prompt(caption(spec)) for spec in specs])
    return cross_frame_sensitivity(bundle.model, x0, y, context, positions, seed=seed)


# -- main --------------------------------------------------------------------------------


def shape_summary(entries: list, prefix: str = "") -> dict:
    """Means of :func:`drawn_shape` results: videos whose most frequent shape is the prompt's, objects drawn as
    the prompt's shape, objects fitting any shape (``shapes.MIN_IOU``)."""
    return {f"{prefix}shape_adherence": _mean([e["shape_ok"] for e in entries]),
            f"{prefix}shape_objects_ok": _mean([e["objects_ok"] for e in entries]),
            f"{prefix}shape_objects_fitting": _mean([e["objects_fitting"] for e in entries])}


def _mean(values):
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(values)) if values else float("nan")


def sampling_settings(args, defaults: dict) -> tuple[list, list, object, float, str]:
    """The sampling settings of a run: the command line's where given, else the bundle's ``defaults``.

    Returns ``(steps per level, shifts per level, cfg (one number, or one per level),
    the blueprint's cfg, guidance kind)``.
    """
    steps = args.steps or list(defaults["steps"])
    shifts = args.shifts or list(defaults["shifts"])
    cfg = args.cfg if args.cfg is not None else defaults["cfg"]
    if isinstance(cfg, (list, tuple)) and len(cfg) == 1:
        cfg = cfg[0]
    cfg_blueprint = cfg[0] if isinstance(cfg, (list, tuple)) else cfg
    return steps, shifts, cfg, cfg_blueprint, args.guidance or defaults["guidance"]


@torch.no_grad()
def evaluate_blueprints(args) -> dict:
    """Blueprint-only prompt adherence (``--blueprint-only``, see the module docstring).

    Returns ``{"settings", "videos": [{"k", "prompt", "colour_ok", "count", "count_ok"}],
    "summary": {"blueprint_prompt_adherence", "blueprint_colour_adherence", "blueprint_count_adherence"}}``.
    """
    bundle = load_builtin(directory=args.model_dir)
    d = bundle.defaults
    all_steps, shifts, _, cfg, guidance = sampling_settings(args, d)
    steps, shift = all_steps[0], shifts[0]
    plan = default_plan(d, int(bundle.codec.temporal_factor))
    negative = bundle.encode_prompt(d.get("negative_prompt", ""))
    settings = {"steps": steps, "shift": shift, "cfg": cfg, "guidance": guidance, "prompts": args.prompts,
                "scene_offset": args.scene_offset, "blueprint_frames": plan.levels[0].num_frames, "blueprint_fps": plan.levels[0].fps}
    print(f"settings: {json.dumps(settings)}", flush=True)
    videos = []
    for k in range(args.scene_offset, args.scene_offset + args.prompts):
        spec = sample_scene(EVAL_SEED_BASE + k, height=d["height"], width=d["width"])
        prompt = caption(spec)
        blue = run_blueprint(bundle.model, bundle.codec, bundle.encode_prompt(prompt), negative, plan, steps=steps,
                             shift=shift, cfg=cfg, guidance=guidance, seed=k)
        frames = to01(blue.frames)
        adh = adherence(analyse(frames, spec.colour), spec.colour, spec.count)
        coh = video_coherence(frames, spec, plan.levels[0].interval, int(bundle.codec.temporal_factor))
        videos.append({"k": k, "prompt": prompt, **adh, "coherence": {**coh, "count": spec.count},
                       "shape": drawn_shape(frames, spec),
                       "codec_shape": codec_shape(bundle.codec, spec, frames.shape[0], plan.levels[0].interval)})
        if args.save_videos:
            _save(args.save_videos, f"{k:03d}_blueprint", frames, int(round(plan.levels[0].fps)))
        if not (adh["colour_ok"] and adh["count_ok"]):
            print(f"  miss k={k} {prompt!r}: colour {'ok' if adh['colour_ok'] else 'NO'}, count {adh['count']}/{spec.count}",
                  flush=True)
    summary = {
        "blueprint_prompt_adherence": _mean([v["colour_ok"] and v["count_ok"] for v in videos]),
        "blueprint_colour_adherence": _mean([v["colour_ok"] for v in videos]),
        "blueprint_count_adherence": _mean([v["count_ok"] for v in videos]),
        **coherence_summary([v["coherence"] for v in videos], "blueprint_"),
        **shape_summary([v["shape"] for v in videos], "blueprint_"),
        **shape_summary([v["codec_shape"] for v in videos], "codec_"),
        **{f"sensitivity_sigma_{s:g}": r for s, r in dit_sensitivity(bundle, plan.levels[0].num_frames).items()},
    }
    return {"settings": settings, "videos": videos, "summary": summary}


def evaluate(args) -> dict:
    """Run the whole evaluation (see the module docstring) and return the results dict."""
    bundle = load_builtin(directory=args.model_dir)
    d = bundle.defaults
    steps, shifts, cfg, cfg_blueprint, guidance = sampling_settings(args, d)
    height, width = d["height"], d["width"]
    plan = default_plan({**d, "boundary": args.boundary or d["boundary"]}, int(bundle.codec.temporal_factor))
    final = plan.levels[-1]
    fps = int(round(final.fps))
    budget = sum(s * lv.num_chunks for s, lv in zip(steps, plan.levels))
    chunk = final.frames_per_chunk
    ar_chunks = 1 + math.ceil((final.num_frames - chunk) / (chunk - args.ar_overlap))
    ar_steps = max(1, round(budget / ar_chunks))
    negative = bundle.encode_prompt(d.get("negative_prompt", ""))
    anchor_correction = model_default(d) if args.anchor_correction is None else args.anchor_correction
    settings = {"steps": steps, "anchor_correction": anchor_correction, "shifts": shifts, "cfg": cfg, "guidance": guidance, "boundary": plan.boundary,
                "plan": plan.describe(),
                "chunk_steps_budget": budget, "ar_chunks": ar_chunks, "ar_steps_per_chunk": ar_steps,
                "ar_overlap": args.ar_overlap, "prompts": args.prompts}
    print(plan.describe(), flush=True)
    print(f"settings: {json.dumps({k: v for k, v in settings.items() if k != 'plan'})}", flush=True)

    results = {"settings": settings, "codec": codec_quality(bundle.codec, height), "videos": []}
    print(f"codec PSNR: {json.dumps(results['codec'])}", flush=True)

    gt_checks = []
    for k in range(args.scene_offset, args.scene_offset + args.prompts):
        spec = sample_scene(EVAL_SEED_BASE + k, height=height, width=width)
        prompt = caption(spec)
        t0 = time.time()
        positive = bundle.encode_prompt(prompt)
        images, levels = generate(bundle.model, bundle.codec, positive, negative, plan, steps=steps, shifts=shifts,
                                  cfg=cfg, guidance=guidance, seed=k, anchor_correction=anchor_correction,
                                  return_levels=True)
        blue = to01(levels[0].frames)
        mid = to01(levels[1].frames) if len(levels) > 2 else None
        video = images  # [F, H, W, 3]
        ratio_total = plan.frame_intervals[0] // plan.frame_intervals[-1]
        fid = psnr01(video[::ratio_total][: blue.shape[0]], blue)
        fid_mid = psnr01(mid[:: plan.frame_intervals[0] // plan.frame_intervals[1]][: blue.shape[0]], blue) if mid is not None else None
        diffs = mean_frame_diff(video)
        boundary = [c * chunk - 1 for c in range(1, final.num_chunks)]
        inside = [t for t in range(diffs.numel()) if t not in boundary]
        cont = float(diffs[boundary].mean() / diffs[inside].mean())
        cont_region = seam_region_ratio(diffs, boundary)
        det = analyse(video, spec.colour)
        det_blue = analyse(blue, spec.colour)
        adh = adherence(det, spec.colour, spec.count)
        adh_blue = adherence(det_blue, spec.colour, spec.count)
        gt = to01(render(spec, final.num_frames, start_frame=0, interval=1))
        det_gt = analyse(gt, spec.colour)
        gt_checks.append(adherence(det_gt, spec.colour, spec.count))
        static = static_diff(bundle.codec, levels[-1].frames[:, 0], final.num_chunks, chunk)
        entry = {
            "k": k, "prompt": prompt, "seconds": None,
            "blueprint_psnr": fid, "level1_psnr": fid_mid, "continuity_ratio": cont,
            "continuity_ratio_region": cont_region,
            "boundary_diff": float(diffs[boundary].mean()), "inside_diff": float(diffs[inside].mean()),
            "mean_frame_diff": float(diffs.mean()), "static_frame_diff": static,
            "gt_mean_frame_diff": float(mean_frame_diff(gt).mean()),
            "centroid_speed": centroid_speed(det), "gt_centroid_speed": centroid_speed(det_gt),
            "adherence": adh, "blueprint_adherence": adh_blue, **presence(det, fps),
            "shape": drawn_shape(video, spec), "blueprint_shape": drawn_shape(blue, spec),
            "gt_shape": drawn_shape(gt, spec),
            "codec_shape": codec_shape(bundle.codec, spec, plan.levels[0].num_frames, plan.frame_intervals[0]),
            "tm_drift": drift(det, spec.colour, spec.count, fps),
            "coherence": {**video_coherence(video, spec, plan.frame_intervals[-1]), "count": spec.count},
            "blueprint_coherence": {**video_coherence(blue, spec, plan.frame_intervals[0], int(bundle.codec.temporal_factor)),
                                    "count": spec.count},
        }
        if not args.no_ar:
            ar = autoregressive(bundle, positive, negative, total=final.num_frames, chunk=chunk,
                                overlap=args.ar_overlap, steps=ar_steps, shift=shifts[0], cfg=cfg_blueprint,
                                guidance=guidance, seed=k, height=height, width=width)
            ar_video = to01(ar)
            det_ar = analyse(ar_video, spec.colour)
            entry["ar_adherence"] = adherence(det_ar, spec.colour, spec.count)
            entry["ar_drift"] = drift(det_ar, spec.colour, spec.count, fps)
            entry["ar_presence"] = presence(det_ar, fps)
            entry["ar_mean_frame_diff"] = float(mean_frame_diff(ar_video).mean())
            ar_diffs = mean_frame_diff(ar_video)
            seams = [chunk - 1 + i * (chunk - args.ar_overlap) for i in range(ar_chunks - 1)]
            seams = [s for s in seams if s < ar_diffs.numel()]
            ar_inside = [t for t in range(ar_diffs.numel()) if t not in seams]
            entry["ar_continuity_ratio"] = float(ar_diffs[seams].mean() / ar_diffs[ar_inside].mean())
            entry["ar_continuity_ratio_region"] = seam_region_ratio(ar_diffs, seams)
            if args.save_videos:
                _save(args.save_videos, f"{k:03d}_ar", ar_video, fps)
        if args.save_videos:
            _save(args.save_videos, f"{k:03d}_tempomaster", video, fps)
        entry["seconds"] = round(time.time() - t0, 1)
        results["videos"].append(entry)
        print(f"[{k - args.scene_offset + 1}/{args.prompts}] {prompt!r}: blueprint PSNR {fid:.1f} dB, continuity {cont:.2f}, "
              f"colour {'ok' if adh['colour_ok'] else 'NO'}, count {adh['count']}/{spec.count}, "
              f"present {entry['present_to_end']}"
              + (f" | AR count {entry['ar_adherence']['count']}, last-second count "
                 f"{entry['ar_drift']['count_last']}" if not args.no_ar else "")
              + f"  ({entry['seconds']} s)", flush=True)

    v = results["videos"]
    summary = {
        "codec_psnr_db": results["codec"]["25_frames"]["pooled"],
        "codec_psnr_17_db": results["codec"]["17_frames"]["pooled"],
        "blueprint_psnr_db": _mean([e["blueprint_psnr"] for e in v]),
        "blueprint_psnr_min_db": float(np.min([e["blueprint_psnr"] for e in v])),
        "level1_psnr_db": _mean([e["level1_psnr"] for e in v]),
        "continuity_ratio": _mean([e["continuity_ratio"] for e in v]),
        "continuity_ratio_max": float(np.max([e["continuity_ratio"] for e in v])),
        "continuity_ratio_region": _mean([e["continuity_ratio_region"] for e in v]),
        "mean_frame_diff": _mean([e["mean_frame_diff"] for e in v]),
        "static_frame_diff": _mean([e["static_frame_diff"] for e in v]),
        "gt_mean_frame_diff": _mean([e["gt_mean_frame_diff"] for e in v]),
        "centroid_speed": _mean([e["centroid_speed"] for e in v]),
        "gt_centroid_speed": _mean([e["gt_centroid_speed"] for e in v]),
        "present_to_end": _mean([e["present_to_end"] for e in v]),
        "colour_adherence": _mean([e["adherence"]["colour_ok"] for e in v]),
        "count_adherence": _mean([e["adherence"]["count_ok"] for e in v]),
        "prompt_adherence": _mean([e["adherence"]["colour_ok"] and e["adherence"]["count_ok"] for e in v]),
        "blueprint_prompt_adherence": _mean([e["blueprint_adherence"]["colour_ok"] and e["blueprint_adherence"]["count_ok"] for e in v]),
        "detector_on_ground_truth": _mean([g["colour_ok"] and g["count_ok"] for g in gt_checks]),
        "tm_count_consistent": _mean([e["tm_drift"]["count_consistent"] for e in v]),
        "tm_last_second_count_ok": _mean([e["tm_drift"]["last_second_count_ok"] for e in v]),
        "tm_area_ratio": _mean([e["tm_drift"]["area_ratio"] for e in v]),
        "tm_rgb_shift": _mean([e["tm_drift"]["rgb_shift"] for e in v]),
        **coherence_summary([e["coherence"] for e in v]),
        **coherence_summary([e["blueprint_coherence"] for e in v], "blueprint_"),
        **shape_summary([e["shape"] for e in v]),
        **shape_summary([e["blueprint_shape"] for e in v], "blueprint_"),
        **shape_summary([e["gt_shape"] for e in v], "gt_"),
        **shape_summary([e["codec_shape"] for e in v], "codec_"),
        **{f"sensitivity_sigma_{s:g}": r for s, r in dit_sensitivity(bundle, plan.levels[0].num_frames).items()},
    }
    if not args.no_ar:
        summary.update({
            "ar_prompt_adherence": _mean([e["ar_adherence"]["colour_ok"] and e["ar_adherence"]["count_ok"] for e in v]),
            "ar_present_to_end": _mean([e["ar_presence"]["present_to_end"] for e in v]),
            "ar_count_consistent": _mean([e["ar_drift"]["count_consistent"] for e in v]),
            "ar_last_second_count_ok": _mean([e["ar_drift"]["last_second_count_ok"] for e in v]),
            "ar_area_ratio": _mean([e["ar_drift"]["area_ratio"] for e in v]),
            "ar_rgb_shift": _mean([e["ar_drift"]["rgb_shift"] for e in v]),
            "ar_mean_frame_diff": _mean([e["ar_mean_frame_diff"] for e in v]),
            "ar_continuity_ratio": _mean([e["ar_continuity_ratio"] for e in v]),
            "ar_continuity_ratio_region": _mean([e["ar_continuity_ratio_region"] for e in v]),
        })
    results["summary"] = summary
    return results


def _save(directory: str, name: str, frames01: torch.Tensor, fps: int) -> None:
    from tempomaster_core.video_io import write_video

    Path(directory).mkdir(parents=True, exist_ok=True)
    write_video(Path(directory) / f"{name}.mp4", frames01, fps)


def _ints(text):
    return [int(v) for v in text.split(",")]


def _floats(text):
    return [float(v) for v in text.split(",")]


def main(argv=None) -> dict:
    """Command-line entry point; prints a summary table and optionally writes ``--json``."""
    p = argparse.ArgumentParser(description="Measure the quality of the built-in TempoMaster-Tiny model.")
    p.add_argument("--model-dir", default=None, help="bundle directory (default: the shipped one)")
    p.add_argument("--prompts", type=int, default=40, help="held-out scenes / prompts")
    p.add_argument("--scene-offset", type=int, default=0,
                   help="first scene k (seed EVAL_SEED_BASE + k); tune settings on another range (e.g. 5000) "
                        "than the one you report (0)")
    p.add_argument("--quick", action="store_true", help="smoke run: 3 prompts, few steps")
    p.add_argument("--steps", type=_ints, default=None)
    p.add_argument("--shifts", type=_floats, default=None)
    p.add_argument("--cfg", type=_floats, default=None, help="guidance scale, one or one per level")
    p.add_argument("--guidance", choices=("cfg", "apg"), default=None)
    p.add_argument("--boundary", choices=BOUNDARY_MODES, default=None,
                   help="chunk-boundary condition frames (default: the bundle's)")
    p.add_argument("--anchor-correction", action=argparse.BooleanOptionalAction, default=None,
                   help="anchor correction of the refinement levels (default: the bundle's defaults.json)")
    p.add_argument("--ar-overlap", type=int, default=5, help="frames of the previous chunk given to the next (AR)")
    p.add_argument("--no-ar", action="store_true", help="skip the autoregressive baseline")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None, help="write all results here")
    p.add_argument("--save-videos", default=None, help="directory for the generated mp4s")
    p.add_argument("--blueprint-only", action="store_true",
                   help="generate only the blueprints and report their prompt adherence (fast screening)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.prompts = min(args.prompts, 3)
        args.steps = args.steps or [8, 6, 6]
    t0 = time.time()
    results = evaluate_blueprints(args) if args.blueprint_only else evaluate(args)
    results["seconds"] = round(time.time() - t0, 1)
    print("\nsummary (means over held-out prompts):")
    for key, value in results["summary"].items():
        print(f"  {key:32s} {value:.3f}" if isinstance(value, float) else f"  {key:32s} {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=lambda o: o.tolist() if torch.is_tensor(o) else str(o)) + "\n")
    return results


if __name__ == "__main__":
    main()
