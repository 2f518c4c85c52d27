"""Reader → paced compute → writer: three threads joined by bounded queues.

The compute thread (the caller's) does nothing but take the next input block from a
bounded queue that a **reader** thread fills ahead (decoding, resampling, cutting blocks),
wait for the block's arrival (:class:`~unmix.realtime.pacing.Pacer`), process it, and hand
the result to a bounded queue that a **writer** thread drains (resampling back, encoding,
writing). File I/O and its jitter thus happen beside the paced loop, never inside it, and
memory stays bounded: at most ``depth`` blocks wait in each queue (no whole-file preload).

During the run the cyclic garbage collector is off (``gc.freeze()`` + ``gc.disable()``: a
collection is a pause of unbounded length in the paced thread; the stream's objects form
no cycles), Python's thread switch interval is shortened (so the compute thread gets the
interpreter back quickly from the helper threads), and with ``realtime`` the compute
thread asks for real-time scheduling (:func:`~unmix.realtime.pacing.raise_priority`; the
report says what it got), the reader and writer for a lower real-time priority: else the
compute thread could wait for the interpreter lock held by a helper that itself waits behind
unrelated processes (priority inversion; measured: wake-ups late by 10-150 ms under load).
With ``realtime`` the machine's steal time over the run is recorded (``Pacer.steal``): on a
virtual machine, the time the host gave this machine's CPUs to someone else.
With several intra-op threads (``torch.get_num_threads() > 1``) nothing is raised: those
busy-waiting workers would inherit it. All of it is restored afterwards.

An error in any thread stops all three and is raised in the caller's thread.
"""

from __future__ import annotations

import gc
import queue
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

import torch

from .pacing import HELPER_PRIORITY, Pacer, raise_priority, steal_seconds

T = TypeVar("T")
U = TypeVar("U")

#: blocks each queue holds at most
DEPTH = 64
#: Python's thread switch interval during a run (seconds; the default is 0.005)
SWITCH_INTERVAL = 0.0005


class _End:
    """The end of a queue's items, with the error that ended them (if any)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class _Stoppable(Generic[T]):
    """A bounded queue whose ``put`` gives up when ``stop`` is set (no thread hangs)."""

    def __init__(self, depth: int, stop: threading.Event) -> None:
        self.queue: queue.Queue[T | _End] = queue.Queue(depth)
        self.stop = stop

    def put(self, item: T | _End) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False


@contextmanager
def quiet_interpreter(realtime: bool, pacer: Pacer) -> Iterator[None]:
    """No garbage collection, a short switch interval and (``realtime``) a raised priority."""
    was_enabled, interval = gc.isenabled(), sys.getswitchinterval()
    gc.collect()
    gc.freeze()
    gc.disable()
    sys.setswitchinterval(SWITCH_INTERVAL)
    restore: Callable[[], None] = lambda: None  # noqa: E731
    if realtime and torch.get_num_threads() > 1:
        # the intra-op worker threads would inherit it, and they busy-wait
        pacer.priority = "normal (not raised with several compute threads, --threads > 1)"
    elif realtime:
        pacer.priority, restore = raise_priority()
    steal = steal_seconds() if realtime else None
    try:
        yield
    finally:
        restore()
        now = steal_seconds() if realtime else None
        if steal is not None and now is not None:
            pacer.steal = now - steal
        sys.setswitchinterval(interval)
        gc.unfreeze()
        if was_enabled:
            gc.enable()


def run_pipeline(
    source: Iterable[T],
    process: Callable[[T], U],
    sink: Callable[[U], None],
    pacer: Pacer,
    depth: int = DEPTH,
) -> None:
    """Feed ``source`` through ``process`` (paced by ``pacer``, in this thread) into ``sink``.

    ``source`` is iterated in a reader thread and ``sink`` called in a writer thread, in
    order; each queue between them holds at most ``depth`` items.

    Raises:
        BaseException: the first error of the reader, the processing or the writer.
    """
    stop = threading.Event()
    inputs: _Stoppable[T] = _Stoppable(depth, stop)
    outputs: _Stoppable[U] = _Stoppable(depth, stop)
    failures: list[BaseException] = []

    def read() -> None:
        if pacer.realtime:
            raise_priority(HELPER_PRIORITY)
        try:
            for item in source:
                if not inputs.put(item):
                    return
        except BaseException as exc:  # handed to the compute thread
            inputs.put(_End(exc))
            return
        inputs.put(_End())

    def write() -> None:
        if pacer.realtime:
            raise_priority(HELPER_PRIORITY)
        while True:
            item = outputs.queue.get()
            if isinstance(item, _End):
                return
            if failures:
                continue  # drain, so that the compute thread never blocks
            try:
                sink(item)
            except BaseException as exc:
                failures.append(exc)

    reader = threading.Thread(target=read, name="unmix-stream-reader", daemon=True)
    writer = threading.Thread(target=write, name="unmix-stream-writer", daemon=True)
    reader.start()
    writer.start()  # both before the priority is raised: they must not inherit it
    try:
        with quiet_interpreter(pacer.realtime, pacer):
            _compute(inputs, outputs, process, pacer, failures)
    except BaseException as exc:
        failures.insert(0, exc)
    finally:
        if failures:
            stop.set()
        outputs.queue.put(_End())  # the writer always drains, so this never blocks for long
        writer.join()
        reader.join()
    if failures:
        raise failures[0]


def _compute(
    inputs: _Stoppable[T],
    outputs: _Stoppable[U],
    process: Callable[[T], U],
    pacer: Pacer,
    failures: list[BaseException],
) -> None:
    """The paced loop: next block, wait for its arrival, process, hand over."""
    if pacer.realtime:
        pacer.begin()
    while not failures:
        try:
            item = inputs.queue.get_nowait()
        except queue.Empty:
            item = inputs.queue.get()
            pacer.note_input_wait(pacer.clock())
        if isinstance(item, _End):
            if item.error is not None:
                raise item.error
            return
        result: list[U] = []

        def work(item: T = item, result: list[U] = result) -> None:
            result.append(process(item))

        pacer.run(work)
        outputs.queue.put(result[0])
