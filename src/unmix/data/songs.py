"""The dataset core: songs as named, equally long source arrays, loaded and checked once.

Every adapter (MUSDB18 stems, MUSDB18-HQ WAV, aligned folders, source folders) ends
in a list of :class:`Song` objects; sampling and mixing (:mod:`unmix.data.sampler`,
:mod:`unmix.data.datasets`) never look at files.

Bad input is never turned into a silently wrong example. A song is **skipped with
a logged warning** (and the run fails when nothing is left) when a wanted source
file is missing, its sources differ in length by more than :data:`LENGTH_TOLERANCE`
seconds, a file is mono in stereo training (or has more than two channels), the
rates differ from the training rate, or a file cannot be decoded. Smaller length
differences (codec padding) are trimmed to the shortest source.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import audio as audio_io
from ..errors import UnmixError
from ..tracks import Track
from .cache import CacheWriteError, decode

log = logging.getLogger(__name__)

#: sources of one song may differ by at most this many seconds (then trimmed)
LENGTH_TOLERANCE = 0.05


@dataclass(frozen=True)
class Song:
    """One multitrack item.

    Attributes:
        name: song name.
        sources: ``{source: (nb_channels, nb_timesteps) float32}``, all the same shape.
        mixture: the real mixture (same shape) when the dataset has one, else ``None``.
    """

    name: str
    sources: dict[str, np.ndarray]
    mixture: np.ndarray | None = None

    @property
    def length(self) -> int:
        """Samples per channel."""
        first = self.mixture if self.mixture is not None else next(iter(self.sources.values()))
        return int(first.shape[-1])

    def mix(self) -> np.ndarray:
        """The real mixture, or the sum of the sources when there is none."""
        if self.mixture is not None:
            return np.array(self.mixture, dtype=np.float32)
        total = np.zeros(next(iter(self.sources.values())).shape, dtype=np.float32)
        for x in self.sources.values():
            total += x
        return total


class SkipSong(Exception):
    """Raised inside loading when a song must be skipped (message says why)."""


def _fit_channels(name: str, x: np.ndarray, nb_channels: int) -> np.ndarray:
    channels = x.shape[0]
    if channels == 2:
        return x
    if channels == 1 and nb_channels == 1:
        return np.repeat(np.asarray(x), 2, axis=0)  # identical channels: same mono magnitude
    if channels == 1:
        raise SkipSong(f"{name} is mono but training is stereo (--nb-channels 2)")
    raise SkipSong(f"{name} has {channels} channels; only mono or stereo files are supported")


def _equalise(song: str, arrays: dict[str, np.ndarray], rate: int) -> dict[str, np.ndarray]:
    lengths = {k: int(v.shape[-1]) for k, v in arrays.items()}
    shortest, longest = min(lengths.values()), max(lengths.values())
    if longest - shortest > LENGTH_TOLERANCE * rate:
        raise SkipSong(f"its sources have different lengths {lengths} (samples)")
    if longest != shortest:
        log.debug("%s: trimming sources to %d samples", song, shortest)
    return {k: v[:, :shortest] for k, v in arrays.items()}


def _read_track(
    track: Track, names: Sequence[str], rate: int, nb_channels: int, cache: Path | None
) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    for name in names:
        if name not in track.sources:
            raise SkipSong(f"it has no {name!r} source (found {sorted(track.sources)})")
        if track.stem_file is not None:
            path, stream = track.stem_file, audio_io.STEM_NAMES.index(name)
        else:
            path, stream = track.files[name], 0
        x, file_rate = decode(path, stream, cache)
        if file_rate != rate:
            raise SkipSong(f"{path.name} is at {file_rate} Hz, training runs at {rate} Hz")
        arrays[name] = _fit_channels(f"{path.name} ({name})", x, nb_channels)
    return _equalise(track.name, arrays, rate)


def load_songs(
    tracks: Sequence[Track],
    sources: Sequence[str],
    with_mixture: bool,
    rate: int = 44100,
    nb_channels: int = 2,
    cache: Path | None = None,
    min_length: int = 0,
) -> list[Song]:
    """Decode and check tracks (see the module docstring for the skip rules).

    Args:
        tracks: from :func:`unmix.tracks.find_tracks`.
        sources: source names every song must have.
        with_mixture: also load the real ``mixture`` (required then).
        rate: training sample rate; files at another rate are skipped.
        nb_channels: model channels (2: stereo files only; 1: mono files are duplicated).
        cache: decoded-audio cache folder (``None``: decode into memory).
        min_length: skip songs shorter than this many samples (excerpt length).

    Raises:
        UnmixError: when no track is usable.
    """
    names = list(sources) + (["mixture"] if with_mixture else [])
    songs: list[Song] = []
    for track in tracks:
        try:
            arrays = _read_track(track, names, rate, nb_channels, cache)
            mixture = arrays.pop("mixture", None)
            song = Song(track.name, arrays, mixture)
            if song.length < min_length:
                raise SkipSong(f"it is shorter ({song.length} samples) than one excerpt")
        except CacheWriteError:
            raise
        except (SkipSong, UnmixError) as exc:
            log.warning("skipping track %r: %s", track.name, exc)
            continue
        songs.append(song)
    if not songs:
        raise UnmixError(
            f"none of the {len(tracks)} tracks is usable for training with sources "
            f"{names} (see the warnings above)"
        )
    if len(songs) < len(tracks):
        log.warning("using %d of %d tracks", len(songs), len(tracks))
    return songs
