"""The TreeScheduler's widgets, described once: names, types, defaults, choices, ranges, tooltips.

:data:`TREE_SCHEDULER_WIDGETS` is the one schema. The node's ``INPUT_TYPES`` is made from it
(:func:`input_types`), the plan route (``nodes/plan_route.py``) reads its names, types and
ranges to check a request, and the web view (``web/tree_layout.js``) imports the same list
from ``web/scheduler_schema.js``, which is generated from it (:func:`write_javascript`; run
``PYTHONPATH=.:tests python3 tests/test_plan_route.py --write-fixtures`` after a change, a test
checks the file is current).
Frame counts are pixel frames, ``fps`` is frames per second of interval 1, sizes are pixels,
``memory_budget_gb`` is GiB.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Optional

from tempomaster_core.defaults import BLUEPRINT_FRAMES, FPS, FRAME_INTERVALS, HEIGHT, TRAINED_CHUNK_FRAMES, WIDTH
from tempomaster_core.plan import BOUNDARY_MODES, MAX_BLUEPRINT_FRAMES, MAX_FPS, MAX_SIDE

from .parsing import PRESET_NAMES
from .plan_limits import MODEL_INPUT
from .types import MODEL_SOCKET_TYPES

#: ``frame_intervals`` choice that lets the planner pick the levels (ratio-2 ladders ending at the output fps).
AUTO_LEVELS = "auto: levels chosen by cost"
#: Widget order of ``frame_intervals``: the presets, ``custom``, then :data:`AUTO_LEVELS`.
INTERVAL_CHOICES: tuple[str, ...] = PRESET_NAMES + (AUTO_LEVELS,)
#: ``length_mode`` choices.
LENGTH_BLUEPRINT, LENGTH_SECONDS, LENGTH_FRAMES = "blueprint frames", "seconds", "output frames"
LENGTH_MODES: tuple[str, ...] = (LENGTH_BLUEPRINT, LENGTH_SECONDS, LENGTH_FRAMES)

#: The widget of the trained chunk length, used when no model is connected (``nodes/plan_limits.py``).
LIMIT_WIDGET = "trained_chunk_frames"

#: Widget kinds: ComfyUI's ``INT``/``FLOAT``/``STRING`` and ``COMBO`` (one of ``choices``).
KINDS = ("INT", "FLOAT", "STRING", "COMBO")


@dataclass(frozen=True)
class Widget:
    """One widget of the TreeScheduler.

    Attributes:
        name: the input's name (``INPUT_TYPES`` key, request field, workflow widget).
        kind: one of :data:`KINDS`.
        default: the value of a new node (and of an older workflow that lacks an optional widget).
        tooltip: the text ComfyUI shows on hover.
        required: in ``INPUT_TYPES["required"]`` (else ``"optional"``).
        choices: the values of a ``COMBO``.
        minimum, maximum, step: the range of an ``INT``/``FLOAT``.
        multiline: a ``STRING``'s text box kind.
    """

    name: str
    kind: str
    default: Any
    tooltip: str
    required: bool = True
    choices: tuple[str, ...] = ()
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    step: Optional[float] = None
    multiline: Optional[bool] = None

    def input_type(self) -> tuple:
        """The ``INPUT_TYPES`` entry: ``(kind or list of choices, options)``."""
        options: dict[str, Any] = {"default": self.default}
        for key, value in (("min", self.minimum), ("max", self.maximum), ("step", self.step),
                           ("multiline", self.multiline)):
            if value is not None:
                options[key] = value
        options["tooltip"] = self.tooltip
        return (list(self.choices) if self.kind == "COMBO" else self.kind, options)

    def to_dict(self) -> dict:
        """Plain-JSON form (the web view's copy): ``name``, ``type``, ``required``, then the options."""
        kind, options = self.input_type()
        out = {"name": self.name, "type": self.kind, "required": self.required, **options}
        if self.kind == "COMBO":
            out["choices"] = kind
        return out


TREE_SCHEDULER_WIDGETS: tuple[Widget, ...] = (
    Widget("blueprint_frames", "INT", BLUEPRINT_FRAMES, minimum=1, maximum=MAX_BLUEPRINT_FRAMES, step=4,
           tooltip="Pixel frames of the low-frame-rate blueprint; must be 4n+1 (e.g. 109). The final "
                   "video has blueprint_frames x (first interval / last interval) frames "
                   "(109 x 4 = 436 for intervals 4,2,1). Used when length_mode is 'blueprint frames'."),
    Widget("frame_intervals", "COMBO", INTERVAL_CHOICES[0], choices=INTERVAL_CHOICES,
           tooltip="Frame interval per level, blueprint first: interval i = one frame every i output "
                   "frames (4 at 24 fps = 6 fps). Each level multiplies the frame rate by "
                   "previous/next interval. The fps in the names assume fps = 24. 'custom' reads "
                   "custom_intervals. 'auto' picks the cheapest ladder (2,1), (4,2,1), (8,4,2,1) or "
                   "(16,8,4,2,1) whose blueprint fits the trained length (needs a length in seconds or "
                   "output frames)."),
    Widget("custom_intervals", "STRING", ",".join(map(str, FRAME_INTERVALS)), multiline=False,
           tooltip="Used only when frame_intervals is 'custom': intervals blueprint first, strictly "
                   "decreasing, each divisible by the next (e.g. 8,4,2,1 or 3,1)."),
    Widget("chunks", "STRING", "auto", multiline=False,
           tooltip="Chunks per refinement level, denoised in parallel as one batch. 'auto': the "
                   "cheapest split on the cost model that keeps every chunk within "
                   "trained_chunk_frames, fits memory_budget_gb and gives no chunk less context than "
                   "the reference code's chunk rule (= its chunks whenever they fit). 'reference': that "
                   "rule, max(4 / interval, 1) (2 at 12 fps, 4 at 24 fps). Or one count per "
                   "refinement level like '2,4' ('auto,8' lets auto pick the first)."),
    Widget("fps", "FLOAT", FPS, minimum=1.0, maximum=MAX_FPS, step=1.0,
           tooltip="Frame rate of the final level (interval 1). Each level runs at fps / interval."),
    Widget("width", "INT", WIDTH, minimum=16, maximum=MAX_SIDE, step=16,
           tooltip=f"Video width in pixels, multiple of 16 (the reference code's default: {WIDTH})."),
    Widget("height", "INT", HEIGHT, minimum=16, maximum=MAX_SIDE, step=16,
           tooltip=f"Video height in pixels, multiple of 16 (the reference code's default: {HEIGHT})."),
    Widget("length_mode", "COMBO", LENGTH_BLUEPRINT, choices=LENGTH_MODES, required=False,
           tooltip="'blueprint frames': the reference code's only mode, blueprint_frames sets the length exactly. "
                   "'seconds' / 'output frames': length is the output length at the output frame "
                   "rate; the smallest blueprint that covers it is used (the video may be a few "
                   "frames longer; the drawing shows the exact length)."),
    Widget("length", "FLOAT", 20.0, minimum=0.05, maximum=600.0, step=0.5, required=False,
           tooltip="Output length: seconds in 'seconds' mode, frames in 'output frames' mode "
                   "(ignored in 'blueprint frames' mode)."),
    Widget("memory_budget_gb", "FLOAT", 0.0, minimum=0.0, maximum=4096.0, step=1.0, required=False,
           tooltip="GPU memory the plan may use, in GiB, for 'auto' chunks and the warnings. 0 = what "
                   "is free on the GPU now (counting a TempoMaster model already there as free; no "
                   "limit on the CPU). Models of other nodes still loaded are not free: type the "
                   "card's size to plan for a clean start."),
    Widget(LIMIT_WIDGET, "INT", TRAINED_CHUNK_FRAMES, minimum=5, maximum=MAX_BLUEPRINT_FRAMES, step=4, required=False,
           tooltip="Longest chunk the model was trained on, in pixel frames (109 = 28 latent frames "
                   "for the released TempoMaster, 25 for TempoMaster-Tiny). Used only when nothing is connected "
                   "to the model input: a connected model's own training limits replace it. 'auto' keeps every "
                   "chunk within it; longer chunks are drawn in the warning colour."),
    Widget("boundary_frames", "COMBO", "repeat_anchor", choices=BOUNDARY_MODES, required=False,
           tooltip="Condition frames at chunk boundaries of refinement levels. 'repeat_anchor' (what the "
                   "authors ran): the first and last frame of every chunk copy the nearest earlier "
                   "frame of the level above, so a boundary between two anchors repeats a frame. "
                   "'anchors': only the true frames of the level above are conditions; boundary "
                   "frames are generated (no repeated frame, but only for a model trained for it: "
                   "TempoMaster-Tiny, trained on both, still has larger seams this way)."),
)

#: Widget names in node order; the required ones (the node's first seven) come first.
WIDGET_NAMES: tuple[str, ...] = tuple(w.name for w in TREE_SCHEDULER_WIDGETS)
REQUIRED_NAMES: tuple[str, ...] = tuple(w.name for w in TREE_SCHEDULER_WIDGETS if w.required)
#: Defaults of the optional planning widgets (also used when a workflow lacks them).
PLANNING_DEFAULTS: dict[str, Any] = {w.name: w.default for w in TREE_SCHEDULER_WIDGETS if not w.required}

_BY_NAME = {w.name: w for w in TREE_SCHEDULER_WIDGETS}


def widget(name: str) -> Widget:
    """The widget called ``name``.

    Raises:
        KeyError: no TreeScheduler widget has that name.
    """
    return _BY_NAME[name]


#: The optional model socket (``TEMPO_MODEL`` or ComfyUI's ``MODEL``; not a widget: no ``widgets_values``
#: entry, so adding it left the widgets of saved workflows where they were); its rule is ``nodes/plan_limits.py``'s.
MODEL_SOCKET = (MODEL_SOCKET_TYPES, {
    "tooltip": "Optional: the TempoMaster model (Load TempoMaster Model, or a LoRA after it; or ComfyUI's MODEL of the "
               "TempoMaster checkpoint, which declares no limits: the 14B's are used). Connected, the plan "
               "uses what that model was trained on: its frame intervals for the warnings and its clip length for "
               "'auto' chunks and the warnings, instead of the trained_chunk_frames widget (TempoMaster-Tiny: "
               "intervals 4,2,1 and 25 frames; the 14B: 4,2,1 and 109); a length beyond one trained tree is "
               "proposed in segments of its continuation settings (TempoMaster-Tiny: 1.54 s of context + 63 new "
               "frames; the 14B: the paper's 5 s + 480); the cost and memory are estimated for it. Not connected: "
               "the widget, the released model's intervals 4,2,1, the paper's continuation and the 14B's cost. "
               "The summary says which were used."})


def input_types() -> dict:
    """The node's ``INPUT_TYPES``: ``{"required": {name: entry}, "optional": {name: entry, ..., "model":
    MODEL_SOCKET}}`` (the widgets in schema order, then the model socket)."""
    return {
        "required": {w.name: w.input_type() for w in TREE_SCHEDULER_WIDGETS if w.required},
        "optional": {**{w.name: w.input_type() for w in TREE_SCHEDULER_WIDGETS if not w.required},
                     MODEL_INPUT: MODEL_SOCKET},
    }


#: The generated copy of the schema for the web view.
JS_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "web", "scheduler_schema.js")


