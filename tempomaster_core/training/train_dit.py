"""Train the TempoMaster-Tiny DiT (and its text encoder) on the procedural scenes.

Usage::

    python -m tempomaster_core.training.train_dit --out tempomaster_core/builtin/ --seed 0 --minutes 58 --threads 2

Data parallel over ``torchrun`` ranks (:mod:`.data_parallel`; a gain where each rank has its own cores or GPU,
none on the 2-core CPU, where 2 ranks train as fast as one process of 2 threads)::

    OMP_NUM_THREADS=1 torchrun --standalone --nproc-per-node 2 -m tempomaster_core.training.train_dit \
        --out DIR --seed 0 --minutes 41 --threads 1

On a CUDA GPU (the recipe measured on an H100 in the model card; the step rate is bound by
rendering clips on the CPU cores, so most cores render and each sample is reused more)::

    python -m tempomaster_core.training.train_dit --out DIR --seed 0 --minutes 6.5 --threads 1 \
        --device cuda --workers 15 --batch 128 --reuse 16 --pool 8192 --lr 8e-4 --ema 0.999

The paper's recipe at toy scale:

* **data**: a random scene (:func:`tempomaster_core.tiny.scenes.sample_scene`,
  seeds below ``HELD_OUT_SEED_BASE``), a clip of ``--frames`` pixel frames (25 =
  7 latent frames, the chunk length of the default plan) at a frame interval of
  4, 2 or 1 (6/12/24 fps; multi-frame-rate training) from a random start time,
  rendered in [-1, 1], and a random caption paraphrase
  (:func:`~tempomaster_core.tiny.captions.random_caption`), dropped to the empty
  prompt with probability ``caption_dropout`` so CFG/APG work with an empty
  negative prompt. Clips are encoded to normalised latents ``x0`` by the
  shipped tiny codec.
* **multi-mask conditions** (:mod:`tempomaster_core.training.masks`): the
  blueprint case (T2V, I2V, first+last, 0-15 % random keyframes, a known
  prefix) and the refinement case (the chunk anchor patterns of the level
  plan, ratio 2 and 4). The condition ``y`` is built by the runtime's own
  :func:`tempomaster_core.conditioning.build_condition` (known frames placed
  in a zero clip, encoded, packed mask), exactly as at inference.
* **frame-rate-aware RoPE**: latent frame ``j`` gets temporal position
  ``t_start + j * interval`` with ``t_start ~ U{0..t_max}`` (paper).
* **flow matching**: ``x_sigma = (1 - sigma) x0 + sigma * noise``, target
  ``v = noise - x0``, timestep ``sigma * 1000``, MSE. ``sigma`` is the shifted
  uniform of the inference schedule, ``shift*u / (1 + (shift-1)*u)`` with
  ``u ~ U(0, 1)``: shift 5 for blueprint-case samples, 3 for refinement samples
  (the reference's default inference shifts).
* **optimisation**: AdamW, linear warm-up then cosine decay, gradient clipping,
  EMA of the weights (the EMA weights are shipped); the text encoder is
  trained jointly with the DiT.

Encoding clips costs about as much CPU time as a training step, so encoded
samples go through a replay pool: each step encodes ``batch // reuse`` fresh
samples, replaces the oldest pool entries with them, and trains on a random
batch drawn from the pool (every sample is seen ``reuse`` times on average,
with fresh noise and sigma each time).

Reproducibility: every random draw comes from ``--seed`` (numpy generator for
data, torch generators for init, noise and sigma). ``--steps`` fixes the run;
with ``--minutes`` alone the step count is estimated from the measured step
time (printed, so the run can be repeated with ``--steps``; the first step, which
includes ``--compile``'s compilation, is left out of the estimate), and training
stops at the time budget in any case. ``--workers N`` draws the data from
per-chunk generators (:class:`RenderedChunks`): reproducible for any ``N``, but a
different stream from ``--workers 0``.

Output (``--out``): ``dit.safetensors`` (EMA weights, config in the metadata,
:func:`tempomaster_core.loading.save_dit`), ``dit.json`` (DiTConfig),
``text_encoder.safetensors`` / ``.json``, ``dit_train.json`` (recipe, loss
curve, validation losses), ``defaults.json`` (recommended inference settings, with what the run trained
on: ``trained_frame_intervals`` and ``trained_chunk_frames`` from its configuration, :func:`trained_limits`;
an existing file keeps its other keys). Checkpoints are written every ``--checkpoint-minutes`` too.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..conditioning import build_condition, encode_clips, place_frames
from ..config import DiTConfig
from ..defaults import BLUEPRINT_SHIFT, REFINEMENT_SHIFT
from ..loading import save_dit
from ..model import TempoMasterDiT
from ..noise_prior import correlate_frames, model_frame_correlation
from ..tiny.builtin import DEFAULTS_FILE, read_defaults_file, shipped_defaults
from ..tiny.codec import TinyVideoCodec
from ..tiny.captions import random_caption
from ..tiny.scenes import HELD_OUT_SEED_BASE, render_frames, sample_scene
from ..tiny.text_encoder import TextEncoderConfig, TinyTextEncoder
from ..trained_limits import TrainedLimits
from .data_parallel import TrainRanks, join_from_environment
from .masks import (BLUEPRINT_INTERVAL_PROBS, BLUEPRINT_KINDS, DEFAULT_KIND_PROBS, ConditionDraw, draw_condition,
                    refinement_patterns)


RANK_SEED_STRIDE = 1_000_003
"""Data-parallel rank ``r`` seeds its noise/sigma generator with ``seed + 1 + r * RANK_SEED_STRIDE`` and its render
workers' chunks with ``seed + r * RANK_SEED_STRIDE`` (rank 0: the single-process streams)."""

