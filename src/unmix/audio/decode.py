"""Decoding and probing: the only code that reads audio files (PyAV, FFmpeg bundled).

Everything is a stream (:func:`iter_blocks`), so memory does not depend on the length of a
file. Audio arrays are ``float32`` shaped ``(nb_channels, nb_timesteps)``. Sample rates are
bounded (:func:`unmix.audio.resample.check_rate`) before anything is allocated, and a
stream whose rate changes mid-way (concatenated MP3s) is resampled part by part to the
rate the file declares.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..errors import AudioError
from .resample import StreamResampler, check_rate

#: stream order of the MUSDB18 ``.stem.mp4`` files
STEM_NAMES = ("mixture", "drums", "bass", "other", "vocals")


@dataclass(frozen=True)
class AudioInfo:
    """What a file holds.

    Attributes:
        sample_rate: Hz.
        nb_channels: channels of the chosen stream.
        nb_frames: samples per channel as declared by the container (may be approximate
            for compressed formats; decoding is authoritative), 0 if unknown.
        nb_streams: audio streams in the file (5 for MUSDB18 stems).
    """

    sample_rate: int
    nb_channels: int
    nb_frames: int
    nb_streams: int

    @property
    def duration(self) -> float:
        """Declared duration in seconds."""
        return self.nb_frames / self.sample_rate if self.sample_rate else 0.0


def _open(path: Path) -> av.container.InputContainer:
    path = Path(path)
    if path.is_dir():
        raise AudioError(f"{path} is a directory, not an audio file")
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_file() and path.stat().st_size == 0:
        raise AudioError(f"{path}: the file is empty (0 bytes)")
    try:
        return av.open(str(path), mode="r")
    except PermissionError as exc:
        raise AudioError(f"{path}: permission denied; check the file's read permission") from exc
    except (av.error.FFmpegError, OSError, UnicodeDecodeError, ValueError) as exc:
        raise AudioError(f"{path}: not a readable audio file ({reason(exc)})") from exc


def reason(exc: BaseException) -> str:
    if isinstance(exc, av.error.FFmpegError) and exc.strerror:
        return str(exc.strerror)[:200]  # without the errno and the file name
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def _audio_stream(
    container: av.container.InputContainer, path: Path, stream: int
) -> av.audio.stream.AudioStream:
    streams = container.streams.audio
    if not streams:
        raise AudioError(f"{path}: the file holds no audio stream")
    if not 0 <= stream < len(streams):
        raise AudioError(f"{path}: asked for audio stream {stream}, the file has {len(streams)}")
    return streams[stream]


def info(path: str | Path, stream: int = 0) -> AudioInfo:
    """Probe a file without decoding it."""
    path = Path(path)
    with _open(path) as container:
        st = _audio_stream(container, path, stream)
        rate = int(st.rate or st.codec_context.sample_rate or 0)
        channels = int(st.codec_context.channels or 0)
        frames = 0
        if st.duration is not None and st.time_base is not None:
            frames = int(round(float(st.duration * st.time_base) * rate))
        elif container.duration is not None:
            frames = int(round(container.duration / 1e6 * rate))
        if rate <= 0 or channels <= 0:
            raise AudioError(f"{path}: audio stream without a sample rate or channels")
        check_rate(rate, str(path))
        return AudioInfo(rate, channels, frames, len(container.streams.audio))


def iter_blocks(
    path: str | Path, stream: int = 0, start: float = 0.0, duration: float | None = None
) -> Iterator[np.ndarray]:
    """Decode a file as a stream of ``float32`` blocks ``(nb_channels, n)`` at its own rate.

    Memory does not depend on the file length. ``start``/``duration`` (seconds) select a
    part, cut to the exact sample. Parts of the stream at another rate than the declared
    one (:func:`info`) are resampled to it.

    Raises:
        AudioError: unreadable or corrupt data (also raised mid-stream), a rate out of
            bounds, or a non-finite or negative ``start``/``duration``.
    """
    path = Path(path)
    check_span(start, duration)
    with _open(path) as container:
        st = _audio_stream(container, path, stream)
        rate = check_rate(int(st.rate or st.codec_context.sample_rate or 0), str(path))
        skip = int(round(start * rate))
        remaining = None if duration is None else int(round(duration * rate))
        if skip > rate:  # seek near the start point, then cut exactly by timestamps
            container.seek(
                int((skip - rate) / rate / float(st.time_base or Fraction(1, rate))),
                stream=st,
                backward=True,
                any_frame=False,
            )
        position: int | None = None
        for block, pts_seconds in _decoded(container, st, path, rate):
            if position is None:
                position = int(round(pts_seconds * rate)) if skip > rate else 0
            begin = position
            position += block.shape[1]
            if position <= skip:
                continue
            block = block[:, max(skip - begin, 0) :]
            if remaining is not None:
                block = block[:, :remaining]
                remaining -= block.shape[1]
            if block.shape[1]:
                yield block
            if remaining is not None and remaining <= 0:
                return


def check_span(start: float, duration: float | None) -> None:
    """One-line error unless ``start`` is finite and ``>= 0`` and ``duration`` finite and ``> 0``."""
    if not (math.isfinite(start) and start >= 0) or (
        duration is not None and not (math.isfinite(duration) and duration > 0)
    ):
        raise AudioError(
            f"start must be a finite number of seconds >= 0 and duration one > 0, got {start} "
            f"and {duration}"
        )


def _decoded(
    container: av.container.InputContainer, st: av.audio.stream.AudioStream, path: Path, rate: int
) -> Iterator[tuple[np.ndarray, float]]:
    """``(block (nb_channels, n) at rate, first frame's time in seconds)`` per decoded frame.

    A frame at another rate (an MP3 made of parts at different rates) goes through a
    resampler to ``rate``; the time of the first frame is 0 when it has no timestamp.
    """
    converter: StreamResampler | None = None
    try:
        for frame in container.decode(st):
            block = _frame_to_array(frame)
            pts = (
                float(frame.pts * frame.time_base)
                if frame.pts is not None and frame.time_base is not None
                else 0.0
            )
            frame_rate = int(frame.sample_rate or rate)
            if converter is not None and (
                converter.rate_in != frame_rate or converter.nb_channels != block.shape[0]
            ):
                yield converter.flush(), pts
                converter = None
            if frame_rate != rate:
                check_rate(frame_rate, f"{path} (part of the stream)")
                if converter is None:
                    converter = StreamResampler(frame_rate, rate, block.shape[0])
                block = converter.process(block)
            yield block, pts
        if converter is not None:
            yield converter.flush(), 0.0
    except av.error.FFmpegError as exc:
        raise AudioError(f"{path}: corrupt audio data ({reason(exc)})") from exc


def _frame_to_array(frame: av.AudioFrame) -> np.ndarray:
    data = frame.to_ndarray()
    fmt = frame.format
    channels = len(frame.layout.channels)
    if not fmt.is_planar:
        data = data.reshape(-1, channels).T
    if data.dtype.kind == "i":
        data = data.astype(np.float32) / float(2 ** (8 * data.dtype.itemsize - 1))
    elif data.dtype.kind == "u":
        data = (data.astype(np.float32) - 128.0) / 128.0
    return np.ascontiguousarray(data, dtype=np.float32)


def read(
    path: str | Path, stream: int = 0, start: float = 0.0, duration: float | None = None
) -> tuple[np.ndarray, int]:
    """Decode a whole file (or a part of it).

    Returns:
        ``(audio (nb_channels, nb_timesteps) float32, sample_rate)``.

    Raises:
        AudioError: unreadable, empty, or non-finite audio.
    """
    path = Path(path)
    meta = info(path, stream)
    blocks = list(iter_blocks(path, stream, start, duration))
    if not blocks:
        raise AudioError(f"{path}: the file holds no audio samples")
    audio = np.concatenate(blocks, axis=1)
    if not np.isfinite(audio).all():
        raise AudioError(f"{path}: the audio holds NaN or infinite samples")
    return audio, meta.sample_rate


def read_stems(
    path: str | Path, start: float = 0.0, duration: float | None = None
) -> tuple[np.ndarray, int]:
    """Decode every audio stream of a multi-stream file (MUSDB18 ``.stem.mp4``).

    Returns:
        ``(audio (nb_streams, nb_channels, nb_timesteps) float32, sample_rate)``; streams in
        file order (``STEM_NAMES`` for MUSDB18), cut to the shortest stream.
    """
    meta = info(path)
    streams = [read(path, k, start, duration)[0] for k in range(meta.nb_streams)]
    channels = {s.shape[0] for s in streams}
    if len(channels) != 1:
        raise AudioError(f"{path}: streams have different channel counts {sorted(channels)}")
    length = min(s.shape[1] for s in streams)
    return np.stack([s[:, :length] for s in streams]), meta.sample_rate


#: file name endings that folder walks pick up as audio (case-insensitive)
AUDIO_SUFFIXES = (
    ".wav", ".wave", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".mp4",
    ".aif", ".aiff", ".aifc", ".wma", ".mka", ".webm", ".caf", ".wv", ".ac3", ".mp2",
)  # fmt: skip


def is_audio_name(path: str | Path) -> bool:
    """Whether a file name looks like audio (by its ending; decoding decides for real)."""
    return Path(path).name.lower().endswith(AUDIO_SUFFIXES)
