"""Example workflows: format, node types, links, reference defaults, API copies, and a run.

The run executes the API-format copy in-process (a small topological executor):
our nodes for real on a tiny DiT, small stand-ins for the ComfyUI core nodes
(CLIP, VAE, images, video), with the plan shrunk to a tiny size.
"""

import copy
import json
import os

import pytest
import torch
from PIL import Image

from comfy_fakes import FakeCLIP, FakeWanVAE, comfyui_validation_errors
from nodes import NODE_CLASS_MAPPINGS
from tiny_models import make_tiny_dit
from tools.comfy_core_nodes import CORE_NODES
from tools.make_workflows import main as make_workflows_main
from tools.make_workflows import template_file_name
from tools.workflow_tools import layout_problems, ui_to_api, validate_ui

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "example_workflows")
API = os.path.join(ROOT, "tests", "workflows_api")
#: Workflow ids: the API copies' names; the templates' file names are ``template_file_name(id)``.
NAMES = sorted(f[:-5] for f in os.listdir(API) if f.endswith(".json"))
#: Workflows for the real 14B model (umT5 CLIPLoader, Wan VAELoader); the others use the built-in tiny model.
REAL_MODEL_NAMES = [n for n in NAMES if not n.startswith("tiny_")]


def _load(path):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _example(name, ext=".json"):
    """Path of the template of workflow ``name`` in example_workflows/."""
    return os.path.join(EXAMPLES, template_file_name(name) + ext)


def _by_type(ui, node_type):
    return [n for n in ui["nodes"] if n["type"] == node_type]


def test_the_examples_exist_with_thumbnails():
    assert set(NAMES) == {"image_to_long_video", "text_to_video", "first_last_frame", "image_to_minute",
                          "tiny_text_to_video", "tiny_continue", "text_to_video_native"}
    for name in NAMES:
        with Image.open(_example(name, ".jpg")) as img:
            assert img.format == "JPEG" and img.size[0] >= 256
    # every JSON in example_workflows is shown as a template: all must be UI format, one per workflow
    for f in os.listdir(EXAMPLES):
        assert f.endswith((".json", ".jpg")), f
    assert sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".json")) == sorted(
        template_file_name(n) + ".json" for n in NAMES)


