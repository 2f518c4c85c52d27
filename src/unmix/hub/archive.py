"""Safe extraction of zip archives (downloaded or user-supplied weight bundles).

Every member name is checked before anything is written: absolute paths, drive letters,
backslashes, ``..`` components, links and duplicate names are refused. Declared sizes,
member count and compression ratio are bounded (zip bombs), and the bytes actually
decompressed are counted while streaming, so a header that lies about its size is caught
too. Extraction goes into a temporary folder beside the destination that is renamed into
place only when every member was written: a refused or interrupted extraction leaves
nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import UnmixError

CHUNK = 1 << 20


@dataclass(frozen=True)
class ZipLimits:
    """Bounds applied to an archive before and while extracting it.

    Attributes:
        max_members: most entries (files and folders) the archive may list.
        max_member_bytes: largest uncompressed size of one file.
        max_total_bytes: largest uncompressed size of all extracted files together.
        max_ratio: largest uncompressed/compressed size ratio of one file (weights compress
            to about 1.1:1; a zip bomb of zeros to about 1000:1).
    """

    max_members: int = 1000
    max_member_bytes: int = 1 << 30
    max_total_bytes: int = 2 << 30
    max_ratio: float = 100.0


class ArchiveError(UnmixError):
    """An archive that is unreadable, unsafe or too large."""


def check_member_name(name: str) -> PurePosixPath:
    """The relative path a member may be written to.

    Raises:
        ArchiveError: absolute paths, drive letters, backslashes, NUL bytes or ``..``.
    """
    if not name or "\x00" in name or "\\" in name:
        raise ArchiveError(f"refusing archive member {name!r}: invalid characters in its name")
    path = PurePosixPath(name)
    if path.is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"refusing archive member {name!r}: absolute path")
    if any(part == ".." for part in path.parts):
        raise ArchiveError(f"refusing archive member {name!r}: it points outside the archive")
    if not path.parts:
        raise ArchiveError(f"refusing archive member {name!r}: empty path")
    return path


def _is_link(info: zipfile.ZipInfo) -> bool:
    mode = info.external_attr >> 16
    return stat.S_ISLNK(mode)


def check_members(infos: list[zipfile.ZipInfo], limits: ZipLimits, source: str) -> None:
    """Validate names, kinds and declared sizes of all members before extracting any.

    Raises:
        ArchiveError: naming the first offending member and the limit it breaks.
    """
    if len(infos) > limits.max_members:
        raise ArchiveError(
            f"{source} lists {len(infos)} entries (limit {limits.max_members}); not a weights archive"
        )
    seen: set[PurePosixPath] = set()
    total = 0
    for info in infos:
        path = check_member_name(info.filename)
        if _is_link(info):
            raise ArchiveError(f"refusing archive member {info.filename!r}: symbolic link")
        if path in seen:
            raise ArchiveError(f"refusing {source}: member {info.filename!r} appears twice")
        seen.add(path)
        if info.is_dir():
            continue
        if info.flag_bits & 0x1:
            raise ArchiveError(
                f"refusing {source}: {info.filename!r} is encrypted; unmix reads only "
                "unencrypted weights archives (unpack it yourself and give the folder)"
            )
        if info.file_size > limits.max_member_bytes:
            raise ArchiveError(
                f"refusing {source}: {info.filename!r} unpacks to {info.file_size} bytes "
                f"(limit {limits.max_member_bytes})"
            )
        if info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise ArchiveError(
                f"refusing {source}: {info.filename!r} is compressed "
                f"{info.file_size / max(info.compress_size, 1):.0f}:1 (limit "
                f"{limits.max_ratio:.0f}:1), which looks like a zip bomb"
            )
        total += info.file_size
        if total > limits.max_total_bytes:
            raise ArchiveError(
                f"refusing {source}: it unpacks to more than {limits.max_total_bytes} bytes"
            )


def _copy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, budget: int) -> int:
    """Stream one member to ``dest``; returns the bytes written.

    Raises:
        ArchiveError: more bytes than declared or than ``budget``.
    """
    limit = min(info.file_size, budget)
    written = 0
    with zf.open(info) as src, open(dest, "xb") as out:
        for block in iter(lambda: src.read(CHUNK), b""):
            written += len(block)
            if written > limit:
                raise ArchiveError(
                    f"refusing archive member {info.filename!r}: it unpacks to more than "
                    f"its declared {info.file_size} bytes or the size limit"
                )
            out.write(block)
    return written


def _extract_into(
    zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], root: Path, limits: ZipLimits
) -> None:
    budget = limits.max_total_bytes
    for info in infos:
        rel = check_member_name(info.filename)
        target = root.joinpath(*rel.parts)
        if not target.resolve().is_relative_to(root.resolve()):
            raise ArchiveError(f"refusing archive member {info.filename!r}: outside the archive")
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        budget -= _copy_member(zf, info, target, budget)


def extract_zip(
    archive: str | Path,
    dest: str | Path,
    limits: ZipLimits | None = None,
    suffixes: tuple[str, ...] | None = None,
) -> Path:
    """Safely extract ``archive`` into the new folder ``dest``.

    Args:
        archive: zip file.
        dest: folder to create (must not exist yet); its parent is created if needed.
        limits: size and count bounds (Default: :class:`ZipLimits`).
        suffixes: extract only files whose name ends with one of these (all names are
            still checked); ``None`` extracts every file.

    Returns:
        ``dest``.

    Raises:
        ArchiveError: unreadable or unsafe archives; nothing is left at ``dest``.
    """
    archive, dest = Path(archive), Path(dest)
    limits = limits or ZipLimits()
    if dest.exists():
        raise ArchiveError(f"cannot extract {archive}: {dest} already exists")
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            check_members(infos, limits, str(archive))
            wanted = [
                i for i in infos if i.is_dir() or suffixes is None or i.filename.endswith(suffixes)
            ]
            _extract_checked(zf, wanted, dest, limits)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError) as exc:
        raise ArchiveError(f"cannot read {archive}: not a valid zip archive ({exc})") from exc
    except OSError as exc:
        raise ArchiveError(f"cannot extract {archive} into {dest}: {exc}") from exc
    return dest


def _extract_checked(
    zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], dest: Path, limits: ZipLimits
) -> None:
    """Extract checked members into a temporary folder, then rename it to ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent))
    try:
        _extract_into(zf, infos, tmp, limits)
        os.replace(tmp, dest)
    except BaseException:
        _remove_tree(tmp)
        raise


def _remove_tree(path: Path) -> None:
    with contextlib.suppress(OSError):
        shutil.rmtree(path)
