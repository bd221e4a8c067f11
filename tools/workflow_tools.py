"""Node specs, UI-workflow validation and UI -> API conversion (no ComfyUI needed).

A ComfyUI *UI-format* workflow (what the frontend saves and the template
browser opens) stores nodes with ``inputs`` (sockets, each with one ``link``
id), ``outputs`` (each with a list of ``links``), ``widgets_values`` in widget
order, and a ``links`` table ``[id, from_node, from_slot, to_node, to_slot, type]``.
The *API format* (what ``POST /prompt`` takes) is
``{node_id: {"class_type": ..., "inputs": {name: value | [from_node_id, slot]}}}``.

Node specs come from our node classes (``INPUT_TYPES``/``RETURN_TYPES``) and
from ``tools/comfy_core_nodes.py`` for ComfyUI core nodes.
"""

from __future__ import annotations

import os
import sys
from typing import Any

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from nodes.display_names import LOAD_MODEL_ID, TREE_SCHEDULER_ID  # noqa: E402
from tools.comfy_core_nodes import CORE_NODES, WIDGET_TYPES  # noqa: E402

#: (node type, widget) combos listing the user's model files: any name is valid in a shared
#: workflow (ComfyUI checks it against the user's folders when the graph is queued).
MODEL_FILE_WIDGETS = {(LOAD_MODEL_ID, "model_name")}


def accepts(socket_type: str, kind: str) -> bool:
    """True when an input of ``socket_type`` takes a link of type ``kind``: equal, or one of a union ``"A,B"``
    (the rule of ComfyUI's ``comfy_execution.validation.validate_node_input``)."""
    return kind in {t.strip() for t in str(socket_type).split(",")}

def _our_nodes() -> dict:
    from nodes import NODE_CLASS_MAPPINGS

    return NODE_CLASS_MAPPINGS


def spec_from_class(cls: Any) -> dict:
    """Spec (format of ``tools/comfy_core_nodes.py``) of a V1 node class.

    Inputs whose type is INT/FLOAT/STRING/BOOLEAN or a list (COMBO) are widgets;
    an INT named ``seed``/``noise_seed`` or with ``control_after_generate`` carries
    one extra frontend value (the "control after generate" choice). Other inputs are sockets.
    """
    types = cls.INPUT_TYPES()
    inputs, widgets = [], []
    for section in ("required", "optional"):
        for name, entry in types.get(section, {}).items():
            kind = entry[0]
            options = entry[1] if len(entry) > 1 else {}
            if isinstance(kind, (list, tuple)):
                widgets.append((name, "COMBO", 0, list(kind)))
            elif kind in WIDGET_TYPES:
                extra = 1 if kind == "INT" and (options.get("control_after_generate") or name in ("seed", "noise_seed")) else 0
                widgets.append((name, kind, extra, None))
            else:
                inputs.append((name, kind, section == "optional"))
    names = getattr(cls, "RETURN_NAMES", None) or cls.RETURN_TYPES
    outputs = list(zip(names, cls.RETURN_TYPES))
    return {"inputs": inputs, "widgets": widgets, "outputs": outputs}


def node_spec(node_type: str) -> dict:
    """Spec of an our-or-core node type.

    Raises:
        KeyError: unknown node type.
    """
    ours = _our_nodes()
    if node_type in ours:
        return spec_from_class(ours[node_type])
    if node_type in CORE_NODES:
        spec = CORE_NODES[node_type]
        return {
            "inputs": list(spec["inputs"]),
            "widgets": [(n, t, e, None) for n, t, e in spec["widgets"]],
            "outputs": list(spec["outputs"]),
            "virtual": spec.get("virtual", False),
        }
    raise KeyError(f"unknown node type {node_type!r}")


def widget_value_count(spec: dict) -> int:
    """Number of ``widgets_values`` entries the frontend stores for a node."""
    return sum(1 + extra for _, _, extra, _ in spec["widgets"])


