"""Train the tiny video codec on the procedural scenes.

Usage (the shipped weights, both phases; 18.5 min (9.4 + 9.9) on one core of the 2-core development CPU)::

    python -m tempomaster_core.training.train_codec --out tempomaster_core/builtin/ --seed 0 --steps 1500 --threads 1

or with a time budget instead of a step count: ``--minutes 10``.

Recipe: the linear patch transforms are initialised to the PCA of
``sf``×``sf`` patches of ``pca_samples`` random full-frame groups; then the
whole auto-encoder is trained for reconstruction (MSE + 0.1·L1 on pixels in
[-1, 1], Adam, warm-up then cosine learning-rate decay, gradient clipping) on
groups of ``temporal_factor`` pixel frames (one latent frame each) from random
scenes at frame intervals 4, 2 and 1 (the codec must code 6, 12 and 24 fps
clips: blueprint and refinement levels) plus static groups (four copies of one
frame, i.e. latent frame 0 of a clip), cut to 32×32 crops aligned to the
latent grid and mostly centred on objects (cheaper steps spent on the hard
parts). Small Gaussian noise is added to the latents seen by the decoder so
it tolerates the imperfect latents a diffusion model produces.
A translation-equivariance penalty (:func:`equivariance_losses`, weight
:data:`SHIPPED_EQUIVARIANCE`) makes the latent of content moved by a fraction
of a latent cell the bilinear interpolation of the unmoved latent, so a slowly
moving object changes its latent smoothly from one latent frame to the next —
what the DiT needs to learn coherent motion (issue 16, model card).
Second phase (:func:`train_context_decoder`, ``--decoder-steps``): on the frozen encoder, a decoder that
also reads the neighbouring latent frames (``--decoder-context``) is trained on whole 13-frame clips, half
of them with *held* input groups (no motion inside a latent frame, the DiT's failure mode), with a loss
on the frame-to-frame changes besides the frames (:func:`temporal_difference_loss`), so that decoded motion
is continuous across latent frames; the latents stay those of the first phase.
After the first phase, per-channel latent mean/std are measured on fresh training
clips (normalisation, like Wan's), and PSNR is measured through the public
``encode``/``decode`` on held-out scene seeds (never used in training: training
scenes use seeds below ``HELD_OUT_SEED_BASE``). Prints step, loss, crop PSNR
and learning rate every 25 steps and the held-out PSNR every 500 steps.

Reproducibility: everything is drawn from ``--seed``. ``--steps`` fixes the
run exactly; with ``--minutes`` alone the script times the warm-up steps
(re-estimated once, a shared CPU's speed varies), then fixes the step count
that fits (printed, so the run can be repeated with ``--steps``).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from einops import rearrange

from ..tiny.codec import CodecConfig, TinyVideoCodec, psnr
from ..tiny.scenes import HELD_OUT_SEED_BASE, object_positions, render, render_frames, sample_scene


SHIPPED_EQUIVARIANCE = 0.03
"""Weight of :func:`equivariance_losses` in the shipped codec's recipe: held-out PSNR 31.2 dB after the first
phase (≥ 30 needed) with a latent 35 × closer to translation-equivariant than without it (model card, issue 16);
0.1 cost 2.7 dB."""

SHIPPED_DECODER_CONTEXT = 1
"""Latent frames on each side that the shipped codec's decoder reads (:class:`CodecConfig` ``decoder_context``)."""

SHIPPED_DECODER_STEPS = 1500
"""Steps of the context-decoder phase (:func:`train_context_decoder`) in the shipped recipe."""

HELD_FRACTION = 0.5
"""Share of the context decoder's training clips whose input groups are *held* (see :func:`sample_clips`)."""

TEMPORAL_WEIGHT = 1.0
"""Weight of :func:`temporal_difference_loss` in the context-decoder phase."""

BOUNDARY_WEIGHT = 4.0
"""Extra weight of the frame pairs that cross a latent-frame boundary inside :func:`temporal_difference_loss`."""

CLIP_FRAMES = 13
"""Pixel frames of a context-decoder training clip (4 latent frames: the first alone, then 3 groups)."""

