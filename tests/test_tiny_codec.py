"""Tiny video codec: codec protocol shapes, Wan temporal structure, errors, PCA init, shipped weights."""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tempomaster_core.tiny import scenes as S
from tempomaster_core.tiny.codec import CodecConfig, TinyVideoCodec, psnr

BUILTIN = Path(__file__).resolve().parents[1] / "tempomaster_core" / "builtin"
SMALL = CodecConfig(latent_channels=16, spatial_factor=8, pixel_shuffle=2, channels=(8, 8, 16), blocks=(1, 0, 1))


def _random_codec(seed: int = 0, config: CodecConfig = SMALL) -> TinyVideoCodec:
    """A codec whose every layer (also the zero-initialised ones) has random weights."""
    torch.manual_seed(seed)
    codec = TinyVideoCodec(config)
    with torch.no_grad():
        for m in codec.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                m.weight.normal_(0, 0.5 / m.weight[0].numel() ** 0.5)
                m.bias.normal_(0, 0.05)
    return codec.eval()


def _video(frames: int, seed: int = 1, size: int = 64, interval: int = 1) -> torch.Tensor:
    return S.render(S.sample_scene(seed, height=size, width=size), frames, interval=interval)[None]


def test_protocol_attributes_and_shapes():
    codec = _random_codec()
    assert (codec.latent_channels, codec.temporal_factor, codec.spatial_factor) == (16, 4, 8)
    video = torch.cat([_video(9, 1), _video(9, 2)])
    with torch.no_grad():
        z = codec.encode(video)
        assert z.shape == (2, 16, 3, 8, 8) and z.dtype == torch.float32
        out = codec.decode(z)
    assert out.shape == (2, 3, 9, 64, 64)
    assert float(out.min()) >= -1 and float(out.max()) <= 1
    # Non-square frames.
    with torch.no_grad():
        assert codec.encode(_video(5)[..., :32, :48]).shape == (1, 16, 2, 4, 6)


def test_single_frame_clip_is_latent_frame_zero():
    codec = _random_codec()
    video = _video(13)
    with torch.no_grad():
        z_one = codec.encode(video[:, :, :1])
        z_all = codec.encode(video)
        assert z_one.shape == (1, 16, 1, 8, 8)
        assert torch.allclose(z_one, z_all[:, :, :1], atol=1e-5)
        assert codec.decode(z_one).shape == (1, 3, 1, 64, 64)


def test_wan_temporal_grouping():
    """Latent 0 <- pixel frame 0; latent k <- pixel frames 4k-3 .. 4k (and decoding the reverse)."""
    codec = _random_codec()
    video = _video(13)
    with torch.no_grad():
        base = codec.encode(video)
        for frame, latent in ((0, 0), (1, 1), (4, 1), (5, 2), (8, 2), (12, 3)):
            changed = video.clone()
            changed[:, :, frame] = -changed[:, :, frame]
            diff = (codec.encode(changed) - base).abs().amax(dim=(0, 1, 3, 4))
            assert diff[latent] > 1e-3, (frame, latent)
            assert torch.count_nonzero(diff[torch.arange(4) != latent]) == 0, (frame, latent)
        # Decoding: latent 2 drives exactly pixel frames 5..8.
        rec = codec.decode(base)
        z = base.clone()
        z[:, :, 2] += 1.0
        d = (codec.decode(z) - rec).abs().amax(dim=(0, 1, 3, 4))
        assert bool((d[5:9] > 1e-4).all()) and torch.count_nonzero(d[:5]) == 0 and torch.count_nonzero(d[9:]) == 0


def test_normalisation_applied():
    codec = _random_codec()
    video = _video(5)
    with torch.no_grad():
        raw = codec.encode_raw(video)
        mean = torch.linspace(-1, 1, 16)
        std = torch.linspace(0.5, 2, 16)
        codec.set_normalization(mean, std)
        z = codec.encode(video)
        assert torch.allclose(z, (raw - mean.view(1, -1, 1, 1, 1)) / std.view(1, -1, 1, 1, 1), atol=1e-5)
        assert torch.allclose(codec.decode(z), codec.decode_raw(raw).clamp(-1, 1), atol=1e-5)
    assert codec.config.latent_std[3] == pytest.approx(float(std[3]))


