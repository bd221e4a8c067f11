"""Cost model of a TempoMaster tree: DiT FLOPs, VAE work and peak memory, per level.

A pure function of the work each level does, the model shape (:class:`DiTConfig`),
the resolution, the steps and the guidance. Nothing runs; nothing is measured.

One per-level function, :func:`level_cost`, prices a :class:`LevelWork`
(``chunks`` chunks of ``frames_per_chunk`` pixel frames, denoised for ``steps``
steps). Two constructors describe the levels:

- :func:`levels_from_plan` — the levels of a :class:`~tempomaster_core.plan.TreePlan`
  (what the runtime will actually compute); :func:`estimate_plan_cost` prices them.
- :func:`paper_ablation_levels` — the sizing that reproduces the paper's ablation
  table (each level at its *target* frame count, e.g. 31/61/121 frames at
  6/12/24 fps for a 121-frame 24 fps video, chunk lengths rounded *down* to
  ``4n+1``). ``TreePlan`` doubles frame counts instead, so it cannot express these.

FLOPs (see :mod:`tempomaster_core.flops`, counted there once): matrix
multiplications only (linear layers, patch embedding, attention ``QK^T`` and
``PV``, text and time projections), 2 FLOPs per multiply-add. They are stated
**per DiT pass**; a guided step (CFG or APG, ``cfg != 1``) costs two passes
(positive and negative prompt), an unguided step one. The paper's table counts
one pass per step.

Memory (an estimate, documented assumptions, for planning):

- weights: :func:`dit_weight_bytes`: :func:`dit_parameter_count` x bytes of the weight
  dtype (:data:`DTYPE_BYTES`); with fp8 weights only the blocks' linear weights take one byte
  (:func:`dit_fp8_parameter_count`, plus a float32 scale each), the rest bf16, and the
  computation is bf16; the largest fp8 weight's bf16 copy and its scaled copy are transient
  per layer (``2 * 2 * dim * ffn_dim`` bytes, added to the activations).
- block swap (``blocks_to_swap`` = N, :mod:`tempomaster_core.block_swap`): N blocks live in
  host memory; at most two of them are on the device at once (the running one and the
  prefetched next one, :data:`SWAP_SLOTS`), so the resident weights are ``weights - (N - min(N, 2)) * block``;
  each DiT pass copies ``N * block`` bytes over PCIe (``LevelCost.swap_bytes_per_pass``; at the assumed
  :data:`PCIE_BYTES_PER_S`, ``LevelCost.swap_seconds_per_pass``).
- activations of one forward, inference (no autograd graph), one block at a
  time: the float32 residual stream plus the larger of the self-attention phase
  (float32 LayerNorm output and q/k norm transient, q/k/v, attention output,
  projection and its float32 copy: ``4*4*dim + 6*e*dim`` bytes per token) and
  the FFN phase (``3*4*dim + 2*e*dim + 2*e*ffn_dim``), ``e`` = compute element
  size (2 for bf16/fp16/fp8, 4 for fp32); plus the embedded text
  (``text_len*dim*e`` per item) and the RoPE table (``tokens*head_dim/2*8``).
  With ``attention="math"`` the ``heads x tokens^2`` score matrix is added
  (``e + 4`` bytes per entry: scores and float32 softmax); the default
  ``"flash"`` assumes a fused kernel (flash-attn, SageAttention or PyTorch's
  memory-efficient/flash SDPA on CUDA) that keeps no ``tokens^2`` buffer.
- the batch of one forward is ``min(chunks, max_batch)`` chunks, times 2 with
  guidance (the runtime batches the positive and negative prompt, ``cfg_batching``).
- level state: float32 latents, noise, condition ``y`` and guidance state of all
  chunks (small next to the above).
- VAE: Wan 2.1 VAE weights (:data:`WAN_VAE_PARAMS`) plus a rough decode
  working set of one causal latent step (4 pixel frames at full resolution,
  ~6 tensors of 96 float32 channels, :func:`vae_peak_bytes`). The DiT stays on
  the device during VAE work (as the ComfyUI nodes do), so the level peak is
  ``DiT weights + max(DiT activations + state, VAE working set)``.

VAE work (:func:`vae_flops`): convolution and attention FLOPs of the Wan 2.1
VAE for one clip (within 0.2 % of PyTorch's FLOP counter on the real module).
Per level the runtime encodes every chunk's condition clip and
decodes every chunk (as the reference does: frames go back to pixels between levels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence

from .config import DiTConfig
from .defaults import (BLUEPRINT_STEPS, CFG, REFINEMENT_STEPS, TEXT_LEN, TWO_LEVEL_REFINEMENT_STEPS, WEIGHT_DTYPE,
                       default_schedule)
from .flops import dit_flops_breakdown
from .level_settings import per_level
from .validation import require_cfg, require_choice, require_int, require_number, with_fields
from .plan import (
    MAX_CHUNK_FRAMES,
    MAX_CHUNKS,
    MAX_FPS,
    MAX_FRAME_PIXELS,
    MAX_OUTPUT_FRAMES,
    MAX_SIDE,
    MAX_TEMPORAL_FACTOR,
    round_clip_length,
)

#: Bytes per weight element for the weight dtypes the loader and ComfyUI use.
DTYPE_BYTES: dict[str, int] = {
    "fp32": 4, "float32": 4,
    "bf16": 2, "bfloat16": 2,
    "fp16": 2, "float16": 2,
    "fp8": 1, "fp8_e4m3fn": 1, "fp8_e5m2": 1, "float8_e4m3fn": 1, "float8_e5m2": 1,
}

#: Attention memory models: ``"flash"`` (fused kernel, no tokens^2 buffer) or ``"math"``.
ATTENTION_MODES = ("flash", "math")

#: Known DiT shapes by name (the released TempoMaster model is Wan 2.1 14B).
KNOWN_CONFIGS: dict[str, DiTConfig] = {
    "14B": DiTConfig(),
    "1.3B": DiTConfig(dim=1536, ffn_dim=8960, num_heads=12, num_layers=30),
}

#: Parameters of the Wan 2.1 VAE (encoder + decoder, ~127 M).
WAN_VAE_PARAMS = 126_892_531

PFLOP = 1e15
GIB = 1024**3

MAX_STEPS = 10_000
"""Most denoising steps per level the cost model prices (the sampler nodes allow 1000; the
reference uses 50 / 32, :mod:`tempomaster_core.defaults`). Bounds the FLOP totals so they stay finite floats."""

SWAP_SLOTS = 2
"""Device slots of block swap (:class:`tempomaster_core.block_swap.BlockSwap`): the running swapped
block and the prefetched next one are on the device at once, so swapping ``N`` blocks frees
``N - min(N, SWAP_SLOTS)`` blocks' bytes."""

