"""Bad inputs on the command lines: every user mistake is one `error:` line and exit 2 before any model
is loaded, nothing on disk is created or changed, an interrupted or failed write leaves old files
byte-identical and no temporary file behind (``python -m tempomaster_core generate`` and the converter)."""

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from tempomaster_core import cli, video_io
from tempomaster_core.tiny.builtin import is_available
from tempomaster_core.video_io import VIDEO_SUFFIXES, read_video

PROMPT = "a red ball bouncing from left to right"
OLD_VIDEO = b"an existing video the user cares about"


def snapshot(root: Path) -> dict:
    """Every file and directory under ``root`` with its bytes (``None`` for directories)."""
    return {p.relative_to(root): (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A working directory with images, an existing output, a text file, an empty and a broken image."""
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png", "frame.gif", "v_level1_12fps.gif"):
        Image.fromarray(rng.integers(0, 255, (48, 80, 3), dtype=np.uint8)).save(tmp_path / name)
    (tmp_path / "old.mp4").write_bytes(OLD_VIDEO)
    (tmp_path / "v_level0_6fps.mp4").write_bytes(OLD_VIDEO)
    (tmp_path / "notes.txt").write_text("my notes\n")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "broken.png").write_bytes(b"this is not a PNG")
    (tmp_path / "adir").mkdir()
    (tmp_path / "adir.mp4").mkdir()
    (tmp_path / "emptybundle").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


# (row id, arguments after `generate --prompt PROMPT`, exit code, message fragment)
BAD_GENERATE = [
    # --out: never destroy data, refuse what cannot be written
    ("existing-out", ["--out", "old.mp4"], 2, "which exists; pass --overwrite"),
    ("existing-level-file", ["--out", "v.mp4", "--save-levels"], 2, "--save-levels file must be a new file"),
    ("text-file-out", ["--out", "notes.txt"], 2, "--out must end in one of .mp4, .mkv, .mov, .webm, .gif"),
    ("text-file-out-overwrite", ["--out", "notes.txt", "--overwrite"], 2, "must end in one of"),
    ("no-suffix", ["--out", "video"], 2, "must end in one of"),
    ("empty-out", ["--out", ""], 2, "--out must be a file path"),
    ("out-is-directory", ["--out", "adir"], 2, "which is a directory"),
    ("out-is-directory-with-suffix", ["--out", "adir.mp4", "--overwrite"], 2, "which is a directory"),
    ("parent-is-a-file", ["--out", "notes.txt/video.mp4"], 2, "is a file"),
    ("out-is-the-image", ["--image", "frame.gif", "--out", "frame.gif", "--overwrite"], 2,
     "which is also --image frame.gif"),
    ("out-is-the-image-other-spelling", ["--image", "frame.gif", "--out", "adir/../frame.gif", "--overwrite"], 2,
     "which is also --image"),
    ("out-is-a-keyframe", ["--keyframe", "3=frame.gif", "--out", "./frame.gif", "--overwrite"], 2,
     "which is also --keyframe 3=frame.gif"),
    ("level-file-is-an-input", ["--last-image", "v_level1_12fps.gif", "--out", "v.gif", "--save-levels",
                                "--overwrite"], 2, "--save-levels file must not be an input file"),
    # condition images
    ("missing-image", ["--image", "missing.png", "--out", "v.mp4"], 2, "--image missing.png: image not found"),
    ("empty-image", ["--image", "empty.png", "--out", "v.mp4"], 2, "empty (0 bytes)"),
    ("not-an-image", ["--last-image", "broken.png", "--out", "v.mp4"], 2, "cannot read broken.png as an image"),
    ("empty-image-path", ["--image", "", "--out", "v.mp4"], 2, "--image needs an image file path"),
    ("image-is-directory", ["--keyframe", "2=adir", "--out", "v.mp4"], 2, "is a directory"),
    ("image-and-keyframe-0", ["--image", "a.png", "--keyframe", "0=b.png", "--out", "v.mp4"], 2,
     "--image a.png and --keyframe 0=b.png both condition blueprint frame 0"),
    ("last-image-and-keyframe--1", ["--last-image", "a.png", "--keyframe", "-1=b.png", "--out", "v.mp4"], 2,
     "--keyframe -1=b.png and --last-image a.png both condition blueprint frame 24"),
    ("same-frame-two-spellings", ["--keyframe", "24=a.png", "--keyframe=-1=b.png", "--out", "v.mp4"], 2,
     "--keyframe 24=a.png and --keyframe -1=b.png both condition blueprint frame 24"),
    ("same-index-twice", ["--keyframe", "3=a.png", "--keyframe", "3=b.png", "--out", "v.mp4"], 2,
     "--keyframe 3=a.png and --keyframe 3=b.png both condition blueprint frame 3"),
    ("keyframe-past-the-end", ["--keyframe", "25=a.png", "--out", "v.mp4"], 2,
     "--keyframe 25=a.png: blueprint frame 25 is outside the blueprint's 25 frames"),
    ("keyframe-before-the-start", ["--keyframe", "-26=a.png", "--out", "v.mp4"], 2, "outside the blueprint's 25"),
    ("keyframe-without-path", ["--keyframe", "3", "--out", "v.mp4"], 2, "expected INDEX=PATH"),
    ("keyframe-bad-index", ["--keyframe", "x=a.png", "--out", "v.mp4"], 2, "expected INDEX=PATH"),
    # sampler settings
    ("zero-steps", ["--steps", "0", "--out", "v.mp4"], 2, "--steps must be >= 1, got 0"),
    ("negative-steps", ["--steps", "-3", "--out", "v.mp4"], 2, "--steps must be >= 1, got -3"),
    ("zero-steps-on-a-level", ["--steps", "1,0,1", "--out", "v.mp4"], 2, "--steps (level 1) must be >= 1"),
    ("too-many-steps", ["--steps", "100000", "--out", "v.mp4"], 2, f"--steps must be <= {cli.MAX_STEPS}"),
    ("steps-wrong-count", ["--steps", "1,2", "--out", "v.mp4"], 2, "--steps has 2 entries but the plan has 3"),
    ("steps-not-a-number", ["--steps", "many", "--out", "v.mp4"], 2, "expected comma-separated integers"),
    ("steps-empty", ["--steps", ",", "--out", "v.mp4"], 2, "expected at least one integer"),
    ("nan-cfg", ["--cfg", "nan", "--out", "v.mp4"], 2, "--cfg must be a finite number"),
    ("inf-cfg", ["--cfg", "inf", "--out", "v.mp4"], 2, "--cfg must be a finite number"),
    ("huge-cfg", ["--cfg", "1000", "--out", "v.mp4"], 2, "--cfg must be <= 100"),
    ("zero-cfg", ["--cfg", "0", "--out", "v.mp4"], 2, "--cfg must be > 0"),
    ("zero-shift", ["--shift", "0", "--out", "v.mp4"], 2, "--shift must be > 0"),
    ("nan-shift", ["--shift", "5,nan,3", "--out", "v.mp4"], 2, "--shift (level 1) must be a finite number"),
    ("overflowing-shift", ["--shift", "1e300", "--out", "v.mp4"], 2, "non-finite float32 schedule"),
    ("huge-seed", ["--seed", str(2**64), "--out", "v.mp4"], 2, "--seed must be <="),
    ("negative-seed", ["--seed", "-1", "--out", "v.mp4"], 2, "--seed must be >= 0"),
    ("zero-max-batch", ["--max-batch", "0", "--out", "v.mp4"], 2, "--max-batch must be >= 1"),
    ("zero-dist-timeout", ["--dist-timeout", "0", "--out", "v.mp4"], 2, "--dist-timeout must be > 0"),
    ("bad-guidance", ["--guidance", "pag", "--out", "v.mp4"], 2, "invalid choice: 'pag'"),
    # the plan
    ("absurd-frames", ["--frames", "1000001", "--out", "v.mp4"], 2, "1000001"),
    ("frames-not-4n+1", ["--frames", "26", "--out", "v.mp4"], 2, "4*n+1"),
    ("bad-intervals", ["--intervals", "4,3", "--out", "v.mp4"], 2, "divisible"),
    ("bad-height", ["--height", "65", "--out", "v.mp4"], 2, "multiple of 16"),
    ("nan-fps", ["--fps", "nan", "--out", "v.mp4"], 2, "fps must be"),
    ("bad-boundary", ["--boundary", "exact", "--out", "v.mp4"], 2, "invalid choice: 'exact'"),
    # model and device
    ("missing-model-dir", ["--model-dir", "nowhere", "--out", "v.mp4"], 2, "--model-dir nowhere: no such directory"),
    ("model-dir-is-a-file", ["--model-dir", "notes.txt", "--out", "v.mp4"], 2, "not a directory"),
    ("model-dir-without-bundle", ["--model-dir", "emptybundle", "--out", "v.mp4"], 2, "missing dit.safetensors"),
    ("bogus-device", ["--device", "bogus", "--out", "v.mp4"], 2, "--device must be a torch device"),
    ("meta-device", ["--device", "meta", "--out", "v.mp4"], 2, "no usable 'meta' device"),
    ("cuda-without-gpu", ["--device", "cuda", "--out", "v.mp4"], 2, "no CUDA GPU is available"),
    # argparse
    ("unknown-flag", ["--out", "v.mp4", "--bogus"], 2, "unrecognized arguments: --bogus"),
    ("missing-out", [], 2, "the following arguments are required: --out"),
    ("frames-not-an-int", ["--frames", "ten", "--out", "v.mp4"], 2, "invalid int value: 'ten'"),
]


@pytest.mark.parametrize("argv, code, fragment", [row[1:] for row in BAD_GENERATE],
                         ids=[row[0] for row in BAD_GENERATE])
def test_bad_generate_input_is_an_error_before_loading_and_touches_nothing(
        workdir, no_model, monkeypatch, capsys, argv, code, fragment):
    if "cuda" in argv:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    before = snapshot(workdir)
    assert cli.main(["generate", "--prompt", PROMPT] + argv) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    message = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(message) == 1 and fragment in message[0], err
    assert snapshot(workdir) == before  # nothing created, nothing changed


def test_refused_runs_leave_the_old_output_the_text_file_and_the_image_byte_identical(workdir, no_model):
    image = (workdir / "frame.gif").read_bytes()
    assert cli.main(["generate", "--prompt", PROMPT, "--out", "old.mp4"]) == 2
    assert cli.main(["generate", "--prompt", PROMPT, "--out", "notes.txt", "--overwrite"]) == 2
    assert cli.main(["generate", "--prompt", PROMPT, "--image", "frame.gif", "--out", "frame.gif", "--overwrite"]) == 2
    assert (workdir / "old.mp4").read_bytes() == OLD_VIDEO
    assert (workdir / "notes.txt").read_text() == "my notes\n"
    assert (workdir / "frame.gif").read_bytes() == image


def test_unwritable_folder_is_refused_before_loading(workdir, no_model, monkeypatch, capsys):
    (workdir / "ro").mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: Path(p) != workdir / "ro" and real_access(p, mode, **kw))
    assert cli.main(["generate", "--prompt", PROMPT, "--out", "ro/sub/v.mp4"]) == 2
    assert "--out must be in a writable directory" in capsys.readouterr().err
    assert not (workdir / "ro" / "sub").exists()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write anywhere")
def test_read_only_folder_is_refused(workdir, no_model, capsys):
    (workdir / "ro").mkdir()
    os.chmod(workdir / "ro", 0o555)
    try:
        assert cli.main(["generate", "--prompt", PROMPT, "--out", "ro/v.mp4"]) == 2
    finally:
        os.chmod(workdir / "ro", 0o755)
    assert "writable directory" in capsys.readouterr().err


# --- runs that get past the checks: a stand-in model and generator keep them fast ----------------------------


@pytest.fixture
def fake_model(monkeypatch):
    """Replace the model and the sampler: ``generate`` returns grey frames of the plan's shapes and
    records the conditions it was given."""
    seen = {}
    bundle = SimpleNamespace(model=None, codec=SimpleNamespace(temporal_factor=4), encode_prompt=lambda text: None)
    monkeypatch.setattr("tempomaster_core.tiny.builtin.load_builtin", lambda **kwargs: bundle)

    def fake_generate(model, codec, positive, negative, plan, **kwargs):
        seen.update(kwargs, plan=plan)
        levels = [SimpleNamespace(level_index=i, fps=level.fps,
                                  to_images=lambda n=level.num_frames: torch.full((n, plan.height, plan.width, 3), 0.5))
                  for i, level in enumerate(plan.levels)]
        return torch.full((plan.final.num_frames, plan.height, plan.width, 3), 0.5), levels

    monkeypatch.setattr(cli, "generate", fake_generate)
    return seen


def test_negative_keyframe_works_as_documented(workdir, fake_model):
    assert cli.main(["generate", "--prompt", PROMPT, "--keyframe", "-1=a.png", "--keyframe", "-25=b.png",
                     "--keyframe", "12=frame.gif", "--out", "v.mp4"]) == 0
    assert sorted(fake_model["conditions"]) == [0, 12, 24]
    assert all(img.shape == (3, 64, 64) and img.min() >= -1 and img.max() <= 1
               for img in fake_model["conditions"].values())


@pytest.mark.parametrize("suffix", VIDEO_SUFFIXES)
def test_every_allowed_suffix_writes_a_readable_video(workdir, fake_model, suffix):
    assert cli.main(["generate", "--prompt", PROMPT, "--out", f"v{suffix}"]) == 0
    video, fps = read_video(workdir / f"v{suffix}")
    assert video.shape == (100, 64, 64, 3) and fps == pytest.approx(24.0, rel=0.01)
    assert sorted(p.name for p in workdir.iterdir() if p.name.startswith(".")) == []  # no temp file left


def test_overwrite_replaces_the_file_and_keeps_its_permissions(workdir, fake_model):
    os.chmod(workdir / "old.mp4", 0o640)
    assert cli.main(["generate", "--prompt", PROMPT, "--out", "old.mp4", "--overwrite"]) == 0
    assert read_video(workdir / "old.mp4")[0].shape[0] == 100
    assert oct(os.stat(workdir / "old.mp4").st_mode & 0o777) == oct(0o640)


def _interrupt_on_write(monkeypatch, after_calls: int):
    """Make the encoder write part of a file, then raise KeyboardInterrupt, on its ``after_calls``-th call."""
    calls = []
    real = video_io._encode

    def encode(path, pixels, fps, codec, pixel_format):
        calls.append(path)
        if len(calls) < after_calls:
            return real(path, pixels, fps, codec, pixel_format)
        Path(path).write_bytes(b"\x00\x00\x00\x18ftypisom half a video")  # midway
        raise KeyboardInterrupt

    monkeypatch.setattr(video_io, "_encode", encode)
    return calls


def test_interrupted_write_keeps_the_old_file_and_leaves_no_temp_file(workdir, fake_model, monkeypatch, capsys):
    calls = _interrupt_on_write(monkeypatch, after_calls=1)
    before = snapshot(workdir)
    assert cli.main(["generate", "--prompt", PROMPT, "--out", "old.mp4", "--overwrite"]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err
    assert calls and calls[0].resolve().parent == workdir.resolve() and calls[0].name.startswith(".old.mp4.")  # hidden
    assert snapshot(workdir) == before  # old.mp4 byte-identical, no temp file


def test_save_levels_is_all_or_nothing(workdir, fake_model, monkeypatch, capsys):
    calls = _interrupt_on_write(monkeypatch, after_calls=3)  # final video and level 0 written, then Ctrl-C
    before = snapshot(workdir)
    assert cli.main(["generate", "--prompt", PROMPT, "--out", "new.mp4", "--save-levels", "--overwrite"]) == 130
    assert len(calls) == 3 and "interrupted" in capsys.readouterr().err
    assert snapshot(workdir) == before  # not even the complete files were renamed into place


def test_interrupt_and_failure_during_generation(workdir, fake_model, monkeypatch, capsys):
    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    def fail(*args, **kwargs):
        raise RuntimeError("the sampler broke")

    before = snapshot(workdir)
    monkeypatch.setattr(cli, "generate", stop)
    assert cli.main(["generate", "--prompt", PROMPT, "--out", "v.mp4"]) == 130
    assert "interrupted" in capsys.readouterr().err
    monkeypatch.setattr(cli, "generate", fail)
    assert cli.main(["generate", "--prompt", PROMPT, "--out", "v.mp4"]) == 1
    err = capsys.readouterr().err
    assert "error: RuntimeError: the sampler broke" in err and "Traceback" not in err
    assert cli.main(["generate", "--prompt", PROMPT, "--out", "v.mp4", "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "error: RuntimeError: the sampler broke" in err
    assert snapshot(workdir) == before


def test_debug_shows_the_traceback_of_a_usage_error(workdir, no_model, capsys):
    assert cli.main(["generate", "--prompt", PROMPT, "--out", "old.mp4", "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "error: --out must be a new file" in err


@pytest.mark.slow  # a full built-in run, ~4 s
@pytest.mark.skipif(not is_available(), reason="the built-in TempoMaster-Tiny files are missing from tempomaster_core/builtin/")
def test_real_tiny_run_with_first_and_last_image(workdir, capsys):
    assert cli.main(["generate", "--prompt", PROMPT, "--steps", "1,1,1", "--image", "a.png",
                     "--keyframe", "-1=b.png", "--out", "old.mp4", "--overwrite", "--device", "cpu"]) == 0
    assert "conditioned on blueprint frames [0, 24]" in capsys.readouterr().err
    assert read_video(workdir / "old.mp4")[0].shape == (100, 64, 64, 3)


@pytest.mark.slow  # a fresh interpreter, ~5 s
def test_the_real_command_line_parses_a_negative_keyframe_and_reports_without_traceback(tmp_path):
    """One subprocess: the documented ``--keyframe -1=IMG`` through the real sys.argv, and the exit code."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    run = subprocess.run([sys.executable, "-m", "tempomaster_core", "generate", "--prompt", PROMPT,
                          "--keyframe", "-1=missing.png", "--out", "v.mp4"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    assert "error: --keyframe -1=missing.png: image not found" in run.stderr and "Traceback" not in run.stderr
    assert list(tmp_path.iterdir()) == []


# --- the converter ------------------------------------------------------------------------------------------


@pytest.fixture
def checkpoint(tmp_path):
    from tiny_models import make_tiny_dit

    model = make_tiny_dit(seed=3, dtype=torch.bfloat16)
    path = tmp_path / "dit.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path), metadata={"num_heads": "2"})
    return path


BAD_CONVERT = [
    ("output-is-a-directory", "adir", [], "which is a directory"),
    ("output-in-a-file", "notes.txt/out.safetensors", [], "is a file"),
    ("output-not-safetensors", "out.bin", [], "must end in .safetensors"),
    ("output-exists", "notes.safetensors", [], "--force"),
    ("output-is-the-input", "dit.safetensors", ["--force"], "which is also the input checkpoint"),
]


@pytest.mark.parametrize("out, flags, fragment", [row[1:] for row in BAD_CONVERT], ids=[row[0] for row in BAD_CONVERT])
def test_bad_converter_output_is_refused_before_reading_the_input(tmp_path, checkpoint, monkeypatch, capsys,
                                                                  out, flags, fragment):
    from tempomaster_core import convert

    (tmp_path / "adir").mkdir()
    (tmp_path / "notes.txt").write_text("my notes\n")
    (tmp_path / "notes.safetensors").write_bytes(b"precious")
    monkeypatch.chdir(tmp_path)

    def refuse(source):
        raise AssertionError("the input was read before the output was checked")

    monkeypatch.setattr(convert, "open_checkpoint", refuse)
    before = snapshot(tmp_path)
    assert convert.main([str(checkpoint), out] + flags) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and fragment in err and "Traceback" not in err
    assert snapshot(tmp_path) == before


def test_converter_refuses_an_unwritable_folder(tmp_path, checkpoint, monkeypatch, capsys):
    from tempomaster_core import convert

    (tmp_path / "ro").mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: Path(p) != tmp_path / "ro" and real_access(p, mode, **kw))
    assert convert.main([str(checkpoint), str(tmp_path / "ro" / "out.safetensors")]) == 1
    assert "writable directory" in capsys.readouterr().err
    assert list((tmp_path / "ro").iterdir()) == []
