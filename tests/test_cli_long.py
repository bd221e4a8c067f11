"""``generate --seconds`` / ``--extend`` on the command line: mistakes are exit 2 before the model loads, the
video is streamed segment by segment, and Ctrl-C keeps the finished segments in ``<out>.partial.mp4``."""

import re
from types import SimpleNamespace

import pytest
import torch

from tempomaster_core import cli, long_video
from tempomaster_core.defaults import ANTI_DRIFT, BUILTIN_ANTI_DRIFT, BUILTIN_JOIN_FADE_SECONDS, JOIN_FADE_SECONDS
from tempomaster_core.video_io import read_video, video_properties, write_video

PROMPT = "a red ball bouncing from left to right"


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    grey = torch.full((1, 64, 64, 3), 0.5)
    write_video(root / "clip.mp4", torch.linspace(0, 1, 40).reshape(40, 1, 1, 1).expand(40, 64, 64, 3), 24.0)
    write_video(root / "clip30.mp4", grey.expand(2, 64, 64, 3), 30.0)
    write_video(root / "small.mp4", torch.full((2, 32, 32, 3), 0.5), 24.0)
    (root / "notes.txt").write_text("not a video\n")
    return root


@pytest.fixture
def workdir(tmp_path, videos, monkeypatch):
    for source in videos.iterdir():
        (tmp_path / source.name).symlink_to(source)
    monkeypatch.chdir(tmp_path)
    return tmp_path


BAD = [
    (["--seconds", "0"], "--seconds must be > 0"),
    (["--seconds", "-5"], "--seconds must be > 0"),
    (["--seconds", "0.01"], "less than one frame"),
    (["--seconds", "2000"], "the length in frames must be <= 24000"),
    (["--seconds", "10", "--context-seconds", "0"], "--context-seconds must be > 0"),
    (["--seconds", "10", "--segment-frames", "0"], "--segment-frames must be >= 1"),
    (["--context-seconds", "2"], "--context-seconds needs --seconds or --extend"),
    (["--segment-prompt", "two blue squares falling"], "--segment-prompt needs --seconds or --extend"),
    (["--anti-drift", "anchor"], "--anti-drift needs --seconds or --extend"),
    (["--seconds", "10", "--anti-drift", "first"], "invalid choice: 'first'"),
    (["--seconds", "10", "--context-seconds", "0.1", "--anti-drift", "anchor"],
     "--anti-drift 'anchor' .* covers only 1 blueprint frame"),
    (["--join-fade", "1"], "--join-fade needs --seconds or --extend"),
    (["--seconds", "10", "--join-fade", "-1"], "--join-fade must be >= 0"),
    (["--seconds", "10", "--join-fade", "nan"], "--join-fade must be a finite number"),
    (["--seconds", "10", "--save-levels"], "--save-levels writes one tree's levels"),
    (["--seconds", "10", "--keyframe", "3=x.png"], "only --image"),
    (["--extend", "clip.mp4", "--image", "x.png"], "--image conditions a video made from scratch"),
    (["--extend", "missing.mp4"], "--extend missing.mp4: video not found"),
    (["--extend", "notes.txt"], "cannot read notes.txt as a video"),
    (["--extend", "clip30.mp4"], "is 30 fps but the segments are made at 24 fps.*--fps 30"),
    (["--extend", "small.mp4"], "is 32x32 but the segments are planned at 64x64.*--width 32 --height 32"),
    (["--extend", "clip.mp4", "--context-seconds", "2"], "context is 48 frames .* has only 40.*--context-seconds"),
    (["--extend", "clip.mp4", "--out", "clip.mp4", "--overwrite"], "must not be an input file"),
]


