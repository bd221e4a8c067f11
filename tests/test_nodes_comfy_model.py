"""The DiT as a ComfyUI-managed model, with stand-ins for ComfyUI (tests/comfy_fakes.py): comfy.ops
layers, the ModelPatcher, load_models_gpu before a level, the LoRA node through ComfyUI's patches."""

import logging

import pytest
import torch
from safetensors.torch import save_file

from comfy_fakes import FakeModelPatcher, FakeWanVAE, conditioning, install_fake_comfy
from nodes import NODE_CLASS_MAPPINGS as NODES
from nodes import model_loader
from nodes.comfy_model import dit_of
from tempomaster_core.loading import save_dit
from tempomaster_core.lora import LoraError
from tiny_models import make_tiny_dit

LOADER, LORA = NODES["TempoMasterLoadModel"], NODES["TempoMasterLoraLoader"]


@pytest.fixture
def files(tmp_path):
    tiny = make_tiny_dit(seed=0)
    dit = save_dit(tiny, tmp_path / "tiny.safetensors")
    gen = torch.Generator().manual_seed(3)
    up, down = torch.randn(128, 2, generator=gen) * 0.3, torch.randn(2, 64, generator=gen) * 0.3
    lora = {"diffusion_model.blocks.1.ffn.0.lora_up.weight": up, "diffusion_model.blocks.1.ffn.0.lora_down.weight": down,
            "diffusion_model.blocks.1.ffn.0.alpha": torch.tensor(1.0),
            "diffusion_model.img_emb.proj.1.lora_up.weight": torch.zeros(64, 2)}  # an I2V layer this DiT lacks
    lora_path = tmp_path / "style.safetensors"
    save_file(lora, str(lora_path))
    folders = {"diffusion_models": {"tiny.safetensors": str(dit)}, "loras": {"style.safetensors": str(lora_path)}}
    yield tiny, folders, (up, down)
    model_loader.clear_cache()


def blueprint(model):
    plan, _ = NODES["TempoMasterTreeScheduler"]().plan(5, "6→12→24 fps (4,2,1)", "", "auto", 24.0, 32, 32)
    pos, neg = conditioning(7, 24, seed=1, tokens=4), conditioning(7, 24, seed=2, tokens=3)
    level, images, _ = NODES["TempoMasterBlueprintSampler"]().sample(
        model, plan, pos, neg, FakeWanVAE(), seed=0, steps=2, shift=5.0, cfg=8.0, guidance="apg", tiled_vae=False)
    return images


def test_inside_comfyui_the_dit_is_a_model_patcher_built_from_comfy_ops(monkeypatch, files):
    tiny, folders, _ = files
    fake = install_fake_comfy(monkeypatch, folders=folders, managed=True)
    (model,) = LOADER().load("tiny.safetensors", "fp32", "sdpa")
    assert isinstance(model, FakeModelPatcher) and model.load_device == torch.device("cpu")
    dit = dit_of(model)
    assert dit.blocks[0].self_attn.q.ops_marker == "manual_cast" and dit.patch_embedding.ops_marker == "manual_cast"
    model_loader.clear_cache()
    (fp8,) = LOADER().load("tiny.safetensors", "fp8_e4m3fn", "sdpa")
    assert dit_of(fp8).blocks[0].ffn[0].ops_marker == "scaled_fp8" and dit_of(fp8).weight_dtype == torch.float8_e4m3fn
    assert fake.ops.calls == [{"fp8_matrix_mult": False, "scale_input": False, "override_dtype": None}]


def test_the_sampler_has_comfyui_load_the_patcher_with_the_levels_inference_memory(monkeypatch, files):
    tiny, folders, _ = files
    fake = install_fake_comfy(monkeypatch, folders=folders, managed=True)
    (model,) = LOADER().load("tiny.safetensors", "fp32", "sdpa")
    moved = []
    monkeypatch.setattr(type(dit_of(model)), "to", lambda self, *a, **k: moved.append(a) or self)
    images = blueprint(model)
    assert images.shape == (5, 32, 32, 3)
    ((patcher, needed),) = fake.mm.loads  # one load per level, by ComfyUI, with memory besides the weights
    assert patcher is model and 0 < needed
    assert moved == [(torch.device("cpu"),)]  # only the fake ComfyUI moved it (to its load device); the node did not
    assert fake.mm.freed == []  # the pack's own free_memory path is not used


