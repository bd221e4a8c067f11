"""ComfyUI's native ``MODEL`` (a Wan 2.1 DiT loaded by Load Diffusion Model) as a TempoMaster denoising model.

ComfyUI's own loader reads the TempoMaster checkpoint as a 36-channel Wan 2.1 model
(``comfy.model_base.WAN21`` around ``comfy.ldm.wan.model.WanModel``). Everything users chain on such a
``MODEL`` -- ``LoraLoaderModelOnly``, the fp8 weight dtypes of Load Diffusion Model, GGUF loaders,
``TorchCompileModel``, attention patches -- lives in its ``ModelPatcher``. :class:`NativeWanDiT` lets the
TempoMaster samplers run such a model through ComfyUI's own ``apply_model`` (so weight patches, ops,
``APPLY_MODEL``/``DIFFUSION_MODEL`` wrappers and ``transformer_options`` patches apply), with two things
the native forward lacks:

* **frame-rate-aware RoPE** (paper, Sec. 3): latent frame ``j`` of a chunk sits at temporal position
  ``start + j * interval``. ComfyUI 0.3.64's ``WanModel.rope_encode`` only counts ``0, 1, 2, ...``; a
  ``DIFFUSION_MODEL`` wrapper of ours (innermost, so every other wrapper still runs around it) builds
  the rotary table from the positions the core passes, per batch item (chunks with different starts in
  one call), with the model's own ``rope_embedder``, and calls ``WanModel.forward_orig`` with it;
* **the multi-mask condition** ``y`` (mask channels, then the condition latent) is ComfyUI's Wan
  ``c_concat`` layout already (``WAN21.concat_cond`` returns ``cat(mask, image)`` with 1 = known frame,
  the noisy latent first), so it is passed as ``c_concat`` unchanged.

The core sees a :class:`~tempomaster_core.protocols.DenoisingModel`: ``model(x, timestep, context, y,
temporal_positions)`` returns the velocity ``v = noise - x0``, recovered from ComfyUI's denoised output
``x - sigma * v`` (ComfyUI's flow models are ``CONST``): the rounding of that division is scaled back by
the step size ``<= sigma`` in every sampler step.

Not applied: ``model_function_wrapper`` (ComfyUI calls it from its KSampler with cond/uncond bookkeeping the
TempoMaster samplers do not have; a warning says so) and hooks of ``comfy.hooks``. Several ``devices``
(replicas in threads) are refused for a native model.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from tempomaster_core.config import DiTConfig
from tempomaster_core.validation import InputError

log = logging.getLogger("TempoMaster")

POSITIONS_KEY = "tempomaster_temporal_positions"
"""``transformer_options`` key holding the float32 ``[B, T]`` RoPE temporal positions of a call."""

ROPE_WRAPPER_KEY = "tempomaster_frame_rate_rope"
"""Key of our ``DIFFUSION_MODEL`` wrapper in ``transformer_options["wrappers"]``."""

WARNED_ATTRIBUTE = "_tempomaster_skips_model_function_wrapper"
"""Set on a ``ModelPatcher`` once the warning that its ``model_function_wrapper`` is not applied was logged."""

NATIVE_DIT_CLASS = "WanModel"
"""The ``comfy.ldm.wan.model`` class a native ``MODEL`` must hold: the plain Wan 2.1 DiT (not VACE, camera,
S2V or the other Wan variants, whose forwards take other inputs)."""


def is_native_model(model: Any) -> bool:
    """True for a ComfyUI ``ModelPatcher`` around a ComfyUI model (``patcher.model.diffusion_model``), i.e. a
    ``MODEL`` from ComfyUI's loaders rather than a ``TEMPO_MODEL`` from Load TempoMaster Model."""
    inner = getattr(model, "model", None)
    return hasattr(model, "clone") and hasattr(inner, "diffusion_model") and hasattr(inner, "apply_model")


def _refuse(what: str) -> InputError:
    return InputError(
        f"this MODEL {what}; the TempoMaster samplers take a Wan 2.1 DiT with in_dim = 2 x latent channels + 4 "
        "and no CLIP image branch: load the TempoMaster checkpoint with Load Diffusion Model (or Load TempoMaster "
        "Model), not a Wan text-to-video, image-to-video, VACE or Wan 2.2 5B model"
    )