@pytest.mark.parametrize("extra,message", BAD, ids=[" ".join(row[0]) for row in BAD])
def test_bad_long_arguments_exit_2_before_loading(workdir, no_model, capsys, extra, message):
    argv = ["generate", "--prompt", PROMPT] + extra
    if "--out" not in extra:
        argv += ["--out", "long.mp4"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert not (workdir / "long.mp4").exists()


@pytest.fixture
def fake_long(monkeypatch):
    """A loaded-model stand-in and a ``generate_long`` that sends each segment's grey frames to the sink,
    optionally raising KeyboardInterrupt after ``stop_after`` segments."""
    bundle = SimpleNamespace(model=None, codec=SimpleNamespace(temporal_factor=4), encode_prompt=lambda text: text)
    monkeypatch.setattr("tempomaster_core.tiny.builtin.load_builtin", lambda **kwargs: bundle)
    seen = SimpleNamespace(stop_after=None, kwargs=None, prompts=None, settings=None)

    def fake(model, codec, positive, negative, template, settings, **kw):
        seen.kwargs, seen.prompts, seen.settings = kw, positive, settings
        total = round(kw["seconds"] * template.final.fps)
        segments = long_video.plan_segments(template, total, kw["context_frames"], kw["new_frames"],
                                            extend=kw["video"] is not None)
        for s, segment in enumerate(segments):
            if seen.stop_after == s:
                raise KeyboardInterrupt
            kw["sink"](torch.full((segment.new_frames, 64, 64, 3), 40 * s, dtype=torch.uint8))

    monkeypatch.setattr(long_video, "generate_long", fake)
    return seen


def test_seconds_streams_the_whole_length_with_the_models_continuation_defaults(workdir, fake_long):
    assert cli.main(["generate", "--prompt", PROMPT, "--seconds", "7", "--segment-prompt", "two blue squares falling",
                     "--out", "long.mp4"]) == 0
    assert video_properties(workdir / "long.mp4") == (168, 64, 64, pytest.approx(24.0))
    assert (fake_long.kwargs["context_frames"], fake_long.kwargs["new_frames"]) == (37, 63)  # the built-in model's
    assert fake_long.prompts == [PROMPT, "two blue squares falling"]
    assert fake_long.kwargs["anti_drift"] == BUILTIN_ANTI_DRIFT != ANTI_DRIFT  # the built-in model names its measured best
    assert fake_long.kwargs["join_fade"] == BUILTIN_JOIN_FADE_SECONDS != JOIN_FADE_SECONDS
    assert all(level.replace_known_latents for level in fake_long.settings)  # the built-in model's defaults.json
    assert cli.main(["generate", "--prompt", PROMPT, "--seconds", "3", "--anti-drift", "colour_match", "--join-fade",
                     "0", "--no-replace-known-latents", "--out", "drift.mp4"]) == 0
    assert fake_long.kwargs["anti_drift"] == "colour_match" and fake_long.kwargs["join_fade"] == 0.0
    assert not any(level.replace_known_latents for level in fake_long.settings)
    assert [p.name for p in workdir.iterdir() if p.name.startswith(".")] == []


def test_extend_writes_the_video_then_the_new_part(workdir, fake_long):
    assert cli.main(["generate", "--prompt", PROMPT, "--extend", "clip.mp4", "--seconds", "1", "--out", "more.mp4"]) == 0
    frames, _ = read_video(workdir / "more.mp4")
    assert frames.shape[0] == 40 + 24
    brightness = frames[:40].mean(dim=(1, 2, 3))  # the user's frames first (a ramp 0..1, re-encoded once)
    assert (brightness - torch.linspace(0, 1, 40)).abs().max() < 0.05
    assert fake_long.kwargs["video"].shape == (37, 64, 64, 3)  # only the context is held, not the video


def test_ctrl_c_keeps_the_finished_segments_playable_and_never_the_target(workdir, fake_long):
    fake_long.stop_after = 2
    assert cli.main(["generate", "--prompt", PROMPT, "--seconds", "7", "--out", "long.mp4"]) == 130
    assert not (workdir / "long.mp4").exists()
    assert video_properties(workdir / "long.partial.mp4")[0] == 100 + 63
    assert [p.name for p in workdir.iterdir() if p.name.startswith(".")] == []
