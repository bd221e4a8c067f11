"""Temporal coherence of generated videos: object tracks, jumps, pop-ins and the DiT's use of time.

Two kinds of measurement, used by ``benchmarks/eval_tiny.py`` and the model card:

* **Video measures** on frames (``[F, H, W, 3]`` in [0, 1]) and the prompt's colour: per-frame
  objects (connected components of that colour, centroid and area), the largest frame-to-frame
  step of an object (each object to the nearest object of the previous frame), objects that
  appear or vanish away from the frame edge, the per-frame count, and the largest frame-to-frame
  mean absolute difference over the median one. The same measures run on the ground-truth
  render of the scene, so a video is judged against the motion it should have.
* **Cross-frame sensitivity** of a DiT: how much its clean-latent estimate
  ``x0 = x_sigma - sigma * v`` of the *other* latent frames moves when one latent frame's noisy
  input gets unit Gaussian noise, relative to how much that frame's own estimate moves
  (blueprint-shaped ground-truth clips at interval 4, text-to-video condition). A DiT that
  denoises each latent frame alone scores near 0; one that uses the rest of the clip scores high.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from tempomaster_core.noise_prior import correlate_frames, model_frame_correlation

EDGE_MARGIN = 2
"""An object whose bounding box comes within this many pixels of the frame border touches the edge
(it may legitimately enter or leave the frame there)."""


@dataclass(frozen=True)
class FrameObject:
    """One detected object of a frame: centroid ``(x, y)`` in pixels, ``area`` in pixels, and whether
    its bounding box touches the frame edge (within :data:`EDGE_MARGIN`)."""

    x: float
    y: float
    area: int
    at_edge: bool


def label_components(mask: torch.Tensor) -> torch.Tensor:
    """8-connected component labels of a boolean ``[F, H, W]`` mask.

    Returns:
        float32 ``[F, H, W]``: 0 outside the mask, one positive id per component (ids are not
        consecutive). Label propagation: each pixel keeps the largest id of its 3x3 neighbourhood
        inside the mask until nothing changes.
    """
    f, h, w = mask.shape
    ids = torch.arange(1, h * w + 1, dtype=torch.float32).view(1, h, w).expand(f, h, w).clone()
    ids = torch.where(mask, ids, torch.zeros_like(ids))
    while True:
        grown = F.max_pool2d(ids[:, None], 3, stride=1, padding=1)[:, 0]
        grown = torch.where(mask, grown, torch.zeros_like(grown))
        if torch.equal(grown, ids):
            return ids
        ids = grown


def frame_components(mask: torch.Tensor, min_area: int) -> list[list[torch.Tensor]]:
    """Every frame's components of a boolean ``[F, H, W]`` mask with at least ``min_area`` pixels, each as a
    boolean ``[H, W]`` mask (in the order of their labels, :func:`label_components`)."""
    out = []
    for frame in label_components(mask):
        components = [frame == value for value in torch.unique(frame[frame > 0]).tolist()]
        out.append([c for c in components if int(c.sum()) >= min_area])
    return out


def frame_objects(mask: torch.Tensor, min_area: int) -> list[list[FrameObject]]:
    """Objects of every frame of a boolean ``[F, H, W]`` mask: components of at least ``min_area``
    pixels, largest first."""
    h, w = mask.shape[1:]
    out = []
    for components in frame_components(mask, min_area):
        objects = []
        for component in components:
            ys, xs = torch.nonzero(component, as_tuple=True)
            at_edge = bool(xs.min() < EDGE_MARGIN or ys.min() < EDGE_MARGIN
                           or xs.max() >= w - EDGE_MARGIN or ys.max() >= h - EDGE_MARGIN)
            objects.append(FrameObject(float(xs.float().mean()), float(ys.float().mean()), int(ys.numel()), at_edge))
        out.append(sorted(objects, key=lambda o: -o.area))
    return out


def _nearest(obj: FrameObject, others: list[FrameObject]) -> float:
    return min((((obj.x - o.x) ** 2 + (obj.y - o.y) ** 2) ** 0.5 for o in others), default=float("inf"))


def _object_steps(tracks: list[list[FrameObject]]) -> list[tuple[int, float]]:
    """``(f, step)`` for every object of frame ``f + 1``: its distance (pixels) to the nearest object of
    frame ``f``, over consecutive frames that both have objects."""
    return [(f, _nearest(o, prev)) for f, (prev, cur) in enumerate(zip(tracks[:-1], tracks[1:])) if prev and cur
            for o in cur]


def largest_step(tracks: list[list[FrameObject]]) -> float:
    """Largest distance (pixels) from an object to the nearest object of the previous frame, over
    consecutive frames that both have objects (``nan`` when no such pair exists). A video whose
    objects move smoothly has a step close to the ground truth's; one that teleports has a large one."""
    steps = [step for _, step in _object_steps(tracks)]
    return float(max(steps)) if steps else float("nan")


