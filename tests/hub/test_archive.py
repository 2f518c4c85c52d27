"""Safe zip extraction: hostile names, links, zip bombs and lying headers are refused and
leave nothing behind; ordinary archives extract completely."""

from __future__ import annotations

import stat
import struct
import zipfile
from pathlib import Path

import pytest

from unmix.hub.archive import ArchiveError, ZipLimits, check_member_name, extract_zip


def make_zip(
    path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED
) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def everything_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def assert_refused(archive: Path, dest: Path, match: str, **kwargs) -> None:
    before = everything_under(archive.parent)
    with pytest.raises(ArchiveError, match=match):
        extract_zip(archive, dest, **kwargs)
    assert not dest.exists()
    assert everything_under(archive.parent) == before  # no temporary folder left either


def test_extracts_nested_files_and_filters_by_suffix(tmp_path):
    archive = make_zip(
        tmp_path / "ok.zip",
        {"umx/vocals.h5": b"v" * 1000, "umx/bass.h5": b"b", "umx/readme.txt": b"hi", "top.h5": b""},
    )
    dest = extract_zip(archive, tmp_path / "cache" / "out", suffixes=(".h5",))
    assert everything_under(dest) == ["top.h5", "umx", "umx/bass.h5", "umx/vocals.h5"]
    assert (dest / "umx" / "vocals.h5").read_bytes() == b"v" * 1000


@pytest.mark.parametrize(
    "name",
    [
        "../evil.txt",
        "a/../../evil.txt",
        "ok/../../../../evil.txt",
        "/tmp/evil.txt",
        "C:/evil.txt",
        "..\\evil.txt",
        "a\\..\\..\\evil.txt",
    ],
)
def test_path_traversal_is_refused(tmp_path, name):
    archive = make_zip(tmp_path / "evil.zip", {"vocals.h5": b"fine", name: b"owned"})
    assert_refused(archive, tmp_path / "cache" / "out", "refusing archive member")
    assert not list(tmp_path.parent.rglob("evil.txt"))


def test_names_are_checked_even_when_filtered_out(tmp_path):
    archive = make_zip(tmp_path / "evil.zip", {"vocals.h5": b"fine", "../evil.txt": b"owned"})
    assert_refused(archive, tmp_path / "out", "outside the archive", suffixes=(".h5",))


def test_member_name_check():
    assert check_member_name("a/b/c.h5").parts == ("a", "b", "c.h5")
    for bad in ("", "a\x00b", "/abs", "..", "x/../../y"):
        with pytest.raises(ArchiveError):
            check_member_name(bad)


def test_symlink_member_is_refused(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("vocals.h5")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    assert_refused(archive, tmp_path / "out", "symbolic link")


def test_duplicate_names_are_refused(tmp_path):
    archive = tmp_path / "dup.zip"
    with zipfile.ZipFile(archive, "w") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        zf.writestr("vocals.h5", b"a")
        zf.writestr("vocals.h5", b"b")
    assert_refused(archive, tmp_path / "out", "appears twice")


def test_zip_bomb_is_refused_by_ratio(tmp_path):
    archive = make_zip(tmp_path / "bomb.zip", {"vocals.h5": bytes(50 << 20)})
    assert archive.stat().st_size < 1 << 20
    assert_refused(archive, tmp_path / "out", "zip bomb")


def test_size_and_count_limits(tmp_path):
    big = make_zip(
        tmp_path / "big.zip", {"a.h5": b"x" * 5000, "b.h5": b"y" * 5000}, zipfile.ZIP_STORED
    )
    assert_refused(
        big, tmp_path / "o1", "unpacks to 5000 bytes", limits=ZipLimits(max_member_bytes=4000)
    )
    assert_refused(
        big, tmp_path / "o2", "more than 8000 bytes", limits=ZipLimits(max_total_bytes=8000)
    )
    assert_refused(big, tmp_path / "o3", "lists 2 entries", limits=ZipLimits(max_members=1))
    extract_zip(big, tmp_path / "o4", limits=ZipLimits(max_total_bytes=10000))


def _patch_sizes(archive: Path, declared: int) -> None:
    """Make every header claim ``declared`` uncompressed bytes (a lying zip)."""
    data = bytearray(archive.read_bytes())
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        pos = data.find(sig)
        while pos != -1:
            data[pos + offset : pos + offset + 4] = struct.pack("<I", declared)
            pos = data.find(sig, pos + 4)
    archive.write_bytes(bytes(data))


def test_lying_size_header_is_caught_while_streaming(tmp_path):
    archive = make_zip(tmp_path / "liar.zip", {"vocals.h5": b"z" * 100_000}, zipfile.ZIP_STORED)
    _patch_sizes(archive, 10)
    assert_refused(archive, tmp_path / "out", "not a valid zip|declared")


def test_not_a_zip_and_existing_destination(tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"no zip here")
    assert_refused(junk, tmp_path / "out", "not a valid zip")
    ok = make_zip(tmp_path / "ok.zip", {"a.h5": b"a"})
    (tmp_path / "taken").mkdir()
    with pytest.raises(ArchiveError, match="already exists"):
        extract_zip(ok, tmp_path / "taken")
