"""The pack inside a real ComfyUI (runs only when COMFYUI_PATH points to a ComfyUI checkout).

Starts ComfyUI headless on the CPU (127.0.0.1, a free port) with a temporary
base directory whose ``custom_nodes`` holds a symlink to this pack and a small
test-only scaffold pack. Real umT5 / Wan VAE weights are not needed: the
scaffold provides a CLIP stand-in (works with ComfyUI's own CLIPTextEncode)
and a ComfyUI-VAE-shaped stand-in wrapping ``tests/toy_codec.py``
(``tests/comfy_fakes.py``); the DiT is a tiny random TempoMaster DiT saved into
the temporary ``models/diffusion_models/``. Then: ``/object_info`` lists our
nodes with tooltips, the example workflows are served as templates, an
API-format copy of an example workflow runs, and the saved video has the
planned frame count. The built-in TempoMaster-Tiny workflow (``tiny_text_to_video``)
is queued as shipped when the real built-in weights are installed
(``tempomaster_core/builtin``); otherwise ComfyUI is pointed at a throw-away
random bundle (``TEMPOMASTER_TINY_DIR``) and the workflow runs with fewer steps.

Run: ``COMFYUI_PATH=/path/to/ComfyUI python -m pytest tests/test_comfyui_integration.py``
(with a Python environment that has ComfyUI's requirements). ComfyUI imports
torchvision at start; if that fails (e.g. "operator torchvision::nms does not
exist" when the torchvision wheel does not match the installed CPU torch), fix
that environment -- nothing in this project works around it.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
import uuid

import pytest

from comfy_server import http_get as _get
from comfy_server import link_pack, post_json as _post_json, running_comfyui

COMFYUI_PATH = os.environ.get("COMFYUI_PATH")
pytestmark = pytest.mark.skipif(
    not COMFYUI_PATH or not os.path.isfile(os.path.join(COMFYUI_PATH or "", "main.py")),
    reason="set COMFYUI_PATH to a ComfyUI checkout to run the ComfyUI integration test",
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")
START_TIMEOUT_S = 240
RUN_TIMEOUT_S = 300
OUR_NODES = ("TempoMasterLoadModel", "TempoMasterTreeScheduler", "TempoMasterMultiMaskCondition",
             "TempoMasterBlueprintSampler", "TempoMasterFrameRateRefiner", "TempoMasterLoadTinyEncoders",
             "TempoMasterContinue",
             "TempoMasterLoraLoader")
TINY_DIR_ENV = "TEMPOMASTER_TINY_DIR"


def _real_tiny_installed() -> bool:
    from tempomaster_core.tiny.builtin import is_available

    return is_available()

SCAFFOLD = textwrap.dedent(
    f"""
    # Test-only ComfyUI nodes (written by tests/test_comfyui_integration.py; not shipped).
    import sys
    sys.path.insert(0, {TESTS!r})
    from comfy_fakes import FakeCLIP, FakeWanVAE


    class TempoTestCLIPLoader:
        CATEGORY = "testing"
        FUNCTION = "load"
        RETURN_TYPES = ("CLIP",)

        @classmethod
        def INPUT_TYPES(cls):
            return {{"required": {{"text_dim": ("INT", {{"default": 24, "min": 1, "max": 8192}})}}}}

        def load(self, text_dim):
            return (FakeCLIP(dim=text_dim),)


    class TempoTestVAELoader:
        CATEGORY = "testing"
        FUNCTION = "load"
        RETURN_TYPES = ("VAE",)

        @classmethod
        def INPUT_TYPES(cls):
            return {{"required": {{}}}}

        def load(self):
            return (FakeWanVAE(),)


    NODE_CLASS_MAPPINGS = {{"TempoTestCLIPLoader": TempoTestCLIPLoader, "TempoTestVAELoader": TempoTestVAELoader}}
    """
)


LORA_STRENGTH = 0.8
NATIVE_SHAPE = dict(dim=256, num_heads=2, num_layers=2, ffn_dim=512, freq_dim=256, text_dim=4096, in_dim=36, out_dim=16)
"""A tiny TempoMaster DiT that ComfyUI's own loader reads as a Wan 2.1 model: its detection assumes 128 channels per
head, freq_dim 256 and umT5's text width 4096."""
NATIVE_FILE = "tiny_native.safetensors"


