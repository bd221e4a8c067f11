"""Planning by duration and the automatic tree: limits respected, never worse than the
reference rule, optimal among the admissible trees (checked by brute force over TreePlans)."""

import itertools

import pytest

from plan_requests import auto as auto_plan
from tempomaster_core.autoplan import (
    least_blocks_to_swap,
    Limit,
    LimitBreach,
    Rule,
    Verdict,
    blueprint_for_length,
    limit_breaches,
    output_frames_for_seconds,
    reference_plan_for_length,
)
from tempomaster_core.cost import GIB, estimate_plan_cost
from tempomaster_core.plan import PlanError, TreePlan, chunk_length, default_chunks, max_chunks

SIZE = dict(height=480, width=832)


def test_length_to_blueprint_by_hand():
    assert output_frames_for_seconds(20, 24) == 480
    assert output_frames_for_seconds(436 / 24, 24) == 436
    assert output_frames_for_seconds(0.01, 24) == 1
    # final frames = blueprint x intervals[0] / intervals[-1]; smallest 4n+1 blueprint covering the length
    assert blueprint_for_length(436, (4, 2, 1)) == 109  # exactly the reference
    assert blueprint_for_length(437, (4, 2, 1)) == 113  # 437 / 4 -> 110 -> 113
    assert blueprint_for_length(480, (4, 2, 1)) == 121  # 120 -> 121 -> 484 frames = 20.17 s
    assert blueprint_for_length(480, (2, 1)) == 241
    assert blueprint_for_length(480, (8, 4, 2, 1)) == 61
    assert blueprint_for_length(3, (4, 1)) == 1
    plan = reference_plan_for_length(480, (4, 2, 1), **SIZE)
    assert plan.blueprint_frames == 121 and plan.chunks == (2, 4) and plan.final.num_frames == 484
    for bad in (0, -5, 2.5, True):
        with pytest.raises(PlanError):
            blueprint_for_length(bad, (4, 2, 1))
    with pytest.raises(PlanError):
        output_frames_for_seconds(-1, 24)
    with pytest.raises(PlanError):
        output_frames_for_seconds("long", 24)


def test_the_reference_video_gets_the_reference_tree():
    auto = auto_plan(436, **SIZE, memory_budget_bytes=None)
    assert auto.plan == TreePlan(109, (4, 2, 1), (2, 4), **SIZE)
    assert auto.breaches == () and auto.max_parallel_chunks == (None, None, None)
    assert all(choice.chunks == choice.reference_chunks and choice.rule in (Rule.ONLY, Rule.CHEAPEST)
               for choice in auto.levels)


@pytest.mark.parametrize("trained", [109, 61, 29])
@pytest.mark.parametrize("seconds", [3, 10, 20, 30])
def test_auto_keeps_every_refinement_chunk_within_the_trained_length(seconds, trained):
    auto = auto_plan(output_frames_for_seconds(seconds, 24), **SIZE, trained_chunk_frames=trained,
                     memory_budget_bytes=None)
    for level in auto.plan.levels[1:]:
        assert level.frames_per_chunk <= trained
    assert auto.plan.final.num_frames >= seconds * 24
    blueprint_too_long = auto.plan.blueprint_frames > trained
    assert blueprint_too_long == any(b.level == 0 for b in auto.breaches)


def test_auto_levels_keep_the_blueprint_within_the_trained_length():
    auto = auto_plan(480, **SIZE, intervals=None, memory_budget_bytes=None)  # 20 s at 24 fps
    assert auto.plan.frame_intervals == (8, 4, 2, 1)
    assert auto.plan.blueprint_frames == 61 and auto.breaches == () and auto.levels_chosen
    assert all(level.frames_per_chunk <= 109 for level in auto.plan.levels)
    rows = {r.intervals: r for r in auto.ladders}
    assert LimitBreach(0, Limit.TRAINED_LENGTH, 121, 109) in rows[(4, 2, 1)].breaches
    assert rows[(8, 4, 2, 1)].fits and rows[(8, 4, 2, 1)].blueprint_frames == 61
    # with fixed intervals the same length keeps them and breaks the trained length with the blueprint
    fixed = auto_plan(480, **SIZE, memory_budget_bytes=None)
    assert fixed.plan.frame_intervals == (4, 2, 1) and fixed.plan.blueprint_frames == 121
    assert LimitBreach(0, Limit.TRAINED_LENGTH, 121, 109) in fixed.breaches and not fixed.levels_chosen


def _reference_fits(plan, cost, trained, budget):
    return (all(lv.frames_per_chunk <= trained for lv in plan.levels[1:])
            and all(c.peak_bytes <= budget for c in cost.levels)) if budget else \
        all(lv.frames_per_chunk <= trained for lv in plan.levels[1:])


