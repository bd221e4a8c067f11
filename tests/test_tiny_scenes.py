"""Procedural scenes of the built-in tiny model: determinism, dynamics, colours, captions."""

import math

import numpy as np
import pytest
import torch

from tempomaster_core.tiny import captions as C
from tempomaster_core.tiny import scenes as S


def _components(mask: np.ndarray) -> int:
    """Number of 4-connected components of a boolean image (independent flood fill)."""
    seen = np.zeros_like(mask, dtype=bool)
    count = 0
    for y0, x0 in zip(*np.nonzero(mask)):
        if seen[y0, x0]:
            continue
        count += 1
        stack = [(y0, x0)]
        seen[y0, x0] = True
        while stack:
            y, x = stack.pop()
            for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                yy, xx = y + dy, x + dx
                if 0 <= yy < mask.shape[0] and 0 <= xx < mask.shape[1] and mask[yy, xx] and not seen[yy, xx]:
                    seen[yy, xx] = True
                    stack.append((yy, xx))
    return count


def _colour_mask(frame: torch.Tensor, colour: str, tol: float = 0.06) -> np.ndarray:
    """Pixels of a [3, H, W] frame in [-1, 1] within ``tol`` (per channel, [0, 1] units) of a named colour."""
    rgb = torch.tensor(C.COLOURS[colour]).view(3, 1, 1)
    return (((frame + 1) / 2 - rgb).abs().amax(0) < tol).numpy()


def test_same_seed_same_scene_and_video():
    a, b = S.sample_scene(123), S.sample_scene(123)
    assert a == b
    assert torch.equal(S.render(a, 9, start_frame=5, interval=2), S.render(b, 9, start_frame=5, interval=2))
    assert S.sample_scene(124) != a


def test_render_layout_and_range():
    spec = S.sample_scene(7, height=48, width=80)
    video = S.render(spec, 5, start_frame=3, interval=4)
    assert video.shape == (3, 5, 48, 80) and video.dtype == torch.float32
    assert float(video.min()) >= -1 and float(video.max()) <= 1


def test_any_start_equals_slice_of_long_video():
    spec = S.sample_scene(3)
    long = S.render(spec, 40)
    clip = S.render(spec, 9, start_frame=4, interval=4)  # frames 4, 8, ..., 36
    assert torch.allclose(clip, long[:, 4:37:4], atol=1e-6)


@pytest.mark.parametrize("motion", C.MOTIONS)
def test_every_motion_moves(motion):
    spec = S.sample_scene(11, motion=motion, count=1)
    video = S.render(spec, 25, interval=2)
    diff = (video[:, 1:] - video[:, :-1]).abs().mean(dim=(0, 2, 3))
    # Every step of 2 frames changes the picture (no frame where the object stops for good).
    assert float(diff.mean()) > 1e-3
    # Every object's centre travels at least 10 px over the default 100-frame video (4.2 s; the world is
    # slow so that an object moves a fraction of a DiT token per blueprint latent frame, issue 16).
    pos = S.object_positions(spec, np.arange(100))
    travelled = np.linalg.norm(np.diff(pos, axis=0), axis=-1).sum(axis=0)
    assert travelled.min() > 10


def test_constant_velocity_bounce_hand_worked():
    ob = S.SceneObject("ball", "red", 5.0, "right", x0=10.0, y0=20.0, vx=1.0, vy=0.0)
    spec = S.SceneSpec(0, 64, 64, S.Background("plain", (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)), (ob,))
    pos = S.object_positions(spec, [0, 30, 60, 150])
    # Centre stays in [5, 59]; unfolded 70 reflects at 59 to 48; 160 -> fold period 108 -> 52 -> 52... check:
    # 160 - 5 = 155 mod 108 = 47 (<= 54) -> 5 + 47 = 52.
    assert np.allclose(pos[:, 0, 0], [10, 40, 48, 52])
    assert np.allclose(pos[:, 0, 1], 20)
    # The rendered red blob is centred there (centroid of coverage within 0.2 px).
    frame = S.render_frames(spec, [60])[:, 0]
    cov = (frame[0] + 1) / 2 / C.COLOURS["red"][0]
    ys, xs = torch.meshgrid(torch.arange(64) + 0.5, torch.arange(64) + 0.5, indexing="ij")
    cx = float((cov * xs).sum() / cov.sum())
    cy = float((cov * ys).sum() / cov.sum())
    assert abs(cx - 48) < 0.2 and abs(cy - 20) < 0.2
    # Area of the ball close to pi r^2.
    assert abs(float(cov.sum()) - math.pi * 25) < 1.0


def test_falling_follows_gravity_and_bounces():
    g = 0.1
    ob = S.SceneObject("ball", "blue", 5.0, "falling", x0=30.0, y0=9.0, vx=0.0, vy=0.0, gravity=g, phase=0.0)
    spec = S.SceneSpec(0, 64, 64, S.Background("plain", (0.0,) * 3, (0.0,) * 3), (ob,))
    floor = 64 - 5.0
    fall = math.sqrt(2 * (floor - 9.0) / g)  # time from apex to floor
    t = np.array([0.0, 5.0, 12.0, fall, fall + 7.0, 2 * fall])
    y = S.object_positions(spec, t)[:, 0, 1]
    expected = [9.0, 9.0 + 0.5 * g * 25, 9.0 + 0.5 * g * 144, floor,
                9.0 + 0.5 * g * (fall - 7.0) ** 2, 9.0]
    assert np.allclose(y, expected)


