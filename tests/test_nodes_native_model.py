"""ComfyUI's native Wan MODEL in the samplers (nodes/native_model.py), without ComfyUI: the token coordinates of the
frame-rate-aware RoPE and the refusals of models that are not TempoMaster-shaped. The forward itself runs against
ComfyUI's real WanModel in tests/test_comfyui_integration.py (equal to our DiT at intervals 4, 2, 1)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from comfy_fakes import FakeModelPatcher
from nodes.comfy_model import dit_of
from nodes.native_model import NativeWanDiT, is_native_model, native_config, rope_ids
from nodes.sampler_nodes import _run_level
from tempomaster_core.validation import InputError
from tiny_models import make_tiny_dit


def test_rope_ids_give_each_token_its_frames_position_row_and_column():
    positions = torch.tensor([[0.0, 4.0, 8.0], [12.0, 16.0, 20.0]])  # two chunks of a level at frame interval 4
    ids = rope_ids(positions, (3, 2, 5))
    assert ids.shape == (2, 30, 3)
    token = 1 * 10 + 1 * 5 + 3  # frame 1, row 1, column 3 in (f, h, w) order
    assert ids[0, token].tolist() == [4.0, 1.0, 3.0]
    assert ids[1, token].tolist() == [16.0, 1.0, 3.0]
    assert ids[1, -1].tolist() == [20.0, 1.0, 4.0]


def _wan_model(name="WanModel", in_dim=36, out_dim=16, img_emb=None):
    cls = type(name, (), {"forward_orig": lambda self, *a, **k: None, "rope_embedder": lambda self, ids: None})
    dm = cls()
    dm.__dict__.update(dim=256, ffn_dim=512, num_heads=2, blocks=[object(), object()], in_dim=in_dim, out_dim=out_dim,
                       text_dim=4096, freq_dim=256, eps=1e-6, patch_size=(1, 2, 2), img_emb=img_emb)
    return dm


def _native_patcher(model_type="FLOW", **kwargs):
    base = SimpleNamespace(diffusion_model=_wan_model(**kwargs), model_type=SimpleNamespace(name=model_type),
                           apply_model=lambda *a, **k: None)
    return SimpleNamespace(model=base, clone=lambda: None, model_options={}, load_device="cpu")


def test_a_tempomaster_shaped_wan_model_gives_its_config():
    config = native_config(_native_patcher())
    assert (config.dim, config.num_heads, config.num_layers, config.in_dim, config.text_dim) == (256, 2, 2, 36, 4096)
    assert config.text_len == 512  # umT5 width: prompts padded to the 512 slots the 14B was trained with


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(name="VaceWanModel"), "holds a VaceWanModel"),
    (dict(img_emb=object()), "CLIP image branch"),
    (dict(in_dim=16), "16 input channels for 16 latent channels"),
    (dict(in_dim=48, out_dim=48), "48 input channels for 48 latent channels"),
    (dict(model_type="EPS"), "predicts EPS (model type)"),
])
def test_models_that_are_not_tempomaster_shaped_are_refused_with_what_to_load(kwargs, fragment):
    with pytest.raises(InputError) as err:
        NativeWanDiT(_native_patcher(**kwargs))
    assert fragment in str(err.value) and "Load Diffusion Model" in str(err.value)


def test_a_native_model_is_told_apart_from_a_tempo_model():
    native = _native_patcher()
    ours = FakeModelPatcher(make_tiny_dit(), "cpu", "cpu")
    assert is_native_model(native) and not is_native_model(ours) and not is_native_model(ours.model)
    assert isinstance(dit_of(native), NativeWanDiT) and dit_of(ours) is ours.model


def test_devices_with_a_native_model_are_refused_before_anything_runs():
    def run(*_):
        raise AssertionError("nothing may run")

    with pytest.raises(InputError, match="devices input runs replicas"):
        _run_level(_native_patcher(), None, None, 0, None, [torch.device("cpu")], run)


def test_a_comfyui_whose_wan_model_lacks_the_rope_hook_is_refused():
    patcher = _native_patcher()
    type(patcher.model.diffusion_model).forward_orig = None
    with pytest.raises(InputError, match="no forward_orig / rope_embedder"):
        NativeWanDiT(patcher)


def test_the_tree_scheduler_prices_a_native_model_with_its_shape_and_weight_dtype():
    from nodes.plan_limits import from_model
    from nodes.scheduler_node import priced_as
    from tempomaster_core.trained_limits import TrainedLimits

    patcher = _native_patcher()
    patcher.model.get_dtype = lambda: torch.float8_e4m3fn  # Load Diffusion Model's fp8 weight dtype
    patcher.model.manual_cast_dtype = torch.bfloat16
    assert priced_as(patcher) == {"model": native_config(patcher), "dtype": "fp8_e4m3fn"}
    assert NativeWanDiT(patcher).dtype == torch.bfloat16  # computed in the manual-cast dtype
    used = from_model(patcher)  # declares no limits: the released model's, said as not declared
    assert used.limits == TrainedLimits() and not used.declared


def test_a_ksampler_only_wrapper_is_reported_once_per_model(caplog):
    patcher = _native_patcher()
    patcher.model_options["model_function_wrapper"] = lambda apply, args: apply(**args)
    with caplog.at_level("WARNING", logger="TempoMaster"):
        for _ in range(3):  # dit_of runs several times per level
            NativeWanDiT(patcher)
    assert sum("model_function_wrapper" in r.getMessage() for r in caplog.records) == 1
