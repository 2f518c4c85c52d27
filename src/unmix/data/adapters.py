"""Small adapters from dataset layouts on disk to songs (:mod:`unmix.data.songs`).

* ``musdb``: MUSDB18 ``.stem.mp4`` files, or MUSDB18-HQ WAV folders with ``is_wav``;
  the fixed 14-track validation split when those tracks are present.
* ``aligned``: ``root/{train,valid}/<track>/{input_file, output_file}``; the input is the
  real mixture, the output file's name (without extension) is the target.
* ``sourcefolder``: ``root/{train,valid}/<source>/*.wav``; every file holds one source,
  mixtures are drawn from random files of each source folder.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import tracks as tracks_mod
from ..errors import UnmixError
from ..tracks import SOURCES, VALIDATION_TRACKS, Track
from .songs import Song, load_songs

log = logging.getLogger(__name__)

DATASETS = ("musdb", "aligned", "sourcefolder")


@dataclass(frozen=True)
class DataOptions:
    """What the adapters need to know.

    Attributes:
        root: dataset folder.
        targets: sources the model(s) learn.
        is_wav: MUSDB18-HQ WAV folders instead of ``.stem.mp4`` files.
        rate: training sample rate.
        nb_channels: model channels.
        cache: decoded-audio cache folder (``None``: in memory).
        min_length: shortest usable training song in samples.
        input_file, output_file: file names of the aligned layout.
        sources: every source of a mixture (source folders; Default: the MUSDB18 four).
    """

    root: Path
    targets: tuple[str, ...]
    is_wav: bool = False
    rate: int = 44100
    nb_channels: int = 2
    cache: Path | None = None
    min_length: int = 0
    input_file: str = "mixture.wav"
    output_file: str = "vocals.wav"
    sources: tuple[str, ...] = field(default=SOURCES)


@dataclass(frozen=True)
class TrainData:
    """Songs ready for sampling.

    Attributes:
        train: training songs.
        valid: validation songs (whole songs, real mixture where there is one).
        sources: sources summed into a training mixture.
        use_mixture: the input is the stored mixture (aligned data; no augmentation).
        random_mix: sources may come from different songs.
        pools: songs holding each source (``None``: every song holds every source).
    """

    train: list[Song]
    valid: list[Song]
    sources: tuple[str, ...]
    use_mixture: bool = False
    random_mix: bool = True
    pools: dict[str, list[int]] | None = None


def _musdb_tracks(opts: DataOptions) -> list[Track]:
    found = tracks_mod.find_tracks(opts.root, subset="train")
    wanted = [t for t in found if (t.stem_file is None) == opts.is_wav]
    if not wanted:
        if opts.is_wav:
            hint = "found .stem.mp4 files instead; drop --is-wav"
        else:
            hint = "found WAV track folders instead; add --is-wav"
        raise UnmixError(
            f"no {'WAV track folders' if opts.is_wav else '.stem.mp4 files'} under {opts.root}; {hint}"
        )
    return wanted


def musdb(opts: DataOptions) -> TrainData:
    """MUSDB18 / MUSDB18-HQ with the fixed validation split."""
    missing = [t for t in opts.targets if t not in SOURCES]
    if missing:
        raise UnmixError(f"MUSDB18 has no source {missing}; choose from {list(SOURCES)}")
    found = _musdb_tracks(opts)
    valid = [t for t in found if t.name in VALIDATION_TRACKS]
    if not valid:
        valid = found[-max(1, len(found) // 10) :]
        log.warning(
            "none of the 14 MUSDB18 validation tracks is present; validating on the last %d "
            "tracks by name instead",
            len(valid),
        )
    train = [t for t in found if t not in valid]
    if not train:
        raise UnmixError(f"{opts.root} holds only validation tracks; nothing left to train on")
    log.info("MUSDB18: %d training and %d validation tracks", len(train), len(valid))
    load = dict(rate=opts.rate, nb_channels=opts.nb_channels, cache=opts.cache)
    return TrainData(
        train=load_songs(train, SOURCES, True, min_length=opts.min_length, **load),  # type: ignore[arg-type]
        valid=load_songs(valid, SOURCES, True, **load),  # type: ignore[arg-type]
        sources=SOURCES,
    )


def _subset_tracks(root: Path, subset: str) -> list[Track]:
    if not (root / subset).is_dir():
        raise UnmixError(f"{root} has no {subset}/ folder (expected {root}/{subset}/<track>/...)")
    return tracks_mod.find_tracks(root, subset=subset)


def aligned(opts: DataOptions) -> TrainData:
    """Input/output file pairs; the target is the output file's stem."""
    inp, outp = Path(opts.input_file).stem, Path(opts.output_file).stem
    if opts.targets != (outp,):
        raise UnmixError(
            f"aligned data trains the target named by --output-file ({outp!r}); "
            f"got --source {list(opts.targets)}"
        )

    def load(subset: str, min_length: int) -> list[Song]:
        tracks = [
            Track(t.name, t.subset, None, {"mixture": t.files[inp], outp: t.files[outp]})
            if inp in t.files and outp in t.files
            else t
            for t in _subset_tracks(opts.root, subset)
        ]
        return load_songs(
            tracks, (outp,), True, opts.rate, opts.nb_channels, opts.cache, min_length
        )

    return TrainData(
        train=load("train", opts.min_length),
        valid=load("valid", 0),
        sources=(outp,),
        use_mixture=True,
        random_mix=False,
    )