def test_template_names_say_what_they_make_and_need():
    """Frontend 1.27 shows a pack's template with its file name as title and as description."""
    for name in ("tiny_text_to_video", "tiny_continue"):
        tiny = template_file_name(name)
        assert "Tiny" in tiny and "CPU" in tiny and "no downloads" in tiny
    assert "604 frames (25.2 s) at 24 fps" in template_file_name("tiny_continue")
    for name in REAL_MODEL_NAMES:
        title = template_file_name(name)
        length = "1440 frames (60.0 s)" if name == "image_to_minute" else "436 frames (18.2 s)"
        assert title.startswith("TempoMaster 14B - ") and f"{length} at 24 fps" in title
        assert not set(title) & set('/\\:*?"<>|'), title  # a file name on every system
    assert len({template_file_name(n) for n in NAMES}) == len(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_the_frontend_draws_the_template_without_overlaps_and_the_note_in_the_first_view(name):
    assert layout_problems(_load(_example(name))) == []


def test_the_layout_check_sees_what_the_frontend_drew_wrong():
    """The defects seen in the browser: the note left of the view, group titles under node title bars,
    badges over the widgets of the node above."""
    ui = _load(_example("image_to_long_video"))
    moved = copy.deepcopy(ui)
    _by_type(moved, "MarkdownNote")[0]["pos"] = [-480, 0]
    assert any("not inside the first view" in p for p in layout_problems(moved))
    group = copy.deepcopy(ui)
    first = _by_type(group, "TempoMasterLoadModel")[0]
    group["groups"][0]["bounding"][1] = first["pos"][1] - 40  # 40 above the node: behind its title bar
    assert any("title bar is under node" in p for p in layout_problems(group))
    stacked = copy.deepcopy(ui)
    clip = _by_type(stacked, "CLIPLoader")[0]
    clip["pos"][1] = first["pos"][1] + first["size"][1] + 34  # the old 34 px gap
    assert any("overlap" in p for p in layout_problems(stacked))


@pytest.mark.parametrize("name", REAL_MODEL_NAMES)
def test_the_missing_models_dialog_lists_the_dit_umt5_and_vae(name):
    from tempomaster_core.loading import RELEASE_FILE, RELEASE_URL

    ui = _load(_example(name))
    listed = {}
    for node in ui["nodes"]:  # what the frontend collects: properties.models whose name is a widget value
        for model in node.get("properties", {}).get("models", []):
            assert model["name"] in node["widgets_values"], (node["type"], model)
            listed[model["directory"]] = model
    assert set(listed) == {"diffusion_models", "text_encoders", "vae"}
    assert listed["diffusion_models"]["name"] == RELEASE_FILE
    assert listed["diffusion_models"]["url"] == RELEASE_URL
    assert RELEASE_URL.startswith("https://huggingface.co/Scottttttyy/TempoMaster/")
    note = _by_type(ui, "MarkdownNote")[0]["widgets_values"][0]
    assert RELEASE_FILE in note and "huggingface-cli download" in note and "tempomaster_core.convert" in note


@pytest.mark.parametrize("name", NAMES)
def test_example_is_valid_ui_format_with_known_nodes_and_matching_links(name):
    ui = _load(_example(name))
    assert {"nodes", "links", "version", "last_node_id", "last_link_id"} <= set(ui)
    for node in ui["nodes"]:
        assert {"id", "type", "pos", "size", "inputs", "outputs", "widgets_values", "mode"} <= set(node)
        assert node["type"] in NODE_CLASS_MAPPINGS or node["type"] in CORE_NODES
    assert validate_ui(ui) == []
    assert ui["last_node_id"] == max(n["id"] for n in ui["nodes"])
    assert ui["last_link_id"] == max(link[0] for link in ui["links"])
    # every TEMPO_* output is consumed
    for node in ui["nodes"]:
        for out in node["outputs"]:
            if out["type"].startswith("TEMPO_") and not (node["type"] == "TempoMasterFrameRateRefiner" and out["name"] == "level"):
                assert out["links"], f"{name}: {node['type']}.{out['name']} unused"


def test_validator_catches_broken_workflows():
    ui = _load(_example("image_to_long_video"))
    wrong_type = copy.deepcopy(ui)
    link = next(link for link in wrong_type["links"] if link[5] == "TEMPO_PLAN")
    link[5] = "TEMPO_LEVEL"
    assert validate_ui(wrong_type)
    unlinked = copy.deepcopy(ui)
    sampler = _by_type(unlinked, "TempoMasterBlueprintSampler")[0]
    next(i for i in sampler["inputs"] if i["name"] == "vae")["link"] = None
    assert any("'vae'" in p for p in validate_ui(unlinked))
    bad_widgets = copy.deepcopy(ui)
    _by_type(bad_widgets, "TempoMasterTreeScheduler")[0]["widgets_values"].pop()
    assert any("widgets_values" in p for p in validate_ui(bad_widgets))
    unknown = copy.deepcopy(ui)
    unknown["nodes"][0]["type"] = "NoSuchNode"
    assert any("NoSuchNode" in p for p in validate_ui(unknown))
    no_url = copy.deepcopy(ui)  # the frontend's schema rejects a models entry without url
    _by_type(no_url, "TempoMasterLoadModel")[0]["properties"]["models"] = [{"name": "x", "directory": "diffusion_models"}]
    assert any("url" in p for p in validate_ui(no_url))


def test_image_to_long_video_uses_the_reference_defaults():
    ui = _load(_example("image_to_long_video"))
    api = ui_to_api(ui)
    sched = next(v for v in api.values() if v["class_type"] == "TempoMasterTreeScheduler")["inputs"]
    plan, _ = NODE_CLASS_MAPPINGS["TempoMasterTreeScheduler"]().plan(
        sched["blueprint_frames"], sched["frame_intervals"], sched["custom_intervals"], sched["chunks"],
        sched["fps"], sched["width"], sched["height"])
    assert plan.blueprint_frames == 109 and plan.frame_intervals == (4, 2, 1)
    assert plan.levels[-1].num_frames == 436 and plan.levels[-1].fps == 24.0
    assert (plan.width, plan.height) == (832, 480)
    bp = next(v for v in api.values() if v["class_type"] == "TempoMasterBlueprintSampler")["inputs"]
    assert (bp["steps"], bp["shift"], bp["cfg"], bp["guidance"]) == (50, 5.0, 8.0, "apg")
    refiners = [v["inputs"] for v in api.values() if v["class_type"] == "TempoMasterFrameRateRefiner"]
    assert len(refiners) == plan.num_levels - 1
    assert all((r["steps"], r["shift"], r["cfg"], r["guidance"]) == (32, 3.0, 8.0, "apg") for r in refiners)
    cond = next(v for v in api.values() if v["class_type"] == "TempoMasterMultiMaskCondition")["inputs"]
    assert cond["positions"] == "0" and "first image" in cond["size_mode"]
    clip = next(v for v in api.values() if v["class_type"] == "CLIPLoader")["inputs"]
    assert clip["type"] == "wan" and "umt5_xxl" in clip["clip_name"]
    vae = next(v for v in api.values() if v["class_type"] == "VAELoader")["inputs"]
    assert vae["vae_name"] == "wan_2.1_vae.safetensors"
    note = _by_type(ui, "MarkdownNote")[0]["widgets_values"][0]
    for needle in ("Scottttttyy/TempoMaster", "models/diffusion_models", "models/text_encoders", "models/vae",
                   "umt5_xxl", "wan_2.1_vae"):
        assert needle in note


def test_other_examples_condition_as_named():
    t2v = ui_to_api(_load(_example("text_to_video")))
    assert not any(v["class_type"] == "TempoMasterMultiMaskCondition" for v in t2v.values())
    bp = next(v for v in t2v.values() if v["class_type"] == "TempoMasterBlueprintSampler")["inputs"]
    assert "condition" not in bp
    flf = ui_to_api(_load(_example("first_last_frame")))
    cond = next(v for v in flf.values() if v["class_type"] == "TempoMasterMultiMaskCondition")["inputs"]
    assert cond["positions"] == "0,-1"
    assert flf[cond["images"][0]]["class_type"] == "ImageBatch"


@pytest.mark.parametrize("name", NAMES)
def test_api_copies_are_conversions_of_the_examples(name):
    assert _load(os.path.join(API, name + ".json")) == ui_to_api(_load(_example(name)))


def test_generated_files_are_up_to_date():
    assert make_workflows_main(["--check"]) == 0


@pytest.mark.parametrize("name", NAMES)
def test_workflows_saved_with_the_former_boundary_name_still_plan_the_same(name):
    """Workflows saved before the boundary mode ``"reference"`` was renamed ``"repeat_anchor"`` (UI format:
    the TreeScheduler's last widget value) pass the node's validation and give the same plan."""
    ui = _load(_example(name))
    (scheduler,) = _by_type(ui, "TempoMasterTreeScheduler")
    assert scheduler["widgets_values"][-1] == "repeat_anchor"
    new = next(n for n in ui_to_api(ui).values() if n["class_type"] == "TempoMasterTreeScheduler")["inputs"]
    scheduler["widgets_values"][-1] = "reference"
    old = next(n for n in ui_to_api(ui).values() if n["class_type"] == "TempoMasterTreeScheduler")["inputs"]
    assert old == {**new, "boundary_frames": "reference"}
    node = NODE_CLASS_MAPPINGS["TempoMasterTreeScheduler"]
    assert comfyui_validation_errors(node, old) == []  # ComfyUI's own choice check would refuse "reference"
    widgets = {k: v for k, v in old.items() if k != "model"}  # the model link (its own test below)
    assert node().plan(**widgets) == node().plan(**{**widgets, "boundary_frames": "repeat_anchor"})


@pytest.mark.parametrize("name", NAMES)
def test_the_scheduler_plans_with_the_limits_of_the_workflows_model(name):
    """Every example links its Load TempoMaster Model to the Tree Scheduler's model input, so the plan uses what
    that model was trained on. A workflow saved before the input existed (no such socket, the same widget values)
    still plans, with the widget: the same tree, since the examples' widget holds their model's clip length."""
    from tempomaster_core.tiny.builtin import builtin_dir, bundle_limits
    from tempomaster_core.trained_limits import TrainedLimits

    ui = _load(_example(name))
    api = ui_to_api(ui)
    (loader,) = [i for i, n in api.items() if n["class_type"] in DIT_LOADERS]
    (scheduler,) = _by_type(ui, "TempoMasterTreeScheduler")
    inputs = api[str(scheduler["id"])]["inputs"]
    assert inputs["model"] == [loader, 0]
    model = make_tiny_dit(seed=0)  # what the loader gives: the built-in bundle's limits, or none for a file
    model.trained_limits = bundle_limits(builtin_dir()) if name.startswith("tiny_") else None
    node = NODE_CLASS_MAPPINGS["TempoMasterTreeScheduler"]()
    linked_plan, linked_summary = node.plan(**{**inputs, "model": model})
    assert "Training limits from the connected model" in linked_summary or "declares none" in linked_summary
    expected = bundle_limits(builtin_dir()) if name.startswith("tiny_") else TrainedLimits()
    assert f"chunks up to {expected.chunk_frames} frames" in linked_summary
    # saved before the socket existed: no model input, no link
    old = copy.deepcopy(ui)
    (old_scheduler,) = _by_type(old, "TempoMasterTreeScheduler")
    link = old_scheduler["inputs"].pop(next(i for i, s in enumerate(old_scheduler["inputs"]) if s["name"] == "model"))["link"]
    old["links"] = [row for row in old["links"] if row[0] != link]
    for node_ui in old["nodes"]:
        for out in node_ui["outputs"]:
            if out.get("links") and link in out["links"]:
                out["links"].remove(link)
    assert validate_ui(old) == []
    old_inputs = ui_to_api(old)[str(scheduler["id"])]["inputs"]
    assert "model" not in old_inputs and old_inputs == {k: v for k, v in inputs.items() if k != "model"}
    old_plan, old_summary = node.plan(**old_inputs)
    assert old_plan == linked_plan and "trained_chunk_frames widget" in old_summary


# -- in-process run of the API workflows -------------------------------------------------


class _Video:
    def __init__(self, images, fps):
        self.images, self.fps = images, fps


DIT_LOADERS = ("TempoMasterLoadModel", "UNETLoader")
"""The nodes the examples load their DiT with: Load TempoMaster Model, or ComfyUI's Load Diffusion Model."""


def _core_node(class_type, inputs):
    """Stand-ins for the ComfyUI core nodes of the examples."""
    if class_type == "CLIPLoader":
        return (FakeCLIP(dim=24),)
    if class_type == "CLIPTextEncode":
        clip = inputs["clip"]
        return (clip.encode_from_tokens_scheduled(clip.tokenize(inputs["text"])),)
    if class_type == "VAELoader":
        return (FakeWanVAE(),)
    if class_type == "LoadImage":
        image = torch.rand(1, 48, 40, 3, generator=torch.Generator().manual_seed(len(inputs["image"])))
        return (image, torch.zeros(1, 48, 40))
    if class_type == "ImageBatch":
        return (torch.cat([inputs["image1"], inputs["image2"]]),)
    if class_type == "CreateVideo":
        return (_Video(inputs["images"], inputs["fps"]),)
    if class_type == "SaveVideo":
        return ()
    raise KeyError(class_type)


def run_api_workflow(api, model):
    """Execute an API-format workflow in dependency order; returns ``{node_id: outputs}``."""
    results = {}
    pending = dict(api)
    while pending:
        for node_id, node in sorted(pending.items()):
            links = [v for v in node["inputs"].values() if isinstance(v, list)]
            if all(src in results for src, _ in links):
                break
        else:
            raise AssertionError("cycle or dangling link")
        inputs = {k: (results[v[0]][v[1]] if isinstance(v, list) else v) for k, v in node["inputs"].items()}
        cls = NODE_CLASS_MAPPINGS.get(node["class_type"])
        if node["class_type"] in DIT_LOADERS:  # ComfyUI's own MODEL path runs in test_comfyui_integration.py
            results[node_id] = (model,)
        elif cls is not None:
            results[node_id] = getattr(cls(), cls.FUNCTION)(**inputs)
        else:
            results[node_id] = _core_node(node["class_type"], inputs)
        del pending[node_id]
    return results


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "image_to_minute" else n
                                  for n in REAL_MODEL_NAMES])  # the minute: four trees (seconds)
