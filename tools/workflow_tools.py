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

from tools.comfy_core_nodes import CORE_NODES, WIDGET_TYPES  # noqa: E402

#: (node type, widget) combos listing the user's model files: any name is valid in a shared
#: workflow (ComfyUI checks it against the user's folders when the graph is queued).
MODEL_FILE_WIDGETS = {("TempoMasterLoadModel", "model_name")}


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
        if target["type"] != kind:
            problems.append(f"link {link_id}: {kind} into {dst_node['type']}.{target['name']} of type {target['type']}")
        if dst in specs:
            spec = specs[dst]
            expected = {n: t for n, t, _ in spec["inputs"]}
            expected.update({n: t for n, t, _, _ in spec["widgets"] if t != "COMBO"})
            if expected.get(target["name"]) != kind:
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