def test_pca_initialisation_is_the_pca_codec():
    torch.manual_seed(0)
    codec = TinyVideoCodec(SMALL).eval()
    # 12 clips = 768 patches of 768 values: enough for a well-separated top-16 subspace (eigenvalue gap
    # 407 -> 359), and half the SVD work of 24 clips
    clips = [S.render(S.sample_scene(s), 4, start_frame=s, interval=2) for s in range(12)]
    groups = torch.stack([c.permute(1, 0, 2, 3).reshape(12, 64, 64) for c in clips])  # (frame, rgb) channels
    codec.init_linear_pca(groups)
    # Independent float64 PCA with numpy on 8x8 patches centred by the per-channel mean: the top
    # eigenvectors of the scatter matrix (the codec takes an SVD of the patches instead).
    p = groups.double().numpy().reshape(12, 12, 8, 8, 8, 8).transpose(0, 2, 4, 1, 3, 5).reshape(-1, 12, 64)
    mu = p.mean(axis=(0, 2))
    x = (p - mu[None, :, None]).reshape(len(p), -1)
    _, vectors = np.linalg.eigh(x.T @ x)  # ascending eigenvalues
    b = vectors[:, ::-1][:, :16].T
    test = S.render(S.sample_scene(99), 5, interval=1)[None]
    tg = codec.group_frames(test).double().numpy()
    tp = tg.reshape(-1, 12, 8, 8, 8, 8).transpose(0, 2, 4, 1, 3, 5).reshape(-1, 12, 64)
    rec = ((tp - mu[None, :, None]).reshape(len(tp), -1) @ b.T @ b).reshape(-1, 12, 64) + mu[None, :, None]
    expected = rec.reshape(-1, 8, 8, 12, 8, 8).transpose(0, 3, 1, 4, 2, 5).reshape(-1, 12, 64, 64)
    with torch.no_grad():
        got = codec.decoder(codec.encoder(codec.group_frames(test))).double().numpy()
    assert np.abs(got - expected).max() < 1e-4
    # The PCA alone is already a usable codec on this data.
    with torch.no_grad():
        assert psnr(test, codec.decode(codec.encode(test))) > 20


@pytest.mark.parametrize("frames,message", [(8, r"4n\+1.*5 or 9"), (2, r"1 or 5"), (0, r"4n\+1")])
def test_wrong_frame_count(frames, message):
    codec = _random_codec()
    with pytest.raises(ValueError, match=message):
        codec.encode(torch.zeros(1, 3, frames, 64, 64))


def test_bad_inputs():
    codec = _random_codec()
    with pytest.raises(ValueError, match="multiple of the spatial factor 8"):
        codec.encode(torch.zeros(1, 3, 5, 60, 64))
    with pytest.raises(ValueError, match=r"\[-1, 1\].*255"):
        codec.encode(torch.full((1, 3, 1, 64, 64), 200.0))
    with pytest.raises(ValueError, match=r"\[B, 3, F, H, W\]"):
        codec.encode(torch.zeros(3, 5, 64, 64))
    with pytest.raises(ValueError, match="NaN"):
        codec.encode(torch.full((1, 3, 1, 64, 64), float("nan")))
    with pytest.raises(ValueError, match="16"):
        codec.decode(torch.zeros(1, 4, 2, 8, 8))
    with pytest.raises(ValueError, match="entries"):
        CodecConfig(spatial_factor=8, pixel_shuffle=2, channels=(8, 8), blocks=(1, 1))


