"""Level plan: numbers, anchors, masks and RoPE positions against the reference rule."""

import json

import pytest
import torch

from tempomaster_core.plan import (
    BOUNDARY_ALIASES,
    BOUNDARY_MODES,
    PlanError,
    TreePlan,
    chunk_length,
    reference_chunk_length,
    round_clip_length,
)


def transcribed_reference(prev_frames: int, ratio: int, n_chunks: int, per_chunk: int):
    """The reference's condition rule (its ``preparer_condition_video``) spelled out loop by loop on frame ids.

    Returns (source ids [chunks, P] with -1 where no condition, masks [chunks, P]).
    """
    new_n = prev_frames * ratio
    src = torch.full((new_n,), -1, dtype=torch.long)
    mask = torch.zeros(new_n)
    for c in range(n_chunks):
        src[c * per_chunk] = c * per_chunk // ratio
        mask[c * per_chunk] = 1
        if c < n_chunks - 1:
            src[(c + 1) * per_chunk - 1] = ((c + 1) * per_chunk - 1) // ratio
            mask[(c + 1) * per_chunk - 1] = 1
        else:
            end = min(n_chunks * per_chunk - 1, new_n - 1)
            src[end] = end // ratio
            mask[end] = 1
    for k in range(prev_frames):
        src[k * ratio] = k
        mask[k * ratio] = 1
    chunk_src, chunk_mask = [], []
    for c in range(n_chunks):
        s = torch.full((per_chunk,), -1, dtype=torch.long)
        m = torch.zeros(per_chunk)
        left = min(new_n - c * per_chunk, per_chunk)
        s[:left] = src[c * per_chunk : c * per_chunk + left]
        m[:left] = mask[c * per_chunk : c * per_chunk + left]
        chunk_src.append(s)
        chunk_mask.append(m)
    return torch.stack(chunk_src), torch.stack(chunk_mask)


def assert_level_matches_reference(level, prev_frames):
    src, mask = transcribed_reference(prev_frames, level.ratio, level.num_chunks, level.frames_per_chunk)
    assert torch.equal(level.masks(), mask)
    for c in range(level.num_chunks):
        expected = [(i, int(src[c, i])) for i in range(level.frames_per_chunk) if mask[c, i] == 1]
        assert level.chunk_conditions(c) == expected