def test_objects_stay_inside_frame_for_a_long_time():
    for seed in range(30):
        spec = S.sample_scene(seed)
        pos = S.object_positions(spec, np.arange(0, 2000, 7))
        for n, ob in enumerate(spec.objects):
            assert pos[:, n, 0].min() >= ob.size * 0.8 - 1e-9 and pos[:, n, 0].max() <= 64 - ob.size * 0.8 + 1e-9
            assert pos[:, n, 1].min() >= ob.size * 0.8 - 1e-9 and pos[:, n, 1].max() <= 64 - ob.size * 0.5 + 1e-9


@pytest.mark.parametrize("colour", list(C.COLOURS))
def test_named_colour_present_and_count_visible(colour):
    for seed in range(3):
        spec = S.sample_scene(seed, colour=colour)
        frame = S.render(spec, 1)[:, 0]
        mask = _colour_mask(frame, colour)
        assert mask.sum() >= 20 * spec.count
        # Objects start in separate lanes: one blob per object at frame 0.
        assert _components(mask) == spec.count
        # Background stays dark.
        assert float(((frame + 1) / 2)[:, ~mask].min()) >= 0


@pytest.mark.parametrize("motion", ["right", "left", "down", "up", "falling"])
def test_objects_in_lanes_never_touch(motion):
    # Several objects move in separate lanes (rows for horizontal motion, columns otherwise): their
    # outlines never meet, so "two squares" is two blobs in every frame, not only at frame 0.
    for seed in range(3):
        spec = S.sample_scene(seed, count=3, shape=("ball", "square", "triangle")[seed], motion=motion)
        video = S.render_frames(spec, list(range(0, 240, 16)))
        for f in range(video.shape[1]):
            assert _components(_colour_mask(video[:, f], spec.objects[0].colour)) == 3, (seed, f)


def test_background_is_dark():
    for seed in range(20):
        spec = S.sample_scene(seed)
        for c in (spec.background.colour_a, spec.background.colour_b):
            assert max(c) <= S.BACKGROUND_MAX


@pytest.mark.parametrize("seed", range(40))
def test_caption_parses_back(seed):
    spec = S.sample_scene(seed)
    text = C.caption(spec)
    parsed = C.parse_prompt(text)
    assert (parsed.count, parsed.colour, parsed.shape, parsed.motion) == (spec.count, spec.colour, spec.shape, spec.motion)
    assert parsed.unknown_words == ()
    rng = np.random.default_rng(seed)
    for _ in range(5):
        para = C.random_caption(spec, rng)
        p = C.parse_prompt(para)
        assert (p.count, p.colour, p.shape, p.motion) == (spec.count, spec.colour, spec.shape, spec.motion), para
        assert all(w in C.VOCABULARY for w in C.tokenize(para))


def test_caption_examples():
    spec = S.sample_scene(0, count=1, colour="red", shape="ball", motion="right")
    assert C.caption(spec) == "a red ball bouncing from left to right"
    spec = S.sample_scene(0, count=2, colour="blue", shape="square", motion="falling")
    assert C.caption(spec) == "two blue squares falling"


def test_parse_prompt_user_text():
    p = C.parse_prompt("Two BLUE squares, falling!")
    assert (p.count, p.colour, p.shape, p.motion) == (2, "blue", "square", "falling")
    p = C.parse_prompt("green circles moving diagonally")
    assert (p.count, p.colour, p.shape, p.motion) == (None, "green", "ball", "diagonal")
    p = C.parse_prompt("3 yellow triangles going up")
    assert (p.count, p.colour, p.shape, p.motion) == (3, "yellow", "triangle", "up")
    p = C.parse_prompt("a purple ball rolling from right to left on a shiny floor")
    assert (p.count, p.colour, p.shape, p.motion) == (1, "purple", "ball", "left")
    assert p.unknown_words == ("shiny", "floor")
    assert C.parse_prompt("hello") == C.PromptSpec(None, None, None, None, ("hello",))


def test_scene_from_prompt_matches_prompt():
    spec = S.scene_from_prompt("three orange triangles moving from top to bottom", seed=5)
    assert (spec.count, spec.colour, spec.shape, spec.motion) == (3, "orange", "triangle", "down")
    loose = S.scene_from_prompt("something white", seed=5)
    assert loose.colour == "white"


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="colour"):
        S.sample_scene(0, colour="teal")
    with pytest.raises(ValueError, match="count"):
        S.sample_scene(0, count=4)
    with pytest.raises(ValueError, match="num_frames"):
        S.render(S.sample_scene(0), 0)
    with pytest.raises(ValueError, match="incomplete"):
        C.caption(C.PromptSpec(colour="red"))