INTERVALS = (4, 2, 1)
"""24 fps frame intervals of the clips the codec is trained and evaluated on (6/12/24 fps)."""


def sample_groups(rng: np.random.Generator, batch: int, temporal_factor: int = 4,
                  size: int = 64, crop: int | None = None, grid: int = 8,
                  static_fraction: float = 0.2) -> torch.Tensor:
    """A training batch of pixel-frame groups ``[batch, 3, temporal_factor, S, S]`` in [-1, 1].

    Each group comes from a new random scene (seed < ``HELD_OUT_SEED_BASE``)
    rendered at ``size``×``size``: ``temporal_factor`` consecutive frames at a
    random interval in :data:`INTERVALS` from a random start frame in [0, 480);
    with probability ``static_fraction`` it is one frame repeated (a clip's
    first latent frame). With ``crop``, a ``crop``×``crop`` window aligned to
    ``grid`` pixels is cut out (``S = crop``), centred on an object in 3 cases
    out of 4 (cheaper steps, mostly on the hard parts); else ``S = size``.
    """
    side = crop or size
    out = torch.empty(batch, 3, temporal_factor, side, side)
    for i in range(batch):
        spec = sample_scene(int(rng.integers(HELD_OUT_SEED_BASE)), height=size, width=size)
        start = float(rng.integers(480))
        if rng.random() < static_fraction:
            frames = [start] * temporal_factor
        else:
            interval = INTERVALS[int(rng.integers(len(INTERVALS)))]
            frames = [start + k * interval for k in range(temporal_factor)]
        video = render_frames(spec, frames)
        if crop:
            if rng.random() < 0.75:
                cx, cy = object_positions(spec, frames[:1])[0, int(rng.integers(spec.count))]
                cx += rng.uniform(-crop / 3, crop / 3)
                cy += rng.uniform(-crop / 3, crop / 3)
            else:
                cx, cy = rng.uniform(0, size, 2)
            x0 = int(np.clip(round((cx - crop / 2) / grid) * grid, 0, size - crop))
            y0 = int(np.clip(round((cy - crop / 2) / grid) * grid, 0, size - crop))
            video = video[:, :, y0:y0 + crop, x0:x0 + crop]
        out[i] = video
    return out


