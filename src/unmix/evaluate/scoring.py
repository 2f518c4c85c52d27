"""Scoring one track as ``museval.eval_mus_track`` does.

* :func:`score_track` — BSSEval v4 (or SDR only) for one song: references (with the
  derived ``accompaniment`` / ``linear_mixture``), padding, museval's grouping of the
  targets (all jointly; vocals/accompaniment as a pair), uSDR.
* :class:`EvalSettings` — how tracks are scored (mode, window, hop, regularization,
  targets), checked when built.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..config import FOUR_STEMS
from ..errors import UnmixError
from ..metrics import bss_eval_v4, framewise_sdr, usdr
from ..metrics.validation import silent_sources
from .museval_json import METRICS
from .scores import TrackScores

log = logging.getLogger(__name__)

#: derived targets: sums of sources, as musdb builds them
DERIVED_TARGETS = {
    "accompaniment": ("drums", "bass", "other"),
    "linear_mixture": FOUR_STEMS,
}
#: musdb's target order (the canonical four stems, then the sums of sources)
MUSDB_TARGETS = (*FOUR_STEMS, *DERIVED_TARGETS)
MODES = ("bsseval", "sdr")


def check_seconds(value: float, what: str) -> float:
    """``value`` as a float if it is a finite number of seconds > 0.

    Raises:
        UnmixError: NaN, an infinity, zero or a negative value (naming ``what``).
    """
    seconds = float(value)
    if not (math.isfinite(seconds) and seconds > 0):
        raise UnmixError(f"{what} must be a finite number of seconds > 0, got {value}")
    return seconds


@dataclass(frozen=True)
class EvalSettings:
    """How tracks are scored (see :func:`score_track`); checked when built.

    Attributes:
        mode: ``"bsseval"`` or ``"sdr"``.
        window, hop: seconds, finite and > 0.
        regularization: finite, >= 0 (0: museval).
        targets: score only these (``None``: every estimate with a reference); a track
            whose estimates lack one of them fails unless ``allow_missing``.
        allow_missing: score a track without the ``targets`` it has no estimate for.

    Raises:
        UnmixError: a value out of range (one line naming it).
    """

    mode: str = "bsseval"
    window: float = 1.0
    hop: float = 1.0
    regularization: float = 0.0
    targets: tuple[str, ...] | None = None
    allow_missing: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UnmixError(f"mode must be one of {MODES}, got {self.mode!r}")
        check_seconds(self.window, "the window (--window)")
        check_seconds(self.hop, "the hop (--hop)")
        reg = float(self.regularization)
        if not (math.isfinite(reg) and reg >= 0):
            raise UnmixError(
                f"the regularization (--regularization) must be finite and >= 0, got {reg}"
            )


def window_samples(seconds: float, rate: int, what: str) -> int:
    """museval's ``int(seconds * rate)``, at least one sample.

    Raises:
        UnmixError: not a finite positive duration, or shorter than one sample.
    """
    samples = int(check_seconds(seconds, what) * rate)
    if samples < 1:
        raise UnmixError(f"{what} of {seconds:g} s is shorter than one sample at {rate} Hz")
    return samples


def scorable_targets(source_names: Collection[str]) -> list[str]:
    """The targets a track with these sources has references for: its sources
    (``mixture`` left out) and the derived sums whose parts are all there, in
    :func:`target_order`."""
    names = [n for n in source_names if n != "mixture"]
    derived = [d for d, parts in DERIVED_TARGETS.items() if all(p in names for p in parts)]
    return target_order([*names, *derived])


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
    for name in scorable_targets(refs):
        if name not in refs:
            parts = [refs[p] for p in DERIVED_TARGETS[name]]
            refs[name] = np.asarray(np.sum(parts, axis=0, dtype=np.float64))
    return {n: refs[n] for n in target_order(refs)}


def fit_estimate(
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


def score_group(
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
        window, hop: in seconds, turned into ``int(seconds * rate)`` samples (at least 1).
        regularization: see :func:`unmix.metrics.bss_eval_v4` (0: museval).

    Returns:
        the framewise scores (and uSDR) of every scored target.

    Raises:
        UnmixError: no estimate matches a reference, channel counts differ, or the
            window or hop is not a finite duration of at least one sample.
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
    ests = {t: fit_estimate(name, t, estimates[t], refs[t]) for t in targets}
    win = window_samples(window, rate, "the window (--window)")
    step = window_samples(hop, rate, "the hop (--hop)")
    result = TrackScores(name, subset, {}, window, hop)
    for group, keep in scoring_groups(targets):
        if len(group) == 1:
            log.warning("%s: %r is scored alone (museval scores no lone target)", name, group[0])
        scores = score_group(
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