@pytest.mark.parametrize("size", [dict(height=480, width=832), dict(height=64, width=64)])
@pytest.mark.parametrize("intervals", [(4, 2, 1), (4, 1), (2, 1)])
def test_auto_is_never_worse_than_the_reference_rule(size, intervals):
    checked = 0
    for seconds in (1, 2, 4, 7, 12, 18, 25):
        frames = output_frames_for_seconds(seconds, 24)
        try:
            reference = reference_plan_for_length(frames, intervals, **size)
        except PlanError:
            continue  # the reference rule itself cannot split this level
        ref_cost = estimate_plan_cost(reference)
        auto = auto_plan(frames, **size, intervals=intervals, memory_budget_bytes=None)
        assert auto.plan.blueprint_frames == reference.blueprint_frames
        if _reference_fits(reference, ref_cost, 109, None):
            assert auto.cost.dit_flops <= ref_cost.dit_flops
            checked += 1
        else:  # the reference breaks the trained length; auto does not
            assert all(lv.frames_per_chunk <= 109 for lv in auto.plan.levels[1:])
    assert checked >= 3


def test_auto_is_the_cheapest_admissible_tree_by_brute_force():
    # 4 s at 64x64 with (4, 2, 1): every chunk combination as a real TreePlan, priced independently
    frames, intervals, size = 96, (4, 2, 1), dict(height=64, width=64)
    auto = auto_plan(frames, **size, intervals=intervals, min_chunk_frames=9, memory_budget_bytes=None)
    blueprint = auto.plan.blueprint_frames
    level_frames = [blueprint * 2, blueprint * 4]
    floors = [min(9, chunk_length(f, default_chunks(i))[0]) for f, i in zip(level_frames, intervals[1:])]
    best = None
    for combo in itertools.product(*(range(1, max_chunks(f) + 1) for f in level_frames)):
        try:
            plan = TreePlan(blueprint, intervals, combo, **size)
        except PlanError:
            continue
        lengths = [lv.frames_per_chunk for lv in plan.levels[1:]]
        if any(n > 109 or n < floor for n, floor in zip(lengths, floors)):
            continue
        flops = estimate_plan_cost(plan).dit_flops
        best = flops if best is None else min(best, flops)
    assert auto.cost.dit_flops == pytest.approx(best, rel=1e-12)
    assert all(lv.frames_per_chunk >= 9 for lv in auto.plan.levels[1:])


def test_a_lower_context_floor_is_cheaper_and_respected():
    default = auto_plan(436, **SIZE, memory_budget_bytes=None)
    cheap = auto_plan(436, **SIZE, min_chunk_frames=29, memory_budget_bytes=None)
    assert cheap.cost.dit_flops < default.cost.dit_flops
    assert all(29 <= lv.frames_per_chunk <= 109 for lv in cheap.plan.levels[1:])
    assert cheap.plan.chunks != (2, 4)