PCIE_BYTES_PER_S = 25e9
"""Host-to-device bandwidth the cost model assumes for block swap's copies, bytes per second
(pinned memory over PCIe 4.0 x16 moves about 25 GB/s; PCIe 3.0 about half, 5.0 about double).
An assumption for the estimate's swap time, not a measurement."""

MAX_TEXT_LEN = 65_536
"""Most text tokens of the context the cost model prices (umT5 gives 512,
:data:`~tempomaster_core.defaults.TEXT_LEN`)."""

# The frame, chunk and size limits are the plan's own (:mod:`tempomaster_core.plan`):
# chunks <= MAX_CHUNKS, frames per chunk <= MAX_CHUNK_FRAMES, height/width <= MAX_SIDE,
# height * width <= MAX_FRAME_PIXELS, fps <= MAX_FPS, temporal factor <= MAX_TEMPORAL_FACTOR.


class CostError(ValueError):
    """Bad input to the cost model (the message says what was wrong and what to pass)."""


def _positive_int(value: Any, name: str, minimum: int = 1, maximum: Optional[int] = None) -> int:
    """``value`` as an int in ``[minimum, maximum]`` (:func:`~tempomaster_core.validation.require_int`, CostError)."""
    return require_int(value, name, minimum=minimum, maximum=maximum, error=CostError)


def _finite(value: Any, name: str) -> float:
    """``value`` as a finite float, as ``float()`` reads it (CostError otherwise)."""
    return require_number(value, name, parse_text=True, error=CostError)


@dataclass(frozen=True)
class LevelWork:
    """The work of one level: ``chunks`` chunks of ``frames_per_chunk`` pixel frames, ``steps`` steps.

    Attributes:
        chunks: chunks denoised together (1 for a blueprint or a full-sequence pass).
        frames_per_chunk: pixel frames ``P`` per chunk, ``tf*n+1`` (29 = 8 latent frames).
        steps: denoising steps of the level (each one or two DiT passes, see :func:`level_cost`).
        num_frames: real pixel frames the level delivers (``<= chunks * frames_per_chunk``;
            default: ``chunks * frames_per_chunk``). Used for labels only.
        fps: frame rate of the level (frames per second), for labels; ``None`` if unknown.
        label: short name, e.g. ``"6 fps"`` or ``"full sequence"``.

    Raises:
        CostError: non-positive counts, more than :data:`~tempomaster_core.plan.MAX_CHUNKS` chunks,
            chunks longer than :data:`~tempomaster_core.plan.MAX_CHUNK_FRAMES` pixel frames, more than
            :data:`MAX_STEPS` steps, or ``frames_per_chunk`` not of the form ``tf*n+1``
            (checked in :func:`level_cost`, where ``tf`` is known).
    """

    chunks: int
    frames_per_chunk: int
    steps: int
    num_frames: Optional[int] = None
    fps: Optional[float] = None
    label: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "chunks", _positive_int(self.chunks, "chunks", maximum=MAX_CHUNKS))
        object.__setattr__(self, "frames_per_chunk", _positive_int(self.frames_per_chunk, "frames_per_chunk",
                                                                   maximum=MAX_CHUNK_FRAMES))
        object.__setattr__(self, "steps", _positive_int(self.steps, "steps", maximum=MAX_STEPS))
        if self.num_frames is None:
            object.__setattr__(self, "num_frames", self.chunks * self.frames_per_chunk)
        else:
            object.__setattr__(self, "num_frames", _positive_int(self.num_frames, "num_frames"))


def steps_per_level(steps: Any, num_levels: int) -> tuple[int, ...]:
    """Denoising steps of every level, blueprint first: ``None`` = the reference's default steps
    (:func:`tempomaster_core.defaults.default_schedule`), one int for every level, or one int per level
    (:func:`~tempomaster_core.level_settings.per_level`).

    Raises:
        CostError: a list of the wrong length, or a count that is not an int >= 1.
    """
    if steps is None:
        return default_schedule(num_levels).steps
    return tuple(_positive_int(s, "steps") for s in per_level(steps, "steps", num_levels, error=CostError))


def levels_from_plan(plan: Any, steps: Any = None) -> list[LevelWork]:
    """The :class:`LevelWork` of every level of a :class:`~tempomaster_core.plan.TreePlan`.

    Args:
        plan: the tree (its chunk counts and chunk lengths, padding included: the
            runtime denoises whole chunks).
        steps: ``None`` (the reference's defaults 50 / 32 / 32 ...), one int for every level, or one per level.

    Raises:
        CostError: not a plan, or a wrong number of steps.
    """
    if not hasattr(plan, "levels") or not hasattr(plan, "num_levels"):
        raise CostError(f"plan must be a TreePlan, got {type(plan).__name__}")
    level_steps = steps_per_level(steps, plan.num_levels)
    return [
        LevelWork(level.num_chunks, level.frames_per_chunk, s, num_frames=level.num_frames, fps=level.fps,
                  label=f"{level.fps:g} fps")
        for level, s in zip(plan.levels, level_steps)
    ]


