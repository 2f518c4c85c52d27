"""The only module that decodes, encodes, probes or resamples audio.

Decoding goes through PyAV (FFmpeg bundled in the wheel: wav, flac, mp3, ogg,
m4a/aac, ``.stem.mp4`` …); writing through soundfile (wav, flac, mp3) and PyAV (AAC
``.stem.mp4``); resampling through soxr. Everything can run as a stream
(:func:`iter_blocks`, :class:`StreamResampler`, :class:`StemWriter`), so memory does not
depend on the length of a file. Audio arrays are ``float32`` shaped
``(nb_channels, nb_timesteps)``.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf
import soxr

from .errors import AudioError, UnmixError
from .fileio import atomic_path, publish

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
        raise AudioError(f"{path}: not a readable audio file ({_reason(exc)})") from exc


def _reason(exc: BaseException) -> str:
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


#: file name endings that folder walks pick up as audio (case-insensitive)
AUDIO_SUFFIXES = (
    ".wav", ".wave", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".mp4",
    ".aif", ".aiff", ".aifc", ".wma", ".mka", ".webm", ".caf", ".wv", ".ac3", ".mp2",
)  # fmt: skip


def is_audio_name(path: str | Path) -> bool:
    """Whether a file name looks like audio (by its ending; decoding decides for real)."""
    return Path(path).name.lower().endswith(AUDIO_SUFFIXES)


class StreamResampler:
    """Resample ``(nb_channels, n)`` blocks as one continuous stream (soxr, high quality).

    The concatenated output equals :func:`resample` of the concatenated input, so a
    stream resampled block by block has no seams and the same length.
    """

    def __init__(self, rate_in: int, rate_out: int, nb_channels: int) -> None:
        self.rate_in, self.rate_out, self.nb_channels = rate_in, rate_out, nb_channels
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


#: ``--format`` choices: one file per stem (wav, flac, mp3) or one ``.stem.mp4``
OUTPUT_FORMATS = ("wav", "flac", "mp3", "stems")
#: ``--bits`` choices per format (first one is the default)
BIT_DEPTHS = {"wav": ("float", "16", "24"), "flac": ("24", "16"), "mp3": ("lossy",)}
_SUBTYPES = {"float": "FLOAT", "16": "PCM_16", "24": "PCM_24", "lossy": "MPEG_LAYER_III"}
#: AAC bit rate per stream of a ``.stem.mp4`` (that of the NI stems / MUSDB18 files)
STEMS_BIT_RATE = 256_000


def output_suffix(fmt: str) -> str:
    """File ending for ``fmt`` (``.stem.mp4`` for ``stems``)."""
    return ".stem.mp4" if fmt == "stems" else f".{fmt}"


@dataclass
class _Level:
    """Peak and clipped-sample count of one output."""

    name: str
    peak: float = 0.0
    clipped: int = 0

    def limit(self, block: np.ndarray, clip: bool) -> np.ndarray:
        """Track the level; clip to full scale if the format cannot hold more."""
        if block.size:
            self.peak = max(self.peak, float(np.abs(block).max()))
        if not clip:
            return block
        over = np.abs(block) > 1.0
        count = int(over.sum())
        if not count:
            return block
        self.clipped += count
        clipped: np.ndarray = np.clip(block, -1.0, 1.0)
        return clipped

    def warning(self) -> str | None:
        if not self.clipped:
            return None
        return (
            f"{self.name}: {self.clipped} samples above full scale were clipped "
            f"(peak {20 * math.log10(self.peak):+.1f} dBFS); use --format wav for float "
            "output that keeps them"
        )


class StemWriter:
    """Write stems while they are produced, to temporary files renamed on :meth:`commit`.

    One file per output (``<folder>/<name>.<fmt>``) or, with ``fmt="stems"``, one
    ``.stem.mp4`` holding the mixture and then every output as AAC streams. Nothing appears
    under the final names until every file is complete; :meth:`abort` (or leaving the
    ``with`` block by an exception) removes the temporary files.

    Clipping policy: float WAV keeps every value; integer (16/24-bit WAV, FLAC) and lossy
    (MP3, AAC) outputs clip at full scale and :meth:`commit` returns one warning per clipped
    output with the count and the peak level.

    Args:
        destination: folder for one-file-per-stem formats, the ``.stem.mp4`` path otherwise.
        names: output names (``vocals``, ``drums``, ...), in stream order.
        fmt: one of :data:`OUTPUT_FORMATS`.
        sample_rate: Hz.
        nb_channels: 1 or 2.
        bits: for wav/flac: ``float`` (wav only), ``16`` or ``24`` (Default: first of
            :data:`BIT_DEPTHS`).
    """

    def __init__(
        self,
        destination: Path,
        names: tuple[str, ...],
        fmt: str,
        sample_rate: int,
        nb_channels: int,
        bits: str | None = None,
    ) -> None:
        if fmt not in OUTPUT_FORMATS:
            raise AudioError(f"unknown output format {fmt!r}; use one of {OUTPUT_FORMATS}")
        self.fmt, self.names, self.rate, self.nb_channels = fmt, names, sample_rate, nb_channels
        self.subtype = output_subtype(fmt, bits)
        self.clip = self.subtype != "FLOAT"
        self.targets = (
            {"stems": Path(destination)}
            if fmt == "stems"
            else {n: Path(destination) / f"{n}.{fmt}" for n in names}
        )
        self.levels = [_Level("mixture")] * (fmt == "stems") + [
            _Level(self._label(n)) for n in names
        ]
        self._temps: dict[Path, Path] = {}
        self._created: list[Path] = []
        self._sinks: list[_SoundFileSink | _Mp4Sink] = []
        try:
            self._open()
        except BaseException:
            self.abort()
            raise

    def _label(self, name: str) -> str:
        return name if self.fmt == "stems" else f"{name}.{self.fmt}"

    def _open(self) -> None:
        for final in self.targets.values():
            self._make_folder(final.parent)
            fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
            os.close(fd)
            self._temps[final] = Path(tmp)
        temps = list(self._temps.values())
        if self.fmt == "stems":
            self._sinks = [
                _Mp4Sink(temps[0], ("mixture", *self.names), self.rate, self.nb_channels)
            ]
        else:
            self._sinks = [
                _SoundFileSink(tmp, self.fmt, self.subtype, self.rate, self.nb_channels)
                for tmp in temps
            ]

    def _make_folder(self, folder: Path) -> None:
        missing = [p for p in (folder, *folder.parents) if not p.exists()]
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UnmixError(f"cannot create output folder {folder}: {_os_reason(exc)}") from exc
        self._created.extend(missing)

    def write(self, mix: np.ndarray, stems: np.ndarray) -> None:
        """Append ``mix (nb_channels, n)`` and ``stems (nb_outputs, nb_channels, n)``.

        ``mix`` is only stored by the ``stems`` format (as its first stream).
        """
        blocks = [mix, *stems] if self.fmt == "stems" else list(stems)
        blocks = [lvl.limit(b, self.clip) for lvl, b in zip(self.levels, blocks, strict=True)]
        try:
            if self.fmt == "stems":
                self._sinks[0].write_all(blocks)  # type: ignore[union-attr]
            else:
                for sink, block in zip(self._sinks, blocks, strict=True):
                    sink.write(block)  # type: ignore[union-attr]
        except OSError as exc:
            raise UnmixError(f"cannot write stems: {_os_reason(exc)}") from exc

    def commit(self) -> list[str]:
        """Finish every file and move it to its final name; returns clipping warnings."""
        try:
            for sink in self._sinks:
                sink.close()
            for final, tmp in self._temps.items():
                publish(tmp, final)
        except (OSError, av.error.FFmpegError) as exc:
            self.abort()
            raise UnmixError(f"cannot finish the output files: {_reason(exc)}") from exc
        self._temps.clear()
        return [w for w in (lvl.warning() for lvl in self.levels) if w]

    def abort(self) -> None:
        """Drop the temporary files (and the folders this writer created, if left empty)."""
        for sink in self._sinks:
            with contextlib.suppress(Exception):
                sink.close()
        for tmp in self._temps.values():
            with contextlib.suppress(OSError):
                tmp.unlink()
        self._temps.clear()
        for folder in self._created:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only succeeds when empty
        self._created.clear()

    def __enter__(self) -> StemWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.abort()


def output_subtype(fmt: str, bits: str | None) -> str:
    """The soundfile subtype (or ``AAC``) for ``fmt`` at ``bits``; checks the combination."""
    if fmt == "stems":
        if bits is not None:
            raise AudioError("--bits applies to wav and flac only, not to stems (AAC)")
        return "AAC"
    allowed = BIT_DEPTHS[fmt]
    if bits is not None and fmt == "mp3":
        raise AudioError("--bits applies to wav and flac only, not to mp3")
    chosen = bits or allowed[0]
    if chosen not in allowed:
        raise AudioError(f"--bits {chosen} is not possible for {fmt}; use one of {allowed}")
    return _SUBTYPES[chosen]


def _os_reason(exc: OSError) -> str:
    return exc.strerror or _reason(exc)


class _SoundFileSink:
    """One file written incrementally with soundfile (wav, flac, mp3)."""

    def __init__(self, path: Path, fmt: str, subtype: str, rate: int, nb_channels: int) -> None:
        extra: dict[str, object] = {}
        if fmt == "mp3":  # constant 320 kbit/s
            extra = {"compression_level": 0.0, "bitrate_mode": "CONSTANT"}
        try:
            self._file = sf.SoundFile(
                str(path), "w", rate, nb_channels, subtype, format=fmt.upper(), **extra
            )
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
            raise AudioError(
                f"cannot write {fmt} at {rate} Hz with {nb_channels} channel(s): "
                f"{_reason(exc)}; try --format wav"
            ) from exc

    def write(self, block: np.ndarray) -> None:
        self._file.write(np.ascontiguousarray(block.T))

    def close(self) -> None:
        self._file.close()


class _Mp4Sink:
    """A ``.stem.mp4``: one AAC stream per name (NI stems / MUSDB18 stream order).

    Each stream's ``title``/``handler_name`` is its name. The NI ``stem`` metadata atom
    (stem colours for DJ software) cannot be written through PyAV and is left out.
    """

    def __init__(self, path: Path, names: tuple[str, ...], rate: int, nb_channels: int) -> None:
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
                f"cannot write AAC stems at {rate} Hz: {_reason(exc)}; try --format wav"
            ) from exc
        self._layout, self._rate, self._written = layout, rate, 0

    def write_all(self, blocks: list[np.ndarray]) -> None:
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
