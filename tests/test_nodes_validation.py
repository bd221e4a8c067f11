"""One mistake, one message, on the input it concerns: the nodes under ComfyUI's queue-time validation.

ComfyUI 0.3.64 attaches what ``VALIDATE_INPUTS`` returns to every input its signature names
(``tests/comfy_fakes.comfyui_validation_errors`` applies its rules). The TreeScheduler used to
name all twelve widgets, so one bad ``chunks`` gave twelve identical messages. Here each kind of
mistake in the workflows the pack ships is checked: at most one queue-time message, on the right
input, and the plan's own rules (which combine inputs) refused once when the node runs.
"""

import json
import os

import pytest

from comfy_fakes import comfyui_validation_errors
from nodes import NODE_CLASS_MAPPINGS
from tempomaster_core.loading import RELEASE_FILE, RELEASE_URL

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEDULER = NODE_CLASS_MAPPINGS["TempoMasterTreeScheduler"]
LOADER = NODE_CLASS_MAPPINGS["TempoMasterLoadModel"]


def _inputs(class_type):
    """The inputs of the first ``class_type`` node of the shipped tiny workflow (API format)."""
    with open(os.path.join(ROOT, "tests", "workflows_api", "tiny_text_to_video.json"), encoding="utf-8") as fh:
        api = json.load(fh)
    return dict(next(n["inputs"] for n in api.values() if n["class_type"] == class_type))


def test_the_shipped_values_pass():
    assert comfyui_validation_errors(SCHEDULER, _inputs("TempoMasterTreeScheduler")) == []


@pytest.mark.parametrize("name, value, kind", [
    ("width", 5000, "value_bigger_than_max"),
    ("blueprint_frames", 0, "value_smaller_than_min"),
    ("frame_intervals", "5 fps", "value_not_in_list"),
    ("length_mode", "minutes", "value_not_in_list"),
    ("fps", "fast", "invalid_input_type"),
    ("boundary_frames", "exact", "custom_validation_failed"),
])
def test_a_widget_mistake_is_one_message_on_that_widget(name, value, kind):
    errors = comfyui_validation_errors(SCHEDULER, {**_inputs("TempoMasterTreeScheduler"), name: value})
    assert [(e[0], e[1]) for e in errors] == [(name, kind)], errors


@pytest.mark.parametrize("bad, fragment", [
    (dict(chunks="abc"), "chunks: 'abc'"),
    (dict(chunks="3"), "chunks"),
    (dict(blueprint_frames=27), "nearest valid values: 25 or 29"),
    (dict(width=70), "multiple"),
    (dict(frame_intervals="custom", custom_intervals="4,3,1"), "divisible"),
])
def test_a_plan_mistake_passes_the_queue_and_is_refused_once_when_the_node_runs(bad, fragment):
    inputs = {**_inputs("TempoMasterTreeScheduler"), **bad}
    assert comfyui_validation_errors(SCHEDULER, inputs) == []
    with pytest.raises(ValueError) as info:
        SCHEDULER().plan(**inputs)
    assert fragment in str(info.value), str(info.value)


def test_the_former_boundary_name_and_a_linked_value_pass():
    inputs = _inputs("TempoMasterTreeScheduler")
    assert comfyui_validation_errors(SCHEDULER, {**inputs, "boundary_frames": "reference"}) == []
    assert comfyui_validation_errors(SCHEDULER, {**inputs, "boundary_frames": ["7", 0], "chunks": ["8", 0]}) == []


def test_a_missing_model_file_says_what_to_download_and_where_once():
    inputs = {**_inputs("TempoMasterLoadModel"), "model_name": "tempomaster_dit_bf16.safetensors"}
    errors = comfyui_validation_errors(LOADER, inputs)
    assert [(e[0], e[1]) for e in errors] == [("model_name", "custom_validation_failed")], errors
    message = errors[0][2]
    for fragment in (RELEASE_FILE, RELEASE_URL, "diffusion_models", "press R", "Load TempoMaster Model"):
        assert fragment in message, message
    # the same words when the node runs (an API prompt that skipped the queue-time check)
    with pytest.raises(FileNotFoundError) as info:
        LOADER().load(**inputs)
    assert RELEASE_URL in str(info.value)
    # an unknown dtype is ComfyUI's own choice check, on its widget
    errors = comfyui_validation_errors(LOADER, {**_inputs("TempoMasterLoadModel"), "weight_dtype": "int8"})
    assert [(e[0], e[1]) for e in errors] == [("weight_dtype", "value_not_in_list")]