def round_down_frames(frames: float, temporal_factor: int = 4) -> int:
    """Largest valid clip length ``tf*n+1 <= frames`` (at least 1): 31 -> 29, 30.25 -> 29, 7.6 -> 5.

    Raises:
        CostError: ``frames`` not a finite number >= 1 or above
            :data:`~tempomaster_core.plan.MAX_CHUNK_FRAMES`; a bad ``temporal_factor``.
    """
    frames = _finite(frames, "frames")
    tf = _positive_int(temporal_factor, "temporal_factor", maximum=MAX_TEMPORAL_FACTOR)
    if frames < 1:
        raise CostError(f"a clip needs at least 1 frame, got {frames}")
    if frames > MAX_CHUNK_FRAMES:
        raise CostError(f"a clip may have at most {MAX_CHUNK_FRAMES} pixel frames, got {frames:g}")
    return round_clip_length(frames, tf, up=False)


def paper_ablation_levels(
    level_fps: Sequence[float],
    chunks: Sequence[int],
    *,
    final_frames: int = 121,
    steps: Any = None,
    temporal_factor: int = 4,
) -> list[LevelWork]:
    """Levels sized as the paper's ablation table is reconstructed (not the runtime rule).

    Each level covers the same time span as the final video at its own frame rate:
    ``frames = (final_frames - 1) * fps / final_fps + 1`` (121 frames at 24 fps ->
    31 at 6 fps, 61 at 12 fps), and each chunk gets ``frames / chunks`` frames
    rounded *down* to ``tf*n+1`` (31 -> 29, 61/2 -> 29, 121/8 -> 13).

    Args:
        level_fps: frame rate per level, blueprint first, last = final fps (e.g. ``(6, 12, 24)``).
        chunks: chunks per level, blueprint first (e.g. ``(1, 4, 8)`` for "m(1,4,8)").
        final_frames: pixel frames of the final level (121 in the table).
        steps: ``None`` = 50 for the blueprint and, for refinement levels, 32 with three
            or more levels or 30 with two (the reference code's two-level default);
            or one int per level.
        temporal_factor: pixel frames per latent frame (4).

    Raises:
        CostError: mismatched lengths, non-positive or non-finite values, values above the plan's
            limits (:data:`~tempomaster_core.plan.MAX_FPS`, ``MAX_CHUNKS``, ``MAX_OUTPUT_FRAMES``), or a
            level too short for its chunks.
    """
    if isinstance(level_fps, (str, bytes)) or not isinstance(level_fps, Iterable):
        raise CostError(f"level_fps must be a sequence of frame rates such as (6, 12, 24), got {level_fps!r}")
    if isinstance(chunks, (str, bytes)) or not isinstance(chunks, Iterable):
        raise CostError(f"chunks must be a sequence of counts such as (1, 2, 4), got {chunks!r}")
    level_fps, chunks = tuple(level_fps), tuple(chunks)
    if len(level_fps) != len(chunks) or not level_fps:
        raise CostError(f"level_fps {level_fps} and chunks {chunks} must have the same non-zero length")
    fps = [_finite(f, "level_fps") for f in level_fps]
    counts = [_positive_int(c, "chunks", maximum=MAX_CHUNKS) for c in chunks]
    if any(f <= 0 or f > MAX_FPS for f in fps):
        raise CostError(f"frame rates must be > 0 and at most {MAX_FPS:g}, got {tuple(level_fps)}")
    final_frames = _positive_int(final_frames, "final_frames", maximum=MAX_OUTPUT_FRAMES)
    if steps is None:
        refine = REFINEMENT_STEPS if len(fps) > 2 else TWO_LEVEL_REFINEMENT_STEPS
        steps = (BLUEPRINT_STEPS,) + (refine,) * (len(fps) - 1)
    level_steps = steps_per_level(steps, len(fps))
    final_fps = fps[-1]
    out = []
    for f, c, s in zip(fps, counts, level_steps):
        frames = (final_frames - 1) * f / final_fps + 1
        length = round_down_frames(frames / c, temporal_factor)
        out.append(LevelWork(c, length, s, num_frames=round(frames), fps=f, label=f"{f:g} fps"))
    return out


# -- parameters and VAE ---------------------------------------------------------------


def dit_parameter_count(config: DiTConfig) -> int:
    """Parameters of :class:`~tempomaster_core.model.TempoMasterDiT` for ``config`` (analytic).

    14B config: 14,288,491,584 parameters (28.6 GB in bf16).
    """
    d, f = config.dim, config.ffn_dim
    patch = math.prod(config.patch_size)
    embed = config.in_dim * patch * d + d  # Conv3d patch embedding
    text = config.text_dim * d + d + d * d + d
    time = config.freq_dim * d + d + d * d + d + d * 6 * d + 6 * d
    attention = 4 * (d * d + d) + 2 * d  # q, k, v, o + RMSNorm q/k
    block = 2 * attention + 2 * d + (d * f + f + f * d + d) + 6 * d  # self, cross, norm3, ffn, modulation
    head = d * config.out_dim * patch + config.out_dim * patch + 2 * d
    return embed + text + time + config.num_layers * block + head


def dit_fp8_parameter_count(config: DiTConfig) -> int:
    """Parameters kept in fp8 by fp8 weight storage: the blocks' linear weights (attention q, k,
    v, o twice and the FFN's two layers; :func:`tempomaster_core.fp8.is_fp8_weight`).

    14B config: 14,050,918,400 (98.3 % of the parameters).
    """
    d, f = config.dim, config.ffn_dim
    return config.num_layers * (8 * d * d + 2 * d * f)


