"""Independent pieces of work side by side on CPU threads, one intra-op thread each.

Used where PyTorch's own threads help little: the target networks of
:class:`~unmix.models.umx.UMX` (an LSTM's thousands of small steps) and the Wiener windows
of :mod:`unmix.inversion` (many small elementwise products). Each task runs on a worker
thread with one intra-op thread and the caller's grad, inference and CPU autocast modes
(all three are per thread in PyTorch); the caller's thread count is restored afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

T = TypeVar("T")


def cpu_workers(device: torch.device, tasks: int) -> int:
    """Worker threads for ``tasks`` independent tasks on ``device``: PyTorch's intra-op
    thread count, at most one per task, on a CPU; 1 elsewhere (nothing side by side)."""
    if device.type != "cpu":
        return 1
    return max(1, min(torch.get_num_threads(), tasks))


def side_by_side(tasks: Sequence[Callable[[], T]], workers: int, name: str = "unmix") -> list[T]:
    """``[task() for task in tasks]``, on ``workers`` threads (here, in order, when 1).

    Args:
        tasks: independent callables (they may run in any order and at the same time).
        workers: threads; each runs with ``torch.set_num_threads(1)``.
        name: prefix of the worker threads' names.

    Returns:
        the results, in the order of ``tasks``; the first task's exception is raised here.
    """
    if workers <= 1 or len(tasks) <= 1:
        return [task() for task in tasks]
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()
    autocast, dtype = torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")

    def run(task: Callable[[], T]) -> T:
        torch.set_num_threads(1)  # this worker thread only
        with (
            torch.inference_mode(inference),
            torch.set_grad_enabled(grad),
            torch.autocast("cpu", dtype=dtype, enabled=autocast),
        ):
            return task()

    threads = torch.get_num_threads()
    try:
        with ThreadPoolExecutor(workers, thread_name_prefix=name) as pool:
            return list(pool.map(run, tasks))
    finally:
        torch.set_num_threads(threads)  # BLAS libraries may keep the count process-wide
