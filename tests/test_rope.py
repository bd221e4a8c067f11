"""Frame-rate-aware RoPE against an independent float64 complex computation."""

import math

import pytest
import torch

from rope_complex128 import apply_rope_complex128, rope_complex128_table
from tempomaster_core.rope import apply_rope, rope_axis_dims, rope_cos_sin, rope_rotation


def expected_rotation(x, positions, grid, head_dim, theta=10000.0):
    """Wan 3-D RoPE written out element by element in float64 complex arithmetic.

    x: [B, S, N, D]; positions: [B, F] (python floats are fine). Token s = (f*H + h)*W + w.
    Pair p < d_t/2 uses the temporal position with frequency theta^(-2p/d_t); the next
    d_h/2 pairs use the row index, the last d_w/2 the column index.
    """
    frames, height, width = grid
    d_h = head_dim // 3
    d_t = head_dim - 2 * d_h
    batch, tokens, heads, _ = x.shape
    out = torch.empty(batch, tokens, heads, head_dim, dtype=torch.float64)
    xd = x.to(torch.float64)
    for b in range(batch):
        for f in range(frames):
            for h in range(height):
                for w in range(width):
                    s = (f * height + h) * width + w
                    for p in range(head_dim // 2):
                        if p < d_t // 2:
                            angle = float(positions[b][f]) * theta ** (-(2 * p) / d_t)
                        elif p < d_t // 2 + d_h // 2:
                            q = p - d_t // 2
                            angle = h * theta ** (-(2 * q) / d_h)
                        else:
                            q = p - d_t // 2 - d_h // 2
                            angle = w * theta ** (-(2 * q) / d_h)
                        rot = complex(math.cos(angle), math.sin(angle))
                        for n in range(heads):
                            z = complex(xd[b, s, n, 2 * p].item(), xd[b, s, n, 2 * p + 1].item()) * rot
                            out[b, s, n, 2 * p] = z.real
                            out[b, s, n, 2 * p + 1] = z.imag
    return out


def rel_err(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def test_axis_split_matches_wan():
    assert rope_axis_dims(128) == (44, 42, 42)  # 22 + 21 + 21 = 64 pairs
    assert rope_axis_dims(32) == (12, 10, 10)
    assert rope_axis_dims(24) == (8, 8, 8)
    for bad in (16, 64, 7):  # 16//3 = 5 and 64//3 = 21 are odd: Wan's split would not cover the head
        with pytest.raises(ValueError, match="head_dim"):
            rope_axis_dims(bad)


@pytest.mark.parametrize(
    "positions",
    [
        [[0, 1, 2], [3, 4, 5]],  # integers (reference chunk layout, interval 1)
        [[0.0, 0.5, 1.25], [2.75, 3.5, 4.125]],  # fractional
        [[1024.0, 5000.0, 70001.5], [123456.75, 200000.0, 999999.0]],  # beyond the reference's 1024 table
    ],
)
def test_rope_matches_float64_complex(positions):
    grid = (3, 2, 3)
    head_dim, heads = 32, 2
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 18, heads, head_dim, generator=gen)
    pos = torch.tensor(positions, dtype=torch.float64)
    cos, sin = rope_cos_sin(pos, grid, head_dim)
    assert cos.dtype == torch.float32 and cos.shape == (2, 18, head_dim // 2)
    rotation = rope_rotation(pos, grid, head_dim)
    assert rotation.dtype == torch.complex64
    assert torch.equal(rotation.real, cos) and torch.equal(rotation.imag, sin)
    got = apply_rope(x, rotation)
    assert got.dtype == torch.float32
    want = expected_rotation(x, positions, grid, head_dim)
    assert rel_err(got, want) <= 1e-5
    # the reference's complex128 formulation (tests/rope_complex128.py, also timed by the benchmark) agrees too
    ref_style = apply_rope_complex128(x.double(), rope_complex128_table(pos, grid, head_dim))
    assert rel_err(ref_style, want) <= 1e-12


def test_rope_head_dim_128_and_bf16_output():
    grid = (2, 2, 2)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 8, 1, 128, generator=gen)
    positions = [[7.5, 1500.0]]
    rotation = rope_rotation(torch.tensor(positions), grid, 128)
    want = expected_rotation(x, positions, grid, 128)
    assert rel_err(apply_rope(x, rotation), want) <= 1e-5
    out_bf16 = apply_rope(x.bfloat16(), rotation)
    assert out_bf16.dtype == torch.bfloat16
    assert rel_err(out_bf16, want) <= 1e-2  # bf16 input + bf16 rounding of the result


def test_one_dimensional_positions_broadcast_and_int_positions():
    grid = (3, 1, 2)
    cos1, sin1 = rope_cos_sin(torch.tensor([0, 4, 8]), grid, 24)
    cos2, sin2 = rope_cos_sin(torch.tensor([[0.0, 4.0, 8.0]]), grid, 24)
    assert cos1.shape == (1, 6, 12)
    assert torch.equal(cos1, cos2) and torch.equal(sin1, sin2)
    # temporal pairs of frame 1 rotate by 4 * inv_freq; height/width pairs of (h=0, w=1) by 1 * inv_freq
    inv_t = 10000.0 ** (-torch.arange(0, 8, 2, dtype=torch.float64) / 8)
    token = (1 * 1 + 0) * 2 + 1
    assert torch.allclose(cos1[0, token, :4].double(), torch.cos(4 * inv_t), atol=1e-7)
    assert torch.allclose(cos1[0, token, 4:8].double(), torch.ones(4, dtype=torch.float64), atol=1e-7)  # h = 0
    assert torch.allclose(cos1[0, token, 8:].double(), torch.cos(inv_t), atol=1e-7)  # w = 1, same d_axis


def test_bad_positions_raise():
    with pytest.raises(ValueError, match="temporal_positions"):
        rope_cos_sin(torch.zeros(2, 4), (3, 2, 2), 32)
    with pytest.raises(ValueError, match="NaN"):
        rope_cos_sin(torch.tensor([0.0, float("nan"), 1.0]), (3, 2, 2), 32)