CLIP_START_RANGE = (8, 480)
"""Scene times (24 fps frames, ``[low, high)``) a training clip starts at (the shipped recipe)."""

BLUEPRINT_TRAIN_SHIFT = BLUEPRINT_SHIFT
"""Sigma shift of blueprint-case samples, dimensionless (the reference's default blueprint sampling shift,
:data:`tempomaster_core.defaults.BLUEPRINT_SHIFT`)."""

REFINEMENT_TRAIN_SHIFT = REFINEMENT_SHIFT
"""Sigma shift of refinement samples, dimensionless (the reference's default refinement sampling shift,
:data:`tempomaster_core.defaults.REFINEMENT_SHIFT`)."""

@dataclass
class TrainConfig:
    """Hyper-parameters of a DiT training run (all recorded in ``dit_train.json``).

    Model: ``dim``, ``layers``, ``heads`` (head_dim = dim/heads must suit Wan's RoPE,
    e.g. 32), ``ffn_mult`` (ffn_dim = ffn_mult*dim), ``freq_dim``; the text encoder
    is :class:`TextEncoderConfig` with ``text_dim``/``text_layers``.
    Data: ``frames`` pixel frames per clip (``tf*n+1``), ``size`` pixels (square),
    ``t_max`` (RoPE start range), ``caption_dropout``, ``kind_probs``.
    Optimisation: ``batch``, ``reuse`` (replay factor), ``pool`` (replay pool
    capacity), ``lr``, ``weight_decay``, ``warmup`` steps, ``min_lr_ratio`` (cosine
    floor), ``grad_clip``, ``ema`` decay.
    ``blueprint_t0_max``: if set, blueprint-case clips start at a scene time drawn from
    ``[0, blueprint_t0_max)`` 24 fps frames, where the caption's motion direction still holds
    (captions name the initial motion; objects bounce later), instead of ``[8, 480)`` like
    refinement clips. ``None`` keeps ``[8, 480)`` for every clip, where only 50 % of the clips move the
    caption's way over their first 2 s (8: 100 %); a 41-minute run with 8 still did not follow the caption's
    direction, and an earlier one in the faster world did not count better (model card, sessions 8 and 21).
    ``noise_frame_correlation``: ``rho`` of the progressive noise prior the model is trained from
    (:mod:`tempomaster_core.noise_prior`; recorded in the DiT's config so sampling draws from the
    same prior); 0 = i.i.d. noise as Wan.
    ``temporal_difference_weight``: weight ``lambda`` (dimensionless, >= 0) of the temporal-difference term of
    :func:`flow_matching_loss`, which penalises velocity errors that change from one latent frame to the next
    (objects drawn anew per latent frame); 0 = the plain flow-matching MSE.
    Fields default to the behaviour before they were added;
    the shipped bundle's command (its model card) sets the ones it uses.
    """

    dim: int = 192
    layers: int = 4
    heads: int = 6
    ffn_mult: int = 4
    freq_dim: int = 128
    text_dim: int = 64
    text_layers: int = 2
    frames: int = 25
    size: int = 64
    t_max: int = 64
    caption_dropout: float = 0.1
    kind_probs: dict = field(default_factory=lambda: dict(DEFAULT_KIND_PROBS))
    batch: int = 16
    reuse: int = 4
    pool: int = 1024
    lr: float = 6e-4
    weight_decay: float = 0.01
    warmup: int = 100
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    ema: float = 0.997
    blueprint_t0_max: Optional[int] = None
    noise_frame_correlation: float = 0.0
    temporal_difference_weight: float = 0.0


def trained_limits(cfg: TrainConfig, temporal_factor: int) -> TrainedLimits:
    """What a run with ``cfg`` trains on, from the draws it makes (:func:`~tempomaster_core.training.masks.draw_condition`):
    clips of ``cfg.frames`` pixel frames; the frame intervals of the blueprint-case clips
    (:data:`~tempomaster_core.training.masks.BLUEPRINT_INTERVAL_PROBS` with weight > 0) when a blueprint kind has
    weight > 0 in ``cfg.kind_probs``, and those of the refinement patterns
    (:func:`~tempomaster_core.training.masks.refinement_patterns` at this clip length and ``temporal_factor``,
    pixel frames per latent frame of the codec) when ``"refine"`` has. The default recipe gives intervals
    (4, 2, 1) and 25 frames, what the built-in bundle's ``defaults.json`` declares.

    Raises:
        ValueError: no pattern kind has weight > 0.
        tempomaster_core.plan.PlanError: ``cfg.frames`` is not ``temporal_factor*n + 1``.
    """
    intervals: set[int] = set()
    if any(cfg.kind_probs.get(kind, 0) > 0 for kind in BLUEPRINT_KINDS):
        intervals |= {interval for interval, weight in BLUEPRINT_INTERVAL_PROBS.items() if weight > 0}
    if cfg.kind_probs.get("refine", 0) > 0:
        intervals |= {pattern.interval for pattern in refinement_patterns(cfg.frames, temporal_factor)}
    if not intervals:
        raise ValueError(f"kind_probs {cfg.kind_probs} gives no pattern kind a weight > 0: nothing would be trained")
    return TrainedLimits(tuple(intervals), cfg.frames)