def native_config(patcher: Any) -> DiTConfig:
    """The :class:`~tempomaster_core.config.DiTConfig` of a native Wan ``MODEL``, read from its ``WanModel``.

    Raises:
        tempomaster_core.validation.InputError: not a plain flow-matching Wan 2.1 ``WanModel`` (or one without
            the ``forward_orig`` / ``rope_embedder`` of ComfyUI 0.3.64), a CLIP image branch (Wan 2.1 I2V /
            FLF2V), or input channels that are not ``2 * out_dim + 4`` (e.g. Wan text-to-video: 16, Wan 2.2 5B:
            48); said before any compute.
    """
    base = patcher.model
    dm = base.diffusion_model
    name = type(dm).__name__
    if name != NATIVE_DIT_CLASS:
        raise _refuse(f"holds a {name} ({type(base).__name__}), not a Wan 2.1 {NATIVE_DIT_CLASS}")
    if not (callable(getattr(dm, "forward_orig", None)) and callable(getattr(dm, "rope_embedder", None))):
        raise InputError(
            f"this ComfyUI's {NATIVE_DIT_CLASS} has no forward_orig / rope_embedder, which the frame-rate-aware RoPE "
            "goes through (checked on ComfyUI 0.3.64); load the checkpoint with Load TempoMaster Model instead")
    model_type = getattr(getattr(base, "model_type", None), "name", None)
    if model_type != "FLOW":
        raise _refuse(f"predicts {model_type} (model type), not a flow-matching velocity")
    if getattr(dm, "img_emb", None) is not None:
        raise _refuse("has a CLIP image branch (Wan 2.1 image-to-video)")
    in_dim, out_dim = int(dm.in_dim), int(dm.out_dim)
    if in_dim != 2 * out_dim + 4:
        raise _refuse(f"has {in_dim} input channels for {out_dim} latent channels")
    return DiTConfig(
        dim=int(dm.dim), ffn_dim=int(dm.ffn_dim), num_heads=int(dm.num_heads), num_layers=len(dm.blocks),
        in_dim=in_dim, out_dim=out_dim, text_dim=int(dm.text_dim), freq_dim=int(dm.freq_dim), eps=float(dm.eps),
        patch_size=tuple(int(p) for p in dm.patch_size),
        rope_theta=float(getattr(dm.rope_embedder, "theta", DiTConfig.rope_theta)),
    )