def _tiny_lora_and_merged_dit(model):
    """A ComfyUI-format LoRA (``diffusion_model.<layer>.lora_up/down.weight`` + ``alpha``) for two block
    layers and the head of the tiny DiT, and the DiT with ``W + s * (alpha / r) * up @ down`` merged by hand."""
    import torch

    gen = torch.Generator().manual_seed(11)
    lora, state = {}, {k: v.clone() for k, v in model.state_dict().items()}
    for layer in ("blocks.0.self_attn.q", "blocks.1.ffn.0", "head.head"):
        rows, cols = state[layer + ".weight"].shape
        up, down = torch.randn(rows, 4, generator=gen) * 0.3, torch.randn(4, cols, generator=gen) * 0.3
        lora.update({f"diffusion_model.{layer}.lora_up.weight": up, f"diffusion_model.{layer}.lora_down.weight": down,
                     f"diffusion_model.{layer}.alpha": torch.tensor(2.0)})
        state[layer + ".weight"] += LORA_STRENGTH * (2.0 / 4) * (up @ down)
    model.load_state_dict(state)
    return lora, model


@pytest.fixture(scope="module")
def comfy(tmp_path_factory):
    """A running ComfyUI: yields ``(base_url, base_dir, log_path)``; stopped afterwards."""
    import torch
    from PIL import Image
    from safetensors.torch import save_file

    sys.path.insert(0, TESTS)
    from tiny_models import make_tiny_dit
    from tempomaster_core.loading import save_dit

    base = tmp_path_factory.mktemp("comfyui")
    custom = link_pack(base)
    (custom / "tempomaster_test_scaffold").mkdir()
    (custom / "tempomaster_test_scaffold" / "__init__.py").write_text(SCAFFOLD)
    models = base / "models" / "diffusion_models"
    models.mkdir(parents=True)
    save_dit(make_tiny_dit(seed=0), models / "tiny_tempomaster.safetensors")
    lora, merged = _tiny_lora_and_merged_dit(make_tiny_dit(seed=0))
    (base / "models" / "loras").mkdir(parents=True)
    save_file(lora, str(base / "models" / "loras" / "tiny_lora.safetensors"))
    save_dit(merged, models / "tiny_tempomaster_merged.safetensors")
    save_dit(make_tiny_dit(seed=0, **NATIVE_SHAPE), models / NATIVE_FILE)
    native_lora, native_merged = _tiny_lora_and_merged_dit(make_tiny_dit(seed=0, **NATIVE_SHAPE))
    save_file(native_lora, str(base / "models" / "loras" / "tiny_native_lora.safetensors"))
    save_dit(native_merged, models / "tiny_native_merged.safetensors")
    (base / "input").mkdir()
    gen = torch.Generator().manual_seed(0)
    pixels = (torch.rand(40, 56, 3, generator=gen) * 255).to(torch.uint8).numpy()
    Image.fromarray(pixels).save(base / "input" / "first_frame.png")

    env = dict(os.environ)
    env.pop(TINY_DIR_ENV, None)
    if not _real_tiny_installed():  # a random bundle stands in for the built-in weights
        from test_nodes_builtin import make_temp_bundle

        (base / "tiny_bundle").mkdir()
        make_temp_bundle(str(base / "tiny_bundle"))
        env[TINY_DIR_ENV] = str(base / "tiny_bundle")

    with running_comfyui(base, env=env, extra_args=("--preview-method", "auto"), start_timeout=START_TIMEOUT_S) as (
            url, log_path):
        yield url, base, log_path


def test_pack_loads_and_object_info_lists_our_nodes_with_tooltips(comfy):
    url, _, log_path = comfy
    info = json.loads(_get(url + "/object_info")[1])
    for node_id in OUR_NODES:
        assert node_id in info, node_id
        node = info[node_id]
        assert node["category"] == "TempoMaster" and node["display_name"].startswith(("Load TempoMaster", "TempoMaster"))
        assert node["description"] and len(node["output_tooltips"]) == len(node["output"])
        for section in ("required", "optional"):
            for name, entry in node["input"].get(section, {}).items():
                assert entry[1].get("tooltip"), f"{node_id}.{name} has no tooltip in ComfyUI"
    from tempomaster_core.tiny.builtin import BUILTIN_MODEL_NAME

    # the built-in model (real or the stand-in bundle) first, then models/diffusion_models/
    assert info["TempoMasterLoadModel"]["input"]["required"]["model_name"][0] == [
        BUILTIN_MODEL_NAME, NATIVE_FILE, "tiny_native_merged.safetensors", "tiny_tempomaster.safetensors",
        "tiny_tempomaster_merged.safetensors"]
    assert info["TempoMasterBlueprintSampler"]["input"]["required"]["model"][0] == "TEMPO_MODEL,MODEL"
    assert info["TempoMasterLoadTinyEncoders"]["output"] == ["CLIP", "VAE"]
    ours = [line for line in log_path.read_text(errors="replace").splitlines() if "custom_nodes/tempomaster" in line]
    assert ours, "ComfyUI did not report loading the pack"
    assert not [line for line in ours if "IMPORT FAILED" in line or "Cannot import" in line], ours


