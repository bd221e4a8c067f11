"""TreeScheduler: the shape of the generation tree as a ``TEMPO_PLAN``, planned for the artist.

All planning rules live in the core (the one source of truth):
``tempomaster_core.plan.TreePlan`` (the tree), ``tempomaster_core.autoplan``
(output length -> blueprint, the automatic tree) and ``tempomaster_core.cost``
(FLOPs and memory). This module only parses the node's widgets
(``nodes/parsing.py`` plus the few keywords below) and calls them:
:func:`build_schedule` is used by the node (an impossible tree is refused when it
runs, with the plan's message, which names the nearest valid values, e.g. "nearest
valid values: 105 or 109") and by the web view's HTTP route (``nodes/plan_route.py``),
so the drawing always shows the plan the node will make, or that message in its
place as it is typed. ``VALIDATE_INPUTS`` checks only ``boundary_frames`` (see its doc:
ComfyUI repeats its message on every input it names).

Widgets added for planning (all optional, so older API workflows still run):

- ``length_mode``: ``"blueprint frames"`` (the reference's exact mode, default),
  ``"seconds"`` or ``"output frames"`` (``length`` at the output frame rate; the
  blueprint is derived, :func:`tempomaster_core.autoplan.blueprint_for_length`).
- ``chunks``: ``"auto"`` = the cheapest chunks within the limits
  (:func:`tempomaster_core.autoplan.auto_plan`; the reference's chunks when they
  fit), ``"reference"`` = the reference's rule ``max(4 / interval, 1)``, or counts.
- ``frame_intervals``: :data:`AUTO_LEVELS` lets the planner choose the levels too.
- ``memory_budget_gb`` (0 = the GPU's free memory, :func:`auto_memory_budget`; no limit on the CPU) and
  ``trained_chunk_frames`` (109): the limits of the auto mode and of the warnings. The training limits
  (chunk length and frame intervals) come from the model when one is connected to the optional ``model``
  socket (its declared ones; the widget is then not used), else from the widget and the released model's
  intervals: ``nodes/plan_limits.py``; the summary says which. So do the continuation settings of the
  continuation proposal (the connected model's, else the paper's 5 s of context + 480 new frames), and a
  connected model's shape and weight dtype are what the cost and memory are estimated for (:func:`priced_as`;
  else the 14B release).
- ``boundary_frames``: ``"repeat_anchor"`` (default) or ``"anchors"``, the plan's chunk-boundary
  conditions (:data:`tempomaster_core.plan.BOUNDARY_MODES`; the former name ``"reference"`` of
  ``"repeat_anchor"`` is accepted, so workflows saved before the rename still run).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Optional

from tempomaster_core.defaults import CFG, TRAINED_CHUNK_FRAMES, WEIGHT_DTYPE
from tempomaster_core.validation import require_number, require_whole_number
from tempomaster_core.plan import TreePlan, boundary_mode

from .parsing import INTERVAL_PRESETS, parse_chunks, parse_intervals
from .scheduler_schema import (
    AUTO_LEVELS,
    INTERVAL_CHOICES,
    LENGTH_BLUEPRINT,
    LENGTH_MODES,
    LENGTH_SECONDS,
    PLANNING_DEFAULTS,
    input_types,
)
from .display_names import BLUEPRINT_SAMPLER
from .plan_limits import from_model, from_widget
from .types import TEMPO_PLAN

#: ``chunks`` keyword for the reference's chunk rule (``"auto"`` means the cost-based choice).
REFERENCE_CHUNKS = "reference"


@dataclass
class Schedule:
    """What the TreeScheduler makes for its widget values.

    Attributes:
        plan: the :class:`~tempomaster_core.plan.TreePlan`.
        cost: its :class:`~tempomaster_core.cost.PlanCost` (14B model unless told otherwise,
            the reference's default steps and cfg unless told otherwise).
        warnings: limits the plan breaks (trained chunk length, memory budget).
        auto: the :class:`~tempomaster_core.autoplan.AutoPlan` when the planner chose, else None.
        inputs: the resolved inputs (mode, output frames asked, budget in bytes, ...).
        memory: whether it runs within the budget, and with what (:func:`memory_fit`).
        devices: each level on its device count, blueprint first
            (:class:`~tempomaster_core.cost_devices.LevelOnDevices`: each device's share, the level time as the
            slowest device plus communication, the speed-up against one device).
        continuation: for a length beyond one trained tree, the continuation proposal priced against one
            big tree and a full-sequence pass (:class:`~tempomaster_core.long_cost.LongCost`), else None.
        limits: the training limits and continuation settings planned with and their source
            (:class:`nodes.plan_limits.LimitsUsed`).
    """

    plan: Any
    cost: Any
    warnings: list = field(default_factory=list)
    auto: Any = None
    inputs: dict = field(default_factory=dict)
    memory: dict = field(default_factory=dict)
    devices: tuple = ()
    continuation: Any = None
    limits: Any = None

    def summary(self) -> str:
        """The tree, its cost and memory, the planner's reasons and the warnings, as text."""
        from tempomaster_core.cost import GIB, PFLOP

        lines = [self.plan.describe()]
        for level, priced in zip(self.plan.levels, self.cost.levels):
            lines.append(f"  level {level.index}: {priced.dit_flops / PFLOP:.1f} PFLOPs "
                         f"({priced.work.steps} steps x {priced.passes_per_step} passes), "
                         f"peak ~{priced.peak_bytes / GIB:.1f} GiB")
        total = self.cost.dit_flops / PFLOP
        text = f"Estimated DiT work {total:.1f} PFLOPs, peak memory ~{self.cost.peak_bytes / GIB:.1f} GiB"
        if self.cost.full_sequence is not None:
            text += (f"; one full-sequence pass would cost {self.cost.full_sequence.dit_flops / PFLOP:.1f} PFLOPs "
                     f"({self.cost.saving_vs_full_sequence:.1f}x)")
        lines.append(text)
        if self.memory:
            lines.append(self.memory["sentence"])
        if any(level.devices > 1 for level in self.devices):
            from .plan_text import device_lines

            lines.extend(device_lines(self.plan, self.devices))
        if self.continuation is not None:
            from .plan_text import continuation_lines

            lines.extend(continuation_lines(self.continuation, self.limits))
        if self.auto is not None:
            from .plan_text import auto_reasons

            lines.append("Auto plan:")
            lines.extend(f"  - {reason}" for reason in auto_reasons(self.auto))
        if self.limits is not None:
            from .plan_text import limits_sentence

            lines.append(limits_sentence(self.limits))
        lines.extend(f"WARNING: {w}" for w in self.warnings)
        return "\n".join(lines)


def memory_fit(cost: Any, *, dtype: str, num_layers: int, budget: Optional[int],
               all_swapped_peak: Optional[int] = None) -> dict:
    """Whether a priced plan runs within the memory budget, and with what, for the summary and the
    tree view (``memory`` of the plan route's reply).

    Args:
        cost: the :class:`~tempomaster_core.cost.PlanCost` (its ``blocks_to_swap`` setting included).
        dtype: the weight dtype priced; num_layers: the DiT's blocks.
        budget: the memory budget in bytes (``None``: no budget, e.g. on the CPU).
        all_swapped_peak: the peak with every block swapped, when even that does not fit (or ``None``).

    Returns:
        ``{"weight_dtype", "blocks_to_swap", "num_layers", "peak_bytes", "budget_bytes", "runnable"
        (None without a budget), "swap_bytes_per_pass", "swap_seconds_per_pass", "all_swapped_peak_bytes",
        "sentence"}`` (bytes as ints, seconds at :data:`tempomaster_core.cost.PCIE_BYTES_PER_S`).
    """
    from .plan_text import memory_sentence

    peak_level = cost.levels[cost.peak_level]
    fit = {
        "weight_dtype": str(dtype), "blocks_to_swap": int(peak_level.blocks_to_swap), "num_layers": int(num_layers),
        "peak_bytes": int(cost.peak_bytes), "budget_bytes": budget,
        "runnable": None if budget is None else cost.peak_bytes <= budget,
        "swap_bytes_per_pass": int(peak_level.swap_bytes_per_pass),
        "swap_seconds_per_pass": peak_level.swap_seconds_per_pass,
        "all_swapped_peak_bytes": all_swapped_peak,
    }
    fit["sentence"] = memory_sentence(fit)
    return fit


def _chunks_mode(chunks: str, refinement_levels: Optional[int]) -> tuple[str, Any]:
    """``("reference", None)``, ``("auto", fixed-or-None per level)`` or ``("manual", counts)``."""
    text = str(chunks).strip().lower()
    if text == REFERENCE_CHUNKS:
        return "reference", None
    if not text or "auto" in text:
        if refinement_levels is None:  # levels not known yet: only all-auto makes sense
            if text not in ("", "auto"):
                raise ValueError('with frame_intervals "auto" the chunks must be "auto" too (the levels are '
                                 "not known before planning)")
            return "auto", None
        return "auto", parse_chunks(chunks, refinement_levels)
    if refinement_levels is None:
        raise ValueError('with frame_intervals "auto" the chunks must be "auto" (the levels are not known '
                         "before planning); pick an interval preset to give chunk counts")
    return "manual", parse_chunks(chunks, refinement_levels)


def auto_memory_budget() -> Optional[int]:
    """The budget for ``memory_budget_gb = 0``: bytes the plan may use on the compute device.

    Inside ComfyUI: its free memory on the compute device (``get_free_memory``: free plus
    memory PyTorch holds in its cache) plus the weights of a TempoMaster DiT already resident
    there (the plan's own model is not a competitor). Outside ComfyUI: the free memory of the
    current CUDA device. ``None`` (no limit) on the CPU.
    """
    import importlib

    import torch

    from tempomaster_core.cost import default_memory_budget

    from . import comfy_env, model_loader

    device = comfy_env.compute_device()
    if device.type == "cpu":
        return None
    try:
        mm = importlib.import_module("comfy.model_management")
        free = int(mm.get_free_memory(device))
    except ImportError:
        free = default_memory_budget()
    if free is None:
        return None
    def on_device(where: torch.device) -> bool:
        return where.type == device.type and (device.index is None or where.index in (None, device.index))

    resident = 0
    for model in model_loader.cached_models():
        resident += sum(p.numel() * p.element_size() for p in model.parameters() if on_device(p.device))
    return free + resident


def _budget_bytes(memory_budget_gb: Any) -> Optional[int]:
    """Bytes of the ``memory_budget_gb`` widget (GiB; 0 = :func:`auto_memory_budget`); ValueError otherwise."""
    from tempomaster_core.cost import GIB

    value = _real(memory_budget_gb, "memory_budget_gb")
    if not math.isfinite(value * GIB):
        raise ValueError(f"memory_budget_gb must be a finite number of GiB, got {memory_budget_gb!r}")
    if value < 0:
        raise ValueError(f"memory_budget_gb must be >= 0 (0 = the GPU's free memory), got {value:g}")
    return auto_memory_budget() if value == 0 else int(value * GIB)


def _real(value: Any, name: str) -> float:
    """A widget's number as a finite float (ValueError otherwise: text, NaN, infinities)."""
    return require_number(value, name, parse_text=True, error=ValueError)


def _whole(value: Any, name: str) -> int:
    """A widget's whole number as an int: ints, and floats/text with an integral value (ValueError otherwise)."""
    return require_whole_number(value, name, error=ValueError)


def build_schedule(blueprint_frames: int, frame_intervals: str, custom_intervals: str, chunks: str,
                   fps: float, width: int, height: int, length_mode: str = LENGTH_BLUEPRINT,
                   length: float = PLANNING_DEFAULTS["length"],
                   memory_budget_gb: float = PLANNING_DEFAULTS["memory_budget_gb"],
                   trained_chunk_frames: int = TRAINED_CHUNK_FRAMES,
                   boundary_frames: str = PLANNING_DEFAULTS["boundary_frames"],
                   *, steps: Any = None, cfg: Any = CFG, model: Any = "14B", dtype: str = WEIGHT_DTYPE,
                   blocks_to_swap: Optional[int] = None, devices: Any = 1, limits: Any = None) -> Schedule:
    """The plan, its cost and warnings for the node's widget values.

    Args:
        blueprint_frames: pixel frames of the blueprint (4n+1, e.g. 109); used in
            ``"blueprint frames"`` mode.
        frame_intervals: a preset from :data:`~nodes.parsing.PRESET_NAMES`, or
            :data:`AUTO_LEVELS` (needs a length in seconds or output frames).
        custom_intervals: intervals text for the ``custom`` preset, e.g. ``"8,4,2,1"``.
        chunks: ``"auto"`` (cost-based, see module doc), ``"reference"`` (the reference's rule), or one count per
            refinement level (``"2,4"``; ``"auto,8"`` lets the planner pick the first).
        fps: base frame rate (interval 1), e.g. 24.
        width, height: pixel size, multiples of 16.
        length_mode: one of :data:`LENGTH_MODES`.
        length: seconds (``"seconds"``) or pixel frames (``"output frames"``) of the
            output, at the output frame rate ``fps / last interval``.
        memory_budget_gb: GiB the plan may use (0 = :func:`auto_memory_budget`, unbounded on the CPU).
        trained_chunk_frames: longest chunk the model was trained on, pixel frames (109); used when ``limits``
            is ``None`` (no model connected), with the released model's frame intervals.
        boundary_frames: chunk-boundary condition frames, one of
            :data:`tempomaster_core.plan.BOUNDARY_MODES` (``"repeat_anchor"``: as the authors ran it),
            or a former name (:data:`tempomaster_core.plan.BOUNDARY_ALIASES`).
        steps, cfg: sampler settings for the estimate (default: the reference's 50/32/.. and 8;
            one value or one per level).
        model: DiT shape for the estimate: a :class:`~tempomaster_core.config.DiTConfig` (the model in
            use, e.g. :func:`nodes.model_loader.model_config`) or a key of
            ``tempomaster_core.cost.KNOWN_CONFIGS`` (``"14B"``: the release); its ``text_len``
            (umT5's 512 when it takes any length) sets the text tokens priced.
        dtype: weight dtype of the estimate (LoadTempoModel's ``weight_dtype``: ``"bf16"``, ``"fp8_e4m3fn"`` ...).
        blocks_to_swap: DiT blocks the estimate keeps off the GPU (block swap; inside ComfyUI its partial
            loading); ``None`` = the fewest that make the plan fit the memory budget
            (:func:`tempomaster_core.autoplan.least_blocks_to_swap`; 0 without a budget, or when none fits).
        devices: devices each level is shared over (the samplers' ``devices`` lists, ``torchrun``'s ranks):
            one count or one per level, 1.. :data:`tempomaster_core.cost_devices.MAX_DEVICES`; priced by
            :func:`tempomaster_core.cost_devices.plan_on_devices` at its assumed throughput and bandwidth.
        limits: the training limits to plan with, a :class:`nodes.plan_limits.LimitsUsed` (the connected model's,
            :func:`~nodes.plan_limits.from_model`); ``None`` = :func:`~nodes.plan_limits.from_widget` of
            ``trained_chunk_frames``. Its clip length is the auto planner's trained length and the warnings'; its
            intervals are the warnings' and the continuation proposal's trained tree; its continuation settings
            (context seconds, new frames per segment) are the proposal's segments.

    Raises:
        ValueError: unparsable text (``nodes.parsing``), an impossible plan
            (``tempomaster_core.plan.PlanError``, including the plan's size limits such as
            ``MAX_OUTPUT_FRAMES``), a number that is not finite, or bad limits. Nothing else for
            any widget value, and every input is answered quickly (all sizes are bounded before
            planning), so ``VALIDATE_INPUTS`` and the web route can call it on the event loop.
    """
    from tempomaster_core.autoplan import (
        AutoRequest,
        CostSettings,
        PlanLimits,
        auto_plan,
        blueprint_for_length,
        interval_breaches,
        least_blocks_to_swap,
        limit_breaches,
        output_frames_for_seconds,
    )
    from tempomaster_core.config import DiTConfig
    from tempomaster_core.cost import KNOWN_CONFIGS, CostError, estimate_plan_cost, model_text_len
    from tempomaster_core.cost_devices import plan_on_devices

    from .plan_text import auto_warning, interval_warning, plan_warning

    if frame_intervals not in INTERVAL_CHOICES:
        raise ValueError(f"unknown frame-interval preset {frame_intervals!r}; choose one of {list(INTERVAL_CHOICES)}")
    if length_mode not in LENGTH_MODES:
        raise ValueError(f"unknown length_mode {length_mode!r}; choose one of {list(LENGTH_MODES)}")
    boundary_frames = boundary_mode(boundary_frames, "boundary_frames")
    if isinstance(model, DiTConfig):
        config = model
    elif isinstance(model, str) and model in KNOWN_CONFIGS:
        config = KNOWN_CONFIGS[model]
    else:
        raise ValueError(f"unknown model {model!r} for the estimate; choose one of {list(KNOWN_CONFIGS)}")
    text_len = model_text_len(config)
    intervals = None if frame_intervals == AUTO_LEVELS else TreePlan.check_intervals(
        parse_intervals(frame_intervals, custom_intervals))
    mode, chunk_values = _chunks_mode(chunks, None if intervals is None else len(intervals) - 1)
    budget = _budget_bytes(memory_budget_gb)
    widget_limit = _whole(trained_chunk_frames, "trained_chunk_frames")
    used = limits if limits is not None else from_widget(widget_limit)
    trained, trained_intervals = used.limits.chunk_frames, used.limits.frame_intervals
    fps = TreePlan.check_fps(_real(fps, "fps"))
    width, height = _whole(width, "width"), _whole(height, "height")
    output_fps = fps / (intervals[-1] if intervals else 1)
    if length_mode == LENGTH_BLUEPRINT:
        if intervals is None:
            raise ValueError('frame_intervals "auto" needs the output length: set length_mode to "seconds" or '
                             '"output frames"')
        blueprint = _whole(blueprint_frames, "blueprint_frames")
        # the plan's size limits, named after the blueprint; the auto planner's blueprint for this
        # length is this one again (TreePlan.smallest_blueprint inverts TreePlan.level_frames)
        wanted = TreePlan.level_frames(blueprint, intervals)[-1]
    elif length_mode == LENGTH_SECONDS:
        wanted = output_frames_for_seconds(_real(length, "length"), output_fps)
    else:
        frames = _real(length, "length")
        if frames != int(frames) or frames < 1:
            raise ValueError(f"length must be a whole number of output frames >= 1 in 'output frames' mode, got {length!r}")
        wanted = int(frames)
    scalar_cfg = max(_real(c, "cfg") for c in cfg) if isinstance(cfg, (list, tuple)) and cfg else cfg

    def make(swapped: int) -> tuple:
        """``(plan, cost, auto plan or None)`` with ``swapped`` blocks swapped."""
        auto = None
        try:
            if mode == "auto":
                limits = PlanLimits(trained_chunk_frames=trained, memory_budget_bytes=budget)
                costing = CostSettings(config=config, steps=steps if intervals else None, cfg=scalar_cfg, dtype=dtype,
                                       text_len=text_len, blocks_to_swap=swapped)
                auto = auto_plan(AutoRequest(wanted, height=height, width=width, fps=fps, intervals=intervals,
                                             chunks=chunk_values, limits=limits, costing=costing))
                plan = replace(auto.plan, boundary=boundary_frames)
            else:
                plan = TreePlan(blueprint if length_mode == LENGTH_BLUEPRINT else blueprint_for_length(wanted, intervals),
                                intervals, chunk_values, height=height, width=width, fps=fps, boundary=boundary_frames)
            cost = estimate_plan_cost(plan, config, steps, cfg, text_len=text_len, dtype=dtype, blocks_to_swap=swapped,
                                      max_batch=list(auto.max_parallel_chunks) if auto is not None else None)
        except CostError as err:
            raise ValueError(str(err)) from None
        return plan, cost, auto

    def make_unbounded() -> Any:
        """The auto plan without a memory budget (its chunks are the ones memory should not change)."""
        costing = CostSettings(config=config, steps=steps if intervals else None, cfg=scalar_cfg, dtype=dtype,
                               text_len=text_len)
        return auto_plan(AutoRequest(wanted, height=height, width=width, fps=fps, intervals=intervals,
                                     chunks=chunk_values, costing=costing,
                                     limits=PlanLimits(trained_chunk_frames=trained, memory_budget_bytes=None)))

    best_peak = None
    if blocks_to_swap is not None:
        swapped = _whole(blocks_to_swap, "blocks_to_swap")
        plan, cost, auto = make(swapped)
    else:  # the fewest swapped blocks whose plan fits the budget (none when nothing fits)
        tried = {}

        def fits(count: int, chunks: Any = None) -> bool:
            if count not in tried:
                tried[count] = make(count)
            plan_n, cost_n, _ = tried[count]
            return (budget is None or cost_n.peak_bytes <= budget) and chunks in (None, plan_n.chunks)

        least = None
        if mode == "auto" and budget is not None and not fits(0):
            # first the chunks the planner picks without a memory limit: swapping costs time only,
            # shorter chunks would change the video
            free = make_unbounded().plan.chunks
            least = least_blocks_to_swap(lambda count: fits(count, free), config.num_layers)
        if least is None:
            least = least_blocks_to_swap(fits, config.num_layers)
        swapped = least or 0
        plan, cost, auto = tried[swapped] if swapped in tried else make(swapped)
        if least is None and config.num_layers in tried:  # what the most swapping would give
            best_peak = tried[config.num_layers][1].peak_bytes
    if auto is not None:
        warnings = [auto_warning(breach) for breach in auto.breaches]
    else:
        breaches = limit_breaches(plan, cost, trained_chunk_frames=trained, memory_budget_bytes=budget)
        warnings = [plan_warning(breach, plan) for breach in breaches]
    warnings += [interval_warning(breach, plan) for breach in interval_breaches(plan, trained_intervals)]
    try:
        on_devices = plan_on_devices(cost, devices)
    except CostError as err:
        raise ValueError(str(err)) from None
    inputs = {"length_mode": length_mode, "output_frames_wanted": wanted, "output_fps": output_fps,
              "chunks_mode": mode, "levels_mode": "auto" if intervals is None else "fixed",
              "trained_chunk_frames": trained, "trained_limits": used.to_dict(), "memory_budget_bytes": budget,
              "model": model if isinstance(model, str) else None, "weight_dtype": dtype,
              "blocks_to_swap": swapped, "boundary_frames": boundary_frames,
              "devices": [level.devices for level in on_devices]}
    memory = memory_fit(cost, dtype=dtype, num_layers=config.num_layers, budget=budget, all_swapped_peak=best_peak)
    continuation = _continuation(wanted / output_fps, plan, used, config, steps, cfg, dtype=dtype,
                                 text_len=text_len)
    return Schedule(plan=plan, cost=cost, warnings=warnings, auto=auto, inputs=inputs, memory=memory,
                    devices=on_devices, continuation=continuation, limits=used)


def _continuation(seconds: float, plan: TreePlan, used: Any, config: Any, steps: Any, cfg: Any, **run: Any) -> Any:
    """The continuation proposal (:func:`tempomaster_core.long_cost.long_video_cost` on the longest trained tree at
    the plan's size, fps and boundary, in segments of the continuation settings, for ``used``, a
    :class:`~nodes.plan_limits.LimitsUsed`: its training limits and continuation settings) when the ``seconds``
    asked for are more than that tree makes, else None.
    The plan's steps and cfg are priced when they are one value or one per level of that tree, the reference's
    otherwise."""
    from tempomaster_core.cost import CostError
    from tempomaster_core.long_cost import long_video_cost, trained_tree
    from tempomaster_core.plan import PlanError

    limits, settings = used.limits, used.continuation
    try:
        template = trained_tree(height=plan.height, width=plan.width, fps=plan.fps,
                                trained_chunk_frames=limits.chunk_frames, intervals=limits.frame_intervals,
                                boundary=plan.boundary)
    except PlanError:  # a trained length too short for a tree at this size: nothing to propose
        return None
    total = round(seconds * template.final.fps)
    if total <= template.final.num_frames:
        return None

    def fitting(value: Any, default: Any) -> Any:
        several = isinstance(value, (list, tuple))
        return value if not several or len(value) == template.num_levels else default

    try:
        return long_video_cost(template, total, context_frames=settings.context_frames(template.final.fps),
                               new_frames=settings.new_frames, config=config, steps=fitting(steps, None),
                               cfg=fitting(cfg, CFG), trained_chunk_frames=limits.chunk_frames,
                               trained_intervals=limits.frame_intervals, **run)
    except CostError as err:
        raise ValueError(str(err)) from None


def priced_as(model: Any) -> dict:
    """``{"model": config, "dtype": name}`` for :func:`build_schedule`: the shape of a connected ``TEMPO_MODEL``'s
    DiT (a ModelPatcher or a bare DiT; its :class:`~tempomaster_core.config.DiTConfig`, text length included) and
    the storage dtype of its block weights (a :data:`~tempomaster_core.loading.STORAGE_DTYPES` name such as
    ``"fp32"`` or ``"fp8_e4m3fn"``; ``"fp32"`` for a float64 test model), so the node's summary prices the model
    in use as the tree view prices the Load TempoMaster Model it reads (``nodes/plan_route.py``). ``{}`` (the 14B
    release is priced) for an object without a DiT's config and weight dtype."""
    from tempomaster_core.config import DiTConfig
    from tempomaster_core.loading import STORAGE_DTYPES, parse_dtype

    from .comfy_model import dit_of

    dit = dit_of(model)
    config, weights = getattr(dit, "config", None), getattr(dit, "weight_dtype", None)
    if not isinstance(config, DiTConfig) or weights is None:
        return {}
    return {"model": config, "dtype": next((n for n in STORAGE_DTYPES if parse_dtype(n) == weights), "fp32")}


def build_plan(blueprint_frames: int, frame_intervals: str, custom_intervals: str, chunks: str,
               fps: float, width: int, height: int, **planning):
    """The :class:`~tempomaster_core.plan.TreePlan` for the node's widget values
    (:func:`build_schedule` without the cost; same arguments and errors)."""
    return build_schedule(blueprint_frames, frame_intervals, custom_intervals, chunks, fps, width, height,
                          **planning).plan


class TreeScheduler:
    """ComfyUI node: output length, frame intervals, chunks, fps, size and limits -> ``TEMPO_PLAN``."""

    CATEGORY = "TempoMaster"
    FUNCTION = "plan"
    RETURN_TYPES = (TEMPO_PLAN, "STRING")
    RETURN_NAMES = ("plan", "summary")
    OUTPUT_TOOLTIPS = (
        "The tree: levels, frame rates, chunks per level, condition frames and RoPE positions. "
        f"Feed it to the {BLUEPRINT_SAMPLER}; the refiners read it from the level they get.",
        "A readable summary: levels, fps, frames, chunks, estimated PFLOPs and memory, the auto planner's "
        "reasons and any warning (e.g. for a text display node).",
    )
    DESCRIPTION = (
        "Plans the TempoMaster hierarchy: a blueprint at a low frame rate (e.g. 109 frames at 6 fps), then "
        "refinement levels that each multiply the frame rate (12, then 24 fps), every level split into chunks "
        "denoised in parallel. Give the length in blueprint frames (the reference code's default: 109 -> 436 "
        "frames at 24 fps) or in seconds; 'auto' chunks pick the cheapest split that keeps chunks within the trained length and the "
        "memory budget. Connect the model to the optional model input to plan with what it was trained on (its frame "
        "intervals and clip length replace the trained_chunk_frames widget; without it, the widget and intervals "
        "4,2,1), to propose a longer video in segments of its continuation settings (without it, the paper's 5 s of "
        "context + 480 new frames) and to estimate its cost and memory (without it, the 14B's); the summary says "
        "which were used. The drawing on the node shows the tree, its cost and memory before you queue."
    )

    @classmethod
    def INPUT_TYPES(cls):
        """The widgets, from the one schema (:data:`nodes.scheduler_schema.TREE_SCHEDULER_WIDGETS`)."""
        return input_types()

    @classmethod
    def VALIDATE_INPUTS(cls, boundary_frames=PLANNING_DEFAULTS["boundary_frames"]):
        """``True``, or why ``boundary_frames`` is no boundary mode (ComfyUI shows it at queue time).

        How ComfyUI 0.3.64 uses this (``execution.validate_inputs``): it passes only the inputs
        named in this signature, skips its own range and choice checks for exactly those, and
        attaches a returned message to every one of them. So it names the one input whose check
        is ours: ``boundary_frames``, which also takes the former mode names (``"reference"``,
        :data:`tempomaster_core.plan.BOUNDARY_ALIASES`) that ComfyUI's choice check would refuse.
        A mistake is then one message on the input it concerns: every other widget gets ComfyUI's
        own checks (its range, its choices), and the plan's rules, which combine several inputs
        (4n+1 frames, a chunk count per level, sizes, limits), are drawn on the node by the tree
        view as they are typed and raised once, with the plan's message, when the node runs
        (:meth:`plan`). A linked input arrives as ``None`` and is checked when the node runs.
        """
        if boundary_frames is None:
            return True
        try:
            boundary_mode(boundary_frames, "boundary_frames")
        except ValueError as err:
            return str(err)
        return True

    def plan(self, blueprint_frames: int, frame_intervals: str, custom_intervals: str, chunks: str,
             fps: float, width: int, height: int, length_mode: Optional[str] = None, length: Optional[float] = None,
             memory_budget_gb: Optional[float] = None, trained_chunk_frames: Optional[int] = None,
             boundary_frames: Optional[str] = None, model: Any = None):
        """Return ``(plan, summary)``; see :func:`build_schedule` (raises its errors).

        Optional planning inputs left out (``None``) take :data:`PLANNING_DEFAULTS`. ``model``: the optional
        ``TEMPO_MODEL``; connected, its training limits replace ``trained_chunk_frames`` and its continuation
        settings shape the continuation proposal (:func:`nodes.plan_limits.from_model`), and the cost and memory
        are estimated for its shape and weight dtype (:func:`priced_as`); not connected, for the 14B release.
        """
        given = dict(length_mode=length_mode, length=length, memory_budget_gb=memory_budget_gb,
                     trained_chunk_frames=trained_chunk_frames, boundary_frames=boundary_frames)
        planning = {k: PLANNING_DEFAULTS[k] if v is None else v for k, v in given.items()}
        connected = {} if model is None else dict(priced_as(model), limits=from_model(model))
        schedule = build_schedule(blueprint_frames, frame_intervals, custom_intervals, chunks, fps, width, height,
                                  **planning, **connected)
        return (schedule.plan, schedule.summary())


__all__ = ["TreeScheduler", "build_plan", "build_schedule", "priced_as", "Schedule", "INTERVAL_PRESETS",
           "INTERVAL_CHOICES", "AUTO_LEVELS", "LENGTH_MODES"]
