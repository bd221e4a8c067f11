"""Several devices in one process: one thread per device, sharing levels like ranks do.

The transport of :class:`~tempomaster_core.distributed.RankGroup` for callers that own
every device in one process (the ComfyUI sampler nodes with a device list): thread ``r``
runs the pipeline with its own model replica on device ``r``; tensors are exchanged
through shared memory at the same sync points ``torch.distributed`` uses, so the levels
are split exactly as with ``torchrun`` (:mod:`tempomaster_core.distributed`) and give the
same bits. PyTorch releases the GIL in its kernels, so the devices compute at once (on
CPU the threads share the machine's cores).
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional, TypeVar

import torch

from .distributed import DEFAULT_TIMEOUT_S, RankFailure, RankGroup, use_ranks
from .validation import InputError

__all__ = ["ThreadTransport", "parse_device_list", "require_device", "run_in_threads"]

T = TypeVar("T")


def require_device(text: str, name: str = "device") -> torch.device:
    """Parse a torch device name and check that this PyTorch can use it, without allocating anything.

    Args:
        text: ``cpu``, ``cuda``, ``cuda:N``, ``mps`` (or another backend with ``is_available``).
        name: what the message calls it (e.g. ``--device``).

    Raises:
        InputError: not a device name, or the device is not available here (no CUDA, index past the
            last GPU, no such backend).
    """
    return _available(_parse_device(text, name), text, name)


def _parse_device(text: str, name: str) -> torch.device:
    try:
        return torch.device(text)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(f"{name} must be a torch device such as cpu, cuda or cuda:0, got {text!r}") from None


def _available(device: torch.device, text: str, name: str) -> torch.device:
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"{name} {text}: no CUDA GPU is available to this PyTorch "
                             "(torch.cuda.is_available() is False); use cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise InputError(f"{name} {text}: only {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
        return device
    if device.type == "mps":
        available = torch.backends.mps.is_available()
    else:
        backend = getattr(torch, device.type, None)
        available = bool(getattr(backend, "is_available", lambda: False)())
    if not available:
        raise InputError(f"{name} {text}: this PyTorch has no usable {device.type!r} device; use cpu")
    return device


def parse_device_list(text: str, name: str = "devices") -> list[torch.device]:
    """A comma-separated device list (``"cuda:0,cuda:1"``) as devices, one model replica each.

    Empty text gives ``[]`` (the caller's one device). ``cpu`` may repeat (replicas sharing the
    CPU's cores: a test setup); any other device may appear once (``cuda`` is ``cuda:0``).

    Raises:
        InputError: an empty entry, an unknown or unavailable device (:func:`require_device`),
            a device listed twice.
    """
    if not isinstance(text, str):
        raise InputError(f"{name} must be text such as 'cuda:0,cuda:1', got {type(text).__name__}")
    entries = [part.strip() for part in text.split(",")]
    if entries == [""]:
        return []
    if "" in entries:
        raise InputError(f"{name} {text!r} has an empty entry; list devices separated by commas, e.g. cuda:0,cuda:1")
    devices, seen = [_parse_device(entry, f"{name} entry") for entry in entries], {}
    for device, entry in zip(devices, entries):
        key = device if device.type == "cpu" or device.index is not None else torch.device(device.type, 0)
        if key.type != "cpu" and key in seen:
            raise InputError(f"{name} {text!r} lists {key} twice ({seen[key]!r} and {entry!r}); each GPU takes one "
                             "model replica")
        seen[key] = entry
    return [_available(device, entry, f"{name} entry") for device, entry in zip(devices, entries)]


class _Hub:
    """What the threads of one group share: one exchange round at a time, with a timeout.

    A round completes when every thread has put its value; each thread then returns that
    round's values. A thread that leaves the group (failed outside a sync point) makes every
    thread still waiting in an unfinished round, and every later round, fail.
    """

    def __init__(self, count: int, timeout: float) -> None:
        self.count = count
        self.timeout = timeout
        self._cond = threading.Condition()
        self._slots: list = [None] * count
        self._arrived = 0
        self._round = 0
        self._values: list = []
        self._gone = False

    def exchange(self, rank: int, value: Any) -> list:
        """Every thread's value of this round (rank order).

        Raises:
            RankFailure: a thread left the group, or the round did not complete within the timeout.
        """
        with self._cond:
            if not self._gone:
                mine = self._round
                self._slots[rank] = value
                self._arrived += 1
                if self._arrived == self.count:
                    self._values, self._slots = self._slots, [None] * self.count
                    self._arrived, self._round = 0, self._round + 1
                    self._cond.notify_all()
                    return self._values
                self._cond.wait_for(lambda: self._round != mine or self._gone, timeout=self.timeout)
                if self._round != mine:  # (the next round cannot complete without this thread)
                    return self._values
        raise RankFailure(f"another device's thread stopped or did not answer within {self.timeout:g} s, so "
                          f"rank {rank} stopped too", -1, self.count, "")

    def leave(self) -> None:
        """This thread is gone: waiting and later rounds fail."""
        with self._cond:
            self._gone = True
            self._cond.notify_all()


class ThreadTransport:
    """The :class:`RankGroup` transport of thread ``rank`` of a :func:`run_in_threads` group.

    Raises (from the gathers):
        RankFailure: another thread left the group (it failed outside a sync point) or did not
            arrive within the timeout.
    """

    def __init__(self, hub: _Hub, rank: int) -> None:
        self._hub = hub
        self.rank = rank
        self.world_size = hub.count

    def _exchange(self, value: Any) -> list:
        return self._hub.exchange(self.rank, value)

    def all_gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Every thread's ``tensor``, copied to this tensor's device."""
        if tensor.is_cuda:  # the other threads read it on their own streams
            torch.cuda.current_stream(tensor.device).synchronize()
        return [t.to(tensor.device, copy=True) for t in self._exchange(tensor.detach())]

    def all_gather_object(self, obj: Any) -> list:
        """Every thread's ``obj`` (shared, not copied)."""
        return self._exchange(obj)


def _root_error(errors: list[Optional[BaseException]]) -> BaseException:
    """The error to report: the first thread's own failure (the cause of its RankFailure, or an error
    raised outside a sync point); a RankFailure naming another rank only when nothing better is left."""
    for error in errors:
        if isinstance(error, RankFailure):
            if error.__cause__ is not None:
                return error.__cause__
        elif error is not None:
            return error
    return next(e for e in errors if e is not None)


def run_in_threads(work: Callable[[int, RankGroup], T], count: int, *, timeout: float = DEFAULT_TIMEOUT_S,
                   log: Optional[Callable[[str], None]] = None) -> list[T]:
    """``work(rank, group)`` for ``rank in range(count)``, rank 0 in the calling thread and the others in
    new threads, each inside :func:`~tempomaster_core.distributed.use_ranks` of its group member, with
    the caller's grad / inference mode.

    Args:
        work: one device's job (e.g. the pipeline with that device's model replica).
        count: threads (devices), >= 1.
        timeout: seconds a thread waits at a sync point for the others.
        log: rank 0's one-line messages (default stderr).

    Returns:
        Every rank's result, rank 0 first.

    Raises:
        The failing thread's own exception (another thread's failure stops every thread at its
        next sync point; a thread that fails outside one breaks the barrier for the others).
    """
    hub = _Hub(int(count), float(timeout))
    results: list = [None] * count
    errors: list[Optional[BaseException]] = [None] * count
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()

    def body(rank: int) -> None:
        try:
            with torch.inference_mode(inference), torch.set_grad_enabled(grad):
                with use_ranks(RankGroup(ThreadTransport(hub, rank), log=log)) as group:
                    results[rank] = work(rank, group)
        except BaseException as exc:  # noqa: B902 - reported below, in the calling thread
            errors[rank] = exc
            hub.leave()

    threads = [threading.Thread(target=body, args=(r,), name=f"tempomaster-rank{r}", daemon=True)
               for r in range(1, count)]
    for thread in threads:
        thread.start()
    body(0)
    for thread in threads:
        thread.join()
    if any(e is not None for e in errors):
        raise _root_error(errors)
    return results