def test_core_node_table_matches_this_comfyui(comfy):
    from tools.comfy_core_nodes import CORE_NODES

    url, _, _ = comfy
    info = json.loads(_get(url + "/object_info")[1])
    for name, spec in CORE_NODES.items():
        if spec.get("virtual"):
            continue
        node = info[name]
        inputs = {**node["input"].get("required", {}), **node["input"].get("optional", {})}
        for socket_name, kind, optional in spec["inputs"]:
            assert inputs[socket_name][0] == kind, (name, socket_name)
            assert (socket_name in node["input"].get("optional", {})) == optional, (name, socket_name)
        for widget, kind, _ in spec["widgets"]:
            got = inputs[widget][0]
            assert (isinstance(got, list) or got == "COMBO") if kind == "COMBO" else got == kind, (name, widget)
        assert node["output"] == [kind for _, kind in spec["outputs"]], name


def test_example_workflows_are_served_as_templates(comfy):
    from urllib.parse import quote

    from tools.make_workflows import template_file_name

    url, _, _ = comfy
    templates = json.loads(_get(url + "/workflow_templates")[1])
    ids = ["first_last_frame", "image_to_long_video", "text_to_video", "image_to_minute", "text_to_video_native",
           "tiny_text_to_video", "tiny_continue"]
    assert sorted(templates["tempomaster"]) == sorted(template_file_name(i) for i in ids)
    for name in templates["tempomaster"]:
        status, body = _get(f"{url}/api/workflow_templates/tempomaster/{quote(name)}.json")
        assert status == 200 and json.loads(body)["nodes"]
        status, body = _get(f"{url}/api/workflow_templates/tempomaster/{quote(name)}.jpg")
        assert status == 200 and body[:2] == b"\xff\xd8"
    status, body = _get(url + "/extensions/tempomaster/tempomaster.js")
    assert status == 200 and b"registerExtension" in body


def _tiny_api_workflow(name: str) -> dict:
    with open(os.path.join(TESTS, "workflows_api", name + ".json"), encoding="utf-8") as fh:
        api = json.load(fh)
    for node in api.values():
        kind, inputs = node["class_type"], node["inputs"]
        if kind == "CLIPLoader":
            node["class_type"], node["inputs"] = "TempoTestCLIPLoader", {"text_dim": 24}
        elif kind == "VAELoader":
            node["class_type"], node["inputs"] = "TempoTestVAELoader", {}
        elif kind == "TempoMasterLoadModel":
            inputs.update(model_name="tiny_tempomaster.safetensors", weight_dtype="fp32")
        elif kind == "UNETLoader":  # ComfyUI's loader detects a Wan 2.1 DiT only at umT5 width
            inputs["unet_name"] = NATIVE_FILE
        elif kind == "TempoMasterTreeScheduler":
            inputs.update(blueprint_frames=5, width=32, height=32, chunks="2,2")
        elif kind in ("TempoMasterBlueprintSampler", "TempoMasterFrameRateRefiner"):
            inputs["steps"] = 2
        elif kind == "TempoMasterContinue":  # 8 frames of context, 12 new frames
            inputs.update(context_seconds=8 / 24, new_frames=12, steps="2")
        elif kind == "LoadImage":
            inputs["image"] = "first_frame.png"
        elif kind == "SaveVideo":
            inputs["filename_prefix"] = f"video/{name}"
    if any(node["class_type"] == "UNETLoader" for node in api.values()):
        for node in api.values():
            if node["class_type"] == "TempoTestCLIPLoader":
                node["inputs"]["text_dim"] = 4096
    return api


def _wait_history(url: str, prompt_id: str) -> dict:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        history = json.loads(_get(f"{url}/history/{prompt_id}")[1])
        if prompt_id in history and history[prompt_id].get("status", {}).get("completed") is not None:
            entry = history[prompt_id]
            if entry["status"].get("status_str") == "error" or entry["outputs"] or entry["status"]["completed"]:
                return entry
        time.sleep(1.0)
    pytest.fail(f"the prompt did not finish in {RUN_TIMEOUT_S} s")


@pytest.mark.parametrize("name", ["image_to_long_video", "first_last_frame", "image_to_minute", "text_to_video_native"])
def test_api_workflow_runs_and_saves_the_planned_video(comfy, name):
    import av

    url, base, log_path = comfy
    api = _tiny_api_workflow(name)
    continues = sum(node["class_type"] == "TempoMasterContinue" for node in api.values())
    status, reply = _post_json(url + "/prompt", {"prompt": api, "client_id": str(uuid.uuid4())})
    assert status == 200, reply
    entry = _wait_history(url, reply["prompt_id"])
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[-3000:] + log_path.read_text()[-3000:]
    saved = [item for out in entry["outputs"].values() for item in out.get("images", [])]
    assert len(saved) == 1
    path = base / "output" / saved[0]["subfolder"] / saved[0]["filename"]
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        rate = float(stream.average_rate)
    assert frames == 20 + 12 * continues  # 5 blueprint frames x (4 / 1), then 12 per Continue node
    assert continues == (3 if name == "image_to_minute" else 0)
    assert abs(rate - 24.0) < 1e-6
    assert (stream.codec_context.width, stream.codec_context.height) == (32, 32)


