"""LoRA on the TempoMaster DiT: every key layout against hand-merged weights, fp8 on the fly,
unknown keys, LoRAs for other models."""

import copy
import re
import warnings

import pytest
import torch
from safetensors.torch import save_file

from tempomaster_core.loading import load_dit
from tempomaster_core.lora import LoraError, apply_lora, lora_key_map
from tempomaster_core.model import TempoMasterDiT
from tiny_models import forward

RANK = 4
# Wan layer -> its diffusers WanTransformer3DModel name (typed here from diffusers' conversion table)
LAYERS = {
    "blocks.0.self_attn.q": "blocks.0.attn1.to_q",
    "blocks.1.cross_attn.o": "blocks.1.attn2.to_out.0",
    "blocks.1.ffn.0": "blocks.1.ffn.net.0.proj",
    "time_projection.1": "condition_embedder.time_proj",
    "text_embedding.2": "condition_embedder.text_embedder.linear_2",
    "head.head": "proj_out",
}


def factors(tiny, seed=5):
    """``{layer: (up [out, r], down [r, in])}`` random LoRA factors for :data:`LAYERS`."""
    gen = torch.Generator().manual_seed(seed)
    weights = tiny.state_dict()
    out = {}
    for layer in LAYERS:
        rows, cols = weights[layer + ".weight"].shape
        out[layer] = (torch.randn(rows, RANK, generator=gen) * 0.3, torch.randn(RANK, cols, generator=gen) * 0.3)
    return out


def lora_file(tiny, layout, alpha=None):
    """A LoRA state dict in ``layout`` for :data:`LAYERS` and its factors."""
    parts = factors(tiny)
    state = {}
    for layer, (up, down) in parts.items():
        if layout == "comfyui":  # ComfyUI / musubi-tuner
            key, up_name, down_name = f"diffusion_model.{layer}", "lora_up.weight", "lora_down.weight"
        elif layout == "kohya":
            key, up_name, down_name = "lora_unet_" + layer.replace(".", "_"), "lora_up.weight", "lora_down.weight"
        elif layout == "wan_fun":
            key, up_name, down_name = "lora_unet__" + layer.replace(".", "_"), "lora_up.weight", "lora_down.weight"
        elif layout == "diffusers":
            key, up_name, down_name = f"transformer.{LAYERS[layer]}", "lora_B.weight", "lora_A.weight"
        elif layout == "diffusers_kohya":
            key, up_name, down_name = "lora_unet_" + LAYERS[layer].replace(".", "_"), "lora_up.weight", "lora_down.weight"
        else:  # peft on Wan names, no prefix
            key, up_name, down_name = layer, "lora_B.weight", "lora_A.weight"
        state[f"{key}.{up_name}"] = up
        state[f"{key}.{down_name}"] = down
        if alpha is not None:
            state[f"{key}.alpha"] = torch.tensor(float(alpha))
    return state, parts


def hand_merged(tiny, parts, strength, alpha):
    """A copy of ``tiny`` with ``W + s * (alpha / r) * B @ A`` written into its weights."""
    scale = (alpha / RANK) if alpha is not None else 1.0
    state = {k: v.clone() for k, v in tiny.state_dict().items()}
    for layer, (up, down) in parts.items():
        state[layer + ".weight"] += strength * scale * (up @ down)
    model = TempoMasterDiT(tiny.config)
    model.load_state_dict(state)
    return model.eval()


@pytest.mark.parametrize("layout, alpha", [
    ("comfyui", 2.0), ("kohya", 8.0), ("wan_fun", 1.0), ("diffusers", None), ("diffusers_kohya", 2.0), ("peft", None),
])
def test_every_layout_merges_to_the_hand_computed_weights(tiny, inputs, layout, alpha):
    lora, parts = lora_file(tiny, layout, alpha)
    model = copy.deepcopy(tiny)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every key is known: no warning
        report = apply_lora(model, lora, strength=0.7)
    assert report.patched == tuple(sorted(layer + ".weight" for layer in LAYERS)) and report.unknown == ()
    expected = hand_merged(tiny, parts, 0.7, alpha)
    for key, value in expected.state_dict().items():
        assert torch.allclose(model.state_dict()[key], value, rtol=0, atol=1e-6), key
    if layout == "comfyui":  # the forward follows the weights
        assert torch.allclose(forward(model, inputs), forward(expected, inputs), rtol=1e-5, atol=1e-5)
        assert not torch.allclose(forward(model, inputs), forward(tiny, inputs), atol=1e-3)


