"""Bad planning inputs, one row each: which call, what input, which error, which words.

Every row goes through one entry point (the core API, the TreeScheduler node when it runs, or
the web route's handler logic) and must give the documented error type (or the node's
``ValueError`` with the plan's message, or an HTTP 400 with the message) within a second: no hang, no
ZeroDivisionError/OverflowError, no HTTP 500. The inputs include the ones that used to hang
(``custom_intervals = "1000000000,1"``), divide by zero (``"0"``), pass and crash later
(``fps = inf``) or allocate without limit (huge frame counts and sizes).
"""

import math
import time

import pytest

from nodes.plan_route import plan_response
from nodes.scheduler_node import AUTO_LEVELS, TreeScheduler
from plan_requests import auto as auto_plan
from tempomaster_core.autoplan import blueprint_for_length, output_frames_for_seconds
from tempomaster_core.config import DiTConfig
from tempomaster_core.cost import (
    CostError,
    LevelWork,
    estimate_levels_cost,
    full_sequence_work,
    level_cost,
    paper_ablation_levels,
)
from tempomaster_core.plan import (
    MAX_BLUEPRINT_FRAMES,
    MAX_CHUNKS,
    MAX_FPS,
    MAX_FRAME_INTERVAL,
    MAX_LEVELS,
    MAX_OUTPUT_FRAMES,
    MAX_SIDE,
    MIN_FPS,
    PlanError,
    TreePlan,
    max_chunks,
)

INF, NAN = math.inf, math.nan
CUSTOM = dict(blueprint_frames=109, frame_intervals="custom", custom_intervals="4,2,1", chunks="auto", fps=24.0,
              width=832, height=480)
SIZE = dict(height=480, width=832)
#: the marker for "the node refuses when it runs: a ValueError with the plan's message" (ComfyUI shows it once;
#: the plan's rules combine inputs, so they are not in VALIDATE_INPUTS, see TreeScheduler.VALIDATE_INPUTS)
MESSAGE = "node message"
#: the marker for "the route answers HTTP 400 with {"error": message}"
HTTP_400 = "HTTP 400"


def _tree(**kw):
    args = dict(blueprint_frames=109, frame_intervals=(4, 2, 1), chunks=None, **SIZE)
    args.update(kw)
    return TreePlan(args.pop("blueprint_frames"), args.pop("frame_intervals"), args.pop("chunks"), **args)


def _auto(**kw):
    args = dict(output_frames=436, memory_budget_bytes=None, **SIZE)
    args.update(kw)
    return auto_plan(args.pop("output_frames"), **args)


def _node(**kw):
    return TreeScheduler().plan(**{**CUSTOM, **kw})


def _route(**kw):
    return plan_response({**CUSTOM, **kw})


def _level_cost(**kw):
    args = dict(work=LevelWork(4, 109, 32), config=DiTConfig(), **SIZE)
    args.update(kw)
    return level_cost(args.pop("work"), args.pop("config"), **args)


CALLS = {
    "TreePlan": _tree,
    "auto_plan": _auto,
    "blueprint_for_length": lambda **kw: blueprint_for_length(kw["frames"], kw.get("intervals", (4, 2, 1))),
    "output_frames_for_seconds": lambda **kw: output_frames_for_seconds(kw["seconds"], kw.get("fps", 24.0)),
    "max_chunks": lambda **kw: max_chunks(kw["frames"]),
    "DiTConfig": lambda **kw: DiTConfig(**kw),
    "LevelWork": lambda **kw: LevelWork(**{"chunks": 1, "frames_per_chunk": 5, "steps": 1, **kw}),
    "level_cost": _level_cost,
    "estimate_levels_cost": lambda **kw: estimate_levels_cost([LevelWork(1, 29, 4), LevelWork(2, 29, 4)], **SIZE, **kw),
    "full_sequence_work": lambda **kw: full_sequence_work(kw["frames"]),
    "paper_ablation_levels": lambda **kw: paper_ablation_levels(kw["fps"], kw["chunks"]),
    "node": _node,
    "route": _route,
}

HANG = "1000000000,1"

