"""Tiny text encoder: umT5-like output layout, padding, unknown words, save/load."""

import warnings

import pytest
import torch

from tempomaster_core.tiny.captions import VOCABULARY, tokenize
from tempomaster_core.tiny.text_encoder import TextEncoderConfig, TinyTextEncoder


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return TinyTextEncoder(TextEncoderConfig(max_length=12, dim=32, layers=2, heads=4)).eval()


def test_shape_and_zeroed_padding(encoder):
    prompts = ["a red ball falling", "three white squares bouncing from left to right", ""]
    with torch.no_grad():
        out = encoder.encode(prompts)
    assert out.shape == (3, 12, 32) and out.dtype == torch.float32
    for b, prompt in enumerate(prompts):
        n = len(tokenize(prompt))
        assert torch.count_nonzero(out[b, n:]) == 0, "padding positions must be exactly zero"
        if n:
            assert bool((out[b, :n].norm(dim=-1) > 1e-3).all()), "real tokens must not be zero"
    assert torch.isfinite(out).all()


def test_padding_does_not_change_real_tokens(encoder):
    # A prompt encoded alone or next to a longer one gives the same embeddings (the mask hides padding).
    with torch.no_grad():
        alone = encoder.encode(["two green triangles falling"])
        batched = encoder.encode(["two green triangles falling", "a blue box moving from top to bottom"])
    assert torch.allclose(alone[0], batched[0], atol=1e-6)


def test_prompt_content_matters(encoder):
    with torch.no_grad():
        a, b = encoder.encode(["a red ball falling", "a blue ball falling"])
    assert not torch.allclose(a, b)
    # Same words, same output; case and punctuation are ignored.
    with torch.no_grad():
        c = encoder.encode(["A RED ball, falling!"])[0]
    assert torch.allclose(a, c, atol=1e-6)


def test_unknown_words_map_to_unk_with_warning(encoder):
    with pytest.warns(UserWarning, match=r"zebra"):
        ids, lengths = encoder.tokenize(["a red zebra falling"])
    assert ids[0, 2] == 1  # <unk>
    assert lengths.tolist() == [4]
    assert ids[0, 0] == 2 + encoder.config.vocab.index("a")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        encoder.tokenize(["a red ball falling"])  # known words: no warning


def test_long_prompt_truncated_with_warning(encoder):
    long = " ".join(["red"] * 20)
    with pytest.warns(UserWarning, match="truncated"):
        ids, lengths = encoder.tokenize([long])
    assert lengths.tolist() == [12] and bool((ids[0] > 1).all())


def test_vocabulary_covers_grammar():
    cfg = TextEncoderConfig()
    assert cfg.vocab == VOCABULARY
    for w in ("red", "balls", "falling", "left", "right", "diagonally", "three"):
        assert w in cfg.vocab


def test_bad_input(encoder):
    with pytest.raises(TypeError, match="list of strings"):
        encoder.tokenize("a red ball")
    with pytest.raises(ValueError, match="divisible"):
        TextEncoderConfig(dim=30, heads=4)


def test_gradients_flow(encoder):
    enc = TinyTextEncoder(TextEncoderConfig(max_length=8, dim=16, layers=1, heads=2))
    out = enc.encode(["a red ball falling"])
    out.sum().backward()
    assert enc.token_embedding.weight.grad is not None
    assert float(enc.token_embedding.weight.grad.abs().sum()) > 0


def test_save_load_round_trip(encoder, tmp_path):
    encoder.save(tmp_path)
    loaded = TinyTextEncoder.load(tmp_path)
    assert loaded.config == encoder.config
    with torch.no_grad():
        assert torch.equal(loaded.encode(["two purple boxes falling"]), encoder.encode(["two purple boxes falling"]))
    with pytest.raises(FileNotFoundError, match="text_encoder"):
        TinyTextEncoder.load(tmp_path / "missing")