def test_lora_from_a_file_at_strength_zero_changes_nothing(tmp_path, tiny, inputs):
    lora, _ = lora_file(tiny, "comfyui", 4.0)
    path = tmp_path / "style.safetensors"
    save_file(lora, str(path))
    model = copy.deepcopy(tiny)
    report = apply_lora(model, path, strength=0.0)
    assert report.name == "style.safetensors" and len(report.patched) == len(LAYERS)
    assert torch.equal(forward(model, inputs), forward(tiny, inputs))


def test_diff_and_bias_diff_keys_add_at_the_strength(tiny):
    gen = torch.Generator().manual_seed(2)
    sd = tiny.state_dict()
    lora = {
        "diffusion_model.blocks.1.norm3.diff": torch.randn(sd["blocks.1.norm3.weight"].shape, generator=gen),
        "diffusion_model.blocks.1.norm3.diff_b": torch.randn(sd["blocks.1.norm3.bias"].shape, generator=gen),
        "transformer.blocks.0.scale_shift_table.diff": torch.randn(sd["blocks.0.modulation"].shape, generator=gen),
        "transformer.blocks.0.attn1.norm_k.diff": torch.randn(sd["blocks.0.self_attn.norm_k.weight"].shape, generator=gen),
    }
    model = copy.deepcopy(tiny)
    apply_lora(model, lora, strength=0.5)
    got = model.state_dict()
    assert torch.allclose(got["blocks.1.norm3.weight"], sd["blocks.1.norm3.weight"] + 0.5 * lora["diffusion_model.blocks.1.norm3.diff"])
    assert torch.allclose(got["blocks.1.norm3.bias"], sd["blocks.1.norm3.bias"] + 0.5 * lora["diffusion_model.blocks.1.norm3.diff_b"])
    assert torch.allclose(got["blocks.0.modulation"], sd["blocks.0.modulation"] + 0.5 * lora["transformer.blocks.0.scale_shift_table.diff"])
    assert torch.allclose(got["blocks.0.self_attn.norm_k.weight"],
                          sd["blocks.0.self_attn.norm_k.weight"] + 0.5 * lora["transformer.blocks.0.attn1.norm_k.diff"])


def test_unknown_keys_are_listed_in_one_warning(tiny):
    lora, _ = lora_file(tiny, "comfyui", 2.0)
    extra = {
        "diffusion_model.img_emb.proj.1.lora_up.weight": torch.zeros(64, RANK),  # a Wan I2V layer
        "diffusion_model.img_emb.proj.1.lora_down.weight": torch.zeros(RANK, 64),
        "diffusion_model.blocks.7.ffn.0.lora_up.weight": torch.zeros(128, RANK),  # a block this DiT lacks
        "text_encoder.layer.0.alpha": torch.tensor(1.0),
    }
    model = copy.deepcopy(tiny)
    with pytest.warns(UserWarning) as caught:
        report = apply_lora(model, {**lora, **extra}, name="mixed.safetensors")
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "mixed.safetensors" in message and "4 keys match no layer" in message and "img_emb.proj.1" in message
    assert report.unknown == tuple(sorted(extra)) and len(report.patched) == len(LAYERS)


def test_loras_for_other_models_are_refused_before_any_weight_changes(tiny):
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    model = copy.deepcopy(tiny)
    lora, _ = lora_file(tiny, "comfyui", 2.0)
    wide = dict(lora)  # one layer of another width (the 1.3B's 1536 here)
    wide["diffusion_model.blocks.0.self_attn.q.lora_up.weight"] = torch.zeros(1536, RANK)
    wide["diffusion_model.blocks.0.self_attn.q.lora_down.weight"] = torch.zeros(RANK, 1536)
    with pytest.raises(LoraError, match=r"blocks.0.self_attn.q.weight.*\[1536 x 1536\].*1.3B.*another model"):
        apply_lora(model, wide)
    lone = {k: v for k, v in lora.items() if not k.endswith("head.head.lora_down.weight")}
    with pytest.raises(LoraError, match="only one of the two LoRA factors"):
        apply_lora(model, lone)
    with pytest.raises(LoraError, match="none of its 2 keys"):
        apply_lora(model, {"lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight": torch.zeros(4, 1),
                           "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": torch.zeros(1, 4)})
    with pytest.raises(LoraError, match="finite"):
        apply_lora(model, lora, strength=float("nan"))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())


def test_key_map_covers_the_layouts_and_is_comfyui_shaped(tiny):
    key_map = lora_key_map(tiny)
    assert key_map["diffusion_model.blocks.0.self_attn.q"] == "blocks.0.self_attn.q.weight"
    assert key_map["lora_unet_blocks_1_attn2_to_out_0"] == "blocks.1.cross_attn.o.weight"
    assert key_map["transformer.blocks.1.norm2"] == "blocks.1.norm3.weight"  # diffusers swaps norm2/norm3
    assert key_map["transformer.scale_shift_table"] == "head.modulation"
    assert set(key_map.values()) <= set(tiny.state_dict())
    assert not any(v.endswith(".bias") for v in key_map.values())


