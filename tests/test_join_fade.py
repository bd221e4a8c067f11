"""Join fade (tempomaster_core.join_fade): a continuation segment's new frames start where the video ends."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from tempomaster_core import continuation, long_video
from tempomaster_core.continuation import continue_video, segment_plan
from tempomaster_core.join_fade import check_join_fade, fade_frames, fade_join, fade_weights
from tempomaster_core.long_video import generate_long
from tempomaster_core.pipeline import LevelResult, tree_settings
from tempomaster_core.plan import TreePlan
from tempomaster_core.validation import InputError
from tiny_models import tiny_config
from toy_codec import ToyCodec

SIZE = 16
ERROR = 10
"""What the fake segments add to the context they regenerate (their own error at the overlap)."""


class OffsetSegments:
    """Stand-in for ``run_segment``: regenerates the context ``ERROR`` levels too bright, and continues *that*
    (new frame ``t`` = last context value + ``ERROR`` + 1 + ``t``): the join then jumps by ``ERROR + 1``.
    From scratch, frame ``f`` has value ``f``. Every pixel of a frame holds its value."""

    def __init__(self):
        self.calls = []

    def __call__(self, model, codec, positive, negative, segment, context, settings, *, conditions=None,
                 anchor=None, progress=None):
        self.calls.append(SimpleNamespace(context=None if context is None else context.clone()))
        plan = segment.plan
        values = torch.arange(plan.final.num_frames, dtype=torch.float32)
        if context is not None:
            n = context.shape[0]
            last = float(context[-1, 0, 0, 0])
            values[:n] = context[:, 0, 0, 0].float() + ERROR
            values[n:] = last + ERROR + 1 + torch.arange(plan.final.num_frames - n, dtype=torch.float32)
        frames = (values / 255).reshape(1, -1, 1, 1).expand(3, -1, plan.height, plan.width) * 2 - 1
        return [LevelResult(plan=plan, level_index=plan.num_levels - 1, frames=frames.contiguous(), latents=None,
                            fps=plan.final.fps)]


class NoModel(torch.nn.Module):
    """A DiT shape for the input checks; never called (the segments are faked)."""

    def __init__(self):
        super().__init__()
        self.config = tiny_config(in_dim=33, out_dim=16)
        self.weight = torch.nn.Parameter(torch.ones(()))


@pytest.fixture(scope="module")
def parts():
    return NoModel(), ToyCodec(temporal_factor=1), torch.randn(1, 5, 24, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def template():
    return TreePlan(9, (4, 2, 1), (2, 3), height=SIZE, width=SIZE, temporal_factor=1)  # 24 fps output


def settings(plan):
    return tree_settings(plan.num_levels, steps=[2] * plan.num_levels, shifts=[3.0] * plan.num_levels, cfg=1.0)


def flat(values):
    """uint8 [F, 16, 16, 3] frames, frame f everywhere ``values[f]``."""
    return torch.tensor(values, dtype=torch.uint8).reshape(-1, 1, 1, 1).expand(-1, SIZE, SIZE, 3).contiguous()


def test_fade_starts_at_the_video_and_hands_over_linearly():
    new = flat([100, 101, 102, 103, 104, 105])
    out = fade_join(new, flat([88])[0], flat([80])[0], 4)  # error 8, faded over 4 frames: 8 * (1 - t/4)
    assert out[:, 0, 0, 0].tolist() == [92, 95, 98, 101, 104, 105]
    assert torch.equal(fade_join(new, flat([88])[0], flat([80])[0], 0), new)  # 0 = a plain cut
    assert fade_weights(6, 4).tolist() == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    # a negative error brightens; the result stays in 0..255
    assert fade_join(flat([250, 250]), flat([0])[0], flat([40])[0], 2)[:, 0, 0, 0].tolist() == [255, 255]
    with pytest.raises(ValueError, match="must be one frame of the new frames' size"):
        fade_join(new, torch.zeros(8, 8, 3, dtype=torch.uint8), flat([80])[0], 4)


def test_fade_length_is_checked_and_counted_in_frames():
    assert check_join_fade("1.5") == 1.5 and check_join_fade(0) == 0.0
    assert [fade_frames(s, 24.0) for s in (0.0, 1.0, 0.5, 0.01)] == [0, 24, 12, 1]
    for bad, match in ((-1, "must be >= 0"), (math.nan, "finite"), (61, "must be <= 60"), ("soon", "must be a number")):
        with pytest.raises(InputError, match=match):
            check_join_fade(bad)


def test_long_loop_fades_every_join_out_over_the_given_frames(monkeypatch, parts, template):
    fake = OffsetSegments()
    monkeypatch.setattr(long_video, "run_segment", fake)
    model, codec, text = parts
    run = lambda fade: generate_long(model, codec, text, None, template, settings(template),  # noqa: E731
                                     seconds=70 / 24, context_frames=10, new_frames=20, anti_drift="none",
                                     join_fade=fade).frames[:, 0, 0, 0].tolist()
    cut = run(0.0)
    assert cut[:30] == list(range(30)) and cut[29:32] == [29, 40, 41]  # a plain cut jumps by ERROR + 1
    faded = run(5 / 24)  # 5 frames at 24 fps
    assert faded[:30] == cut[:30]
    expected = [40 + t - ERROR * max(0.0, 1 - t / 5) for t in range(20)]  # segment 1, computed by hand
    assert faded[30:50] == [round(v) for v in expected] and faded[30] == 30  # starts at the video's last + 1
    last = faded[49]  # segment 2 continues segment 1's faded frames and is faded the same way
    assert faded[50:55] == [round(last + ERROR + 1 + t - ERROR * (1 - t / 5)) for t in range(5)]
    assert fake.calls[2].context[:, 0, 0, 0].tolist() == faded[40:50]
    with pytest.raises(InputError, match="join_fade must be >= 0"):
        run(-0.5)
    assert len(fake.calls) == 6  # the bad value was refused before any segment


def test_colour_matched_segments_fade_from_the_video_in_the_new_frames_colours(monkeypatch, parts, template):
    fake = OffsetSegments()
    monkeypatch.setattr(continuation, "run_segment", fake)
    model, codec, text = parts
    video = flat(list(range(0, 120, 4)))  # 30 frames: 0, 4, ..., 116 (the colour reference: all of them)
    seg = segment_plan(template, 10, 20)
    out = continue_video(model, codec, text, None, video, seg, settings(seg.plan),
                         anti_drift="colour_match", join_fade=8 / 24)
    ref = video[:, 0, 0, 0].double()
    mean, std = ref.mean(), ref.std(correction=0)
    raw_new = torch.tensor([116 + ERROR + 1 + t for t in range(20)], dtype=torch.float64)
    own_mean, own_std = raw_new.mean(), raw_new.std(correction=0)
    transform = lambda x: ((x - own_mean) / own_std * std + mean).round().clamp(0, 255)  # noqa: E731 (colour_match)
    error = float(transform(torch.tensor(116.0 + ERROR))) - 116  # the overlap's last frame in the new colours
    expected = [float(transform(raw_new[t])) - error * max(0.0, 1 - t / 8) for t in range(20)]
    assert out.new_frames[:, 0, 0, 0].tolist() == [min(255, max(0, round(v))) for v in expected]
    assert torch.equal(out.joined[:30], video) and torch.equal(out.overlap, video[-10:] + ERROR)


def test_the_sharp_part_of_the_error_fades_fast_and_the_tint_slowly():
    new = flat([100] * 10)
    video_last = flat([80])[0]
    overlap_last = video_last.clone() + 20  # a tint of 20 everywhere ...
    overlap_last[6:9, 6:9] += 60  # ... and a small bright spot: an object drawn where the video has none
    out = fade_join(new, overlap_last, video_last, 8, sharp_length=2).float()
    correction = new.float() - out
    assert torch.equal(out[0], (video_last.float() + new[0].float() - overlap_last.float()).clamp(0, 255))
    corner, spot = correction[:, 0, 0, 0], correction[:, 7, 7, 0]
    tint = torch.tensor([20 * (1 - t / 8) for t in range(8)])
    assert float((corner[:8] - tint).abs().max()) <= 0.51  # the tint fades over 8 frames (8-bit rounding)
    assert float(spot[0]) == 80 and float(spot[2]) < 0.25 * 80 + 20  # the spot is mostly gone after 2 frames
    assert float(spot[2]) > float(corner[2])  # (its blurred part still fades with the tint)
    assert bool((correction[8:] == 0).all())
