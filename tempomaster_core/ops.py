"""Layer classes the DiT is built from: the ``operations`` namespace.

:class:`~tempomaster_core.model.TempoMasterDiT` takes ``operations=`` the way ComfyUI's own
models take ``operations=comfy.ops.<...>``: its linear layers are ``operations.Linear``, the
patch embedding ``operations.Conv3d`` and the affine LayerNorm before cross-attention
``operations.LayerNorm``. The contract (:data:`REQUIRED_LAYERS`):

* each class takes ``torch.nn``'s constructor arguments and keeps torch.nn's parameter names
  (``weight``, ``bias``), so checkpoints load unchanged;
* its ``forward`` computes in the **input's dtype and device**, casting its weights to them on
  the fly. The DiT relies on this: it keeps its small layers (time embedding, head) in float32
  while their weights are stored in bf16, and it may hold a layer's weights on another device
  (block swap, ComfyUI's partial loading) or in fp8.

:data:`CastOps` (the default) satisfies it: ``torch.nn`` layers whose forward casts. So do
ComfyUI's ``comfy.ops.manual_cast`` and ``comfy.ops.scaled_fp8_ops()`` (used by the nodes inside
ComfyUI). ``comfy.ops.disable_weight_init`` and ``torch.nn`` itself cast nothing: they only work
when every weight is float32 on the compute device.

A :class:`CastLinear` may carry a ``scale_weight`` (float32 scalar parameter: the weight is
``weight.to(compute) * scale_weight``, ComfyUI's scaled fp8 layout, see
:mod:`tempomaster_core.fp8`) and ``weight_functions`` (callables ``W -> W'`` applied to the cast
weight at every forward, e.g. a LoRA delta on fp8 weights, :mod:`tempomaster_core.lora`).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

REQUIRED_LAYERS = ("Linear", "Conv3d", "LayerNorm")
"""Classes an ``operations`` namespace must provide."""


def _cast(tensor: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
    """``tensor`` on ``like``'s device in ``like``'s dtype (the same tensor when it already is).

    Host-to-GPU copies are asynchronous (they overlap compute when the source is pinned); a copy to
    the CPU is synchronous, so the CPU never reads a buffer before it is filled.
    """
    if tensor is None:
        return None
    return tensor.to(device=like.device, dtype=like.dtype, non_blocking=like.device.type == "cuda")


class _CastWeights:
    """Base (before the ``torch.nn`` layer in the bases) of layers whose forward casts ``weight``/``bias``
    to the input (see module doc): the layer's own constructor, then an empty ``scale_weight`` slot and
    ``weight_functions`` list."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.register_parameter("scale_weight", None)
        self.weight_functions: list = []

    def cast_weight_bias(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(weight, bias)`` as used for input ``x``: cast to ``x``'s dtype/device, times
        ``scale_weight`` when set, then each of ``weight_functions`` applied in order."""
        weight = _cast(self.weight, x)
        if self.scale_weight is not None:
            weight = weight * _cast(self.scale_weight, x)
        for function in self.weight_functions:
            weight = function(weight)
        return weight, _cast(self.bias, x)


class CastLinear(_CastWeights, nn.Linear):
    """``torch.nn.Linear`` computing in its input's dtype/device (weights cast per forward).

    With ``fp8_matmul`` set (:func:`tempomaster_core.fp8.enable_fp8_matmul`) and an fp8 weight
    with its scale, the product is an fp8 matmul instead (:func:`tempomaster_core.fp8.scaled_linear`:
    the input quantised per tensor, ``torch._scaled_mm``); a layer with ``weight_functions`` (a LoRA
    added per forward) keeps the cast path.
    """

    fp8_matmul = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[..., in_features]`` (any float dtype, any device) -> ``[..., out_features]`` in ``x``'s dtype."""
        if self.fp8_matmul and not self.weight_functions and self.scale_weight is not None:
            from .fp8 import scaled_linear

            return scaled_linear(x, self.weight, self.scale_weight, _cast(self.bias, x))
        weight, bias = self.cast_weight_bias(x)
        return F.linear(x, weight, bias)


class CastConv3d(_CastWeights, nn.Conv3d):
    """``torch.nn.Conv3d`` computing in its input's dtype/device (weights cast per forward)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, C_in, T, H, W]`` -> ``[B, C_out, T', H', W']`` in ``x``'s dtype."""
        weight, bias = self.cast_weight_bias(x)
        return self._conv_forward(x, weight, bias)


class CastLayerNorm(_CastWeights, nn.LayerNorm):
    """``torch.nn.LayerNorm`` computing in its input's dtype/device (affine weights cast per forward)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """LayerNorm over the trailing ``normalized_shape`` dims, in ``x``'s dtype."""
        if self.weight is None:
            return F.layer_norm(x, self.normalized_shape, None, None, self.eps)
        weight, bias = self.cast_weight_bias(x)
        return F.layer_norm(x, self.normalized_shape, weight, bias, self.eps)


CastOps = SimpleNamespace(Linear=CastLinear, Conv3d=CastConv3d, LayerNorm=CastLayerNorm)
"""The default ``operations`` of :class:`~tempomaster_core.model.TempoMasterDiT` (see module doc)."""


def check_operations(operations: Any) -> Any:
    """Return ``operations`` if it provides :data:`REQUIRED_LAYERS` as classes.

    Raises:
        TypeError: a missing or non-class entry (names it, and what the DiT needs).
    """
    missing = [name for name in REQUIRED_LAYERS if not isinstance(getattr(operations, name, None), type)]
    if missing:
        raise TypeError(
            f"operations must provide the layer classes {', '.join(REQUIRED_LAYERS)} (like torch.nn or "
            f"comfy.ops.manual_cast); {type(operations).__name__} lacks {', '.join(missing)}"
        )
    return operations


def supports_weight_scale(layer: nn.Module) -> bool:
    """True when ``layer`` has a ``scale_weight`` slot (a :class:`CastLinear`, or ComfyUI's scaled fp8 Linear)."""
    return "scale_weight" in getattr(layer, "_parameters", {})
