"""``unmix stream`` on files: decode, resample, separate block by block, write the stems.

The file is decoded as a stream, resampled to the model rate (soxr, streaming), cut into
blocks of exactly ``block`` samples (the last one shorter) and given to a
:class:`~unmix.realtime.stream.StreamSeparator` one block at a time, as a sound card's
callback would: decoding runs in a reader thread, writing in a writer thread, and the
paced thread between them only separates (:mod:`unmix.realtime.pipeline`). The stems are shifted back by the stream's latency (so that they line up
with the input), resampled to the input's rate and written while they are produced; the
files appear under their final names only when complete (:class:`unmix.audio.StemWriter`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import audio as audio_io
from ..errors import AudioError, UnmixError
from .causal import CausalEngine
from .pacing import Pacer
from .pipeline import run_pipeline
from .stream import StreamSeparator

#: a block (model rate, or its stems) and the input-rate mixture decoded since the last one
_Item = tuple[np.ndarray, list[np.ndarray]]
#: blocks of silence run through the stream before a paced run (then it is reset)
WARM_UP_BLOCKS = 4


@dataclass(frozen=True)
class StreamFileReport:
    """What :func:`stream_file` wrote: output paths and seconds of audio."""

    outputs: list[Path]
    seconds: float
    warnings: list[str]


def stem_folder(path: Path, out_dir: Path) -> Path:
    """``OUT/<input name>``: the file name without its audio suffix (``.stem.mp4`` too)."""
    name = path.name
    for suffix in (".stem.mp4", path.suffix):
        if suffix and name.lower().endswith(suffix.lower()):
            name = name[: -len(suffix)]
            break
    return out_dir / (name or "stream")


def warm_up(stream: StreamSeparator, block: int, blocks: int = WARM_UP_BLOCKS) -> None:
    """Run ``blocks`` blocks of silence through ``stream``, then :meth:`~StreamSeparator.reset`.

    Before a paced run: the first real block then finds the weights in the caches and its
    code paths run once already (measured, umx-rt-preview, one thread: a cold first block
    took 4-14 ms, a warm one 3-8 ms, against an 11.6-ms block). The stream's output is
    unchanged (a reset stream is a new stream). In lookahead mode the silence goes on until
    a chunk has been computed (``latency`` samples: a chunk's code and memory warm too), and
    the background waits it made are not counted.
    """
    silence = np.zeros((stream.nb_channels, block), np.float32)
    engine = getattr(stream, "engine", None)  # (a stand-in stream may have none)
    if engine is not None and not isinstance(engine, CausalEngine):  # lookahead mode
        blocks = max(blocks, -(-(stream.latency + 1) // block))
    for _ in range(blocks):
        stream.process(silence)
    stream.reset()
    stream.waits = 0


def reblock(blocks: Iterator[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """The concatenation of ``blocks (C, n)`` cut into blocks of ``size`` (the last shorter)."""
    pending: list[np.ndarray] = []
    count = 0
    for block in blocks:
        pending.append(block)
        count += block.shape[1]
        if count >= size:
            flat = np.concatenate(pending, 1)
            cut = count - count % size
            for start in range(0, cut, size):
                yield flat[:, start : start + size]
            pending, count = [flat[:, cut:]], count - cut
    if count:
        yield np.concatenate(pending, 1)


class _Output:
    """Latency compensation, resampling back and writing (one-file formats get the mix)."""

    def __init__(self, stream: StreamSeparator, writer: audio_io.StemWriter, rate: int) -> None:
        self.stream, self.writer = stream, writer
        self.skip = stream.latency
        self.shape = (len(stream.output_names), stream.nb_channels)
        self.back = audio_io.StreamResampler(
            stream.sample_rate, rate, self.shape[0] * self.shape[1]
        )
        self.mix: list[np.ndarray] = []
        self.written = 0

    def add_mix(self, block: np.ndarray) -> None:
        self.mix.append(block)

    def add(self, stems: np.ndarray, last: bool = False) -> None:
        cut = min(self.skip, stems.shape[-1])
        self.skip -= cut
        flat = stems[..., cut:].reshape(self.shape[0] * self.shape[1], -1)
        out = self.back.process(flat)
        if last:
            out = np.concatenate([out, self.back.flush()], 1)
        self._write(out.reshape(*self.shape, -1), last)

    def _write(self, stems: np.ndarray, last: bool) -> None:
        mix = np.concatenate(self.mix, 1) if self.mix else np.zeros((self.shape[1], 0), np.float32)
        n = min(stems.shape[-1], mix.shape[1])
        if last:  # stems exactly as long as the input
            n = mix.shape[1]
            pad = n - stems.shape[-1]
            stems = np.pad(stems, ((0, 0), (0, 0), (0, max(pad, 0))))[..., :n]
        if n:
            self.writer.write(mix[:, :n], np.ascontiguousarray(stems[..., :n]))
            self.written += n
        self.mix = [mix[:, n:]]


def stream_file(
    stream: StreamSeparator,
    path: Path,
    folder: Path,
    fmt: str,
    bits: str | None,
    block: int,
    pacer: Pacer,
) -> StreamFileReport:
    """Separate ``path`` block by block into ``folder`` (see the module docstring).

    Raises:
        UnmixError: unreadable input, a channel count the stream was not opened with, bad
            samples; no output file is left behind.
    """
    meta = audio_io.info(path)
    if meta.nb_channels != stream.nb_channels:
        raise AudioError(f"{path} has {meta.nb_channels} channels, the stream {stream.nb_channels}")
    into = audio_io.StreamResampler(meta.sample_rate, stream.sample_rate, meta.nb_channels)
    writer = audio_io.StemWriter(
        folder, stream.output_names, fmt, meta.sample_rate, meta.nb_channels, bits
    )
    with writer:
        output = _Output(stream, writer, meta.sample_rate)
        decoded: list[np.ndarray] = []  # input-rate mixture read since the last block

        def model_rate_blocks() -> Iterator[np.ndarray]:
            for piece in audio_io.iter_blocks(path):
                decoded.append(piece)
                yield into.process(piece)
            yield into.flush()

        def blocks() -> Iterator[_Item]:  # the reader thread
            for piece in reblock(model_rate_blocks(), block):
                mix = decoded[:]
                del decoded[:]
                yield piece, mix

        def separate(item: _Item) -> _Item:
            return stream.process(item[0]), item[1]  # the paced thread: nothing else

        def write(item: _Item) -> None:  # the writer thread
            for piece in item[1]:
                output.add_mix(piece)
            output.add(item[0])

        if pacer.realtime:
            warm_up(stream, block)
        run_pipeline(blocks(), separate, write, pacer)
        output.add(stream.flush(), last=True)
        if output.written == 0:
            raise UnmixError(f"{path} holds no audio samples")
        warnings = writer.commit()
    return StreamFileReport(writer.outputs, output.written / meta.sample_rate, warnings)