def test_paper_plan_109_frames_4_2_1():
    plan = TreePlan(109, (4, 2, 1), height=480, width=832)
    assert [lv.num_frames for lv in plan.levels] == [109, 218, 436]
    assert [lv.num_chunks for lv in plan.levels] == [1, 2, 4]
    assert [lv.frames_per_chunk for lv in plan.levels] == [109, 109, 109]
    assert [lv.latent_frames_per_chunk for lv in plan.levels] == [28, 28, 28]
    assert [lv.fps for lv in plan.levels] == [6.0, 12.0, 24.0]
    assert [lv.ratio for lv in plan.levels] == [1, 2, 2]
    assert [lv.padding_frames for lv in plan.levels] == [0, 0, 0]
    assert plan.chunks == (2, 4)
    # Reference chunk default max(4 // interval, 1).
    assert plan.chunks == (max(4 // 2, 1), max(4 // 1, 1))


def test_paper_plan_anchors_and_masks_match_reference_transcription():
    plan = TreePlan(109, (4, 2, 1), height=480, width=832)
    assert_level_matches_reference(plan.levels[1], 109)
    assert_level_matches_reference(plan.levels[2], 218)
    # Spot checks worked by hand: chunk 1 of level 1 starts at pixel 109 -> frame 54,
    # pixel 110 is anchor of frame 55; its last pixel 217 -> frame 108 (repeats pixel 216's frame).
    conds = plan.levels[1].chunk_conditions(1)
    assert conds[:2] == [(0, 54), (1, 55)]
    assert conds[-2:] == [(107, 108), (108, 108)]
    assert len(plan.levels[1].chunk_conditions(0)) == 55  # 55 anchors (0,2,..,108), 108 is also the end


def test_paper_plan_positions():
    plan = TreePlan(109, (4, 2, 1), height=480, width=832)
    pos0 = plan.levels[0].temporal_positions
    assert pos0.shape == (1, 28) and pos0.dtype == torch.float32
    assert pos0[0].tolist() == [4.0 * j for j in range(28)]
    pos1 = plan.levels[1].temporal_positions
    assert pos1.shape == (2, 28)
    assert pos1[1].tolist() == [2.0 * (28 + j) for j in range(28)]
    pos2 = plan.levels[2].temporal_positions
    assert pos2.shape == (4, 28)
    assert pos2[3].tolist() == [float(84 + j) for j in range(28)]


def test_hand_worked_2_1_plan():
    # 9 frames at interval 2 -> 18 frames at interval 1 in 2 chunks of (18//2 + 2)//4*4 + 1 = 9.
    plan = TreePlan(9, (2, 1), (2,), height=16, width=16)
    level = plan.levels[1]
    assert (level.num_frames, level.num_chunks, level.frames_per_chunk, level.latent_frames_per_chunk) == (18, 2, 9, 3)
    assert level.chunk_conditions(0) == [(0, 0), (2, 1), (4, 2), (6, 3), (8, 4)]
    assert level.chunk_conditions(1) == [(0, 4), (1, 5), (3, 6), (5, 7), (7, 8), (8, 8)]
    assert level.masks().tolist() == [[1, 0, 1, 0, 1, 0, 1, 0, 1], [1, 1, 0, 1, 0, 1, 0, 1, 1]]
    assert level.temporal_positions.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert plan.levels[0].temporal_positions.tolist() == [[0, 2, 4]]


def test_hand_worked_4_1_plan_with_padded_last_chunk():
    # 5 frames at 6 fps -> 20 frames at 24 fps in 2 chunks of (10+2)//4*4+1 = 13, last chunk 7 real + 6 padding.
    plan = TreePlan(5, (4, 1), (2,), height=16, width=32)
    level = plan.levels[1]
    assert (level.num_frames, level.frames_per_chunk, level.latent_frames_per_chunk) == (20, 13, 4)
    assert level.padding_frames == 6 and level.valid_frames(1) == 7 and level.chunk_range(1) == (13, 20)
    assert level.chunk_conditions(0) == [(0, 0), (4, 1), (8, 2), (12, 3)]
    assert level.chunk_conditions(1) == [(0, 3), (3, 4), (6, 4)]
    assert level.masks()[1].tolist() == [1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]
    assert level.temporal_positions.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert_level_matches_reference(level, 5)


@pytest.mark.parametrize(
    "frames, intervals, chunks",
    [(17, (4, 2, 1), (2, 2)), (17, (4, 2, 1), (1, 3)), (25, (4, 1), (4,)), (21, (2, 1), None), (33, (4, 2, 1), (3, 4))],
)
def test_non_default_chunks_match_reference(frames, intervals, chunks):
    plan = TreePlan(frames, intervals, chunks, height=16, width=16)
    for prev, level in zip(plan.levels, plan.levels[1:]):
        per_chunk = (level.num_frames // level.num_chunks + 2) // 4 * 4 + 1
        if level.num_chunks * per_chunk >= level.num_frames:  # reference covers every frame
            assert level.frames_per_chunk == per_chunk and not level.extended_tail
            assert_level_matches_reference(level, prev.num_frames)
        T = level.latent_frames_per_chunk
        expected = [[(c * T + j) * level.interval for j in range(T)] for c in range(level.num_chunks)]
        assert level.temporal_positions.tolist() == expected


def test_padded_last_chunk_17_4_2_1():
    plan = TreePlan(17, (4, 2, 1), (2, 2), height=32, width=32)
    level = plan.levels[2]
    # 68 frames, (34 + 2)//4*4+1 = 37 frames per chunk, the last chunk has 31 real frames.
    assert (level.num_frames, level.frames_per_chunk, level.valid_frames(1), level.padding_frames) == (68, 37, 31, 6)
    assert level.masks()[1, 31:].sum() == 0
    assert level.chunk_conditions(1)[-1] == (30, 33)  # last real frame 67 -> frame 33 of the level above


def test_tail_frames_get_a_longer_chunk_instead_of_being_dropped():
    assert reference_chunk_length(214, 4) == 53  # 4 x 53 = 212 < 214: the reference drops 2 frames
    assert chunk_length(214, 4) == (57, True)
    assert chunk_length(218, 2) == (109, False)
    # 13 frames at interval 4 -> 52 frames in 3 chunks: reference length 17 covers only 51.
    plan = TreePlan(13, (4, 1), (3,), height=16, width=16)
    level = plan.levels[1]
    assert level.extended_tail and level.frames_per_chunk == 21 and level.padding_frames == 11
    assert [level.chunk_range(c) for c in range(3)] == [(0, 21), (21, 42), (42, 52)]
    # Chunk 2 covers pixels 42..51: start 42 -> 10, anchors 44 -> 11, 48 -> 12, last frame 51 -> 12.
    assert level.chunk_conditions(2) == [(0, 10), (2, 11), (6, 12), (9, 12)]
    assert "cover the tail" in plan.describe()


def test_chunks_with_blueprint_entry_and_defaults():
    a = TreePlan(17, (4, 2, 1), (1, 2, 4), height=16, width=16)
    b = TreePlan(17, (4, 2, 1), (2, 4), height=16, width=16)
    c = TreePlan(17, (4, 2, 1), None, height=16, width=16)
    assert a.chunks == b.chunks == c.chunks == (2, 4)
    assert a == b == c


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(blueprint_frames=110, frame_intervals=(4, 2, 1)), "109 or 113"),
        (dict(blueprint_frames=0, frame_intervals=(4, 2, 1)), "1 or 5"),
        (dict(blueprint_frames=17.0, frame_intervals=(4, 2, 1)), "integer"),
        (dict(blueprint_frames=17, frame_intervals=(2, 4)), "strictly decreasing"),
        (dict(blueprint_frames=17, frame_intervals=(4, 4)), "strictly decreasing"),
        (dict(blueprint_frames=17, frame_intervals=(4, 3)), "not divisible"),
        (dict(blueprint_frames=17, frame_intervals=()), "empty"),
        (dict(blueprint_frames=17, frame_intervals=(4, 2, 1), chunks=(2,)), "one chunk count per refinement"),
        (dict(blueprint_frames=17, frame_intervals=(4, 2, 1), chunks=(2, 2, 4)), "chunks[0] must be 1"),
        (dict(blueprint_frames=17, frame_intervals=(4, 2, 1), chunks=(2, 0)), ">= 1"),
        (dict(blueprint_frames=5, frame_intervals=(2, 1)), "at most 2 chunks"),
        (dict(blueprint_frames=17, frame_intervals=(4, 1), chunks=(40,)), "last chunk would be empty"),
        (dict(blueprint_frames=17, frame_intervals=(4, 1), height=100), "96 or 112"),
        (dict(blueprint_frames=17, frame_intervals=(4, 1), width=8), "16"),
    ],
)
def test_plan_errors(kwargs, fragment):
    args = dict(height=32, width=32)
    args.update(kwargs)
    with pytest.raises(PlanError) as err:
        TreePlan(**args)
    assert fragment in str(err.value)


