"""Bad inputs are errors, never silently wrong output: one table of (callable, bad input, error, fragment).

Core API (run_blueprint / run_refinement / generate, build_condition, images helpers, the
sampling schedule, guidance, checkpoint metadata) and the node functions (sampler nodes,
condition node, with the ComfyUI fakes). For the sampler nodes every refused input is also
checked to be refused *before* the VAE encode (a spy on the fake VAE), before ComfyUI is asked
to free memory and before the DiT is moved (a spy on ``model.to``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from comfy_fakes import FakeWanVAE, conditioning, install_fake_comfy
from nodes.condition_node import SIZE_FROM_IMAGE, SIZE_PLAN, make_condition
from nodes.sampler_nodes import BlueprintSampler, FrameRateRefiner, NotEnoughMemoryError
from tempomaster_core.conditioning import build_condition, normalize_condition_frames
from tempomaster_core.guidance import make_guidance
from tempomaster_core.images import area_preserving_size, check_image_batch, resize_center_crop
from tempomaster_core.loading import CheckpointError, load_dit
from tempomaster_core.pipeline import (
    LevelResult, NonFiniteError, check_level_settings, generate, run_blueprint, run_refinement,
)
from tempomaster_core.plan import TreePlan
from tempomaster_core.sampling import flow_sigmas, seeded_noise
from tempomaster_core.validation import MAX_CFG, InputError
from tiny_models import make_tiny_dit
from toy_codec import ToyCodec




# -- helpers -------------------------------------------------------------------------------


def _nan_model(value: float = float("nan"), seed: int = 0):
    """A tiny DiT with one non-finite weight (a corrupt checkpoint, or an fp16 overflow)."""
    model = make_tiny_dit(seed=seed)
    with torch.no_grad():
        model.blocks[1].ffn[0].weight[3, 5] = value
    return model


class SpyCodec(ToyCodec):
    """ToyCodec that counts encode calls and can return NaN from encode or decode."""

    def __init__(self, nan_encode: bool = False, nan_decode: bool = False):
        super().__init__()
        self.nan_encode, self.nan_decode = nan_encode, nan_decode
        self.encodes = 0

    def encode(self, video):
        self.encodes += 1
        out = super().encode(video)
        return out * float("nan") if self.nan_encode else out

    def decode(self, latents):
        out = super().decode(latents)
        if self.nan_decode:
            out = out.clone()
            out[0, 0, 0, 0, 0] = float("nan")
        return out


class SpyModel(torch.nn.Module):
    """Counts forward calls of a wrapped DiT."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.config, self.calls = inner, inner.config, 0

    def forward(self, *args):
        self.calls += 1
        return self.inner(*args)


@dataclass
class Core:
    model: Any
    plan: TreePlan
    pos: torch.Tensor
    neg: torch.Tensor
    blueprint: LevelResult


@pytest.fixture(scope="module")
def core() -> Core:
    model = make_tiny_dit(seed=0)
    plan = TreePlan(9, (4, 1), (2,), height=16, width=16)
    gen = torch.Generator().manual_seed(5)
    pos, neg = torch.randn(1, 7, 24, generator=gen), torch.randn(1, 7, 24, generator=gen)
    blueprint = run_blueprint(model, ToyCodec(), pos, neg, plan, steps=1, seed=0)
    return Core(model, plan, pos, neg, blueprint)


