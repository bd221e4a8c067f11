"""The TreeScheduler's words: sentences and JSON for the artist, written from the core's typed results.

The auto planner (:mod:`tempomaster_core.autoplan`) returns facts: which chunk counts it
considered, the first limit each broke (:class:`~tempomaster_core.autoplan.Verdict`), how the
choice won (:class:`~tempomaster_core.autoplan.Rule`) and which limits a plan breaks
(:class:`~tempomaster_core.autoplan.LimitBreach`). This module turns them into what the node's
summary, its run-time errors and the web view's route show: a reason and a drawing's sentence per
level, a status per candidate and per ladder, and the warnings. Sizes are pixel frames,
memory is shown in GiB, FLOPs in PFLOPs, frame rates in frames per second.
"""

from __future__ import annotations

from typing import Any, Optional

from tempomaster_core.autoplan import (
    AutoPlan,
    ChunkOption,
    LadderOption,
    LevelChoice,
    Limit,
    LimitBreach,
    PlanLimits,
    Rule,
    Verdict,
)
from tempomaster_core.cost import GIB, PCIE_BYTES_PER_S, PFLOP
from tempomaster_core.cost_devices import ASSUMED_FLOPS_PER_S, ASSUMED_LINK_BYTES_PER_S, LevelOnDevices
from tempomaster_core.long_cost import Approach, LongCost
from tempomaster_core.plan import TreePlan

from .display_names import FRAME_RATE_REFINER
from .scheduler_schema import LIMIT_WIDGET


def gib(value: Optional[int]) -> str:
    """Bytes as ``"40.0 GiB"``; ``None`` (no budget) as ``"unbounded"``."""
    return "unbounded" if value is None else f"{value / GIB:.1f} GiB"


def chunk_word(n: int) -> str:
    """``"1 chunk"``, ``"4 chunks"``."""
    return f"{n} chunk" if n == 1 else f"{n} chunks"


def candidate_status(option: ChunkOption, choice: LevelChoice, limits: PlanLimits) -> str:
    """``"ok"``, or the limit a considered chunk count breaks (e.g. "chunks of 121 frames exceed the trained 109")."""
    if option.verdict is Verdict.TOO_LONG:
        return f"chunks of {option.frames_per_chunk} frames exceed the trained {limits.trained_chunk_frames}"
    if option.verdict is Verdict.OVER_MEMORY:
        return (f"peak {gib(option.peak_bytes)} exceeds the budget {gib(limits.memory_budget_bytes)} even one "
                "chunk at a time")
    if option.verdict is Verdict.TOO_SHORT:
        return f"chunks of {option.frames_per_chunk} frames are shorter than the context floor {choice.context_floor}"
    return "ok"


def _chosen_status(status: str) -> str:
    return "chosen" if status == "ok" else f"chosen ({status})"


_REASONS = {
    Rule.GIVEN: "{head}: given{status}",
    Rule.LONGEST_FIT: ("{head}: the reference's {reference} of {reference_frames} frames break the trained length "
                       "{trained} or the memory budget {budget}; these are the longest chunks that fit ({pflops})"),
    Rule.ONLY: "{head}: the only count within {within}",
    Rule.CHEAPEST: "{head}: the cheapest ({pflops}) of {admissible} counts within {within}",
    Rule.NONE_FIT: "{head}: no count meets every limit; these are the shortest chunks",
}
"""The summary's reason per :class:`~tempomaster_core.autoplan.Rule` (:func:`level_reason`)."""

_SENTENCES = {
    Rule.GIVEN: "{head}, as given",
    Rule.LONGEST_FIT: "{head}, the longest that fit (the reference's {reference} break the trained length or the "
                      "memory budget)",
    Rule.ONLY: "{head}, the only split within the limits",
    Rule.CHEAPEST: "{head}, the cheapest of {admissible} splits within the limits",
    Rule.NONE_FIT: "{head}: no split meets every limit, so these are the shortest chunks",
}
"""The drawing's sentence per :class:`~tempomaster_core.autoplan.Rule` (:func:`level_sentence`)."""


def _told(choice: LevelChoice, wordings: dict, reference_note: str, head: str, **fields: str) -> str:
    """A level's choice in one of the wordings above, with the note when it is the reference's split.

    The fields every wording may use (``reference``, ``reference_frames``, ``pflops``,
    ``admissible``) come from ``choice``; ``fields`` adds the wording's own."""
    best = choice.chosen
    text = wordings[choice.rule].format(
        head=head, reference=chunk_word(choice.reference_chunks), reference_frames=choice.reference_frames_per_chunk,
        pflops=f"{best.dit_flops / PFLOP:.2f} PFLOPs" if best.dit_flops is not None else "",
        admissible=sum(c.verdict is Verdict.OK for c in choice.candidates), **fields)
    return text + reference_note if _matches_reference(choice) else text


