"""Build the example workflows, their API-format test copies and their thumbnails.

Usage (from the repository root)::

    python3 tools/make_workflows.py            # write example_workflows/*.json + *.jpg, tests/workflows_api/*.json
    python3 tools/make_workflows.py --check    # exit 1 if the files on disk differ from what would be written
    python3 tools/make_workflows.py --tiny-thumbnail   # also redraw the built-in model's thumbnails from real frames

The built-in-model workflow ``tiny_text_to_video`` takes its settings from the
shipped bundle's ``tempomaster_core/builtin/defaults.json`` (read with
``tempomaster_core.tiny.builtin.bundle_defaults``), so regenerate after the
defaults change. The 14B-model workflows take the reference's settings from
``tempomaster_core.defaults``, and every workflow takes the TreeScheduler widgets it does
not set from ``nodes.scheduler_schema.PLANNING_DEFAULTS``. The built-in-model workflows'
thumbnails (``tiny_text_to_video``, ``tiny_continue``: :data:`TINY_WORKFLOWS`) are placeholders
(the tree, the segments) until they are rendered from the workflows' own output with
``--tiny-thumbnail`` (runs both on the CPU: about 1 + 2.5 minutes on an idle 2-core VM); existing
ones are otherwise kept. The 14B thumbnails draw the tree (or the minute's segments).

The workflows are laid out here in code (one function per workflow) so that
link ids, slot indices and widget orders always match the node definitions
(``nodes/``) and ``tools/comfy_core_nodes.py``. Thumbnails are drawn with PIL:
the workflow's tree (one row per level, chunks as boxes, condition frames as
ticks) computed by ``tempomaster_core.plan.TreePlan``.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import uuid

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tempomaster_core.defaults import (  # noqa: E402
    ANTI_DRIFT, BLUEPRINT_FRAMES, BLUEPRINT_SHIFT, BLUEPRINT_STEPS, CFG, CONTEXT_SECONDS, FPS, FRAME_INTERVALS, GUIDANCE,
    HEIGHT, JOIN_FADE_SECONDS, NEGATIVE_PROMPT, REFINEMENT_SHIFT, REFINEMENT_STEPS, SEED, SEGMENT_NEW_FRAMES, WEIGHT_DTYPE, WIDTH,
    default_schedule,
)
from tempomaster_core.anchor_correction import ANCHOR_CORRECTION, model_default as anchor_correction_default  # noqa: E402
from tempomaster_core.known_latents import REPLACE_KNOWN_LATENTS, model_default as replace_known_default  # noqa: E402
from tempomaster_core.anti_drift import model_default as anti_drift_default  # noqa: E402
from tempomaster_core.attention import DEFAULT_BACKEND  # noqa: E402
from tempomaster_core.join_fade import model_default as join_fade_default  # noqa: E402
from tempomaster_core.trained_limits import TrainedLimits  # noqa: E402
from tempomaster_core.wan.files import REPACKAGED_REPO, UMT5_FILE, UMT5_FP8_FILE, VAE_FILE  # noqa: E402
from nodes.plan_limits import MODEL_INPUT  # noqa: E402
from nodes.scheduler_schema import PLANNING_DEFAULTS  # noqa: E402
from nodes.display_names import (  # noqa: E402
    BLUEPRINT_SAMPLER_ID, CONTINUE_ID, FRAME_RATE_REFINER_ID, LOAD_MODEL_ID, LOAD_TINY_ENCODERS_ID, MULTI_MASK_CONDITION, MULTI_MASK_CONDITION_ID, TREE_SCHEDULER_ID,
)
from tools.workflow_tools import (  # noqa: E402
    BADGE_SPACE, GROUP_TITLE_HEIGHT, NODE_TITLE_HEIGHT, VIEW_MARGINS, layout_problems, node_spec, ui_to_api, validate_ui,
)

#: Body height of the Load TempoMaster Model node (five widgets, as the frontend draws them).
LOADER_HEIGHT = 154

EXAMPLES_DIR = os.path.join(_ROOT, "example_workflows")
API_DIR = os.path.join(_ROOT, "tests", "workflows_api")

_REPACKAGED = f"https://huggingface.co/{REPACKAGED_REPO}/resolve/main/split_files"
PRESET_421 = "6→12→24 fps (4,2,1)"


def reference_memory() -> dict:
    """Memory of the reference tree on the cost model (:mod:`tempomaster_core.cost`, the one source the
    README, the notes and the tree view quote): the 14B DiT's bf16 weights and the level peaks of
    ``TreePlan(109, (4, 2, 1))`` at 832x480 with CFG, all chunks in one batch and one chunk at a time.

    Returns ``{"weights_gib", "weights_gb", "peak_gib", "peak_gb", "peak_fps", "peak_chunks",
    "one_chunk_gib", "batch"}`` (GiB = 2**30 bytes, GB = 10**9 bytes).
    """
    from tempomaster_core.cost import GIB, estimate_plan_cost
    from tempomaster_core.plan import TreePlan

    plan = TreePlan(BLUEPRINT_FRAMES, FRAME_INTERVALS, height=HEIGHT, width=WIDTH)
    all_at_once = estimate_plan_cost(plan)
    one_at_a_time = estimate_plan_cost(plan, max_batch=1)
    level = all_at_once.levels[all_at_once.peak_level]
    return {
        "weights_gib": all_at_once.weight_bytes / GIB, "weights_gb": all_at_once.weight_bytes / 1e9,
        "peak_gib": all_at_once.peak_bytes / GIB, "peak_gb": all_at_once.peak_bytes / 1e9,
        "peak_fps": level.work.fps, "peak_chunks": level.work.chunks, "batch": level.batch,
        "one_chunk_gib": one_at_a_time.peak_bytes / GIB,
    }


def files_note() -> str:
    """The download table and memory paragraph of the 14B templates' note (figures from the cost model)."""
    from tempomaster_core.loading import RELEASE_FILE, RELEASE_REPO

    m = reference_memory()
    return f"""## TempoMaster: files to download

| File | Put it in |
|---|---|
| TempoMaster DiT: `{RELEASE_FILE}` ({m['weights_gb']:.1f} GB) from the Hugging Face repo **{RELEASE_REPO}**. It loads as it is; to load it faster and safer, convert it once: `python -m tempomaster_core.convert {RELEASE_FILE} tempomaster_dit_bf16.safetensors`, then pick the .safetensors | `ComfyUI/models/diffusion_models/` |
| `{UMT5_FILE}` (or `{UMT5_FP8_FILE}`) from **{REPACKAGED_REPO}**, `split_files/text_encoders` | `ComfyUI/models/text_encoders/` |
| `{VAE_FILE}` from **{REPACKAGED_REPO}**, `split_files/vae` | `ComfyUI/models/vae/` |

The *Missing Models* dialog lists all three with their addresses; ComfyUI downloads only `.safetensors` files itself, so fetch the `.bin` in your browser or with `huggingface-cli download {RELEASE_REPO} {RELEASE_FILE}`. Then press **R** (refresh) and pick the files in the three loaders.

**Memory** (the cost model, as the tree view shows it): the DiT weights are {m['weights_gib']:.1f} GiB in bf16; the peak is the {m['peak_fps']:g} fps level, {m['peak_chunks']} chunks denoised together with CFG ({m['batch']} sequences per forward): **{m['peak_gib']:.1f} GiB** in all. *max_parallel_chunks* = 1 on the refiners brings it to {m['one_chunk_gib']:.1f} GiB (slower); *tiled_vae* helps if the VAE runs out of memory.
"""