def _with_nan(t: torch.Tensor, value: float = float("nan")) -> torch.Tensor:
    t = t.clone()
    t.view(-1)[t.numel() // 2] = value
    return t


def _blueprint(c: Core, model=None, codec=None, pos=None, neg=None, conditions=None, **kw):
    kw.setdefault("steps", 2)
    return run_blueprint(model or c.model, codec or ToyCodec(), c.pos if pos is None else pos,
                         c.neg if neg is None else neg, c.plan, conditions=conditions, **kw)


def _refine(c: Core, previous=None, model=None, codec=None, **kw):
    kw.setdefault("steps", 2)
    return run_refinement(model or c.model, codec or ToyCodec(), previous or c.blueprint, c.pos, c.neg, **kw)


def _generate(c: Core, **kw):
    args = dict(steps=[1, 1], shifts=[5.0, 3.0], cfg=8.0, seed=0)
    args.update(kw)
    return generate(c.model, ToyCodec(), c.pos, c.neg, c.plan, **args)


def _image(value=0.5, shape=(1, 16, 16, 3), dtype=torch.float32):
    return torch.full(shape, value, dtype=dtype)


NAN, INF = float("nan"), float("inf")


# -- the table -------------------------------------------------------------------------------
# (id, callable(core, bad), bad input, expected exception class, message fragment)

CORE_ROWS = [
    # model weights / checkpoint
    ("nan-weight", lambda c, bad: _blueprint(c, model=bad()), lambda: _nan_model(), NonFiniteError,
     "parameter tensor(s) with NaN/inf"),
    ("inf-weight", lambda c, bad: _blueprint(c, model=bad()), lambda: _nan_model(INF), NonFiniteError,
     "level 0 produced NaN or infinite latents at denoising step 1"),
    ("nan-weight-refinement", lambda c, bad: _refine(c, model=bad()), lambda: _nan_model(), NonFiniteError,
     "level 1 produced NaN"),
    ("nan-weight-generate", lambda c, bad: generate(
        bad(), ToyCodec(), c.pos, c.neg, c.plan, steps=[1, 1], shifts=[5.0, 3.0], cfg=8.0),
     lambda: _nan_model(), NonFiniteError, "non-finite text embedding"),
    # text embeddings
    ("nan-positive", lambda c, bad: _blueprint(c, pos=bad), _with_nan(torch.ones(1, 7, 24)), InputError,
     "positive text embeddings must be finite"),
    ("inf-negative", lambda c, bad: _blueprint(c, neg=bad), _with_nan(torch.ones(1, 7, 24), INF), InputError,
     "negative text embeddings must be finite"),
    ("nan-positive-refine", lambda c, bad: run_refinement(c.model, ToyCodec(), c.blueprint, bad, c.neg, steps=1),
     _with_nan(torch.ones(1, 7, 24)), InputError, "text encoder"),
    ("empty-text", lambda c, bad: _blueprint(c, pos=bad), torch.zeros(1, 0, 24), InputError, "at least one token"),
    ("no-negative", lambda c, bad: run_blueprint(c.model, ToyCodec(), c.pos, bad, c.plan, steps=1, cfg=8.0),
     None, InputError, "negative text embeddings"),
    # guidance scale
    ("cfg-1e30", lambda c, bad: _blueprint(c, cfg=bad), 1e30, InputError, f"cfg must be <= {MAX_CFG:g}"),
    ("cfg-nan", lambda c, bad: _blueprint(c, cfg=bad), NAN, InputError, "cfg must be a finite number"),
    ("cfg-inf", lambda c, bad: _refine(c, cfg=bad), INF, InputError, "cfg must be a finite number"),
    ("cfg-0", lambda c, bad: _blueprint(c, cfg=bad), 0.0, InputError, "cfg must be > 0"),
    ("cfg-str", lambda c, bad: _blueprint(c, cfg=bad), "8", InputError, "cfg must be a number"),
    ("cfg-generate-level", lambda c, bad: _generate(c, cfg=bad), [8.0, 1e30], InputError, "cfg must be <= 100"),
    ("guidance", lambda c, bad: _blueprint(c, guidance=bad), "pag", InputError, "guidance must be one of 'apg', 'cfg', got 'pag'"),
    ("make-guidance", lambda c, bad: make_guidance("apg", bad), 1e30, InputError, "cfg scale must be <= 100"),
    # schedule
    ("steps-0", lambda c, bad: _blueprint(c, steps=bad), 0, InputError, "steps must be >= 1"),
    ("steps-float", lambda c, bad: _refine(c, steps=bad), 2.5, InputError, "steps must be an integer"),
    ("steps-bool", lambda c, bad: _blueprint(c, steps=bad), True, InputError, "steps must be an integer"),
    ("shift-neg", lambda c, bad: _blueprint(c, shift=bad), -1.0, InputError, "shift must be > 0"),
    ("shift-nan", lambda c, bad: _refine(c, shift=bad), NAN, InputError, "shift must be a finite number"),
    ("shift-huge", lambda c, bad: flow_sigmas(4, bad), 1e39, InputError, "non-finite float32 schedule"),
    ("shift-generate-level", lambda c, bad: _generate(c, shifts=bad), [5.0, NAN], InputError, "shift must be a finite"),
    ("sigmas-steps", lambda c, bad: flow_sigmas(bad, 5.0), -3, InputError, "steps must be >= 1"),
    # seed
    ("seed-neg", lambda c, bad: _blueprint(c, seed=bad), -1, InputError, "seed must be >= 0"),
    ("seed-float", lambda c, bad: _refine(c, seed=bad), 1.5, InputError, "seed must be an integer"),
    ("seed-str", lambda c, bad: _blueprint(c, seed=bad), "7", InputError, "seed must be an integer"),
    ("seed-big", lambda c, bad: seeded_noise((1, 2), bad), 2**64, InputError, "seed must be <="),
    ("seed-generate", lambda c, bad: _generate(c, seed=bad), -1, InputError, "seed must be >= 0"),
    ("max-batch-0", lambda c, bad: _refine(c, max_batch=bad), 0, InputError, "max_batch must be None or an integer"),
    # condition frames (core: [3, H, W] in [-1, 1])
    ("cond-nan", lambda c, bad: _blueprint(c, conditions={0: bad}), _with_nan(torch.zeros(3, 16, 16)), InputError,
     "finite"),
    ("cond-inf", lambda c, bad: _blueprint(c, conditions={0: bad}), _with_nan(torch.zeros(3, 16, 16), INF),
     InputError, "finite"),
    ("cond-uint8", lambda c, bad: _blueprint(c, conditions={0: bad}), torch.full((3, 16, 16), 200, dtype=torch.uint8),
     InputError, "x.float() / 127.5 - 1"),
    ("cond-0-255", lambda c, bad: _blueprint(c, conditions={-1: bad}), torch.full((3, 16, 16), 255.0), InputError,
     "x / 127.5 - 1"),
    ("cond-0-1-slightly-over", lambda c, bad: normalize_condition_frames({0: bad}, 9, 16, 16),
     torch.full((3, 16, 16), 1.2), InputError, "x * 2 - 1"),
    ("cond-negative", lambda c, bad: _blueprint(c, conditions={0: bad}), torch.full((3, 16, 16), -3.0), InputError,
     "expected [-1, 1]"),
    ("cond-empty", lambda c, bad: _blueprint(c, conditions={0: bad}), torch.zeros(3, 0, 0), ValueError, "[3, 16, 16]"),
    ("cond-generate", lambda c, bad: _generate(c, conditions={0: bad}), torch.full((3, 16, 16), NAN), InputError,
     "finite"),
    ("previous-nan", lambda c, bad: _refine(c, previous=bad(c)), lambda c: LevelResult(
        c.blueprint.plan, 0, _with_nan(c.blueprint.frames), c.blueprint.latents, c.blueprint.fps), InputError,
     "previous level frames must be finite"),
    # codec outputs
    ("vae-encode-nan", lambda c, bad: build_condition(bad, torch.zeros(1, 3, 5, 16, 16), torch.zeros(1, 5)),
     SpyCodec(nan_encode=True), NonFiniteError, "VAE encode"),
    ("vae-decode-nan", lambda c, bad: _blueprint(c, codec=bad, steps=1), SpyCodec(nan_decode=True), NonFiniteError,
     "VAE decode of level 0"),
    # image helpers (ComfyUI IMAGE [N, H, W, 3] in [0, 1])
    ("img-0-255-float", lambda c, bad: resize_center_crop(bad, 16, 16), _image(200.0), InputError,
     "divide it by 255"),
    ("img-negative", lambda c, bad: resize_center_crop(bad, 16, 16), _image(-0.5), InputError, "(x + 1) / 2"),
    ("img-very-negative", lambda c, bad: resize_center_crop(bad, 16, 16), _image(-7.0), InputError,
     "must be in [0, 1]"),
    ("img-huge", lambda c, bad: check_image_batch(bad), _image(1000.0), InputError, "values up to 1000"),
    ("img-inf", lambda c, bad: resize_center_crop(bad, 16, 16), _with_nan(_image(), INF), InputError,
     "must have finite values"),
    ("img-nan", lambda c, bad: check_image_batch(bad), _with_nan(_image()), InputError, "NaN or infinite"),
    ("img-0x0", lambda c, bad: resize_center_crop(bad, 16, 16), torch.zeros(1, 0, 0, 3), InputError,
     "at least 1x1 pixels"),
    ("img-no-images", lambda c, bad: check_image_batch(bad), torch.zeros(0, 16, 16, 3), InputError,
     "at least one image"),
    ("img-int32", lambda c, bad: check_image_batch(bad), torch.zeros(1, 4, 4, 3, dtype=torch.int32), InputError,
     "dtype torch.int32"),
    ("img-not-tensor", lambda c, bad: check_image_batch(bad), [[0.5]], InputError, "tensor"),
    ("img-channels-first", lambda c, bad: resize_center_crop(bad, 16, 16), torch.rand(1, 3, 16, 16), InputError,
     "IMAGE [N, H, W, 3]"),
    ("img-target", lambda c, bad: resize_center_crop(_image(), bad, 16), 0, InputError, "target size"),
    ("area-0", lambda c, bad: area_preserving_size(bad, 10, 480, 832), 0, ValueError, "positive"),
]


@pytest.mark.parametrize("name, call, bad, error, fragment", CORE_ROWS, ids=[r[0] for r in CORE_ROWS])
def test_core_bad_input(core, name, call, bad, error, fragment):
    with pytest.raises(error) as info:
        call(core, bad)
    assert fragment in str(info.value), str(info.value)


def test_core_refuses_before_any_compute(core):
    """Bad settings, text or condition frames cost neither a VAE encode nor a DiT forward."""
    cases = [
        dict(seed=-1), dict(steps=[1, 0]), dict(shifts=[5.0, -1.0]), dict(cfg=[8.0, 1e30]), dict(guidance="x"),
        dict(conditions={0: torch.full((3, 16, 16), 255.0)}), dict(positive=_with_nan(core.pos)),
    ]
    for case in cases:
        codec, model = SpyCodec(), SpyModel(core.model)
        args = dict(steps=[1, 1], shifts=[5.0, 3.0], cfg=8.0, seed=0)
        positive = case.pop("positive", core.pos)
        args.update(case)
        with pytest.raises(ValueError):
            generate(model, codec, positive, core.neg, core.plan, **args)
        assert codec.encodes == 0 and model.calls == 0, case
    for kwargs in (dict(seed=-1), dict(cfg=1e30), dict(steps=0), dict(shift=NAN), dict(max_batch=0)):
        codec, model = SpyCodec(), SpyModel(core.model)
        with pytest.raises(ValueError):
            run_refinement(model, codec, core.blueprint, core.pos, core.neg, **{"steps": 1, **kwargs})
        assert codec.encodes == 0 and model.calls == 0, kwargs


def test_nan_weights_stop_at_the_first_step(core):
    model = SpyModel(_nan_model())
    with pytest.raises(NonFiniteError, match="step 1 of 5"):
        _blueprint(core, model=model, steps=5)
    assert model.calls == 1  # one batched forward (cfg batching), then the check stops the run


def test_check_level_settings_normalizes_valid_values():
    s = check_level_settings(steps=3, shift=5, cfg=100, guidance="APG", seed=2**64 - 1, max_batch=2)
    assert (s.steps, s.shift, s.cfg, s.guidance, s.seed, s.max_batch) == (3, 5.0, 100.0, "apg", 2**64 - 1, 2)


def test_uint8_images_are_converted_with_a_warning():
    pixels = torch.randint(0, 256, (1, 16, 16, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with pytest.warns(UserWarning, match="uint8"):
        out = resize_center_crop(pixels, 16, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        expected = resize_center_crop(pixels.float() / 255.0, 16, 16)
    assert torch.equal(out, expected)


def test_rounding_noise_outside_0_1_is_clamped_not_refused():
    image = torch.rand(1, 16, 16, 3, generator=torch.Generator().manual_seed(0))
    image[0, 0, 0] = 1.0005
    image[0, 0, 1] = -0.0005
    out = resize_center_crop(image, 16, 16)
    assert out.max() <= 1 and out.min() >= -1
    assert out[0, :, 0, 0].tolist() == [1.0, 1.0, 1.0]


def test_checkpoint_metadata_eps_and_heads_are_checked(tmp_path):
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in make_tiny_dit(seed=1).state_dict().items()}
    for key, value, fragment in (("eps", "nan", "bad eps 'nan'"), ("eps", "-1e-6", "eps must be > 0"),
                                 ("eps", "inf", "bad eps"), ("num_heads", "0", "must be >= 1")):
        metadata = {"format": "pt", "num_heads": "2", "eps": "1e-06", key: value}
        path = tmp_path / f"bad_{key}_{value}.safetensors"
        save_file(state, str(path), metadata=metadata)
        with pytest.raises(CheckpointError, match="safetensors metadata") as info:
            load_dit(path, dtype=torch.float32)
        assert fragment in str(info.value)


# -- max_parallel_chunks / max_batch: what changes ------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_max_batch_gives_bit_identical_results(dtype):
    """max_batch None (all chunks at once) and 1, 2, 3, 4 chunks per forward on a 3-chunk level give
    the same latents and frames bit for bit, in float32 and bfloat16 (the DiT embeds each distinct
    timestep once, so no batch-size-dependent rounding reaches a chunk)."""
    model = make_tiny_dit(seed=0, dtype=dtype)
    gen = torch.Generator().manual_seed(5)
    pos, neg = torch.randn(1, 7, 24, generator=gen), torch.randn(1, 7, 24, generator=gen)
    plan = TreePlan(9, (4, 1), (3,), height=32, width=32)
    blueprint = run_blueprint(model, ToyCodec(), pos, neg, plan, steps=4, seed=0)
    assert plan.levels[1].num_chunks == 3
    runs = {mb: run_refinement(model, ToyCodec(), blueprint, pos, neg, steps=4, seed=0, max_batch=mb)
            for mb in (None, 1, 2, 3, 4)}
    full = runs[None]
    for mb in (1, 2, 3, 4):
        assert torch.equal(runs[mb].latents, full.latents), mb
        assert torch.equal(runs[mb].frames, full.frames), mb


# -- nodes ------------------------------------------------------------------------------------


NODE_PLAN = TreePlan(5, (4, 1), (2,), height=32, width=32)


def _texts(pos_value=None, neg_value=None):
    pos, neg = conditioning(7, 24, seed=1, tokens=4), conditioning(7, 24, seed=2, tokens=3)
    if pos_value is not None:
        pos[0][0][0, 1, 2] = pos_value
    if neg_value is not None:
        neg[0][0][0, 0, 0] = neg_value
    return pos, neg


@pytest.fixture
def node_env(monkeypatch):
    """Fake ComfyUI with a 'cuda' compute device; model.to and free_memory are spied on (nothing moves)."""
    fake = install_fake_comfy(monkeypatch)
    fake.mm.get_torch_device = lambda: torch.device("cuda")
    model = make_tiny_dit(seed=0)
    moves = []

    def to(*args, **kwargs):
        moves.append(args or kwargs)
        return model

    monkeypatch.setattr(model, "to", to)
    return SimpleNamespace(fake=fake, model=model, moves=moves)


def _blueprint_node(env, vae, pos_value=None, neg_value=None, condition=None, model=None, **kw):
    args = dict(seed=0, steps=1, shift=5.0, cfg=8.0, guidance="apg", tiled_vae=False)
    args.update(kw)
    pos, neg = _texts(pos_value, neg_value)
    return BlueprintSampler().sample(model or env.model, NODE_PLAN, pos, neg, vae, condition=condition, **args)


def _refine_node(env, vae, level, pos_value=None, neg_value=None, **kw):
    args = dict(seed=0, steps=1, shift=3.0, cfg=8.0, guidance="apg", max_parallel_chunks=0, tiled_vae=False)
    args.update(kw)
    pos, neg = _texts(pos_value, neg_value)
    return FrameRateRefiner().refine(env.model, level, pos, neg, vae, **args)


NODE_ROWS = [
    ("steps-0", dict(steps=0), InputError, "steps must be >= 1"),
    ("shift-neg", dict(shift=-1.0), InputError, "shift must be > 0"),
    ("shift-nan", dict(shift=NAN), InputError, "shift must be a finite number"),
    ("seed-neg", dict(seed=-1), InputError, "seed must be >= 0"),
    ("seed-str", dict(seed="abc"), InputError, "seed must be an integer"),
    ("seed-float", dict(seed=1.5), InputError, "seed must be an integer"),
    ("cfg-1e30", dict(cfg=1e30), InputError, "cfg must be <= 100"),
    ("cfg-nan", dict(cfg=NAN), InputError, "cfg must be a finite number"),
    ("guidance", dict(guidance="pag"), InputError, "guidance must be one of 'apg', 'cfg', got 'pag'"),
    ("nan-positive", dict(pos_value=NAN), InputError, "positive text embeddings must be finite"),
    ("inf-negative", dict(neg_value=INF), InputError, "negative text embeddings must be finite"),
]
REFINER_ROWS = NODE_ROWS + [
    ("chunks-neg", dict(max_parallel_chunks=-1), InputError, "max_parallel_chunks must be >= 0"),
    ("chunks-float", dict(max_parallel_chunks=1.5), InputError, "max_parallel_chunks must be an integer"),
]


def _assert_nothing_started(env, vae):
    assert vae.calls == [], "the VAE was used before the input was refused"
    assert env.moves == [], "the DiT was moved before the input was refused"
    assert env.fake.mm.freed == [], "ComfyUI was asked to free memory before the input was refused"


@pytest.mark.parametrize("name, kwargs, error, fragment", NODE_ROWS, ids=[r[0] for r in NODE_ROWS])
def test_blueprint_node_bad_input_refused_before_encode_and_move(node_env, name, kwargs, error, fragment):
    vae = FakeWanVAE()
    with pytest.raises(error) as info:
        _blueprint_node(node_env, vae, **kwargs)
    assert fragment in str(info.value), str(info.value)
    _assert_nothing_started(node_env, vae)


@pytest.mark.parametrize("name, kwargs, error, fragment", REFINER_ROWS, ids=[r[0] for r in REFINER_ROWS])
def test_refiner_node_bad_input_refused_before_encode_and_move(node_env, core_level, name, kwargs, error, fragment):
    vae = FakeWanVAE()
    with pytest.raises(error) as info:
        _refine_node(node_env, vae, core_level, **kwargs)
    assert fragment in str(info.value), str(info.value)
    _assert_nothing_started(node_env, vae)


@pytest.fixture(scope="module")
def core_level():
    """A blueprint LevelResult of NODE_PLAN (made with the core; the nodes refine it)."""
    gen = torch.Generator().manual_seed(1)
    pos, neg = torch.randn(1, 8, 24, generator=gen), torch.randn(1, 8, 24, generator=gen)
    return run_blueprint(make_tiny_dit(seed=0), ToyCodec(), pos, neg, NODE_PLAN, steps=1)


def test_the_spies_see_a_valid_run(node_env, core_level):
    """Control for the tables above: valid inputs do encode, free memory and move the DiT."""
    vae = FakeWanVAE()
    level, images, _ = _blueprint_node(node_env, vae)
    assert "encode" in vae.calls and node_env.moves and node_env.fake.mm.freed
    assert torch.isfinite(images).all()


def test_bad_condition_frames_refused_before_encode_and_move(node_env):
    from nodes.types import TempoCondition

    vae = FakeWanVAE()
    stray = TempoCondition({0: torch.full((3, 32, 32), NAN)}, 32, 32, 5, False)
    with pytest.raises(InputError, match="finite"):
        _blueprint_node(node_env, vae, condition=stray)
    _assert_nothing_started(node_env, vae)


def test_nan_weights_through_the_node_are_an_error(node_env, monkeypatch):
    model = _nan_model()
    monkeypatch.setattr(model, "to", lambda *a, **k: model)  # the fake 'cuda' device is the CPU
    with pytest.raises(NonFiniteError, match="level 0 produced NaN"):
        _blueprint_node(node_env, FakeWanVAE(), model=model)


def test_memory_estimate_above_free_memory_is_refused_before_encode_and_move(node_env, core_level, monkeypatch):
    node_env.fake.mm.get_free_memory = lambda dev=None, torch_free_too=False: 1024**2  # 1 MiB free
    vae = FakeWanVAE()
    with pytest.raises(NotEnoughMemoryError) as info:
        _refine_node(node_env, vae, core_level)
    message = str(info.value)
    assert "needs ~" in message and "GiB" in message and "max_parallel_chunks=1" in message
    assert "tiled_vae" in message and "TEMPOMASTER_SKIP_MEMORY_CHECK" in message
    assert vae.calls == [] and node_env.moves == []
    # with enough free memory (or the check switched off) the level runs
    monkeypatch.setenv("TEMPOMASTER_SKIP_MEMORY_CHECK", "1")
    _, images, _ = _refine_node(node_env, vae, core_level)
    assert images.shape == (20, 32, 32, 3)
    monkeypatch.delenv("TEMPOMASTER_SKIP_MEMORY_CHECK")
    node_env.fake.mm.get_free_memory = lambda dev=None, torch_free_too=False: 64 * 1024**3
    _refine_node(node_env, FakeWanVAE(), core_level)


def test_memory_check_skipped_on_cpu(monkeypatch):
    from nodes.sampler_nodes import check_device_memory, device_free_bytes

    assert device_free_bytes(torch.device("cpu")) is None
    check_device_memory(make_tiny_dit(), ToyCodec(), NODE_PLAN, 1, 8.0, None, torch.device("cpu"), needed=2**60)


CONDITION_ROWS = [
    ("0-255-float", _image(255.0, (1, 40, 56, 3)), InputError, "divide it by 255"),
    ("negative", _image(-0.25, (1, 40, 56, 3)), InputError, "(x + 1) / 2"),
    ("inf", _with_nan(_image(0.5, (1, 40, 56, 3)), INF), InputError, "finite"),
    ("nan-one-image", _with_nan(_image(0.5, (40, 56, 3))), InputError, "finite"),
    ("0x0", torch.zeros(1, 0, 0, 3), InputError, "at least 1x1"),
    ("0x0-size-from-image", torch.zeros(1, 0, 0, 3), InputError, "at least 1x1"),
    ("int64", torch.zeros(1, 8, 8, 3, dtype=torch.int64), InputError, "dtype"),
]


@pytest.mark.parametrize("name, images, error, fragment", CONDITION_ROWS, ids=[r[0] for r in CONDITION_ROWS])
def test_condition_node_bad_images(name, images, error, fragment):
    mode = SIZE_FROM_IMAGE if "size-from-image" in name else SIZE_PLAN
    with pytest.raises(error) as info:
        make_condition(NODE_PLAN, "0", mode, images)
    assert fragment in str(info.value), str(info.value)


def test_condition_node_converts_uint8_with_a_warning():
    pixels = torch.randint(0, 256, (1, 40, 56, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    with pytest.warns(UserWarning, match="uint8"):
        condition = make_condition(NODE_PLAN, "0", SIZE_PLAN, pixels)
    expected = make_condition(NODE_PLAN, "0", SIZE_PLAN, pixels.float() / 255.0)
    assert torch.equal(condition.frames[0], expected.frames[0])
    assert math.isclose(float(condition.frames[0].max()), float(expected.frames[0].max()))
