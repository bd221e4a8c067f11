"""The TreeScheduler's words for the auto planner's typed results (``nodes/plan_text.py``)."""

from plan_requests import auto
from nodes.plan_text import auto_reasons, auto_to_dict, auto_warning, level_reason, level_sentence, plan_warning
from tempomaster_core.autoplan import limit_breaches
from tempomaster_core.cost import GIB, estimate_plan_cost
from tempomaster_core.plan import TreePlan

SIZE = dict(height=480, width=832)


def test_the_reference_choice_says_so():
    plan = auto(436, **SIZE, memory_budget_bytes=None)
    assert all("(= the reference rule)" in level_reason(c, plan.limits) for c in plan.levels)
    # the drawing's sentence names the level by its frame rate and reads as a sentence
    assert [level_sentence(c, fps) for c, fps in zip(plan.levels, (12, 24))] == [
        "12 fps: 2 chunks of 109 frames, the only split within the limits (as the reference splits it).",
        "24 fps: 4 chunks of 109 frames, the only split within the limits (as the reference splits it).",
    ]
    assert auto_reasons(plan)[0] == "blueprint 109 frames at 6 fps for 436 output frames (436 made, 18.17 s)"


def test_candidates_ladders_and_reasons_are_worded():
    plan = auto(480, **SIZE, intervals=None, memory_budget_bytes=None)  # 20 s: (8, 4, 2, 1) fits
    data = auto_to_dict(plan)
    rows = {tuple(r["intervals"]): r for r in data["ladders"]}
    assert "more than the trained" in rows[(4, 2, 1)]["status"]
    assert rows[(8, 4, 2, 1)]["status"] == "chosen"
    assert any("(8, 4, 2, 1)" in reason for reason in data["reasons"])
    fixed = auto_to_dict(auto(480, **SIZE, memory_budget_bytes=None))
    assert fixed["chunks"] == [3, 5] and fixed["limits"]["trained_chunk_frames"] == 109
    assert fixed["warnings"] == ["the blueprint has 121 frames, more than the trained 109"]
    assert [r["status"] for r in fixed["ladders"]] == fixed["warnings"]  # one ladder, not marked chosen
    for level in fixed["levels"]:
        statuses = [c["status"] for c in level["candidates"]]
        assert statuses.count("chosen") == 1 and any("exceed the trained" in s for s in statuses)
        assert ", the longest that fit (the reference's " in level["sentence"]


def test_chunks_per_forward_and_memory_are_explained():
    reference = TreePlan(109, (4, 2, 1), **SIZE)
    budget = int(estimate_plan_cost(reference).levels[2].peak_bytes * 0.7)
    reasons = auto_reasons(auto(436, **SIZE, memory_budget_bytes=budget))
    assert any("max_parallel_chunks" in r and "to stay within" in r for r in reasons)
    hopeless = auto(436, **SIZE, memory_budget_bytes=estimate_plan_cost(reference).weight_bytes // 2)
    assert all(level_sentence(c, 24).endswith("so memory was left out of this choice.") for c in hopeless.levels)
    tight = auto(436, **SIZE, memory_budget_bytes=budget)
    assert "set max_parallel_chunks to 2 on its TempoMaster Frame-Rate Refiner" in level_sentence(tight.levels[1], 24)
    assert any("still over the budget" in r for r in auto_reasons(hopeless))
    assert all("exceeds the budget" in auto_warning(b) for b in hopeless.breaches)


def test_manual_plan_warnings_name_level_fps_value_and_limit():
    plan = TreePlan(121, (4, 2, 1), **SIZE)
    warnings = [plan_warning(b, plan) for b in limit_breaches(plan, estimate_plan_cost(plan),
                                                              memory_budget_bytes=40 * GIB)]
    assert warnings[0] == "blueprint (6 fps): has 121 frames, more than the trained 109"
    assert "level 2 (24 fps): chunks of 121 frames, more than the trained 109" in warnings
    assert any("estimated peak" in w and "exceeds the budget 40.0 GiB" in w for w in warnings)


def test_levels_on_many_devices_are_worded_with_grouped_shares():
    """The 24 fps level's 4 guided chunks on 16 devices: 8 passes, one each on 8 devices (batch mode), as the
    cost model splits them; one device for the other levels; the tree's total first."""
    from nodes.plan_text import device_lines, duration
    from nodes.scheduler_node import build_schedule

    schedule = build_schedule(109, "6→12→24 fps (4,2,1)", "4,2,1", "2,4", 24, 832, 480, memory_budget_gb=1000,
                              devices=[1, 1, 16])
    top = schedule.devices[2]
    assert top.mode == "batch" and top.items == (1,) * 8 + (0,) * 8
    lines = device_lines(schedule.plan, schedule.devices)
    assert lines[0].startswith("Shared over devices: ") and "at an assumed 400 TFLOP/s per device" in lines[0]
    assert lines[1] == f"  6 fps on 1 device: {duration(schedule.devices[0].seconds)}."
    assert lines[3].startswith("  24 fps on 16 devices: each step's 8 chunk passes split, 8 x 1 + 8 x 0 DiT items")
    assert f"{top.speedup:.2f}x one device" in lines[3] and lines[3] in schedule.summary()
    assert [duration(s) for s in (0.35, 12.04, 330.0, 4320.0)] == ["0.35 s", "12.0 s", "5.5 min", "1.2 h"]


def test_the_continuation_proposal_is_worded():
    from nodes.plan_text import continuation_lines
    from tempomaster_core.long_cost import long_video_cost, trained_tree

    tree = trained_tree(**SIZE)
    head, cost = continuation_lines(long_video_cost(tree, 480))  # 20 s: one segment of 480 frames
    assert "make it as 1 segment of 480 frames at the trained frame rates" in head and "--seconds 20)" in head
    assert cost.startswith("Cost of the 20.0 s at an assumed 400 TFLOP/s on one device: continuation ")
    # the one tree for 20 s is (8, 4, 2, 1): its 3 fps blueprint is outside the trained 6 fps and finer
    assert "one tree (8, 4, 2, 1)" in cost and "(untrained: 3 fps, the model knows 6 fps and finer)" in cost
    head, cost = continuation_lines(long_video_cost(tree, 14400))  # 10 min: runs of equal segments grouped
    assert "30 segments of 29 x 600 + 1 x 480 frames" in head
    assert "untrained: 1.5 fps, the model knows 6 fps and finer; chunks of 901 frames, trained 109" in cost
