"""A level's chunks and guidance passes shared over ranks (tempomaster_core.distributed).

Fast checks use the in-process thread transport (the ComfyUI device list's) and gloo at
world size 1; the real multi-process gloo runs (spawned by torchrun, with a hard timeout)
are marked slow.
"""

import time

import pytest
import torch

from tempomaster_core.device_threads import run_in_threads
from tempomaster_core.distributed import (
    RankFailure, RankGroup, RankMismatch, TorchDistributed, shares, split_mode, use_ranks,
)
from tempomaster_core.pipeline import generate
from tempomaster_core.plan import TreePlan
from tiny_models import make_tiny_dit
from toy_codec import ToyCodec

# a 3-level tree with uneven chunk counts: blueprint 1 chunk (guided: guidance passes split),
# level 1 three chunks (guided: 6 forward items, 3 per rank), level 2 three chunks (cfg 1: 2 + 1 on 2 ranks)
PLAN = TreePlan(13, (4, 2, 1), (3, 3), height=32, width=32)
SAMPLING = dict(steps=[2, 2, 2], shifts=[5.0, 3.0, 3.0], cfg=[4.0, 4.0, 1.0], guidance="apg", seed=3)
TIMEOUT = 60.0


@pytest.fixture(scope="module")
def texts():
    gen = torch.Generator().manual_seed(5)
    return torch.randn(1, 7, 24, generator=gen), torch.randn(1, 7, 24, generator=gen)


def _run(model, texts, **kw):
    return generate(model, ToyCodec(), *texts, PLAN, return_levels=True, **{**SAMPLING, **kw})


@pytest.fixture(scope="module")
def single(tiny, texts):
    return _run(tiny, texts)


def _same(a, b):
    (images_a, levels_a), (images_b, levels_b) = a, b
    assert torch.equal(images_a, images_b)
    for x, y in zip(levels_a, levels_b):
        assert torch.equal(x.latents, y.latents), x.level_index
        assert torch.equal(x.frames, y.frames), x.level_index


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_give_the_frames_of_one_device(tiny, texts, single, world):
    """2 ranks (blueprint and the 3 guided chunks in batch mode, 3 unguided chunks as 2 + 1) and 3 ranks
    (an idle rank on the blueprint) give every level bit for bit as one device, on every rank."""
    lines = []
    results = run_in_threads(lambda rank, ranks: _run(tiny, texts), world, timeout=TIMEOUT, log=lines.append)
    for result in results:
        _same(result, single)
    assert (lines == ["level 0: 2 forward items for 3 ranks; ranks 2..2 wait"]) == (world == 3), lines


def test_chunk_mode_with_guidance_and_max_batch(tiny, texts):
    """cfg batching off (guided chunks split as chunks, 2 + 1) and max_batch 2: still one device's bits."""
    kw = dict(cfg_batching=False, max_batch=2)
    one = _run(tiny, texts, **kw)
    for result in run_in_threads(lambda rank, ranks: _run(tiny, texts, **kw), 2, timeout=TIMEOUT):
        _same(result, one)


def test_split_rule_and_shares():
    assert shares(5, 2) == [(0, 3), (3, 5)] and shares(1, 3) == [(0, 1), (1, 1), (1, 1)]
    assert split_mode(1, 2, passes=2) == "batch"  # the guided blueprint: one pass per rank
    assert split_mode(3, 2, passes=2) == "batch"  # 3 items per rank instead of 4
    assert split_mode(4, 2, passes=2) == "chunks"
    assert split_mode(1, 2, passes=1) == "chunks"  # cfg 1: nothing to split, rank 1 waits


class _FailOnRank:
    """The tiny DiT, raising on one rank at its n-th forward (another device running out of memory)."""

    def __init__(self, model, rank, calls):
        self.model, self.rank, self.calls = model, rank, calls

    def __getattr__(self, name):
        return getattr(self.model, name)

    def __call__(self, *args):
        self.calls -= 1
        if self.calls == 0:
            raise MemoryError(f"rank {self.rank}: out of memory (test)")
        return self.model(*args)


@pytest.mark.parametrize("calls", [1, 5], ids=["blueprint-batch-mode", "level2-chunk-mode"])
def test_a_failing_rank_stops_every_rank_with_its_error(tiny, texts, calls):
    seen = []

    def work(rank, ranks):
        model = _FailOnRank(tiny, rank, calls) if rank == 1 else tiny
        try:
            return _run(model, texts)
        except RankFailure as exc:
            seen.append((rank, exc))
            raise

    started = time.perf_counter()
    with pytest.raises(MemoryError, match="rank 1: out of memory"):
        run_in_threads(work, 2, timeout=TIMEOUT)
    assert time.perf_counter() - started < 10
    (rank0, error0), = [s for s in seen if s[0] == 0]
    assert error0.rank == 1 and "rank 1 of 2 failed, so rank 0 stopped too: MemoryError" in str(error0)


def test_different_files_on_a_rank_are_refused(tiny):
    def work(rank, ranks):
        ranks.check_same({"file dit.safetensors": "aaa" if rank == 0 else "bbb", "settings": "s"})

    with pytest.raises(RankMismatch, match="rank 1 differs from rank 0 in file dit.safetensors"):
        run_in_threads(work, 2, timeout=TIMEOUT)


def test_gloo_world_size_one_is_the_torchrun_code_path(tiny, texts, single):
    """The torch.distributed transport (gloo, one rank) in the pipeline: the one-device result."""
    import torch.distributed as dist

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        ranks = RankGroup(TorchDistributed(torch.device("cpu")))
        with use_ranks(ranks):
            _same(_run(tiny, texts), single)
        ranks.check_same({"settings": "x"})
    finally:
        dist.destroy_process_group()


def test_a_chunk_forward_does_not_depend_on_the_batch():
    """At the built-in model's width (192) oneDNN's Conv3d patch embedding and BLAS's matmul of a
    5-token text context round a batch of 2-3 items differently from one item alone; the DiT computes
    those layers item by item, so a chunk's velocity has the same bits whatever is batched with it
    (cfg batching, max_batch, ranks). Fails without tempomaster_core.model.per_item."""
    model = make_tiny_dit(seed=1, dim=192, ffn_dim=64, num_heads=6, num_layers=1)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(3, 16, 3, 16, 16, generator=gen), torch.randn(3, 20, 3, 16, 16, generator=gen)
    ctx, t = torch.randn(3, 5, 24, generator=gen), torch.full((3,), 500.0)
    pos = torch.arange(3.0).repeat(3, 1)
    with torch.no_grad():
        for context in (ctx, ctx[:1]):  # one context per item (cfg batching), one shared context
            full = model(x, t, context, y, pos)
            alone = model(x[:1], t[:1], context[:1], y[:1], pos[:1])
            rest = model(x[1:], t[1:], context[1:] if len(context) > 1 else context, y[1:], pos[1:])
            assert torch.equal(full[:1], alone) and torch.equal(full[1:], rest)