def dit_config_for(codec, text_dim: int, cfg: TrainConfig, text_len: Optional[int] = None) -> DiTConfig:
    """The tiny :class:`DiTConfig` matching a codec: ``out_dim = codec.latent_channels``,
    ``in_dim = 2*C + codec.temporal_factor`` (noisy latent + mask + condition latent),
    patch (1, 2, 2), sizes and the noise prior from ``cfg``; ``text_len`` the text encoder's ``max_length``
    (recorded in the checkpoint, :attr:`DiTConfig.text_len`).

    Raises:
        ValueError: sizes the DiT cannot take (dim not divisible by heads, head_dim not
            suited to Wan's RoPE split).
    """
    c, tf = int(codec.latent_channels), int(codec.temporal_factor)
    config = DiTConfig(
        dim=cfg.dim, ffn_dim=cfg.ffn_mult * cfg.dim, num_heads=cfg.heads, num_layers=cfg.layers,
        in_dim=2 * c + tf, out_dim=c, text_dim=int(text_dim), freq_dim=cfg.freq_dim, text_len=text_len,
        noise_frame_correlation=cfg.noise_frame_correlation,
    )
    TempoMasterDiT(config)  # validates head_dim for RoPE early, with its message
    return config


def build_models(codec, cfg: TrainConfig, seed: int) -> tuple[TempoMasterDiT, TinyTextEncoder]:
    """Fresh DiT and text encoder (float32, train mode), initialised from ``seed``.

    The DiT's output head starts at zero (predicts v = 0), a common stabiliser for
    diffusion transformers; everything else keeps PyTorch's default init.
    """
    torch.manual_seed(seed)
    text_encoder = TinyTextEncoder(TextEncoderConfig(dim=cfg.text_dim, layers=cfg.text_layers))
    model = TempoMasterDiT(dit_config_for(codec, text_encoder.text_dim, cfg, text_encoder.max_length))
    with torch.no_grad():
        model.head.head.weight.zero_()
        model.head.head.bias.zero_()
    return model.train(), text_encoder.train()


# -- data ------------------------------------------------------------------------------


@dataclass
class Batch:
    """Encoded training samples.

    Attributes:
        x0: float32 ``[B, C, T, h, w]`` normalised clean latents.
        y: float32 ``[B, tf + C, T, h, w]`` multi-mask condition.
        positions: float32 ``[B, T]`` RoPE temporal positions ``t_start + j*interval``.
        shifts: float32 ``[B]`` sigma shift per sample (5 blueprint case, 3 refinement).
        captions: ``B`` prompts (``""`` = dropped caption).
        kinds: ``B`` pattern kinds (see :mod:`~tempomaster_core.training.masks`).
    """

    x0: torch.Tensor
    y: torch.Tensor
    positions: torch.Tensor
    shifts: torch.Tensor
    captions: list
    kinds: list

    def __len__(self) -> int:
        return self.x0.shape[0]


def render_sample(
    rng: np.random.Generator, draw: ConditionDraw, *, size: int, seed_low: int = 0,
    seed_high: int = HELD_OUT_SEED_BASE, start_range: tuple[int, int] = CLIP_START_RANGE,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, object]:
    """Render one clip and its condition clip for a drawn pattern.

    A scene seed is drawn in ``[seed_low, seed_high)`` and a start time ``t0`` in
    ``start_range`` (24 fps frames, default :data:`CLIP_START_RANGE`); clip frame ``j`` shows time ``t0 + j*draw.interval``,
    and known pixel ``p`` with source offset ``s`` shows time ``t0 + s*draw.interval``.

    Returns:
        ``(clip, condition_clip, mask, spec)``: float32 ``[3, F, size, size]`` in [-1, 1],
        float32 ``[3, F, size, size]`` (zero except known frames, built with
        :func:`tempomaster_core.conditioning.place_frames`), float32 ``[F]``, the SceneSpec.
    """
    spec = sample_scene(int(rng.integers(seed_low, seed_high)), height=size, width=size)
    t0 = int(rng.integers(*start_range))
    offsets = sorted(set(range(draw.frames)) | set(draw.source_offsets()))
    video = render_frames(spec, [t0 + o * draw.interval for o in offsets])
    where = {o: i for i, o in enumerate(offsets)}
    clip = video[:, [where[j] for j in range(draw.frames)]]
    cond, mask = place_frames(video, [(p, where[s]) for p, s in draw.conditions], draw.frames)
    return clip, cond, mask, spec


@dataclass
class RenderedBatch:
    """Rendered (not yet encoded) training samples: the CPU half of :func:`make_batch`.

    Attributes:
        clips: ``[B, 3, F, size, size]`` pixel clips in [-1, 1] (float32, or float16 from
            :class:`RenderedChunks` workers, to halve what crosses process boundaries).
        conditions: ``[B, 3, F, size, size]`` condition clips (zero except known frames), same dtype.
        masks: float32 ``[B, F]``, 1 at known pixel frames.
        positions, shifts, captions, kinds: as in :class:`Batch`.
    """

    clips: torch.Tensor
    conditions: torch.Tensor
    masks: torch.Tensor
    positions: torch.Tensor
    shifts: torch.Tensor
    captions: list
    kinds: list


