"""Report text: the console table, ``scores.md``, ``scores.csv``, ``tracks.csv``, and the
header lines that say what the numbers are (metric, aggregation, dataset).

Pure functions from scores to text; :mod:`unmix.evaluate.files` writes them.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

from .. import __version__
from ..tracks import Track
from .museval_json import MUSEVAL_VERSION
from .scores import TABLE_METRICS, Summary, TrackScores
from .scoring import EvalSettings


def fmt(value: float, digits: int) -> str:
    """``value`` with ``digits`` decimals, ``nan`` for NaN."""
    return "nan" if math.isnan(value) else f"{value:.{digits}f}"


def summary_text(summary: Summary) -> str:
    """A console table (3 decimals, museval's precision)."""
    width = max([len("target"), *(len(t) for t in summary.table)]) + 2
    lines = ["target".ljust(width) + "".join(c.rjust(9) for c in summary.metrics)]
    rows = [*summary.table.items(), ("mean", summary.mean)]
    for target, row in rows:
        lines.append(
            target.ljust(width) + "".join(fmt(row[c], 3).rjust(9) for c in summary.metrics)
        )
    return "\n".join(lines)


def summary_markdown(summary: Summary, header: Sequence[str] = ()) -> str:
    """The table in Markdown (2 decimals), below ``header`` lines written as a list."""
    out = ["# Evaluation", ""]
    out += [f"- {line}" for line in header]
    out += ["", "| target | " + " | ".join(summary.metrics) + " |"]
    out.append("|---|" + "---:|" * len(summary.metrics))
    for target, row in [*summary.table.items(), ("**mean**", summary.mean)]:
        out.append(f"| {target} | " + " | ".join(fmt(row[c], 2) for c in summary.metrics) + " |")
    return "\n".join(out) + "\n"


def _csv(rows: Iterable[Sequence[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def summary_csv(summary: Summary) -> str:
    """The table as CSV (5 decimals; a last row ``mean``)."""
    rows = [["target", *summary.metrics]]
    for target, row in [*summary.table.items(), ("mean", summary.mean)]:
        rows.append([target, *(fmt(row[c], 5) for c in summary.metrics)])
    return _csv(rows)


def track_csv(tracks: Sequence[TrackScores], frames_agg: str = "median") -> str:
    """Per-track scores (aggregated over frames) and uSDR, one row per track and target."""
    rows = [["track", "target", *TABLE_METRICS, "uSDR"]]
    for track in tracks:
        for target, row in track.frame_aggregate(frames_agg).items():
            usdr_value = track.usdr.get(target, math.nan)
            rows.append(
                [track.name, target, *(fmt(row[m], 5) for m in TABLE_METRICS), fmt(usdr_value, 5)]
            )
    return _csv(rows)


def describe_dataset(tracks: Sequence[Track], root: str | Path, split: str | None = None) -> str:
    """One line: dataset variant, location, subset (and split) and track count."""
    if tracks and all(t.stem_file is not None for t in tracks):
        variant = "MUSDB18 STEMS (.stem.mp4, AAC-coded)"
    else:
        variant = "per-track audio folders (MUSDB18-HQ layout)"
    subsets = sorted({t.subset for t in tracks if t.subset})
    where = f"subset {', '.join(subsets)}" if subsets else "no subset"
    if split:
        where += f" (split {split})"
    return f"{variant} at {root}, {where}, {len(tracks)} tracks"


def describe_scoring(settings: EvalSettings, frames_agg: str, tracks_agg: str) -> list[str]:
    """Lines saying what the numbers are (metric, evaluator, aggregation)."""
    if settings.mode == "bsseval":
        metric = "BSSEval v4 SDR/SIR/ISR/SAR (images, 512-tap time-invariant distortion filters)"
    else:
        metric = "SDR only (museval's framewise SDR, without the ISR/SIR/SAR projections)"
    lines = [
        f"Metric: {metric}, computed by unmix {__version__} (equal to museval "
        f"{MUSEVAL_VERSION}); windows {settings.window:g} s, hop {settings.hop:g} s",
        f"Aggregation: {frames_agg} over frames, then {tracks_agg} over tracks"
        + (" (SiSEC 2018 / cSDR convention)" if (frames_agg, tracks_agg) == ("median",) * 2 else "")
        + "; mean = mean of the target values; uSDR = global SDR per track, mean over tracks",
    ]
    if settings.regularization:
        lines.append(
            f"Gram-matrix regularization {settings.regularization:g} (better conditioned ISR/"
            "SIR/SAR; not museval's numbers)"
        )
    return lines


def rounding_noise_note(tracks: Sequence[Track], settings: EvalSettings) -> str | None:
    """A line saying that ISR/SIR/SAR are rounding noise, when they are; else ``None``.

    They are when the distortion filters are unregularized (museval's default) and every
    reference is an AAC-coded stem (MUSDB18 STEMS): the band-limited stems make the Gram
    matrix of the filters' least-squares problem ill-conditioned (condition number 1e13 to
    infinity on the previews), so museval's own ISR/SIR/SAR move by up to 16 dB when the
    references change by 1e-9 (docs/evaluation.md). SDR does not use the filters.
    """
    aac = bool(tracks) and all(t.stem_file is not None for t in tracks)
    if settings.mode != "bsseval" or settings.regularization or not aac:
        return None
    return (
        "Note: ISR, SIR and SAR are rounding noise here: the AAC-coded, band-limited stems "
        "make their least-squares problem ill-conditioned (museval's own values move by up to "
        "16 dB when the references change by 1e-9); SDR and uSDR are exact. For meaningful "
        "ISR/SIR/SAR add --regularization 3e-5 (not museval's numbers; see docs/evaluation.md)"
    )
