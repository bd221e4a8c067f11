"""The web view's plan route (pure handler logic), its registration on a stand-in
PromptServer, and the measured-time report of the sampler nodes."""

import json
import math
import os
import sys
import types

import pytest

from comfy_fakes import FakeWanVAE, conditioning
from nodes import NODE_CLASS_MAPPINGS as NODES
from nodes import plan_route, scheduler_schema
from nodes.plan_route import LEVEL_TIME_EVENT, ROUTE_PATH, plan_key, plan_response, report_level_time
from nodes.comfy_model import dit_of
from nodes.scheduler_node import AUTO_LEVELS
from nodes.plan_text import auto_reasons, auto_warning
from plan_requests import auto as auto_plan
from tempomaster_core.autoplan import output_frames_for_seconds
from tempomaster_core.continuation_settings import ContinuationSettings
from tempomaster_core.cost import GIB, LevelWork, estimate_plan_cost, level_cost
from tempomaster_core.plan import TreePlan
from tiny_models import make_tiny_dit

PRESET = "6→12→24 fps (4,2,1)"
REFERENCE = dict(blueprint_frames=109, frame_intervals=PRESET, custom_intervals="4,2,1", chunks="auto",
                 fps=24.0, width=832, height=480)


def _json_roundtrip(body):
    return json.loads(json.dumps(body, allow_nan=False))


def test_reference_request_returns_the_core_plan_and_cost():
    status, body = plan_response(dict(REFERENCE, memory_budget_gb=80))
    assert status == 200
    plan = TreePlan(109, (4, 2, 1), (2, 4), height=480, width=832)
    expected = plan.to_dict()
    assert {k: body[k] for k in expected} == _json_roundtrip(expected)
    cost = estimate_plan_cost(plan, max_batch=list(body["auto"]["max_parallel_chunks"]))
    assert body["cost"]["dit_flops"] == cost.dit_flops
    assert body["cost"]["full_sequence_pflops"] == pytest.approx(cost.full_sequence.dit_flops / 1e15)
    assert [lv["chunks"] for lv in body["cost"]["levels"]] == [1, 2, 4]
    assert body["plan_key"] == plan_key(plan) == "109|4,2,1|2,4|24"
    assert body["inputs"]["memory_budget_bytes"] == 80 * GIB
    assert body["warnings"] == [] and "PFLOPs" in body["summary"]
    _json_roundtrip(body)  # plain JSON, no NaN/inf


def test_seconds_and_auto_match_the_core_planner():
    request = dict(REFERENCE, length_mode="seconds", length=20.0, memory_budget_gb=48.0, trained_chunk_frames=109)
    status, body = plan_response(request)
    assert status == 200
    core = auto_plan(output_frames_for_seconds(20.0, 24.0), height=480, width=832, intervals=(4, 2, 1),
                     trained_chunk_frames=109, memory_budget_bytes=48 * GIB)
    assert {k: body[k] for k in core.plan.to_dict()} == _json_roundtrip(core.plan.to_dict())
    assert body["auto"]["reasons"] == auto_reasons(core)
    assert body["warnings"] == [auto_warning(b) for b in core.breaches] and body["warnings"]  # blueprint 121 > 109
    assert body["cost"]["dit_flops"] == core.cost.dit_flops
    # levels chosen too: the blueprint then fits, at 3 fps, a rate the model was not trained on (warned)
    status, body = plan_response(dict(request, frame_intervals=AUTO_LEVELS))
    assert status == 200 and body["frame_intervals"] == [8, 4, 2, 1]
    assert [w.split(":")[0] for w in body["warnings"]] == ["blueprint at 3 fps (interval 8)"]


def test_reference_keyword_and_manual_chunks():
    status, body = plan_response(dict(REFERENCE, length_mode="seconds", length=20.0, chunks="reference"))
    assert status == 200 and body["chunks"] == [2, 4] and body["auto"] is None
    assert any("121" in w for w in body["warnings"])  # reference chunks of 121 frames > trained 109
    status, body = plan_response(dict(REFERENCE, chunks="2,8", memory_budget_gb=1000))
    assert status == 200 and body["chunks"] == [2, 8] and body["warnings"] == []


def test_boundary_frames_reach_the_drawn_plan():
    status, body = plan_response(dict(REFERENCE, boundary_frames="anchors"))
    assert status == 200 and body["inputs"]["boundary_frames"] == "anchors"
    # 24 fps chunk 1 starts at frame 109 (odd): no repeated anchor at its first pixel in "anchors" mode
    assert body["levels"][2]["chunks"][1]["conditions"][0] == [1, 55]
    status, body = plan_response(REFERENCE)
    assert body["levels"][2]["chunks"][1]["conditions"][0] == [0, 54]
    status, body = plan_response(dict(REFERENCE, boundary_frames="exact"))
    assert status == 400 and "boundary_frames" in body["error"]


def test_steps_and_cfg_from_the_samplers_change_the_estimate():
    _, base = plan_response(dict(REFERENCE, memory_budget_gb=1000))
    _, fewer = plan_response(dict(REFERENCE, memory_budget_gb=1000, steps=[25, 16, 16], cfg=1))
    # half the steps and one pass instead of two: a quarter of the DiT work
    assert fewer["cost"]["dit_flops"] == pytest.approx(base["cost"]["dit_flops"] / 4)