# (call, bad input, expected exception class / MESSAGE / HTTP_400, fragment of the message)
ROWS = [
    # -- the inputs that hung (linear scans over a billion chunk counts, billions of RoPE positions)
    ("node", dict(custom_intervals=HANG), MESSAGE, f"at most {MAX_FRAME_INTERVAL}"),
    ("node", dict(custom_intervals=HANG, chunks="reference"), MESSAGE, f"at most {MAX_FRAME_INTERVAL}"),
    ("route", dict(custom_intervals=HANG), HTTP_400, f"at most {MAX_FRAME_INTERVAL}"),
    ("route", dict(custom_intervals=HANG, chunks="2"), HTTP_400, f"at most {MAX_FRAME_INTERVAL}"),
    ("TreePlan", dict(frame_intervals=(10**9, 1)), PlanError, f"at most {MAX_FRAME_INTERVAL}"),
    ("auto_plan", dict(intervals=(10**9, 1)), PlanError, f"at most {MAX_FRAME_INTERVAL}"),
    ("auto_plan", dict(output_frames=10**9), PlanError, f"at most {MAX_OUTPUT_FRAMES}"),
    ("auto_plan", dict(output_frames=10**9, intervals=None), PlanError, f"at most {MAX_OUTPUT_FRAMES}"),
    ("node", dict(length_mode="output frames", length=1e9), MESSAGE, f"at most {MAX_OUTPUT_FRAMES}"),
    ("node", dict(frame_intervals=AUTO_LEVELS, length_mode="seconds", length=1e308), MESSAGE,
     "more than the maximum"),
    ("max_chunks", dict(frames=10**12), PlanError, f"between 1 and {MAX_OUTPUT_FRAMES}"),
    # -- zero and negative intervals (were ZeroDivisionError in the node, HTTP 500 in the route)
    ("node", dict(custom_intervals="0"), MESSAGE, "must be >= 1"),
    ("node", dict(custom_intervals="4,2,0"), MESSAGE, "must be >= 1"),
    ("node", dict(custom_intervals="-4,-2,-1"), MESSAGE, "must be >= 1"),
    ("node", dict(custom_intervals="0", length_mode="seconds"), MESSAGE, "must be >= 1"),
    ("route", dict(custom_intervals="0"), HTTP_400, "must be >= 1"),
    ("route", dict(custom_intervals="0", length_mode="seconds"), HTTP_400, "must be >= 1"),
    ("route", dict(custom_intervals="-1"), HTTP_400, "must be >= 1"),
    ("TreePlan", dict(frame_intervals=(0,)), PlanError, "must be >= 1"),
    ("TreePlan", dict(frame_intervals=(4, 0)), PlanError, "must be >= 1"),
    ("TreePlan", dict(frame_intervals=(-2, -1)), PlanError, "must be >= 1"),
    ("auto_plan", dict(intervals=(4, 0)), PlanError, "must be >= 1"),
    ("blueprint_for_length", dict(frames=100, intervals=(0,)), PlanError, "must be >= 1"),
    ("TreePlan", dict(frame_intervals=tuple(2**i for i in range(MAX_LEVELS, -1, -1))), PlanError,
     f"more than {MAX_LEVELS} levels"),
    # -- fps: infinite, NaN, zero, negative, too high (inf used to pass and crash later)
    ("node", dict(fps=INF), MESSAGE, "finite"),
    ("node", dict(fps=NAN), MESSAGE, "finite"),
    ("node", dict(fps=0.0), MESSAGE, "> 0"),
    ("node", dict(fps=-24.0), MESSAGE, "> 0"),
    ("node", dict(fps=1e6), MESSAGE, f"at most {MAX_FPS:g}"),
    ("route", dict(fps=INF), HTTP_400, "finite"),
    ("route", dict(fps=1e6), HTTP_400, f"between 1 and {MAX_FPS:g}"),
    ("TreePlan", dict(fps=INF), PlanError, "finite"),
    ("TreePlan", dict(fps=-INF), PlanError, "finite"),
    ("TreePlan", dict(fps=NAN), PlanError, "finite"),
    ("TreePlan", dict(fps=0), PlanError, "> 0"),
    ("TreePlan", dict(fps=10**400), PlanError, "number"),
    ("TreePlan", dict(fps=1000.0), PlanError, f"at most {MAX_FPS:g}"),
    ("TreePlan", dict(fps=5e-324), PlanError, f"at least {MIN_FPS:g}"),  # every level's fps would round to 0
    ("node", dict(fps=5e-324), MESSAGE, f"at least {MIN_FPS:g}"),
    ("auto_plan", dict(fps=INF), PlanError, "finite"),
    ("output_frames_for_seconds", dict(seconds=10.0, fps=INF), PlanError, "fps"),
    ("output_frames_for_seconds", dict(seconds=1e308, fps=240.0), PlanError, "more than the maximum"),
    # -- huge frame counts (refused before any per-frame work)
    ("TreePlan", dict(blueprint_frames=MAX_BLUEPRINT_FRAMES + 4), PlanError, f"at most {MAX_BLUEPRINT_FRAMES}"),
    ("TreePlan", dict(blueprint_frames=4 * 10**12 + 1), PlanError, f"at most {MAX_BLUEPRINT_FRAMES}"),
    ("TreePlan", dict(blueprint_frames=4097, frame_intervals=(8, 1)), PlanError,
     f"more than the maximum {MAX_OUTPUT_FRAMES}"),
    ("node", dict(blueprint_frames=1000001), MESSAGE, f"at most {MAX_BLUEPRINT_FRAMES}"),
    ("node", dict(blueprint_frames=4097, custom_intervals="16,1"), MESSAGE,
     f"more than the maximum {MAX_OUTPUT_FRAMES}"),
    ("node", dict(blueprint_frames=INF), MESSAGE, "finite"),
    ("node", dict(blueprint_frames=108.5), MESSAGE, "whole number"),
    ("route", dict(blueprint_frames=1000001), HTTP_400, f"between 1 and {MAX_BLUEPRINT_FRAMES}"),
    ("route", dict(blueprint_frames=10**400), HTTP_400, "blueprint_frames must be between 1 and"),
    ("blueprint_for_length", dict(frames=10**12), PlanError, f"at most {MAX_OUTPUT_FRAMES}"),
    ("full_sequence_work", dict(frames=10**12), CostError, f"<= {MAX_OUTPUT_FRAMES}"),
    # -- huge sizes (4096x4096 is refused; no side above 4096)
    ("TreePlan", dict(height=4096, width=4096), PlanError, "M pixels per frame"),
    ("TreePlan", dict(height=480, width=MAX_SIDE + 16), PlanError, f"at most {MAX_SIDE}"),
    ("TreePlan", dict(height=10**12, width=832), PlanError, f"at most {MAX_SIDE}"),
    ("auto_plan", dict(height=4096, width=4096), PlanError, "M pixels per frame"),
    ("node", dict(height=4096, width=4096), MESSAGE, "M pixels per frame"),
    ("node", dict(width=8192), MESSAGE, f"at most {MAX_SIDE}"),
    ("node", dict(width=INF), MESSAGE, "finite"),
    ("route", dict(height=4096, width=4096), HTTP_400, "M pixels per frame"),
    ("route", dict(width=10**6), HTTP_400, f"between 16 and {MAX_SIDE}"),
    ("level_cost", dict(height=4096, width=4096), CostError, "pixels per frame"),
    ("level_cost", dict(height=10**9), CostError, f"<= {MAX_SIDE}"),
    # -- chunk counts: zero, negative, huge
    ("node", dict(chunks="0,4"), MESSAGE, "must be >= 1"),
    ("node", dict(chunks="-1,4"), MESSAGE, "must be >= 1"),
    ("node", dict(chunks="1000000000,4"), MESSAGE, f"at most {MAX_CHUNKS}"),
    ("node", dict(chunks="auto,0"), MESSAGE, "must be >= 1"),
    ("route", dict(chunks="1000000000,4"), HTTP_400, f"at most {MAX_CHUNKS}"),
    ("TreePlan", dict(chunks=(10**9, 4)), PlanError, f"at most {MAX_CHUNKS}"),
    ("TreePlan", dict(chunks=(0, 4)), PlanError, "must be >= 1"),
    ("auto_plan", dict(chunks=(0, None)), PlanError, "must be >= 1"),
    ("auto_plan", dict(chunks=(2.5, None)), PlanError, "integer"),
    ("LevelWork", dict(chunks=10**9), CostError, f"<= {MAX_CHUNKS}"),
    ("LevelWork", dict(frames_per_chunk=10**9 + 1), CostError, "frames_per_chunk must be <="),
    # -- other numbers of the node and the planner
    ("node", dict(memory_budget_gb=1e308), MESSAGE, "finite"),
    ("node", dict(memory_budget_gb=NAN), MESSAGE, "finite"),
    ("node", dict(trained_chunk_frames=INF), MESSAGE, "finite"),
    ("node", dict(length_mode="output frames", length=INF), MESSAGE, "finite"),
    ("node", dict(length_mode="seconds", length=NAN), MESSAGE, "finite"),
    ("route", dict(memory_budget_gb=10**400), HTTP_400, "must be a number"),
    ("auto_plan", dict(memory_budget_bytes=INF), PlanError, "finite"),
    ("auto_plan", dict(memory_budget_bytes=10**400), PlanError, "memory_budget_bytes must be a number"),
    ("auto_plan", dict(steps=10**9), PlanError, "<= 10000"),
    ("auto_plan", dict(steps=0), PlanError, "steps must be >= 1"),
    ("auto_plan", dict(steps="many"), PlanError, "steps"),
    ("auto_plan", dict(cfg=NAN), PlanError, "finite"),
    ("auto_plan", dict(trained_chunk_frames=INF), PlanError, "integer"),
    ("auto_plan", dict(temporal_factor=0), PlanError, "temporal_factor"),
    ("auto_plan", dict(max_parallel_chunks=0), PlanError, "max_parallel_chunks"),
    ("TreePlan", dict(temporal_factor=0), PlanError, "temporal_factor"),
    ("TreePlan", dict(temporal_factor=10**9), PlanError, "temporal_factor"),
    ("level_cost", dict(text_len=-1), CostError, "text_len"),
    ("level_cost", dict(cfg=NAN), CostError, "finite"),
    # the cost model and the planner price the scale a sampler runs: the samplers' rule (validation.require_cfg)
    ("level_cost", dict(cfg=1e30), CostError, "cfg must be <= 100"),
    ("level_cost", dict(cfg=-8.0), CostError, "cfg must be > 0"),
    ("estimate_levels_cost", dict(cfg=[8.0, 0.0]), CostError, "cfg must be > 0"),
    ("auto_plan", dict(cfg=1e30), PlanError, "cfg must be <= 100"),
    ("DiTConfig", dict(rope_theta="ten thousand"), ValueError, "DiTConfig.rope_theta must be a number"),
    ("level_cost", dict(spatial_factor=0), CostError, "spatial_factor"),
    ("LevelWork", dict(steps=10**9), CostError, "<= 10000"),
    ("paper_ablation_levels", dict(fps=(6, INF), chunks=(1, 2)), CostError, "finite"),
    ("paper_ablation_levels", dict(fps=(6, 24), chunks=(1, 10**9)), CostError, f"<= {MAX_CHUNKS}"),
    # -- the DiT shape (num_heads 0 was a ZeroDivisionError)
    ("DiTConfig", dict(num_heads=0), ValueError, "num_heads must be >= 1"),
    ("DiTConfig", dict(num_heads=-40), ValueError, "num_heads must be >= 1"),
    ("DiTConfig", dict(dim=0), ValueError, "dim must be >= 1"),
    ("DiTConfig", dict(ffn_dim=-1), ValueError, "ffn_dim must be >= 1"),
    ("DiTConfig", dict(num_layers=0), ValueError, "num_layers must be >= 1"),
    ("DiTConfig", dict(num_heads=2.5), ValueError, "must be an integer"),
    ("DiTConfig", dict(patch_size=(1, 0, 2)), ValueError, "patch_size"),
    ("DiTConfig", dict(patch_size=(1, 2)), ValueError, "patch_size"),
    ("DiTConfig", dict(eps=0.0), ValueError, "DiTConfig.eps must be > 0, got 0"),
    ("DiTConfig", dict(rope_theta=NAN), ValueError, "DiTConfig.rope_theta must be a finite number"),
]


