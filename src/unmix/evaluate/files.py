"""Writing the scores to disk: museval's per-track JSON under a file name that fits, the
summary files as one all-or-nothing group, and one-line errors for what goes wrong.

Every file is written to a temporary name and renamed (:mod:`unmix.fileio`): a full disk,
a missing permission or an interruption leaves no half-written score file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from ..errors import UnmixError
from ..fileio import atomic_path
from .scores import TrackScores

#: the longest file name (in bytes) of the file systems unmix runs on; temporary files
#: have short names of their own (:func:`unmix.fileio.temporary_file`)
MAX_NAME_BYTES = 255
#: hex digits of the hash that tells shortened names apart
HASH_DIGITS = 12


def fit_file_name(stem: str, suffix: str) -> str:
    """``stem + suffix``, or a shortened ``<start of stem>~<hash>`` + suffix when that name
    is too long for the file system (a 255-byte track folder gives a 260-byte JSON name).

    The hash is of the whole stem, so different long names stay different files; the
    start is cut between characters, never inside one.
    """
    name = stem + suffix
    if len(os.fsencode(name)) <= MAX_NAME_BYTES:
        return name
    raw = os.fsencode(stem)
    digest = hashlib.sha256(raw).hexdigest()[:HASH_DIGITS]
    keep = MAX_NAME_BYTES - len(os.fsencode(suffix)) - 1 - HASH_DIGITS
    start = raw[:keep].decode("utf-8", "ignore")
    return f"{start}~{digest}{suffix}"


def json_path(out_dir: str | Path, track: TrackScores) -> Path:
    """museval's location, ``<out_dir>/<subset>/<track name>.json``, with the name
    shortened (:func:`fit_file_name`) when it is too long for a file name."""
    return Path(out_dir) / track.subset / fit_file_name(track.name, ".json")


class ScoreWriteError(UnmixError):
    """A score file that cannot be written (its ``__cause__`` is the ``OSError``)."""

    @property
    def name_too_long(self) -> bool:
        """Whether the path was too long (a problem of that file only, unlike a full disk)."""
        cause = self.__cause__
        return isinstance(cause, OSError) and cause.errno == errno.ENAMETOOLONG


def write_error(path: Path, exc: OSError) -> ScoreWriteError:
    """A one-line error for a score file that could not be written (raise it ``from exc``)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return ScoreWriteError(
        f"cannot write {path}: {reason}; no partial file was left (free some space, or "
        "choose another --out-dir)"
    )


def check_out_dir(out_dir: str | Path, flag: str = "--out-dir") -> None:
    """Refuse an output folder that cannot be one, before anything is computed.

    Args:
        out_dir: the folder (it need not exist yet).
        flag: the option that named it, for the message.

    Raises:
        UnmixError: ``out_dir`` (or the nearest existing path above it) is a file, or
            that folder is not writable.
    """
    path = Path(out_dir)
    if path.exists() and not path.is_dir():
        raise UnmixError(f"{flag} {path} is a file, not a folder: choose a folder")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UnmixError(f"{flag} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UnmixError(f"{flag} {path}: cannot write into {existing} (permission denied)")


def write_track_json(out_dir: str | Path, scores: TrackScores) -> Path:
    """Write museval's per-track JSON (:func:`json_path`), atomically.

    Raises:
        ScoreWriteError: it cannot be written.
    """
    path = json_path(out_dir, scores)
    write_files({path: scores.to_json()})
    return path


def write_files(files: Mapping[Path, str]) -> list[Path]:
    """Write several UTF-8 text files all or nothing: each goes to a temporary file first,
    and they are renamed into place only once all of them are complete.

    Raises:
        ScoreWriteError: one cannot be written (then none of them is replaced or left half-done).
    """
    current = Path()
    try:
        with contextlib.ExitStack() as stack:
            for path, text in files.items():
                current = path
                tmp = stack.enter_context(atomic_path(path))
                with open(tmp, "wb") as fh:
                    fh.write(text.encode("utf-8"))
                    fh.flush()
                    os.fsync(fh.fileno())
    except OSError as exc:
        raise write_error(current, exc) from exc
    return list(files)