def i2v_note() -> str:
    """Note of the image-to-long-video template."""
    return files_note() + """
**This workflow** = the reference's default settings: a 109-frame blueprint at 6 fps (50 steps, shift 5) conditioned on your image at frame 0, refined to 218 frames at 12 fps and 436 frames at 24 fps (32 steps, shift 3 each), cfg 8 with APG. Size: the plan's 832x480 area with your image's aspect (as the reference). Replace *example.png* with your image and write what should happen in the prompt.
"""


def t2v_note() -> str:
    """Note of the text-to-video template."""
    return files_note() + f"""
**This workflow**: text-to-video, no condition frame (the {MULTI_MASK_CONDITION} node is not needed). 109 frames at 6 fps -> 436 frames at 24 fps, 832x480. The released model was trained mostly for image-to-video; text-to-video is the consistent extension (all-zero masks).
"""


def flf_note() -> str:
    """Note of the first-and-last-frame template."""
    return files_note() + """
**This workflow**: first and last frame. The two images are batched (Batch Images) and placed at blueprint positions `0,-1`, resized to cover 832x480 and centre-cropped. The blueprint interpolates between them at 6 fps, then the refiners raise it to 24 fps.
"""


# -- layout: where the nodes go, as the frontend draws them (tools/workflow_tools.py) -----------

#: Clear space between two nodes (their badges and title bars included), and inside a group's border.
GAP, PAD = 24, 12
#: Left edges of the columns: the note, the loaders and the plan, the prompts and condition nodes,
#: then one sampler per level (SAMPLER_STEP apart).
NOTE_X, NOTE_WIDTH, LOADER_X, PROMPT_X, SAMPLER_X, SAMPLER_STEP = 0, 520, 560, 940, 1400, 360
#: The first view: the scale and the offset that put the note's top-left corner a margin inside the
#: graph canvas (tools/workflow_tools.VIEWPORT), the note whole in view.
VIEW_SCALE = 0.7
VIEW_OFFSET = [round((VIEW_MARGINS[0] + 8) / VIEW_SCALE), round((VIEW_MARGINS[1] + 8) / VIEW_SCALE)]
NODE_TOP = NODE_TITLE_HEIGHT + BADGE_SPACE  # from the top of a node's box to its body (``pos``)
GROUP_TOP = math.ceil(GROUP_TITLE_HEIGHT) + PAD  # from a group's top to the first node's box in it


class Column:
    """Nodes stacked top to bottom at ``x``: each box starts :data:`GAP` below the previous one;
    :meth:`group` frames the nodes added inside its ``with`` block."""

    def __init__(self, graph: "Graph", x: float, top: float = 0, width: float = 340):
        self.graph, self.x, self.y, self.width = graph, x, top, width

    def add(self, node_type: str, widgets: list, height: float, **kw) -> int:
        """Add a node of ``height`` (body) below the previous one; returns its id."""
        node_id = self.graph.add(node_type, (self.x, self.y + NODE_TOP), widgets,
                                 size=[kw.pop("width", self.width), height], **kw)
        self.y += NODE_TOP + height + GAP
        return node_id

    def group(self, title: str) -> "_ColumnGroup":
        """``with column.group("Models"): column.add(...)``: a group around the nodes added in the block."""
        return _ColumnGroup(self, title)


class _ColumnGroup:
    def __init__(self, column: Column, title: str):
        self.column, self.title = column, title

    def __enter__(self):
        self.top = self.column.y
        self.column.y += GROUP_TOP
        return self

    def __exit__(self, *exc):
        c = self.column
        bottom = c.y - GAP + PAD
        c.graph.group(self.title, [c.x - PAD, self.top, c.width + 2 * PAD, bottom - self.top])
        c.y = bottom + GAP
        return False


class Graph:
    """Minimal UI-format workflow builder (ids, slots and link table kept consistent)."""

    def __init__(self, name: str):
        self.name = name
        self.nodes: list[dict] = []
        self.links: list[list] = []
        self.groups: list[dict] = []

    def add(self, node_type: str, pos, widgets: list, size=None, title=None, color=None, bgcolor=None,
            models=None) -> int:
        """Add a node with ``widgets_values`` ``widgets``; returns its id."""
        spec = node_spec(node_type)
        node_id = len(self.nodes) + 1
        node = {
            "id": node_id,
            "type": node_type,
            "pos": list(pos),
            "size": list(size or [320, 120]),
            "flags": {},
            "order": 0,
            "mode": 0,
            "inputs": [
                dict({"name": n, "type": t, "link": None}, **({"shape": 7} if optional else {}))
                for n, t, optional in spec["inputs"]
            ],
            "outputs": [{"name": n, "type": t, "slot_index": i, "links": []} for i, (n, t) in enumerate(spec["outputs"])],
            "properties": {} if spec.get("virtual") else {"Node name for S&R": node_type},
            "widgets_values": list(widgets),
        }
        if models:
            node["properties"]["models"] = models
        if title:
            node["title"] = title
        if color:
            node["color"], node["bgcolor"] = color, bgcolor
        self.nodes.append(node)
        return node_id

    def connect(self, src: int, output: str, dst: int, input_name: str) -> int:
        """Link output ``output`` of ``src`` to input (socket or widget) ``input_name`` of ``dst``."""
        src_node, dst_node = self.nodes[src - 1], self.nodes[dst - 1]
        slot = next(i for i, o in enumerate(src_node["outputs"]) if o["name"] == output)
        kind = src_node["outputs"][slot]["type"]
        link_id = len(self.links) + 1
        names = [i["name"] for i in dst_node["inputs"]]
        if input_name in names:
            dst_slot = names.index(input_name)
        else:  # a widget fed by a link: the frontend appends a socket carrying the widget's name
            dst_node["inputs"].append({"name": input_name, "type": kind, "widget": {"name": input_name}, "link": None})
            dst_slot = len(dst_node["inputs"]) - 1
        dst_node["inputs"][dst_slot]["link"] = link_id
        src_node["outputs"][slot]["links"].append(link_id)
        self.links.append([link_id, src, slot, dst, dst_slot, kind])
        return link_id

    def group(self, title: str, bounding) -> None:
        """Add a titled group box; ``bounding`` = ``[x, y, width, height]`` in canvas units."""
        self.groups.append({"id": len(self.groups) + 1, "title": title, "bounding": list(bounding),
                            "color": "#3f789e", "font_size": 24, "flags": {}})

    def _orders(self) -> None:
        """Execution order the frontend stores: a topological order of the link graph."""
        deps = {n["id"]: set() for n in self.nodes}
        for _, src, _, dst, _, _ in self.links:
            deps[dst].add(src)
        order, done = [], set()
        while len(order) < len(self.nodes):
            ready = sorted(i for i in deps if i not in done and deps[i] <= done)
            order.extend(ready)
            done.update(ready)
        for position, node_id in enumerate(order):
            self.nodes[node_id - 1]["order"] = position

    def to_json(self) -> dict:
        """The UI-format workflow dict (execution orders filled in, unlinked outputs ``null``)."""
        self._orders()
        for node in self.nodes:
            for out in node["outputs"]:
                if not out["links"]:
                    out["links"] = None
        return {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, "tempomaster/example_workflows/" + self.name)),
            "revision": 0,
            "last_node_id": len(self.nodes),
            "last_link_id": len(self.links),
            "nodes": self.nodes,
            "links": self.links,
            "groups": self.groups,
            "config": {},
            "extra": {"ds": {"scale": VIEW_SCALE, "offset": list(VIEW_OFFSET)}},
            "version": 0.4,
        }


def _models(name: str, url: str, directory: str) -> list[dict]:
    """``properties.models`` entry: the frontend offers to download missing files from ``url``."""
    return [{"name": name, "url": url, "directory": directory}]


def _note(g: Graph, text: str, title: str, height: float) -> int:
    """The "Read me" note in the first column, at the top of the first view."""
    return Column(g, NOTE_X, width=NOTE_WIDTH).add("MarkdownNote", [text], height, title=title)