def validate_ui(workflow: dict) -> list[str]:
    """Problems of a UI-format workflow (empty list = valid).

    Checks: every node type is known; every link's type equals the source
    output's type and the target input's type, and both ends reference it;
    every required socket of a real (non-note) node is linked; the number of
    ``widgets_values`` matches the node's widgets; our nodes' combo values are
    valid choices (except the model-file lists of :data:`MODEL_FILE_WIDGETS`); ``pos``/``size`` are pairs and ``properties.models`` entries
    have the name/url/directory the frontend's workflow schema requires.
    """
    problems: list[str] = []
    nodes = {n["id"]: n for n in workflow.get("nodes", [])}
    specs = {}
    for node in nodes.values():
        try:
            specs[node["id"]] = node_spec(node["type"])
        except KeyError as err:
            problems.append(f"node {node['id']}: {err.args[0]}")
    for link in workflow.get("links", []):
        link_id, src, src_slot, dst, dst_slot, kind = link
        if src not in nodes or dst not in nodes:
            problems.append(f"link {link_id}: references a missing node")
            continue
        src_node, dst_node = nodes[src], nodes[dst]
        outs = src_node.get("outputs", [])
        if src_slot >= len(outs):
            problems.append(f"link {link_id}: node {src} has no output slot {src_slot}")
            continue
        if outs[src_slot]["type"] != kind or link_id not in (outs[src_slot].get("links") or []):
            problems.append(f"link {link_id}: source output {src}:{src_slot} type/links mismatch")
        if src in specs and src_slot < len(specs[src]["outputs"]) and specs[src]["outputs"][src_slot][1] != kind:
            problems.append(
                f"link {link_id}: {src_node['type']} output {src_slot} is {specs[src]['outputs'][src_slot][1]}, link says {kind}"
            )
        ins = dst_node.get("inputs", [])
        if dst_slot >= len(ins):
            problems.append(f"link {link_id}: node {dst} has no input slot {dst_slot}")
            continue
        target = ins[dst_slot]
        if target.get("link") != link_id:
            problems.append(f"link {link_id}: input {dst}:{dst_slot} does not reference it")
        if not accepts(target["type"], kind):
            problems.append(f"link {link_id}: {kind} into {dst_node['type']}.{target['name']} of type {target['type']}")
        if dst in specs:
            spec = specs[dst]
            expected = {n: t for n, t, _ in spec["inputs"]}
            expected.update({n: t for n, t, _, _ in spec["widgets"] if t != "COMBO"})
            if not accepts(expected.get(target["name"], ""), kind):
                problems.append(
                    f"link {link_id}: {dst_node['type']} has no input {target['name']!r} of type {kind}"
                )
    for node_id, node in nodes.items():
        for model in node.get("properties", {}).get("models", []) or []:
            # the frontend's schema: name, directory and an http(s) url are all required
            if not (model.get("name") and model.get("directory") and str(model.get("url", "")).startswith("http")):
                problems.append(f"node {node_id}: properties.models entry {model} needs name, url and directory")
        for key in ("pos", "size"):
            value = node.get(key)
            if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value)):
                problems.append(f"node {node_id}: {key} must be [x, y]")
        spec = specs.get(node_id)
        if spec is None:
            continue
        linked = {i["name"] for i in node.get("inputs", []) if i.get("link") is not None}
        if not spec.get("virtual"):
            for name, kind, optional in spec["inputs"]:
                if not optional and name not in linked:
                    problems.append(f"node {node_id} ({node['type']}): required input {name!r} ({kind}) not connected")
        values = node.get("widgets_values", [])
        if len(values) != widget_value_count(spec):
            problems.append(
                f"node {node_id} ({node['type']}): {len(values)} widgets_values, expected {widget_value_count(spec)}"
            )
            continue
        i = 0
        for name, kind, extra, choices in spec["widgets"]:
            if ((node["type"], name) not in MODEL_FILE_WIDGETS and choices is not None and name not in linked
                    and values[i] not in choices and choices):
                problems.append(f"node {node_id} ({node['type']}): {name}={values[i]!r} not in {choices}")
            i += 1 + extra
    return problems


def ui_to_api(workflow: dict) -> dict:
    """Convert a UI-format workflow to the API format ``POST /prompt`` takes.

    Frontend-only nodes (notes) are dropped; widget values are named by the
    node spec (frontend-only extra values such as "control after generate" are
    skipped); linked inputs become ``[str(from_node), from_slot]``; nodes muted
    or bypassed (``mode`` 2/4) are refused.

    Raises:
        KeyError: unknown node type. ValueError: muted/bypassed nodes.
    """
    links = {link[0]: link for link in workflow.get("links", [])}
    api: dict[str, dict] = {}
    for node in sorted(workflow["nodes"], key=lambda n: n["id"]):
        spec = node_spec(node["type"])
        if spec.get("virtual"):
            continue
        if node.get("mode", 0) not in (0,):
            raise ValueError(f"node {node['id']} is muted/bypassed; the converter does not handle that")
        inputs: dict[str, Any] = {}
        values = node.get("widgets_values", [])
        i = 0
        for name, _, extra, _ in spec["widgets"]:
            inputs[name] = values[i]
            i += 1 + extra
        for slot in node.get("inputs", []):
            link_id = slot.get("link")
            if link_id is None:
                continue
            _, src, src_slot, _, _, _ = links[link_id]
            inputs[slot["name"]] = [str(src), src_slot]
        entry = {"class_type": node["type"], "inputs": inputs}
        if node.get("title"):
            entry["_meta"] = {"title": node["title"]}
        api[str(node["id"])] = entry
    return api


# -- layout as the frontend draws it ----------------------------------------------------------
#
# Geometry of ComfyUI frontend 1.27 (its litegraph): a node's ``pos`` is the top-left corner of its
# body; the title bar (NODE_TITLE_HEIGHT) sits above it, and node badges (the node source badge,
# 20 px high, 2 px gap) above the title bar. When a workflow loads, each node's size becomes the
# larger of the stored size and its computed size: one NODE_SLOT_HEIGHT row per socket (the larger
# of inputs and outputs), NODE_WIDGET_HEIGHT + 4 per widget, 8 below the widgets, 6 at the bottom.
# A group's title bar is its font size x 1.4 high. The Tree Scheduler grows to fit its drawing and
# Save Video to its preview, so nothing may sit below them.

