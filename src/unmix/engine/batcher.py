"""Batched separation: segments of one or several files through the networks together.

One :class:`Batcher` thread owns the model. File jobs (each on its own thread with
``--jobs N``, or the calling thread) stream their audio through a :class:`BatchedStream`,
which submits each segment to the batcher and keeps decoding, resampling and writing while
up to ``2 × batch_size`` of its segments are in flight; their stems come back in order and
are cross-faded exactly as in :class:`~unmix.engine.segments.StreamingSeparator`.

The batcher puts segments of the same shape (channels, samples) into one
:class:`~unmix.separator.Separator` call of at most ``batch_size`` segments. It never pads a
segment to the length of another (the bidirectional LSTM would hear the padding): the last,
shorter segment of a file goes through alone or with others of its exact length. So stems do
not depend on the batch size (equal to one-at-a-time separation up to float rounding, far
below 1e-4). On CUDA a batch runs as soon as the batcher is free, with the segments queued
by then (up to ``batch_size``): the GPU never idles while there is work, and batches grow by
themselves when it is the slower part. Elsewhere (``fill``) a batch runs when it is full or
no stream can add to it (every stream is waiting for stems): the largest batches, and no
segment waits for a batch that cannot fill.

A failing batch is retried one segment at a time, so one file's error never reaches the
others; a CUDA out-of-memory error halves the batch size for the rest of the run. Memory
stays bounded by the segment length × the batch size × the number of jobs, never by the
length of a song.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np

from ..cpus import current_threads
from ..errors import UnmixError
from ..export.graph_separator import as_graph_separator
from .calls import AUTO_CAP as AUTO_CAP
from .calls import MEMORY_MARGIN as MEMORY_MARGIN
from .calls import auto_batch_size as auto_batch_size
from .calls import device_of as device_of
from .calls import device_type, empty_cuda_cache, out_of_memory, resolve_batch_size
from .calls import segment_bytes as segment_bytes
from .calls import separate_batch as separate_batch
from .parallel import Cancelled, Stop
from .segments import SegmentPlan, StreamingSeparator

if TYPE_CHECKING:
    from .segments import AnySeparator

log = logging.getLogger(__name__)

#: seconds after which a partial batch runs although a stream could still add to it
PATIENCE = 1.0
#: seconds an interrupted run waits for the batch in progress
INTERRUPT_WAIT = 1.0


class _Item:
    """One submitted segment: its stream, audio and future stems."""

    __slots__ = ("audio", "future", "stream")

    def __init__(self, stream: BatchedStream, audio: np.ndarray) -> None:
        self.stream, self.audio = stream, audio
        self.future: Future[np.ndarray] = Future()

    @property
    def key(self) -> tuple[int, ...]:
        return tuple(self.audio.shape)


class Batcher:
    """The thread that owns the model and runs submitted segments in batches.

    Use as a context manager around the jobs; each job gets a stream from :meth:`stream`.

    Args:
        separator: a frozen :class:`~unmix.separator.Separator`, or a
            :class:`~unmix.export.graph_separator.GraphSeparator`.
        batch_size: most segments per network call (>= 1).
        stop: when set (interruption), queued segments fail with
            :class:`~unmix.engine.parallel.Cancelled` instead of running.
        run: the batch function (Default: :func:`separate_batch`; tests replace it).
        fill: wait for full batches while a stream can still add to them (Default: on any
            device but CUDA); otherwise run what is queued whenever the batcher is free.
    """

    def __init__(
        self,
        separator: AnySeparator,
        batch_size: int,
        stop: Stop | None = None,
        run: Callable[[AnySeparator, list[np.ndarray]], list[np.ndarray]] | None = None,
        fill: bool | None = None,
    ) -> None:
        if batch_size < 1:
            raise UnmixError(f"batch size must be >= 1, got {batch_size}")
        self.separator, self.batch_size, self.stop, self._run = separator, batch_size, stop, run
        self.fill = device_type(separator) != "cuda" if fill is None else fill
        self.sizes: list[int] = []  # segments of every network call, in order
        self._queue: deque[_Item] = deque()
        self._streams: set[BatchedStream] = set()
        self._cond = threading.Condition()
        self._closed = False
        # PyTorch's thread count is per thread: the batcher's thread gets the caller's
        # (an exported graph has its own threads and needs no PyTorch)
        self._torch = as_graph_separator(separator) is None
        self._threads = current_threads() if self._torch else 0
        self._thread = threading.Thread(target=self._main, name="unmix-batcher", daemon=True)

    def __enter__(self) -> Batcher:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # interrupted (Ctrl-C, SIGTERM, a stop): do not wait long for the batch in progress,
        # whose stems nobody will write; the thread ends after it
        self.close(None if kind is None or issubclass(kind, Exception) else INTERRUPT_WAIT)

    def close(self, timeout: float | None = None) -> None:
        """Stop the thread after the batch it is running (waiting at most ``timeout`` s);
        queued segments fail."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def stream(self, plan: SegmentPlan) -> BatchedStream:
        """A new stream for one input (close it, or :meth:`BatchedStream.finish` it)."""
        stream = BatchedStream(self, plan, depth=2 * self.batch_size)
        with self._cond:
            if self._closed:
                raise Cancelled
            self._streams.add(stream)
        return stream

    # -------------------------------------------------------------- called by streams

    def submit(self, stream: BatchedStream, audio: np.ndarray) -> Future[np.ndarray]:
        item = _Item(stream, audio)
        with self._cond:
            if self._closed:
                raise Cancelled
            self._queue.append(item)
            self._cond.notify_all()
        return item.future

    def wait(self, stream: BatchedStream, future: Future[np.ndarray]) -> np.ndarray:
        """The stems of ``future``; meanwhile ``stream`` counts as unable to submit more."""
        with self._cond:
            stream.waiting_for = future
            self._cond.notify_all()
        try:
            return future.result()
        finally:
            with self._cond:
                stream.waiting_for = None

    def submitted_all(self, stream: BatchedStream) -> None:
        """``stream`` has submitted its last segment: a partial batch need not wait for it."""
        with self._cond:
            stream.submitted_all = True
            self._cond.notify_all()

    def release(self, stream: BatchedStream) -> None:
        """``stream`` submits no more; its segments still queued are dropped."""
        with self._cond:
            self._streams.discard(stream)
            kept = deque(item for item in self._queue if item.stream is not stream)
            for item in self._queue:
                if item.stream is stream:
                    item.future.cancel()
            self._queue = kept
            self._cond.notify_all()

    # -------------------------------------------------------------- the batcher thread

    def _stalled(self) -> bool:
        """No stream can add to the queue before some of it runs: each is waiting for stems,
        or has submitted its last segment."""
        return all(
            s.submitted_all or (s.waiting_for is not None and not s.waiting_for.done())
            for s in self._streams
        )

    def _take(self) -> list[_Item] | None:
        """The next batch (under the lock), or ``None`` once closed; waits as needed."""
        while True:
            if self._closed:
                return None
            if self._stopping():
                self._fail_queued(Cancelled())
            if self._queue:
                counts: dict[tuple[int, ...], int] = {}
                for item in self._queue:
                    counts[item.key] = counts.get(item.key, 0) + 1
                full = [k for k, n in counts.items() if n >= self.batch_size]
                if full or not self.fill or self._stalled() or self._patience_over:
                    key = full[0] if full else self._queue[0].key
                    return self._pop(key)
            self._patience_over = not self._cond.wait(PATIENCE) and bool(self._queue)

    _patience_over = False

    def _pop(self, key: tuple[int, ...]) -> list[_Item]:
        batch = [item for item in self._queue if item.key == key][: self.batch_size]
        chosen = set(map(id, batch))
        self._queue = deque(item for item in self._queue if id(item) not in chosen)
        self._patience_over = False
        return [item for item in batch if item.future.set_running_or_notify_cancel()]

    def _stopping(self) -> bool:
        if self.stop is None:
            return False
        try:
            self.stop.check()
        except Cancelled:
            return True
        return False

    def _fail_queued(self, exc: BaseException) -> None:
        for item in self._queue:
            if item.future.set_running_or_notify_cancel():
                item.future.set_exception(exc)
        self._queue.clear()

    def _main(self) -> None:
        if self._torch:
            import torch

            torch.set_num_threads(self._threads)
        try:
            while True:
                with self._cond:
                    batch = self._take()
                if batch is None:
                    break
                if batch:
                    self._execute(batch)
        except BaseException as exc:  # a defect here must not leave streams waiting
            log.exception("batcher stopped")
            with self._cond:
                self._closed = True
                self._fail_queued(exc)
        with self._cond:
            self._fail_queued(Cancelled())

    def _execute(self, batch: list[_Item]) -> None:
        """Run ``batch``; on failure, in halves after an out-of-memory error, else one by one."""
        try:
            run = self._run or separate_batch
            results = run(self.separator, [item.audio for item in batch])
        except Exception as exc:
            if len(batch) == 1:
                batch[0].future.set_exception(exc)
                return
            if out_of_memory(exc):
                self.batch_size = max(1, len(batch) // 2)
                log.warning("out of memory with %d segments; now %d", len(batch), self.batch_size)
                empty_cuda_cache()
                half = max(1, len(batch) // 2)
                parts = [batch[:half], batch[half:]]
            else:
                parts = [[item] for item in batch]
            for part in parts:
                self._execute(part)
            return
        self.sizes.append(len(batch))
        for item, stems in zip(batch, results, strict=True):
            item.future.set_result(stems)


class BatchedStream(StreamingSeparator):
    """A :class:`StreamingSeparator` whose segments run on a :class:`Batcher`.

    :meth:`push` and :meth:`finish` return the same stems as the plain stream, later: up to
    ``depth`` segments stay in flight while the caller goes on reading.
    """

    def __init__(self, batcher: Batcher, plan: SegmentPlan, depth: int) -> None:
        super().__init__(batcher.separator, plan)
        self.batcher, self.depth = batcher, depth
        self.waiting_for: Future[np.ndarray] | None = None
        self.submitted_all = False  # finish() has submitted the last segment
        self._pending: deque[tuple[Future[np.ndarray], bool]] = deque()

    def push(self, audio: np.ndarray) -> list[np.ndarray]:
        finished = []
        for segment in self._segments(audio):
            self._pending.append((self.batcher.submit(self, segment), False))
            finished += self._collect(self.depth)
        return finished

    def finish(self) -> list[np.ndarray]:
        rest = self._rest()
        if rest is not None:
            self._pending.append((self.batcher.submit(self, rest), True))
        self.batcher.submitted_all(self)
        finished = self._collect(0)
        self.close()
        return finished

    def close(self) -> None:
        """Submit nothing more; drop what is still queued (idempotent)."""
        self._pending.clear()
        self.batcher.release(self)

    def _collect(self, depth: int) -> list[np.ndarray]:
        """Stems of the oldest segments: while more than ``depth`` are in flight, and those
        already done (handed on at once, so that they are written meanwhile)."""
        finished = []
        while len(self._pending) > depth or (self._pending and self._pending[0][0].done()):
            future, last = self._pending[0]
            stems = self.batcher.wait(self, future)
            self._pending.popleft()
            finished.append(self._join(stems, last))
        return finished


@contextlib.contextmanager
def batching(
    separator: AnySeparator, plan: SegmentPlan, requested: int | None, stop: Stop | None = None
) -> Iterator[Batcher | None]:
    """A running :class:`Batcher` for the batch size ``requested`` (``None``: automatic,
    :func:`auto_batch_size`), or ``None`` where that size is 1: segments then run one by
    one on the jobs' own threads, exactly as without batching."""
    size = resolve_batch_size(separator, plan, requested)
    if size == 1:
        yield None
        return
    log.debug("batches of up to %d segments", size)
    with Batcher(separator, size, stop) as batcher:
        yield batcher
