"""The TempoMaster DiT: a Wan 2.1 video diffusion transformer with frame-rate-aware RoPE.

Functionally the reference's ``wan_dit/wan_video_dit.py`` (itself the Wan 2.1
DiT, DiffSynth layout) without the CLIP image branch: patch embedding
Conv3d (1,2,2); text embedding Linear-GELU(tanh)-Linear; sinusoidal time
embedding -> Linear-SiLU-Linear, time projection SiLU-Linear(dim, 6*dim);
``num_layers`` blocks of [adaLN self-attention with RMSNorm q/k and 3-D RoPE]
+ [LayerNorm(affine) + text cross-attention with RMSNorm q/k] + [adaLN FFN,
GELU tanh]; a head modulated by the time embedding; unpatchify.

Parameter names equal the reference's, so the released checkpoint
(``wan_video_dit_bf16.bin``) loads without renaming.

Differences from the reference, all numerical-only:

* RoPE positions are an input (``temporal_positions``), tables are float32
  cos/sin from float64 angles (:mod:`tempomaster_core.rope`), not complex128.
* As in the original Wan 2.1 code, the time embedding, adaLN modulation,
  norms, gates, residual stream and head run in float32; the big linear layers
  and attention run in the compute dtype (:attr:`TempoMasterDiT.dtype`: the
  storage dtype, bf16 for the release; bf16 for fp8-stored weights). The reference
  pipeline runs everything in bf16; outputs agree to bf16 precision.
* The head adds the time embedding per batch item (``modulation + t[:, None]``);
  the reference's broadcast ``[1,2,dim] + [B,dim]`` is only right for B <= 2
  with equal timesteps.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange
from torch.utils.checkpoint import checkpoint
from torch.utils.hooks import RemovableHandle

from .attention import DEFAULT_BACKEND, attention, resolve_backend
from .config import DiTConfig
from .ops import CastOps, check_operations
from .rope import apply_rope, rope_axis_dims, rope_rotation


def sinusoidal_embedding(freq_dim: int, timestep: torch.Tensor) -> torch.Tensor:
    """Wan's sinusoidal timestep embedding.

    Args:
        freq_dim: embedding width (256 for Wan), even.
        timestep: ``[B]`` timesteps (flow-matching sigma * 1000, 0..1000), any real dtype;
            the values are taken as given (a bf16 timestep keeps its bf16 rounding).

    Returns:
        ``[B, freq_dim]`` float32 ``[cos(t*f_0..), sin(t*f_0..)]`` with
        ``f_i = 10000 ** (-i / (freq_dim/2))``, computed in float64.
    """
    half = freq_dim // 2
    freqs = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64, device=timestep.device) / half)
    angles = timestep.to(torch.float64)[:, None] * freqs[None]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1).to(torch.float32)


def _linear_fp32(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)`` computed in float32 whatever the storage dtype (small layers only; the
    ``operations`` layer casts its weights to the input, :mod:`tempomaster_core.ops`)."""
    return layer(x.float())


def _layer_norm_fp32(x: torch.Tensor, eps: float) -> torch.Tensor:
    """LayerNorm without weights over the last dim, in float32."""
    return F.layer_norm(x.float(), (x.shape[-1],), None, None, eps)


def per_item(layer, x: torch.Tensor) -> torch.Tensor:
    """``layer`` applied to each batch item of ``x`` ``[B, ...]`` alone, concatenated: ``[B, ...]``.

    For the layers whose matrix rows per item are few or whose kernel depends on the batch size:
    CPU BLAS rounds a matmul of fewer than about 16 rows differently for another row count
    (measured: a text context of 5 tokens), and oneDNN picks the Conv3d algorithm by batch size
    (measured on the built-in model's patch embedding). Computed item by item, a batch item's
    result does not depend on what else is in the batch (``max_batch``, cfg batching, ranks of
    :mod:`tempomaster_core.distributed`). Same FLOPs as one call.
    """
    if x.shape[0] == 1:
        return layer(x)
    return torch.cat([layer(x[i : i + 1]) for i in range(x.shape[0])])