def test_a_partial_sampler_chain_keeps_the_reference_settings_for_the_rest():
    _, base = plan_response(dict(REFERENCE, memory_budget_gb=1000))
    _, chain = plan_response(dict(REFERENCE, memory_budget_gb=1000, samplers={"steps": [25], "cfg": [1.0]}))
    assert [lv["steps"] for lv in chain["cost"]["levels"]] == [25, 32, 32]
    assert [lv["passes_per_step"] for lv in chain["cost"]["levels"]] == [1, 2, 2]
    # only the blueprint changed: a quarter of its work
    saved = base["cost"]["levels"][0]["dit_flops"] * 3 / 4
    assert chain["cost"]["dit_flops"] == pytest.approx(base["cost"]["dit_flops"] - saved)
    # a longer chain than the plan (a refiner too many) is cut to the plan's levels
    status, longer = plan_response(dict(REFERENCE, samplers={"steps": [50, 32, 32, 32]}))
    assert status == 200 and len(longer["cost"]["levels"]) == 3


def test_the_samplers_devices_price_each_level_on_its_devices():
    """Two devices on every sampler: each level's share, time and speed-up are the cost model's, by hand for
    the 24 fps level (4 guided chunks split 2 + 2: half the FLOPs, one gather of 2 chunks' latents and frames)."""
    from tempomaster_core.cost_devices import ASSUMED_FLOPS_PER_S, ASSUMED_LINK_BYTES_PER_S

    status, body = plan_response(dict(REFERENCE, memory_budget_gb=1000,
                                      samplers={"devices": ["cpu,cpu", "cpu, cpu", "cpu,cpu"]}))
    assert status == 200 and body["inputs"]["devices"] == [2, 2, 2]
    levels = body["devices"]["levels"]
    assert [(lv["mode"], lv["chunks"], lv["items"]) for lv in levels] == [
        ("batch", [1, 0], [1, 1]), ("chunks", [1, 1], [2, 2]), ("chunks", [2, 2], [4, 4])]
    cost = estimate_plan_cost(TreePlan(109, (4, 2, 1), (2, 4), height=480, width=832))
    top = cost.levels[2]
    gathered = 2 * (4 * 16 * 28 * 60 * 104 + 4 * 3 * 109 * 480 * 832)  # the other device's 2 chunks, float32
    compute = (top.dit_flops + top.vae_encode_flops + top.vae_decode_flops) / 2 / ASSUMED_FLOPS_PER_S
    assert levels[2]["comm_bytes"] == gathered
    assert levels[2]["compute_seconds"] == pytest.approx(compute)
    assert levels[2]["seconds"] == pytest.approx(compute + gathered / ASSUMED_LINK_BYTES_PER_S)
    assert levels[2]["speedup"] == pytest.approx(2 * compute / levels[2]["seconds"])
    assert body["devices"]["speedup"] == pytest.approx(sum(lv["single_seconds"] for lv in levels)
                                                       / sum(lv["seconds"] for lv in levels))
    assert levels[2]["sentence"].startswith("24 fps on 2 devices: 2 + 2 chunks (4 + 4 DiT items per step); 14.1 min")
    assert "positive and negative passes split, 1 + 1 DiT items" in levels[0]["sentence"]
    assert body["devices"]["sentence"] in body["summary"] and levels[2]["sentence"] in body["summary"]
    # a chain of one sampler: the refinement levels on one device; no device listed: no device lines at all
    _, partial = plan_response(dict(REFERENCE, samplers={"devices": ["cpu,cpu"]}))
    assert partial["inputs"]["devices"] == [2, 1, 1] and partial["devices"]["levels"][2]["mode"] == "single"
    _, single = plan_response(dict(REFERENCE, samplers={"devices": ["", ""]}))
    assert single["devices"] is None and "devices" not in single["summary"]
    # a what-if count for machines not at hand: the route's devices, one count or one per level
    _, eight = plan_response(dict(REFERENCE, devices=8))
    assert eight["inputs"]["devices"] == [8, 8, 8] and eight["devices"]["levels"][0]["items"] == [1, 1, 0, 0, 0, 0, 0, 0]


