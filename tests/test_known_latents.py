"""Known-latent replacement: which latent frames count as known, the flow-path value, and denoise with it."""

import pytest
import torch

from tempomaster_core.known_latents import known_latent_frames, model_default, replace_known
from tempomaster_core.pipeline import LevelSettings, denoise
from tempomaster_core.validation import InputError
from tiny_models import make_tiny_dit


def condition(masks, latents):
    """``y`` from per-latent-frame mask channels ``[B, tf, T]`` and latents ``[B, C, T, h, w]``."""
    b, c, t, h, w = latents.shape
    return torch.cat([masks[..., None, None].expand(-1, -1, -1, h, w).float(), latents], dim=1)


def test_only_latent_frames_after_the_first_with_every_mask_channel_one_are_known():
    masks = torch.tensor([[[1, 1, 0], [1, 1, 0], [1, 0, 0], [1, 1, 0]],   # frame 1: one pixel frame unknown
                          [[0, 1, 1], [0, 1, 1], [0, 1, 1], [0, 1, 1]],
                          [[1, 1, 1], [1, 1, 1], [1, 1, 1], [1, 1, 1]]])  # frame 0 (one pixel frame) never counts
    y = condition(masks, torch.randn(3, 3, 3, 2, 2))
    known = known_latent_frames(y, 3)
    assert known.shape == (3, 1, 3, 1, 1)
    assert known.flatten(1).tolist() == [[False, False, False], [False, True, True], [False, True, True]]
    y[1, 0, 2, 1, 0] = 0.0  # one pixel of the mask not known: not a known frame
    assert known_latent_frames(y, 3).flatten(1).tolist()[1] == [False, True, False]
    with pytest.raises(ValueError, match="mask_ch"):
        known_latent_frames(torch.zeros(1, 3, 2, 2, 2), 3)


def test_replacement_is_the_straight_path_from_noise_to_the_latent():
    x = torch.full((1, 1, 2, 1, 1), 5.0)
    latents = torch.tensor([2.0, 2.0]).reshape(1, 1, 2, 1, 1)
    noise = torch.tensor([-2.0, -2.0]).reshape(1, 1, 2, 1, 1)
    known = torch.tensor([True, False]).reshape(1, 1, 2, 1, 1)
    assert replace_known(x, known, latents, noise, 0.25).flatten().tolist() == [1.0, 5.0]  # 0.75*2 + 0.25*-2
    assert replace_known(x, known, latents, noise, 0.0).flatten().tolist() == [2.0, 5.0]


def test_model_default_reads_the_bundle_setting():
    assert model_default({}) is False and model_default({"replace_known_latents": True}) is True
    with pytest.raises(InputError, match="replace_known_latents"):
        model_default({"replace_known_latents": "yes"})
    with pytest.raises(InputError, match="replace_known_latents"):
        LevelSettings(steps=1, shift=1.0, replace_known_latents=1)


def test_denoise_ends_on_the_known_latents_and_changes_only_what_attention_carries():
    torch.manual_seed(0)
    model = make_tiny_dit(seed=0)
    tf, c, t = model.config.mask_channels, model.config.out_dim, 3
    noise = torch.randn(1, model.config.out_dim, t, 4, 4)
    latents = torch.randn(1, c, t, 4, 4)
    y = condition(torch.tensor([[[0, 1, 0]] * tf]), latents)
    positions = torch.arange(t, dtype=torch.float32)[None]
    text = torch.randn(1, 5, model.config.text_dim)
    plain = denoise(model, noise, y, positions, text, None, LevelSettings(steps=3, shift=3.0, cfg=1.0))
    replaced = denoise(model, noise, y, positions, text, None,
                       LevelSettings(steps=3, shift=3.0, cfg=1.0, replace_known_latents=True))
    assert torch.equal(replaced[:, :, 1], latents[:, :, 1])       # the known frame is its condition latent
    assert not torch.allclose(plain[:, :, 1], latents[:, :, 1], atol=1e-2)  # which free denoising misses
    others = [0, 2]
    assert not torch.equal(replaced[:, :, others], plain[:, :, others])  # the others see it through attention
    assert (replaced[:, :, others] - plain[:, :, others]).abs().max() < (replaced[:, :, 1] - plain[:, :, 1]).abs().max()
