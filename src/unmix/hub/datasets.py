"""Datasets unmix fetches by itself: the MUSDB18 7-second previews.

Without ``--root``, ``unmix train`` and ``unmix evaluate`` use the previews, as the seed's
``train.py`` and ``eval.py`` do (through ``musdb.DB(download=True)``, which fetches the
same file). The zip is downloaded once into ``cache_dir()/datasets/``, its SHA-256 is
recorded on first use (trust on first use, as for the NNabla weights) and checked on any
later download, it is extracted with :func:`unmix.hub.archive.extract_zip` (names, links
and sizes checked; nothing left behind on failure), and the zip is then deleted. Later runs
find the extracted folder and never touch the network.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from ..errors import UnmixError
from ..fileio import atomic_write_text
from .archive import ArchiveError, ZipLimits, extract_zip
from .download import (
    TOFU_FILE,
    cache_dir,
    fetch,
    is_offline,
    record_hash,
    recorded_hash,
    sha256_of,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dataset:
    """A dataset unmix can fetch.

    Attributes:
        name: what ``unmix download`` calls it.
        url: where the zip comes from.
        filename: the zip's name in the cache.
        folder: the extracted folder's name in the cache.
        size: the zip's size in bytes, as published (for messages; the hash is the check).
        description: one line (contents).
        licence: the terms, printed whenever the data is used.
        homepage: where the dataset is described.
    """

    name: str
    url: str
    filename: str
    folder: str
    size: int
    description: str
    licence: str
    homepage: str

    @property
    def zip_path(self) -> Path:
        """Where the downloaded zip is kept until it is extracted."""
        return cache_dir() / "datasets" / self.filename

    @property
    def root(self) -> Path:
        """The extracted folder (holds ``train/`` and ``test/``)."""
        return cache_dir() / "datasets" / self.folder


MUSDB18_PREVIEW = Dataset(
    name="musdb18-preview",
    # the file musdb.DB(download=True) fetches (musdb 0.4's config); also Zenodo record 3270814
    url="https://github.com/sigsep/sigsep-mus-db/releases/download/v0.4.0/MUSDB18-7-STEMS.zip",
    filename="MUSDB18-7-STEMS.zip",
    folder="musdb18-preview",
    size=147_209_385,
    description="MUSDB18 7-second previews: 144 .stem.mp4 clips (94 train, 50 test; "
    "mixture, drums, bass, other, vocals; AAC, 44.1 kHz stereo)",
    licence="MUSDB18 terms: non-commercial research and education only; each track keeps "
    "its own licence (cite Rafii et al. 2017, doi:10.5281/zenodo.1117372)",
    homepage="https://sigsep.github.io/datasets/musdb.html",
)

#: the datasets unmix can fetch, by name (looked up on every call)
DATASETS: dict[str, Dataset] = {MUSDB18_PREVIEW.name: MUSDB18_PREVIEW}

#: the name of the MUSDB18 previews, used without ``--root``
PREVIEW = MUSDB18_PREVIEW.name

#: the previews hold 144 clips of about 1.1 MB; a bound far above, far below a zip bomb
PREVIEW_LIMITS = ZipLimits(max_members=1000, max_member_bytes=64 << 20, max_total_bytes=1 << 30)


def _data_root(folder: Path) -> Path | None:
    """``folder`` if it holds ``train/`` or ``test/``, else its only sub-folder that does."""
    if not folder.is_dir():
        return None
    if (folder / "train").is_dir() or (folder / "test").is_dir():
        return folder
    subs = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))]
    found = [p for p in subs if (p / "train").is_dir() or (p / "test").is_dir()]
    return found[0] if len(found) == 1 else None


def _by_hand(dataset: Dataset, reason: str) -> UnmixError:
    return UnmixError(
        f"the {dataset.name} data is not in the cache and cannot be downloaded ({reason}): "
        f"download {dataset.url} ({dataset.size / 1e6:.0f} MB) and save it as "
        f"{dataset.zip_path}, or unzip it anywhere and pass that folder as --root"
    )


def _check_zip(dataset: Dataset, path: Path, first_use: bool) -> None:
    """Check ``path`` against the hash recorded on first use, or record it."""
    actual = sha256_of(path)
    recorded = recorded_hash(path)
    if first_use or not recorded:
        record_hash(path, actual)
    elif actual != recorded:
        raise UnmixError(
            f"{path} has SHA-256 {actual[:16]}…, but {recorded[:16]}… was recorded when "
            f"{dataset.name} was first downloaded: the file is corrupt or was changed; delete "
            "it to download it again"
        )


def _forget_hash(path: Path) -> None:
    """Drop the hash recorded for ``path`` (a first download that proved unusable)."""
    table_path = path.parent / TOFU_FILE
    try:
        table = json.loads(table_path.read_text())
    except (OSError, ValueError):
        return
    if isinstance(table, dict) and table.pop(path.name, None) is not None:
        atomic_write_text(table_path, json.dumps(table, indent=2, sort_keys=True) + "\n")


def cached_dataset(name: str = PREVIEW) -> Path | None:
    """The dataset's folder if it is in the cache already, else ``None`` (never downloads)."""
    return _data_root(DATASETS[name].root)


def fetch_dataset(name: str = PREVIEW, progress: bool = True) -> Path:
    """The dataset's folder (holding ``train/`` and ``test/``), fetched on first use.

    Args:
        name: which one, a key of :data:`DATASETS` (Default: the MUSDB18 previews).
        progress: show a download progress bar (only on a terminal).

    Returns:
        the extracted folder in the cache.

    Raises:
        UnmixError: offline or unreachable (one line saying what to download and where to
            put it), a hash that differs from the one recorded on first use, an unsafe or
            unreadable zip. Nothing partial is left in the cache, and a zip that cannot be
            used is deleted.
        KeyError: an unknown name.
    """
    dataset = DATASETS[name]
    found = _data_root(dataset.root)
    if found is not None:
        log.warning("using %s: %s", dataset.name, dataset.licence)
        return found
    path = dataset.zip_path
    recorded = recorded_hash(path)
    if not path.is_file():
        if is_offline():
            raise _by_hand(dataset, "UNMIX_OFFLINE is set")
        log.warning(
            "downloading %s (%.0f MB) into %s: %s",
            dataset.name,
            dataset.size / 1e6,
            dataset.root,
            dataset.licence,
        )
        # checked against the recorded hash, if any; else fetch records the new one, which
        # is dropped again below if the zip turns out unusable
        fetch(dataset.url, path, recorded, progress)
    else:
        log.warning("using %s: %s", dataset.name, dataset.licence)
    try:
        if recorded:
            _check_zip(dataset, path, first_use=False)
        _extract(dataset, path)
        found = _data_root(dataset.root)
        if found is None:
            raise UnmixError(
                f"{path.name} holds no train/ or test/ folder; it is not the {dataset.name} "
                f"data (it was deleted; get it from {dataset.url})"
            )
    except UnmixError:
        with contextlib.suppress(OSError):
            path.unlink()
        if not recorded:
            _forget_hash(path)
        raise
    if not recorded:
        _check_zip(dataset, path, first_use=True)
    with contextlib.suppress(OSError):
        path.unlink()
    return found


def _extract(dataset: Dataset, path: Path) -> None:
    """Extract the stem files of the zip into ``dataset.root`` (once, atomically)."""
    try:
        extract_zip(path, dataset.root, PREVIEW_LIMITS, suffixes=(".stem.mp4",))
    except ArchiveError:
        if not dataset.root.is_dir():  # else another process extracted it meanwhile
            raise
