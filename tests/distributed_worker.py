"""One rank of a ``torchrun`` test run (``tests/test_distributed_launch.py``): ``torchrun ... distributed_worker.py
SCENARIO OUT_DIR``.

Scenarios:
    builtin  the built-in model's default tree and recommended settings (1 chunk, 2 chunks, 4 chunks).
    tiny     a random tiny DiT and the toy codec on a tree with 1, 3 and 3 chunks (uneven on 2 ranks).
    fail     as ``tiny``, rank 1 raising MemoryError at its 5th forward (a chunk-mode level).
    mismatch rank 1 reports another model file at the start-up check.

Rank 0 saves ``{"distributed": frames, "single": frames}`` (float32 ``[F, H, W, 3]``, the second made
after the group is left, on one device) to ``OUT_DIR/frames.pt``; errors end the process with exit code 1
and ``error: ...`` on stderr.
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tempomaster_core.distributed import init_from_environment, use_ranks  # noqa: E402
from tempomaster_core.pipeline import generate  # noqa: E402
from tempomaster_core.plan import TreePlan  # noqa: E402


class FailOnFifthForward:
    def __init__(self, model):
        self.model, self.calls = model, 0

    def __getattr__(self, name):
        return getattr(self.model, name)

    def __call__(self, *args):
        self.calls += 1
        if self.calls == 5:
            raise MemoryError("out of memory on rank 1 (test)")
        return self.model(*args)


def job(scenario: str, rank: int):
    """``(model, codec, positive, negative, plan, sampling keyword arguments)`` of a scenario."""
    if scenario == "builtin":
        from tempomaster_core.tiny.builtin import default_plan, load_builtin

        bundle = load_builtin()
        d = bundle.defaults
        plan = default_plan(d, int(bundle.codec.temporal_factor))
        texts = bundle.encode_prompt("two red balls bouncing from left to right"), bundle.encode_prompt("")
        return bundle.model, bundle.codec, *texts, plan, dict(steps=d["steps"], shifts=d["shifts"], cfg=d["cfg"],
                                                                guidance=d["guidance"], seed=1)
    from tiny_models import make_tiny_dit
    from toy_codec import ToyCodec

    model = make_tiny_dit(seed=0)
    if scenario == "fail" and rank == 1:
        model = FailOnFifthForward(model)
    gen = torch.Generator().manual_seed(5)
    texts = torch.randn(1, 7, 24, generator=gen), torch.randn(1, 7, 24, generator=gen)
    plan = TreePlan(13, (4, 2, 1), (3, 3), height=32, width=32)
    return model, ToyCodec(), *texts, plan, dict(steps=[2, 2, 2], shifts=[5.0, 3.0, 3.0], cfg=[4.0, 4.0, 1.0],
                                                 guidance="apg", seed=3)


def main(scenario: str, out: Path) -> int:
    torch.set_num_threads(1)
    ranks, _ = init_from_environment(torch.device("cpu"), timeout=60)
    try:
        if scenario == "mismatch":
            ranks.check_same({"model file dit.safetensors": "a" if ranks.rank == 0 else "b"})
        model, codec, positive, negative, plan, sampling = job(scenario, ranks.rank)
        with use_ranks(ranks):
            frames = generate(model, codec, positive, negative, plan, **sampling)
    except Exception as exc:
        print(f"error: rank {ranks.rank}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        ranks.close()
    if ranks.rank == 0:
        single = generate(model, codec, positive, negative, plan, **sampling)
        torch.save({"distributed": frames, "single": single}, out / "frames.pt")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], Path(sys.argv[2])))