def test_save_load_round_trip(tmp_path):
    codec = _random_codec()
    codec.set_normalization(torch.arange(16.0) / 10, torch.ones(16) * 1.5)
    codec.save(tmp_path)
    loaded = TinyVideoCodec.load(tmp_path)
    assert loaded.config == codec.config
    video = _video(5)
    with torch.no_grad():
        assert torch.equal(loaded.encode(video), codec.encode(video))
    with pytest.raises(FileNotFoundError, match="train_codec"):
        TinyVideoCodec.load(tmp_path / "nothing")


@pytest.mark.skipif(not (BUILTIN / "codec.safetensors").is_file(), reason="the built-in codec weights are missing from tempomaster_core/builtin/")
def test_shipped_codec_reconstructs_held_out_clips():
    codec = TinyVideoCodec.load(BUILTIN)
    assert codec.latent_channels == 16 and codec.temporal_factor == 4
    # Held-out scene seeds (training uses seeds < 1e9), one clip per frame interval.
    values, latents = [], []
    with torch.no_grad():
        for k, interval in enumerate((4, 2, 1)):
            spec = S.sample_scene(1_000_000_500 + k)
            clip = S.render(spec, 17, start_frame=11, interval=interval)[None]
            z = codec.encode(clip)
            latents.append(z)
            values.append(psnr(clip, codec.decode(z)))
    assert min(values) > 27.0, values
    z = torch.cat(latents, 2)
    # Normalised latents are roughly standard normal per channel.
    assert float(z.mean(dim=(0, 2, 3, 4)).abs().max()) < 0.6
    assert 0.4 < float(z.std()) < 2.0


def test_training_batches():
    from tempomaster_core.training.train_codec import sample_groups

    rng = np.random.default_rng(0)
    x = sample_groups(rng, 12, crop=32, grid=8, static_fraction=0.5)
    assert x.shape == (12, 3, 4, 32, 32)
    assert float(x.min()) >= -1 and float(x.max()) <= 1
    static = [(x[i, :, 1:] == x[i, :, :1]).all().item() for i in range(12)]
    assert 0 < sum(static) < 12  # both static and moving groups are drawn
    full = sample_groups(np.random.default_rng(1), 2)
    assert full.shape == (2, 3, 4, 64, 64)
    # Seeded: the same generator state gives the same batch.
    assert torch.equal(sample_groups(np.random.default_rng(0), 12, crop=32, static_fraction=0.5), x)


@pytest.mark.slow  # ~2.5 s of codec training
def test_trainer_smoke(tmp_path):
    from tempomaster_core.training.train_codec import train

    summary = train(tmp_path, seed=0, steps=3, batch=4, config=SMALL, pca_samples=16, log_every=1, decoder_steps=2)
    assert summary["steps"] == 3 and len(summary["curve"]) == 3 + 2  # both phases log
    assert [c.get("phase") for c in summary["curve"]] == [None] * 3 + ["decoder"] * 2
    codec = TinyVideoCodec.load(tmp_path)
    assert len(codec.config.latent_std) == 16
    # Fitted normalisation: raw latents of training-like clips are centred and scaled.
    with torch.no_grad():
        z = codec.encode(S.render(S.sample_scene(5), 17, interval=2)[None])
    assert 0.2 < float(z.std()) < 5


def test_shift_interpolate_reads_a_linear_field_at_the_offset():
    from tempomaster_core.training.train_codec import shift_interpolate

    rows = torch.arange(5.0).view(1, 1, 5, 1).expand(2, 3, 5, 5)
    cols = torch.arange(5.0).view(1, 1, 1, 5).expand(2, 3, 5, 5)
    field = 2.0 * rows - 0.5 * cols + 1.0  # exactly reproduced by bilinear interpolation
    out = shift_interpolate(field, 0.25, 0.625)
    expected = 2.0 * (rows[:, :, :4, :4] + 0.25) - 0.5 * (cols[:, :, :4, :4] + 0.625) + 1.0
    assert out.shape == (2, 3, 4, 4)
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.equal(shift_interpolate(field, 0.0, 0.0), field[:, :, :4, :4])


