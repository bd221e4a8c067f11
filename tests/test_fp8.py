"""fp8 weight storage: bytes, the forward against an independently fake-quantised model, ComfyUI's
scaled fp8 checkpoints, the converter's fp8 output."""

import re
from types import SimpleNamespace

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from tempomaster_core.convert import convert_checkpoint
from tempomaster_core.cost import dit_weight_bytes
from tempomaster_core.loading import CheckpointError, load_dit, save_dit
from tempomaster_core.model import TempoMasterDiT
from tiny_models import forward

FP8 = {"fp8_e4m3fn": torch.float8_e4m3fn, "fp8_e5m2": torch.float8_e5m2}
FP8_MAX = {"fp8_e4m3fn": 448.0, "fp8_e5m2": 57344.0}
# the block linear layers (typed here, independently of tempomaster_core.fp8)
BLOCK_LINEAR = re.compile(r"blocks\.\d+\.(self_attn\.[qkvo]|cross_attn\.[qkvo]|ffn\.[02])\.weight")


def rel(a, b):
    return float((a - b).norm() / b.norm())


def fake_quantised(weight, name):
    """Round trip through fp8 with a per-tensor scale max|W| / max_fp8, in float32."""
    scale = weight.abs().max() / FP8_MAX[name]
    return (weight / scale).to(FP8[name]).float() * scale, scale


def nbytes(model, names=None):
    return sum(p.numel() * p.element_size() for n, p in model.named_parameters() if names is None or n in names)


@pytest.mark.parametrize("name", FP8)
def test_fp8_keeps_the_block_linear_weights_in_one_byte(tiny, name):
    bf16 = load_dit(tiny.state_dict(), num_heads=2)
    model = load_dit(tiny.state_dict(), dtype=name, num_heads=2)
    assert model.dtype == torch.bfloat16 and model.weight_dtype == FP8[name]
    fp8 = {n for n, p in model.named_parameters() if p.dtype == FP8[name]}
    assert fp8 == {n for n in tiny.state_dict() if BLOCK_LINEAR.fullmatch(n)} and len(fp8) == 10 * 2
    assert 2 * nbytes(model, fp8) == nbytes(bf16, fp8)  # those weights take half the bytes of bf16
    scales = {n: p for n, p in model.named_parameters() if n.endswith(".scale_weight")}
    assert {n.replace(".scale_weight", ".weight") for n in scales} == fp8
    assert all(p.dtype == torch.float32 and p.shape == () for p in scales.values())
    rest = {n for n, _ in model.named_parameters()} - fp8 - set(scales)
    assert {model.get_parameter(n).dtype for n in rest} == {torch.bfloat16}
    assert nbytes(model) == nbytes(bf16) - nbytes(model, fp8) + 4 * len(scales) == dit_weight_bytes(tiny.config, name)


@pytest.mark.parametrize("name", FP8)
def test_fp8_forward_equals_a_model_with_fake_quantised_weights(tiny, inputs, name):
    model = load_dit(tiny.state_dict(), dtype=name, compute_dtype="fp32", num_heads=2)
    state = {k: fake_quantised(v, name)[0] if BLOCK_LINEAR.fullmatch(k) else v for k, v in tiny.state_dict().items()}
    expected = TempoMasterDiT(tiny.config)
    expected.load_state_dict(state)
    out, want = forward(model, inputs), forward(expected.eval(), inputs)
    assert torch.allclose(out, want, rtol=1e-5, atol=1e-5)
    assert rel(out, forward(tiny, inputs)) > 1e-3  # the weights really are quantised


@pytest.mark.parametrize("name, tolerance", [("fp8_e4m3fn", 0.05), ("fp8_e5m2", 0.08)])
def test_fp8_with_bf16_compute_stays_close_to_the_bf16_model(tiny, inputs, name, tolerance):
    # measured on this tiny DiT: relative L2 error 0.028 (e4m3fn) and 0.045 (e5m2); bf16 vs fp32: 0.005
    bf16 = forward(load_dit(tiny.state_dict(), num_heads=2), inputs)
    fp8 = forward(load_dit(tiny.state_dict(), dtype=name, num_heads=2), inputs)
    assert fp8.dtype == torch.float32 and torch.isfinite(fp8).all()
    assert rel(fp8, bf16) < tolerance


