"""The shape detector of benchmarks/shapes.py on rendered scenes of every shape and on blobs of none."""

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from shapes import MIN_IOU, ideal_mask, object_shape, shape_adherence  # noqa: E402

from tempomaster_core.tiny.captions import SHAPES  # noqa: E402
from tempomaster_core.tiny.scenes import render, sample_scene  # noqa: E402


def _object_mask(spec, frames=9, interval=4):
    """The objects of a rendered scene as a bool [F, H, W] mask (their brightest channel above the background's)."""
    clip = render(spec, frames, start_frame=0, interval=interval)
    return ((clip.amax(0) + 1) / 2) > 0.45


@pytest.mark.parametrize("shape", SHAPES)
def test_every_rendered_shape_is_recognised_whatever_its_size_count_and_motion(shape):
    for seed in range(4):
        spec = sample_scene(100 + seed, height=64, width=64, shape=shape)
        result = shape_adherence(_object_mask(spec), shape, min_area=12)
        assert result["shape"] == shape and result["shape_ok"], (seed, result)
        assert result["objects_ok"] >= 0.9 and result["mean_iou"] > 0.8


def test_an_ideal_mask_has_the_area_asked_for_at_the_centre_asked_for():
    for shape in SHAPES:
        mask = ideal_mask(shape, 30.3, 20.7, 120, 64, 64)
        ys, xs = torch.nonzero(mask, as_tuple=True)
        assert abs(int(mask.sum()) - 120) <= 6  # whole pixels: the nearest radius, not the exact area
        assert abs(float(xs.float().mean()) - 30.3) < 1.0 and abs(float(ys.float().mean()) - 20.7) < 1.5


def test_a_rounded_square_and_blobs_of_no_shape_are_told_apart():
    square = sample_scene(7, height=64, width=64, count=1, shape="square")
    assert square.objects[0].size * 0.85 > 4  # half its side: more than the disc's radius
    mask = _object_mask(square, frames=1)[0]
    # rounding the square's corners (an opening with a disc: what a blurry decoder draws) makes it a ball
    offsets = torch.arange(-4, 5, dtype=torch.float32)
    disc = ((offsets[:, None] ** 2 + offsets[None, :] ** 2) <= 16).float()[None, None]  # radius 4
    eroded = F.conv2d(mask.float()[None, None], disc, padding=4)[0, 0] >= disc.sum()
    rounded = F.conv2d(eroded.float()[None, None], disc, padding=4)[0, 0] > 0
    assert object_shape(mask)[0] == "square" and object_shape(rounded)[0] == "ball"
    line = torch.zeros(64, 64, dtype=torch.bool)
    line[30:32, 10:50] = True  # a streak fits no shape
    name, iou = object_shape(line)
    assert iou < MIN_IOU
    result = shape_adherence(line[None].expand(3, -1, -1), "ball", min_area=12)
    assert result["shape"] is None and not result["shape_ok"] and result["objects_fitting"] == 0.0
    empty = shape_adherence(torch.zeros(2, 64, 64, dtype=torch.bool), "ball", min_area=12)
    assert empty["shape"] is None and empty["objects_ok"] != empty["objects_ok"]  # NaN without objects