@pytest.mark.parametrize("payload, needle", [
    ("not a dict", "JSON object"),
    ({}, "missing widget"),
    (dict(REFERENCE, blueprint_frames=107), "105 or 109"),
    (dict(REFERENCE, width=830), "816 or 832"),
    (dict(REFERENCE, blueprint_frames="many"), "number"),
    (dict(REFERENCE, blueprint_frames=108.5), "whole number"),
    (dict(REFERENCE, fps=float("nan")), "finite"),
    (dict(REFERENCE, fps=None), "number"),
    (dict(REFERENCE, frame_intervals="5 fps"), "5 fps"),
    (dict(REFERENCE, frame_intervals="custom", custom_intervals="4,3,1"), "divisible"),
    (dict(REFERENCE, chunks="2"), "2 refinement"),
    (dict(REFERENCE, chunks=7), "text"),
    (dict(REFERENCE, length_mode="minutes"), "length_mode"),
    (dict(REFERENCE, length_mode="seconds", length=-3), "between 0.05 and 600"),
    (dict(REFERENCE, length_mode="output frames", length=10.5), "whole number"),
    (dict(REFERENCE, memory_budget_gb=-1), "between 0 and"),
    (dict(REFERENCE, blueprint_frames=10**9), "between 1 and 4097"),
    (dict(REFERENCE, trained_chunk_frames=3), "trained_chunk_frames"),
    (dict(REFERENCE, frame_intervals=AUTO_LEVELS), "length_mode"),
    (dict(REFERENCE, frame_intervals=AUTO_LEVELS, length_mode="seconds", chunks="2,4"), "auto"),
    (dict(REFERENCE, steps=[0, 1, 1]), "steps must be between 1 and"),
    (dict(REFERENCE, cfg=1e308), "cfg must be between"),
    (dict(REFERENCE, steps=[50, 32]), "one per level"),
    (dict(REFERENCE, cfg="strong"), "cfg"),
    (dict(REFERENCE, model="70B"), "70B"),
    (dict(REFERENCE, samplers=[50]), "samplers must be an object"),
    (dict(REFERENCE, samplers={"steps": 50}), "must be a list"),
    (dict(REFERENCE, samplers={"cfg": [8, 99]}), "samplers.cfg must be between"),
    (dict(REFERENCE, samplers={"devices": "cpu,cpu"}), "samplers.devices must be a list"),
    (dict(REFERENCE, samplers={"devices": ["cpu,,cpu"]}), "samplers.devices[0]: devices 'cpu,,cpu' has an empty entry"),
    (dict(REFERENCE, samplers={"devices": ["gpu7"]}), "torch device"),
    (dict(REFERENCE, devices=0), "between 1 and 4096 devices"),
    (dict(REFERENCE, devices=[2, 2]), "one per level (3)"),
    (dict(REFERENCE, devices=[]), "empty list"),
    (dict(REFERENCE, limits_model="TempoMaster-Tiny (built-in)"), "limits_model must be"),
    (dict(REFERENCE, limits_model={"model_name": ""}), "limits_model must be"),
    (dict(REFERENCE, limits_model={"model_name": 7}), "limits_model must be"),
])
def test_bad_inputs_give_an_error_payload(payload, needle):
    status, body = plan_response(payload)
    assert status == 400
    assert set(body) == {"error"} and needle in body["error"]


def test_garbage_never_crashes_the_handler():
    values = [None, True, -1, 0, 1, 2.5, 1e308, "", "auto", "x", [], [1], {}, {"a": 1}]
    for name in plan_route.WIDGETS + ("steps", "cfg", "model", "samplers", "limits_model"):
        for value in values:
            status, body = plan_response(dict(REFERENCE, **{name: value}))
            assert status in (200, 400), (name, value, body)
            _json_roundtrip(body)


class _FakeRoutes:
    def __init__(self):
        self.handlers = {}

    def post(self, path):
        def register(fn):
            self.handlers[path] = fn
            return fn
        return register


class _FakePromptServer:
    instance = None

    def __init__(self):
        self.routes = _FakeRoutes()
        self.sent = []
        self.sids = []
        self.client_id = None

    def send_sync(self, event, data, sid=None):
        self.sent.append((event, data))
        self.sids.append(sid)


@pytest.fixture
def fake_server(monkeypatch):
    module = types.ModuleType("server")
    module.PromptServer = _FakePromptServer
    _FakePromptServer.instance = _FakePromptServer()
    monkeypatch.setitem(sys.modules, "server", module)
    monkeypatch.setattr(plan_route, "_registered", False)
    yield _FakePromptServer.instance
    _FakePromptServer.instance = None


def test_no_route_outside_comfyui(monkeypatch):
    monkeypatch.setattr(plan_route, "_registered", False)
    monkeypatch.delitem(sys.modules, "server", raising=False)
    assert plan_route.register_routes() is False
    assert "server" not in sys.modules


def test_the_pack_registers_the_route_and_importing_a_node_module_does_not():
    """ComfyUI loads the pack's __init__.py with a PromptServer already made: that registers the route once."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = f"""
import importlib.util, sys, types
posted = []
class Routes:
    def post(self, path):
        return lambda fn: posted.append(path) or fn
server = types.ModuleType("server")
server.PromptServer = type("PromptServer", (), {{"instance": type("S", (), {{"routes": Routes()}})()}})
aiohttp = types.ModuleType("aiohttp")
aiohttp.web = types.ModuleType("aiohttp.web")
sys.modules.update(server=server, aiohttp=aiohttp)
sys.path.insert(0, {root!r})
import nodes.scheduler_node, nodes.plan_route
assert posted == [], posted
sys.path.remove({root!r})
spec = importlib.util.spec_from_file_location("tempomaster_pack", {os.path.join(root, "__init__.py")!r})
module = importlib.util.module_from_spec(spec)
sys.modules["tempomaster_pack"] = module
spec.loader.exec_module(module)
assert posted == ["/tempomaster/plan"], posted
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_route_registers_and_answers_on_a_prompt_server(fake_server):
    web = pytest.importorskip("aiohttp.web")
    import asyncio

    assert plan_route.register_routes() is True
    assert plan_route.register_routes() is True  # once only
    handler = fake_server.routes.handlers[ROUTE_PATH]

    class Request:
        def __init__(self, body):
            self.body = body

        async def json(self):
            if isinstance(self.body, Exception):
                raise self.body
            return self.body

    response = asyncio.run(handler(Request(dict(REFERENCE, memory_budget_gb=80))))
    assert isinstance(response, web.Response) and response.status == 200
    assert json.loads(response.text)["chunks"] == [2, 4]
    response = asyncio.run(handler(Request(ValueError("bad json"))))
    assert response.status == 400 and "JSON" in json.loads(response.text)["error"]
    response = asyncio.run(handler(Request(dict(REFERENCE, blueprint_frames=107))))
    assert response.status == 400 and "105 or 109" in json.loads(response.text)["error"]