def test_lora_node_adds_comfyui_patches_that_match_the_hand_merged_weights(monkeypatch, files, caplog):
    tiny, folders, (up, down) = files
    install_fake_comfy(monkeypatch, folders=folders, managed=True)
    (model,) = LOADER().load("tiny.safetensors", "fp32", "sdpa")
    with caplog.at_level(logging.WARNING, logger="TempoMaster"):
        (patched,) = LORA().load(model, "style.safetensors", 0.6)
    assert isinstance(patched, FakeModelPatcher) and patched is not model and model.patches == {}
    assert set(patched.patches) == {"blocks.1.ffn.0.weight"}
    warnings = [r.getMessage() for r in caplog.records if "match no layer" in r.getMessage()]
    assert len(warnings) == 1 and "img_emb.proj.1" in warnings[0]
    got = blueprint(patched)
    # the same run on a bare DiT with the LoRA merged by hand
    monkeypatch.undo()
    state = {k: v.clone() for k, v in tiny.state_dict().items()}
    state["blocks.1.ffn.0.weight"] += 0.6 * (1.0 / 2) * (up @ down)
    merged = make_tiny_dit(seed=0)
    merged.load_state_dict(state)
    assert torch.allclose(got, blueprint(merged), atol=1e-5)


def test_lora_node_outside_comfyui_patches_a_copy(monkeypatch, files):
    tiny, folders, (up, down) = files
    install_fake_comfy(monkeypatch, folders=folders)  # no model patcher: TEMPO_MODEL is the bare DiT
    (model,) = LOADER().load("tiny.safetensors", "fp32", "sdpa")
    before = model.blocks[1].ffn[0].weight.clone()
    (patched,) = LORA().load(model, "style.safetensors", 2.0)
    assert torch.equal(model.blocks[1].ffn[0].weight, before)
    assert torch.allclose(patched.blocks[1].ffn[0].weight, before + 2.0 * 0.5 * up @ down, atol=1e-6)
    assert LORA().load(model, "style.safetensors", 0.0)[0] is model
    with pytest.raises(FileNotFoundError, match="models/loras"):
        LORA().load(model, "missing.safetensors", 1.0)
    wrong = {"diffusion_model.blocks.0.self_attn.q.lora_up.weight": torch.zeros(5120, 2),
             "diffusion_model.blocks.0.self_attn.q.lora_down.weight": torch.zeros(2, 5120)}
    path = folders["loras"]["style.safetensors"]
    save_file(wrong, path)
    with pytest.raises(LoraError, match="14B"):
        LORA().load(model, "style.safetensors", 1.0)


def test_the_samplers_memory_estimate_prices_fp8_weights_as_stored(files):
    from nodes.sampler_nodes import estimate_level_bytes
    from tempomaster_core.cost import level_cost, levels_from_plan
    from tempomaster_core.loading import load_dit

    tiny, _, _ = files
    plan, _ = NODES["TempoMasterTreeScheduler"]().plan(5, "6→12→24 fps (4,2,1)", "", "auto", 24.0, 32, 32)
    fp8 = load_dit(tiny.state_dict(), dtype="fp8_e4m3fn", num_heads=2)
    want = level_cost(levels_from_plan(plan, steps=1)[1], tiny.config, height=32, width=32, cfg=8.0, dtype="fp8",
                      text_len=512, temporal_factor=plan.temporal_factor)
    assert estimate_level_bytes(fp8, plan, 1, 8.0, None) == want.peak_bytes
    assert estimate_level_bytes(fp8, plan, 1, 8.0, None) < estimate_level_bytes(tiny, plan, 1, 8.0, None)