def test_an_impossible_plan_is_refused_once_with_the_nearest_values(comfy):
    """The plan's rules combine widgets: the node refuses when it runs, with one message."""
    url, _, _ = comfy
    api = _tiny_api_workflow("text_to_video")
    sched = next(n for n in api.values() if n["class_type"] == "TempoMasterTreeScheduler")
    sched["inputs"]["blueprint_frames"] = 7
    status, reply = _post_json(url + "/prompt", {"prompt": api, "client_id": str(uuid.uuid4())})
    assert status == 200, reply
    entry = _wait_history(url, reply["prompt_id"])
    errors = [msg[1] for msg in entry["status"]["messages"] if msg[0] == "execution_error"]
    assert len(errors) == 1 and "5 or 9" in errors[0]["exception_message"], entry["status"]


@pytest.mark.parametrize("class_type, name, value, fragment", [
    ("TempoMasterTreeScheduler", "boundary_frames", "exact", "boundary_frames"),
    ("TempoMasterTreeScheduler", "width", 99999, "bigger than max"),
    ("TempoMasterLoadModel", "model_name", "tempomaster_dit_bf16.safetensors", "huggingface.co/Scottttttyy"),
])
def test_a_widget_mistake_is_one_message_on_that_widget(comfy, class_type, name, value, fragment):
    url, _, _ = comfy
    api = _tiny_api_workflow("text_to_video")
    node_id, node = next((i, n) for i, n in api.items() if n["class_type"] == class_type)
    node["inputs"][name] = value
    status, reply = _post_json(url + "/prompt", {"prompt": api, "client_id": str(uuid.uuid4())})
    assert status == 400, reply
    errors = [e for errs in reply["node_errors"].values() for e in errs["errors"]]
    assert len(errors) == 1 and errors[0]["extra_info"]["input_name"] == name, errors
    assert list(reply["node_errors"]) == [node_id]
    assert fragment in errors[0]["message"] + errors[0]["details"], errors


def test_cancel_interrupts_a_running_level_and_the_model_stays_usable(comfy):
    url, _, _ = comfy
    api = _tiny_api_workflow("text_to_video")
    for node in api.values():
        if node["class_type"] == "TempoMasterBlueprintSampler":
            node["inputs"].update(steps=1000, seed=7)  # long enough to be cancelled mid-level
    status, reply = _post_json(url + "/prompt", {"prompt": api, "client_id": str(uuid.uuid4())})
    assert status == 200, reply
    deadline = time.monotonic() + 60
    while not json.loads(_get(url + "/queue")[1])["queue_running"]:
        assert time.monotonic() < deadline, "the prompt never started"
        time.sleep(0.2)
    time.sleep(1.0)
    assert _post_json(url + "/interrupt", {})[0] == 200
    entry = _wait_history(url, reply["prompt_id"])
    assert entry["status"]["status_str"] == "error"
    assert any(msg[0] == "execution_interrupted" for msg in entry["status"]["messages"]), entry["status"]
    # the cached model object is still usable: a normal run afterwards succeeds
    status, reply = _post_json(url + "/prompt", {"prompt": _tiny_api_workflow("text_to_video"),
                                                 "client_id": str(uuid.uuid4())})
    assert status == 200, reply
    assert _wait_history(url, reply["prompt_id"])["status"]["status_str"] == "success"


def _saved_video(entry: dict, base) -> tuple[int, float, int, int]:
    """``(frames, fps, width, height)`` of the one video a finished prompt saved."""
    import av

    saved = [item for out in entry["outputs"].values() for item in out.get("images", [])]
    assert len(saved) == 1, entry["outputs"]
    path = base / "output" / saved[0]["subfolder"] / saved[0]["filename"]
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return frames, float(stream.average_rate), stream.codec_context.width, stream.codec_context.height


