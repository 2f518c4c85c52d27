"""The run ledger ``OUT/unmix-run.jsonl``: what a catalog run did, one JSON object a line.

Two kinds of line (``docs/catalog.md`` documents every field):

* ``{"kind": "run", ...}``: written when a run starts, with its settings;
* ``{"kind": "file", ...}``: one per input and attempt, written by the driver when a worker
  reports the input ``done`` (stems published) or ``failed`` (one-line error, nothing
  published).

Only the driver writes, by appending one whole line and flushing it to disk, so the file is
its own journal: a driver killed (or a disk filled) in the middle of a line leaves at most
one incomplete last line, which :func:`read_ledger` ignores. The latest line of an input
wins.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UnmixError

#: the ledger's file name inside the output folder
LEDGER_NAME = "unmix-run.jsonl"
#: longest ledger line read (bytes); real lines are a few hundred bytes
MAX_LINE = 1 << 20
#: format version written in every run line
LEDGER_VERSION = 1

Settings = dict[str, Any]


def file_identity(path: Path) -> tuple[int, int]:
    """``(size, mtime_ns)`` of ``path``: a changed file gets a new identity."""
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def content_hash(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of the file's bytes, read in chunks (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class FileRecord:
    """One ``file`` line: an attempt at one input.

    Attributes:
        input: absolute input path (the key).
        status: ``"done"`` or ``"failed"``.
        settings: the run's settings.
        sha256, size, mtime_ns: the input's content hash and identity when it was read.
        error: the one-line error (``failed`` only).
        outputs: stem files written, relative to the output folder (``done`` only).
        seconds: audio seconds separated; duration: wall seconds the worker took.
        worker: ``host:pid`` of the worker process.
        finished: when the worker finished (Unix time, seconds).
    """

    input: str
    status: str
    settings: Settings
    sha256: str | None = None
    size: int | None = None
    mtime_ns: int | None = None
    error: str | None = None
    outputs: list[str] = field(default_factory=list)
    seconds: float = 0.0
    duration: float = 0.0
    worker: str = ""
    finished: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The JSON object of the line."""
        return {"kind": "file", **self.__dict__}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> FileRecord:
        """Parse a ``file`` line (unknown keys are ignored; missing keys are an error)."""
        try:
            record = cls(
                input=str(obj["input"]),
                status=str(obj["status"]),
                settings=dict(obj["settings"]),
                sha256=obj.get("sha256"),
                size=obj.get("size"),
                mtime_ns=obj.get("mtime_ns"),
                error=obj.get("error"),
                outputs=[str(o) for o in obj.get("outputs") or []],
                seconds=float(obj.get("seconds") or 0.0),
                duration=float(obj.get("duration") or 0.0),
                worker=str(obj.get("worker") or ""),
                finished=float(obj.get("finished") or 0.0),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a file record: {exc}") from exc
        if record.status not in ("done", "failed"):
            raise ValueError(f"unknown status {record.status!r}")
        return record


@dataclass
class LedgerState:
    """What a ledger says: the settings of its runs and the latest record of each input."""

    path: Path
    exists: bool = False
    run_settings: list[Settings] = field(default_factory=list)
    latest: dict[str, FileRecord] = field(default_factory=dict)
    nb_lines: int = 0

    @property
    def settings(self) -> Settings | None:
        """The settings of the latest run (None: no run yet)."""
        return self.run_settings[-1] if self.run_settings else None


def _lines(path: Path) -> Iterator[tuple[int, bytes, bool]]:
    """``(line number, bytes, is last)`` of every line, each bounded by :data:`MAX_LINE`."""
    with open(path, "rb") as fh:
        number, pending = 0, fh.readline(MAX_LINE + 1)
        while pending:
            number += 1
            following = fh.readline(MAX_LINE + 1)
            if len(pending) > MAX_LINE:
                raise UnmixError(
                    f"{path}: line {number} is longer than {MAX_LINE} bytes; this is not an "
                    "unmix ledger (move it away or choose another --out-dir)"
                )
            yield number, pending, not following
            pending = following


def read_ledger(out_dir: Path) -> LedgerState:
    """Read ``out_dir/unmix-run.jsonl`` (a missing file is an empty ledger).

    Raises:
        UnmixError: a line other than an incomplete last one is not a ledger line.
    """
    path = out_dir / LEDGER_NAME
    state = LedgerState(path)
    if not path.is_file():
        return state
    state.exists = True
    for number, raw, last in _lines(path):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
            if not isinstance(obj, dict):
                raise ValueError("not an object")
            if obj.get("kind") == "run":
                state.run_settings.append(dict(obj["settings"]))
            elif obj.get("kind") == "file":
                record = FileRecord.from_json(obj)
                state.latest[record.input] = record
            else:
                raise ValueError(f"unknown kind {obj.get('kind')!r}")
        except (ValueError, KeyError, TypeError) as exc:
            if last and not raw.endswith(b"\n"):
                continue  # a line cut short by a killed driver or a full disk
            raise UnmixError(
                f"{path}: line {number} is not a ledger line ({exc}); repair or move the "
                "file, or choose another --out-dir"
            ) from None
        state.nb_lines += 1
    return state


class LedgerWriter:
    """Appends whole lines to the ledger, each flushed and fsync'ed before returning."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cut_partial_line()
        self._fh = open(path, "ab")  # noqa: SIM115 (closed by close())

    def _cut_partial_line(self) -> None:
        """Drop an incomplete last line (a killed driver's) so the next line starts clean."""
        try:
            with open(self.path, "rb+") as fh:
                size = fh.seek(0, os.SEEK_END)
                if size == 0:
                    return
                fh.seek(max(0, size - MAX_LINE))
                tail = fh.read()
                if tail.endswith(b"\n"):
                    return
                cut = tail.rfind(b"\n")
                fh.truncate(size - len(tail) + cut + 1 if cut >= 0 else max(0, size - len(tail)))
        except FileNotFoundError:
            return

    def append(self, obj: Mapping[str, Any]) -> None:
        """Write one line (``obj`` as compact JSON) and make it durable."""
        line = json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n"
        self._fh.write(line.encode("utf-8"))
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        """Close the file."""
        self._fh.close()


def describe_change(old: Settings, new: Settings) -> str:
    """``niter: 1 → 0, format: 'wav' → 'flac'`` for the settings that differ."""
    keys = [k for k in dict.fromkeys([*old, *new]) if old.get(k) != new.get(k)]
    return ", ".join(f"{k}: {old.get(k)!r} → {new.get(k)!r}" for k in keys)
