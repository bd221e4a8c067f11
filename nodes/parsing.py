"""Pure parsing of the text widgets of the TempoMaster nodes (no ComfyUI, no torch).

Each function takes what the user typed and returns plain Python values, or
raises :class:`ValueError` with a message that says what was wrong and what to
type instead. The nodes show these messages at validation time.
"""

from __future__ import annotations

import re

from tempomaster_core.validation import resolve_frame_index

#: Frame-interval presets of the TreeScheduler (label -> intervals, blueprint first).
#: The fps in the labels assume a 24 fps output; an interval ``i`` means one frame
#: every ``i`` output frames (interval 4 at 24 fps = 6 fps).
INTERVAL_PRESETS: dict[str, tuple[int, ...]] = {
    "6→12→24 fps (4,2,1)": (4, 2, 1),
    "6→24 fps (4,1)": (4, 1),
    "12→24 fps (2,1)": (2, 1),
}
CUSTOM_PRESET = "custom"
#: Preset names in widget order (the reference's default tree first, ``custom`` last).
PRESET_NAMES: tuple[str, ...] = tuple(INTERVAL_PRESETS) + (CUSTOM_PRESET,)

_SEPARATORS = re.compile(r"[,;\s]+")


def optional_input(value: object, spec: tuple) -> object:
    """The value of an optional node input declared as ``spec`` (``(type, {"default": ...})``): its
    declared default when the workflow has none (``None``: saved before the input existed, or a socket
    left unconnected), else ``value`` as given, for the core to check."""
    return spec[1]["default"] if value is None else value


def _split(text: str) -> list[str]:
    """Split on commas, semicolons and whitespace; drop empty pieces."""
    return [piece for piece in _SEPARATORS.split(str(text).strip()) if piece]


def _parse_int(piece: str, what: str) -> int:
    try:
        return int(piece)
    except ValueError:
        raise ValueError(f"{what}: {piece!r} is not a whole number") from None


def parse_int_list(text: str, what: str) -> list[int]:
    """Parse ``"4, 2, 1"`` (commas, semicolons or spaces) into ``[4, 2, 1]``.

    Raises:
        ValueError: a piece is not an integer (message names ``what``).
    """
    return [_parse_int(piece, what) for piece in _split(text)]


def parse_number_list(text: str, what: str) -> list[float]:
    """Parse ``"5, 3, 3"`` (commas, semicolons or spaces) into ``[5.0, 3.0, 3.0]``.

    Raises:
        ValueError: a piece is not a number (message names ``what``).
    """
    values = []
    for piece in _split(text):
        try:
            values.append(float(piece))
        except ValueError:
            raise ValueError(f"{what}: {piece!r} is not a number") from None
    return values


def parse_intervals(preset: str, custom: str = "") -> tuple[int, ...]:
    """Frame intervals, blueprint first, from the preset widget and the custom text.

    Args:
        preset: one of :data:`PRESET_NAMES`; ``"custom"`` reads ``custom``.
        custom: e.g. ``"8,4,2,1"`` (used only for the ``custom`` preset).

    Returns:
        e.g. ``(4, 2, 1)``. Only syntax is checked here; whether the intervals
        form a valid tree (strictly decreasing, each divisible by the next) is
        checked by :class:`tempomaster_core.plan.TreePlan`.

    Raises:
        ValueError: unknown preset, or empty / non-integer custom intervals.
    """
    if preset in INTERVAL_PRESETS:
        return INTERVAL_PRESETS[preset]
    if preset != CUSTOM_PRESET:
        raise ValueError(f"unknown frame-interval preset {preset!r}; choose one of {list(PRESET_NAMES)}")
    values = parse_int_list(custom, "custom frame intervals")
    if not values:
        raise ValueError('custom frame intervals are empty; type them blueprint first, e.g. "4,2,1" or "8,4,2,1"')
    return tuple(values)


def parse_chunks(text: str, refinement_levels: int) -> tuple[int, ...] | None:
    """Chunks per refinement level from the TreeScheduler's ``chunks`` text.

    Args:
        text: ``"auto"`` (or empty) = no fixed count: the TreeScheduler lets the
            cost-based planner choose (``tempomaster_core.autoplan``), or ``TreePlan``
            applies the reference rule ``max(4 // interval, 1)`` when it gets ``None``;
            otherwise one count per refinement level (``"2,4"`` for intervals
            (4,2,1)), or one per level including the blueprint (``"1,2,4"``; the
            blueprint's must be 1, which the plan checks). ``"auto"`` may also be
            used for single entries: ``"auto,8"``.
        refinement_levels: number of levels after the blueprint.

    Returns:
        ``None`` for all-auto, else a tuple of ints/``None`` (``None`` = auto for
        that level), passed to ``TreePlan(chunks=...)``.

    Raises:
        ValueError: a piece is neither an integer nor ``auto``, or the number of
            entries fits neither layout.
    """
    pieces = _split(text)
    if not pieces or (len(pieces) == 1 and pieces[0].lower() == "auto"):
        return None
    values: list[int | None] = []
    example = ",".join(str(2 ** (i + 1)) for i in range(max(refinement_levels, 1)))  # 2,4 for two levels
    for piece in pieces:
        try:
            values.append(None if piece.lower() == "auto" else _parse_int(piece, "chunks"))
        except ValueError as err:
            raise ValueError(f'{err}; type "auto", "reference" or one count per refinement level (e.g. '
                             f'"{example}")') from None
    if len(values) not in (refinement_levels, refinement_levels + 1):
        raise ValueError(
            f"chunks lists {len(values)} value{'' if len(values) == 1 else 's'} but the plan has {refinement_levels} "
            "refinement "
            f'level(s); type one count per refinement level (e.g. "{example}") or "auto"'
        )
    return tuple(values)


def parse_positions(text: str) -> list[int]:
    """Pixel-frame positions on the blueprint timeline, as typed (may be negative).

    ``"0"`` = first frame (image-to-video), ``"0,-1"`` = first and last frame,
    ``"0, 36, 72, 108"`` = keyframes; empty = no position.

    Raises:
        ValueError: a piece is not an integer.
    """
    return parse_int_list(text, "positions")


def resolve_positions(positions: list[int], num_frames: int) -> list[int]:
    """Turn typed positions into indices ``0..num_frames-1`` (negative count from the end).

    Args:
        positions: as returned by :func:`parse_positions`.
        num_frames: pixel frames of the blueprint.

    Raises:
        ValueError: a position outside ``-num_frames .. num_frames-1``, or two
            positions naming the same frame (e.g. ``0`` and ``-num_frames``).
    """
    resolved = []
    for pos in positions:
        index = resolve_frame_index(pos, num_frames, "position", error=ValueError)
        if index in resolved:
            raise ValueError(f"positions name frame {index} twice; give each condition frame its own position")
        resolved.append(index)
    return resolved