def test_equivariance_penalty_does_not_reward_shrinking_the_latent():
    """The latent term is a ratio to the latent variance with the variance *in* the gradient: scaling
    the whole latent changes neither its value nor (to first order) the loss. With a detached variance
    the gradient pushed every channel towards 0, and a codec trained that way kept one live channel."""
    from einops import rearrange

    from tempomaster_core.training.train_codec import equivariance_losses, sample_groups

    torch.manual_seed(0)
    codec = TinyVideoCodec(SMALL)
    window = rearrange(sample_groups(np.random.default_rng(3), 6, crop=40, grid=8), "b c t h w -> b (t c) h w")
    values = []
    for factor in (1.0, 3.0):
        scale = torch.tensor(factor, requires_grad=True)
        scaled = _Scaled(codec, scale)
        latent_term, decoder_term = equivariance_losses(scaled, window, scaled.encoder(window), np.random.default_rng(0))
        latent_term.backward()
        value = float(latent_term.detach())
        values.append(value)
        assert abs(float(scale.grad)) < 1e-4 * value
        assert value > 0 and float(decoder_term.detach()) > 0
    assert values[1] == pytest.approx(values[0], rel=1e-4)


class _Scaled(nn.Module):
    """A codec whose encoder output is multiplied by ``factor`` (decoder unchanged)."""

    def __init__(self, codec: TinyVideoCodec, factor: torch.Tensor) -> None:
        super().__init__()
        self.codec, self.factor = codec, factor
        self.spatial_factor = codec.spatial_factor
        self.decoder = codec.decoder

    def encoder(self, x: torch.Tensor) -> torch.Tensor:
        return self.factor * self.codec.encoder(x)


@pytest.mark.slow  # ~2 s of codec training
def test_decoder_fine_tune_keeps_the_latents(tmp_path):
    """``decoder_of``: only the decoder trains; encoder weights and latent normalisation (so the latents a
    DiT was trained on) stay exactly as they were."""
    from tempomaster_core.training.train_codec import train

    train(tmp_path / "first", seed=0, steps=2, batch=4, config=SMALL, pca_samples=16, log_every=1, decoder_steps=0)
    before = TinyVideoCodec.load(tmp_path / "first")
    assert before.config.decoder_context == 0
    train(tmp_path / "tuned", seed=1, latent_noise=0.3, decoder_of=tmp_path / "first", decoder_steps=3, log_every=1)
    after = TinyVideoCodec.load(tmp_path / "tuned")
    assert after.config.decoder_context == 1
    assert {**after.config.to_dict(), "decoder_context": 0} == before.config.to_dict()
    clip = S.render(S.sample_scene(5), 9, interval=2)[None]
    with torch.no_grad():
        assert torch.equal(after.encode(clip), before.encode(clip))
        changed = [not torch.equal(a, b) for a, b in zip(after.decoder.parameters(), before.decoder.parameters())]
    assert any(changed)


def test_shipped_codec_was_trained_with_the_default_recipe():
    """The model card's command (`train_codec --out DIR --seed 0 --steps 1500 --threads 1`, both phases) relies on
    train()'s defaults being the recipe recorded with the shipped codec."""
    import inspect
    import json

    from tempomaster_core.training.train_codec import SHIPPED_EQUIVARIANCE, train

    recorded = json.loads((BUILTIN / "codec_train.json").read_text())
    defaults = {k: v.default for k, v in inspect.signature(train).parameters.items()}
    assert recorded["seed"] == 0 and recorded["steps"] == 1500 and recorded.get("decoder_of") is None
    for key in ("batch", "crop", "lr", "latent_noise", "equivariance", "decoder_context", "decoder_steps"):
        assert recorded[key] == defaults[key], key
    assert recorded["equivariance"] == SHIPPED_EQUIVARIANCE > 0
    assert recorded["held_out_psnr"]["pooled"] >= 30.0