def test_api_workflow_runs_on_a_tiny_model(name):
    api = _load(os.path.join(API, name + ".json"))
    for node in api.values():
        if node["class_type"] == "TempoMasterTreeScheduler":
            node["inputs"].update(blueprint_frames=5, width=32, height=32, chunks="2,2")
        if node["class_type"] in ("TempoMasterBlueprintSampler", "TempoMasterFrameRateRefiner"):
            node["inputs"]["steps"] = 1
        if node["class_type"] == "TempoMasterContinue":  # 8 frames of context, 12 new frames, 1 step per level
            node["inputs"].update(context_seconds=8 / 24, new_frames=12, steps="1")
    continues = sum(node["class_type"] == "TempoMasterContinue" for node in api.values())
    results = run_api_workflow(api, make_tiny_dit(seed=0))
    video = next(results[i][0] for i, n in api.items() if n["class_type"] == "CreateVideo")
    assert video.fps == 24.0
    assert video.images.shape[0] == 20 + 12 * continues and video.images.shape[-1] == 3  # 5 frames x 4, + 12 each
    assert continues == (3 if name == "image_to_minute" else 0)


def _continue_chain(api):
    """The Continue nodes of an API workflow in chain order (each one's images = the previous one's joined)."""
    nodes = {i: n for i, n in api.items() if n["class_type"] == "TempoMasterContinue"}
    chain = [i for i, n in nodes.items() if n["inputs"]["images"][0] not in nodes]
    while len(chain) < len(nodes):
        chain.append(next(i for i, n in nodes.items() if n["inputs"]["images"] == [chain[-1], 0]))
    return [nodes[i]["inputs"] for i in chain]


