"""Flow-matching schedule, Euler step and seeded noise."""

import pytest
import torch

from tempomaster_core.sampling import euler_step, flow_sigmas, next_sigmas, seeded_noise, timesteps_for


def test_sigmas_50_steps_shift_5_closed_form():
    sigmas = flow_sigmas(50, 5.0)
    assert sigmas.dtype == torch.float32 and sigmas.shape == (50,)
    s = torch.tensor([1.0 - k / 50 for k in range(50)], dtype=torch.float64)
    expected = 5.0 * s / (1.0 + 4.0 * s)
    torch.testing.assert_close(sigmas.double(), expected, rtol=0, atol=1e-6)
    assert sigmas[0].item() == 1.0
    # Hand value: step 25 has s = 0.5 -> 2.5 / 3.
    assert abs(sigmas[25].item() - 2.5 / 3.0) < 1e-6
    assert torch.all(sigmas[1:] < sigmas[:-1])


def test_sigmas_shift_1_is_linear_and_shift_3():
    torch.testing.assert_close(flow_sigmas(4, 1.0), torch.tensor([1.0, 0.75, 0.5, 0.25]))
    # shift 3 at s = 0.5 -> 1.5 / 2 = 0.75
    assert abs(flow_sigmas(2, 3.0)[1].item() - 0.75) < 1e-7


def test_next_sigmas_and_timesteps():
    sigmas = flow_sigmas(4, 1.0)
    assert next_sigmas(sigmas).tolist() == [0.75, 0.5, 0.25, 0.0]
    assert timesteps_for(sigmas).tolist() == [1000.0, 750.0, 500.0, 250.0]


def test_euler_step_hand_example():
    x = torch.tensor([1.0, -2.0])
    v = torch.tensor([2.0, 4.0])
    out = euler_step(x, v, 0.5, 0.25)  # x + v * (0.25 - 0.5)
    assert out.tolist() == [0.5, -3.0]


def test_euler_with_exact_velocity_reaches_data():
    # Straight path x = (1-s) x0 + s n has velocity (x - x0) / s; Euler on it is exact.
    gen = torch.Generator().manual_seed(3)
    x0 = torch.randn(2, 3, generator=gen, dtype=torch.float64)
    x = torch.randn(2, 3, generator=gen, dtype=torch.float64)
    sigmas = flow_sigmas(7, 5.0).double()
    for sigma, target in zip(sigmas.tolist(), next_sigmas(sigmas).tolist()):
        x = euler_step(x, (x - x0) / sigma, sigma, target)
    torch.testing.assert_close(x, x0, rtol=0, atol=1e-12)


def test_seeded_noise_is_the_documented_generator_draw():
    shape = (2, 16, 3, 4, 4)
    expected = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(42), dtype=torch.float32)
    noise = seeded_noise(shape, 42)
    assert noise.dtype == torch.float32 and noise.device.type == "cpu"
    assert torch.equal(noise, expected)
    assert torch.equal(seeded_noise(shape, 42), noise)
    assert not torch.equal(seeded_noise(shape, 43), noise)
    # Fresh generator per draw: the first chunk of a batched draw equals a batch-1 draw.
    assert torch.equal(seeded_noise((1, 16, 3, 4, 4), 42)[0], noise[0])


@pytest.mark.parametrize("steps, shift", [(0, 5.0), (2.5, 5.0), (True, 5.0), (10, 0.0), (10, float("nan"))])
def test_schedule_errors(steps, shift):
    with pytest.raises(ValueError):
        flow_sigmas(steps, shift)


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, "7"])
def test_seed_errors(seed):
    with pytest.raises(ValueError):
        seeded_noise((1, 2), seed)
