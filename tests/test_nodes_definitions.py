"""Node definitions: the V1 API shape ComfyUI expects, tooltips, socket types, validation."""

import inspect
import os
import subprocess
import sys

import pytest

from nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from nodes.types import CUSTOM_TYPES
from nodes.scheduler_node import TreeScheduler

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}
COMFY_TYPES = {"IMAGE", "VAE", "CONDITIONING", "FLOAT", "STRING", "INT", "BOOLEAN", "MODEL"}


def _inputs(cls):
    types = cls.INPUT_TYPES()
    for section in ("required", "optional"):
        for name, entry in types.get(section, {}).items():
            yield section, name, entry


def test_exactly_the_eight_nodes_with_prefixed_ids_and_readable_names():
    assert set(NODE_CLASS_MAPPINGS) == {
        "TempoMasterLoadModel", "TempoMasterTreeScheduler", "TempoMasterMultiMaskCondition",
        "TempoMasterBlueprintSampler", "TempoMasterFrameRateRefiner", "TempoMasterLoadTinyEncoders",
        "TempoMasterContinue",
        "TempoMasterLoraLoader",
    }
    assert set(NODE_DISPLAY_NAME_MAPPINGS) == set(NODE_CLASS_MAPPINGS)
    assert len(set(NODE_DISPLAY_NAME_MAPPINGS.values())) == 8
    for node_id, name in NODE_DISPLAY_NAME_MAPPINGS.items():
        assert node_id.startswith("TempoMaster") and "TempoMaster" in name and " " in name


@pytest.mark.parametrize("node_id", sorted(NODE_CLASS_MAPPINGS))
def test_input_types_are_well_formed_with_tooltips(node_id):
    cls = NODE_CLASS_MAPPINGS[node_id]
    types = cls.INPUT_TYPES()
    assert set(types) <= {"required", "optional", "hidden"} and types["required"]
    for section, name, entry in _inputs(cls):
        assert isinstance(entry, tuple) and 1 <= len(entry) <= 2, (name, entry)
        kind = entry[0]
        options = entry[1] if len(entry) == 2 else {}
        tooltip = options.get("tooltip")
        assert isinstance(tooltip, str) and len(tooltip) > 15, f"{node_id}.{name} lacks a tooltip"
        if isinstance(kind, list):
            assert all(isinstance(c, str) for c in kind)
            if "default" in options:
                assert options["default"] in kind
        else:
            assert isinstance(kind, str) and kind == kind.upper()
            # a socket may take a union "A,B" (ComfyUI's validate_node_input splits on commas)
            assert all(k in WIDGET_TYPES or k in COMFY_TYPES or k in CUSTOM_TYPES for k in kind.split(",")), kind
        if kind in ("INT", "FLOAT"):
            assert options["min"] <= options["default"] <= options["max"], name
    # the node function accepts every input by name
    fn = getattr(cls(), cls.FUNCTION)
    names = [name for _, name, _ in _inputs(cls)]
    inspect.signature(fn).bind(**{n: None for n in names})
    optional = {name for section, name, _ in _inputs(cls) if section == "optional"}
    for n in optional:
        assert inspect.signature(fn).parameters[n].default is None


@pytest.mark.parametrize("node_id", sorted(NODE_CLASS_MAPPINGS))
def test_outputs_category_description(node_id):
    cls = NODE_CLASS_MAPPINGS[node_id]
    assert cls.CATEGORY == "TempoMaster"
    assert isinstance(cls.DESCRIPTION, str) and len(cls.DESCRIPTION) > 40
    assert isinstance(cls.RETURN_TYPES, tuple) and cls.RETURN_TYPES
    assert len(cls.RETURN_NAMES) == len(cls.RETURN_TYPES) == len(cls.OUTPUT_TOOLTIPS)
    assert all(isinstance(t, str) and len(t) > 15 for t in cls.OUTPUT_TOOLTIPS)


def test_every_custom_type_is_produced_and_consumed():
    produced, consumed = set(), set()
    for cls in NODE_CLASS_MAPPINGS.values():
        produced.update(t for t in cls.RETURN_TYPES if t.startswith("TEMPO_"))
        consumed.update(t for _, _, e in _inputs(cls) if isinstance(e[0], str) for t in e[0].split(",")
                        if t.startswith("TEMPO_"))
    assert produced == consumed == set(CUSTOM_TYPES)


