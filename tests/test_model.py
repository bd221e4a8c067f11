"""The TempoMaster DiT: forward contract, architecture vs a naive float64 version, invariances."""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from rope_complex128 import complex128_rope
from tempomaster_core import attention as attention_mod
from tempomaster_core.config import DiTConfig
from tempomaster_core.flops import dit_flops_breakdown, dit_forward_flops, video_tokens
from tempomaster_core.model import TempoMasterDiT
from tiny_models import make_tiny_dit, tiny_config, tiny_inputs


@pytest.fixture(scope="module")
def model():
    return make_tiny_dit(seed=0)


def run(model, **inputs):
    with torch.no_grad():
        return model(**inputs)


# ---------------------------------------------------------------------------------------------
# naive float64 Wan DiT written from the architecture description, for an independent expectation


def naive_forward(sd, cfg, x, timestep, context, y, temporal_positions):
    """Wan 2.1 DiT forward in float64 with explicit loops for RoPE and explicit softmax attention."""
    sd = {k: v.double() for k, v in sd.items()}
    d, n = cfg.dim, cfg.num_heads
    hd = d // n

    def lin(v, name):
        return v @ sd[name + ".weight"].T + sd[name + ".bias"]

    def rms(v, name):
        return v / torch.sqrt((v * v).mean(-1, keepdim=True) + cfg.eps) * sd[name + ".weight"]

    def ln(v):
        mu = v.mean(-1, keepdim=True)
        var = ((v - mu) ** 2).mean(-1, keepdim=True)
        return (v - mu) / torch.sqrt(var + cfg.eps)

    def attend(q, k, v):  # [B, S, d] each, split into heads
        b, sq, sk = q.shape[0], q.shape[1], k.shape[1]
        q = q.view(b, sq, n, hd)
        k = k.view(b, sk, n, hd)
        v = v.view(b, sk, n, hd)
        scores = torch.einsum("bqnd,bknd->bnqk", q, k) / math.sqrt(hd)
        return torch.einsum("bnqk,bknd->bqnd", scores.softmax(-1), v).reshape(b, sq, d)

    xin = torch.cat([x, y], 1).double()
    z = F.conv3d(xin, sd["patch_embedding.weight"], sd["patch_embedding.bias"], stride=cfg.patch_size)
    b, _, f, gh, gw = z.shape
    tokens = z.flatten(2).transpose(1, 2)  # (f h w) order

    half = cfg.freq_dim // 2
    freqs = 10000.0 ** (-torch.arange(half, dtype=torch.float64) / half)
    ang = timestep.double()[:, None] * freqs
    sinus = torch.cat([ang.cos(), ang.sin()], 1)
    t = lin(F.silu(lin(sinus, "time_embedding.0")), "time_embedding.2")
    t_mod = lin(F.silu(t), "time_projection.1").view(b, 6, d)
    ctx = lin(F.gelu(lin(context.double(), "text_embedding.0"), approximate="tanh"), "text_embedding.2")

    d_h = hd // 3
    d_t = hd - 2 * d_h
    rot = torch.empty(b, f * gh * gw, hd // 2, dtype=torch.complex128)
    for bi in range(b):
        for fi in range(f):
            for hi in range(gh):
                for wi in range(gw):
                    angles = [float(temporal_positions[bi, fi]) * 10000.0 ** (-2 * p / d_t) for p in range(d_t // 2)]
                    angles += [hi * 10000.0 ** (-2 * p / d_h) for p in range(d_h // 2)]
                    angles += [wi * 10000.0 ** (-2 * p / d_h) for p in range(d_h // 2)]
                    rot[bi, (fi * gh + hi) * gw + wi] = torch.polar(
                        torch.ones(hd // 2, dtype=torch.float64), torch.tensor(angles, dtype=torch.float64)
                    )

    def rope(v):  # [B, S, d]
        pairs = torch.view_as_complex(v.view(b, v.shape[1], n, hd // 2, 2).contiguous())
        return torch.view_as_real(pairs * rot[:, :, None, :]).reshape(b, v.shape[1], d)

    for i in range(cfg.num_layers):
        p = f"blocks.{i}."
        shift1, scale1, gate1, shift2, scale2, gate2 = (sd[p + "modulation"] + t_mod).unbind(1)
        h = ln(tokens) * (1 + scale1[:, None]) + shift1[:, None]
        q = rope(rms(lin(h, p + "self_attn.q"), p + "self_attn.norm_q"))
        k = rope(rms(lin(h, p + "self_attn.k"), p + "self_attn.norm_k"))
        tokens = tokens + gate1[:, None] * lin(attend(q, k, lin(h, p + "self_attn.v")), p + "self_attn.o")
        h = ln(tokens) * sd[p + "norm3.weight"] + sd[p + "norm3.bias"]
        q = rms(lin(h, p + "cross_attn.q"), p + "cross_attn.norm_q")
        k = rms(lin(ctx, p + "cross_attn.k"), p + "cross_attn.norm_k")
        tokens = tokens + lin(attend(q, k, lin(ctx, p + "cross_attn.v")), p + "cross_attn.o")
        h = ln(tokens) * (1 + scale2[:, None]) + shift2[:, None]
        tokens = tokens + gate2[:, None] * lin(F.gelu(lin(h, p + "ffn.0"), approximate="tanh"), p + "ffn.2")
    shift, scale = (sd["head.modulation"] + t[:, None]).unbind(1)
    out = lin(ln(tokens) * (1 + scale[:, None]) + shift[:, None], "head.head")  # [B, S, (p q r c)]
    pt, ph, pw = cfg.patch_size
    c = cfg.out_dim
    out = out.view(b, f, gh, gw, pt, ph, pw, c).permute(0, 7, 1, 4, 2, 5, 3, 6)
    return out.reshape(b, c, f * pt, gh * ph, gw * pw)


def test_forward_matches_naive_float64(model):
    inputs = tiny_inputs(model.config, batch=2, frames=3, height=4, width=6, interval=2.5)
    out = run(model, **inputs)
    assert out.shape == (2, 16, 3, 4, 6) and out.dtype == torch.float32
    want = naive_forward(model.state_dict(), model.config, **inputs)
    rel = (out.double() - want).norm() / want.norm()
    assert rel < 1e-5, rel


def test_float32_rope_forward_matches_the_complex128_formulation(model):
    inputs = tiny_inputs(model.config, interval=4)
    fast = run(model, **inputs)
    with complex128_rope():
        slow = run(model, **inputs)
    assert torch.allclose(fast, slow, rtol=1e-5, atol=1e-5)
    assert torch.equal(run(model, **inputs), fast)  # the model's own RoPE is back


# ---------------------------------------------------------------------------------------------
# positions, batching, dtype


def test_temporal_positions_change_output_but_a_common_shift_does_not(model):
    inputs = tiny_inputs(model.config, batch=1, interval=1)
    base = run(model, **inputs)
    # different frame interval (frame rate) -> different relative distances -> different output
    faster = run(model, **{**inputs, "temporal_positions": inputs["temporal_positions"] * 2})
    assert (faster - base).abs().max() > 1e-3
    # RoPE is relative: shifting every frame of the item by the same amount leaves attention unchanged
    shifted = run(model, **{**inputs, "temporal_positions": inputs["temporal_positions"] + 1000.5})
    assert torch.allclose(shifted, base, rtol=1e-4, atol=1e-4)


def test_batch_independence(model):
    one = tiny_inputs(model.config, batch=1, seed=3)
    other = tiny_inputs(model.config, batch=1, seed=4)
    alone = run(model, **one)
    pair = {k: torch.cat([one[k], other[k]]) for k in one}
    both = run(model, **pair)
    assert torch.allclose(both[0:1], alone, rtol=1e-5, atol=1e-5)
    # two identical items with equal positions give equal outputs
    twin = {k: torch.cat([one[k], one[k]]) for k in one}
    out = run(model, **twin)
    assert torch.allclose(out[0], out[1], rtol=1e-6, atol=1e-6)


def test_shared_context_and_timestep_forms(model):
    inputs = tiny_inputs(model.config, batch=2)
    ctx1 = inputs["context"][:1]
    expanded = run(model, **{**inputs, "context": ctx1.expand(2, -1, -1), "timestep": torch.full((2,), 700.0)})
    shared = run(model, **{**inputs, "context": ctx1, "timestep": torch.tensor([700.0])})
    scalar = run(model, **{**inputs, "context": ctx1, "timestep": 700.0})
    assert torch.allclose(shared, expanded, rtol=1e-6, atol=1e-6)
    assert torch.equal(shared, scalar)
    # a bf16 timestep is used with its bf16 value (700.0 is exact in bf16; 701 rounds to 700)
    bf16 = run(model, **{**inputs, "context": ctx1, "timestep": torch.tensor([701.0]).bfloat16()})
    assert torch.equal(bf16, shared)
    one_d = run(model, **{**inputs, "temporal_positions": inputs["temporal_positions"][0]})
    both_first = run(model, **{**inputs, "temporal_positions": inputs["temporal_positions"][:1].expand(2, -1)})
    assert torch.equal(one_d, both_first)


def test_output_depends_on_every_input(model):
    inputs = tiny_inputs(model.config, batch=1)
    base = run(model, **inputs)
    y = inputs["y"].clone()
    y[:, 0] = 1 - y[:, 0]  # flip one mask channel
    y_cond = inputs["y"].clone()
    y_cond[:, 5] += 1.0  # perturb one condition-latent channel
    variants = {
        "x": {"x": inputs["x"] + 0.1},
        "mask": {"y": y},
        "condition": {"y": y_cond},
        "context": {"context": inputs["context"] * 1.1},
        "timestep": {"timestep": inputs["timestep"] * 0.5},
    }
    for name, change in variants.items():
        assert (run(model, **{**inputs, **change}) - base).abs().max() > 1e-4, name


def test_bf16_matches_fp32_within_bf16_tolerance():
    fp32 = make_tiny_dit(seed=2)
    bf16 = make_tiny_dit(seed=2, dtype=torch.bfloat16)
    inputs = tiny_inputs(fp32.config, seed=5)
    a = run(fp32, **inputs)
    b = run(bf16, **inputs)
    assert b.dtype == torch.float32
    rel = (a - b).norm() / a.norm()
    assert 0 < rel < 3e-2, rel


def test_custom_latent_channels():
    model = make_tiny_dit(in_dim=20, out_dim=8, num_layers=1)
    assert model.config.mask_channels == 4
    inputs = tiny_inputs(model.config, batch=1)
    assert run(model, **inputs).shape == (1, 8, 3, 4, 6)


def test_gradient_checkpointing_gives_same_gradients():
    inputs = tiny_inputs(tiny_config(), batch=1)
    grads = []
    for use_ckpt in (False, True):
        model = make_tiny_dit(seed=6).train()
        model.gradient_checkpointing = use_ckpt
        model(**inputs).square().mean().backward()
        grads.append(model.blocks[0].self_attn.q.weight.grad.clone())
    assert grads[0].abs().max() > 0
    assert torch.allclose(grads[0], grads[1], rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------------------------------------
# errors and backends


def test_bad_inputs_raise_clear_errors(model):
    inputs = tiny_inputs(model.config, batch=1, height=4, width=6)
    with pytest.raises(ValueError, match="divisible by the patch size"):
        run(model, **tiny_inputs(model.config, batch=1, height=5, width=6))
    with pytest.raises(ValueError, match="multi-mask condition"):
        run(model, **{**inputs, "y": inputs["y"][:, :16]})
    with pytest.raises(ValueError, match="noisy latent"):
        run(model, **{**inputs, "x": inputs["x"][:, :8]})
    with pytest.raises(ValueError, match="context"):
        run(model, **{**inputs, "context": inputs["context"][..., :5]})
    with pytest.raises(ValueError, match="temporal_positions"):
        run(model, **{**inputs, "temporal_positions": torch.zeros(1, 5)})
    with pytest.raises(ValueError, match="timestep"):
        run(model, **{**inputs, "timestep": torch.zeros(3)})


def test_config_errors():
    with pytest.raises(ValueError, match="image branch"):
        TempoMasterDiT(tiny_config(has_image_input=True))
    with pytest.raises(ValueError, match="head_dim"):
        TempoMasterDiT(tiny_config(dim=32, num_heads=2))  # head_dim 16 cannot be split by Wan's RoPE


def test_unavailable_backend_falls_back_with_one_warning(model):
    inputs = tiny_inputs(model.config, batch=1)
    expected = run(model, **inputs)
    with pytest.raises(ValueError, match="attention must be one of 'sdpa'"):
        model.set_attention_backend("xformers")
    attention_mod._warned.clear()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for name in ("flash_attn", "flash_attn", "sageattention", "sageattention"):
                used = model.set_attention_backend(name)
                out = run(model, **inputs)
                assert torch.equal(out, expected)  # CPU fp32: SDPA either way
        runtime = [w for w in caught if issubclass(w.category, RuntimeWarning)]
        assert len(runtime) == 2  # one per backend, not per call
        assert all("falling back to torch SDPA" in str(w.message) for w in runtime)
        assert used in ("sdpa", "sageattention")
    finally:
        model.set_attention_backend("sdpa")


def test_meta_construction_has_no_buffers():
    with torch.device("meta"):
        model = TempoMasterDiT(DiTConfig())  # the 14B shape, no memory
    assert list(model.buffers()) == []
    assert sum(p.numel() for p in model.parameters()) > 14e9


# ---------------------------------------------------------------------------------------------
# FLOP count


def test_flops_match_torch_flop_counter(model):
    inputs = tiny_inputs(model.config, batch=2, frames=3, height=4, width=6, text_len=5)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(**inputs)
    tokens = video_tokens(model.config, 3, 4, 6)
    assert tokens == 18
    parts = dit_flops_breakdown(model.config, tokens, text_len=5, batch=2)
    # torch's counter sees every linear layer; it does not count CPU SDPA kernels
    assert parts["total"] - parts["self_attn_matmul"] - parts["cross_attn_matmul"] == counter.get_total_flops()
    # attention matmuls by hand: QK^T and PV, 2 FLOPs per multiply-add, 2 layers, batch 2, dim 64
    assert parts["self_attn_matmul"] == 2 * 2 * (2 * 18 * 18 * 64) * 2
    assert parts["cross_attn_matmul"] == 2 * 2 * (2 * 18 * 5 * 64) * 2


def test_flops_14b_match_design_formula():
    cfg = DiTConfig()
    for tokens in (1560, 43680):
        want = 2.433e10 * tokens + 819200 * tokens**2 + 2.2e12  # DESIGN.md, 14B, 512 text tokens
        assert abs(dit_forward_flops(cfg, tokens) - want) / want < 2e-3
    parts = dit_flops_breakdown(cfg, 1560, batch=3)
    assert parts["total"] == sum(v for k, v in parts.items() if k != "total")
    assert parts["total"] == 3 * dit_forward_flops(cfg, 1560)


def test_benchmark_script_runs_and_reports(capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_dit.py"
    spec = importlib.util.spec_from_file_location("bench_dit", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.main(["--dim", "48", "--heads", "2", "--ffn", "64", "--layers", "1", "--text-dim", "8",
                         "--text-len", "4", "--frames", "2", "--height", "4", "--width", "4", "--repeats", "1", "--warmup", "0"])
    out = capsys.readouterr().out
    assert "TFLOP/s" in out and "complex128" in out and "RoPE only" in out
    assert result["tokens_per_item"] == 2 * 2 * 2
    assert result["median_s"] > 0 and result["complex_over_float32"] > 0
