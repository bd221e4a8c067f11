"""Frame-rate-aware 3-D rotary position embedding (RoPE) of the Wan DiT.

Wan rotates every attention head's query/key with a 3-D RoPE: the head
dimension ``d`` is split into a temporal part of ``d - 2*(d//3)`` channels and
a height and a width part of ``d//3`` channels each; consecutive channel pairs
``(2k, 2k+1)`` are rotated as one complex number by ``position * inv_freq``
with ``inv_freq = theta ** (-2i / d_axis)`` (theta 10000).

TempoMaster (paper, "frame-rate-aware RoPE") keeps the height/width indices
``0..H-1`` / ``0..W-1`` of the patch grid and gives latent frame ``j`` of a
level with frame interval ``i`` the temporal position ``start + j*i`` on a
shared real-time axis, so every level of the tree sees frames at their true
relative times. The positions are passed in by the caller (see
:mod:`tempomaster_core.plan`); this module only turns them into rotations.

Numerics. The reference precomputes complex128 tables for integer positions
``< 1024`` and multiplies q/k as float64 complex numbers, which is slow on GPUs.
Here the angles ``position * inv_freq`` are formed in float64 on small per-axis
tables (F x d_t/2, H x d_h/2, W x d_w/2), their cos/sin are cast to float32, and
the rotation is applied in float32 (a complex64 multiply of the channel pairs).
Positions may be fractional and any size. The complex128 formulation is kept
outside the model, in ``tests/rope_complex128.py``, to check this one against
and for ``benchmarks/bench_dit.py``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from einops import rearrange

ROPE_THETA = 10000.0
"""Base of the RoPE frequencies (Wan)."""


def rope_axis_dims(head_dim: int) -> tuple[int, int, int]:
    """Channels of one head given to the (temporal, height, width) RoPE axes.

    Args:
        head_dim: channels per attention head (128 for every released Wan model).

    Returns:
        ``(d_t, d_h, d_w) = (head_dim - 2*(head_dim//3), head_dim//3, head_dim//3)``;
        each is even, so each axis rotates ``d_axis/2`` channel pairs.

    Raises:
        ValueError: if ``head_dim`` is odd or ``head_dim//3`` is odd. Wan's
            split then does not cover the head exactly (the reference would
            fail on a shape mismatch); use e.g. 24, 32, 48, 128.
    """
    d_h = head_dim // 3
    d_t = head_dim - 2 * d_h
    if head_dim <= 0 or head_dim % 2 or d_h % 2 or d_h == 0:
        raise ValueError(
            f"head_dim {head_dim} does not fit Wan's 3-D RoPE: it must be even with head_dim//3 "
            "even and > 0 (the temporal/height/width split is head_dim-2*(head_dim//3), "
            "head_dim//3, head_dim//3 channels, rotated in pairs). Use e.g. 24, 32, 48 or 128 "
            "(dim / num_heads)."
        )
    return d_t, d_h, d_h


def rope_inv_freq(axis_dim: int, theta: float = ROPE_THETA, device=None) -> torch.Tensor:
    """Inverse frequencies of one RoPE axis, float64.

    Args:
        axis_dim: even number of channels given to the axis (see :func:`rope_axis_dims`).
        theta: RoPE base.

    Returns:
        ``[axis_dim // 2]`` float64, ``theta ** (-(2i) / axis_dim)`` for ``i = 0..axis_dim/2-1``
        (radians per position unit).
    """
    exponents = torch.arange(0, axis_dim, 2, dtype=torch.float64, device=device)[: axis_dim // 2]
    return 1.0 / (theta ** (exponents / axis_dim))


def _axis_cos_sin(positions: torch.Tensor, axis_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin (float32) of ``positions[..., None] * inv_freq`` with float64 angles."""
    angles = positions.to(torch.float64)[..., None] * rope_inv_freq(axis_dim, theta, positions.device)
    return torch.cos(angles).to(torch.float32), torch.sin(angles).to(torch.float32)


def _check_positions(temporal_positions: torch.Tensor, frames: int) -> torch.Tensor:
    if not torch.is_tensor(temporal_positions):
        temporal_positions = torch.as_tensor(temporal_positions)
    if temporal_positions.dim() == 1:
        temporal_positions = temporal_positions[None]
    if temporal_positions.dim() != 2 or temporal_positions.shape[1] != frames:
        raise ValueError(
            f"temporal_positions must have shape [B, {frames}] or [{frames}] (one RoPE position per "
            f"latent frame), got {tuple(temporal_positions.shape)}"
        )
    if temporal_positions.is_complex() or temporal_positions.dtype == torch.bool:
        raise ValueError(f"temporal_positions must be real numbers, got dtype {temporal_positions.dtype}")
    if temporal_positions.is_floating_point() and not torch.isfinite(temporal_positions).all():
        raise ValueError("temporal_positions contains NaN or infinity")
    return temporal_positions


def _grid_inputs(temporal_positions, grid: Sequence[int], head_dim: int, device=None):
    """Validated inputs of a RoPE grid table: ``(positions [B, F], (H, W), (d_t, d_h, d_w))``.

    Raises:
        ValueError: positions not ``[B, F]``/``[F]`` finite numbers matching ``grid[0]``, or a
            head_dim Wan's RoPE cannot split.
    """
    frames, height, width = (int(g) for g in grid)
    dims = rope_axis_dims(head_dim)
    pos_t = _check_positions(temporal_positions, frames)
    if device is not None:
        pos_t = pos_t.to(device)
    return pos_t, (height, width), dims


def _grid_table(per_frame: torch.Tensor, per_row: torch.Tensor, per_column: torch.Tensor) -> torch.Tensor:
    """Concatenate per-axis RoPE tables over the token grid in the DiT's ``(f h w)`` order.

    Args:
        per_frame: ``[B, F, d_t/2]`` (temporal axis), per_row: ``[H, d_h/2]``, per_column: ``[W, d_w/2]``.

    Returns:
        ``[B, F*H*W, (d_t + d_h + d_w)/2]``: temporal pairs first, then height, then width (Wan layout).
    """
    batch, frames = per_frame.shape[:2]
    shape = (batch, frames, per_row.shape[0], per_column.shape[0])
    table = torch.cat(
        [
            per_frame[:, :, None, None, :].expand(*shape, -1),
            per_row[None, None, :, None, :].expand(*shape, -1),
            per_column[None, None, None, :, :].expand(*shape, -1),
        ],
        dim=-1,
    )
    return rearrange(table, "b f h w p -> b (f h w) p")


def rope_cos_sin(
    temporal_positions: torch.Tensor,
    grid: Sequence[int],
    head_dim: int,
    *,
    theta: float = ROPE_THETA,
    device=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 cos/sin tables of the 3-D RoPE for a token grid.

    Token order is ``(f h w)`` (frame-major), the order of the DiT's patchified
    sequence. Channel pair ``p`` of a head uses the temporal angle for
    ``p < d_t/2``, then the height angle, then the width angle (Wan layout).

    Args:
        temporal_positions: ``[B, F]`` or ``[F]`` float or int, the RoPE position of
            each latent (grid) frame on the real-time axis, e.g. ``start + j*interval``.
            May be fractional, negative or larger than 1024.
        grid: ``(F, H, W)`` patch-grid size (latent frames / patch_t, latent height / 2,
            latent width / 2). Height/width positions are ``0..H-1`` and ``0..W-1``.
        head_dim: channels per head.
        theta: RoPE base.
        device: device of the tables (default: that of ``temporal_positions``).

    Returns:
        ``(cos, sin)``, each ``[B, F*H*W, head_dim // 2]`` float32 (``B`` = 1 for 1-D positions).

    Raises:
        ValueError: bad position shape/values or a head_dim Wan's RoPE cannot split.
    """
    pos_t, (height, width), (d_t, d_h, d_w) = _grid_inputs(temporal_positions, grid, head_dim, device)
    dev = pos_t.device
    cos_t, sin_t = _axis_cos_sin(pos_t, d_t, theta)  # [B, F, d_t/2]
    cos_h, sin_h = _axis_cos_sin(torch.arange(height, device=dev), d_h, theta)  # [H, d_h/2]
    cos_w, sin_w = _axis_cos_sin(torch.arange(width, device=dev), d_w, theta)  # [W, d_w/2]

    return _grid_table(cos_t, cos_h, cos_w), _grid_table(sin_t, sin_h, sin_w)


def rope_rotation(
    temporal_positions: torch.Tensor,
    grid: Sequence[int],
    head_dim: int,
    *,
    theta: float = ROPE_THETA,
    device=None,
) -> torch.Tensor:
    """The RoPE rotations ``cos + i*sin`` as a complex64 table (float32 real/imaginary parts).

    Same arguments and layout as :func:`rope_cos_sin`; returns ``[B, F*H*W, head_dim // 2]``
    complex64, the input of :func:`apply_rope`. Angles are float64, cos/sin float32.
    """
    cos, sin = rope_cos_sin(temporal_positions, grid, head_dim, theta=theta, device=device)
    return torch.complex(cos, sin)


def apply_rope(x: torch.Tensor, rotation: torch.Tensor, out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Rotate interleaved channel pairs of q or k in float32.

    Pair ``(x[2p], x[2p+1])`` is treated as the complex number ``x[2p] + i*x[2p+1]``
    and multiplied by ``rotation[p] = cos + i*sin`` (as Wan's ``rope_apply``). The multiply
    is a complex64 one, i.e. float32 arithmetic on the pairs: ``(x0*c - x1*s, x0*s + x1*c)``;
    on CPU it is about 10x faster than the same formula spelled with real tensors.

    Args:
        x: ``[B, S, N, D]`` queries or keys (S tokens, N heads, D = head_dim), any float dtype.
        rotation: ``[B or 1, S, D/2]`` complex64 from :func:`rope_rotation`.
        out_dtype: dtype of the result (default ``x.dtype``).

    Returns:
        ``[B, S, N, D]`` rotated tensor in ``out_dtype``.

    Raises:
        ValueError: table and q/k shapes do not match.
    """
    if x.shape[-1] != 2 * rotation.shape[-1] or rotation.shape[-2] != x.shape[1]:
        raise ValueError(
            f"RoPE table {tuple(rotation.shape)} does not match q/k {tuple(x.shape)} "
            "(expected [B, S, head_dim/2] for [B, S, heads, head_dim])"
        )
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)).contiguous())
    rotated = torch.view_as_real(pairs * rotation[:, :, None, :].to(torch.complex64))
    return rotated.flatten(-2).to(out_dtype or x.dtype)
