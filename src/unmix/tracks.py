"""Finding multitrack songs on disk: MUSDB18 (``.stem.mp4``), MUSDB18-HQ (WAV folders)
and plain folders of per-source files. Used by training and evaluation alike."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from . import audio as audio_io
from .errors import UnmixError

#: MUSDB18 source names (the stream order of a ``.stem.mp4`` is ``audio.STEM_NAMES``)
SOURCES = ("vocals", "drums", "bass", "other")

#: the fixed validation split of the MUSDB18 training subset (musdb's ``split='valid'``)
VALIDATION_TRACKS = (
    "Actions - One Minute Smile",
    "Clara Berry And Wooldog - Waltz For My Victims",
    "Johnny Lokke - Promises & Lies",
    "Patrick Talbot - A Reason To Leave",
    "Triviul - Angelsaint",
    "Alexander Ross - Goodbye Bolero",
    "Fergessen - Nos Palpitants",
    "Leaf - Summerghost",
    "Skelpolu - Human Mistakes",
    "Young Griffo - Pennies",
    "ANiMAL - Rockshow",
    "James May - On The Line",
    "Meaxic - Take A Step",
    "Traffic Experiment - Sirens",
)

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".aac", ".aiff", ".aif", ".opus")
STEM_SUFFIX = ".stem.mp4"


@dataclass(frozen=True)
class Track:
    """One song with its sources.

    Attributes:
        name: track name (``"Artist - Title"``).
        subset: ``"train"``, ``"test"`` or ``""``.
        stem_file: the ``.stem.mp4`` holding every source, or ``None``.
        files: per-source files (``mixture`` included when present), for folder layouts.
    """

    name: str
    subset: str = ""
    stem_file: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def sources(self) -> tuple[str, ...]:
        """Available names, ``mixture`` included when it exists."""
        if self.stem_file is not None:
            return audio_io.STEM_NAMES
        return tuple(self.files)

    @cached_property
    def info(self) -> audio_io.AudioInfo:
        """Probe of the first file (rate, channels, declared length)."""
        return audio_io.info(self.stem_file or next(iter(self.files.values())))

    def load(
        self, names: Sequence[str] | None = None, start: float = 0.0, duration: float | None = None
    ) -> tuple[dict[str, np.ndarray], int]:
        """Decode sources.

        Args:
            names: which sources (Default: all, ``mixture`` included).
            start, duration: excerpt in seconds.

        Returns:
            ``({name: (nb_channels, nb_timesteps) float32}, sample_rate)``; all arrays
            have the same length (the shortest source's).

        Raises:
            UnmixError: a missing source, or sources with different rates/channels.
        """
        names = tuple(names or self.sources)
        missing = [n for n in names if n not in self.sources]
        if missing:
            raise UnmixError(f"track {self.name!r} has no {missing} (it has {list(self.sources)})")
        out: dict[str, np.ndarray] = {}
        rates = set()
        for n in names:
            if self.stem_file is not None:
                x, rate = audio_io.read(
                    self.stem_file, audio_io.STEM_NAMES.index(n), start, duration
                )
            else:
                x, rate = audio_io.read(self.files[n], 0, start, duration)
            out[n] = x
            rates.add(rate)
        if len(rates) != 1:
            raise UnmixError(
                f"track {self.name!r}: sources have different sample rates {sorted(rates)}"
            )
        channels = {x.shape[0] for x in out.values()}
        if len(channels) != 1:
            raise UnmixError(
                f"track {self.name!r}: sources have different channel counts {sorted(channels)}"
            )
        length = min(x.shape[1] for x in out.values())
        return {n: x[:, :length] for n, x in out.items()}, rates.pop()


def _folder_track(folder: Path, subset: str) -> Track | None:
    files = {
        p.stem: p
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS and not p.name.startswith(".")
    }
    return Track(folder.name, subset, None, files) if files else None


def find_tracks(
    root: str | Path,
    subset: str | None = "train",
    split: str | None = None,
    names: Sequence[str] | None = None,
) -> list[Track]:
    """List the tracks under ``root``.

    Layouts: ``root/<subset>/*.stem.mp4`` (MUSDB18), ``root/<subset>/<track>/<source>.wav``
    (MUSDB18-HQ), or the same without the ``<subset>`` level (plain folders).

    Args:
        root: dataset folder.
        subset: ``"train"``, ``"test"`` or ``None`` (no subset folder level).
        split: for the train subset, ``"train"`` (without the 14 validation tracks),
            ``"valid"`` (only those) or ``None`` (all).
        names: keep only these track names.

    Raises:
        UnmixError: a missing root, or no track found (the message says how to get MUSDB18).
    """
    root = Path(root)
    if not root.is_dir():
        raise UnmixError(
            f"dataset root {root} does not exist; download MUSDB18 from "
            "https://zenodo.org/records/1117372 (or MUSDB18-HQ, record 3338373), unzip it and "
            "pass the folder that holds train/ and test/"
        )
    base = root / subset if subset and (root / subset).is_dir() else root
    tracks: list[Track] = []
    for entry in sorted(base.iterdir()):
        if entry.is_file() and entry.name.endswith(STEM_SUFFIX):
            tracks.append(Track(entry.name[: -len(STEM_SUFFIX)], subset or "", entry))
        elif entry.is_dir() and not entry.name.startswith("."):
            track = _folder_track(entry, subset or "")
            if track is not None:
                tracks.append(track)
    if split == "valid":
        tracks = [t for t in tracks if t.name in VALIDATION_TRACKS]
    elif split == "train":
        tracks = [t for t in tracks if t.name not in VALIDATION_TRACKS]
    elif split is not None:
        raise UnmixError(f"split must be 'train', 'valid' or None, got {split!r}")
    if names:
        wanted = set(names)
        unknown = sorted(wanted - {t.name for t in tracks})
        if unknown:
            raise UnmixError(f"tracks not found under {base}: {unknown}")
        tracks = [t for t in tracks if t.name in wanted]
    if not tracks:
        raise UnmixError(
            f"no tracks found under {base}: expected *.stem.mp4 files (MUSDB18) or one folder "
            "per track with mixture.wav, vocals.wav, drums.wav, bass.wav, other.wav (MUSDB18-HQ)"
        )
    return tracks