def test_level_time_report_carries_the_estimate_for_the_same_work(fake_server):
    model = make_tiny_dit(seed=0)
    plan = TreePlan(5, (4, 2, 1), (2, 2), height=32, width=32)
    payload = report_level_time(plan, 2, 4.0, model=model, steps=3, cfg=1.0, max_batch=1)
    level = plan.levels[2]
    expected = level_cost(LevelWork(level.num_chunks, level.frames_per_chunk, 3), model.config, height=32,
                          width=32, cfg=1.0).dit_flops
    assert payload["estimated_flops"] == expected
    assert payload["achieved_tflops_per_s"] == pytest.approx(expected / 4.0 / 1e12)
    assert (payload["level"], payload["seconds"], payload["plan_key"]) == (2, 4.0, plan_key(plan))
    assert fake_server.sent == [(LEVEL_TIME_EVENT, payload)]

    def broken(*args, **kwargs):
        raise RuntimeError("socket closed")

    fake_server.send_sync = broken  # a failing UI must not fail a finished level
    assert report_level_time(plan, 0, 1.0, model=model, steps=3, cfg=8.0)["level"] == 0
    assert report_level_time(plan, 9, 1.0, model=model, steps=3, cfg=8.0) is None  # no level 9: no report


def test_sampler_nodes_report_their_level_time(fake_server):
    model = make_tiny_dit(seed=0)
    plan, _ = NODES["TempoMasterTreeScheduler"]().plan(5, "6→24 fps (4,1)", "", "2", 24.0, 32, 32)
    pos, neg = conditioning(7, 24, seed=1, tokens=4), conditioning(7, 24, seed=2, tokens=3)
    vae = FakeWanVAE()
    level, _, _ = NODES["TempoMasterBlueprintSampler"]().sample(model, plan, pos, neg, vae, seed=0, steps=1, cfg=1.0)
    NODES["TempoMasterFrameRateRefiner"]().refine(model, level, pos, neg, vae, seed=0, steps=2, cfg=2.0)
    reports = [data for event, data in fake_server.sent if event == LEVEL_TIME_EVENT]
    assert [r["level"] for r in reports] == [0, 1]
    assert [r["steps"] for r in reports] == [1, 2] and [r["cfg"] for r in reports] == [1.0, 2.0]
    assert all(r["plan_key"] == plan_key(plan) and r["seconds"] > 0 for r in reports)
    assert all(math.isfinite(r["estimated_flops"]) and r["estimated_flops"] > 0 for r in reports)


def test_a_seconds_auto_plan_runs_through_the_samplers(fake_server):
    # "0.5 seconds, auto" on a tiny model: 12 frames at 24 fps -> 5 blueprint frames -> 20 frames
    model = make_tiny_dit(seed=0)
    plan, summary = NODES["TempoMasterTreeScheduler"]().plan(
        109, PRESET, "", "auto", 24.0, 32, 32, length_mode="seconds", length=0.5, memory_budget_gb=64.0,
        trained_chunk_frames=9)
    assert plan.blueprint_frames == 5 and plan.final.num_frames == 20
    assert all(level.frames_per_chunk <= 9 for level in plan.levels[1:]) and "Auto plan:" in summary
    pos, neg = conditioning(7, 24, seed=1, tokens=4), conditioning(7, 24, seed=2, tokens=3)
    vae = FakeWanVAE()
    level, images, _ = NODES["TempoMasterBlueprintSampler"]().sample(model, plan, pos, neg, vae, seed=0, steps=1)
    for _ in plan.levels[1:]:
        level, images, fps = NODES["TempoMasterFrameRateRefiner"]().refine(model, level, pos, neg, vae, seed=0,
                                                                            steps=1)
    assert images.shape[0] == 20 and fps == 24.0 and level.is_last
    assert [data["level"] for _, data in fake_server.sent] == [0, 1, 2]


def test_auto_memory_budget_counts_a_resident_tempomaster_model_as_free(monkeypatch):
    import torch

    from comfy_fakes import install_fake_comfy
    from nodes import model_loader, scheduler_node

    assert scheduler_node.auto_memory_budget() is None  # CPU: no limit
    fake = install_fake_comfy(monkeypatch)
    fake.mm.get_torch_device = lambda: torch.device("cuda", 0)
    fake.mm.get_free_memory = lambda device: 10 * GIB

    class Param:
        def __init__(self, device, count):
            self.device, self.count = torch.device(device), count

        def numel(self):
            return self.count

        def element_size(self):
            return 2

    class Resident:
        def parameters(self):
            return [Param("cuda:0", GIB), Param("cpu", GIB), Param("cuda:1", GIB)]

    monkeypatch.setattr(model_loader, "_cache", {"key": (Resident(), "sdpa")})
    # 10 GiB free + the 2 GiB of the DiT's bf16 weights already on cuda:0 (not those elsewhere)
    assert scheduler_node.auto_memory_budget() == 12 * GIB
    status, body = plan_response(dict(REFERENCE, memory_budget_gb=0))
    assert status == 200 and body["inputs"]["memory_budget_bytes"] == 12 * GIB
    assert any("budget 12.0 GiB" in w for w in body["warnings"])  # the 14B weights alone do not fit


# -- the model the estimate is for ------------------------------------------------------------


def _tiny_request(**model):
    return dict(REFERENCE, blueprint_frames=5, width=32, height=32, chunks="2,2", memory_budget_gb=10.0,
                samplers={"steps": [3, 3, 3], "cfg": [1.0, 1.0, 1.0]}, **({"model": model} if model else {}))


