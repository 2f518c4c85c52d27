"""Writing stems: every format through one writer (:class:`StemWriter`) and one table.

Files are written while the stems are produced, under short temporary names
(:func:`unmix.fileio.temporary_file`) renamed when every file is complete, so nothing
appears under a final name half-written, and a failed or interrupted write leaves nothing.
"""

from __future__ import annotations

import contextlib
import math
import shutil
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import soundfile as sf

from ..errors import AudioError, UnmixError
from ..fileio import atomic_path, publish, remove_stale_temporaries, temporary_file
from .decode import reason
from .formats import format_of_path, get_format
from .resample import StreamResampler, resample
from .sinks import EncodeOptions, Sink

#: free space below which a failed write is reported as a full disk (bytes)
FULL_DISK_BYTES = 16 * 2**20
#: what encoders raise when a write fails
WRITE_ERRORS = (OSError, sf.LibsndfileError, av.error.FFmpegError, RuntimeError)
#: samples per block from which :class:`StemWriter` with ``workers > 1`` encodes side by side
PARALLEL_SAMPLES = 65536


@dataclass
class _Level:
    """Peak and clipped-sample count of one output stream."""

    name: str
    peak: float = 0.0
    clipped: int = 0

    def limit(self, block: np.ndarray, clip: bool) -> np.ndarray:
        """Track the level; clip to full scale if the format cannot hold more (a format that
        keeps every value needs no level: the peak is only reported for clipping)."""
        if not clip or not block.size:
            return block
        magnitude = np.abs(block)
        self.peak = max(self.peak, float(magnitude.max()))
        over = magnitude > 1.0
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


def write_failure(folder: Path, exc: BaseException) -> UnmixError:
    """A one-line error for a failed write into ``folder``, naming a full disk as such."""
    try:
        full = shutil.disk_usage(folder).free < FULL_DISK_BYTES
    except OSError:
        full = False
    if full or (isinstance(exc, OSError) and exc.errno == 28):
        what = "the disk is full (no space left on device)"
    elif isinstance(exc, OSError) and exc.strerror:
        what = exc.strerror
    else:
        what = reason(exc)
    return UnmixError(f"cannot write stems in {folder}: {what}; nothing was kept")