def level_reason(choice: LevelChoice, limits: PlanLimits) -> str:
    """One sentence on why a level's chunk count won, e.g. "2 chunks of 109 frames: the only count within ..."."""
    best = choice.chosen
    trained, budget = limits.trained_chunk_frames, gib(limits.memory_budget_bytes)
    status = candidate_status(best, choice, limits)
    reason = _told(choice, _REASONS, " (= the reference rule)",
                   f"{chunk_word(best.chunks)} of {best.frames_per_chunk} frames",
                   status="" if status == "ok" else f" ({status})", trained=str(trained), budget=budget,
                   within=f"the trained length {trained}, the context floor {choice.context_floor}"
                          + ("" if choice.memory_ignored else f" and the memory budget {budget}"))
    if choice.memory_ignored:
        reason += (f"; no chunk count fits the memory budget {budget} even one chunk per forward, "
                   "so memory was ignored for this choice")
    return reason


def _matches_reference(choice: LevelChoice) -> bool:
    chosen_by_limits = choice.rule in (Rule.LONGEST_FIT, Rule.ONLY, Rule.CHEAPEST)
    return chosen_by_limits and choice.chunks == choice.reference_chunks


def level_sentence(choice: LevelChoice, fps: float) -> str:
    """The drawing's sentence for one level's choice, e.g. "12 fps: 2 chunks of 109 frames, the only
    split within the limits (as the reference splits it)."; ``fps`` is the level's frame rate."""
    text = _told(choice, _SENTENCES, " (as the reference splits it)",
                 f"{fps:g} fps: {chunk_word(choice.chunks)} of {choice.frames_per_chunk} frames")
    if choice.max_parallel_chunks is not None:
        text += (f"; set max_parallel_chunks to {choice.max_parallel_chunks} on its {FRAME_RATE_REFINER} "
                 "(the peak shown assumes it)")
    if choice.memory_ignored:
        text += "; no split fits the memory budget, so memory was left out of this choice"
    return text + "."


def interval_warning(breach: LimitBreach, plan: TreePlan) -> str:
    """A level at an untrained frame interval (:func:`tempomaster_core.autoplan.interval_breaches`), e.g.
    "blueprint at 1.5 fps (interval 16): coarser than the trained 6 fps (interval 4); ..."."""
    level = plan.levels[breach.level]
    name = "blueprint" if level.is_blueprint else f"level {level.index}"
    return (f"{name} at {level.fps:g} fps (interval {breach.value}): coarser than the model was trained on "
            f"({plan.fps / breach.bound:g} fps, interval {breach.bound}); for a video longer than one trained tree, "
            "generate it in segments with TempoMaster Continue (command line: --seconds)")


def limits_sentence(used) -> str:
    """Which training limits a plan was made with and why (a :class:`nodes.plan_limits.LimitsUsed`), for the
    summary and the tree view, e.g. "Training limits from the connected model: frame intervals 4, 2, 1, chunks up
    to 25 frames (the trained_chunk_frames widget is not used)."""
    from .plan_limits import FROM_MODEL, FROM_WIDGET

    limits = used.limits
    if used.source == FROM_MODEL:
        unused = f"(the {LIMIT_WIDGET} widget is not used)"
        if used.declared:
            return f"Training limits from the connected model: {limits.describe()} {unused}."
        return (f"Training limits: the connected model declares none, so the released TempoMaster's: "
                f"{limits.describe()} {unused}.")
    intervals = ", ".join(map(str, limits.frame_intervals))
    if used.source == FROM_WIDGET:
        return (f"Training limits: chunks up to {limits.chunk_frames} frames ({LIMIT_WIDGET} widget), frame "
                f"intervals {intervals} (the released TempoMaster's); connect the model to this node's model input "
                "to plan with the limits it was trained on.")
    why = f" ({used.note})" if used.note else ""
    return (f"Training limits drawn from the {LIMIT_WIDGET} widget (chunks up to {limits.chunk_frames} frames, "
            f"frame intervals {intervals}): the model connected to this node replaces them when the graph runs; "
            f"the view cannot read its limits here{why}.")


