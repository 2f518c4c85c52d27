"""Test-time shifts: separate time-shifted copies of the input and average the stems.

Copy ``k`` of ``N`` is the input delayed by ``offset_k = round(k · unit / N)`` samples (zeros
in front), where ``unit`` is the STFT hop (for an ensemble: the greatest common divisor of
its members' hops). Its stems are cut back by the same offset, so all copies are aligned
again before they are averaged. The offsets are deterministic and the first is 0, so
``N = 1`` is plain separation, bit for bit.

Why fractions of the hop: a delay by a whole number of hops only moves the STFT frame grid
by whole frames, so the networks see the same frames (apart from the edges) and the copies
barely differ. A delay by ``hop / N`` puts every copy's frames halfway (thirds, quarters...)
between those of the others: each copy sees different frames, which is what averaging
needs. Offsets stay below one hop, so the segment engine's alignment (segments start on
multiples of ``hop · wiener_win_len``) holds for every copy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .choices import MAX_SHIFTS as MAX_SHIFTS
from .choices import check_shifts as check_shifts
from .errors import UnmixError


def shift_offsets(shifts: int, unit: int) -> tuple[int, ...]:
    """The delays (samples) of the ``shifts`` copies: ``round(k · unit / shifts)``.

    Args:
        shifts: number of copies (checked by :func:`check_shifts`).
        unit: the STFT hop, or the common divisor of several hops (samples).

    Returns:
        ``shifts`` distinct offsets in ``[0, unit)``, the first 0.

    Raises:
        UnmixError: more copies than samples in ``unit``.
    """
    check_shifts(shifts)
    if shifts > unit:
        raise UnmixError(f"{shifts} shifts need a hop of at least {shifts} samples, got {unit}")
    return tuple(round(k * unit / shifts) for k in range(shifts))


def average_shifted(
    separate: Callable[[Tensor], Tensor], audio: Tensor, offsets: Sequence[int]
) -> Tensor:
    """Mean of ``separate`` over delayed copies of ``audio``, each cut back into place.

    Args:
        separate: ``(S, C, T) → (S, J', C, T)``, stems as long as the input.
        audio: mixture ``(S, C, T)``.
        offsets: delays in samples (from :func:`shift_offsets`); one copy at a time, so
            memory holds one extra stem buffer whatever their number.

    Returns:
        stems ``(S, J', C, T)``; exactly ``separate(audio)`` for ``offsets == (0,)``.
    """
    length = audio.shape[-1]
    total: Tensor | None = None
    for offset in offsets:
        if offset:
            shifted = torch.nn.functional.pad(audio, (offset, 0))
            stems = separate(shifted)[..., offset : offset + length]
        else:
            stems = separate(audio)
        total = stems if total is None else total.add_(stems)
    if total is None:
        raise ValueError("no offsets")
    return total if len(offsets) == 1 else total.div_(len(offsets))
