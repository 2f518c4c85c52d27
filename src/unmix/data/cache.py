"""Decoded-audio cache: decode a compressed file once, then memory-map it.

Decoding AAC (``.stem.mp4``) costs far more than slicing an array, so training
stores every decoded stream as a ``.npy`` file keyed by the source file's path,
size and modification time, and reads excerpts from a read-only memory map. A
changed source file gets a new key; a half-written cache file never exists
(atomic rename).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from .. import audio as audio_io
from ..errors import UnmixError
from ..fileio import atomic_path
from ..hub.download import cache_dir

log = logging.getLogger(__name__)


class CacheWriteError(UnmixError):
    """The cache folder cannot be written (e.g. a full disk): the run stops, rather than
    skipping every track as undecodable."""


def default_cache_dir() -> Path:
    """``<unmix cache>/decoded`` (see :func:`unmix.download.cache_dir`)."""
    return cache_dir() / "decoded"


def _key(path: Path, stream: int) -> str:
    stat = path.stat()
    text = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{stream}"
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:24]


def decode(path: Path, stream: int, folder: Path | None) -> tuple[np.ndarray, int]:
    """Decode one audio stream, through the cache when ``folder`` is given.

    Args:
        path: audio file.
        stream: audio stream index (MUSDB18 stems: see ``audio.STEM_NAMES``).
        folder: cache folder, or ``None`` to decode into memory.

    Returns:
        ``(audio (nb_channels, nb_timesteps) float32, sample_rate)``; a read-only
        memory map when cached.
    """
    if folder is None:
        return audio_io.read(path, stream)
    key = _key(path, stream)
    file = folder / f"{key}.npy"
    rate_file = folder / f"{key}.rate"
    if file.is_file() and rate_file.is_file():
        try:
            return np.load(file, mmap_mode="r"), int(rate_file.read_text())
        except (OSError, ValueError):
            log.warning("decoded cache entry %s is unreadable; decoding %s again", file, path)
    data, rate = audio_io.read(path, stream)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(file) as tmp, open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(data, dtype=np.float32))
        with atomic_path(rate_file) as tmp:
            tmp.write_text(str(rate))
    except OSError as exc:
        raise CacheWriteError(
            f"cannot write the decoded-audio cache in {folder} ({exc.strerror or exc}); free "
            "space there, point --cache-dir at another disk, or use --no-cache"
        ) from exc
    return np.load(file, mmap_mode="r"), rate
