"""Adapters between ComfyUI objects and the core: VAE, CONDITIONING, progress/preview, environment."""

import logging
from types import SimpleNamespace

import pytest
import torch

from comfy_fakes import WAN_MEAN, WAN_STD, FakeProgressBar, FakeWanVAE, Interrupted, conditioning, install_fake_comfy
from nodes import comfy_env
from nodes.preview import generic_rgb_factors, latents_to_preview, rgb_projection
from nodes.progress import NodeProgress
from nodes.text_adapter import conditioning_to_context, expected_text_length
from nodes.vae_adapter import ComfyVAECodec, as_codec
from tempomaster_core.config import DiTConfig
from toy_codec import ToyCodec


def _video(b=2, f=5, h=16, w=24, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, f, h, w, generator=gen) * 2 - 1


# -- VAE ---------------------------------------------------------------------------------


def test_vae_adapter_encodes_to_normalized_latents_in_core_layout():
    vae = FakeWanVAE()
    codec = as_codec(vae)
    assert isinstance(codec, ComfyVAECodec)
    assert (codec.latent_channels, codec.temporal_factor, codec.spatial_factor) == (16, 4, 8)
    video = _video()
    latents = codec.encode(video)
    assert latents.shape == (2, 16, 2, 2, 3) and latents.dtype == torch.float32
    # the fake VAE returns the toy latents de-normalized with Wan's mean/std: a correct
    # adapter (layout [B,F,H,W,3] in 0..1 in, (raw - mean)/std out) gives them back
    torch.testing.assert_close(latents, ToyCodec().encode(video), atol=1e-5, rtol=1e-5)
    assert vae.calls == ["encode", "encode"]  # one clip per call (see the next test)


def test_fake_vae_crops_a_batched_frame_axis_like_comfyui():
    # why the adapter sends one clip at a time: ComfyUI crops axes 1..-2 to multiples of 8
    vae = FakeWanVAE()
    pixels = torch.rand(1, 9, 16, 16, 3)
    assert vae.encode(pixels[0]).shape[2] == 3  # [F, H, W, 3]: 9 frames -> 3 latent frames
    assert vae.encode(pixels).shape[2] == 2  # [B, F, H, W, 3]: frames cropped to 8 -> 2


