"""Multipart uploads streamed to disk, with the size cap enforced while reading.

Only the file part ``audio`` is written (to a path the server chose); other fields are
small text values. Anything over the cap stops the upload with 413 and nothing is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from python_multipart.multipart import MultipartParser, parse_options_header

#: longest text field (bytes) and most fields an upload may carry
MAX_FIELD = 4096
MAX_PARTS = 16


class UploadError(Exception):
    """A refused upload: HTTP ``status`` and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Upload:
    """What an upload carried: the file's client name and size, and the text fields."""

    filename: str | None = None
    size: int = 0
    fields: dict[str, list[str]] = field(default_factory=dict)


def boundary_of(content_type: str) -> bytes:
    """The multipart boundary of a ``Content-Type`` header (UploadError if not multipart)."""
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise UploadError(
            415, "send the song as multipart/form-data with the file in the field 'audio'"
        )
    return boundary


class _Receiver:
    """python-multipart callbacks writing the ``audio`` part to ``dest``."""

    def __init__(self, dest: Path, cap: int) -> None:
        self.dest = dest
        self.cap = cap
        self.upload = Upload()
        self.parts = 0
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name: str | None = None
        self._text: bytearray | None = None
        self._file: BinaryIO | None = None

    # headers
    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise UploadError(400, f"too many form fields (at most {MAX_PARTS})")
        self._headers = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = self._header_value = b""

    def on_headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = params.get(b"name", b"").decode("utf-8", "replace")
        if self._name == "audio":
            if self._file is not None or self.upload.filename is not None:
                raise UploadError(400, "send one file per job (one 'audio' field)")
            filename = params.get(b"filename", b"").decode("utf-8", "replace")
            self.upload.filename = filename
            self._file = open(self.dest, "wb")  # noqa: SIM115 - closed in on_part_end/close
        else:
            self._text = bytearray()

    # data
    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._file is not None:
            self.upload.size += len(chunk)
            if self.upload.size > self.cap:
                raise UploadError(413, self._too_large())
            self._file.write(chunk)
        elif self._text is not None:
            self._text += chunk
            if len(self._text) > MAX_FIELD:
                raise UploadError(400, f"the form field {self._name!r} is too long")

    def on_part_end(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        elif self._text is not None and self._name:
            value = self._text.decode("utf-8", "replace")
            self.upload.fields.setdefault(self._name, []).append(value)
        self._text = None

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None

    def _too_large(self) -> str:
        return (
            f"the upload is larger than this server's limit of {self.cap / 1e6:g} MB "
            "(--max-upload-mb); nothing was kept"
        )


async def _with_idle_limit(chunks: AsyncIterator[bytes], idle: float) -> AsyncIterator[bytes]:
    """``chunks``, refused with 408 when the client sends nothing for ``idle`` seconds (a
    stalled upload would otherwise hold a queue place for ever)."""
    iterator = chunks.__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(iterator.__anext__(), idle)
        except StopAsyncIteration:
            return
        except asyncio.TimeoutError as exc:
            raise UploadError(
                408, f"the upload stalled (nothing arrived for {idle:g} s); nothing was kept"
            ) from exc
        yield chunk


async def receive(
    chunks: AsyncIterator[bytes], content_type: str, dest: Path, cap: int, idle: float = 60.0
) -> Upload:
    """Read a multipart body from ``chunks``, writing the ``audio`` file to ``dest``.

    Raises:
        UploadError: not multipart, over ``cap`` bytes (413), malformed, no ``audio`` file,
            stalled for ``idle`` seconds (408), or the disk is full (507). ``dest`` may be
            left for the caller to delete.
    """
    receiver = _Receiver(dest, cap)
    callbacks = {
        name: getattr(receiver, name)
        for name in (
            "on_part_begin", "on_part_data", "on_part_end", "on_header_field",
            "on_header_value", "on_header_end", "on_headers_finished",
        )
    }  # fmt: skip
    parser = MultipartParser(boundary_of(content_type), callbacks)  # type: ignore[arg-type]
    try:
        async for chunk in _with_idle_limit(chunks, idle):
            parser.write(chunk)
        parser.finalize()
    except UploadError:
        raise
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise UploadError(507, "the server's disk is full; nothing was kept") from exc
        raise UploadError(500, "the server could not store the upload; nothing was kept") from exc
    except Exception as exc:
        raise UploadError(400, f"the upload is not valid multipart/form-data ({exc})") from exc
    finally:
        receiver.close()
    if receiver.upload.filename is None:
        raise UploadError(400, "no file in the form field 'audio'")
    if receiver.upload.size == 0:
        raise UploadError(400, "the uploaded file is empty")
    return receiver.upload
