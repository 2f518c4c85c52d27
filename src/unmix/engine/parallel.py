"""Several files at once: jobs on threads that share one model (``--jobs N``).

The model is in memory once; each worker thread separates one file at a time, with its
share of PyTorch's CPU threads (its count divided by the number of workers; an exported graph
keeps its own threads and needs no PyTorch), so N jobs use
about N times the memory of one (each bounded by the segment length), not N models.
Decisions about a job (skip, refuse) are taken on the calling thread, in input order,
before it starts; at most N jobs are started and not yet finished at any time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

Item = TypeVar("Item")
Work = TypeVar("Work")


class Cancelled(BaseException):
    """Raised in a worker when the batch is interrupted (Ctrl-C, SIGTERM on the main thread);
    the job unwinds and removes its temporary files."""


class Stop:
    """A flag the main thread raises on interruption; workers :meth:`check` it."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def check(self) -> None:
        """Raise :class:`Cancelled` in a worker once the batch is stopping."""
        if self._event.is_set():
            raise Cancelled


def run_parallel(
    items: Iterable[Item],
    prepare: Callable[[Item], Work | None],
    run: Callable[[Item, Work], None],
    workers: int,
    stop: Stop | None = None,
    torch_threads: bool = True,
) -> None:
    """``run(item, prepare(item))`` for every item whose ``prepare`` is not ``None``.

    ``prepare`` runs on this thread in order; ``run`` on ``workers`` threads (here, one
    after the other, when ``workers`` is 1). An exception from ``run`` propagates; on an
    interruption, ``stop`` is set so running jobs end at their next check. With
    ``torch_threads``, each worker thread gets its share of PyTorch's threads.
    """
    if workers <= 1:
        for item in items:
            work = prepare(item)
            if work is not None:
                run(item, work)
        return
    pool = _pool(workers, torch_threads)
    pending: set[Future[None]] = set()
    try:
        for item in items:
            work = prepare(item)
            if work is None:
                continue
            if len(pending) >= workers:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()
            pending.add(pool.submit(run, item, work))
        for future in wait(pending).done:
            future.result()
    except BaseException:
        if stop is not None:
            stop.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _pool(workers: int, torch_threads: bool) -> ThreadPoolExecutor:
    """``workers`` threads, each with its share of PyTorch's threads if ``torch_threads``."""
    if not torch_threads:
        return ThreadPoolExecutor(workers, thread_name_prefix="unmix-job")
    import torch

    threads = max(1, torch.get_num_threads() // workers)
    return ThreadPoolExecutor(
        workers, thread_name_prefix="unmix-job", initializer=torch.set_num_threads,
        initargs=(threads,),
    )  # fmt: skip
