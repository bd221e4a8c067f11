"""The 14B set's loaders on tiny random models built by the libraries themselves (transformers' UMT5EncoderModel,
diffusers' AutoencoderKLWan), saved in ComfyUI's and the reference's file layouts: what loads back computes what
the library model computes, and ``generate --model-dir`` writes a video. Needs the `wan` extra (skipped without
it, found without importing it, so collecting this file in the default run costs nothing); marked slow (importing
both libraries takes seconds), run by .ci/run's slow step."""

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from safetensors.torch import save_file

from tempomaster_core import cli
from tempomaster_core.fp8 import quantize
from tempomaster_core.video_io import read_video
from tempomaster_core.wan import latents
from tempomaster_core.wan.extra import missing_libraries
from tempomaster_core.wan.files import ModelFileError
from tempomaster_core.wan.text_encoder import UMT5TextEncoder, load_tokenizer, load_umt5_encoder
from tempomaster_core.wan.vae import WanVAECodec, load_wan_vae
import wan_models as wm

MISSING = missing_libraries()
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(bool(MISSING), reason=f"the wan extra is not installed: {', '.join(MISSING)}")]
ROOT = Path(__file__).resolve().parents[1]


def reference_umt5(state: dict, ids: torch.Tensor, heads: int, buckets: int, max_distance: int = 128) -> torch.Tensor:
    """The reference's umT5 encoder (Wan ``T5Encoder``) written out on its own key names: RMS norms, attention
    without the 1/sqrt(d) scale plus a per-block bucketed relative position bias, ``fc1(x) * gelu_tanh(gate(x))``."""
    def norm(x, weight):
        return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6))

    length = ids.shape[1]
    rel = torch.arange(length)[None] - torch.arange(length)[:, None]  # key - query
    half = buckets // 2
    exact = half // 2
    far = exact + (torch.log(rel.abs().float().clamp(min=1) / exact) / math.log(max_distance / exact)
                   * (half - exact)).long()
    bucket = (rel > 0).long() * half + torch.where(rel.abs() < exact, rel.abs(), far.clamp(max=half - 1))
    x = state["token_embedding.weight"][ids]
    layers = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    for i in range(layers):
        p = f"blocks.{i}."
        h = norm(x, state[p + "norm1.weight"])
        q, k, v = (F.linear(h, state[p + f"attn.{n}.weight"]).view(1, length, heads, -1) for n in "qkv")
        bias = state[p + "pos_embedding.embedding.weight"][bucket].permute(2, 0, 1)[None]
        weights = (torch.einsum("binc,bjnc->bnij", q, k) + bias).softmax(-1)
        x = x + F.linear(torch.einsum("bnij,bjnc->binc", weights, v).reshape(1, length, -1), state[p + "attn.o.weight"])
        h = norm(x, state[p + "norm2.weight"])
        gate = F.gelu(F.linear(h, state[p + "ffn.gate.0.weight"]), approximate="tanh")
        x = x + F.linear(F.linear(h, state[p + "ffn.fc1.weight"]) * gate, state[p + "ffn.fc2.weight"])
    return norm(x, state["norm.weight"])


@pytest.fixture(scope="module")
def umt5():
    return wm.tiny_umt5(seed=1)


def hidden(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).last_hidden_state


IDS = torch.tensor([[5, 9, 17, 3, 30, 11, 1]])


@pytest.mark.parametrize("layout", ["comfyui", "reference"])
def test_umt5_files_of_both_layouts_load_as_the_library_model(tmp_path, umt5, layout):
    if layout == "comfyui":
        path = tmp_path / "umt5_xxl_fp16.safetensors"
        save_file(wm.umt5_comfyui_state(umt5), str(path))
    else:
        path = tmp_path / "models_t5_umt5-xxl-enc-bf16.pth"
        torch.save(wm.umt5_reference_state(umt5), path)
    loaded = load_umt5_encoder(path, dtype=torch.float32)
    assert torch.equal(hidden(loaded, IDS), hidden(umt5, IDS))
    if layout == "reference":  # the names mean what the reference code computes with them
        expected = reference_umt5(torch.load(path), IDS, umt5.config.num_heads,
                                  umt5.config.relative_attention_num_buckets)
        torch.testing.assert_close(hidden(loaded, IDS), expected, atol=1e-5, rtol=1e-5)


