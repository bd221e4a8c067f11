"""The 14B set's files without the `wan` extra: finding them by their usual names, and every mistake refused
by the command line before anything loads (header-only fakes; the loaders themselves: test_wan_models.py)."""

from pathlib import Path

import pytest

from tempomaster_core import cli
from tempomaster_core.defaults import NEGATIVE_PROMPT
from tempomaster_core.loading import save_dit
from tempomaster_core.wan import extra
from tempomaster_core.wan.files import ModelFileError, find_model_files
from tiny_models import make_tiny_dit
from wan_models import fake_umt5_reference, fake_wan_vae, write_tensors

ROOT = Path(__file__).resolve().parents[1]


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_each_layout_is_found_by_its_usual_names(tmp_path):
    comfy = tmp_path / "models"
    dit = touch(comfy / "diffusion_models" / "wan_video_dit_bf16.bin")
    te = touch(comfy / "text_encoders" / "umt5_xxl_fp16.safetensors")
    vae = touch(comfy / "vae" / "wan_2.1_vae.safetensors")
    found = find_model_files(comfy)
    assert (found.dit, found.text_encoder, found.vae, found.tokenizer) == (dit, te, vae, None)
    # a converted DiT is preferred to the release's .bin; a flag wins over the folder
    converted = touch(comfy / "diffusion_models" / "tempomaster_dit_bf16.safetensors")
    other = touch(tmp_path / "mine.safetensors")
    assert find_model_files(comfy).dit == converted
    assert find_model_files(comfy, dit=other).dit == other

    ref = tmp_path / "checkpoints"
    files = [touch(ref / "wan_video_dit_bf16.bin"), touch(ref / "encoders" / "models_t5_umt5-xxl-enc-bf16.pth"),
             touch(ref / "encoders" / "Wan2.1_VAE.pth")]
    (ref / "encoders" / "google" / "umt5-xxl").mkdir(parents=True)
    found = find_model_files(ref)
    assert [found.dit, found.text_encoder, found.vae] == files
    assert found.tokenizer == ref / "encoders" / "google" / "umt5-xxl"


def test_missing_files_are_listed_with_their_expected_names(tmp_path):
    touch(tmp_path / "vae" / "wan_2.1_vae.safetensors")
    with pytest.raises(ModelFileError) as err:
        find_model_files(tmp_path)
    message = str(err.value)
    assert "the TempoMaster DiT" in message and "wan_video_dit_bf16.bin" in message and "--dit FILE" in message
    assert "umt5_xxl_fp16.safetensors" in message and "models_t5_umt5-xxl-enc-bf16.pth" in message
    assert "Wan 2.1 VAE" not in message  # found


def test_the_extra_bounds_are_the_pyproject_ones():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["wan"]
    assert declared == extra.requirements()


@pytest.fixture
def model_set(tmp_path, monkeypatch):
    """A ComfyUI-layout folder: a real tiny DiT and header-only umT5 (reference layout, no tokenizer) / VAE."""
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "models"
    for sub in ("diffusion_models", "text_encoders", "vae"):
        (root / sub).mkdir(parents=True)
    save_dit(make_tiny_dit(dim=128, num_heads=1), root / "diffusion_models" / "tempomaster_dit_bf16.safetensors")
    fake_umt5_reference(root / "text_encoders" / "umt5_xxl_fp16.safetensors")
    fake_wan_vae(root / "vae" / "wan_2.1_vae.safetensors")
    touch(tmp_path / "tok" / "spiece.model")  # a tokenizer folder (only its kind is checked before loading)
    write_tensors(tmp_path / "other.safetensors", {"visual.proj": (2, 2)})
    fake_wan_vae(tmp_path / "wan22.safetensors", z_dim=48)
    monkeypatch.setattr(extra, "missing_libraries", lambda: [])  # as if the extra were installed
    monkeypatch.setattr("tempomaster_core.wan.bundle.load_wan", lambda *a, **k: pytest.fail("loaded"))
    return root


def run(argv, capsys):
    code = cli.main(["generate", "--prompt", "a fox", "--out", "v.mp4"] + argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert "Traceback" not in err and len(lines) == 1, err
    return code, lines[0]


BAD_SETS = [
    ("no-tokenizer", [], "holds no tokenizer (the release's file comes with a google/umt5-xxl folder): pass --tokenizer"),
    ("vae-given-a-text-encoder", ["--vae", "models/text_encoders/umt5_xxl_fp16.safetensors"],
     "is a umT5 text encoder, not the Wan 2.1 VAE; pass it as --text-encoder"),
    ("dit-given-a-vae", ["--dit", "models/vae/wan_2.1_vae.safetensors"], "is a Wan VAE, not the TempoMaster DiT"),
    ("unknown-file", ["--text-encoder", "other.safetensors"], "is not the umT5-XXL text encoder"),
    ("wan22-vae", ["--tokenizer", "tok", "--vae", "wan22.safetensors"], "48 latent channels"),
    ("missing-file", ["--vae", "nowhere.safetensors"], "--vae nowhere.safetensors: no such file"),
    ("tokenizer-not-a-folder", ["--tokenizer", "nowhere"], "--tokenizer nowhere: no such directory"),
    ("empty-tokenizer-folder", ["--tokenizer", "models"], "holds neither tokenizer.json nor spiece.model"),
    ("text-width-differs", ["--tokenizer", "tok", "--text-encoder", "wide.safetensors"],
     "text encoder's width 32 differs from the DiT's text_dim 24"),
]


@pytest.mark.parametrize("argv, fragment", [row[1:] for row in BAD_SETS], ids=[row[0] for row in BAD_SETS])
def test_a_bad_model_set_is_refused_before_anything_loads(model_set, no_model, capsys, argv, fragment):
    fake_umt5_reference(model_set.parent / "wide.safetensors", d_model=32)
    code, message = run(["--model-dir", "models"] + argv, capsys)
    assert code == 2 and fragment in message, message
    assert not Path("v.mp4").exists()


def test_without_the_extra_the_message_says_how_to_install_it(model_set, no_model, monkeypatch, capsys):
    monkeypatch.setattr(extra, "missing_libraries", lambda: ["diffusers (not installed)"])
    code, message = run(["--model-dir", "models"], capsys)
    assert code == 2 and "diffusers (not installed)" in message and 'pip install "tempomaster[wan]"' in message


def test_a_folder_with_neither_set_names_both(tmp_path, no_model, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    code, message = run(["--model-dir", "empty"], capsys)
    assert code == 2 and "neither a TempoMaster-Tiny bundle (missing dit.safetensors" in message
    assert "wan_video_dit_bf16.bin" in message and "umt5_xxl_fp16.safetensors" in message


def test_the_14b_set_defaults_to_the_reference_settings(model_set, no_model):
    args = cli.build_parser().parse_args(["generate", "--prompt", "a fox", "--out", "v.mp4", "--model-dir", "models",
                                          "--tokenizer", "tok"])
    job = cli.prepare_generate(args)
    plan = job.plan
    assert (plan.blueprint_frames, plan.height, plan.width, plan.final.fps) == (109, 480, 832, 24.0)
    assert [level.num_chunks for level in plan.levels] == [1, 2, 4] and plan.final.num_frames == 436
    assert (job.steps, job.shifts, job.cfg, job.guidance) == ([50, 32, 32], [5.0, 3.0, 3.0], [8.0] * 3, "apg")
    assert job.negative_prompt == NEGATIVE_PROMPT and job.models.wan is not None
    args.negative_prompt = ""
    assert cli.prepare_generate(args).negative_prompt == ""
