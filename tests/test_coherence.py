"""The temporal-coherence measures of benchmarks/coherence.py on rendered scenes with known motion."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from coherence import (coherence, empty_frames, frame_diff_ratio, frame_objects, largest_step,  # noqa: E402
                       latent_frame_steps, pop_events, progress_along)

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


def _square_video(xs, y=30, side=8, size=64):
    """Red squares on black, one per frame, left edge at ``xs[f]``: ``[F, size, size, 3]`` in [0, 1]."""
    frames = torch.zeros(len(xs), size, size, 3)
    for f, x in enumerate(xs):
        frames[f, y:y + side, x:x + side, 0] = 1.0
    return frames


def test_teleporting_object_is_caught():
    """A square that moves 1 px per frame for the ground truth, but jumps 30 px every 4 frames
    and stands still in between (the shipped model's failure) in the video."""
    smooth = _square_video(list(range(10, 26)))
    jumpy = _square_video([10] * 4 + [40] * 4 + [12] * 4 + [42] * 4)
    gt_tracks = frame_objects(_red_mask(smooth), 12)
    assert coherence(smooth, _red_mask(smooth), gt_tracks, 1, 12)["step_ok"]
    result = coherence(jumpy, _red_mask(jumpy), gt_tracks, 1, 12)
    assert result["largest_step"] == pytest.approx(30.0) and not result["step_ok"]
    assert result["pops"] == 6  # three jumps, each one object vanishing and one appearing
    assert result["frame_diff_ratio"] == float("inf")  # median frame difference 0: standing still


def test_a_video_that_never_draws_its_object_is_not_pop_free():
    """No pop event can happen without objects, so the pop-free criterion also needs every frame the
    ground truth shows an object in to show one (the failure a 1200-step probe DiT showed: blank
    middle frames and objects only at the ends)."""
    smooth = _square_video(list(range(10, 26)))
    gt_tracks = frame_objects(_red_mask(smooth), 12)
    blank = torch.zeros_like(smooth)
    result = coherence(blank, _red_mask(blank), gt_tracks, 1, 12)
    assert result["pops"] == 0 and result["empty_frames"] == 16 and not result["pop_free"]
    assert coherence(smooth, _red_mask(smooth), gt_tracks, 1, 12)["pop_free"]
    late = smooth.clone()
    late[:6] = 0  # the square only from frame 6 on: one pop when it appears mid-frame, 6 empty frames
    result = coherence(late, _red_mask(late), gt_tracks, 1, 12)
    assert (result["pops"], result["empty_frames"], result["pop_free"]) == (1, 6, False)
    with pytest.raises(ValueError, match="ground-truth frames"):
        empty_frames(gt_tracks[:3], gt_tracks)


def test_progress_along_a_direction_is_the_centroid_shift_between_the_first_and_last_windows():
    right = _red_mask(_square_video(list(range(10, 26))))  # 1 px per frame to the right
    assert progress_along(right, (1.0, 0.0), 16, window=2) == pytest.approx(14.0)  # 24.5 - 10.5 (+3.5 each)
    assert progress_along(right, (-1.0, 0.0), 16, window=2) == pytest.approx(-14.0)
    assert progress_along(right, (0.0, 1.0), 8) == pytest.approx(0.0)
    blank = torch.zeros_like(right)
    assert progress_along(blank, (1.0, 0.0), 16) != progress_along(blank, (1.0, 0.0), 16)  # nan
    with pytest.raises(ValueError, match="do not fit"):
        progress_along(right, (1.0, 0.0), 17)


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


def test_latent_frame_steps_separate_the_steps_at_latent_boundaries():
    """Codec layout: frame 0 alone, then 4 frames per latent frame. An object that stands still inside
    each latent frame and jumps between them (the issue-16 defect) has steps only across boundaries;
    even motion has the same step inside and across."""
    jumpy = _square_video([10] + [20] * 4 + [40] * 4)
    inside, across = latent_frame_steps(frame_objects(_red_mask(jumpy), 12), 4)
    assert inside == pytest.approx(0.0) and across == pytest.approx(15.0)
    even = _square_video(list(range(10, 19)))
    inside, across = latent_frame_steps(frame_objects(_red_mask(even), 12), 4)
    assert inside == pytest.approx(1.0) and across == pytest.approx(1.0)
    result = coherence(jumpy, _red_mask(jumpy), frame_objects(_red_mask(even), 12), 1, 12, frames_per_latent=4)
    assert result["step_across_latent"] == pytest.approx(15.0) and result["gt_step_across_latent"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="frames_per_latent"):
        latent_frame_steps([], 0)


def test_ground_truth_moves_the_caption_way_and_a_reversed_video_does_not():
    """The claim behind eval_tiny.CAPTION_MOTION_SECONDS: in the first 2 s every one-object scene of a
    directional motion moves its caption's way (no bounce reverses it yet); the same clip played backwards
    moves the other way and fails."""
    from eval_tiny import CAPTION_DIRECTIONS, COLOUR_NAMES, caption_motion, classify_pixels, to01

    for motion in CAPTION_DIRECTIONS:
        for seed in range(12):
            spec = sample_scene(500 + seed, height=64, width=64, count=1, motion=motion)
            mask = classify_pixels(to01(render(spec, 25, start_frame=0, interval=4))) == COLOUR_NAMES.index(spec.colour)
            forward = caption_motion(mask, mask, motion, interval=4)
            assert forward["ok"] and forward["gt_progress"] > 2.0, (motion, seed, forward)
            backward = caption_motion(mask.flip(0), mask, motion, interval=4)
            assert not backward["ok"], (motion, seed, backward)
    assert caption_motion(mask, mask, "diagonal", interval=4) is None
