"""Blueprint + refinement runners and generate(), on CPU with the tiny DiT and the toy codec."""

import pytest
import torch

from tempomaster_core.defaults import default_schedule
from tempomaster_core.guidance import APG
from tempomaster_core.pipeline import (LevelResult, LevelSettings, denoise, generate, level_settings, run_blueprint,
                                       run_refinement)
from tempomaster_core.validation import InputError
from tempomaster_core.plan import TreePlan
from tempomaster_core.sampling import flow_sigmas, next_sigmas
from tiny_models import make_tiny_dit, tiny_config
from toy_codec import ToyCodec

STEPS = [2, 2, 2]
SHIFTS = [5.0, 3.0, 3.0]


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Tiny tensors run far faster on one thread than with OpenMP spinning on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model():
    return make_tiny_dit(seed=0)


@pytest.fixture
def codec():
    return ToyCodec()


@pytest.fixture(scope="module")
def texts():
    gen = torch.Generator().manual_seed(5)
    return torch.randn(1, 7, 24, generator=gen), torch.randn(1, 7, 24, generator=gen)


@pytest.fixture(scope="module")
def plan():
    return TreePlan(17, (4, 2, 1), (2, 2), height=32, width=32)


class Spy(torch.nn.Module):
    """Wraps a model and records the inputs of every call."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.config = inner.config
        self.calls = []

    def forward(self, x, timestep, context, y, temporal_positions):
        self.calls.append(
            dict(x=x.clone(), timestep=timestep.clone(), context=context.clone(), y=y.clone(),
                 positions=temporal_positions.clone())
        )
        return self.inner(x, timestep, context, y, temporal_positions)


class ElementwiseModel(torch.nn.Module):
    """Batch-invariant stand-in for the DiT: each output element depends only on its own batch item."""

    def __init__(self, config, dtype=torch.float32):
        super().__init__()
        self.config = config
        self.scale = torch.nn.Parameter(torch.tensor(0.7, dtype=dtype))

    def forward(self, x, timestep, context, y, temporal_positions):
        b = x.shape[0]
        tf = self.config.mask_channels
        ctx = context.float().mean(dim=(1, 2)).expand(b).reshape(b, 1, 1, 1, 1)
        t = timestep.float().reshape(-1).expand(b).reshape(b, 1, 1, 1, 1) / 1000
        mask = y[:, :tf].float().mean(dim=1, keepdim=True)
        v = torch.tanh(x.float() * self.scale.float() + 0.3 * y[:, tf:].float() + mask) * (1 + ctx)
        return v * (1 + t) + 0.01 * temporal_positions.float().reshape(b, 1, -1, 1, 1)


def run(model, codec, texts, plan, **kwargs):
    args = dict(steps=STEPS, shifts=SHIFTS, cfg=8.0, seed=0)
    args.update(kwargs)
    return generate(model, codec, texts[0], texts[1], plan, **args)


def test_end_to_end_17_to_68_frames(model, codec, texts, plan):
    images, levels = run(model, codec, texts, plan, return_levels=True)
    assert images.shape == (68, 32, 32, 3) and images.dtype == torch.float32
    assert 0 <= images.min() and images.max() <= 1
    assert [lv.frames.shape for lv in levels] == [(3, 17, 32, 32), (3, 34, 32, 32), (3, 68, 32, 32)]
    assert [lv.fps for lv in levels] == [6.0, 12.0, 24.0]
    assert [lv.level_index for lv in levels] == [0, 1, 2] and [lv.is_last for lv in levels] == [False, False, True]
    assert [tuple(lv.latents.shape) for lv in levels] == [(1, 16, 5, 4, 4), (2, 16, 5, 4, 4), (2, 16, 10, 4, 4)]
    assert all(lv.frames.device.type == "cpu" and lv.frames.abs().max() <= 1 for lv in levels)
    assert torch.equal(images, levels[-1].to_images())
    # IMAGE layout: [F, H, W, 3] = (frames + 1) / 2 with channels last.
    frames = levels[1].frames
    torch.testing.assert_close(levels[1].to_images()[5, 7, 9], (frames[:, 5, 7, 9] + 1) / 2)
    # The final level keeps the decoded frames of each chunk: chunk 1 starts at pixel 37.
    last = codec.decode(levels[2].latents[1:2])[0, :, :31]
    assert torch.equal(levels[2].frames[:, 37:], last)


def test_same_seed_same_output_different_seed_differs(model, codec, texts, plan):
    a = run(model, codec, texts, plan, seed=3)
    b = run(model, codec, texts, plan, seed=3)
    c = run(model, codec, texts, plan, seed=4)
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-3


def test_max_batch_and_cfg_batching_match_full_batching(model, codec, texts, plan):
    full = run(model, codec, texts, plan)
    # The tiny DiT's float32 matmuls are not bit-identical across batch sizes (~1e-6).
    torch.testing.assert_close(run(model, codec, texts, plan, max_batch=1), full, rtol=0, atol=1e-4)
    torch.testing.assert_close(run(model, codec, texts, plan, cfg_batching=False), full, rtol=0, atol=1e-4)


def test_max_batch_exact_with_batch_invariant_model(codec, texts):
    """Noise split, slice-wise encoding and one APG state per slice give exactly the full-batch numbers."""
    model = ElementwiseModel(tiny_config())
    plan = TreePlan(9, (4, 1), (3,), height=16, width=32)
    blueprint = run_blueprint(model, codec, texts[0], texts[1], plan, steps=3, shift=5.0)
    full = run_refinement(model, codec, blueprint, texts[0], texts[1], steps=4, cfg=8.0)
    for max_batch in (1, 2):
        split = run_refinement(model, codec, blueprint, texts[0], texts[1], steps=4, cfg=8.0, max_batch=max_batch)
        assert torch.equal(split.latents, full.latents)
        assert torch.equal(split.frames, full.frames)
    two_pass = run_refinement(model, codec, blueprint, texts[0], texts[1], steps=4, cfg=8.0, cfg_batching=False)
    assert torch.equal(two_pass.latents, full.latents)


def test_model_inputs_noise_positions_and_timesteps(model, codec, texts, plan):
    spy = Spy(model)
    blueprint = run_blueprint(spy, codec, texts[0], texts[1], plan, steps=2, shift=5.0, cfg=8.0, seed=11)
    first = spy.calls[0]
    # Positive and negative passes as one batch of 2; noise is the documented seeded draw.
    expected_noise = torch.randn((1, 16, 5, 4, 4), generator=torch.Generator("cpu").manual_seed(11), dtype=torch.float32)
    assert first["x"].shape == (2, 16, 5, 4, 4)
    assert torch.equal(first["x"][0], expected_noise[0]) and torch.equal(first["x"][1], expected_noise[0])
    assert torch.equal(first["context"][0], texts[0][0]) and torch.equal(first["context"][1], texts[1][0])
    assert first["positions"].tolist() == [[0, 4, 8, 12, 16]] * 2
    sigmas = flow_sigmas(2, 5.0)
    assert [c["timestep"].tolist() for c in spy.calls] == [[1000.0, 1000.0], [(sigmas[1] * 1000).item()] * 2]
    assert len(spy.calls) == 2

    spy.calls.clear()
    run_refinement(spy, codec, blueprint, texts[0], texts[1], steps=2, cfg=1.0, seed=11)
    first = spy.calls[0]
    expected_noise = torch.randn((2, 16, 5, 4, 4), generator=torch.Generator("cpu").manual_seed(11), dtype=torch.float32)
    assert torch.equal(first["x"], expected_noise)
    assert first["positions"].tolist() == [[0, 2, 4, 6, 8], [10, 12, 14, 16, 18]]
    assert first["context"].shape == (1, 7, 24)  # cfg = 1: positive only
    assert len(spy.calls) == 2
    # y: packed masks of the level's anchors, then the encoded condition clips.
    level = plan.levels[1]
    masks = level.masks()  # [2, 17]; latent frame 0 channels = pixel 0, latent t channel k = pixel 4(t-1)+1+k
    y = first["y"]
    assert torch.equal(y[:, :4, 0, 0, 0], masks[:, :1].expand(2, 4))
    assert torch.equal(y[:, :4, 1:, 2, 3].transpose(1, 2).reshape(2, 16), masks[:, 1:])


def test_cfg_one_skips_negative_and_needs_none(model, codec, texts, plan):
    spy = Spy(model)
    result = run_blueprint(spy, codec, texts[0], None, plan, steps=3, cfg=1.0)
    assert len(spy.calls) == 3 and all(c["x"].shape[0] == 1 for c in spy.calls)
    assert result.frames.shape == (3, 17, 32, 32)
    with pytest.raises(ValueError, match="negative text embeddings"):
        run_blueprint(model, codec, texts[0], None, plan, steps=2, cfg=8.0)


def test_unequal_prompt_lengths_fall_back_to_two_passes(model, codec, texts, plan):
    spy = Spy(model)
    negative = torch.randn(1, 9, 24, generator=torch.Generator().manual_seed(1))
    run_blueprint(spy, codec, texts[0], negative, plan, steps=2, cfg=8.0)
    assert [tuple(c["context"].shape) for c in spy.calls] == [(1, 7, 24), (1, 9, 24)] * 2


def test_bf16_timestep_is_rounded_for_model_and_guidance(codec, texts):
    """Reference behaviour: timestep cast to the model dtype; guidance uses that rounded timestep / 1000."""
    model = ElementwiseModel(tiny_config(), dtype=torch.bfloat16)
    spy = Spy(model)
    plan = TreePlan(5, (4,), height=16, width=16)
    result = run_blueprint(spy, codec, texts[0], texts[1], plan, steps=3, shift=5.0, cfg=8.0, seed=2)
    assert spy.calls[0]["x"].dtype == torch.bfloat16 and spy.calls[0]["y"].dtype == torch.bfloat16
    sigmas, targets = flow_sigmas(3, 5.0), next_sigmas(flow_sigmas(3, 5.0))
    assert [c["timestep"][0].item() for c in spy.calls] == [
        (s * 1000).to(torch.bfloat16).item() for s in sigmas
    ]
    # Manual loop: float32 latents, bf16 model inputs, APG with the rounded sigma.
    x = torch.randn((1, 16, 2, 2, 2), generator=torch.Generator("cpu").manual_seed(2))
    y = spy.calls[0]["y"][:1]
    pos = plan.levels[0].temporal_positions
    apg, apg_unrounded, x_unrounded = APG(8.0), APG(8.0), x.clone()
    for sigma, target in zip(sigmas.tolist(), targets.tolist()):
        t = torch.tensor([sigma * 1000], dtype=torch.float32).to(torch.bfloat16)
        for state, guid, rounded in ((x, apg, True), (x_unrounded, apg_unrounded, False)):
            v_c = model(state.to(torch.bfloat16), t, texts[0].to(torch.bfloat16), y, pos)
            v_u = model(state.to(torch.bfloat16), t, texts[1].to(torch.bfloat16), y, pos)
            s = (t / 1000).float().item() if rounded else sigma
            new = state + guid(v_c, v_u, state, s) * (target - sigma)
            if rounded:
                x = new
            else:
                x_unrounded = new
    torch.testing.assert_close(result.latents, x, rtol=0, atol=1e-5)
    assert (x - x_unrounded).abs().max() > 1e-3  # the rounding is visible, so the check above is meaningful


def test_conditions_t2v_i2v_first_last(model, codec, texts, plan):
    gen = torch.Generator().manual_seed(9)
    first = torch.rand(3, 32, 32, generator=gen) * 2 - 1
    last = torch.rand(3, 32, 32, generator=gen) * 2 - 1
    outputs = {}
    for name, conditions in (("t2v", None), ("i2v", {0: first}), ("first_last", {0: first, -1: last})):
        spy = Spy(model)
        outputs[name] = run(spy, codec, texts, plan, conditions=conditions)
        assert outputs[name].shape == (68, 32, 32, 3)
        y = spy.calls[0]["y"]  # blueprint call, [2, 20, 5, 4, 4]
        packed = y[0, :4, :, 0, 0]  # [channel, latent frame]
        expected = torch.zeros(4, 5)
        if conditions:
            expected[:, 0] = 1
        if name == "first_last":
            expected[3, 4] = 1  # pixel 16 is the last of latent frame 4
        assert torch.equal(packed, expected)
        if conditions:
            torch.testing.assert_close(y[0, 4:, 0], codec.encode(first[None, :, None].expand(1, 3, 17, 32, 32))[0, :, 0])
    assert (outputs["t2v"] - outputs["i2v"]).abs().max() > 1e-3
    assert (outputs["i2v"] - outputs["first_last"]).abs().max() > 1e-3


def test_progress_callback_and_cancellation(model, codec, texts, plan):
    seen = []

    def progress(level, step, total, preview):
        seen.append((level, step, total, tuple(preview.shape)))

    run(model, codec, texts, plan, steps=[2, 3, 1], progress=progress)
    assert [s[:3] for s in seen] == [(0, 1, 2), (0, 2, 2), (1, 1, 3), (1, 2, 3), (1, 3, 3), (2, 1, 1)]
    assert [s[3] for s in seen] == [(16, 5, 4, 4)] * 5 + [(16, 10, 4, 4)]

    class Cancelled(Exception):
        pass

    def cancel(level, step, total, preview):
        if level == 1 and step == 2:
            raise Cancelled

    with pytest.raises(Cancelled):
        run(model, codec, texts, plan, progress=cancel)
    # The model is left usable: a new run gives the same result as before.
    torch.testing.assert_close(run(model, codec, texts, plan), run(make_tiny_dit(seed=0), codec, texts, plan), rtol=0, atol=0)


def test_other_codec_factors_are_read_not_hard_coded(texts):
    """A model with 8 latent channels and 2 mask channels, with a codec of temporal factor 2."""
    model = make_tiny_dit(seed=1, in_dim=18, out_dim=8)
    codec = ToyCodec(latent_channels=8, temporal_factor=2, spatial_factor=4)
    plan = TreePlan(7, (2, 1), (2,), height=16, width=16, temporal_factor=2, size_multiple=8)
    images, levels = generate(
        model, codec, texts[0], texts[1], plan, steps=[2, 2], shifts=[5.0, 3.0], cfg=[8.0, 4.0],
        guidance=["apg", "cfg"], return_levels=True,
    )
    assert images.shape == (14, 16, 16, 3)
    assert levels[1].latents.shape == (2, 8, plan.levels[1].latent_frames_per_chunk, 4, 4)


def test_level_settings_are_validated_when_made_and_default_to_the_reference():
    s = LevelSettings(steps=3, shift=5)
    assert (s.steps, s.shift, s.cfg, s.guidance, s.seed, s.max_batch, s.cfg_batching) == (3, 5.0, 8.0, "apg", 0, None,
                                                                                          True)
    assert s.guided and not LevelSettings(steps=1, shift=1.0, cfg=1).guided
    assert LevelSettings(steps=1, shift=1.0, guidance="CFG").guidance == "cfg"
    with pytest.raises(InputError, match="steps"):
        LevelSettings(steps=0, shift=5.0)
    with pytest.raises(InputError, match="max_batch"):
        LevelSettings(steps=1, shift=5.0, max_batch=0)


def test_denoise_takes_a_level_settings(model, plan):
    with pytest.raises(TypeError, match="LevelSettings"):
        denoise(model, torch.zeros(1, 8, 2, 4, 4), torch.zeros(1, 12, 2, 4, 4), torch.zeros(1, 2), None, None,
                dict(steps=1, shift=5.0))


def test_run_blueprint_has_no_max_batch(model, codec, texts, plan):
    with pytest.raises(TypeError, match="max_batch"):  # the blueprint is one chunk: nothing to batch
        run_blueprint(model, codec, texts[0], texts[1], plan, steps=1, max_batch=1)


def test_errors(model, codec, texts, plan):
    with pytest.raises(ValueError, match="latent channels"):
        run(model, ToyCodec(latent_channels=8), texts, plan)
    with pytest.raises(ValueError, match="steps has 2 entries"):
        run(model, codec, texts, plan, steps=[2, 2])
    with pytest.raises(ValueError, match="cfg has 2 entries"):
        run(model, codec, texts, plan, cfg=[8.0, 8.0])
    with pytest.raises(ValueError, match="guidance must be one of 'apg', 'cfg'"):
        run(model, codec, texts, plan, guidance="pag")
    with pytest.raises(ValueError, match="24"):
        run(model, codec, (torch.zeros(1, 7, 32), texts[1]), plan)
    with pytest.raises(ValueError, match="max_batch"):
        run(model, codec, texts, plan, max_batch=0)
    with pytest.raises(ValueError, match="temporal_factor=4"):
        run(model, codec, texts, TreePlan(17, (4, 2, 1), (2, 2), height=32, width=32, temporal_factor=2))
    with pytest.raises(ValueError, match="divisible by VAE spatial factor x patch size"):
        run(model, codec, texts, TreePlan(17, (4, 2, 1), (2, 2), height=24, width=32, size_multiple=8))
    blueprint_only = TreePlan(5, (4,), height=16, width=16)
    result = run_blueprint(model, codec, texts[0], texts[1], blueprint_only, steps=1)
    assert isinstance(result, LevelResult) and result.is_last
    with pytest.raises(ValueError, match="nothing left to refine"):
        run_refinement(model, codec, result, texts[0], texts[1], steps=1)


def test_runners_take_one_settings_value_or_its_fields(model, codec, texts, plan):
    """A LevelSettings and the same fields as keywords give the same level; keywords replace fields of
    a given value; a misspelt setting or both forms to generate() are refused before any compute."""
    settings = LevelSettings(steps=2, shift=5.0, seed=3)
    by_value = run_blueprint(model, codec, texts[0], texts[1], plan, settings)
    by_keywords = run_blueprint(model, codec, texts[0], texts[1], plan, steps=2, shift=5.0, seed=3)
    assert torch.equal(by_value.frames, by_keywords.frames)
    assert level_settings(0, settings, cfg=1.0) == LevelSettings(steps=2, shift=5.0, seed=3, cfg=1.0)
    assert level_settings(2).steps == default_schedule(3).steps[2]  # a refinement's reference default
    with pytest.raises(TypeError, match="stepz"):
        run_refinement(model, codec, by_value, texts[0], texts[1], stepz=2)
    with pytest.raises(TypeError, match="not both"):
        generate(model, codec, texts[0], texts[1], plan, [settings] * 3, steps=[1, 1, 1])
    with pytest.raises(TypeError, match="one LevelSettings per level"):
        generate(model, codec, texts[0], texts[1], plan, [settings])
