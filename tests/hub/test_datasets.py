"""The MUSDB18 preview set, fetched once into the cache (issue 18 item 3), against a local
HTTP server on 127.0.0.1 serving zips the tests build (no network)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from unmix.errors import UnmixError
from unmix.hub import datasets
from unmix.hub.archive import ArchiveError

from ..fileserver import FileServer, make_zip


@pytest.fixture()
def preview(
    file_server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> datasets.Dataset:
    """The preview set, served from ``file_server`` as ``previews.zip``; the cache in tmp_path."""
    monkeypatch.setenv("UNMIX_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("UNMIX_OFFLINE", raising=False)
    served = dataclasses.replace(datasets.MUSDB18_PREVIEW, url=f"{file_server.url}/previews.zip")
    monkeypatch.setitem(datasets.DATASETS, datasets.PREVIEW, served)
    return served


CLIPS = {"train/Song A.stem.mp4": b"A" * 5000, "test/Song B.stem.mp4": b"B" * 3000}


def _recorded(cache: Path) -> dict[str, str]:
    path = cache / "datasets" / "sha256-first-use.json"
    return json.loads(path.read_text()) if path.exists() else {}


def test_the_previews_are_downloaded_once_extracted_and_their_hash_recorded(
    file_server: FileServer, preview: datasets.Dataset
) -> None:
    data = make_zip({**CLIPS, "README.txt": b"not a stem"})
    file_server.files["previews.zip"] = data
    root = datasets.fetch_dataset(progress=False)
    assert root == preview.root
    assert (root / "train" / "Song A.stem.mp4").read_bytes() == b"A" * 5000
    assert (root / "test" / "Song B.stem.mp4").read_bytes() == b"B" * 3000
    assert not (root / "README.txt").exists()  # only stem files are extracted
    assert not preview.zip_path.exists()  # the zip is deleted once extracted
    assert _recorded(root.parent.parent) == {preview.filename: hashlib.sha256(data).hexdigest()}
    assert datasets.fetch_dataset(progress=False) == root  # no second download
    assert file_server.requests == ["/previews.zip"]


def test_a_zip_with_one_top_folder_works(
    file_server: FileServer, preview: datasets.Dataset
) -> None:
    file_server.files["previews.zip"] = make_zip({f"MUSDB18-7/{k}": v for k, v in CLIPS.items()})
    root = datasets.fetch_dataset(progress=False)
    assert root == preview.root / "MUSDB18-7"
    assert (root / "train" / "Song A.stem.mp4").is_file()


def test_a_later_download_is_checked_against_the_recorded_hash(
    file_server: FileServer, preview: datasets.Dataset
) -> None:
    file_server.files["previews.zip"] = make_zip(CLIPS)
    root = datasets.fetch_dataset(progress=False)
    recorded = _recorded(root.parent.parent)
    shutil.rmtree(preview.root)  # the user deletes the data; the file on the server changed
    file_server.files["previews.zip"] = make_zip({**CLIPS, "train/Evil.stem.mp4": b"x"})
    with pytest.raises(UnmixError, match="SHA-256"):
        datasets.fetch_dataset(progress=False)
    assert not preview.root.exists() and not preview.zip_path.exists()
    assert _recorded(root.parent.parent) == recorded


def test_a_hand_placed_zip_is_used_offline_and_checked(
    preview: datasets.Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UNMIX_OFFLINE", "1")
    preview.zip_path.parent.mkdir(parents=True)
    preview.zip_path.write_bytes(make_zip(CLIPS))
    root = datasets.fetch_dataset(progress=False)
    assert (root / "train" / "Song A.stem.mp4").is_file()
    assert preview.filename in _recorded(preview.root.parent.parent)
    # a different zip placed by hand later is refused: its hash differs from the first one
    shutil.rmtree(preview.root)
    preview.zip_path.write_bytes(make_zip({"train/Other.stem.mp4": b"o"}))
    with pytest.raises(UnmixError, match=r"SHA-256.*recorded"):
        datasets.fetch_dataset(progress=False)
    assert not preview.root.exists()


def test_offline_says_what_to_download_and_where_to_put_it(
    file_server: FileServer, preview: datasets.Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UNMIX_OFFLINE", "1")
    with pytest.raises(UnmixError) as err:
        datasets.fetch_dataset(progress=False)
    message = str(err.value)
    assert "\n" not in message
    assert preview.url in message and str(preview.zip_path) in message
    assert "147 MB" in message and "--root" in message
    assert file_server.requests == []


def test_an_unreachable_server_is_one_line_naming_the_file_and_place(
    file_server: FileServer, preview: datasets.Dataset
) -> None:
    with pytest.raises(UnmixError) as err:  # 404: nothing served
        datasets.fetch_dataset(progress=False)
    message = str(err.value)
    assert "\n" not in message and preview.url in message and str(preview.zip_path) in message
    assert not preview.root.exists() and not preview.zip_path.exists()


def test_an_unsafe_zip_leaves_nothing_and_records_no_hash(
    file_server: FileServer, preview: datasets.Dataset
) -> None:
    file_server.files["previews.zip"] = make_zip({**CLIPS, "../evil.stem.mp4": b"x"})
    with pytest.raises(ArchiveError, match="outside"):
        datasets.fetch_dataset(progress=False)
    cache = preview.root.parent
    assert not preview.root.exists() and not preview.zip_path.exists()
    assert not (cache.parent / "evil.stem.mp4").exists()
    assert _recorded(cache.parent) == {}
    # so the good file, once served, is accepted
    file_server.files["previews.zip"] = make_zip(CLIPS)
    assert (datasets.fetch_dataset(progress=False) / "train" / "Song A.stem.mp4").is_file()


def test_a_zip_without_train_or_test_is_refused_and_deleted(
    file_server: FileServer, preview: datasets.Dataset
) -> None:
    file_server.files["previews.zip"] = make_zip({"songs/A.stem.mp4": b"a"})
    with pytest.raises(UnmixError, match="no train/ or test/"):
        datasets.fetch_dataset(progress=False)
    assert not preview.zip_path.exists()
    assert _recorded(preview.root.parent.parent) == {}


def test_the_registered_preview_is_the_seeds_file() -> None:
    preview = datasets.DATASETS["musdb18-preview"]
    assert preview.url == (
        "https://github.com/sigsep/sigsep-mus-db/releases/download/v0.4.0/MUSDB18-7-STEMS.zip"
    )
    assert "non-commercial" in preview.licence
