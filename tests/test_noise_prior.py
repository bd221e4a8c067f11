"""The progressive noise prior over latent frames (tempomaster_core.noise_prior) and where it is used."""

import dataclasses
import math

import pytest
import torch

from tempomaster_core.config import DiTConfig
from tempomaster_core.loading import load_dit, read_config, save_dit
from tempomaster_core.noise_prior import correlate_frames, model_frame_correlation
from tempomaster_core.pipeline import run_blueprint
from tempomaster_core.plan import TreePlan
from tempomaster_core.sampling import seeded_noise
from tiny_models import make_tiny_dit
from toy_codec import ToyCodec


def iid(shape, seed):
    return torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed), dtype=torch.float32)


def test_zero_correlation_is_the_reference_draw_itself():
    noise = iid((2, 16, 5, 4, 4), 3)
    assert correlate_frames(noise, 0.0) is noise
    assert torch.equal(seeded_noise((2, 16, 5, 4, 4), 3), noise)
    assert torch.equal(seeded_noise((2, 16, 5, 4, 4), 3, 0.0), noise)


def test_correlated_noise_is_the_ar1_recursion_of_the_same_draw():
    rho = 0.8
    e = iid((1, 2, 4, 3, 3), 7)
    n = seeded_noise((1, 2, 4, 3, 3), 7, rho)
    assert torch.equal(n[:, :, 0], e[:, :, 0])
    for t in range(1, 4):  # written out by hand, frame by frame
        expected = rho * n[:, :, t - 1] + math.sqrt(1 - rho * rho) * e[:, :, t]
        assert torch.allclose(n[:, :, t], expected, atol=1e-6)


def test_marginals_stay_unit_gaussian_and_lags_decay_as_rho_to_the_k():
    rho = 0.9
    x = correlate_frames(iid((20000, 1, 6, 1, 1), 0), rho)[:, 0, :, 0, 0]  # [samples, frames]
    assert torch.allclose(x.std(0), torch.ones(6), atol=0.03)
    assert torch.allclose(x.mean(0), torch.zeros(6), atol=0.03)
    for lag in range(1, 6):
        corr = torch.corrcoef(torch.stack([x[:, 0], x[:, lag]]))[0, 1].item()
        assert corr == pytest.approx(rho ** lag, abs=0.03)


@pytest.mark.parametrize("bad", [1.0, 1.5, -0.1, float("nan"), "high"])
def test_a_correlation_outside_0_1_is_refused(bad):
    with pytest.raises(ValueError, match="noise_frame_correlation"):
        DiTConfig(noise_frame_correlation=bad)
    with pytest.raises(ValueError):
        correlate_frames(torch.zeros(1, 1, 2, 1, 1), bad)


def test_correlation_needs_a_5d_latent():
    with pytest.raises(ValueError, match=r"\[B, C, T, h, w\]"):
        seeded_noise((4, 4), 0, 0.5)


def test_the_prior_travels_with_the_checkpoint(tmp_path):
    model = make_tiny_dit(seed=0, noise_frame_correlation=0.7)
    path = save_dit(model, tmp_path / "dit.safetensors")
    assert read_config(path).noise_frame_correlation == 0.7
    assert model_frame_correlation(load_dit(path)) == 0.7
    assert model_frame_correlation(make_tiny_dit(seed=0)) == 0.0  # Wan's i.i.d. noise by default


class FirstInput(torch.nn.Module):
    """Records the noisy latent of the first call (at sigma 1 it is the initial noise)."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.config, self.first = inner, inner.config, None

    def forward(self, x, timestep, context, y, temporal_positions):
        if self.first is None:
            self.first = x.clone()
        return self.inner(x, timestep, context, y, temporal_positions)


def test_a_level_starts_from_the_models_own_prior():
    torch.set_num_threads(1)
    inner = make_tiny_dit(seed=0)
    text = torch.randn(1, 7, 24, generator=torch.Generator().manual_seed(5))
    plan = TreePlan(17, (4, 2, 1), (2, 2), height=32, width=32)
    runs = {}
    for rho in (0.0, 0.6):
        inner.config = dataclasses.replace(inner.config, noise_frame_correlation=rho)
        spy = FirstInput(inner)
        run_blueprint(spy, ToyCodec(), text, None, plan, steps=1, cfg=1.0, seed=11)
        runs[rho] = spy.first
    assert torch.equal(runs[0.0], iid((1, 16, 5, 4, 4), 11))
    assert torch.equal(runs[0.6], correlate_frames(iid((1, 16, 5, 4, 4), 11), 0.6))
