"""Multi-mask conditioning: mask packing, y layout, condition clips, codec checks."""

import pytest
import torch

from tempomaster_core.conditioning import (
    blueprint_clip,
    build_condition,
    encode_clips,
    pack_masks,
    refinement_clips,
)
from tempomaster_core.config import DiTConfig
from tempomaster_core.plan import TreePlan
from tempomaster_core.protocols import VideoCodec, check_compatible
from toy_codec import ToyCodec


def test_pack_masks_hand_example_tf4():
    masks = torch.tensor([[1, 0, 0, 0, 1, 0, 0, 1, 1]], dtype=torch.float32)  # 9 pixel frames, 3 latent frames
    packed = pack_masks(masks, 4, (2, 3))
    assert packed.shape == (1, 4, 3, 2, 3) and packed.dtype == torch.float32
    # [channel][latent frame]: latent 0 = pixel 0 repeated, latent 1 = pixels 1..4, latent 2 = pixels 5..8.
    expected = torch.tensor(
        [
            [1, 0, 0],
            [1, 0, 0],
            [1, 0, 1],
            [1, 1, 1],
        ],
        dtype=torch.float32,
    )
    assert torch.equal(packed[0, :, :, 1, 2], expected)
    assert torch.equal(packed, expected[None, :, :, None, None].expand(1, 4, 3, 2, 3))


def test_pack_masks_hand_example_tf2_batch():
    masks = torch.tensor([[0, 1, 0, 0, 1], [1, 0, 0, 1, 1]], dtype=torch.float32)
    packed = pack_masks(masks, 2, (1, 1))[..., 0, 0]
    assert packed.tolist() == [
        [[0, 1, 0], [0, 0, 1]],
        [[1, 0, 1], [1, 0, 1]],
    ]


def test_pack_masks_rejects_bad_length():
    with pytest.raises(ValueError, match="4\\*n\\+1"):
        pack_masks(torch.zeros(1, 8), 4, (1, 1))


def test_build_condition_layout():
    codec = ToyCodec()
    gen = torch.Generator().manual_seed(0)
    clips = torch.rand(2, 3, 9, 16, 24, generator=gen) * 2 - 1
    masks = torch.zeros(2, 9)
    masks[0, 0] = 1
    masks[1, 8] = 1
    y = build_condition(codec, clips, masks)
    assert y.shape == (2, 4 + 16, 3, 2, 3) and y.dtype == torch.float32
    assert torch.equal(y[:, 4:], codec.encode(clips))
    assert y[0, :4, 0].min() == 1 and y[0, :4, 1:].max() == 0
    # Pixel 8 is the last of latent frame 2 -> only channel 3 of latent frame 2.
    assert y[1, 3, 2].min() == 1 and y[1, :4].sum() == 2 * 3


