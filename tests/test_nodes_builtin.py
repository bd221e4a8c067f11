"""The built-in TempoMaster-Tiny model in ComfyUI graphs (``nodes/builtin_nodes.py``, LoadTempoModel's list).

A throw-away bundle of small random modules (saved with the same functions as
the real one) is built in a temp dir and selected with ``TEMPOMASTER_TINY_DIR``,
so nothing here needs the shipped weights. Its text encoder has 11 token slots,
neither the shipped 16 nor umT5's 512, so a length that reaches the DiT
unchanged is really this one.
"""

import dataclasses
import json
import os

import pytest
import torch

from comfy_fakes import install_fake_comfy
from nodes import NODE_CLASS_MAPPINGS
from nodes.builtin_nodes import TINY_DIR_ENV, TinyCLIP, TinyVAE, load_tiny_encoders
from nodes.model_loader import available_models, clear_cache
from nodes.text_adapter import conditioning_to_context
from nodes.vae_adapter import as_codec
from tempomaster_core.loading import save_dit
from tempomaster_core.protocols import check_compatible
from tempomaster_core.tiny.builtin import BUILTIN_MODEL_NAME
from tempomaster_core.tiny.codec import CodecConfig, TinyVideoCodec
from tempomaster_core.tiny.text_encoder import TextEncoderConfig, TinyTextEncoder
from tiny_models import make_tiny_dit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT_LEN = 11
TEXT_DIM = 24  # tiny_models' text_dim
PROMPT = "a red ball bouncing from left to right"  # 8 words


def make_temp_bundle(directory, seed: int = 0):
    """Write a complete random TempoMaster-Tiny bundle into ``directory``; returns
    ``(dit, text_encoder, codec)`` (the saved modules, eval mode)."""
    torch.manual_seed(seed)
    dit = make_tiny_dit(seed=seed).eval()
    encoder = TinyTextEncoder(TextEncoderConfig(max_length=TEXT_LEN, dim=TEXT_DIM, layers=1, heads=2)).eval()
    codec = TinyVideoCodec(CodecConfig(channels=(8, 8, 8), blocks=(1, 1, 1))).eval()
    save_dit(dit, os.path.join(directory, "dit.safetensors"))
    encoder.save(directory)
    codec.save(directory)
    return dit, encoder, codec


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny_bundle")
    dit, encoder, codec = make_temp_bundle(str(directory))
    return directory, dit, encoder, codec


@pytest.fixture
def use_bundle(bundle, monkeypatch):
    monkeypatch.setenv(TINY_DIR_ENV, str(bundle[0]))
    clear_cache()
    yield bundle
    clear_cache()


def clip_text_encode(clip, text):
    """The calls ComfyUI's CLIP Text Encode node makes: tokenize, then encode_from_tokens_scheduled."""
    tokens = clip.tokenize(text)
    return (clip.encode_from_tokens_scheduled(tokens),)


# -- model list and loading -------------------------------------------------------------


def test_builtin_is_listed_first_when_installed(use_bundle, monkeypatch, tmp_path):
    assert available_models() == [BUILTIN_MODEL_NAME]
    install_fake_comfy(monkeypatch, folders={"diffusion_models": {"wan_dit.safetensors": str(tmp_path / "x")}})
    listed = NODE_CLASS_MAPPINGS["TempoMasterLoadModel"].INPUT_TYPES()["required"]["model_name"][0]
    assert listed == [BUILTIN_MODEL_NAME, "wan_dit.safetensors"]
    # an incomplete bundle is not offered
    os.makedirs(tmp_path / "empty")
    monkeypatch.setenv(TINY_DIR_ENV, str(tmp_path / "empty"))
    assert available_models() == ["wan_dit.safetensors"]


def test_loading_the_builtin_gives_its_dit_with_the_text_length(use_bundle):
    _, dit, _, _ = use_bundle
    loader = NODE_CLASS_MAPPINGS["TempoMasterLoadModel"]()
    (model,) = loader.load(BUILTIN_MODEL_NAME, "fp32", "sdpa")
    assert dit.config.text_len is None  # the bundle's DiT file does not record it: the encoder's length is set
    assert model.config == dataclasses.replace(dit.config, text_len=TEXT_LEN)
    saved = dit.state_dict()
    for name, value in model.state_dict().items():
        assert torch.equal(value, saved[name]), name
    (again,) = loader.load(BUILTIN_MODEL_NAME, "fp32", "sdpa")
    assert again is model  # cached like any other checkpoint