def _samplers(g: Graph, level_nodes: list[tuple[str, list, str]], links) -> tuple[list[int], Column]:
    """The blueprint sampler and one refiner per level, left to right in one group, each linked to
    ``links`` (``[(source id, output, input)]``) and the previous level. Returns their ids and the
    column below the last one (for the video output)."""
    heights = {BLUEPRINT_SAMPLER_ID: 330, FRAME_RATE_REFINER_ID: 360}
    tallest = max(heights[kind] for kind, _, _ in level_nodes)
    right = SAMPLER_X + SAMPLER_STEP * (len(level_nodes) - 1) + 320
    body = GROUP_TOP + NODE_TOP
    ids = []
    for i, (kind, widgets, title) in enumerate(level_nodes):
        node = g.add(kind, (SAMPLER_X + SAMPLER_STEP * i, body), widgets, size=[320, heights[kind]], title=title)
        for src, out, name in links:
            g.connect(src, out, node, name)
        if ids:
            g.connect(ids[-1], "level", node, "level")
        ids.append(node)
    bottom = body + tallest + PAD
    g.group("Blueprint, then one refiner per level", [SAMPLER_X - PAD, 0, right - SAMPLER_X + 2 * PAD, bottom])
    return ids, Column(g, right - 320, top=bottom + GAP, width=320)


def _video_output(g: Graph, column: Column, last: int, fps: float, prefix: str, images: str = "images") -> None:
    """Create Video (at the last node's fps) -> Save Video, below the last refiner (or Continue node: its
    ``joined`` output as ``images``)."""
    video = column.add("CreateVideo", [fps], 78, width=270)
    save = column.add("SaveVideo", [prefix, "auto", "auto"], 420, width=460)  # grows with its preview: last
    g.connect(last, images, video, "images")
    g.connect(last, "fps", video, "fps")
    g.connect(video, "VIDEO", save, "video")


def _prompts(g: Graph, prompt: str, negative: str, clip: int) -> tuple[int, int, Column]:
    """Prompt and negative prompt (CLIP Text Encode) in the third column; returns the column for more."""
    column = Column(g, PROMPT_X, width=420)
    pos = column.add("CLIPTextEncode", [prompt], 160, title="Prompt", color="#232", bgcolor="#353")
    neg = column.add("CLIPTextEncode", [negative], 160, title="Negative prompt", color="#322", bgcolor="#533")
    g.connect(clip, "CLIP", pos, "clip")
    g.connect(clip, "CLIP", neg, "clip")
    return pos, neg, column


def _common(g: Graph, prompt: str, note: str, video_output: bool = True, native: bool = False) -> dict:
    """Note, loaders, prompts, plan, the three level nodes and (``video_output``) the video output; returns
    node ids (``"column"``: the prompt column, for the condition nodes; ``"below"``: the column under the
    samplers; ``"links"``: the model, prompt and VAE links every sampler takes). ``native``: the DiT comes from
    ComfyUI's Load Diffusion Model (a ``MODEL``, ``nodes/native_model.py``) instead of Load TempoMaster Model."""
    from tempomaster_core.loading import RELEASE_FILE, RELEASE_URL

    ids = {"note": _note(g, note, "Read me: files and memory", 560)}
    model_out = "MODEL" if native else "model"
    loaders = Column(g, LOADER_X)
    with loaders.group("Models"):
        # the DiT: listed in the Missing Models dialog with its address (the frontend downloads only
        # .safetensors itself, so the note says how to fetch the .bin)
        models = _models(RELEASE_FILE, RELEASE_URL, "diffusion_models")
        if native:
            ids["model"] = loaders.add("UNETLoader", [RELEASE_FILE, "default"], 82, models=models,
                                       title="Load Diffusion Model (TempoMaster DiT)")
        else:
            ids["model"] = loaders.add(LOAD_MODEL_ID, widget_values(
                LOAD_MODEL_ID, model_name=RELEASE_FILE, weight_dtype=WEIGHT_DTYPE, attention=DEFAULT_BACKEND,
                fp8_matmul=False, torch_compile=False), LOADER_HEIGHT, models=models)
        ids["clip"] = loaders.add("CLIPLoader", [UMT5_FILE, "wan", "default"], 106,
                                  models=_models(UMT5_FILE, f"{_REPACKAGED}/text_encoders/{UMT5_FILE}", "text_encoders"))
        ids["vae"] = loaders.add("VAELoader", [VAE_FILE], 58,
                                 models=_models(VAE_FILE, f"{_REPACKAGED}/vae/{VAE_FILE}", "vae"))
    ids["pos"], ids["neg"], ids["column"] = _prompts(g, prompt, NEGATIVE_PROMPT, ids["clip"])
    ids["plan"] = loaders.add(TREE_SCHEDULER_ID, widget_values(
        TREE_SCHEDULER_ID, blueprint_frames=BLUEPRINT_FRAMES, frame_intervals=PRESET_421,
        custom_intervals=",".join(map(str, FRAME_INTERVALS)), chunks="auto", fps=FPS, width=WIDTH, height=HEIGHT,
        **PLANNING_DEFAULTS), 640)  # tall: the node draws the tree below its widgets (web/tree_view.js)
    common = dict(seed=SEED, cfg=CFG, guidance=GUIDANCE, tiled_vae=False, devices="")
    levels = [(BLUEPRINT_SAMPLER_ID, widget_values(BLUEPRINT_SAMPLER_ID, steps=BLUEPRINT_STEPS, shift=BLUEPRINT_SHIFT,
                                                   **common), "Blueprint 6 fps (TempoMaster)")]
    for fps in (12, 24):
        levels.append((FRAME_RATE_REFINER_ID, widget_values(
            FRAME_RATE_REFINER_ID, steps=REFINEMENT_STEPS, shift=REFINEMENT_SHIFT, max_parallel_chunks=0,
            anchor_correction=ANCHOR_CORRECTION, **common), f"Refine to {fps} fps (TempoMaster)"))
    ids["links"] = [(ids["model"], model_out, "model"), (ids["pos"], "CONDITIONING", "positive"),
                    (ids["neg"], "CONDITIONING", "negative"), (ids["vae"], "VAE", "vae")]
    samplers, ids["below"] = _samplers(g, levels, ids["links"])
    ids["blueprint"], ids["refine12"], ids["refine24"] = samplers
    g.connect(ids["plan"], "plan", ids["blueprint"], "plan")
    g.connect(ids["model"], model_out, ids["plan"], MODEL_INPUT)  # the plan uses what the model was trained on
    if video_output:
        _video_output(g, ids["below"], ids["refine24"], FPS, "video/TempoMaster")
    return ids


#: Prompt of the image-to-video templates.
I2V_PROMPT = "The scene comes to life with natural, continuous motion; the camera slowly follows the main subject."


def image_to_long_video() -> dict:
    """(1) Image-to-long-video with the reference's default settings (109 @ 6 fps -> 436 @ 24 fps)."""
    g = Graph("image_to_long_video")
    _first_frame(g, _common(g, I2V_PROMPT, i2v_note()))
    return g.to_json()


def _first_frame(g: Graph, ids: dict) -> None:
    """Load Image -> Multi-Mask Condition at blueprint frame 0 (the reference's size rule) -> the blueprint."""
    image = ids["column"].add("LoadImage", ["example.png", "image"], 330, width=320, title="First frame")
    cond = ids["column"].add(MULTI_MASK_CONDITION_ID, ["0", "plan area, first image's aspect (reference)"], 110,
                             width=400)
    g.connect(ids["plan"], "plan", cond, "plan")
    g.connect(image, "IMAGE", cond, "images")
    g.connect(cond, "condition", ids["blueprint"], "condition")