def reconstruction_loss(video: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The codec's reconstruction loss on pixels in [-1, 1], both phases: ``(MSE + 0.1·L1, MSE)``."""
    mse = torch.mean((video - target) ** 2)
    return mse + 0.1 * torch.mean((video - target).abs()), mse


def with_latent_noise(z: torch.Tensor, latent_noise: float) -> torch.Tensor:
    """``z`` plus Gaussian noise of ``latent_noise`` × its std (the decoder's input in training, so that it
    tolerates a diffusion model's imperfect latents); ``z`` itself for ``latent_noise`` <= 0."""
    if latent_noise <= 0:
        return z
    return z + latent_noise * z.detach().std() * torch.randn_like(z)


def sample_clips(rng: np.random.Generator, batch: int, frames: int = CLIP_FRAMES, temporal_factor: int = 4,
                 size: int = 64, held_fraction: float = HELD_FRACTION) -> tuple[torch.Tensor, torch.Tensor]:
    """Training clips of the context decoder: ``(inputs, targets)``, each ``[batch, 3, frames, size, size]``
    in [-1, 1] (``frames = 4n + 1``, full frames: a decoder trained on small crops codes whole frames
    ~3 dB worse, as most of a crop's latent cells lie on its zero-padded border).

    Each clip is a new random training scene (seed < ``HELD_OUT_SEED_BASE``) at a random interval in
    :data:`INTERVALS` from a random start in [0, 480). ``targets`` is the clip. ``inputs`` is the clip too,
    except for a share ``held_fraction`` of the clips in which every pixel-frame group is *held*: its
    ``temporal_factor`` frames all show the group's middle instant (frame 0, a group of its own, is
    unchanged). A held group has a latent without motion inside it — what the DiT generates when it
    places an object per latent frame but not its motion within the frame (issue 16: 0.23 px per 6 fps
    frame inside a latent frame vs 3.3 px across) — so the decoder learns to draw that motion from where
    the content sits in the neighbouring latent frames, as Wan's VAE decoder can through its temporal
    receptive field.
    """
    if frames < 1 or (frames - 1) % temporal_factor:
        raise ValueError(f"frames must be {temporal_factor}n+1, got {frames}")
    inputs = torch.empty(batch, 3, frames, size, size)
    targets = torch.empty_like(inputs)
    for i in range(batch):
        spec = sample_scene(int(rng.integers(HELD_OUT_SEED_BASE)), height=size, width=size)
        start = float(rng.integers(480))
        interval = INTERVALS[int(rng.integers(len(INTERVALS)))]
        targets[i] = render_frames(spec, [start + k * interval for k in range(frames)])
        if rng.random() < held_fraction:
            middle = (temporal_factor + 1) / 2  # group g covers frames (g-1)*tf + 1 .. g*tf
            held = [start] + [start + ((k - 1) // temporal_factor * temporal_factor + middle) * interval
                              for k in range(1, frames)]
            inputs[i] = render_frames(spec, held)
        else:
            inputs[i] = targets[i]
    return inputs, targets


def temporal_difference_loss(video: torch.Tensor, target: torch.Tensor, temporal_factor: int = 4,
                             boundary_weight: float = BOUNDARY_WEIGHT) -> torch.Tensor:
    """Mean absolute error of the frame-to-frame differences of ``video`` against ``target`` (both
    ``[B, 3, 4n+1, H, W]``), the pairs ``(f, f+1)`` that cross a latent-frame boundary (``f`` a multiple of
    ``temporal_factor``) weighted ``boundary_weight`` (weights normalised to mean 1). A decoder that codes
    every latent frame well but differently flickers at those pairs; this term asks for the ground
    truth's changes between frames, not only for its frames."""
    pairs = video.shape[2] - 1
    weight = torch.ones(pairs, dtype=video.dtype, device=video.device)
    weight[0::temporal_factor] = boundary_weight
    error = ((video[:, :, 1:] - video[:, :, :-1]) - (target[:, :, 1:] - target[:, :, :-1])).abs()
    return torch.mean(error * (weight / weight.mean()).view(1, 1, -1, 1, 1))


def train_context_decoder(codec: TinyVideoCodec, rng: np.random.Generator, steps: int, *,
                          decoder_context: int = SHIPPED_DECODER_CONTEXT, batch: int = 8, lr: float = 2e-4,
                          latent_noise: float = 0.05, held_fraction: float = HELD_FRACTION,
                          temporal_weight: float = TEMPORAL_WEIGHT, log_every: int = 25,
                          curve: list | None = None) -> TinyVideoCodec:
    """Second phase of the codec recipe: a decoder reading ``decoder_context`` neighbouring latent frames
    on each side, trained on the frozen encoder of ``codec`` (so its latents, and a DiT trained on
    them, do not change).

    The new decoder starts as ``codec``'s (its context input zero-initialised, so step 0 decodes
    exactly as before) and trains ``steps`` Adam steps (``lr`` peak, 50 warm-up steps, cosine decay) on
    :func:`sample_clips` batches (``batch`` clips of :data:`CLIP_FRAMES` frames): :func:`reconstruction_loss` +
    ``temporal_weight`` × :func:`temporal_difference_loss`, with :func:`with_latent_noise` on the decoder's input.
    Returns a new codec (same config and normalisation, ``decoder_context`` set) in eval mode; appends
    ``{"step", "loss", "phase": "decoder"}`` to ``curve`` every ``log_every`` steps.
    """
    config = CodecConfig.from_dict({**codec.config.to_dict(), "decoder_context": decoder_context})
    out = TinyVideoCodec(config)
    unexpected = out.load_state_dict(codec.state_dict(), strict=False).unexpected_keys
    if unexpected:
        raise ValueError(f"decoder weights that the context decoder has no place for: {unexpected}")
    out.train()
    out.encoder.requires_grad_(False)
    params = list(out.decoder.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    t0 = time.time()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, steps, lr, 50)
        inputs, targets = sample_clips(rng, batch, temporal_factor=out.temporal_factor, held_fraction=held_fraction)
        with torch.no_grad():
            z = out.encode_raw(inputs)
        video = out.decode_raw(with_latent_noise(z, latent_noise))
        loss, _ = reconstruction_loss(video, targets)
        if temporal_weight:
            loss = loss + temporal_weight * temporal_difference_loss(video, targets, out.temporal_factor)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if (step + 1) % log_every == 0 or step + 1 == steps:
            if curve is not None:
                curve.append({"step": step + 1, "loss": float(loss.detach()), "phase": "decoder",
                              "seconds": round(time.time() - t0, 1)})
            print(f"decoder step {step + 1:5d}/{steps}  loss {float(loss.detach()):.5f}  "
                  f"lr {opt.param_groups[0]['lr']:.2e}  {time.time() - t0:6.1f} s", flush=True)
    return out.eval()


def shift_interpolate(z: torch.Tensor, dy: float, dx: float) -> torch.Tensor:
    """Bilinear samples of latent maps at a fractional offset: ``[N, C, h+1, w+1]`` → ``[N, C, h, w]``.

    Output cell ``(i, j)`` is ``z`` read at ``(i + dy, j + dx)`` (latent cells, ``0 <= dy, dx < 1``), i.e.
    the latent of the same content moved by ``(-dy, -dx)`` cells if the latent space is equivariant to
    translation.
    """
    rows = (1 - dy) * z[:, :, :-1] + dy * z[:, :, 1:]
    return (1 - dx) * rows[:, :, :, :-1] + dx * rows[:, :, :, 1:]


def equivariance_losses(codec: TinyVideoCodec, window: torch.Tensor, z_window: torch.Tensor,
                        rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Translation-equivariance penalties of the latent space (after EQ-VAE, Kouzelis et al. 2025,
    which regularises a VAE so that a transformed latent decodes to the transformed image).

    ``window``: pixel groups ``[N, 3*tf, S+sf, S+sf]`` in [-1, 1] (``S`` a multiple of ``sf``);
    ``z_window``: their raw latents ``[N, C, S/sf+1, S/sf+1]``. A random sub-cell pixel offset
    ``(oy, ox)`` in ``[0, sf)`` (not both 0) cuts the crop ``window[oy:oy+S, ox:ox+S]``; its latent
    should be the window's latent read bilinearly at ``(oy, ox) / sf`` cells, and that interpolated latent
    should decode to the crop. Returns ``(latent term, decoder term)``: the latent MSE divided by the
    per-channel latent variance, and the pixel MSE of the decoded interpolation. A latent space with
    these properties changes smoothly when an object moves by less than a cell, which the DiT needs
    to relate a moving object's latent frames (issue 16).
    """
    sf = codec.spatial_factor
    size = window.shape[-1] - sf
    oy, ox = 0, 0
    while oy == 0 and ox == 0:
        oy, ox = (int(v) for v in rng.integers(0, sf, 2))
    crop = window[:, :, oy:oy + size, ox:ox + size]
    target = shift_interpolate(z_window, oy / sf, ox / sf)
    z_crop = codec.encoder(crop)
    # Not detached: the ratio is then scale-free (a detached variance rewards shrinking channels to 0).
    variance = z_window.var(dim=(0, 2, 3)).clamp_min(1e-6).view(1, -1, 1, 1)
    latent_term = torch.mean((z_crop - target) ** 2 / variance)
    decoder_term = torch.mean((codec.decoder(target) - crop) ** 2)
    return latent_term, decoder_term


def held_out_clips(count: int = 12, frames: int = 17, size: int = 64) -> list[torch.Tensor]:
    """Deterministic evaluation clips ``[1, 3, frames, size, size]`` from held-out scene
    seeds ``HELD_OUT_SEED_BASE + k``, cycling through intervals 4, 2, 1."""
    clips = []
    for k in range(count):
        spec = sample_scene(HELD_OUT_SEED_BASE + k, height=size, width=size)
        clips.append(render(spec, frames, start_frame=7 * k, interval=INTERVALS[k % len(INTERVALS)])[None])
    return clips


@torch.no_grad()
def evaluate(codec: TinyVideoCodec, clips: list[torch.Tensor]) -> dict:
    """PSNR (dB) through the public ``encode``/``decode`` on ``clips``:
    ``pooled`` (from the mean squared error over all clips), ``mean`` and ``min`` per clip."""
    was_training = codec.training
    codec.eval()
    values, mses = [], []
    for clip in clips:
        rec = codec.decode(codec.encode(clip))
        values.append(psnr(clip, rec))
        mses.append(float(((clip.double() - rec.double()) ** 2).mean()))
    codec.train(was_training)
    pooled = 10 * math.log10(4.0 / max(sum(mses) / len(mses), 1e-20))
    return {"pooled": pooled, "mean": float(np.mean(values)), "min": float(np.min(values))}


@torch.no_grad()
def fit_normalization(codec: TinyVideoCodec, rng: np.random.Generator, clips: int = 64) -> None:
    """Measure per-channel mean/std of raw latents on fresh training clips
    (17 frames, intervals 4/2/1) and store them in the codec."""
    zs = []
    for _ in range(clips):
        spec = sample_scene(int(rng.integers(HELD_OUT_SEED_BASE)))
        clip = render(spec, 17, float(rng.integers(480)), INTERVALS[int(rng.integers(len(INTERVALS)))])
        zs.append(codec.encode_raw(clip[None]))
    z = torch.cat(zs, 2).transpose(0, 1).reshape(codec.latent_channels, -1).double()
    codec.set_normalization(z.mean(1), z.std(1).clamp_min(1e-6))


def _lr_at(step: int, total: int, base: float, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def train_first_phase(codec: TinyVideoCodec, seed: int, *, steps: int | None, minutes: float | None,
                      batch: int, crop: int | None, lr: float, latent_noise: float, equivariance: float,
                      pca_samples: int, log_every: int, eval_every: int, eval_clips: list, curve: list,
                      started: float) -> int:
    """Phase 1 of :func:`train`: encoder and per-frame decoder from a PCA initialisation, on crops.

    Fits the PCA initialisation on ``pca_samples`` full-frame groups, trains ``steps`` steps (or the steps that
    fit in ``minutes``, counted from ``started``, a ``time.time()``) of MSE + 0.1 L1 on the decoded noisy
    latents plus ``equivariance`` x :func:`equivariance_losses`, then fits the latent normalisation. Appends
    log entries to ``curve``; returns the number of steps made. ``numpy.random.default_rng(seed)`` draws
    every training group (PCA groups, then one batch per step), ``seed + 1`` the normalisation's groups.
    """
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(codec.parameters(), lr=lr)
    pca_groups = rearrange(sample_groups(rng, pca_samples, codec.temporal_factor), "b c t h w -> b (t c) h w")
    codec.init_linear_pca(pca_groups)
    del pca_groups
    print(f"PCA initialisation on {pca_samples} full-frame groups: held-out PSNR "
          f"{evaluate(codec, eval_clips)['pooled']:.2f} dB", flush=True)
    total = steps if steps is not None else 10 ** 9
    t_loop = time.time()
    warmup = 50
    calibrate_at = (warmup, 4 * warmup)  # during warm-up the LR does not depend on the total
    step = 0
    while step < total:
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, total, lr, warmup)
        sample_crop = crop + codec.spatial_factor if (equivariance and crop) else crop
        x = sample_groups(rng, batch, codec.temporal_factor, crop=sample_crop, grid=codec.spatial_factor)
        groups = rearrange(x, "b c t h w -> b (t c) h w")  # same layout as TinyVideoCodec.group_frames
        z_clean = codec.encoder(groups)
        rec = codec.decoder(with_latent_noise(z_clean, latent_noise))
        loss, mse = reconstruction_loss(rec, groups)
        if equivariance:
            latent_term, decoder_term = equivariance_losses(codec, groups, z_clean, rng)
            loss = loss + equivariance * (latent_term + decoder_term)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(codec.parameters(), 1.0)
        opt.step()
        step += 1
        if steps is None and step in calibrate_at:
            # Step count from the speed so far (re-estimated once, early in the
            # cosine schedule, because a shared CPU's speed varies).
            per_step = (time.time() - t_loop) / step
            budget = minutes * 60 - 45  # leave time for normalisation + evaluation
            total = max(step + 1, step + int((budget - (time.time() - started)) / per_step))
            print(f"{per_step:.3f} s/step -> {total} steps fit in {minutes} min "
                  f"(repeat exactly with --steps {total})", flush=True)
        if step % log_every == 0 or step == total:
            train_psnr = 10 * math.log10(4.0 / max(float(mse.detach()), 1e-20))
            curve.append({"step": step, "loss": float(loss.detach()), "psnr": train_psnr,
                          "seconds": round(time.time() - started, 1)})
            print(f"step {step:5d}/{total}  loss {float(loss.detach()):.5f}  crop PSNR {train_psnr:5.2f} dB  "
                  f"lr {opt.param_groups[0]['lr']:.2e}  {time.time() - started:6.1f} s", flush=True)
        if eval_every and step % eval_every == 0 and step < total:
            print(f"step {step:5d}  held-out PSNR {evaluate(codec, eval_clips)['pooled']:.2f} dB "
                  "(before normalisation fit)", flush=True)
    codec.eval()
    fit_normalization(codec, np.random.default_rng(seed + 1))
    print(f"first phase: held-out PSNR {evaluate(codec, eval_clips)['pooled']:.2f} dB", flush=True)
    return step


def train(out: str | Path, *, seed: int = 0, steps: int | None = None, minutes: float | None = None,
          batch: int = 32, crop: int | None = 32, lr: float = 1e-3, latent_noise: float = 0.05,
          config: CodecConfig | None = None, threads: int | None = None, log_every: int = 25,
          pca_samples: int = 256, eval_every: int = 500, equivariance: float = SHIPPED_EQUIVARIANCE,
          decoder_of: str | Path | None = None, decoder_context: int = SHIPPED_DECODER_CONTEXT,
          decoder_steps: int = SHIPPED_DECODER_STEPS) -> dict:
    """Train a codec and write ``codec.safetensors``/``codec.json``/``codec_train.json`` into ``out``.

    ``steps`` (exact) or ``minutes`` (a budget turned into a step count after
    timing the first steps) must be given. ``latent_noise`` is the std of the
    Gaussian noise added to latents before decoding, relative to the batch's
    latent std. ``eval_every`` steps the held-out PSNR is printed. ``equivariance`` > 0 adds
    :func:`equivariance_losses` (both terms, that weight) on crops ``sf`` pixels larger than ``crop``
    (phase 1: :func:`train_first_phase`).
    Then, with ``decoder_steps`` > 0, the second phase (:func:`train_context_decoder`) trains a decoder
    reading ``decoder_context`` neighbouring latent frames on each side on the frozen encoder.
    ``decoder_of``: a codec directory whose encoder and latent normalisation are kept as they are (the
    first phase is skipped, ``steps``/``minutes``/``config`` are ignored) and only the second phase runs:
    the latents, and so a DiT trained on them, are unchanged. Returns the summary dict also written
    to ``codec_train.json``.

    Raises:
        ValueError: neither ``steps`` nor ``minutes`` (without ``decoder_of``), or ``decoder_of`` with
            ``decoder_steps < 1``.
    """
    if steps is None and minutes is None and decoder_of is None:
        raise ValueError("give --steps (exact, reproducible) or --minutes (time budget)")
    if decoder_of is not None and decoder_steps < 1:
        raise ValueError("--decoder-of trains only the decoder: give --decoder-steps >= 1")
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    codec = TinyVideoCodec.load(decoder_of).train() if decoder_of else TinyVideoCodec(config or CodecConfig())
    print(f"codec: {sum(p.numel() for p in codec.parameters()) / 1e6:.2f} M parameters, "
          f"config {codec.config.to_dict()}", flush=True)
    eval_clips = held_out_clips()
    t0 = time.time()
    curve: list = []
    step = 0
    if decoder_of:  # a kept encoder keeps its normalisation: the latents must not change
        print(f"start: held-out PSNR {evaluate(codec, eval_clips)['pooled']:.2f} dB", flush=True)
        codec.eval()
    else:
        step = train_first_phase(codec, seed, steps=steps, minutes=minutes, batch=batch,
                                 crop=crop, lr=lr, latent_noise=latent_noise, equivariance=equivariance,
                                 pca_samples=pca_samples, log_every=log_every, eval_every=eval_every,
                                 eval_clips=eval_clips, curve=curve, started=t0)
    if decoder_steps:
        codec = train_context_decoder(codec, np.random.default_rng(seed + 2), decoder_steps,
                                      decoder_context=decoder_context, latent_noise=latent_noise, log_every=log_every,
                                      curve=curve)
    n_params = sum(p.numel() for p in codec.parameters())
    result = evaluate(codec, eval_clips)
    elapsed = time.time() - t0
    print(f"held-out PSNR (encode->decode, {len(eval_clips)} clips of 17 frames at intervals 4/2/1): "
          f"pooled {result['pooled']:.2f} dB, mean {result['mean']:.2f} dB, min {result['min']:.2f} dB", flush=True)
    out = Path(out)
    codec.save(out)
    summary = {"seed": seed, "steps": step, "batch": batch, "crop": crop, "lr": lr, "latent_noise": latent_noise,
               "equivariance": equivariance, "decoder_of": str(decoder_of) if decoder_of else None,
               "decoder_context": decoder_context, "decoder_steps": decoder_steps,
               "parameters": n_params, "train_seconds": round(elapsed, 1),
               "threads": torch.get_num_threads(), "held_out_psnr": result,
               "config": codec.config.to_dict(), "curve": curve}
    (out / "codec_train.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"wrote {out / 'codec.safetensors'} and {out / 'codec.json'} in {elapsed:.0f} s", flush=True)
    return summary


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    p = argparse.ArgumentParser(description="Train the TempoMaster-Tiny video codec on procedural scenes.")
    p.add_argument("--out", required=True, help="output directory (codec.safetensors, codec.json)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="exact number of steps (reproducible)")
    p.add_argument("--minutes", type=float, default=None, help="time budget (used when --steps is not given)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--crop", type=int, default=32, help="training crop size (0 = full frames)")
    p.add_argument("--latent-noise", type=float, default=0.05)
    p.add_argument("--channels", type=str, default=None, help="e.g. 16,32,64,128")
    p.add_argument("--blocks", type=str, default=None, help="e.g. 1,1,2")
    p.add_argument("--pixel-shuffle", type=int, default=2)
    p.add_argument("--latent-channels", type=int, default=16)
    p.add_argument("--spatial-factor", type=int, default=8)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--equivariance", type=float, default=SHIPPED_EQUIVARIANCE,
                   help=f"weight of the translation-equivariance penalties (default {SHIPPED_EQUIVARIANCE}, "
                        "the shipped codec's; 0 = off, the recipe before session 14)")
    p.add_argument("--decoder-context", type=int, default=SHIPPED_DECODER_CONTEXT,
                   help=f"latent frames on each side the decoder reads "
                        f"(default {SHIPPED_DECODER_CONTEXT}, the shipped codec's)")
    p.add_argument("--decoder-steps", type=int, default=SHIPPED_DECODER_STEPS,
                   help="steps of the second phase, the decoder on the frozen encoder "
                        f"(default {SHIPPED_DECODER_STEPS}; "
                        "0 = none, the recipe before session 15)")
    p.add_argument("--decoder-of", default=None,
                   help="codec directory: keep its encoder and train only a new decoder (the second phase)")
    a = p.parse_args(argv)
    kw = {"latent_channels": a.latent_channels, "spatial_factor": a.spatial_factor,
          "pixel_shuffle": a.pixel_shuffle}
    if a.channels:
        kw["channels"] = tuple(int(v) for v in a.channels.split(","))
    if a.blocks:
        kw["blocks"] = tuple(int(v) for v in a.blocks.split(","))
    if a.steps is None and a.minutes is None and a.decoder_of is None:
        p.error("give --steps or --minutes")
    train(a.out, seed=a.seed, steps=a.steps, minutes=a.minutes, batch=a.batch, crop=a.crop or None, lr=a.lr,
          latent_noise=a.latent_noise, config=CodecConfig(**kw), threads=a.threads, equivariance=a.equivariance,
          decoder_of=a.decoder_of, decoder_context=a.decoder_context, decoder_steps=a.decoder_steps)


if __name__ == "__main__":
    main()
