"""One rank of the data-parallel training tests (``tests/test_train_data_parallel.py``):
``torchrun --nproc-per-node 2 train_ranks_worker.py OUT_DIR``.

Each rank computes the flow-matching gradient of its half of one fixed batch of 4 samples (the same
micro DiT, batch, noise and sigma on both ranks) and averages it with :class:`TrainRanks`. Rank 0 saves
``{"averaged": [grads], "full": [grads of the whole batch in this one process], "loss_averaged",
"loss_full"}`` to ``OUT_DIR/grads.pt``.
"""

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tempomaster_core.training.data_parallel import TrainRanks, join_from_environment  # noqa: E402
from tempomaster_core.training.train_dit import Batch, build_models, flow_matching_loss, make_batch  # noqa: E402
from test_train_dit import micro_codec, micro_cfg  # noqa: E402


def half(batch: Batch, rank: int) -> Batch:
    pick = slice(2 * rank, 2 * rank + 2)
    return Batch(batch.x0[pick], batch.y[pick], batch.positions[pick], batch.shifts[pick], batch.captions[pick],
                 batch.kinds[pick])


def gradients(model, text, batch, u, noise, ranks=None):
    model.zero_grad(set_to_none=True)
    text.zero_grad(set_to_none=True)
    loss, _ = flow_matching_loss(model, text, batch, torch.Generator(), u=u, noise=noise,
                                 temporal_difference_weight=0.5)
    loss.backward()
    params = list(model.parameters()) + list(text.parameters())
    if ranks is not None:
        loss = ranks.average_gradients(params, loss)
    return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params], float(loss)


def main(out: Path) -> None:
    torch.set_num_threads(1)
    join_from_environment("cpu")
    ranks = TrainRanks.current()
    codec, cfg = micro_codec(), micro_cfg()
    model, text = build_models(codec, cfg, seed=0)
    torch.nn.init.normal_(model.head.head.weight, std=0.1)
    batch = make_batch(np.random.default_rng(4), codec, 4, cfg)
    u = torch.tensor([0.15, 0.4, 0.65, 0.9])
    noise = torch.randn(batch.x0.shape, generator=torch.Generator().manual_seed(9))
    pick = slice(2 * ranks.rank, 2 * ranks.rank + 2)
    averaged, loss_averaged = gradients(model, text, half(batch, ranks.rank), u[pick], noise[pick], ranks)
    torch.distributed.destroy_process_group()
    if ranks.is_main:
        full, loss_full = gradients(model, text, batch, u, noise)
        torch.save({"averaged": averaged, "full": full, "loss_averaged": loss_averaged, "loss_full": loss_full},
                   out / "grads.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
