"""The cost of a long video three ways (tempomaster_core.long_cost): continuation, one tree, full sequence."""

import pytest

from tempomaster_core.autoplan import Limit
from tempomaster_core.cost import CostError, LevelWork, estimate_plan_cost, level_cost
from tempomaster_core.config import DiTConfig
from tempomaster_core.cost_devices import ASSUMED_FLOPS_PER_S
from tempomaster_core.long_cost import long_video_cost, trained_tree
from tempomaster_core.plan import PlanError, TreePlan
from tempomaster_core.validation import InputError

SIZE = dict(height=480, width=832)


def test_the_trained_tree_is_the_reference_tree():
    tree = trained_tree(**SIZE)
    assert tree == TreePlan(109, (4, 2, 1), **SIZE)
    assert tree.final.num_frames == 436
    assert trained_tree(**SIZE, trained_chunk_frames=110).blueprint_frames == 109  # the longest 4n+1 within


def test_a_minute_in_segments_against_one_tree_and_a_full_pass():
    minute = long_video_cost(trained_tree(**SIZE), 1440)
    # 5 s of context = 120 frames; 600 from scratch, then 480 and the last 360 new frames after 120 known ones
    assert minute.context_frames == 120 and minute.new_frames == 480
    assert [(s.context_frames, s.new_frames) for s in minute.segments] == [(0, 600), (120, 480), (120, 360)]
    assert minute.segment_frames == (600, 600, 480) and minute.seconds_of_video == 60.0
    segment = TreePlan(153, (4, 2, 1), (3, 6), **SIZE)  # 600 frames, refinement chunks no longer than 109
    assert minute.segments[0].plan == segment and minute.segments[1].plan == segment
    assert minute.continuation.dit_flops == pytest.approx(
        2 * estimate_plan_cost(segment).dit_flops + estimate_plan_cost(minute.segments[2].plan).dit_flops)
    # one tree for the whole minute: the planner's 1.5 fps blueprint, flagged outside the trained intervals
    assert minute.one_tree_plan.frame_intervals == (16, 8, 4, 2, 1)
    assert [(b.level, b.limit, b.value) for b in minute.one_tree.breaches] == [
        (0, Limit.TRAINED_INTERVAL, 16), (1, Limit.TRAINED_INTERVAL, 8)]
    # full sequence: 1441 frames in one chunk at the blueprint's 50 steps, two passes each (cfg 8)
    full = level_cost(LevelWork(1, 1441, 50), DiTConfig(), **SIZE)
    assert minute.full_sequence.dit_flops == full.dit_flops
    assert [(b.limit, b.value) for b in minute.full_sequence.breaches] == [(Limit.TRAINED_LENGTH, 1441)]
    # the segments' blueprint (153 frames) is longer than the trained 109: said, not hidden
    assert (Limit.TRAINED_LENGTH, 153) in [(b.limit, b.value) for b in minute.continuation.breaches]
    for approach in (minute.continuation, minute.one_tree, minute.full_sequence):
        assert approach.seconds == pytest.approx(approach.total_flops / ASSUMED_FLOPS_PER_S)
        assert approach.total_flops > approach.dit_flops
    assert minute.full_sequence.dit_flops > 5 * minute.continuation.dit_flops  # attention is quadratic


def test_settings_reach_every_approach():
    tree = trained_tree(**SIZE)
    base = long_video_cost(tree, 1440)
    fewer = long_video_cost(tree, 1440, steps=10, cfg=1.0, flops_per_second=2 * ASSUMED_FLOPS_PER_S)
    assert fewer.full_sequence.dit_flops == pytest.approx(base.full_sequence.dit_flops / 10)  # 50 -> 10 steps, 1 pass
    assert fewer.continuation.dit_flops < base.continuation.dit_flops / 6
    assert fewer.one_tree.seconds == pytest.approx(fewer.one_tree.total_flops / (2 * ASSUMED_FLOPS_PER_S))
    small = long_video_cost(tree, 1440, config=DiTConfig(dim=1536, ffn_dim=8960, num_heads=12, num_layers=30))
    assert small.continuation.dit_flops < base.continuation.dit_flops / 5


@pytest.mark.parametrize("call, error", [
    (lambda t: long_video_cost(t, 0), InputError),
    (lambda t: long_video_cost("tree", 1440), PlanError),
    (lambda t: long_video_cost(t, 1440, flops_per_second=0), CostError),
    (lambda t: long_video_cost(t, 1440, cfg="x"), CostError),
    (lambda t: long_video_cost(t, 1440, new_frames=0), InputError),
])
def test_bad_input_is_refused(call, error):
    with pytest.raises(error):
        call(trained_tree(**SIZE))


def test_a_length_no_single_tree_can_make_still_gets_the_other_two():
    """23982 frames (16.7 min): every auto ladder breaks the plan's size limits, so there is no one tree; the
    continuation and the full-sequence pass are still priced and the reason is kept."""
    long = long_video_cost(trained_tree(**SIZE), 23982)
    assert long.one_tree is None and long.one_tree_plan is None and "no frame-interval ladder" in long.one_tree_error
    assert len(long.segments) == 50 and long.continuation.dit_flops > 0 and long.full_sequence.dit_flops > 0
    assert long.to_dict()["one_tree"] is None
