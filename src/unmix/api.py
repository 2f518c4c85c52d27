"""High-level functions: array or file in, named stems out.

Everything here streams: audio is decoded, resampled to the model rate, separated in
overlapping segments (:mod:`unmix.apply`), resampled back and written block by block, so
memory does not grow with the length of the song. Stems keep the input's sample rate,
channel count and length.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import audio as audio_io
from .apply import SegmentPlan, StreamingSeparator, plan_segments
from .errors import AudioError
from .loading import load_separator
from .registry import DEFAULT_MODEL
from .separator import Separator

TOO_MANY_CHANNELS = (
    "{what} has {n} channels; unmix separates mono or stereo audio: downmix it to stereo "
    "first (e.g. ffmpeg -i IN -ac 2 OUT.wav)"
)


def _as_channels_first(audio: np.ndarray | torch.Tensor) -> np.ndarray:
    """Accept ``(nb_timesteps,)``, ``(nb_channels, nb_timesteps)`` or ``(nb_timesteps, nb_channels)``."""
    arr = audio.detach().cpu().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise AudioError(f"audio must be 1-D or 2-D (channels, samples), got shape {arr.shape}")
    if arr.shape[0] > arr.shape[1]:
        arr = arr.T
    if arr.shape[0] > 2:
        raise AudioError(TOO_MANY_CHANNELS.format(what="audio", n=arr.shape[0]))
    if arr.shape[1] == 0:
        raise AudioError("audio is empty (0 samples)")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _checked(block: np.ndarray, nb_channels: int | None, what: str) -> np.ndarray:
    """A decoded block, validated: 1 or 2 channels, constant layout, finite samples."""
    if block.shape[0] > 2:
        raise AudioError(TOO_MANY_CHANNELS.format(what=what, n=block.shape[0]))
    if nb_channels is not None and block.shape[0] != nb_channels:
        raise AudioError(f"{what} changes its channel count mid-stream; convert it first")
    if not np.isfinite(block).all():
        raise AudioError(f"{what} holds NaN or infinite samples")
    return block


class _Queue:
    """Mixture samples waiting for their stems: ``(nb_channels, n)`` blocks in, exact spans out."""

    def __init__(self) -> None:
        self._blocks: list[np.ndarray] = []
        self.size = 0

    def push(self, block: np.ndarray) -> None:
        self._blocks.append(block)
        self.size += block.shape[-1]

    def pop(self, n: int) -> np.ndarray:
        data = np.concatenate(self._blocks, axis=-1) if len(self._blocks) > 1 else self._blocks[0]
        self._blocks = [data[:, n:]]
        self.size -= n
        return data[:, :n]


class _Pipeline:
    """Input-rate blocks → model-rate segments → input-rate stems paired with their mixture."""

    def __init__(self, separator: Separator, sample_rate: int, plan: SegmentPlan | None) -> None:
        self.separator = separator
        self.rate = sample_rate
        self.engine = StreamingSeparator(separator, plan or plan_segments(separator))
        self.queue = _Queue()
        self.nb_channels: int | None = None
        self._down: audio_io.StreamResampler | None = None
        self._up: audio_io.StreamResampler | None = None

    def push(self, block: np.ndarray, what: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        block = _checked(block, self.nb_channels, what)
        if self._down is None or self._up is None:
            self.nb_channels = block.shape[0]
            model_rate = self.separator.sample_rate
            nb_out = len(self.separator.output_names) * self.nb_channels
            self._down = audio_io.StreamResampler(self.rate, model_rate, self.nb_channels)
            self._up = audio_io.StreamResampler(model_rate, self.rate, nb_out)
        self.queue.push(block)
        for stems in self.engine.push(self._down.process(block)):
            yield from self._pair(self._up.process(stems.reshape(-1, stems.shape[-1])))

    def finish(self, what: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        if self._down is None or self._up is None:
            raise AudioError(f"{what} holds no audio samples")
        for stems in [*self.engine.push(self._down.flush()), *self.engine.finish()]:
            yield from self._pair(self._up.process(stems.reshape(-1, stems.shape[-1])))
        yield from self._pair(self._up.flush())
        if self.queue.size:  # the round trip through the model rate fell a sample short
            stems = np.zeros((len(self.separator.output_names), self.nb_channels or 1, 0))
            yield from self._pair(stems.reshape(-1, 0), pad_to=self.queue.size)

    def _pair(self, flat: np.ndarray, pad_to: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        n = min(max(flat.shape[-1], pad_to), self.queue.size)
        if not n:
            return
        if flat.shape[-1] < n:
            flat = np.pad(flat, ((0, 0), (0, n - flat.shape[-1])))
        mix = self.queue.pop(n)
        stems = flat[:, :n].reshape(len(self.separator.output_names), mix.shape[0], n)
        if self.separator.residual:
            # at the output rate, so stems + residual give the input exactly (including
            # any band above the model's Nyquist frequency)
            stems[-1] = mix - stems[:-1].sum(axis=0)
        yield mix, stems


def iter_separate(
    separator: Separator,
    blocks: Iterable[np.ndarray],
    sample_rate: int,
    plan: SegmentPlan | None = None,
    what: str = "the audio",
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Separate a stream of audio blocks in bounded memory.

    Args:
        separator: a loaded :class:`Separator`.
        blocks: ``float32`` blocks ``(nb_channels, n)`` at ``sample_rate``, 1 or 2 channels.
        sample_rate: rate of the blocks (Hz); the model rate is reached with soxr.
        plan: segment geometry (Default: :func:`unmix.apply.plan_segments`).
        what: how to name the audio in error messages.

    Yields:
        ``(mixture (nb_channels, m), stems (nb_outputs, nb_channels, m))`` at
        ``sample_rate``; the ``m`` add up to the input length exactly.

    Raises:
        AudioError: no samples, more than two channels, NaN or infinite samples.
    """
    pipeline = _Pipeline(separator, sample_rate, plan)
    for block in blocks:
        yield from pipeline.push(block, what)
    yield from pipeline.finish(what)


