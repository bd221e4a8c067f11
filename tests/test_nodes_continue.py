"""TempoMaster Continue node on a tiny DiT with a ComfyUI-shaped VAE and CONDITIONING-shaped inputs."""

import pytest
import torch

from comfy_fakes import FakeModelPatcher, FakeWanVAE, conditioning, install_fake_comfy
from nodes import NODE_CLASS_MAPPINGS as NODES
from nodes.continue_node import level_settings_from_widgets
from tiny_models import make_tiny_dit

PRESET = "6→12→24 fps (4,2,1)"


@pytest.fixture(scope="module")
def model():
    return make_tiny_dit(seed=0)


@pytest.fixture(scope="module")
def plan():
    plan, _ = NODES["TempoMasterTreeScheduler"]().plan(5, PRESET, "", "auto", 24.0, 32, 32)
    return plan


def extend(model, plan, images, **kw):
    args = dict(fps=24.0, context_seconds=8 / 24, new_frames=12, seed=3, steps="2", shift="5,3,3", cfg="4,1,1",
                guidance="apg", max_parallel_chunks=0, tiled_vae=False)
    args.update(kw)
    return NODES["TempoMasterContinue"]().extend(model, plan, images, positive=conditioning(7, 24, seed=1, tokens=4),
                                                 negative=conditioning(7, 24, seed=2), vae=FakeWanVAE(), **args)


def test_continue_returns_the_joined_video_the_new_part_and_fps(model, plan):
    images = torch.rand(12, 32, 32, 3, generator=torch.Generator().manual_seed(0))
    joined, new, fps = extend(model, plan, images)
    assert joined.shape == (24, 32, 32, 3) and new.shape == (12, 32, 32, 3) and fps == 24.0
    assert joined.dtype == torch.float32 and 0 <= float(joined.min()) and float(joined.max()) <= 1
    assert (joined[:12] - images).abs().max() <= 0.5 / 255 + 1e-6  # the frames so far, kept (8-bit)
    assert torch.equal(joined[12:], new)
    again, _, _ = extend(model, plan, joined, anti_drift="none")  # chains: joined -> the next Continue's images
    assert again.shape[0] == 36 and torch.equal(again[:24], joined)
    matched, new_matched, _ = extend(model, plan, joined, anti_drift="anchor+colour_match")
    assert torch.equal(matched[:24], joined) and not torch.equal(new_matched, again[24:])
    first = (joined[:20] * 255).round().reshape(-1, 3)  # the first segment.frames (8 + 12) frames: the reference
    def off(frames):  # largest per-channel mean difference to the reference, 8-bit levels
        return float(((frames * 255).reshape(-1, 3).mean(0) - first.mean(0)).abs().max())

    assert off(new_matched) < 2 and off(new_matched) < off(again[24:]) / 3  # (2: clipping to 0..255)
    _, new_faded, _ = extend(model, plan, images, join_fade=2 / 24)  # the join error faded out over 2 frames
    assert torch.equal(new_faded[2:], new[2:]) and not torch.equal(new_faded[:2], new[:2])
    step = lambda frames: float((frames[0] - images[-1]).abs().mean())  # noqa: E731 (the jump at the join)
    assert step(new_faded) < step(new) / 2
    _, new_off, _ = extend(model, plan, images, replace_known_latents=False)  # the input left out = off
    _, new_replaced, _ = extend(model, plan, images, replace_known_latents=True)  # context latent 1 (frames 1-4)
    assert torch.equal(new_off, new) and not torch.equal(new_replaced, new)


def test_inside_comfyui_continue_runs_the_patchers_dit_and_has_comfyui_load_it(model, plan, monkeypatch):
    """The loader's TEMPO_MODEL is a ModelPatcher inside ComfyUI: the core gets its DiT (the same frames as
    the bare DiT), ComfyUI loads the patcher; per-level LoRA strengths are refused before compute."""
    from nodes.comfy_model import LEVEL_LORAS

    fake = install_fake_comfy(monkeypatch, managed=True)
    images = torch.rand(12, 32, 32, 3, generator=torch.Generator().manual_seed(0))
    bare, _, _ = extend(model, plan, images)
    patcher = FakeModelPatcher(model, torch.device("cpu"), torch.device("cpu"))
    joined, _, _ = extend(patcher, plan, images)
    assert torch.equal(joined, bare) and [p for p, _ in fake.mm.loads] == [patcher] * plan.num_levels
    setattr(patcher, LEVEL_LORAS, ((None, (1.0, 0.5, 0.0), "style.safetensors"),))
    with pytest.raises(ValueError, match="one strength for every level"):
        extend(patcher, plan, images)


def test_continue_refuses_bad_inputs_before_compute(plan):
    model = make_tiny_dit(seed=0)
    calls = []
    model.register_forward_hook(lambda *a: calls.append(1))
    images = torch.rand(12, 32, 32, 3)
    for kw, match in (({"fps": 30.0}, "images is 30 fps but the segments are made at 24 fps"),
                      ({"context_seconds": 1.0}, "context is 24 frames .* images has only 12"),
                      ({"steps": "2,2"}, "steps has 2 entries but the plan has 3 levels"),
                      ({"shift": "5,x"}, "shift: 'x' is not a number"),
                      ({"new_frames": 0}, "new_frames must be >= 1"),
                      ({"context_seconds": 4 / 24, "anti_drift": "anchor"}, "covers only 1 blueprint frame"),
                      ({"anti_drift": "first"}, "anti_drift must be one of"),
                      ({"join_fade": -1.0}, "join_fade must be >= 0")):
        with pytest.raises(ValueError, match=match):
            extend(model, plan, images, **kw)
    with pytest.raises(ValueError, match="is 16x16 but the segments are planned at 32x32"):
        extend(model, plan, torch.rand(12, 16, 16, 3))
    with pytest.raises(TypeError, match="TEMPO_PLAN"):
        extend(model, "plan", images)
    assert calls == []


def test_empty_widgets_take_the_reference_schedule(plan):
    levels = level_settings_from_widgets(plan, steps="", shift="", cfg="", guidance="cfg", seed=1, max_batch=None)
    assert [(s.steps, s.shift, s.cfg, s.guidance) for s in levels] == [(50, 5.0, 8.0, "cfg"), (32, 3.0, 8.0, "cfg"),
                                                                       (32, 3.0, 8.0, "cfg")]


def test_scheduler_warns_on_untrained_intervals_and_points_to_continuation():
    from nodes.scheduler_node import build_schedule
    from nodes.scheduler_schema import AUTO_LEVELS
    from tempomaster_core.autoplan import interval_breaches
    from tempomaster_core.plan import TreePlan

    schedule = build_schedule(109, AUTO_LEVELS, "", "auto", 24.0, 832, 480, length_mode="seconds", length=62.5)
    assert schedule.plan.frame_intervals == (16, 8, 4, 2, 1)
    untrained = [w for w in schedule.warnings if "coarser than the model was trained on" in w]
    assert [w.split(" (")[0] for w in untrained] == ["blueprint at 1.5 fps", "level 1 at 3 fps"]
    assert all("TempoMaster Continue" in w and "--seconds" in w for w in untrained)
    assert interval_breaches(TreePlan(109, (4, 2, 1), height=480, width=832)) == ()
    assert [b.level for b in interval_breaches(TreePlan(25, (8, 4, 2, 1), height=64, width=64))] == [0]
