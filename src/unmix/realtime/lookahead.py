"""Lookahead mode: any model (bidirectional ones included), one chunk at a time.

:func:`lookahead_engine` picks the design: for a bidirectional UMX with no ``context``
given, the carried engine (:mod:`unmix.realtime.lookahead_carried`: forward LSTM states
carried between chunks, the offline Wiener window's statistics); otherwise the windowed
engine of this module (X-UMX, a unidirectional model, an explicit ``context``, or a
lookahead under one STFT window).

Windowed engine. Output chunk ``c`` (samples ``[c·B, (c + 1)·B)``) is cut from the offline separation
(:class:`~unmix.separator.Separator`, Wiener EM included) of the window
``[c·B − P, (c + 1)·B + A)``: ``P`` samples of past context, the chunk, and ``A`` samples of
lookahead (the window starts at 0 for the first chunks). The chunk is complete once sample
``(c + 1)·B + A − 1`` has arrived, so the latency is ``B + A − 1`` samples.

State (:class:`LookaheadState`): the input history the next window needs and the index of
the next chunk; :func:`LookaheadEngine.advance` is pure, like the causal engine's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import UnmixError
from ..models.umx import UMX
from ..separator import Separator
from .lookahead_carried import CarriedLookaheadEngine


@dataclass(frozen=True)
class LookaheadState:
    """``history (C, n)``: input from sample ``start`` on; ``chunk``: next chunk to emit."""

    history: Tensor
    start: int
    chunk: int


class LookaheadEngine:
    """Separate overlapping windows with a fixed lookahead.

    Args:
        separator: any loaded separator.
        lookahead, chunk, context: ``A``, ``B``, ``P`` in samples.
        nb_channels: channels of the stream.
    """

    def __init__(
        self, separator: Separator, lookahead: int, chunk: int, context: int, nb_channels: int
    ) -> None:
        n_fft = separator.config.n_fft
        if chunk < 1 or lookahead < 0 or context < 0:
            raise UnmixError(
                f"lookahead mode needs chunk >= 1 and lookahead, context >= 0 samples, "
                f"got chunk={chunk}, lookahead={lookahead}, context={context}"
            )
        if chunk + lookahead < n_fft:
            raise UnmixError(
                f"chunk + lookahead must be at least one STFT window ({n_fft} samples), "
                f"got {chunk} + {lookahead}"
            )
        self.separator = separator
        self.lookahead, self.chunk, self.context = lookahead, chunk, context
        self.nb_channels = nb_channels
        self.nb_sources = len(separator.output_names)

    @property
    def latency(self) -> int:
        """Samples from an input sample to the first moment its output is complete."""
        return self.chunk + self.lookahead - 1

    def initial(self) -> LookaheadState:
        """The state at the start of a stream."""
        return LookaheadState(torch.zeros(self.nb_channels, 0), 0, 0)

    def advance(self, state: LookaheadState, block: Tensor) -> tuple[Tensor, LookaheadState]:
        """Take ``block (C, n)``; return the newly completed chunks ``(J', C, k·B)``."""
        history = torch.cat([state.history, block], 1)
        start, chunk = state.start, state.chunk
        end = start + history.shape[1]  # samples received in all
        outputs = []
        B = self.chunk
        while (chunk + 1) * B + self.lookahead <= end:
            lo = max(0, chunk * B - self.context)
            window = history[:, lo - start : (chunk + 1) * B + self.lookahead - start]
            with torch.inference_mode():
                stems = self.separator(window[None])[0]  # (J', C, T)
            outputs.append(stems[..., chunk * B - lo : (chunk + 1) * B - lo])
            chunk += 1
        keep_from = max(0, chunk * B - self.context)
        history = history[:, keep_from - start :].clone()
        if outputs:
            out = torch.cat(outputs, -1)
        else:
            out = block.new_zeros(self.nb_sources, self.nb_channels, 0)
        return out, LookaheadState(history, keep_from, chunk)


def lookahead_engine(
    separator: Separator, lookahead: int, chunk: int, context: int | None, nb_channels: int
) -> LookaheadEngine | CarriedLookaheadEngine:
    """The lookahead engine for these settings (samples; ``context`` ``None``: the default).

    The carried engine where it applies (a bidirectional UMX, ``context`` not given, a
    lookahead of at least one STFT window); else the windowed one with ``context``
    (default: ``max(lookahead, chunk)``).
    """
    cfg = separator.config
    carried = isinstance(separator.model, UMX) and not cfg.unidirectional
    if context is None and carried and lookahead >= cfg.n_fft:
        return CarriedLookaheadEngine(separator, lookahead, chunk, nb_channels)
    past = max(lookahead, chunk) if context is None else context
    return LookaheadEngine(separator, lookahead, chunk, past, nb_channels)
