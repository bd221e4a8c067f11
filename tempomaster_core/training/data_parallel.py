"""Data-parallel training over ``torch.distributed`` ranks (``torchrun``), for :mod:`.train_dit`.

Every rank holds the whole DiT and text encoder (the same initial weights: they come from the one
``--seed``, or from ``--init``), draws and encodes its own share of each step's samples from its own
random streams, and computes the loss gradient of its share. :meth:`TrainRanks.average_gradients`
then averages the gradients over the ranks, so each rank applies the same update: the gradient of
the mean loss over the whole batch, as one process training on all of it would. The optimiser, the
gradient clipping and the EMA then stay identical on every rank without any more communication.

What it buys: every rank renders, encodes and trains its own samples, so the sample rate grows with
the ranks where each has its own cores or GPU (on a GPU the rate is bound by rendering on the CPU,
model card). On the 2-core development CPU it buys nothing: two ranks of one thread each (batch 8
each) trained at about 50 samples/s, as fast as one process of two threads at batch 16 (50-54).

Decisions only one rank can make alone (the step count estimated from its timing, the time budget)
are taken on rank 0 and broadcast every step (:meth:`TrainRanks.agree`), so every rank runs the
same number of steps and no collective waits for a rank that has stopped. Rank 0 alone logs,
validates and writes files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

import torch


@dataclass(frozen=True)
class TrainRanks:
    """This process's place among the training ranks: ``rank`` in ``[0, world_size)``.

    ``TrainRanks()`` (rank 0 of 1) is one process; its methods then do nothing, so single-process
    training runs exactly as before data parallelism existed.
    """

    rank: int = 0
    world_size: int = 1

    @staticmethod
    def current() -> "TrainRanks":
        """The ranks of the initialised default ``torch.distributed`` process group, or one process."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return TrainRanks(dist.get_rank(), dist.get_world_size())
        return TrainRanks()

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that logs, validates and writes files."""
        return self.rank == 0

    def share(self, batch: int) -> int:
        """Samples per rank and step of a global ``batch``.

        Raises:
            ValueError: ``batch`` is not a multiple of ``world_size``.
        """
        if batch % self.world_size:
            raise ValueError(f"batch {batch} cannot be split evenly over {self.world_size} ranks; use a batch "
                             f"that is a multiple of {self.world_size}")
        return batch // self.world_size

    def average_gradients(self, params: Iterable[torch.nn.Parameter], loss: torch.Tensor) -> torch.Tensor:
        """Replace every parameter's gradient by its mean over the ranks, and return the ranks' mean ``loss``.

        A parameter without a gradient on this rank (e.g. the text encoder when all of this rank's
        captions were dropped to the empty prompt) counts as a zero gradient, so every rank sends
        the same layout; after the call every parameter has a gradient. One ``all_reduce`` of a flat
        float32 buffer per step.
        """
        if self.world_size == 1:
            return loss.detach()
        import torch.distributed as dist

        params = list(params)
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1).float() for g in grads] + [loss.detach().reshape(1).float()])
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for p, g in zip(params, grads):
            n = g.numel()
            p.grad = flat[offset:offset + n].view_as(g).to(g.dtype)  # a view of the reduced buffer
            offset += n
        return flat[-1].clone()

    def agree(self, stop: bool, total: int) -> tuple[bool, int]:
        """Rank 0's ``(stop, total)`` on every rank (its time-budget stop and its step count)."""
        if self.world_size == 1:
            return stop, total
        import torch.distributed as dist

        decision = torch.tensor([int(stop), int(total)], dtype=torch.int64)
        dist.broadcast(decision, src=0)
        return bool(decision[0]), int(decision[1])


def join_from_environment(device: str) -> Optional[torch.device]:
    """Join the ``torchrun`` process group when this process was started by ``torchrun``.

    Returns:
        This rank's device (``cpu``, or ``cuda:LOCAL_RANK`` for ``--device cuda``), or None when
        ``torchrun`` did not start the process (one process; nothing is joined).

    Raises:
        tempomaster_core.validation.InputError: a device the ranks cannot share
            (:func:`tempomaster_core.distributed.init_from_environment`).
    """
    from ..distributed import init_from_environment, launched_by_torchrun

    if not launched_by_torchrun():
        return None
    _, rank_device = init_from_environment(torch.device(device))
    return rank_device
