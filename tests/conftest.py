"""Shared fixtures: the reference implementation (openunmix 1.3.0) as an oracle, real music
(the bundled example clip), small MUSDB18-style multitracks built from it at test time
(``tests/fixtures.py``), and the MUSDB18 preview clips of ../shared/data for the few tests
that compare with numbers measured on them (marked ``shared_data``; skipped with a reason
where absent, required where ``UNMIX_REQUIRE_SHARED`` is set, as in CI)."""

from __future__ import annotations

import importlib
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from unmix.tracks import VALIDATION_TRACKS

from .fileserver import FileServer
from .fixtures import EXAMPLE, build_musdb, decode

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("UNMIX_SHARED", REPO.parent / "shared"))
PREVIEW = SHARED / "data" / "musdb18-preview" / "train"

#: the training tracks of ``musdb_root`` (its validation tracks: ``VALIDATION_TRACKS[:2]``)
FIXTURE_TRACKS = tuple(f"Fixture - Night Owl {x}" for x in "ABCD")


def preview_clips() -> list[Path]:
    """Sorted MUSDB18 preview clips, or an empty list."""
    return sorted(PREVIEW.glob("*.stem.mp4")) if PREVIEW.is_dir() else []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use ``shared_clips`` are marked ``shared_data`` (``-m "not shared_data"``)."""
    for item in items:
        if "shared_clips" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.shared_data)


@pytest.fixture(scope="session")
def shared_clips() -> list[Path]:
    """The MUSDB18 preview clips of ../shared/data (``$UNMIX_SHARED``), sorted by name.

    Only for tests that compare with numbers measured on these very clips; everything else
    uses ``clip``, ``musdb_root`` or ``stem_track``.
    """
    found = preview_clips()
    if not found:
        if os.environ.get("UNMIX_REQUIRE_SHARED"):
            pytest.fail(f"UNMIX_REQUIRE_SHARED is set but {PREVIEW} has no clips")
        pytest.skip(
            f"shared MUSDB18 clips not found at {PREVIEW} (only in the project checkout/CI)"
        )
    return found


@pytest.fixture(scope="session")
def clip() -> Path:
    """Real music: the bundled ``examples/nightowl-preview.m4a`` (AAC, 44.1 kHz stereo,
    300,032 samples; bit for bit the mixture stream of the MUSDB18 preview of "Night Owl";
    CC BY-NC-SA, see ``examples/README.md``)."""
    return EXAMPLE


@pytest.fixture(scope="session")
def musdb_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small MUSDB18 folder built from ``clip`` (``tests/fixtures.py``):
    ``train/<track>.stem.mp4`` for the 4 training tracks of ``FIXTURE_TRACKS`` and 2
    validation tracks (``VALIDATION_TRACKS[:2]``), each 300,032 samples (6.8 s) with the
    streams mixture, drums, bass, other, vocals; the mixture is the sum of the stems. The
    last training track's bass is mono (equal channels), as in many MUSDB18 tracks."""
    names = [*FIXTURE_TRACKS, *VALIDATION_TRACKS[:2]]
    base = tmp_path_factory.mktemp("musdb")
    return build_musdb(base, names, decode(EXAMPLE), mono_bass=FIXTURE_TRACKS[-1:])


@pytest.fixture(scope="session")
def musdb_tracks(musdb_root: Path) -> list[Path]:
    """The ``.stem.mp4`` files of ``musdb_root``, sorted by name: the 2 validation tracks,
    then the 4 training tracks (the last, index 5, with a mono bass)."""
    return sorted((musdb_root / "train").glob("*.stem.mp4"))


@pytest.fixture(scope="session")
def stem_track(musdb_root: Path) -> Path:
    """One ``.stem.mp4`` of ``musdb_root`` (5 AAC streams, 6.8 s, all stems stereo)."""
    return musdb_root / "train" / f"{FIXTURE_TRACKS[0]}.stem.mp4"


@pytest.fixture(scope="session")
def decode_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A decoded-audio cache folder (``--cache-dir``) shared by the training tests."""
    return tmp_path_factory.mktemp("decoded")


@pytest.fixture(scope="session")
def openunmix() -> types.ModuleType:
    """openunmix 1.3.0, the test-only oracle (see ``helpers.import_openunmix``)."""
    from .helpers import import_openunmix

    try:
        return import_openunmix()
    except ImportError as exc:  # pragma: no cover - CI installs it
        pytest.skip(f"openunmix oracle not installed ({exc})")


@pytest.fixture(scope="session")
def museval() -> types.ModuleType:
    """Import museval 0.4.1 (test-only oracle for unmix.metrics / unmix.evaluate).

    museval imports musdb, whose stempeg raises at import time when the ffmpeg programs are
    missing; museval's metrics and JSON stores do not need them, so musdb is then stubbed.
    """
    try:
        importlib.import_module("musdb")
    except RuntimeError:  # stempeg: "ffmpeg or ffprobe could not be found"
        sys.modules["musdb"] = types.ModuleType("musdb")
    except ImportError as exc:  # pragma: no cover - CI installs it
        pytest.skip(f"museval oracle not installed ({exc})")
    try:
        return importlib.import_module("museval")
    except ImportError as exc:  # pragma: no cover - CI installs it
        pytest.skip(f"museval oracle not installed ({exc})")


@pytest.fixture()
def one_thread() -> Iterator[None]:
    """One torch thread for tests of tiny tensors: faster, and immune to a busy second core.

    Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture()
def file_server() -> Iterator[FileServer]:
    """A :class:`~tests.fileserver.FileServer` on 127.0.0.1, closed after the test."""
    server = FileServer()
    yield server
    server.close()


@pytest.fixture()
def unmix_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty download cache (``UNMIX_HOME``) in tmp_path, online (no ``UNMIX_OFFLINE``)."""
    home = tmp_path / "cache"
    monkeypatch.setenv("UNMIX_HOME", str(home))
    monkeypatch.delenv("UNMIX_OFFLINE", raising=False)
    return home