def auto_warning(breach: LimitBreach) -> str:
    """A limit an auto plan breaks, e.g. "level 2 chunks have 121 frames, more than the trained 109"."""
    if breach.limit is Limit.TRAINED_LENGTH:
        what = "the blueprint has" if breach.level == 0 else f"level {breach.level} chunks have"
        return f"{what} {breach.value} frames, more than the trained {breach.bound}"
    what = "the blueprint's peak" if breach.level == 0 else f"level {breach.level} peak"
    return f"{what} {gib(breach.value)} exceeds the budget {gib(breach.bound)}"


def plan_warning(breach: LimitBreach, plan: TreePlan) -> str:
    """A limit a given (manual) plan breaks, naming the level's fps, e.g.
    "level 2 (24 fps): chunks of 121 frames, more than the trained 109"."""
    level = plan.levels[breach.level]
    name = "blueprint" if level.is_blueprint else f"level {level.index}"
    if breach.limit is Limit.TRAINED_LENGTH:
        what = "has" if level.is_blueprint else "chunks of"
        return f"{name} ({level.fps:g} fps): {what} {breach.value} frames, more than the trained {breach.bound}"
    return f"{name} ({level.fps:g} fps): estimated peak {gib(breach.value)} exceeds the budget {gib(breach.bound)}"


def memory_sentence(fit: dict) -> str:
    """The memory line of the summary and the tree view, from :func:`nodes.scheduler_node.memory_fit`, e.g.
    "fp8_e4m3fn weights, 16 of 40 blocks swapped (5.2 GiB copied per DiT pass, ~0.22 s at 25 GB/s): peak
    21.2 GiB, runnable on 22.4 GiB."."""
    swapped, layers = fit["blocks_to_swap"], fit["num_layers"]
    text = f"{fit['weight_dtype']} weights, "
    if swapped:
        text += (f"{swapped} of {layers} blocks swapped ({gib(fit['swap_bytes_per_pass'])} copied per DiT pass, "
                 f"~{fit['swap_seconds_per_pass']:.2f} s at {PCIE_BYTES_PER_S / 1e9:g} GB/s; ComfyUI keeps them off "
                 f"the GPU by partial loading, the command line with --blocks-to-swap {swapped})")
    else:
        text += "no blocks swapped"
    text += f": peak {gib(fit['peak_bytes'])}"
    if fit["runnable"] is None:
        return text + " (no memory budget: nothing to check against)."
    if fit["runnable"]:
        return text + f", runnable on {gib(fit['budget_bytes'])}."
    text += f", not runnable on {gib(fit['budget_bytes'])}"
    if fit["all_swapped_peak_bytes"] is not None:
        text += f" (with all {layers} blocks swapped still {gib(fit['all_swapped_peak_bytes'])})"
    advice = "fewer chunks per forward, a smaller size" if str(fit["weight_dtype"]).startswith("fp8") else \
        "fp8_e4m3fn weights (Load TempoMaster Model), fewer chunks per forward, a smaller size"
    return text + f"; try {advice} or a larger budget."


def duration(seconds: float) -> str:
    """Seconds for a reader: ``"0.35 s"``, ``"12.0 s"``, ``"5.5 min"``, ``"1.2 h"``."""
    if seconds < 1:
        return f"{seconds:.2g} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


def _shares(values: tuple) -> str:
    """Per-device counts: ``"2 + 2"``; past 8 devices grouped, ``"4 x 1 + 4 x 0"``."""
    if len(values) <= 8:
        return " + ".join(map(str, values))
    groups: list[list] = []
    for value in values:
        if groups and groups[-1][1] == value:
            groups[-1][0] += 1
        else:
            groups.append([1, value])
    return " + ".join(f"{count} x {value}" for count, value in groups)


def device_sentence(on: LevelOnDevices, fps: float) -> str:
    """One level on its devices (:func:`tempomaster_core.cost_devices.plan_on_devices`), for the summary and the
    tree view: each device's share, the level time as the slowest device plus communication, the speed-up, e.g.
    "24 fps on 2 devices: 2 + 2 chunks (4 + 4 DiT items per step); 14.1 min = slowest device 14.1 min +
    communication 0.33 s; 2.00x one device (28.1 min)." Times at the assumed rates (:func:`device_lines`)."""
    head = f"{fps:g} fps on {on.devices} device{'s' if on.devices > 1 else ''}"
    if on.devices == 1:
        return f"{head}: {duration(on.seconds)}."
    items = f"{_shares(on.items)} DiT items per step"
    if on.mode == "chunks":
        share = f"{_shares(on.chunks)} chunks ({items})"
    else:
        one = sum(on.chunks) == 1
        what = "the positive and negative passes" if one and on.passes == 2 else \
            f"each step's {sum(on.chunks) * on.passes} chunk passes"
        share = f"{what} split, {items} (every device runs {'the' if one else 'each'} chunk's steps)"
    return (f"{head}: {share}; {duration(on.seconds)} = slowest device {duration(on.compute_seconds)} + "
            f"communication {duration(on.comm_seconds)}; {on.speedup:.2f}x one device ({duration(on.single_seconds)}).")