def test_the_plan_is_priced_for_the_model_the_loader_names(tmp_path, monkeypatch):
    """The tree view sends the Load TempoMaster Model widgets: the route prices that checkpoint's own shape
    and dtype (read from its header), and the sampler's report of a level carries the same model key and
    the same FLOPs as the row it is drawn on."""
    import torch

    from comfy_fakes import install_fake_comfy
    from tempomaster_core.loading import save_dit

    model = make_tiny_dit(seed=0).float()
    path, legacy = tmp_path / "tiny.safetensors", tmp_path / "legacy.bin"
    save_dit(model, path)
    torch.save(model.state_dict(), legacy, _use_new_zipfile_serialization=False)
    install_fake_comfy(monkeypatch, folders={"diffusion_models": {"tiny.safetensors": str(path),
                                                                  "legacy.bin": str(legacy)}})
    status, body = plan_response(_tiny_request(model_name="tiny.safetensors", weight_dtype="fp32"))
    assert status == 200 and body["model"]["assumed"] is False and body["model"]["note"] is None
    assert body["model"]["key"] == plan_route.model_key(model.config, "fp32")
    assert body["cost"]["weight_bytes"] == sum(p.numel() * 4 for p in model.parameters())  # this model, fp32
    status, big = plan_response(_tiny_request())
    assert status == 200 and big["model"]["assumed"] and "priced as the 14B release" in big["model"]["note"]
    assert body["cost"]["dit_flops"] < big["cost"]["dit_flops"] / 1000
    plan = TreePlan(5, (4, 2, 1), (2, 2), height=32, width=32)
    payload = plan_route.level_time_payload(plan, 2, 1.0, model=model, steps=3, cfg=1.0)
    assert payload["model_key"] == body["model"]["key"]
    assert payload["estimated_flops"] == body["cost"]["levels"][2]["dit_flops"]
    # a file that is not there, or one whose shapes cannot be read without loading it: the 14B, and why
    status, missing = plan_response(_tiny_request(model_name="nope.safetensors", weight_dtype="bf16"))
    assert status == 200 and missing["model"]["assumed"] and "nope.safetensors is not in" in missing["model"]["note"]
    status, old = plan_response(_tiny_request(model_name="legacy.bin"))
    assert status == 200 and old["model"]["assumed"] and "legacy (non-zip)" in old["model"]["note"]
    status, bad = plan_response(_tiny_request(model_name="tiny.safetensors", weight_dtype="int8"))
    assert status == 400 and "weight_dtype" in bad["error"]
    # a path is not a name the loader offers: nothing is read from it
    status, path_body = plan_response(_tiny_request(model_name=str(path), weight_dtype="fp32"))
    assert status == 200 and path_body["model"]["assumed"]


def test_the_builtin_model_is_priced_as_the_loader_loads_it():
    from nodes.builtin_nodes import tiny_available
    from tempomaster_core.tiny.builtin import BUILTIN_MODEL_NAME

    if not tiny_available():
        pytest.skip("the built-in TempoMaster-Tiny files are missing")
    (model,) = NODES["TempoMasterLoadModel"]().load(BUILTIN_MODEL_NAME, "fp32")
    status, body = plan_response(_tiny_request(model_name=BUILTIN_MODEL_NAME, weight_dtype="fp32"))
    assert status == 200 and body["model"]["label"] == BUILTIN_MODEL_NAME
    assert body["model"]["key"] == plan_route.model_key(model.config, model.dtype)  # the loader's own output


def test_level_time_goes_to_the_browser_that_queued_the_run(fake_server):
    fake_server.client_id = "tab-1"
    plan = TreePlan(5, (4, 1), (2,), height=32, width=32)
    report_level_time(plan, 0, 1.0, model=make_tiny_dit(seed=0), steps=1, cfg=1.0)
    assert fake_server.sids == ["tab-1"]


def test_a_minute_shows_the_continuation_proposal_and_its_cost():
    """60 s on the reference tree: 1440 frames = a 600-frame first tree (no context) + 480 new frames after 120
    of context + the last 360 after 120: 3 segments (issue 20); their PFLOPs are the cost model's of those trees,
    built here by hand, against the auto planner's one tree and a full-sequence pass of 1441 frames."""
    from tempomaster_core.config import DiTConfig
    from tempomaster_core.cost_devices import ASSUMED_FLOPS_PER_S

    status, body = plan_response(dict(REFERENCE, frame_intervals=AUTO_LEVELS, length_mode="seconds", length=60.0,
                                      memory_budget_gb=80.0))
    assert status == 200
    proposal = body["continuation"]
    assert [(s["context_frames"], s["new_frames"]) for s in proposal["segments"]] == [(0, 600), (120, 480), (120, 360)]
    first = TreePlan(153, (4, 2, 1), (3, 6), height=480, width=832)  # 600 frames: 612 made, chunks <= 109
    last = TreePlan(121, (4, 2, 1), (3, 5), height=480, width=832)  # 480 frames: 484 made
    tree_pflops = [estimate_plan_cost(p, full_sequence=False).dit_flops / 1e15 for p in (first, first, last)]
    assert [s["dit_pflops"] for s in proposal["segments"]] == pytest.approx(tree_pflops, rel=1e-12)
    assert proposal["continuation"]["dit_pflops"] == pytest.approx(sum(tree_pflops), rel=1e-12)
    assert proposal["one_tree_intervals"] == [16, 8, 4, 2, 1] and not proposal["one_tree"]["trained"]
    assert proposal["one_tree"]["dit_pflops"] == pytest.approx(body["cost"]["dit_pflops"], rel=1e-12)  # the same tree
    full = level_cost(LevelWork(1, 1441, 50), DiTConfig(), height=480, width=832)  # 14B, cfg 8
    assert proposal["full_sequence"]["dit_pflops"] == pytest.approx(full.dit_flops / 1e15, rel=1e-12)
    assert proposal["full_sequence"]["seconds"] == pytest.approx(
        (full.dit_flops + full.vae_encode_flops + full.vae_decode_flops) / ASSUMED_FLOPS_PER_S)
    for line in proposal["lines"]:
        assert line in body["summary"]
    assert "3 segments of 600 + 600 + 480 frames" in proposal["lines"][0]
    assert f"continuation {sum(tree_pflops):.0f} PFLOPs" in proposal["lines"][1]


