"""Peak memory and step time of the DiT with bf16 / fp8 weights and 0..N swapped blocks, vs the cost model.

Builds a random DiT of the given shape (default: the 14B's width with 8 of its 40 blocks), then for
every weight dtype x blocks-to-swap setting loads it (``tempomaster_core.loading.load_dit``), installs
block swap (``tempomaster_core.block_swap.BlockSwap``) or moves it to the device, and times
``--repeats`` forwards of one chunk (default: the reference's 24 fps chunk, 28 latent frames at
480x832 = 43 680 tokens, text 512 x 4096). Reports per setting: the weights on the device, the peak
of ``torch.cuda.max_memory_allocated`` during a forward, the cost model's prediction for the same
setting (``dit_weight_bytes`` minus the swapped blocks but two, plus ``activation_bytes`` of one
item) and their ratio, the median forward time and its ratio to the resident bf16 one, and the
largest difference of the output from the resident model with the same weights (0 for block swap).

Run on a GPU (one prepared command, about 5 minutes on an H100/H200)::

    python benchmarks/bench_memory.py --device cuda --json benchmarks/memory_cuda.json

A CPU smoke run (tiny shapes, memory not measured)::

    python benchmarks/bench_memory.py --device cpu --dim 128 --heads 4 --ffn 256 --layers 4 --text-dim 64 \\
        --frames 2 --height 8 --width 8 --text-len 8 --swaps 0,2 --repeats 1
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tempomaster_core.block_swap import BlockSwap  # noqa: E402
from tempomaster_core.config import DiTConfig  # noqa: E402
from tempomaster_core.cost import GIB, activation_bytes, dit_block_bytes, dit_weight_bytes  # noqa: E402
from tempomaster_core.flops import video_tokens  # noqa: E402
from tempomaster_core.loading import load_dit  # noqa: E402
from tempomaster_core.model import TempoMasterDiT  # noqa: E402

COST_DTYPE = {"bf16": "bf16", "fp16": "fp16", "fp32": "fp32", "fp8_e4m3fn": "fp8", "fp8_e5m2": "fp8"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dim", type=int, default=5120)
    p.add_argument("--heads", type=int, default=40)
    p.add_argument("--ffn", type=int, default=13824)
    p.add_argument("--layers", type=int, default=8, help="blocks (the 14B has 40)")
    p.add_argument("--text-dim", type=int, default=4096)
    p.add_argument("--text-len", type=int, default=512)
    p.add_argument("--frames", type=int, default=28, help="latent frames (28 = a 109-frame chunk)")
    p.add_argument("--height", type=int, default=60, help="latent height (480 px / 8)")
    p.add_argument("--width", type=int, default=104, help="latent width (832 px / 8)")
    p.add_argument("--dtypes", default="bf16,fp8_e4m3fn")
    p.add_argument("--swaps", default="0,4,8", help="blocks to swap, comma-separated")
    p.add_argument("--device", default="cuda")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", type=Path)
    return p.parse_args(argv)


def random_state(config: DiTConfig) -> dict:
    """Random bf16 weights (N(0, 0.02^2), norms 1) on the CPU for ``config``."""
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in TempoMasterDiT(config).state_dict().items()}
    gen = torch.Generator().manual_seed(0)
    state = {}
    for name, shape in shapes.items():
        if "norm" in name and name.endswith("weight"):
            state[name] = torch.ones(shape, dtype=torch.bfloat16)
        else:
            state[name] = (torch.randn(shape, generator=gen) * 0.02).to(torch.bfloat16)
    return state


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(state, config, dtype, swapped, device, inputs, warmup, repeats):
    cuda = device.type == "cuda"
    if cuda:
        gc.collect()
        torch.cuda.empty_cache()
        before = torch.cuda.memory_allocated(device)  # the inputs
    model = load_dit(state, dtype=dtype, device="cpu", num_heads=config.num_heads)
    if swapped:
        BlockSwap(model, swapped, device)
    else:
        model.to(device)
    result = {}
    if cuda:  # resident weights, plus the two swap slots with block swap
        result["weights_on_device_gib"] = (torch.cuda.memory_allocated(device) - before) / GIB
        torch.cuda.reset_peak_memory_stats(device)
    times, out = [], None
    with torch.no_grad():
        for i in range(warmup + repeats):
            _sync(device)
            start = time.perf_counter()
            out = model(**inputs)
            _sync(device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    result["median_s"] = statistics.median(times)
    if cuda:  # everything on the device but the inputs: weights, slots, activations, transients
        result["peak_gib"] = (torch.cuda.max_memory_allocated(device) - before) / GIB
    del model
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result, out.float().cpu()


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    config = DiTConfig(dim=args.dim, ffn_dim=args.ffn, num_heads=args.heads, num_layers=args.layers,
                       text_dim=args.text_dim)
    t, h, w = args.frames, args.height, args.width
    gen = torch.Generator().manual_seed(1)
    inputs = dict(
        x=torch.randn(1, 16, t, h, w, generator=gen).to(device),
        y=torch.randn(1, 20, t, h, w, generator=gen).to(device),
        timestep=torch.full((1,), 900.0, device=device),
        context=torch.randn(1, args.text_len, args.text_dim, generator=gen).to(device),
        temporal_positions=(torch.arange(t, device=device)[None] * 4.0),
    )
    tokens = video_tokens(config, t, h, w)
    state = random_state(config)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    rows, reference = [], {}
    print(f"device {name}, torch {torch.__version__}; DiT dim {config.dim}, {config.num_layers} blocks; "
          f"1 x {tokens} tokens, text {args.text_len}")
    for dtype in args.dtypes.split(","):
        for swapped in (int(s) for s in args.swaps.split(",")):
            cost_dtype = COST_DTYPE[dtype]
            predicted = (dit_weight_bytes(config, cost_dtype)
                         - (swapped - min(swapped, 2)) * dit_block_bytes(config, cost_dtype)
                         + activation_bytes(config, tokens, 1, dtype=cost_dtype, text_len=args.text_len))
            result, out = measure(state, config, dtype, swapped, device, inputs, args.warmup, args.repeats)
            key = dtype
            if swapped == 0:
                reference[key] = out
            result.update(dtype=dtype, blocks_to_swap=swapped, predicted_gib=predicted / GIB,
                          max_diff_vs_resident=float((out - reference[key]).abs().max()) if key in reference else None)
            base = next((r for r in rows if r["dtype"] == args.dtypes.split(",")[0] and r["blocks_to_swap"] == 0), result)
            result["time_vs_first"] = result["median_s"] / base["median_s"]
            if "peak_gib" in result:
                result["measured_over_predicted"] = result["peak_gib"] / result["predicted_gib"]
            rows.append(result)
            peak = (f"weights on device {result['weights_on_device_gib']:.2f} GiB, peak {result['peak_gib']:.2f} GiB"
                    if "peak_gib" in result else "memory not measured")
            print(f"{dtype:11s} swap {swapped:2d}: {peak}, "
                  f"predicted {result['predicted_gib']:.2f} GiB, forward {result['median_s'] * 1e3:.0f} ms "
                  f"({result['time_vs_first']:.2f}x), max |out - resident| {result['max_diff_vs_resident']}")
    report = {"device": name, "torch": torch.__version__, "config": config.to_dict(), "tokens": tokens,
              "text_len": args.text_len, "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
