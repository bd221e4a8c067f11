"""Node functions end to end on a tiny DiT, a ComfyUI-shaped VAE and CONDITIONING-shaped inputs."""

import pytest
import torch

from comfy_fakes import FakeProgressBar, FakeWanVAE, Interrupted, conditioning, install_fake_comfy
from nodes import NODE_CLASS_MAPPINGS as NODES
from nodes import comfy_env
from nodes.condition_node import SIZE_FROM_IMAGE, SIZE_PLAN
from nodes.types import TempoCondition
from tiny_models import make_tiny_dit

PRESET = "6→12→24 fps (4,2,1)"
STEPS = 2


@pytest.fixture(scope="module")
def model():
    return make_tiny_dit(seed=0)


def _plan(frames=5, preset=PRESET, chunks="auto", width=32, height=32, custom=""):
    plan, _ = NODES["TempoMasterTreeScheduler"]().plan(frames, preset, custom, chunks, 24.0, width, height)
    return plan


def _texts():
    return conditioning(7, 24, seed=1, tokens=4), conditioning(7, 24, seed=2, tokens=3)


def _blueprint(model, plan, vae, condition=None, seed=0, cfg=8.0, guidance="apg"):
    pos, neg = _texts()
    return NODES["TempoMasterBlueprintSampler"]().sample(
        model, plan, pos, neg, vae, seed=seed, steps=STEPS, shift=5.0, cfg=cfg, guidance=guidance,
        tiled_vae=False, condition=condition)


def _refine(model, level, vae, max_parallel_chunks=0, seed=0, cfg=8.0):
    pos, neg = _texts()
    return NODES["TempoMasterFrameRateRefiner"]().refine(
        model, level, pos, neg, vae, seed=seed, steps=STEPS, shift=3.0, cfg=cfg, guidance="apg",
        max_parallel_chunks=max_parallel_chunks, tiled_vae=False)


def test_image_to_video_chain_returns_the_planned_frames_and_fps(model):
    plan = _plan()
    image = torch.rand(1, 40, 56, 3, generator=torch.Generator().manual_seed(3))
    (condition,) = NODES["TempoMasterMultiMaskCondition"]().condition(plan, "0", SIZE_PLAN, image)
    vae = FakeWanVAE()
    level, images, fps = _blueprint(model, plan, vae, condition)
    assert images.shape == (5, 32, 32, 3) and fps == 6.0
    assert images.min() >= 0 and images.max() <= 1 and images.dtype == torch.float32
    level, images, fps = _refine(model, level, vae)
    assert images.shape == (10, 32, 32, 3) and fps == 12.0 and level.level_index == 1
    level, images, fps = _refine(model, level, vae)
    assert images.shape == (20, 32, 32, 3) and fps == 24.0 and level.is_last
    # the ComfyUI VAE was used through its own API
    assert "encode" in vae.calls and "decode" in vae.calls


def test_refiner_past_the_last_level_is_a_clear_error(model):
    plan = _plan(preset="12→24 fps (2,1)", chunks="2")
    vae = FakeWanVAE()
    level, _, _ = _blueprint(model, plan, vae)
    level, images, fps = _refine(model, level, vae)
    assert images.shape[0] == 10 and fps == 24.0
    with pytest.raises(ValueError, match="only 2 levels"):
        _refine(model, level, vae)
    with pytest.raises(TypeError, match="TEMPO_LEVEL"):
        _refine(model, images, vae)


def test_text_to_video_and_first_last_frame_run(model):
    plan = _plan(frames=9, preset="6→24 fps (4,1)", chunks="2")
    vae = FakeWanVAE()
    (empty,) = NODES["TempoMasterMultiMaskCondition"]().condition(plan, "0", SIZE_PLAN, None)
    assert empty.is_empty
    level, images, fps = _blueprint(model, plan, vae, empty)
    assert images.shape == (9, 32, 32, 3) and fps == 6.0
    level_none, images_none, _ = _blueprint(model, plan, vae, None)
    torch.testing.assert_close(images_none, images)  # empty condition == no condition

    two = torch.rand(2, 32, 32, 3, generator=torch.Generator().manual_seed(4))
    (flf,) = NODES["TempoMasterMultiMaskCondition"]().condition(plan, "0,-1", SIZE_PLAN, two)
    assert sorted(flf.frames) == [0, 8]
    level, images, fps = _blueprint(model, plan, vae, flf)
    assert not torch.allclose(images, images_none)
    level, images, fps = _refine(model, level, vae)
    assert images.shape == (36, 32, 32, 3) and fps == 24.0