def _device_total(levels: tuple) -> tuple[float, float]:
    return sum(on.seconds for on in levels), sum(on.single_seconds for on in levels)


def devices_total_sentence(levels: tuple) -> str:
    """The tree on its devices against one device, with the rates assumed, e.g. "Shared over devices: 26.6 min for
    the tree, 53.2 min on one device (2.00x), at an assumed 400 TFLOP/s per device and 100 GB/s links."."""
    seconds, single = _device_total(levels)
    return (f"Shared over devices: {duration(seconds)} for the tree, {duration(single)} on one device "
            f"({single / seconds:.2f}x), at an assumed {ASSUMED_FLOPS_PER_S / 1e12:g} TFLOP/s per device and "
            f"{ASSUMED_LINK_BYTES_PER_S / 1e9:g} GB/s links.")


def device_lines(plan: TreePlan, levels: tuple) -> list[str]:
    """The summary's device lines: :func:`devices_total_sentence`, then :func:`device_sentence` per level."""
    return [devices_total_sentence(levels)] + [f"  {device_sentence(on, lv.fps)}" for on, lv in zip(levels, plan.levels)]


def devices_to_dict(plan: TreePlan, levels: tuple) -> Optional[dict]:
    """Plain-JSON form of the levels on their devices for the tree view, or ``None`` when every level runs
    on one device: ``{"levels": [LevelOnDevices.to_dict() + "sentence"], "seconds", "single_seconds",
    "speedup", "flops_per_second", "link_bytes_per_second", "sentence"}`` (seconds at the assumed rates)."""
    if all(on.devices == 1 for on in levels):
        return None
    seconds, single = _device_total(levels)
    return {"levels": [dict(on.to_dict(), sentence=device_sentence(on, lv.fps)) for on, lv in zip(levels, plan.levels)],
            "seconds": seconds, "single_seconds": single, "speedup": single / seconds,
            "flops_per_second": ASSUMED_FLOPS_PER_S, "link_bytes_per_second": ASSUMED_LINK_BYTES_PER_S,
            "sentence": devices_total_sentence(levels)}


def _untrained(approach: Approach, fps: float) -> str:
    """What of the model's training an approach leaves (``""`` when nothing), e.g. " (untrained: 1.5 fps, the
    model knows 6 fps and finer)" or " (untrained: chunks of 153 frames, trained 109)"; ``fps`` = interval 1's."""
    parts = []
    lengths = [b for b in approach.breaches if b.limit is Limit.TRAINED_LENGTH]
    intervals = [b for b in approach.breaches if b.limit is Limit.TRAINED_INTERVAL]
    if intervals:
        coarsest = max(intervals, key=lambda b: b.value)
        parts.append(f"{fps / coarsest.value:g} fps, the model knows {fps / coarsest.bound:g} fps and finer")
    if lengths:
        longest = max(lengths, key=lambda b: b.value)
        parts.append(f"chunks of {longest.value} frames, trained {longest.bound}")
    return f" (untrained: {'; '.join(parts)})" if parts else ""


def continuation_source(used: Any = None) -> str:
    """Which continuation settings a proposal uses and why (``used``: the plan's
    :class:`nodes.plan_limits.LimitsUsed`; ``None`` = no model connected), e.g. "the connected model's
    continuation settings" or "the paper's continuation settings, as no model is connected to this node"."""
    from .plan_limits import FROM_MODEL, PENDING

    source = None if used is None else used.source
    if source == FROM_MODEL:
        return ("the connected model's continuation settings" if used.continuation_declared
                else "the paper's continuation settings, as the connected model declares none")
    if source == PENDING:
        return ("the paper's continuation settings, drawn until the graph runs: the connected model's replace "
                "them")
    return "the paper's continuation settings, as no model is connected to this node"