def _label(row):
    call, bad, _, _ = row
    return f"{call}-" + ",".join(f"{k}={v!r}"[:40] for k, v in bad.items())


@pytest.mark.parametrize("call, bad, expected, fragment", ROWS, ids=[_label(r) for r in ROWS])
def test_bad_input_gives_the_documented_error_quickly(call, bad, expected, fragment):
    start = time.perf_counter()
    if expected is MESSAGE:
        with pytest.raises(ValueError) as info:
            CALLS[call](**bad)
        message = str(info.value)
    elif expected is HTTP_400:
        status, body = CALLS[call](**bad)
        assert status == 400, (status, body)
        assert set(body) == {"error"}
        message = body["error"]
    else:
        with pytest.raises(Exception) as info:
            CALLS[call](**bad)
        assert type(info.value) is expected, f"{type(info.value).__name__}: {info.value}"
        message = str(info.value)
    elapsed = time.perf_counter() - start
    assert fragment in message, message
    assert elapsed < 1.0, f"{call}({bad}) took {elapsed:.2f} s"


def test_the_limits_keep_long_videos_possible():
    """The bounds are far beyond real use: a 10-minute video at 24 fps and a 4K UHD frame still plan."""
    frames = 600 * 24  # 10 minutes at 24 fps
    auto = auto_plan(frames, height=480, width=832, intervals=None, memory_budget_bytes=None)
    assert auto.plan.final.num_frames >= frames
    assert TreePlan(3601, (4, 2, 1), height=2160, width=3840).final.num_frames == 14404
    assert TreePlan(MAX_BLUEPRINT_FRAMES, (4, 2, 1), **SIZE).final.num_frames <= MAX_OUTPUT_FRAMES
    plan, _summary = TreeScheduler().plan(**{**CUSTOM, "length_mode": "seconds", "length": 600.0,
                                             "frame_intervals": AUTO_LEVELS})
    assert plan.final.num_frames >= 600 * 24
    status, body = plan_response({**CUSTOM, "length_mode": "seconds", "length": 600.0, "fps": 36.0,
                                  "frame_intervals": AUTO_LEVELS, "memory_budget_gb": 80.0})
    assert status == 200 and body["levels"][-1]["num_frames"] >= 600 * 36