def test_max_parallel_chunks_gives_the_same_frames(model):
    plan = _plan(frames=5, preset="6→24 fps (4,1)", chunks="4")
    vae = FakeWanVAE()
    level, _, _ = _blueprint(model, plan, vae)
    _, all_at_once, _ = _refine(model, level, vae, max_parallel_chunks=0)
    _, one_by_one, _ = _refine(model, level, vae, max_parallel_chunks=1)
    assert all_at_once.shape == (20, 32, 32, 3)
    torch.testing.assert_close(one_by_one, all_at_once, atol=1e-5, rtol=1e-5)


def test_seed_changes_the_result_and_cfg_one_needs_no_negative(model):
    plan = _plan()
    vae = FakeWanVAE()
    _, a, _ = _blueprint(model, plan, vae, seed=1)
    _, b, _ = _blueprint(model, plan, vae, seed=1)
    _, c, _ = _blueprint(model, plan, vae, seed=2)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    pos, _ = _texts()
    level, images, fps = NODES["TempoMasterBlueprintSampler"]().sample(
        model, plan, pos, None, vae, seed=0, steps=STEPS, shift=5.0, cfg=1.0, guidance="cfg")
    assert images.shape == (5, 32, 32, 3)


def test_condition_size_from_first_image_changes_the_sampled_size(model):
    plan = _plan(frames=5, width=32, height=32)
    wide = torch.rand(1, 20, 80, 3)  # aspect 1:4, area 32*32 -> 16x64
    (condition,) = NODES["TempoMasterMultiMaskCondition"]().condition(plan, "0", SIZE_FROM_IMAGE, wide)
    assert (condition.height, condition.width) == (16, 64) and condition.size_from_image
    assert condition.frames[0].shape == (3, 16, 64)
    vae = FakeWanVAE()
    level, images, _ = _blueprint(model, plan, vae, condition)
    assert images.shape == (5, 16, 64, 3)
    assert (level.plan.height, level.plan.width) == (16, 64)
    _, images, _ = _refine(model, level, vae)  # the refiner follows the level's plan
    assert images.shape == (10, 16, 64, 3)


def test_boundary_mode_survives_the_size_from_the_condition_image(model):
    plan, _ = NODES["TempoMasterTreeScheduler"]().plan(5, PRESET, "", "auto", 24.0, 32, 32, boundary_frames="anchors")
    wide = torch.rand(1, 20, 80, 3)
    (condition,) = NODES["TempoMasterMultiMaskCondition"]().condition(plan, "0", SIZE_FROM_IMAGE, wide)
    level, images, _ = _blueprint(model, plan, FakeWanVAE(), condition)
    assert (level.plan.height, level.plan.width) == (16, 64) and level.plan.boundary == "anchors"
    assert level.plan.levels[1].chunk_conditions(0) == plan.levels[1].chunk_conditions(0)


def test_condition_must_match_the_plan(model):
    plan = _plan(frames=5)
    other = _plan(frames=9)
    (condition,) = NODES["TempoMasterMultiMaskCondition"]().condition(other, "0", SIZE_PLAN, torch.rand(1, 32, 32, 3))
    with pytest.raises(ValueError, match="9-frame blueprint"):
        _blueprint(model, plan, FakeWanVAE(), condition)
    with pytest.raises(ValueError, match="2 image\\(s\\) but 1 position"):
        NODES["TempoMasterMultiMaskCondition"]().condition(plan, "0", SIZE_PLAN, torch.rand(2, 32, 32, 3))
    with pytest.raises(ValueError, match="outside the blueprint"):
        NODES["TempoMasterMultiMaskCondition"]().condition(plan, "5", SIZE_PLAN, torch.rand(1, 32, 32, 3))
    stray = TempoCondition({0: torch.zeros(3, 16, 16)}, 16, 16, 5, False)
    with pytest.raises(ValueError, match="same TempoMaster Tree Scheduler"):
        _blueprint(model, plan, FakeWanVAE(), stray)


def test_wrong_text_encoder_is_reported(model):
    plan = _plan()
    bad = conditioning(7, 4096)
    with pytest.raises(ValueError, match="24"):
        NODES["TempoMasterBlueprintSampler"]().sample(model, plan, bad, bad, FakeWanVAE(), steps=1)


def test_inside_comfyui_progress_memory_and_interrupt(model, monkeypatch):
    cancelled = install_fake_comfy(monkeypatch, interrupt_after=2)
    plan = _plan()
    vae = FakeWanVAE()
    with pytest.raises(Interrupted):
        _blueprint(model, plan, vae)
    assert cancelled.mm.checks[0] == 2  # Cancel is honoured at the next step, not at the end of the level
    # the model stays usable: a new run (no interrupt pending) matches a run that was never interrupted
    fake = install_fake_comfy(monkeypatch)
    level, images, _ = _blueprint(model, plan, vae)
    assert fake.mm.checks[0] == STEPS  # one interrupt check per denoising step
    assert fake.mm.freed == []  # the compute device is the CPU: ComfyUI is not asked to unload anything
    bar = FakeProgressBar.instances[-1]
    assert bar.total == STEPS and [u[0] for u in bar.updates] == [1, 2]
    assert bar.updates[-1][2][0] == "JPEG"
    monkeypatch.undo()
    _, clean, _ = _blueprint(model, plan, vae)
    torch.testing.assert_close(images, clean)


