"""The temporal-coherence measures of benchmarks/coherence.py on rendered scenes with known motion."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from coherence import coherence, frame_diff_ratio, frame_objects, largest_step, pop_events  # noqa: E402

from tempomaster_core.tiny.scenes import render, sample_scene  # noqa: E402


def _frames01(clip):
    return ((clip.permute(1, 2, 3, 0) + 1) / 2).clamp(0, 1)


def _red_mask(frames):
    return (frames[..., 0] > 0.5) & (frames[..., 1] < 0.4) & (frames[..., 2] < 0.4)


def _single_red_scene():
    return sample_scene(11, height=64, width=64, count=1, colour="red", shape="ball", motion="right")


def test_ground_truth_motion_is_coherent():
    spec = _single_red_scene()
    frames = _frames01(render(spec, 25, 0, 1))
    tracks = frame_objects(_red_mask(frames), 12)
    assert all(len(t) == 1 for t in tracks)
    result = coherence(frames, _red_mask(frames), tracks, 1, 12)
    assert result["step_ok"] and result["pops"] == 0 and result["frame_count_ok"] == 1.0
    assert result["largest_step"] < 3.0  # at most 1.4 px per frame, plus rasterisation


def test_teleporting_object_is_caught():
    """Frames of the same scene in shuffled time order: the object jumps across the frame."""
    spec = _single_red_scene()
    frames = _frames01(render(spec, 25, 0, 1))
    gt_tracks = frame_objects(_red_mask(frames), 12)
    jumbled = _frames01(render(spec, 25, 0, 1) [:, torch.tensor([0, 24, 3, 20, 6, 17] + list(range(6, 25)))][:, :25])
    result = coherence(jumbled, _red_mask(jumbled), gt_tracks, 1, 12)
    assert result["largest_step"] > 15 and not result["step_ok"]
    assert result["pops"] > 0
    assert result["frame_diff_ratio"] > 3


def test_pop_events_ignore_objects_at_the_edge():
    blank = torch.zeros(2, 16, 16, dtype=torch.bool)
    centre = blank.clone()
    centre[1, 6:10, 6:10] = True
    edge = blank.clone()
    edge[1, 0:4, 6:10] = True
    assert pop_events(frame_objects(centre, 4), radius=3) == 1
    assert pop_events(frame_objects(edge, 4), radius=3) == 0
    assert largest_step(frame_objects(centre, 4)) != largest_step(frame_objects(centre, 4))  # nan: one frame only


def test_frame_diff_ratio_of_even_motion_is_near_one():
    spec = _single_red_scene()
    assert frame_diff_ratio(_frames01(render(spec, 25, 0, 1))) < 1.5
    assert frame_diff_ratio(torch.zeros(4, 8, 8, 3)) == pytest.approx(float("inf"))
