"""Tiny deterministic TempoMaster DiTs for tests (CPU, milliseconds per forward).

``tiny_config()`` keeps Wan's structure (in_dim 36 = 16 + 4 + 16, patch (1,2,2))
at toy width: dim 64, ffn 128, 2 heads of 32 channels (Wan's RoPE split
12/10/10), 2 layers, text_dim 24, freq_dim 16. ``make_tiny_dit`` fills every
parameter with seeded random values, none left at a trivial value (norm weights
are not 1, modulations and the head are not 0), so the output depends on
every input and every weight.
"""

from __future__ import annotations

import torch

from tempomaster_core.config import DiTConfig
from tempomaster_core.model import TempoMasterDiT

TINY_DEFAULTS = dict(
    dim=64,
    ffn_dim=128,
    num_heads=2,
    num_layers=2,
    in_dim=36,
    out_dim=16,
    text_dim=24,
    freq_dim=16,
    eps=1e-6,
    patch_size=(1, 2, 2),
)


def tiny_config(**overrides) -> DiTConfig:
    """A tiny :class:`DiTConfig`; any field may be overridden (e.g. ``in_dim=20, out_dim=8``).

    Note: ``dim // num_heads`` must suit Wan's RoPE (even, with ``head_dim // 3`` even),
    e.g. 24, 32 or 48.
    """
    return DiTConfig(**{**TINY_DEFAULTS, **overrides})


def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Overwrite every parameter with seeded, non-trivial random values (in place).

    Linear/conv weights ~ N(0, 1/fan_in); biases ~ N(0, 0.1^2); norm weights ~ 1 + N(0, 0.2^2);
    norm biases ~ N(0, 0.1^2); modulations ~ N(0, 0.3^2). Deterministic for a given seed
    and parameter set (parameters are visited in name order).
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            noise = torch.randn(param.shape, generator=gen, dtype=torch.float32)
            if name.endswith("modulation"):
                value = 0.3 * noise
            elif "norm" in name and name.endswith("weight"):
                value = 1.0 + 0.2 * noise
            elif name.endswith("bias"):
                value = 0.1 * noise
            else:
                fan_in = param[0].numel() if param.dim() > 1 else param.numel()
                value = noise / fan_in**0.5
            param.copy_(value.to(param.dtype))
    return model


def make_tiny_dit(seed: int = 0, dtype: torch.dtype = torch.float32, **overrides) -> TempoMasterDiT:
    """A tiny :class:`TempoMasterDiT` (``tiny_config(**overrides)``) with seeded random weights.

    Returned in eval mode, on CPU, parameters in ``dtype`` (values drawn in float32 then cast,
    so different dtypes hold the same weights up to rounding).
    """
    model = TempoMasterDiT(tiny_config(**overrides))
    randomize_(model, seed)
    return model.to(dtype).eval()


def tiny_inputs(config: DiTConfig, batch: int = 2, frames: int = 3, height: int = 4, width: int = 6,
                text_len: int = 5, seed: int = 1, interval: float = 1.0):
    """Seeded random forward inputs for ``config``.

    Returns a dict with keys ``x`` ``[B, out_dim, T, H, W]``, ``timestep`` ``[B]`` (in 0..1000),
    ``context`` ``[B, L, text_dim]``, ``y`` ``[B, in_dim-out_dim, T, H, W]`` (first
    ``mask_channels`` are 0/1 masks) and ``temporal_positions`` ``[B, T]`` =
    ``(b*T + j) * interval`` (reference chunk layout). All float32.
    """
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, config.out_dim, frames, height, width, generator=gen)
    mask = (torch.rand(batch, config.mask_channels, frames, height, width, generator=gen) > 0.5).float()
    cond = torch.randn(batch, config.out_dim, frames, height, width, generator=gen)
    context = torch.randn(batch, text_len, config.text_dim, generator=gen)
    timestep = torch.rand(batch, generator=gen) * 1000
    positions = (torch.arange(batch)[:, None] * frames + torch.arange(frames)[None]).float() * interval
    return dict(x=x, timestep=timestep, context=context, y=torch.cat([mask, cond], 1), temporal_positions=positions)


def forward(model: torch.nn.Module, inputs: dict) -> torch.Tensor:
    """``model(**inputs)`` without autograd (inputs from :func:`tiny_inputs`)."""
    with torch.no_grad():
        return model(**inputs)
