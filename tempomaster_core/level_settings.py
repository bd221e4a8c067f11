"""One sampler setting per level: the single rule every caller uses to expand steps, shift, cfg, guidance.

A tree of ``levels`` levels (blueprint first) takes its per-level settings either
as a list with exactly one entry per level, or, where a setting allows it, as one
value repeated for every level. This module is torch-free so the cost model
(:mod:`tempomaster_core.cost`) can use it too.
"""

from __future__ import annotations

from typing import Any, Sequence


def per_level(value: Any, name: str, levels: int, allow_scalar: bool = True, error: type = ValueError) -> list:
    """``value`` as a list of ``levels`` entries, blueprint first.

    Args:
        value: a list/tuple with one entry per level, or (with ``allow_scalar``) one value for all levels.
        name: the setting's name, used in the error message (e.g. ``"steps"``).
        levels: number of levels of the tree.
        allow_scalar: repeat a non-sequence ``value`` for every level; when False, a scalar is an error
            (``generate`` requires explicit per-level steps and shifts).
        error: exception class raised (a ``ValueError`` subclass such as ``CostError``).

    Raises:
        error: a list of another length, or a scalar where one value per level is required.
    """
    if isinstance(value, (list, tuple)):
        if len(value) != levels:
            raise error(f"{name} has {len(value)} entries but the plan has {levels} levels; "
                        f"give one per level{' or a single value' if allow_scalar else ''}")
        return list(value)
    if allow_scalar:
        return [value] * levels
    raise error(f"{name} must be a list with one value per level ({levels} levels), got {value!r}")


def per_level_prefix(given: Sequence, defaults: Sequence) -> list:
    """One setting per level from values that cover only the first levels (a sampler chain cut short).

    Args:
        given: values for the first levels, blueprint first (entries beyond the levels are dropped).
        defaults: one value per level (its length is the number of levels), used where ``given`` stops.

    Returns:
        a list as long as ``defaults``. Nothing is raised.
    """
    levels = len(defaults)
    return list(given[:levels]) + list(defaults[len(given):])


__all__ = ["per_level", "per_level_prefix"]
