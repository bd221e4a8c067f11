"""Anchor correction (tempomaster_core.anchor_correction): a refinement chunk made to agree with its anchors."""

import pytest
import torch

from tempomaster_core import cli
from tempomaster_core.anchor_correction import (
    anchor_offsets, correct_chunk, correct_level, interpolation_weights, low_pass,
)
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


def test_a_smooth_error_that_changes_linearly_in_time_is_removed_from_every_frame():
    torch.manual_seed(0)
    truth = torch.rand(3, 9, 16, 16) * 1.6 - 0.8
    tint = torch.tensor([0.06, -0.03, 0.02]).view(3, 1, 1, 1) * torch.linspace(-1, 1, 9).view(1, 9, 1, 1)
    anchors = [0, 4, 8]
    fixed = correct_chunk(truth + tint, anchors, truth[:, anchors])
    assert torch.allclose(fixed, truth, atol=1e-5)
    held = correct_chunk(truth + 0.05, [2], truth[:, [2]])  # one anchor: its error held over the chunk
    assert torch.allclose(held, truth, atol=1e-5)
    assert torch.equal(correct_chunk(truth, [], truth[:, []]), truth)  # no anchor: unchanged
    with pytest.raises(ValueError, match="anchor_frames must be"):
        correct_chunk(truth, [0, 4], truth[:, [0]])
    with pytest.raises(ValueError, match="blur must be >= 0"):
        correct_chunk(truth, [0], truth[:, [0]], blur=-1)


def test_a_sharp_error_is_mostly_left_alone_so_a_misplaced_object_leaves_at_most_a_faint_ghost():
    background = torch.full((3, 5, 64, 64), -0.5)  # the built-in model's frame and object sizes
    decoded = background.clone()
    decoded[:, :, 4:12, 4:12] = 0.8  # the chunk draws the object at the top left in every frame
    anchor = background[:, [0]].clone()
    anchor[:, :, 40:48, 40:48] = 0.8  # its anchor has it at the bottom right
    exact = correct_chunk(decoded, [0], anchor, blur=0.0)
    assert torch.allclose(exact[:, 0], anchor[:, 0], atol=1e-6)  # blur 0: the anchor comes out as given ...
    assert float(exact[:, 3, 40:48, 40:48].mean()) > 0.75  # ... and a full copy of the object appears in between
    blurred = correct_chunk(decoded, [0], anchor)  # the default blur
    contrast = 1.3
    assert float(blurred[:, 3, 40:48, 40:48].mean()) + 0.5 < 0.2 * contrast  # a ghost of < 20 % of the contrast
    assert 0.8 - float(blurred[:, 3, 4:12, 4:12].mean()) < 0.2 * contrast  # the chunk's own object stays


def test_low_pass_keeps_a_constant_and_smooths_a_spike():
    flat = torch.full((2, 3, 16, 16), 0.25)
    assert torch.allclose(low_pass(flat, 2.0), flat, atol=1e-6)
    spike = torch.zeros(1, 16, 16)
    spike[0, 8, 8] = 1.0
    out = low_pass(spike, 2.0)
    assert float(out.max()) < 0.05 and abs(float(out.sum()) - 1.0) < 1e-4
    assert torch.equal(low_pass(spike, 0.0), spike)


def test_anchors_are_the_level_above_frames_not_the_repeated_boundary_frames():
    plan = TreePlan(25, (4, 2, 1), (2, 4), height=16, width=16, boundary="repeat_anchor")
    level = plan.levels[2]  # 4 chunks of 25 frames; the level above is at every even frame
    assert anchor_offsets(level, 0) == list(range(0, 25, 2))
    # chunk 1 covers frames 25..49: 25 and 49 repeat the previous anchor (frames 24 and 48); only 26..48 count
    assert 0 in dict(level.chunk_conditions(1)) and anchor_offsets(level, 1) == list(range(1, 24, 2))
    assert anchor_offsets(plan.levels[0], 0) == []


def test_correct_level_removes_each_chunks_own_tint_and_refuses_the_blueprint():
    plan = TreePlan(25, (4, 2, 1), (2, 4), height=16, width=16)
    level = plan.levels[2]
    torch.manual_seed(1)
    above = (torch.rand(3, 1, 16, 16) * 1.6 - 0.8).expand(3, 50, 16, 16).contiguous()  # a still scene
    from tempomaster_core.conditioning import refinement_clips

    clips, _ = refinement_clips(level, above)
    tints = torch.tensor([0.05, -0.04, 0.03, -0.02]).repeat_interleave(25).view(1, 100, 1, 1)
    frames = above.repeat_interleave(2, dim=1) + tints  # every chunk off by its own tint: a step at each seam
    fixed = correct_level(frames, level, clips)
    assert torch.allclose(fixed[:, 0::2], above, atol=1e-5)
    seams = [float((fixed[:, s] - fixed[:, s - 1]).abs().mean()) for s in (25, 50, 75)]
    before = [float((frames[:, s] - frames[:, s - 1]).abs().mean()) for s in (25, 50, 75)]
    assert max(seams) < 0.5 * min(before), (seams, before)
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
def test_on_the_built_in_model_the_chunks_no_longer_differ_in_tint():
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
    for on, levels in runs.items():  # the background tint of each 24 fps chunk against the 12 fps frames
        error = (levels[2].frames[:, 0::2] - levels[1].frames).mean(dim=(0, 2, 3))  # [50] per anchor
        spread = float(torch.stack([error[c * 12 + 1: c * 12 + 12].mean() for c in range(4)]).std())
        runs[on] = (levels, spread)
    assert runs[True][1] < 0.2 * runs[False][1], (runs[True][1], runs[False][1])
    runs = {on: levels for on, (levels, _) in runs.items()}
    assert torch.equal(runs[True][0].frames, runs[False][0].frames)  # the blueprint is not touched


@needs_weights
def test_the_cli_takes_the_model_default_and_the_flag_overrides_it(tmp_path):
    def job(*flags):
        args = cli.build_parser().parse_args(["generate", "--prompt", "x", "--out", str(tmp_path / "v.mp4"), *flags])
        return cli.prepare_generate(args)

    assert job().anchor_correction is True  # the built-in defaults.json
    assert job("--no-anchor-correction").anchor_correction is False
