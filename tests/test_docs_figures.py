"""The memory figures the artist reads are the cost model's: README, docs and the templates' notes.

The tree view draws ``tempomaster_core.cost`` (through the plan route); the README once said 53 GB
for the reference tree while the view said 73.8 GiB. Here the figures are computed from the cost
model and looked up, formatted as the texts write them, in each text.
"""

import json
import os

from tempomaster_core.cost import GIB, estimate_plan_cost
from tempomaster_core.defaults import BLUEPRINT_FRAMES, FRAME_INTERVALS, HEIGHT, WIDTH
from tempomaster_core.plan import TreePlan
from tools.make_workflows import reference_memory, template_file_name

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as fh:
        return fh.read()


def _gib(value):
    return f"{value:.1f} GiB"


def test_readme_quotes_the_cost_model():
    m = reference_memory()
    readme = _read("README.md")
    for figure in (_gib(m["weights_gib"]), f"{m['weights_gb']:.1f} GB", _gib(m["peak_gib"]), _gib(m["one_chunk_gib"]),
                   f"{m['batch']} sequences per forward", f"{m['peak_fps']:g} fps level, {m['peak_chunks']} chunks"):
        assert figure in readme, figure
    assert "53 GB" not in readme and "35 GB" not in readme


def test_planning_doc_quotes_the_cost_model():
    plan = TreePlan(BLUEPRINT_FRAMES, FRAME_INTERVALS, height=HEIGHT, width=WIDTH)
    peaks = [estimate_plan_cost(plan, max_batch=b).peak_bytes / GIB for b in (None, 2, 1)]
    doc = _read("docs", "planning.md")
    for figure in map(_gib, peaks):
        assert figure in doc, figure
    assert _gib(48e9 / GIB) in doc  # the 48 GB card, in the same unit


def test_the_templates_notes_quote_the_cost_model():
    m = reference_memory()
    for name in ("image_to_long_video", "text_to_video", "first_last_frame", "image_to_minute"):
        ui = json.loads(_read("example_workflows", template_file_name(name) + ".json"))
        note = next(n for n in ui["nodes"] if n["type"] == "MarkdownNote")["widgets_values"][0]
        assert _gib(m["peak_gib"]) in note and _gib(m["one_chunk_gib"]) in note and _gib(m["weights_gib"]) in note
    from tempomaster_core.continuation import segment_plan  # the minute's segments: 120 + 480 frames

    segment = segment_plan(TreePlan(BLUEPRINT_FRAMES, FRAME_INTERVALS, height=HEIGHT, width=WIDTH), 120, 480).plan
    ui = json.loads(_read("example_workflows", template_file_name("image_to_minute") + ".json"))
    note = next(n for n in ui["nodes"] if n["type"] == "MarkdownNote")["widgets_values"][0]
    assert f"{_gib(estimate_plan_cost(segment).peak_bytes / GIB)} with all chunks together" in note
    assert f"{_gib(estimate_plan_cost(segment, max_batch=1).peak_bytes / GIB)} with *max_parallel_chunks* = 1" in note


def test_readme_quotes_the_tree_views_memory_line_for_a_24_gb_card():
    """The README's and the planning doc's example of the tree view's memory line is what the route says
    for the reference tree with fp8 weights on a 24 GB card."""
    from nodes.plan_route import plan_response
    from nodes.scheduler_schema import TREE_SCHEDULER_WIDGETS

    request = {w.name: w.default for w in TREE_SCHEDULER_WIDGETS if w.required}
    request.update(memory_budget_gb=24e9 / GIB, model={"shape": "14B", "weight_dtype": "fp8_e4m3fn"})
    memory = plan_response(request)[1]["memory"]
    readme = _read("README.md")
    assert (f"fp8_e4m3fn weights, {memory['blocks_to_swap']} of 40 blocks swapped (…): peak "
            f"{_gib(memory['peak_bytes'] / GIB)}, runnable on {_gib(memory['budget_bytes'] / GIB)}.") in readme
    assert (f"{memory['blocks_to_swap']} of 40 blocks swapped, one chunk per forward,\npeak "
            f"{_gib(memory['peak_bytes'] / GIB)}, runnable") in _read("docs", "planning.md")


