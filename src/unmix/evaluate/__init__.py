"""Score separated stems against references, the museval way.

* :mod:`~unmix.evaluate.scoring` — :func:`score_track`: BSSEval v4 (or SDR only) for one
  song, grouping the targets as ``museval.eval_mus_track`` does; :class:`EvalSettings`.
* :mod:`~unmix.evaluate.scores` — :class:`TrackScores` (framewise scores) and
  :func:`aggregate`: median over frames, then median over tracks (SiSEC 2018), the mean
  of the target values and uSDR.
* :mod:`~unmix.evaluate.museval_json` — museval's per-track JSON, byte for byte.
* :mod:`~unmix.evaluate.tables` — the console table, ``scores.md``, ``scores.csv``,
  ``tracks.csv`` and the header lines.
* :mod:`~unmix.evaluate.files` — writing them: names that fit, all-or-nothing groups.
* :mod:`~unmix.evaluate.plots` — box plots (matplotlib, optional).
* :mod:`~unmix.evaluate.estimates` — estimates from a folder or a model; missing ones.
* :mod:`~unmix.evaluate.run` — :func:`evaluate_tracks`: load, (separate,) score and write
  every track of a dataset.
"""

from ..errors import UnmixError
from .estimates import (
    EstimateSource,
    describe_missing,
    estimates_folder,
    folder_estimates,
    missing_estimates,
    model_estimates,
)
from .files import (
    ScoreWriteError,
    check_out_dir,
    fit_file_name,
    json_path,
    write_files,
    write_track_json,
)
from .museval_json import METRICS, MUSEVAL_VERSION, quantize
from .plots import boxplots, matplotlib_available, require_matplotlib
from .run import evaluate_tracks, score_one
from .scores import AGGREGATIONS, TABLE_METRICS, Summary, TrackScores, aggregate
from .scoring import (
    DERIVED_TARGETS,
    MODES,
    MUSDB_TARGETS,
    EvalSettings,
    reference_targets,
    scorable_targets,
    score_track,
    scoring_groups,
    target_order,
)
from .tables import (
    describe_dataset,
    describe_scoring,
    rounding_noise_note,
    summary_csv,
    summary_markdown,
    summary_text,
    track_csv,
)

__all__ = [
    "AGGREGATIONS",
    "DERIVED_TARGETS",
    "METRICS",
    "MODES",
    "MUSDB_TARGETS",
    "MUSEVAL_VERSION",
    "TABLE_METRICS",
    "EstimateSource",
    "EvalSettings",
    "ScoreWriteError",
    "Summary",
    "TrackScores",
    "UnmixError",
    "aggregate",
    "boxplots",
    "check_out_dir",
    "describe_dataset",
    "describe_missing",
    "describe_scoring",
    "estimates_folder",
    "evaluate_tracks",
    "fit_file_name",
    "folder_estimates",
    "json_path",
    "matplotlib_available",
    "missing_estimates",
    "model_estimates",
    "quantize",
    "reference_targets",
    "require_matplotlib",
    "rounding_noise_note",
    "scorable_targets",
    "score_one",
    "score_track",
    "scoring_groups",
    "summary_csv",
    "summary_markdown",
    "summary_text",
    "target_order",
    "track_csv",
    "write_files",
    "write_track_json",
]