def test_missing_bundle_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv(TINY_DIR_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="train_dit"):
        NODE_CLASS_MAPPINGS["TempoMasterLoadModel"]().load(BUILTIN_MODEL_NAME, "fp32", "sdpa")
    with pytest.raises(FileNotFoundError, match=TINY_DIR_ENV):
        NODE_CLASS_MAPPINGS["TempoMasterLoadTinyEncoders"]().load(BUILTIN_MODEL_NAME)


# -- the CLIP stand-in ---------------------------------------------------------------------


def test_clip_gives_the_conditioning_structure_of_clip_text_encode(use_bundle):
    _, _, encoder, _ = use_bundle
    clip, vae = NODE_CLASS_MAPPINGS["TempoMasterLoadTinyEncoders"]().load(BUILTIN_MODEL_NAME)
    assert isinstance(clip, TinyCLIP) and isinstance(vae, TinyVAE)
    (cond,) = clip_text_encode(clip, PROMPT)
    assert isinstance(cond, list) and len(cond) == 1
    tensor, extra = cond[0]
    assert extra == {"pooled_output": None}
    assert tensor.shape == (1, TEXT_LEN, TEXT_DIM) and tensor.dtype == torch.float32 and tensor.device.type == "cpu"
    rows = tensor[0].abs().sum(dim=-1)
    assert bool((rows[:8] > 0).all()) and bool((rows[8:] == 0).all())  # 8 words, padding zeroed
    with torch.no_grad():
        expected = encoder.encode([PROMPT])
    torch.testing.assert_close(tensor, expected)
    # the empty (negative) prompt is all zeros, the unconditional embedding
    (empty,) = clip_text_encode(clip, "")
    assert empty[0][0].shape == (1, TEXT_LEN, TEXT_DIM) and not empty[0][0].any()
    # unknown words do not fail
    (odd,) = clip_text_encode(clip, "a purple zebra")
    assert odd[0][0].shape == (1, TEXT_LEN, TEXT_DIM)


def test_clip_refuses_other_comfyui_clip_uses_clearly(use_bundle):
    clip, _ = load_tiny_encoders()
    with pytest.raises(AttributeError, match="only supports CLIP Text Encode"):
        clip.clone()
    with pytest.raises(TypeError, match="tokenize"):
        clip.encode_from_tokens_scheduled({"l": [[(1, 1.0)]]})


def test_context_reaches_the_dit_with_the_encoders_length(use_bundle):
    (model,) = NODE_CLASS_MAPPINGS["TempoMasterLoadModel"]().load(BUILTIN_MODEL_NAME, "fp32", "sdpa")
    clip, _ = load_tiny_encoders()
    (cond,) = clip_text_encode(clip, PROMPT)
    context = conditioning_to_context(cond, model)
    assert torch.equal(context, cond[0][0])  # no padding to 512, no truncation
    # a shorter CONDITIONING (e.g. from another node) is padded to the model's length with zeros
    short = conditioning_to_context([[cond[0][0][:, :5], {}]], model)
    assert short.shape == (1, TEXT_LEN, TEXT_DIM) and not short[:, 5:].any()


# -- the VAE stand-in ----------------------------------------------------------------------


