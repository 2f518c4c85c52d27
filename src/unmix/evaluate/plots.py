"""Box plots of per-track scores (``boxplot_<target>.png``), as in the SiSEC 2018 figures.

matplotlib is optional (the ``plot`` extra): :func:`matplotlib_available` says whether it
can be imported, and :func:`boxplots` refuses with a one-line error without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UnmixError
from ..fileio import atomic_path
from .files import fit_file_name, write_error
from .scores import TABLE_METRICS, TrackScores


def matplotlib_available() -> bool:
    """Whether matplotlib can be imported (the optional ``plot`` extra)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


#: suffix of the temporary file (matplotlib picks the format from it)
PART_SUFFIX = ".part.png"


def require_matplotlib() -> None:
    """Raise a clear error when the optional ``plot`` extra is missing."""
    if not matplotlib_available():
        raise UnmixError("box plots need matplotlib: pip install 'unmix[plot]' (or pass --no-plot)")


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
        UnmixError: matplotlib is not installed, or a file cannot be written (nothing
            half-written is left).
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
        path = Path(out_dir) / fit_file_name(f"boxplot_{target}", ".png")
        try:
            with atomic_path(path, suffix=PART_SUFFIX) as tmp:
                fig.savefig(tmp, dpi=120)
        except OSError as exc:
            raise write_error(path, exc) from exc
        written.append(path)
    return written


def _horizontal() -> dict[str, Any]:
    """``boxplot`` keywords for horizontal boxes (``vert`` is deprecated from matplotlib 3.10)."""
    import matplotlib

    major, minor = (int(p) for p in matplotlib.__version__.split(".")[:2])
    return {"orientation": "horizontal"} if (major, minor) >= (3, 10) else {"vert": False}
