"""The samplers' ``devices`` option (nodes/multi_device.py) with the ComfyUI fakes: two CPU replicas in
threads make the frames of one device; unknown or repeated devices are refused before any compute."""

import pytest
import torch

from comfy_fakes import FakeWanVAE, conditioning, install_fake_comfy
from nodes import NODE_CLASS_MAPPINGS as NODES
from tempomaster_core.validation import InputError


@pytest.fixture
def fake(monkeypatch):
    return install_fake_comfy(monkeypatch)


def _texts():
    return conditioning(7, 24, seed=1, tokens=4), conditioning(7, 24, seed=2, tokens=3)


def _chain(model, devices):
    """Blueprint (guided: its two passes split over the devices) and one refinement of 3 chunks."""
    plan, _ = NODES["TempoMasterTreeScheduler"]().plan(9, "6→24 fps (4,1)", "", "3", 24.0, 32, 32)
    vae = FakeWanVAE()
    pos, neg = _texts()
    common = dict(seed=1, steps=2, cfg=4.0, guidance="apg", tiled_vae=False, devices=devices)
    level, _, _ = NODES["TempoMasterBlueprintSampler"]().sample(model, plan, pos, neg, vae, shift=5.0, **common)
    final, images, _ = NODES["TempoMasterFrameRateRefiner"]().refine(model, level, pos, neg, vae, shift=3.0,
                                                                      max_parallel_chunks=0, **common)
    assert final.plan.levels[1].num_chunks == 3
    return level, final, images


def test_two_cpu_devices_give_the_frames_of_one(fake, tiny):
    blueprint, final, images = _chain(tiny, "")
    blueprint2, final2, images2 = _chain(tiny, "cpu, cpu")
    assert torch.equal(blueprint2.latents, blueprint.latents) and torch.equal(final2.latents, final.latents)
    assert torch.equal(images2, images)


@pytest.mark.parametrize("devices, message", [
    ("cuda:0,cuda:0", "lists cuda:0 twice"),
    ("cuda,cuda:0", "lists cuda:0 twice"),
    ("cpu,gpu7", "devices entry must be a torch device such as cpu, cuda or cuda:0, got 'gpu7'"),
    ("cpu,,cpu", "has an empty entry"),
])
def test_bad_device_lists_are_refused_before_any_compute(fake, tiny, devices, message):
    plan, _ = NODES["TempoMasterTreeScheduler"]().plan(5, "6→24 fps (4,1)", "", "auto", 24.0, 32, 32)
    vae = FakeWanVAE()
    pos, neg = _texts()
    with pytest.raises(InputError, match=message):
        NODES["TempoMasterBlueprintSampler"]().sample(tiny, plan, pos, neg, vae, seed=0, steps=1, shift=5.0, cfg=4.0,
                                                       guidance="apg", tiled_vae=False, devices=devices)
    assert vae.calls == []


def test_an_unavailable_gpu_is_refused(fake, tiny, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    plan, _ = NODES["TempoMasterTreeScheduler"]().plan(5, "6→24 fps (4,1)", "", "auto", 24.0, 32, 32)
    pos, neg = _texts()
    with pytest.raises(InputError, match=r"devices entry cuda:2: only 2 CUDA device\(s\)"):
        NODES["TempoMasterBlueprintSampler"]().sample(tiny, plan, pos, neg, FakeWanVAE(), seed=0, steps=1, shift=5.0,
                                                       cfg=4.0, guidance="apg", tiled_vae=False, devices="cuda:0,cuda:2")