def _folder_songs(opts: DataOptions, subset: str) -> tuple[list[Song], dict[str, list[int]]]:
    base = opts.root / subset
    songs: list[Song] = []
    pools: dict[str, list[int]] = {}
    for source in opts.sources:
        folder = base / source
        if not folder.is_dir():
            raise UnmixError(f"source folder {folder} does not exist (one folder per source)")
        tracks = [
            Track(f"{source}/{p.name}", subset, None, {source: p})
            for p in sorted(folder.iterdir())
            if p.is_file() and p.suffix.lower() in tracks_mod.AUDIO_EXTENSIONS
        ]
        if not tracks:
            raise UnmixError(f"source folder {folder} holds no audio files")
        loaded = load_songs(
            tracks, (source,), False, opts.rate, opts.nb_channels, opts.cache, opts.min_length
        )
        pools[source] = list(range(len(songs), len(songs) + len(loaded)))
        songs.extend(loaded)
    return songs, pools


def _fixed_mixes(songs: list[Song], pools: dict[str, list[int]]) -> list[Song]:
    """Deterministic validation mixtures: the i-th file of every source, cut to the shortest."""
    count = max(len(p) for p in pools.values())
    mixes = []
    for i in range(count):
        parts = {s: songs[p[i % len(p)]].sources[s] for s, p in pools.items()}
        length = min(x.shape[-1] for x in parts.values())
        mixes.append(Song(f"valid-{i}", {s: np.asarray(x[:, :length]) for s, x in parts.items()}))
    return mixes


def sourcefolder(opts: DataOptions) -> TrainData:
    """One folder per source; mixtures of random files."""
    missing = [t for t in opts.targets if t not in opts.sources]
    if missing:
        raise UnmixError(f"targets {missing} are not among the source folders {list(opts.sources)}")
    train, pools = _folder_songs(opts, "train")
    valid_songs, valid_pools = _folder_songs(
        DataOptions(**{**opts.__dict__, "min_length": 0}), "valid"
    )
    return TrainData(
        train=train,
        valid=_fixed_mixes(valid_songs, valid_pools),
        sources=opts.sources,
        pools=pools,
    )


def build(dataset: str, opts: DataOptions) -> TrainData:
    """Dispatch to the adapter named ``dataset`` (one of :data:`DATASETS`)."""
    adapters = {"musdb": musdb, "aligned": aligned, "sourcefolder": sourcefolder}
    if dataset not in adapters:
        raise UnmixError(f"unknown dataset type {dataset!r}; choose from {list(DATASETS)}")
    if not opts.root.is_dir():
        raise UnmixError(
            f"dataset root {opts.root} does not exist; get MUSDB18 from "
            "https://zenodo.org/records/1117372 (MUSDB18-HQ: https://zenodo.org/records/3338373), "
            "unzip it and pass the folder holding train/ and test/ as --root "
            "(nothing is downloaded automatically)"
        )
    return adapters[dataset](opts)


def validation_names(data: TrainData) -> Sequence[str]:
    """Names of the validation songs."""
    return [s.name for s in data.valid]