FP8_LAYERS_PER_BLOCK = 10
"""fp8-stored linear layers per block (8 attention projections, 2 FFN layers), each with a float32 scale."""


def _is_fp8(dtype: str) -> bool:
    return _dtype_bytes(dtype) == 1


def dit_block_bytes(config: DiTConfig, dtype: str = WEIGHT_DTYPE) -> int:
    """Bytes of one block's weights in ``dtype`` (fp8: linear weights 1 byte + scales, the rest bf16)."""
    d, f = config.dim, config.ffn_dim
    attention = 4 * (d * d + d) + 2 * d
    params = 2 * attention + 2 * d + (d * f + f + f * d + d) + 6 * d
    if not _is_fp8(dtype):
        return params * _dtype_bytes(dtype)
    fp8 = 8 * d * d + 2 * d * f
    return fp8 + 2 * (params - fp8) + 4 * FP8_LAYERS_PER_BLOCK


def dit_weight_bytes(config: DiTConfig, dtype: str = WEIGHT_DTYPE) -> int:
    """Bytes of the DiT weights in ``dtype`` (a key of :data:`DTYPE_BYTES`).

    fp8: :func:`dit_fp8_parameter_count` weights in one byte, a float32 scale per fp8 layer, the
    other parameters in bf16 (the loader's layout, :mod:`tempomaster_core.fp8`). 14B: 28.58 GB
    in bf16, 14.53 GB in fp8.

    Raises:
        CostError: unknown dtype.
    """
    total = dit_parameter_count(config)
    if not _is_fp8(dtype):
        return total * _dtype_bytes(dtype)
    fp8 = dit_fp8_parameter_count(config)
    return fp8 + 2 * (total - fp8) + 4 * FP8_LAYERS_PER_BLOCK * config.num_layers


def _dtype_bytes(dtype: str) -> int:
    key = str(dtype).lower().replace("torch.", "")
    return DTYPE_BYTES[require_choice(key, "dtype", sorted(DTYPE_BYTES), error=CostError)]


def _compute_bytes(dtype: str) -> int:
    """Element size of activations: fp32 weights compute in fp32, everything else in 16 bit."""
    return 4 if _dtype_bytes(dtype) == 4 else 2


def _conv(cin: int, cout: int, kernel_volume: int, voxels: float) -> float:
    return 2.0 * kernel_volume * cin * cout * voxels


def _resblock(cin: int, cout: int, voxels: float) -> float:
    flops = _conv(cin, cout, 27, voxels) + _conv(cout, cout, 27, voxels)
    return flops + (_conv(cin, cout, 1, voxels) if cin != cout else 0.0)


def _attn_block(channels: int, frames: float, pixels: float) -> float:
    # 1x1 qkv + proj convs, then single-head attention over the pixels of each frame
    return frames * (_conv(channels, 4 * channels, 1, pixels) + 4.0 * pixels * pixels * channels)


def vae_flops(frames: int, height: int, width: int, *, encode: bool) -> float:
    """Rough FLOPs to VAE-encode or decode one clip of ``frames`` pixel frames (Wan 2.1 VAE).

    Counts the 3-D/2-D convolutions and the middle attention block of the Wan
    2.1 VAE architecture (dim 96, multipliers 1/2/4/4, 2 residual blocks per
    encoder stage and 3 per decoder stage, temporal resampling in the two
    deepest stages, causal: ``4n+1`` frames <-> ``n+1`` latent frames); norms
    and activations are ignored. Checked once against PyTorch's
    ``FlopCounterMode`` on the Wan 2.1 VAE module (encode and decode of 9 and 17
    frames at 64x64 / 64x96): within 0.2 %. Decoding 81 frames at 480x832 is
    ~0.28 PFLOPs, encoding them ~0.16 PFLOPs.

    Args:
        frames: pixel frames of the clip (``4n+1``).
        height, width: pixel size (multiples of 8).
        encode: True for the encoder, False for the decoder.
    """
    hw = float(height * width)
    p = float(frames)  # full temporal resolution
    t1 = (frames - 1) / 2 + 1  # after one temporal halving
    t2 = (frames - 1) / 4 + 1  # latent frames
    r1, r2, r3 = hw / 4, hw / 16, hw / 64
    if encode:
        f = _conv(3, 96, 27, p * hw) + 2 * _resblock(96, 96, p * hw)
        f += _conv(96, 96, 9, p * r1)  # spatial downsample
        f += _resblock(96, 192, p * r1) + _resblock(192, 192, p * r1)
        f += _conv(192, 192, 9, p * r2) + _conv(192, 192, 3, t1 * r2)  # spatial + temporal downsample
        f += _resblock(192, 384, t1 * r2) + _resblock(384, 384, t1 * r2)
        f += _conv(384, 384, 9, t1 * r3) + _conv(384, 384, 3, t2 * r3)
        f += 2 * _resblock(384, 384, t2 * r3)
        f += 2 * _resblock(384, 384, t2 * r3) + _attn_block(384, t2, r3)  # middle
        f += _conv(384, 32, 27, t2 * r3)
        return f
    f = _conv(16, 384, 27, t2 * r3)
    f += 2 * _resblock(384, 384, t2 * r3) + _attn_block(384, t2, r3)  # middle
    f += 3 * _resblock(384, 384, t2 * r3)
    f += _conv(384, 768, 3, t2 * r3) + _conv(384, 192, 9, t1 * r2)  # temporal + spatial upsample
    f += _resblock(192, 384, t1 * r2) + 2 * _resblock(384, 384, t1 * r2)
    f += _conv(384, 768, 3, t1 * r2) + _conv(384, 192, 9, p * r1)
    f += 3 * _resblock(192, 192, p * r1)
    f += _conv(192, 96, 9, p * hw)  # spatial upsample
    f += 3 * _resblock(96, 96, p * hw)
    f += _conv(96, 3, 27, p * hw)
    return f