def latent_frame_steps(tracks: list[list[FrameObject]], frames_per_latent: int) -> tuple[float, float]:
    """Mean object step (pixels) between consecutive frames *inside* a latent frame and *across* a
    latent-frame boundary, for a clip in the codec's temporal layout (frame 0 is latent frame 0 alone,
    then ``frames_per_latent`` frames per latent frame, so the pair ``(f, f+1)`` crosses a boundary when
    ``f % frames_per_latent == 0``).

    This is the signature of the issue-16 defect: a DiT that denoises latent frames independently
    keeps an object nearly still inside a latent frame and moves it far across a boundary (the
    shipped model before session 14: 2.2 vs 14.0 px on the blueprint, ground truth 4.3 vs 4.2 px);
    a coherent video has both close to the ground truth's. Each step is an object's distance to the
    nearest object of the previous frame; pairs where either frame has no object are skipped, and a
    kind with no pair gives ``nan``.
    """
    if frames_per_latent < 1:
        raise ValueError(f"frames_per_latent must be >= 1, got {frames_per_latent}")
    steps = _object_steps(tracks)
    inside = [step for f, step in steps if f % frames_per_latent]
    across = [step for f, step in steps if not f % frames_per_latent]
    return (float(np.mean(inside)) if inside else float("nan"), float(np.mean(across)) if across else float("nan"))


def pop_events(tracks: list[list[FrameObject]], radius: float) -> int:
    """Objects that appear or vanish away from the frame edge.

    An object of frame ``f+1`` appears when no object of frame ``f`` lies within ``radius`` pixels
    and it does not touch the edge; it vanishes when an object of frame ``f`` has no object of frame
    ``f+1`` within ``radius`` and does not touch the edge. A frame without any object counts
    every object of its neighbour (a whole-frame disappearance is a pop too).
    """
    events = 0
    for prev, cur in zip(tracks[:-1], tracks[1:]):
        events += sum(1 for o in cur if not o.at_edge and _nearest(o, prev) > radius)
        events += sum(1 for o in prev if not o.at_edge and _nearest(o, cur) > radius)
    return events


def empty_frames(tracks: list[list[FrameObject]], gt_tracks: list[list[FrameObject]]) -> int:
    """Frames in which the video shows no object while the ground-truth render of the same frame shows
    one. :func:`pop_events` cannot see these when no neighbouring frame has an object either: a video
    that never draws its object, or draws it only at the edge, has no pop events."""
    if len(tracks) != len(gt_tracks):
        raise ValueError(f"{len(tracks)} video frames against {len(gt_tracks)} ground-truth frames")
    return sum(1 for t, g in zip(tracks, gt_tracks) if g and not t)


def progress_along(mask: torch.Tensor, direction: tuple[float, float], frames: int, window: int = 1) -> float:
    """How far (pixels) the pixels of ``mask`` (boolean ``[F, H, W]``) move along ``direction`` (a unit
    ``(x, y)`` vector in image coordinates, y down) from the first to the ``frames``-th frame: the
    centroid of the last ``window`` of those frames minus that of the first ``window``, projected on
    ``direction``. ``nan`` when either window has no pixel.

    Raises:
        ValueError: ``frames`` not in ``[2 * window, F]``, or ``window < 1``.
    """
    if window < 1 or not 2 * window <= frames <= mask.shape[0]:
        raise ValueError(f"frames {frames} and window {window} do not fit a {mask.shape[0]}-frame video")

    def centroid(part: torch.Tensor) -> Optional[torch.Tensor]:
        ys, xs = torch.nonzero(part, as_tuple=True)[1:]
        return torch.stack([xs.float().mean(), ys.float().mean()]) if xs.numel() else None

    start, end = centroid(mask[:window]), centroid(mask[frames - window:frames])
    if start is None or end is None:
        return float("nan")
    return float(((end - start) * torch.tensor(direction, dtype=torch.float32)).sum())


def frame_diff_ratio(frames: torch.Tensor) -> float:
    """Largest frame-to-frame mean absolute difference over the median one (``[F, H, W, 3]`` in [0, 1]);
    1 for perfectly even motion, large when the video jumps between some frames."""
    diffs = (frames[1:] - frames[:-1]).abs().flatten(1).mean(1)
    median = float(diffs.median())
    return float(diffs.max()) / median if median > 0 else float("inf")


