"""Several devices for one video: a level's chunks, or its guidance passes, shared over ranks.

The chunks of a refinement level have no causal dependency (paper method section; the
pipeline already denoises them in slices, ``LevelSettings.max_batch``), so a level is
split over ``world_size`` ranks and joined again before the next level:

* **chunks** mode: rank ``r`` encodes, denoises and decodes its contiguous share of the
  level's chunks (:func:`shares`; rank 0 gets chunk 0, the progress preview), then the
  latents and the decoded chunks are gathered, so every rank holds the whole
  :class:`~tempomaster_core.pipeline.LevelResult` and builds the next level's condition
  clips itself. No communication during the denoising steps.
* **batch** mode (guidance parallel): where that leaves ranks idle and the level runs the
  positive and negative passes as one forward (``cfg != 1`` with ``cfg_batching``, equal
  embedding lengths) -- the blueprint is one chunk -- every rank runs the level's sampling
  loop on all chunks, and each DiT forward of ``2b`` items (``b`` positive, ``b``
  negative) is split over the ranks (:class:`BatchSplitModel`): rank ``r`` computes its
  contiguous share of the batch and the velocities are all-gathered after every forward.
  The guidance and Euler updates then run identically on every rank. Chosen by
  :func:`split_mode` when it puts fewer items on the busiest rank than chunks mode does.

Exactness: the noise is drawn once for the whole level by the pipeline
(:func:`~tempomaster_core.sampling.seeded_noise`) and sliced; every chunk's encode,
forwards, guidance state, Euler steps and decode are its own, and a DiT forward gives a
batch item the same bits whatever else is in the batch (CPU, fp32 and bf16: the time and
patch embeddings are computed per item, :meth:`~tempomaster_core.model.TempoMasterDiT.forward`;
the VAE encode is per sample). So 1, 2 or N ranks give bit-identical latents and frames
on CPU (``tests/test_distributed.py``). On GPUs, cuBLAS may pick other kernels for another
batch size, which can change the last bits (not measured here).

Transports: :class:`TorchDistributed` (``torch.distributed``: gloo for CPU tensors, NCCL
for CUDA, launched by ``torchrun``; see :func:`init_from_environment`) and
:class:`~tempomaster_core.device_threads.ThreadTransport` (one thread per device in one
process, the ComfyUI nodes). Both only need :meth:`all_gather` (same-shape tensors) and
:meth:`all_gather_object`.

Failures: every rank passes the same sync points; a rank that raises tells the others
there (:meth:`RankGroup.sync`), so every rank stops with the failing rank's message
(:class:`RankFailure`) instead of waiting; a rank that never arrives (killed, stuck) makes
the others' collectives time out (``timeout`` of :func:`init_from_environment`).

The pipeline reads the group from :func:`active` (set with :func:`use_ranks`), so every
entry point (``generate``, ``run_blueprint``, ``run_refinement``, the continuation and
long video) shares its levels without an extra argument.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import math
import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence

import torch

from .sharing import shares, split_mode
from .validation import InputError

__all__ = [
    "BatchSplitModel", "DEFAULT_TIMEOUT_S", "LevelWork", "RankFailure", "RankGroup", "RankMismatch",
    "TorchDistributed", "active", "code_fingerprint", "file_fingerprints", "init_from_environment",
    "launched_by_torchrun", "level_work", "settings_fingerprint", "shares", "split_mode", "use_ranks",
]

DEFAULT_TIMEOUT_S = 1800.0
"""Seconds a collective waits for the other ranks (torch's own default for gloo). A level's
sync waits for the slowest rank's share, so this must exceed the longest share of a level."""


class RankFailure(RuntimeError):
    """Another rank (or this one) failed; every rank raises it at the same sync point.

    Attributes:
        rank: the first rank that failed.
        world_size: ranks in the group.
        detail: that rank's error, as ``"TypeName: message"``.
    On the failing rank the original exception is the ``__cause__``.
    """

    def __init__(self, message: str, rank: int, world_size: int, detail: str) -> None:
        super().__init__(message)
        self.rank, self.world_size, self.detail = rank, world_size, detail


class RankMismatch(InputError):
    """Ranks started with different model files, code or settings (found by the start-up hash check)."""


# -- transports -------------------------------------------------------------------------


class TorchDistributed:
    """``torch.distributed`` as the transport of a :class:`RankGroup` (the default process group).

    Args:
        device: where collectives run: CPU for gloo, the rank's CUDA device for NCCL.
    """

    def __init__(self, device: torch.device) -> None:
        import torch.distributed as dist

        self._dist = dist
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.device = torch.device(device)

    def all_gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's ``tensor`` (same shape and dtype on every rank), on ``tensor``'s device."""
        local = tensor.detach().to(self.device).contiguous()
        out = [torch.empty_like(local) for _ in range(self.world_size)]
        self._dist.all_gather(out, local)
        return [o.to(tensor.device) for o in out]

    def all_gather_object(self, obj: Any) -> list:
        """Every rank's picklable ``obj``."""
        out = [None] * self.world_size
        self._dist.all_gather_object(out, obj)
        return out

    def close(self) -> None:
        """Leave the process group (``destroy_process_group``)."""
        if self._dist.is_initialized():
            self._dist.destroy_process_group()


def launched_by_torchrun(environ: Mapping[str, str] = os.environ) -> bool:
    """True when ``torchrun`` (or another ``env://`` launcher) started this process: ``RANK``,
    ``WORLD_SIZE`` and ``LOCAL_RANK`` are set."""
    return all(key in environ for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def init_from_environment(device: torch.device, *, timeout: float = DEFAULT_TIMEOUT_S,
                          log: Optional[Callable[[str], None]] = None) -> tuple["RankGroup", torch.device]:
    """Join the ``torchrun`` process group (``env://``: ``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``,
    ``WORLD_SIZE``, ``LOCAL_RANK``) and pick this rank's device.

    Args:
        device: the device the user asked for: ``cpu`` (gloo) or ``cuda`` without an index
            (NCCL; rank ``LOCAL_RANK`` takes ``cuda:LOCAL_RANK``); ``cuda:N`` only with one rank.
        timeout: seconds any collective (and the rendezvous) waits before it fails.
        log: where rank 0's one-line messages go (default: stderr).

    Returns:
        ``(group, device of this rank)``.

    Raises:
        InputError: ``cuda:N`` with several ranks; more ranks on a machine than CUDA devices;
            a device type other than cpu/cuda; a timeout that is not > 0.
        RuntimeError: the rendezvous failed (from ``torch.distributed``).
    """
    import torch.distributed as dist

    if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
        raise InputError(f"the collective timeout must be a number of seconds > 0, got {timeout!r}")
    world, local_rank = int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    device = torch.device(device)
    if device.type == "cuda":
        if device.index is not None and world > 1:
            raise InputError(f"--device {device} with {world} ranks would put every rank on one GPU; pass "
                             "--device cuda (rank LOCAL_RANK takes cuda:LOCAL_RANK)")
        count = torch.cuda.device_count()
        if device.index is None and local_rank >= count:
            raise InputError(f"local rank {local_rank} has no GPU: this machine has {count} CUDA device(s); "
                             f"start at most {count} processes per node (torchrun --nproc-per-node {count})")
        device = torch.device("cuda", device.index if device.index is not None else local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise InputError(f"several ranks run on cpu (gloo) or cuda (NCCL), not on {device.type!r}")
    kwargs = {"device_id": device} if backend == "nccl" else {}
    dist.init_process_group(backend, timeout=timedelta(seconds=float(timeout)), **kwargs)
    transport = TorchDistributed(device if backend == "nccl" else torch.device("cpu"))
    return RankGroup(transport, log=log), device


# -- the group --------------------------------------------------------------------------


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class RankGroup:
    """The ranks that make one video together, over a transport (:class:`TorchDistributed` or
    :class:`~tempomaster_core.device_threads.ThreadTransport`).

    Args:
        transport: ``rank``, ``world_size``, ``all_gather(tensor)``, ``all_gather_object(obj)``.
        log: where rank 0's one-line messages go (default stderr); other ranks say nothing.
    """

    def __init__(self, transport: Any, log: Optional[Callable[[str], None]] = None) -> None:
        self.transport = transport
        self.rank = int(transport.rank)
        self.world_size = int(transport.world_size)
        self._log = log if log is not None else _stderr

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the one that writes files and reports progress)."""
        return self.rank == 0

    def log(self, line: str) -> None:
        """One line, from rank 0 only."""
        if self.is_main:
            self._log(line)

    def sync(self, error: Optional[BaseException] = None) -> None:
        """A sync point: every rank says whether it failed; returns when none did.

        Raises:
            RankFailure: some rank failed (on that rank with its exception as ``__cause__``).
        """
        flags = self.transport.all_gather(torch.tensor([0 if error is None else 1], dtype=torch.int32))
        failed = [r for r, flag in enumerate(flags) if int(flag[0])]
        if not failed:
            return
        details = self.transport.all_gather_object(None if error is None else _describe(error))
        first = failed[0]
        if error is not None:
            raise RankFailure(str(error), self.rank, self.world_size, details[self.rank]) from error
        raise RankFailure(f"rank {first} of {self.world_size} failed, so rank {self.rank} stopped too: "
                          f"{details[first]}", first, self.world_size, details[first])

    def guarded(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` on every rank, then a :meth:`sync`: an exception on any rank stops every rank.

        Raises:
            RankFailure: see :meth:`sync` (a ``RankFailure`` from inside ``fn`` passes as is:
                every rank already raised it at the same point). ``KeyboardInterrupt`` passes
                without a sync (the launcher stops every rank).
        """
        try:
            result = fn()
        except RankFailure:
            raise
        except Exception as exc:
            self.sync(exc)
            raise  # (sync always raises when given an error)
        self.sync()
        return result

    def gather_chunks(self, local: torch.Tensor, parts: Sequence[tuple[int, int]]) -> torch.Tensor:
        """Join every rank's share ``local`` ``[stop - start, ...]`` (rank ``r`` holding
        ``parts[r]``) into ``[total, ...]`` on CPU (shares are padded to the largest for the
        transport)."""
        largest = max(stop - start for start, stop in parts)
        padded = local.new_zeros((largest, *local.shape[1:]))
        padded[: local.shape[0]] = local
        gathered = self.transport.all_gather(padded)
        return torch.cat([g[: stop - start].to("cpu") for g, (start, stop) in zip(gathered, parts)])

    def check_same(self, items: Mapping[str, str]) -> None:
        """Start-up check: every rank has the same ``items`` (name -> digest, e.g. model files,
        code, settings); no other collective runs before it agrees.

        Raises:
            RankMismatch: names every rank and item that differ from rank 0 (on every rank).
        """
        every = self.transport.all_gather_object(dict(items))
        reference = every[0]
        problems = []
        for r, theirs in enumerate(every[1:], start=1):
            names = sorted(k for k in set(reference) | set(theirs) if reference.get(k) != theirs.get(k))
            if names:
                problems.append(f"rank {r} differs from rank 0 in {', '.join(names)}")
        if problems:
            raise RankMismatch("the ranks must run the same model files, code and settings: " + "; ".join(problems)
                               + " (copy the same files and code to every machine and start every rank with the "
                               "same arguments)")

    def close(self) -> None:
        """Close the transport (leave the process group), if it can be closed."""
        close = getattr(self.transport, "close", None)
        if callable(close):
            close()


class BatchSplitModel:
    """A DiT whose every forward is split over the ranks along the batch (guidance parallel).

    Called like the model (``model(x, timestep, context, y, positions) -> v``, every
    argument ``[B, ...]``; ``context``/``timestep``/``positions`` may have batch 1 and are
    then shared): rank ``r`` runs the model on its contiguous share of the ``B`` items
    (:func:`shares`), and the float32 outputs are all-gathered, so every rank returns the
    full ``[B, C, T, h, w]`` float32 velocity. Attributes (``config``, ``dtype``,
    ``parameters``, ...) are the model's.

    Raises:
        RankFailure: a rank's forward failed (every rank raises it, see :meth:`RankGroup.sync`).
    """

    def __init__(self, model: Any, ranks: RankGroup) -> None:
        self._model = model
        self._ranks = ranks

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def __call__(self, x: torch.Tensor, timestep: Any, context: torch.Tensor, y: torch.Tensor,
                 positions: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        parts = shares(batch, self._ranks.world_size)
        start, stop = parts[self._ranks.rank]

        def rows(t: Any) -> Any:
            return t[start:stop] if torch.is_tensor(t) and t.dim() > 0 and t.shape[0] == batch else t

        def forward() -> torch.Tensor:
            if stop == start:
                return x.new_zeros((0, *x.shape[1:]), dtype=torch.float32)
            return self._model(rows(x), rows(timestep), rows(context), rows(y), rows(positions)).float()

        local = self._ranks.guarded(forward)
        return self._ranks.gather_chunks(local, parts).to(x.device)


# -- a level's share ----------------------------------------------------------------------


@dataclass(frozen=True)
class LevelWork:
    """What this rank does for one level (:func:`level_work`).

    Attributes:
        denoise: ``(start, stop)`` chunks this rank encodes and denoises.
        decode: ``(start, stop)`` chunks this rank decodes (inside ``denoise`` in chunks mode;
            any share in batch mode, where every rank denoises every chunk).
        mode: ``"single"`` (no group), ``"chunks"`` or ``"batch"``.
        ranks: the group (``None`` for ``"single"``).
        parts: every rank's ``denoise`` share (chunks mode) or ``decode`` share (batch mode).
    """

    denoise: tuple[int, int]
    decode: tuple[int, int]
    mode: str
    ranks: Optional[RankGroup] = None
    parts: tuple = ()

    def model(self, model: Any) -> Any:
        """The model to denoise with: a :class:`BatchSplitModel` in batch mode, else ``model``."""
        return BatchSplitModel(model, self.ranks) if self.mode == "batch" else model

    def progress(self, callback: Optional[Callable]) -> Optional[Callable]:
        """The progress callback on rank 0 (which holds chunk 0); None on the other ranks."""
        return callback if self.ranks is None or self.ranks.is_main else None

    def run(self, compute: Callable[[], tuple[torch.Tensor, torch.Tensor]], latent_shape: Sequence[int],
            video_shape: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``compute() -> (latents [denoise chunks, *latent_shape], videos [decode chunks, *video_shape])``
        on this rank (skipped, giving empty tensors, when it has no chunk), then the whole level's
        ``(latents, videos)`` on every rank.

        Raises:
            RankFailure: a rank failed (see :meth:`RankGroup.guarded`).
        """
        if self.ranks is None:
            return compute()

        def local() -> tuple[torch.Tensor, torch.Tensor]:
            if self.denoise[1] == self.denoise[0]:
                return torch.zeros((0, *latent_shape)), torch.zeros((0, *video_shape))
            return compute()

        latents, videos = self.ranks.guarded(local)
        if self.mode == "chunks":  # (in batch mode every rank already holds every chunk's latents)
            latents = self.ranks.gather_chunks(latents, self.parts)
        return latents, self.ranks.gather_chunks(videos, self.parts)


_ACTIVE: contextvars.ContextVar[Optional[RankGroup]] = contextvars.ContextVar("tempomaster_ranks", default=None)


def active() -> Optional[RankGroup]:
    """The :class:`RankGroup` the pipeline shares levels over in this context (None = one device)."""
    return _ACTIVE.get()


@contextlib.contextmanager
def use_ranks(ranks: Optional[RankGroup]) -> Iterator[Optional[RankGroup]]:
    """Share every level the pipeline runs inside the ``with`` block over ``ranks`` (None: one device).
    Context-local: another thread (another ComfyUI device) has its own."""
    token = _ACTIVE.set(ranks)
    try:
        yield ranks
    finally:
        _ACTIVE.reset(token)


def level_work(level_index: int, num_chunks: int, passes: int) -> LevelWork:
    """This rank's :class:`LevelWork` for a level of ``num_chunks`` chunks (``passes`` as in
    :func:`split_mode`), under the :func:`active` group; one device does everything.

    Says in one line (rank 0) when the level cannot use every rank: fewer chunks than ranks
    and no guidance passes to split (cfg 1, ``cfg_batching`` off or prompts of different
    lengths): the extra ranks wait for that level.
    """
    ranks = active()
    if ranks is None:
        return LevelWork((0, num_chunks), (0, num_chunks), "single")
    world = ranks.world_size
    mode = split_mode(num_chunks, world, passes)
    chunk_parts = tuple(shares(num_chunks, world))
    mine = chunk_parts[ranks.rank]
    if mode == "batch":
        items = passes * num_chunks
        if items < world:
            ranks.log(f"level {level_index}: {items} forward items for {world} ranks; ranks {items}..{world - 1} wait")
        return LevelWork((0, num_chunks), mine, "batch", ranks, chunk_parts)
    if num_chunks < world:
        why = ("splitting the guidance passes would not be faster" if passes > 1 else
               "no guidance passes to split (cfg 1, cfg batching off or prompts of different lengths)")
        ranks.log(f"level {level_index}: {num_chunks} chunk(s) for {world} ranks and {why}; "
                  f"ranks {num_chunks}..{world - 1} wait")
    return LevelWork(mine, mine, "chunks", ranks, chunk_parts)


# -- start-up fingerprints -----------------------------------------------------------------


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_fingerprints(paths: Iterable[Any], label: str = "file") -> dict[str, str]:
    """``{"<label> <name>": sha256 of the contents}`` for each existing file (a missing one maps
    to ``"missing"``), for :meth:`RankGroup.check_same`. Reads every byte (about 1 GB/s)."""
    out = {}
    for path in paths:
        path = Path(path)
        out[f"{label} {path.name}"] = _sha256_file(path) if path.is_file() else "missing"
    return out


def code_fingerprint() -> dict[str, str]:
    """``{"tempomaster_core code": sha256 over every .py file of the package, "torch": version}``."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return {"tempomaster_core code": digest.hexdigest(), "torch": torch.__version__}


def settings_fingerprint(settings: Mapping[str, Any]) -> dict[str, str]:
    """``{"settings": sha256 of the JSON of settings}`` (keys sorted, values by ``str`` where not JSON)."""
    text = json.dumps(dict(settings), sort_keys=True, default=str)
    return {"settings": hashlib.sha256(text.encode()).hexdigest()}
