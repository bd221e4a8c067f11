"""Anti-drift for long video: what later continuation segments take from the start of the video.

Multi-mask continuation (:mod:`tempomaster_core.continuation`) only knows the last seconds of the video,
so small changes of colour, size or background add up over a minute (issue 20: on the built-in model the
background tints by 0.14 RGB over 60 s). The options, chosen per long video (``anti_drift=``):

* ``"none"`` -- the paper's setting as it is: a segment knows its context and nothing else;
* ``"anchor"`` -- a **global anchor frame**: the video's first frame (from scratch: the first segment's
  frame 0; extending: the first frame of the video given) takes the blueprint slot of the oldest context
  frame (blueprint position 0) of every continuation segment. A known frame must sit at a position inside
  the segment's blueprint, and the only free slots are the context's: position 0 is the one furthest from
  the new frames, and the context frames there stay known at every refinement level (the refiners'
  anchors inside the context are the true context frames, :mod:`~tempomaster_core.continuation`), so the
  output never shows the anchor at the wrong time: only the blueprint sees it, as an appearance
  reference. Needs at least two known blueprint frames (a context of more than one blueprint interval);
* ``"colour_match"`` -- **colour matching** to the start (as ComfyUI users do between Wan extension
  rounds with a Color Match node): every continuation segment's new frames get the per-channel mean and
  standard deviation of the reference frames (Reinhard-style transfer in RGB; the reference: the first
  segment's frames from scratch, the first frames of the video given when extending), before they are
  written and before they become the next context, so a tint cannot accumulate. It also pulls back
  wanted changes of the whole picture's colour (a later prompt of another colour, a fade): use ``"none"``
  or ``"anchor"`` for those;
* ``"anchor+colour_match"`` -- both.

Frames here are ``uint8 [F, H, W, 3]`` (0..255, channels last), as the long loop holds them.
:data:`~tempomaster_core.defaults.ANTI_DRIFT` (the paper's ``"none"``) is the default of models that name none;
:data:`~tempomaster_core.defaults.BUILTIN_ANTI_DRIFT` is the built-in model's (chosen by ``benchmarks/long_video.py``
on the built-in model, see ``benchmarks/README.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch

from .defaults import ANTI_DRIFT
from .validation import InputError, require_choice

__all__ = ["ANTI_DRIFT_MODES", "DriftReference", "check_anti_drift", "colour_match", "drift_reference"]

ANTI_DRIFT_MODES = ("none", "anchor", "colour_match", "anchor+colour_match")
"""The ``anti_drift`` options (see the module doc), the paper's setting first."""

_STD_FLOOR = 1.0
"""Smallest per-channel standard deviation (8-bit levels) a transfer divides by: a flat channel (one colour
everywhere) is shifted, not stretched."""


def check_anti_drift(mode: Any, known_blueprint_frames: Optional[int] = None, name: str = "anti_drift") -> str:
    """The option ``mode`` names (one of :data:`ANTI_DRIFT_MODES`, case-insensitive).

    Args:
        mode: the option.
        known_blueprint_frames: context frames a continuation segment knows in its blueprint
            (:meth:`~tempomaster_core.continuation.SegmentPlan.known_frames` of level 0), when known.
        name: how messages call it (``--anti-drift`` on the command line).

    Raises:
        InputError: another value; an anchor with fewer than 2 known blueprint frames (it would replace the
            whole context at the blueprint: lengthen the context or choose ``"colour_match"``/``"none"``).
    """
    mode = require_choice(mode, name, ANTI_DRIFT_MODES, fold_case=True)
    if "anchor" in mode and known_blueprint_frames is not None and known_blueprint_frames < 2:
        raise InputError(f"{name} {mode!r} puts the video's first frame in the slot of the oldest context frame of "
                         f"the blueprint, but the context covers only {known_blueprint_frames} blueprint frame(s); "
                         "use a longer context (more than one blueprint frame interval) or anti_drift 'colour_match' "
                         "or 'none'")
    return mode


ANTI_DRIFT_KEY = "anti_drift"
"""Key of the option in a model's recommended settings (a bundle's ``defaults.json``)."""


def model_default(defaults: dict) -> str:
    """A model's anti-drift mode: its recommended settings' :data:`ANTI_DRIFT_KEY` (the built-in model's:
    :data:`~tempomaster_core.defaults.BUILTIN_ANTI_DRIFT`), else :data:`~tempomaster_core.defaults.ANTI_DRIFT`
    (the paper's ``"none"``).

    Raises:
        InputError: the setting is there but not one of :data:`ANTI_DRIFT_MODES`.
    """
    return check_anti_drift(defaults.get(ANTI_DRIFT_KEY, ANTI_DRIFT), name=f"defaults.json {ANTI_DRIFT_KEY}")


@dataclass(frozen=True)
class DriftReference:
    """What later segments take from the start of the video.

    Attributes:
        anchor: the anchor frame ``uint8 [H, W, 3]`` (``None`` unless the mode has ``"anchor"``).
        mean, std: per-channel mean and standard deviation ``float64 [3]`` of the reference frames in 8-bit
            levels (``None`` unless the mode has ``"colour_match"``).
    """

    anchor: Optional[torch.Tensor] = None
    mean: Optional[torch.Tensor] = None
    std: Optional[torch.Tensor] = None

    def correct(self, frames: torch.Tensor, like: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``frames`` (``uint8 [F, H, W, 3]``) colour-matched (:func:`colour_match`), or as they are.

        ``like``: frames whose statistics define the transform (default ``frames``), so that other frames of a
        segment (its last overlap frame) get the very transform its new frames got."""
        return frames if self.mean is None else colour_match(frames, self.mean, self.std, like)


def _channel_stats(frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation (float64 [3], 8-bit levels) of ``uint8 [F, H, W, 3]``."""
    pixels = frames.reshape(-1, 3).double()
    return pixels.mean(0), pixels.std(0, correction=0)


def drift_reference(mode: str, frames: torch.Tensor) -> DriftReference:
    """The :class:`DriftReference` of ``mode`` taken from the first frames of a video.

    Args:
        mode: a checked option (:func:`check_anti_drift`).
        frames: ``uint8 [F, H, W, 3]``, ``F >= 1``: the first segment's frames (from scratch) or the first
            frames of the video being extended; the anchor is ``frames[0]``, the colour statistics are over
            all of them.
    """
    anchor = frames[0].clone() if "anchor" in mode else None
    mean = std = None
    if "colour_match" in mode:
        mean, std = _channel_stats(frames)
    return DriftReference(anchor=anchor, mean=mean, std=std)


def colour_match(frames: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                 like: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``frames`` with the per-channel ``mean`` and ``std`` (8-bit levels): ``(x - m) / s * std + mean``
    over all of their pixels together (one transform for the whole segment, so no new jumps between its
    frames), rounded and clipped to 0..255.

    Args:
        frames: ``uint8 [F, H, W, 3]``.
        mean, std: ``[3]``, 8-bit levels (:class:`DriftReference`).
        like: ``uint8 [F', H, W, 3]`` whose ``m``, ``s`` define the transform (default: ``frames``').

    Returns:
        ``uint8 [F, H, W, 3]``.
    """
    own_mean, own_std = _channel_stats(frames if like is None else like)
    scale = std.double() / own_std.clamp_min(_STD_FLOOR)
    out = (frames.double() - own_mean) * scale + mean.double()
    return out.round_().clamp_(0, 255).to(torch.uint8)
