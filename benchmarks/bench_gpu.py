"""GPU benchmark (issue 22): our DiT against the reference ``WanModel`` on the same GPU, in one run.

Both models have the 14B architecture (dim 5120, 40 heads, 40 blocks, ffn 13824) with the same random bf16
weights (ours shares the reference's tensors, so the weights exist once), at the reference's 24 fps chunk:
28 latent frames of 60x104 (480x832 pixels, 43 680 tokens per chunk) and 512 text tokens. One *guided step*
is what a denoising step costs with guidance: the reference runs the conditional and the unconditional pass
one after the other on ``b`` chunks (``SequentialPipeline.denoise_chunk``); ours runs both in one forward of
``2b`` (:func:`tempomaster_core.pipeline._velocity` with ``cfg_batching``). Rows, most important first (a time
budget skips the rest): batch 1 reference vs ours (with the relative difference of their outputs), ours with
each installed attention backend, ours with ``torch.compile`` on every block, then batches 2 and 4 chunks,
then the Wan 2.1 VAE (diffusers' ``AutoencoderKLWan``, random weights) encoding and decoding one 109-frame
chunk. FLOPs from :mod:`tempomaster_core.flops`; MFU against the GPU's dense bf16 peak (:data:`PEAK_BF16_TFLOPS`,
or ``--peak-tflops``).

The reference is imported from a checkout given on the command line (``git clone
https://github.com/scottykma/TempoMaster``; only ``wan_dit/wan_video_dit.py`` is loaded, by path); nothing
of it is copied here. It picks its attention at import (FlashAttention 3, else 2, else SageAttention, else
SDPA); the row says which.

Examples::

    python benchmarks/bench_gpu.py --reference /path/to/TempoMaster --json gpu.json          # ~10 min on an H100
    python benchmarks/bench_gpu.py --reference /path/to/TempoMaster --dry-run --device cpu  # small width, seconds
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tempomaster_core.attention import available_backends  # noqa: E402
from tempomaster_core.config import DiTConfig  # noqa: E402
from tempomaster_core.defaults import TEXT_LEN  # noqa: E402
from tempomaster_core.flops import dit_forward_flops, video_tokens  # noqa: E402
from tempomaster_core.loading import load_dit, parse_dtype  # noqa: E402
from tempomaster_core.pipeline import _velocity  # noqa: E402

WAN_14B = dict(dim=5120, ffn_dim=13824, num_heads=40, num_layers=40, in_dim=36, out_dim=16, text_dim=4096,
               freq_dim=256, eps=1e-6, patch_size=(1, 2, 2))
"""The released DiT's shape (the reference's ``inference_configs.json``)."""

CHUNK = dict(frames=28, height=60, width=104, text_len=TEXT_LEN, pixel_frames=109)
"""The reference's 24 fps chunk: latent frames and size (480x832 / 8), text tokens, pixel frames."""

DRY_RUN = dict(model=dict(WAN_14B, dim=256, ffn_dim=512, num_heads=2, num_layers=2, text_dim=64),
               chunk=dict(frames=3, height=8, width=8, text_len=16, pixel_frames=9), batches=(1, 2))
"""The ``--dry-run`` sizes: every code path at a width that runs in seconds on a CPU."""

PEAK_BF16_TFLOPS = {"H200": 989.4, "H100 SXM": 989.4, "H100 80GB HBM3": 989.4, "H100 PCIe": 756.0, "H100": 989.4,
                    "A100": 312.0, "L40S": 362.1, "RTX 4090": 165.2}
"""Dense bf16 tensor-core peaks in TFLOP/s (vendor data sheets, without sparsity), by device-name fragment."""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", type=Path, help="checkout of github.com/scottykma/TempoMaster (omit: ours only)")
    p.add_argument("--dry-run", action="store_true", help=f"small sizes ({DRY_RUN['model']['dim']} wide, 2 blocks)")
    p.add_argument("--width", type=int, help="DiT width (dim) instead of 5120; heads = width / 128")
    p.add_argument("--layers", type=int, help="DiT blocks instead of 40")
    p.add_argument("--batches", default=None, help="chunks per guided step, e.g. 1,2,4 (default)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="bf16")
    p.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                   help="time ours with torch.compile on every block too (auto: on CUDA only)")
    p.add_argument("--no-vae", action="store_true", help="skip the VAE rows")
    p.add_argument("--repeats", type=int, default=1,
                   help="timed guided steps per row (median), after one warm-up step for the first row of each "
                        "model/attention pair and for every compiled row")
    p.add_argument("--budget-s", type=float, default=540.0, help="skip the remaining rows after this many seconds")
    p.add_argument("--peak-tflops", type=float, help="bf16 peak for the MFU (default: from the device name)")
    p.add_argument("--json", type=Path, help="write the results here")
    return p.parse_args(argv)