def test_comfyui_scaled_fp8_umt5_is_dequantised(tmp_path, umt5):
    state, expected = wm.umt5_comfyui_state(umt5), {}
    for name in [k for k in state if k.endswith(".weight") and ".SelfAttention." in k and "relative" not in k]:
        q, scale = quantize(state[name], torch.float8_e4m3fn)
        state[name], state[name[: -len("weight")] + "scale_weight"] = q, scale
        expected[name] = q.float() * scale
    state["scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)
    save_file(state, str(tmp_path / "umt5_xxl_fp8_e4m3fn_scaled.safetensors"))
    reference = wm.tiny_umt5(seed=1)
    reference.load_state_dict(expected, strict=False)
    loaded = load_umt5_encoder(tmp_path / "umt5_xxl_fp8_e4m3fn_scaled.safetensors", dtype=torch.float32)
    assert torch.equal(hidden(loaded, IDS), hidden(reference, IDS))


def test_both_tokenizers_agree_and_the_context_is_the_reference_one(tmp_path, umt5):
    embedded = load_tokenizer(None, wm.spiece_model())
    folder = load_tokenizer(wm.write_tokenizer_folder(tmp_path / "umt5-xxl"))
    for text in wm.CAPTIONS[:4] + ["a fox  on   the shore", "an unseen zebra word"]:
        assert embedded(text) == folder(text) and embedded(text)[-1] == 1, text
    assert embedded("a &amp;amp; b\t\n c") == embedded("a & b c")  # the reference's clean-up

    encoder = UMT5TextEncoder(umt5, embedded, text_len=40)
    ids = embedded("a red fox runs across the field")
    context = encoder.encode("a red fox runs across the field")
    assert context.shape == (1, 40, 24) and 10 < len(ids) < 40
    assert torch.equal(context[:, : len(ids)], hidden(umt5, torch.tensor([ids])))
    assert not context[:, len(ids):].any()
    from transformers import UMT5Config, UMT5EncoderModel

    small = UMT5EncoderModel(UMT5Config(vocab_size=8, feed_forward_proj="gated-gelu", **wm.T5_SIZES))
    with pytest.raises(ModelFileError, match="outside the text encoder's vocabulary of 8"):
        UMT5TextEncoder(small, embedded).encode("a red fox")
    with pytest.warns(UserWarning, match="umT5 keeps the first 39"):
        long_ids = embedded(" ".join(wm.CAPTIONS[:4]), 40)
    assert long_ids[:39] == embedded(" ".join(wm.CAPTIONS[:4]), 1000)[:39] and long_ids[39:] == [1]


@pytest.fixture(scope="module")
def vae():
    return wm.tiny_wan_vae(seed=2)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_wan_vae_files_load_as_the_library_model(tmp_path, vae, suffix):
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    state = wm.wan_vae_state(vae)
    # the Wan names used here are the ones diffusers' own converter of original Wan checkpoints reads
    converted = convert_wan_vae_to_diffusers(dict(state))
    assert converted.keys() == vae.state_dict().keys()
    assert all(torch.equal(converted[k], v) for k, v in vae.state_dict().items())
    path = tmp_path / f"vae{suffix}"
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
    codec = WanVAECodec(load_wan_vae(path, dtype=torch.float32))

    video = torch.rand(1, 3, 9, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)  # diffusers' Wan 2.1 statistics
    std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
    assert (latents.WAN21_LATENT_MEAN, latents.WAN21_LATENT_STD) == (tuple(vae.config.latents_mean),
                                                                     tuple(vae.config.latents_std))
    with torch.no_grad():
        raw = vae.encode(video).latent_dist.mode()
        expected_pixels = vae.decode(raw).sample.clamp(-1, 1)
    encoded = codec.encode(video)
    assert encoded.shape == (1, 16, 3, 4, 4)
    torch.testing.assert_close(encoded, (raw - mean) / std, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(codec.decode(encoded), expected_pixels, atol=1e-5, rtol=1e-5)


GENERATE = ["--prompt", "a red fox runs", "--frames", "5", "--intervals", "2,1", "--chunks", "1", "--steps", "2,2",
            "--height", "32", "--width", "32", "--cfg", "2", "--weight-dtype", "fp32", "--device", "cpu"]


@pytest.fixture(scope="module")
def comfyui_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    wm.write_model_set(root, "comfyui")
    return root


def test_generate_runs_the_14b_set_from_a_comfyui_models_folder(tmp_path, comfyui_models):
    out = tmp_path / "v.mp4"
    assert cli.main(["generate", "--model-dir", str(comfyui_models), "--out", str(out)] + GENERATE) == 0
    frames, fps = read_video(out)
    assert frames.shape == (10, 32, 32, 3) and fps == 24.0  # 5 blueprint frames at 12 fps -> 10 at 24 fps


def test_the_long_video_path_runs_the_14b_set(tmp_path, comfyui_models):
    out = tmp_path / "long.mp4"
    assert cli.main(["generate", "--model-dir", str(comfyui_models), "--out", str(out), "--seconds", "0.75",
                     "--context-seconds", "0.25", "--segment-frames", "6", "--segment-prompt", "a fox sleeps"]
                    + GENERATE) == 0
    frames, fps = read_video(out)
    assert frames.shape == (18, 32, 32, 3) and fps == 24.0


def test_python_m_generate_runs_the_reference_layout(tmp_path):
    wm.write_model_set(tmp_path / "checkpoints", "reference")
    out = tmp_path / "ref.mp4"
    result = subprocess.run([sys.executable, "-m", "tempomaster_core", "generate", "--model-dir",
                             str(tmp_path / "checkpoints"), "--out", str(out)] + GENERATE,
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    frames, fps = read_video(out)
    assert frames.shape == (10, 32, 32, 3) and fps == 24.0 and frames.std() > 0
