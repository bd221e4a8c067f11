"""The optional ``wan`` extra: the libraries the real umT5-XXL text encoder and Wan 2.1 VAE run on.

``pip install "tempomaster[wan]"`` (from a checkout: ``pip install ".[wan]"``) installs them; inside
ComfyUI's environment, ``pip install transformers diffusers sentencepiece ftfy`` (never ``pip install
torch``: keep the PyTorch build you have). The lower bounds are those in ``pyproject.toml``; tested with
transformers 5.24.0 and diffusers 0.42.1 on torch 2.13.0.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re

WAN_EXTRA = {
    "transformers": ("transformers", "4.46"),
    "diffusers": ("diffusers", "0.33"),
    "sentencepiece": ("sentencepiece", "0.2"),
    "ftfy": ("ftfy", "6.1"),
}
"""``{import name: (distribution name, lowest version)}`` of the ``wan`` extra (the same bounds as
``pyproject.toml``'s ``[project.optional-dependencies] wan``): transformers for ``UMT5EncoderModel`` and
the tokenizer files, diffusers for ``AutoencoderKLWan`` (added in 0.33), sentencepiece for the tokenizer
inside ComfyUI's text encoder file, ftfy for the reference's prompt clean-up."""

INSTALL_HINT = ('install the optional "wan" extra: pip install "tempomaster[wan]" (from a checkout: '
                'pip install ".[wan]"; in ComfyUI\'s environment: pip install transformers diffusers '
                'sentencepiece ftfy)')


def requirements() -> list[str]:
    """The extra as pip requirements, ``["transformers>=4.46", ...]`` (``.ci/run`` installs these)."""
    return [f"{distribution}>={lowest}" for distribution, lowest in WAN_EXTRA.values()]


class MissingExtraError(ImportError):
    """A library of the ``wan`` extra is missing or too old; the message names it and how to install it."""


def _version_tuple(text: str) -> tuple[int, ...]:
    """The leading release numbers of a version string: ``"4.46.0.dev0"`` -> ``(4, 46, 0)``."""
    match = re.match(r"\d+(?:\.\d+)*", text.strip())
    return tuple(int(part) for part in match.group(0).split(".")) if match else ()


def missing_libraries() -> list[str]:
    """``"name (reason)"`` for every library of :data:`WAN_EXTRA` that is not importable or older than its
    bound, found without importing any of them (``importlib`` metadata only); empty when all are there."""
    problems = []
    for module, (distribution, lowest) in WAN_EXTRA.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a broken install, or a module blocked in sys.modules
            found = False
        if not found:
            problems.append(f"{distribution} (not installed)")
            continue
        try:
            version = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue  # importable without metadata (a source checkout): trust it
        if _version_tuple(version) < _version_tuple(lowest):
            problems.append(f"{distribution} {version} (needs >= {lowest})")
    return problems


def require_wan_extra(purpose: str = "the real umT5-XXL text encoder and Wan 2.1 VAE") -> None:
    """Raise :class:`MissingExtraError` unless every library of the ``wan`` extra is installed and recent enough.

    Args:
        purpose: what needs them, for the message.
    """
    problems = missing_libraries()
    if problems:
        raise MissingExtraError(f"{purpose} need(s) {', '.join(problems)}: {INSTALL_HINT}")


__all__ = ["INSTALL_HINT", "MissingExtraError", "WAN_EXTRA", "missing_libraries", "require_wan_extra", "requirements"]