def coherence(frames: torch.Tensor, colour_mask: torch.Tensor, gt_tracks: list[list[FrameObject]], count: int,
              min_area: int, frames_per_latent: int | None = None) -> dict:
    """All video measures of one video against its ground-truth tracks.

    Args:
        frames: ``[F, H, W, 3]`` in [0, 1].
        colour_mask: boolean ``[F, H, W]``, pixels of the prompt's colour.
        gt_tracks: :func:`frame_objects` of the ground-truth render (same frames).
        count: the prompt's object count.
        min_area: smallest component counted as an object (pixels).
        frames_per_latent: when the frames are one clip in the codec's temporal layout (a
            blueprint), its pixel frames per latent frame: adds :func:`latent_frame_steps` of the video
            and of the ground truth.

    Returns:
        ``{"largest_step", "gt_largest_step", "step_ok" (largest step <= 2 * ground truth's + 2 px),
        "pops", "gt_pops", "empty_frames" (:func:`empty_frames`), "pop_free" (no pop event and no
        empty frame: the issue-16 criterion "no object appears or vanishes", which a video without
        any object must not pass), "frame_count_ok" (share of frames with the prompt's count),
        "frame_diff_ratio"}``, plus ``"step_inside_latent"``, ``"step_across_latent"``,
        ``"gt_step_inside_latent"``, ``"gt_step_across_latent"`` with ``frames_per_latent``.
    """
    tracks = frame_objects(colour_mask, min_area)
    step, gt_step = largest_step(tracks), largest_step(gt_tracks)
    tolerance = 2 * gt_step + 2
    pops, empty = pop_events(tracks, tolerance), empty_frames(tracks, gt_tracks)
    result = {
        "largest_step": step, "gt_largest_step": gt_step, "step_ok": bool(step <= tolerance),
        "pops": pops, "gt_pops": pop_events(gt_tracks, tolerance), "empty_frames": empty,
        "pop_free": pops == 0 and empty == 0,
        "frame_count_ok": float(np.mean([len(t) == count for t in tracks])),
        "frame_diff_ratio": frame_diff_ratio(frames),
    }
    if frames_per_latent:
        result["step_inside_latent"], result["step_across_latent"] = latent_frame_steps(tracks, frames_per_latent)
        result["gt_step_inside_latent"], result["gt_step_across_latent"] = latent_frame_steps(gt_tracks, frames_per_latent)
    return result


@torch.no_grad()
def cross_frame_sensitivity(model, x0: torch.Tensor, y: torch.Tensor, context: torch.Tensor,
                            positions: torch.Tensor, sigmas=(0.9, 0.7, 0.5), seed: int = 0) -> dict:
    """Cross-frame sensitivity of a DiT's clean-latent estimate (see the module docstring).

    Args:
        model: the DiT (``model(x, timestep, context, y, positions) -> v``).
        x0: ``[B, C, T, h, w]`` normalised clean latents of ground-truth clips.
        y: ``[B, tf + C, T, h, w]`` their condition (all-zero mask for text-to-video).
        context: ``[B, L, text_dim]`` text embeddings of their captions.
        positions: ``[B, T]`` RoPE temporal positions.
        sigmas: noise levels probed.
        seed: noise seed (the base noise is drawn from the model's source prior,
            :func:`tempomaster_core.noise_prior.correlate_frames`; each bump is i.i.d.).

    Returns:
        ``{sigma: ratio}``: mean over clips and perturbed frames of (mean absolute change of the
        other frames' x0 estimate) / (mean absolute change of the perturbed frame's).
    """
    g = torch.Generator().manual_seed(seed)
    b, _, frames = x0.shape[:3]
    out = {}
    for sigma in sigmas:
        noise = correlate_frames(torch.randn(x0.shape, generator=g), model_frame_correlation(model))
        xt = (1 - sigma) * x0 + sigma * noise  # the model's own source prior
        timestep = torch.full((b,), sigma * 1000.0)

        def estimate(x):
            return x - sigma * model(x, timestep, context, y, positions).float()

        base = estimate(xt)
        ratios = []
        for k in range(frames):
            bump = torch.zeros_like(xt)
            bump[:, :, k] = torch.randn(bump[:, :, k].shape, generator=g)
            change = (estimate(xt + bump) - base).abs().mean(dim=(1, 3, 4))  # [B, T]
            others = torch.cat([change[:, :k], change[:, k + 1:]], 1).mean(1)
            ratios.append(float((others / change[:, k]).mean()))
        out[float(sigma)] = float(np.mean(ratios))
    return out


__all__ = ["EDGE_MARGIN", "FrameObject", "coherence", "cross_frame_sensitivity", "frame_diff_ratio", "frame_objects",
           "label_components", "largest_step", "latent_frame_steps", "pop_events"]
