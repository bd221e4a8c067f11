"""Analytic FLOP count of one TempoMaster DiT forward pass.

Counts matrix multiplications only (linear layers, the patch embedding and
the attention matmuls QK^T and PV), at 2 FLOPs per multiply-add. Norms,
RoPE, softmax, activations and modulation are O(tokens * dim) and ignored.

For the 14B model (dim 5120, ffn 13824, 40 layers, text_dim 4096) with
L = 512 text tokens, this gives F(S) = 2.433e10*S + 819200*S^2 + 2.2e12
for S video tokens per batch item (1560 tokens per latent frame at 480x832),
i.e. about 2.6 PFLOPs for a 28-latent-frame chunk (43680 tokens).
"""

from __future__ import annotations

import math

from .config import DiTConfig
from .defaults import TEXT_LEN


def dit_flops_breakdown(config: DiTConfig, tokens: int, text_len: int = TEXT_LEN, batch: int = 1) -> dict[str, int]:
    """FLOPs of one forward, by component.

    Args:
        config: DiT shape.
        tokens: video tokens per batch item, ``T * (H/2) * (W/2)`` for latent size T x H x W
            with patch (1,2,2).
        text_len: text tokens in ``context`` (512 for umT5).
        batch: batch size (chunks/prompts evaluated together).

    Returns:
        ``{"embed", "self_attn_linear", "self_attn_matmul", "cross_attn_linear",
        "cross_attn_matmul", "ffn", "head", "total"}`` in FLOPs (ints, whole batch).

    Raises:
        ValueError: negative sizes.
    """
    if tokens < 0 or text_len < 0 or batch < 0:
        raise ValueError(f"tokens, text_len and batch must be >= 0, got {tokens}, {text_len}, {batch}")
    d, layers = config.dim, config.num_layers
    patch_volume = math.prod(config.patch_size)
    embed = (
        2 * tokens * config.in_dim * patch_volume * d  # patch embedding
        + 2 * text_len * (config.text_dim * d + d * d)  # text embedding MLP
        + 2 * (config.freq_dim * d + d * d + d * 6 * d)  # time embedding + projection
    )
    per_layer = {
        "self_attn_linear": 4 * 2 * tokens * d * d,  # q, k, v, o
        "self_attn_matmul": 2 * 2 * tokens * tokens * d,  # QK^T and PV over all heads
        "cross_attn_linear": 2 * 2 * tokens * d * d + 2 * 2 * text_len * d * d,  # q, o on video; k, v on text
        "cross_attn_matmul": 2 * 2 * tokens * text_len * d,
        "ffn": 2 * 2 * tokens * d * config.ffn_dim,
    }
    out = {"embed": embed * batch}
    out.update({k: v * layers * batch for k, v in per_layer.items()})
    out["head"] = 2 * tokens * d * config.out_dim * patch_volume * batch
    out["total"] = sum(out.values())
    return out


def dit_forward_flops(config: DiTConfig, tokens: int, text_len: int = TEXT_LEN, batch: int = 1) -> int:
    """Total FLOPs of one DiT forward (see :func:`dit_flops_breakdown`), 2 FLOPs per multiply-add."""
    return dit_flops_breakdown(config, tokens, text_len, batch)["total"]


def video_tokens(config: DiTConfig, latent_frames: int, latent_height: int, latent_width: int) -> int:
    """Video tokens per batch item for a latent of ``latent_frames x latent_height x latent_width``.

    Raises:
        ValueError: sizes not divisible by the patch size.
    """
    pt, ph, pw = config.patch_size
    if latent_frames % pt or latent_height % ph or latent_width % pw:
        raise ValueError(
            f"latent size {latent_frames}x{latent_height}x{latent_width} is not divisible by the patch {config.patch_size}"
        )
    return (latent_frames // pt) * (latent_height // ph) * (latent_width // pw)
