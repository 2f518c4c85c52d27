"""Atomic file writes: write to a temporary name in the same folder, then rename.

Temporary names are short and recognisable, ``.unmix-<host>-<pid>-<random>.part`` (plus an
ending some writers need), whatever the final name: a 250-byte output name still gets a valid
temporary name, and :func:`remove_stale_temporaries` can tell the leftovers of a killed run
(their process is gone) from the files of a run still going. ``<host>`` is a short hash of the
machine's name: on a folder shared by several machines (NFS, a Ray cluster), a process id
means nothing on another host, so only this machine's leftovers are ever removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

#: ``.unmix-<host>-<pid>-<8 random characters>.part[.ext]`` (what :func:`temporary_file`
#: makes); names without ``<host>`` (earlier versions of unmix) count as this machine's
TEMPORARY_NAME = re.compile(
    r"\.unmix-(?:(?P<host>[0-9a-f]{6})-)?(?P<pid>\d{1,10})-[a-z0-9_]{8}"
    r"(\.[A-Za-z0-9]{1,12})*\.part(\.[A-Za-z0-9]{1,12})?"
)


def host_tag() -> str:
    """Six hex digits naming this machine in temporary names (a hash of its host name)."""
    return hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:6]


def temporary_file(folder: Path, suffix: str = ".part") -> Path:
    """Create an empty hidden temporary file in ``folder`` (which must exist)."""
    fd, tmp = tempfile.mkstemp(
        prefix=f".unmix-{host_tag()}-{os.getpid()}-", suffix=suffix, dir=folder
    )
    os.close(fd)
    return Path(tmp)


def _process_gone(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, OSError):
        return False  # it exists (owned by someone else), or cannot be asked: keep
    return False


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files in ``folder`` (not below it) left by processes that are
    gone (killed with SIGKILL, a power cut); returns what was removed. Files of running
    processes, of other machines (a shared folder) and anything not named by
    :func:`temporary_file` are left alone."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = TEMPORARY_NAME.fullmatch(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        if match["host"] not in (None, host_tag()):
            continue  # another machine's process id: cannot be asked from here
        if _process_gone(int(match["pid"])):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


@contextlib.contextmanager
def atomic_path(path: Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    On any exception (including KeyboardInterrupt) the temporary file is removed
    and ``path`` is left untouched, so readers never see a half-written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = temporary_file(path.parent, suffix if suffix is not None else ".part")
    try:
        yield tmp_path
        publish(tmp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def publish(tmp: Path, path: Path) -> None:
    """Rename a finished temporary file onto ``path``, with the permissions a plain
    ``open()`` would have given it (``mkstemp`` creates ``0600`` files)."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: read by setting (briefly process-wide)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (fsync before the rename)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))