def test_no_continuation_proposal_within_one_trained_tree():
    status, body = plan_response(dict(REFERENCE))  # 436 frames: the trained tree itself
    assert status == 200 and body["continuation"] is None and "segments" not in body["summary"]
    status, body = plan_response(dict(REFERENCE, blueprint_frames=361))  # a manual 60 s tree: proposed too
    assert status == 200 and len(body["continuation"]["segments"]) == 3


#: The built-in model's tree (its defaults.json): 25 blueprint frames at 64x64, intervals 4, 2, 1.
TINY_TREE = dict(REFERENCE, blueprint_frames=25, width=64, height=64, memory_budget_gb=1000.0)


def test_the_view_plans_with_the_limits_of_the_model_linked_to_the_scheduler():
    """The scheduler's model input linked to a Load TempoMaster Model set to the built-in model: the route reads
    the limits that model declares (25-frame clips) and draws the plan the node makes with the loaded model, whose
    summary has the same sentence; the widget is then not used. Nothing linked: the widget's 109 frames, as the
    node without a model. Linked to something the view cannot read: the widget's limits, said in the reply."""
    from nodes.builtin_nodes import tiny_available
    from tempomaster_core.tiny.builtin import BUILTIN_MODEL_NAME

    if not tiny_available():
        pytest.skip("the built-in TempoMaster-Tiny files are missing")
    scheduler = NODES["TempoMasterTreeScheduler"]()
    (model,) = NODES["TempoMasterLoadModel"]().load(BUILTIN_MODEL_NAME, "fp32")
    status, linked = plan_response(dict(TINY_TREE, limits_model={"model_name": BUILTIN_MODEL_NAME}))
    limits = linked["inputs"]["trained_limits"]
    assert status == 200 and linked["chunks"] == [2, 4] and linked["inputs"]["trained_chunk_frames"] == 25
    assert (limits["source"], limits["frame_intervals"], limits["chunk_frames"]) == ("model", [4, 2, 1], 25)
    for widget in (109, 9):  # a connected model's limits win over the widget
        plan, summary = scheduler.plan(**dict(TINY_TREE, trained_chunk_frames=widget), model=model)
        assert plan.chunks == (2, 4) and limits["sentence"] in summary
    status, unlinked = plan_response(TINY_TREE)
    plan, summary = scheduler.plan(**TINY_TREE)
    assert status == 200 and unlinked["chunks"] == [1, 1] and plan.chunks == (1, 1)  # 101-frame chunks <= 109
    assert unlinked["inputs"]["trained_limits"]["source"] == "widget"
    assert unlinked["inputs"]["trained_limits"]["sentence"] in summary and "109 frames" in summary
    status, pending = plan_response(dict(TINY_TREE, limits_model={}))
    assert status == 200 and pending["chunks"] == [1, 1] and pending["inputs"]["trained_limits"]["source"] == "pending"
    assert "replaces them when the graph runs" in pending["inputs"]["trained_limits"]["sentence"]
    # beyond one trained tree: the loaded model carries its continuation settings and its shape, and the route,
    # sent what the view sends (that loader feeding the samplers and linked to the scheduler), makes the node's summary
    assert dit_of(model).continuation_settings == ContinuationSettings(1.54, 63)
    minute = dict(TINY_TREE, length_mode="seconds", length=25.5)
    _plan, summary = scheduler.plan(**minute, model=model)
    status, body = plan_response(dict(minute, limits_model={"model_name": BUILTIN_MODEL_NAME},
                                      model={"model_name": BUILTIN_MODEL_NAME, "weight_dtype": "fp32"}))
    assert status == 200 and body["summary"] == summary and "fp32 weights" in summary
    assert "the connected model's continuation settings" in summary


def test_a_checkpoint_file_linked_to_the_scheduler_plans_with_the_released_models_limits():
    """A file in diffusion_models declares no training limits (the 14B release's settings are the pack's): the
    route, without reading the file, plans with the release's 109 frames and says the model declares none."""
    status, body = plan_response(dict(TINY_TREE, trained_chunk_frames=9, limits_model={"model_name": "x.safetensors"}))
    limits = body["inputs"]["trained_limits"]
    assert status == 200 and body["chunks"] == [1, 1] and (limits["chunk_frames"], limits["declared"]) == (109, False)
    assert "declares none" in limits["sentence"]


def _segments(proposal):
    return [(s["context_frames"], s["new_frames"], s["blueprint_frames"], s["chunks"]) for s in proposal["segments"]]