def text_to_video() -> dict:
    """(2) Text-to-video: no condition frame."""
    g = Graph("text_to_video")
    _common(g, "A golden retriever runs along a sunny beach, waves rolling in behind it, the camera tracking "
               "alongside at dog height.", t2v_note())
    return g.to_json()


def native_note() -> str:
    """Note of the text-to-video template on ComfyUI's Load Diffusion Model."""
    return files_note() + """
**This workflow** is the text-to-video template with the DiT loaded by ComfyUI's own **Load Diffusion Model**: its `MODEL` goes into the TempoMaster samplers (they add the frame-rate-aware RoPE and the multi-mask condition to ComfyUI's Wan forward). Chain what you use on Wan models between the loader and the samplers: **LoraLoaderModelOnly** (a Wan 2.1 14B LoRA), a GGUF loader instead of this one, **TorchCompileModel**; set *weight_dtype* to `fp8_e4m3fn` for 1-byte weights (about half the memory above). Not available this way: the samplers' *devices* list.
"""


def text_to_video_native() -> dict:
    """(2b) Text-to-video with the DiT from ComfyUI's Load Diffusion Model (a native ``MODEL``)."""
    g = Graph("text_to_video_native")
    _common(g, "A golden retriever runs along a sunny beach, waves rolling in behind it, the camera tracking "
               "alongside at dog height.", native_note(), native=True)
    return g.to_json()


def first_last_frame() -> dict:
    """(3) First-and-last-frame: two images at blueprint positions 0 and -1."""
    g = Graph("first_last_frame")
    ids = _common(g, "A smooth, continuous transition from the first image to the last one, natural motion.",
                  flf_note())
    column = ids["column"]
    first = column.add("LoadImage", ["example.png", "image"], 320, width=300, title="First frame")
    last = column.add("LoadImage", ["example.png", "image"], 320, width=300, title="Last frame")
    batch = column.add("ImageBatch", [], 46, width=200)
    cond = column.add(MULTI_MASK_CONDITION_ID, ["0,-1", "plan size (resize + centre crop)"], 110, width=400)
    g.connect(first, "IMAGE", batch, "image1")
    g.connect(last, "IMAGE", batch, "image2")
    g.connect(ids["plan"], "plan", cond, "plan")
    g.connect(batch, "IMAGE", cond, "images")
    g.connect(cond, "condition", ids["blueprint"], "condition")
    return g.to_json()


def _reference_tree():
    """The reference's default tree: ``TreePlan(109, (4, 2, 1))`` at 832x480."""
    from tempomaster_core.plan import TreePlan

    return TreePlan(BLUEPRINT_FRAMES, FRAME_INTERVALS, height=HEIGHT, width=WIDTH)


def _reference_length() -> str:
    """``"436 frames (18.2 s) at 24 fps"``: the reference tree's output, for the template names."""
    final = _reference_tree().final
    return f"{final.num_frames} frames ({final.duration_s:.1f} s) at {final.fps:g} fps"


def _minute_frames() -> tuple[int, list[int]]:
    """``(first tree's frames, new frames per Continue node)`` of the 14B minute template."""
    first = _reference_tree().final.num_frames
    return first, continue_lengths(first, SEGMENT_NEW_FRAMES, round(MINUTE_SECONDS * FPS))




def template_file_name(workflow_id: str) -> str:
    """The name (without ``.json``/``.jpg``) of a template in ``example_workflows/``.

    ComfyUI frontend 1.27 shows a custom node pack's template with its file name as the title and
    the same name, ``-``/``_`` read as spaces, as the description (there is no other field for a
    pack's template; ComfyUI's ``/workflow_templates`` lists only the names), so the name says what
    the template makes and what it needs.
    """
    length = _reference_length()
    if workflow_id == TINY_CONTINUE_NAME:
        first, lengths, fps = tiny_continue_plan(tiny_defaults())
        return (f"TempoMaster-Tiny - text to a long video by continuation, {_length(first + sum(lengths), fps)} at "
                f"{fps:g} fps, on the CPU, no downloads")
    if workflow_id == "image_to_minute":
        first, lengths = _minute_frames()
        return (f"TempoMaster 14B - image to a one-minute video by continuation, "
                f"{_length(first + sum(lengths), FPS)} at {FPS:g} fps")
    return {
        "tiny_text_to_video": "TempoMaster-Tiny - text to video on the CPU, no downloads",
        "image_to_long_video": f"TempoMaster 14B - image to long video, {length}",
        "text_to_video": f"TempoMaster 14B - text to long video, {length}",
        "text_to_video_native": f"TempoMaster 14B - text to long video on Load Diffusion Model (LoRA, fp8, GGUF), {length}",
        "first_last_frame": f"TempoMaster 14B - first and last frame to video, {length}",
    }[workflow_id]


# -- the built-in TempoMaster-Tiny workflow ---------------------------------------------

TINY_NAME = "tiny_text_to_video"
TINY_CONTINUE_NAME = "tiny_continue"
TINY_PROMPT = "a red ball bouncing from left to right"


def tiny_defaults() -> dict:
    """Recommended settings of the shipped TempoMaster-Tiny bundle (its ``defaults.json``, keys as in
    ``TinyBundle.defaults``)."""
    from tempomaster_core.tiny.builtin import builtin_dir, bundle_defaults

    return bundle_defaults(builtin_dir())


def widget_values(node_type: str, **values) -> list:
    """``widgets_values`` of ``node_type`` from widget names, in the node's widget order
    (a seed's "control after generate" value is ``"fixed"``).

    Raises:
        KeyError: a widget of the node has no value, or a value names no widget.
    """
    spec = node_spec(node_type)
    names = [name for name, _, _, _ in spec["widgets"]]
    unknown = set(values) - set(names)
    if unknown:
        raise KeyError(f"{node_type} has no widgets {sorted(unknown)}")
    out = []
    for name, _, extra, _ in spec["widgets"]:
        if name not in values:
            raise KeyError(f"{node_type}: no value for widget {name!r}")
        out.append(values[name])
        out.extend(["fixed"] * extra)
    return out


def _intervals_widgets(intervals) -> dict:
    """TreeScheduler ``frame_intervals``/``custom_intervals`` for an interval list (a preset when one fits)."""
    from nodes.scheduler_node import TreeScheduler

    text = ",".join(str(int(i)) for i in intervals)
    presets = TreeScheduler.INPUT_TYPES()["required"]["frame_intervals"][0]
    preset = next((p for p in presets if p.endswith(f"({text})")), "custom")
    return {"frame_intervals": preset, "custom_intervals": text}


def _tiny_per_level(d: dict, key: str) -> list:
    """``d[key]`` (``cfg``/``guidance`` of :func:`tiny_defaults`, one value or one per level) per level."""
    from tempomaster_core.level_settings import per_level

    return per_level(d[key], key, len(d["frame_intervals"]), allow_scalar=True)


