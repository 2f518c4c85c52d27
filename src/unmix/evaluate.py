"""Score separated stems against references, the museval way.

* :func:`score_track` — BSSEval v4 (or SDR only) for one song, grouping the targets as
  ``museval.eval_mus_track`` does (all targets jointly; vocals/accompaniment as a pair).
* :class:`TrackScores` — framewise scores; ``to_json`` writes museval's per-track JSON.
* :func:`aggregate` — median over frames, then median over tracks (SiSEC 2018), plus the
  mean of the target medians and uSDR (global SDR, mean over tracks).
* :func:`evaluate_tracks` — load, (separate,) score and write every track of a dataset.
* :func:`summary_markdown`, :func:`summary_csv`, :func:`track_csv`, :func:`boxplots` —
  reports.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .errors import UnmixError
from .fileio import atomic_path, atomic_write_text
from .metrics import bss_eval_v4, framewise_sdr, usdr
from .metrics.validation import silent_sources
from .tracks import Track

log = logging.getLogger(__name__)

#: metric keys in museval's JSON order
METRICS = ("SDR", "SIR", "SAR", "ISR")
#: metric order of museval's printed summaries and of our tables
TABLE_METRICS = ("SDR", "SIR", "ISR", "SAR")
#: musdb's target order; the last two are sums of sources
MUSDB_TARGETS = ("vocals", "drums", "bass", "other", "accompaniment", "linear_mixture")
DERIVED_TARGETS = {
    "accompaniment": ("drums", "bass", "other"),
    "linear_mixture": ("vocals", "drums", "bass", "other"),
}
#: the evaluator whose numbers (and JSON layout) ours reproduce
MUSEVAL_VERSION = "0.4.1"
MODES = ("bsseval", "sdr")
AGGREGATIONS = ("median", "mean")

#: ``(track, decoded sources {name: (C, T)} with the mixture, rate) -> estimates {name: (C, T)}``
EstimateSource = Callable[[Track, Mapping[str, np.ndarray], int], Mapping[str, np.ndarray]]


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
    scores: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    window: float = 1.0
    hop: float = 1.0
    usdr: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        """museval 0.4.1's per-track JSON, byte for byte.

        Values are rounded to 5 decimals; NaN and infinities are written as ``NaN``
        (not strict JSON; Python's ``json`` module reads it).
        """
        targets = [
            {
                "name": target,
                "frames": [
                    {
                        "time": t * self.hop,
                        "duration": self.window,
                        "metrics": {m: _Raw(_json_number(values[m][t])) for m in METRICS},
                    }
                    for t in range(len(values["SDR"]))
                ],
            }
            for target, values in self.scores.items()
        ]
        return _dump({"targets": targets, "museval_version": MUSEVAL_VERSION})

    @classmethod
    def from_json(cls, text: str, name: str, subset: str = "") -> TrackScores:
        """Read a museval (or :meth:`to_json`) per-track JSON document.

        Raises:
            UnmixError: the text is not such a document.
        """
        try:
            data = json.loads(text)
            scores: dict[str, dict[str, np.ndarray]] = {}
            window = hop = 1.0
            for target in data["targets"]:
                frames = target["frames"]
                scores[target["name"]] = {
                    m: np.array([float(f["metrics"].get(m, math.nan)) for f in frames])
                    for m in METRICS
                }
                if frames:
                    window = float(frames[0]["duration"])
                    hop = (
                        float(frames[1]["time"] - frames[0]["time"]) if len(frames) > 1 else window
                    )
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise UnmixError(f"not a museval track JSON ({name}): {exc!r}") from exc
        return cls(name, subset, scores, window, hop)

    def frame_aggregate(self, how: str = "median") -> dict[str, dict[str, float]]:
        """``{target: {metric: value}}``: NaN-skipping median (or mean) over windows of the
        JSON-rounded values (what museval aggregates); NaN if every window is NaN."""
        return {
            target: {m: _nan_aggregate(quantize(values[m]), how) for m in METRICS}
            for target, values in self.scores.items()
        }


class _Raw(str):
    """Text written into the JSON as is (a pre-formatted number)."""


def _json_number(value: float) -> str:
    """museval's number formatting: ``Decimal(value).quantize(Decimal('.00001'))``."""
    if not math.isfinite(value):
        return "NaN"
    try:
        return str(Decimal(float(value)).quantize(Decimal(".00001")))
    except InvalidOperation:  # beyond Decimal's 28 digits; museval itself fails here
        return repr(float(value))


def _dump(obj: Any, level: int = 0) -> str:
    """JSON with an indent of 2, as simplejson writes it (``_Raw`` values verbatim)."""
    inner, outer = "  " * (level + 1), "  " * level
    if isinstance(obj, _Raw):
        return str(obj)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{inner}{json.dumps(k)}: {_dump(v, level + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + outer + "}"
    if isinstance(obj, list):
        if not obj:
            return "[]"
        return "[\n" + ",\n".join(inner + _dump(v, level + 1) for v in obj) + "\n" + outer + "]"
    return json.dumps(obj)


def quantize(values: np.ndarray) -> np.ndarray:
    """Scores as museval stores them: rounded to 5 decimals, infinities as NaN."""
    return np.array([float(_json_number(float(v))) for v in np.ravel(values)])


def _nan_aggregate(values: np.ndarray, how: str) -> float:
    finite = values[~np.isnan(values)]
    if finite.size == 0:
        return math.nan
    return float(np.median(finite) if how == "median" else np.mean(finite))


def target_order(names: Iterable[str]) -> list[str]:
    """musdb's target order first, then any other names in their given order."""
    names = list(dict.fromkeys(names))
    return [t for t in MUSDB_TARGETS if t in names] + [n for n in names if n not in MUSDB_TARGETS]


def reference_targets(sources: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """References for every scorable target: the sources (``mixture`` left out) plus
    ``accompaniment`` and ``linear_mixture`` when their sources are all there.

    Args:
        sources: ``{name: (nb_channels, nb_timesteps)}``.

    Returns:
        ``{target: (nb_channels, nb_timesteps)}`` in :func:`target_order`; sources keep
        their dtype, sums are float64 (as musdb computes them).
    """
    refs = {n: np.asarray(x) for n, x in sources.items() if n != "mixture"}
    for name, parts in DERIVED_TARGETS.items():
        if name not in refs and all(p in refs for p in parts):
            refs[name] = np.asarray(np.sum([refs[p] for p in parts], axis=0, dtype=np.float64))
    return {n: refs[n] for n in target_order(refs)}


def _fit_estimate(
    track: str, target: str, estimate: np.ndarray, reference: np.ndarray
) -> np.ndarray:
    """museval's padding: cut or zero-pad the estimate to the reference length.

    Raises:
        UnmixError: the channel counts differ (naming both shapes).
    """
    est = np.asarray(estimate)
    if est.ndim == 1:
        est = est[None]
    if est.ndim != 2 or est.shape[0] != reference.shape[0]:
        raise UnmixError(
            f"{track}: estimate {target!r} has shape {est.shape} but its reference has shape "
            f"{reference.shape} (channels, samples): give estimates with the reference's channels"
        )
    length = reference.shape[1]
    if est.shape[1] != length:
        log.warning(
            "%s: estimate %r has %d samples, the reference %d: %s as museval does",
            track,
            target,
            est.shape[1],
            length,
            "cut" if est.shape[1] > length else "zero-padded",
        )
        est = (
            est[:, :length]
            if est.shape[1] > length
            else np.pad(est, ((0, 0), (0, length - est.shape[1])))
        )
    return est


def scoring_groups(targets: Sequence[str]) -> list[tuple[list[str], list[str]]]:
    """museval's grouping: ``[(targets scored jointly, targets whose scores are kept)]``.

    All targets are scored together, except that when both ``vocals`` and
    ``accompaniment`` are present, accompaniment leaves the main group, the main group's
    vocals score is discarded and the pair is scored on its own. museval gives no score to
    a lone target; we score it alone (and say so).
    """
    has_pair = "vocals" in targets and "accompaniment" in targets
    main = [t for t in targets if not (has_pair and t == "accompaniment")]
    groups: list[tuple[list[str], list[str]]] = []
    if len(main) >= 2 or (main and not has_pair):
        groups.append((main, [t for t in main if not (has_pair and t == "vocals")]))
    if has_pair:
        groups.append((["vocals", "accompaniment"], ["vocals", "accompaniment"]))
    return groups


def _score_group(
    track: str,
    group: Sequence[str],
    refs: np.ndarray,
    ests: np.ndarray,
    mode: str,
    window: int,
    hop: int,
    regularization: float,
) -> dict[str, np.ndarray]:
    """``{metric: (nb_sources, nb_windows)}`` for one jointly scored group."""
    silent = silent_sources(refs) | silent_sources(ests)
    if mode == "bsseval" and not silent.any():
        sdr, isr, sir, sar = bss_eval_v4(refs, ests, window, hop, regularization=regularization)
        return {"SDR": sdr, "SIR": sir, "SAR": sar, "ISR": isr}
    if mode == "bsseval":  # museval raises here; its silence rule makes every window NaN
        names = [g for g, quiet in zip(group, silent, strict=True) if quiet]
        log.warning(
            "%s: %s silent over the whole track (reference or estimate): museval refuses "
            "such a group; all its windows are NaN",
            track,
            names,
        )
    sdr = framewise_sdr(refs, ests, window, hop)
    nan_like = np.full_like(sdr, np.nan)
    return {"SDR": sdr, "SIR": nan_like, "SAR": nan_like, "ISR": nan_like}


def score_track(
    references: Mapping[str, np.ndarray],
    estimates: Mapping[str, np.ndarray],
    rate: int,
    name: str = "",
    subset: str = "",
    mode: str = "bsseval",
    window: float = 1.0,
    hop: float = 1.0,
    regularization: float = 0.0,
) -> TrackScores:
    """Score one track as ``museval.eval_mus_track`` does (win = hop = 1 s by default).

    Args:
        references: ``{source: (nb_channels, nb_timesteps)}``; ``mixture`` is ignored,
            ``accompaniment``/``linear_mixture`` are derived when their sources exist.
        estimates: ``{target: (nb_channels, nb_timesteps)}``; padded or cut to the
            reference length; names without a reference are ignored (with a warning).
        rate: sample rate of both (Hz).
        name, subset: stored in the result.
        mode: ``"bsseval"`` (SDR, SIR, SAR, ISR) or ``"sdr"`` (SDR only; the other three
            are NaN).
        window, hop: in seconds, turned into ``int(seconds * rate)`` samples.
        regularization: see :func:`unmix.metrics.bss_eval_v4` (0: museval).

    Returns:
        the framewise scores (and uSDR) of every scored target.

    Raises:
        UnmixError: no estimate matches a reference, or channel counts differ.
    """
    if mode not in MODES:
        raise UnmixError(f"mode must be one of {MODES}, got {mode!r}")
    refs = reference_targets(references)
    ignored = [t for t in estimates if t not in refs]
    if ignored:
        log.warning(
            "%s: no reference for %s; not scored (references: %s)", name, ignored, list(refs)
        )
    targets = [t for t in refs if t in estimates]
    if not targets:
        raise UnmixError(
            f"{name}: no estimate matches a reference (estimates {sorted(estimates)}, "
            f"references {list(refs)})"
        )
    ests = {t: _fit_estimate(name, t, estimates[t], refs[t]) for t in targets}
    win, step = int(window * rate), int(hop * rate)
    result = TrackScores(name, subset, {}, window, hop)
    for group, keep in scoring_groups(targets):
        if len(group) == 1:
            log.warning("%s: %r is scored alone (museval scores no lone target)", name, group[0])
        scores = _score_group(
            name,
            group,
            np.stack([refs[t].T for t in group]),
            np.stack([ests[t].T for t in group]),
            mode,
            win,
            step,
            regularization,
        )
        for t in keep:
            k = group.index(t)
            result.scores[t] = {m: scores[m][k] for m in METRICS}
    for t in result.scores:
        result.usdr[t] = float(usdr(refs[t].T[None], ests[t].T[None])[0])
    return result


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
            m: _nan_aggregate(
                np.array([s[target][m] for s in per_track if target in s]), tracks_agg
            )
            for m in metrics
        }
        row["uSDR"] = _nan_aggregate(
            np.array([t.usdr[target] for t in tracks if target in t.usdr]), "mean"
        )
        table[target] = row
    columns = (*metrics, "uSDR")
    mean = {c: _nan_aggregate(np.array([table[t][c] for t in targets]), "mean") for c in columns}
    return Summary(table, mean, columns, len(tracks), frames_agg, tracks_agg)


def _fmt(value: float, digits: int) -> str:
    return "nan" if math.isnan(value) else f"{value:.{digits}f}"


def summary_text(summary: Summary) -> str:
    """A console table (3 decimals, museval's precision)."""
    width = max([len("target"), *(len(t) for t in summary.table)]) + 2
    lines = ["target".ljust(width) + "".join(c.rjust(9) for c in summary.metrics)]
    rows = [*summary.table.items(), ("mean", summary.mean)]
    for target, row in rows:
        lines.append(
            target.ljust(width) + "".join(_fmt(row[c], 3).rjust(9) for c in summary.metrics)
        )
    return "\n".join(lines)


def summary_markdown(summary: Summary, header: Sequence[str] = ()) -> str:
    """The table in Markdown (2 decimals), below ``header`` lines written as a list."""
    out = ["# Evaluation", ""]
    out += [f"- {line}" for line in header]
    out += ["", "| target | " + " | ".join(summary.metrics) + " |"]
    out.append("|---|" + "---:|" * len(summary.metrics))
    for target, row in [*summary.table.items(), ("**mean**", summary.mean)]:
        out.append(f"| {target} | " + " | ".join(_fmt(row[c], 2) for c in summary.metrics) + " |")
    return "\n".join(out) + "\n"


def _csv(rows: Iterable[Sequence[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def summary_csv(summary: Summary) -> str:
    """The table as CSV (5 decimals; a last row ``mean``)."""
    rows = [["target", *summary.metrics]]
    for target, row in [*summary.table.items(), ("mean", summary.mean)]:
        rows.append([target, *(_fmt(row[c], 5) for c in summary.metrics)])
    return _csv(rows)


def track_csv(tracks: Sequence[TrackScores], frames_agg: str = "median") -> str:
    """Per-track scores (aggregated over frames) and uSDR, one row per track and target."""
    rows = [["track", "target", *TABLE_METRICS, "uSDR"]]
    for track in tracks:
        for target, row in track.frame_aggregate(frames_agg).items():
            usdr_value = track.usdr.get(target, math.nan)
            rows.append(
                [track.name, target, *(_fmt(row[m], 5) for m in TABLE_METRICS), _fmt(usdr_value, 5)]
            )
    return _csv(rows)


def require_matplotlib() -> None:
    """Raise a clear error when the optional ``plot`` extra is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise UnmixError(
            "box plots need matplotlib: pip install 'unmix[plot]' (or pass --no-plot)"
        ) from exc


def boxplots(
    tracks: Sequence[TrackScores],
    out_dir: str | Path,
    frames_agg: str = "median",
    metrics: Sequence[str] = TABLE_METRICS,
    title: str = "",
) -> list[Path]:
    """One PNG per target, ``boxplot_<target>.png``: for each metric, the distribution over
    tracks of the per-track score (aggregated over frames), as in the SiSEC 2018 figures.

    Returns:
        the written files.

    Raises:
        UnmixError: matplotlib is not installed.
    """
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    per_track = [t.frame_aggregate(frames_agg) for t in tracks]
    targets = list(dict.fromkeys(name for t in tracks for name in t.scores))
    written: list[Path] = []
    rng = np.random.default_rng(0)  # jitter of the dots only
    for target in targets:
        data = []
        for m in metrics:
            values = np.array([s[target][m] for s in per_track if target in s])
            data.append(values[np.isfinite(values)])
        fig = Figure(figsize=(7, 1.2 + 0.6 * len(metrics)))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        ax.boxplot(data, showfliers=False, widths=0.6, **_horizontal())
        for k, values in enumerate(data, start=1):
            ax.scatter(values, k + rng.uniform(-0.15, 0.15, values.size), s=8, alpha=0.6)
        ax.set_yticks(range(1, len(metrics) + 1), list(metrics))
        ax.invert_yaxis()
        ax.set_xlabel(f"dB ({frames_agg} over frames, one dot per track)")
        ax.set_title(f"{target}{' — ' + title if title else ''} ({len(per_track)} tracks)")
        ax.grid(axis="x", alpha=0.3)
        fig.tight_layout()
        path = Path(out_dir) / f"boxplot_{target}.png"
        with atomic_path(path, suffix=".part.png") as tmp:
            fig.savefig(tmp, dpi=120)
        written.append(path)
    return written


def _horizontal() -> dict[str, Any]:
    """``boxplot`` keywords for horizontal boxes (``vert`` is deprecated from matplotlib 3.10)."""
    import matplotlib

    major, minor = (int(p) for p in matplotlib.__version__.split(".")[:2])
    return {"orientation": "horizontal"} if (major, minor) >= (3, 10) else {"vert": False}


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
    from . import audio as audio_io

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
        for path in sorted(folder.iterdir()):
            if not audio_io.is_audio_name(path) or path.name.startswith("."):
                continue
            audio, file_rate = audio_io.read(path)
            if file_rate != rate:
                raise UnmixError(
                    f"{path}: sample rate {file_rate} Hz, the references have {rate} Hz; "
                    "write the estimates at the dataset's rate"
                )
            out[path.stem] = audio
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
    from . import audio as audio_io
    from .api import separate_array

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


def json_path(out_dir: str | Path, track: TrackScores) -> Path:
    """museval's location: ``<out_dir>/<subset>/<track name>.json``."""
    return Path(out_dir) / track.subset / f"{track.name}.json"


@dataclass(frozen=True)
class EvalSettings:
    """How tracks are scored (see :func:`score_track`)."""

    mode: str = "bsseval"
    window: float = 1.0
    hop: float = 1.0
    regularization: float = 0.0
    targets: tuple[str, ...] | None = None


def evaluate_tracks(
    tracks: Sequence[Track],
    estimates: EstimateSource,
    out_dir: str | Path | None = None,
    settings: EvalSettings | None = None,
    report: Callable[[str], None] | None = None,
    load_mixture: bool = True,
) -> tuple[list[TrackScores], list[str]]:
    """Load, (separate,) score and write every track.

    A track that fails (unreadable audio, missing estimates, bad shapes) is reported and
    skipped; the others go on.

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
    """
    settings = settings or EvalSettings()
    say = report or log.info
    done: list[TrackScores] = []
    failed: list[str] = []
    for i, track in enumerate(tracks, start=1):
        start = time.perf_counter()
        try:
            names = [n for n in track.sources if load_mixture or n != "mixture"]
            sources, rate = track.load(names)
            ests = dict(estimates(track, sources, rate))
            if settings.targets:
                ests = {t: x for t, x in ests.items() if t in settings.targets}
            scores = score_track(
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
        except UnmixError as exc:
            failed.append(f"{track.name}: {exc}")
            say(f"[{i}/{len(tracks)}] {track.name}: error: {exc}")
            continue
        if out_dir is not None:
            atomic_write_text(json_path(out_dir, scores), scores.to_json())
        done.append(scores)
        medians = scores.frame_aggregate()
        line = ", ".join(f"{t} {_fmt(v['SDR'], 2)}" for t, v in medians.items())
        say(f"[{i}/{len(tracks)}] {track.name}: SDR {line} ({time.perf_counter() - start:.1f} s)")
    return done, failed


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
