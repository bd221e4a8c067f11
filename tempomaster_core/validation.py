"""Input checks shared by every layer (core API, command line, ComfyUI nodes, web route).

One helper per kind of value, each raising :class:`InputError` (a ``ValueError``) with
one message format: ``"<name> must be <rule>, got <value>"`` plus, where it helps, what
to do. Callers check everything the input alone can show *before* any model loading or
compute, so a bad value never costs a VAE encode or a GPU transfer. This module is
torch-free (the cost model and the web route use it without importing torch).
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any, Iterable, Optional


class InputError(ValueError):
    """A user-supplied value is invalid; the message names it, the rule and the value given."""


def is_integer(value: Any) -> bool:
    """True for ints and integer-like objects (``__index__``: numpy/torch integer scalars); False
    for bools, floats (even ``2.0``), strings and everything else. The one rule of "an integer"
    that :func:`require_int` and every other integer check use."""
    return not isinstance(value, bool) and hasattr(value, "__index__")


def require_int(value: Any, name: str, *, minimum: Optional[int] = None, maximum: Optional[int] = None,
                error: type = InputError) -> int:
    """``value`` as a Python int within ``[minimum, maximum]`` (either bound optional).

    Accepts what :func:`is_integer` accepts; refuses bools, floats (even ``2.0``) and strings.

    Raises:
        error: (default :class:`InputError`; another ``ValueError`` class where the caller
            documents one, such as ``PlanError``) not an integer, or outside the bounds.
    """
    if not is_integer(value):
        raise error(f"{name} must be an integer, got {value!r}")
    result = int(value.__index__())
    if minimum is not None and result < minimum:
        raise error(f"{name} must be >= {minimum}, got {result}")
    if maximum is not None and result > maximum:
        raise error(f"{name} must be <= {maximum}, got {result}")
    return result


def require_number(
    value: Any,
    name: str,
    *,
    minimum: Optional[float] = None,
    maximum: Optional[float] = None,
    exclusive_minimum: bool = False,
    parse_text: bool = False,
    error: type = InputError,
) -> float:
    """``value`` as a finite Python float within the bounds.

    ``minimum`` is inclusive unless ``exclusive_minimum`` (e.g. ``fps > 0``); ``maximum`` is
    inclusive. NaN and infinities are always refused, and so are bools. Text such as ``"5.0"`` is
    refused unless ``parse_text`` (values read from a widget or JSON, as ``float()`` reads them).

    Raises:
        error: (default :class:`InputError`; a ``ValueError`` subclass such as ``PlanError``)
            not a real number, not finite, or outside the bounds.
    """
    if isinstance(value, bool) or (isinstance(value, (str, bytes)) and not parse_text):
        raise error(f"{name} must be a number, got {value!r}")
    try:
        result = float(value)
    except (TypeError, ValueError, OverflowError):
        raise error(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(result):
        raise error(f"{name} must be a finite number, got {value!r}")
    if minimum is not None:
        if exclusive_minimum and result <= minimum:
            raise error(f"{name} must be > {minimum:g}, got {result:g}")
        if not exclusive_minimum and result < minimum:
            raise error(f"{name} must be >= {minimum:g}, got {result:g}")
    if maximum is not None and result > maximum:
        raise error(f"{name} must be <= {maximum:g}, got {result:g}")
    return result


def require_whole_number(value: Any, name: str, *, error: type = InputError) -> int:
    """``value`` as a Python int where a widget or a JSON body may send a whole number in another form.

    Accepts integers (as :func:`is_integer`), floats with an integral value (``109.0``) and text of
    either (``"109"``, ``" 109 "``, ``"109.0"``); no range check (the caller's rule has the bounds).

    Raises:
        error: (default :class:`InputError`; a ``ValueError`` subclass such as a route's request
            error) a bool, non-number text, NaN/inf, or a number with a fractional part.
    """
    if is_integer(value):
        return int(value.__index__())
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    number = require_number(value, name, parse_text=True, error=error)
    if number != int(number):
        raise error(f"{name} must be a whole number, got {value!r}")
    return int(number)


def resolve_frame_index(index: int, num_frames: int, name: str, *, clip: str = "the blueprint",
                        error: type = InputError) -> int:
    """A frame index of a clip of ``num_frames`` frames as ``0 .. num_frames-1``; a negative ``index``
    counts from the end (``-1`` = the last frame), as Python sequences do.

    Args:
        index: an int (check the type first, e.g. with :func:`require_int`).
        num_frames: frames of the clip (pixel frames of the blueprint for condition frames).
        name: how the message names the index (e.g. ``"position 5"`` is written ``"position" 5``).
        clip: how the message names the clip.

    Raises:
        error: (default :class:`InputError`; e.g. ``IndexError`` where the caller documents it)
            ``index`` outside ``[-num_frames, num_frames)``; the message gives the valid range.
    """
    if not -num_frames <= index < num_frames:
        raise error(f"{name} {index} is outside {clip}'s {num_frames} frames "
                    f"(valid: 0..{num_frames - 1}, or -1..-{num_frames} from the end)")
    return index % num_frames


def require_choice(value: Any, name: str, choices: Iterable[Any], *, fold_case: bool = False,
                   error: type = InputError) -> Any:
    """The entry of ``choices`` that ``value`` names.

    With ``fold_case``, text is compared in lower case (``"APG"`` names ``"apg"``) and the
    matching choice is returned; otherwise ``value`` itself must be one of ``choices``.

    Raises:
        error: (default :class:`InputError`; a ``ValueError`` subclass such as ``PlanError``) any
            other value (the message lists the choices).
    """
    options = tuple(choices)
    key = value.lower() if fold_case and isinstance(value, str) else value
    if key not in options:
        listed = ", ".join(repr(c) for c in options)
        raise error(f"{name} must be one of {listed}, got {value!r}")
    return options[options.index(key)]


# -- sampling settings: one rule per setting, shared by the core, the command line and the nodes ---------

MAX_CFG = 100.0
"""Largest guidance scale accepted anywhere (core API, command line, nodes).

The reference uses 8 and the nodes' widgets stop at 30. Far above that the guided x0
estimate ``D_uncond + cfg * (D_cond - D_uncond)`` is dominated by the difference term and
overflows or saturates (``cfg = 1e30`` gives all-NaN frames), so anything above 100 is
refused as a typo rather than silently producing garbage."""

MAX_SEED = 2**64 - 1
"""Largest noise seed (``torch.Generator.manual_seed`` takes ``[0, 2**64)``)."""

MAX_SAMPLER_STEPS = 1000
"""Most sampling steps per level the command line and the sampler nodes' widgets offer (the schedule
has 1000 training timesteps; more steps only cost time). The core itself takes any count >= 1."""


def with_fields(value: Any, overrides: dict, cls: type) -> Any:
    """A frozen dataclass ``value`` with the fields named in ``overrides`` replaced (and checked
    again by its ``__post_init__``): the "settings value plus keyword overrides" rule of the level
    runners (:func:`tempomaster_core.pipeline.level_settings`) and the cost model
    (:func:`tempomaster_core.cost.run_settings`).

    Raises:
        TypeError: ``value`` is not a ``cls`` (a frozen dataclass), or an override names no field
            of it; plus whatever the dataclass raises for a bad value.
    """
    if not isinstance(value, cls):
        raise TypeError(f"expected a {cls.__name__}, got {type(value).__name__}")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise TypeError(f"unknown {cls.__name__} field(s) {', '.join(unknown)}; the fields are {', '.join(names)}")
    return dataclasses.replace(value, **overrides) if overrides else value


def require_steps(value: Any, name: str = "steps") -> int:
    """Sampling steps: an integer >= 1.

    Raises:
        InputError: not an integer (bools and floats refused) or < 1.
    """
    return require_int(value, name, minimum=1)


def require_shift(value: Any, name: str = "shift") -> float:
    """Schedule shift: a finite number > 0.

    Raises:
        InputError: not a number, NaN/inf, or <= 0.
    """
    return require_number(value, name, minimum=0.0, exclusive_minimum=True)


def require_cfg(value: Any, name: str = "cfg", *, parse_text: bool = False, error: type = InputError) -> float:
    """Guidance scale: a finite number in ``(0, MAX_CFG]`` (1 = no guidance).

    The one rule for every place a scale is read: the samplers, the command line, and the cost
    model and planner, which price the scale a sampler would run (``parse_text`` there: plan
    requests may carry numbers as text).

    Raises:
        error: (default :class:`InputError`; a ``ValueError`` subclass such as ``CostError``) not a
            number (text too, unless ``parse_text``), NaN/inf, <= 0 or > :data:`MAX_CFG`.
    """
    result = require_number(value, name, minimum=0.0, exclusive_minimum=True, parse_text=parse_text, error=error)
    if result > MAX_CFG:
        raise error(
            f"{name} must be <= {MAX_CFG:g}, got {result:g}; the reference uses 8, and a scale this large "
            "makes the guided prediction overflow (all-NaN or saturated frames)"
        )
    return result


def require_seed(value: Any, name: str = "seed") -> int:
    """Noise seed: an integer in ``[0, MAX_SEED]``.

    Raises:
        InputError: not an integer (bools, floats and strings refused) or out of range.
    """
    return require_int(value, name, minimum=0, maximum=MAX_SEED)


def require_optional_batch(value: Any, name: str = "max_batch") -> Optional[int]:
    """Chunks per forward pass: ``None`` (all chunks at once) or an integer >= 1.

    Raises:
        InputError: anything else (0, negative, float, bool).
    """
    if value is None:
        return None
    if not is_integer(value) or int(value.__index__()) < 1:
        raise InputError(f"{name} must be None or an integer >= 1, got {value!r}")
    return int(value.__index__())


def require_flag(value: Any, name: str) -> bool:
    """An on/off setting: ``True`` or ``False`` (numpy bools too), nothing else.

    Raises:
        InputError: any other value (``1``, ``"false"``, ``None``): a truthy string must not turn an option on.
    """
    if type(value).__name__ not in ("bool", "bool_"):
        raise InputError(f"{name} must be True or False, got {value!r}")
    return bool(value)


# -- output files: one check for every command that writes a file ----------------------------------------


def require_output_path(
    path: Any,
    name: str,
    *,
    suffixes: Optional[Iterable[str]] = None,
    overwrite: bool = False,
    overwrite_flag: str = "--overwrite",
    inputs: Iterable[tuple[str, Any]] = (),
) -> Path:
    """Check that ``path`` can be written as a new output file, without touching the disk.

    Nothing is created: a missing parent directory is accepted when its nearest existing
    ancestor is a writable directory (the writer creates it later).

    Args:
        path: the output path (``str`` or ``os.PathLike``).
        name: how the message names it (e.g. ``"--out"``).
        suffixes: allowed file-name endings, lower case with the dot (e.g. ``(".mp4", ".gif")``);
            compared case-insensitively. ``None`` = any.
        overwrite: accept an existing regular file (it will be replaced).
        overwrite_flag: the flag the message tells the user to pass to replace an existing file.
        inputs: ``(label, path)`` pairs of files the same command reads (e.g.
            ``("--image", "a.png")``); the output must not be any of them.

    Returns:
        ``pathlib.Path(path)``.

    Raises:
        InputError: empty path; a directory; a suffix not in ``suffixes``; an existing file
            without ``overwrite``; something that is not a regular file; a parent that is a
            file or not writable; the same file as one of ``inputs``.
    """
    text = os.fspath(path) if isinstance(path, (str, os.PathLike)) else None
    if not text:
        raise InputError(f"{name} must be a file path, got {path!r}")
    target = Path(text)
    if target.is_dir() or text.endswith((os.sep, "/")):
        raise InputError(f"{name} must be a file path, got {text!r}, which is a directory")
    if suffixes is not None:
        allowed = tuple(s.lower() for s in suffixes)
        if target.suffix.lower() not in allowed:
            raise InputError(f"{name} must end in one of {', '.join(allowed)}, got {text!r}")
    absolute = Path(os.path.abspath(text))
    for label, other in inputs:
        if other is None:
            continue
        other_path = Path(os.fspath(other))
        try:
            same = target.exists() and other_path.exists() and os.path.samefile(target, other_path)
        except OSError:
            same = False
        if same or absolute.resolve() == Path(os.path.abspath(other_path)).resolve():
            raise InputError(f"{name} must not be an input file, got {text!r}, which is also {label}")
    if os.path.lexists(target):
        if target.exists() and not target.is_file():
            raise InputError(f"{name} must be a regular file, got {text!r}, which is a special file")
        if not overwrite:
            raise InputError(f"{name} must be a new file, got {text!r}, which exists; pass {overwrite_flag} "
                             "to replace it")
    ancestor = absolute.parent
    while not os.path.lexists(ancestor) and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InputError(f"{name} must be inside a directory, got {text!r}, but {str(ancestor)!r} is a file")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InputError(f"{name} must be in a writable directory, got {text!r}; no write permission "
                         f"for {str(ancestor)!r}")
    return target


__all__ = ["MAX_CFG", "MAX_SEED", "InputError", "is_integer", "require_cfg", "require_choice", "require_flag", "require_int",
           "require_number", "require_optional_batch", "require_output_path", "require_seed", "require_shift", "require_steps",
           "require_whole_number", "resolve_frame_index"]