def test_builtin_tiny_workflow_runs_as_shipped_and_saves_the_planned_video(comfy):
    url, base, log_path = comfy
    with open(os.path.join(TESTS, "workflows_api", "tiny_text_to_video.json"), encoding="utf-8") as fh:
        api = json.load(fh)
    if not _real_tiny_installed():  # random stand-in bundle: the graph only has to run
        for node in api.values():
            if node["class_type"] in ("TempoMasterBlueprintSampler", "TempoMasterFrameRateRefiner"):
                node["inputs"]["steps"] = 2
    sched = next(n["inputs"] for n in api.values() if n["class_type"] == "TempoMasterTreeScheduler")
    intervals = [int(v) for v in sched["custom_intervals"].split(",")]
    planned = sched["blueprint_frames"] * intervals[0] // intervals[-1]
    status, reply = _post_json(url + "/prompt", {"prompt": api, "client_id": str(uuid.uuid4())})
    assert status == 200, reply
    entry = _wait_history(url, reply["prompt_id"])
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[-3000:] + log_path.read_text()[-3000:]
    frames, fps, width, height = _saved_video(entry, base)
    assert planned == 100  # the shipped defaults: 25-frame blueprint at 6 fps -> 24 fps
    assert frames == planned
    assert abs(fps - 24.0) < 1e-6
    assert (width, height) == (sched["width"], sched["height"])


def test_builtin_continuation_workflow_runs_to_the_length_its_name_says(comfy):
    """The built-in model's continuation template with 2 steps per level (as shipped it is nine trees of
    full steps: minutes on a CPU); the frame count does not depend on the steps."""
    import re

    from tools.make_workflows import template_file_name

    url, base, log_path = comfy
    with open(os.path.join(TESTS, "workflows_api", "tiny_continue.json"), encoding="utf-8") as fh:
        api = json.load(fh)
    for node in api.values():
        if node["class_type"] in ("TempoMasterBlueprintSampler", "TempoMasterFrameRateRefiner"):
            node["inputs"]["steps"] = 2
        if node["class_type"] == "TempoMasterContinue":
            node["inputs"]["steps"] = "2"
    named = int(re.search(r"(\d+) frames \(", template_file_name("tiny_continue")).group(1))
    status, reply = _post_json(url + "/prompt", {"prompt": api, "client_id": str(uuid.uuid4())})
    assert status == 200, reply
    entry = _wait_history(url, reply["prompt_id"])
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[-3000:] + log_path.read_text()[-3000:]
    frames, fps, width, height = _saved_video(entry, base)
    assert frames == named == 604 and abs(fps - 24.0) < 1e-6 and (width, height) == (64, 64)


def test_comfyui_vae_decode_refuses_the_tiny_codec_with_a_clear_message(comfy):
    url, _, _ = comfy
    api = {
        "1": {"class_type": "TempoMasterLoadTinyEncoders", "inputs": {"model_name": "TempoMaster-Tiny (built-in)"}},
        "2": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": 64, "height": 64, "length": 5, "batch_size": 1}},
        "3": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 0], "vae": ["1", 1]}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
    }
    status, reply = _post_json(url + "/prompt", {"prompt": api, "client_id": str(uuid.uuid4())})
    assert status == 200, reply
    entry = _wait_history(url, reply["prompt_id"])
    assert entry["status"]["status_str"] == "error"
    errors = [msg[1] for msg in entry["status"]["messages"] if msg[0] == "execution_error"]
    assert errors and errors[0]["node_type"] == "VAEDecode"
    assert "only with the TempoMaster nodes" in errors[0]["exception_message"]


def _decoded_frames(entry: dict, base):
    """float32 ``[F, H, W, 3]`` in 0..1 of the one video a finished prompt saved."""
    import av
    import numpy as np

    saved = [item for out in entry["outputs"].values() for item in out.get("images", [])]
    assert len(saved) == 1, entry["outputs"]
    path = base / "output" / saved[0]["subfolder"] / saved[0]["filename"]
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])]) / 255.0


def _save_losslessly(api: dict, prefix: str) -> None:
    """Save ``api``'s frames as PNG files (ComfyUI's SaveImage) instead of its mp4: x264 on an AVX-512 CPU can
    encode the same frames differently from one run to the next (decoded up to 0.24 apart, see
    tempomaster_core.video_io), too coarse for comparing two runs' frames (and an animated PNG merges equal frames)."""
    save = next(k for k, n in api.items() if n["class_type"] == "SaveVideo")
    create = api[api[save]["inputs"]["video"][0]]
    api[save] = {"class_type": "SaveImage", "inputs": {"images": create["inputs"]["images"], "filename_prefix": prefix}}


def _saved_pngs(entry: dict, base):
    """float32 ``[F, H, W, 3]`` in 0..1 of the PNG frames a finished prompt saved (:func:`_save_losslessly`)."""
    import numpy as np
    from PIL import Image

    saved = [item for out in entry["outputs"].values() for item in out.get("images", [])]
    return np.stack([np.asarray(Image.open(base / "output" / item["subfolder"] / item["filename"]).convert("RGB"))
                     for item in saved]) / 255.0


def _run(url, api, log_path):
    status, reply = _post_json(url + "/prompt", {"prompt": api, "client_id": str(uuid.uuid4())})
    assert status == 200, reply
    entry = _wait_history(url, reply["prompt_id"])
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[-3000:] + log_path.read_text()[-3000:]
    return entry


