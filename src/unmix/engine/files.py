"""One file in, stem files (or arrays) out, streaming through :mod:`unmix.engine.stream`."""

from __future__ import annotations

import functools
import math
import tempfile
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import audio as audio_io
from ..audio.decode import check_span
from ..audio.sinks import EncodeOptions
from ..audio.spool import seekable_input
from ..cpus import current_threads
from ..errors import AudioError
from ..export.graph_separator import as_graph_separator
from .batcher import Batcher
from .overlap import BackgroundWriter, chunked, prefetch
from .segments import SegmentPlan
from .stream import TOO_MANY_CHANNELS, collect, iter_separate

if TYPE_CHECKING:
    from .segments import AnySeparator


@dataclass
class FileReport:
    """What :func:`separate_file` did.

    Attributes:
        outputs: files written.
        seconds: audio duration separated.
        sample_rate: rate of input and output (Hz).
        nb_channels: channels of input and output.
        warnings: clipping notes, one line each.
        residual_db: level of the residual relative to the mixture (dB), if written.
    """

    outputs: list[Path]
    seconds: float
    sample_rate: int
    nb_channels: int
    warnings: list[str] = field(default_factory=list)
    residual_db: float | None = None


def _probe(path: Path, what: str) -> audio_io.AudioInfo:
    meta = audio_io.info(path)
    if meta.nb_channels > 2:
        raise AudioError(TOO_MANY_CHANNELS.format(what=what, n=meta.nb_channels))
    return meta


def _nothing_after_start(what: str, meta: audio_io.AudioInfo, start: float) -> AudioError:
    if start > 0:
        return AudioError(
            f"{what} holds no audio after --start {start:g} s (it is {meta.duration:.1f} s "
            "long); choose an earlier --start"
        )
    return AudioError(f"{what} holds no audio samples")


def separate_file(
    separator: AnySeparator,
    path: str | Path,
    destination: str | Path,
    fmt: str = "wav",
    bits: str | None = None,
    start: float = 0.0,
    duration: float | None = None,
    plan: SegmentPlan | None = None,
    progress: Callable[[float], None] | None = None,
    *,
    outputs: Mapping[Path, tuple[str, ...]] | None = None,
    names: tuple[str, ...] | None = None,
    options: EncodeOptions | None = None,
    batcher: Batcher | None = None,
) -> FileReport:
    """Separate one audio file into stem files, streaming.

    Args:
        separator: a loaded :class:`Separator`.
        path: any file FFmpeg decodes (the mixture stream of a ``.stem.mp4``); a pipe,
            FIFO or ``-`` (stdin) is copied once to a temporary file beside the outputs.
        destination: folder for ``<name>.<fmt>`` files, or the ``.stem.mp4`` path with
            ``fmt="stems"``.
        fmt, bits: output format and bit depth (see :data:`unmix.audio.FORMATS`).
        start, duration: part of the file to separate (seconds).
        plan: segment geometry (Default: :func:`unmix.engine.segments.plan_segments`).
        progress: called with the seconds of audio finished after each segment.
        outputs: output file → the names it holds, instead of the format's layout under
            ``destination`` (may leave some outputs out: they are not written).
        names: what to call the separator's outputs, in order (Default: their own names,
            :attr:`Separator.output_names`); e.g. ``no_vocals`` for the residual.
        options: encoder settings (MP3 bit rate and preset).
        batcher: run the segments in batches on this
            :class:`~unmix.engine.batcher.Batcher` (Default: one by one, here).

    Returns:
        a :class:`FileReport`.

    Raises:
        UnmixError: unreadable input, unwritable output, non-finite stems; no output file
            is left behind.
    """
    check_span(start, duration)
    output_format = audio_io.get_format(fmt)
    output_format.sample_format(bits)
    destination = Path(destination)
    spool_folder = destination.parent if output_format.one_file else destination
    with seekable_input(path, _existing(spool_folder)) as source:
        what = "standard input" if str(path) == "-" else str(path)
        meta = _probe(source, what)
        output_format.check_rate(meta.sample_rate)
        writer = functools.partial(
            audio_io.StemWriter, destination, names or separator.output_names, fmt,
            bits=bits, files=outputs, options=options, workers=cpu_threads(separator),
        )  # fmt: skip
        return _separate_to_files(
            separator, source, what, meta, writer, (start, duration), plan, progress, batcher
        )


def cpu_threads(separator: AnySeparator) -> int:
    """The CPU threads ``separator`` runs on: an exported graph's own, else PyTorch's."""
    graph = as_graph_separator(separator)
    return graph.threads if graph is not None else current_threads()


def _existing(folder: Path) -> Path:
    """The nearest existing folder at or above ``folder`` (where a spool file may go)."""
    for candidate in (folder, *folder.parents):
        if candidate.is_dir():
            return candidate
    return Path(tempfile.gettempdir())


def _separate_to_files(
    separator: AnySeparator,
    source: Path,
    what: str,
    meta: audio_io.AudioInfo,
    open_writer: Callable[..., audio_io.StemWriter],
    span: tuple[float, float | None],
    plan: SegmentPlan | None,
    progress: Callable[[float], None] | None,
    batcher: Batcher | None = None,
) -> FileReport:
    seen = False

    def blocks() -> Generator[np.ndarray, None, None]:
        nonlocal seen
        for block in audio_io.iter_blocks(source, 0, *span):
            seen = True
            yield block

    energy = np.zeros(2)
    samples = 0
    writer: audio_io.StemWriter | BackgroundWriter | None = None
    decoded = blocks() if batcher is None else prefetch(chunked(blocks()))  # decoded ahead
    results = iter_separate(separator, decoded, meta.sample_rate, plan, what, batcher)
    try:
        for mix, stems in results:
            if writer is None:  # opened on the first result: nothing is created for bad input
                writer = open_writer(sample_rate=meta.sample_rate, nb_channels=mix.shape[0])
                writer = writer if batcher is None else BackgroundWriter(writer)
            writer.write(mix, stems)
            samples += mix.shape[-1]
            if separator.residual:
                energy += (np.square(stems[-1]).sum(), np.square(mix).sum())
            if progress is not None:
                progress(mix.shape[-1] / meta.sample_rate)
        if writer is None:
            raise _nothing_after_start(what, meta, span[0])
        warnings = writer.commit()
    except AudioError as exc:
        if writer is not None:
            writer.abort()
        if not seen and span[0] > 0:
            raise _nothing_after_start(what, meta, span[0]) from exc
        raise
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        results.close()  # a batched stream gives its queued segments up at once
        decoded.close()
    residual_db = None
    if separator.residual:
        residual_db = 10 * math.log10(max(energy[0], 1e-30) / max(energy[1], 1e-30))
    return FileReport(
        outputs=writer.outputs,
        seconds=samples / meta.sample_rate,
        sample_rate=meta.sample_rate,
        nb_channels=writer.nb_channels,
        warnings=warnings,
        residual_db=residual_db,
    )


def separate_path(separator: AnySeparator, path: str | Path) -> dict[str, np.ndarray]:
    """Separate a whole audio file into arrays ``{name: (nb_channels, nb_timesteps)}``.

    Stdin (``-``), pipes and FIFOs are copied once to a temporary file first.
    """
    with seekable_input(path, Path(tempfile.gettempdir())) as source:
        what = "standard input" if str(path) == "-" else str(path)
        meta = _probe(source, what)
        blocks = audio_io.iter_blocks(source)
        return collect(separator, iter_separate(separator, blocks, meta.sample_rate, what=what))
