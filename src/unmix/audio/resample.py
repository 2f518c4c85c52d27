"""Sample-rate conversion with soxr (high quality), whole signals or streams.

Rates are bounded before anything is allocated: a header that claims 1 Hz would otherwise
turn every decoded block into tens of thousands of times as many samples.
"""

from __future__ import annotations

import math

import numpy as np
import soxr

from ..errors import AudioError

#: lowest and highest sample rates unmix reads, resamples or writes (Hz)
MIN_RATE = 1000
MAX_RATE = 1_536_000


def check_rate(rate: float, what: str) -> int:
    """``rate`` as an int if it lies in ``[MIN_RATE, MAX_RATE]``; a one-line error otherwise."""
    if not (isinstance(rate, int | float) and math.isfinite(rate)) or not (
        MIN_RATE <= rate <= MAX_RATE
    ):
        raise AudioError(
            f"{what} has a sample rate of {rate} Hz; unmix handles {MIN_RATE} to {MAX_RATE} Hz "
            "(is the header corrupt?)"
        )
    return int(rate)


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample ``(nb_channels, nb_timesteps)`` with soxr (high quality).

    The output has ``round(nb_timesteps * rate_out / rate_in)`` samples.
    """
    if rate_in == rate_out:
        return audio
    check_rate(rate_in, "the audio")
    check_rate(rate_out, "the requested output")
    out = soxr.resample(np.ascontiguousarray(audio.T), rate_in, rate_out, quality="HQ")
    return np.ascontiguousarray(out.T, dtype=np.float32)


def resampled_length(nb_timesteps: int, rate_in: int, rate_out: int) -> int:
    """Length soxr gives when resampling a whole signal."""
    return int(math.floor(nb_timesteps * rate_out / rate_in + 0.5))


class StreamResampler:
    """Resample ``(nb_channels, n)`` blocks as one continuous stream (soxr, high quality).

    The concatenated output equals :func:`resample` of the concatenated input, so a
    stream resampled block by block has no seams and the same length. Both rates must lie
    in ``[MIN_RATE, MAX_RATE]`` (so one block grows at most ``MAX_RATE / MIN_RATE`` times).
    """

    def __init__(self, rate_in: int, rate_out: int, nb_channels: int) -> None:
        self.rate_in = check_rate(rate_in, "the audio")
        self.rate_out = check_rate(rate_out, "the requested output")
        self.nb_channels = nb_channels
        self._stream = (
            None
            if rate_in == rate_out
            else soxr.ResampleStream(rate_in, rate_out, nb_channels, dtype="float32", quality="HQ")
        )

    def process(self, block: np.ndarray) -> np.ndarray:
        """Resample the next ``(nb_channels, n)`` block; returns what is ready ``(nb_channels, m)``."""
        return self._run(block, last=False)

    def flush(self) -> np.ndarray:
        """End the stream; returns the remaining ``(nb_channels, m)`` samples."""
        return self._run(np.zeros((self.nb_channels, 0), np.float32), last=True)

    def _run(self, block: np.ndarray, last: bool) -> np.ndarray:
        if self._stream is None:
            return block
        out = self._stream.resample_chunk(np.ascontiguousarray(block.T, np.float32), last=last)
        return np.ascontiguousarray(out.T, dtype=np.float32)