def javascript_module() -> str:
    """The text of ``web/scheduler_schema.js``, an ES module of what the web view shares with Python:
    the schema (``TREE_SCHEDULER_WIDGETS``), the node class ids it looks for (``NODE_IDS``,
    ``nodes/display_names.py``), the name of the samplers' device-list widget (``DEVICES_WIDGET``, the
    input of ``nodes/multi_device.DEVICES_INPUT``), the scheduler's model socket (``MODEL_INPUT``), the plan route's path and the measured-time event's name
    (``PLAN_ROUTE``, ``LEVEL_TIME_EVENT``, ``nodes/plan_route.py``)."""
    from . import display_names, plan_route
    from .multi_device import DEVICES_INPUT
    from .sampler_nodes import BlueprintSampler

    devices = next(name for name, spec in BlueprintSampler.INPUT_TYPES()["optional"].items() if spec is DEVICES_INPUT)

    rows = ",\n".join("  " + json.dumps(w.to_dict(), ensure_ascii=False) for w in TREE_SCHEDULER_WIDGETS)
    ids = {"scheduler": display_names.TREE_SCHEDULER_ID, "blueprint": display_names.BLUEPRINT_SAMPLER_ID,
           "refiner": display_names.FRAME_RATE_REFINER_ID, "loader": display_names.LOAD_MODEL_ID,
           "lora": display_names.LORA_LOADER_ID}
    return ("// Generated from nodes/scheduler_schema.py (write_javascript): do not edit.\n"
            "// The TreeScheduler's widgets (names, types, defaults, choices, ranges, tooltips): the schema the\n"
            "// node's INPUT_TYPES and the plan route are made from, for the tree view.\n"
            f"export const TREE_SCHEDULER_WIDGETS = Object.freeze([\n{rows},\n]);\n"
            "// Node class ids the view looks for in the graph (nodes/display_names.py).\n"
            f"export const NODE_IDS = Object.freeze({json.dumps(ids)});\n"
            "// The samplers' device-list widget (nodes/multi_device.py): its text goes with the plan request.\n"
            f"export const DEVICES_WIDGET = {json.dumps(devices)};\n"
            "// The scheduler's model socket (nodes/plan_limits.py): the linked model's training limits go with it.\n"
            f"export const MODEL_INPUT = {json.dumps(MODEL_INPUT)};\n"
            "// The plan route and the measured-time event (nodes/plan_route.py).\n"
            f"export const PLAN_ROUTE = {json.dumps(plan_route.ROUTE_PATH)};\n"
            f"export const LEVEL_TIME_EVENT = {json.dumps(plan_route.LEVEL_TIME_EVENT)};\n")


def write_javascript(path: str = JS_PATH) -> str:
    """Write :func:`javascript_module` to ``path`` (default ``web/scheduler_schema.js``); returns the path.

    Raises:
        OSError: the file cannot be written.
    """
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(javascript_module())
    return path


__all__ = ["AUTO_LEVELS", "INTERVAL_CHOICES", "LENGTH_MODES", "LIMIT_WIDGET", "MODEL_SOCKET", "PLANNING_DEFAULTS",
           "REQUIRED_NAMES",
           "TREE_SCHEDULER_WIDGETS", "WIDGET_NAMES", "Widget", "input_types", "javascript_module", "widget",
           "write_javascript"]
