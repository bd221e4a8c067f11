"""Pure helpers of the node pack: widget parsing and condition-image preparation."""

import math

import pytest
import torch

from tempomaster_core.images import area_preserving_size, resize_center_crop
from nodes.parsing import (
    INTERVAL_PRESETS,
    PRESET_NAMES,
    parse_chunks,
    parse_intervals,
    parse_positions,
    resolve_positions,
)


def test_presets_are_the_documented_trees():
    assert INTERVAL_PRESETS["6→12→24 fps (4,2,1)"] == (4, 2, 1)
    assert INTERVAL_PRESETS["6→24 fps (4,1)"] == (4, 1)
    assert INTERVAL_PRESETS["12→24 fps (2,1)"] == (2, 1)
    assert PRESET_NAMES[0] == "6→12→24 fps (4,2,1)" and PRESET_NAMES[-1] == "custom"
    # the fps in each label = 24 / interval
    for name, intervals in INTERVAL_PRESETS.items():
        label = name.split(" fps")[0].split("→")
        assert [int(x) for x in label] == [24 // i for i in intervals]


def test_parse_intervals_preset_and_custom():
    assert parse_intervals("6→24 fps (4,1)", "ignored") == (4, 1)
    assert parse_intervals("custom", "8, 4 ,2;1") == (8, 4, 2, 1)
    assert parse_intervals("custom", "3 1") == (3, 1)
    with pytest.raises(ValueError, match="empty"):
        parse_intervals("custom", "  ")
    with pytest.raises(ValueError, match="'x' is not a whole number"):
        parse_intervals("custom", "4,x,1")
    with pytest.raises(ValueError, match="unknown frame-interval preset"):
        parse_intervals("5 fps", "")


def test_parse_chunks():
    assert parse_chunks("auto", 2) is None
    assert parse_chunks("", 2) is None
    assert parse_chunks("2,4", 2) == (2, 4)
    assert parse_chunks("1, 2, 8", 2) == (1, 2, 8)  # with the blueprint's 1
    assert parse_chunks("auto,8", 2) == (None, 8)
    with pytest.raises(ValueError, match="lists 3 values but the plan has 1 refinement"):
        parse_chunks("2,4,8", 1)
    with pytest.raises(ValueError, match="not a whole number"):
        parse_chunks("two", 1)


def test_positions_parse_and_resolve():
    assert parse_positions("0") == [0]
    assert parse_positions("0,-1") == [0, -1]
    assert parse_positions("") == []
    assert resolve_positions([0, -1], 109) == [0, 108]
    assert resolve_positions([0, 36, 72, -1], 109) == [0, 36, 72, 108]
    assert resolve_positions([-109], 109) == [0]
    with pytest.raises(ValueError, match="outside the blueprint's 109 frames"):
        resolve_positions([109], 109)
    with pytest.raises(ValueError, match="outside"):
        resolve_positions([-110], 109)
    with pytest.raises(ValueError, match="frame 0 twice"):
        resolve_positions([0, -109], 109)


@pytest.mark.parametrize(
    "image,area,expected",
    [
        ((1080, 1920), (480, 832), None),  # 16:9 landscape
        ((1920, 1080), (480, 832), None),  # portrait
        ((512, 512), (480, 832), None),  # square
        ((480, 832), (480, 832), (480, 832)),  # same aspect -> unchanged
    ],
)
def test_area_preserving_size_matches_the_reference_formula(image, area, expected):
    h, w = image
    ah, aw = area
    # the reference, written out: ratio = h/w; new_w = sqrt(A/ratio); new_h = sqrt(A*ratio); round to 16
    ratio = h / w
    ref = (int(round(math.sqrt(ah * aw * ratio) / 16) * 16), int(round(math.sqrt(ah * aw / ratio) / 16) * 16))
    got = area_preserving_size(h, w, ah, aw)
    assert got == ref
    if expected is not None:
        assert got == expected


def test_area_preserving_size_hand_worked():
    # 1080x1920, area 480*832 = 399360: h = sqrt(399360*0.5625) = 473.96 -> 480; w = 842.6 -> 848
    assert area_preserving_size(1080, 1920, 480, 832) == (480, 848)
    assert area_preserving_size(1920, 1080, 480, 832) == (848, 480)
    with pytest.raises(ValueError, match="positive"):
        area_preserving_size(0, 10, 480, 832)


def test_resize_center_crop_crops_the_centre_without_resampling():
    # 1 image 6x8, target 4x8: scale = max(8/8, 4/6) = 1 -> no resize, crop rows 1..4
    img = torch.arange(6 * 8 * 3, dtype=torch.float32).reshape(1, 6, 8, 3) / (6 * 8 * 3)
    out = resize_center_crop(img, 4, 8)
    assert out.shape == (1, 3, 4, 8)
    expected = img[0, 1:5].permute(2, 0, 1) * 2 - 1
    torch.testing.assert_close(out[0], expected)


def test_resize_center_crop_upscales_a_constant_and_maps_to_minus_one_one():
    img = torch.full((2, 3, 5, 3), 0.25)
    img[1] = 1.0
    out = resize_center_crop(img, 16, 32)
    assert out.shape == (2, 3, 16, 32)
    torch.testing.assert_close(out[0], torch.full((3, 16, 32), -0.5))
    torch.testing.assert_close(out[1], torch.full((3, 16, 32), 1.0))


def test_resize_center_crop_downscale_keeps_the_average_brightness():
    # thin bright lines every 4th column (mean 0.25), downscaled 4x: with antialias the
    # result keeps the mean 0.25; plain bilinear would sample between the lines and give 0
    img = torch.zeros(1, 64, 64, 3)
    img[:, :, 0::4] = 1.0
    out = resize_center_crop(img, 16, 16)
    assert out.shape == (1, 3, 16, 16)
    mean = ((out + 1) / 2).mean().item()
    assert abs(mean - 0.25) < 0.03
    assert out.min() >= -1 and out.max() <= 1


def test_resize_center_crop_rejects_bad_layout():
    with pytest.raises(ValueError, match=r"IMAGE \[N, H, W, 3\]"):
        resize_center_crop(torch.rand(1, 3, 16, 16), 16, 16)