def test_planning_doc_scaling_table_is_the_cost_model():
    """The 1/2/4/8-GPU table of docs/planning.md, recomputed row by row (at the cost model's assumed rates, the
    ones the tree view uses)."""
    from tempomaster_core.cost_devices import plan_on_devices

    cost = estimate_plan_cost(TreePlan(BLUEPRINT_FRAMES, FRAME_INTERVALS, height=HEIGHT, width=WIDTH))
    doc = _read("docs", "planning.md")
    single = sum(lv.seconds for lv in plan_on_devices(cost, 1))
    for n in (1, 2, 4, 8):
        levels = plan_on_devices(cost, n)
        total = sum(lv.seconds for lv in levels)
        cells = [f"{lv.seconds / 60:.1f} min ({lv.mode}, {max(lv.items)} item{'s' if max(lv.items) > 1 else ''})"
                 for lv in levels]
        row = f"| {n} | " + " | ".join(cells) + f" | {total / 60:.1f} min | {single / total:.2f}x |"
        assert row in doc, row


def test_planning_doc_minute_table_is_the_cost_model():
    """docs/planning.md's "one minute at 480p on the 14B" table: continuation, one tree and a full-sequence pass,
    recomputed (tempomaster_core.long_cost, the function the tree view and the summary use)."""
    from tempomaster_core.cost_devices import ASSUMED_FLOPS_PER_S
    from tempomaster_core.long_cost import long_video_cost, trained_tree

    minute = long_video_cost(trained_tree(height=HEIGHT, width=WIDTH), 1440)
    doc = _read("docs", "planning.md")
    assert "One minute at 480p (832x480, 1440 frames at 24 fps) on the 14B" in doc
    assert f"`cost_devices.ASSUMED_FLOPS_PER_S` = {ASSUMED_FLOPS_PER_S / 1e12:g} TFLOP/s" in doc
    assert "3 segments of " + " + ".join(map(str, minute.segment_frames)) + " frames" in doc
    assert f"intervals {minute.one_tree_plan.frame_intervals}: a {minute.one_tree_plan.blueprint_frames}-frame" in doc
    for approach in (minute.continuation, minute.one_tree, minute.full_sequence):
        cells = f"| {approach.dit_pflops:.0f} | {approach.seconds / 3600:.1f} h | {_gib(approach.peak_bytes / GIB)} |"
        assert cells in doc, (approach.name, cells)
    one_chunk = max(estimate_plan_cost(s.plan, max_batch=1).peak_bytes for s in minute.segments)
    assert f"its segments peak at {_gib(one_chunk / GIB)}, within an 80 GB H100 ({_gib(80e9 / GIB)})" in doc
    assert f"one H200 (141 GB = {_gib(141e9 / GIB)})" in doc
    ratio = minute.continuation.dit_flops / minute.one_tree.dit_flops - 1
    assert f"Continuation costs {ratio * 100:.0f} % more than the one tree" in doc.replace("\n", " ")
    assert f"costs {minute.full_sequence.dit_flops / minute.continuation.dit_flops:.1f}x continuation" in \
        doc.replace("\n", " ")


def test_the_docs_quote_the_tree_views_continuation_lines_for_a_minute():
    """planning.md's example of the view's continuation lines and the README's minute figures are what the route
    and the cost model say for 60 s with auto levels."""
    from nodes.plan_route import plan_response
    from nodes.scheduler_node import AUTO_LEVELS
    from nodes.scheduler_schema import TREE_SCHEDULER_WIDGETS

    request = {w.name: w.default for w in TREE_SCHEDULER_WIDGETS if w.required}
    request.update(frame_intervals=AUTO_LEVELS, length_mode="seconds", length=60.0, memory_budget_gb=80.0)
    proposal = plan_response(request)[1]["continuation"]
    doc = " ".join(_read("docs", "planning.md").split())
    for line in proposal["lines"]:
        assert line in doc, line
    readme = " ".join(_read("README.md").split())
    frames = " + ".join(str(s["frames"]) for s in proposal["segments"])
    assert f"60 s: {len(proposal['segments'])} segments of {frames} frames" in readme
    assert (f"A minute at 480p: {proposal['continuation']['dit_pflops']:.0f} PFLOPs by continuation "
            f"(≈ {proposal['continuation']['seconds'] / 3600:.1f} h on one H100") in readme
    assert f"{proposal['full_sequence']['dit_pflops']:.0f} PFLOPs as one full-sequence pass" in readme