def vae_peak_bytes(height: int, width: int) -> int:
    """Rough VAE working set on the device: weights (bf16) + one causal decode step.

    One latent step decodes to 4 pixel frames; the full-resolution stage holds about
    6 tensors of 96 float32 channels for those frames. ~3.9 GB at 480x832.
    """
    return WAN_VAE_PARAMS * 2 + 4 * height * width * 96 * 6 * 4


# -- per-level cost --------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RunSettings:
    """How the DiT runs, as the cost model prices it: one value for every level of a plan.

    Attributes:
        dtype: weight dtype, a key of :data:`DTYPE_BYTES` (``"bf16"``, ``"fp8"``, ``"fp8_e4m3fn"``,
            ``"torch.float32"`` ...), kept as given.
        attention: ``"flash"`` or ``"math"`` memory model (:data:`ATTENTION_MODES`).
        text_len: text tokens of the context (512 for umT5), ``0 .. MAX_TEXT_LEN``.
        spatial_factor: VAE spatial compression (8).
        blocks_to_swap: DiT blocks kept in host memory and streamed per forward (block swap); at
            most the priced model's ``num_layers`` (checked by :func:`level_cost`).

    Raises:
        CostError: unknown dtype or attention mode, or a count out of range.
    """

    dtype: str = WEIGHT_DTYPE
    attention: str = "flash"
    text_len: int = TEXT_LEN
    spatial_factor: int = 8
    blocks_to_swap: int = 0

    def __post_init__(self) -> None:
        _dtype_bytes(self.dtype)
        require_choice(self.attention, "attention", ATTENTION_MODES, error=CostError)
        object.__setattr__(self, "text_len", _positive_int(self.text_len, "text_len", minimum=0, maximum=MAX_TEXT_LEN))
        object.__setattr__(self, "spatial_factor", _positive_int(self.spatial_factor, "spatial_factor",
                                                                 maximum=MAX_SIDE))
        object.__setattr__(self, "blocks_to_swap", _positive_int(self.blocks_to_swap, "blocks_to_swap", minimum=0))


def run_settings(runtime: Optional[RunSettings] = None, **overrides: Any) -> RunSettings:
    """``runtime`` (default: ``RunSettings()``) with the fields named in ``overrides``
    replaced: the keyword run settings of :func:`level_cost` and the plan estimates.

    Raises:
        TypeError: ``runtime`` is not a RunSettings, or an override names no run setting.
        CostError: a bad value (see :class:`RunSettings`).
    """
    return with_fields(RunSettings() if runtime is None else runtime, overrides, RunSettings)


def model_text_len(config: DiTConfig) -> int:
    """Text tokens a model is priced at: its ``config.text_len``, or umT5's
    :data:`~tempomaster_core.defaults.TEXT_LEN` (512) for a model that takes any length."""
    return config.text_len or TEXT_LEN


@dataclass(frozen=True)
class LevelCost:
    """Cost of one level (see :func:`level_cost`; FLOPs are floats, bytes ints).

    Attributes:
        work: the :class:`LevelWork` priced.
        latent_frames_per_chunk: ``(P - 1) // tf + 1``.
        tokens_per_chunk: video tokens of one chunk, ``T * (h/2) * (w/2)`` (patch 1x2x2).
        passes_per_step: DiT passes per step (2 with guidance, 1 without).
        flops_per_pass: FLOPs of one DiT pass over all chunks of the level.
        flops_per_pass_breakdown: :func:`~tempomaster_core.flops.dit_flops_breakdown` over all chunks.
        attention_flops_per_pass: self-attention ``QK^T`` + ``PV`` FLOPs of one pass (all chunks).
        dit_flops: ``steps * passes_per_step * flops_per_pass``.
        vae_encode_flops, vae_decode_flops: VAE work of the level (condition clips, outputs).
        batch: items of one forward (``min(chunks, max_batch)``, x2 with guidance).
        activation_bytes: activations of one forward of ``batch`` items.
        state_bytes: float32 latents, noise, condition and guidance state of all chunks.
        vae_bytes: VAE working set (:func:`vae_peak_bytes`).
        weight_bytes: DiT weights on the device (with block swap: the resident ones plus two
            swapped blocks in flight).
        peak_bytes: ``weight_bytes + max(activation_bytes + state_bytes, vae_bytes)``.
        blocks_to_swap: blocks kept in host memory (block swap; 0 = none).
        swap_bytes_per_pass: bytes copied from host to device per DiT pass (block swap).
    """

    work: LevelWork
    latent_frames_per_chunk: int
    tokens_per_chunk: int
    passes_per_step: int
    flops_per_pass: float
    flops_per_pass_breakdown: dict
    attention_flops_per_pass: float
    dit_flops: float
    vae_encode_flops: float
    vae_decode_flops: float
    batch: int
    activation_bytes: int
    state_bytes: int
    vae_bytes: int
    weight_bytes: int
    peak_bytes: int
    blocks_to_swap: int = 0
    swap_bytes_per_pass: int = 0

    @property
    def total_flops(self) -> float:
        """DiT + VAE FLOPs of the level."""
        return self.dit_flops + self.vae_encode_flops + self.vae_decode_flops

    @property
    def swap_seconds_per_pass(self) -> float:
        """Seconds block swap's copies take per DiT pass at :data:`PCIE_BYTES_PER_S` (0 without it);
        with the prefetch they overlap the blocks' compute, so this is a lower bound of a pass."""
        return self.swap_bytes_per_pass / PCIE_BYTES_PER_S

    def to_dict(self) -> dict:
        """Plain-JSON form (FLOPs also in PFLOPs, bytes also in GiB)."""
        w = self.work
        return {
            "label": w.label,
            "fps": w.fps,
            "chunks": w.chunks,
            "frames_per_chunk": w.frames_per_chunk,
            "num_frames": w.num_frames,
            "steps": w.steps,
            "latent_frames_per_chunk": self.latent_frames_per_chunk,
            "tokens_per_chunk": self.tokens_per_chunk,
            "passes_per_step": self.passes_per_step,
            "flops_per_pass": self.flops_per_pass,
            "attention_flops_per_pass": self.attention_flops_per_pass,
            "dit_flops": self.dit_flops,
            "dit_pflops": self.dit_flops / PFLOP,
            "vae_flops": self.vae_encode_flops + self.vae_decode_flops,
            "total_pflops": self.total_flops / PFLOP,
            "batch": self.batch,
            "activation_bytes": self.activation_bytes,
            "peak_bytes": self.peak_bytes,
            "peak_gib": self.peak_bytes / GIB,
            "blocks_to_swap": self.blocks_to_swap,
            "swap_bytes_per_pass": self.swap_bytes_per_pass,
            "swap_seconds_per_pass": self.swap_seconds_per_pass,
        }


