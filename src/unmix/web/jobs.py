"""The job store: one folder per job under ``--jobs-dir``, a bounded queue, expiry.

The jobs folder belongs to one server at a time (an exclusive lock on its marker file) and
holds nothing but job folders named by random ids, so a start can delete whatever a killed
server left behind. A job folder holds ``input`` (the upload, whatever the client called it)
and ``stems/<target>.<ext>``; client file names are only ever shown, never used as paths.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ..errors import UnmixError

try:  # POSIX; elsewhere the folder is not locked against a second server
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

#: the file that marks a folder as an ``unmix serve`` jobs folder (and is locked)
MARKER = ".unmix-serve-jobs"
#: job ids: 32 random hex digits (also the job folder names)
JOB_ID = re.compile(r"[0-9a-f]{32}")
#: what the API calls the states of a job
STATES = ("queued", "running", "done", "failed")


@dataclass
class Job:
    """One upload and its separation.

    Attributes:
        id: random id, also the folder name.
        name: the client's file name, for display and download names only.
        targets: the targets to separate, in order.
        fmt: output format (``wav``, ``flac``, ``mp3``).
        folder: ``<jobs-dir>/<id>``.
        state: ``uploading`` (not visible yet), then one of :data:`STATES`.
        progress: 0..1 of the separation.
        error: one-line message when failed.
        finished: clock time when it ended (done or failed), for expiry.
        seconds: duration of the separated audio (s), when done.
        outputs: target → stem file, when done.
    """

    id: str
    name: str
    targets: tuple[str, ...]
    fmt: str
    folder: Path
    state: str = "uploading"
    progress: float = 0.0
    error: str | None = None
    finished: float | None = None
    seconds: float | None = None
    outputs: dict[str, Path] = field(default_factory=dict)
    cancelled: threading.Event = field(default_factory=threading.Event)

    @property
    def input(self) -> Path:
        """Where the upload is stored."""
        return self.folder / "input"

    @property
    def stems(self) -> Path:
        """The folder of the stem files."""
        return self.folder / "stems"

    def public(self, expires_in: float | None) -> dict[str, Any]:
        """The JSON of ``GET /api/jobs/{id}``."""
        stems = {t: f"/api/jobs/{self.id}/stems/{t}" for t in self.outputs}
        return {
            "id": self.id,
            "state": self.state,
            "progress": round(self.progress, 4),
            "error": self.error,
            "name": self.name,
            "targets": list(self.targets),
            "format": self.fmt,
            "seconds": self.seconds,
            "stems": stems,
            "zip": f"/api/jobs/{self.id}/stems.zip" if self.outputs else None,
            "expires_in": None if expires_in is None else round(max(expires_in, 0.0), 1),
        }


class JobStore:
    """Jobs in memory, their files in ``root``; thread-safe.

    Args:
        root: the jobs folder (created; must be empty or a previous jobs folder).
        keep_seconds: how long finished jobs (and their files) are kept.
        max_pending: most jobs uploading or queued at once; more are refused.
        clock: monotonic seconds (tests pass a fake one).

    Raises:
        UnmixError: ``root`` holds other files, cannot be created, or another server uses it.
    """

    def __init__(
        self,
        root: Path,
        keep_seconds: float,
        max_pending: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root = Path(root)
        self.keep_seconds = keep_seconds
        self.max_pending = max_pending
        self.clock = clock
        self.pending: queue.Queue[Job | None] = queue.Queue()
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._marker = self._claim(self.root)
        self.removed_at_start = self._remove_leftovers()

    @staticmethod
    def _claim(root: Path) -> TextIO:
        try:
            root.mkdir(parents=True, exist_ok=True)
            entries = [e for e in os.listdir(root) if e != MARKER]
        except OSError as exc:
            raise UnmixError(
                f"cannot use --jobs-dir {root}: {exc.strerror or exc}; choose another folder"
            ) from exc
        marker = root / MARKER
        if entries and not marker.exists():
            raise UnmixError(
                f"--jobs-dir {root} holds files that unmix serve did not create, and a start "
                "deletes what is in it; choose an empty or new folder"
            )
        handle = open(marker, "a")  # noqa: SIM115 - held open for the lock
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                handle.close()
                raise UnmixError(
                    f"another unmix serve is using --jobs-dir {root}; give each server its own"
                ) from exc
        return handle

    def _remove_leftovers(self) -> int:
        """Delete the job folders of an earlier server (killed, or the same one restarted)."""
        removed = 0
        for entry in os.scandir(self.root):
            if JOB_ID.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
                removed += 1
        return removed

    # jobs
    def reserve(self, name: str, targets: tuple[str, ...], fmt: str) -> Job | None:
        """A new job in state ``uploading`` with its folder, or None when the queue is full."""
        with self._lock:
            waiting = sum(j.state in ("uploading", "queued") for j in self._jobs.values())
            if waiting >= self.max_pending:
                return None
            job_id = secrets.token_hex(16)
            job = Job(job_id, name, targets, fmt, self.root / job_id)
            job.folder.mkdir()
            self._jobs[job_id] = job
            return job

    def submit(self, job: Job) -> None:
        """The upload is complete: queue the job for the worker."""
        with self._lock:
            job.state = "queued"
        self.pending.put(job)

    def get(self, job_id: str) -> Job | None:
        """The job, or None (unknown, deleted or expired)."""
        with self._lock:
            return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        """Every job, oldest first."""
        with self._lock:
            return list(self._jobs.values())

    def finish(self, job: Job, error: str | None = None, seconds: float | None = None) -> None:
        """Mark ``job`` done (or failed with ``error``); its expiry clock starts."""
        with self._lock:
            job.state = "failed" if error else "done"
            job.error = error
            job.seconds = seconds
            job.progress = 1.0 if error is None else job.progress
            job.finished = self.clock()
        if error is not None or job.cancelled.is_set():
            self._remove_files(job)

    def expires_in(self, job: Job) -> float | None:
        """Seconds until ``job`` expires (None while it is not finished)."""
        if job.finished is None:
            return None
        return job.finished + self.keep_seconds - self.clock()

    def discard(self, job: Job) -> None:
        """Forget ``job`` and delete its files (a running job is stopped first by the worker)."""
        job.cancelled.set()
        with self._lock:
            self._jobs.pop(job.id, None)
            running = job.state == "running"
        if not running:
            self._remove_files(job)

    def sweep(self) -> list[str]:
        """Delete the jobs that expired; returns their ids."""
        now = self.clock()
        with self._lock:
            expired = [
                j
                for j in self._jobs.values()
                if j.finished is not None and j.finished + self.keep_seconds <= now
            ]
        for job in expired:
            self.discard(job)
        return [j.id for j in expired]

    def close(self) -> None:
        """Stop: cancel every job, delete every job folder, release the folder."""
        for job in self.jobs():
            job.cancelled.set()
        self.pending.put(None)
        with self._lock:
            self._jobs.clear()
        self._remove_leftovers()
        with contextlib.suppress(OSError):
            self._marker.close()

    @staticmethod
    def _remove_files(job: Job) -> None:
        shutil.rmtree(job.folder, ignore_errors=True)
