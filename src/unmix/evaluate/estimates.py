"""Where estimates come from: a folder of stems (what ``unmix separate`` writes) or a
model that separates each track's mixture; and which track lacks which target.

An :data:`EstimateSource` is ``(track, decoded sources {name: (C, T)} with the mixture,
rate) -> estimates {name: (C, T)}``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import audio as audio_io
from ..errors import UnmixError
from ..tracks import Track
from .scoring import scorable_targets, target_order

log = logging.getLogger(__name__)

#: ``(track, decoded sources {name: (C, T)} with the mixture, rate) -> estimates {name: (C, T)}``
EstimateSource = Callable[[Track, Mapping[str, np.ndarray], int], Mapping[str, np.ndarray]]


def estimate_files(folder: Path) -> dict[str, Path]:
    """``{target: file}`` of the audio files in ``folder`` (hidden files left out), sorted
    by file name; a target is the file name without its extension."""
    return {
        path.stem: path
        for path in sorted(folder.iterdir())
        if audio_io.is_audio_name(path) and not path.name.startswith(".")
    }


def estimates_folder(track: Track, estimates_dir: Path) -> Path | None:
    """``<dir>/<track name>`` (what ``unmix separate`` writes) or museval's
    ``<dir>/<subset>/<track name>``, whichever exists."""
    for folder in (estimates_dir / track.name, estimates_dir / track.subset / track.name):
        if folder.is_dir():
            return folder
    return None


def folder_estimates(estimates_dir: str | Path) -> EstimateSource:
    """Read estimates from ``<estimates_dir>/<track>/<target>.<ext>`` (any audio format).

    Raises (when called):
        UnmixError: no folder for the track, no audio file in it, or a sample rate that
            differs from the references'.
    """
    root = Path(estimates_dir)

    def load(
        track: Track, references: Mapping[str, np.ndarray], rate: int
    ) -> dict[str, np.ndarray]:
        folder = estimates_folder(track, root)
        if folder is None:
            raise UnmixError(
                f"no estimates for {track.name!r}: expected the folder {root / track.name}"
            )
        out: dict[str, np.ndarray] = {}
        for target, path in estimate_files(folder).items():
            audio, file_rate = audio_io.read(path)
            if file_rate != rate:
                raise UnmixError(
                    f"{path}: sample rate {file_rate} Hz, the references have {rate} Hz; "
                    "write the estimates at the dataset's rate"
                )
            out[target] = audio
        if not out:
            raise UnmixError(f"{folder} holds no audio file (<target>.wav, ...)")
        return out

    return load


def model_estimates(
    separator: Any, save_dir: str | Path | None = None, ext: str = "wav"
) -> EstimateSource:
    """Separate each track's mixture with a loaded :class:`~unmix.separator.Separator`.

    The mixture is the track's ``mixture`` source, or the sum of its sources when it has
    none. With ``save_dir``, the stems are also written as ``<save_dir>/<track>/<name>.<ext>``
    (the layout ``unmix separate`` uses), so they can be scored again later.
    """
    # imported here: torch (which api needs) stays out of `unmix --help` and of scoring
    from ..api import separate_array

    def separate(
        track: Track, sources: Mapping[str, np.ndarray], rate: int
    ) -> dict[str, np.ndarray]:
        mixture = sources.get("mixture")
        if mixture is None:
            log.info("%s: no mixture file, separating the sum of the sources", track.name)
            mixture = np.asarray(np.sum(list(sources.values()), axis=0, dtype=np.float64))
        stems = separate_array(separator, np.asarray(mixture, dtype=np.float32), rate)
        if save_dir is not None:
            for name, stem in stems.items():
                audio_io.write(Path(save_dir) / track.name / f"{name}.{ext}", stem, rate)
        return stems

    return separate


def missing_estimates(
    tracks: Sequence[Track], estimates_dir: str | Path, targets: Sequence[str] | None = None
) -> dict[str, list[str]]:
    """Which track lacks an estimate for which target, from the file names alone.

    The expected targets are ``targets``, or else every target that some track has an
    estimate for; a track is only asked for the targets it has references for (its
    sources and their sums). Tracks without an estimates folder are left out.

    Returns:
        ``{track name: [missing targets]}``, only the tracks that miss some.
    """
    root = Path(estimates_dir)
    found: dict[str, tuple[list[str], set[str]]] = {}
    for track in tracks:
        folder = estimates_folder(track, root)
        if folder is not None:
            found[track.name] = (scorable_targets(track.sources), set(estimate_files(folder)))
    if targets is None:
        targets = target_order(n for refs, names in found.values() for n in names if n in refs)
    missing = {
        name: [t for t in targets if t in refs and t not in names]
        for name, (refs, names) in found.items()
    }
    return {name: lack for name, lack in missing.items() if lack}


def describe_missing(missing: Mapping[str, Sequence[str]], limit: int = 3) -> str:
    """One line naming the tracks and their missing targets (the first ``limit`` tracks)."""
    parts = [f"{name}: {', '.join(lack)}" for name, lack in list(missing.items())[:limit]]
    more = f"; and {len(missing) - limit} more track(s)" if len(missing) > limit else ""
    return "; ".join(parts) + more
