"""Input checks shared by every layer (core API, command line, ComfyUI nodes, web route).

One helper per kind of value, each raising :class:`InputError` (a ``ValueError``) with
one message format: ``"<name> must be <rule>, got <value>"`` plus, where it helps, what
to do. Callers check everything the input alone can show *before* any model loading or
compute, so a bad value never costs a VAE encode or a GPU transfer. This module is
torch-free (the cost model and the web route use it without importing torch).
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Optional


class InputError(ValueError):
    """A user-supplied value is invalid; the message names it, the rule and the value given."""


def require_int(value: Any, name: str, *, minimum: Optional[int] = None, maximum: Optional[int] = None) -> int:
    """``value`` as a Python int within ``[minimum, maximum]`` (either bound optional).

    Accepts ints and integer-like objects (``__index__``: numpy/torch integer scalars); refuses
    bools, floats (even ``2.0``) and strings.

    Raises:
        InputError: not an integer, or outside the bounds.
    """
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise InputError(f"{name} must be an integer, got {value!r}")
    result = int(value.__index__())
    if minimum is not None and result < minimum:
        raise InputError(f"{name} must be >= {minimum}, got {result}")
    if maximum is not None and result > maximum:
        raise InputError(f"{name} must be <= {maximum}, got {result}")
    return result


def require_number(
    value: Any,
    name: str,
    *,
    minimum: Optional[float] = None,
    maximum: Optional[float] = None,
    exclusive_minimum: bool = False,
) -> float:
    """``value`` as a finite Python float within the bounds.

    ``minimum`` is inclusive unless ``exclusive_minimum`` (e.g. ``fps > 0``); ``maximum`` is
    inclusive. NaN and infinities are always refused.

    Raises:
        InputError: not a real number, not finite, or outside the bounds.
    """
    if isinstance(value, bool) or isinstance(value, (str, bytes)):
        raise InputError(f"{name} must be a number, got {value!r}")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(result):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    if minimum is not None:
        if exclusive_minimum and result <= minimum:
            raise InputError(f"{name} must be > {minimum:g}, got {result:g}")
        if not exclusive_minimum and result < minimum:
            raise InputError(f"{name} must be >= {minimum:g}, got {result:g}")
    if maximum is not None and result > maximum:
        raise InputError(f"{name} must be <= {maximum:g}, got {result:g}")
    return result


def require_choice(value: Any, name: str, choices: Iterable[Any]) -> Any:
    """``value`` if it is one of ``choices``.

    Raises:
        InputError: any other value (the message lists the choices).
    """
    options = tuple(choices)
    if value not in options:
        listed = ", ".join(repr(c) for c in options)
        raise InputError(f"{name} must be one of {listed}, got {value!r}")
    return value


__all__ = ["InputError", "require_choice", "require_int", "require_number"]
