"""Multi-mask continuation and long video (tempomaster_core.continuation, tempomaster_core.long_video).

The exact checks run a "copy" model with a 1-frame-per-latent toy codec: the model drives every latent
to the condition latents of ``y``, so a level's output shows exactly which frames it was told, where
(the known frames decode to themselves, unknown frames to 0 = grey). Wrong positions, a missing level or
a shifted context change the output frames."""

import math
from types import SimpleNamespace

import pytest
import torch

from tempomaster_core import long_video
from tempomaster_core.continuation import (
    SegmentPlan, check_fps, context_frame_count, continue_video, segment_plan, video_frames,
)
from tempomaster_core.long_video import generate_long, plan_segments, segment_lengths, segment_seed
from tempomaster_core.pipeline import LevelResult, tree_settings
from tempomaster_core.plan import TreePlan, chunk_length
from tempomaster_core.validation import MAX_SEED, InputError
from tempomaster_core.video_io import VideoStream, video_properties
from tiny_models import tiny_config
from toy_codec import ToyCodec

SIZE = 16


class CopyModel(torch.nn.Module):
    """Velocity ``(x - c) / sigma`` with ``c`` the condition latents of ``y``: the Euler steps end at ``c``."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.calls = 0

    def forward(self, x, timestep, context, y, temporal_positions):
        self.calls += 1
        sigma = (timestep.float() / 1000).reshape(-1, 1, 1, 1, 1)
        return (x.float() - y[:, self.config.mask_channels:].float()) / sigma * self.scale


@pytest.fixture(scope="module")
def model():
    return CopyModel(tiny_config(in_dim=33, out_dim=16))


@pytest.fixture
def codec():
    return ToyCodec(temporal_factor=1)


@pytest.fixture(scope="module")
def template():
    return TreePlan(9, (4, 2, 1), (2, 3), height=SIZE, width=SIZE, temporal_factor=1)  # chunks of 12 and 15


@pytest.fixture(scope="module")
def text():
    return torch.randn(1, 5, 24, generator=torch.Generator().manual_seed(0))


def settings(plan, seed=0):
    return tree_settings(plan.num_levels, steps=[2] * plan.num_levels, shifts=[3.0] * plan.num_levels, cfg=1.0,
                         seed=seed)


def cell_video(frames, seed=1):
    """uint8 [F, 16, 16, 3] whose 8x8 cells are flat (the toy codec reproduces such frames exactly)."""
    cells = torch.randint(0, 256, (frames, 2, 2, 3), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    return cells.repeat_interleave(8, dim=1).repeat_interleave(8, dim=2)


def level_frames(video):
    return video.permute(3, 0, 1, 2).float() / 127.5 - 1


def test_segment_tree_is_shaped_like_the_template():
    tiny = TreePlan(25, (4, 2, 1), (2, 4), height=64, width=64)  # the built-in model's tree
    seg = segment_plan(tiny, 36, 64)
    assert (seg.plan.blueprint_frames, seg.plan.chunks, seg.plan.final.num_frames) == (25, (2, 4), 100)
    assert [seg.known_frames(k) for k in range(3)] == [9, 18, 36]
    assert seg.known_positions(0)[-1] == (8, 32) and seg.known_positions(1)[:2] == [(0, 0), (1, 2)]
    # the paper's step on the reference tree: 5 s + 480 frames; the fewest chunks within its 109-frame chunks
    paper = segment_plan(TreePlan(109, (4, 2, 1), height=480, width=832), context_frame_count(5.0, 24.0), 480)
    assert paper.context_frames == 120 and paper.plan.blueprint_frames == 153 and paper.plan.final.num_frames == 612
    assert paper.plan.chunks == (3, 6) and [lv.frames_per_chunk for lv in paper.plan.levels[1:]] == [105, 105]
    assert chunk_length(306, 2)[0] > 109 and chunk_length(612, 5)[0] > 109
    assert segment_plan(tiny, 0, 30).known_frames(0) == 0


def test_every_level_knows_the_context_at_its_true_positions(model, codec, text, template):
    seg = segment_plan(template, 10, 20)  # levels of 8, 16, 32 frames; chunks of 11 and 13 frames
    assert seg.plan.chunks == (2, 3) and seg.plan.levels[1].frames_per_chunk == 11
    video = cell_video(14)
    result = continue_video(model, codec, text, None, video, seg, settings(seg.plan), anti_drift="none",
                            return_levels=True)
    context = level_frames(video[-10:])
    for k, level in enumerate(result.levels):
        expected = torch.zeros_like(level.frames)  # unknown frames come out grey (0)
        for p, f in seg.known_positions(k):
            expected[:, p] = context[:, f]
        torch.testing.assert_close(level.frames, expected, atol=2e-5, rtol=0)
    assert [len(seg.known_positions(k)) for k in range(3)] == [3, 5, 10]


def test_overlap_is_reproduced_and_the_join_keeps_the_known_frames(model, codec, text, template):
    seg = segment_plan(template, 10, 20)
    video = cell_video(14)
    result = continue_video(model, codec, text, None, video, seg, settings(seg.plan), anti_drift="none")
    assert torch.equal(result.overlap, video[-10:])
    assert result.new_frames.shape == (20, SIZE, SIZE, 3)
    assert bool(((result.new_frames.float() - 127.5).abs() <= 1).all())  # unknown frames: grey
    assert torch.equal(result.joined, torch.cat([video, result.new_frames]))
    # a float [0, 1] video gives the same segment; join=False skips the copy
    again = continue_video(model, codec, text, None, video.float() / 255, seg, settings(seg.plan), anti_drift="none",
                           join=False)
    assert torch.equal(again.frames, result.frames) and again.joined is None


def test_anchor_takes_the_oldest_blueprint_slot_and_the_refiners_keep_the_true_context(model, codec, text, template):
    seg = segment_plan(template, 10, 20)
    video = cell_video(14)
    result = continue_video(model, codec, text, None, video, seg, settings(seg.plan), anti_drift="anchor",
                            return_levels=True)
    context, first = level_frames(video[-10:]), level_frames(video[:1])[:, 0]
    for k, level in enumerate(result.levels):
        expected = torch.zeros_like(level.frames)
        for p, f in seg.known_positions(k):
            expected[:, p] = context[:, f]
        if k == 0:
            expected[:, 0] = first  # the video's first frame, in the slot of context frame 0
        torch.testing.assert_close(level.frames, expected, atol=2e-5, rtol=0)
    assert torch.equal(result.overlap, video[-10:])  # the output never shows the anchor out of its time


def test_colour_match_gives_the_new_frames_the_references_statistics():
    from tempomaster_core.anti_drift import colour_match, drift_reference

    video = cell_video(6).clone()
    video[:, :8] //= 2  # a darker top half: contrast the transfer must keep
    tinted = (video.int() + torch.tensor([30, -20, 5])).clamp(0, 255).to(torch.uint8)
    reference = drift_reference("colour_match", video)
    assert reference.anchor is None and drift_reference("anchor", video).mean is None
    back = reference.correct(tinted)
    assert back.dtype == torch.uint8 and back.shape == video.shape
    pixels, ref = back.reshape(-1, 3).double(), video.reshape(-1, 3).double()
    torch.testing.assert_close(pixels.mean(0), ref.mean(0), atol=0.6, rtol=0)
    torch.testing.assert_close(pixels.std(0, correction=0), ref.std(0, correction=0), atol=0.6, rtol=0.01)
    assert (back.int() - video.int()).abs().float().mean() < (tinted.int() - video.int()).abs().float().mean() / 4
    flat = torch.full((2, 4, 4, 3), 90, dtype=torch.uint8)  # one colour: shifted to the mean, not stretched
    out = colour_match(flat, torch.tensor([10.0, 20.0, 30.0]), torch.tensor([5.0, 5.0, 5.0]))
    assert out[0, 0, 0].tolist() == [10, 20, 30] and bool((out == out[0, 0, 0]).all())


def test_bad_continuation_inputs_are_refused_before_compute(codec, text, template):
    model = CopyModel(tiny_config(in_dim=33, out_dim=16))
    seg = segment_plan(template, 10, 20)
    run = lambda video, segment=seg, **kw: continue_video(model, codec, text, None, video, segment,  # noqa: E731
                                                          kw.get("settings", settings(segment.plan)))
    with pytest.raises(InputError, match=r"context is 10 frames .* has only 6; use a context of at most 6 frames"):
        run(cell_video(6))
    with pytest.raises(InputError, match="is 32x16 but the segments are planned at 16x16; resize"):
        run(torch.zeros(12, 16, 32, 3, dtype=torch.uint8))
    with pytest.raises(InputError, match=r"\[-1, 1\] image: convert it with \(x \+ 1\) / 2"):
        run(level_frames(cell_video(12)).permute(1, 2, 3, 0))
    with pytest.raises(InputError, match=r"frames \[F, H, W, 3\]"):
        run(torch.zeros(12, 3, 16, 16))
    with pytest.raises(InputError, match="at least one context frame"):
        run(cell_video(12), segment_plan(template, 0, 20))
    with pytest.raises(InputError, match="one LevelSettings per level"):
        run(cell_video(12), settings=settings(seg.plan)[:2])
    with pytest.raises(InputError, match="anti_drift must be one of 'none', 'anchor'"):
        continue_video(model, codec, text, None, cell_video(12), seg, settings(seg.plan), anti_drift="first")
    short = segment_plan(template, 3, 20)  # 3 context frames: one blueprint frame (interval 4)
    with pytest.raises(InputError, match="covers only 1 blueprint frame.*longer context"):
        continue_video(model, codec, text, None, cell_video(12), short, settings(short.plan), anti_drift="anchor")
    assert model.calls == 0
    with pytest.raises(InputError, match="is 30 fps but the segments are made at 24 fps; resample"):
        check_fps(30.0, 24.0)
    check_fps(23.976, 24.0)  # NTSC film rate and GIF timing count as 24
    for bad, match in ((0, "must be > 0"), (-1.0, "must be > 0"), (0.01, "at least one frame"),
                       (math.nan, "finite")):
        with pytest.raises(InputError, match=match):
            context_frame_count(bad, 24.0)
    with pytest.raises(InputError, match="new_frames must be >= 1"):
        segment_plan(template, 10, 0)


def test_segment_lengths_and_seeds_follow_the_documented_rules(template):
    assert segment_lengths(1440, 120, 480, extend=False) == [600, 480, 360]
    assert segment_lengths(1000, 120, 480, extend=True) == [480, 480, 40]
    assert segment_lengths(50, 120, 480, extend=False) == [50]
    assert segment_seed(7, 0) == 7 and segment_seed(7, 3) == 10 and segment_seed(MAX_SEED, 1) == 0
    segments = plan_segments(template, 70, 10, 20)
    assert [(s.context_frames, s.new_frames) for s in segments] == [(0, 30), (10, 20), (10, 20)]
    assert segments[1] is segments[2]  # one plan per distinct length


class FakeSegments:
    """Stand-in for ``run_segment``: records every call; frame ``f`` of segment ``s`` has value ``s*50+f``."""

    def __init__(self):
        self.calls = []

    def __call__(self, model, codec, positive, negative, segment, context, settings, *, conditions=None,
                 anchor=None, progress=None):
        s = len(self.calls)
        self.calls.append(SimpleNamespace(segment=segment, context=None if context is None else context.clone(),
                                          positive=positive, seeds={lv.seed for lv in settings},
                                          conditions=conditions, anchor=anchor))
        plan = segment.plan
        values = torch.arange(plan.final.num_frames, dtype=torch.float32) + s * 50
        if context is not None:  # a copy model: the context comes back as it was given
            values[: context.shape[0]] = context[:, 0, 0, 0].float()
        frames = (values / 255).reshape(1, -1, 1, 1).expand(3, -1, plan.height, plan.width) * 2 - 1
        if progress is not None:
            progress(plan.num_levels - 1, 1, 1, None)
        return [LevelResult(plan=plan, level_index=plan.num_levels - 1, frames=frames.contiguous(), latents=None,
                            fps=plan.final.fps)]


def test_long_loop_streams_segments_and_passes_the_true_context(monkeypatch, model, codec, text, template):
    fake = FakeSegments()
    monkeypatch.setattr(long_video, "run_segment", fake)
    prompts = [text, text + 1]
    batches, reports = [], []
    result = generate_long(model, codec, prompts, None, template, settings(template, seed=5),
                           seconds=70 / 24, context_frames=10, new_frames=20, anti_drift="none",
                           sink=batches.append, progress=lambda *a: reports.append(a[:3]))
    assert result.frames is None and result.num_frames == 70 and result.seeds == (5, 6, 7)
    assert [b.shape[0] for b in batches] == [30, 20, 20]
    stream = torch.cat(batches)[:, 0, 0, 0]
    assert stream.tolist() == list(range(30)) + list(range(60, 80)) + list(range(110, 130))
    assert fake.calls[0].context is None and [c.seeds for c in fake.calls] == [{5}, {6}, {7}]
    for s in (1, 2):  # each segment knows exactly the last 10 frames made so far, nothing more
        start = sum(b.shape[0] for b in batches[:s])
        assert torch.equal(fake.calls[s].context, torch.cat(batches)[start - 10: start])
    assert [c.positive for c in fake.calls] == [prompts[0], prompts[1], prompts[1]]  # the last prompt holds
    assert [r[:2] for r in reports] == [(0, 3), (1, 3), (2, 3)] and result.overlap_psnr[0] is None
    assert result.overlap_psnr[1] == math.inf
    # extending a video: only its last frames are used, every segment is a continuation; collected output
    fake.calls.clear()
    video = torch.arange(40, dtype=torch.uint8).reshape(40, 1, 1, 1).expand(40, SIZE, SIZE, 3)
    out = generate_long(model, codec, text, None, template, settings(template), seconds=25 / 24, context_frames=10,
                        new_frames=20, video=video, anti_drift="none")
    assert out.frames.shape == (25, SIZE, SIZE, 3) and len(fake.calls) == 2
    assert fake.calls[0].context[:, 0, 0, 0].tolist() == list(range(30, 40))


def test_long_loop_colour_matches_later_segments_to_the_first_and_anchors_them(monkeypatch, model, codec, text,
                                                                              template):
    fake = FakeSegments()  # frame f of segment s has value s*50+f: the later segments are brighter
    monkeypatch.setattr(long_video, "run_segment", fake)
    result = generate_long(model, codec, text, None, template, settings(template), seconds=70 / 24,
                           context_frames=10, new_frames=20, anti_drift="anchor+colour_match")
    values = result.frames[:, 0, 0, 0].double()
    assert values[:30].tolist() == list(range(30))  # segment 0 is never changed
    for start in (30, 50):  # each later segment: segment 0's mean and spread, no offset
        assert abs(float(values[start:start + 20].mean()) - float(values[:30].mean())) < 0.6
        assert abs(float(values[start:start + 20].std(correction=0)) - float(values[:30].std(correction=0))) < 0.6
    assert fake.calls[0].anchor is None
    assert all(torch.equal(c.anchor, result.frames[0]) for c in fake.calls[1:])  # the video's first frame
    fake = FakeSegments()
    monkeypatch.setattr(long_video, "run_segment", fake)
    plain = generate_long(model, codec, text, None, template, settings(template), seconds=70 / 24,
                          context_frames=10, new_frames=20, anti_drift="none")
    assert plain.frames[30:, 0, 0, 0].tolist() == list(range(60, 80)) + list(range(110, 130))
    assert [c.anchor for c in fake.calls] == [None] * 3
    with pytest.raises(InputError, match="covers only 1 blueprint frame"):  # checked before segment 0
        generate_long(model, codec, text, None, template, settings(template), seconds=70 / 24, context_frames=3,
                      new_frames=20, anti_drift="anchor")
    assert len(fake.calls) == 3
    video = cell_video(12)  # extending: the anchor is the first frame of the video given, in every segment
    generate_long(model, codec, text, None, template, settings(template), seconds=25 / 24, context_frames=10,
                  new_frames=20, video=video, anti_drift="anchor")
    assert len(fake.calls) == 5 and all(torch.equal(c.anchor, video[0]) for c in fake.calls[3:])


def test_bad_long_inputs_are_refused_before_compute(monkeypatch, model, codec, text, template):
    fake = FakeSegments()
    monkeypatch.setattr(long_video, "run_segment", fake)
    run = lambda **kw: generate_long(model, codec, text, None, template, settings(template),  # noqa: E731
                                     **{"seconds": 2.0, "context_frames": 10, "new_frames": 20, **kw})
    for seconds, match in ((0, "seconds must be > 0"), (-3, "seconds must be > 0"), (math.inf, "finite"),
                           (0.01, "1..24000 frames"), (2000, "1..24000 frames")):
        with pytest.raises(InputError, match=match):
            run(seconds=seconds)
    with pytest.raises(InputError, match="has only 5; use a context of at most 5 frames"):
        run(video=cell_video(5))
    with pytest.raises(InputError, match="conditions are blueprint frames of a video made from scratch"):
        run(video=cell_video(12), conditions={0: torch.zeros(3, SIZE, SIZE)})
    with pytest.raises(InputError, match="context_frames must be >= 1"):
        run(context_frames=0)
    with pytest.raises(ValueError, match="text embeddings must be a tensor"):  # every prompt is checked first
        generate_long(model, codec, [text, torch.zeros(2, 2)], None, template, settings(template), seconds=2.0,
                      context_frames=10, new_frames=20)
    assert fake.calls == []


def test_video_stream_writes_batches_into_one_playable_file(tmp_path):
    path = tmp_path / "v.mp4"
    with VideoStream(path, 24.0) as stream:
        stream.write(cell_video(5))
        stream.write(cell_video(7, seed=2).float() / 255)
        with pytest.raises(ValueError, match="frames of 32x16 pixels in a 16x16 video"):
            stream.write(torch.zeros(1, 16, 32, 3, dtype=torch.uint8))
    assert video_properties(path) == (12, SIZE, SIZE, pytest.approx(24.0)) and stream.frames_written == 12
    with pytest.raises(ValueError, match="fps must be > 0"):
        VideoStream(tmp_path / "w.mp4", 0)


def test_video_frames_keep_uint8_and_round_floats():
    video = torch.tensor([0.0, 0.5, 1.0]).reshape(3, 1, 1, 1).expand(3, 2, 2, 3)
    assert video_frames(video)[:, 0, 0, 0].tolist() == [0, 128, 255]
    raw = torch.full((2, 2, 2, 3), 7, dtype=torch.uint8)
    assert video_frames(raw) is not None and torch.equal(video_frames(raw), raw)
    assert SegmentPlan(plan=TreePlan(5, (1,), height=16, width=16), context_frames=2, new_frames=3).frames == 5


def test_a_models_anti_drift_comes_from_its_settings_and_is_checked():
    from tempomaster_core.anti_drift import model_default
    from tempomaster_core.defaults import ANTI_DRIFT, BUILTIN_ANTI_DRIFT
    from tempomaster_core.tiny.builtin import builtin_dir, bundle_defaults

    assert model_default({}) == ANTI_DRIFT == "none"  # the paper's setting for a model that names none
    assert model_default(bundle_defaults(builtin_dir())) == BUILTIN_ANTI_DRIFT != ANTI_DRIFT
    assert model_default({"anti_drift": "Colour_Match"}) == "colour_match"
    with pytest.raises(InputError, match="defaults.json anti_drift"):
        model_default({"anti_drift": "sometimes"})
