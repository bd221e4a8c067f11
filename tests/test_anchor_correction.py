"""Anchor correction (tempomaster_core.anchor_correction): a refinement chunk made to agree with its anchors."""

import pytest
import torch

from tempomaster_core import cli
from tempomaster_core.anchor_correction import anchor_offsets, correct_chunk, correct_level, interpolation_weights
from tempomaster_core.pipeline import LevelSettings, generate
from tempomaster_core.plan import TreePlan
from tempomaster_core.tiny.builtin import is_available
from tempomaster_core.validation import InputError

needs_weights = pytest.mark.skipif(not is_available(), reason="the built-in TempoMaster-Tiny files are missing")


def test_interpolation_weights_are_linear_between_anchors_and_held_outside():
    w = interpolation_weights(7, [2, 4])
    assert torch.equal(w[:3], torch.tensor([[1.0, 0.0]] * 3))  # before and at the first anchor
    assert torch.equal(w[3], torch.tensor([0.5, 0.5]))
    assert torch.equal(w[4:], torch.tensor([[0.0, 1.0]] * 3))  # at and after the last one
    for bad in ([], [3, 3], [4, 2], [7]):
        with pytest.raises(ValueError):
            interpolation_weights(7, bad)


def test_an_error_that_changes_linearly_in_time_is_removed_from_every_frame():
    torch.manual_seed(0)
    truth = torch.rand(3, 9, 8, 8) * 1.6 - 0.8
    drift = torch.linspace(-0.1, 0.1, 9).view(1, 9, 1, 1) * torch.rand(3, 1, 8, 8)  # per pixel, linear in time
    anchors = [0, 4, 8]
    fixed = correct_chunk(truth + drift, anchors, truth[:, anchors])
    assert torch.allclose(fixed, truth, atol=1e-6)
    blurred = correct_chunk(truth + 0.05, [2], truth[:, [2]])  # one anchor: its error held over the chunk
    assert torch.allclose(blurred, truth, atol=1e-6)
    assert torch.equal(correct_chunk(truth, [], truth[:, []]), truth)  # no anchor: unchanged
    with pytest.raises(ValueError, match="anchor_frames must be"):
        correct_chunk(truth, [0, 4], truth[:, [0]])


def test_anchors_are_the_level_above_frames_not_the_repeated_boundary_frames():
    plan = TreePlan(25, (4, 2, 1), (2, 4), height=16, width=16, boundary="repeat_anchor")
    level = plan.levels[2]  # 4 chunks of 25 frames; the level above is at every even frame
    assert anchor_offsets(level, 0) == list(range(0, 25, 2))
    # chunk 1 covers frames 25..49: 25 and 49 repeat the previous anchor (frames 24 and 48); only 26..48 count
    assert 0 in dict(level.chunk_conditions(1)) and anchor_offsets(level, 1) == list(range(1, 24, 2))
    assert anchor_offsets(plan.levels[0], 0) == []


def test_correct_level_makes_every_anchor_exact_and_refuses_the_blueprint():
    plan = TreePlan(25, (4, 2, 1), (2, 4), height=16, width=16)
    level = plan.levels[2]
    torch.manual_seed(1)
    above = torch.rand(3, 50, 16, 16) * 2 - 1
    from tempomaster_core.conditioning import refinement_clips

    clips, _ = refinement_clips(level, above)
    frames = (above.repeat_interleave(2, dim=1) + 0.1 * torch.randn(3, 100, 16, 16)).clamp(-1, 1)
    fixed = correct_level(frames, level, clips)
    assert torch.allclose(fixed[:, 0::2], above, atol=1e-6)
    assert not torch.allclose(frames[:, 0::2], above, atol=1e-2)
    with pytest.raises(ValueError, match="blueprint"):
        correct_level(frames[:, :25], plan.levels[0], clips)
    with pytest.raises(ValueError, match="clips must be"):
        correct_level(frames, level, clips[:2])


def test_the_setting_takes_only_a_bool():
    assert LevelSettings(steps=2, shift=3.0, anchor_correction=True).anchor_correction is True
    for bad in ("false", 1, None):
        with pytest.raises(InputError, match="anchor_correction must be True or False"):
            LevelSettings(steps=2, shift=3.0, anchor_correction=bad)


@needs_weights
def test_on_the_built_in_model_the_final_video_keeps_the_12_fps_frames():
    from tempomaster_core.tiny.builtin import default_plan, load_builtin

    bundle = load_builtin()
    plan = default_plan(bundle.defaults, bundle.codec.temporal_factor)
    positive, negative = bundle.encode_prompt("two orange squares falling"), bundle.encode_prompt("")
    runs = {}
    for on in (False, True):
        _, levels = generate(bundle.model, bundle.codec, positive, negative, plan, steps=[4, 3, 3],
                             shifts=[5.0, 12.0, 12.0], cfg=[3.0, 1.0, 1.0], seed=0, anchor_correction=on,
                             return_levels=True)
        runs[on] = levels
    for on, levels in runs.items():
        gap = float((levels[2].frames[:, 0::2] - levels[1].frames).abs().max())
        assert (gap < 1e-5) if on else (gap > 0.05), (on, gap)
    assert torch.equal(runs[True][0].frames, runs[False][0].frames)  # the blueprint is not touched


@needs_weights
def test_the_cli_takes_the_model_default_and_the_flag_overrides_it(tmp_path):
    def job(*flags):
        args = cli.build_parser().parse_args(["generate", "--prompt", "x", "--out", str(tmp_path / "v.mp4"), *flags])
        return cli.prepare_generate(args)

    assert job().anchor_correction is True  # the built-in defaults.json
    assert job("--no-anchor-correction").anchor_correction is False
