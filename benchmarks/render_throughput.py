"""Throughput of the training data path on this machine: rendered samples per second from
``RenderedChunks`` with N DataLoader worker processes, and the encode step on a device.

    python benchmarks/render_throughput.py --workers 0,2 --chunks 20 [--device cuda] [--threads 1]

Prints one line per worker count: chunks, samples, seconds, samples/s (the rate the trainer's
``--workers N`` can feed at most; with ``--reuse R`` a training step of batch B needs B/R of them).
"""

import argparse
import time

import torch

from tempomaster_core.tiny.builtin import builtin_dir
from tempomaster_core.tiny.codec import TinyVideoCodec
from tempomaster_core.training.train_dit import RenderedChunks, TrainConfig, encode_batch, rendered_chunk_loader


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workers", default="0,2", help="comma-separated worker counts")
    p.add_argument("--chunks", type=int, default=20, help="chunks timed per worker count (after one warm-up chunk)")
    p.add_argument("--chunk-size", type=int, default=32, help="samples per chunk (batch // reuse in training)")
    p.add_argument("--device", default=None, help="also encode every chunk with the built-in codec on this device")
    p.add_argument("--threads", type=int, default=None, help="torch threads of the main process")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    codec = TinyVideoCodec.load(builtin_dir()).to(a.device) if a.device else None
    print(f"threads {torch.get_num_threads()}, device {a.device or '-'}")
    for workers in [int(w) for w in a.workers.split(",")]:
        data = RenderedChunks(0, a.chunk_size, TrainConfig(), 4, chunks=a.chunks + 1)
        it = iter(rendered_chunk_loader(data, workers))
        next(it)
        t = time.perf_counter()
        for chunk in it:
            if codec is not None:
                encode_batch(codec, chunk)
        dt = time.perf_counter() - t
        n = a.chunks * a.chunk_size
        print(f"workers {workers:3d}: {a.chunks} chunks, {n} samples in {dt:.2f} s = {n / dt:.0f} samples/s")


if __name__ == "__main__":
    main()