def continuation_lines(long: LongCost, used: Any = None) -> list[str]:
    """The continuation proposal for a length beyond one trained tree
    (:func:`tempomaster_core.long_cost.long_video_cost`), for the summary and the tree view; ``used`` says whose
    continuation settings it was priced with (:func:`continuation_source`), e.g.
    "60.0 s is longer than one trained tree (436 frames, 18.2 s): make it as 3 segments of 600 + 600 + 480
    frames at the trained frame rates (after the first: 5 s of context + up to 480 new frames each, the paper's
    continuation settings, as no model is connected to this node; TempoMaster Continue with context_seconds 5
    and new_frames 480, command line --seconds 60)." and
    "Cost of the 60.0 s at an assumed 400 TFLOP/s on one device: continuation 5095 PFLOPs ~3.5 h; one tree
    (16, 8, 4, 2, 1) 4530 PFLOPs ~3.2 h (untrained: 1.5 fps ...); full-sequence pass 27351 PFLOPs ~19.0 h ..."."""
    seconds, template = long.seconds_of_video, long.template.final
    count = len(long.segments)
    # the Continue node's 0.01 s widget step: within 0.005 s, so the same frame count below 100 fps
    context = round(long.context_frames / long.fps, 2)
    head = (f"{seconds:.1f} s is longer than one trained tree ({template.num_frames} frames, "
            f"{template.duration_s:.1f} s): make it as {count} segment{'s' if count > 1 else ''} of "
            f"{_shares(long.segment_frames)} frames at the trained frame rates (after the first: "
            f"{context:g} s of context + up to {long.new_frames} new frames each, {continuation_source(used)}; "
            f"TempoMaster Continue with context_seconds {context:g} and new_frames {long.new_frames}, command line "
            f"--seconds {seconds:g}).")

    def told(approach: Approach, name: str) -> str:
        return (f"{name} {approach.dit_pflops:.0f} PFLOPs ~{duration(approach.seconds)}"
                f"{_untrained(approach, long.fps)}")

    cost = (f"Cost of the {seconds:.1f} s at an assumed {long.flops_per_second / 1e12:g} TFLOP/s on one device: "
            + "; ".join((told(long.continuation, "continuation"),
                         "no single tree this long" if long.one_tree is None else
                         told(long.one_tree, f"one tree {tuple(long.one_tree_plan.frame_intervals)}"),
                         told(long.full_sequence, "full-sequence pass"))) + ".")
    return [head, cost]


def continuation_to_dict(long: Optional[LongCost], used: Any = None) -> Optional[dict]:
    """Plain-JSON form of the continuation proposal for the tree view (``LongCost.to_dict()`` plus ``settings``:
    ``{"context_seconds", "new_frames", "source", "declared"}``, the continuation settings priced and whose they are
    (``source`` as :attr:`nodes.plan_limits.LimitsUsed.source`, ``"widget"`` when ``used`` is ``None``;
    ``declared``: the connected model's own), and its ``lines``, :func:`continuation_lines`), or ``None`` when the
    length fits one trained tree."""
    if long is None:
        return None
    from .plan_limits import FROM_WIDGET

    settings = {"context_seconds": long.context_frames / long.fps, "new_frames": long.new_frames,
                "source": FROM_WIDGET if used is None else used.source,
                "declared": bool(used is not None and used.continuation_declared)}
    return dict(long.to_dict(), settings=settings, lines=continuation_lines(long, used))


def _chosen_ladder(auto: AutoPlan) -> Optional[int]:
    """Index of the chosen ladder's row when the levels were chosen (else None: nothing to mark)."""
    if not auto.levels_chosen:
        return None
    return next(i for i, row in enumerate(auto.ladders) if row.intervals == auto.plan.frame_intervals)


def ladder_status(row: LadderOption, chosen: bool = False) -> str:
    """``"ok"``/``"chosen"``, the limits its plan breaks (``"; "``-joined), or why it gave no plan."""
    if row.error is not None:
        return row.error
    status = "; ".join(auto_warning(b) for b in row.breaches) or "ok"
    return "chosen" if chosen and status == "ok" else status


