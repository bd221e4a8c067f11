"""Tests of the shipped TempoMaster-Tiny bundle (tempomaster_core/tiny/builtin.py).

The tests that need the weights are skipped while ``tempomaster_core/builtin/`` lacks them.
"""

import json
import shutil

import pytest
import torch

from tempomaster_core.pipeline import generate
from tempomaster_core.tiny.builtin import (
    BUILTIN_MODEL_NAME,
    FALLBACK_DEFAULTS,
    REQUIRED_FILES,
    builtin_dir,
    bundle_defaults,
    default_plan,
    is_available,
    load_builtin,
    shipped_defaults,
)
from tempomaster_core.tiny import builtin as builtin_module
from tempomaster_core.tiny.text_encoder import TextEncoderConfig, TinyTextEncoder

needs_weights = pytest.mark.skipif(not is_available(), reason="the built-in TempoMaster-Tiny files are missing from tempomaster_core/builtin/")


@pytest.fixture(scope="module")
def bundle():
    return load_builtin()


def test_missing_files_raise_a_helpful_error(tmp_path):
    assert not is_available(tmp_path)
    with pytest.raises(FileNotFoundError) as err:
        load_builtin(directory=tmp_path)
    message = str(err.value)
    assert all(name in message for name in REQUIRED_FILES) and "train_dit" in message


def test_builtin_dir_is_inside_the_package():
    assert builtin_dir().name == "builtin" and builtin_dir().parent.name == "tempomaster_core"
    assert BUILTIN_MODEL_NAME == "TempoMaster-Tiny (built-in)"


def test_bundle_defaults_fall_back_to_the_shipped_settings_key_by_key(tmp_path):
    # FALLBACK_DEFAULTS is the shipped defaults.json itself (one copy); another bundle's file overrides
    # only the keys it has, and a bundle without the file gets the shipped settings
    assert FALLBACK_DEFAULTS and bundle_defaults(builtin_dir()) == FALLBACK_DEFAULTS
    assert bundle_defaults(tmp_path) == FALLBACK_DEFAULTS
    (tmp_path / "defaults.json").write_text('{"steps": [3, 2, 2], "cfg": 2.5}')
    assert bundle_defaults(tmp_path) == {**FALLBACK_DEFAULTS, "steps": [3, 2, 2], "cfg": 2.5}
    (tmp_path / "defaults.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        bundle_defaults(tmp_path)


def test_a_missing_shipped_settings_file_is_named_not_a_key_error(tmp_path, monkeypatch):
    # a broken install without builtin/defaults.json: FALLBACK_DEFAULTS is empty, and every reader
    # of the settings says which file is missing instead of failing later on a missing key
    broken = tmp_path / "builtin"
    broken.mkdir()
    monkeypatch.setattr(builtin_module, "builtin_dir", lambda: broken)
    monkeypatch.setattr(builtin_module, "FALLBACK_DEFAULTS", {})
    shipped = str(broken / "defaults.json")
    for read in (shipped_defaults, lambda: bundle_defaults(broken), lambda: default_plan({"steps": [1]})):
        with pytest.raises(FileNotFoundError, match="reinstall") as err:
            read()
        assert shipped in str(err.value) and "blueprint_frames" in str(err.value)
    # a bundle whose own defaults.json has every setting needs no shipped file
    other = tmp_path / "other"
    other.mkdir()
    text = builtin_dir().joinpath("defaults.json").read_text()
    (other / "defaults.json").write_text(text)
    assert bundle_defaults(other) == json.loads(text)
    # a shipped file that lacks a key is called damaged
    (broken / "defaults.json").write_text('{"steps": [1]}')
    with pytest.raises(ValueError, match="damaged"):
        default_plan({})


@needs_weights
def test_shapes_agree(bundle):
    cfg = bundle.model.config
    codec = bundle.codec
    assert cfg.in_dim == 2 * codec.latent_channels + codec.temporal_factor
    assert cfg.out_dim == codec.latent_channels and cfg.mask_channels == codec.temporal_factor
    assert cfg.text_dim == bundle.text_encoder.text_dim
    assert cfg.text_len == bundle.text_encoder.max_length == 16  # the DiT takes the encoder's context as is
    assert not bundle.model.training and all(not p.requires_grad for p in bundle.model.parameters())
    d = bundle.defaults
    plan = default_plan(d, codec.temporal_factor)
    assert len(d["steps"]) == len(d["shifts"]) == plan.num_levels
    cfgs = d["cfg"] if isinstance(d["cfg"], list) else [d["cfg"]] * plan.num_levels
    guidances = d["guidance"] if isinstance(d["guidance"], list) else [d["guidance"]] * plan.num_levels
    assert len(cfgs) == len(guidances) == plan.num_levels
    assert all(g in ("cfg", "apg") for g in guidances) and all(c >= 1 for c in cfgs)
    assert plan.boundary == d["boundary"] and plan.levels[-1].num_frames == 100
    # the loaded model declares what it was trained on (its defaults.json): the default plan's chunks are within it
    limits = bundle.model.trained_limits
    assert (limits.frame_intervals, limits.chunk_frames) == (tuple(d["trained_frame_intervals"]), 25)
    assert max(level.frames_per_chunk for level in plan.levels) <= limits.chunk_frames


@needs_weights
def test_encode_prompt_zero_padding_and_empty_prompt(bundle):
    empty = bundle.encode_prompt("")
    L, dim = bundle.text_encoder.max_length, bundle.text_encoder.text_dim
    assert empty.shape == (1, L, dim) and torch.count_nonzero(empty) == 0
    red = bundle.encode_prompt("a red ball falling")
    assert red.shape == (1, L, dim)
    assert torch.all(red[0, :4].abs().sum(-1) > 0) and torch.count_nonzero(red[0, 4:]) == 0
    assert not torch.allclose(red, bundle.encode_prompt("a blue ball falling"))
    with pytest.raises(TypeError):
        bundle.encode_prompt(["a red ball"])


@needs_weights
def test_short_generate_gives_the_planned_frames(bundle):
    d = bundle.defaults
    plan = default_plan(d, bundle.codec.temporal_factor)
    frames = generate(bundle.model, bundle.codec, bundle.encode_prompt("two green squares falling"),
                      bundle.encode_prompt(""), plan, steps=[2] * plan.num_levels, shifts=d["shifts"],
                      cfg=d["cfg"], guidance=d["guidance"], seed=0)
    assert frames.shape == (plan.final.num_frames, d["height"], d["width"], 3)
    assert frames.min() >= 0 and frames.max() <= 1 and torch.isfinite(frames).all()
    assert frames.std() > 0.01  # not a constant image


@needs_weights
def test_mismatched_text_encoder_is_refused(tmp_path):
    for name in REQUIRED_FILES + ("dit.json", "defaults.json"):
        if (builtin_dir() / name).is_file():
            shutil.copy(builtin_dir() / name, tmp_path / name)
    wrong = TinyTextEncoder(TextEncoderConfig(dim=load_builtin().model.config.text_dim + 8))
    wrong.save(tmp_path)
    with pytest.raises(ValueError, match="text_dim"):
        load_builtin(directory=tmp_path)
