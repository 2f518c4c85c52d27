"""A lookahead stream's engine on a worker thread: chunks are computed in the background.

In lookahead mode the whole compute of a chunk (network, Wiener filter, inverse STFT) falls
into the one call whose block completes the chunk. With blocks much shorter than a chunk
that call takes many block periods, so a paced stream reports it late although the average
compute fits. :class:`ChunkWorker` moves the engine to a worker thread: the caller only
hands over each block (:meth:`ChunkWorker.submit`) and takes the outputs that are finished
(:meth:`ChunkWorker.result`), and :class:`~unmix.realtime.stream.StreamSeparator`
(``background=True``) delays its output by one more chunk, so that a chunk's output is
due one chunk after the chunk was complete: the worker has a whole chunk's duration to
compute it (docs/realtime.md, "Small blocks in lookahead mode").

The worker calls the same pure ``advance(state, block)`` on the same blocks in the same
order as the caller would, with the caller's number of intra-op threads and in inference
mode, so the outputs are the same samples; only their delay grows. It runs at the
caller's scheduling, but two steps below a real-time (``SCHED_FIFO``) priority: the thread
that waits for each block's arrival must get the CPU back the moment it wakes.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

import torch
from torch import Tensor

S = TypeVar("S")

#: steps below the starting thread's real-time priority that the worker runs at
PRIORITY_BELOW = 2


class _Stop:
    """Tells the worker thread to end."""


def lower_realtime_priority(steps: int = PRIORITY_BELOW) -> str:
    """Below an inherited ``SCHED_FIFO p``, run at ``SCHED_FIFO max(1, p − steps)``.

    A thread inherits its creator's scheduling; lowering it is always permitted. Returns
    what the calling thread now runs at (``"SCHED_FIFO 8"``, or ``"inherited"``).
    """
    if not hasattr(os, "sched_getscheduler"):
        return "inherited"
    try:
        if os.sched_getscheduler(0) != os.SCHED_FIFO:
            return "inherited"
        priority = max(1, os.sched_getparam(0).sched_priority - steps)
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except OSError:
        return "inherited"
    return f"SCHED_FIFO {priority}"


class ChunkWorker(Generic[S]):
    """Run ``advance`` on every submitted block, in order, on one worker thread.

    Args:
        advance: a pure ``(state, block (C, n)) -> (output (J', C, m), state)``.
        state: the state before the first block.

    The thread starts here (it inherits the caller's scheduling, see the module docstring)
    and ends at :meth:`stop`. An error of ``advance`` is handed to the caller by the
    :meth:`result` that reaches it; the worker keeps the state from before that block.
    """

    def __init__(self, advance: Callable[[S, Tensor], tuple[Tensor, S]], state: S) -> None:
        self._advance, self._state = advance, state
        self._jobs: queue.SimpleQueue[Tensor | _Stop] = queue.SimpleQueue()
        self._results: queue.SimpleQueue[Tensor | BaseException] = queue.SimpleQueue()
        self.pending = 0  # blocks submitted whose result was not taken yet
        self.priority = "inherited"
        self._threads = torch.get_num_threads()
        self._thread = threading.Thread(target=self._loop, name="unmix-chunk-worker", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        self.priority = lower_realtime_priority()
        torch.set_num_threads(self._threads)
        while not isinstance(job := self._jobs.get(), _Stop):
            try:
                with torch.inference_mode():
                    out, self._state = self._advance(self._state, job)
            except BaseException as exc:  # handed to the caller by result()
                self._results.put(exc)
            else:
                self._results.put(out)

    def submit(self, block: Tensor) -> None:
        """Hand over the next block ``(C, n)`` (never waits)."""
        self.pending += 1
        self._jobs.put(block)

    def result(self, wait: bool) -> Tensor | None:
        """The output of the oldest block not taken yet; ``None`` if it is not finished and
        not ``wait`` (or nothing is pending).

        Raises:
            BaseException: the error ``advance`` raised on that block.
        """
        if not self.pending:
            return None
        try:
            item = self._results.get(block=wait)
        except queue.Empty:
            return None
        self.pending -= 1
        if isinstance(item, BaseException):
            raise item
        return item

    def stop(self) -> None:
        """End the thread (after the block it is computing; outputs not taken are lost)."""
        self._jobs.put(_Stop())
        if self._thread is not threading.current_thread():
            self._thread.join()