def test_the_plan_rules_answered_without_a_plan():
    # one 4n+1 rounding, both ways (pixel frames; floats allowed)
    assert [round_clip_length(x) for x in (0, 1, 2, 97, 98, 120.5)] == [1, 1, 5, 97, 101, 121]
    assert [round_clip_length(x, up=False) for x in (0.5, 1, 4.9, 31, 30.25, 7.6)] == [1, 1, 1, 29, 29, 5]
    assert round_clip_length(10, 8) == 17 and round_clip_length(10, 8, up=False) == 9
    # frames per level (the last is the output length) and its inverse, the smallest blueprint
    assert TreePlan.level_frames(109, (4, 2, 1)) == (109, 218, 436)
    assert TreePlan.level_frames(17, [8, 4, 2, 1]) == (17, 34, 68, 136)
    assert TreePlan.smallest_blueprint(480, (4, 2, 1)) == 121 and TreePlan.smallest_blueprint(436, (4, 2, 1)) == 109
    for intervals in ((4, 2, 1), (4, 1), (2, 1), (8, 4, 2, 1), (3, 1)):
        for blueprint in (1, 5, 29, 109, 401):  # a valid blueprint is its own smallest blueprint
            plan = TreePlan(blueprint, intervals, [1] * (len(intervals) - 1), height=64, width=64)
            assert TreePlan.level_frames(blueprint, intervals) == tuple(lv.num_frames for lv in plan.levels)
            assert TreePlan.smallest_blueprint(plan.final.num_frames, intervals) == blueprint
    with pytest.raises(PlanError, match="105 or 109"):
        TreePlan.level_frames(107, (4, 2, 1))
    with pytest.raises(PlanError, match="temporal_factor"):
        TreePlan.level_frames(109, (4, 2, 1), temporal_factor=0)
    # the blueprint is one chunk; None entries are kept for the caller (reference rule / auto choice)
    assert TreePlan.check_chunks(None, (4, 2, 1)) == (None, None)
    assert TreePlan.check_chunks((1, None, 8), (4, 2, 1)) == (None, 8)
    with pytest.raises(PlanError, match="always one chunk"):
        TreePlan.check_chunks((2, 2, 4), (4, 2, 1))
    with pytest.raises(PlanError, match="refinement levels"):
        TreePlan.check_chunks((2,), (4, 2, 1))


def test_plan_error_is_value_error():
    with pytest.raises(ValueError):
        TreePlan(18, (4, 1), height=16, width=16)


