"""fp8 weight storage for the DiT: which weights, the dtypes, per-tensor scaled quantisation.

The DiT keeps the linear weights of its blocks (self- and cross-attention ``q, k, v, o`` and
the FFN's two layers, :func:`is_fp8_weight`) in one byte each and computes in a 16-bit
dtype, casting each weight on the fly (:class:`tempomaster_core.ops.CastLinear`). Those are
98.3 % of the 14B's parameters (14.05 B of 14.29 B): the weights take 14.5 GB instead of
28.6 GB. Everything else stays in the compute dtype (bf16 by default, 0.24 B parameters):

* the time embedding and time projection (185 M parameters): they run once per forward on
  ``[B, dim]`` (no activation memory to save) in float32, and their error would enter every
  block's adaLN shift/scale/gate;
* the text embedding (47 M), patch embedding and head: the network's input and output
  layers, small, where an error is not averaged by later layers;
* biases, norms and the adaLN ``modulation`` tables (vectors, a few MB in all).

Quantisation is per tensor with a scale (ComfyUI's ``*_fp8_e4m3fn_scaled`` layout): the stored
weight is ``round_fp8(W / scale)`` with ``scale = max|W| / max_fp8`` (448 for e4m3fn, 57344
for e5m2), and the layer computes with ``fp8_weight.to(compute) * scale``. Without the scale
(a plain ``W.to(fp8)`` cast), Wan-sized weights (``|W| ~ 0.01``) fall partly into e4m3's
subnormal range (below ``2**-6``): for ``N(0, 0.013**2)`` weights the relative error of a plain
e4m3 cast is 4.4 %, of the scaled one 2.6 % (e5m2, with its wider range, gains nothing: 5.3 %
either way; ``tests/test_fp8.py`` checks the e4m3 gap).

Checkpoint keys of a scaled fp8 file (as ComfyUI writes and reads them): ``<layer>.weight``
(fp8), ``<layer>.scale_weight`` (float32 scalar) and a ``scaled_fp8`` marker tensor (empty, of
the fp8 dtype).

fp8 matmul (optional, :func:`enable_fp8_matmul`; ``--fp8-matmul`` on the command line, the loader
node's ``fp8_matmul``): the fp8-stored layers multiply in fp8 instead of casting their weight to
bf16 (:func:`scaled_linear`: the input quantised per tensor to e4m3fn with a dynamic scale, then
``torch._scaled_mm`` with both scales). It needs ``fp8_e4m3fn`` weights and a device that runs
``torch._scaled_mm``: an NVIDIA GPU with fp8 tensor cores (compute capability 8.9, Ada, or 9.0+,
Hopper and newer) or PyTorch's CPU kernel; anything else is refused before any compute
(:func:`fp8_matmul_problem`). Quantising the activations adds error on top of the weights'
(e4m3's 3 mantissa bits); its speed on this model has not been measured yet (benchmarks/).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Optional

import torch

FP8_DTYPES: dict[str, torch.dtype] = {
    "fp8_e4m3fn": torch.float8_e4m3fn,
    "fp8_e5m2": torch.float8_e5m2,
}
"""Names of the fp8 weight dtypes (node widget, converter, CLI) -> torch dtypes."""

SCALE_SUFFIX = ".scale_weight"
"""Key suffix of a linear layer's per-tensor weight scale (ComfyUI's scaled fp8 layout)."""

SCALED_FP8_MARKER = "scaled_fp8"
"""Key of the empty marker tensor a scaled fp8 checkpoint carries; its dtype is the fp8 dtype."""

INPUT_SCALE_SUFFIX = ".scale_input"
"""Key suffix of an input scale some scaled fp8 files carry (for fp8 matmuls); not used here."""

_FP8_WEIGHT = re.compile(r"blocks\.\d+\.(?:self_attn\.[qkvo]|cross_attn\.[qkvo]|ffn\.[02])\.weight")


def is_fp8_weight(name: str) -> bool:
    """True for the parameter names kept in fp8 (block linear weights, reference names, no prefix).

    >>> is_fp8_weight("blocks.3.ffn.0.weight"), is_fp8_weight("blocks.3.ffn.0.bias")
    (True, False)
    """
    return _FP8_WEIGHT.fullmatch(name) is not None


def is_fp8_dtype(dtype) -> bool:
    """True for ``torch.float8_e4m3fn`` / ``torch.float8_e5m2`` (any float8 torch dtype)."""
    return isinstance(dtype, torch.dtype) and dtype.is_floating_point and dtype.itemsize == 1


def quantize(weight: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-tensor scaled fp8 quantisation.

    Args:
        weight: any float tensor (finite).
        dtype: an fp8 dtype (:data:`FP8_DTYPES` values).

    Returns:
        ``(q, scale)``: ``q`` of ``dtype`` and ``weight``'s shape/device, ``scale`` a float32
        scalar with ``q.float() * scale ~= weight``; ``scale = max|weight| / finfo(dtype).max``
        (1 for an all-zero tensor), computed in float32.

    Raises:
        ValueError: ``dtype`` is not an fp8 dtype, or ``weight`` has NaN/inf values.
    """
    if not is_fp8_dtype(dtype):
        raise ValueError(f"quantize needs an fp8 dtype ({', '.join(FP8_DTYPES)}), got {dtype}")
    w = weight.detach().float()
    amax = w.abs().max() if w.numel() else torch.zeros((), device=w.device)
    if not torch.isfinite(amax):
        raise ValueError("cannot quantise a weight with NaN or infinite values; the checkpoint is corrupt")
    top = torch.finfo(dtype).max
    scale = torch.where(amax > 0, amax / top, torch.ones((), device=w.device)).to(torch.float32)
    q = (w / scale).clamp(-top, top).to(dtype)
    return q, scale


