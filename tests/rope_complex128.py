"""The reference's complex128 RoPE, kept for checks and the benchmark (the model never uses it).

The reference (scottykma/TempoMaster) precomputes complex128 RoPE tables and multiplies q/k as
float64 complex numbers; the model (:mod:`tempomaster_core.rope`) uses float32 cos/sin of float64
angles, which is much faster on GPUs. This module keeps the complex128 formulation so tests can
check the float32 one against it (``tests/test_rope.py``, ``tests/test_model.py``) and
``benchmarks/bench_dit.py`` can time both:

- :func:`rope_complex128_table` / :func:`apply_rope_complex128`: the table and the rotation;
- :func:`complex128_rope`: a context manager under which a ``TempoMasterDiT`` rotates q/k this way.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence
from unittest import mock

import torch
from einops import rearrange

import tempomaster_core.model as model_module
from tempomaster_core.rope import ROPE_THETA, _grid_inputs, _grid_table, rope_inv_freq


def rope_complex128_table(temporal_positions: torch.Tensor, grid: Sequence[int], head_dim: int, *,
                          theta: float = ROPE_THETA, device=None) -> torch.Tensor:
    """``exp(i*angle)`` as ``[B, F*H*W, head_dim//2]`` complex128, the layout of
    :func:`tempomaster_core.rope.rope_cos_sin` (as the reference's ``precompute_freqs_cis_3d`` plus
    per-chunk slicing would give, without its 1024-position limit)."""
    pos_t, (height, width), (d_t, d_h, d_w) = _grid_inputs(temporal_positions, grid, head_dim, device)
    dev = pos_t.device
    ang_t = pos_t.to(torch.float64)[..., None] * rope_inv_freq(d_t, theta, dev)
    ang_h = torch.arange(height, device=dev, dtype=torch.float64)[:, None] * rope_inv_freq(d_h, theta, dev)
    ang_w = torch.arange(width, device=dev, dtype=torch.float64)[:, None] * rope_inv_freq(d_w, theta, dev)
    angles = _grid_table(ang_t, ang_h, ang_w)
    return torch.polar(torch.ones_like(angles), angles)


def apply_rope_complex128(x: torch.Tensor, freqs: torch.Tensor, out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """q/k ``[B, S, N, D]`` upcast to float64 complex pairs, multiplied by ``freqs`` (``[B or 1, S, D/2]``
    complex128 from :func:`rope_complex128_table`) and cast back to ``out_dtype`` (default ``x.dtype``);
    the signature of :func:`tempomaster_core.rope.apply_rope`."""
    pairs = rearrange(x.to(out_dtype or x.dtype).to(torch.float64), "b s n (p two) -> b s n p two", two=2)
    rotated = torch.view_as_real(torch.view_as_complex(pairs.contiguous()) * freqs[:, :, None, :])
    return rearrange(rotated, "b s n p two -> b s n (p two)").to(out_dtype or x.dtype)


@contextlib.contextmanager
def complex128_rope() -> Iterator[None]:
    """Within the block, every ``TempoMasterDiT`` forward builds :func:`rope_complex128_table` and
    rotates q/k with :func:`apply_rope_complex128` instead of the float32 RoPE."""
    with mock.patch.multiple(model_module, rope_rotation=rope_complex128_table, apply_rope=apply_rope_complex128):
        yield