def test_samplers_return_level_images_fps_and_have_reference_defaults():
    bp = NODE_CLASS_MAPPINGS["TempoMasterBlueprintSampler"]
    rf = NODE_CLASS_MAPPINGS["TempoMasterFrameRateRefiner"]
    for cls in (bp, rf):
        assert cls.RETURN_TYPES == ("TEMPO_LEVEL", "IMAGE", "FLOAT")
    req = bp.INPUT_TYPES()["required"]
    assert (req["steps"][1]["default"], req["shift"][1]["default"], req["cfg"][1]["default"]) == (50, 5.0, 8.0)
    assert req["guidance"][0] == ["apg", "cfg"] and req["guidance"][1]["default"] == "apg"
    assert bp.INPUT_TYPES()["optional"]["condition"][0] == "TEMPO_CONDITION"
    req = rf.INPUT_TYPES()["required"]
    assert (req["steps"][1]["default"], req["shift"][1]["default"], req["cfg"][1]["default"]) == (32, 3.0, 8.0)
    assert "max_parallel_chunks" in req and req["level"][0] == "TEMPO_LEVEL"
    sched = NODE_CLASS_MAPPINGS["TempoMasterTreeScheduler"].INPUT_TYPES()["required"]
    assert sched["blueprint_frames"][1]["default"] == 109


def test_root_package_loads_like_comfyui_does():
    """ComfyUI imports custom_nodes/<dir>/__init__.py with spec_from_file_location; neither the pack nor
    the command line imports ComfyUI, or the training and scene-rendering code."""
    code = f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("tempomaster_pack", {os.path.join(ROOT, '__init__.py')!r})
module = importlib.util.module_from_spec(spec)
sys.modules["tempomaster_pack"] = module
spec.loader.exec_module(module)
assert module.WEB_DIRECTORY == "./web"
assert len(module.NODE_CLASS_MAPPINGS) == 8 and len(module.NODE_DISPLAY_NAME_MAPPINGS) == 8
for node in module.NODE_CLASS_MAPPINGS.values():
    node.INPUT_TYPES()
bad = [m for m in sys.modules if m in ("comfy", "folder_paths", "server") or m.startswith("comfy.")]
assert not bad, bad
assert {ROOT!r} not in sys.path, "the pack must not leave its folder on sys.path"
assert "nodes" not in sys.modules, "our nodes package must load as a subpackage, not as top-level 'nodes'"
import tempomaster_core.cli, tempomaster_core.tiny.builtin  # the command line and the built-in model's loader
training = [m for m in sys.modules if m.startswith(("tempomaster_core.training", "tempomaster_core.tiny.scenes"))]
assert not training, f"the run time imports training / scene-rendering code: {{training}}"
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
    web = os.path.join(ROOT, "web")
    assert any(name.endswith(".js") for name in os.listdir(web))


def test_tree_scheduler_names_the_nearest_valid_values_when_it_runs():
    ok = dict(blueprint_frames=109, frame_intervals="6→12→24 fps (4,2,1)", custom_intervals="4,2,1",
              chunks="auto", fps=24.0, width=832, height=480)
    assert TreeScheduler().plan(**ok)[0].final.num_frames == 436
    for bad, fragments in [(dict(blueprint_frames=107), ("105", "109")), (dict(width=830), ("816", "832")),
                           (dict(frame_intervals="custom", custom_intervals="4,3,1"), ("divisible",)),
                           (dict(chunks="2"), ("2 refinement",)), (dict(blueprint_frames=5, chunks="2,64"), ("at most",)),
                           (dict(frame_intervals="5 fps"), ("5 fps",))]:
        with pytest.raises(ValueError) as info:
            TreeScheduler().plan(**{**ok, **bad})
        assert all(f in str(info.value) for f in fragments), (bad, str(info.value))


