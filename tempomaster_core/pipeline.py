"""Next-frame-rate generation: blueprint and refinement level runners, and ``generate``.

Paper method section / the reference's ``SequentialPipeline.__call__``:

1. **Blueprint** (level 0): the whole clip at the lowest frame rate (6 fps for
   intervals (4, 2, 1)), one chunk, full bidirectional attention, conditioned on
   the user's frames (I2V, first+last, keyframes) or on nothing (T2V).
2. **Refinement** (levels 1..): the frames of the level above are placed at
   their positions in each chunk's clip (anchors + chunk boundaries, see
   :mod:`tempomaster_core.plan`), the clips are VAE-encoded as one batch, and all
   chunks are denoised in parallel as one batch with frame-rate-aware RoPE
   positions; every chunk is decoded, the chunks are concatenated in time and the
   padding of the last chunk is dropped.

Sampling per level: flow-matching Euler with the shifted schedule
(:mod:`tempomaster_core.sampling`), guidance CFG or APG in x0 space
(:mod:`tempomaster_core.guidance`), noise from a CPU generator seeded with the
same seed at every level (as the reference does).

Precision: latents, noise, the Euler update and the guidance run in float32
(the reference keeps latents in bf16; float32 is more accurate and costs
nothing relevant). The DiT inputs are cast to the model's parameter dtype. The
timestep ``sigma * 1000`` is rounded to the model dtype before the DiT, and
the guidance uses that rounded timestep divided by 1000 in the model dtype --
exactly what the reference does in bf16, because that is the timestep the
model saw. The Euler step uses the exact float32 sigmas (as the reference's scheduler does).

Nothing is stored on the model: an exception raised by the progress callback
(cancellation) propagates and leaves the model ready for the next run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Union

import torch

from .anchor_correction import ANCHOR_CORRECTION, correct_level
from .known_latents import REPLACE_KNOWN_LATENTS, known_latent_frames, replace_known
from .conditioning import blueprint_clip, build_condition, normalize_condition_frames, refinement_clips
from .defaults import CFG, GUIDANCE, SEED, default_schedule
from .distributed import level_work
from .guidance import guidance_kind, make_guidance, x0_from_velocity
from .level_settings import per_level
from .plan import LevelPlan, TreePlan
from .protocols import NonFiniteError, check_compatible, check_vae_result, codec_device
from .noise_prior import model_frame_correlation
from .sampling import NUM_TRAIN_TIMESTEPS, euler_step, flow_sigmas, next_sigmas, seeded_noise
from .validation import (
    InputError, require_cfg, require_flag, require_optional_batch, require_seed, require_shift, require_steps,
    with_fields,
)

__all__ = [
    "LevelResult", "LevelSettings", "NonFiniteError", "check_level_inputs", "check_level_settings",
    "denoise", "generate", "guided_cfg", "level_settings", "run_blueprint", "run_level", "run_refinement",
    "tree_settings",
]

ProgressCallback = Callable[[int, int, int, torch.Tensor], None]
"""``progress(level_index, step, total_steps, preview_latents)``: called after every
denoising step (``step`` counts completed steps, 1..total_steps);
``preview_latents`` is the current x0 estimate of the first chunk, float32 CPU
``[C, T, h, w]``. Raise inside it to cancel."""

ClipMaker = Callable[[LevelPlan], tuple[torch.Tensor, torch.Tensor]]
"""``make_clips(level) -> (clips, masks)``: a level's condition clips float32
``[chunks, 3, P, H, W]`` in ``[-1, 1]`` and their masks ``[chunks, P]`` (1 = known frame)."""


@dataclass
class LevelResult:
    """The output of one level, carrying what the next level needs.

    Attributes:
        plan: the :class:`TreePlan` this level belongs to.
        level_index: index into ``plan.levels`` (0 = blueprint).
        frames: float32 CPU ``[3, F, H, W]`` in ``[-1, 1]``, exactly
            ``plan.levels[level_index].num_frames`` pixel frames (no padding).
        latents: float32 CPU ``[num_chunks, C, T, h, w]``, the denoised latents of every chunk.
        fps: frame rate of ``frames`` (base fps / interval).
    """

    plan: TreePlan
    level_index: int
    frames: torch.Tensor
    latents: torch.Tensor
    fps: float

    @property
    def level(self) -> LevelPlan:
        """The :class:`LevelPlan` of this result."""
        return self.plan.levels[self.level_index]

    @property
    def is_last(self) -> bool:
        """True for the last level of the plan (the final video)."""
        return self.level_index == self.plan.num_levels - 1

    def to_images(self) -> torch.Tensor:
        """Frames as ComfyUI IMAGE: float32 ``[F, H, W, 3]`` in ``[0, 1]``."""
        return ((self.frames.permute(1, 2, 3, 0) + 1.0) * 0.5).clamp(0.0, 1.0).contiguous()


# -- checks -----------------------------------------------------------------------------


def _model_device_dtype(model: Any) -> tuple[torch.device, torch.dtype]:
    """Compute device and dtype of the model: its ``device`` and ``dtype`` attributes (a DiT's
    weights may be spread over devices, :attr:`TempoMasterDiT.device`), else those of its first
    parameter (CPU float32 if it has none)."""
    params = getattr(model, "parameters", None)
    first = next(iter(params()), None) if callable(params) else None
    device = getattr(model, "device", None)
    if not isinstance(device, torch.device):
        device = first.device if first is not None else torch.device("cpu")
    dtype = getattr(model, "dtype", None)
    if not isinstance(dtype, torch.dtype):
        dtype = first.dtype if first is not None else torch.float32
    return device, dtype


def _check_setup(model: Any, codec: Any, plan: TreePlan) -> None:
    config = getattr(model, "config", None)
    if config is None:
        raise TypeError(f"{type(model).__name__} has no .config; pass a TempoMaster DiT (tempomaster_core.model)")
    if not isinstance(plan, TreePlan):
        raise TypeError(f"plan must be a TreePlan, got {type(plan).__name__}")
    check_compatible(codec, config)
    if plan.temporal_factor != int(codec.temporal_factor):
        raise ValueError(
            f"the plan was built for temporal factor {plan.temporal_factor} but the VAE packs "
            f"{codec.temporal_factor} pixel frames per latent frame; rebuild the plan with "
            f"temporal_factor={codec.temporal_factor}"
        )
    _, ph, pw = (int(p) for p in config.patch_size)
    sf = int(codec.spatial_factor)
    for name, value, patch in (("height", plan.height, ph), ("width", plan.width, pw)):
        if value % (sf * patch):
            raise ValueError(
                f"plan {name} {value} is not divisible by VAE spatial factor x patch size = {sf * patch}; "
                f"use {value // (sf * patch) * sf * patch or sf * patch} or {(value // (sf * patch) + 1) * sf * patch}"
            )


def _check_text(embeds: Any, name: str, config: Any) -> torch.Tensor:
    if not isinstance(embeds, torch.Tensor) or embeds.dim() != 3 or embeds.shape[0] != 1:
        shape = tuple(embeds.shape) if isinstance(embeds, torch.Tensor) else type(embeds).__name__
        raise ValueError(f"{name} text embeddings must be a tensor [1, L, {config.text_dim}], got {shape}")
    if embeds.shape[2] != int(config.text_dim):
        raise ValueError(
            f"{name} text embeddings have {embeds.shape[2]} channels but the model expects "
            f"{config.text_dim} (umT5-XXL gives 4096 for Wan); use the text encoder that belongs to the model"
        )
    if embeds.shape[1] < 1:
        raise InputError(f"{name} text embeddings must have at least one token, got shape {tuple(embeds.shape)}")
    if not bool(torch.isfinite(embeds).all()):
        bad = int((~torch.isfinite(embeds)).sum())
        raise InputError(
            f"{name} text embeddings must be finite, got {bad} NaN or infinite value(s) of {embeds.numel()}; "
            "the text encoder output is broken (e.g. an fp16 overflow in the text encoder: load it in bf16/fp32, "
            "or re-encode the prompt)"
        )
    return embeds


@dataclass(frozen=True)
class LevelSettings:
    """Sampling settings of one level, validated when made: the one value the level runners pass on.

    Built by :func:`check_level_settings` (keyword arguments, the reference's defaults) or
    directly; either way every field is checked and normalised here (no model needed),
    so a ``LevelSettings`` is always valid: the runners and :func:`denoise` take it as is.

    Attributes:
        steps: Euler steps, int >= 1.
        shift: schedule shift, float, finite > 0 (and giving a finite float32 schedule).
        cfg: guidance scale, float in ``(0, MAX_CFG]`` (:data:`~tempomaster_core.validation.MAX_CFG`
            = 100); 1 = no guidance (no negative pass).
        guidance: ``"apg"`` or ``"cfg"`` (stored lower case).
        seed: noise seed, int in ``[0, 2**64)``.
        max_batch: chunks per DiT forward, int >= 1, or ``None`` = all chunks of the level.
            Results do not depend on it (see :func:`run_refinement`).
        cfg_batching: run the positive and negative passes as one forward of twice the batch
            (when both embeddings have the same length); results do not depend on it beyond
            float rounding of batched kernels.
        anchor_correction: after decoding a refinement level, remove from each chunk the smooth (low
            spatial frequency) part of the error it leaves on its anchors, interpolated in time
            (:mod:`tempomaster_core.anchor_correction`; not in the reference, default off); ignored on the blueprint.
        replace_known_latents: after every Euler step, put each latent frame whose pixel frames are all known
            back on its flow path to its condition latent (:mod:`tempomaster_core.known_latents`; not in the
            reference, default off), so it ends equal to it.

    Raises:
        InputError (a ValueError): ``steps`` not an int >= 1; ``shift`` not finite > 0 (or
            a non-finite schedule); ``cfg`` not finite, <= 0 or > 100; unknown
            ``guidance``; ``seed`` not an int in ``[0, 2**64)``; ``max_batch`` not None or
            an int >= 1; ``anchor_correction`` or ``replace_known_latents`` not a bool. Messages name the setting,
            the rule and the value.
    """

    steps: int
    shift: float
    cfg: float = CFG
    guidance: str = GUIDANCE
    seed: int = SEED
    max_batch: Optional[int] = None
    cfg_batching: bool = True
    anchor_correction: bool = ANCHOR_CORRECTION
    replace_known_latents: bool = REPLACE_KNOWN_LATENTS

    def __post_init__(self) -> None:
        steps = require_steps(self.steps)
        shift = require_shift(self.shift)
        flow_sigmas(steps, shift)  # the float32 schedule itself must be finite
        cfg = require_cfg(self.cfg)
        key = guidance_kind(self.guidance)
        for name, value in (("steps", steps), ("shift", shift), ("cfg", cfg), ("guidance", key),
                            ("seed", require_seed(self.seed)), ("max_batch", require_optional_batch(self.max_batch)),
                            ("cfg_batching", bool(self.cfg_batching)),
                            ("anchor_correction", require_flag(self.anchor_correction, "anchor_correction")),
                            ("replace_known_latents", require_flag(self.replace_known_latents,
                                                                   "replace_known_latents"))):
            object.__setattr__(self, name, value)

    @property
    def guided(self) -> bool:
        """True when the level runs a negative pass (``cfg != 1``)."""
        return self.cfg != 1.0


def check_level_settings(*, steps: Any, shift: Any, cfg: Any = CFG, guidance: Any = GUIDANCE, seed: Any = SEED,
                         max_batch: Any = None, cfg_batching: bool = True,
                         anchor_correction: bool = ANCHOR_CORRECTION,
                         replace_known_latents: bool = REPLACE_KNOWN_LATENTS) -> LevelSettings:
    """Validate one level's sampling settings before any compute (torch-light, no model needed).

    The public level runners call this first; the ComfyUI sampler nodes and the command
    line call it before the VAE encode and before moving the DiT, so a bad value never
    costs compute. Defaults: :mod:`tempomaster_core.defaults` (cfg 8, APG, seed 0).

    Returns:
        The :class:`LevelSettings` (values normalised: ints, floats, lower-case guidance).

    Raises:
        InputError (a ValueError): see :class:`LevelSettings`.
    """
    return LevelSettings(steps=steps, shift=shift, cfg=cfg, guidance=guidance, seed=seed, max_batch=max_batch,
                         cfg_batching=cfg_batching, anchor_correction=anchor_correction,
                         replace_known_latents=replace_known_latents)


def level_settings(level_index: int, settings: Optional[LevelSettings] = None, **overrides: Any) -> LevelSettings:
    """The :class:`LevelSettings` a level runs with: ``settings`` (default: the reference's for that
    level), with the fields named in ``overrides`` replaced -- the level runners' keyword settings.

    Args:
        level_index: 0 for the blueprint (default steps / shift 50 / 5.0), >= 1 for a refinement
            (32 / 3.0); :func:`~tempomaster_core.defaults.default_schedule`.
        settings: a :class:`LevelSettings`, or None.
        overrides: :class:`LevelSettings` fields (``steps``, ``shift``, ``cfg``, ``guidance``, ``seed``,
            ``max_batch``, ``cfg_batching``, ``anchor_correction``, ``replace_known_latents``), checked as the
            dataclass checks them.

    Raises:
        TypeError: ``settings`` is not a LevelSettings, or an override names no setting
            (:func:`~tempomaster_core.validation.with_fields`).
        InputError (a ValueError): a bad value (see :class:`LevelSettings`).
    """
    if settings is None:
        steps, shifts = default_schedule(level_index + 1)
        settings = LevelSettings(steps=steps[-1], shift=shifts[-1])
    return with_fields(settings, overrides, LevelSettings)


def tree_settings(levels: int, *, steps: Optional[Sequence[int]] = None, shifts: Optional[Sequence[float]] = None,
                  cfg: Union[float, Sequence[float]] = CFG, guidance: Union[str, Sequence[str]] = GUIDANCE,
                  seed: int = SEED, max_batch: Optional[int] = None, cfg_batching: bool = True,
                  anchor_correction: bool = ANCHOR_CORRECTION,
                  replace_known_latents: bool = REPLACE_KNOWN_LATENTS) -> list[LevelSettings]:
    """One :class:`LevelSettings` per level of a tree (blueprint first), checked before any compute.

    Args:
        levels: number of levels of the tree.
        steps, shifts: one per level (no scalar: the blueprint and the refinements differ); None =
            the reference's (:func:`~tempomaster_core.defaults.default_schedule`).
        cfg, guidance: one value for every level, or one per level.
        seed, max_batch, cfg_batching, anchor_correction, replace_known_latents: the same for every level
            (reference: one seed for all levels; anchor correction acts on the refinement levels only).

    Raises:
        ValueError: a list with another number of entries than ``levels``; plus the errors of
            :class:`LevelSettings` (:class:`~tempomaster_core.validation.InputError`).
    """
    reference = default_schedule(levels)
    steps = reference.steps if steps is None else steps
    shifts = reference.shifts if shifts is None else shifts
    return [
        check_level_settings(steps=s, shift=sh, cfg=c, guidance=g, seed=seed, max_batch=max_batch,
                             cfg_batching=cfg_batching, anchor_correction=anchor_correction,
                             replace_known_latents=replace_known_latents)
        for s, sh, c, g in zip(per_level(steps, "steps", levels, allow_scalar=False),
                               per_level(shifts, "shifts", levels, allow_scalar=False),
                               per_level(cfg, "cfg", levels, allow_scalar=True),
                               per_level(guidance, "guidance", levels, allow_scalar=True))
    ]


def guided_cfg(settings: Sequence[LevelSettings]) -> float:
    """The cfg of the first guided level of ``settings`` (1.0 when none is): what
    :func:`check_level_inputs` needs to know whether a negative prompt is required."""
    return next((level.cfg for level in settings if level.guided), 1.0)


def check_level_inputs(model: Any, codec: Any, plan: TreePlan, positive: Any, negative: Any,
                       cfg: float) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Check that model, codec, plan and text embeddings fit together, before any compute.

    Args:
        model, codec, plan: as :func:`run_blueprint`.
        positive, negative: text embeddings ``[1, L, text_dim]``; ``negative`` is only
            checked (and only returned) when ``cfg != 1``.
        cfg: the level's guidance scale.

    Returns:
        ``(positive, negative or None)``.

    Raises:
        TypeError/ValueError: model without ``.config``, not a TreePlan, VAE/model/plan
            mismatch, text embeddings of the wrong shape or width.
        InputError (a ValueError): NaN/inf in the text embeddings; ``negative`` is None
            while ``cfg != 1``.
    """
    _check_setup(model, codec, plan)
    config = model.config
    positive = _check_text(positive, "positive", config)
    if float(cfg) == 1.0:
        return positive, None
    if negative is None:
        raise InputError("cfg != 1 needs negative text embeddings (an empty prompt's embeddings are fine)")
    return positive, _check_text(negative, "negative", config)


def _non_finite_parameters(model: Any, limit: int = 3) -> tuple[int, list[str]]:
    """``(count, first names)`` of parameters holding NaN/inf (only called once a result is non-finite)."""
    named = getattr(model, "named_parameters", None)
    if not callable(named):
        return 0, []
    count, names = 0, []
    for name, param in named():
        if param.is_floating_point() and not bool(torch.isfinite(param).all()):
            count += 1
            if len(names) < limit:
                names.append(name)
    return count, names


def _non_finite_latents_error(model: Any, level_index: int, step: int, steps: int, cfg: float,
                              dtype: torch.dtype) -> NonFiniteError:
    """The :class:`NonFiniteError` for NaN/inf latents, with the most likely cause first."""
    count, names = _non_finite_parameters(model)
    causes = []
    if count:
        causes.append(
            f"the model has {count} parameter tensor(s) with NaN/inf (e.g. {', '.join(names)}): the checkpoint is "
            "corrupt or was saved after a diverged training run; re-download or re-convert it"
        )
    if dtype == torch.float16:
        causes.append("the DiT runs in fp16, whose range overflows for Wan activations: load it in bf16 or fp32")
    eps = getattr(getattr(model, "config", None), "eps", None)
    if isinstance(eps, (int, float)) and not (math.isfinite(eps) and eps > 0):
        causes.append(f"the model's normalization eps is {eps!r} (from the checkpoint metadata); it must be > 0")
    if not count:
        causes.append("non-finite model weights or an fp16 overflow inside the DiT (try bf16/fp32 weights)")
    causes.append("a non-finite text embedding (the text encoder output)")
    causes.append(f"an extreme guidance scale (cfg = {cfg:g}; the reference uses {CFG:g})")
    return NonFiniteError(
        f"level {level_index} produced NaN or infinite latents at denoising step {step} of {steps}; "
        "nothing usable can come out of this run. Likely causes: " + "; ".join(causes) + "."
    )


# -- denoising --------------------------------------------------------------------------


def _batched_passes(cfg_batching: bool, positive: torch.Tensor, negative: Optional[torch.Tensor]) -> bool:
    """True when the positive and negative passes run as one forward of twice the batch: a negative
    pass, ``cfg_batching`` on, and both embeddings of the same shape."""
    return negative is not None and bool(cfg_batching) and positive.shape == negative.shape


def _velocity(
    model: Any,
    x: torch.Tensor,
    timestep: torch.Tensor,
    *,
    positive: torch.Tensor,
    negative: Optional[torch.Tensor],
    y: torch.Tensor,
    positions: torch.Tensor,
    dtype: torch.dtype,
    cfg_batching: bool,
) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Conditional and unconditional velocity of one batch slice, float32 ``[b, C, T, h, w]`` each.

    Args:
        model: the DiT (``model(x, timestep, context, y, temporal_positions) -> v``).
        x: float32 ``[b, C, T, h, w]`` current latents (cast to ``dtype`` for the DiT).
        timestep: ``[1]`` DiT timestep (``sigma * 1000``, already in ``dtype``), on the model's device.
        positive, negative: text embeddings ``[1, L, text_dim]`` in ``dtype``; ``negative``
            None = positive pass only (the second result is then None).
        y: ``[b, mask_ch + C, T, h, w]`` multi-mask condition in ``dtype``.
        positions: float32 ``[b, T]`` RoPE temporal positions.
        dtype: the model's parameter dtype.
        cfg_batching: one forward of batch ``2b`` for both prompts when their lengths match
            (:func:`_batched_passes`), else two forwards.
    """
    b = x.shape[0]
    xin = x.to(dtype)
    t = timestep.expand(b)
    if negative is None:
        return model(xin, t, positive, y, positions).float(), None
    if _batched_passes(cfg_batching, positive, negative):
        context = torch.cat([positive.expand(b, -1, -1), negative.expand(b, -1, -1)])
        out = model(
            torch.cat([xin, xin]), timestep.expand(2 * b), context, torch.cat([y, y]), torch.cat([positions, positions])
        ).float()
        return out[:b], out[b:]
    return model(xin, t, positive, y, positions).float(), model(xin, t, negative, y, positions).float()


@torch.no_grad()
def denoise(
    model: Any,
    noise: torch.Tensor,
    y: torch.Tensor,
    temporal_positions: torch.Tensor,
    positive: torch.Tensor,
    negative: Optional[torch.Tensor],
    settings: LevelSettings,
    *,
    progress: Optional[ProgressCallback] = None,
    level_index: int = 0,
) -> torch.Tensor:
    """Flow-matching Euler sampling of a batch of chunks.

    Args:
        model: the DiT (``model(x, timestep, context, y, temporal_positions) -> v``).
        noise: float32 ``[B, C, T, h, w]`` start latents (sigma = 1).
        y: ``[B, mask_ch + C, T, h, w]`` multi-mask condition.
        temporal_positions: ``[B, T]`` RoPE temporal positions.
        positive, negative: text embeddings ``[1, L, text_dim]``; ``negative`` may be
            None when ``settings.cfg == 1`` (no negative pass).
        settings: the level's :class:`LevelSettings`: the schedule (``steps``, ``shift``,
            :func:`~tempomaster_core.sampling.flow_sigmas`), the guidance (``cfg``, 1 =
            conditional prediction only; ``guidance``), ``max_batch`` (at most this many
            chunks per forward, one guidance state per slice; results do not depend on it)
            ``cfg_batching`` and ``replace_known_latents`` (fully known latent frames kept on their flow path
            to the condition latents of ``y``, :mod:`~tempomaster_core.known_latents`). Its ``seed`` is not used
            here (``noise`` is given).
        progress: see :data:`ProgressCallback`.
        level_index: passed to ``progress``.

    Returns:
        float32 CPU ``[B, C, T, h, w]`` denoised latents.

    Raises:
        TypeError: ``settings`` is not a :class:`LevelSettings`.
        NonFiniteError: the latents hold NaN/inf after a step (checked after every step,
            before ``progress``; the message names the level and the likely causes).
        ValueError: ``cfg != 1`` without ``negative``.
    """
    if not isinstance(settings, LevelSettings):
        raise TypeError(f"settings must be a LevelSettings (check_level_settings), got {type(settings).__name__}")
    device, dtype = _model_device_dtype(model)
    steps, cfg = settings.steps, settings.cfg
    sigmas = flow_sigmas(steps, settings.shift)
    targets = next_sigmas(sigmas)
    # what the DiT sees (the reference casts to its pipeline dtype), and the guidance's sigma from it
    # (the reference's timestep / 1000 in that dtype)
    timesteps = (sigmas * NUM_TRAIN_TIMESTEPS).to(dtype)
    guidance_sigmas = (timesteps / NUM_TRAIN_TIMESTEPS).to(dtype).float()
    use_negative = settings.guided
    if use_negative and negative is None:
        raise ValueError("cfg != 1 needs negative text embeddings (an empty prompt's embeddings are fine)")

    total = noise.shape[0]
    size = total if settings.max_batch is None else min(settings.max_batch, total)
    bounds = [(a, min(a + size, total)) for a in range(0, total, size)]
    xs = [noise[a:b].to(device=device, dtype=torch.float32) for a, b in bounds]
    ys = [y[a:b].to(device=device, dtype=dtype) for a, b in bounds]
    poss = [temporal_positions[a:b].to(device=device, dtype=torch.float32) for a, b in bounds]
    pos_ctx = positive.to(device=device, dtype=dtype)
    neg_ctx = negative.to(device=device, dtype=dtype) if use_negative else None
    guiders = [make_guidance(settings.guidance, cfg) for _ in bounds] if use_negative else None
    # known-latent replacement: per slice, which latent frames are fully known, their latents and start noise;
    # None for a slice without one (ordinary generation), which then costs nothing per step
    replacing = [None] * len(bounds)
    if settings.replace_known_latents:
        channels = noise.shape[1]
        for k, (a, b) in enumerate(bounds):
            known = known_latent_frames(y[a:b], channels)
            if bool(known.any()):
                replacing[k] = (known.to(device), y[a:b, -channels:].to(device, torch.float32), xs[k].clone())

    for i in range(steps):
        sigma, target = float(sigmas[i]), float(targets[i])
        timestep = timesteps[i : i + 1].to(device)
        preview = None
        for k in range(len(bounds)):
            v_cond, v_uncond = _velocity(model, xs[k], timestep, positive=pos_ctx, negative=neg_ctx, y=ys[k],
                                         positions=poss[k], dtype=dtype, cfg_batching=settings.cfg_batching)
            if use_negative:
                v = guiders[k](v_cond, v_uncond, xs[k], guidance_sigmas[i].item())
            else:
                v = v_cond
            if k == 0 and progress is not None:
                preview = x0_from_velocity(xs[0][:1], v[:1], sigma)[0].to("cpu", torch.float32)
            xs[k] = euler_step(xs[k], v, sigma, target)
            if replacing[k] is not None:
                xs[k] = replace_known(xs[k], *replacing[k], target)
        if not bool(torch.stack([torch.isfinite(x).all() for x in xs]).all()):
            raise _non_finite_latents_error(model, level_index, i + 1, steps, cfg, dtype)
        if progress is not None:
            progress(level_index, i + 1, steps, preview)
    return torch.cat([x.to("cpu", torch.float32) for x in xs])


def _decode_chunks(codec: Any, latents: torch.Tensor, level: LevelPlan, first: int, height: int,
                   width: int) -> torch.Tensor:
    """Decode chunks ``first, first + 1, ...`` (``latents`` ``[k, C, T, h, w]``) one at a time:
    float32 CPU ``[k, 3, frames_per_chunk, H, W]``, padding frames included."""
    device = codec_device(codec)
    expected = (1, 3, level.frames_per_chunk, height, width)
    out = torch.empty((latents.shape[0], *expected[1:]), dtype=torch.float32)
    for k in range(latents.shape[0]):
        video = codec.decode(latents[k : k + 1].to(device))
        if tuple(video.shape) != expected:
            raise ValueError(f"VAE decode returned shape {tuple(video.shape)}; expected {list(expected)}")
        chunk = first + k
        out[k] = video[0].detach().to("cpu", torch.float32)
        check_vae_result(out[k, :, : level.valid_frames(chunk)], f"decode of level {level.index}, chunk {chunk}")
    return out


def _join_chunks(videos: torch.Tensor, level: LevelPlan) -> torch.Tensor:
    """Decoded chunks ``[chunks, 3, frames_per_chunk, H, W]`` concatenated in time without the padding:
    float32 ``[3, num_frames, H, W]``."""
    return torch.cat([videos[c, :, : level.valid_frames(c)] for c in range(level.num_chunks)], dim=1)


def _level_noise_shape(plan: TreePlan, level: LevelPlan, codec: Any) -> tuple[int, int, int, int, int]:
    h, w = plan.latent_size(int(codec.spatial_factor))
    return (level.num_chunks, int(codec.latent_channels), level.latent_frames_per_chunk, h, w)


@torch.no_grad()
def run_level(
    model: Any, codec: Any, plan: TreePlan, index: int, positive: Any, negative: Any, make_clips: ClipMaker,
    settings: LevelSettings, progress: Optional[ProgressCallback] = None,
) -> LevelResult:
    """One level of the tree, shared by :func:`run_blueprint`, :func:`run_refinement`, :func:`generate`
    and the continuation (:mod:`tempomaster_core.continuation`, whose clips add the known context frames).

    Checks that model, codec, plan and text embeddings fit (:func:`check_level_inputs`),
    tells the model the level starts (``model.start_level(index, num_levels)`` when it has one:
    :meth:`~tempomaster_core.model.TempoMasterDiT.start_level`), builds the level's condition clips with
    ``make_clips(level)`` (:data:`ClipMaker`; it checks the condition frames), draws the seeded noise
    ``[chunks, C, T, h, w]`` from the model's source prior, encodes the clips into ``y`` (``settings.max_batch``
    clips per encode), denoises the chunks (:func:`denoise`; this rank's share under
    :mod:`tempomaster_core.distributed`) and decodes them one by one to exactly the level's ``num_frames`` frames;
    with ``settings.anchor_correction`` a refinement level's frames are then corrected to their anchors
    (:func:`~tempomaster_core.anchor_correction.correct_level`; the latents stay as denoised).
    ``settings`` is already validated (a :class:`LevelSettings`), so every check that
    needs no compute has run before the VAE encode.

    Several devices: inside :func:`tempomaster_core.distributed.use_ranks` each rank encodes,
    denoises and decodes its share of the chunks (or of each forward's guidance passes) and
    every rank returns the whole level (:func:`tempomaster_core.distributed.level_work`);
    the noise is still drawn once here for the whole level and sliced, so the result does
    not depend on the number of ranks. ``progress`` is called on rank 0 only.

    Args:
        model, codec, plan, positive, negative: as :func:`run_blueprint`.
        index: the level to make (0 = blueprint).
        make_clips: the level's condition clips and masks (:data:`ClipMaker`).
        settings: the level's :class:`LevelSettings`.
        progress: :data:`ProgressCallback`.

    Returns:
        :class:`LevelResult` of level ``index``.

    Raises:
        TypeError: ``settings`` is not a :class:`LevelSettings`; plus the errors of
            :func:`run_blueprint` (:class:`NonFiniteError` included).
        tempomaster_core.distributed.RankFailure: with several ranks, one of them failed
            (every rank raises it).
    """
    if not isinstance(settings, LevelSettings):
        raise TypeError(f"settings must be a LevelSettings (check_level_settings), got {type(settings).__name__}")
    positive, negative = check_level_inputs(model, codec, plan, positive, negative, settings.cfg)
    start_level = getattr(model, "start_level", None)
    if callable(start_level):  # level hooks, e.g. per-level LoRA strengths (TempoMasterDiT.register_level_hook)
        start_level(index, plan.num_levels)
    level = plan.levels[index]
    clips, masks = make_clips(level)
    noise = seeded_noise(_level_noise_shape(plan, level, codec), settings.seed, model_frame_correlation(model))
    passes = 2 if settings.guided and _batched_passes(settings.cfg_batching, positive, negative) else 1
    work = level_work(index, level.num_chunks, passes)
    (start, stop), (first, last) = work.denoise, work.decode

    def compute() -> tuple[torch.Tensor, torch.Tensor]:
        y = build_condition(codec, clips[start:stop], masks[start:stop], batch_size=settings.max_batch)
        latents = denoise(work.model(model), noise[start:stop], y, level.temporal_positions[start:stop], positive,
                          negative, settings, progress=work.progress(progress), level_index=index)
        videos = _decode_chunks(codec, latents[first - start : last - start], level, first, plan.height, plan.width)
        return latents, videos

    video_shape = (3, level.frames_per_chunk, plan.height, plan.width)
    latents, videos = work.run(compute, noise.shape[1:], video_shape)
    frames = _join_chunks(videos, level)
    if settings.anchor_correction and not level.is_blueprint:
        frames = correct_level(frames, level, clips)
    return LevelResult(plan=plan, level_index=index, frames=frames, latents=latents, fps=level.fps)


def _blueprint_clips(plan: TreePlan, conditions: Optional[dict]) -> ClipMaker:
    """The blueprint's :data:`ClipMaker`: the user's condition frames (none = text-to-video)."""
    return lambda level: blueprint_clip(level, conditions, plan.height, plan.width)


def _refinement_clips(previous: LevelResult) -> ClipMaker:
    """A refinement level's :data:`ClipMaker`: the frames of the level above, placed in every chunk."""
    return lambda level: refinement_clips(level, previous.frames)


def _next_level_index(previous: Any) -> int:
    """Index of the level that refines ``previous``.

    Raises:
        TypeError: ``previous`` is not a :class:`LevelResult`.
        ValueError: ``previous`` is already the last level of its plan.
    """
    if not isinstance(previous, LevelResult):
        raise TypeError("previous must be a LevelResult (from run_blueprint/run_refinement), "
                        f"got {type(previous).__name__}")
    plan = previous.plan
    index = previous.level_index + 1
    if index >= plan.num_levels:
        raise ValueError(
            f"the plan has {plan.num_levels} levels (intervals {plan.frame_intervals}) and level "
            f"{previous.level_index} is the last one; there is nothing left to refine"
        )
    return index


def run_blueprint(model: Any, codec: Any, positive: torch.Tensor, negative: Optional[torch.Tensor], plan: TreePlan,
                  settings: Optional[LevelSettings] = None, *, conditions: Optional[dict] = None,
                  progress: Optional[ProgressCallback] = None, **sampling: Any) -> LevelResult:
    """Generate the blueprint (level 0): the whole clip at the lowest frame rate, one chunk.

    Args:
        model: TempoMaster DiT (``.config`` a DiTConfig; see :class:`~tempomaster_core.protocols.DenoisingModel`).
        codec: VAE adapter (:class:`~tempomaster_core.protocols.VideoCodec`) matching the model.
        positive, negative: text embeddings ``[1, L, text_dim]`` of the positive and
            negative prompt (``negative`` may be None when ``cfg == 1``).
        plan: the :class:`TreePlan`.
        settings: the level's :class:`LevelSettings` (default: the reference's blueprint settings,
            50 steps, shift 5.0, cfg 8, APG, seed 0; :mod:`tempomaster_core.defaults`).
        conditions: ``{pixel frame index on the blueprint: image [3, H, W] in [-1, 1]}``,
            negative indices from the end; None/empty = text-to-video.
        progress: :data:`ProgressCallback`.
        sampling: :class:`LevelSettings` fields replacing those of ``settings``
            (:func:`level_settings`), e.g. ``steps=50, cfg=1.0, seed=3``; no ``max_batch``, since
            the blueprint is a single chunk. The noise ``[1, C, T, h, w]`` comes from a CPU
            generator seeded with ``seed``; ``cfg_batching`` runs both prompts in one forward.

    Returns:
        :class:`LevelResult` with ``plan.levels[0].num_frames`` frames.

    Raises:
        ValueError/TypeError: codec/model/plan mismatch, bad text embeddings, bad
            condition frames, bad sampling settings (an unknown or ``max_batch`` keyword is a
            TypeError) -- all before any compute (:func:`level_settings`,
            :func:`check_level_inputs`; value errors are
            :class:`~tempomaster_core.validation.InputError`). ``cfg`` is at most 100.
        NonFiniteError: the VAE encode, a denoising step or the VAE decode produced
            NaN/inf although the inputs were finite (non-finite weights, an fp16
            overflow, an extreme cfg); the message names the level and the causes.
    """
    if "max_batch" in sampling:
        raise TypeError("run_blueprint takes no max_batch: the blueprint is a single chunk")
    return run_level(model, codec, plan, 0, positive, negative, _blueprint_clips(plan, conditions),
                     level_settings(0, settings, **sampling), progress)


def run_refinement(model: Any, codec: Any, previous: LevelResult, positive: torch.Tensor,
                   negative: Optional[torch.Tensor], settings: Optional[LevelSettings] = None, *,
                   progress: Optional[ProgressCallback] = None, **sampling: Any) -> LevelResult:
    """Refine the level above to the next frame rate (level ``previous.level_index + 1``).

    The frames of ``previous`` become condition frames of every chunk
    (:func:`~tempomaster_core.conditioning.refinement_clips`), all chunks are
    encoded and denoised in parallel as one batch (or in slices of ``max_batch``
    chunks), decoded chunk by chunk, concatenated and trimmed to the level's
    ``num_frames``.

    ``max_batch`` and exactness: the noise, the condition, the guidance state and the
    Euler updates are per chunk, and the DiT embeds each distinct timestep once and runs its
    few-row layers (patch and text embedding, cross-attention keys/values) item by item
    (:func:`tempomaster_core.model.per_item`), so slicing changes no number: every
    ``max_batch`` gives bit-identical latents and frames on CPU in float32 and bfloat16
    (``tests/test_bad_inputs_core.py``; the built-in model too, measured). On a GPU, cuBLAS may
    choose other kernels for another batch size, which can change the last bits (not measured).

    Args:
        previous: the :class:`LevelResult` of the level above (its ``plan`` is used).
        settings: the level's :class:`LevelSettings` (default: the reference's refinement
            settings, 32 steps, shift 3.0, cfg 8, APG, seed 0). The full ``[chunks, C, T, h, w]``
            noise is drawn once from a fresh CPU generator seeded with its ``seed`` (the reference
            uses the same seed at every level); ``max_batch`` = chunks per DiT forward (``None`` =
            all; see above for exactness).
        sampling: :class:`LevelSettings` fields replacing those of ``settings`` (:func:`level_settings`).
        Other arguments as :func:`run_blueprint`.

    Returns:
        :class:`LevelResult` of the next level.

    Raises:
        TypeError: ``previous`` is not a :class:`LevelResult`.
        ValueError: ``previous`` is already the last level of its plan, or its frames
            do not match its level or are not finite; plus the errors of
            :func:`run_blueprint` (including :class:`NonFiniteError`).
    """
    index = _next_level_index(previous)
    return run_level(model, codec, previous.plan, index, positive, negative, _refinement_clips(previous),
                     level_settings(index, settings, **sampling), progress)


def generate(model: Any, codec: Any, positive: torch.Tensor, negative: Optional[torch.Tensor], plan: TreePlan,
             settings: Optional[Sequence[LevelSettings]] = None, *, conditions: Optional[dict] = None,
             progress: Optional[ProgressCallback] = None, return_levels: bool = False, **sampling: Any):
    """Run the blueprint and every refinement of ``plan``.

    Args:
        settings: one :class:`LevelSettings` per level, blueprint first; default
            :func:`tree_settings` of ``sampling``.
        sampling: the keywords of :func:`tree_settings` (only without ``settings``): ``steps`` and
            ``shifts`` one per level (the reference's (50, 32, 32) and (5, 3, 3) when left out),
            ``cfg`` and ``guidance`` one value or one per level (8, APG), ``seed`` the same for
            every level (as the reference does), ``max_batch`` chunks per DiT forward of every
            refinement level (``None`` = all; the blueprint is one chunk), ``cfg_batching``.
        return_levels: also return every level's :class:`LevelResult`.
        Other arguments as :func:`run_blueprint`.

    Returns:
        Final frames float32 ``[F, H, W, 3]`` in ``[0, 1]`` (ComfyUI IMAGE layout), or
        ``(frames, [LevelResult, ...])`` when ``return_levels``.

    Raises:
        TypeError: both ``settings`` and ``sampling`` keywords, or ``settings`` not one
            LevelSettings per level.
        ValueError: ``steps``/``shifts``/``cfg``/``guidance`` lengths differ from the
            number of levels; plus the errors of the level runners. Every level's
            settings, the seed, the text embeddings and the condition frames are checked
            before the first level starts.
        NonFiniteError: see :func:`run_blueprint`.
    """
    if not isinstance(plan, TreePlan):
        raise TypeError(f"plan must be a TreePlan, got {type(plan).__name__}")
    levels = plan.num_levels
    if settings is None:
        settings = tree_settings(levels, **sampling)  # every level, before any compute
    elif sampling:
        raise TypeError(f"give settings or the keywords {', '.join(sorted(sampling))}, not both")
    settings = list(settings)
    if len(settings) != levels or not all(isinstance(s, LevelSettings) for s in settings):
        raise TypeError(f"settings must be one LevelSettings per level ({levels}; tree_settings makes them)")
    check_level_inputs(model, codec, plan, positive, negative, guided_cfg(settings))
    if conditions:
        normalize_condition_frames(conditions, plan.levels[0].num_frames, plan.height, plan.width)
    result = run_level(model, codec, plan, 0, positive, negative, _blueprint_clips(plan, conditions), settings[0],
                       progress)
    results = [result]
    for index in range(1, levels):
        result = run_level(model, codec, plan, index, positive, negative, _refinement_clips(result), settings[index],
                           progress)
        results.append(result)
    images = result.to_images()
    return (images, results) if return_levels else images