def comfy_scaled_file(tiny, path, prefix=""):
    """A scaled fp8 checkpoint as ComfyUI writes one: every Linear weight in e4m3fn with its
    ``scale_weight``, an (unused) ``scale_input``, the ``scaled_fp8`` marker."""
    state, dequantised = {}, {}
    linear = {n for n, m in tiny.named_modules() if isinstance(m, torch.nn.Linear)}
    for key, value in tiny.state_dict().items():
        layer = key.rsplit(".", 1)[0]
        if layer in linear and key.endswith(".weight"):
            deq, scale = fake_quantised(value, "fp8_e4m3fn")
            state[prefix + key] = (value / scale).to(torch.float8_e4m3fn)
            state[prefix + layer + ".scale_weight"] = scale.reshape(())
            state[prefix + layer + ".scale_input"] = torch.ones(())
            dequantised[key] = deq
        else:
            state[prefix + key] = value.to(torch.bfloat16)
            dequantised[key] = state[prefix + key].float()
    state[prefix + "scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)
    save_file(state, str(path))
    return state, dequantised


@pytest.mark.parametrize("prefix", ["", "model.diffusion_model."])
def test_comfyui_scaled_fp8_checkpoint_loads_as_fp8_and_as_bf16(tmp_path, tiny, inputs, prefix):
    path = tmp_path / "tempo_fp8_e4m3fn_scaled.safetensors"
    state, dequantised = comfy_scaled_file(tiny, path, prefix)
    model = load_dit(path, dtype="fp8_e4m3fn", compute_dtype="fp32", num_heads=2)
    for name in ("blocks.1.ffn.0", "blocks.0.cross_attn.v"):  # the file's bytes and scale are kept
        assert torch.equal(model.get_parameter(name + ".weight").view(torch.uint8),
                           state[prefix + name + ".weight"].view(torch.uint8))
        assert model.get_parameter(name + ".scale_weight") == state[prefix + name + ".scale_weight"]
    # layers that stay in the compute dtype are dequantised (text embedding, time projection, head)
    assert model.time_projection[1].weight.dtype == torch.float32
    assert torch.equal(model.time_projection[1].weight, dequantised["time_projection.1.weight"])
    expected = TempoMasterDiT(tiny.config)
    expected.load_state_dict(dequantised)
    want = forward(expected.eval(), inputs)
    assert torch.allclose(forward(model, inputs), want, rtol=1e-5, atol=1e-5)
    full = load_dit(path, dtype="fp32", num_heads=2)  # dequantised to a float model: no scales left
    assert not any(n.endswith("scale_weight") for n in full.state_dict())
    assert torch.allclose(forward(full, inputs), want, rtol=1e-5, atol=1e-5)


def test_fp8_round_trips_through_save_dit_and_the_converter(tmp_path, tiny):
    src = save_dit(tiny, tmp_path / "tiny.safetensors")
    loaded = load_dit(src, dtype="fp8_e5m2")
    saved = save_dit(loaded, tmp_path / "saved_fp8.safetensors")
    converted = tmp_path / "converted_fp8.safetensors"
    convert_checkpoint(src, converted, dtype="fp8_e5m2")
    want = loaded.state_dict()
    for path in (saved, converted):
        with safe_open(str(path), "pt") as handle:
            assert handle.get_tensor("scaled_fp8").dtype == torch.float8_e5m2
            assert handle.get_slice("blocks.0.self_attn.q.weight").get_dtype() == "F8_E5M2"
            assert handle.get_slice("blocks.0.self_attn.q.scale_weight").get_dtype() == "F32"
            assert handle.get_slice("head.head.weight").get_dtype() == "BF16"
        again = load_dit(path, dtype="fp8_e5m2").state_dict()
        assert again.keys() == want.keys()
        assert all(torch.equal(again[k].reshape(-1).view(torch.uint8), want[k].reshape(-1).view(torch.uint8)) for k in want)
    # and back to bf16: the dequantised weights
    back = tmp_path / "back_bf16.safetensors"
    convert_checkpoint(converted, back, dtype="bf16")
    deq = load_dit(back).state_dict()["blocks.1.ffn.2.weight"].float()
    w = want["blocks.1.ffn.2.weight"].float() * want["blocks.1.ffn.2.scale_weight"]
    assert torch.equal(deq, w.to(torch.bfloat16).float())


def test_fp8_errors_name_the_problem(tmp_path, tiny):
    plain = SimpleNamespace(Linear=torch.nn.Linear, Conv3d=torch.nn.Conv3d, LayerNorm=torch.nn.LayerNorm)
    with pytest.raises(TypeError, match="weight scale"):
        load_dit(tiny.state_dict(), dtype="fp8_e4m3fn", num_heads=2, operations=plain)
    with pytest.raises(ValueError, match="MPS"):
        load_dit(tiny.state_dict(), dtype="fp8_e5m2", device="mps", num_heads=2)
    with pytest.raises(ValueError, match="compute_dtype"):
        load_dit(tiny.state_dict(), dtype="fp8_e4m3fn", compute_dtype="fp8_e5m2", num_heads=2)
    orphan = {**tiny.state_dict(), "blocks.0.ffn.7.scale_weight": torch.ones(())}
    with pytest.raises(CheckpointError, match="without their weights"):
        load_dit(orphan, num_heads=2)
    wide = {**tiny.state_dict(), "blocks.0.ffn.0.scale_weight": torch.ones(3)}
    with pytest.raises(CheckpointError, match="one scale per weight"):
        load_dit(wide, num_heads=2)


def test_per_tensor_scale_beats_a_plain_cast_for_wan_sized_weights():
    weight = torch.randn(512, 512, generator=torch.Generator().manual_seed(0)) * 0.013
    scaled, _ = fake_quantised(weight, "fp8_e4m3fn")
    plain = weight.to(torch.float8_e4m3fn).float()
    assert rel(plain, weight) > 1.5 * rel(scaled, weight)  # measured: 4.4 % vs 2.6 %


def test_fp8_matmul_is_the_product_of_the_quantised_input_and_weight(tiny):
    """With fp8 matmul each fp8 layer computes fq(x) @ fq(W)^T, x quantised per tensor with amax / 448
    (computed here independently), and the whole forward stays near the cast-to-bf16 fp8 model."""
    from tempomaster_core.fp8 import enable_fp8_matmul
    from tiny_models import tiny_inputs

    inputs = tiny_inputs(tiny.config, batch=1, frames=1, height=2, width=4)  # PyTorch's CPU fp8 kernel is slow
    model = load_dit(tiny.state_dict(), dtype="fp8_e4m3fn", compute_dtype="fp32", num_heads=2)
    cast = forward(model, inputs)
    assert enable_fp8_matmul(model, "cpu") == 10 * 2
    layer = model.blocks[1].ffn[0]
    x = torch.randn(2, 3, layer.in_features, generator=torch.Generator().manual_seed(0))
    x_scale = x.abs().max() / 448.0
    want = ((x / x_scale).to(torch.float8_e4m3fn).float() * x_scale) @ (
        layer.weight.float() * layer.scale_weight).T + layer.bias
    assert torch.allclose(layer(x), want, rtol=1e-4, atol=1e-4)
    assert rel(forward(model, inputs), cast) < 0.05  # the activations' quantisation on top of the weights'


def test_fp8_matmul_is_refused_before_loading_where_it_cannot_run(monkeypatch):
    from tempomaster_core.fp8 import require_fp8_matmul
    from tempomaster_core.validation import InputError

    with pytest.raises(InputError, match="needs fp8_e4m3fn weights"):
        require_fp8_matmul("cpu", "fp8_e5m2")
    with pytest.raises(InputError, match="not on mps"):
        require_fp8_matmul("mps", "fp8_e4m3fn")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 6))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA GeForce RTX 3090")
    with pytest.raises(InputError, match=r"RTX 3090 \(compute capability 8.6\) has no fp8 tensor cores"):
        require_fp8_matmul("cuda", torch.float8_e4m3fn)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 9))
    require_fp8_matmul("cuda", "fp8_e4m3fn")  # an Ada card: accepted