def passes_per_step(cfg: float) -> int:
    """DiT passes per step: 2 with guidance (``cfg != 1``, CFG or APG), 1 without."""
    return 1 if float(cfg) == 1.0 else 2


def activation_bytes(config: DiTConfig, tokens: int, batch: int, *, dtype: str = WEIGHT_DTYPE, text_len: int = TEXT_LEN,
                     attention: str = "flash") -> int:
    """Activation bytes of one DiT forward of ``batch`` items of ``tokens`` video tokens (see module doc).

    Raises:
        CostError: unknown dtype or attention mode.
    """
    require_choice(attention, "attention", ATTENTION_MODES, error=CostError)
    e = _compute_bytes(dtype)
    d, f = config.dim, config.ffn_dim
    attn_phase = 4 * 4 * d + 6 * e * d
    ffn_phase = 3 * 4 * d + 2 * e * d + 2 * e * f
    per_item = tokens * max(attn_phase, ffn_phase) + text_len * d * e + tokens * (config.head_dim // 2) * 8
    if attention == "math":
        per_item += config.num_heads * tokens * tokens * (e + 4)
    cast = 2 * e * d * f if _is_fp8(dtype) else 0  # the largest fp8 weight, cast and scaled (transient)
    return int(batch * per_item + cast)


def level_cost(work: LevelWork, config: DiTConfig, *, height: int, width: int, cfg: float = CFG,
               max_batch: Optional[int] = None, temporal_factor: int = 4, runtime: Optional[RunSettings] = None,
               **run: Any) -> LevelCost:
    """Price one level: tokens, FLOPs per pass and in total, VAE work, memory.

    Args:
        work: chunks x frames per chunk x steps.
        config: DiT shape (14B by default elsewhere: ``DiTConfig()``).
        height, width: pixel size of the video (multiples of ``spatial_factor * 2``).
        cfg: guidance scale, the samplers' range ``(0, MAX_CFG]``
            (:func:`~tempomaster_core.validation.require_cfg`); ``!= 1`` means two DiT passes per step (CFG/APG).
        max_batch: chunks per forward (``None`` = all, as the runtime's default).
        temporal_factor: pixel frames per latent frame (4).
        runtime: how the DiT runs (:class:`RunSettings`: weight dtype, attention memory model,
            text length, VAE spatial factor, blocks swapped); default ``RunSettings()``.
        run: :class:`RunSettings` fields replacing those of ``runtime`` (``dtype="fp8"``,
            ``blocks_to_swap=16`` ...; :func:`run_settings`).

    Raises:
        CostError: size not divisible, above :data:`~tempomaster_core.plan.MAX_SIDE` or
            :data:`~tempomaster_core.plan.MAX_FRAME_PIXELS`, frames not ``tf*n+1``, bad
            run settings (``blocks_to_swap`` above ``config.num_layers`` included), max_batch or
            cfg, or a model shape whose FLOPs overflow a float.
        TypeError: an unknown run setting.
    """
    if not isinstance(work, LevelWork):
        raise CostError(f"work must be a LevelWork, got {type(work).__name__}")
    if not isinstance(config, DiTConfig):
        raise CostError(f"config must be a DiTConfig, got {type(config).__name__}")
    tf = _positive_int(temporal_factor, "temporal_factor", maximum=MAX_TEMPORAL_FACTOR)
    if (work.frames_per_chunk - 1) % tf:
        raise CostError(f"frames_per_chunk must be {tf}*n+1, got {work.frames_per_chunk}")
    height = _positive_int(height, "height", maximum=MAX_SIDE)
    width = _positive_int(width, "width", maximum=MAX_SIDE)
    if height * width > MAX_FRAME_PIXELS:
        raise CostError(f"size {width}x{height} has more than the maximum {MAX_FRAME_PIXELS} pixels per frame")
    runtime = run_settings(runtime, **run)
    cfg = _guidance_scale(cfg)
    _positive_int(runtime.blocks_to_swap, "blocks_to_swap", minimum=0, maximum=config.num_layers)
    try:
        return _level_cost(work, config, height=height, width=width, cfg=cfg, max_batch=max_batch, tf=tf,
                           runtime=runtime)
    except OverflowError:
        raise CostError(f"the cost of {work.chunks} chunks of {work.frames_per_chunk} frames overflows a float for "
                        f"the model shape {config.to_dict()}; check the model's sizes") from None


def _level_cost(work: LevelWork, config: DiTConfig, *, height: int, width: int, cfg: float,
                max_batch: Optional[int], tf: int, runtime: RunSettings) -> LevelCost:
    """:func:`level_cost` after its argument checks."""
    spatial_factor, dtype, blocks_to_swap = runtime.spatial_factor, runtime.dtype, runtime.blocks_to_swap
    pt, ph, pw = config.patch_size
    step = spatial_factor * ph, spatial_factor * pw
    if height <= 0 or width <= 0 or height % step[0] or width % step[1]:
        raise CostError(
            f"size {width}x{height} must be positive multiples of {step[1]}x{step[0]} "
            f"(VAE factor {spatial_factor} x patch {ph}x{pw})"
        )
    latent = (work.frames_per_chunk - 1) // tf + 1
    if latent % pt:
        raise CostError(f"{latent} latent frames are not divisible by the temporal patch {pt}")
    tokens = (latent // pt) * (height // step[0]) * (width // step[1])
    breakdown = dit_flops_breakdown(config, tokens, runtime.text_len, batch=work.chunks)
    per_pass = float(breakdown["total"])
    passes = passes_per_step(cfg)
    if max_batch is not None:
        max_batch = _positive_int(max_batch, "max_batch")
    batch = min(work.chunks, max_batch or work.chunks) * passes
    acts = activation_bytes(config, tokens, batch, dtype=dtype, text_len=runtime.text_len,
                            attention=runtime.attention)
    latent_elems = work.chunks * latent * (height // spatial_factor) * (width // spatial_factor)
    # x, noise, velocity x2, guidance momentum, x0 (out_dim ch) + condition y (in_dim - out_dim ch), float32
    state = latent_elems * (6 * config.out_dim + config.condition_channels) * 4
    vae_mem = vae_peak_bytes(height, width)
    block = dit_block_bytes(config, dtype)
    weights = dit_weight_bytes(config, dtype) - (blocks_to_swap - min(blocks_to_swap, SWAP_SLOTS)) * block
    vae_work = (vae_flops(work.frames_per_chunk, height, width, encode=True),
                vae_flops(work.frames_per_chunk, height, width, encode=False))
    if not all(math.isfinite(v) for v in (per_pass * passes * work.steps, work.chunks * max(vae_work))):
        raise OverflowError("FLOPs overflow a float")
    return LevelCost(
        work=work,
        latent_frames_per_chunk=latent,
        tokens_per_chunk=tokens,
        passes_per_step=passes,
        flops_per_pass=per_pass,
        flops_per_pass_breakdown=dict(breakdown),
        attention_flops_per_pass=float(breakdown["self_attn_matmul"]),
        dit_flops=per_pass * passes * work.steps,
        vae_encode_flops=work.chunks * vae_work[0],
        vae_decode_flops=work.chunks * vae_work[1],
        batch=batch,
        activation_bytes=acts,
        state_bytes=state,
        vae_bytes=vae_mem,
        weight_bytes=weights,
        peak_bytes=weights + max(acts + state, vae_mem),
        blocks_to_swap=blocks_to_swap,
        swap_bytes_per_pass=blocks_to_swap * block,
    )


# -- whole tree ------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanCost:
    """Cost of a whole tree plus the full-sequence baseline.

    Attributes:
        levels: one :class:`LevelCost` per level, blueprint first.
        full_sequence: the same final video generated as one bidirectional pass
            (one chunk of all final frames, the blueprint's steps), or ``None``.
        settings: the inputs used (cfg, dtype, text_len, attention, size, model shape).
    """

    levels: tuple[LevelCost, ...]
    full_sequence: Optional[LevelCost] = None
    settings: dict = field(default_factory=dict)

    @property
    def dit_flops(self) -> float:
        """DiT FLOPs of all levels (all steps and passes)."""
        return sum(lv.dit_flops for lv in self.levels)

    @property
    def vae_flops(self) -> float:
        """VAE FLOPs of all levels."""
        return sum(lv.vae_encode_flops + lv.vae_decode_flops for lv in self.levels)

    @property
    def total_flops(self) -> float:
        """DiT + VAE FLOPs."""
        return self.dit_flops + self.vae_flops

    @property
    def peak_bytes(self) -> int:
        """Largest level peak (weights included)."""
        return max(lv.peak_bytes for lv in self.levels)

    @property
    def peak_level(self) -> int:
        """Index of the level with the largest peak."""
        return max(range(len(self.levels)), key=lambda i: self.levels[i].peak_bytes)

    @property
    def weight_bytes(self) -> int:
        """DiT weight bytes."""
        return self.levels[0].weight_bytes

    @property
    def saving_vs_full_sequence(self) -> Optional[float]:
        """``full-sequence DiT FLOPs / tree DiT FLOPs`` (> 1 = the tree is cheaper), or None."""
        if self.full_sequence is None:
            return None
        return self.full_sequence.dit_flops / self.dit_flops

    def to_dict(self) -> dict:
        """Plain-JSON form for the web view and reports."""
        full = self.full_sequence
        return {
            "levels": [lv.to_dict() for lv in self.levels],
            "dit_flops": self.dit_flops,
            "dit_pflops": self.dit_flops / PFLOP,
            "vae_flops": self.vae_flops,
            "total_pflops": self.total_flops / PFLOP,
            "weight_bytes": self.weight_bytes,
            "peak_bytes": self.peak_bytes,
            "peak_gib": self.peak_bytes / GIB,
            "peak_level": self.peak_level,
            "full_sequence": None if full is None else full.to_dict(),
            "full_sequence_pflops": None if full is None else full.dit_flops / PFLOP,
            "saving_vs_full_sequence": self.saving_vs_full_sequence,
            "settings": dict(self.settings),
        }


def full_sequence_work(final_frames: int, steps: int = BLUEPRINT_STEPS, temporal_factor: int = 4,
                       fps: Optional[float] = None) -> LevelWork:
    """The baseline: ``final_frames`` pixel frames (padded up to ``tf*n+1``) as one bidirectional chunk.

    Raises:
        CostError: ``final_frames`` not in ``1..MAX_OUTPUT_FRAMES``, bad steps or temporal factor.
    """
    frames = _positive_int(final_frames, "final_frames", maximum=MAX_OUTPUT_FRAMES)
    temporal_factor = _positive_int(temporal_factor, "temporal_factor", maximum=MAX_TEMPORAL_FACTOR)
    length = round_clip_length(frames, temporal_factor)
    return LevelWork(1, length, steps, num_frames=frames, fps=fps, label="full sequence")


def estimate_levels_cost(levels: Sequence[LevelWork], config: Optional[DiTConfig] = None, *, height: int, width: int,
                         cfg: Any = CFG, max_batch: Any = None, temporal_factor: int = 4,
                         full_sequence: Optional[LevelWork] = None, runtime: Optional[RunSettings] = None,
                         **run: Any) -> PlanCost:
    """Price a list of levels (and optionally the full-sequence baseline) with :func:`level_cost`.

    ``cfg`` and ``max_batch`` are one value for every level or a sequence with one
    entry per level (``max_batch`` entries may be None = all chunks). The
    full-sequence baseline uses the first level's ``cfg``. ``runtime`` and ``run``: the
    :class:`RunSettings` of every level, as :func:`level_cost` takes them.

    Raises:
        CostError: empty ``levels``, per-level lists of the wrong length, or any error of :func:`level_cost`.
    """
    config = config or DiTConfig()
    levels = list(levels)
    if not levels:
        raise CostError("no levels to price; give at least the blueprint")
    runtime = run_settings(runtime, **run)
    batches = per_level(max_batch, "max_batch", len(levels), error=CostError)
    scales = [_guidance_scale(c) for c in per_level(cfg, "cfg", len(levels), error=CostError)]
    size = dict(height=height, width=width, temporal_factor=temporal_factor, runtime=runtime)
    priced = tuple(level_cost(w, config, max_batch=b, cfg=c, **size) for w, b, c in zip(levels, batches, scales))
    full = level_cost(full_sequence, config, cfg=scales[0], **size) if full_sequence is not None else None
    swapped = {"blocks_to_swap": runtime.blocks_to_swap} if runtime.blocks_to_swap else {}  # recorded when used
    settings = {"height": height, "width": width, "text_len": runtime.text_len, "dtype": runtime.dtype,
                "attention": runtime.attention, "spatial_factor": runtime.spatial_factor,
                "temporal_factor": temporal_factor, **swapped,
                "cfg": scales, "max_batch": batches, "config": config.to_dict()}
    return PlanCost(levels=priced, full_sequence=full, settings=settings)


def _guidance_scale(value: Any) -> float:
    """The guidance scale a sampler would run (:func:`~tempomaster_core.validation.require_cfg`: finite,
    in ``(0, MAX_CFG]``; text read as a number), CostError otherwise."""
    return require_cfg(value, "cfg", parse_text=True, error=CostError)


def estimate_plan_cost(plan: Any, config: Optional[DiTConfig] = None, steps: Any = None, cfg: Any = CFG, *,
                       max_batch: Any = None, full_sequence: bool = True, runtime: Optional[RunSettings] = None,
                       **run: Any) -> PlanCost:
    """Cost of a :class:`~tempomaster_core.plan.TreePlan` (what the runtime computes).

    Args:
        plan: the tree.
        config: DiT shape (default: the 14B model).
        steps: ``None`` (the reference's defaults 50/32/...), an int, or one per level.
        cfg: guidance scale (the reference's default 8 -> two passes per step), or one per level.
        max_batch: chunks per forward, one value or one per level (None = all).
        runtime, run: the :class:`RunSettings` (weight dtype, attention, text length, spatial
            factor, blocks swapped), as :func:`level_cost` takes them.
        full_sequence: also price the final video as one bidirectional pass
            (blueprint steps) for comparison.

    Example: the reference's default tree ``TreePlan(109, (4, 2, 1), height=480, width=832)``
    costs ~1.27 EFLOPs of DiT work with CFG (50/32/32 steps, two passes each),
    2.2x less than one 436-frame bidirectional pass at 50 steps (~2.83 EFLOPs).

    Raises:
        CostError: bad steps/cfg/dtype/attention/max_batch.
    """
    works = levels_from_plan(plan, steps)
    full = (
        full_sequence_work(plan.final.num_frames, works[0].steps, plan.temporal_factor, plan.final.fps)
        if full_sequence else None
    )
    return estimate_levels_cost(works, config, height=plan.height, width=plan.width, cfg=cfg, max_batch=max_batch,
                                temporal_factor=plan.temporal_factor, full_sequence=full,
                                runtime=run_settings(runtime, **run))


def plan_level_cost(plan: Any, level_index: int, config: DiTConfig, *, steps: int, cfg: float,
                    max_batch: Optional[int] = None, runtime: Optional[RunSettings] = None, **run: Any) -> LevelCost:
    """:func:`level_cost` of one level of a :class:`~tempomaster_core.plan.TreePlan` (its chunks,
    chunk length, size and temporal factor) at ``steps`` steps: what a sampler node checks before a
    level and what the tree view compares a measured time with.

    Raises:
        CostError: as :func:`level_cost`; an index outside the plan's levels.
    """
    index = _positive_int(level_index, "level_index", minimum=0, maximum=plan.num_levels - 1)
    work = levels_from_plan(plan, steps)[index]
    return level_cost(work, config, height=plan.height, width=plan.width, cfg=cfg, max_batch=max_batch,
                      temporal_factor=plan.temporal_factor, runtime=runtime, **run)


def default_memory_budget() -> Optional[int]:
    """Free bytes on the current CUDA device (``torch.cuda.mem_get_info``), or ``None`` (no CUDA: unbounded).

    Note: memory already held by a loaded model is not free; the budget is what
    is left now, not what the GPU has.
    """
    try:
        import torch

        if torch.cuda.is_available():
            free, _ = torch.cuda.mem_get_info()
            return int(free)
    except Exception:  # a broken CUDA setup must not break planning
        return None
    return None
