"""Inputs that can only be read once (stdin, pipes, FIFOs, character devices).

Decoding opens a file more than once (probe, then decode), which hangs on a FIFO and
loses data on a pipe. Such an input is copied once, in bounded chunks, to a temporary file
(:func:`unmix.fileio.temporary_file`) that is removed afterwards; regular files are used
as they are. ``-`` means standard input.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ..errors import AudioError, UnmixError
from ..fileio import temporary_file
from .decode import info

#: copy size (bytes)
CHUNK_BYTES = 1 << 20
#: largest stream copied (bytes): about 6 h of 48 kHz stereo float
MAX_SPOOL_BYTES = 8 << 30

STDIN = "-"


def is_stdin(path: str | Path) -> bool:
    """Whether ``path`` names standard input (``-``)."""
    return str(path) == STDIN


def needs_spool(path: str | Path) -> bool:
    """Whether ``path`` is stdin or exists but is not a regular file or folder."""
    if is_stdin(path):
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False  # decoding reports it
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


@contextlib.contextmanager
def seekable_input(path: str | Path, folder: Path) -> Iterator[Path]:
    """Yield a path that can be opened several times: ``path`` itself for a regular file,
    else a copy of the stream in a temporary file in ``folder`` (removed on exit).

    Errors raised inside the block that name the copy are re-raised naming ``path``.

    Raises:
        AudioError: the stream is not audio (checked after its first megabyte), is longer
            than :data:`MAX_SPOOL_BYTES`, or cannot be read.
        UnmixError: the copy cannot be written (e.g. the disk is full).
    """
    if not needs_spool(path):
        yield Path(path)
        return
    name = "standard input" if is_stdin(path) else str(path)
    folder.mkdir(parents=True, exist_ok=True)
    copy = temporary_file(folder)
    try:
        _copy(path, copy, name)
        try:
            yield copy
        except AudioError as exc:
            raise AudioError(str(exc).replace(str(copy), name)) from exc
    finally:
        with contextlib.suppress(OSError):
            copy.unlink()


def _copy(path: str | Path, copy: Path, name: str) -> None:
    with contextlib.ExitStack() as stack:
        source: BinaryIO = (
            sys.stdin.buffer if is_stdin(path) else stack.enter_context(open(path, "rb"))
        )
        out = stack.enter_context(open(copy, "wb"))
        total, probed = 0, False
        while chunk := _read(source, name):
            total += len(chunk)
            if total > MAX_SPOOL_BYTES:
                raise AudioError(
                    f"{name}: the stream is longer than {MAX_SPOOL_BYTES >> 30} GiB; "
                    "save it to a file and separate that"
                )
            try:
                out.write(chunk)
                if not probed and total >= CHUNK_BYTES:
                    out.flush()
                    _probe(copy, name)  # /dev/zero or random bytes: stop before the disk fills
                    probed = True
            except OSError as exc:
                raise UnmixError(
                    f"cannot copy {name} to {copy.parent}: {exc.strerror or exc}"
                ) from exc
    if total == 0:
        raise AudioError(f"{name}: the stream is empty (0 bytes)")
    if not probed:
        _probe(copy, name)


def _read(source: BinaryIO, name: str) -> bytes:
    try:
        return source.read(CHUNK_BYTES)
    except OSError as exc:
        raise AudioError(f"{name}: cannot read it: {exc.strerror or exc}") from exc


def _probe(copy: Path, name: str) -> None:
    try:
        info(copy)
    except AudioError as exc:
        raise AudioError(str(exc).replace(str(copy), name)) from exc