def separate_array(
    separator: Separator, audio: np.ndarray | torch.Tensor, sample_rate: int
) -> dict[str, np.ndarray]:
    """Separate ``(nb_channels, nb_timesteps)`` audio at ``sample_rate`` with a loaded separator.

    The audio is resampled to the model rate and the stems back to ``sample_rate``; long
    audio is processed in cross-faded segments. Every stem has the input's shape.

    Returns:
        ``{name: (nb_channels, nb_timesteps) float32}`` in :attr:`Separator.output_names` order.
    """
    x = _as_channels_first(audio)
    parts = [stems for _, stems in iter_separate(separator, [x], int(sample_rate))]
    joined = np.concatenate(parts, axis=-1)
    return {name: joined[k] for k, name in enumerate(separator.output_names)}


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


def separate_file(
    separator: Separator,
    path: str | Path,
    destination: str | Path,
    fmt: str = "wav",
    bits: str | None = None,
    start: float = 0.0,
    duration: float | None = None,
    plan: SegmentPlan | None = None,
    progress: Callable[[float], None] | None = None,
) -> FileReport:
    """Separate one audio file into stem files, streaming.

    Args:
        separator: a loaded :class:`Separator`.
        path: any file FFmpeg decodes (the mixture stream of a ``.stem.mp4``).
        destination: folder for ``<name>.<fmt>`` files, or the ``.stem.mp4`` path with
            ``fmt="stems"``.
        fmt, bits: output format and bit depth (see :class:`unmix.audio.StemWriter`).
        start, duration: part of the file to separate (seconds).
        plan: segment geometry (Default: :func:`unmix.apply.plan_segments`).
        progress: called with the seconds of audio finished after each segment.

    Returns:
        a :class:`FileReport`.

    Raises:
        UnmixError: unreadable input, unwritable output; no output file is left behind.
    """
    path = Path(path)
    meta = audio_io.info(path)
    if meta.nb_channels > 2:
        raise AudioError(TOO_MANY_CHANNELS.format(what=str(path), n=meta.nb_channels))
    blocks = audio_io.iter_blocks(path, 0, start, duration)
    energy = np.zeros(2)
    samples = 0
    writer: audio_io.StemWriter | None = None
    try:
        for mix, stems in iter_separate(separator, blocks, meta.sample_rate, plan, str(path)):
            if writer is None:  # opened on the first result: nothing is created for bad input
                writer = audio_io.StemWriter(
                    Path(destination), separator.output_names, fmt, meta.sample_rate,
                    mix.shape[0], bits,
                )  # fmt: skip
            writer.write(mix, stems)
            samples += mix.shape[-1]
            if separator.residual:
                energy += (np.square(stems[-1]).sum(), np.square(mix).sum())
            if progress is not None:
                progress(mix.shape[-1] / meta.sample_rate)
        if writer is None:
            raise AudioError(f"{path} holds no audio samples")
        warnings = writer.commit()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    residual_db = None
    if separator.residual:
        residual_db = 10 * math.log10(max(energy[0], 1e-30) / max(energy[1], 1e-30))
    return FileReport(
        outputs=list(writer.targets.values()),
        seconds=samples / meta.sample_rate,
        sample_rate=meta.sample_rate,
        nb_channels=writer.nb_channels,
        warnings=warnings,
        residual_db=residual_db,
    )


def separate(
    audio: np.ndarray | torch.Tensor | str | Path,
    sample_rate: int | None = None,
    model: str | Path | Separator = DEFAULT_MODEL,
    targets: list[str] | None = None,
    niter: int = 1,
    softmask: bool = False,
    residual: bool = False,
    wiener_win_len: int | None = 300,
    device: str | None = None,
) -> dict[str, np.ndarray]:
    """Separate a song into stems.

    Args:
        audio: a path to any audio file, or samples shaped ``(nb_timesteps,)``,
            ``(nb_channels, nb_timesteps)`` or ``(nb_timesteps, nb_channels)``.
        sample_rate: rate of ``audio`` (required for arrays).
        model: registry name, model folder, or an already loaded :class:`Separator`.
        targets, niter, softmask, residual, wiener_win_len, device: see
            :func:`unmix.load_separator`.

    Returns:
        ``{target: (nb_channels, nb_timesteps) float32}`` at the input rate and length.

    Example:
        >>> stems = unmix.separate("song.mp3")            # doctest: +SKIP
        >>> stems["vocals"].shape                         # doctest: +SKIP
        (2, 8820000)
    """
    if not isinstance(audio, str | Path) and sample_rate is None:
        raise AudioError("sample_rate is required when audio is an array")
    sep = (
        model
        if isinstance(model, Separator)
        else load_separator(
            model,
            targets=targets,
            niter=niter,
            softmask=softmask,
            residual=residual,
            wiener_win_len=wiener_win_len,
            device=device,
        )
    )
    if not isinstance(audio, str | Path):
        return separate_array(sep, audio, int(sample_rate or 0))
    meta = audio_io.info(audio)
    blocks = audio_io.iter_blocks(audio)
    parts = [stems for _, stems in iter_separate(sep, blocks, meta.sample_rate, what=str(audio))]
    joined = np.concatenate(parts, axis=-1)
    return {name: joined[k] for k, name in enumerate(sep.output_names)}