@pytest.mark.parametrize("name,seconds,context", [("image_to_minute", 60.0, 5.0), ("tiny_continue", 25.2, 1.54)])
def test_continuation_workflows_chain_to_the_length_their_names_say(name, seconds, context):
    from tempomaster_core.defaults import SEED

    api = ui_to_api(_load(_example(name)))
    sched = next(v for v in api.values() if v["class_type"] == "TempoMasterTreeScheduler")["inputs"]
    chain = _continue_chain(api)
    first = sched["blueprint_frames"] * 4  # (4, 2, 1) tree: 4 output frames per blueprint frame
    frames = first + sum(c["new_frames"] for c in chain)
    assert f"{frames} frames ({seconds:.1f} s) at 24 fps" in template_file_name(name)
    assert round(frames / 24, 1) == seconds and all(c["context_seconds"] == context for c in chain)
    assert [c["seed"] for c in chain] == [SEED + k for k in range(1, len(chain) + 1)]  # generate_long's seeds
    for c in chain:
        assert c["plan"][0] == next(i for i, v in api.items() if v["class_type"] == "TempoMasterTreeScheduler")
        assert c["fps"][1] == 2  # the fps output of the node before (refiner or Continue)
    video = next(v for v in api.values() if v["class_type"] == "CreateVideo")["inputs"]
    last = next(i for i, v in api.items() if v["inputs"] is chain[-1])
    assert video["images"] == [last, 0] and video["fps"] == [last, 2]
    if name == "image_to_minute":  # the paper's step: 480 new frames; the last one ends the minute
        assert [c["new_frames"] for c in chain] == [480, 480, 44] and frames == 1440