def rope_ids(positions: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
    """Token coordinates for ComfyUI's ``EmbedND`` rotary table: float32 ``[B, f*h*w, 3]`` = (temporal position
    of the token's latent frame, row, column), tokens in ``(f, h, w)`` order as the patch embedding flattens
    them.

    Args:
        positions: ``[B, f]`` temporal RoPE positions per batch item (``start + j * interval``).
        grid: ``(f, h, w)`` tokens along time, height and width.
    """
    f, h, w = grid
    b = positions.shape[0]
    ids = torch.zeros(b, f, h, w, 3, dtype=torch.float32, device=positions.device)
    ids[..., 0] = positions.to(torch.float32).view(b, f, 1, 1)
    ids[..., 1] = torch.arange(h, dtype=torch.float32, device=positions.device).view(1, 1, h, 1)
    ids[..., 2] = torch.arange(w, dtype=torch.float32, device=positions.device).view(1, 1, 1, w)
    return ids.reshape(b, f * h * w, 3)


def frame_rate_rope_forward(executor, x, timestep, context, clip_fea=None, time_dim_concat=None,
                            transformer_options=None, **kwargs):
    """The innermost ``DIFFUSION_MODEL`` wrapper: ``WanModel.forward_orig`` with the rotary table of the
    temporal positions in ``transformer_options[POSITIONS_KEY]`` (instead of ``rope_encode``'s 0, 1, 2, ...).

    ``x`` ``[B, in_dim, T, H, W]`` (already a multiple of the patch size: the core's plans are), returns the
    model output ``[B, out_dim, T, H, W]``.
    """
    dm = executor.class_obj
    options = transformer_options or {}
    positions = options[POSITIONS_KEY].to(x.device)
    pt, ph, pw = dm.patch_size
    grid = (x.shape[2] // pt, x.shape[3] // ph, x.shape[4] // pw)
    freqs = dm.rope_embedder(rope_ids(positions, grid)).movedim(1, 2)
    return dm.forward_orig(x, timestep, context, clip_fea=None, freqs=freqs, transformer_options=options, **kwargs)


class NativeWanDiT:
    """A native ComfyUI Wan ``MODEL`` (its ``ModelPatcher``) seen as a
    :class:`~tempomaster_core.protocols.DenoisingModel` (see the module docstring).

    Attributes:
        patcher: the ``ModelPatcher``; ComfyUI loads it (``load_models_gpu``) before a level.
        config: :func:`native_config`.

    Raises (constructor):
        tempomaster_core.validation.InputError: see :func:`native_config`.
    """

    def __init__(self, patcher: Any):
        self.patcher = patcher
        self.config = native_config(patcher)
        if "model_function_wrapper" in patcher.model_options and not getattr(patcher, WARNED_ATTRIBUTE, False):
            setattr(patcher, WARNED_ATTRIBUTE, True)  # once per patcher, not at every level
            log.warning("TempoMaster: this MODEL has a model_function_wrapper (a KSampler-only patch); the TempoMaster "
                        "samplers call the model without it")

    @property
    def device(self) -> torch.device:
        """ComfyUI's load device of the model (where the latents go)."""
        return torch.device(self.patcher.load_device)

    @property
    def dtype(self) -> torch.dtype:
        """The compute dtype: the manual-cast dtype of fp8 / GGUF weights, else the weights' dtype."""
        base = self.patcher.model
        return base.manual_cast_dtype or base.get_dtype()

    @property
    def weight_dtype(self) -> torch.dtype:
        """The dtype the weights are stored in (priced by the cost model)."""
        return self.patcher.model.get_dtype()

    def parameters(self):
        """The Wan DiT's parameters (their bytes are the weights ComfyUI loads)."""
        return self.patcher.model.diffusion_model.parameters()

    def named_parameters(self):
        """Named parameters of the Wan DiT (named when a result is NaN)."""
        return self.patcher.model.diffusion_model.named_parameters()

    def _transformer_options(self, positions: torch.Tensor, sigma: torch.Tensor) -> dict:
        """The patcher's ``transformer_options`` (patches, attention overrides) and wrappers, as ComfyUI's
        samplers pass them, plus our positions and RoPE wrapper (last: innermost)."""
        from comfy.patcher_extension import WrappersMP, copy_nested_dicts, merge_nested_dicts

        options = copy_nested_dicts(self.patcher.model_options.get("transformer_options", {}))
        wrappers = merge_nested_dicts(options.get("wrappers", {}), self.patcher.wrappers)
        wrappers.setdefault(WrappersMP.DIFFUSION_MODEL, {})[ROPE_WRAPPER_KEY] = [frame_rate_rope_forward]
        options["wrappers"] = wrappers
        options[POSITIONS_KEY] = positions
        options["sigmas"] = sigma
        return options

    def __call__(self, x: torch.Tensor, timestep, context: torch.Tensor, y: torch.Tensor,
                 temporal_positions) -> torch.Tensor:
        """Predict the velocity.

        Args:
            x: ``[B, C, T, h, w]`` noisy normalised latents (on :attr:`device`).
            timestep: ``[B]``, ``[1]`` or a scalar: sigma * 1000.
            context: ``[B or 1, L, text_dim]`` text embeddings.
            y: ``[B, mask_channels + C, T, h, w]`` multi-mask condition.
            temporal_positions: ``[B, T]`` or ``[T]`` RoPE temporal positions.

        Returns:
            float32 ``[B, C, T, h, w]`` velocity ``noise - x0``.

        Raises:
            ValueError: shapes that do not fit the model (channels, patch size, batch, frames).
        """
        b, c, t, h, w = x.shape
        cfg = self.config
        pt, ph, pw = cfg.patch_size
        if c != cfg.out_dim or y.shape[1] != cfg.in_dim - cfg.out_dim or y.shape[0] != b or y.shape[2:] != x.shape[2:]:
            raise ValueError(f"x {tuple(x.shape)} / y {tuple(y.shape)} do not fit a model with in_dim {cfg.in_dim} "
                             f"and out_dim {cfg.out_dim}")
        if t % pt or h % ph or w % pw:
            raise ValueError(f"latent size {t}x{h}x{w} is not a multiple of the patch size {cfg.patch_size}")
        positions = torch.as_tensor(temporal_positions, dtype=torch.float32).reshape(-1, t).expand(b, t)
        sigma = (torch.as_tensor(timestep, dtype=torch.float32).reshape(-1) / 1000.0).to(x.device).expand(b)
        if not bool((sigma > 0).all()):
            raise ValueError("timestep must be > 0: the velocity is recovered from ComfyUI's x - sigma * v")
        if context.shape[0] == 1 and b > 1:
            context = context.expand(b, *context.shape[1:])
        options = self._transformer_options(positions.contiguous(), sigma)
        denoised = self.patcher.model.apply_model(x, sigma, c_concat=y, c_crossattn=context,
                                                  transformer_options=options)
        return (x.float() - denoised.float()) / sigma.view(b, 1, 1, 1, 1)
