"""The README's main job: ``python -m tempomaster_core generate`` on the shipped TempoMaster-Tiny."""

import pytest
import torch

from tempomaster_core import cli
from tempomaster_core.tiny.builtin import is_available
from tempomaster_core.video_io import read_video

needs_weights = pytest.mark.skipif(not is_available(), reason="the built-in TempoMaster-Tiny files are missing from tempomaster_core/builtin/")
PROMPT = "a red ball bouncing from left to right"


@needs_weights
def test_generate_writes_the_final_video_and_every_level(tmp_path, capsys):
    out = tmp_path / "video.mp4"
    assert cli.main(["generate", "--prompt", PROMPT, "--out", str(out), "--save-levels"]) == 0
    expected = {out: (100, 24.0), tmp_path / "video_level0_6fps.mp4": (25, 6.0),
                tmp_path / "video_level1_12fps.mp4": (50, 12.0), tmp_path / "video_level2_24fps.mp4": (100, 24.0)}
    for path, (frames, fps) in expected.items():
        video, read_fps = read_video(path)
        assert video.shape == (frames, 64, 64, 3) and read_fps == pytest.approx(fps), path
    err = capsys.readouterr().err
    assert "level 3/3 24 fps (4 chunks x 25 frames)" in err and "100 frames at 24 fps" in err
    # the video follows the prompt: a red object in every frame, and it moves
    video, _ = read_video(out)
    bright = video.max(-1).values > 0.45
    assert bright.flatten(1).sum(1).min() >= 12  # an object in every frame
    rgb = video[bright].mean(0)
    assert rgb[0] > rgb[1] + 0.3 and rgb[0] > rgb[2] + 0.3, rgb  # red
    ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    cx = (bright * xs).flatten(1).sum(1) / bright.flatten(1).sum(1)
    assert cx.max() - cx.min() > 8  # it travels horizontally


def test_settings_come_from_the_model_defaults_and_flags_override_them(tmp_path, monkeypatch):
    seen = {}

    def fake_generate(model, codec, positive, negative, plan, **kwargs):
        seen.update(kwargs, plan=plan)
        return torch.zeros(plan.final.num_frames, plan.height, plan.width, 3), []

    monkeypatch.setattr(cli, "generate", fake_generate)
    written = []
    monkeypatch.setattr("tempomaster_core.video_io.write_video",
                        lambda path, frames, fps, **kwargs: written.append(fps) or path)
    if not is_available():
        pytest.skip("the built-in TempoMaster-Tiny files are missing from tempomaster_core/builtin/")
    from tempomaster_core.tiny.builtin import load_builtin

    d = load_builtin().defaults
    cli.main(["generate", "--prompt", PROMPT, "--out", str(tmp_path / "a.mp4")])
    assert seen["plan"].boundary == d["boundary"] and seen["plan"].frame_intervals == tuple(d["frame_intervals"])
    assert seen["steps"] == d["steps"] and seen["shifts"] == d["shifts"] and seen["cfg"] == d["cfg"]
    assert seen["guidance"] == d["guidance"] and written == [24.0]
    cli.main(["generate", "--prompt", PROMPT, "--out", str(tmp_path / "b.mp4"), "--boundary", "anchors",
              "--intervals", "4,1", "--chunks", "4", "--steps", "3", "--shift", "5,3", "--cfg", "2", "--guidance", "cfg"])
    plan = seen["plan"]
    assert plan.boundary == "anchors" and plan.frame_intervals == (4, 1) and plan.chunks == (4,)
    assert plan.levels[1].chunk_conditions(1)[0] == (3, 7)  # chunk 1 starts at frame 25: first anchor 28 = 7*4
    assert (seen["steps"], seen["shifts"], seen["cfg"], seen["guidance"]) == ([3, 3], [5.0, 3.0], [2.0, 2.0], "cfg")
    # a tree with another number of levels: the model's blueprint setting, then its refinement setting
    cli.main(["generate", "--prompt", PROMPT, "--out", str(tmp_path / "c.mp4"), "--intervals", "4,1"])
    assert seen["plan"].frame_intervals == (4, 1) and seen["plan"].chunks == (4,)  # reference chunk rule
    assert seen["steps"] == [d["steps"][0], d["steps"][-1]] and seen["shifts"] == [d["shifts"][0], d["shifts"][-1]]
    assert seen["cfg"] == [d["cfg"][0], d["cfg"][-1]]


@needs_weights
@pytest.mark.parametrize("argv, message", [
    (["--frames", "26"], "4*n+1 pixel frames, got 26; nearest valid values: 25 or 29"),
    (["--steps", "1,2"], "--steps has 2 entries but the plan has 3 levels; give one per level or a single value"),
    (["--intervals", "4,3"], "divisible"),
])
def test_bad_settings_exit_with_the_reason(tmp_path, argv, message, capsys):
    assert cli.main(["generate", "--prompt", PROMPT, "--out", str(tmp_path / "x.mp4")] + argv) == 2
    err = capsys.readouterr().err
    assert f"error: {message}" in err or message in err.split("error: ", 1)[1]
    assert not list(tmp_path.iterdir())


def test_unknown_boundary_mode_is_an_argument_error_and_the_former_name_an_alias(capsys):
    assert cli.main(["generate", "--prompt", PROMPT, "--out", "x.mp4", "--boundary", "exact"]) == 2
    assert "invalid choice: 'exact'" in capsys.readouterr().err
    for given, mode in (("reference", "repeat_anchor"), ("repeat_anchor", "repeat_anchor"), ("anchors", "anchors")):
        args = cli.build_parser().parse_args(["generate", "--prompt", PROMPT, "--out", "x.mp4", "--boundary", given])
        assert args.boundary == mode