# -- the built-in TempoMaster-Tiny workflow (its run: tests/test_nodes_builtin.py) -----------


def test_tiny_workflow_uses_the_builtin_model_and_its_recommended_settings():
    from tempomaster_core.tiny.builtin import BUILTIN_MODEL_NAME, bundle_defaults, builtin_dir

    d = bundle_defaults(builtin_dir())  # the shipped bundle's recommended settings
    ui = _load(_example("tiny_text_to_video"))
    api = ui_to_api(ui)
    kinds = sorted(v["class_type"] for v in api.values())
    assert kinds == sorted(["TempoMasterLoadModel", "TempoMasterLoadTinyEncoders", "CLIPTextEncode", "CLIPTextEncode",
                            "TempoMasterTreeScheduler", "TempoMasterBlueprintSampler"]
                           + ["TempoMasterFrameRateRefiner"] * (len(d["frame_intervals"]) - 1)
                           + ["CreateVideo", "SaveVideo"])  # no download loaders, no condition: text-to-video
    loader = next(v for v in api.values() if v["class_type"] == "TempoMasterLoadModel")["inputs"]
    assert loader["model_name"] == BUILTIN_MODEL_NAME and loader["weight_dtype"] == "fp32"
    enc_id = next(i for i, v in api.items() if v["class_type"] == "TempoMasterLoadTinyEncoders")
    for node in api.values():
        if node["class_type"] == "CLIPTextEncode":
            assert node["inputs"]["clip"] == [enc_id, 0]
        if node["class_type"].startswith(("TempoMasterBlueprint", "TempoMasterFrameRate")):
            assert node["inputs"]["vae"] == [enc_id, 1]
    texts = {v["_meta"]["title"]: v["inputs"]["text"] for v in api.values() if v["class_type"] == "CLIPTextEncode"}
    assert texts["Negative prompt"] == d["negative_prompt"] and texts["Prompt"]

    sched = next(v for v in api.values() if v["class_type"] == "TempoMasterTreeScheduler")["inputs"]
    plan, _ = NODE_CLASS_MAPPINGS["TempoMasterTreeScheduler"]().plan(
        sched["blueprint_frames"], sched["frame_intervals"], sched["custom_intervals"], sched["chunks"],
        sched["fps"], sched["width"], sched["height"])
    assert plan.blueprint_frames == d["blueprint_frames"] and list(plan.frame_intervals) == list(d["frame_intervals"])
    assert (plan.height, plan.width) == (d["height"], d["width"])
    assert [lv.num_chunks for lv in plan.levels[1:]] == list(d["chunks"])
    intervals = d["frame_intervals"]
    assert plan.levels[-1].num_frames == d["blueprint_frames"] * intervals[0] // intervals[-1]
    assert plan.levels[-1].fps == d["fps"] / intervals[-1]

    # level nodes in chain order: blueprint, then each refiner fed by the previous level
    chain = [next(i for i, v in api.items() if v["class_type"] == "TempoMasterBlueprintSampler")]
    while True:
        nxt = [i for i, v in api.items() if v["inputs"].get("level") == [chain[-1], 0]]
        if not nxt:
            break
        chain.extend(nxt)
    assert len(chain) == len(intervals)
    def per_level(value, i):
        return value[i] if isinstance(value, list) else value

    for i, node_id in enumerate(chain):
        inputs = api[node_id]["inputs"]
        assert (inputs["steps"], inputs["shift"], inputs["cfg"], inputs["guidance"]) == (
            d["steps"][i], d["shifts"][i], per_level(d["cfg"], i), per_level(d["guidance"], i)), i
    assert sched["boundary_frames"] == d["boundary"]
    video = next(v for v in api.values() if v["class_type"] == "CreateVideo")["inputs"]
    assert video["images"] == [chain[-1], 1] and video["fps"] == [chain[-1], 2]
