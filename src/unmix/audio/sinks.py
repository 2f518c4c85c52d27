"""Encoders behind one protocol: a :class:`Sink` writes one file of one or more streams.

Each output format (:mod:`unmix.audio.formats`) names the function that opens its sink;
:class:`~unmix.audio.encode.StemWriter` only ever calls :meth:`Sink.write` and
:meth:`Sink.close`.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av
import numpy as np
import soundfile as sf

from ..errors import AudioError
from .decode import reason

#: AAC bit rate per stream of a ``.stem.mp4`` (that of the NI stems / MUSDB18 files)
STEMS_BIT_RATE = 256_000


class Sink(Protocol):
    """One output file being written, holding one stream per name it was opened with."""

    def write(self, blocks: Sequence[np.ndarray]) -> None:
        """Append one ``(nb_channels, n)`` block per stream (same ``n`` for all)."""

    def close(self) -> None:
        """Finish the file (flush encoders, write trailers); idempotent."""


class SinkOpener(Protocol):
    """Opens a :class:`Sink` at ``path`` for ``names`` (one stream each)."""

    def __call__(
        self, path: Path, names: tuple[str, ...], rate: int, nb_channels: int, subtype: str
    ) -> Sink: ...


class SoundFileSink:
    """One stream in one file through libsndfile (WAV, FLAC, MP3); ``subtype`` as soundfile's."""

    def __init__(
        self,
        path: Path,
        names: tuple[str, ...],
        rate: int,
        nb_channels: int,
        subtype: str,
        container: str = "WAV",
    ) -> None:
        if len(names) != 1:
            raise ValueError(f"a {container} file holds one stream, got {names}")
        extra: dict[str, object] = {}
        if container == "MP3":  # constant 320 kbit/s
            extra = {"compression_level": 0.0, "bitrate_mode": "CONSTANT"}
        try:
            self._file = sf.SoundFile(
                str(path), "w", rate, nb_channels, subtype, format=container, **extra
            )
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
            raise AudioError(
                f"cannot write {container.lower()} at {rate} Hz with {nb_channels} channel(s): "
                f"{reason(exc)}; try --format wav"
            ) from exc

    def write(self, blocks: Sequence[np.ndarray]) -> None:
        (block,) = blocks
        self._file.write(np.ascontiguousarray(block.T))

    def close(self) -> None:
        self._file.close()


def wav_sink(path: Path, names: tuple[str, ...], rate: int, nb_channels: int, subtype: str) -> Sink:
    """A WAV file (``subtype``: ``FLOAT``, ``PCM_16``, ``PCM_24``)."""
    return SoundFileSink(path, names, rate, nb_channels, subtype, "WAV")


def flac_sink(
    path: Path, names: tuple[str, ...], rate: int, nb_channels: int, subtype: str
) -> Sink:
    """A FLAC file (``subtype``: ``PCM_16``, ``PCM_24``)."""
    return SoundFileSink(path, names, rate, nb_channels, subtype, "FLAC")


def mp3_sink(path: Path, names: tuple[str, ...], rate: int, nb_channels: int, subtype: str) -> Sink:
    """An MP3 file at a constant 320 kbit/s."""
    return SoundFileSink(path, names, rate, nb_channels, subtype, "MP3")


class Mp4Sink:
    """A ``.stem.mp4``: one AAC stream per name (NI stems / MUSDB18 stream order).

    Each stream's ``title``/``handler_name`` is its name. The NI ``stem`` metadata atom
    (stem colours for DJ software) cannot be written through PyAV and is left out.
    """

    def __init__(
        self, path: Path, names: tuple[str, ...], rate: int, nb_channels: int, subtype: str
    ) -> None:
        layout = "mono" if nb_channels == 1 else "stereo"
        try:
            self._container: av.container.OutputContainer | None = av.open(
                str(path), mode="w", format="mp4"
            )
            self._streams = []
            for name in names:
                stream = self._container.add_stream("aac", rate=rate, layout=layout)
                stream.bit_rate = STEMS_BIT_RATE
                stream.metadata["title"] = name
                stream.metadata["handler_name"] = name
                self._streams.append(stream)
        except (av.error.FFmpegError, ValueError) as exc:
            raise AudioError(
                f"cannot write AAC stems at {rate} Hz: {reason(exc)}; try --format wav"
            ) from exc
        self._layout, self._rate, self._written = layout, rate, 0

    def write(self, blocks: Sequence[np.ndarray]) -> None:
        n = blocks[0].shape[-1]
        container = self._container
        if not n or container is None:
            return
        for stream, block in zip(self._streams, blocks, strict=True):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(block, np.float32), format="fltp", layout=self._layout
            )
            frame.sample_rate = self._rate
            # timestamps let the encoder's priming delay go into an edit list, so decoders
            # start exactly at the first sample
            frame.pts = self._written
            frame.time_base = Fraction(1, self._rate)
            for packet in stream.encode(frame):
                container.mux(packet)
        self._written += n

    def close(self) -> None:
        if self._container is None:
            return
        container, self._container = self._container, None
        try:
            for stream in self._streams:
                for packet in stream.encode(None):
                    container.mux(packet)
        finally:
            container.close()
