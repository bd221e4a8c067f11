"""The codec's context decoder (``decoder_context``) and its training phase (issue 16, session 15)."""

import json

import numpy as np
import pytest
import torch

from test_tiny_codec import BUILTIN, SMALL, _random_codec

from tempomaster_core.tiny import scenes as S
from tempomaster_core.tiny.codec import CodecConfig, TinyVideoCodec


def _with_context(config: CodecConfig = SMALL, k: int = 1) -> TinyVideoCodec:
    return TinyVideoCodec(CodecConfig.from_dict({**config.to_dict(), "decoder_context": k}))


def test_context_layout_neighbours_and_presence():
    """Row ``b*T + t`` holds latent frames t-1 and t+1 of clip b, each followed by a presence channel;
    frames beyond a clip's ends are zeros with presence 0."""
    codec = _with_context()
    z = torch.randn(2, 16, 3, 2, 2)
    ctx = codec.decoder_context_of(z)
    assert ctx.shape == (6, 2 * 17, 2, 2)
    for b in range(2):
        for t in range(3):
            row = ctx[b * 3 + t]
            prev, prev_on, nxt, nxt_on = row[:16], row[16], row[17:33], row[33]
            assert torch.equal(prev, z[b, :, t - 1] if t > 0 else torch.zeros(16, 2, 2))
            assert torch.equal(prev_on, torch.full((2, 2), float(t > 0)))
            assert torch.equal(nxt, z[b, :, t + 1] if t < 2 else torch.zeros(16, 2, 2))
            assert torch.equal(nxt_on, torch.full((2, 2), float(t < 2)))
    assert TinyVideoCodec(SMALL).decoder_context_of(z) is None


def test_zero_context_input_decodes_like_the_decoder_without_context():
    """The context input starts at zero, so a context decoder made from a trained one starts where it was."""
    plain = _random_codec()
    ctx = _with_context()
    ctx.load_state_dict(plain.state_dict(), strict=False)
    assert not ctx.decoder.context_in.weight.any()
    z = torch.randn(1, 16, 4, 8, 8)
    with torch.no_grad():
        assert torch.allclose(ctx.decode(z), plain.decode(z), atol=1e-6)


def test_receptive_field_is_one_latent_frame_each_side():
    """Changing latent frame 3 of a 6-frame clip changes the pixel groups of latent frames 2, 3 and 4 only."""
    codec = _random_codec(config=_with_context().config)
    z = torch.randn(1, 16, 6, 8, 8)
    bumped = z.clone()
    bumped[:, :, 3] += torch.randn(16, 8, 8)
    with torch.no_grad():
        change = (codec.decode(bumped) - codec.decode(z)).abs().amax(dim=(0, 1, 3, 4))  # [F]
    groups = [change[:1]] + list(change[1:].split(4))  # pixel frames of latent frames 0..5
    changed = [bool(g.max() > 1e-6) for g in groups]
    assert changed == [False, False, True, True, True, False]


def test_context_decoder_needs_its_context():
    codec = _with_context()
    with pytest.raises(ValueError, match="context"):
        codec.decoder(torch.randn(2, 16, 8, 8))


def test_negative_context_is_refused():
    with pytest.raises(ValueError, match="decoder_context"):
        CodecConfig(decoder_context=-1)


def test_held_clips_show_each_group_at_its_middle_instant():
    from tempomaster_core.training.train_codec import sample_clips

    held, target = sample_clips(np.random.default_rng(4), 3, frames=9, held_fraction=1.0)
    assert held.shape == target.shape == (3, 3, 9, 64, 64)
    assert torch.equal(held[:, :, 0], target[:, :, 0])  # frame 0 is its own group
    for g in (1, 5):  # groups: frames 1-4 and 5-8, each held at its middle (between its 2nd and 3rd frame)
        group = held[:, :, g:g + 4]
        assert torch.equal(group, group[:, :, :1].expand_as(group))
    moving = (target[:, :, 2] - target[:, :, 1]).abs().amax(dim=(1, 2, 3)) > 0
    assert bool(moving.any())  # the targets move inside a group, the held inputs do not
    # The held frame is the scene rendered half-way between the group's 2nd and 3rd frames.
    rng = np.random.default_rng(4)
    spec = S.sample_scene(int(rng.integers(1_000_000_000)), height=64, width=64)
    start = float(rng.integers(480))
    interval = (4, 2, 1)[int(rng.integers(3))]
    assert torch.allclose(held[0, :, 1], S.render_frames(spec, [start + 2.5 * interval])[:, 0], atol=1e-6)
    plain, target = sample_clips(np.random.default_rng(4), 2, frames=5, held_fraction=0.0)
    assert torch.equal(plain, target)


def test_temporal_difference_loss_weighs_latent_boundaries():
    from tempomaster_core.training.train_codec import temporal_difference_loss

    target = torch.zeros(1, 1, 9, 1, 1)
    assert float(temporal_difference_loss(target + 0.3, target)) == 0.0  # an offset keeps every change
    inside, across = target.clone(), target.clone()
    inside[:, :, 3:] = 1.0  # a step between frames 2 and 3 (inside latent frame 1)
    across[:, :, 5:] = 1.0  # a step between frames 4 and 5 (across latent frames 1 | 2)
    # 8 pairs, pairs 0 and 4 weighted 4: weights normalised by their mean (14 / 8).
    assert float(temporal_difference_loss(inside, target)) == pytest.approx(1 / 14)
    assert float(temporal_difference_loss(across, target)) == pytest.approx(4 / 14)


def test_context_phase_keeps_the_encoder_and_starts_from_the_decoder():
    from tempomaster_core.training.train_codec import train_context_decoder

    codec = _random_codec()
    tuned = train_context_decoder(codec, np.random.default_rng(0), 2, batch=2, log_every=1)
    assert tuned.config.decoder_context == 1 and not tuned.training
    for name, value in codec.encoder.state_dict().items():
        assert torch.equal(tuned.encoder.state_dict()[name], value), name
    pairs = zip(tuned.decoder.linear.parameters(), codec.decoder.linear.parameters())
    assert any(not torch.equal(a, b) for a, b in pairs)


def test_shipped_codec_decodes_with_context_on_the_dit_s_latents():
    """The shipped codec reads one latent frame each side, and its latents are still the ones the shipped
    DiT was trained on (same normalisation as recorded by train_dit)."""
    from tempomaster_core.training.train_codec import SHIPPED_DECODER_CONTEXT

    shipped = json.loads((BUILTIN / "codec.json").read_text())
    recorded = json.loads((BUILTIN / "dit_train.json").read_text())["codec"]
    assert shipped["decoder_context"] == SHIPPED_DECODER_CONTEXT == 1
    for key in ("latent_mean", "latent_std", "latent_channels", "channels", "blocks"):
        assert shipped[key] == recorded[key], key
