"""Encoders behind one protocol: a :class:`Sink` writes one file of one or more streams.

Each output format (:mod:`unmix.audio.formats`) names the function that opens its sink;
:class:`~unmix.audio.encode.StemWriter` only ever calls :meth:`Sink.write` and
:meth:`Sink.close`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol, cast

import av
import numpy as np
import soundfile as sf
from av.audio.stream import AudioStream

from ..errors import AudioError
from .decode import reason

#: AAC bit rate per stream of a ``.stem.mp4`` (that of the NI stems / MUSDB18 files)
STEMS_BIT_RATE = 256_000
#: constant bit rates LAME offers (kbit/s); the encoder takes the nearest one the sample
#: rate allows (MPEG-2 rates, 16-24 kHz, stop at 160)
MP3_BITRATES = (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
#: LAME quality presets as Demucs names them: 2 = best quality ... 7 = fastest
MP3_PRESETS = (2, 3, 4, 5, 6, 7)


@dataclass(frozen=True)
class EncodeOptions:
    """Encoder settings beyond the sample format.

    Attributes:
        mp3_bitrate: MP3 constant bit rate in kbit/s (one of :data:`MP3_BITRATES`).
        mp3_preset: LAME quality preset, 2 (best) to 7 (fastest), as Demucs' ``--mp3-preset``.
    """

    mp3_bitrate: int = 320
    mp3_preset: int = 2

    def __post_init__(self) -> None:
        if self.mp3_bitrate not in MP3_BITRATES:
            raise AudioError(
                f"--mp3-bitrate {self.mp3_bitrate} is not an MP3 bit rate; use one of "
                f"{', '.join(map(str, MP3_BITRATES))} (kbit/s)"
            )
        if self.mp3_preset not in MP3_PRESETS:
            raise AudioError(
                f"--mp3-preset {self.mp3_preset} is not a preset; use 2 (best quality) to 7 "
                "(fastest)"
            )


class Sink(Protocol):
    """One output file being written, holding one stream per name it was opened with."""

    def write(self, blocks: Sequence[np.ndarray]) -> None:
        """Append one ``(nb_channels, n)`` block per stream (same ``n`` for all)."""

    def close(self) -> None:
        """Finish the file (flush encoders, write trailers); idempotent."""


class SinkOpener(Protocol):
    """Opens a :class:`Sink` at ``path`` for ``names`` (one stream each)."""

    def __call__(
        self,
        path: Path,
        names: tuple[str, ...],
        rate: int,
        nb_channels: int,
        subtype: str,
        options: EncodeOptions = ...,
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
        try:
            self._file = sf.SoundFile(str(path), "w", rate, nb_channels, subtype, format=container)
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


def wav_sink(
    path: Path, names: tuple[str, ...], rate: int, nb_channels: int, subtype: str,
    options: EncodeOptions = EncodeOptions(),
) -> Sink:  # fmt: skip
    """A WAV file (``subtype``: ``FLOAT``, ``PCM_16``, ``PCM_24``)."""
    return SoundFileSink(path, names, rate, nb_channels, subtype, "WAV")


def flac_sink(
    path: Path, names: tuple[str, ...], rate: int, nb_channels: int, subtype: str,
    options: EncodeOptions = EncodeOptions(),
) -> Sink:  # fmt: skip
    """A FLAC file (``subtype``: ``PCM_16``, ``PCM_24``)."""
    return SoundFileSink(path, names, rate, nb_channels, subtype, "FLAC")


class PyAVSink:
    """One or more streams in one file through PyAV (FFmpeg): MP3 (LAME) and AAC stems.

    Frames carry timestamps, so the encoder's priming delay goes into the container's
    gapless information (LAME tag, MP4 edit list) and decoders start at the first sample.
    """

    def __init__(
        self, path: Path, names: tuple[str, ...], rate: int, nb_channels: int, *,
        container: str, codec: str, bit_rate: int, options: dict[str, str] | None = None,
        titles: bool = False,
    ) -> None:  # fmt: skip
        layout = "mono" if nb_channels == 1 else "stereo"
        what = "AAC stems" if codec == "aac" else container
        try:
            self._container: av.container.OutputContainer | None = av.open(
                str(path), mode="w", format=container
            )
            self._streams = []
            for name in names:
                stream = cast(
                    AudioStream,
                    self._container.add_stream(
                        codec, rate=rate, layout=layout, options=options or {}
                    ),
                )
                stream.bit_rate = bit_rate
                if titles:
                    stream.metadata["title"] = name
                    stream.metadata["handler_name"] = name
                self._streams.append(stream)
        except (av.error.FFmpegError, ValueError) as exc:
            raise AudioError(
                f"cannot write {what} at {rate} Hz: {reason(exc)}; try --format wav"
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


def mp3_sink(
    path: Path, names: tuple[str, ...], rate: int, nb_channels: int, subtype: str,
    options: EncodeOptions = EncodeOptions(),
) -> Sink:  # fmt: skip
    """An MP3 file (LAME through PyAV) at ``options.mp3_bitrate`` kbit/s constant, with
    quality preset ``options.mp3_preset``; ``rate`` must be an MPEG rate (8-48 kHz)."""
    if len(names) != 1:
        raise ValueError(f"an MP3 file holds one stream, got {names}")
    return PyAVSink(
        path, names, rate, nb_channels, container="mp3", codec="libmp3lame",
        bit_rate=options.mp3_bitrate * 1000,
        options={"compression_level": str(options.mp3_preset)},
    )  # fmt: skip


def stems_sink(
    path: Path, names: tuple[str, ...], rate: int, nb_channels: int, subtype: str,
    options: EncodeOptions = EncodeOptions(),
) -> Sink:  # fmt: skip
    """A ``.stem.mp4``: one AAC stream per name (NI stems / MUSDB18 stream order).

    Each stream's ``title``/``handler_name`` is its name. The NI ``stem`` metadata atom
    (stem colours for DJ software) cannot be written through PyAV and is left out.
    """
    return PyAVSink(
        path, names, rate, nb_channels, container="mp4", codec="aac",
        bit_rate=STEMS_BIT_RATE, titles=True,
    )  # fmt: skip
