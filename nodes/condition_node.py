"""MultiMaskCondition: images placed on the blueprint timeline as condition frames.

One node covers image-to-video (position ``0``), first-and-last frame
(``0,-1``), keyframes (any list) and text-to-video (no image). The images are
resized to cover the target size and centre-cropped (``tempomaster_core/images.py``),
then stored in [-1, 1] in a :class:`~nodes.types.TempoCondition`; the
BlueprintSampler places them with the core's multi-mask conditioning (one mask
per pixel frame, 1 = known frame).

Size modes:

- ``plan size`` (default): crop to the plan's width x height.
- ``plan area, first image's aspect``: the reference's behaviour -- keep the
  plan's pixel area, take the aspect ratio of the first image, round each side
  to a multiple of 16 (with the 832x480 default: a 16:9 landscape photo gives
  width 848 x height 480, a 9:16 portrait photo 480 x 848). The condition then carries that size and the
  BlueprintSampler samples the whole tree at it instead of the plan's size
  (it logs the change; the refiners follow because every level carries its plan).
"""

from __future__ import annotations

import logging
from typing import Any, Optional

from tempomaster_core.images import area_preserving_size, check_image_batch, resize_center_crop
from .parsing import parse_positions, resolve_positions
from .display_names import BLUEPRINT_SAMPLER, MULTI_MASK_CONDITION, TREE_SCHEDULER
from .types import TEMPO_CONDITION, TEMPO_PLAN, TempoCondition

log = logging.getLogger("TempoMaster")

SIZE_PLAN = "plan size (resize + centre crop)"
SIZE_FROM_IMAGE = "plan area, first image's aspect (reference)"
SIZE_MODES = (SIZE_PLAN, SIZE_FROM_IMAGE)


def make_condition(plan: Any, positions: str, size_mode: str = SIZE_PLAN, images: Optional[Any] = None) -> TempoCondition:
    """Build the blueprint condition.

    Args:
        plan: the ``TreePlan`` (blueprint length, size, size granularity).
        positions: pixel-frame positions on the blueprint, one per image, e.g. ``"0"``,
            ``"0,-1"``, ``"0,36,72,-1"`` (negative counts from the end).
        size_mode: one of :data:`SIZE_MODES`.
        images: ComfyUI IMAGE ``[N, H, W, 3]`` (or one ``[H, W, 3]``) float in [0, 1], or
            ``None`` for text-to-video. Checked before any resize or clamp
            (``tempomaster_core.images.check_image_batch``): ``uint8`` 0..255 is converted
            with ``x / 255`` and a warning; float values above 1 (a 0..255 float image),
            negative values, NaN/inf and empty images are refused.

    Returns:
        a :class:`TempoCondition`; empty (text-to-video) when ``images`` is ``None``.

    Raises:
        ValueError: unknown size mode; positions unparsable, out of range or
            repeated; number of positions != number of images; images out of range,
            non-finite, of another dtype or empty (``InputError``).
    """
    if size_mode not in SIZE_MODES:
        raise ValueError(f"unknown size mode {size_mode!r}; choose one of {list(SIZE_MODES)}")
    frames = plan.blueprint_frames
    height, width = plan.height, plan.width
    if images is None:
        if parse_positions(positions):
            log.info("TempoMaster: no image connected to %s; positions ignored (text-to-video)", MULTI_MASK_CONDITION)
        return TempoCondition({}, height, width, frames, False)

    if getattr(images, "ndim", None) == 3:
        images = images.unsqueeze(0)
    images = check_image_batch(images, f"{MULTI_MASK_CONDITION} images")  # before any resize/clamp
    resolved = resolve_positions(parse_positions(positions), frames)
    count = images.shape[0]
    if len(resolved) != count:
        raise ValueError(
            f"{count} image(s) but {len(resolved)} position(s) ({positions!r}); give one position per image, "
            "in batch order (e.g. '0' for one image, '0,-1' for first and last frame; batch several images "
            "with the Batch Images node)"
        )
    from_image = size_mode == SIZE_FROM_IMAGE
    if from_image:
        multiple = getattr(plan, "size_multiple", 16)
        height, width = area_preserving_size(images.shape[1], images.shape[2], plan.height, plan.width, multiple)
        if (height, width) != (plan.height, plan.width):
            log.info(
                "TempoMaster: condition size %dx%d (plan area, first image's aspect) replaces the plan's %dx%d",
                width, height, plan.width, plan.height,
            )
    pixels = resize_center_crop(images, height, width)
    return TempoCondition({index: pixels[i] for i, index in enumerate(resolved)}, height, width, frames, from_image)


class MultiMaskCondition:
    """ComfyUI node: optional IMAGE batch + positions -> ``TEMPO_CONDITION`` (see module doc)."""

    CATEGORY = "TempoMaster"
    FUNCTION = "condition"
    RETURN_TYPES = (TEMPO_CONDITION,)
    RETURN_NAMES = ("condition",)
    OUTPUT_TOOLTIPS = (f"Condition frames for the {BLUEPRINT_SAMPLER} (empty = text-to-video).",)
    DESCRIPTION = (
        "Places images on the blueprint timeline as known frames: '0' = image-to-video, '0,-1' = first and "
        "last frame, any list = keyframes. Without an image the video is generated from text only."
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "plan": (TEMPO_PLAN, {
                    "tooltip": f"The tree from the {TREE_SCHEDULER}: gives the blueprint length and the target size.",
                }),
                "positions": ("STRING", {
                    "default": "0", "multiline": False,
                    "tooltip": "Blueprint pixel frame of each image, in batch order: '0' first frame, '0,-1' "
                               "first and last, '0,36,72,-1' keyframes. Negative numbers count from the end.",
                }),
                "size_mode": (list(SIZE_MODES), {
                    "default": SIZE_PLAN,
                    "tooltip": "plan size: resize to cover the plan's width x height and crop the centre. "
                               "plan area, first image's aspect: like the reference, keep the plan's pixel area "
                               "but use the first image's aspect ratio (sides rounded to 16); the sampler then "
                               "generates at that size.",
                }),
            },
            "optional": {
                "images": ("IMAGE", {
                    "tooltip": "Condition image(s), one per position (batch them with Batch Images). Leave "
                               "unconnected for text-to-video.",
                }),
            },
        }

    def condition(self, plan, positions: str, size_mode: str = SIZE_PLAN, images=None):
        """Return ``(condition,)``; see :func:`make_condition`."""
        return (make_condition(plan, positions, size_mode, images),)
