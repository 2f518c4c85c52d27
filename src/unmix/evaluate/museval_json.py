"""museval 0.4.1's per-track JSON, byte for byte: its number formatting, its layout, and
a reader for it.

The document is ``{"targets": [{"name": ..., "frames": [{"time", "duration", "metrics":
{SDR, SIR, SAR, ISR}}]}], "museval_version": "0.4.1"}``, indented by 2 as simplejson
writes it, each value rounded to 5 decimals with ``Decimal.quantize`` and ``NaN`` for
silent windows and infinities (not strict JSON; Python's ``json`` module reads it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np

from ..errors import UnmixError

#: metric keys in museval's JSON order
METRICS = ("SDR", "SIR", "SAR", "ISR")
#: the evaluator whose numbers (and JSON layout) ours reproduce
MUSEVAL_VERSION = "0.4.1"

#: ``{target: {metric: (nb_windows,) float64}}``
FrameScores = dict[str, dict[str, np.ndarray]]


class _Raw(str):
    """Text written into the JSON as is (a pre-formatted number)."""


def json_number(value: float) -> str:
    """museval's number formatting: ``Decimal(value).quantize(Decimal('.00001'))``."""
    if not math.isfinite(value):
        return "NaN"
    try:
        return str(Decimal(float(value)).quantize(Decimal(".00001")))
    except InvalidOperation:  # beyond Decimal's 28 digits; museval itself fails here
        return repr(float(value))


def quantize(values: np.ndarray) -> np.ndarray:
    """Scores as museval stores them: rounded to 5 decimals, infinities as NaN.

    Args:
        values: any shape; flattened.

    Returns:
        ``(values.size,)`` float64.
    """
    return np.array([float(json_number(float(v))) for v in np.ravel(values)])


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


def museval_json(scores: Mapping[str, Mapping[str, np.ndarray]], window: float, hop: float) -> str:
    """The per-track document of museval's ``TrackStore.json``.

    Args:
        scores: ``{target: {metric: (nb_windows,)}}`` with every metric of :data:`METRICS`.
        window, hop: in seconds (frame ``t`` starts at ``t * hop``).
    """
    targets = [
        {
            "name": target,
            "frames": [
                {
                    "time": t * hop,
                    "duration": window,
                    "metrics": {m: _Raw(json_number(values[m][t])) for m in METRICS},
                }
                for t in range(len(values["SDR"]))
            ],
        }
        for target, values in scores.items()
    ]
    return _dump({"targets": targets, "museval_version": MUSEVAL_VERSION})


def parse_museval_json(text: str, name: str) -> tuple[FrameScores, float, float]:
    """Read a museval (or :func:`museval_json`) per-track document.

    Args:
        text: the document.
        name: the track name, for the error message.

    Returns:
        ``(scores {target: {metric: (nb_windows,)}}, window, hop)``, seconds; a missing
        metric is NaN; a document without frames gives window = hop = 1.

    Raises:
        UnmixError: the text is not such a document.
    """
    try:
        data = json.loads(text)
        scores: FrameScores = {}
        window = hop = 1.0
        for target in data["targets"]:
            frames = target["frames"]
            scores[target["name"]] = {
                m: np.array([float(f["metrics"].get(m, math.nan)) for f in frames]) for m in METRICS
            }
            if frames:
                window = float(frames[0]["duration"])
                hop = float(frames[1]["time"] - frames[0]["time"]) if len(frames) > 1 else window
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise UnmixError(f"not a museval track JSON ({name}): {exc!r}") from exc
    return scores, window, hop