def tiny_note(d: dict) -> str:
    """Markdown note of the built-in-model workflow (settings from ``d`` = :func:`tiny_defaults`)."""
    from tempomaster_core.tiny.builtin import BUILTIN_MODEL_NAME, default_plan

    plan = default_plan(d)
    tree = " → ".join(f"{lv.num_frames} frames at {lv.fps:g} fps" + (f" ({lv.num_chunks} chunks)" if i else "")
                      for i, lv in enumerate(plan.levels))
    steps = "/".join(str(v) for v in d["steps"])
    shifts = "/".join(f"{v:g}" for v in d["shifts"])
    cfg = "/".join(f"{float(v):g}" for v in _tiny_per_level(d, "cfg"))
    guidance = "/".join(dict.fromkeys(str(v).upper() for v in _tiny_per_level(d, "guidance")))
    return f"""## TempoMaster-Tiny: runs right after installing

**No downloads.** *{BUILTIN_MODEL_NAME}* ships with the node pack (`tempomaster_core/builtin/`). It is a small DiT of the same family as the 14B model, trained on procedural {d['width']}x{d['height']} videos of coloured balls, squares and triangles moving, bouncing or falling on plain or gradient backgrounds. CPU is enough.

**Prompts** are short captions of that world: *a red ball bouncing from left to right*, *two blue squares falling*, *three green triangles moving diagonally*. Unknown words are ignored (a warning in the console).

**This workflow**: text-to-video, {tree}; steps {steps}, shift {shifts}, cfg {cfg} ({guidance}; cfg 1 = no negative pass), chunk-boundary frames '{d['boundary']}', weights in fp32.

**Load TempoMaster-Tiny Text Encoder & Codec** gives a CLIP for ComfyUI's CLIP Text Encode and a VAE that works **only with the TempoMaster samplers** (they return decoded frames; ComfyUI's VAE Decode/Encode refuse it).

For the real 14B model use the other TempoMaster templates.
"""


def _tiny_tree(g: Graph, d: dict, note: str, note_height: float) -> dict:
    """Note, built-in model loaders, prompts, plan and one sampler per level of the built-in model's tree
    (settings ``d`` = :func:`tiny_defaults`); returns node ids (``"levels"``: the samplers, blueprint
    first; ``"below"``: the column under the last one; ``"links"``: what every sampler takes)."""
    from tempomaster_core.tiny.builtin import BUILTIN_MODEL_NAME

    if len(d["steps"]) != len(d["frame_intervals"]) or len(d["shifts"]) != len(d["frame_intervals"]):
        raise SystemExit(f"tiny defaults: steps {d['steps']} / shifts {d['shifts']} need one value per level "
                         f"of {d['frame_intervals']}")
    _note(g, note, "Read me: the built-in model", note_height)
    loaders = Column(g, LOADER_X)
    with loaders.group("Built-in model (no downloads)"):
        model = loaders.add(LOAD_MODEL_ID, widget_values(
            LOAD_MODEL_ID, model_name=BUILTIN_MODEL_NAME, weight_dtype="fp32", attention=DEFAULT_BACKEND,
            fp8_matmul=False, torch_compile=False), LOADER_HEIGHT)
        enc = loaders.add(LOAD_TINY_ENCODERS_ID, widget_values(
            LOAD_TINY_ENCODERS_ID, model_name=BUILTIN_MODEL_NAME), 78)
    pos, neg, _column = _prompts(g, TINY_PROMPT, d["negative_prompt"], enc)
    plan = loaders.add(TREE_SCHEDULER_ID, widget_values(
        TREE_SCHEDULER_ID, blueprint_frames=int(d["blueprint_frames"]),
        chunks=",".join(str(int(c)) for c in d["chunks"]), fps=float(d["fps"]), width=int(d["width"]),
        height=int(d["height"]), **_intervals_widgets(d["frame_intervals"]), **{
            **PLANNING_DEFAULTS,
            # the widget, used if the model link is removed: what the bundle declares
            "trained_chunk_frames": TrainedLimits.from_settings(d).chunk_frames,
            "boundary_frames": d["boundary"]}), 640)

    levels = []
    for i, interval in enumerate(d["frame_intervals"]):
        fps = float(d["fps"]) / int(interval)
        common = dict(seed=SEED, steps=int(d["steps"][i]), shift=float(d["shifts"][i]),
                      cfg=float(_tiny_per_level(d, "cfg")[i]), guidance=_tiny_per_level(d, "guidance")[i],
                      tiled_vae=False, devices="")
        if i == 0:
            levels.append((BLUEPRINT_SAMPLER_ID, widget_values(BLUEPRINT_SAMPLER_ID, **common),
                           f"Blueprint {fps:g} fps (TempoMaster)"))
        else:
            levels.append((FRAME_RATE_REFINER_ID, widget_values(
                FRAME_RATE_REFINER_ID, max_parallel_chunks=0, anchor_correction=anchor_correction_default(d),
                **common), f"Refine to {fps:g} fps (TempoMaster)"))
    links = [(model, "model", "model"), (pos, "CONDITIONING", "positive"), (neg, "CONDITIONING", "negative"),
             (enc, "VAE", "vae")]
    level_ids, below = _samplers(g, levels, links)
    g.connect(plan, "plan", level_ids[0], "plan")
    g.connect(model, "model", plan, MODEL_INPUT)  # the plan uses the built-in model's 25-frame training limit
    return {"plan": plan, "levels": level_ids, "below": below, "links": links}


def tiny_text_to_video() -> dict:
    """(4) Text-to-video on the built-in TempoMaster-Tiny model, with the bundle's recommended settings."""
    d = tiny_defaults()
    g = Graph(TINY_NAME)
    ids = _tiny_tree(g, d, tiny_note(d), 520)
    _video_output(g, ids["below"], ids["levels"][-1], float(d["fps"]), "video/TempoMaster-Tiny")
    return g.to_json()


# -- continuation: a tree, then TempoMaster Continue nodes (multi-mask continuation) -----------

#: Continue nodes per row in the templates (left to right, then the next row).
CONTINUE_ROW = 4
#: Body height of a Continue node (six sockets, fifteen widget rows, as the frontend draws them).
CONTINUE_HEIGHT = 510
#: Length the built-in model's continuation template aims at, seconds (its name says what it reaches).
TINY_CONTINUE_SECONDS = 24.0
#: Length of the 14B minute template, seconds.
MINUTE_SECONDS = 60.0


def continue_lengths(first: int, new: int, total: int) -> list[int]:
    """New frames of each Continue node after a first tree of ``first`` frames: ``new`` each, the last one
    only what is missing to ``total`` (``generate_long``'s rule). Example: 436, 480, 1440 -> [480, 480, 44]."""
    lengths, made = [], first
    while made < total:
        lengths.append(min(new, total - made))
        made += lengths[-1]
    return lengths