def test_temporal_factor_other_than_four():
    plan = TreePlan(7, (2, 1), (1,), height=16, width=16, temporal_factor=2)
    level = plan.levels[1]
    # 14 frames in 1 chunk: (14 + 2)//2*2 + 1 = 17 frames, 9 latent frames, 3 padding frames.
    assert (level.num_frames, level.frames_per_chunk, level.latent_frames_per_chunk) == (14, 17, 9)
    with pytest.raises(PlanError, match="7 or 9"):
        TreePlan(8, (2, 1), height=16, width=16, temporal_factor=2)


def test_to_dict_is_json_and_round_trips():
    plan = TreePlan(17, (4, 2, 1), (2, 2), height=32, width=48, fps=30)
    data = json.loads(json.dumps(plan.to_dict()))
    assert data["levels"][2]["num_frames"] == 68
    assert data["levels"][2]["chunks"][1]["conditions"][-1] == [30, 33]
    assert data["levels"][1]["fps"] == 15.0
    assert TreePlan.from_dict(data) == plan
    text = plan.describe()
    assert "68 frames" in text and "30 fps" in text and "padded by 6" in text


def test_level_accessors_reject_bad_chunk():
    level = TreePlan(17, (4, 1), (2,), height=16, width=16).levels[1]
    with pytest.raises(IndexError):
        level.chunk_conditions(2)


def test_boundary_anchors_keeps_only_true_frames_of_the_level_above():
    repeat = TreePlan(25, (4, 2, 1), (2, 4), height=16, width=16)
    anchors = TreePlan(25, (4, 2, 1), (2, 4), height=16, width=16, boundary="anchors")
    assert repeat.boundary == "repeat_anchor" and anchors != repeat
    for ref_level, level in zip(repeat.levels[1:], anchors.levels[1:]):
        for c in range(level.num_chunks):
            start = c * level.frames_per_chunk
            # every condition is a real anchor: level frame start+pixel == k*ratio shows frame k
            assert all(start + p == k * level.ratio for p, k in level.chunk_conditions(c))
            # and it is the repeat_anchor condition list minus the boundary frames that repeat an anchor
            kept = [(p, k) for p, k in ref_level.chunk_conditions(c) if start + p == k * level.ratio]
            assert level.chunk_conditions(c) == kept
    # hand-worked: 24 fps chunk 1 starts at level frame 25 (odd): its first known pixel is 1 (frame 26 = anchor 13)
    assert anchors.levels[2].chunk_conditions(1)[0] == (1, 13)
    assert repeat.levels[2].chunk_conditions(1)[0] == (0, 12)  # repeat_anchor: frame 25 repeats anchor 12
    assert anchors.levels[2].masks()[1, 0] == 0 and repeat.levels[2].masks()[1, 0] == 1
    assert anchors.levels[2].masks().sum() == 50 and repeat.levels[2].masks().sum() == 54
    assert "boundary frames: anchors" in anchors.describe() and "boundary" not in repeat.describe()


def test_boundary_mode_round_trips_and_is_checked():
    plan = TreePlan(17, (4, 2, 1), (2, 2), height=32, width=48, boundary="anchors")
    data = json.loads(json.dumps(plan.to_dict()))
    assert data["boundary"] == "anchors" and TreePlan.from_dict(data) == plan
    del data["boundary"]  # plans saved before the option existed are repeat_anchor plans
    assert TreePlan.from_dict(data).boundary == "repeat_anchor"
    with pytest.raises(PlanError, match="boundary must be one of"):
        TreePlan(17, (4, 1), height=16, width=16, boundary="exact")
    # ratio 8 with 5-frame chunks: chunk 2 (level frames 10..14) holds no anchor (multiples of 8)
    with pytest.raises(PlanError, match="chunk 2 holds no frame of the level above"):
        TreePlan(5, (8, 1), (8,), height=16, width=16, boundary="anchors")
    assert TreePlan(5, (8, 1), (8,), height=16, width=16).levels[1].num_chunks == 8  # repeat_anchor is fine


def test_the_former_boundary_mode_name_is_an_alias():
    """``"reference"`` was the name of ``"repeat_anchor"``: plans, plan dicts and saved workflows that use it
    give the same plan, stored under the new name."""
    new = TreePlan(25, (4, 2, 1), (2, 4), height=16, width=16, boundary="repeat_anchor")
    old = TreePlan(25, (4, 2, 1), (2, 4), height=16, width=16, boundary="reference")
    assert old == new and old.boundary == "repeat_anchor" and old.levels == new.levels
    assert all(a.conditions == b.conditions for a, b in zip(old.levels, new.levels))
    saved = {**new.to_dict(), "boundary": "reference"}
    assert TreePlan.from_dict(saved) == new and TreePlan.from_dict(saved).to_dict()["boundary"] == "repeat_anchor"
    assert BOUNDARY_ALIASES == {"reference": "repeat_anchor"} and "reference" not in BOUNDARY_MODES
