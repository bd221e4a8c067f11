"""Levels shared over ranks: per-level time of N ranks vs one process (``tempomaster_core.distributed``).

    python benchmarks/distributed.py [--ranks 2] [--threads 1] [--repeats 3] [--rounds 3] [--device cpu|cuda]
                                     [--size 128] [--json out.json]

Runs the built-in model's default tree (recommended settings; ``--size`` changes the frame size) in fresh
processes with ``--threads`` intra-op threads per process, alternately as one plain process (no process
group) and under ``torchrun --nproc-per-node RANKS`` (gloo on CPU, NCCL with ``--device cuda``), ``--rounds``
times each (alternating, so a change in the machine's other load hits both alike). Each run makes the tree
once to warm up, then ``--repeats`` times, timing every level on rank 0 (the ranks start each level
together); the median over all runs per level is reported with the ratio ``ranks / one process`` (ideal
``1 / RANKS``) and the split mode of the level. Prints a table and, with ``--json``, writes the numbers and
the device's name. On a CPU the ranks share the machine's cores: 2 ranks x 1 thread on 2 cores is the fair
comparison with 1 rank x 1 thread.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def device_name(device: str) -> str:
    """The GPU's name, or the CPU's model name and core count."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(0)
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
    except OSError:
        names = []
    return f"{names[0] if names else platform.processor() or 'CPU'} ({os.cpu_count()} cores)"


def worker(args: argparse.Namespace) -> None:
    """One process of a run: time every level of the default tree; rank 0 writes ``--out``."""
    from tempomaster_core.distributed import active, init_from_environment, launched_by_torchrun, split_mode, use_ranks
    from tempomaster_core.pipeline import run_blueprint, run_refinement
    from tempomaster_core.tiny.builtin import default_plan, load_builtin

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    ranks = None
    if launched_by_torchrun():
        ranks, device = init_from_environment(device, timeout=600)
    bundle = load_builtin(device=device)
    d = bundle.defaults
    plan = default_plan({**d, **({"height": args.size, "width": args.size} if args.size else {})},
                        int(bundle.codec.temporal_factor))
    positive, negative = bundle.encode_prompt("two red balls bouncing from left to right"), bundle.encode_prompt("")
    per_level = [dict(steps=d["steps"][i], shift=d["shifts"][i], cfg=d["cfg"][i], guidance=d["guidance"], seed=0)
                 for i in range(plan.num_levels)]

    def start() -> float:
        if active() is not None:
            active().sync()  # every rank starts the level together
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()

    def tree() -> list[float]:
        times = []
        t = start()
        result = run_blueprint(bundle.model, bundle.codec, positive, negative, plan, **per_level[0])
        times.append(time.perf_counter() - t)
        for i in range(1, plan.num_levels):
            t = start()
            result = run_refinement(bundle.model, bundle.codec, result, positive, negative, **per_level[i])
            times.append(time.perf_counter() - t)
        return times

    with use_ranks(ranks):
        tree()  # warm-up
        runs = [tree() for _ in range(args.repeats)]
    if ranks is None or ranks.is_main:
        world = ranks.world_size if ranks is not None else 1
        levels = [dict(level=i, chunks=level.num_chunks, cfg=per_level[i]["cfg"],
                       mode=split_mode(level.num_chunks, world, 2 if per_level[i]["cfg"] != 1 else 1) if world > 1
                       else "single", seconds=[run[i] for run in runs])
                  for i, level in enumerate(plan.levels)]
        Path(args.out).write_text(json.dumps(dict(world_size=world, levels=levels)))
    if ranks is not None:
        ranks.close()


def _run(command: list, threads: int) -> None:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT))
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    subprocess.run(command, cwd=ROOT, env=env, check=True, timeout=1800)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ranks", type=int, default=2, help="ranks of the shared run (default 2)")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads per process (default 1)")
    p.add_argument("--repeats", type=int, default=3, help="timed trees per run, after one warm-up (default 3)")
    p.add_argument("--rounds", type=int, default=3, help="runs of each kind, alternating (default 3)")
    p.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (NCCL, one GPU per rank)")
    p.add_argument("--size", type=int, help="frame height and width in pixels (default: the model's, 64)")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)

    me = [str(Path(__file__).resolve()), "--worker", "--threads", str(args.threads), "--repeats", str(args.repeats),
          "--device", args.device, *(["--size", str(args.size)] if args.size else [])]
    singles, multis = [], []
    with tempfile.TemporaryDirectory() as tmp:
        one, shared = Path(tmp) / "one.json", Path(tmp) / "shared.json"
        for _ in range(args.rounds):
            _run([sys.executable, *me, "--out", str(one)], args.threads)
            _run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.ranks}",
                  *me, "--out", str(shared)], args.threads)
            singles.append(json.loads(one.read_text()))
            multis.append(json.loads(shared.read_text()))
    rows = []
    for i, (a, b) in enumerate(zip(singles[0]["levels"], multis[0]["levels"])):
        t1 = statistics.median(t for run in singles for t in run["levels"][i]["seconds"])
        tn = statistics.median(t for run in multis for t in run["levels"][i]["seconds"])
        rows.append(dict(level=a["level"], chunks=a["chunks"], cfg=a["cfg"], mode=b["mode"], one_rank_s=t1,
                         ranks_s=tn, ratio=tn / t1))
    total_one, total_multi = sum(r["one_rank_s"] for r in rows), sum(r["ranks_s"] for r in rows)
    result = dict(device=device_name(args.device), size=args.size or "model default", backend="nccl" if args.device.startswith("cuda") else "gloo",
                  ranks=args.ranks, threads_per_rank=args.threads, repeats=args.repeats, rounds=args.rounds,
                  torch=torch.__version__,
                  levels=rows, total=dict(one_rank_s=total_one, ranks_s=total_multi, ratio=total_multi / total_one),
                  ideal_ratio=1 / args.ranks)
    print(f"{result['device']}, {args.ranks} ranks x {args.threads} thread(s) ({result['backend']}) vs 1 x "
          f"{args.threads}, frame size {result['size']}, median of {args.rounds} x {args.repeats}")
    print("| level | chunks | cfg | split on the ranks | 1 rank (s) | ranks (s) | ratio |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['level']} | {r['chunks']} | {r['cfg']:g} | {r['mode']} | {r['one_rank_s']:.3f} | "
              f"{r['ranks_s']:.3f} | {r['ratio']:.2f} |")
    print(f"| all | | | | {total_one:.3f} | {total_multi:.3f} | {total_multi / total_one:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
