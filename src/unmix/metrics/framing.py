"""museval's framing: which sample ranges are scored."""

from __future__ import annotations

import operator

from .validation import MetricsInputError


def check_framing(window: int, hop: int) -> tuple[int, int]:
    """``(window, hop)`` as Python ints.

    Raises:
        MetricsInputError: unless both are positive integers.
    """
    out = []
    for name, value in (("window", window), ("hop", hop)):
        try:
            number = operator.index(value)
        except TypeError:
            number = 0
        if isinstance(value, bool) or number <= 0:
            raise MetricsInputError(f"{name} must be a positive number of samples, got {value!r}")
        out.append(number)
    return out[0], out[1]


def nb_windows(nb_samples: int, window: int, hop: int) -> int:
    """Number of scored windows, as museval counts them.

    ``floor((nb_samples - window + hop) / hop)`` when ``window < nb_samples``, else 1: the
    trailing partial window is dropped, and a signal no longer than one window is scored
    as a single window covering all of it.
    """
    window, hop = check_framing(window, hop)
    if window < nb_samples:
        return (nb_samples - window + hop) // hop
    return 1


def window_bounds(nb_samples: int, window: int, hop: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` sample ranges of the scored windows (stop excluded)."""
    window, hop = check_framing(window, hop)
    return [
        (t * hop, min(t * hop + window, nb_samples))
        for t in range(nb_windows(nb_samples, window, hop))
    ]
