"""The caption language of the TempoMaster-Tiny domain: what a prompt can say and how it is read.

Attributes a caption names (one group of objects: count 1-3, a colour of :data:`COLOURS`, a
shape of :data:`SHAPES`, a motion of :data:`MOTIONS`), the caption grammar
``<count> <colour> <shape[s]> <motion phrase>`` (:func:`caption`, training paraphrases
:func:`random_caption`), its :data:`VOCABULARY`, the tokenizer (:func:`tokenize`) and the prompt
parser (:func:`parse_prompt`).

The run-time side of the built-in model (its text encoder, ``tempomaster_core.tiny.text_encoder``)
needs only this module; the procedural scenes that are drawn and rendered for training and
evaluation (:mod:`tempomaster_core.tiny.scenes`) import their attributes from here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.95, 0.12, 0.10),
    "green": (0.12, 0.85, 0.18),
    "blue": (0.18, 0.35, 1.00),
    "yellow": (0.98, 0.90, 0.12),
    "white": (0.95, 0.95, 0.95),
    "purple": (0.70, 0.22, 0.95),
    "orange": (1.00, 0.55, 0.05),
}
"""Object colours, RGB in [0, 1]. Chosen far apart in hue so an evaluator can
classify a pixel by its nearest colour; every background channel of a scene stays
at or below ``tempomaster_core.tiny.scenes.BACKGROUND_MAX`` so objects always stand out."""

SHAPES: tuple[str, ...] = ("ball", "square", "triangle")
"""Object shapes (singular nouns used by the captions)."""

MOTIONS: tuple[str, ...] = ("right", "left", "down", "up", "falling", "diagonal")
"""Motion kinds. ``right``/``left``/``down``/``up``: constant speed along one
axis starting in that direction, bouncing off the walls; ``falling``: dropped
under gravity, elastic bounce on the floor; ``diagonal``: constant velocity on
both axes, bouncing off all four walls."""

_PLURALS = {"ball": "balls", "square": "squares", "triangle": "triangles"}
_SYNONYMS = {"ball": ("ball", "circle"), "square": ("square", "box"), "triangle": ("triangle",)}
_SYNONYM_PLURALS = {"ball": "balls", "circle": "circles", "square": "squares", "box": "boxes",
                    "triangle": "triangles"}
_COUNT_WORDS = {1: "a", 2: "two", 3: "three"}
_MOTION_PHRASES: dict[str, tuple[str, ...]] = {
    # First entry is the canonical caption, the others are training-time paraphrases.
    "right": ("bouncing from left to right", "moving from left to right", "moving right"),
    "left": ("bouncing from right to left", "moving from right to left", "moving left"),
    "down": ("moving from top to bottom", "bouncing from top to bottom", "moving down"),
    "up": ("moving from bottom to top", "bouncing from bottom to top", "moving up"),
    "falling": ("falling", "falling down", "falling and bouncing"),
    "diagonal": ("bouncing diagonally", "moving diagonally", "bouncing around"),
}

VOCABULARY: tuple[str, ...] = tuple(sorted(set(
    "a an one two three 1 2 3 and the of on in with".split()
    + list(COLOURS)
    + [w for s in _SYNONYMS.values() for w in s]
    + list(_SYNONYM_PLURALS.values())
    + " ".join(p for ps in _MOTION_PHRASES.values() for p in ps).split()
    + "moving going bouncing falling dropping rolling sliding from to left right top bottom "
      "up down upward downward upwards downwards diagonally diagonal around across "
      "dark background black gradient plain".split()
)))
"""Every word the caption grammar and :func:`parse_prompt` know (lower case).
The tiny text encoder's vocabulary is built from it."""


@dataclass(frozen=True)
class PromptSpec:
    """What a prompt asks for; ``None`` where the prompt does not say.

    ``count`` 1–3, ``colour`` a key of :data:`COLOURS`, ``shape`` one of
    :data:`SHAPES`, ``motion`` one of :data:`MOTIONS`. ``unknown_words`` lists
    the words of the prompt outside :data:`VOCABULARY`, in order.
    """

    count: int | None = None
    colour: str | None = None
    shape: str | None = None
    motion: str | None = None
    unknown_words: tuple[str, ...] = field(default=())


