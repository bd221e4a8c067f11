"""Procedural video domain of the built-in TempoMaster-Tiny model.

Scenes are a few coloured shapes (balls, squares, triangles) moving on a dark
plain or gradient background, with real dynamics: constant velocity with
elastic bounces off the walls, or falling under gravity and bouncing on the
floor. Every scene is drawn from one integer seed, and any frame can be
rendered on its own (positions are closed-form functions of time), so a trainer
can take clips at frame intervals 4/2/1 from arbitrarily long videos without
simulating or storing anything.

All objects of one scene share colour, shape and motion, so a caption names
exactly one (count, colour, shape, motion) group:
``"a red ball bouncing from left to right"``, ``"two blue squares falling"``.

The attributes (colours, shapes, motions), captions and the prompt parser are
the caption language's (:mod:`tempomaster_core.tiny.captions`). This module is
for training and evaluation: the built-in model's run time never imports it.

Units: positions, sizes and velocities are in pixels of the rendered frame;
time is in frames of the 24 fps video (``FPS``); gravity is in pixels / frame².
Image coordinates: x grows to the right, y grows downwards (row index).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .captions import COLOURS, MOTIONS, SHAPES, PromptSpec, parse_prompt

FPS = 24
"""Frame rate of the procedural videos (frames per second)."""

HELD_OUT_SEED_BASE = 1_000_000_000
"""Scene seeds at or above this value are never trained on: both training scripts draw below it, validation and
``benchmarks/eval_tiny.py`` at or above it."""

BACKGROUND_MAX = 0.2
"""Upper bound of every background channel (RGB in [0, 1])."""

SPEED_RANGE = (0.15, 0.35)
"""Speed of constant-velocity motions, pixels per 24 fps frame on a 64-pixel frame (scaled with the frame).