def test_the_continuation_proposal_takes_the_continuation_settings_of_the_model_linked_to_the_scheduler():
    """25.5 s at the built-in model's 64x64 tree, its Load TempoMaster Model linked to the scheduler: segments of
    its own 100-frame tree (1.54 s = 37 frames of context + 63 new frames; the last one adds 8), the segments
    `generate --seconds 25.5` runs on that
    model, and the line says whose settings they are and what to set on TempoMaster Continue. Nothing linked, a
    checkpoint file (it declares none) or a link the view cannot read: the paper's 5 s + 480 frames, and why."""
    from types import SimpleNamespace

    from tempomaster_core.cli_long import prepare_long
    from tempomaster_core.tiny.builtin import BUILTIN_MODEL_NAME, builtin_dir, bundle_defaults, default_plan

    request = dict(TINY_TREE, length_mode="seconds", length=25.5)
    status, body = plan_response(dict(request, limits_model={"model_name": BUILTIN_MODEL_NAME}))
    proposal = body["continuation"]
    defaults = bundle_defaults(builtin_dir())
    job = prepare_long(SimpleNamespace(seconds=25.5, context_seconds=None, segment_frames=None, extend=None,
                                       anti_drift=None, join_fade=None, out="long.mp4"), default_plan(defaults), defaults)
    assert status == 200 and _segments(proposal) == [(s.context_frames, s.new_frames, s.plan.blueprint_frames,
                                                      list(s.plan.chunks)) for s in job.segments]
    assert [s["frames"] for s in proposal["segments"]] == [100] * 9 + [37 + 8] and proposal["total_frames"] == 612
    assert proposal["settings"] == {"context_seconds": 37 / 24, "new_frames": 63, "source": "model", "declared": True}
    assert ("after the first: 1.54 s of context + up to 63 new frames each, the connected model's continuation "
            "settings; TempoMaster Continue with context_seconds 1.54 and new_frames 63") in proposal["lines"][0]
    assert proposal["lines"][0] in body["summary"]
    for linked, why in ((None, "as no model is connected"), ({"model_name": "x.safetensors"}, "declares none"),
                        ({}, "drawn until the graph runs")):
        status, paper = plan_response(request if linked is None else dict(request, limits_model=linked))
        proposal = paper["continuation"]
        assert status == 200 and (proposal["context_frames"], proposal["new_frames"]) == (120, 480)
        assert [s["frames"] for s in proposal["segments"]] == [600, 132] and not proposal["settings"]["declared"]
        assert "5 s of context + up to 480 new frames each, the paper's continuation settings, " in proposal["lines"][0]
        assert why in proposal["lines"][0]


def test_the_node_proposes_with_its_models_continuation_settings_and_prices_that_model():
    """A connected DiT that declares 2 s of context + 40 new frames: 10 s (240 frames) is a first tree of 88 frames
    and four more segments of 48 known + up to 40 new; the cost and memory are the DiT's own (fp32, a few MiB of
    weights), not the 14B's (bf16, tens of GiB). A DiT that declares limits but no continuation: the paper's."""
    import re

    from tempomaster_core.trained_limits import TrainedLimits

    scheduler = NODES["TempoMasterTreeScheduler"]()
    request = dict(TINY_TREE, length_mode="seconds", length=10.0)
    model = make_tiny_dit(seed=0)
    model.trained_limits = TrainedLimits((4, 2, 1), 25)
    model.continuation_settings = ContinuationSettings(2.0, 40)
    _plan, summary = scheduler.plan(**request, model=model)
    assert ("make it as 5 segments of 88 + 88 + 88 + 88 + 80 frames at the trained frame rates (after the first: 2 s "
            "of context + up to 40 new frames each, the connected model's continuation settings") in summary

    def peak_gib(text):
        return float(re.search(r"peak memory ~([\d.]+) GiB", text).group(1))

    _plan, unconnected = scheduler.plan(**request)
    assert "fp32 weights" in summary and peak_gib(summary) < 0.5
    assert "bf16 weights" in unconnected and peak_gib(unconnected) > 10
    model.continuation_settings = None
    _plan, summary = scheduler.plan(**request, model=model)
    assert "5 s of context + up to 480 new frames each, the paper's continuation settings, as the connected model " \
           "declares none" in summary


# -- fixtures of the web view's tests (web/tests/*.test.mjs read real route output) ------------

WEB_FIXTURES = {
    "reference": dict(REFERENCE, memory_budget_gb=60.0),
    "twenty_seconds": dict(REFERENCE, length_mode="seconds", length=20.0, memory_budget_gb=40.0),
    "padded": dict(REFERENCE, blueprint_frames=5, frame_intervals="6→24 fps (4,1)", chunks="3", width=64,
                   height=64, memory_budget_gb=1000.0),
    "error": dict(REFERENCE, blueprint_frames=107),
    "bad_chunks": dict(REFERENCE, chunks="abc"),
    "small_model": dict(REFERENCE, model="1.3B", memory_budget_gb=60.0),
    # a 24 GB card (22.35 GiB) with fp8 weights: runnable with blocks swapped; bf16 in 8 GiB: not runnable
    "fp8_24gb": dict(REFERENCE, memory_budget_gb=24e9 / 2**30, model={"shape": "14B", "weight_dtype": "fp8_e4m3fn"}),
    "tight_budget": dict(REFERENCE, memory_budget_gb=8.0),
    # the samplers list two devices each (cpu may repeat: the same request on any machine)
    "two_devices": dict(REFERENCE, memory_budget_gb=80.0, samplers={"devices": ["cpu,cpu", "cpu,cpu", "cpu,cpu"]}),
    # a minute, levels by cost: beyond one trained tree, so the continuation proposal is drawn
    "sixty_seconds": dict(REFERENCE, frame_intervals=AUTO_LEVELS, length_mode="seconds", length=60.0,
                          memory_budget_gb=80.0),
    # the built-in model's tree, its Load TempoMaster Model linked to the scheduler's model input (25-frame limit);
    # then linked to a node the view cannot read (the widget's 109 frames drawn, said as a warning)
    "tiny_model_limits": dict(TINY_TREE, limits_model={"model_name": "TempoMaster-Tiny (built-in)"}),
    # 25.5 s on it: the continuation proposal in segments of its own continuation settings (1.54 s + 63 frames)
    "tiny_model_continuation": dict(TINY_TREE, length_mode="seconds", length=25.5,
                                    limits_model={"model_name": "TempoMaster-Tiny (built-in)"}),
    "limits_pending": dict(TINY_TREE, limits_model={}),
}
FIXTURE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "web", "tests", "fixtures")