def render_batch(
    rng: np.random.Generator, n: int, cfg: TrainConfig, temporal_factor: int, *, seed_low: int = 0,
    seed_high: int = HELD_OUT_SEED_BASE, kind_probs: Optional[dict] = None,
) -> RenderedBatch:
    """Draw and render ``n`` training samples (everything random from ``rng``; no codec needed).

    Scenes use seeds in ``[seed_low, seed_high)`` (training: below :data:`HELD_OUT_SEED_BASE`;
    validation: above); ``temporal_factor`` is the codec's (pixel frames per latent frame).
    """
    tf = int(temporal_factor)
    clips, conds, masks, captions, kinds, positions, shifts = [], [], [], [], [], [], []
    for _ in range(n):
        draw = draw_condition(rng, cfg.frames, tf, kind_probs or cfg.kind_probs)
        start_range = (0, cfg.blueprint_t0_max) if cfg.blueprint_t0_max and draw.is_blueprint else CLIP_START_RANGE
        clip, cond, mask, spec = render_sample(rng, draw, size=cfg.size, seed_low=seed_low, seed_high=seed_high,
                                               start_range=start_range)
        text = random_caption(spec, rng)
        if rng.random() < cfg.caption_dropout:
            text = ""
        latent_frames = (cfg.frames - 1) // tf + 1
        start = int(rng.integers(0, cfg.t_max + 1))
        clips.append(clip)
        conds.append(cond)
        masks.append(mask)
        captions.append(text)
        kinds.append(draw.kind)
        positions.append([start + j * draw.interval for j in range(latent_frames)])
        shifts.append(BLUEPRINT_TRAIN_SHIFT if draw.is_blueprint else REFINEMENT_TRAIN_SHIFT)
    return RenderedBatch(torch.stack(clips), torch.stack(conds), torch.stack(masks),
                         torch.tensor(positions, dtype=torch.float32), torch.tensor(shifts, dtype=torch.float32),
                         captions, kinds)


@torch.no_grad()
def encode_batch(codec, rendered: RenderedBatch) -> Batch:
    """Encode rendered samples with ``codec`` (on its device) into a CPU :class:`Batch`."""
    x0 = encode_clips(codec, rendered.clips)
    y = build_condition(codec, rendered.conditions, rendered.masks)
    return Batch(x0, y, rendered.positions, rendered.shifts, rendered.captions, rendered.kinds)


def make_batch(
    rng: np.random.Generator, codec, n: int, cfg: TrainConfig, *, seed_low: int = 0,
    seed_high: int = HELD_OUT_SEED_BASE, kind_probs: Optional[dict] = None,
) -> Batch:
    """Draw, render and encode ``n`` training samples (see the module docstring):
    :func:`render_batch` then :func:`encode_batch`. Everything random comes from ``rng``."""
    rendered = render_batch(rng, n, cfg, codec.temporal_factor, seed_low=seed_low, seed_high=seed_high,
                            kind_probs=kind_probs)
    return encode_batch(codec, rendered)


class RenderedChunks(torch.utils.data.Dataset):
    """Chunks of freshly rendered training samples for :class:`torch.utils.data.DataLoader` workers.

    Chunk ``i`` holds ``n`` samples drawn by :func:`render_batch` from the generator
    ``numpy.random.default_rng([seed, i])``, so the data stream depends on ``seed`` alone,
    not on how many worker processes render it (the accelerator path of :func:`train`, where
    rendering on one CPU core cannot keep up). Clips are float16 (the renderer's [-1, 1]
    values to about 1e-3) to halve the shared-memory traffic. ``len`` is ``chunks``.
    """

    def __init__(self, seed: int, n: int, cfg: TrainConfig, temporal_factor: int, chunks: int = 10 ** 9):
        self.seed, self.n, self.cfg, self.tf, self.chunks = int(seed), int(n), cfg, int(temporal_factor), int(chunks)

    def __len__(self) -> int:
        return self.chunks

    def __getitem__(self, index: int) -> RenderedBatch:
        r = render_batch(np.random.default_rng([self.seed, int(index)]), self.n, self.cfg, self.tf)
        r.clips, r.conditions = r.clips.half(), r.conditions.half()
        return r


def _single_thread_worker(_: int) -> None:
    torch.set_num_threads(1)


def _as_is(item):
    return item


def rendered_chunk_loader(dataset: RenderedChunks, workers: int) -> torch.utils.data.DataLoader:
    """An in-order DataLoader over ``dataset`` with ``workers`` single-threaded processes.

    Workers are spawned, not forked: a process forked after torch ran multi-threaded CPU ops
    (or initialised CUDA) can deadlock in the OpenMP runtime.
    """
    return torch.utils.data.DataLoader(
        dataset, batch_size=None, shuffle=False, num_workers=workers, collate_fn=_as_is,
        prefetch_factor=8 if workers else None, persistent_workers=workers > 0,
        worker_init_fn=_single_thread_worker if workers else None,
        multiprocessing_context="spawn" if workers else None)


class ReplayPool:
    """Fixed-capacity FIFO of encoded samples (see the module docstring).

    ``add(batch)`` appends, replacing the oldest entries once full; ``sample(n, generator)``
    returns ``n`` distinct random entries (``n <= len(pool)``). Samples live in preallocated
    CPU tensors (``x0``/``y``/``positions``/``shifts``, first axis = slot), so drawing a batch
    is one gather.
    """

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"pool capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.size = 0
        self.next = 0
        self.buffers: Optional[dict] = None
        self.captions: list = [None] * self.capacity
        self.kinds: list = [None] * self.capacity

    def __len__(self) -> int:
        return self.size

    def add(self, batch: Batch) -> None:
        """Insert every sample of ``batch``."""
        fields = {"x0": batch.x0, "y": batch.y, "positions": batch.positions, "shifts": batch.shifts}
        if self.buffers is None:
            self.buffers = {k: torch.zeros((self.capacity, *v.shape[1:]), dtype=v.dtype) for k, v in fields.items()}
        for i in range(len(batch)):
            slot = self.size if self.size < self.capacity else self.next
            for k, v in fields.items():
                self.buffers[k][slot] = v[i]
            self.captions[slot], self.kinds[slot] = batch.captions[i], batch.kinds[i]
            if self.size < self.capacity:
                self.size += 1
            else:
                self.next = (self.next + 1) % self.capacity

    def sample(self, n: int, generator: torch.Generator) -> Batch:
        """``n`` distinct random samples.

        Raises:
            ValueError: fewer than ``n`` samples in the pool.
        """
        if n > self.size:
            raise ValueError(f"pool holds {self.size} samples, cannot draw {n}")
        idx = torch.randperm(self.size, generator=generator)[:n]
        b = {k: v[idx] for k, v in self.buffers.items()}
        pick = idx.tolist()
        return Batch(b["x0"], b["y"], b["positions"], b["shifts"],
                     [self.captions[i] for i in pick], [self.kinds[i] for i in pick])