def test_auto_respects_the_memory_budget():
    reference = TreePlan(109, (4, 2, 1), **SIZE)
    ref_cost = estimate_plan_cost(reference)
    weights = ref_cost.weight_bytes
    budget = int(ref_cost.levels[2].peak_bytes * 0.7)  # the 24 fps level with all chunks at once does not fit
    auto = auto_plan(436, **SIZE, memory_budget_bytes=budget)
    assert auto.breaches == ()
    # price the chosen plan again, independently, at the recommended chunks per forward
    again = estimate_plan_cost(auto.plan, max_batch=list(auto.max_parallel_chunks))
    assert all(level.peak_bytes <= budget for level in again.levels)
    assert auto.max_parallel_chunks[2] is not None and auto.max_parallel_chunks[2] < 4
    assert auto.levels[1].max_parallel_chunks == auto.max_parallel_chunks[2]
    # a budget that fits one 109-frame chunk pair only with less activation: shorter chunks are chosen
    one_chunk = estimate_plan_cost(reference, max_batch=1).levels[2].peak_bytes
    tight = auto_plan(436, **SIZE, memory_budget_bytes=(weights + one_chunk) // 2)
    assert all(b.level == 0 for b in tight.breaches)
    tight_cost = estimate_plan_cost(tight.plan, max_batch=list(tight.max_parallel_chunks))
    for level in tight_cost.levels[1:]:
        assert level.peak_bytes <= (weights + one_chunk) // 2
    assert tight.plan.levels[2].frames_per_chunk < 109
    # a budget below the weights cannot be met: warnings, one chunk per forward, still a plan
    hopeless = auto_plan(436, **SIZE, memory_budget_bytes=weights // 2)
    assert hopeless.breaches and hopeless.max_parallel_chunks[1:] == (1, 1)
    assert all(choice.memory_ignored for choice in hopeless.levels)
    assert hopeless.plan.chunks == (2, 4)


def test_choices_are_explained_with_every_candidate():
    auto = auto_plan(480, **SIZE, memory_budget_bytes=None)
    for choice in auto.levels:
        assert [c.chunks for c in choice.candidates].count(choice.chunks) == 1
        chosen = choice.chosen
        assert chosen.verdict is Verdict.OK and chosen.frames_per_chunk == choice.frames_per_chunk
        assert any(c.verdict is Verdict.TOO_LONG and c.dit_flops is None for c in choice.candidates)
        assert all(c.dit_flops is not None for c in choice.candidates if c.verdict is not Verdict.TOO_LONG)
        assert choice.reference_chunks == default_chunks(auto.plan.levels[choice.index].interval)
        assert choice.rule is Rule.LONGEST_FIT  # the reference's chunks of 121 frames are over the trained 109
    assert auto.plan.chunks == (3, 5) and auto.limits.trained_chunk_frames == 109


def test_fixed_chunks_are_kept_and_checked():
    auto = auto_plan(436, **SIZE, chunks=(None, 8), memory_budget_bytes=None)
    assert auto.plan.chunks == (2, 8) and auto.levels[1].fixed
    with pytest.raises(PlanError, match="cannot be split"):
        auto_plan(20, height=64, width=64, chunks=(None, 64), memory_budget_bytes=None)
    with pytest.raises(PlanError, match="refinement levels"):
        auto_plan(436, **SIZE, chunks=(2,), memory_budget_bytes=None)


def test_bad_limits_raise_plan_errors():
    with pytest.raises(PlanError, match="trained_chunk_frames"):
        auto_plan(436, **SIZE, trained_chunk_frames=3)
    with pytest.raises(PlanError, match="memory_budget"):
        auto_plan(436, **SIZE, memory_budget_bytes=-1)
    with pytest.raises(PlanError, match="memory_budget"):
        auto_plan(436, **SIZE, memory_budget_bytes="lots")
    with pytest.raises(PlanError):
        auto_plan(436, height=470, width=832, memory_budget_bytes=None)


def test_limit_breaches_name_level_value_and_limit():
    plan = TreePlan(121, (4, 2, 1), **SIZE)
    cost = estimate_plan_cost(plan)
    breaches = limit_breaches(plan, cost, memory_budget_bytes=40 * GIB)
    assert breaches[0] == LimitBreach(0, Limit.TRAINED_LENGTH, 121, 109)
    assert LimitBreach(2, Limit.TRAINED_LENGTH, 121, 109) in breaches
    over = [b for b in breaches if b.limit is Limit.MEMORY]
    assert over and all(b.bound == 40 * GIB and b.value == cost.levels[b.level].peak_bytes > b.bound for b in over)
    assert [b.level for b in breaches] == sorted(b.level for b in breaches)
    reference = TreePlan(109, (4, 2, 1), **SIZE)
    assert limit_breaches(reference, estimate_plan_cost(reference)) == ()


def test_fp8_and_block_swap_fit_the_reference_video_into_24_gb():
    """Issue 19's target: the reference tree with fp8 weights, 16 swapped blocks and one chunk per
    forward is predicted at <= 22 GiB; the auto planner finds a tree for a 24 GB card with them."""
    reference = TreePlan(109, (4, 2, 1), **SIZE)
    cost = estimate_plan_cost(reference, dtype="fp8", max_batch=1, blocks_to_swap=16)
    assert cost.peak_bytes <= 22 * GIB < estimate_plan_cost(reference, dtype="fp8", max_batch=1).peak_bytes
    budget = 24 * 10**9  # a "24 GB" card
    auto = auto_plan(436, **SIZE, memory_budget_bytes=budget, dtype="fp8", blocks_to_swap=16)
    assert auto.breaches == ()
    again = estimate_plan_cost(auto.plan, max_batch=list(auto.max_parallel_chunks), dtype="fp8", blocks_to_swap=16)
    assert all(level.peak_bytes <= budget for level in again.levels)
    assert auto.plan.final.num_frames >= 436


def test_least_blocks_to_swap_searches_the_counts_that_free_memory():
    """0 when nothing is needed; up to SWAP_SLOTS swapped blocks free nothing, so the answer is 0 or
    > SWAP_SLOTS; a binary search over the rest; None when even every block does not fit."""
    from tempomaster_core.cost import SWAP_SLOTS

    asked = []

    def fits_from(threshold):
        def fits(count):
            asked.append(count)
            return count == 0 and threshold == 0 or count >= threshold > 0
        return fits

    assert least_blocks_to_swap(fits_from(0), 40) == 0 and asked == [0]
    asked.clear()
    assert least_blocks_to_swap(fits_from(13), 40) == 13
    assert all(c == 0 or c > SWAP_SLOTS for c in asked) and len(asked) <= 2 + 6
    assert least_blocks_to_swap(fits_from(41), 40) is None
    assert least_blocks_to_swap(fits_from(1), 2) is None  # two blocks: swapping frees nothing