def _fixture(name):
    status, body = plan_response(WEB_FIXTURES[name])
    return {"request": WEB_FIXTURES[name], "status": status, "response": body}


@pytest.mark.parametrize("name", sorted(WEB_FIXTURES))
def test_web_fixtures_are_the_route_output(name):
    with open(os.path.join(FIXTURE_DIR, name + ".json"), encoding="utf-8") as fh:
        stored = json.load(fh)
    assert stored == _json_roundtrip(_fixture(name)), (
        "web/tests/fixtures are stale: run PYTHONPATH=.:tests python3 tests/test_plan_route.py --write-fixtures")


def test_the_web_view_has_the_schema_of_the_node_and_the_route():
    from nodes.scheduler_node import TreeScheduler

    with open(scheduler_schema.JS_PATH, encoding="utf-8") as fh:
        assert fh.read() == scheduler_schema.javascript_module(), (
            "web/scheduler_schema.js is stale: run PYTHONPATH=.:tests python3 tests/test_plan_route.py --write-fixtures")
    from nodes.plan_limits import MODEL_INPUT

    types = TreeScheduler.INPUT_TYPES()
    # the widgets in schema order, then the model socket (no widget value: saved workflows keep their positions)
    assert list(types["required"]) + list(types["optional"]) == list(plan_route.WIDGETS) + [MODEL_INPUT]
    assert tuple(types["required"]) == plan_route.REQUIRED
    for widget in scheduler_schema.TREE_SCHEDULER_WIDGETS:  # the route refuses what the widget cannot hold
        if widget.kind in ("INT", "FLOAT"):
            status, body = plan_response(dict(REFERENCE, **{widget.name: widget.maximum + 1}))
            assert status == 400 and "the widget's range" in body["error"], widget.name


if __name__ == "__main__":  # PYTHONPATH=.:tests python3 tests/test_plan_route.py --write-fixtures
    if "--write-fixtures" in sys.argv:
        print("wrote", scheduler_schema.write_javascript())
        os.makedirs(FIXTURE_DIR, exist_ok=True)
        for fixture in sorted(WEB_FIXTURES):
            with open(os.path.join(FIXTURE_DIR, fixture + ".json"), "w", encoding="utf-8") as fh:
                json.dump(_fixture(fixture), fh, ensure_ascii=False, allow_nan=False)
                fh.write("\n")
            print("wrote", fixture)


def test_the_view_prices_the_fewest_swapped_blocks_that_fit_the_budget():
    """fp8 weights on a 24 GB card: the reference chunks kept, the fewest blocks swapped that fit, said
    runnable; the reference tree with 16 blocks swapped and one chunk per forward is 21.2 GiB (issue 19's
    target); bf16 on 8 GiB: not runnable even with every block swapped."""
    from nodes.scheduler_node import build_schedule

    status, body = plan_response(dict(REFERENCE, memory_budget_gb=24e9 / GIB,
                                      model={"shape": "14B", "weight_dtype": "fp8_e4m3fn"}))
    memory = body["memory"]
    assert status == 200 and body["chunks"] == [2, 4] and memory["runnable"] and memory["weight_dtype"] == "fp8_e4m3fn"
    swapped = memory["blocks_to_swap"]
    assert 2 < swapped < 40 and body["cost"]["peak_bytes"] <= 24e9 and body["inputs"]["blocks_to_swap"] == swapped
    fewer = build_schedule(**{**REFERENCE, "memory_budget_gb": 24e9 / GIB}, dtype="fp8_e4m3fn",
                           blocks_to_swap=swapped - 1)
    assert fewer.cost.peak_bytes > 24e9 or fewer.plan.chunks != (2, 4)  # one block fewer does not fit as well
    target = build_schedule(**{**REFERENCE, "chunks": "2,4", "memory_budget_gb": 24e9 / GIB}, dtype="fp8_e4m3fn",
                            blocks_to_swap=16)
    one_at_a_time = estimate_plan_cost(target.plan, dtype="fp8", max_batch=1, blocks_to_swap=16)
    assert round(one_at_a_time.peak_bytes / GIB, 1) == 21.2
    assert f"{swapped} of 40 blocks swapped" in memory["sentence"] and "runnable on 22.4 GiB" in memory["sentence"]
    tight = plan_response(dict(REFERENCE, memory_budget_gb=8.0))[1]["memory"]
    assert tight["runnable"] is False and tight["blocks_to_swap"] == 0 and tight["all_swapped_peak_bytes"] > 8 * GIB
    assert "not runnable on 8.0 GiB" in tight["sentence"]
    unbounded = build_schedule(**REFERENCE, memory_budget_gb=1000.0).memory
    assert unbounded["runnable"] and unbounded["blocks_to_swap"] == 0
