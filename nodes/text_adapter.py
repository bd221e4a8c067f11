"""ComfyUI ``CONDITIONING`` -> the core's text context ``[1, L, text_dim]``.

``CLIPTextEncode`` with the umT5-XXL (``wan``) CLIP returns
``[[tensor [1, max(512, n+1), 4096], {"pooled_output": None, ...}]]`` with the
padding positions zeroed. The reference TempoMaster pipeline (DiffSynth's Wan
prompter) always feeds the DiT exactly 512 token slots (zero padded, longer
prompts truncated to 512 tokens). The padding length matters numerically: the
DiT's text MLP maps zero rows to non-zero keys/values that cross-attention
sees, so we give the model what it was trained with:

- the model declares its length (``model.text_len``/``model.config.text_len``,
  e.g. a built-in tiny model): pad with zeros / truncate to it;
- otherwise a 4096-wide context (umT5-XXL) is padded/truncated to 512 like the
  reference, with a warning when a long prompt is truncated;
- otherwise (another text width, no declared length) the tensor is used as is.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import torch

from tempomaster_core.defaults import TEXT_LEN

log = logging.getLogger("TempoMaster")

#: Token slots of the umT5-XXL context in the reference (``text_len`` 512, one place: the core's defaults).
UMT5_TEXT_LEN = TEXT_LEN
#: Width of umT5-XXL embeddings.
UMT5_TEXT_DIM = 4096


def expected_text_length(model: Any) -> Optional[int]:
    """Token slots the model expects, or ``None`` when any length is fine.

    Looks for ``text_len``/``text_length`` on the model, then on ``model.config``;
    falls back to 512 for a umT5-XXL-width model (``config.text_dim == 4096``).
    """
    config = getattr(model, "config", None)
    for source in (model, config):
        for attr in ("text_len", "text_length"):
            value = getattr(source, attr, None) if source is not None else None
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    if getattr(config, "text_dim", None) == UMT5_TEXT_DIM:
        return UMT5_TEXT_LEN
    return None


def conditioning_to_context(conditioning: Any, model: Any, name: str = "positive") -> torch.Tensor:
    """Text embeddings for the DiT from a ComfyUI CONDITIONING.

    Args:
        conditioning: ``[[tensor [1, L, D], dict], ...]`` from CLIPTextEncode. Only
            the first entry and the first batch item are used (a warning says so
            when there are more).
        model: the TempoMaster DiT (for ``config.text_dim`` and the expected length).
        name: ``"positive"``/``"negative"``, used in messages.

    Returns:
        float32 ``[1, L', D]`` on the CPU; ``L'`` per the module rules (rows beyond
        the prompt are zeros).

    Raises:
        TypeError: not a CONDITIONING list.
        ValueError: ``D`` differs from the model's ``text_dim`` (wrong text encoder).
    """
    if not isinstance(conditioning, (list, tuple)) or not conditioning:
        raise TypeError(f"{name}: expected a CONDITIONING (connect a CLIP Text Encode node), got {type(conditioning).__name__}")
    first = conditioning[0]
    if not isinstance(first, (list, tuple)) or not first or not torch.is_tensor(first[0]):
        raise TypeError(f"{name}: malformed CONDITIONING entry; connect a CLIP Text Encode node")
    if len(conditioning) > 1:
        log.warning("TempoMaster: %s CONDITIONING has %d entries; only the first is used", name, len(conditioning))
    context = first[0]
    if context.ndim == 2:
        context = context.unsqueeze(0)
    if context.ndim != 3:
        raise ValueError(f"{name}: expected text embeddings [1, L, D], got shape {tuple(context.shape)}")
    if context.shape[0] > 1:
        log.warning("TempoMaster: %s CONDITIONING holds %d prompts; only the first is used", name, context.shape[0])
        context = context[:1]
    context = context.detach().to(device="cpu", dtype=torch.float32)

    text_dim = getattr(getattr(model, "config", None), "text_dim", None)
    if text_dim is not None and context.shape[-1] != text_dim:
        hint = (
            "load umt5_xxl (fp16 or fp8) with the Load CLIP node, type 'wan'"
            if text_dim == UMT5_TEXT_DIM
            else "use the text encoder that belongs to this model"
        )
        raise ValueError(
            f"{name}: the text embeddings are {context.shape[-1]} wide but the model expects "
            f"{text_dim}; {hint}"
        )

    length = expected_text_length(model)
    if length is None:
        return context
    tokens = context.shape[1]
    if tokens > length:
        log.warning(
            "TempoMaster: the %s prompt fills %d token slots; the model takes %d, so it is truncated "
            "to the first %d tokens (as the reference does)", name, tokens, length, length,
        )
        return context[:, :length].contiguous()
    if tokens < length:
        pad = torch.zeros(1, length - tokens, context.shape[-1], dtype=context.dtype)
        return torch.cat([context, pad], dim=1)
    return context
