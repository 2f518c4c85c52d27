"""Input checks shared by the metrics: shapes, finiteness and museval's silence rule."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ..errors import UnmixError


class MetricsInputError(UnmixError, ValueError):
    """References and estimates that cannot be scored (shape mismatch, NaN, silence)."""


def as_sources(array: ArrayLike, name: str) -> np.ndarray:
    """View ``array`` as ``(nb_sources, nb_samples, nb_channels)``.

    A 2-D array ``(nb_sources, nb_samples)`` is taken as mono. The dtype is kept (float32
    input stays float32 until it is used), so no copy of a long signal is made here.

    Raises:
        MetricsInputError: not 2-D or 3-D, empty, or not real-valued.
    """
    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise MetricsInputError(
            f"{name} must be shaped (nb_sources, nb_samples, nb_channels), got shape {arr.shape}"
        )
    if arr.dtype.kind not in "fiu":
        raise MetricsInputError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if 0 in arr.shape:
        raise MetricsInputError(f"{name} is empty: shape {arr.shape}")
    return arr


def check_pair(references: ArrayLike, estimates: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validate a reference/estimate pair for scoring.

    Returns:
        ``(references, estimates)``, both ``(nb_sources, nb_samples, nb_channels)``.

    Raises:
        MetricsInputError: different source counts, lengths or channel counts (the message
            names both shapes), or NaN/infinite samples.
    """
    refs = as_sources(references, "references")
    ests = as_sources(estimates, "estimates")
    if refs.shape != ests.shape:
        what = [
            label
            for label, a, b in zip(
                ("source counts", "lengths", "channel counts"), refs.shape, ests.shape, strict=True
            )
            if a != b
        ]
        raise MetricsInputError(
            f"references have shape {refs.shape} but estimates have shape {ests.shape} "
            f"(nb_sources, nb_samples, nb_channels): the {' and '.join(what)} differ; give one "
            "estimate per reference, with the same length and channels (pad or trim first)"
        )
    for name, arr in (("references", refs), ("estimates", ests)):
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise MetricsInputError(f"{name} hold NaN or infinite samples")
    return refs, ests


def channel_sum(sources: np.ndarray) -> np.ndarray:
    """Sum over the last (channel) axis, channel by channel (fast for 1-8 channels).

    Args:
        sources: ``(..., nb_channels)``.

    Returns:
        ``(...)`` in the input dtype.
    """
    total = np.array(sources[..., 0])
    for c in range(1, sources.shape[-1]):
        total += sources[..., c]
    return total


def silent_sources(sources: np.ndarray, step: int = 1 << 18) -> np.ndarray:
    """Which sources are silent, by museval's rule.

    A source is silent when its channel sum is exactly zero at every sample (so a stereo
    signal with ``L == -R`` counts as silent too).

    Args:
        sources: ``(nb_sources, nb_samples, nb_channels)``.
        step: samples checked at a time (bounds memory; stops early once all sound).

    Returns:
        ``(nb_sources,)`` booleans.
    """
    silent = np.ones(sources.shape[0], dtype=bool)
    for start in range(0, sources.shape[1], step):
        silent &= ~np.any(channel_sum(sources[:, start : start + step]) != 0, axis=1)
        if not silent.any():
            break
    return silent


def check_not_silent(references: np.ndarray, estimates: np.ndarray) -> None:
    """Refuse whole-signal silence, as museval does (the projections would be undefined).

    Raises:
        MetricsInputError: naming the silent sources.
    """
    for name, arr in (("reference", references), ("estimate", estimates)):
        silent = np.flatnonzero(silent_sources(arr))
        if silent.size:
            raise MetricsInputError(
                f"{name} source(s) {silent.tolist()} are silent over the whole signal (all "
                "zeros after summing channels); BSSEval is undefined for silent sources: "
                "leave them out or use the SDR-only mode (framewise_sdr)"
            )