def test_vae_holds_the_core_codec_the_samplers_unwrap(use_bundle):
    _, dit, _, codec = use_bundle
    _, vae = load_tiny_encoders()
    core = as_codec(vae)
    assert core is vae.tempomaster_codec and not isinstance(core, TinyVAE)
    check_compatible(core, dit.config)
    video = torch.rand(1, 3, 5, 16, 24, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        latents = core.encode(video)
        assert latents.shape == (1, 16, 2, 2, 3)
        torch.testing.assert_close(latents, codec.encode(video))
        torch.testing.assert_close(core.decode(latents), codec.decode(latents))
    assert "latent_channels=16" in repr(vae)


def test_comfyui_vae_nodes_get_a_clear_message(use_bundle):
    """The calls ComfyUI's VAE Decode, VAE Encode and Wan image-to-video nodes make on their ``vae`` input:
    ``vae.decode(latent["samples"])`` and ``vae.encode(pixels[..., :3])``."""
    _, vae = load_tiny_encoders()
    latent = {"samples": torch.zeros(1, 16, 2, 2, 2)}
    image = torch.rand(5, 16, 16, 3)
    with pytest.raises(TypeError, match="only\\s+with the TempoMaster nodes.*VAE Decode"):
        vae.decode(latent["samples"])
    with pytest.raises(TypeError, match="only\\s+with the TempoMaster nodes.*VAE Encode"):
        vae.encode(image[:, :, :, :3])
    with pytest.raises(TypeError, match="only\\s+with the TempoMaster nodes"):
        vae.encode(torch.rand(1, 3, 5, 16, 16) * 2 - 1)  # even a core-layout video: use the samplers
    with pytest.raises(TypeError, match="only\\s+with the TempoMaster nodes"):
        vae.decode_tiled(latent["samples"], 512, 512, 64)
    with pytest.raises(AttributeError, match="spacial_compression_encode"):
        vae.spacial_compression_encode()
    assert not hasattr(vae, "first_stage_model")


# -- node definition and the example workflow ---------------------------------------------


def test_encoder_loader_node_definition():
    cls = NODE_CLASS_MAPPINGS["TempoMasterLoadTinyEncoders"]
    assert cls.RETURN_TYPES == ("CLIP", "VAE") and cls.CATEGORY == "TempoMaster"
    entry = cls.INPUT_TYPES()["required"]["model_name"]
    assert entry[0] == [BUILTIN_MODEL_NAME] and len(entry[1]["tooltip"]) > 15
    assert "only for the tempomaster samplers" in cls.OUTPUT_TOOLTIPS[1].lower()
    assert "only with TempoMaster nodes" in cls.DESCRIPTION


def test_tiny_workflow_runs_in_process_and_returns_the_planned_frames(use_bundle):
    from tools.make_workflows import run_api_in_process

    with open(os.path.join(ROOT, "tests", "workflows_api", "tiny_text_to_video.json"), encoding="utf-8") as fh:
        api = json.load(fh)
    sched = next(n["inputs"] for n in api.values() if n["class_type"] == "TempoMasterTreeScheduler")
    intervals = [int(v) for v in sched["custom_intervals"].split(",")]
    expected_frames = sched["blueprint_frames"] * intervals[0] // intervals[-1]  # 25 * 4 = 100
    for node in api.values():  # fewer steps: the random model only has to run, not to look good
        if node["class_type"] in ("TempoMasterBlueprintSampler", "TempoMasterFrameRateRefiner"):
            node["inputs"]["steps"] = 2
    (model,) = NODE_CLASS_MAPPINGS["TempoMasterLoadModel"]().load(BUILTIN_MODEL_NAME, "fp32", "sdpa")
    lengths = []
    hook = model.register_forward_pre_hook(lambda module, args: lengths.append(args[2].shape[1]))
    try:
        results = run_api_in_process(api)
    finally:
        hook.remove()
    video = next(results[i][0] for i, n in api.items() if n["class_type"] == "CreateVideo")
    assert expected_frames == 100
    assert video["images"].shape == (expected_frames, sched["height"], sched["width"], 3)
    assert video["fps"] == sched["fps"] == 24.0
    assert 0 <= float(video["images"].min()) and float(video["images"].max()) <= 1
    blueprint = next(results[i] for i, n in api.items() if n["class_type"] == "TempoMasterBlueprintSampler")
    assert blueprint[1].shape[0] == sched["blueprint_frames"] and blueprint[2] == 6.0
    assert lengths and set(lengths) == {TEXT_LEN}  # the encoder's length reached the DiT unchanged


@pytest.mark.slow  # nine segments of the built-in tree (seconds)
def test_tiny_continuation_workflow_runs_in_process_to_the_length_its_name_says(use_bundle):
    """The built-in model's continuation template through the same in-process runner as its thumbnail: the
    tree, then every Continue node, gives the frame count and fps of the template's name."""
    import re

    from tools.make_workflows import run_api_in_process, template_file_name

    with open(os.path.join(ROOT, "tests", "workflows_api", "tiny_continue.json"), encoding="utf-8") as fh:
        api = json.load(fh)
    frames, seconds, fps = re.search(r"(\d+) frames \(([\d.]+) s\) at ([\d.]+) fps",
                                     template_file_name("tiny_continue")).groups()
    for node in api.values():  # one step per level: the random model only has to run
        if node["class_type"] in ("TempoMasterBlueprintSampler", "TempoMasterFrameRateRefiner"):
            node["inputs"]["steps"] = 1
        if node["class_type"] == "TempoMasterContinue":
            node["inputs"]["steps"] = "1"
    results = run_api_in_process(api)
    video = next(results[i][0] for i, n in api.items() if n["class_type"] == "CreateVideo")
    assert video["images"].shape == (int(frames), 64, 64, 3) and video["fps"] == float(fps) == 24.0
    assert round(int(frames) / video["fps"], 1) == float(seconds)
    tree = next(results[i][1] for i, n in api.items() if n["class_type"] == "TempoMasterFrameRateRefiner"
                and not any(v["inputs"].get("level", [None])[0] == i for v in api.values()))
    assert torch.equal(video["images"][: tree.shape[0]], (tree * 255).round() / 255)  # the tree's frames come first