def test_weight_dtype_lora_and_block_swap_reach_the_dit(tmp_path, monkeypatch, capsys):
    if not is_available():
        pytest.skip("the built-in TempoMaster-Tiny files are missing from tempomaster_core/builtin/")
    from safetensors.torch import save_file

    from tempomaster_core.tiny.builtin import load_builtin

    seen = {}

    def fake_generate(model, codec, positive, negative, plan, **kwargs):
        seen["model"] = model
        return torch.zeros(plan.final.num_frames, plan.height, plan.width, 3), []

    monkeypatch.setattr(cli, "generate", fake_generate)
    monkeypatch.setattr("tempomaster_core.video_io.write_video", lambda path, frames, fps, **kwargs: path)
    plain = load_builtin(dtype="fp8_e4m3fn").model
    gen = torch.Generator().manual_seed(0)
    up_head, down_head = torch.randn(plain.head.head.weight.shape[0], 2, generator=gen), torch.randn(2, 192, generator=gen)
    lora = {"diffusion_model.head.head.lora_up.weight": up_head, "diffusion_model.head.head.lora_down.weight": down_head,
            "diffusion_model.blocks.0.ffn.0.lora_up.weight": torch.randn(768, 2, generator=gen),
            "diffusion_model.blocks.0.ffn.0.lora_down.weight": torch.randn(2, 192, generator=gen)}
    path = tmp_path / "tiny_lora.safetensors"
    save_file(lora, str(path))
    argv = ["generate", "--prompt", PROMPT, "--out", str(tmp_path / "a.mp4"), "--overwrite", "--weight-dtype", "fp8_e4m3fn",
            "--lora", f"{path}:0.5", "--blocks-to-swap", "2"]
    assert cli.main(argv) == 0
    model = seen["model"]
    assert model.weight_dtype == torch.float8_e4m3fn and model.dtype == torch.bfloat16
    assert len(model.blocks[0].ffn[0].weight_functions) == 1  # fp8 weight: the LoRA runs per forward
    merged = (plain.head.head.weight.float() + 0.5 * up_head @ down_head).to(torch.bfloat16)
    assert torch.equal(model.head.head.weight, merged)  # a bf16 weight: merged at strength 0.5
    assert model.blocks[0]._forward_pre_hooks and not model.blocks[2]._forward_pre_hooks  # blocks 0, 1 swapped
    assert "LoRA tiny_lora.safetensors at strength 0.5: 2 weights" in capsys.readouterr().err
    assert cli.main(argv[:-4] + ["--lora", str(tmp_path / "missing.safetensors")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert cli.main(argv[:-2] + ["--blocks-to-swap", "9"]) == 1
    assert "blocks_to_swap (the DiT has 4 blocks) must be <= 4" in capsys.readouterr().err


def test_fp8_matmul_and_per_level_lora_strengths_are_checked_before_loading(tmp_path, capsys):
    from tempomaster_core.dit_options import parse_lora_spec

    lora = tmp_path / "style.safetensors"
    lora.write_bytes(b"")  # only its existence is checked before loading
    assert parse_lora_spec(f"{lora}:1,0,0") == (lora, (1.0, 0.0, 0.0))
    assert parse_lora_spec(f"{lora}:0.5") == (lora, 0.5)
    base = ["generate", "--prompt", PROMPT, "--out", str(tmp_path / "a.mp4"), "--intervals", "4,2,1"]
    assert cli.main(base + ["--fp8-matmul"]) == 2  # the default fp32 weights
    assert "fp8 matmul needs fp8_e4m3fn weights" in capsys.readouterr().err
    assert cli.main(base + ["--lora", f"{lora}:1,0"]) == 2
    assert "--lora style.safetensors's strengths has 2 entries but the plan has 3 levels" in capsys.readouterr().err


def test_untrained_warnings_use_the_limits_the_model_declares():
    from tempomaster_core.cli import untrained_warnings
    from tempomaster_core.plan import TreePlan
    from tempomaster_core.wan.bundle import reference_settings

    tiny = {"trained_frame_intervals": [4, 2, 1], "trained_chunk_frames": 25}  # the built-in model's declaration
    assert untrained_warnings(TreePlan(25, (4, 2, 1), (2, 4), height=64, width=64), tiny) == []
    long_blueprint = untrained_warnings(TreePlan(49, (4, 2, 1), (4, 8), height=64, width=64), tiny)
    assert len(long_blueprint) == 1 and "level 0 (6 fps) has chunks of 49 frames" in long_blueprint[0]
    coarse = untrained_warnings(TreePlan(25, (8, 4, 2, 1), (2, 4, 8), height=64, width=64), tiny)
    assert len(coarse) == 1 and "interval 8) is coarser than the model was trained on (interval 4)" in coarse[0]
    # the 14B declares the reference's 109-frame chunks: the same 49-frame blueprint is inside its training
    assert untrained_warnings(TreePlan(49, (4, 2, 1), None, height=64, width=64), reference_settings()) == []
    if is_available():
        from tempomaster_core.tiny.builtin import load_builtin

        assert {k: load_builtin().defaults[k] for k in tiny} == tiny
