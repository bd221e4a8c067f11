"""The .bin -> .safetensors converter: round trip, dtypes, key normalisation, CLI behaviour."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from tempomaster_core.convert import convert_checkpoint, main, write_safetensors_streaming
from tempomaster_core.loading import CheckpointError, load_dit
from tiny_models import make_tiny_dit, tiny_inputs


@pytest.fixture(scope="module")
def released_like(tmp_path_factory):
    """A tiny bf16 checkpoint saved like the release: torch.save of a plain state dict, .bin."""
    model = make_tiny_dit(seed=21, dtype=torch.bfloat16)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    path = tmp_path_factory.mktemp("ckpt") / "wan_video_dit_bf16.bin"
    torch.save(state, path)
    return path, state


def test_round_trip_bf16(tmp_path, released_like):
    src, state = released_like
    dst = tmp_path / "dit.safetensors"
    config = convert_checkpoint(src, dst, num_heads=2)
    assert config.num_heads == 2 and config.num_layers == 2
    written = load_file(str(dst))  # safetensors' own reader
    assert written.keys() == state.keys()
    for key, tensor in state.items():
        assert written[key].dtype == torch.bfloat16
        assert torch.equal(written[key], tensor), key
    with safe_open(str(dst), framework="pt") as handle:
        meta = handle.metadata()
    assert meta["num_heads"] == "2"
    assert json.loads(meta["tempomaster_config"])["in_dim"] == 36
    # the converted file loads without num_heads and computes exactly what the .bin does
    inputs = tiny_inputs(config, batch=1, seed=22)
    with torch.no_grad():
        a = load_dit(src, dtype=torch.float32, num_heads=2)(**inputs)
        b = load_dit(dst, dtype=torch.float32)(**inputs)
    assert torch.equal(a, b)


@pytest.mark.parametrize("dtype, torch_dtype", [("fp16", torch.float16), ("fp32", torch.float32)])
def test_dtype_conversion_and_prefix_normalisation(tmp_path, released_like, dtype, torch_dtype):
    _, state = released_like
    src = tmp_path / "prefixed.pt"
    torch.save({"model.diffusion_model." + k: v for k, v in state.items()}, src)
    dst = tmp_path / "out.safetensors"
    convert_checkpoint(src, dst, dtype=dtype, num_heads=2)
    written = load_file(str(dst))
    assert written.keys() == state.keys()  # prefix stripped
    for key, tensor in state.items():
        assert written[key].dtype == torch_dtype
        assert torch.equal(written[key], tensor.to(torch_dtype)), key


def test_streaming_writer_matches_safetensors_save_file(tmp_path):
    gen = torch.Generator().manual_seed(0)
    tensors = {"b": torch.randn(3, 5, generator=gen), "a.weight": torch.randn(7, generator=gen), "c": torch.randn(2, 2, 2, generator=gen)}
    ours = tmp_path / "ours.safetensors"
    nbytes = write_safetensors_streaming(ours, {k: v.shape for k, v in tensors.items()}, tensors.__getitem__, torch.bfloat16, {"k": "v"})
    assert nbytes == 2 * (15 + 7 + 8)
    theirs = tmp_path / "theirs.safetensors"
    save_file({k: v.bfloat16() for k, v in tensors.items()}, str(theirs))
    a, b = load_file(str(ours)), load_file(str(theirs))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="shape"):
        write_safetensors_streaming(tmp_path / "bad.safetensors", {"b": (3, 4)}, tensors.__getitem__, torch.float32)


def test_cli_success_and_failures(tmp_path, released_like, capsys):
    src, state = released_like
    dst = tmp_path / "cli.safetensors"
    assert main([str(src), str(dst), "--num-heads", "2"]) == 0
    out = capsys.readouterr().out
    n_params = sum(v.numel() for v in state.values())
    assert f"{n_params:,} parameters" in out and '"num_heads": 2' in out
    # existing output needs --force
    assert main([str(src), str(dst), "--num-heads", "2"]) == 1
    assert "--force" in capsys.readouterr().err
    assert main([str(src), str(dst), "--num-heads", "2", "--force", "--dtype", "fp16"]) == 0
    assert load_file(str(dst))["head.modulation"].dtype == torch.float16
    # a plain Wan T2V checkpoint: error, and no output file left behind
    t2v = dict(state)
    t2v["patch_embedding.weight"] = torch.zeros(64, 16, 1, 2, 2, dtype=torch.bfloat16)
    torch.save(t2v, tmp_path / "t2v.bin")
    bad_dst = tmp_path / "t2v.safetensors"
    assert main([str(tmp_path / "t2v.bin"), str(bad_dst), "--num-heads", "2"]) == 1
    assert "text-to-video" in capsys.readouterr().err
    assert not bad_dst.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".t2v.safetensors")]


def test_interrupted_conversion_keeps_the_old_output_and_leaves_no_temp_file(tmp_path, released_like, monkeypatch, capsys):
    import tempomaster_core.convert as convert

    src, _ = released_like
    dst = tmp_path / "dit.safetensors"
    dst.write_bytes(b"the previous conversion")
    (tmp_path / "dit.safetensors.tmp").write_bytes(b"a user's own file")  # the old fixed temp name: untouched now
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real = convert.write_safetensors_streaming

    def interrupted(path, shapes, get_tensor, dtype, metadata=None):
        real(path, dict(list(shapes.items())[:1]), get_tensor, dtype, metadata)  # part of the file, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(convert, "write_safetensors_streaming", interrupted)
    assert main([str(src), str(dst), "--num-heads", "2", "--force"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_output_suffix_is_checked(tmp_path, released_like):
    src, _ = released_like
    with pytest.raises(ValueError, match=".safetensors"):
        convert_checkpoint(src, tmp_path / "out.bin", num_heads=2)
    with pytest.raises(CheckpointError, match="num_heads"):
        convert_checkpoint(src, tmp_path / "out.safetensors")


def test_conversion_keeps_a_recorded_rope_base(tmp_path):
    """A safetensors checkpoint whose metadata records rope_theta (shapes cannot tell it) keeps it
    through the converter, and the converted file loads with it."""
    import dataclasses

    from tempomaster_core.loading import save_dit

    model = make_tiny_dit(seed=23)
    config = dataclasses.replace(model.config, rope_theta=100.0)
    src = save_dit(model.state_dict(), tmp_path / "theta100.safetensors", config=config)
    converted = convert_checkpoint(src, tmp_path / "converted.safetensors", dtype="bf16")
    assert converted.rope_theta == 100.0
    assert load_dit(tmp_path / "converted.safetensors").config.rope_theta == 100.0


def test_text_length_is_a_recorded_config_value(tmp_path):
    """``DiTConfig.text_len``: 512 for an umT5-width model, ``None`` (any length) for another width unless
    set; recorded in the checkpoint metadata, kept by the converter, overridden by ``load_dit(text_len=)``."""
    import dataclasses

    from tempomaster_core.config import DiTConfig
    from tempomaster_core.loading import save_dit

    assert DiTConfig().text_len == 512 and DiTConfig(text_dim=24).text_len is None
    with pytest.raises(ValueError, match="DiTConfig.text_len must be >= 1"):
        DiTConfig(text_len=0)
    model = make_tiny_dit(seed=24)
    assert model.config.text_len is None
    plain = save_dit(model.state_dict(), tmp_path / "plain.safetensors", config=model.config)
    assert load_dit(plain).config.text_len is None
    assert load_dit(plain, text_len=7).config.text_len == 7
    src = save_dit(model.state_dict(), tmp_path / "len7.safetensors",
                   config=dataclasses.replace(model.config, text_len=7))
    assert load_dit(src).config.text_len == 7
    assert convert_checkpoint(src, tmp_path / "converted.safetensors").text_len == 7
    assert load_dit(tmp_path / "converted.safetensors").config.text_len == 7
    bad = tmp_path / "bad.safetensors"
    metadata = {"format": "pt", "tempomaster_config": json.dumps({**model.config.to_dict(), "text_len": "long"})}
    save_file(load_file(str(src)), str(bad), metadata=metadata)
    with pytest.raises(CheckpointError, match="bad text_len 'long'"):
        load_dit(bad, num_heads=model.config.num_heads)
