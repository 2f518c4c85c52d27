"""What each output file was made with, so that a re-run never mixes settings.

Every folder that receives stems gets a small ``.unmix.json``: output file name → the
settings that produced it (model, outputs, Wiener options, part of the input, segments,
format). Before a run, an existing output is *the same* (skip that stem), *made otherwise*
(refuse the input unless ``--force``: a folder would hold stems of two different
separations) or *unknown* (no record: refused the same way, since nothing says it matches).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..fileio import atomic_write_text

#: the record's file name in each output folder
RECORD_NAME = ".unmix.json"
#: largest record read back (bytes); a bigger one is treated as unreadable
MAX_RECORD_BYTES = 4 * 2**20
#: bytes hashed at each end of an input to tell a changed input from the same one
FINGERPRINT_BYTES = 2**20

log = logging.getLogger(__name__)
_lock = threading.Lock()  # one read-modify-write at a time (parallel jobs share folders)

Settings = Mapping[str, Any]


def normalized(settings: Settings) -> dict[str, Any]:
    """``settings`` as they read back from JSON (tuples become lists), for comparing."""
    value: dict[str, Any] = json.loads(json.dumps(dict(settings), sort_keys=True))
    return value


def _read(folder: Path) -> dict[str, Any]:
    path = folder / RECORD_NAME
    try:
        if path.stat().st_size > MAX_RECORD_BYTES:
            log.warning("%s is larger than %d bytes; ignoring it", path, MAX_RECORD_BYTES)
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("cannot read %s (%s); treating its outputs as unknown", path, exc)
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    return files if isinstance(files, dict) else {}


def recorded(output: Path) -> dict[str, Any] | None:
    """The settings recorded for ``output``, or ``None`` when there are none."""
    with _lock:
        entry = _read(output.parent).get(output.name)
    return entry if isinstance(entry, dict) else None


def record(outputs: list[Path], settings: Settings) -> None:
    """Note ``settings`` for ``outputs`` (in their folders' records, atomically)."""
    value = normalized(settings)
    by_folder: dict[Path, list[str]] = {}
    for output in outputs:
        by_folder.setdefault(output.parent, []).append(output.name)
    with _lock:
        for folder, names in by_folder.items():
            with _folder_lock(folder):
                files = _read(folder)
                files.update(dict.fromkeys(names, value))
                text = json.dumps({"version": 1, "files": files}, indent=1, sort_keys=True)
                atomic_write_text(folder / RECORD_NAME, text + "\n")


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``folder`` itself, so that processes writing into one
    folder at the same time (``-j`` in two shells, Ray workers) do not lose each other's
    entries; where the system cannot lock a folder (Windows, some network file systems) the
    update goes ahead unlocked, as before."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def fingerprint(path: Path) -> str | None:
    """``size:sha256`` of the first and last MiB of a regular file (cheap for any length,
    and it changes when the audio is re-encoded or replaced); ``None`` for stdin, pipes and
    unreadable files."""
    try:
        if not path.is_file():
            return None
        size = path.stat().st_size
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            digest.update(fh.read(FINGERPRINT_BYTES))
            if size > FINGERPRINT_BYTES:
                fh.seek(max(FINGERPRINT_BYTES, size - FINGERPRINT_BYTES))
                digest.update(fh.read(FINGERPRINT_BYTES))
    except OSError:
        return None
    return f"{size}:{digest.hexdigest()[:16]}"


def differences(old: Settings, new: Settings) -> list[str]:
    """``key: old -> new`` for every setting that differs (for messages)."""
    old, new = normalized(old), normalized(new)
    return [
        f"{key} {old.get(key)!r} -> {new.get(key)!r}"
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    ]