def dequantize(q: torch.Tensor, scale: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """``q.float() * scale`` as ``dtype`` (``scale=None``: a plain cast), computed in float32."""
    w = q.float()
    if scale is not None:
        w = w * scale.float().to(w.device)
    return w.to(dtype)


def storage_tensor(name: str, tensor: torch.Tensor, scale: torch.Tensor | None, weight_dtype: torch.dtype,
                   compute_dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One checkpoint tensor as a DiT with ``weight_dtype`` weights stores it.

    Args:
        name: reference parameter name (no prefix), e.g. ``"blocks.0.ffn.0.weight"``.
        tensor: the checkpoint's tensor (any float dtype, fp8 included).
        scale: its ``scale_weight`` when the checkpoint is scaled fp8, else ``None``.
        weight_dtype: bf16/fp16/fp32 (every tensor in it) or an fp8 dtype (see module doc).
        compute_dtype: dtype of the tensors that are not fp8 when ``weight_dtype`` is fp8.

    Returns:
        ``(value, scale)``: for an fp8-stored weight the fp8 tensor and its float32 scale (the
        file's bytes and scale kept when already in ``weight_dtype``; a plain fp8 tensor gets
        scale 1); otherwise the tensor in its storage dtype (scaled fp8 dequantised) and ``None``.
        ``tensor`` itself is returned when nothing changes.
    """
    if is_fp8_dtype(weight_dtype) and is_fp8_weight(name):
        if tensor.dtype == weight_dtype:
            one = torch.ones((), dtype=torch.float32, device=tensor.device)
            return tensor, (one if scale is None else scale.to(device=tensor.device, dtype=torch.float32))
        return quantize(dequantize(tensor, scale, torch.float32), weight_dtype)
    target = compute_dtype if is_fp8_dtype(weight_dtype) else weight_dtype
    if scale is not None or is_fp8_dtype(tensor.dtype):
        return dequantize(tensor, scale, target), None
    return tensor.to(target), None


# -- fp8 matmul ---------------------------------------------------------------------------------

FP8_MATMUL_CAPABILITY = (8, 9)
"""Lowest CUDA compute capability with fp8 tensor cores (Ada Lovelace; Hopper is 9.0)."""


@lru_cache(maxsize=None)
def _cpu_scaled_mm_problem() -> Optional[str]:
    """Why PyTorch's CPU ``torch._scaled_mm`` cannot run here, or None (tried once on 16x16)."""
    try:
        one = torch.ones((), dtype=torch.float32)
        a = torch.ones(16, 16).to(torch.float8_e4m3fn)
        torch._scaled_mm(a, a.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
    except Exception as err:  # NotImplementedError / RuntimeError of builds without the kernel
        return f"this PyTorch {torch.__version__} has no CPU fp8 matmul ({type(err).__name__}: {str(err)[:120]})"
    return None


def fp8_matmul_problem(device) -> Optional[str]:
    """Why an fp8 matmul cannot run on ``device`` (a sentence), or ``None`` when it can.

    CUDA: compute capability >= :data:`FP8_MATMUL_CAPABILITY`; CPU: PyTorch's kernel, tried once;
    other devices (MPS, XPU ...): not supported here.
    """
    device = torch.device(device)
    if not hasattr(torch, "_scaled_mm"):
        return f"this PyTorch {torch.__version__} has no torch._scaled_mm"
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return "CUDA is not available"
        major, minor = torch.cuda.get_device_capability(device)
        if (major, minor) < FP8_MATMUL_CAPABILITY:
            return (f"{torch.cuda.get_device_name(device)} (compute capability {major}.{minor}) has no fp8 tensor cores "
                    f"(they start at {FP8_MATMUL_CAPABILITY[0]}.{FP8_MATMUL_CAPABILITY[1]}, Ada; Hopper is 9.0)")
        return None
    if device.type == "cpu":
        return _cpu_scaled_mm_problem()
    return f"fp8 matmul runs on NVIDIA GPUs with fp8 tensor cores or on the CPU, not on {device.type}"


def require_fp8_matmul(device, weight_dtype) -> None:
    """Refuse an fp8 matmul that cannot run, before anything is loaded or computed.

    Args:
        device: the compute device.
        weight_dtype: the DiT's weight dtype (a torch dtype or a name such as ``"fp8_e4m3fn"``).

    Raises:
        InputError (a ValueError): ``weight_dtype`` is not ``fp8_e4m3fn``, or the device cannot run it
            (:func:`fp8_matmul_problem`); the message says what to use instead.
    """
    from .validation import InputError

    dtype = FP8_DTYPES.get(str(weight_dtype), weight_dtype)
    if dtype != torch.float8_e4m3fn:
        raise InputError(f"fp8 matmul needs fp8_e4m3fn weights, got {weight_dtype}; load the DiT with weight dtype "
                         "fp8_e4m3fn, or turn fp8 matmul off")
    problem = fp8_matmul_problem(device)
    if problem is not None:
        raise InputError(f"fp8 matmul cannot run on {device}: {problem}. Turn fp8 matmul off: the fp8 weights then "
                         "compute in bf16 (the same memory, no fp8 tensor cores needed)")


def enable_fp8_matmul(model: torch.nn.Module, device) -> int:
    """Switch every fp8-stored linear layer of ``model`` (a :class:`~tempomaster_core.ops.CastLinear`
    with a ``scale_weight``) to :func:`scaled_linear`; returns how many were switched.

    Raises:
        InputError: as :func:`require_fp8_matmul` (nothing is switched).
    """
    from .ops import CastLinear

    layers = [m for m in model.modules()
              if isinstance(m, CastLinear) and is_fp8_dtype(m.weight.dtype) and m.scale_weight is not None]
    require_fp8_matmul(device, layers[0].weight.dtype if layers else getattr(model, "weight_dtype", None))
    for layer in layers:
        layer.fp8_matmul = True
    return len(layers)


def scaled_linear(x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor,
                  bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``x @ (weight * scale).T + bias`` as an fp8 matmul.

    Args:
        x: ``[..., in]`` activations in bf16/fp16/fp32 (the output's dtype); quantised per tensor to
            e4m3fn with ``amax / 448`` as its scale.
        weight: ``[out, in]`` e4m3fn (any device: moved to ``x``'s), ``in`` and ``out`` multiples of 16 on CUDA.
        scale: the weight's float32 scalar scale.
        bias: ``[out]`` in ``x``'s dtype, or None.

    Returns:
        ``[..., out]`` in ``x``'s dtype.
    """
    rows = x.reshape(-1, x.shape[-1])
    top = torch.finfo(torch.float8_e4m3fn).max
    amax = rows.abs().amax().float()
    x_scale = torch.where(amax > 0, amax / top, torch.ones_like(amax))
    xq = (rows.float() / x_scale).clamp(-top, top).to(torch.float8_e4m3fn)
    w = weight.to(x.device, non_blocking=x.device.type == "cuda")
    out = torch._scaled_mm(xq, w.t(), scale_a=x_scale, scale_b=scale.float().to(x.device).reshape(()),
                           out_dtype=x.dtype)
    if bias is not None:
        out = out + bias
    return out.reshape(*x.shape[:-1], weight.shape[0])
