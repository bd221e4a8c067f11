"""Block swap: keep N of the DiT's blocks in host memory and stream each to the GPU just before it runs.

The 14B DiT's 40 blocks are 99 % of its weights (715 MB each in bf16, 351 MB in fp8). With
``BlockSwap(model, N, "cuda")`` blocks ``0 .. N-1`` live in (pinned) CPU memory; everything else
is moved to the compute device. During a forward:

* when the forward starts, block 0's weights are copied to the GPU on a side CUDA stream;
* when a swapped block starts, the forward waits for its copy, and the next swapped block's copy
  starts on the side stream (it overlaps this block's compute);
* when a swapped block ends, its parameters point at the host copies again.

The copies go into two preallocated device slots (block ``i`` into slot ``i % 2``; a copy waits
on the GPU for the block that used its slot before), so two swapped blocks are on the GPU at
most (the cost model's assumption, :func:`tempomaster_core.cost.level_cost` ``blocks_to_swap``),
each forward copies ``N`` blocks over PCIe, and nothing is copied back (the host copies are never
modified). The results are those of the resident model: the same weights in the same dtype, the
same kernels.

On a machine without CUDA the same logic runs synchronously: every swapped block is copied into
its slot on the compute device (a real copy even from CPU to CPU) before it runs, so the swap is
testable anywhere. Inference only: the host copies are detached from autograd.

Anchors: WanVideoWrapper's ``WanVideoBlockSwap`` (the first N blocks offloaded), FramePack's
``DynamicSwapInstaller``; this module is written from the description above.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Optional

import torch
import torch.nn as nn

from .cost import SWAP_SLOTS


class BlockSwap:
    """Install block swap on a :class:`~tempomaster_core.model.TempoMasterDiT` (see module doc).

    Args:
        model: the DiT (weights anywhere; they are moved here).
        blocks_to_swap: how many blocks to keep in host memory (``0 .. len(model.blocks)``);
            blocks ``0 .. blocks_to_swap-1`` are swapped.
        device: the compute device (``"cuda"``, ``"cuda:1"``, ``"cpu"``).
        pin_memory: pin the host copies (default: when ``device`` is CUDA); pinned memory is what
            makes the copies asynchronous.
        prefetch: copy the next swapped block on a side stream while the current one computes
            (CUDA only; default on).

    Attributes:
        swapped: indices of the swapped blocks.
        copies: swapped-block copies made so far (``blocks_to_swap`` per forward).

    The device copies go into two preallocated slots (block ``i`` uses slot ``i % 2``); a copy
    into a slot waits, on the GPU, for the end of the block that used it last. So the device
    holds exactly two swapped blocks' worth of weights, whatever the CPU's lead over the GPU.
    After installing, ``model.device`` is ``device``. Call :meth:`remove` before moving the
    model with ``.to()``.

    Raises:
        ValueError: ``blocks_to_swap`` out of range, or swapped blocks of different layouts.
    """

    SLOTS = SWAP_SLOTS

    def __init__(self, model: nn.Module, blocks_to_swap: int, device, *, pin_memory: Optional[bool] = None,
                 prefetch: bool = True):
        blocks = model.blocks
        if isinstance(blocks_to_swap, bool) or not isinstance(blocks_to_swap, int) or not 0 <= blocks_to_swap <= len(blocks):
            raise ValueError(f"blocks_to_swap must be an integer in 0..{len(blocks)} (the DiT's blocks), got {blocks_to_swap!r}")
        self.model = model
        self.device = torch.device(device)
        self._cuda = self.device.type == "cuda"
        self.swapped = tuple(range(blocks_to_swap))
        self.copies = 0
        self._stream = torch.cuda.Stream(self.device) if self._cuda and prefetch else None
        pin = self._cuda if pin_memory is None else bool(pin_memory)
        for index, block in enumerate(blocks):
            if index >= blocks_to_swap:
                block.to(self.device)
        for name, module in model.named_children():
            if name != "blocks":
                module.to(self.device)
        self._home: dict[int, list[tuple[nn.Parameter, torch.Tensor]]] = {}
        for index in self.swapped:
            pairs = []
            for param in blocks[index].parameters():
                home = param.detach().to("cpu", copy=True)
                home = home.pin_memory() if pin else home
                param.data = home
                pairs.append((param, home))
            self._home[index] = pairs
        layouts = {tuple((h.shape, h.dtype) for _p, h in pairs) for pairs in self._home.values()}
        if len(layouts) > 1:
            raise ValueError("the swapped blocks hold tensors of different shapes or dtypes; block swap needs equal blocks")
        self._slots = [
            [torch.empty_like(home, device=self.device) for _p, home in self._home[self.swapped[0]]]
            for _ in range(min(self.SLOTS, blocks_to_swap))
        ]
        self._slot_free: list = [None] * len(self._slots)  # compute-stream event: last user of the slot done
        self._ready: dict[int, object] = {}  # block -> copy-done event (or True without a side stream)
        self._on_device: set[int] = set()
        model.device = self.device
        self._hooks = [model.register_forward_pre_hook(self._forward_starts)]
        for index in self.swapped:
            self._hooks.append(blocks[index].register_forward_pre_hook(self._block_starts(index)))
            self._hooks.append(blocks[index].register_forward_hook(self._block_ends(index)))

    # -- copies -------------------------------------------------------------------------------

    def _copy(self, index: int) -> None:
        """Start copying block ``index`` into its slot (on the side stream when there is one)."""
        if index in self._ready or index in self._on_device:
            return
        slot = index % len(self._slots)
        stream = self._stream
        if stream is not None and self._slot_free[slot] is not None:
            stream.wait_event(self._slot_free[slot])
        with torch.cuda.stream(stream) if stream is not None else nullcontext():
            for (_param, home), buffer in zip(self._home[index], self._slots[slot]):
                buffer.copy_(home, non_blocking=self._cuda)
            done = True
            if stream is not None:
                done = torch.cuda.Event()
                done.record(stream)
        self._ready[index] = done
        self.copies += 1

    def _load(self, index: int) -> None:
        self._copy(index)
        done = self._ready.pop(index)
        if done is not True:
            torch.cuda.current_stream(self.device).wait_event(done)
        for (param, _home), buffer in zip(self._home[index], self._slots[index % len(self._slots)]):
            param.data = buffer
        self._on_device.add(index)

    def _unload(self, index: int) -> None:
        for param, home in self._home[index]:
            param.data = home
        self._on_device.discard(index)
        if self._stream is not None:
            free = torch.cuda.Event()
            free.record(torch.cuda.current_stream(self.device))
            self._slot_free[index % len(self._slots)] = free

    # -- hooks --------------------------------------------------------------------------------

    def _forward_starts(self, _module, _args) -> None:
        if self.swapped and self._stream is not None:
            self._copy(self.swapped[0])

    def _block_starts(self, index: int):
        def hook(_module, _args):
            self._load(index)
            following = index + 1
            if self._stream is not None and following in self._home:
                self._copy(following)
        return hook

    def _block_ends(self, index: int):
        def hook(_module, _args, _output):
            self._unload(index)
        return hook

    # -- state ----------------------------------------------------------------------------------

    def device_bytes(self) -> int:
        """Bytes of the two device slots (what block swap keeps on the device for the swapped blocks)."""
        return sum(t.numel() * t.element_size() for slot in self._slots for t in slot)

    def host_bytes(self) -> int:
        """Bytes of the swapped blocks' weights in host memory."""
        return sum(home.numel() * home.element_size() for pairs in self._home.values() for _p, home in pairs)

    def remove(self) -> None:
        """Remove the hooks and free the device slots; the swapped blocks stay in host memory
        (``model.to(device)`` brings them back)."""
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        for index in list(self._on_device):
            self._unload(index)
        if self._stream is not None:
            self._stream.synchronize()
        self._ready.clear()
        self._slots = []