def test_lora_strength_per_level_is_patched_per_level_and_checked_against_the_plan(monkeypatch, files):
    """'0.6, 0, 0': the patcher keeps the LoRA aside; each level's clone carries it at that level's
    strength; a list for another number of levels is refused by the sampler before ComfyUI loads anything."""
    from nodes.comfy_model import LEVEL_LORAS, for_level
    from tempomaster_core.validation import InputError

    tiny, folders, _ = files
    fake = install_fake_comfy(monkeypatch, folders=folders, managed=True)
    (model,) = LOADER().load("tiny.safetensors", "fp32", "sdpa")
    (styled,) = LORA().load(model, "style.safetensors", 1.0, strength_per_level="0.6, 0, 0")
    assert styled.patches == {} and [s for _, s, _ in getattr(styled, LEVEL_LORAS)] == [(0.6, 0.0, 0.0)]
    (both,) = LORA().load(styled, "style.safetensors", 0.5)  # a constant LoRA on top keeps the per-level one
    assert len(getattr(both, LEVEL_LORAS)) == 1 and [s for s, _ in both.patches["blocks.1.ffn.0.weight"]] == [0.5]
    strengths = [[s for s, _ in for_level(styled, i, 3).patches["blocks.1.ffn.0.weight"]] for i in range(3)]
    assert strengths == [[0.6], [0.0], [0.0]]
    (short,) = LORA().load(model, "style.safetensors", 1.0, strength_per_level="0.6, 0")
    with pytest.raises(InputError, match="2 entries but the plan has 3 levels"):
        blueprint(short)
    assert fake.mm.loads == []
    assert LORA().load(model, "style.safetensors", 1.0, strength_per_level="0, 0, 0")[0] is model
    with pytest.raises(ValueError, match="not a number"):
        LORA().load(model, "style.safetensors", 1.0, strength_per_level="0.6, strong")


def test_loader_options_fp8_matmul_and_torch_compile(monkeypatch, files):
    """fp8 matmul: refused before loading without fp8_e4m3fn weights or on a device without it, and
    ComfyUI's scaled fp8 layers get fp8_matrix_mult; torch_compile switches the cached model's blocks."""
    from tempomaster_core import compiling
    from tempomaster_core.compiling import is_compiled
    from tempomaster_core.validation import InputError

    tiny, folders, _ = files
    fake = install_fake_comfy(monkeypatch, folders=folders, managed=True)
    compiled_models = []  # a stand-in for torch.compile (importing dynamo alone takes a second here)
    monkeypatch.setattr(compiling, "compile_blocks", lambda model, log=None: compiled_models.append(model) or [
        setattr(block, "forward", block.forward) for block in model.blocks])
    with pytest.raises(InputError, match="needs fp8_e4m3fn weights"):
        LOADER().load("tiny.safetensors", "bf16", "sdpa", fp8_matmul=True)
    fake.mm.get_torch_device = lambda: torch.device("mps")
    with pytest.raises(InputError, match="not on mps"):
        LOADER().load("tiny.safetensors", "fp8_e4m3fn", "sdpa", fp8_matmul=True)
    assert model_loader.cached_models() == [] and fake.ops.calls == []  # nothing was loaded
    fake.mm.get_torch_device = lambda: torch.device("cpu")
    (fp8,) = LOADER().load("tiny.safetensors", "fp8_e4m3fn", "sdpa", fp8_matmul=True)
    assert fake.ops.calls == [{"fp8_matrix_mult": True, "scale_input": False, "override_dtype": None}]
    assert not is_compiled(dit_of(fp8))
    (compiled,) = LOADER().load("tiny.safetensors", "fp8_e4m3fn", "sdpa", fp8_matmul=True, torch_compile=True)
    assert dit_of(compiled) is dit_of(fp8) and is_compiled(dit_of(fp8))  # the cached model, not reloaded
    assert compiled_models == [dit_of(fp8)]
    LOADER().load("tiny.safetensors", "fp8_e4m3fn", "sdpa", fp8_matmul=True)
    assert not is_compiled(dit_of(fp8))