def caption(spec: Any) -> str:
    """Canonical caption of a scene (a ``scenes.SceneSpec``) or a complete :class:`PromptSpec`
    (anything with ``count``, ``colour``, ``shape``, ``motion``), e.g. ``"two blue squares falling"``.

    Grammar: ``<count> <colour> <shape[s]> <motion phrase>`` with count ``a``/
    ``two``/``three``. Raises ``ValueError`` if an attribute is missing.
    """
    if None in (spec.count, spec.colour, spec.shape, spec.motion):
        raise ValueError(f"cannot caption an incomplete spec {spec!r}")
    noun = spec.shape if spec.count == 1 else _PLURALS[spec.shape]
    return f"{_COUNT_WORDS[spec.count]} {spec.colour} {noun} {_MOTION_PHRASES[spec.motion][0]}"


def random_caption(spec: Any, rng: np.random.Generator) -> str:
    """A paraphrase of :func:`caption` for training the text encoder
    (``"one red circle moving from left to right"``); all words are in
    :data:`VOCABULARY` and :func:`parse_prompt` recovers the same attributes."""
    count_word = {1: ("a", "one"), 2: ("two",), 3: ("three",)}[spec.count]
    cw = count_word[int(rng.integers(len(count_word)))]
    syn = _SYNONYMS[spec.shape]
    noun = syn[int(rng.integers(len(syn)))]
    if spec.count > 1:
        noun = _SYNONYM_PLURALS[noun]
    phrases = _MOTION_PHRASES[spec.motion]
    phrase = phrases[int(rng.integers(len(phrases)))]
    return f"{cw} {spec.colour} {noun} {phrase}"


_WORD = re.compile(r"[a-z]+|\d+")
_NUMBERS = {"a": 1, "an": 1, "one": 1, "1": 1, "two": 2, "2": 2, "three": 3, "3": 3}
_NOUNS = {"ball": ("ball", 1), "balls": ("ball", 2), "circle": ("ball", 1), "circles": ("ball", 2),
          "square": ("square", 1), "squares": ("square", 2), "box": ("square", 1),
          "boxes": ("square", 2), "triangle": ("triangle", 1), "triangles": ("triangle", 2)}


def tokenize(text: str) -> list[str]:
    """Lower-case words and digit runs of ``text`` (punctuation dropped)."""
    return _WORD.findall(text.lower())


def parse_prompt(text: str) -> PromptSpec:
    """Read count, colour, shape and motion back from a prompt.

    Tolerant of word order and paraphrases: ``"a red ball bouncing from left to
    right"`` → ``PromptSpec(1, "red", "ball", "right")``. Counts come from
    ``a/an/one/two/three/1/2/3``; a plural noun without a number gives ``count=None``.
    Motion keywords: ``fall/falling/dropping`` → falling, ``diagonal(ly)`` →
    diagonal, ``left to right`` → right, ``right to left`` → left, ``top to
    bottom``/``down(ward)`` → down, ``bottom to top``/``up(ward)`` → up, and a
    single ``left``/``right`` → that direction. Missing attributes are ``None``.
    """
    words = tokenize(text)
    count = colour = shape = motion = None
    plural = False
    for i, w in enumerate(words):
        if w in COLOURS and colour is None:
            colour = w
        elif w in _NOUNS and shape is None:
            shape, number = _NOUNS[w]
            plural = number > 1
            # The count is the nearest number word before the noun.
            for prev in reversed(words[:i]):
                if prev in _NUMBERS:
                    count = _NUMBERS[prev]
                    break
    if count is None and shape is not None and not plural:
        count = 1
    joined = " ".join(words)
    if re.search(r"\b(fall\w*|drop\w*)\b", joined):
        motion = "falling"
    elif re.search(r"\bdiagonal\w*\b|\baround\b", joined):
        motion = "diagonal"
    elif "left to right" in joined:
        motion = "right"
    elif "right to left" in joined:
        motion = "left"
    elif "top to bottom" in joined or re.search(r"\bdown(ward|wards)?\b", joined):
        motion = "down"
    elif "bottom to top" in joined or re.search(r"\bup(ward|wards)?\b", joined):
        motion = "up"
    elif re.search(r"\bright\b", joined):
        motion = "right"
    elif re.search(r"\bleft\b", joined):
        motion = "left"
    vocab = set(VOCABULARY)
    unknown = tuple(w for w in words if w not in vocab)
    return PromptSpec(count, colour, shape, motion, unknown)


__all__ = [
    "COLOURS", "SHAPES", "MOTIONS", "VOCABULARY", "PromptSpec",
    "caption", "random_caption", "tokenize", "parse_prompt",
]