def test_vae_adapter_normalization_is_the_wan21_formula():
    codec = ComfyVAECodec(FakeWanVAE())
    raw = torch.randn(1, 16, 2, 3, 3, dtype=torch.float64)
    mean = torch.tensor(WAN_MEAN, dtype=torch.float64).view(1, -1, 1, 1, 1)
    std = torch.tensor(WAN_STD, dtype=torch.float64).view(1, -1, 1, 1, 1)
    torch.testing.assert_close(codec.normalize(raw).double(), (raw - mean) / std, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(codec.denormalize(codec.normalize(raw)).double(), raw, atol=1e-5, rtol=1e-5)
    # spot check by hand: channel 7 (mean 1.5508, std 2.0743) of a raw value 3.6251 -> 1.0
    one = torch.zeros(1, 16, 1, 1, 1)
    one[0, 7] = 3.6251
    assert abs(codec.normalize(one)[0, 7].item() - 1.0) < 1e-4


def test_vae_adapter_decodes_to_minus_one_one_core_layout():
    vae = FakeWanVAE()
    codec = as_codec(vae)
    latents = torch.randn(3, 16, 2, 2, 3) * 0.3
    video = codec.decode(latents)
    assert video.shape == (3, 3, 5, 16, 24)
    torch.testing.assert_close(video, ToyCodec().decode(latents), atol=1e-5, rtol=1e-5)
    assert video.min() >= -1 and video.max() <= 1
    assert vae.calls == ["decode"]


def test_vae_adapter_tiled_uses_the_tiled_calls_with_converted_sizes():
    vae = FakeWanVAE()
    codec = as_codec(vae, tiled=True)
    video = _video(b=2)
    torch.testing.assert_close(codec.encode(video), ToyCodec().encode(video), atol=1e-5, rtol=1e-5)
    assert vae.calls == ["encode_tiled", "encode_tiled"]  # one clip at a time, as ComfyUI requires
    assert vae.tiled_args[0] == dict(tile_x=512, tile_y=512, overlap=64, tile_t=64, overlap_t=8)
    codec.decode(torch.zeros(1, 16, 2, 2, 3))
    # decode tiles are in latent units: 512 px / 8, 64 px / 8, 64 frames / 4, 8 frames / 4
    assert vae.calls[-1] == "decode_tiled"
    assert vae.tiled_args[-1] == dict(tile_x=64, tile_y=64, overlap=8, tile_t=16, overlap_t=2)


def test_vae_adapter_refuses_a_vae_of_another_kind():
    with pytest.raises(ValueError, match="wan_2.1_vae"):
        as_codec(FakeWanVAE(latent_channels=48))
    with pytest.raises(ValueError, match="spatial factor 16"):
        as_codec(FakeWanVAE(spatial=16))
    with pytest.raises(TypeError, match="not a VAE"):
        as_codec(object())
    with pytest.raises(TypeError, match="no VAE connected"):
        as_codec(None)
    codec = ComfyVAECodec(FakeWanVAE())
    with pytest.raises(ValueError, match="4\\*n\\+1"):
        codec.encode(torch.zeros(1, 3, 4, 16, 16))


def test_a_core_codec_passes_through_unchanged():
    toy = ToyCodec(latent_channels=8, spatial_factor=4)
    assert as_codec(toy) is toy
    assert as_codec(toy, tiled=True) is toy


# -- CONDITIONING ------------------------------------------------------------------------

UMT5_MODEL = SimpleNamespace(config=DiTConfig())  # the 14B shape: text_dim 4096, so text_len 512
TINY_MODEL = SimpleNamespace(config=SimpleNamespace(text_dim=24))


def test_umt5_conditioning_is_zero_padded_to_512():
    cond = conditioning(length=20, dim=4096, tokens=12)
    ctx = conditioning_to_context(cond, UMT5_MODEL)
    assert ctx.shape == (1, 512, 4096) and ctx.dtype == torch.float32
    torch.testing.assert_close(ctx[:, :20], cond[0][0])
    assert torch.count_nonzero(ctx[:, 12:]) == 0
    # ComfyUI's usual shape (already 512) passes unchanged
    cond512 = conditioning(length=512, dim=4096, tokens=30)
    torch.testing.assert_close(conditioning_to_context(cond512, UMT5_MODEL), cond512[0][0])


def test_long_umt5_prompt_is_truncated_to_512_with_a_warning(caplog):
    cond = conditioning(length=600, dim=4096)
    with caplog.at_level(logging.WARNING, logger="TempoMaster"):
        ctx = conditioning_to_context(cond, UMT5_MODEL, "positive")
    assert ctx.shape == (1, 512, 4096)
    torch.testing.assert_close(ctx, cond[0][0][:, :512])
    assert "truncated" in caplog.text and "600" in caplog.text


def test_model_declared_length_wins_and_other_widths_are_kept():
    model = SimpleNamespace(config=SimpleNamespace(text_dim=24, text_len=16))
    assert expected_text_length(model) == 16
    assert conditioning_to_context(conditioning(7, 24), model).shape == (1, 16, 24)
    assert conditioning_to_context(conditioning(20, 24), model).shape == (1, 16, 24)
    assert expected_text_length(TINY_MODEL) is None
    cond = conditioning(7, 24)
    torch.testing.assert_close(conditioning_to_context(cond, TINY_MODEL), cond[0][0])


def test_conditioning_errors_and_extra_entries(caplog):
    with pytest.raises(ValueError, match="umt5_xxl"):
        conditioning_to_context(conditioning(7, 768), UMT5_MODEL)
    with pytest.raises(TypeError, match="CLIP Text Encode"):
        conditioning_to_context(torch.zeros(1, 7, 24), TINY_MODEL)
    two = conditioning(7, 24, seed=1) + conditioning(7, 24, seed=2)
    batch = [[torch.randn(2, 7, 24), {}]]
    with caplog.at_level(logging.WARNING, logger="TempoMaster"):
        torch.testing.assert_close(conditioning_to_context(two, TINY_MODEL), two[0][0])
        torch.testing.assert_close(conditioning_to_context(batch, TINY_MODEL), batch[0][0][:1])
    assert "only the first" in caplog.text


# -- preview and progress ---------------------------------------------------------------


def test_generic_rgb_factors_average_interleaved_channel_groups():
    f = generic_rgb_factors(16)
    assert f.shape == (16, 3)
    # R: channels 0,3,...,15 (6 of them), G: 1,4,...,13 (5), B: 2,5,...,14 (5)
    assert f[0, 0] == pytest.approx(1 / 6) and f[15, 0] == pytest.approx(1 / 6) and f[1, 1] == pytest.approx(1 / 5)
    assert f[0, 1] == 0 and f.sum(dim=0).tolist() == pytest.approx([1.0, 1.0, 1.0])


def test_preview_strip_of_evenly_spaced_frames_with_hand_computed_colour():
    latents = torch.zeros(16, 5, 4, 4)
    latents[0::3] = 0.5  # all "R" channels 0.5 -> R = 0.5 -> (0.5+1)/2*255 = 191
    latents[:, 4, :, :] = -1.0  # last frame: every channel -1 -> black
    image = latents_to_preview(latents, generic_rgb_factors(16))
    # frames 0, 1, 3, 4 (linspace(0, 4, 4) rounded), 4x4 each side by side, enlarged x16 to 64 px high
    assert image.size == (4 * 4 * 16, 64)
    assert image.getpixel((5, 5)) == (191, 128, 128)
    assert image.getpixel((image.size[0] - 1, 63)) == (0, 0, 0)


def test_rgb_projection_prefers_the_codecs_factors():
    codec = SimpleNamespace(latent_rgb_factors=[[1.0, 0.0, 0.0]] * 4, latent_rgb_factors_bias=[0.0, 0.5, 0.0])
    factors, bias = rgb_projection(codec, 4)
    assert factors.shape == (4, 3) and bias.tolist() == [0.0, 0.5, 0.0]
    factors, bias = rgb_projection(codec, 16)  # wrong channel count -> generic
    torch.testing.assert_close(factors, generic_rgb_factors(16))


def test_environment_fallbacks_without_comfyui():
    assert not comfy_env.comfy_available()
    assert comfy_env.compute_device() == torch.device("cpu")
    assert comfy_env.offload_device() == torch.device("cpu")
    assert comfy_env.progress_bar(10) is None
    assert comfy_env.model_folder_files("diffusion_models") == []
    comfy_env.throw_if_interrupted()
    comfy_env.free_memory(10**9, torch.device("cpu"))
    steps = []
    progress = NodeProgress(3, on_step=lambda *a: steps.append(a[:3]))
    for i in range(3):
        progress(0, i + 1, 3, torch.zeros(16, 2, 2, 2))
    assert steps == [(0, 1, 3), (0, 2, 3), (0, 3, 3)]
    assert progress.last_preview is not None


def test_progress_drives_comfyui_progress_bar_with_previews(monkeypatch):
    install_fake_comfy(monkeypatch)
    progress = NodeProgress(4, codec=None)
    for i in range(4):
        progress(1, i + 1, 4, torch.randn(16, 3, 2, 2))
    bar = FakeProgressBar.instances[-1]
    assert bar.total == 4
    assert [u[0] for u in bar.updates] == [1, 2, 3, 4] and all(u[1] == 4 for u in bar.updates)
    kind, image, size = bar.updates[-1][2]
    assert kind == "JPEG" and size == 256 and image.size[1] >= 64


def test_progress_respects_preview_method_none(monkeypatch):
    install_fake_comfy(monkeypatch, preview_method="none")
    progress = NodeProgress(2)
    progress(0, 1, 2, torch.randn(16, 3, 2, 2))
    assert FakeProgressBar.instances[-1].updates == [(1, 2, None)]


def test_progress_raises_comfyui_interrupt(monkeypatch):
    fake = install_fake_comfy(monkeypatch, interrupt_after=2)
    progress = NodeProgress(5)
    progress(0, 1, 5, None)
    with pytest.raises(Interrupted):
        progress(0, 2, 5, None)
    assert fake.mm.checks[0] == 2
