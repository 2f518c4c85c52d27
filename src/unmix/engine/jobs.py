"""Jobs of a batch and the callbacks that report on them (:class:`BatchListener`)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from ..audio.spool import is_stdin
from .files import FileReport
from .parallel import Stop


@dataclass(frozen=True)
class Job:
    """One input and where its stems go."""

    path: Path
    destination: Path  # the output path with {stem} left in (for messages), or the one file
    track: str = ""  # the template's {track}

    @property
    def label(self) -> str:
        """How messages name the input."""
        return "standard input" if is_stdin(self.path) else str(self.path)


class BatchListener:
    """Callbacks of :func:`separate_files`; this base class ignores them all."""

    def skipped(self, job: Job, existing: Path) -> None:
        """``job`` was not run: ``existing`` is there and ``force`` is off."""

    def kept(self, job: Job, outputs: list[Path]) -> None:
        """``outputs`` of ``job`` exist, made with the same settings, and are kept; the
        job runs for its other outputs."""

    def started(self, job: Job, seconds: float | None) -> None:
        """``job`` starts; ``seconds`` of audio are expected (None: unknown)."""

    def progress(self, seconds: float) -> None:
        """``seconds`` more of the current job's audio are done."""

    def finished(self, job: Job, report: FileReport, elapsed: float) -> None:
        """``job`` wrote its stems in ``elapsed`` seconds."""

    def failed(self, job: Job, message: str) -> None:
        """``job`` failed with the one-line ``message``; nothing of it was written."""


class SerializedListener(BatchListener):
    """Forwards to ``inner`` one call at a time (jobs on several threads); progress checks
    whether the batch is being stopped."""

    def __init__(self, inner: BatchListener, stop: Stop, lock: threading.Lock) -> None:
        self.inner, self.stop, self.lock = inner, stop, lock

    def skipped(self, job: Job, existing: Path) -> None:
        with self.lock:
            self.inner.skipped(job, existing)

    def kept(self, job: Job, outputs: list[Path]) -> None:
        with self.lock:
            self.inner.kept(job, outputs)

    def started(self, job: Job, seconds: float | None) -> None:
        with self.lock:
            self.inner.started(job, seconds)

    def progress(self, seconds: float) -> None:
        self.stop.check()
        with self.lock:
            self.inner.progress(seconds)

    def finished(self, job: Job, report: FileReport, elapsed: float) -> None:
        with self.lock:
            self.inner.finished(job, report, elapsed)

    def failed(self, job: Job, message: str) -> None:
        with self.lock:
            self.inner.failed(job, message)