3.6–8.4 px/s: an object crosses 15–35 px (a quarter to half of the frame) in the default 4.2 s video, and
moves 2.4–5.6 px per latent frame of the 6 fps blueprint, a fraction of one 16-px DiT token. Until
session 14 the world was 4 × faster (0.6–1.4 px/frame: about one token per blueprint latent frame), and no
DiT trained within the CPU budget related a moving object across latent frames (issue 16, model card)."""

FALL_TIME_RANGE = (3.2, 5.6)
"""Apex-to-floor time of falling objects, seconds (4 × the pre-session-14 world's, like :data:`SPEED_RANGE`)."""

SIZE_RANGE_SINGLE = (4.5, 7.5)
"""Size (ball radius; see :class:`SceneObject`) of a lone object, pixels on a 64-pixel frame."""

SIZE_RANGE_MULTI = (4.0, 6.0)
"""Size of each of several objects (smaller, so they fit in separate lanes), pixels on a 64-pixel frame."""

_SQUARE_HALF = 0.85  # half side of a square / its ``size`` (area close to the ball's)
_TRIANGLE_R = 1.4  # circumradius of a triangle / its ``size`` (area close to the ball's)


@dataclass(frozen=True)
class Background:
    """Background of a scene.

    ``kind`` is ``"plain"`` (``colour_a`` everywhere), ``"vertical"`` (linear
    gradient from ``colour_a`` at the top row to ``colour_b`` at the bottom) or
    ``"horizontal"`` (``colour_a`` at the left column to ``colour_b`` at the
    right). Colours are RGB in [0, ``BACKGROUND_MAX``].
    """

    kind: str
    colour_a: tuple[float, float, float]
    colour_b: tuple[float, float, float]


@dataclass(frozen=True)
class SceneObject:
    """One moving object.

    ``size`` is the radius in pixels (ball radius, half the side of a square,
    1/1.4 of the circumradius of an upward-pointing
    triangle, so the three shapes have similar areas). ``x0, y0`` is the centre at
    frame 0 (pixels). ``vx, vy`` are velocities in pixels per 24 fps frame
    (before wall bounces). For ``motion == "falling"``, ``y0`` is the apex of
    the bounce, ``gravity`` (px/frame²) the acceleration and ``phase`` the time
    (frames) already fallen from the apex at frame 0; ``vy`` is unused.
    """

    shape: str
    colour: str
    size: float
    motion: str
    x0: float
    y0: float
    vx: float
    vy: float
    gravity: float = 0.0
    phase: float = 0.0


@dataclass(frozen=True)
class SceneSpec:
    """A complete scene: everything :func:`render` needs, drawn from ``seed``.

    All objects share ``colour``, ``shape`` and ``motion`` (one caption group);
    ``count == len(objects)`` (1–3). ``height`` and ``width`` are the frame
    size in pixels.
    """

    seed: int
    height: int
    width: int
    background: Background
    objects: tuple[SceneObject, ...]

    @property
    def count(self) -> int:
        """Number of objects (1–3)."""
        return len(self.objects)

    @property
    def colour(self) -> str:
        """Colour name shared by all objects (a key of :data:`COLOURS`)."""
        return self.objects[0].colour

    @property
    def shape(self) -> str:
        """Shape shared by all objects (one of :data:`SHAPES`)."""
        return self.objects[0].shape

    @property
    def motion(self) -> str:
        """Motion kind shared by all objects (one of :data:`MOTIONS`)."""
        return self.objects[0].motion


# --------------------------------------------------------------------------- sampling


def _check_choice(name: str, value, allowed) -> None:
    if value is not None and value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; choose one of {sorted(allowed)}")


def sample_scene(seed: int, *, count: int | None = None, colour: str | None = None,
                 shape: str | None = None, motion: str | None = None,
                 height: int = 64, width: int = 64) -> SceneSpec:
    """Draw a scene deterministically from ``seed``.

    Attributes given as arguments are fixed; the others are drawn at random
    (count uniform in 1–3, colour/shape/motion uniform over their lists).
    The same arguments always give the same scene (numpy ``default_rng(seed)``).
    Objects are spread over distinct rows (horizontal motion) or columns
    (vertical motion, falling) so that they do not overlap at the start.

    Raises ``ValueError`` for an unknown attribute value, a count outside 1–3,
    or a frame smaller than 16×16 pixels.
    """
    _check_choice("colour", colour, COLOURS)
    _check_choice("shape", shape, SHAPES)
    _check_choice("motion", motion, MOTIONS)
    if count is not None and count not in (1, 2, 3):
        raise ValueError(f"count must be 1, 2 or 3 objects, got {count!r}")
    if height < 16 or width < 16:
        raise ValueError(f"frames must be at least 16x16 pixels, got {height}x{width}")
    rng = np.random.default_rng(int(seed))
    # Draw every attribute even when it is given, so fixing one attribute does
    # not change the others for the same seed.
    drawn_count = int(rng.integers(1, 4))
    drawn_colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
    drawn_shape = SHAPES[int(rng.integers(len(SHAPES)))]
    drawn_motion = MOTIONS[int(rng.integers(len(MOTIONS)))]
    count = drawn_count if count is None else count
    colour = drawn_colour if colour is None else colour
    shape = drawn_shape if shape is None else shape
    motion = drawn_motion if motion is None else motion

    scale = min(height, width) / 64.0
    kind = ("plain", "vertical", "horizontal")[int(rng.integers(3))]
    col_a = tuple(float(c) for c in rng.uniform(0.0, BACKGROUND_MAX, 3))
    col_b = tuple(float(c) for c in rng.uniform(0.0, BACKGROUND_MAX, 3))
    background = Background(kind, col_a, col_a if kind == "plain" else col_b)

    # Sizes first: several objects are a little smaller so that they fit in
    # separate lanes (rows for horizontal motion, columns for vertical motion
    # and falling) and never overlap there.
    sizes = rng.uniform(*SIZE_RANGE_SINGLE, count) if count == 1 else rng.uniform(*SIZE_RANGE_MULTI, count)
    sizes = [float(v) * scale for v in sizes]
    bounds = [_centre_bounds(shape, v, height, width) for v in sizes]
    margin_x = max(b[0] for b in bounds)
    margin_y = max(b[2] for b in bounds)
    if count == 1:
        lanes = rng.uniform(0.0, 1.0, 1)
    else:
        lanes = (rng.permutation(3)[:count] + 0.5) / 3.0 + rng.uniform(-0.01, 0.01, count)
    lane_x = [margin_x + f * (width - 2 * margin_x) for f in lanes]
    lane_y = [margin_y + f * (height - 2 * margin_y) for f in lanes]
    objects = []
    for i in range(count):
        size = sizes[i]
        speed = float(rng.uniform(*SPEED_RANGE) * scale)
        lo_x, hi_x, lo_y, hi_y = bounds[i]
        along = float(rng.uniform(0.05, 0.5))  # start position along the motion axis (fraction)
        gravity, phase, vx, vy = 0.0, 0.0, 0.0, 0.0
        if motion in ("right", "left"):
            y0 = lane_y[i]
            x0 = lo_x + (along if motion == "right" else 1 - along) * (hi_x - lo_x)
            vx = speed if motion == "right" else -speed
        elif motion in ("down", "up"):
            x0 = lane_x[i]
            y0 = lo_y + (along if motion == "down" else 1 - along) * (hi_y - lo_y)
            vy = speed if motion == "down" else -speed
        elif motion == "falling":
            x0 = lane_x[i]
            y0 = lo_y + float(rng.uniform(0.0, 0.3)) * (hi_y - lo_y)  # apex near the top
            drop = hi_y - y0
            fall_frames = float(rng.uniform(*FALL_TIME_RANGE)) * FPS  # apex -> floor time
            gravity = 2.0 * drop / fall_frames ** 2
            phase = float(rng.uniform(0.0, 0.25)) * fall_frames
        else:  # diagonal
            x0 = float(rng.uniform(lo_x, hi_x))
            y0 = lane_y[i]
            angle = float(rng.uniform(0.2, 0.8)) * math.pi / 2
            vx = speed * math.cos(angle) * float(rng.choice([-1.0, 1.0]))
            vy = speed * math.sin(angle) * float(rng.choice([-1.0, 1.0]))
        objects.append(SceneObject(shape, colour, size, motion, float(x0), float(y0),
                                   float(vx), float(vy), float(gravity), float(phase)))
    return SceneSpec(int(seed), int(height), int(width), background, tuple(objects))


def scene_from_prompt(prompt: str | PromptSpec, seed: int, *, height: int = 64,
                      width: int = 64) -> SceneSpec:
    """A scene that matches a prompt: the attributes the prompt names are fixed,
    the others drawn from ``seed`` (see :func:`sample_scene`). Unknown words are
    ignored (they are listed in :func:`parse_prompt`'s result)."""
    spec = parse_prompt(prompt) if isinstance(prompt, str) else prompt
    return sample_scene(seed, count=spec.count, colour=spec.colour, shape=spec.shape,
                        motion=spec.motion, height=height, width=width)


# --------------------------------------------------------------------------- dynamics


def _centre_bounds(shape: str, size: float, height: int, width: int) -> tuple[float, float, float, float]:
    """Range ``(lo_x, hi_x, lo_y, hi_y)`` of the centre that keeps the whole shape
    inside the frame (walls and floor are where the shape's outline touches the edge)."""
    if shape == "ball":
        left = right = top = bottom = size
    elif shape == "square":
        left = right = top = bottom = _SQUARE_HALF * size
    else:  # triangle: apex 1.4*size above the centre, base 0.7*size below
        left = right = _TRIANGLE_R * size * math.cos(math.pi / 6)
        top, bottom = _TRIANGLE_R * size, 0.5 * _TRIANGLE_R * size
    return left, width - right, top, height - bottom


def _bounce(p: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Fold unbounded positions ``p`` into [lo, hi] by elastic reflection (a triangle wave)."""
    span = hi - lo
    if span <= 0:
        return np.full_like(p, (lo + hi) / 2)
    u = np.mod(p - lo, 2 * span)
    return lo + np.where(u > span, 2 * span - u, u)


def object_positions(spec: SceneSpec, frame_indices) -> np.ndarray:
    """Centres of every object at the given 24 fps frame indices.

    ``frame_indices``: 1-D sequence of frame numbers (int or float, any value ≥ 0
    or negative — the motion is defined for all times). Returns float64
    ``[F, N, 2]`` with ``(x, y)`` in pixels (x = column, y = row).
    Constant-velocity motion is folded into the frame by elastic reflection;
    falling is a periodic elastic bounce: height above the floor
    ``h(d) = drop - g·d²/2`` with ``d`` the time since the last apex.
    """
    t = np.asarray(frame_indices, dtype=np.float64).reshape(-1)
    out = np.zeros((t.size, len(spec.objects), 2))
    for n, ob in enumerate(spec.objects):
        lo_x, hi_x, lo_y, hi_y = _centre_bounds(ob.shape, ob.size, spec.height, spec.width)
        x = _bounce(ob.x0 + ob.vx * t, lo_x, hi_x)
        if ob.motion == "falling":
            drop = hi_y - ob.y0
            fall = math.sqrt(2.0 * drop / ob.gravity) if ob.gravity > 0 else math.inf
            tau = np.mod(t + ob.phase, 2 * fall)
            d = np.where(tau <= fall, tau, 2 * fall - tau)  # time since apex
            y = ob.y0 + 0.5 * ob.gravity * d ** 2
        else:
            y = _bounce(ob.y0 + ob.vy * t, lo_y, hi_y)
        out[:, n, 0] = x
        out[:, n, 1] = y
    return out


# --------------------------------------------------------------------------- rendering


def shape_coverage(shape: str, dx: torch.Tensor, dy: torch.Tensor, size: float) -> torch.Tensor:
    """Anti-aliased coverage in [0, 1] of a shape centred at the origin (what :func:`render_frames` draws; the
    evaluation's shape detector, ``benchmarks/shapes.py``, matches detected objects against it).

    ``shape``: one of :data:`SHAPES`; ``size``: the object's radius in pixels (:class:`SceneObject`);
    ``dx, dy``: pixel-centre offsets from the object centre, any shape (``[F, H, W]`` when rendering).
    Edges are smoothed over one pixel (coverage = clamp(0.5 - signed distance)).
    """
    if shape == "ball":
        return (0.5 - (torch.sqrt(dx * dx + dy * dy) - size)).clamp(0, 1)
    if shape == "square":
        half = size * _SQUARE_HALF
        return ((half + 0.5 - dx.abs()).clamp(0, 1) * (half + 0.5 - dy.abs()).clamp(0, 1))
    if shape == "triangle":
        # Equilateral, pointing up (y grows downwards), circumradius 1.4*size
        # (area close to the ball's):
        # the base is the half-plane dy <= inradius, the two slanted sides have
        # outward normals (+-cos 30deg, -sin 30deg); the apex is at dy = -size.
        inr = size * _TRIANGLE_R * 0.5
        c30 = math.cos(math.pi / 6)
        d = torch.maximum(dy - inr, torch.maximum(c30 * dx - 0.5 * dy - inr,
                                                  -c30 * dx - 0.5 * dy - inr))
        return (0.5 - d).clamp(0, 1)
    raise ValueError(f"unknown shape {shape!r}; choose one of {list(SHAPES)}")


def _background(spec: SceneSpec) -> torch.Tensor:
    bg = spec.background
    a = torch.tensor(bg.colour_a, dtype=torch.float32).view(3, 1, 1)
    b = torch.tensor(bg.colour_b, dtype=torch.float32).view(3, 1, 1)
    if bg.kind == "plain":
        w = torch.zeros(1, spec.height, spec.width)
    elif bg.kind == "vertical":
        w = torch.linspace(0, 1, spec.height).view(1, -1, 1).expand(1, spec.height, spec.width)
    elif bg.kind == "horizontal":
        w = torch.linspace(0, 1, spec.width).view(1, 1, -1).expand(1, spec.height, spec.width)
    else:
        raise ValueError(f"unknown background kind {bg.kind!r}")
    return a + (b - a) * w  # [3, H, W] in [0, 1]


def render_frames(spec: SceneSpec, frame_indices) -> torch.Tensor:
    """Render the scene at arbitrary 24 fps frame indices.

    ``frame_indices``: 1-D sequence of frame numbers (e.g. ``range(0, 65, 4)``
    for a 6 fps clip). Returns float32 ``[3, F, H, W]`` in [-1, 1] (RGB, CPU).
    Objects are painted in order over the background with anti-aliased edges.
    """
    pos = torch.from_numpy(object_positions(spec, frame_indices)).float()  # [F, N, 2]
    n_frames = pos.shape[0]
    img = _background(spec).unsqueeze(1).expand(3, n_frames, spec.height, spec.width).clone()
    ys = torch.arange(spec.height, dtype=torch.float32).view(1, -1, 1) + 0.5
    xs = torch.arange(spec.width, dtype=torch.float32).view(1, 1, -1) + 0.5
    for n, ob in enumerate(spec.objects):
        dx = xs - pos[:, n, 0].view(-1, 1, 1)
        dy = ys - pos[:, n, 1].view(-1, 1, 1)
        cov = shape_coverage(ob.shape, dx, dy, ob.size).unsqueeze(0)  # [1, F, H, W]
        col = torch.tensor(COLOURS[ob.colour], dtype=torch.float32).view(3, 1, 1, 1)
        img = img * (1 - cov) + col * cov
    return img * 2 - 1


def render(spec: SceneSpec, num_frames: int, start_frame: float = 0, interval: float = 1) -> torch.Tensor:
    """Render ``num_frames`` frames at 24 fps indices ``start_frame + k*interval``.

    ``interval`` 4/2/1 gives 6/12/24 fps clips of the same motion. Returns float32
    ``[3, num_frames, H, W]`` in [-1, 1]. Raises ``ValueError`` if ``num_frames < 1``
    or ``interval <= 0``.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if interval <= 0:
        raise ValueError(f"interval must be > 0 (24 fps frames between rendered frames), got {interval}")
    return render_frames(spec, [start_frame + k * interval for k in range(num_frames)])


__all__ = [
    "FPS", "BACKGROUND_MAX", "Background", "SceneObject", "SceneSpec",
    "sample_scene", "scene_from_prompt", "object_positions", "render_frames", "render", "shape_coverage",
]
