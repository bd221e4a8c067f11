"""Convert a TempoMaster DiT checkpoint (e.g. the released ``.bin``) to ``.safetensors``.

Usage::

    python -m tempomaster_core.convert wan_video_dit_bf16.bin wan_video_dit_bf16.safetensors [--dtype bf16|fp16|fp32]
    python -m tempomaster_core.convert wan_video_dit_bf16.bin tempomaster_fp8_e4m3fn_scaled.safetensors --dtype fp8_e4m3fn

``--dtype fp8_e4m3fn`` / ``fp8_e5m2`` writes a scaled fp8 checkpoint in ComfyUI's layout
(:mod:`tempomaster_core.fp8`): the blocks' linear weights quantised per tensor, each with its
``scale_weight``, everything else in bf16, and the ``scaled_fp8`` marker (about 14.5 GB for
the 14B). A scaled fp8 input is dequantised before conversion.

The input is validated first (:func:`tempomaster_core.loading.infer_config_from_shapes`
and a key/shape check against the model), keys are normalised to the reference
layout, and the output is written in a streaming way: the safetensors header is
computed from the shapes, then each tensor is read, converted and written on
its own. Peak memory:

* zip-format ``.bin``/``.pt`` (every ``torch.save`` since PyTorch 1.6, the release
  included) and ``.safetensors`` inputs are memory-mapped: the process holds one
  converted tensor at a time (for the 14B model the largest is an FFN weight,
  5120 x 13824 x 2 bytes = 142 MB in bf16) plus file pages of the input that the
  kernel keeps in its page cache and can reclaim; these count in RSS while
  resident.
* a legacy (non-zip) pickle is read fully into RAM first (one copy of the model).

The output records ``num_heads``, ``eps`` and the full config in its metadata. The
output path is checked before the input is read (a ``.safetensors`` name, not a
directory, in a writable folder, not the input itself, no existing file without
``--force``); the file is written to a hidden temporary file next to it and renamed
when complete, so an error or Ctrl-C never leaves a truncated file and never
destroys an existing one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable, Mapping

import torch

from .config import DiTConfig
from .defaults import WEIGHT_DTYPE
from .fp8 import SCALE_SUFFIX, SCALED_FP8_MARKER, is_fp8_dtype, is_fp8_weight, storage_tensor
from .loading import (
    STORAGE_DTYPES,
    CheckpointError,
    check_keys,
    checkpoint_layout,
    config_metadata,
    open_checkpoint,
    parse_dtype,
)
from .model import TempoMasterDiT
from .validation import require_output_path
from .video_io import atomic_output

_SAFETENSORS_DTYPE = {
    torch.bfloat16: "BF16", torch.float16: "F16", torch.float32: "F32", torch.float64: "F64",
    torch.float8_e4m3fn: "F8_E4M3", torch.float8_e5m2: "F8_E5M2",
}


def write_safetensors_streaming(
    path,
    shapes: Mapping[str, tuple],
    get_tensor: Callable[[str], torch.Tensor],
    dtype: torch.dtype | Mapping[str, torch.dtype],
    metadata: Mapping[str, str] | None = None,
) -> int:
    """Write a ``.safetensors`` file one tensor at a time.

    Args:
        path: output path (written directly; :func:`convert_checkpoint` passes a temporary path
            from :func:`tempomaster_core.video_io.atomic_output`).
        shapes: ``{name: shape}`` of every tensor to write (the header is built from these).
        get_tensor: returns the tensor for a name; it is converted to its dtype.
        dtype: storage dtype of every tensor (bf16, fp16, fp32, fp64, fp8 e4m3fn/e5m2), or
            ``{name: dtype}`` for each.
        metadata: string-to-string metadata (``__metadata__``).

    Returns:
        Bytes of tensor data written.

    Raises:
        ValueError: a tensor whose shape differs from ``shapes``; unsupported dtype.
    """
    if sys.byteorder != "little":
        raise RuntimeError("safetensors files are little-endian; this writer needs a little-endian machine")
    dtypes = dict(dtype) if isinstance(dtype, Mapping) else {name: dtype for name in shapes}
    for name in shapes:
        if dtypes.get(name) not in _SAFETENSORS_DTYPE:
            raise ValueError(f"unsupported dtype {dtypes.get(name)} for safetensors output ({name!r})")
    names = sorted(shapes)
    header: dict = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    for name in names:
        nbytes = dtypes[name].itemsize * int(torch.Size(shapes[name]).numel())
        header[name] = {"dtype": _SAFETENSORS_DTYPE[dtypes[name]], "shape": list(shapes[name]),
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)  # align the data section to 8 bytes
    with open(path, "wb") as handle:
        handle.write(len(blob).to_bytes(8, "little"))
        handle.write(blob)
        for name in names:
            tensor = get_tensor(name)
            if tuple(tensor.shape) != tuple(shapes[name]):
                raise ValueError(f"tensor {name!r} has shape {tuple(tensor.shape)}, header says {tuple(shapes[name])}")
            data = tensor.detach().to(device="cpu", dtype=dtypes[name]).contiguous().reshape(-1).view(torch.uint8)
            handle.write(memoryview(data.numpy()))
            del tensor, data
    return offset


def output_tensors(shapes: Mapping[str, tuple], dtype: torch.dtype) -> dict[str, tuple[tuple, torch.dtype]]:
    """``{name: (shape, dtype)}`` of a converted checkpoint: ``shapes`` in ``dtype``, or for an fp8
    ``dtype`` the fp8 block weights, their float32 ``scale_weight`` scalars, the rest in bf16 and
    the ``scaled_fp8`` marker (:mod:`tempomaster_core.fp8`)."""
    if not is_fp8_dtype(dtype):
        return {name: (tuple(shape), dtype) for name, shape in shapes.items()}
    out = {SCALED_FP8_MARKER: ((0,), dtype)}
    for name, shape in shapes.items():
        if is_fp8_weight(name):
            out[name] = (tuple(shape), dtype)
            out[name[: -len(".weight")] + SCALE_SUFFIX] = ((), torch.float32)
        else:
            out[name] = (tuple(shape), torch.bfloat16)
    return out


def convert_checkpoint(src, dst, *, dtype=WEIGHT_DTYPE, num_heads: int | None = None, overwrite: bool = False) -> DiTConfig:
    """Validate a DiT checkpoint and write it as safetensors in reference key layout.

    Args:
        src: input checkpoint (``.bin``/``.pt``/``.pth``/``.safetensors``) or a state dict.
        dst: output ``.safetensors`` path.
        dtype: output storage dtype (``"bf16"`` default, ``"fp16"``, ``"fp32"``, or ``"fp8_e4m3fn"``
            / ``"fp8_e5m2"``: a scaled fp8 file, see :func:`output_tensors`).
        num_heads: only needed for models whose ``dim`` is not a multiple of 128.
        overwrite: replace an existing ``dst``.

    Returns:
        The inferred :class:`DiTConfig`.

    Raises:
        FileExistsError: ``dst`` exists and ``overwrite`` is false.
        ValueError: ``dst`` does not end in ``.safetensors``; ``dst`` is a directory, is in a
            folder that cannot be written, or is the input file
            (:class:`~tempomaster_core.validation.InputError`). All checked before the input is read.
        CheckpointError: the input is not a loadable TempoMaster DiT.
        OSError: writing failed (e.g. disk full); ``dst`` is then left as it was.
    """
    dst = Path(dst)
    if not dst.is_dir() and dst.suffix.lower() != ".safetensors":
        raise ValueError(f"output must end in .safetensors, got {dst.name}")
    if dst.is_file() and not overwrite:
        raise FileExistsError(f"{dst} exists; pass --force (overwrite=True) to replace it")
    inputs = [("the input checkpoint", src)] if isinstance(src, (str, os.PathLike)) else []
    require_output_path(dst, "output", suffixes=(".safetensors",), overwrite=True, inputs=inputs)
    out_dtype = parse_dtype(dtype)
    ckpt = open_checkpoint(src)
    try:
        rename, shapes, config, scales = checkpoint_layout(ckpt, num_heads)
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in TempoMasterDiT(config).state_dict().items()}
        check_keys(expected, shapes)
        layout = output_tensors(shapes, out_dtype)
        last: dict = {}  # the converted weight whose scale is written first (sorted names: scale_weight < weight)

        def converted(name: str) -> tuple:
            if name not in last:
                last.clear()
                layer = name.rsplit(".", 1)[0]
                scale = ckpt.get(scales[layer]) if name.endswith(".weight") and layer in scales else None
                last[name] = storage_tensor(name, ckpt.get(rename[name]), scale, out_dtype, torch.bfloat16)
            return last[name]

        def get(name: str) -> torch.Tensor:
            if name == SCALED_FP8_MARKER:
                return torch.empty(0, dtype=out_dtype)
            if name.endswith(SCALE_SUFFIX):
                return converted(name[: -len(SCALE_SUFFIX)] + ".weight")[1]
            return converted(name)[0]

        with atomic_output(dst, overwrite=overwrite) as tmp:
            write_safetensors_streaming(tmp, {k: v[0] for k, v in layout.items()}, get,
                                        {k: v[1] for k, v in layout.items()}, config_metadata(config))
    finally:
        ckpt.close()
    return config


def main(argv=None) -> int:
    """CLI entry point; returns the process exit code.

    0: written; 1: a bad checkpoint, a refused output (existing without ``--force``, a
    directory, an unwritable folder, the input itself) or a failed write, reported as
    ``error: <message>`` on stderr; 2: bad arguments (argparse); 130: interrupted (Ctrl-C),
    with no output file left behind.
    """
    parser = argparse.ArgumentParser(
        prog="python -m tempomaster_core.convert",
        description="Convert a TempoMaster DiT checkpoint (.bin/.pt/.pth/.safetensors) to .safetensors.",
    )
    parser.add_argument("input", help="input checkpoint, e.g. wan_video_dit_bf16.bin")
    parser.add_argument("output", help="output .safetensors path")
    parser.add_argument("--dtype", default=WEIGHT_DTYPE, choices=STORAGE_DTYPES,
                        help=f"output storage dtype (default {WEIGHT_DTYPE})")
    parser.add_argument("--num-heads", type=int, default=None, help="only for models whose dim is not a multiple of 128")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output file")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        config = convert_checkpoint(args.input, args.output, dtype=args.dtype, num_heads=args.num_heads, overwrite=args.force)
    except (CheckpointError, OSError, ValueError) as err:  # OSError: FileNotFoundError, FileExistsError, disk full
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    size = Path(args.output).stat().st_size
    with torch.device("meta"):
        params = sum(p.numel() for p in TempoMasterDiT(config).parameters())
    print(f"wrote {args.output}: {params:,} parameters, {args.dtype}, {size / 2**20:.1f} MiB, "
          f"{time.perf_counter() - start:.1f} s")
    print("config: " + json.dumps(config.to_dict()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