def load_reference_module(checkout: Path):
    """The reference's ``wan_dit/wan_video_dit.py`` as a module, loaded by path (its package ``__init__``
    would import the VAE, text encoder and prompter too)."""
    path = checkout / "wan_dit" / "wan_video_dit.py"
    if not path.is_file():
        raise SystemExit(f"--reference {checkout}: no wan_dit/wan_video_dit.py (clone github.com/scottykma/TempoMaster)")
    spec = importlib.util.spec_from_file_location("tempomaster_reference_wan_video_dit", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reference_backend(module) -> str:
    for flag, name in (("FLASH_ATTN_3_AVAILABLE", "flash_attn3"), ("FLASH_ATTN_2_AVAILABLE", "flash_attn2"),
                       ("SAGE_ATTN_AVAILABLE", "sageattention")):
        if getattr(module, flag, False):
            return name
    return "sdpa"


@torch.no_grad()
def random_init_(model: torch.nn.Module, seed: int = 0) -> None:
    """Random weights that keep 40 bf16 blocks finite: N(0, 1/fan_in) matrices, N(0, 1/dim) modulations,
    unit norm weights (and VAE norm gammas), small biases."""
    gen = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    for name, p in model.named_parameters():
        if name.endswith("modulation"):
            p.normal_(0.0, p.shape[-1] ** -0.5, generator=gen)
        elif name.endswith("gamma") or ("norm" in name and name.endswith("weight")):
            p.fill_(1.0)
        elif p.ndim == 1:
            p.normal_(0.0, 0.02, generator=gen)
        else:
            p.normal_(0.0, p[0].numel() ** -0.5, generator=gen)


def build_models(config: DiTConfig, module, device: torch.device, dtype: torch.dtype):
    """``(reference or None, ours)`` with the same weights (ours reuses the reference's tensors)."""
    if module is None:
        state = None
    else:
        with torch.device("meta"):
            ref = module.WanModel(dim=config.dim, in_dim=config.in_dim, ffn_dim=config.ffn_dim, out_dim=config.out_dim,
                                  text_dim=config.text_dim, freq_dim=config.freq_dim, eps=config.eps,
                                  patch_size=config.patch_size, num_heads=config.num_heads,
                                  num_layers=config.num_layers, has_image_input=False, has_image_pos_emb=False)
        ref = ref.to(dtype).to_empty(device=device)
        random_init_(ref)
        ref.freqs = module.precompute_freqs_cis_3d(config.head_dim)  # built on meta above
        state = ref.state_dict()
    if state is None:
        from tempomaster_core.model import TempoMasterDiT

        with torch.device("meta"):
            ours = TempoMasterDiT(config)
        ours = ours.to(dtype).to_empty(device=device)
        random_init_(ours)
        return None, ours.eval().requires_grad_(False)
    return ref.eval().requires_grad_(False), load_dit(state, dtype=dtype, device=device)


def make_inputs(config: DiTConfig, chunk: dict, batch: int, device, dtype, seed: int = 1) -> dict:
    """One guided step's inputs for ``batch`` chunks of the 24 fps level (frame interval 1)."""
    gen = torch.Generator().manual_seed(seed)
    t, h, w = chunk["frames"], chunk["height"], chunk["width"]

    def rand(*shape):
        return torch.randn(*shape, generator=gen).to(device=device, dtype=dtype)

    positions = (torch.arange(batch)[:, None] * t + torch.arange(t)[None]).float()
    return dict(x=rand(batch, config.out_dim, t, h, w), y=rand(batch, config.in_dim - config.out_dim, t, h, w),
                positive=rand(1, chunk["text_len"], config.text_dim), negative=rand(1, chunk["text_len"], config.text_dim),
                timestep=torch.tensor([500.0], device=device, dtype=dtype), positions=positions.to(device))


def reference_freqs(ref, chunk: dict, batch: int, device):
    """The RoPE table the reference's ``denoise_chunk`` builds for ``batch`` chunks at frame interval 1."""
    t, h, w = chunk["frames"], chunk["height"] // 2, chunk["width"] // 2
    tables = []
    for idx in range(batch):
        start = idx * t
        tables.append(torch.cat([ref.freqs[0][start:start + t].view(t, 1, 1, -1).expand(t, h, w, -1),
                                 ref.freqs[1][:h].view(1, h, 1, -1).expand(t, h, w, -1),
                                 ref.freqs[2][:w].view(1, 1, w, -1).expand(t, h, w, -1)], dim=-1).reshape(t * h * w, 1, -1))
    return torch.view_as_real(torch.stack(tables).to(device))


def reference_step(ref, inp, freqs):
    """The reference's guided step: the conditional, then the unconditional pass."""
    b = inp["x"].shape[0]
    t = inp["timestep"]
    pos = ref(inp["x"], timestep=t, freqs=freqs, context=inp["positive"].expand(b, -1, -1), y=inp["y"])
    neg = ref(inp["x"], timestep=t, freqs=freqs, context=inp["negative"].expand(b, -1, -1), y=inp["y"])
    return pos, neg


def our_step(ours, inp):
    """Our guided step: both prompts in one forward of ``2b`` (the pipeline's own batching)."""
    return _velocity(ours, inp["x"].float(), inp["timestep"], positive=inp["positive"], negative=inp["negative"],
                     y=inp["y"], positions=inp["positions"], dtype=inp["x"].dtype, cfg_batching=True)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def timed(fn, device, repeats: int, warmup: bool = True):
    """``(median seconds, peak GiB allocated or None, last result, warm-up seconds or None)``: one warm-up
    call if asked (compilation happens there), then ``repeats`` timed calls."""
    warmup_s = None
    if warmup:
        start = time.perf_counter()
        fn()
        _sync(device)
        warmup_s = time.perf_counter() - start
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(max(repeats, 1)):
        start = time.perf_counter()
        result = fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return statistics.median(times), peak, result, warmup_s


def peak_tflops(device: torch.device, override):
    if override:
        return float(override)
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def vae_rows(chunk: dict, device, dtype, dry: bool, repeats: int) -> dict:
    """Encode and decode one chunk of ``chunk['pixel_frames']`` frames with a random Wan 2.1 VAE."""
    try:
        from diffusers import AutoencoderKLWan
    except ImportError:
        return {"skipped": "diffusers not installed (pip install \"tempomaster[wan]\")"}
    from tempomaster_core.wan.vae import CONFIG_FILE, WanVAECodec

    config = json.loads(CONFIG_FILE.read_text())
    if dry:
        config["base_dim"] = 8
    vae = AutoencoderKLWan(**config).to(device=device, dtype=dtype)
    random_init_(vae)
    codec = WanVAECodec(vae)
    h, w = chunk["height"] * 8, chunk["width"] * 8
    video = torch.rand(1, 3, chunk["pixel_frames"], h, w, device=device) * 2 - 1
    enc_s, enc_peak, latents, _ = timed(lambda: codec.encode(video), device, repeats)
    dec_s, dec_peak, _, _ = timed(lambda: codec.decode(latents), device, repeats)
    return {"pixel_frames": chunk["pixel_frames"], "size": [h, w], "encode_s": enc_s, "encode_peak_gib": enc_peak,
            "decode_s": dec_s, "decode_peak_gib": dec_peak}


def main(argv=None) -> dict:
    args = parse_args(argv)
    device, dtype = torch.device(args.device), parse_dtype(args.dtype)
    model_cfg, chunk = (dict(DRY_RUN["model"]), dict(DRY_RUN["chunk"])) if args.dry_run else (dict(WAN_14B), dict(CHUNK))
    if args.width:
        model_cfg.update(dim=args.width, num_heads=max(args.width // 128, 1))
    if args.layers:
        model_cfg.update(num_layers=args.layers)
    config = DiTConfig(**model_cfg)
    batches = tuple(int(b) for b in args.batches.split(",")) if args.batches else (
        DRY_RUN["batches"] if args.dry_run else (1, 2, 4))
    use_compile = args.compile == "on" or (args.compile == "auto" and device.type == "cuda")
    module = load_reference_module(args.reference) if args.reference else None
    started = time.perf_counter()
    ref, ours = build_models(config, module, device, dtype)
    tokens = video_tokens(config, chunk["frames"], chunk["height"], chunk["width"])
    peak = peak_tflops(device, args.peak_tflops)
    backends = available_backends()
    best = next((b for b in ("flash_attn", "sageattention") if b in backends), "sdpa")

    plan = []  # (model, backend, compiled, batch), most important first
    for b in batches:
        if ref is not None:
            plan.append(("reference", reference_backend(module), False, b))
        plan.append(("ours", "sdpa", False, b))
        if b == batches[0]:
            plan += [("ours", name, False, b) for name in backends if name != "sdpa"]
        if use_compile:
            plan.append(("ours", best, True, b))
    rows, outputs, warmed = [], {}, set()
    eager_blocks = ours.blocks
    compiled_blocks = None
    if use_compile:  # one static graph per batch size, compiled in that row's warm-up (reported as warmup_s)
        torch._dynamo.config.automatic_dynamic_shapes = False
        compiled_blocks = torch.nn.ModuleList(torch.compile(block) for block in eager_blocks)
    for model_name, backend, want_compile, b in plan:
        row = {"model": model_name, "attention": backend, "compiled": want_compile, "chunks": b,
               "guidance": "two sequential passes" if model_name == "reference" else "one batched forward",
               "sequences_per_step": 2 * b}
        if time.perf_counter() - started > args.budget_s:
            rows.append({**row, "skipped": f"time budget {args.budget_s:g} s spent"})
            continue
        inp = make_inputs(config, chunk, b, device, dtype)
        if model_name == "reference":
            freqs = reference_freqs(ref, chunk, b, device)
            fn = lambda: reference_step(ref, inp, freqs)  # noqa: E731
        else:
            ours.set_attention_backend(backend)
            ours.blocks = compiled_blocks if want_compile else eager_blocks  # same parameters
            fn = lambda: our_step(ours, inp)  # noqa: E731
        try:
            # a warm-up where it matters: the first step of a model/attention pair, every compiled shape
            kind = (model_name, backend, want_compile)
            seconds, peak_gib, out, warmup = timed(fn, device, args.repeats, warmup=want_compile or kind not in warmed)
            warmed.add(kind)
        except Exception as exc:  # an attention backend or compile that does not run here
            rows.append({**row, "error": f"{type(exc).__name__}: {str(exc)[:300]}"})
            continue
        flops = dit_forward_flops(config, tokens, chunk["text_len"], batch=2 * b)
        tflops = flops / seconds / 1e12
        row.update(seconds=seconds, warmup_s=warmup, tflops=tflops, mfu=(tflops / peak) if peak else None, peak_gib=peak_gib,
                   pflop_per_step=flops / 1e15)
        if b == batches[0] and not want_compile and (model_name == "reference" or backend == "sdpa"):
            outputs.setdefault(model_name, torch.cat([o.float() for o in out]).cpu())
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary = {}
    if "reference" in outputs and "ours" in outputs:
        a, r = outputs["ours"], outputs["reference"]
        summary["relative_difference_ours_vs_reference"] = float((a - r).norm() / r.norm())
    for b in batches:
        ref_row = next((r for r in rows if r["model"] == "reference" and r["chunks"] == b and "seconds" in r), None)
        fastest = min((r for r in rows if r["model"] == "ours" and r["chunks"] == b and "seconds" in r),
                      key=lambda r: r["seconds"], default=None)
        if ref_row and fastest:
            summary[f"speedup_{b}_chunks"] = ref_row["seconds"] / fastest["seconds"]
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__, "dtype": str(dtype), "dry_run": args.dry_run, "config": config.to_dict(),
        "tokens_per_chunk": tokens, "text_len": chunk["text_len"], "peak_bf16_tflops": peak,
        "attention_backends": backends, "rows": rows, "summary": summary,
        "vae": {"skipped": "--no-vae"} if args.no_vae else vae_rows(chunk, device, dtype, args.dry_run, args.repeats),
        "not_measured": ["fp8 matmul (not implemented: fp8 weights are computed in bf16)",
                         "the cost model's time prediction for a whole level"],
        "seconds_total": time.perf_counter() - started,
    }
    print(json.dumps({k: result[k] for k in ("device", "summary", "vae", "seconds_total")}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
