"""Download names and the ``stems.zip`` stream (written while it is sent, no temporary file)."""

from __future__ import annotations

import contextlib
import io
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from urllib.parse import quote

#: media types of the output formats
MEDIA_TYPES = {"wav": "audio/wav", "flac": "audio/flac", "mp3": "audio/mpeg"}
CHUNK = 1 << 20


def safe_name(client_name: str) -> str:
    """A download-name base from the client's file name: ``My Song (live).mp3`` →
    ``My_Song_live``; only letters, digits, ``._-``; never empty, at most 80 characters."""
    stem = PurePosixPath(client_name.replace("\\", "/")).name
    stem = stem.rsplit(".", 1)[0] if "." in stem[1:] else stem
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:80]
    return cleaned or "song"


def attachment(filename: str) -> str:
    """A ``Content-Disposition`` value that cannot break out of its quotes."""
    return f"attachment; filename=\"{filename}\"; filename*=UTF-8''{quote(filename)}"


class _Pending(io.RawIOBase):
    """An unseekable sink that keeps what :mod:`zipfile` wrote until it is taken."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


def zip_stream(files: dict[str, Path]) -> Iterator[bytes]:
    """The bytes of a zip (stored, not compressed) holding ``files`` as ``name → path``.

    Every file is opened before the first byte is sent, so the zip stays whole if the job
    expires or is deleted meanwhile (POSIX: open files outlive their names).
    """
    sink = _Pending()
    with contextlib.ExitStack() as stack:
        sources = {name: stack.enter_context(open(path, "rb")) for name, path in files.items()}
        with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED) as archive:
            for name, src in sources.items():
                with archive.open(name, "w", force_zip64=True) as dst:
                    while chunk := src.read(CHUNK):
                        dst.write(chunk)
                        yield sink.take()
    yield sink.take()
