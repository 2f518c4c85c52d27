"""The catalog worker: loads the model once, then separates whole files with the engine.

Plain Python (no Ray import): Ray Data builds one :class:`SeparateWorker` per actor and calls
it with batches of rows ``{"input": paths}``; it answers each row with a ledger record as
JSON. Stems are published by the engine's writer (temporary files renamed when complete), so
a worker killed mid-file leaves no half-written stem under a final name; a file it fails on
becomes a ``failed`` record, never an exception that would stop the run.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..engine import BatchListener, Job, OutputOptions, plan_batch, plan_segments, separate_files
from ..ensemble import parse_weights
from ..errors import UnmixError
from ..filtering import WienerSettings
from ..hub.loading import load_separator
from ..separator import Separator
from .ledger import FileRecord, Settings, content_hash, file_identity


def wiener_of(settings: Settings) -> WienerSettings:
    """The Wiener options recorded in ``settings``."""
    return WienerSettings(
        niter=int(settings["niter"]),
        softmask=bool(settings["softmask"]),
        residual=bool(settings["residual"]),
        wiener_win_len=settings["wiener_win_len"] or None,
    )


def load_for(settings: Settings, device: str) -> Separator:
    """The separator that ``settings`` describe, on ``device``."""
    weights = settings.get("ensemble_weights")
    return load_separator(
        settings["model"], settings["targets"], wiener_of(settings), device, progress=False,
        shifts=int(settings.get("shifts", 1)), weights=parse_weights(weights) if weights else None,
        precision=str(settings.get("precision", "fp32")),
    )  # fmt: skip


class _Failure(BatchListener):
    """Keeps the one-line message of a failed job."""

    def __init__(self) -> None:
        self.message: str | None = None

    def failed(self, job: Job, message: str) -> None:
        self.message = message


class SeparateWorker:
    """One actor: a loaded separator and the run's settings and output options.

    Each file goes through :func:`unmix.engine.separate_files` exactly as in the plain CLI
    (same output paths, encoders, records), with ``force`` on: the ledger, not the files on
    disk, decides what is redone, and a retried file replaces what a killed worker left.

    Args:
        settings: the run's settings (``unmix.catalog.cli.settings_from_args``).
        options: output options (absolute ``out_dir``; outputs are recorded relative to it).
        device: ``"cpu"`` or ``"cuda"``.
        threads: CPU threads of this worker (``torch.set_num_threads``).
    """

    def __init__(
        self, settings: Settings, options: OutputOptions, device: str, threads: int
    ) -> None:
        torch.set_num_threads(threads)
        self.settings = settings
        self.options = replace(options, force=True)
        self.separator = load_for(settings, device)
        self.plan = plan_segments(self.separator, settings["segment"], settings["overlap"])
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Separate every row of ``batch``; returns ``{"input", "record"}`` (JSON lines)."""
        inputs = [str(p) for p in batch["input"]]
        records = [json.dumps(self.separate(Path(i)).to_json()) for i in inputs]
        return {"input": np.array(inputs, dtype=object), "record": np.array(records, dtype=object)}

    def separate(self, path: Path) -> FileRecord:
        """Separate one file; every failure becomes a ``failed`` record."""
        started = time.perf_counter()
        record = FileRecord(str(path), "failed", self.settings, worker=self.name)
        listener = _Failure()
        try:
            record.size, record.mtime_ns = file_identity(path)
            record.sha256 = content_hash(path)
            jobs = plan_batch([path], self.options)
            result = separate_files(self.separator, jobs, plan=self.plan, listener=listener)
        except Exception as exc:  # one broken file must not stop the run
            listener.message = one_line(str(path), exc)
            result = None
        report = result.reports.get(path) if result is not None else None
        if report is None:
            errors = jobs.errors if result is not None else []
            record.error = listener.message or (errors[0] if errors else f"{path}: not separated")
        else:
            record.status = "done"
            record.outputs = [_relative(o, self.options.out_dir) for o in report.outputs]
            record.seconds = report.seconds
        record.duration = time.perf_counter() - started
        record.finished = time.time()
        return record


def one_line(label: str, exc: BaseException) -> str:
    """The one-line error of ``exc`` for the input ``label``."""
    if isinstance(exc, UnmixError):
        text = str(exc)
    elif isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror + (f": {exc.filename}" if exc.filename else "")
    else:
        text = f"unexpected {type(exc).__name__}: {exc}"
    text = " ".join(text.split())
    return text if label in text else f"{label}: {text}"


def _relative(path: Path, folder: Path) -> str:
    try:
        return str(Path(path).relative_to(folder))
    except ValueError:
        return str(path)


def worker_kwargs(
    settings: Settings, options: OutputOptions, device: str, threads: int
) -> dict[str, Any]:
    """Constructor arguments of :class:`SeparateWorker` (what Ray ships to each actor)."""
    return {"settings": settings, "options": options, "device": device, "threads": threads}
