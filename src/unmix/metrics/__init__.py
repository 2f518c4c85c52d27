"""Source separation metrics: BSSEval v4 equal to museval 0.4.1, fast framewise SDR, uSDR.

* :func:`bss_eval_v4` — SDR, ISR, SIR, SAR per source and window (images variant,
  512-tap time-invariant distortion filters), as ``museval.evaluate`` computes them.
* :func:`framewise_sdr` — the same SDR alone, in milliseconds.
* :func:`usdr` — the global SDR of MDX'21/SDX'23/Demucs (mean it over tracks).

All take ``(nb_sources, nb_samples, nb_channels)`` arrays.
"""

from .bsseval import BSSEvalScores, bss_eval_v4
from .framing import nb_windows, window_bounds
from .sdr import USDR_DELTA, framewise_sdr, usdr
from .validation import MetricsInputError

__all__ = [
    "USDR_DELTA",
    "BSSEvalScores",
    "MetricsInputError",
    "bss_eval_v4",
    "framewise_sdr",
    "nb_windows",
    "usdr",
    "window_bounds",
]