# -- loss ------------------------------------------------------------------------------


def shifted_sigmas(u: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """``shift*u / (1 + (shift-1)*u)``: the inference schedule's shift applied to ``u`` in [0, 1]."""
    return shifts * u / (1 + (shifts - 1) * u)


def check_temporal_difference_weight(weight: float) -> float:
    """Return ``weight`` (see :func:`flow_matching_loss`); ValueError unless it is a number >= 0."""
    if not float(weight) >= 0:
        raise ValueError(f"temporal_difference_weight must be >= 0 (0 = the plain flow-matching loss), got {weight}")
    return float(weight)


def flow_matching_loss(
    model: TempoMasterDiT,
    text_encoder: TinyTextEncoder,
    batch: Batch,
    generator: torch.Generator,
    *,
    u: Optional[torch.Tensor] = None,
    noise: Optional[torch.Tensor] = None,
    temporal_difference_weight: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flow-matching loss of a batch.

    ``x_sigma = (1-sigma) x0 + sigma * noise``, target ``noise - x0``, prediction
    ``model(x_sigma, sigma*1000, text_encoder(captions), y, positions)``.

    With ``temporal_difference_weight`` ``lambda > 0`` the loss adds ``lambda`` times the mean squared
    *change* of the velocity error ``e = v_pred - v`` between consecutive latent frames ``t-1, t`` for
    ``t >= 2`` (latent frame 0 holds one pixel frame, the others four, so the pair (0, 1) is left out).
    Since ``e = -(x0_pred - x0) / sigma`` for a given ``x_sigma``, this weights the error of each
    latent frame's change from the previous one: an object placed independently per latent frame
    costs more than under the plain MSE, an error shared by neighbouring frames no more. The term is
    a fixed positive semi-definite quadratic form of the error, so the optimum is unchanged (the
    posterior mean of the velocity); it only shifts which errors a model of limited size and training
    removes first (temporal frequency ``w`` weighted ``1 + 4 lambda sin^2(w/2)`` instead of 1).

    Args:
        generator: CPU generator for ``u`` ~ U(0,1) and the noise (unless given); the noise is
            drawn from the model's source prior (``model.config.noise_frame_correlation``,
            :func:`tempomaster_core.noise_prior.correlate_frames`).
        u: optional ``[B]`` fixed schedule positions (validation); sigma = shifted ``u``.
        noise: optional fixed ``[B, C, T, h, w]`` noise (already from the model's prior).

    Returns:
        ``(loss, per_sample)``: the scalar training loss (the mean squared error, plus the
        temporal-difference term when ``lambda > 0``) and ``[B]`` per-sample MSE (detached; without
        the extra term, so held-out losses compare across runs).

    Raises:
        ValueError: ``temporal_difference_weight`` negative.
    """
    check_temporal_difference_weight(temporal_difference_weight)
    device = next(model.parameters()).device
    b = len(batch)
    if u is None:
        u = torch.rand(b, generator=generator)
    if noise is None:
        noise = correlate_frames(torch.randn(batch.x0.shape, generator=generator), model_frame_correlation(model))
    sigma = shifted_sigmas(u, batch.shifts).to(device)
    x0, noise = batch.x0.to(device), noise.to(device)
    s = sigma.view(-1, 1, 1, 1, 1)
    xt = (1 - s) * x0 + s * noise
    context = text_encoder.encode(batch.captions).to(device)
    v = model(xt, sigma * 1000.0, context, batch.y.to(device), batch.positions.to(device))
    error = v.float() - (noise - x0)
    per_sample = (error ** 2).flatten(1).mean(1)
    loss = per_sample.mean()
    if temporal_difference_weight > 0 and error.shape[2] > 2:
        change = error[:, :, 2:] - error[:, :, 1:-1]
        loss = loss + temporal_difference_weight * (change ** 2).mean()
    return loss, per_sample.detach()


# -- schedule / EMA / saving ---------------------------------------------------------


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Linear warm-up over ``cfg.warmup`` steps, then cosine decay to ``cfg.min_lr_ratio * lr``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = min((step - cfg.warmup) / max(1, total - cfg.warmup), 1.0)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def ema_update(ema: torch.nn.Module, live: torch.nn.Module, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * live`` for every parameter."""
    for e, p in zip(ema.parameters(), live.parameters()):
        e.lerp_(p.detach(), 1 - decay)


def save_bundle(out: Path, model: TempoMasterDiT, text_encoder: TinyTextEncoder, summary: dict,
                defaults: Optional[dict] = None, trained: Optional[TrainedLimits] = None) -> None:
    """Write ``dit.safetensors``/``dit.json``, ``text_encoder.*``, ``dit_train.json`` and ``defaults.json``
    into ``out``.

    ``defaults.json`` holds ``defaults`` when given, else the file already in ``out`` (its keys kept), else
    the shipped bundle's recommended settings (:func:`tempomaster_core.tiny.builtin.shipped_defaults`, the
    one copy, which the CLI and the nodes read through :func:`~tempomaster_core.tiny.builtin.bundle_defaults`);
    ``trained`` (what the run trained on, :func:`trained_limits`) replaces its ``trained_frame_intervals`` and
    ``trained_chunk_frames``. The file is replaced whole (written next to it, then renamed).

    Raises:
        FileNotFoundError: no ``defaults``, no file in ``out`` and the shipped ``defaults.json`` is missing (after
            the weights are written; the message names the file).
        ValueError: the ``defaults.json`` in ``out`` is not a JSON object (after the weights are written; the file
            is left as it was).
    """
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "dit.safetensors.tmp"
    save_dit(model, tmp)
    tmp.replace(out / "dit.safetensors")
    (out / "dit.json").write_text(json.dumps(model.config.to_dict(), indent=1) + "\n")
    text_encoder.save(out)
    (out / "dit_train.json").write_text(json.dumps(summary, indent=1) + "\n")
    path = out / DEFAULTS_FILE
    if defaults is not None:
        settings = dict(defaults)
    else:
        settings = read_defaults_file(out) if path.exists() else shipped_defaults()
    if trained is not None:
        settings.update(trained.to_settings())
    tmp = out / (DEFAULTS_FILE + ".tmp")
    tmp.write_text(json.dumps(settings, indent=1) + "\n")
    tmp.replace(path)


# -- training loop ------------------------------------------------------------------


def train(
    out,
    *,
    codec: TinyVideoCodec,
    cfg: Optional[TrainConfig] = None,
    seed: int = 0,
    steps: Optional[int] = None,
    minutes: Optional[float] = None,
    checkpoint_minutes: float = 5.0,
    log_every: int = 25,
    val_samples: int = 32,
    save: bool = True,
    schedule_steps: Optional[int] = None,
    init: Optional[str] = None,
    torch_compile: bool = False,
    device: str | torch.device = "cpu",
    workers: int = 0,
) -> dict:
    """Train the DiT and text encoder; write the bundle into ``out`` (see the module docstring).

    Args:
        out: output directory.
        codec: the (frozen) tiny codec; its latent channels / temporal factor fix the DiT's in/out dims.
        cfg: :class:`TrainConfig` (defaults if None).
        seed: seeds everything.
        steps: exact number of optimisation steps (reproducible), or
        minutes: time budget (steps estimated after the first steps; hard stop at the budget).
        checkpoint_minutes: write the EMA weights this often (0 = only at the end).
        log_every: print a loss line every this many steps.
        val_samples: held-out validation samples (fixed noise and sigma grid) evaluated at each log.
        save: write files (tests pass False).
        schedule_steps: length of the warm-up + cosine learning-rate schedule (default: ``steps``,
            or the estimate from ``minutes``); training still stops at ``steps``/``minutes``.
        init: a bundle directory whose ``dit.safetensors``/``text_encoder.*`` start the run
            (continued training); the architecture then comes from those files.
        torch_compile: run the training forward/backward of the DiT through ``torch.compile``
            (inductor; needs a C++ compiler on CPU; the first step compiles for about a minute).
            The forward/backward/update of a batch of 16 took 0.285 s instead of 0.323 s
            (12 % less) on the 2-core development CPU. Equal to the eager run up to float
            rounding, so a compiled and an eager run of the same seed are not bit-identical.
        device: where the DiT, text encoder, codec (encoding) and optimiser live, e.g. ``"cuda"``.
        workers: ``0`` renders the fresh samples in this process from the one ``seed`` generator
            (the shipped CPU recipe); ``N > 0`` renders them in ``N`` DataLoader processes as
            :class:`RenderedChunks` (a data stream fixed by ``seed`` whatever ``N``, but not the
            ``workers=0`` stream) — for accelerators, where one core cannot render fast enough.

    Data parallelism: when a ``torch.distributed`` process group is initialised (``torchrun``,
    :func:`.data_parallel.join_from_environment`), each of its ranks trains on ``cfg.batch / world_size``
    samples per step drawn from its own streams (rank 0: the single-process ones), the gradients are
    averaged over the ranks (:class:`.data_parallel.TrainRanks`), and rank 0 alone logs, validates and
    writes; the replay pool is split over the ranks too (``cfg.pool / world_size`` each).

    Returns:
        The summary dict (also ``dit_train.json``; on ranks other than 0 without the validation and
        the files), with ``model``/``text_encoder`` not included;
        the EMA modules are attached as ``summary["_ema"] = (model, text_encoder)``.

    Raises:
        ValueError: neither ``steps`` nor ``minutes`` given, ``workers < 0``, a negative
            ``cfg.temporal_difference_weight``, a ``cfg.batch`` that the ranks cannot share evenly, or a ``cfg`` that trains on no pattern kind
            (:func:`trained_limits`); all checked before any step.
    """
    if steps is None and minutes is None:
        raise ValueError("give steps (exact, reproducible) or minutes (time budget)")
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    cfg = cfg or TrainConfig()
    check_temporal_difference_weight(cfg.temporal_difference_weight)
    ranks = TrainRanks.current()
    rank_batch = ranks.share(cfg.batch)
    say = print if ranks.is_main else (lambda *args, **kwargs: None)
    out = Path(out)
    device = torch.device(device)
    codec = codec.eval().requires_grad_(False).to(device)
    limits = trained_limits(cfg, codec.temporal_factor)
    model, text_encoder = build_models(codec, cfg, seed)
    if init is not None:
        from ..loading import load_dit

        model = load_dit(Path(init) / "dit.safetensors", dtype=torch.float32).requires_grad_(True).train()
        text_encoder = TinyTextEncoder.load(init).requires_grad_(True).train()
        say(f"continuing from the weights in {init}", flush=True)
    model, text_encoder = model.to(device), text_encoder.to(device)
    ema_model = copy.deepcopy(model).eval().requires_grad_(False)
    ema_text = copy.deepcopy(text_encoder).eval().requires_grad_(False)
    params = list(model.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay)
    train_model = torch.compile(model) if torch_compile else model
    # rank 0 keeps the single-process streams; the other ranks draw their own samples, noise and sigma
    rng = np.random.default_rng(seed if ranks.is_main else [seed, ranks.rank])
    gen = torch.Generator().manual_seed(seed + 1 + RANK_SEED_STRIDE * ranks.rank)
    n_params = sum(p.numel() for p in model.parameters())
    n_text = sum(p.numel() for p in text_encoder.parameters())
    say(f"DiT {n_params / 1e6:.2f} M parameters {model.config.to_dict()}; text encoder "
        f"{n_text / 1e6:.3f} M; threads {torch.get_num_threads()}; device {device}; "
        f"render workers {workers}; ranks {ranks.world_size}", flush=True)

    val = make_batch(np.random.default_rng(seed + 7), codec, val_samples, cfg,
                     seed_low=HELD_OUT_SEED_BASE, seed_high=HELD_OUT_SEED_BASE + 10_000_000)
    val_gen = torch.Generator().manual_seed(12345)
    val_u = (torch.arange(val_samples, dtype=torch.float32) + 0.5) / val_samples
    val_noise = correlate_frames(torch.randn(val.x0.shape, generator=val_gen), cfg.noise_frame_correlation)

    def validate(m, t) -> dict:
        was = m.training, t.training
        m.eval(), t.eval()
        with torch.no_grad():
            _, per = flow_matching_loss(m, t, val, val_gen, u=val_u, noise=val_noise)
        m.train(was[0]), t.train(was[1])
        blue = [i for i, k in enumerate(val.kinds) if k != "refine"]
        ref = [i for i, k in enumerate(val.kinds) if k == "refine"]
        return {"all": float(per.mean()), "blueprint": float(per[blue].mean()) if blue else None,
                "refine": float(per[ref].mean()) if ref else None}

    pool = ReplayPool(max(rank_batch, cfg.pool // ranks.world_size))
    fresh = max(1, rank_batch // max(cfg.reuse, 1))
    initial = max(rank_batch, 2 * fresh * 4)
    t_start = time.time()
    if workers:
        chunks = iter(rendered_chunk_loader(
            RenderedChunks(seed + RANK_SEED_STRIDE * ranks.rank, fresh, cfg, codec.temporal_factor), workers))

        def fresh_samples() -> Batch:
            return encode_batch(codec, next(chunks))

        while len(pool) < min(initial, pool.capacity):
            pool.add(fresh_samples())
    else:
        def fresh_samples() -> Batch:
            return make_batch(rng, codec, fresh, cfg)

        pool.add(make_batch(rng, codec, initial, cfg))
    say(f"initial pool of {len(pool)} samples in {time.time() - t_start:.1f} s", flush=True)

    total = steps if steps is not None else 10 ** 9
    budget = None if minutes is None else minutes * 60.0
    calibrations = (30, 150, 500)
    summary = {
        "seed": seed, "config": asdict(cfg), "dit_config": model.config.to_dict(),
        "text_encoder_config": text_encoder.config.to_dict(), "parameters": n_params,
        "text_encoder_parameters": n_text, "codec": codec.config.to_dict(), "threads": torch.get_num_threads(),
        "curve": [], "validation": [], "schedule_steps": schedule_steps, "init": None if init is None else str(init),
        "compiled": bool(torch_compile), "device": str(device), "workers": int(workers),
    }
    if ranks.world_size > 1:
        summary["ranks"] = ranks.world_size
    if device.type == "cuda":
        summary["device_name"] = torch.cuda.get_device_name(device)
    last_ckpt = time.time()
    window, window_kind = [], {"blueprint": [], "refine": []}
    t_log, seen_log = time.time(), 0
    step = 0
    while step < total:
        out_of_time, total = ranks.agree(budget is not None and time.time() - t_start > budget, total)
        if out_of_time:
            say(f"time budget of {minutes} min reached at step {step}", flush=True)
            break
        pool.add(fresh_samples())
        batch = pool.sample(rank_batch, gen)
        length = schedule_steps or (total if steps is not None else max(total, step + 1))
        lr = lr_at(step, length, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        loss, per = flow_matching_loss(train_model, text_encoder, batch, gen,
                                       temporal_difference_weight=cfg.temporal_difference_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        loss = ranks.average_gradients(params, loss)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip))
        opt.step()
        decay = min(cfg.ema, (1 + step) / (10 + step))
        ema_update(ema_model, model, decay)
        ema_update(ema_text, text_encoder, decay)
        step += 1
        window.append(loss.item())
        for k, v in zip(batch.kinds, per.tolist()):
            window_kind["refine" if k == "refine" else "blueprint"].append(v)
        seen_log += len(batch) * ranks.world_size
        if step == 1:
            t_first = time.time()  # the first step includes torch.compile's compilation: leave it out of the speed
        if steps is None and step in calibrations:
            now = time.time()
            per_step = (now - t_first) / (step - 1)
            total = max(step + 1, step + int((budget - 30.0 - (now - t_start)) / per_step))
            say(f"{per_step:.2f} s/step so far -> {total} steps fit in {minutes} min "
                f"(repeat exactly with --steps {total})", flush=True)
        if not ranks.is_main:
            continue
        if step % log_every == 0 or step == total:
            now = time.time()
            rate = seen_log / max(now - t_log, 1e-9)
            entry = {
                "step": step, "loss": float(np.mean(window)), "lr": lr, "grad_norm": grad_norm,
                "loss_blueprint": float(np.mean(window_kind["blueprint"])) if window_kind["blueprint"] else None,
                "loss_refine": float(np.mean(window_kind["refine"])) if window_kind["refine"] else None,
                "samples_per_s": rate, "seconds": round(now - t_start, 1),
            }
            summary["curve"].append(entry)
            print(f"step {step:5d}/{total if total < 10 ** 9 else '?'}  loss {entry['loss']:.4f}  "
                  f"(blueprint {entry['loss_blueprint'] or float('nan'):.4f}, refine "
                  f"{entry['loss_refine'] or float('nan'):.4f})  lr {lr:.2e}  |g| {grad_norm:.2f}  "
                  f"{rate:.1f} samples/s  {now - t_start:6.0f} s", flush=True)
            window, window_kind = [], {"blueprint": [], "refine": []}
            t_log, seen_log = time.time(), 0
            if step % (log_every * 4) == 0:
                v = validate(ema_model, ema_text)
                v["step"] = step
                summary["validation"].append(v)
                parts = ", ".join(f"{k} {v[k]:.4f}" for k in ("blueprint", "refine") if v[k] is not None)
                print(f"    held-out validation loss (EMA): {v['all']:.4f} ({parts})", flush=True)
        if save and checkpoint_minutes and time.time() - last_ckpt > checkpoint_minutes * 60:
            summary["steps"] = step
            summary["train_seconds"] = round(time.time() - t_start, 1)
            save_bundle(out, ema_model, ema_text, summary, trained=limits)
            last_ckpt = time.time()
            print(f"    checkpoint written to {out}", flush=True)

    summary["steps"] = step
    summary["train_seconds"] = round(time.time() - t_start, 1)
    if ranks.is_main:
        v = validate(ema_model, ema_text)
        v["step"] = step
        summary["validation"].append(v)
        print(f"done: {step} steps in {summary['train_seconds']:.0f} s; held-out validation loss (EMA) "
              f"{v['all']:.4f}", flush=True)
        if save:
            save_bundle(out, ema_model, ema_text, summary, trained=limits)
            print(f"wrote {out / 'dit.safetensors'}, {out / 'text_encoder.safetensors'}", flush=True)
    summary["_ema"] = (ema_model, ema_text)
    return summary


def main(argv: Optional[list] = None) -> None:
    """Command-line entry point (see the module docstring)."""
    p = argparse.ArgumentParser(description="Train the TempoMaster-Tiny DiT + text encoder on procedural scenes.")
    p.add_argument("--out", required=True, help="output directory (the shipped bundle lives in tempomaster_core/builtin)")
    p.add_argument("--codec-dir", default=None, help="directory with codec.safetensors/json (default: --out)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="exact number of steps (reproducible)")
    p.add_argument("--minutes", type=float, default=None, help="time budget (used when --steps is not given)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--checkpoint-minutes", type=float, default=5.0)
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--schedule-steps", type=int, default=None,
                   help="learning-rate schedule length (default: --steps, or the estimate from --minutes)")
    p.add_argument("--init", default=None, help="continue from the DiT/text encoder in this bundle directory")
    p.add_argument("--device", default="cpu", help="torch device for training, e.g. cuda (default: cpu)")
    p.add_argument("--workers", type=int, default=0,
                   help="processes rendering training clips (0: in the main process, the shipped CPU recipe; "
                        "use most CPU cores with --device cuda)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the DiT for training (faster; needs a C++ compiler on CPU)")
    defaults = TrainConfig()
    for name in ("dim", "layers", "heads", "ffn_mult", "freq_dim", "text_dim", "text_layers", "frames", "size",
                 "t_max", "batch", "reuse", "pool", "warmup"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(defaults, name))
    for name in ("caption_dropout", "lr", "weight_decay", "min_lr_ratio", "grad_clip", "ema", "noise_frame_correlation",
                 "temporal_difference_weight"):
        p.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(defaults, name))
    p.add_argument("--blueprint-t0-max", type=int, default=None,
                   help="blueprint-case clips start at scene times [0, N) frames (default: [8, 480) like all clips)")
    a = p.parse_args(argv)
    if a.steps is None and a.minutes is None:
        p.error("give --steps or --minutes")
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = TrainConfig(**{k: getattr(a, k) for k in TrainConfig.__dataclass_fields__ if hasattr(a, k)})
    codec = TinyVideoCodec.load(a.codec_dir or a.out)
    rank_device = join_from_environment(a.device)  # started by torchrun: data parallel over its ranks
    try:
        train(a.out, codec=codec, cfg=cfg, seed=a.seed, steps=a.steps, minutes=a.minutes,
              checkpoint_minutes=a.checkpoint_minutes, log_every=a.log_every, schedule_steps=a.schedule_steps,
              init=a.init, torch_compile=a.compile, device=rank_device or a.device, workers=a.workers)
    finally:
        if rank_device is not None:
            torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