def test_tree_scheduler_builds_the_reference_tree():
    plan, summary = TreeScheduler().plan(109, "6→12→24 fps (4,2,1)", "", "auto", 24.0, 832, 480)
    assert [lv.num_frames for lv in plan.levels] == [109, 218, 436]
    assert [lv.num_chunks for lv in plan.levels] == [1, 2, 4]
    assert [lv.fps for lv in plan.levels] == [6.0, 12.0, 24.0]
    assert "436 frames" in summary
    plan, _ = TreeScheduler().plan(17, "custom", "8,4,2,1", "1,2,4", 24.0, 64, 32)
    assert [lv.fps for lv in plan.levels] == [3.0, 6.0, 12.0, 24.0]
    assert [lv.num_chunks for lv in plan.levels] == [1, 1, 2, 4]
    assert (plan.width, plan.height) == (64, 32)
    with pytest.raises(ValueError, match="4n\\+1|4\\*n\\+1"):
        TreeScheduler().plan(100, "6→24 fps (4,1)", "", "auto", 24.0, 832, 480)


def test_tree_scheduler_plans_with_the_training_limits_of_the_connected_model():
    """A model connected to the model input declaring 25-frame clips at intervals 2, 1 (trained without 6 fps):
    auto chunks stay within 25 frames, the 6 fps blueprint of a (4,2,1) tree is warned about, the
    trained_chunk_frames widget is not used and the summary says so; through a ModelPatcher the same. Not
    connected: the widget's 109 frames and intervals 4, 2, 1, no warning; a model declaring none: the release's."""
    from comfy_fakes import FakeModelPatcher
    from tempomaster_core.trained_limits import TrainedLimits
    from tiny_models import make_tiny_dit

    model = make_tiny_dit(seed=0)
    args = (25, "6→12→24 fps (4,2,1)", "", "auto", 24.0, 64, 64)
    plain, text = TreeScheduler().plan(*args, trained_chunk_frames=109)
    assert plain.chunks == (1, 1) and "WARNING" not in text and "(trained_chunk_frames widget)" in text
    undeclared, text = TreeScheduler().plan(*args, trained_chunk_frames=25, model=model)
    # chunks past the widget's 25 frames (the ones the model's own cost picks within the release's 109)
    assert min(lv.frames_per_chunk for lv in undeclared.levels[1:]) > 25
    assert "declares none" in text and "chunks up to 109 frames" in text
    model.trained_limits = TrainedLimits((2, 1), 25)
    for connected in (model, FakeModelPatcher(model, "cpu", "cpu")):
        plan, summary = TreeScheduler().plan(*args, trained_chunk_frames=109, model=connected)
        assert plan.chunks == (2, 4)
        assert ("Training limits from the connected model: frame intervals 2, 1, chunks up to 25 frames (the "
                "trained_chunk_frames widget is not used).") in summary
        assert ("WARNING: blueprint at 6 fps (interval 4): coarser than the model was trained on (12 fps, "
                "interval 2)") in summary


def test_model_list_without_comfyui_is_only_the_builtin_model():
    from nodes.builtin_nodes import tiny_available
    from tempomaster_core.tiny.builtin import BUILTIN_MODEL_NAME

    cls = NODE_CLASS_MAPPINGS["TempoMasterLoadModel"]
    expected = [BUILTIN_MODEL_NAME] if tiny_available() else []
    assert cls.INPUT_TYPES()["required"]["model_name"][0] == expected


def test_lists_of_allowed_values_come_from_the_core():
    from tempomaster_core.attention import BACKENDS
    from tempomaster_core.guidance import GUIDANCE_KINDS
    from tempomaster_core.loading import STORAGE_DTYPES
    from tempomaster_core.plan import BOUNDARY_MODES
    from tempomaster_core.validation import InputError

    loader = NODE_CLASS_MAPPINGS["TempoMasterLoadModel"]
    required = loader.INPUT_TYPES()["required"]
    assert tuple(required["attention"][0]) == BACKENDS and tuple(required["weight_dtype"][0]) == STORAGE_DTYPES
    for node_id in ("TempoMasterBlueprintSampler", "TempoMasterFrameRateRefiner"):
        assert tuple(NODE_CLASS_MAPPINGS[node_id].INPUT_TYPES()["required"]["guidance"][0]) == GUIDANCE_KINDS
    assert tuple(TreeScheduler.INPUT_TYPES()["optional"]["boundary_frames"][0]) == BOUNDARY_MODES
    with pytest.raises(InputError, match="attention must be one of 'sdpa'"):
        loader().load("any.safetensors", "fp32", "xformers")
    with pytest.raises(InputError, match="weight_dtype must be one of 'bf16'"):
        loader().load("any.safetensors", "fp64", "sdpa")