def test_lora_node_changes_the_video_as_the_hand_merged_weights_do(comfy):
    """The DiT is a ComfyUI ModelPatcher; the pack's LoRA node adds ComfyUI patches; ComfyUI's
    model management loads the patched weights: the video equals the one from hand-merged weights."""
    url, base, log_path = comfy
    plain = _tiny_api_workflow("text_to_video")
    loader_id = next(i for i, n in plain.items() if n["class_type"] == "TempoMasterLoadModel")
    with_lora = json.loads(json.dumps(plain))
    for node in with_lora.values():
        for key, value in node["inputs"].items():
            if value == [loader_id, 0]:
                node["inputs"][key] = ["lora", 0]
    with_lora["lora"] = {"class_type": "TempoMasterLoraLoader", "inputs": {
        "model": [loader_id, 0], "lora_name": "tiny_lora.safetensors", "strength": LORA_STRENGTH}}
    merged = json.loads(json.dumps(plain))
    merged[loader_id]["inputs"]["model_name"] = "tiny_tempomaster_merged.safetensors"
    for api, prefix in ((plain, "plain"), (with_lora, "lora"), (merged, "merged")):
        _save_losslessly(api, f"video/{prefix}")
    frames = {name: _saved_pngs(_run(url, api, log_path), base)
              for name, api in (("plain", plain), ("lora", with_lora), ("merged", merged))}
    assert frames["plain"].shape == (20, 32, 32, 3)
    assert abs(frames["lora"] - frames["merged"]).max() <= 2 / 255
    assert abs(frames["lora"] - frames["plain"]).mean() > 5 * abs(frames["lora"] - frames["merged"]).mean() + 1e-3


def test_samplers_on_two_devices_give_the_frames_of_one(comfy):
    """Issue 23 in a real ComfyUI: every sampler's ``devices`` = ``cpu,cpu`` (one replica per device, in
    threads) gives the frames of the same graph on one device."""
    url, base, log_path = comfy
    one = _tiny_api_workflow("text_to_video")
    two = json.loads(json.dumps(one))
    for node in two.values():
        if node["class_type"] in ("TempoMasterBlueprintSampler", "TempoMasterFrameRateRefiner"):
            node["inputs"]["devices"] = "cpu,cpu"
    _save_losslessly(one, "video/one_device")
    _save_losslessly(two, "video/two_devices")
    frames_one = _saved_pngs(_run(url, one, log_path), base)
    frames_two = _saved_pngs(_run(url, two, log_path), base)
    assert frames_one.shape == (20, 32, 32, 3) and (frames_one == frames_two).all()
    assert log_path.read_text().count("this level runs on 2 devices (cpu, cpu)") >= 3  # all three levels


def test_fp8_weights_load_with_comfyuis_scaled_fp8_ops_and_run(comfy):
    url, base, log_path = comfy
    api = _tiny_api_workflow("text_to_video")
    next(n for n in api.values() if n["class_type"] == "TempoMasterLoadModel")["inputs"]["weight_dtype"] = "fp8_e4m3fn"
    next(n for n in api.values() if n["class_type"] == "SaveVideo")["inputs"]["filename_prefix"] = "video/fp8"
    frames = _decoded_frames(_run(url, api, log_path), base)
    assert frames.shape == (20, 32, 32, 3)


NATIVE_LOADER = {"class_type": "UNETLoader", "inputs": {"unet_name": NATIVE_FILE, "weight_dtype": "default"}}


def _native_shaped_workflow(name: str) -> dict:
    """:func:`_tiny_api_workflow` with Load TempoMaster Model reading :data:`NATIVE_FILE` (umT5-wide prompts)."""
    api = _tiny_api_workflow(name)
    for node in api.values():
        if node["class_type"] == "TempoMasterLoadModel":
            node["inputs"]["model_name"] = NATIVE_FILE
        elif node["class_type"] == "TempoTestCLIPLoader":
            node["inputs"]["text_dim"] = 4096
    return api


def _native_variants(ours: dict, model_node: dict) -> dict:
    """``ours`` with every ``model`` input (samplers, Continue, Tree Scheduler) taken from ``model_node`` (id
    ``native``) instead of the TempoMaster loader."""
    native = json.loads(json.dumps(ours))
    native["native"] = model_node
    for node in native.values():
        if node["class_type"].endswith(("BlueprintSampler", "FrameRateRefiner", "Continue", "TreeScheduler")):
            node["inputs"]["model"] = ["native", 0]
    return native