@pytest.mark.parametrize("name", ["fp8_e4m3fn", "fp8_e5m2"])
def test_fp8_weights_take_the_update_at_every_forward(tiny, inputs, name):
    lora, parts = lora_file(tiny, "kohya", 2.0)
    model = load_dit(tiny.state_dict(), dtype=name, compute_dtype="fp32", num_heads=2)
    stored = model.blocks[0].self_attn.q.weight.clone()
    report = apply_lora(model, lora, strength=0.8)
    assert "blocks.0.self_attn.q.weight" in report.on_the_fly and "head.head.weight" not in report.on_the_fly
    assert torch.equal(model.blocks[0].self_attn.q.weight.view(torch.uint8), stored.view(torch.uint8))
    assert len(model.blocks[0].self_attn.q.weight_functions) == 1
    # expected: the fp8 model's dequantised weights + the hand-computed update, as a float32 model
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith(".scale_weight"):
            continue
        scale = model.state_dict().get(key.replace(".weight", ".scale_weight"))
        state[key] = value.float() * scale if scale is not None and key.endswith(".weight") else value.float()
    for layer, (up, down) in parts.items():
        if re.match(r"blocks\.\d+\.(self_attn|cross_attn|ffn)", layer):
            state[layer + ".weight"] = state[layer + ".weight"] + 0.8 * (2.0 / RANK) * (up @ down)
    expected = TempoMasterDiT(tiny.config)
    expected.load_state_dict(state)
    assert torch.allclose(forward(model, inputs), forward(expected.eval(), inputs), rtol=1e-5, atol=1e-5)


def test_bf16_weights_are_merged_in_float32_then_rounded(tiny):
    lora, parts = lora_file(tiny, "comfyui", 2.0)
    model = load_dit(tiny.state_dict(), num_heads=2)
    weight = model.blocks[1].ffn[0].weight.float().clone()
    apply_lora(model, lora, strength=1.5)
    up, down = parts["blocks.1.ffn.0"]
    want = (weight + 1.5 * (2.0 / RANK) * (up @ down)).to(torch.bfloat16)
    assert torch.equal(model.blocks[1].ffn[0].weight, want)


def test_strength_per_level_switches_at_each_level_and_zero_is_the_original(tiny, inputs):
    """``[1.5, 0]``: level 0 runs the hand-merged weights (within float rounding of the per-forward
    update), level 1 the original weights exactly -- vectors (a modulation diff) included."""
    lora, parts = lora_file(tiny, "comfyui", 2.0)
    gen = torch.Generator().manual_seed(4)
    modulation = torch.randn(tiny.state_dict()["blocks.0.modulation"].shape, generator=gen)
    lora["transformer.blocks.0.scale_shift_table.diff"] = modulation
    model = copy.deepcopy(tiny)
    report = apply_lora(model, lora, strength=[1.5, 0.0])
    assert report.strength == (1.5, 0.0) and "head.head.weight" in report.on_the_fly
    model.start_level(0, 2)
    want = hand_merged(tiny, parts, 1.5, 2.0)
    with torch.no_grad():
        want.blocks[0].modulation += 1.5 * modulation
    assert torch.allclose(forward(model, inputs), forward(want, inputs), rtol=1e-5, atol=1e-5)
    model.start_level(1, 2)
    assert torch.equal(forward(model, inputs), forward(tiny, inputs))
    assert torch.equal(model.blocks[0].modulation, tiny.blocks[0].modulation)
    with pytest.raises(ValueError, match="3 levels"):
        model.start_level(0, 3)  # a list for another tree: refused when its first level starts
    with pytest.raises(LoraError, match="finite"):
        apply_lora(copy.deepcopy(tiny), lora, strength=[1.0, float("nan")])


def test_the_level_runners_start_each_level_on_the_model(tiny):
    """generate() tells the DiT each level as it starts, with the tree's level count (before its compute)."""
    from tempomaster_core.pipeline import generate
    from tempomaster_core.plan import TreePlan
    from toy_codec import ToyCodec

    model = copy.deepcopy(tiny)
    seen = []
    handle = model.register_level_hook(lambda index, levels: seen.append((index, levels)))
    gen = torch.Generator().manual_seed(0)
    text = torch.randn(1, 3, tiny.config.text_dim, generator=gen)
    plan = TreePlan(5, (2, 1), (1,), height=16, width=16)
    generate(model, ToyCodec(), text, None, plan, steps=[1, 1], shifts=[5.0, 3.0], cfg=1.0)
    assert seen == [(0, 2), (1, 2)]
    handle.remove()
    model.start_level(0, 2)
    assert seen == [(0, 2), (1, 2)]