NODE_TITLE_HEIGHT = 30
NODE_SLOT_HEIGHT = 20
NODE_WIDGET_HEIGHT = 20
BADGE_SPACE = 22
GROUP_TITLE_HEIGHT = 24 * 1.4
#: Node types that grow downwards after loading (the tree view, the video preview).
GROWING_NODES = (TREE_SCHEDULER_ID, "SaveVideo")
#: The graph canvas the first view is checked for, in screen px: what frontend 1.27 leaves for it in a
#: 1280x720 browser window (headless Chromium, measured: ``app.canvas.visible_area`` x scale), and what is
#: kept clear inside it (left; top: the workflow tabs bar lies over the canvas's top 38 px).
VIEWPORT = (1240, 537)
VIEW_MARGINS = (12, 48)


def frontend_min_height(node: dict) -> int:
    """The height the frontend gives a node at least (sockets and widgets, each widget counted at its
    one-line height: multi-line text, image and video widgets need their stored size on top)."""
    spec = node_spec(node["type"])
    sockets = sum(1 for i in node.get("inputs", []) if "widget" not in i)
    rows = max(sockets, len(spec["outputs"]), 1)
    widgets = widget_value_count(spec)
    return rows * NODE_SLOT_HEIGHT + (widgets * (NODE_WIDGET_HEIGHT + 4) + 8 if widgets else 0) + 6


def node_box(node: dict) -> tuple[float, float, float, float]:
    """``(x0, y0, x1, y1)`` the node covers on the canvas: badges and title bar included; ``y1`` is
    infinite for :data:`GROWING_NODES`."""
    x, y = node["pos"]
    width, height = node["size"]
    height = max(height, frontend_min_height(node))
    bottom = float("inf") if node["type"] in GROWING_NODES else y + height
    return x, y - NODE_TITLE_HEIGHT - BADGE_SPACE, x + width, bottom


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def first_view(workflow: dict) -> tuple[float, float, float, float]:
    """The canvas rectangle the first view shows: the workflow's stored offset and scale
    (``extra.ds``, restored by the frontend) on a canvas of :data:`VIEWPORT`, less :data:`VIEW_MARGINS`."""
    ds = workflow.get("extra", {}).get("ds", {"offset": [0, 0], "scale": 1})
    (ox, oy), scale = ds["offset"], ds["scale"]
    return (VIEW_MARGINS[0] / scale - ox, VIEW_MARGINS[1] / scale - oy, (VIEWPORT[0] - VIEW_MARGINS[0]) / scale - ox,
            (VIEWPORT[1] - VIEW_MARGINS[1]) / scale - oy)


def layout_problems(workflow: dict) -> list[str]:
    """What a user would see wrong in the frontend's drawing of a UI-format workflow (empty = none).

    Checks, with the geometry above: no two nodes overlap (badges and title bars included); no
    group's title bar is covered by a node; every node is wholly inside or wholly outside each
    group; the stored sizes are at least what the frontend computes (so nothing grows into its
    neighbour when loaded); every note (``MarkdownNote``/``Note``) is wholly in the first view.
    """
    problems = []
    nodes = workflow.get("nodes", [])
    boxes = {n["id"]: node_box(n) for n in nodes}
    for i, a in enumerate(nodes):
        if a["size"][1] < frontend_min_height(a):
            problems.append(f"node {a['id']} ({a['type']}): stored height {a['size'][1]} < the frontend's "
                            f"{frontend_min_height(a)}")
        for b in nodes[i + 1:]:
            if _overlap(boxes[a["id"]], boxes[b["id"]]):
                problems.append(f"nodes {a['id']} ({a['type']}) and {b['id']} ({b['type']}) overlap")
    for group in workflow.get("groups", []):
        gx, gy, gw, gh = group["bounding"]
        outer = (gx, gy, gx + gw, gy + gh)
        title = (gx, gy, gx + gw, gy + GROUP_TITLE_HEIGHT)
        for node in nodes:
            box = boxes[node["id"]]
            if _overlap(box, title):
                problems.append(f"group {group['title']!r}: its title bar is under node {node['id']} ({node['type']})")
            inside = outer[0] <= box[0] and box[2] <= outer[2] and outer[1] <= box[1] and box[3] <= outer[3]
            if _overlap(box, outer) and not inside:
                problems.append(f"group {group['title']!r}: node {node['id']} ({node['type']}) crosses its border")
    view = first_view(workflow)
    for node in nodes:
        box = boxes[node["id"]]
        if node["type"] in ("MarkdownNote", "Note") and not (
                view[0] <= box[0] and box[2] <= view[2] and view[1] <= box[1] and box[3] <= view[3]):
            problems.append(f"note {node['id']} at {box} is not inside the first view {tuple(round(v) for v in view)}")
    return problems