class StemWriter:
    """Write stems while they are produced, to temporary files renamed on :meth:`commit`.

    The format (:data:`unmix.audio.formats.FORMATS`) decides the files: one per output
    (``<folder>/<name><suffix>``) or one holding the mixture and then every output
    (``stems``: ``destination`` is the ``.stem.mp4`` path). Nothing appears under the final
    names until every file is complete; :meth:`abort` (or leaving the ``with`` block by an
    exception) removes the temporary files.

    Clipping policy: float WAV keeps every value; integer (16/24-bit WAV, FLAC) and lossy
    (MP3, AAC) outputs clip at full scale and :meth:`commit` returns one warning per clipped
    output with the count and the peak level. A format that stores only some rates and
    takes the nearest one (MP3: 8-48 kHz) gets the stems resampled, with a note.

    Args:
        destination: folder for one-file-per-stem formats, the file path otherwise.
        names: output names (``vocals``, ``drums``, ...), in the order :meth:`write` gets
            them.
        fmt: a key of :data:`unmix.audio.formats.FORMATS`.
        sample_rate: Hz (checked against the codec's rates before anything is created).
        nb_channels: 1 or 2.
        bits: ``--bits`` choice (Default: the format's first).
        files: output file → the names it holds (``mixture`` or any of ``names``), instead
            of the format's layout under ``destination``; may leave names out (those are
            not written).
        options: encoder settings (MP3 bit rate and preset).
        workers: encode the files on up to this many threads (one file each) when a write
            is long enough to gain (:data:`PARALLEL_SAMPLES`); 1: one after the other.
    """

    def __init__(
        self,
        destination: Path,
        names: tuple[str, ...],
        fmt: str,
        sample_rate: int,
        nb_channels: int,
        bits: str | None = None,
        *,
        files: Mapping[Path, tuple[str, ...]] | None = None,
        options: EncodeOptions | None = None,
        workers: int = 1,
    ) -> None:
        self.workers = workers
        self.format = get_format(fmt)
        self.fmt, self.names, self.rate, self.nb_channels = fmt, names, sample_rate, nb_channels
        self.subtype = self.format.sample_format(bits)
        self.file_rate = self.format.output_rate(sample_rate)
        self.options = options or EncodeOptions()
        self.clip = self.format.clips(self.subtype)
        self.files = (
            dict(files) if files is not None else self.format.files(Path(destination), names)
        )
        self._streams = [n for streams in self.files.values() for n in streams]
        unknown = sorted(set(self._streams) - {"mixture", *names})
        if unknown or not self.files:
            raise ValueError(f"files must hold some of {names}, got unknown {unknown}")
        self.levels = [
            _Level(n if self.format.one_file else f"{n}{self.format.suffix}") for n in self._streams
        ]
        self._resampler = (
            StreamResampler(sample_rate, self.file_rate, len(self._streams) * nb_channels)
            if self.file_rate != sample_rate
            else None
        )
        self._temps: dict[Path, Path] = {}
        self._created: list[Path] = []
        self._sinks: list[tuple[Sink, int]] = []  # sink, number of streams
        try:
            self._open()
        except BaseException:
            self.abort()
            raise

    @property
    def outputs(self) -> list[Path]:
        """The final paths, in stream order."""
        return list(self.files)

    def _open(self) -> None:
        for final, streams in self.files.items():
            self._make_folder(final.parent)
            remove_stale_temporaries(final.parent)
            try:
                tmp = temporary_file(final.parent)
            except OSError as exc:
                raise write_failure(final.parent, exc) from exc
            self._temps[final] = tmp
            sink = self.format.opener(
                tmp, streams, self.file_rate, self.nb_channels, self.subtype, self.options
            )
            self._sinks.append((sink, len(streams)))

    def _make_folder(self, folder: Path) -> None:
        missing = [p for p in (folder, *folder.parents) if not p.exists()]
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UnmixError(
                f"cannot create output folder {folder}: {exc.strerror or reason(exc)}"
            ) from exc
        self._created.extend(missing)

    def write(self, mix: np.ndarray, stems: np.ndarray) -> None:
        """Append ``mix (nb_channels, n)`` and ``stems (nb_outputs, nb_channels, n)``.

        ``mix`` is only stored by one-file formats (as their first stream).
        """
        by_name = {"mixture": mix, **dict(zip(self.names, stems, strict=True))}
        blocks = [by_name[n] for n in self._streams]
        if self._resampler is not None:
            blocks = self._resample(np.concatenate(blocks), last=False)
        self._write(blocks)

    def _resample(self, flat: np.ndarray, last: bool) -> list[np.ndarray]:
        assert self._resampler is not None
        out = self._resampler.flush() if last else self._resampler.process(flat)
        return list(out.reshape(len(self._streams), self.nb_channels, -1))

    def _write(self, blocks: list[np.ndarray]) -> None:
        starts = np.cumsum([0] + [count for _, count in self._sinks]).tolist()

        def put(k: int) -> None:  # one file: its levels, then its sink
            first, stop = starts[k], starts[k + 1]
            levels = zip(self.levels[first:stop], blocks[first:stop], strict=True)
            self._sinks[k][0].write([lvl.limit(b, self.clip) for lvl, b in levels])

        workers = min(self.workers, len(self._sinks))
        if blocks and blocks[0].shape[-1] < PARALLEL_SAMPLES:
            workers = 1
        try:
            if workers > 1:  # numpy and the encoders release the GIL: files side by side
                with ThreadPoolExecutor(workers, thread_name_prefix="unmix-encode") as pool:
                    list(pool.map(put, range(len(self._sinks))))
            else:
                for k in range(len(self._sinks)):
                    put(k)
        except WRITE_ERRORS as exc:
            raise write_failure(next(iter(self.files)).parent, exc) from exc

    def commit(self) -> list[str]:
        """Finish every file and move it to its final name; returns clipping warnings (and a
        note when the stems were resampled for the format)."""
        if self._resampler is not None:
            self._write(self._resample(np.zeros((0, 0), np.float32), last=True))
        try:
            for sink, _ in self._sinks:
                sink.close()
            for final, tmp in self._temps.items():
                publish(tmp, final)
        except WRITE_ERRORS as exc:
            self.abort()
            raise write_failure(next(iter(self.files)).parent, exc) from exc
        self._temps.clear()
        notes = [w for w in (lvl.warning() for lvl in self.levels) if w]
        if self.file_rate != self.rate:
            notes.append(
                f"{self.format.codec} stores {min(self.format.rates or ())}-"
                f"{max(self.format.rates or ())} Hz: the stems were resampled from {self.rate} "
                f"to {self.file_rate} Hz; use --format wav or flac to keep {self.rate} Hz"
            )
        return notes

    def abort(self) -> None:
        """Drop the temporary files (and the folders this writer created, if left empty)."""
        for sink, _ in self._sinks:
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


def write(path: str | Path, audio: np.ndarray, sample_rate: int, bits: str | None = None) -> None:
    """Write ``(nb_channels, nb_timesteps)`` audio atomically; format from the ending.

    Any one-file-per-stem format of :data:`unmix.audio.formats.FORMATS` (wav, flac, mp3);
    ``bits`` as ``--bits``. Integer formats clip at full scale; MP3 takes the nearest MPEG
    rate (8-48 kHz).

    Raises:
        AudioError: unknown ending or a write failure (no partial file is left).
    """
    path = Path(path)
    fmt = format_of_path(path)
    subtype = fmt.sample_format(bits)
    rate = fmt.output_rate(sample_rate)
    if rate != sample_rate:
        audio = resample(audio, sample_rate, rate)
    try:
        with atomic_path(path) as tmp:
            sink = fmt.opener(tmp, (path.stem,), rate, audio.shape[0], subtype, EncodeOptions())
            try:
                sink.write([audio])
            finally:
                sink.close()
    except WRITE_ERRORS as exc:
        raise AudioError(f"cannot write {path}: {reason(exc)}") from exc
