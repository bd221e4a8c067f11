"""ComfyUI ``CONDITIONING`` -> the core's text context ``[1, L, text_dim]``.

``CLIPTextEncode`` with the umT5-XXL (``wan``) CLIP returns
``[[tensor [1, max(512, n+1), 4096], {"pooled_output": None, ...}]]`` with the
padding positions zeroed. The reference TempoMaster pipeline always feeds the
DiT exactly 512 token slots (zero padded, longer prompts truncated to 512
tokens). The padding length matters numerically: the DiT's text MLP maps zero
rows to non-zero keys/values that cross-attention sees, so the model gets what
it was trained with: the length its config declares,
``model.config.text_len`` (:attr:`tempomaster_core.config.DiTConfig.text_len`:
512 for an umT5-width model, the text encoder's length for the built-in tiny
model). The context is zero-padded or truncated to it, with a warning when a
long prompt is truncated; a model that declares no length (``None``) gets the
tensor as is.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import torch

from tempomaster_core.config import UMT5_TEXT_DIM

log = logging.getLogger("TempoMaster")


def expected_text_length(model: Any) -> Optional[int]:
    """Token slots the model expects: ``model.config.text_len``, or ``None`` when any length is
    fine (a model without one)."""
    return getattr(getattr(model, "config", None), "text_len", None)


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
