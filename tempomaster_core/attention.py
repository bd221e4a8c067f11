"""Attention backends for the DiT: torch SDPA, flash-attn, SageAttention.

All backends compute plain (non-causal, unmasked) softmax attention with
scale ``1/sqrt(head_dim)``, as the reference's ``flash_attention`` helper does
for both self-attention and text cross-attention (the padded umT5 positions
are zero embeddings, attended to, not masked).

``"sdpa"`` (``torch.nn.functional.scaled_dot_product_attention``) always works
and is the default. ``"flash_attn"`` uses FlashAttention 3
(``flash_attn_interface``) or 2 (``flash_attn``), ``"sageattention"`` uses
``sageattention.sageattn``; both need a CUDA tensor in fp16/bf16. A backend
that is not installed, or cannot take the given tensors, falls back to SDPA
and says so with one warning per backend and reason.
"""

from __future__ import annotations

import importlib
import warnings
from functools import lru_cache

import torch
import torch.nn.functional as F
from einops import rearrange

from .validation import require_choice

BACKENDS = ("sdpa", "flash_attn", "sageattention")
"""Names accepted by :func:`resolve_backend` and ``TempoMasterDiT.set_attention_backend``."""

DEFAULT_BACKEND = BACKENDS[0]
"""The backend a DiT gets unless told otherwise, and the one an uninstalled backend falls back to:
``"sdpa"`` (PyTorch's, always available)."""

_warned: set[tuple[str, str]] = set()


def _warn_once(backend: str, reason: str) -> None:
    key = (backend, reason)
    if key in _warned:
        return
    _warned.add(key)
    warnings.warn(f"attention backend {backend!r} {reason}; falling back to torch SDPA", RuntimeWarning, stacklevel=3)


@lru_cache(maxsize=None)
def _flash_attn_func():
    """The installed flash-attn ``flash_attn_func`` (FA3 preferred), or None."""
    for module_name in ("flash_attn_interface", "flash_attn"):
        try:
            module = importlib.import_module(module_name)
        except Exception:  # ImportError, or a broken CUDA build raising anything else
            continue
        func = getattr(module, "flash_attn_func", None)
        if func is not None:
            return func
    return None


@lru_cache(maxsize=None)
def _sage_attn_func():
    """``sageattention.sageattn`` if installed, else None."""
    try:
        module = importlib.import_module("sageattention")
    except Exception:
        return None
    return getattr(module, "sageattn", None)


def backend_available(name: str) -> bool:
    """Whether backend ``name`` is installed (SDPA always is).

    Raises:
        InputError: (a ``ValueError``) a name not in :data:`BACKENDS`.
    """
    require_choice(name, "attention", BACKENDS)
    if name == "flash_attn":
        return _flash_attn_func() is not None
    if name == "sageattention":
        return _sage_attn_func() is not None
    return True


def available_backends() -> list[str]:
    """Installed backends, in :data:`BACKENDS` order."""
    return [name for name in BACKENDS if backend_available(name)]


def resolve_backend(name: str) -> str:
    """Validate a requested backend and return the one that will actually run.

    Returns ``name`` when installed, else ``"sdpa"`` after one ``RuntimeWarning``.

    Raises:
        InputError: (a ``ValueError``) a name not in :data:`BACKENDS`.
    """
    if backend_available(name):
        return name
    _warn_once(name, "is not installed")
    return DEFAULT_BACKEND


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    q, k, v = (rearrange(t, "b s n d -> b n s d") for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v)
    return rearrange(out, "b n s d -> b s n d")


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, backend: str = DEFAULT_BACKEND) -> torch.Tensor:
    """Multi-head softmax attention, no mask, scale ``1/sqrt(D)``.

    Args:
        q: ``[B, Sq, N, D]`` queries (N heads of D channels).
        k, v: ``[B, Sk, N, D]`` keys and values, same dtype and device as ``q``.
        backend: one of :data:`BACKENDS`, normally already passed through
            :func:`resolve_backend`. flash-attn/SageAttention need CUDA fp16/bf16
            tensors; other inputs go to SDPA (one warning).

    Returns:
        ``[B, Sq, N, D]`` in ``q.dtype``.

    Raises:
        InputError: (a ``ValueError``) ``backend`` not in :data:`BACKENDS`.
    """
    if backend == "sdpa":
        return _sdpa(q, k, v)
    require_choice(backend, "attention", BACKENDS)
    if not q.is_cuda or q.dtype not in (torch.float16, torch.bfloat16):
        _warn_once(backend, f"needs CUDA fp16/bf16 tensors (got {q.device.type} {q.dtype})")
        return _sdpa(q, k, v)
    if backend == "flash_attn":
        func = _flash_attn_func()
        if func is None:
            _warn_once(backend, "is not installed")
            return _sdpa(q, k, v)
        out = func(q.contiguous(), k.contiguous(), v.contiguous())
        return out[0] if isinstance(out, tuple) else out  # FA3 may return (out, lse)
    func = _sage_attn_func()
    if func is None:
        _warn_once(backend, "is not installed")
        return _sdpa(q, k, v)
    return func(q.contiguous(), k.contiguous(), v.contiguous(), tensor_layout="NHD", is_causal=False)
