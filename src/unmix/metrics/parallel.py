"""Chunks of work on a small thread pool, results in order (deterministic sums).

numpy and scipy release the GIL in FFTs, copies and BLAS calls, so two chunks of signal
processed in two threads use two cores for the many steps that are single-threaded.

Each thread keeps its large scratch arrays (:func:`scratch`) from chunk to chunk: arrays of
tens of MB are otherwise mapped afresh by the C allocator at every chunk, and first touches
of fresh memory cost as much as the arithmetic on some virtual machines.
"""

from __future__ import annotations

import contextlib
import ctypes
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


#: ``(get, set)`` thread-count functions of OpenBLAS builds, by their exported names
#: (numpy's and scipy's wheels each bundle one, with its own pool of threads)
OPENBLAS_THREAD_FUNCTIONS = (
    ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
    ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
    ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
    ("openblas_get_num_threads", "openblas_set_num_threads"),
)
_blas_lock = threading.Lock()
_blas_state: dict[str, Any] = {"depth": 0, "saved": []}


def _openblas_controls() -> list[tuple[Any, Any]]:
    """``(get, set)`` for every OpenBLAS loaded in this process (Linux; else none)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
    except OSError:
        return []
    controls = []
    for path in sorted(p for p in paths if p.startswith("/")):
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for get_name, set_name in OPENBLAS_THREAD_FUNCTIONS:
            if hasattr(library, get_name) and hasattr(library, set_name):
                getter, setter = getattr(library, get_name), getattr(library, set_name)
                getter.restype, setter.argtypes = ctypes.c_int, [ctypes.c_int]
                controls.append((getter, setter))
                break
    return controls


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """OpenBLAS on one thread inside the block, as it was after it.

    The metrics use their own threads (chunks of signal); BLAS threads on top of them only
    contend: on a machine busy with other work, the OpenBLAS worker threads of numpy's
    and scipy's libraries wait for cores and a 0.3-s BSSEval took 7 to 28 s. Nested and
    concurrent blocks are counted, so the first one in saves the settings and the last
    one out restores them.
    """
    with _blas_lock:
        if _blas_state["depth"] == 0:
            controls = _openblas_controls()
            _blas_state["saved"] = [(setter, getter()) for getter, setter in controls]
            for setter, _ in _blas_state["saved"]:
                setter(1)
        _blas_state["depth"] += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_state["depth"] -= 1
            if _blas_state["depth"] == 0:
                for setter, threads in _blas_state["saved"]:
                    setter(threads)
                _blas_state["saved"] = []