def test_comfyuis_native_model_and_its_lora_loader_drive_the_samplers(comfy):
    """Issue 19: the samplers take ComfyUI's MODEL. The same checkpoint loaded by ComfyUI's Load Diffusion Model
    (UNETLoader) gives the video of Load TempoMaster Model through all three levels (frame intervals 4, 2, 1:
    the frame-rate-aware RoPE is ours, not the native 0, 1, 2, ...), and ComfyUI's LoraLoaderModelOnly on it
    gives the video of the hand-merged weights; its fp8 weight dtype runs too."""
    url, base, log_path = comfy
    ours = _native_shaped_workflow("text_to_video")
    loader = NATIVE_LOADER
    native = _native_variants(ours, loader)
    with_lora = _native_variants(ours, {"class_type": "LoraLoaderModelOnly", "inputs": {
        "model": ["unet", 0], "lora_name": "tiny_native_lora.safetensors", "strength_model": LORA_STRENGTH}})
    with_lora["unet"] = loader
    merged = json.loads(json.dumps(ours))
    next(n for n in merged.values() if n["class_type"] == "TempoMasterLoadModel")["inputs"]["model_name"] = (
        "tiny_native_merged.safetensors")
    fp8 = _native_variants(ours, dict(loader, inputs=dict(loader["inputs"], weight_dtype="fp8_e4m3fn")))
    runs = (("ours", ours), ("native", native), ("native_lora", with_lora), ("merged", merged), ("native_fp8", fp8))
    for name, api in runs:
        _save_losslessly(api, f"video/{name}")
    frames = {name: _saved_pngs(_run(url, api, log_path), base) for name, api in runs}
    assert frames["ours"].shape == (20, 32, 32, 3)
    # equal here; the native forward's own RoPE (0, 1, 2, ...) gives a mean difference of 5e-4 on this random model
    for got, want in (("native", "ours"), ("native_lora", "merged")):
        assert abs(frames[got] - frames[want]).max() <= 1 / 255 and abs(frames[got] - frames[want]).mean() < 1e-4
    # ComfyUI's fp8 weight dtype (1-byte weights, cast per layer): the same video up to fp8 rounding
    assert frames["native_fp8"].shape == frames["ours"].shape
    lora_change = abs(frames["native_lora"] - frames["ours"]).mean()
    assert 0 < abs(frames["native_fp8"] - frames["ours"]).mean() < 0.1 * lora_change
    assert abs(frames["native_lora"] - frames["native"]).mean() > 1e-2


def test_continue_nodes_run_comfyuis_native_model_like_ours(comfy):
    """The one-minute template's graph (a tree and three Continue nodes, shrunk) on ComfyUI's MODEL: the video of
    Load TempoMaster Model on the same checkpoint."""
    url, base, log_path = comfy
    ours = _native_shaped_workflow("image_to_minute")
    native = _native_variants(ours, NATIVE_LOADER)
    assert sum(n["class_type"] == "TempoMasterContinue" and n["inputs"]["model"] == ["native", 0]
               for n in native.values()) == 3
    _save_losslessly(ours, "video/minute_ours")
    _save_losslessly(native, "video/minute_native")
    frames_ours = _saved_pngs(_run(url, ours, log_path), base)
    frames_native = _saved_pngs(_run(url, native, log_path), base)
    assert frames_ours.shape == (20 + 3 * 12, 32, 32, 3)
    assert abs(frames_native - frames_ours).max() <= 1 / 255 and abs(frames_native - frames_ours).mean() < 1e-4


IN_COMFYUI_PREAMBLE = """
import json, sys
import numpy as np, torch
sys.path[:0] = {paths!r}  # our nodes package before ComfyUI's nodes.py
import comfy.cli_args
comfy.cli_args.args.cpu = True
import comfy.model_management, comfy.sd
from tiny_models import make_tiny_dit, tiny_inputs
from nodes.native_model import NativeWanDiT
ours = make_tiny_dit(seed=0, **{shape!r})
"""
"""Start of a script run by :func:`_figures_in_comfyui`: ComfyUI importable on the CPU, ``ours`` the tiny DiT of
:data:`NATIVE_SHAPE`."""


def _figures_in_comfyui(body: str, extra_paths=(), **fields) -> dict:
    """Run :data:`IN_COMFYUI_PREAMBLE` + ``body`` (formatted with ``fields``; it prints one JSON line) in a fresh
    interpreter (ComfyUI's modules in-process, apart from the server) and return that JSON."""
    import subprocess

    script = (IN_COMFYUI_PREAMBLE.format(paths=[ROOT, TESTS, COMFYUI_PATH, *extra_paths], shape=NATIVE_SHAPE)
              + textwrap.dedent(body).format(**fields))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