def _param(p: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A parameter that is no layer's weight (adaLN modulation, RMSNorm scale) as float32 on
    ``like``'s device: it may live elsewhere (block swap, ComfyUI's partial loading)."""
    return p.to(device=like.device, dtype=torch.float32)


class RMSNorm(nn.Module):
    """RMS normalisation over the last dim with a learned scale (Wan's q/k norm).

    ``forward`` returns float32: ``x / sqrt(mean(x^2) + eps) * weight``.
    """

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x.float(), (x.shape[-1],), _param(self.weight, x), self.eps)


class _AttentionLayers(nn.Module):
    """Parameters shared by Wan's self- and cross-attention (reference names).

    ``q, k, v, o`` (``operations.Linear`` dim->dim) and ``norm_q, norm_k`` (RMSNorm over dim, on q and k).
    """

    def __init__(self, dim: int, num_heads: int, eps: float, operations=CastOps):
        super().__init__()
        self.num_heads = num_heads
        self.q = operations.Linear(dim, dim)
        self.k = operations.Linear(dim, dim)
        self.v = operations.Linear(dim, dim)
        self.o = operations.Linear(dim, dim)
        self.norm_q = RMSNorm(dim, eps)
        self.norm_k = RMSNorm(dim, eps)


class SelfAttention(_AttentionLayers):
    """Self-attention over all video tokens with RMSNorm q/k and 3-D RoPE.

    Parameters ``q, k, v, o`` (Linear dim->dim) and ``norm_q, norm_k`` (RMSNorm over dim).
    """

    def forward(self, x: torch.Tensor, rope, backend: str) -> torch.Tensor:
        """``x`` ``[B, S, dim]`` compute dtype -> ``[B, S, dim]`` compute dtype.

        ``rope`` is the ``[B|1, S, head_dim/2]`` complex64 rotation table (float32 parts) of
        :func:`~tempomaster_core.rope.rope_rotation`.
        """
        dtype = x.dtype
        heads = self.num_heads
        q = rearrange(self.norm_q(self.q(x)), "b s (n d) -> b s n d", n=heads)
        k = rearrange(self.norm_k(self.k(x)), "b s (n d) -> b s n d", n=heads)
        v = rearrange(self.v(x), "b s (n d) -> b s n d", n=heads)
        q = apply_rope(q, rope, out_dtype=dtype)
        k = apply_rope(k, rope, out_dtype=dtype)
        out = attention(q, k, v, backend)
        return self.o(rearrange(out, "b s n d -> b s (n d)"))


class CrossAttention(_AttentionLayers):
    """Cross-attention from video tokens to the (embedded) text tokens, RMSNorm q/k, no RoPE.

    Parameters ``q, k, v, o`` (Linear dim->dim) and ``norm_q, norm_k``.
    """

    def forward(self, x: torch.Tensor, context: torch.Tensor, backend: str) -> torch.Tensor:
        """``x`` ``[B, S, dim]``, ``context`` ``[B or 1, L, dim]`` (compute dtype) -> ``[B, S, dim]``."""
        dtype = x.dtype
        heads = self.num_heads
        q = rearrange(self.norm_q(self.q(x)).to(dtype), "b s (n d) -> b s n d", n=heads)
        # per item: a text context has few rows (see per_item)
        k = rearrange(self.norm_k(per_item(self.k, context)).to(dtype), "b l (n d) -> b l n d", n=heads)
        v = rearrange(per_item(self.v, context), "b l (n d) -> b l n d", n=heads)
        if k.shape[0] != q.shape[0]:  # one prompt shared by the batch: project once, expand
            k = k.expand(q.shape[0], -1, -1, -1)
            v = v.expand(q.shape[0], -1, -1, -1)
        out = attention(q, k, v, backend)
        return self.o(rearrange(out, "b s n d -> b s (n d)"))


class DiTBlock(nn.Module):
    """One Wan block: adaLN self-attention, cross-attention, adaLN FFN.

    Parameters: ``self_attn``, ``cross_attn``, ``norm3`` (LayerNorm, affine, before
    cross-attention), ``ffn`` (Linear dim->ffn_dim, GELU tanh, Linear ffn_dim->dim) and
    ``modulation`` ``[1, 6, dim]`` added to the projected time embedding to give
    (shift, scale, gate) for attention and for the FFN. ``norm1``/``norm2`` have no weights.
    Linear layers and ``norm3`` come from ``operations`` (:mod:`tempomaster_core.ops`).
    """

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, eps: float, operations=CastOps):
        super().__init__()
        self.eps = eps
        self.self_attn = SelfAttention(dim, num_heads, eps, operations)
        self.cross_attn = CrossAttention(dim, num_heads, eps, operations)
        self.norm1 = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.norm2 = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.norm3 = operations.LayerNorm(dim, eps=eps)
        self.ffn = nn.Sequential(
            operations.Linear(dim, ffn_dim), nn.GELU(approximate="tanh"), operations.Linear(ffn_dim, dim)
        )
        self.modulation = nn.Parameter(torch.randn(1, 6, dim) / dim**0.5)

    def forward(self, x, context, t_mod, rope, backend: str) -> torch.Tensor:
        """One block.

        Args:
            x: ``[B, S, dim]`` float32 residual stream.
            context: ``[B or 1, L, dim]`` embedded text in the compute dtype, which the block's
                matmuls and attention use.
            t_mod: ``[B, 6, dim]`` float32 projected time embedding.
            rope: RoPE tables (see :meth:`SelfAttention.forward`).

        Returns:
            ``[B, S, dim]`` float32.
        """
        dtype = context.dtype
        mod = _param(self.modulation, x) + t_mod
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod[:, :, None, :].unbind(1)
        h = _layer_norm_fp32(x, self.eps) * (1 + scale_msa) + shift_msa
        x = x + gate_msa * self.self_attn(h.to(dtype), rope, backend).float()
        h = self.norm3(x.float())
        x = x + self.cross_attn(h.to(dtype), context, backend).float()
        h = _layer_norm_fp32(x, self.eps) * (1 + scale_mlp) + shift_mlp
        return x + gate_mlp * self.ffn(h.to(dtype)).float()


class Head(nn.Module):
    """Output head: LayerNorm (no weights), modulation by the time embedding, Linear to patches.

    Parameters ``head`` (Linear dim -> out_dim * prod(patch)) and ``modulation`` ``[1, 2, dim]``.
    """

    def __init__(self, dim: int, out_dim: int, patch_size, eps: float, operations=CastOps):
        super().__init__()
        self.eps = eps
        self.norm = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.head = operations.Linear(dim, out_dim * math.prod(patch_size))
        self.modulation = nn.Parameter(torch.randn(1, 2, dim) / dim**0.5)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, S, dim]`` float32, ``t`` ``[B, dim]`` float32 -> ``[B, S, out_dim*prod(patch)]`` float32."""
        shift, scale = (_param(self.modulation, x) + t[:, None, :]).unbind(1)
        h = _layer_norm_fp32(x, self.eps) * (1 + scale[:, None]) + shift[:, None]
        return _linear_fp32(self.head, h)


class TempoMasterDiT(nn.Module):
    """The TempoMaster Wan DiT (velocity predictor for flow matching).

    Args:
        config: shape configuration (see :class:`DiTConfig`; usually inferred from a
            checkpoint by :func:`tempomaster_core.loading.load_dit`).
        attention_backend: ``"sdpa"`` (default), ``"flash_attn"`` or ``"sageattention"``;
            an uninstalled one falls back to SDPA with one warning.
        operations: namespace of the layer classes (``Linear``, ``Conv3d``, ``LayerNorm``) whose
            forward casts weights to the input's dtype/device; default
            :data:`tempomaster_core.ops.CastOps`; ComfyUI's ``comfy.ops.manual_cast`` or
            ``comfy.ops.scaled_fp8_ops()`` work too (contract in :mod:`tempomaster_core.ops`).

    Attributes:
        config: the :class:`DiTConfig`.
        attention_backend: the backend actually used.
        gradient_checkpointing: recompute blocks in backward when training (default False).
        device: where the forward computes (see :attr:`device`).
        trained_limits: what the model was trained on, a
            :class:`~tempomaster_core.trained_limits.TrainedLimits` (frame intervals, clip length), set by
            whoever loads it with its settings (:func:`tempomaster_core.tiny.builtin.load_builtin`, ComfyUI's
            Load TempoMaster Model); ``None`` (the class default) = not declared.
        continuation_settings: how the model continues a video, a
            :class:`~tempomaster_core.continuation_settings.ContinuationSettings` (seconds of context, new frames
            per segment), set by ComfyUI's Load TempoMaster Model from the model's settings; ``None`` (the class
            default) = not declared.

    Raises:
        ValueError: ``config.has_image_input`` (the CLIP image branch is not part of
            TempoMaster) or a head_dim Wan's RoPE cannot split.
        TypeError: ``operations`` lacks one of the layer classes.

    The module holds no buffers, so it can be built on the meta device and
    filled with ``load_state_dict(..., assign=True)``.
    """

    trained_limits = None
    continuation_settings = None

    def __init__(self, config: DiTConfig, attention_backend: str = DEFAULT_BACKEND, operations=CastOps):
        super().__init__()
        check_operations(operations)
        if config.has_image_input:
            raise ValueError(
                "has_image_input=True (Wan I2V CLIP image branch) is not supported: TempoMaster "
                "conditions on frames through the multi-mask input y, not on CLIP features"
            )
        rope_axis_dims(config.head_dim)  # validates head_dim
        self.config = config
        dim = config.dim
        ops = operations
        self.patch_embedding = ops.Conv3d(config.in_dim, dim, kernel_size=config.patch_size, stride=config.patch_size)
        self.text_embedding = nn.Sequential(
            ops.Linear(config.text_dim, dim), nn.GELU(approximate="tanh"), ops.Linear(dim, dim)
        )
        self.time_embedding = nn.Sequential(ops.Linear(config.freq_dim, dim), nn.SiLU(), ops.Linear(dim, dim))
        self.time_projection = nn.Sequential(nn.SiLU(), ops.Linear(dim, dim * 6))
        self.blocks = nn.ModuleList(
            DiTBlock(dim, config.num_heads, config.ffn_dim, config.eps, ops) for _ in range(config.num_layers)
        )
        self.head = Head(dim, config.out_dim, config.patch_size, config.eps, ops)
        self.attention_backend = DEFAULT_BACKEND
        self.set_attention_backend(attention_backend)
        self.gradient_checkpointing = False
        self._execution_device: torch.device | None = None
        self._level_hooks: OrderedDict = OrderedDict()

    def register_level_hook(self, hook) -> RemovableHandle:
        """Call ``hook(level_index, num_levels)`` whenever a level of a tree starts (:meth:`start_level`):
        e.g. a LoRA's per-level strength (:class:`tempomaster_core.lora.LevelStrengths`).

        Returns:
            a handle whose ``remove()`` unregisters the hook.
        """
        handle = RemovableHandle(self._level_hooks)
        self._level_hooks[handle.id] = hook
        return handle

    def start_level(self, level_index: int, num_levels: int) -> None:
        """Run the level hooks: the level runners call this before a level's first compute
        (:func:`tempomaster_core.pipeline.run_level`), with the level's index (0 = blueprint) and the
        number of levels of its tree. A hook may raise to refuse the tree (e.g. a list of per-level
        LoRA strengths of another length)."""
        for hook in list(self._level_hooks.values()):
            hook(level_index, num_levels)

    def set_attention_backend(self, name: str) -> str:
        """Select the attention backend; returns the one actually used.

        Raises:
            InputError: (a ``ValueError``) ``name`` not in :data:`~tempomaster_core.attention.BACKENDS`
                (checked by :func:`~tempomaster_core.attention.resolve_backend`).
        """
        self.attention_backend = resolve_backend(name)
        return self.attention_backend

    @property
    def dtype(self) -> torch.dtype:
        """Compute dtype of the matmuls and attention (the patch embedding's storage dtype: the
        storage dtype of every weight, or bf16/fp16/fp32 next to fp8 block weights)."""
        return self.patch_embedding.weight.dtype

    @property
    def weight_dtype(self) -> torch.dtype:
        """Storage dtype of the blocks' linear weights (``float8_e4m3fn``/``float8_e5m2`` when
        fp8-stored, else :attr:`dtype`)."""
        return self.blocks[0].ffn[0].weight.dtype if len(self.blocks) else self.dtype

    @property
    def device(self) -> torch.device:
        """Where the forward computes and returns its output.

        Set it (``model.device = "cuda"``) when the weights are spread over devices -- block
        swap (:mod:`tempomaster_core.block_swap`), ComfyUI's ModelPatcher (which sets
        ``model.device`` when it loads a model) -- and the layers cast their weights to it;
        ``None`` (the default, and after ``model.to(...)``) means the patch embedding's device.
        """
        return getattr(self, "_execution_device", None) or self.patch_embedding.weight.device

    @device.setter
    def device(self, value) -> None:
        self._execution_device = None if value is None else torch.device(value)

    def _apply(self, fn, recurse=True):
        # model.to(...)/.cuda()/.cpu() put every weight on one device: forget a set device
        self._execution_device = None
        return super()._apply(fn, recurse)

    def _check_inputs(self, x, y, context, temporal_positions):
        cfg = self.config
        pt, ph, pw = cfg.patch_size
        if x.dim() != 5 or x.shape[1] != cfg.out_dim:
            raise ValueError(f"x must be a noisy latent [B, {cfg.out_dim}, T, H, W], got {tuple(x.shape)}")
        b, _, t, h, w = x.shape
        if h % ph or w % pw or t % pt:
            raise ValueError(
                f"latent size T={t}, H={h}, W={w} is not divisible by the patch size {cfg.patch_size}; "
                f"use latent H/W multiples of {ph}/{pw} (pixel sizes multiples of {8 * ph}/{8 * pw})"
            )
        expected_y = (b, cfg.condition_channels, t, h, w)
        if y is None or tuple(y.shape) != expected_y:
            got = None if y is None else tuple(y.shape)
            raise ValueError(
                f"y must be the multi-mask condition {list(expected_y)} "
                f"({cfg.mask_channels} mask + {cfg.out_dim} condition-latent channels), got {got}"
            )
        if context.dim() != 3 or context.shape[-1] != cfg.text_dim or context.shape[0] not in (1, b):
            raise ValueError(
                f"context must be text embeddings [B or 1, L, {cfg.text_dim}] with B={b}, got {tuple(context.shape)}"
            )
        if not torch.is_tensor(temporal_positions):
            temporal_positions = torch.as_tensor(temporal_positions)
        if temporal_positions.dim() == 1:
            temporal_positions = temporal_positions[None]
        if temporal_positions.dim() != 2 or temporal_positions.shape[0] not in (1, b):
            raise ValueError(
                f"temporal_positions must be [B, T] or [T] (B={b}, T={t // pt}), got {tuple(temporal_positions.shape)}"
            )
        return temporal_positions

    def _timestep(self, timestep, batch: int, device) -> torch.Tensor:
        if not torch.is_tensor(timestep):
            timestep = torch.tensor(timestep, dtype=torch.float64)
        timestep = timestep.to(device).reshape(-1)
        if timestep.numel() == 1:
            timestep = timestep.expand(batch)
        if timestep.numel() != batch:
            raise ValueError(f"timestep must be a scalar, [1] or [B={batch}], got {timestep.numel()} values")
        return timestep

    def forward(
        self,
        x: torch.Tensor,
        timestep,
        context: torch.Tensor,
        y: torch.Tensor,
        temporal_positions,
    ) -> torch.Tensor:
        """Predict the flow-matching velocity.

        Args:
            x: ``[B, out_dim, T, H, W]`` noisy latent (normalised Wan 2.1 latent space,
                T latent frames, H/W = pixel size / 8), any float dtype.
            timestep: ``[B]``, ``[1]`` or scalar (tensor or number): sigma * 1000 in 0..1000.
                A bf16 tensor is used with its bf16 values.
            context: ``[B, L, text_dim]`` text embeddings (umT5, L = 512, padded positions are
                zeros and attended to); a batch of 1 is shared by all B items.
            y: ``[B, in_dim - out_dim, T, H, W]`` multi-mask condition (mask channels, then the
                condition latent), concatenated after ``x`` on channels.
            temporal_positions: ``[B, T]`` or ``[T]`` (float or int) RoPE time index of every
                latent frame, e.g. ``(c*T + j) * interval`` for chunk c of a level with frame
                interval ``interval`` (reference); may be fractional or > 1024.

        Returns:
            ``[B, out_dim, T, H, W]`` float32 velocity.

        Raises:
            ValueError: shapes that do not match the contract (H/W not divisible by the patch
                size, wrong channel counts, mismatched batch/frames).
        """
        cfg = self.config
        pos = self._check_inputs(x, y, context, temporal_positions)
        dtype = self.dtype
        device = self.device
        b, _, t, h, w = x.shape
        pt, ph, pw = cfg.patch_size
        grid = (t // pt, h // ph, w // pw)

        # time: sinusoid -> MLP -> 6-way projection, all float32 (Wan)
        # computed once per distinct timestep and gathered: a batch item's embedding then does not
        # depend on the batch size (BLAS rounds a matmul differently for different row counts), so
        # chunks denoised together or one at a time (max_batch) give bit-identical results
        tsteps, item = torch.unique(self._timestep(timestep, b, device), return_inverse=True)
        t_emb = _linear_fp32(self.time_embedding[0], sinusoidal_embedding(cfg.freq_dim, tsteps))
        t_emb = _linear_fp32(self.time_embedding[2], F.silu(t_emb))
        t_mod = _linear_fp32(self.time_projection[1], F.silu(t_emb)).unflatten(1, (6, cfg.dim))[item]
        t_emb = t_emb[item]

        context = per_item(self.text_embedding, context.to(device=device, dtype=dtype))

        # patchify: Conv3d with stride == kernel is a linear map of each patch (item by item, see per_item)
        xin = torch.cat([x.to(device=device, dtype=dtype), y.to(device=device, dtype=dtype)], dim=1)
        tokens = rearrange(per_item(self.patch_embedding, xin), "b c f h w -> b (f h w) c").float()

        rope = rope_rotation(pos, grid, cfg.head_dim, theta=cfg.rope_theta, device=device)

        backend = self.attention_backend
        for block in self.blocks:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                tokens = checkpoint(block, tokens, context, t_mod, rope, backend, use_reentrant=False)
            else:
                tokens = block(tokens, context, t_mod, rope, backend)

        out = self.head(tokens, t_emb)
        return rearrange(
            out,
            "b (f h w) (p q r c) -> b c (f p) (h q) (w r)",
            f=grid[0], h=grid[1], w=grid[2], p=pt, q=ph, r=pw,
        )
