"""The only module that decodes, encodes, probes or resamples audio.

Decoding goes through PyAV (FFmpeg bundled in the wheel: wav, flac, mp3, ogg,
m4a/aac, ``.stem.mp4`` …); writing through soundfile; resampling through soxr.
Audio arrays are ``float32`` shaped ``(nb_channels, nb_timesteps)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf
import soxr

from .errors import AudioError
from .fileio import atomic_path

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
    try:
        return av.open(str(path), mode="r")
    except PermissionError as exc:
        raise AudioError(f"{path}: permission denied; check the file's read permission") from exc
    except (av.error.FFmpegError, OSError, UnicodeDecodeError, ValueError) as exc:
        raise AudioError(f"{path}: not a readable audio file ({_reason(exc)})") from exc


def _reason(exc: BaseException) -> str:
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
        return AudioInfo(rate, channels, frames, len(container.streams.audio))


def iter_blocks(
    path: str | Path, stream: int = 0, start: float = 0.0, duration: float | None = None
) -> Iterator[np.ndarray]:
    """Decode a file as a stream of ``float32`` blocks ``(nb_channels, n)`` at its own rate.

    Memory does not depend on the file length. ``start``/``duration`` (seconds) select a
    part, cut to the exact sample.

    Raises:
        AudioError: unreadable or corrupt data (also raised mid-stream).
    """
    path = Path(path)
    if start < 0 or (duration is not None and duration <= 0):
        raise AudioError(f"start must be >= 0 and duration > 0, got {start} and {duration}")
    with _open(path) as container:
        st = _audio_stream(container, path, stream)
        rate = int(st.rate or st.codec_context.sample_rate)
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
        try:
            for frame in container.decode(st):
                block = _frame_to_array(frame)
                if position is None:
                    position = (
                        int(round(float(frame.pts * frame.time_base) * rate))
                        if frame.pts is not None and frame.time_base is not None and skip > rate
                        else 0
                    )
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
        except av.error.FFmpegError as exc:
            raise AudioError(f"{path}: corrupt audio data ({_reason(exc)})") from exc


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


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample ``(nb_channels, nb_timesteps)`` with soxr (high quality).

    The output has ``round(nb_timesteps * rate_out / rate_in)`` samples.
    """
    if rate_in == rate_out:
        return audio
    out = soxr.resample(np.ascontiguousarray(audio.T), rate_in, rate_out, quality="HQ")
    return np.ascontiguousarray(out.T, dtype=np.float32)


def resampled_length(nb_timesteps: int, rate_in: int, rate_out: int) -> int:
    """Length soxr gives when resampling a whole signal."""
    return int(math.floor(nb_timesteps * rate_out / rate_in + 0.5))


#: output formats: extension → (soundfile format, default subtype)
FORMATS = {
    "wav": ("WAV", "FLOAT"),
    "flac": ("FLAC", "PCM_24"),
    "ogg": ("OGG", "VORBIS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}


def write(
    path: str | Path, audio: np.ndarray, sample_rate: int, subtype: str | None = None
) -> None:
    """Write ``(nb_channels, nb_timesteps)`` audio atomically; format from the extension.

    Raises:
        AudioError: unknown extension or a write failure (no partial file is left).
    """
    path = Path(path)
    ext = path.suffix.lstrip(".").lower()
    if ext not in FORMATS:
        raise AudioError(f"{path}: cannot write '.{ext}' files; use one of {sorted(FORMATS)}")
    fmt, default_subtype = FORMATS[ext]
    try:
        with atomic_path(path, suffix=f".part.{ext}") as tmp:
            sf.write(
                str(tmp),
                np.ascontiguousarray(audio.T),
                sample_rate,
                format=fmt,
                subtype=subtype or default_subtype,
            )
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioError(f"cannot write {path}: {_reason(exc)}") from exc
