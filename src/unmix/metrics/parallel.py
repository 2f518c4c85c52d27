"""Chunks of work on a small thread pool, results in order (deterministic sums).

numpy and scipy release the GIL in FFTs, copies and BLAS calls, so two chunks of signal
processed in two threads use two cores for the many steps that are single-threaded.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

#: most threads used (memory grows with the chunks in flight)
MAX_THREADS = 4


def nb_threads() -> int:
    """The CPUs this process may run on, at most :data:`MAX_THREADS`.

    ``UNMIX_METRICS_THREADS`` overrides it (``1``: no threads at all).
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
    items in flight (so that memory stays bounded)."""
    if threads <= 1:
        yield from map(function, items)
        return
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="unmix-metrics") as pool:
        pending: deque[Future[Result]] = deque()
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) >= 2 * threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
