"""CFG and APG against direct float64 computations of the reference formulas."""

import math

import pytest
import torch

from tempomaster_core.guidance import APG, CFG, make_guidance, velocity_from_x0, x0_from_velocity


def make_inputs(seed=0, batch=3, scale=1.0):
    """z, v_cond, v_uncond [batch, 4, 3, 2, 5]; velocity magnitude differs per batch item
    (x 20, 2, 5, 1 times ``scale``) so that per-frame guidance norms fall on both sides of 27."""
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, 4, 3, 2, 5)
    scale = scale * torch.tensor([20.0, 2.0, 5.0, 1.0][:batch]).reshape(-1, 1, 1, 1, 1)
    z = torch.randn(shape, generator=gen)
    v_c = torch.randn(shape, generator=gen) * scale
    v_u = torch.randn(shape, generator=gen) * scale
    return z, v_c, v_u


def apg_direct(steps, scale, sigma_list, threshold=27.0, momentum=-0.5, eta=0.0):
    """Float64 APG written element by element from the formulas (no tensor broadcasting tricks)."""
    running = None
    outputs = []
    for (z, v_c, v_u), sigma in zip(steps, sigma_list):
        z, v_c, v_u = z.double(), v_c.double(), v_u.double()
        d_c = z - sigma * v_c
        d_u = z - sigma * v_u
        delta = d_c - d_u
        running = delta.clone() if running is None else delta + momentum * running
        r = running.clone()
        b, c, t, h, w = r.shape
        for i in range(b):
            for f in range(t):
                norm = math.sqrt(float((r[i, :, f] ** 2).sum()))
                r[i, :, f] *= min(1.0, threshold / (norm + 1e-8))
        out = torch.empty_like(z)
        for i in range(b):
            unit = d_c[i] / math.sqrt(float((d_c[i] ** 2).sum()))
            dot = float((r[i] * unit).sum())
            par = dot * unit
            orth = r[i] - par
            guided = d_c[i] + (scale - 1) * (orth + eta * par)
            out[i] = (z[i] - guided) / (sigma + 1e-8)
        outputs.append(out)
    return outputs


def test_cfg_matches_direct_formula():
    z, v_c, v_u = make_inputs()
    sigma = 0.7
    out = CFG(5.0)(v_c, v_u, z, sigma)
    zd, cd, ud = z.double(), v_c.double(), v_u.double()
    d_c, d_u = zd - sigma * cd, zd - sigma * ud
    expected = (zd - (d_u + 5.0 * (d_c - d_u))) / (sigma + 1e-8)
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-4)


def test_apg_matches_direct_float64_over_three_steps():
    steps = [make_inputs(seed=s) for s in range(3)]
    sigmas = [0.9, 0.6, 0.3]
    apg = APG(8.0)
    got = [apg(v_c, v_u, z, s) for (z, v_c, v_u), s in zip(steps, sigmas)]
    expected = apg_direct(steps, 8.0, sigmas)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g.double(), e, rtol=1e-4, atol=1e-3)


def test_apg_inputs_exercise_both_rescale_branches():
    # The guidance norms per frame straddle the threshold 27, so both branches are tested above.
    z, v_c, v_u = make_inputs(seed=0)
    delta = 0.9 * (v_u - v_c)
    norms = torch.linalg.vector_norm(delta, dim=(1, 3, 4))
    assert (norms > 27).any() and (norms < 27).any()


def test_apg_with_eta_and_no_momentum_matches_direct():
    steps = [make_inputs(seed=s, scale=0.5) for s in range(2)]
    sigmas = [0.8, 0.4]
    apg = APG(4.0, eta=0.5, momentum=0.0)
    got = [apg(v_c, v_u, z, s) for (z, v_c, v_u), s in zip(steps, sigmas)]
    expected = apg_direct(steps, 4.0, sigmas, momentum=0.0, eta=0.5)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g.double(), e, rtol=1e-4, atol=1e-3)


def test_apg_split_batches_equal_full_batch():
    """One APG per batch slice gives exactly the numbers of one APG for the whole batch."""
    steps = [make_inputs(seed=s, batch=4) for s in range(3)]
    sigmas = [0.9, 0.5, 0.2]
    full, first, second = APG(8.0), APG(8.0), APG(8.0)
    for (z, v_c, v_u), s in zip(steps, sigmas):
        whole = full(v_c, v_u, z, s)
        parts = torch.cat([first(v_c[:1], v_u[:1], z[:1], s), second(v_c[1:], v_u[1:], z[1:], s)])
        assert torch.equal(whole, parts)


def test_apg_buffer_shape_mismatch_and_reset():
    apg = APG(8.0)
    z, v_c, v_u = make_inputs(batch=2)
    first = apg(v_c, v_u, z, 0.5)
    with pytest.raises(ValueError, match="one APG object per batch"):
        apg(v_c[:1], v_u[:1], z[:1], 0.5)
    apg.reset()
    assert torch.equal(apg(v_c, v_u, z, 0.5), first)


def test_guidance_scale_one_returns_conditional_velocity():
    z, v_c, v_u = make_inputs()
    torch.testing.assert_close(CFG(1.0)(v_c, v_u, z, 0.5), v_c, rtol=1e-5, atol=1e-4)


def test_x0_velocity_round_trip_and_per_item_sigma():
    z, v_c, _ = make_inputs(batch=2)
    sigma = torch.tensor([0.25, 0.75])
    d = x0_from_velocity(z, v_c, sigma)
    torch.testing.assert_close(d[1], z[1] - 0.75 * v_c[1])
    torch.testing.assert_close(velocity_from_x0(z, d, sigma), v_c, rtol=1e-5, atol=1e-4)


def test_make_guidance():
    assert isinstance(make_guidance("APG", 8), APG)
    assert isinstance(make_guidance("cfg", 8), CFG)
    with pytest.raises(ValueError, match="guidance must be one of 'apg', 'cfg'"):
        make_guidance("pag", 8)
    with pytest.raises(ValueError, match="cfg scale"):
        make_guidance("cfg", 0)