NATIVE_FORWARD_BODY = """
    patcher = comfy.sd.load_diffusion_model({path!r})
    comfy.model_management.load_models_gpu([patcher])
    native = NativeWanDiT(patcher)
    out = {{}}
    for interval in (4, 2, 1):
        inputs = tiny_inputs(ours.config, batch=2, frames=3, height=4, width=6, text_len=7, interval=interval)
        sigma = inputs["timestep"] / 1000
        with torch.no_grad():
            want = ours(**inputs)
            got = native(**inputs)
            denoised = patcher.model.apply_model(inputs["x"], sigma, c_concat=inputs["y"],
                                                 c_crossattn=inputs["context"])
        plain = (inputs["x"] - denoised) / sigma.view(-1, 1, 1, 1, 1)
        out[interval] = [float((got - want).abs().max()), float((plain - want).abs().max()), float(want.abs().max())]
    print(json.dumps(out))
"""


def test_native_model_forward_equals_ours_at_every_frame_interval(comfy):
    """The native Wan model behind NativeWanDiT predicts our DiT's velocity on the same weights for chunks with
    different starts in one batch, at intervals 4, 2 and 1; ComfyUI's own forward (positions 0, 1, 2, ...) agrees
    only at interval 1."""
    _, base, _ = comfy
    figures = _figures_in_comfyui(NATIVE_FORWARD_BODY, path=str(base / "models" / "diffusion_models" / NATIVE_FILE))
    for interval, (ours_error, plain_error, scale) in figures.items():
        assert ours_error <= 1e-4 * scale, (interval, figures)
        if interval != "1":
            assert plain_error > 1e-2 * scale, (interval, figures)


GGUF_PACK_ENV = "COMFYUI_GGUF_PATH"
"""A checkout of city96/ComfyUI-GGUF (its ``loader``/``ops``/``nodes`` modules; the ``gguf`` package installed): the
GGUF check runs only with it."""

GGUF_FORWARD_BODY = """
    from gguf import GGMLQuantizationType, GGUFWriter, quants
    pack = __import__({gguf_name!r} + ".nodes").nodes
    writer = GGUFWriter({path!r}, "wan")
    for key, value in ours.state_dict().items():  # linear weights Q8_0; the 5-D patch embedding with its shape
        array = value.float().numpy()
        if array.ndim == 2 and array.shape[1] % 32 == 0 and "modulation" not in key:
            q = quants.quantize(array, GGMLQuantizationType.Q8_0)
            writer.add_tensor(key, q, raw_shape=q.shape, raw_dtype=GGMLQuantizationType.Q8_0)
        elif array.ndim > 4:
            writer.add_array("comfy.gguf.orig_shape." + key, list(array.shape))
            writer.add_tensor(key, np.ascontiguousarray(array.reshape(array.shape[0], -1)))
        else:
            writer.add_tensor(key, array)
    writer.write_header_to_file(); writer.write_kv_data_to_file(); writer.write_tensors_to_file(); writer.close()
    ops = pack.GGMLOps()
    model = comfy.sd.load_diffusion_model_state_dict(pack.gguf_sd_loader({path!r}), model_options={{"custom_operations": ops}})
    patcher = pack.GGUFModelPatcher.clone(model)
    comfy.model_management.load_models_gpu([patcher])
    native = NativeWanDiT(patcher)
    out = {{"weight": type(patcher.model.diffusion_model.blocks[0].self_attn.q.weight).__name__}}
    for interval in (4, 1):
        inputs = tiny_inputs(ours.config, batch=2, frames=3, height=4, width=6, text_len=7, interval=interval)
        with torch.no_grad():
            want, got = ours(**inputs), native(**inputs)
        out[interval] = [float((got - want).abs().mean()), float(want.abs().mean())]
    print(json.dumps(out))
"""


@pytest.mark.skipif(not os.path.isfile(os.path.join(os.environ.get(GGUF_PACK_ENV, ""), "loader.py")),
                    reason=f"set {GGUF_PACK_ENV} to a ComfyUI-GGUF checkout to run the GGUF check")
def test_a_gguf_q8_model_from_comfyui_gguf_runs_as_a_native_model(tmp_path):
    """ComfyUI-GGUF's loader (GGMLOps, dequantised on the fly) on a Q8_0 file of the tiny native-shaped DiT: the
    velocity is ours up to the Q8_0 rounding, at frame interval 4 as at 1 (the RoPE is ours through its ops too)."""
    pack = os.path.abspath(os.environ[GGUF_PACK_ENV])
    figures = _figures_in_comfyui(GGUF_FORWARD_BODY, extra_paths=[os.path.dirname(pack)],
                                  gguf_name=os.path.basename(pack), path=str(tmp_path / "tiny_native_q8.gguf"))
    assert figures.pop("weight") == "GGMLTensor"
    for interval, (error, scale) in figures.items():
        assert 0 < error < 0.03 * scale, (interval, figures)  # measured: 0.9 % of the mean |velocity| at both
