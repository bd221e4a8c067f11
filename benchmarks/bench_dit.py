"""Time one TempoMaster DiT forward and report achieved TFLOP/s.

Builds a randomly initialised DiT of the given width/depth (no checkpoint
needed), runs warm-up passes, then ``--repeats`` timed forwards and reports
the median. FLOPs come from the analytic count in
:mod:`tempomaster_core.flops` (linear layers + attention matmuls, 2 FLOPs per
multiply-add). The same forward is then timed with the reference's
float64-complex RoPE (``tests/rope_complex128.py``, not part of the model) to
give the speed ratio of the float32 cos/sin RoPE.

Examples::

    python benchmarks/bench_dit.py                       # small CPU config
    python benchmarks/bench_dit.py --device cuda --dtype bf16 --dim 5120 --heads 40 --ffn 13824 \
        --layers 2 --frames 28 --height 60 --width 104 --batch 1 --text-dim 4096

Latent sizes: 480x832 pixels -> 60x104 latent -> 30x52 = 1560 tokens per latent frame.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # rope_complex128: the reference's RoPE, kept with the tests

from tempomaster_core.attention import BACKENDS  # noqa: E402
from tempomaster_core.config import DiTConfig  # noqa: E402
from tempomaster_core.flops import dit_flops_breakdown, video_tokens  # noqa: E402
from tempomaster_core.loading import parse_dtype  # noqa: E402
from tempomaster_core.model import TempoMasterDiT  # noqa: E402
from tempomaster_core.rope import apply_rope, rope_rotation  # noqa: E402

from rope_complex128 import apply_rope_complex128, complex128_rope, rope_complex128_table  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--ffn", type=int, default=1536)
    p.add_argument("--text-dim", type=int, default=4096)
    p.add_argument("--text-len", type=int, default=512, help="text tokens (512 for umT5)")
    p.add_argument("--frames", type=int, default=4, help="latent frames")
    p.add_argument("--height", type=int, default=16, help="latent height (pixels / 8)")
    p.add_argument("--width", type=int, default=16, help="latent width (pixels / 8)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--dtype", default="fp32", help="bf16, fp16 or fp32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--backend", default="sdpa", choices=BACKENDS)
    p.add_argument("--threads", type=int, default=None, help="CPU threads (torch.set_num_threads); default: torch's choice")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--skip-complex", action="store_true", help="do not time the complex128-RoPE variant")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    return p.parse_args(argv)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_forward(model, inputs, device, warmup: int, repeats: int) -> list[float]:
    """Seconds per forward for ``repeats`` timed runs after ``warmup`` untimed ones."""
    times = []
    with torch.no_grad():
        for i in range(warmup + repeats):
            _sync(device)
            start = time.perf_counter()
            model(**inputs)
            _sync(device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return times


def time_rope(config, positions, grid, batch, dtype, device, warmup: int, repeats: int) -> dict[str, float]:
    """Median seconds of the RoPE work of one forward (table + rotating q and k in every layer)."""
    tokens = grid[0] * grid[1] * grid[2]
    q = torch.randn(batch, tokens, config.num_heads, config.head_dim, device=device, dtype=dtype)

    def float32_rope():
        rotation = rope_rotation(positions, grid, config.head_dim, device=device)
        for _ in range(2 * config.num_layers):
            apply_rope(q, rotation, out_dtype=dtype)

    def complex128_rope():
        freqs = rope_complex128_table(positions, grid, config.head_dim, device=device)
        for _ in range(2 * config.num_layers):
            apply_rope_complex128(q, freqs)

    out = {}
    for name, fn in (("float32", float32_rope), ("complex128", complex128_rope)):
        times = []
        for i in range(warmup + repeats):
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
        out[name] = statistics.median(times)
    return out


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = parse_dtype(args.dtype)
    config = DiTConfig(
        dim=args.dim, ffn_dim=args.ffn, num_heads=args.heads, num_layers=args.layers,
        in_dim=36, out_dim=16, text_dim=args.text_dim, freq_dim=256,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = TempoMasterDiT(config, attention_backend=args.backend)
    model = model.to(dtype).eval().requires_grad_(False)
    b, t, h, w = args.batch, args.frames, args.height, args.width
    inputs = dict(
        x=torch.randn(b, 16, t, h, w, device=device, dtype=dtype),
        y=torch.randn(b, 20, t, h, w, device=device, dtype=dtype),
        timestep=torch.full((b,), 900.0, device=device),
        context=torch.randn(b, args.text_len, args.text_dim, device=device, dtype=dtype),
        temporal_positions=(torch.arange(b, device=device)[:, None] * t + torch.arange(t, device=device)) * 4.0,
    )
    tokens = video_tokens(config, t, h, w)
    flops = dit_flops_breakdown(config, tokens, args.text_len, b)
    params = sum(p.numel() for p in model.parameters())

    result = {
        "device": device_name(device),
        "torch": torch.__version__,
        "dtype": str(dtype).replace("torch.", ""),
        "attention_backend": model.attention_backend,
        "config": config.to_dict(),
        "params": params,
        "latent": [t, h, w],
        "batch": b,
        "tokens_per_item": tokens,
        "text_len": args.text_len,
        "gflops": flops["total"] / 1e9,
    }
    times = time_forward(model, inputs, device, args.warmup, args.repeats)
    median = statistics.median(times)
    result.update(median_s=median, min_s=min(times), tflops=flops["total"] / median / 1e12)
    if device.type == "cuda":
        result["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    if not args.skip_complex:
        with complex128_rope():
            times_c = time_forward(model, inputs, device, args.warmup, args.repeats)
        result.update(complex_median_s=statistics.median(times_c), complex_over_float32=statistics.median(times_c) / median)
        rope = time_rope(config, inputs["temporal_positions"], (t, h // 2, w // 2), b, dtype, device, args.warmup, args.repeats)
        result.update(rope_float32_s=rope["float32"], rope_complex128_s=rope["complex128"])

    print(f"device        {result['device']}  (torch {result['torch']}, {result['dtype']}, attention {result['attention_backend']})")
    print(f"model         dim {config.dim}, heads {config.num_heads}, ffn {config.ffn_dim}, layers {config.num_layers}, "
          f"{params / 1e6:.1f} M params")
    print(f"input         batch {b}, latent {t}x{h}x{w} = {tokens} tokens/item, text {args.text_len}x{args.text_dim}")
    print(f"FLOPs         {flops['total'] / 1e9:.2f} GFLOP per forward "
          f"(attention matmuls {100 * (flops['self_attn_matmul'] + flops['cross_attn_matmul']) / flops['total']:.1f} %)")
    print(f"float32 RoPE  median {median * 1e3:.2f} ms (min {min(times) * 1e3:.2f} ms, {args.repeats} runs) "
          f"-> {result['tflops']:.3f} TFLOP/s")
    if not args.skip_complex:
        print(f"complex128    median {result['complex_median_s'] * 1e3:.2f} ms -> float64-complex RoPE forward is "
              f"{result['complex_over_float32']:.2f}x the float32-RoPE time")
        print(f"RoPE only     {result['rope_float32_s'] * 1e3:.2f} ms float32 vs {result['rope_complex128_s'] * 1e3:.2f} ms "
              f"complex128 per forward ({result['rope_complex128_s'] / result['rope_float32_s']:.1f}x; tables + q,k of "
              f"{config.num_layers} layers)")
    if "peak_mem_gib" in result:
        print(f"peak memory   {result['peak_mem_gib']:.2f} GiB")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