def _continue_chain(g: Graph, first: int, first_frames: int, plan: int, links, lengths: list[int], fps: float,
                    top: float, widgets: dict, title: str) -> tuple[int, Column]:
    """Continue nodes in rows of :data:`CONTINUE_ROW` in one group from ``top`` down, each fed the previous
    one's ``joined`` and ``fps`` (the first: the sampler ``first``'s ``images`` and ``fps``, ``first_frames``
    frames); ``widgets``: the widget values they share (``seed`` = ``SEED`` + segment index, as
    ``generate_long``). Returns the last node and a column to the right of the group (for the video output)."""
    body = top + GROUP_TOP + NODE_TOP
    row_step = NODE_TOP + CONTINUE_HEIGHT + GAP
    previous, images, made = first, "images", first_frames
    for k, new in enumerate(lengths):
        made += new
        x, y = SAMPLER_X + SAMPLER_STEP * (k % CONTINUE_ROW), body + row_step * (k // CONTINUE_ROW)
        node = g.add(CONTINUE_ID, (x, y), widget_values(CONTINUE_ID, **{**widgets, "new_frames": new, "seed": SEED + k + 1}),
                     size=[320, CONTINUE_HEIGHT],
                     title=f"Continue {k + 2}/{len(lengths) + 1}: +{new} -> {made} frames ({made / fps:.1f} s)")
        for src, out, name in links:
            g.connect(src, out, node, name)
        g.connect(plan, "plan", node, "plan")
        g.connect(previous, images, node, "images")
        g.connect(previous, "fps", node, "fps")
        previous, images = node, "joined"
    columns = min(len(lengths), CONTINUE_ROW)
    rows = -(-len(lengths) // CONTINUE_ROW)
    bottom = body + row_step * rows - GAP + PAD
    g.group(title, [SAMPLER_X - PAD, top, SAMPLER_STEP * (columns - 1) + 320 + 2 * PAD, bottom - top])
    return previous, Column(g, SAMPLER_X + SAMPLER_STEP * columns, top=top, width=320)


def tiny_continue_plan(d: dict) -> tuple[int, list[int], float]:
    """``(first tree's frames, new frames per Continue node, fps)`` of the built-in model's continuation
    template: its own tree, then segments of its recommended continuation (``d``: :func:`tiny_defaults`)
    until :data:`TINY_CONTINUE_SECONDS`."""
    from tempomaster_core.tiny.builtin import default_plan

    final = default_plan(d).final
    new = int(d["segment_new_frames"])
    count = max(1, math.ceil((TINY_CONTINUE_SECONDS * final.fps - final.num_frames) / new))
    return final.num_frames, [new] * count, final.fps


def _length(frames: int, fps: float) -> str:
    """``"612 frames (25.5 s)"``."""
    return f"{frames} frames ({frames / fps:.1f} s)"


def _anti_drift_sentence(mode: str) -> str:
    """What the templates' notes say about the Continue nodes' *anti_drift* widget set to ``mode``."""
    if mode == "none":
        return ("*anti_drift* = `none`: the paper's setting as it is (the other options were measured only on the "
                "built-in model, benchmarks/README.md; `colour_match` keeps the first segment's colours, `anchor` "
                "shows the blueprint the video's first frame).")
    return (f"*anti_drift* = `{mode}` (measured best over a minute on this model, benchmarks/README.md): the "
            "video's first frame is an extra known blueprint frame of every segment and the new frames keep the first "
            "segment's colours; `none` is the paper's setting as it is (pick it, or `anchor`, when the colours should "
            "change).")


def _join_fade_sentence(seconds: float) -> str:
    """What the templates' notes say about the Continue nodes' *join_fade* widget set to ``seconds``."""
    if seconds <= 0:
        return ("*join_fade* = 0: a plain cut from the video to each segment's new frames (the paper's setting; "
                "raise it if a join jumps).")
    return (f"*join_fade* = {seconds:g} s (measured on this model, benchmarks/README.md): each segment's new frames "
            "start exactly at the last frame so far and hand over to the segment's own drawing within that time, so "
            "the joins do not jump; 0 = a plain cut.")


def tiny_continue_note(d: dict) -> str:
    """Markdown note of the built-in model's continuation template."""
    from tempomaster_core.tiny.builtin import BUILTIN_MODEL_NAME

    first, lengths, fps = tiny_continue_plan(d)
    total = first + sum(lengths)
    return f"""## TempoMaster-Tiny: a long video by continuation

**No downloads**, CPU is enough (*{BUILTIN_MODEL_NAME}*, see the text-to-video template for the model).

**This workflow**: the model's own tree ({_length(first, fps)} at {fps:g} fps, the same settings as the text-to-video template), then **{len(lengths)} TempoMaster Continue nodes**, each adding {lengths[0]} frames: every segment is again the model's tree, in which the last {d['context_seconds']:g} s of the video so far are known frames at every frame rate (the paper's multi-mask continuation). Result: **{_length(total, fps)}** at {fps:g} fps, saved as mp4.

**Chain more**: copy a Continue node, connect the last one's *joined* and *fps* to its *images* and *fps*, and give it another seed. {_anti_drift_sentence(d['anti_drift'])} {_join_fade_sentence(join_fade_default(d))}

**Memory**: *joined* holds the whole video (float32: {total * d['width'] * d['height'] * 3 * 4 / 1e6:.0f} MB here). The command line makes the same in one call and streams it to the file: `python -m tempomaster_core generate --prompt "{TINY_PROMPT}" --seconds 60 --out long.mp4`.
"""


def tiny_continue() -> dict:
    """(5) The built-in model's tree, then Continue nodes to about :data:`TINY_CONTINUE_SECONDS`."""
    d = tiny_defaults()
    g = Graph(TINY_CONTINUE_NAME)
    ids = _tiny_tree(g, d, tiny_continue_note(d), 460)
    first, lengths, fps = tiny_continue_plan(d)
    shared = dict(fps=fps, context_seconds=float(d["context_seconds"]),
                  steps=",".join(str(int(v)) for v in d["steps"]), shift=",".join(f"{float(v):g}" for v in d["shifts"]),
                  cfg=",".join(f"{float(v):g}" for v in _tiny_per_level(d, "cfg")),
                  guidance=_tiny_per_level(d, "guidance")[0], max_parallel_chunks=0, tiled_vae=False,
                  anti_drift=anti_drift_default(d), anchor_correction=anchor_correction_default(d),
                  join_fade=join_fade_default(d), replace_known_latents=replace_known_default(d))
    last, column = _continue_chain(g, ids["levels"][-1], first, ids["plan"], ids["links"], lengths, fps,
                                   ids["below"].y, shared,
                                   f"Continue: +{lengths[0]} frames each, knowing the last {d['context_seconds']:g} s")
    _video_output(g, column, last, fps, "video/TempoMaster-Tiny-long", images="joined")
    return g.to_json()


def minute_note() -> str:
    """Note of the 14B minute template (figures from the cost model and the plan rules)."""
    from tempomaster_core.continuation import context_frame_count, segment_plan
    from tempomaster_core.cost import GIB, estimate_plan_cost

    tree = _reference_tree()
    _, lengths = _minute_frames()
    context = context_frame_count(CONTEXT_SECONDS, FPS)
    segment = segment_plan(tree, context, SEGMENT_NEW_FRAMES).plan
    levels = " → ".join(f"{lv.num_frames} at {lv.fps:g} fps" + (f" ({lv.num_chunks} chunks)" if i else "")
                        for i, lv in enumerate(segment.levels))
    peak = estimate_plan_cost(segment).peak_bytes / GIB
    one = estimate_plan_cost(segment, max_batch=1).peak_bytes / GIB
    total = tree.final.num_frames + sum(lengths)
    return files_note() + f"""
**This workflow**: a minute, the paper's multi-mask continuation (5 s of context, 480 new frames per step). The reference tree makes the first {_length(tree.final.num_frames, FPS)} from your image (as the image-to-long-video template); then **{len(lengths)} TempoMaster Continue nodes** add {" + ".join(map(str, lengths))} frames: each segment is a tree shaped like the plan (for {SEGMENT_NEW_FRAMES} new frames: {levels}) in which the last {CONTEXT_SECONDS:g} s ({context} frames) are known at every frame rate. Result: **{_length(total, FPS)}** at {FPS:g} fps, 832x480. {_anti_drift_sentence(ANTI_DRIFT)} {_join_fade_sentence(JOIN_FADE_SECONDS)}

**Memory of a Continue segment** (cost model): {peak:.1f} GiB with all chunks together, {one:.1f} GiB with *max_parallel_chunks* = 1. *joined* holds the whole video in RAM (float32: {total * WIDTH * HEIGHT * 3 * 4 / 1e9:.1f} GB at the end); the command line streams a minute to the file instead: `python -m tempomaster_core generate --seconds 60 ...`.
"""


def image_to_minute() -> dict:
    """(6) 14B: image to a minute: the reference tree, then Continue nodes (5 s context, 480 new frames)."""
    g = Graph("image_to_minute")
    ids = _common(g, I2V_PROMPT, minute_note(), video_output=False)
    _first_frame(g, ids)
    first, lengths = _minute_frames()
    steps, shifts = default_schedule(len(FRAME_INTERVALS))
    shared = dict(fps=FPS, context_seconds=CONTEXT_SECONDS, steps=",".join(map(str, steps)),
                  shift=",".join(f"{v:g}" for v in shifts), cfg=f"{CFG:g}", guidance=GUIDANCE, max_parallel_chunks=0,
                  tiled_vae=False, anti_drift=ANTI_DRIFT, anchor_correction=ANCHOR_CORRECTION,
                  join_fade=JOIN_FADE_SECONDS, replace_known_latents=REPLACE_KNOWN_LATENTS)
    last, column = _continue_chain(g, ids["refine24"], first, ids["plan"], ids["links"], lengths, FPS,
                                   ids["below"].y, shared,
                                   f"Continue: +{SEGMENT_NEW_FRAMES} frames each, knowing the last {CONTEXT_SECONDS:g} s")
    _video_output(g, column, last, FPS, "video/TempoMaster-minute", images="joined")
    return g.to_json()


def run_api_in_process(api: dict) -> dict:
    """Run an API-format workflow of our nodes in this process; returns ``{node_id: outputs}``.

    ComfyUI core nodes are replaced by what they do: ``CLIPTextEncode`` calls
    ``clip.tokenize`` + ``clip.encode_from_tokens_scheduled`` (as ComfyUI does),
    ``CreateVideo`` returns ``{"images", "fps"}``, ``SaveVideo`` nothing. Only
    the nodes of the built-in workflow are supported.

    Raises:
        KeyError: a core node this runner does not know.
    """
    from nodes import NODE_CLASS_MAPPINGS

    results: dict[str, tuple] = {}
    pending = dict(api)
    while pending:
        node_id = next(i for i, n in sorted(pending.items())
                       if all(v[0] in results for v in n["inputs"].values() if isinstance(v, list)))
        node = pending.pop(node_id)
        inputs = {k: (results[v[0]][v[1]] if isinstance(v, list) else v) for k, v in node["inputs"].items()}
        kind = node["class_type"]
        if kind in NODE_CLASS_MAPPINGS:
            cls = NODE_CLASS_MAPPINGS[kind]
            results[node_id] = getattr(cls(), cls.FUNCTION)(**inputs)
        elif kind == "CLIPTextEncode":
            clip = inputs["clip"]
            results[node_id] = (clip.encode_from_tokens_scheduled(clip.tokenize(inputs["text"])),)
        elif kind == "CreateVideo":
            results[node_id] = ({"images": inputs["images"], "fps": inputs["fps"]},)
        elif kind == "SaveVideo":
            results[node_id] = ()
        else:
            raise KeyError(f"the in-process runner does not know {kind!r}")
    return results


def tiny_frames_thumbnail(frames, title: str, subtitle: str, plan=None) -> bytes:
    """JPEG bytes (512x384): a title and 8 frames of a video (IMAGE ``[F, H, W, 3]`` in 0..1,
    evenly spaced, 4 per row, each scaled to 128x128); ``plan`` (optional) adds its tree line."""
    import numpy as np
    from PIL import Image, ImageFont

    cell = 128
    img, draw, _ = _card("TempoMaster-Tiny", title, subtitle, top=16)
    height = img.size[1]
    count = frames.shape[0]
    picks = [round(i * (count - 1) / 7) for i in range(8)]
    tiny = ImageFont.load_default(size=12)
    for k, index in enumerate(picks):
        pixels = (frames[index].clamp(0, 1).numpy() * 255).round().astype(np.uint8)
        tile = Image.fromarray(pixels).resize((cell - 4, cell - 4), Image.NEAREST)
        x, y = (k % 4) * cell + 2, height - 2 * cell + (k // 4) * cell + 2
        img.paste(tile, (x, y))
        draw.text((x + 4, y + 2), f"frame {index}", font=tiny, fill=(235, 235, 235))
    return _jpeg(img, quality=90)


def _card(brand: str, title: str, subtitle: str, top: int) -> tuple:
    """A 512x384 thumbnail's background and header: ``brand`` large at ``y = top``, ``title`` and
    ``subtitle`` below it. Returns ``(image, draw, small font)``."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (512, 384), (22, 24, 30))
    draw = ImageDraw.Draw(img)
    big, small = ImageFont.load_default(size=30), ImageFont.load_default(size=17)
    draw.text((24, top), brand, font=big, fill=(240, 240, 245))
    draw.text((24, top + 40), title, font=small, fill=(120, 200, 255))
    draw.text((24, top + 64), subtitle, font=small, fill=(170, 170, 180))
    return img, draw, small


def _jpeg(img, quality: int) -> bytes:
    """``img`` as JPEG bytes."""
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def render_tiny_thumbnail(ui: dict) -> bytes:
    """Thumbnail of the built-in-model workflow from its real output (runs the workflow on CPU).

    Raises:
        SystemExit: the built-in weights are not installed.
    """
    import torch

    from nodes.builtin_nodes import tiny_available, tiny_directory

    if not tiny_available():
        raise SystemExit(f"--tiny-thumbnail needs the built-in weights in {tiny_directory()}")
    api = ui_to_api(ui)
    with torch.no_grad():
        results = run_api_in_process(api)
    video = next(results[i][0] for i, n in api.items() if n["class_type"] == "CreateVideo")
    prompt = next(n["inputs"]["text"] for n in api.values() if n.get("_meta", {}).get("title") == "Prompt")
    return tiny_frames_thumbnail(video["images"], f"\"{prompt}\"",
                                 f"{video['images'].shape[0]} frames at {video['fps']:g} fps, CPU, no downloads")


#: Built-in-model workflows: id -> (builder, placeholder thumbnail until rendered from real frames).
TINY_WORKFLOWS = {
    TINY_NAME: (lambda: tiny_text_to_video(), lambda: _tiny_tree_thumbnail()),
    TINY_CONTINUE_NAME: (lambda: tiny_continue(), lambda: _tiny_continue_thumbnail()),
}


def _tiny_tree_thumbnail() -> bytes:
    """Placeholder thumbnail of the tiny text-to-video template: its tree."""
    from tempomaster_core.tiny.builtin import default_plan

    plan = default_plan(tiny_defaults())
    return thumbnail("Built-in TempoMaster-Tiny: text to video",
                     f"{plan.blueprint_frames} @ {plan.levels[0].fps:g} fps -> "
                     f"{plan.levels[-1].num_frames} @ {plan.levels[-1].fps:g} fps, no downloads", (), plan)


def _tiny_continue_thumbnail() -> bytes:
    """Placeholder thumbnail of the tiny continuation template: its segments."""
    d = tiny_defaults()
    first, lengths, fps = tiny_continue_plan(d)
    return segments_thumbnail("TempoMaster-Tiny", "Built-in model: a long video by continuation",
                              f"{_length(first + sum(lengths), fps)}, no downloads", first, lengths,
                              round(float(d["context_seconds"]) * fps), fps)


def build_tiny(render: bool = False) -> dict[str, bytes]:
    """Files of the built-in-model workflows (:data:`TINY_WORKFLOWS`): UI JSON, API copy and, when
    ``render`` is set (real frames: the workflow run on the CPU) or no thumbnail exists yet (placeholder),
    the ``.jpg``; an existing one is kept otherwise."""
    files: dict[str, bytes] = {}
    for name, (make, placeholder) in TINY_WORKFLOWS.items():
        ui = make()
        files.update(_workflow_files(name, ui))
        jpg = os.path.join(EXAMPLES_DIR, template_file_name(name) + ".jpg")
        if render:
            files[jpg] = render_tiny_thumbnail(ui)
        elif os.path.exists(jpg):  # kept as it is (rendered from real frames)
            with open(jpg, "rb") as fh:
                files[jpg] = fh.read()
        else:
            files[jpg] = placeholder()
    return files


def segments_thumbnail(brand: str, title: str, subtitle: str, first: int, lengths: list, context: int,
                       fps: float) -> bytes:
    """JPEG bytes (512x384) drawing a video made by continuation on one time axis: the first tree
    (``first`` frames), then one row per Continue segment (its ``context`` known frames dark, its new
    frames light), and the length in seconds under the axis."""
    img, draw, small = _card(brand, title, subtitle, top=20)
    width, height = img.size
    total = first + sum(lengths)
    left, right, top, bottom = 24, width - 40, 120, height - 72
    row = min(36, (bottom - top) / (len(lengths) + 1))
    x = lambda frame: left + (right - left) * frame / total  # noqa: E731
    draw.rectangle([x(0), top, x(first) - 1, top + row - 4], fill=(235, 160, 60), outline=(20, 20, 20))
    start = first
    for k, new in enumerate(lengths, start=1):
        y = top + k * row
        draw.rectangle([x(start - context), y, x(start), y + row - 4], fill=(60, 90, 150), outline=(20, 20, 20))
        draw.rectangle([x(start), y, x(start + new) - 1, y + row - 4], fill=(90, 150, 235), outline=(20, 20, 20))
        start += new
    for seconds in range(0, int(total / fps) + 1, 10 if total / fps > 30 else 5):
        draw.line([x(seconds * fps), bottom + 4, x(seconds * fps), bottom + 10], fill=(200, 200, 205))
        draw.text((x(seconds * fps) - 6, bottom + 12), f"{seconds}s", font=small, fill=(170, 170, 180))
    draw.text((24, height - 22), "tree, then segments: known context (dark) + new frames", font=small,
              fill=(140, 140, 150))
    return _jpeg(img, quality=88)


def minute_thumbnail(title: str, subtitle: str) -> bytes:
    """Thumbnail of the 14B minute template (:func:`segments_thumbnail`; no frames without the weights)."""
    first, lengths = _minute_frames()
    return segments_thumbnail("TempoMaster", title, subtitle, first, lengths, round(CONTEXT_SECONDS * FPS), FPS)


def thumbnail(title: str, subtitle: str, condition_positions: tuple = (), plan=None) -> bytes:
    """JPEG bytes (512x384) drawing a tree (default: the reference's default 109-frame 4,2,1 tree):
    one row per level, chunks as boxes over the same time span, condition frames as ticks."""
    from tempomaster_core.plan import TreePlan

    plan = plan if plan is not None else TreePlan(BLUEPRINT_FRAMES, FRAME_INTERVALS, height=HEIGHT, width=WIDTH)
    img, draw, small = _card("TempoMaster", title, subtitle, top=20)
    width, height = img.size
    left, right, top, row_h = 110, width - 24, 130, 70
    colours = [(235, 160, 60), (110, 190, 120), (90, 150, 235)]
    for row, level in enumerate(plan.levels):
        y0 = top + row * row_h
        draw.text((24, y0 + 14), f"{level.fps:g} fps", font=small, fill=(220, 220, 225))
        span = right - left
        for c in range(level.num_chunks):
            start, stop = level.chunk_range(c)
            x0 = left + span * start / level.num_frames
            x1 = left + span * stop / level.num_frames
            draw.rectangle([x0 + 2, y0 + 8, x1 - 2, y0 + 44], fill=colours[row], outline=(20, 20, 20))
            for pixel, _ in level.chunk_conditions(c):
                xt = left + span * (start + pixel) / level.num_frames
                draw.line([xt, y0 + 44, xt, y0 + 52], fill=(240, 240, 240))
        if row == 0:
            for pos in condition_positions:
                index = pos % level.num_frames
                xt = left + span * index / level.num_frames
                draw.polygon([(xt, y0 + 2), (xt - 7, y0 - 10), (xt + 7, y0 - 10)], fill=(255, 80, 80))
    draw.text((24, height - 34), "blueprint -> parallel chunks per level", font=small, fill=(140, 140, 150))
    return _jpeg(img, quality=88)


def _workflow_files(workflow_id: str, ui: dict) -> dict[str, bytes]:
    """The template (``example_workflows/<file name>.json``) and its API copy (``tests/workflows_api/<id>.json``).

    Raises:
        SystemExit: the workflow is invalid (:func:`validate_ui`) or would look wrong in the frontend
            (:func:`layout_problems`).
    """
    problems = validate_ui(ui) + layout_problems(ui)
    if problems:
        raise SystemExit(f"{workflow_id}: invalid workflow:\n  " + "\n  ".join(problems))
    return {
        os.path.join(EXAMPLES_DIR, template_file_name(workflow_id) + ".json"):
            (json.dumps(ui, indent=2, ensure_ascii=False) + "\n").encode(),
        os.path.join(API_DIR, workflow_id + ".json"): (json.dumps(ui_to_api(ui), indent=2, ensure_ascii=False) + "\n").encode(),
    }


#: id -> (builder, thumbnail title, thumbnail subtitle). The API copies in tests/workflows_api/ are named
#: by id; the files in example_workflows/ by :func:`template_file_name`.
WORKFLOWS = {
    "image_to_long_video": (image_to_long_video, "Image to long video", "109 frames @ 6 fps -> 436 @ 24 fps"),
    "text_to_video": (text_to_video, "Text to video", "blueprint 6 fps -> 12 -> 24 fps"),
    "first_last_frame": (first_last_frame, "First + last frame", "keyframes at 0 and -1"),
    "text_to_video_native": (text_to_video_native, "Text to video, native MODEL", "Load Diffusion Model -> samplers"),
    "image_to_minute": (image_to_minute, "Image to a minute", "436-frame tree + Continue (5 s context, 480 new)"),
}


def build(render_tiny: bool = False) -> dict[str, bytes]:
    """All files to write: ``{path: bytes}`` (``render_tiny``: see :func:`build_tiny`)."""
    files: dict[str, bytes] = {}
    marks = {"image_to_long_video": (0,), "text_to_video": (), "first_last_frame": (0, -1), "text_to_video_native": ()}
    for name, (make, title, subtitle) in WORKFLOWS.items():
        files.update(_workflow_files(name, make()))
        files[os.path.join(EXAMPLES_DIR, template_file_name(name) + ".jpg")] = (
            minute_thumbnail(title, subtitle) if name == "image_to_minute" else thumbnail(title, subtitle, marks[name]))
    files.update(build_tiny(render=render_tiny))
    return files


def stale_files(files: dict[str, bytes]) -> list[str]:
    """Files in ``example_workflows/`` and ``tests/workflows_api/`` that :func:`build` no longer makes
    (e.g. a renamed template): every JSON in ``example_workflows/`` is shown as a template."""
    made = set(files)
    old = []
    for folder in (EXAMPLES_DIR, API_DIR):
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            path = os.path.join(folder, name)
            if name.endswith((".json", ".jpg")) and path not in made:
                old.append(path)
    return old


def main(argv=None) -> int:
    """Write (or with ``--check`` compare) the generated files; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing (JSON files only)")
    parser.add_argument("--tiny-thumbnail", action="store_true",
                        help="render the tiny template's .jpg from frames of the built-in model (needs its weights)")
    args = parser.parse_args(argv)
    files = build(render_tiny=args.tiny_thumbnail and not args.check)
    stale = stale_files(files) if args.check else []
    for path in [] if args.check else stale_files(files):
        os.remove(path)
        print("removed", os.path.relpath(path, _ROOT))
    for path, data in files.items():
        if args.check:
            if path.endswith(".json") and (not os.path.exists(path) or open(path, "rb").read() != data):
                stale.append(path)
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(data)
        print("wrote", os.path.relpath(path, _ROOT))
    if stale:
        print("out of date (run python3 tools/make_workflows.py):", *stale, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
