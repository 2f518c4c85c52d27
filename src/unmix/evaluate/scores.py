"""Scores and their aggregation, the museval way.

* :class:`TrackScores` — framewise scores of one track (``to_json``: museval's JSON).
* :func:`aggregate` — median over frames, then median over tracks (SiSEC 2018), plus the
  mean of the target values and uSDR (global SDR, mean over tracks), as a :class:`Summary`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import UnmixError
from .museval_json import METRICS, FrameScores, museval_json, parse_museval_json, quantize

#: metric order of museval's printed summaries and of our tables
TABLE_METRICS = ("SDR", "SIR", "ISR", "SAR")
AGGREGATIONS = ("median", "mean")


def nan_aggregate(values: np.ndarray, how: str) -> float:
    """NaN-skipping median (or mean) of ``values`` (any shape); NaN if all are NaN."""
    finite = values[~np.isnan(values)]
    if finite.size == 0:
        return math.nan
    return float(np.median(finite) if how == "median" else np.mean(finite))


@dataclass
class TrackScores:
    """Framewise scores of one track.

    Attributes:
        name: track name.
        subset: ``"train"``, ``"test"`` or ``""`` (decides the JSON sub-folder).
        scores: ``{target: {metric: (nb_windows,) float64}}``, metrics as in
            :data:`METRICS`; NaN for silent windows (and for ISR/SIR/SAR in SDR-only mode).
        window, hop: in seconds.
        usdr: ``{target: global SDR in dB}`` (not part of museval's JSON).
    """

    name: str
    subset: str = ""
    scores: FrameScores = field(default_factory=dict)
    window: float = 1.0
    hop: float = 1.0
    usdr: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        """museval 0.4.1's per-track JSON, byte for byte.

        Values are rounded to 5 decimals; NaN and infinities are written as ``NaN``
        (not strict JSON; Python's ``json`` module reads it).
        """
        return museval_json(self.scores, self.window, self.hop)

    @classmethod
    def from_json(cls, text: str, name: str, subset: str = "") -> TrackScores:
        """Read a museval (or :meth:`to_json`) per-track JSON document.

        Raises:
            UnmixError: the text is not such a document.
        """
        scores, window, hop = parse_museval_json(text, name)
        return cls(name, subset, scores, window, hop)

    def frame_aggregate(self, how: str = "median") -> dict[str, dict[str, float]]:
        """``{target: {metric: value}}``: NaN-skipping median (or mean) over windows of the
        JSON-rounded values (what museval aggregates); NaN if every window is NaN."""
        return {
            target: {m: nan_aggregate(quantize(values[m]), how) for m in METRICS}
            for target, values in self.scores.items()
        }


@dataclass(frozen=True)
class Summary:
    """Aggregated scores of several tracks.

    Attributes:
        table: ``{target: {metric: dB}}``; BSSEval metrics aggregated over frames, then
            tracks; ``"uSDR"`` the mean over tracks of the global SDR.
        mean: ``{metric: dB}``, the mean over targets of the table (the "average" of papers).
        metrics: the metric columns (``TABLE_METRICS`` or ``("SDR",)``), then ``"uSDR"``.
        nb_tracks: tracks aggregated.
        frames_agg, tracks_agg: ``"median"`` or ``"mean"``.
    """

    table: dict[str, dict[str, float]]
    mean: dict[str, float]
    metrics: tuple[str, ...]
    nb_tracks: int
    frames_agg: str = "median"
    tracks_agg: str = "median"


def aggregate(
    tracks: Sequence[TrackScores],
    frames_agg: str = "median",
    tracks_agg: str = "median",
    metrics: Sequence[str] = TABLE_METRICS,
) -> Summary:
    """museval's ``EvalStore`` aggregation ("median over frames, median over tracks").

    Each (track, target, metric) is aggregated over its windows (NaN windows skipped; the
    values are the JSON-rounded ones museval reads back), then over tracks (NaN tracks
    skipped). uSDR is averaged over tracks, as MDX'21 does.

    Raises:
        UnmixError: an unknown aggregation.
    """
    for how in (frames_agg, tracks_agg):
        if how not in AGGREGATIONS:
            raise UnmixError(f"aggregation must be one of {AGGREGATIONS}, got {how!r}")
    per_track = [t.frame_aggregate(frames_agg) for t in tracks]
    targets = list(dict.fromkeys(name for t in tracks for name in t.scores))
    table: dict[str, dict[str, float]] = {}
    for target in targets:
        row = {
            m: nan_aggregate(np.array([s[target][m] for s in per_track if target in s]), tracks_agg)
            for m in metrics
        }
        row["uSDR"] = nan_aggregate(
            np.array([t.usdr[target] for t in tracks if target in t.usdr]), "mean"
        )
        table[target] = row
    columns = (*metrics, "uSDR")
    mean = {c: nan_aggregate(np.array([table[t][c] for t in targets]), "mean") for c in columns}
    return Summary(table, mean, columns, len(tracks), frames_agg, tracks_agg)
