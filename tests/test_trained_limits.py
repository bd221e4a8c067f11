"""What a model declares: what it was trained on (tempomaster_core/trained_limits.py) and how it continues a video
(tempomaster_core/continuation_settings.py), and where they are read: a bundle's defaults.json (tiny/builtin.py),
the 14B's reference settings (wan/bundle.py), the command line's checks (cli.py)."""

import json
import shutil

import pytest

from tempomaster_core.continuation_settings import ContinuationSettings, model_continuation
from tempomaster_core.tiny.builtin import REQUIRED_FILES, builtin_dir, bundle_defaults, bundle_limits
from tempomaster_core.trained_limits import TrainedLimits, model_limits
from tempomaster_core.wan.bundle import reference_settings
from tiny_models import make_tiny_dit


def test_settings_declare_the_limits_and_missing_keys_are_the_released_models():
    declared = TrainedLimits.from_settings({"trained_frame_intervals": [1, 2, 4, 2], "trained_chunk_frames": 25})
    assert declared == TrainedLimits((4, 2, 1), 25) and declared.frame_intervals == (4, 2, 1)  # coarsest first
    assert TrainedLimits.from_settings({"trained_chunk_frames": 33}) == TrainedLimits((4, 2, 1), 33)
    assert TrainedLimits.from_settings(None) == TrainedLimits.from_settings({}) == TrainedLimits((4, 2, 1), 109)
    assert declared.to_settings() == {"trained_frame_intervals": [4, 2, 1], "trained_chunk_frames": 25}
    assert declared.describe() == "frame intervals 4, 2, 1, chunks up to 25 frames"


def test_the_models_declare_their_continuation_settings(tmp_path):
    """The built-in model: 1.54 s of context (37 frames at 24 fps) + 63 new frames, so a segment is its own
    100-frame tree (a 25-frame blueprint at 6 fps); the 14B and settings without the keys: the paper's 5 s + 480;
    another bundle's defaults.json overrides key by key."""
    builtin = ContinuationSettings.from_settings(bundle_defaults(builtin_dir()))
    assert (builtin.context_seconds, builtin.new_frames) == (1.54, 63)
    assert builtin.context_frames(24.0) + builtin.new_frames == 100 == 4 * (25 - 1) + 4
    paper = ContinuationSettings(5.0, 480)
    assert ContinuationSettings.from_settings(reference_settings()) == paper == ContinuationSettings()
    assert ContinuationSettings.from_settings(None) == paper and paper.context_frames(24.0) == 120
    (tmp_path / "defaults.json").write_text('{"segment_new_frames": 32}')
    assert ContinuationSettings.from_settings(bundle_defaults(tmp_path)) == ContinuationSettings(1.54, 32)


@pytest.mark.parametrize("kind,settings,needle", [
    (TrainedLimits, {"trained_chunk_frames": 0}, "trained_chunk_frames must be >= 1, got 0"),
    (TrainedLimits, {"trained_chunk_frames": 25.5}, "trained_chunk_frames must be an integer"),
    (TrainedLimits, {"trained_frame_intervals": []}, "trained_frame_intervals is empty"),
    (TrainedLimits, {"trained_frame_intervals": "4,2,1"}, "must be a list of frame intervals"),
    (TrainedLimits, {"trained_frame_intervals": 4}, "must be a list of frame intervals"),
    (TrainedLimits, {"trained_frame_intervals": [4, 0]}, "a value of trained_frame_intervals must be >= 1"),
    (TrainedLimits, {"trained_frame_intervals": [4, True]}, "a value of trained_frame_intervals must be an integer"),
    (ContinuationSettings, {"context_seconds": 0}, "context_seconds must be > 0"),
    (ContinuationSettings, {"context_seconds": "long"}, "context_seconds must be a number"),
    (ContinuationSettings, {"context_seconds": float("inf")}, "context_seconds must be a finite number"),
    (ContinuationSettings, {"segment_new_frames": 0}, "segment_new_frames must be >= 1"),
    (ContinuationSettings, {"segment_new_frames": 64.0}, "segment_new_frames must be an integer"),
])
def test_bad_declarations_are_refused_naming_where_and_what(kind, settings, needle):
    with pytest.raises(ValueError) as err:
        kind.from_settings(settings, "DIR/defaults.json")
    assert str(err.value).startswith("DIR/defaults.json: ") and needle in str(err.value)


@pytest.mark.parametrize("attribute,read,declared", [
    ("trained_limits", model_limits, TrainedLimits((2, 1), 9)),
    ("continuation_settings", model_continuation, ContinuationSettings(2.0, 16)),
])
def test_a_dit_declares_what_its_loader_gave_it(attribute, read, declared):
    model = make_tiny_dit(seed=0)
    assert read(model) is None  # built without its settings: declares nothing
    setattr(model, attribute, declared)
    assert read(model) == declared
    setattr(model, attribute, declared.__dict__)  # not a declaration
    assert read(model) is None


def test_bundles_declare_their_limits_in_defaults_json(tmp_path):
    """The shipped bundle's file holds what its run trained on (25-frame clips at intervals 4, 2, 1); another
    bundle's file overrides it key by key (a bundle written before runs recorded them declares the shipped
    model's); a bad value names the file."""
    assert bundle_limits(builtin_dir()) == TrainedLimits((4, 2, 1), 25)
    assert json.loads((builtin_dir() / "defaults.json").read_text())["trained_chunk_frames"] == 25
    (tmp_path / "defaults.json").write_text('{"cfg": 2.5}')
    assert bundle_limits(tmp_path) == TrainedLimits((4, 2, 1), 25)
    (tmp_path / "defaults.json").write_text('{"trained_chunk_frames": 33, "trained_frame_intervals": [2, 1]}')
    assert bundle_limits(tmp_path) == TrainedLimits((2, 1), 33)
    (tmp_path / "defaults.json").write_text('{"trained_chunk_frames": -1}')
    with pytest.raises(ValueError, match=f"{tmp_path / 'defaults.json'}: trained_chunk_frames must be >= 1"):
        bundle_limits(tmp_path)


def test_the_command_line_refuses_a_bad_declaration_before_loading(tmp_path):
    from tempomaster_core.cli import UsageError, read_bundle_settings

    for name in REQUIRED_FILES:  # only the JSON files are read before loading
        target = tmp_path / name
        if name.endswith(".json"):
            shutil.copy(builtin_dir() / name, target)
        else:
            target.write_bytes(b"")
    (tmp_path / "defaults.json").write_text('{"trained_frame_intervals": []}')
    with pytest.raises(UsageError, match="trained_frame_intervals is empty"):
        read_bundle_settings(str(tmp_path))
    (tmp_path / "defaults.json").write_text('{"trained_frame_intervals": [2, 1], "trained_chunk_frames": 13}')
    _, defaults, _ = read_bundle_settings(str(tmp_path))
    assert TrainedLimits.from_settings(defaults) == TrainedLimits((2, 1), 13)
