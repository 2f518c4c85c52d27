"""Chunks of work on a small thread pool, results in order (deterministic sums).

numpy and scipy release the GIL in FFTs, copies and BLAS calls, so two chunks of signal
processed in two threads use two cores for the many steps that are single-threaded.

Each thread keeps its large scratch arrays (:func:`scratch`) from chunk to chunk: arrays of
tens of MB are otherwise mapped afresh by the C allocator at every chunk, and first touches
of fresh memory cost as much as the arithmetic on some virtual machines.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

Item = TypeVar("Item")
Result = TypeVar("Result")

#: most threads used (memory grows with the chunks in flight)
MAX_THREADS = 4


def nb_threads() -> int:
    """The CPUs this process may run on, at most :data:`MAX_THREADS`.

    ``UNMIX_METRICS_THREADS`` overrides it (``1``: one worker thread, chunks in turn).
    """
    forced = os.environ.get("UNMIX_METRICS_THREADS", "").strip()
    if forced.isdigit() and int(forced) > 0:
        return int(forced)
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_THREADS))


def ordered_map(
    function: Callable[[Item], Result], items: Iterable[Item], threads: int
) -> Iterator[Result]:
    """``map(function, items)`` on ``threads`` threads, in order, at most ``2 * threads``
    items in flight (so that memory stays bounded). Scratch arrays (:func:`scratch`)
    made by ``function`` live as long as the pool."""
    # a pool even for one thread: its scratch arrays go when the pool's threads end
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="unmix-metrics") as pool:
        pending: deque[Future[Result]] = deque()
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) >= 2 * threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


_local = threading.local()


def scratch(name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A thread-local array of ``shape`` and ``dtype`` (contents undefined), reused
    between calls with the same ``name`` in the same thread while it is large enough."""
    store: dict[str, np.ndarray] = _local.__dict__.setdefault("arrays", {})
    size = int(np.prod(shape))
    held = store.get(name)
    if held is None or held.dtype != np.dtype(dtype) or held.size < size:
        held = np.empty(size, dtype=dtype)
        store[name] = held
    return held[:size].reshape(shape)
