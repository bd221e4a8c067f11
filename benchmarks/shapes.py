"""Shape detector of the built-in model's evaluation: which of the caption grammar's shapes each object is drawn as.

For every object (8-connected component of the prompt's colour of at least ``min_area`` pixels, as
:func:`coherence.frame_components` finds them), the ideal ball, square and triangle
(:func:`tempomaster_core.tiny.scenes.shape_coverage`, what the scenes are rendered with) are placed at the
object's centroid with the object's area (the radius found by bisection so that the ideal shape's coverage,
thresholded at 0.5, has that many pixels), and the object is the shape whose mask overlaps it best
(intersection over union). A blob that is none of them still gets the best match; :data:`MIN_IOU` says how
well the best one must fit for the object to count as that shape at all.

Frames: float ``[F, H, W, 3]`` in [0, 1]; masks: bool ``[F, H, W]``.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Optional

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tempomaster_core.tiny.captions import SHAPES  # noqa: E402
from tempomaster_core.tiny.scenes import shape_coverage  # noqa: E402

from coherence import frame_components  # noqa: E402

MIN_IOU = 0.6
"""Intersection over union the best-fitting ideal shape must reach for an object to count as that shape (the
rendered ground truth: 0.8-1.0; a shape halfway between two, such as a rounded square: about 0.7)."""


def ideal_mask(shape: str, x: float, y: float, area: int, height: int, width: int) -> torch.Tensor:
    """bool ``[H, W]``: ``shape`` centred at pixel ``(x, y)`` with the radius whose mask (coverage >= 0.5) has
    ``area`` pixels, as near as a bisection over the radius gets (16 halvings between 0.5 and the frame size)."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                            indexing="ij")
    dx, dy = xs - x, ys - y
    low, high = 0.5, float(max(height, width))
    for _ in range(16):
        mid = 0.5 * (low + high)
        if int((shape_coverage(shape, dx, dy, mid) >= 0.5).sum()) < area:
            low = mid
        else:
            high = mid
    return shape_coverage(shape, dx, dy, high) >= 0.5


def object_shape(mask: torch.Tensor) -> tuple[str, float]:
    """``(best shape of SHAPES, its intersection over union)`` of one object's bool ``[H, W]`` mask."""
    ys, xs = torch.nonzero(mask, as_tuple=True)
    x, y, area = float(xs.float().mean()), float(ys.float().mean()), int(ys.numel())
    best, best_iou = SHAPES[0], -1.0
    for shape in SHAPES:
        ideal = ideal_mask(shape, x, y, area, *mask.shape)
        iou = float((ideal & mask).sum()) / float((ideal | mask).sum())
        if iou > best_iou:
            best, best_iou = shape, iou
    return best, best_iou


def frame_shapes(mask: torch.Tensor, min_area: int) -> list[list[tuple[str, float]]]:
    """``object_shape`` of every object (component of at least ``min_area`` pixels) of every frame of a bool
    ``[F, H, W]`` mask."""
    return [[object_shape(component) for component in components] for components in frame_components(mask, min_area)]


def shape_adherence(mask: torch.Tensor, shape: str, min_area: int, every: int = 1) -> dict:
    """How a video draws the prompt's ``shape``, from the prompt colour's bool ``[F, H, W]`` mask (every
    ``every``-th frame is read: the detector costs a few ms per object).

    Returns ``{"shape": the most frequent fitting shape over all objects (None: no object fits any shape by
    MIN_IOU), "shape_ok": that == shape, "objects_ok": share of objects drawn as ``shape`` (fitting by
    MIN_IOU), "objects_fitting": share of objects fitting some shape, "mean_iou": mean best IoU}``
    (the shares NaN without objects).
    """
    found = [o for frame in frame_shapes(mask[::every], min_area) for o in frame]
    fitting = [name for name, iou in found if iou >= MIN_IOU]
    top: Optional[str] = Counter(fitting).most_common(1)[0][0] if fitting else None
    n = len(found)
    nan = float("nan")
    return {
        "shape": top, "shape_ok": top == shape,
        "objects_ok": sum(name == shape for name in fitting) / n if n else nan,
        "objects_fitting": len(fitting) / n if n else nan,
        "mean_iou": sum(iou for _, iou in found) / n if n else nan,
    }