def auto_reasons(auto: AutoPlan) -> list[str]:
    """The planner's reasons, one line each: levels, blueprint, every level's choice, chunks per forward."""
    plan, reasons = auto.plan, []
    if auto.levels_chosen:
        fitting = sum(row.fits for row in auto.ladders)
        reasons.append(
            f"levels {plan.frame_intervals} ({' -> '.join(f'{lv.fps:g}' for lv in plan.levels)} fps): "
            + (f"the cheapest of {fitting} ladders that fit the limits" if fitting > 1
               else "the only ladder that fits the limits" if fitting
               else "no ladder fits every limit; this one breaks the fewest")
        )
    reasons.append(f"blueprint {plan.blueprint_frames} frames at {plan.levels[0].fps:g} fps for "
                   f"{auto.output_frames} output frames ({plan.final.num_frames} made, {plan.final.duration_s:.2f} s)")
    reasons.extend(f"level {c.index} ({plan.levels[c.index].fps:g} fps): {level_reason(c, auto.limits)}"
                   for c in auto.levels)
    for c in auto.levels:
        if c.max_parallel_chunks is not None:
            goal = (f"to stay within {gib(auto.limits.memory_budget_bytes)}"
                    if auto.limits.fits_memory(auto.cost.levels[c.index].peak_bytes)
                    else "to use the least memory (still over the budget)")
            reasons.append(f"level {c.index}: run at most {chunk_word(c.max_parallel_chunks)} per forward "
                           f"({FRAME_RATE_REFINER} max_parallel_chunks) {goal}")
    return reasons


def _candidate_dict(option: ChunkOption, choice: LevelChoice, limits: PlanLimits) -> dict:
    status = candidate_status(option, choice, limits)
    return {"chunks": option.chunks, "frames_per_chunk": option.frames_per_chunk,
            "pflops": None if option.dit_flops is None else option.dit_flops / PFLOP,
            "peak_gib": None if option.peak_bytes is None else option.peak_bytes / GIB, "parallel": option.parallel,
            "status": _chosen_status(status) if option.chunks == choice.chunks else status}


def _level_dict(choice: LevelChoice, limits: PlanLimits, fps: float) -> dict:
    return {
        "index": choice.index, "num_frames": choice.num_frames, "chunks": choice.chunks,
        "frames_per_chunk": choice.frames_per_chunk, "max_parallel_chunks": choice.max_parallel_chunks,
        "reference_chunks": choice.reference_chunks,
        "candidates": [_candidate_dict(c, choice, limits) for c in choice.candidates],
        "reason": level_reason(choice, limits), "sentence": level_sentence(choice, fps), "fixed": choice.fixed,
    }


def _ladder_dict(row: LadderOption, chosen: bool) -> dict:
    if row.error is not None:
        return {"intervals": list(row.intervals), "status": row.error}
    return {"intervals": list(row.intervals), "blueprint_frames": row.blueprint_frames,
            "pflops": row.dit_flops / PFLOP, "peak_gib": row.peak_bytes / GIB, "status": ladder_status(row, chosen)}


def auto_to_dict(auto: AutoPlan) -> dict:
    """Plain-JSON form of an auto plan for the web view (the plan itself is not repeated; see ``plan.to_dict()``).

    ``{"chunks", "frame_intervals", "max_parallel_chunks", "levels": [{..., "candidates", "reason",
    "sentence"}], "reasons", "warnings", "ladders": [{"intervals", "blueprint_frames", "pflops", "peak_gib",
    "status"}], "limits": {"trained_chunk_frames", "min_chunk_frames", "memory_budget_bytes"}}``.
    """
    chosen = _chosen_ladder(auto)
    limits = auto.limits
    return {
        "chunks": list(auto.plan.chunks),
        "frame_intervals": list(auto.plan.frame_intervals),
        "max_parallel_chunks": list(auto.max_parallel_chunks),
        "levels": [_level_dict(c, limits, auto.plan.levels[c.index].fps) for c in auto.levels],
        "reasons": auto_reasons(auto),
        "warnings": [auto_warning(b) for b in auto.breaches],
        "ladders": [_ladder_dict(row, i == chosen) for i, row in enumerate(auto.ladders)],
        "limits": {"trained_chunk_frames": limits.trained_chunk_frames, "min_chunk_frames": limits.min_chunk_frames,
                   "memory_budget_bytes": limits.memory_budget_bytes},
    }


__all__ = ["auto_reasons", "auto_to_dict", "auto_warning", "candidate_status", "chunk_word", "continuation_lines",
           "continuation_source", "continuation_to_dict", "device_lines",
           "device_sentence", "devices_to_dict", "devices_total_sentence", "duration", "gib", "interval_warning",
           "ladder_status", "level_reason", "level_sentence", "limits_sentence", "memory_sentence", "plan_warning"]
