"""Checkpoint loading: formats x key prefixes, config inference, every documented error."""

import collections

import pytest
import torch
from safetensors.torch import save_file

from tempomaster_core.config import DiTConfig
from tempomaster_core.loading import (
    CheckpointError,
    infer_config,
    load_dit,
    normalize_state_dict_keys,
    save_dit,
)
from tempomaster_core.model import TempoMasterDiT
from tiny_models import make_tiny_dit, tiny_config, tiny_inputs

PREFIXES = ["", "model.diffusion_model.", "diffusion_model.", "module."]


class NotATensor:  # module-level so torch.save can pickle it
    pass


@pytest.fixture(scope="module")
def tiny():
    model = make_tiny_dit(seed=11)
    inputs = tiny_inputs(model.config, batch=2, seed=12, interval=2)
    with torch.no_grad():
        expected = model(**inputs)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return model.config, state, inputs, expected


def forward(model, inputs):
    with torch.no_grad():
        return model(**inputs)


def write(path, state, fmt):
    if fmt == "safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("fmt", ["safetensors", "bin", "pt", "pth", "dict"])
def test_every_format_and_prefix_gives_identical_output(tmp_path, tiny, fmt, prefix):
    config, state, inputs, expected = tiny
    prefixed = {prefix + k: v for k, v in state.items()}
    source = prefixed if fmt == "dict" else write(tmp_path / f"dit.{fmt}", prefixed, fmt)
    model = load_dit(source, dtype=torch.float32, num_heads=config.num_heads)
    assert model.config == config
    assert not any(p.is_meta for p in model.parameters())
    assert not any(p.requires_grad for p in model.parameters()) and not model.training
    assert torch.equal(forward(model, inputs), expected)


def test_save_dit_records_num_heads_so_no_argument_is_needed(tmp_path, tiny):
    config, state, inputs, expected = tiny
    path = save_dit(state, tmp_path / "tiny.safetensors", config=config)
    model = load_dit(path, dtype="fp32")
    assert model.config == config
    assert torch.equal(forward(model, inputs), expected)


def test_wrapped_and_legacy_torch_files(tmp_path, tiny):
    config, state, inputs, expected = tiny
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "wrapped.ckpt")
    torch.save(state, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)  # no mmap possible
    for name in ("wrapped.ckpt", "legacy.pt"):
        model = load_dit(tmp_path / name, dtype=torch.float32, num_heads=2)
        assert torch.equal(forward(model, inputs), expected)


def test_default_dtype_is_bf16_and_dict_tensors_are_assigned_without_copy(tiny):
    config, state, inputs, expected = tiny
    model = load_dit(state, num_heads=2)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    out = forward(model, inputs)
    assert ((out - expected).norm() / expected.norm()) < 3e-2
    # matching dtype/device: the parameters are the checkpoint tensors themselves (no second copy)
    model32 = load_dit(state, dtype=torch.float32, num_heads=2)
    assert model32.blocks[1].ffn[0].weight.data_ptr() == state["blocks.1.ffn.0.weight"].data_ptr()


def test_infer_config_reads_shapes():
    custom = tiny_config(num_layers=3, ffn_dim=96, text_dim=8, freq_dim=12, in_dim=20, out_dim=8, dim=48, num_heads=2)
    state = TempoMasterDiT(custom).state_dict()
    assert infer_config(state, num_heads=2) == custom
    assert infer_config({"module." + k: v for k, v in state.items()}, num_heads=2) == custom
    # the release and a 1.3B-sized model, built on the meta device: num_heads from Wan's 128-channel heads
    for cfg in (DiTConfig(), DiTConfig(dim=1536, ffn_dim=8960, num_heads=12, num_layers=30)):
        with torch.device("meta"):
            meta_state = TempoMasterDiT(cfg).state_dict()
        assert infer_config(meta_state) == cfg


def test_normalize_state_dict_keys():
    assert normalize_state_dict_keys({"module.model.diffusion_model.a": 1, "module.model.diffusion_model.b": 2}) == {
        "a": 1,
        "b": 2,
    }
    mixed = {"diffusion_model.a": 1, "b": 2}
    assert normalize_state_dict_keys(mixed) == mixed  # only stripped when every key has it


# ---------------------------------------------------------------------------------------------
# errors


def expect_error(source, *fragments, **kwargs):
    with pytest.raises(CheckpointError) as info:
        load_dit(source, dtype=torch.float32, **kwargs)
    message = str(info.value)
    for fragment in fragments:
        assert fragment.lower() in message.lower(), message
    return message


def test_not_a_wan_dit(tiny):
    vae_like = {"encoder.conv1.weight": torch.zeros(4, 3, 3, 3), "decoder.conv1.weight": torch.zeros(3, 4, 3, 3)}
    expect_error(vae_like, "not a Wan DiT", "encoder.conv1.weight", "Scottttttyy/TempoMaster")
    _, state, _, _ = tiny
    expect_error({"foo." + k: v for k, v in state.items()}, "prefix 'foo.'")
    expect_error({}, "no tensors")


