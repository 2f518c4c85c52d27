"""Reading and writing on their own threads, so that they overlap with the networks.

Used on the batched path (:mod:`unmix.engine.batcher`): while the batcher's thread runs the
networks, a job's thread resamples and cross-fades, a reader thread decodes the next blocks
(:func:`prefetch`) and a writer thread encodes the finished stems
(:class:`BackgroundWriter`). Both queues are bounded (a few blocks), so memory does not grow
with the song; errors reach the job's thread unchanged, at its next call.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Generator, Iterable
from pathlib import Path
from typing import TypeVar

import numpy as np

from ..audio import StemWriter

Item = TypeVar("Item")

#: blocks waiting in each queue
DEPTH = 4
#: samples per block handed from the reader thread (about 1.5 s at 44.1 kHz)
CHUNK = 65536
_END = object()


class _Failed:
    """An exception on its way from a helper thread to the job's thread."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def _put(q: queue.Queue[object], item: object, stop: threading.Event) -> bool:
    """Put ``item`` unless ``stop`` is set first; whether it was put."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def chunked(blocks: Iterable[np.ndarray], size: int = CHUNK) -> Generator[np.ndarray, None, None]:
    """``(nb_channels, n)`` blocks joined into blocks of at least ``size`` samples (the last
    one may be shorter): fewer, larger hand-overs between threads."""
    parts: list[np.ndarray] = []
    length = 0
    for block in blocks:
        parts.append(block)
        length += block.shape[-1]
        if length >= size:
            yield parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)
            parts, length = [], 0
    if parts:
        yield parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)


def prefetch(items: Iterable[Item], depth: int = DEPTH) -> Generator[Item, None, None]:
    """``items``, produced on a reader thread up to ``depth`` ahead.

    An exception of ``items`` is raised here, where it would have been; closing this
    generator stops the reader (and closes ``items`` if it is a generator).
    """
    q: queue.Queue[object] = queue.Queue(depth)
    stop = threading.Event()

    def read() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not _put(q, item, stop):
                    break
            else:
                _put(q, _END, stop)
        except BaseException as exc:  # handed to the consumer
            _put(q, _Failed(exc), stop)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    reader = threading.Thread(target=read, name="unmix-reader", daemon=True)
    reader.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        reader.join()


class BackgroundWriter:
    """A :class:`~unmix.audio.StemWriter` whose :meth:`write` calls run on a writer thread.

    :meth:`commit` waits for them and then commits; :meth:`abort` drops what is queued and
    aborts. A write error is raised by the next :meth:`write` or by :meth:`commit`.
    """

    def __init__(self, inner: StemWriter, depth: int = DEPTH) -> None:
        self.inner = inner
        self._queue: queue.Queue[object] = queue.Queue(depth)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="unmix-writer", daemon=True)
        self._thread.start()

    @property
    def outputs(self) -> list[Path]:
        return self.inner.outputs

    @property
    def nb_channels(self) -> int:
        return self.inner.nb_channels

    def _main(self) -> None:
        while True:
            item = self._queue.get()
            if item is _END or self._stop.is_set():
                return
            if self._error is None:
                assert isinstance(item, tuple)
                try:
                    self.inner.write(*item)
                except BaseException as exc:  # raised on the job's thread
                    self._error = exc

    def write(self, mix: np.ndarray, stems: np.ndarray) -> None:
        """Queue ``mix (nb_channels, n)`` and ``stems (nb_outputs, nb_channels, n)``."""
        self._raise()
        _put(self._queue, (mix, stems), self._stop)

    def commit(self) -> list[str]:
        """Write what is queued, then :meth:`StemWriter.commit`."""
        self._finish()
        self._raise()
        return self.inner.commit()

    def abort(self) -> None:
        """Drop what is queued, then :meth:`StemWriter.abort`."""
        self._stop.set()
        self._finish()
        self.inner.abort()

    def _finish(self) -> None:
        if self._thread.is_alive():
            while self._thread.is_alive():
                try:
                    self._queue.put(_END, timeout=0.1)
                    break
                except queue.Full:
                    if self._stop.is_set():  # make room: what is queued is dropped
                        with contextlib.suppress(queue.Empty):
                            self._queue.get_nowait()
            self._thread.join()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error
