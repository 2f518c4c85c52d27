"""The run: load each track, get its estimates (read or separated), score it, write its
museval JSON, and go on past a track that fails."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import UnmixError
from ..tracks import Track
from .estimates import EstimateSource
from .files import ScoreWriteError, write_track_json
from .scores import TrackScores
from .scoring import EvalSettings, scorable_targets, score_track
from .tables import fmt

log = logging.getLogger(__name__)


def score_one(
    track: Track, estimates: EstimateSource, settings: EvalSettings, load_mixture: bool
) -> TrackScores:
    """Load, (separate,) and score one track.

    Raises:
        UnmixError: unreadable audio, missing or mis-shaped estimates; a target of
            ``settings.targets`` without an estimate, unless ``settings.allow_missing``.
    """
    names = [n for n in track.sources if load_mixture or n != "mixture"]
    sources, rate = track.load(names)
    ests = dict(estimates(track, sources, rate))
    if settings.targets:
        ests = {t: x for t, x in ests.items() if t in settings.targets}
        scorable = scorable_targets(sources)
        missing = [t for t in settings.targets if t in scorable and t not in ests]
        if missing and not settings.allow_missing:
            raise UnmixError(
                f"no estimate for {', '.join(missing)}: give one, or allow missing estimates "
                "(--allow-missing) to score the rest"
            )
    return score_track(
        {n: x for n, x in sources.items() if n != "mixture"},
        ests,
        rate,
        track.name,
        track.subset,
        settings.mode,
        settings.window,
        settings.hop,
        settings.regularization,
    )


def evaluate_tracks(
    tracks: Sequence[Track],
    estimates: EstimateSource,
    out_dir: str | Path | None = None,
    settings: EvalSettings | None = None,
    report: Callable[[str], None] | None = None,
    load_mixture: bool = True,
) -> tuple[list[TrackScores], list[str]]:
    """Load, (separate,) score and write every track.

    A track that fails (unreadable audio, missing estimates, bad shapes, a name too long
    for a file) is reported and skipped; the others go on. A JSON file that cannot be
    written for another reason (a full disk) stops the run.

    Args:
        tracks: from :func:`unmix.tracks.find_tracks`.
        estimates: where estimates come from (:func:`folder_estimates`,
            :func:`model_estimates`, or any callable of that signature).
        out_dir: where the per-track JSON files go (``None``: not written).
        settings: scoring settings (Default: museval's).
        report: called with one progress line per track (Default: logging).
        load_mixture: decode the mixture too (what a separating ``estimates`` needs);
            ``False`` for estimates read from files.

    Returns:
        ``(scores of the tracks that worked, error messages of those that did not)``.

    Raises:
        ScoreWriteError: a JSON file cannot be written for a reason other than its name
            (no partial file is left).
    """
    settings = settings or EvalSettings()
    say = report or log.info
    done: list[TrackScores] = []
    failed: list[str] = []
    for i, track in enumerate(tracks, start=1):
        start = time.perf_counter()
        try:
            scores = score_one(track, estimates, settings, load_mixture)
            if out_dir is not None:
                _write_json(out_dir, scores)
        except UnmixError as exc:
            if isinstance(exc, ScoreWriteError) and not exc.name_too_long:
                raise  # a full disk or a read-only folder: no other track would do better
            failed.append(f"{track.name}: {exc}")
            say(f"[{i}/{len(tracks)}] {track.name}: error: {exc}")
            continue
        done.append(scores)
        medians = scores.frame_aggregate()
        line = ", ".join(f"{t} {fmt(v['SDR'], 2)}" for t, v in medians.items())
        say(f"[{i}/{len(tracks)}] {track.name}: SDR {line} ({time.perf_counter() - start:.1f} s)")
    return done, failed


def _write_json(out_dir: str | Path, scores: TrackScores) -> None:
    """:func:`write_track_json`, saying where the scores of a shortened name went."""
    path = write_track_json(out_dir, scores)
    if path.stem != scores.name:
        log.warning("%s: name too long for a file name; its scores are in %s", scores.name, path)