def test_plain_wan_t2v_is_rejected(tiny):
    _, state, _, _ = tiny
    t2v = dict(state)
    t2v["patch_embedding.weight"] = torch.randn(64, 16, 1, 2, 2)  # Wan T2V: in_dim == out_dim == 16
    expect_error(t2v, "text-to-video", "in_dim=16", "in_dim=36", "wan_video_dit_bf16.bin", "Scottttttyy/TempoMaster", num_heads=2)
    other = dict(state)
    other["patch_embedding.weight"] = torch.randn(64, 33, 1, 2, 2)
    expect_error(other, "not a TempoMaster checkpoint", "in_dim=33", num_heads=2)
    # test models with another latent width load when in_dim = 2*out_dim + mask channels
    small = make_tiny_dit(in_dim=18, out_dim=8, num_layers=1)
    assert load_dit(small.state_dict(), dtype=torch.float32, num_heads=2).config == small.config


def test_wan_i2v_with_clip_branch_is_rejected(tiny):
    _, state, _, _ = tiny
    i2v = dict(state)  # Wan 2.1 I2V also has in_dim 36, but carries the CLIP image branch
    i2v["img_emb.proj.0.weight"] = torch.ones(1280)
    i2v["blocks.0.cross_attn.k_img.weight"] = torch.zeros(64, 64)
    expect_error(i2v, "image-to-video", "img_emb", "Scottttttyy/TempoMaster", num_heads=2)


def test_missing_unexpected_and_misshapen_keys(tiny):
    _, state, _, _ = tiny
    missing = {k: v for k, v in state.items() if k not in ("blocks.1.ffn.2.bias", "head.modulation")}
    expect_error(missing, "2 missing", "blocks.1.ffn.2.bias", "head.modulation", num_heads=2)
    unexpected = {**state, "blocks.0.extra.weight": torch.zeros(3), "vace_blocks.0.weight": torch.zeros(2)}
    expect_error(unexpected, "2 unexpected", "blocks.0.extra.weight", num_heads=2)
    wrong = {**state, "blocks.0.norm3.weight": torch.zeros(65)}
    expect_error(wrong, "wrong shape", "blocks.0.norm3.weight", num_heads=2)
    three = make_tiny_dit(num_layers=3).state_dict()
    gap = {k: v for k, v in three.items() if not k.startswith("blocks.1.")}
    expect_error(gap, "missing blocks [1]", num_heads=2)


def test_num_heads_not_inferable_for_odd_widths(tiny):
    _, state, _, _ = tiny
    expect_error(state, "num_heads")  # dim 64 is not a multiple of 128 and no metadata


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_truncated_file(tmp_path, tiny, fmt):
    _, state, _, _ = tiny
    path = write(tmp_path / f"dit.{fmt}", state, fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    expect_error(path, "truncated", "re-download", num_heads=2)


def test_pickled_objects_are_refused(tmp_path, tiny):
    _, state, _, _ = tiny
    torch.save({**state, "evil": NotATensor()}, tmp_path / "objects.pt")
    expect_error(tmp_path / "objects.pt", "refusing to unpickle")
    torch.save({**state, "counts": collections.Counter(a=1)}, tmp_path / "mixed.pt")
    expect_error(tmp_path / "mixed.pt", "not a tensor")


def test_unknown_suffix_and_missing_file(tmp_path):
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    expect_error(tmp_path / "model.gguf", "unsupported checkpoint file type")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_dit(tmp_path / "absent.safetensors")


def test_format_is_detected_by_content_not_by_suffix(tmp_path, tiny):
    """A safetensors file renamed .bin (or .pt, or an unknown suffix) loads as safetensors; a torch.save
    file with another suffix loads too; one named .safetensors gets a clear message (torch.load itself
    reads every *.safetensors name as safetensors)."""
    config, state, inputs, expected = tiny
    safetensors_bytes = write(tmp_path / "real.safetensors", state, "safetensors").read_bytes()
    torch_bytes = write(tmp_path / "real.pt", state, "pt").read_bytes()
    paths = []
    for name, data in [("dit.bin", safetensors_bytes), ("dit.pt", safetensors_bytes), ("dit.weights", safetensors_bytes),
                       ("zip.model", torch_bytes), ("zip.sft", torch_bytes)]:
        (tmp_path / name).write_bytes(data)
        paths.append(tmp_path / name)
    torch.save(state, tmp_path / "legacy.model", _use_new_zipfile_serialization=False)
    paths.append(tmp_path / "legacy.model")
    for path in paths:
        model = load_dit(path, dtype=torch.float32, num_heads=config.num_heads)
        assert torch.equal(forward(model, inputs), expected), path.name
    (tmp_path / "zip.safetensors").write_bytes(torch_bytes)
    expect_error(tmp_path / "zip.safetensors", "is a torch.save file", "rename it to .bin", num_heads=2)