def test_encode_clips_in_batches_matches_one_batch():
    codec = ToyCodec()
    clips = torch.rand(3, 3, 5, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    whole = encode_clips(codec, clips)
    split = encode_clips(codec, clips, batch_size=2)
    assert torch.equal(whole, split)
    assert codec.encode_batches == [3, 2, 1]


def test_refinement_clips_place_frames_of_the_level_above():
    plan = TreePlan(5, (4, 1), (2,), height=16, width=16)
    level = plan.levels[1]  # 20 frames, chunks of 13: chunk 1 conditions (0,3), (3,4), (6,4)
    previous = torch.arange(5, dtype=torch.float32).reshape(1, 5, 1, 1).expand(3, 5, 16, 16) / 4
    clips, masks = refinement_clips(level, previous)
    assert clips.shape == (2, 3, 13, 16, 16) and masks.shape == (2, 13)
    # Frame value k/4 encodes the source frame k (exact in float32); unplaced frames are zero.
    source = lambda c, p: clips[c, :, p].unique().tolist()  # noqa: E731
    assert source(0, 4) == [0.25] and source(0, 8) == [0.5] and source(0, 12) == [0.75]
    assert source(1, 0) == [0.75] and source(1, 3) == [1.0] and source(1, 6) == [1.0]
    known = masks.bool()
    assert clips.abs().sum(dim=(1, 3, 4))[~known].max() == 0
    assert masks[1].tolist() == [1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]


def test_refinement_clips_check_previous_frames():
    level = TreePlan(5, (4, 1), (2,), height=16, width=16).levels[1]
    with pytest.raises(ValueError, match="\\[3, 5, H, W\\]"):
        refinement_clips(level, torch.zeros(3, 6, 16, 16))


def test_blueprint_clip_t2v_i2v_first_last():
    level = TreePlan(9, (4, 1), (1,), height=16, width=16).levels[0]
    clip, mask = blueprint_clip(level, None, 16, 16)
    assert clip.shape == (1, 3, 9, 16, 16) and clip.abs().max() == 0 and mask.sum() == 0
    first = torch.full((3, 16, 16), 0.5)
    last = torch.full((3, 16, 16), -0.25)
    clip, mask = blueprint_clip(level, {0: first, -1: last}, 16, 16)
    assert mask.tolist() == [[1, 0, 0, 0, 0, 0, 0, 0, 1]]
    assert torch.equal(clip[0, :, 0], first) and torch.equal(clip[0, :, 8], last)
    assert clip[0, :, 1:8].abs().max() == 0


def test_t2v_condition_is_zero_mask_plus_encoded_zero_clip():
    codec = ToyCodec()
    level = TreePlan(9, (4, 1), (1,), height=16, width=16).levels[0]
    clip, mask = blueprint_clip(level, {}, 16, 16)
    y = build_condition(codec, clip, mask)
    assert y[:, :4].abs().max() == 0
    assert torch.equal(y[:, 4:], codec.encode(torch.zeros(1, 3, 9, 16, 16)))


@pytest.mark.parametrize(
    "conditions, error, fragment",
    [
        ({9: torch.zeros(3, 16, 16)}, IndexError, "outside the blueprint"),
        ({-10: torch.zeros(3, 16, 16)}, IndexError, "outside the blueprint"),
        ({0: torch.zeros(16, 16, 3)}, ValueError, "[3, 16, 16]"),
        ({0: torch.full((3, 16, 16), 255.0)}, ValueError, "[-1, 1]"),
        ({0: torch.zeros(3, 16, 16), -9: torch.zeros(3, 16, 16)}, ValueError, "twice"),
        ({0.0: torch.zeros(3, 16, 16)}, ValueError, "int"),
    ],
)
def test_blueprint_condition_errors(conditions, error, fragment):
    level = TreePlan(9, (4, 1), (1,), height=16, width=16).levels[0]
    with pytest.raises(error) as err:
        blueprint_clip(level, conditions, 16, 16)
    assert fragment in str(err.value)


def test_toy_codec_satisfies_protocol_and_round_trips_block_averages():
    codec = ToyCodec(latent_channels=6, temporal_factor=2, spatial_factor=4)
    assert isinstance(codec, VideoCodec)
    video = torch.rand(1, 3, 5, 8, 8, generator=torch.Generator().manual_seed(2)) * 2 - 1
    latents = codec.encode(video)
    assert latents.shape == (1, 6, 3, 2, 2)
    decoded = codec.decode(latents)
    assert decoded.shape == video.shape
    # Frames 1 and 2 form latent frame 1: both decode to their mean over time and 4x4 cells.
    expected = video[0, :, 1:3, :4, :4].mean(dim=(1, 2, 3))
    torch.testing.assert_close(decoded[0, :, 1, 0, 0], expected, rtol=0, atol=1e-6)


def test_check_compatible():
    config = DiTConfig(dim=64, ffn_dim=128, num_heads=2, num_layers=1, in_dim=36, out_dim=16, text_dim=24)
    check_compatible(ToyCodec(), config)
    with pytest.raises(ValueError, match="latent channels"):
        check_compatible(ToyCodec(latent_channels=8), config)
    with pytest.raises(ValueError, match="mask channels"):
        check_compatible(ToyCodec(temporal_factor=2), config)
    with pytest.raises(TypeError, match="not a video codec"):
        check_compatible(object(), config)