def test_memory_estimate_and_free_memory_request(model, monkeypatch):
    from nodes.sampler_nodes import estimate_level_bytes

    plan = _plan(frames=9, preset="6→24 fps (4,1)", chunks="2")
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    full = estimate_level_bytes(model, plan, 1, 8.0, None)  # 2 chunks x (positive + negative)
    single = estimate_level_bytes(model, plan, 1, 1.0, 1)  # 1 chunk, one pass
    from tempomaster_core.cost import estimate_plan_cost

    # it is the figure the TreeScheduler shows for the same level (one cost model) ...
    shown = estimate_plan_cost(plan, model.config, cfg=8.0, dtype="fp32").levels[1]
    assert full == shown.peak_bytes
    # ... counting this model's real weights, and a smaller batch never asks for more
    assert shown.weight_bytes == weights
    assert weights < single <= full
    expected = full
    fake = install_fake_comfy(monkeypatch)
    comfy_env.free_memory(expected, torch.device("cuda"))
    assert fake.mm.freed == [(expected, torch.device("cuda"))] and fake.mm.emptied[0] == 1
    comfy_env.free_memory(expected, torch.device("cpu"))  # nothing to free on the CPU
    assert len(fake.mm.freed) == 1


def test_load_model_from_the_diffusion_models_folder(tmp_path, monkeypatch):
    from tempomaster_core.loading import save_dit
    from nodes import model_loader

    path = tmp_path / "tiny_tempomaster.safetensors"
    save_dit(make_tiny_dit(seed=5), path)
    install_fake_comfy(monkeypatch, folders={"diffusion_models": {"tiny_tempomaster.safetensors": str(path)}})
    model_loader.clear_cache()
    loader = NODES["TempoMasterLoadModel"]
    from nodes.builtin_nodes import tiny_available
    from tempomaster_core.tiny.builtin import BUILTIN_MODEL_NAME

    builtin = [BUILTIN_MODEL_NAME] if tiny_available() else []
    assert loader.INPUT_TYPES()["required"]["model_name"][0] == builtin + ["tiny_tempomaster.safetensors"]
    (m1,) = loader().load("tiny_tempomaster.safetensors", "fp32", "sdpa")
    (m2,) = loader().load("tiny_tempomaster.safetensors", "fp32", "sdpa")
    assert m1 is m2  # cached
    (m3,) = loader().load("tiny_tempomaster.safetensors", "bf16", "sdpa")
    assert m3 is not m1 and next(m3.parameters()).dtype == torch.bfloat16
    reference = make_tiny_dit(seed=5)
    torch.testing.assert_close(dict(m1.state_dict()), dict(reference.state_dict()))
    with pytest.raises(FileNotFoundError, match="is not in /comfy/models/diffusion_models.*Files there now: "
                                                "tiny_tempomaster.safetensors"):
        loader().load("missing.safetensors", "bf16", "sdpa")
    with pytest.raises(ValueError, match="weight_dtype"):
        loader().load("tiny_tempomaster.safetensors", "int8", "sdpa")
    model_loader.clear_cache()


def test_refiner_anchor_correction_input_reaches_the_core_and_takes_only_a_bool(model):
    plan = _plan(frames=9, preset="12→24 fps (2,1)", chunks="2")
    vae = FakeWanVAE()
    level, _, _ = _blueprint(model, plan, vae)
    pos, neg = _texts()
    refiner = NODES["TempoMasterFrameRateRefiner"]()
    runs = {}
    for value in (None, False, True):  # None: a workflow saved before the input existed
        out, _, _ = refiner.refine(model, level, pos, neg, vae, seed=0, steps=STEPS, shift=3.0, cfg=1.0,
                                   anchor_correction=value)
        runs[value] = out.frames
    assert torch.equal(runs[None], runs[False])  # the reference's behaviour
    gap = {v: float(runs[v][:, 0::2].mean(dim=(0, 2, 3)).sub(level.frames.mean(dim=(0, 2, 3))).abs().mean())
           for v in (False, True)}
    assert gap[True] < 0.5 * gap[False], gap  # the anchors' tint follows the level above
    with pytest.raises(ValueError, match="anchor_correction must be True or False"):
        refiner.refine(model, level, pos, neg, vae, seed=0, steps=STEPS, shift=3.0, cfg=1.0, anchor_correction="yes")
